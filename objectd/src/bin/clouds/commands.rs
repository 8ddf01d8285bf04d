//! One function per command.

use crate::args::{Cli, ClusterCommand, Command};
use crate::cluster;
use crate::exit::CliError;
use crate::target::{parse_arg, parse_target, resolve, split_call, Target};
use clouds::{CallId, ClassInfo, ObjectId};
use naming::{Entry, Path};
use objectd::placement::Placement;
use objectd::wire::InitialState;
use objectd::Client;
use std::time::Duration;

pub async fn run(cli: Cli) -> Result<(), CliError> {
    let json = cli.json;
    let command = match cli.command {
        Command::Cluster(ClusterCommand::Up { nodes, dir, objectd }) => {
            return cluster::up(nodes, &dir, objectd, json).await
        }
        Command::Cluster(ClusterCommand::Down { dir }) => return cluster::down(&dir),
        Command::Cluster(ClusterCommand::Init { dir, nodes }) => return cluster::init(&dir, nodes),
        other => other,
    };
    let client = Client::connect(cli.node).await?.with_deadline(Duration::from_millis(cli.deadline));
    match command {
        Command::Create { class, name, state, on } => create(&client, json, &class, name.as_deref(), state, on).await,
        Command::Invoke { call, args, call_id, trace } => invoke(&client, json, &call, &args, call_id, trace).await,
        Command::Describe { target } => describe(&client, json, &target).await,
        Command::Ls { path } => ls(&client, json, path.as_deref().unwrap_or("/")).await,
        Command::Rm { target } => rm(&client, &target).await,
        Command::Classes => classes(&client, json).await,
        Command::Status => status(&client, json).await,
        Command::Nodes => nodes(&client, json).await,
        Command::Cluster(_) => unreachable!("handled above"),
    }
}

async fn root(client: &Client) -> Result<ObjectId, CliError> {
    Ok(client.status().await?.root)
}

fn print_json(v: &impl serde::Serialize) {
    println!("{}", serde_json::to_string(v).expect("values print as JSON"));
}

