//! The commands about where objects are and why: `drain`, `node mode`, `node active`,
//! `why`, `decisions`, `top`. Commands about one node reach it at the address the entry
//! node's membership gives (`NODE`: `3`, `node-3`, or an address); those about the
//! cluster ask every live node.

use crate::commands::print_json;
use crate::exit::CliError;
use crate::table::Columns;
use crate::target::{parse_target, resolve};
use client::Client;
use clouds::{InvokeError, NodeId};
use protocol::decision::{Decision, DrainReport, DrainState, ObjectLoad};
use protocol::{Liveness, NodeMode, NodeView};
use std::io::IsTerminal;
use std::time::Duration;

/// How often `drain` and `top` ask again.
const POLL: Duration = Duration::from_millis(250);
/// The longest `drain` waits for the drain to finish (it goes on without the command).
const DRAIN_WAIT: Duration = Duration::from_secs(3600);

/// A client of the node `spec` names, with the entry client's wallet and deadline.
pub async fn node_client(client: &Client, spec: &str) -> Result<(Client, NodeId), CliError> {
    let nodes = client.nodes().await?;
    let found = if spec.contains(':') {
        let addr = crate::target::node_addr(spec).await?;
        nodes.iter().find(|n| n.addr == addr)
    } else {
        let id: NodeId = spec.parse().map_err(|e| CliError::Usage(format!("`{spec}`: {e}")))?;
        nodes.iter().find(|n| n.id == id)
    };
    let Some(node) = found else {
        let known = nodes.iter().map(|n| format!("{} ({})", n.id, n.addr)).collect::<Vec<_>>().join(", ");
        let error = CliError::Usage(format!("no node `{spec}` in the cluster; its nodes: {known}"));
        let names: Vec<String> = nodes.iter().map(|n| n.id.to_string()).collect();
        let asked = spec.parse::<NodeId>().map_or(spec.to_string(), |id| id.to_string());
        return Err(match crate::exit::did_you_mean(&asked, names.iter().map(String::as_str)) {
            Some(hint) => CliError::Hinted(Box::new(error), hint.to_string()),
            None => error,
        });
    };
    if node.state == Liveness::Dead {
        return Err(InvokeError::Unavailable { node: node.id.to_string(), reason: "the node is down".into() }.into());
    }
    let other = Client::connect_with(node.addr, client::CONNECT_TIMEOUT, client.wallet().clone()).await?;
    Ok((other, node.id))
}

pub async fn set_mode(client: &Client, json: bool, node: &str, mode: NodeMode) -> Result<(), CliError> {
    let (other, id) = node_client(client, node).await?;
    let mode = other.set_mode(mode).await?;
    if json {
        print_json(&serde_json::json!({ "node": id, "mode": mode }));
    } else {
        println!("{id}: {mode}");
    }
    Ok(())
}

pub async fn owner_active(client: &Client, json: bool, node: &str) -> Result<(), CliError> {
    let (other, id) = node_client(client, node).await?;
    let mode = other.owner_active().await?;
    if json {
        print_json(&serde_json::json!({ "node": id, "mode": mode, "owner": "present" }));
    } else if mode == NodeMode::Workstation {
        println!("{id}: the owner is present; guests are being evicted");
    } else {
        println!("{id}: owner activity noted ({id} is a {mode}, which evicts nothing; `node mode {id} workstation` makes it one)");
    }
    Ok(())
}

/// `clouds drain NODE [--undo] [--detach]`.
pub async fn drain(client: &Client, json: bool, node: &str, undo: bool, detach: bool) -> Result<(), CliError> {
    let (other, id) = node_client(client, node).await?;
    let started = other.drain(undo).await?;
    if undo || detach {
        return print_drain(json, &started);
    }
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(started.total.max(1));
        let style = indicatif::ProgressStyle::with_template(&format!(
            "{{spinner}} draining {id} [{{bar:30}}] {{pos}}/{{len}} objects {{msg}} ({{elapsed}})"
        ))
        .expect("a valid template")
        .progress_chars("=> ");
        bar.set_style(style);
        bar.enable_steady_tick(POLL);
        bar
    });
    let until = tokio::time::Instant::now() + DRAIN_WAIT;
    let report = loop {
        let report = other.drain_status().await?;
        if let Some(bar) = &bar {
            bar.set_length(report.total.max(1));
            bar.set_position(report.objects.len() as u64);
            bar.set_message(match &report.problem {
                Some(p) => format!("{}: {p}", report.state),
                None => report.state.to_string(),
            });
        }
        if matches!(report.state, DrainState::Done | DrainState::Undone | DrainState::Failed)
            || tokio::time::Instant::now() >= until
        {
            break report;
        }
        tokio::time::sleep(POLL).await;
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    print_drain(json, &report)?;
    match report.state {
        DrainState::Done => Ok(()),
        _ => Err(CliError::Failed(format!("the drain of {id} is {}", report.state))),
    }
}

