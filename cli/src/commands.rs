//! One function per command.

use crate::args::{ActionCommand, CapCommand, Cli, ClusterCommand, Command, NodeCommand};
use crate::exit::CliError;
use crate::table::Columns;
use crate::target::{parse_arg, parse_target, read_input, resolve, root, split_call, Target};
use crate::{balance, caps, cluster};
use client::{Client, Wallet};
use clouds::{CallId, ClassInfo, RawRef, Rights};
use naming::{Entry, Path};
use protocol::wire::InitialState;
use protocol::Placement;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

pub async fn run(cli: Cli) -> Result<(), CliError> {
    let json = cli.json;
    let wallet_dir = cli.wallet.clone().unwrap_or_else(Wallet::default_dir);
    let command = match cli.command {
        Command::Cluster(ClusterCommand::Up { nodes, dir, objectd, workers }) => {
            return cluster::up(nodes, &dir, objectd, workers, &open_wallet(&wallet_dir)?, json).await;
        }
        Command::Cluster(ClusterCommand::Down { dir }) => return cluster::down(&dir, json),
        Command::Cluster(ClusterCommand::Init { dir, nodes }) => return cluster::init(&dir, nodes, json),
        Command::Whoami => return caps::whoami(&open_wallet(&wallet_dir)?, &wallet_dir, json),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "clouds", &mut std::io::stdout());
            return Ok(());
        }
        Command::Cap(CapCommand::Import { token }) => {
            let token = read_input(&token, &mut false)?;
            return caps::import(&open_wallet(&wallet_dir)?, token.trim(), json);
        }
        other => other,
    };
    let wallet = Arc::new(open_wallet(&wallet_dir)?);
    // Connecting (and the handshake) gets no more than the thread's deadline either.
    let deadline = Duration::from_millis(cli.deadline);
    let addr = crate::target::node_addr(&cli.node).await?;
    let client =
        Client::connect_with(addr, client::CONNECT_TIMEOUT.min(deadline), wallet).await?.with_deadline(deadline);
    let result = command_with(&client, json, command).await;
    match result {
        Err(CliError::Invoke(clouds::InvokeError::NameNotFound { path })) => Err(name_hint(&client, path).await),
        Err(e) => Err(e.hinted()),
        ok => ok,
    }
}

/// `NameNotFound`, with the closest name in the same directory, if one is close.
async fn name_hint(client: &Client, path: String) -> CliError {
    let error = CliError::Invoke(clouds::InvokeError::NameNotFound { path: path.clone() });
    let Ok(parsed) = path.parse::<Path>() else { return error };
    let Some((parent, last)) = parsed.split_last() else { return error };
    let Ok(root) = root(client).await else { return error };
    let Ok(entries) = naming::list(&client.ctx(), &root, &parent).await else { return error };
    match crate::exit::did_you_mean(last, entries.iter().map(|(n, _)| n.as_str())) {
        Some(hint) => CliError::Hinted(Box::new(error), parent.child(hint).to_string()),
        None => error,
    }
}

async fn command_with(client: &Client, json: bool, command: Command) -> Result<(), CliError> {
    let client = client.clone();
    match command {
        Command::Create { class, name, state, placement, share, pinned } => {
            let placement = placement_of(&client, placement.as_deref()).await?;
            let how = Creation { placement, share, pinned };
            create(&client, json, &class, name.as_deref(), state, how).await
        }
        Command::Invoke { call, args, call_id, trace, atomic } => {
            invoke(&client, json, &call, &args, call_id, trace, atomic).await
        }
        Command::Describe { target } => describe(&client, json, &target).await,
        Command::Migrate { target, to, strategy } => migrate(&client, json, &target, to, strategy).await,
        Command::Ls { path } => ls(&client, json, path.as_deref().unwrap_or("/")).await,
        Command::Mkdir { path, owner } => caps::mkdir(&client, json, &path, owner).await,
        Command::Rm { target } => rm(&client, json, &target).await,
        Command::Objects { on, class, limit, after } => {
            objects(&client, json, client::ObjectQuery { node: on, class, after, limit }).await
        }
        Command::Classes => classes(&client, json).await,
        Command::Status => status(&client, json).await,
        Command::Nodes => nodes(&client, json).await,
        Command::Node(NodeCommand::Mode { which, mode }) => balance::set_mode(&client, json, &which, mode).await,
        Command::Node(NodeCommand::Active { which }) => balance::owner_active(&client, json, &which).await,
        Command::Drain { which, undo, detach } => balance::drain(&client, json, &which, undo, detach).await,
        Command::Why { target } => balance::why(&client, json, &target).await,
        Command::Decisions { which, limit } => balance::decisions(&client, json, which.as_deref(), limit).await,
        Command::Top { every, iterations, limit } => {
            balance::top(&client, json, Duration::from_millis(every), iterations, limit).await
        }
        Command::Cap(c) => caps::run(&client, c, json).await,
        Command::Action(ActionCommand::Resolve { action, commit, .. }) => {
            let outcome = client.resolve_action(&action, commit).await?;
            if json {
                print_json(&serde_json::json!({ "action": action, "outcome": format!("{outcome:?}").to_lowercase() }));
            } else {
                println!("action {action}: {}", if commit { "committed here" } else { "rolled back here" });
            }
            Ok(())
        }
        Command::Cluster(_) | Command::Whoami | Command::Completions { .. } => unreachable!("handled above"),
    }
}