async fn create(
    client: &Client,
    json: bool,
    class: &str,
    name: Option<&str>,
    state: Option<String>,
    on: Placement,
) -> Result<(), CliError> {
    let path = name.map(|n| n.parse::<Path>().map_err(CliError::Usage)).transpose()?;
    let ctx = client.ctx();
    let root = root(client).await?;
    if let Some(path) = &path {
        if path.is_root() {
            return Err(CliError::Usage("the root `/` cannot be bound".into()));
        }
        // Check first so that a taken name creates nothing.
        if let Ok(entry) = naming::resolve(&ctx, root, path).await {
            return Err(CliError::NameTaken { path: path.to_string(), id: entry.id });
        }
    }
    let initial = match state {
        Some(text) => InitialState::Json(text),
        None => InitialState::Default,
    };
    let id = client.create_placed(class, initial, on).await?;
    if let Some(path) = &path {
        if let Err(e) = naming::bind(&ctx, root, path, Entry { id, class: class.to_string() }).await {
            // Do not leave an unnamed object behind.
            let _ = client.delete(id).await;
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
) -> Result<(), CliError> {
    let (target, method) = split_call(call)?;
    let target = parse_target(target)?;
    let ctx = client.ctx();
    let root = root(client).await?;
    let (id, class) = resolve(&ctx, root, &target).await?;
    let mut values: Vec<serde_json::Value> = args.iter().map(|a| parse_arg(a)).collect();
    // Object-reference parameters may be given by name: look up which ones they are.
    if values.iter().any(|v| v.is_string()) {
        let info = class_info(client, id, class).await?;
        if let Ok(m) = info.method(method) {
            for (value, param) in values.iter_mut().zip(&m.params) {
                if let (true, Some(text)) = (param.is_ref(), value.as_str()) {
                    let (ref_id, _) = resolve(&ctx, root, &parse_target(text)?).await?;
                    *value = serde_json::Value::String(ref_id.to_string());
                }
            }
        }
    }
    let (result, path) = client.invoke_json_traced(id, method, &values, call_id.map(CallId), trace).await?;
    if !trace {
        print_json(&result);
    } else if json {
        print_json(&serde_json::json!({ "result": result, "path": path }));
    } else {
        print_json(&result);
        println!("path of the thread ({} hops):", path.len());
        for hop in &path {
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
    Ok(())
}

/// The class metadata of an object: from the class list when the name told the class.
async fn class_info(client: &Client, id: ObjectId, class: Option<String>) -> Result<ClassInfo, CliError> {
    if let Some(class) = class {
        if let Some(info) = client.classes().await?.into_iter().find(|c| c.name == class) {
            return Ok(info);
        }
    }
    Ok(client.describe(id).await?.methods)
}

async fn describe(client: &Client, json: bool, target: &str) -> Result<(), CliError> {
    let target = parse_target(target)?;
    let (id, _) = resolve(&client.ctx(), root(client).await?, &target).await?;
    let info = client.describe(id).await?;
    if json {
        let state: serde_json::Value = serde_json::from_str(&info.state).unwrap_or(serde_json::Value::Null);
        print_json(&serde_json::json!({
            "id": info.id, "class": info.class, "node": info.node, "home": info.home, "version": info.version,
            "state_bytes": info.state_bytes, "pages": info.pages, "page_bytes": info.page_bytes,
            "state": state, "methods": info.methods.methods,
        }));
        return Ok(());
    }
    println!("id:       {}", info.id);
    println!("class:    {}", info.class);
    println!("node:     {} (home {})", info.node, info.home);
    println!("version:  {}", info.version);
    println!("size:     {} bytes of state, {} pages ({} bytes)", info.state_bytes, info.pages, info.page_bytes);
    println!("state:    {}", info.state);
    println!("methods:");
    for m in &info.methods.methods {
        println!("  {:<50} {}{}", m.signature(), m.access, if m.is_async { ", async" } else { "" });
    }
    Ok(())
}

async fn ls(client: &Client, json: bool, path: &str) -> Result<(), CliError> {
    let path: Path = path.parse().map_err(CliError::Usage)?;
    let entries = naming::list(&client.ctx(), root(client).await?, &path).await?;
    if json {
        let rows: Vec<_> =
            entries.iter().map(|(n, e)| serde_json::json!({ "name": n, "class": e.class, "id": e.id })).collect();
        print_json(&rows);
        return Ok(());
    }
    for (name, e) in entries {
        let shown = if e.class == "Directory" { format!("{name}/") } else { name };
        println!("{shown:<32} {:<12} {}", e.class, e.id);
    }
    Ok(())
}

async fn rm(client: &Client, target: &str) -> Result<(), CliError> {
    let ctx = client.ctx();
    let root = root(client).await?;
    let target = parse_target(target)?;
    let (id, _) = resolve(&ctx, root, &target).await?;
    let info = client.describe(id).await?;
    if info.class == "Directory" && info.pages > 0 {
        return Err(CliError::Invoke(clouds::InvokeError::invalid(format!(
            "directory {id} is not empty; remove its entries first"
        ))));
    }
    client.delete(id).await?;
    if let Target::Name(path) = &target {
        naming::unbind(&ctx, root, path).await?;
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
    println!("{:<8} {:<22} {:<8} {:>8} {:>8} {:>9}  LABELS", "ID", "ADDRESS", "STATE", "OBJECTS", "ACTIVE", "INFLIGHT");
    for n in nodes {
        let labels = if n.labels.is_empty() { "-".to_string() } else { n.labels.join(",") };
        println!(
            "{:<8} {:<22} {:<8} {:>8} {:>8} {:>9}  {labels}",
            n.id.to_string(),
            n.addr,
            n.state,
            n.objects,
            n.active,
            n.inflight
        );
    }
    Ok(())
}

async fn status(client: &Client, json: bool) -> Result<(), CliError> {
    let s = client.status().await?;
    if json {
        print_json(&serde_json::json!({
            "node": s.node, "address": client.addr(), "root": s.root, "objects": s.objects,
            "active": s.active, "durability": s.durability, "build": s.build,
        }));
        return Ok(());
    }
    println!("node:       {} at {}", s.node, client.addr());
    println!("root:       {}", s.root);
    println!("objects:    {} ({} active in memory)", s.objects, s.active);
    println!("durability: {}", s.durability);
    println!("build:      {}", s.build);
    Ok(())
}