fn print_drain(json: bool, r: &DrainReport) -> Result<(), CliError> {
    if json {
        print_json(r);
        return Ok(());
    }
    println!("drain of {}: {} after {:.1} s", r.node, r.state, r.elapsed_ms as f64 / 1000.0);
    if !r.objects.is_empty() {
        let mut table = Columns::new(&["OBJECT", "CLASS", "TO", "REASON"]);
        for o in &r.objects {
            let to = o.to.map_or("stays".to_string(), |n| n.to_string());
            table.row(vec![o.id.to_string(), o.class.clone(), to, o.reason.clone()]);
        }
        table.print();
    }
    println!("moved {} of {} objects; {} could not move", r.moved(), r.total, r.stuck().count());
    if let Some(to) = r.homes_to {
        println!("{} home records handed over to {to}: callers find those objects without {}", r.home_records, r.node);
    }
    if let Some(p) = &r.problem {
        println!("problem: {p}");
    }
    Ok(())
}

/// Every live node's client (the entry node's for itself).
async fn every_node(client: &Client) -> Result<Vec<(NodeView, Client)>, CliError> {
    let mut out = Vec::new();
    for n in client.nodes().await? {
        if n.state == Liveness::Dead {
            continue;
        }
        match Client::connect_with(n.addr, client::CONNECT_TIMEOUT, client.wallet().clone()).await {
            Ok(c) => out.push((n, c)),
            Err(e) => eprintln!("{} ({}) cannot be reached: {e}", n.id, n.addr),
        }
    }
    Ok(out)
}

/// The decisions of every live node (or of `node`), oldest first.
async fn gather(
    client: &Client,
    node: Option<&str>,
    object: Option<clouds::ObjectId>,
) -> Result<Vec<Decision>, CliError> {
    let clients = match node {
        Some(spec) => vec![node_client(client, spec).await?.0],
        None => every_node(client).await?.into_iter().map(|(_, c)| c).collect(),
    };
    let mut all = Vec::new();
    for c in clients {
        match c.decisions(object).await {
            Ok(d) => all.extend(d),
            Err(e) => eprintln!("{} did not answer: {e}", c.addr()),
        }
    }
    all.sort_by_key(|d| (d.at_ms, d.node));
    Ok(all)
}

/// `clouds why TARGET`: where the object has lived and why it moved.
pub async fn why(client: &Client, json: bool, target: &str) -> Result<(), CliError> {
    let (target, _) = resolve(client, &parse_target(target)?).await?;
    let id = target.id;
    let history = gather(client, None, Some(id)).await?;
    let now = client.locate(id).await?;
    if json {
        print_json(&serde_json::json!({ "object": id, "home": id.home(), "node": now, "decisions": history }));
        return Ok(());
    }
    println!("{id}: home {}, now on {now}", id.home());
    // A move appears at both ends (the source's decision, the target's arrival): the
    // source's says why; the arrival alone is shown for moves by hand.
    let mut shown = 0;
    for d in &history {
        let arrival_of_explained = d.kind == protocol::decision::DecisionKind::Arrived
            && history.iter().any(|o| {
                o.kind != protocol::decision::DecisionKind::Arrived
                    && o.to == d.to
                    && o.from == d.from
                    && o.at_ms.abs_diff(d.at_ms) < 60_000
            });
        if !arrival_of_explained {
            println!("  {}", sentence(d));
            shown += 1;
        }
    }
    if shown == 0 {
        println!(
            "  no decision about it is recorded (it was never placed by a policy nor moved since the nodes started)"
        );
    }
    Ok(())
}