fn open_wallet(dir: &std::path::Path) -> Result<Wallet, CliError> {
    Wallet::open(dir).map_err(CliError::Failed)
}

pub fn print_json(v: &impl serde::Serialize) {
    println!("{}", serde_json::to_string(v).expect("values print as JSON"));
}

/// The placement a `--placement` names; `near:TARGET` takes a name or an id.
async fn placement_of(client: &Client, text: Option<&str>) -> Result<Placement, CliError> {
    let Some(text) = text else { return Ok(Placement::Default) };
    if let Some(target) = text.strip_prefix("near:") {
        let (target, _) = resolve(client, &parse_target(target)?).await?;
        return Ok(Placement::Near(target.id));
    }
    text.parse().map_err(CliError::Usage)
}

/// How `clouds create` places and shares the new object.
struct Creation {
    placement: Placement,
    share: Option<Rights>,
    pinned: bool,
}

async fn create(
    client: &Client,
    json: bool,
    class: &str,
    name: Option<&str>,
    state: Option<String>,
    how: Creation,
) -> Result<(), CliError> {
    let Creation { placement: on, share, pinned } = how;
    let path = name.map(|n| n.parse::<Path>().map_err(CliError::Usage)).transpose()?;
    let ctx = client.ctx();
    let root = match &path {
        Some(path) => {
            if path.is_root() {
                return Err(CliError::Usage("the root `/` cannot be bound".into()));
            }
            let root = root(client).await?;
            // Check first so that a taken name creates nothing.
            if let Ok(entry) = naming::resolve(&ctx, &root, path).await {
                return Err(CliError::NameTaken { path: path.to_string(), id: entry.id });
            }
            Some(root)
        }
        None => None,
    };
    let initial = match state {
        Some(text) => InitialState::Json(read_input(&text, &mut false)?),
        None => InitialState::Default,
    };
    let created = client.create_pinned(class, initial, on, pinned).await?;
    let id = created.id;
    if let (Some(path), Some(root)) = (&path, &root) {
        let bound = async {
            let cap = match share {
                Some(rights) => ctx.attenuate_raw(&created, rights)?.cap,
                None => None,
            };
            let entry = Entry { id, class: class.to_string(), cap };
            naming::bind(&ctx, root, path, entry).await
        };
        if let Err(e) = bound.await {
            // Do not leave an unnamed object behind.
            let _ = client.delete(created).await;
            return Err(match e {
                e if naming::resolve::is_already_bound(&e) => CliError::NameTaken { path: path.to_string(), id },
                e => e.into(),
            });
        }
    }
    if json {
        print_json(&serde_json::json!({ "id": id, "class": class, "name": path.map(|p| p.to_string()) }));
    } else {
        println!("{id}");
    }
    Ok(())
}

async fn invoke(
    client: &Client,
    json: bool,
    call: &str,
    args: &[String],
    call_id: Option<String>,
    trace: bool,
    atomic: bool,
) -> Result<(), CliError> {
    let (target, method) = split_call(call)?;
    let target = parse_target(target)?;
    let mut stdin = false;
    let mut values: Vec<serde_json::Value> =
        args.iter().map(|a| parse_arg(&read_input(a, &mut stdin)?)).collect::<Result<_, _>>()?;
    let by_name = match &target {
        // A name and no references among the arguments: resolved and invoked in one request.
        Target::Name(path) if !atomic && values.iter().all(|v| texts(v).is_empty()) => {
            match client.invoke_path_json(path, method, &values, call_id.clone().map(CallId), trace).await {
                // Nothing ran: without a capability for the root directory in the wallet,
                // resolve the usual way, which asks for the administrator's.
                Err(clouds::InvokeError::Denied { .. }) => None,
                answer => Some(answer?),
            }
        }
        _ => None,
    };
    if let Some((result, path)) = by_name {
        print_result(json, trace, &result, &path);
        return Ok(());
    }
    let (target, class) = resolve(client, &target).await?;
    // References may be given by name or id, also inside lists: each is passed with the
    // capability this wallet has for it that suits methods best, so that the method can use it.
    if values.iter().any(|v| !texts(v).is_empty()) {
        let info = class_info(client, &target, class).await?;
        if let Ok(m) = info.method(method) {
            for (value, _) in values.iter_mut().zip(&m.params).filter(|(_, p)| p.holds_refs()) {
                let mut passed = std::collections::HashMap::new();
                for text in texts(value) {
                    let (arg, _) = resolve(client, &parse_target(&text)?).await?;
                    let with_cap = RawRef { id: arg.id, cap: client.capability_for(&arg) };
                    passed.insert(text, serde_json::to_value(&with_cap).expect("references print as JSON"));
                }
                replace_texts(value, &passed);
            }
        }
    }
    let call_id = call_id.map(CallId);
    let (result, path) = if atomic {
        client.invoke_json_atomic(&target, method, &values, call_id, trace).await?
    } else {
        client.invoke_json_traced(&target, method, &values, call_id, trace).await?
    };
    print_result(json, trace, &result, &path);
    Ok(())
}

/// A result, and with `trace` the path the thread took.
fn print_result(json: bool, trace: bool, result: &serde_json::Value, path: &[protocol::wire::Hop]) {
    if !trace {
        print_json(result);
    } else if json {
        print_json(&serde_json::json!({ "result": result, "path": path }));
    } else {
        print_json(result);
        match path.first().and_then(|h| h.trace_id.as_deref()) {
            Some(trace) => println!("path of the thread ({} hops), trace {trace}:", path.len()),
            None => println!("path of the thread ({} hops):", path.len()),
        }
        for hop in path {
            let id = hop.object.to_string();
            println!(
                "  {:indent$}{}  {}.{}(…{})  lamport {}  {:.3} ms",
                "",
                hop.node,
                hop.class,
                hop.method,
                &id[id.len() - 8..],
                hop.lamport,
                hop.micros as f64 / 1000.0,
                indent = 2 * hop.depth as usize
            );
        }
    }
}

/// The strings in a JSON value that may name objects: not object keys, not capabilities,
/// and nothing inside a reference written out in full (`{"id": ..., "cap": ...}`).
fn texts(value: &serde_json::Value) -> Vec<String> {
    match value {
        serde_json::Value::String(s) if !s.starts_with(clouds::cap::CAP_TEXT_PREFIX) => vec![s.clone()],
        serde_json::Value::Array(items) => items.iter().flat_map(texts).collect(),
        serde_json::Value::Object(fields) if !fields.contains_key("id") => fields.values().flat_map(texts).collect(),
        _ => Vec::new(),
    }
}