/// A decision as a sentence: "moved from node-1 to node-3 at 12:01:07 (rebalanced): ...".
fn sentence(d: &Decision) -> String {
    use protocol::decision::DecisionKind as K;
    let place = match (d.from, d.to) {
        (Some(f), Some(t)) => format!("from {f} to {t}"),
        (None, Some(t)) => format!("on {t}"),
        (Some(f), None) => format!("on {f}"),
        (None, None) => String::new(),
    };
    let verb = match d.kind {
        K::Placed => "placed",
        K::Arrived => "moved",
        K::Failed => "could not move",
        K::HandedOver => "home records handed over",
        K::DeadlockBroken => "broke a deadlock",
        _ => "moved",
    };
    format!("{verb} {place} at {} ({}, by {}): {}", d.clock(), d.kind, d.node, d.reason)
}

/// `clouds decisions [--node N]`.
pub async fn decisions(client: &Client, json: bool, node: Option<&str>, limit: usize) -> Result<(), CliError> {
    let all = gather(client, node, None).await?;
    let recent = &all[all.len().saturating_sub(limit)..];
    if json {
        print_json(&recent);
        return Ok(());
    }
    if recent.is_empty() {
        println!("no decisions recorded");
    }
    for d in recent {
        println!("{d}");
    }
    Ok(())
}

/// `clouds top`: the nodes and the hottest objects, refreshed every `every` (a terminal
/// is cleared between frames); `iterations` frames, or until interrupted.
pub async fn top(
    client: &Client,
    json: bool,
    every: Duration,
    iterations: Option<u32>,
    limit: u32,
) -> Result<(), CliError> {
    let terminal = std::io::stdout().is_terminal() && !json;
    let mut frame = 0u32;
    loop {
        let nodes = every_node(client).await?;
        let mut hot: Vec<ObjectLoad> = Vec::new();
        for (_, c) in &nodes {
            if let Ok(h) = c.hot(limit).await {
                hot.extend(h);
            }
        }
        hot.sort_by(|a, b| b.busy_ms.total_cmp(&a.busy_ms).then(b.calls.total_cmp(&a.calls)));
        hot.truncate(limit as usize);
        let views: Vec<NodeView> = nodes.into_iter().map(|(v, _)| v).collect();
        if json {
            print_json(&serde_json::json!({ "nodes": views, "hot": hot }));
        } else {
            if terminal {
                print!("\x1b[2J\x1b[H");
            }
            print_top(&views, &hot);
        }
        frame += 1;
        if iterations.is_some_and(|n| frame >= n) {
            return Ok(());
        }
        tokio::time::sleep(every).await;
    }
}

fn print_top(nodes: &[NodeView], hot: &[ObjectLoad]) {
    let mut table = Columns::new(&["NODE", "MODE", "OBJECTS", "BUSY", "CALLS/S", "WAITING"]).right(&[2, 3, 4, 5]);
    for n in nodes {
        let (objects, busy, calls, waiting) = match n.load {
            Some(l) => {
                (l.objects.to_string(), format!("{:.0}ms", l.busy_ms), format!("{:.0}", l.calls), l.waiting.to_string())
            }
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        table.row(vec![n.id.to_string(), mode_text(n), objects, busy, calls, waiting]);
    }
    table.print();
    println!();
    let mut table = Columns::new(&["OBJECT", "CLASS", "NODE", "BUSY", "CALLS/S", "PARTNERS"]).right(&[3, 4]);
    for o in hot {
        let mut partners = o
            .partners
            .iter()
            .take(3)
            .map(|p| format!("{}…@{} {:.0}/s", &p.object.to_string()[..8], p.node, p.calls))
            .collect::<Vec<_>>()
            .join(", ");
        if o.pinned {
            partners.push_str(" (pinned)");
        }
        let (busy, calls) = (format!("{:.0}ms", o.busy_ms), format!("{:.0}", o.calls));
        table.row(vec![o.id.to_string(), o.class.clone(), o.node.to_string(), busy, calls, partners]);
    }
    table.print();
}

/// A node's mode, with a workstation's owner presence.
pub fn mode_text(n: &NodeView) -> String {
    match n.mode {
        NodeMode::Workstation if n.owner_present => "workstation (owner in)".into(),
        NodeMode::Workstation => "workstation (owner away)".into(),
        mode => mode.to_string(),
    }
}