/// Replaces each string found in `with` by what it maps to.
fn replace_texts(value: &mut serde_json::Value, with: &std::collections::HashMap<String, serde_json::Value>) {
    match value {
        serde_json::Value::String(s) => {
            if let Some(v) = with.get(s.as_str()) {
                *value = v.clone();
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| replace_texts(v, with)),
        serde_json::Value::Object(fields) if !fields.contains_key("id") => {
            fields.values_mut().for_each(|v| replace_texts(v, with))
        }
        _ => {}
    }
}

/// The class metadata of an object: from the class list when the name told the class.
async fn class_info(client: &Client, target: &RawRef, class: Option<String>) -> Result<ClassInfo, CliError> {
    if let Some(class) = class {
        if let Some(info) = client.classes().await?.into_iter().find(|c| c.name == class) {
            return Ok(info);
        }
    }
    Ok(client.describe(target.clone()).await?.methods)
}

async fn describe(client: &Client, json: bool, target: &str) -> Result<(), CliError> {
    let (target, _) = resolve(client, &parse_target(target)?).await?;
    let info = client.describe(target).await?;
    if json {
        let state: serde_json::Value = serde_json::from_str(&info.state).unwrap_or(serde_json::Value::Null);
        print_json(&serde_json::json!({
            "id": info.id, "class": info.class, "node": info.node, "home": info.home, "version": info.version,
            "epoch": info.epoch, "state_bytes": info.state_bytes, "pages": info.pages, "page_bytes": info.page_bytes,
            "state": state, "methods": info.methods.methods, "moving": info.moving, "residual": info.residual,
            "held_by": info.held_by, "first_pages": info.first_pages,
            "residual_percent": info.residual.as_ref().map(protocol::wire::Residual::percent),
        }));
        return Ok(());
    }
    println!("id:       {}", info.id);
    println!("class:    {}", info.class);
    println!("node:     {} (home {})", info.node, info.home);
    println!("version:  {} (revocation epoch {})", info.version, info.epoch);
    println!("size:     {} bytes of state, {} pages ({} bytes)", info.state_bytes, info.pages, info.page_bytes);
    if !info.first_pages.is_empty() {
        let more = if info.pages > info.first_pages.len() as u64 { ", ..." } else { "" };
        println!("pages:    {}{more}", info.first_pages.join(", "));
    }
    if let Some(p) = &info.moving {
        println!(
            "moving:   to {} ({}), {}: {} of about {} bytes sent, {} rounds",
            p.to, p.strategy, p.step, p.bytes, p.total_bytes, p.rounds
        );
    }
    if let Some(held) = &info.held_by {
        println!("held by:  {held}");
    }
    if let Some(r) = &info.residual {
        println!(
            "residual: {} of {} pages ({:.1}%) still on {}, which a lazy move left them on",
            r.missing,
            r.pages,
            r.percent(),
            r.from
        );
    }
    println!("state:    {}", info.state);
    println!("methods:");
    for m in &info.methods.methods {
        println!("  {:<50} {}{}", m.signature(), m.access, if m.is_async { ", async" } else { "" });
    }
    Ok(())
}

/// How often `clouds migrate` asks how far the move came.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// The bar `clouds migrate` shows on a terminal: bytes sent of the object's size, copy
/// rounds and the protocol step.
fn progress_bar(strategy: protocol::migration::Strategy) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::no_length();
    let style = indicatif::ProgressStyle::with_template(&format!(
        "{{spinner}} {strategy} [{{bar:30}}] {{bytes}}/{{total_bytes}} {{msg}} ({{elapsed}})"
    ))
    .expect("a valid template")
    .progress_chars("=> ");
    bar.set_style(style);
    bar.enable_steady_tick(PROGRESS_EVERY);
    bar
}

async fn migrate(
    client: &Client,
    json: bool,
    target: &str,
    to: clouds::NodeId,
    strategy: protocol::migration::Strategy,
) -> Result<(), CliError> {
    let (target, _) = resolve(client, &parse_target(target)?).await?;
    let bar = (!json && std::io::stderr().is_terminal()).then(|| progress_bar(strategy));
    let moving = client.migrate(target.clone(), to, strategy);
    tokio::pin!(moving);
    let report = loop {
        tokio::select! {
            done = &mut moving => break done,
            () = tokio::time::sleep(PROGRESS_EVERY), if bar.is_some() => {
                // The object's node says how far the move came (if the capability may read it).
                if let (Some(bar), Ok(info)) = (&bar, client.describe(target.clone()).await) {
                    if let Some(p) = info.moving {
                        bar.set_length(p.total_bytes.max(p.bytes));
                        bar.set_position(p.bytes);
                        bar.set_message(format!("round {}, {}", p.rounds, p.step));
                    }
                }
            }
        }
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let report = report?;
    if json {
        print_json(&report);
    } else {
        println!("{report}");
    }
    Ok(())
}

async fn ls(client: &Client, json: bool, path: &str) -> Result<(), CliError> {
    let path: Path = path.parse().map_err(CliError::Usage)?;
    let entries = naming::list(&client.ctx(), &root(client).await?, &path).await?;
    if json {
        let rows: Vec<_> = entries
            .iter()
            .map(|(n, e)| serde_json::json!({ "name": n, "class": e.class, "id": e.id, "shared": e.cap.is_some() }))
            .collect();
        print_json(&rows);
        return Ok(());
    }
    let mut table = Columns::new(&["NAME", "CLASS", "OBJECT"]);
    for (name, e) in entries {
        let shown = if e.class == "Directory" { format!("{name}/") } else { name };
        table.row(vec![shown, e.class, e.id.to_string()]);
    }
    table.print();
    Ok(())
}

/// Deletes the object; given by name, unbinds it first (so a refused unbind deletes
/// nothing), and binds it again if the delete is refused.
async fn rm(client: &Client, json: bool, target: &str) -> Result<(), CliError> {
    let deleted = delete(client, target).await?;
    if json {
        print_json(&serde_json::json!({ "deleted": deleted }));
    } else {
        println!("deleted {deleted}");
    }
    Ok(())
}

/// What `rm` does; returns the id of the deleted object.
async fn delete(client: &Client, target: &str) -> Result<clouds::ObjectId, CliError> {
    let parsed = parse_target(target)?;
    let (target, class) = resolve(client, &parsed).await?;
    // A directory must be empty. An object the wallet may delete but not read is no
    // directory it could have filled: the node decides about the delete.
    if class.as_deref().is_none_or(|c| c == "Directory") {
        match client.describe(target.clone()).await {
            Ok(info) if info.class == "Directory" && info.pages > 0 => {
                return Err(CliError::Invoke(clouds::InvokeError::invalid(format!(
                    "directory {} is not empty; remove its entries first",
                    info.id
                ))))
            }
            Ok(_) | Err(clouds::InvokeError::Denied { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let id = target.id;
    let Target::Name(path) = &parsed else {
        client.delete(target).await?;
        return Ok(id);
    };
    let (ctx, root) = (client.ctx(), root(client).await?);
    let entry = naming::unbind(&ctx, &root, path).await?;
    if let Err(e) = client.delete(target).await {
        naming::bind(&ctx, &root, path, entry).await?;
        return Err(e.into());
    }
    Ok(id)
}

async fn objects(client: &Client, json: bool, query: client::ObjectQuery) -> Result<(), CliError> {
    let listing = client.list_objects(&query).await?;
    for (node, why) in &listing.unreachable {
        eprintln!("{node} could not be asked, its objects are missing here: {why}");
    }
    if json {
        print_json(&listing);
        return Ok(());
    }
    let mut table = Columns::new(&["OBJECT", "CLASS", "NODE", "VERSION", "BYTES", "PAGES"]).right(&[3, 4, 5]);
    for o in &listing.objects {
        let size = o.state_bytes + o.page_bytes;
        table.row(vec![
            o.id.to_string(),
            o.class.clone(),
            o.node.to_string(),
            o.version.to_string(),
            size.to_string(),
            o.pages.to_string(),
        ]);
    }
    table.print();
    match listing.next {
        Some(next) => println!("more: clouds objects --after {next}"),
        None => println!("{} objects", listing.objects.len()),
    }
    Ok(())
}

async fn classes(client: &Client, json: bool) -> Result<(), CliError> {
    let classes = client.classes().await?;
    if json {
        print_json(&classes);
        return Ok(());
    }
    for c in classes {
        println!("{}", c.name);
        for m in &c.methods {
            println!("  {:<50} {}", m.signature(), m.access);
        }
    }
    Ok(())
}

async fn nodes(client: &Client, json: bool) -> Result<(), CliError> {
    let nodes = client.nodes().await?;
    if json {
        print_json(&nodes);
        return Ok(());
    }
    let header =
        ["ID", "ADDRESS", "STATE", "MODE", "OBJECTS", "ACTIVE", "INFLIGHT", "BUSY", "CALLS/S", "MEMORY", "LABELS"];
    let mut table = Columns::new(&header).right(&[4, 5, 6, 7, 8, 9]);
    for n in nodes {
        let mut labels = if n.labels.is_empty() { "-".to_string() } else { n.labels.join(",") };
        if !n.keeps_homes.is_empty() {
            let homes: Vec<String> = n.keeps_homes.iter().map(ToString::to_string).collect();
            labels.push_str(&format!("  (keeps the home records of {})", homes.join(", ")));
        }
        // A node whose load vector this build cannot read shows dashes.
        let load = match n.load {
            Some(l) => [
                l.objects.to_string(),
                l.active.to_string(),
                format!("{}+{}", l.inflight, l.waiting),
                format!("{:.0}ms", l.busy_ms),
                format!("{:.0}", l.calls),
                format!("{}M", l.memory_bytes >> 20),
            ],
            None => ["-", "-", "-", "-", "-", "-"].map(String::from),
        };
        let mut row = vec![n.id.to_string(), n.addr.to_string(), n.state.to_string(), balance::mode_text(&n)];
        row.extend(load);
        row.push(labels);
        table.row(row);
    }
    table.print();
    Ok(())
}

async fn status(client: &Client, json: bool) -> Result<(), CliError> {
    let s = client.status().await?;
    if json {
        print_json(&serde_json::json!({
            "node": s.node, "address": client.addr(), "root": s.root, "objects": s.objects,
            "active": s.active, "durability": s.durability, "build": s.build, "admin": s.admin,
        }));
        return Ok(());
    }
    let you = client.wallet().public().to_string();
    let admin = match &s.admin {
        Some(key) if *key == you => format!("{key} (you)"),
        Some(key) => key.clone(),
        None => "none (names are then readable, but nobody can bind at the root)".into(),
    };
    println!("node:       {} at {}", s.node, client.addr());
    println!("root:       {}", s.root);
    println!("objects:    {} ({} active in memory)", s.objects, s.active);
    println!("durability: {}", s.durability);
    println!("build:      {}", s.build);
    println!("admin:      {admin}");
    Ok(())
}
