//! `clouds cluster up` / `down`: a local cluster of `objectd` processes on 127.0.0.1.
//!
//! DIR holds `nodes` (one `ID ADDRESS` line per node), `<ID>.pid`, `node-<ID>/` (data),
//! `node-<ID>.log`, the cluster authority (`authority.key`, `authority.pub`) and each
//! node's identity (`identity-<ID>/`). The first node keeps the root directory; every node
//! seeds from all.

use crate::exit::CliError;
use capability::PublicKey;
use client::Client;
use clouds::NodeId;
use protocol::identity::Identity;
use protocol::Liveness;
use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long `up` waits for the nodes to answer and to see each other.
const READY_WITHIN: Duration = Duration::from_secs(60);
/// How long `down` waits for a node to exit after SIGTERM.
const STOP_WITHIN: Duration = Duration::from_secs(20);

struct Member {
    id: u16,
    addr: SocketAddr,
}

fn failed(what: impl Into<String>) -> CliError {
    CliError::Failed(what.into())
}

fn read_nodes(dir: &Path) -> Result<Vec<Member>, CliError> {
    let file = dir.join("nodes");
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(failed(format!("cannot read {}: {e}", file.display()))),
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut parts = line.split_whitespace();
            let id = parts.next().and_then(|i| i.parse().ok());
            let addr = parts.next().and_then(|a| a.parse().ok());
            match (id, addr) {
                (Some(id), Some(addr)) => Ok(Member { id, addr }),
                _ => Err(failed(format!("{}: `{line}` is not `ID ADDRESS`", file.display()))),
            }
        })
        .collect()
}

/// Each node's HTTP gateway (`DIR/http`: `ID ADDRESS` per node), kept across restarts;
/// nodes without one get a free port.
fn http_addrs(dir: &Path, members: &[Member]) -> Result<Vec<(u16, SocketAddr)>, CliError> {
    let file = dir.join("http");
    let mut known: Vec<(u16, SocketAddr)> = std::fs::read_to_string(&file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (id, addr) = l.split_once(' ')?;
            Some((id.parse().ok()?, addr.trim().parse().ok()?))
        })
        .collect();
    for m in members {
        if !known.iter().any(|(id, _)| *id == m.id) {
            let taken: Vec<SocketAddr> = members.iter().map(|m| m.addr).chain(known.iter().map(|(_, a)| *a)).collect();
            known.push((m.id, free_addr(&taken)?));
        }
    }
    let text: String = known.iter().map(|(id, a)| format!("{id} {a}\n")).collect();
    std::fs::write(&file, text).map_err(|e| failed(format!("cannot write {}: {e}", file.display())))?;
    Ok(known)
}

fn write_nodes(dir: &Path, members: &[Member]) -> Result<(), CliError> {
    let text: String = members.iter().map(|m| format!("{} {}\n", m.id, m.addr)).collect();
    std::fs::write(dir.join("nodes"), text).map_err(|e| failed(format!("cannot write {}/nodes: {e}", dir.display())))
}

/// A 127.0.0.1 port free for TCP (RPC) and UDP (gossip) alike, below the kernel's range
/// of ephemeral ports: a node keeps its port across restarts, and a port in that range may
/// be taken meanwhile by some program's outgoing connection (then the node could not come
/// back). Falls back to any free port. Never one of `taken`: the ports already given to this
/// cluster's nodes are free until the nodes start, and handing one out twice would have the
/// second node fail to listen.
fn free_addr(taken: &[SocketAddr]) -> Result<SocketAddr, CliError> {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let both_free = |addr: SocketAddr| {
        let tcp = std::net::TcpListener::bind(addr).ok()?;
        let addr = tcp.local_addr().ok()?;
        let udp = std::net::UdpSocket::bind(addr).ok()?;
        drop((tcp, udp));
        (!taken.iter().any(|t| t.port() == addr.port())).then_some(addr)
    };
    if low > 11_000 {
        // Spread the tries: clusters started at the same time should not collide.
        let seed = std::collections::hash_map::RandomState::new();
        for attempt in 0..200u32 {
            use std::hash::BuildHasher;
            let port = 10_000 + (seed.hash_one(attempt) % u64::from(low - 10_000)) as u16;
            if let Some(addr) = both_free(SocketAddr::from(([127, 0, 0, 1], port))) {
                return Ok(addr);
            }
        }
    }
    for _ in 0..50 {
        if let Some(addr) = both_free(SocketAddr::from(([127, 0, 0, 1], 0))) {
            return Ok(addr);
        }
    }
    Err(failed("found no port free for both TCP and UDP on 127.0.0.1"))
}

fn pid_file(dir: &Path, id: u16) -> PathBuf {
    dir.join(format!("{id}.pid"))
}

fn running_pid(dir: &Path, id: u16) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pid_file(dir, id)).ok()?.trim().parse().ok()?;
    running(pid).then_some(pid)
}

/// Whether `pid` is a running process. A process that has exited but was not yet reaped
/// (a zombie: its parent, this command, is gone, and a container's init may never reap it)
/// counts as stopped: no crate reports a process's state, so its `/proc` entry says.
fn running(pid: u32) -> bool {
    let Some(p) = rustix::process::Pid::from_raw(pid as i32) else { return false };
    if rustix::process::test_kill_process(p).is_err() {
        return false;
    }
    // The state is the first field after the parenthesised command name.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_or(true, |stat| stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')))
}

/// Sends `sig` to `pid`; true if it was delivered.
fn signal(pid: u32, sig: rustix::process::Signal) -> bool {
    rustix::process::Pid::from_raw(pid as i32).is_some_and(|p| rustix::process::kill_process(p, sig).is_ok())
}

fn objectd_binary(explicit: Option<PathBuf>) -> Result<PathBuf, CliError> {
    if let Some(p) = explicit {
        return Ok(p);
    }
    let exe = std::env::current_exe().map_err(|e| failed(e.to_string()))?;
    let beside = exe.with_file_name("objectd");
    if beside.exists() {
        Ok(beside)
    } else {
        Ok(PathBuf::from("objectd")) // from PATH
    }
}

/// `clouds cluster init DIR --nodes N`
pub fn init(dir: &Path, nodes: u16, json: bool) -> Result<(), CliError> {
    let ids: Vec<NodeId> = (1..=nodes).map(NodeId).collect();
    let authority = protocol::identity::init(dir, &ids).map_err(failed)?;
    if json {
        let nodes: Vec<_> =
            ids.iter().map(|id| serde_json::json!({ "id": id.0, "identity": Identity::dir_in(dir, *id) })).collect();
        crate::commands::print_json(&serde_json::json!({ "authority": authority.to_string(), "nodes": nodes }));
        return Ok(());
    }
    println!("authority {authority}");
    for id in ids {
        println!("{} {}", id.0, Identity::dir_in(dir, id).display());
    }
    Ok(())
}

/// What `cluster up` is waiting for, said as it goes: a spinner on a terminal; elsewhere (a
/// log, CI) a line when a wait has lasted `QUIET_FOR` without news, so it is never silent
/// for long.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    said: Instant,
}

const QUIET_FOR: Duration = Duration::from_secs(5);

impl Progress {
    fn new() -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("a template"));
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        Progress { bar, said: Instant::now() }
    }

    fn say(&mut self, message: String) {
        match &self.bar {
            Some(bar) => bar.set_message(message),
            None if self.said.elapsed() >= QUIET_FOR => {
                eprintln!("cluster up: {message}");
                self.said = Instant::now();
            }
            None => {}
        }
    }

    fn done(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

/// What every node of a cluster is started with.
struct Launch<'a> {
    bin: &'a Path,
    dir: &'a Path,
    seeds: String,
    root: u16,
    admin: &'a str,
    workers: usize,
}

fn spawn(launch: &Launch<'_>, m: &Member, http: SocketAddr) -> Result<Child, CliError> {
    let Launch { bin, dir, seeds, root, admin, workers } = launch;
    let log_path = dir.join(format!("node-{}.log", m.id));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| failed(format!("cannot open {}: {e}", log_path.display())))?;
    let err_log = log.try_clone().map_err(|e| failed(e.to_string()))?;
    let child = Command::new(bin)
        .args(["--id", &m.id.to_string(), "--listen", &m.addr.to_string(), "--data"])
        .arg(dir.join(format!("node-{}", m.id)))
        .args(["--seeds", seeds.as_str(), "--root-node", &root.to_string(), "--identity"])
        .arg(Identity::dir_in(dir, NodeId(m.id)))
        .args(["--admin", admin])
        .args(["--http", &http.to_string()])
        .args(["--workers", &workers.to_string()])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err_log)
        // Its own process group: Ctrl-C in this terminal does not stop the cluster.
        .process_group(0)
        .spawn()
        .map_err(|e| failed(format!("cannot start {}: {e}", bin.display())))?;
    std::fs::write(pid_file(dir, m.id), child.id().to_string())
        .map_err(|e| failed(format!("cannot write {}: {e}", pid_file(dir, m.id).display())))?;
    Ok(child)
}

/// The cluster's administrator: the key in `DIR/admin.pub`, written on the first `up` with
/// the key of the wallet that ran it.
fn admin_of(dir: &Path, wallet_key: PublicKey) -> Result<String, CliError> {
    let path = dir.join("admin.pub");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let key: PublicKey =
            text.trim().parse().map_err(|e| failed(format!("{} is not a public key: {e}", path.display())))?;
        return Ok(key.to_string());
    }
    std::fs::write(&path, format!("{wallet_key}\n"))
        .map_err(|e| failed(format!("cannot write {}: {e}", path.display())))?;
    Ok(wallet_key.to_string())
}

/// How many threads each of `nodes` nodes on this machine runs: the cores split among them,
/// at least one each. A node runs one per core by default, which serves a machine of its
/// own; several on one machine, each with a thread per core, contend for the cores (on 2
/// cores, 3 nodes served a null read at 256 callers at 146k/s that way, at 330k/s with one
/// thread each: README, "Worker threads, ring's AES-GCM, smaller futures").
pub fn workers_each(nodes: u16, cores: usize) -> usize {
    (cores / nodes.max(1) as usize).max(1)
}

pub async fn up(
    nodes: u16,
    dir: &Path,
    objectd: Option<PathBuf>,
    workers: Option<usize>,
    wallet: &client::Wallet,
    json: bool,
) -> Result<(), CliError> {
    let wallet_key = wallet.public();
    if nodes == 0 {
        return Err(CliError::Usage("--nodes must be at least 1".into()));
    }
    if workers == Some(0) {
        return Err(CliError::Usage(
            "--workers must be at least 1 (leave it out to split the cores among the nodes)".into(),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| failed(format!("cannot create {}: {e}", dir.display())))?;
    let mut members = read_nodes(dir)?;
    while members.len() < nodes as usize {
        let id = members.iter().map(|m| m.id).max().unwrap_or(0) + 1;
        let taken: Vec<SocketAddr> = members.iter().map(|m| m.addr).collect();
        members.push(Member { id, addr: free_addr(&taken)? });
    }
    write_nodes(dir, &members)?;
    let ids: Vec<NodeId> = members.iter().map(|m| NodeId(m.id)).collect();
    let authority = protocol::identity::init(dir, &ids).map_err(failed)?;
    // Whoever runs the cluster trusts it: their wallet reaches its nodes from now on.
    wallet.trust_authority(&authority).map_err(failed)?;
    let admin = admin_of(dir, wallet_key)?;
    let bin = objectd_binary(objectd)?;
    let seeds: Vec<String> = members.iter().map(|m| m.addr.to_string()).collect();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = workers.unwrap_or_else(|| workers_each(members.len() as u16, cores));
    let launch = Launch { bin: &bin, dir, seeds: seeds.join(","), root: members[0].id, admin: &admin, workers };
    let http = http_addrs(dir, &members)?;
    let http_of = |id: u16| http.iter().find(|(i, _)| *i == id).map(|(_, a)| *a).expect("every member has one");
    let mut started: Vec<(u16, Child)> = Vec::new();
    for m in &members {
        match running_pid(dir, m.id) {
            Some(pid) => eprintln!("node-{} is already running (pid {pid})", m.id),
            None => started.push((m.id, spawn(&launch, m, http_of(m.id))?)),
        }
    }
    let mut progress = Progress::new();
    let ready = wait_ready(dir, &members, &mut started, &mut progress).await;
    progress.done();
    ready?;
    if json {
        let rows: Vec<_> = members
            .iter()
            .map(|m| serde_json::json!({ "id": m.id, "address": m.addr, "http": format!("http://{}/", http_of(m.id)) }))
            .collect();
        println!("{}", serde_json::Value::Array(rows));
    } else {
        // Stdout stays `ID ADDRESS` lines (what DIR/nodes holds), for scripts.
        eprintln!(
            "dashboard: http://{}/ (any node's gateway serves it; all are in {}/http)",
            http_of(launch.root),
            dir.display()
        );
        let mut out = std::io::stdout().lock();
        for m in &members {
            let _ = writeln!(out, "{} {}", m.id, m.addr);
        }
    }
    Ok(())
}

/// Waits until every node answers and every node sees all of them alive.
async fn wait_ready(
    dir: &Path,
    members: &[Member],
    started: &mut [(u16, Child)],
    progress: &mut Progress,
) -> Result<(), CliError> {
    let deadline = Instant::now() + READY_WITHIN;
    for m in members {
        loop {
            progress.say(format!("waiting for node-{} at {} to answer", m.id, m.addr));
            if let Some((_, child)) = started.iter_mut().find(|(id, _)| *id == m.id) {
                if let Ok(Some(status)) = child.try_wait() {
                    let log = std::fs::read_to_string(dir.join(format!("node-{}.log", m.id))).unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(5).collect();
                    return Err(failed(format!(
                        "node-{} exited ({status}) while starting; the end of its log:\n{}",
                        m.id,
                        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                    )));
                }
            }
            if let Ok(client) = Client::connect_within(m.addr, Duration::from_secs(1)).await {
                if client.status().await.is_ok() {
                    break;
                }
            }
            if Instant::now() > deadline {
                return Err(failed(format!(
                    "node-{} at {} did not become ready within {READY_WITHIN:?}",
                    m.id, m.addr
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let mut clients = Vec::new();
    for m in members {
        clients.push(Client::connect(m.addr).await?);
    }
    loop {
        let mut seeing_all = 0;
        for client in &clients {
            let peers = client.nodes().await?;
            let all = members.iter().all(|m| peers.iter().any(|p| p.id.0 == m.id && p.state == Liveness::Alive));
            seeing_all += usize::from(all);
        }
        if seeing_all == clients.len() {
            return Ok(());
        }
        progress.say(format!("waiting for the nodes to see each other ({seeing_all} of {} see all)", clients.len()));
        if Instant::now() > deadline {
            return Err(failed(format!("the nodes did not all see each other within {READY_WITHIN:?}")));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn down(dir: &Path, json: bool) -> Result<(), CliError> {
    let members = read_nodes(dir)?;
    if members.is_empty() {
        return Err(failed(format!("{} holds no cluster (no `nodes` file)", dir.display())));
    }
    let mut rows = Vec::new();
    let mut say = |id: u16, outcome: &str, text: String| {
        if json {
            rows.push(serde_json::json!({ "id": id, "outcome": outcome }));
        } else {
            println!("{text}");
        }
    };
    for m in &members {
        let Some(pid) = running_pid(dir, m.id) else {
            say(m.id, "not-running", format!("node-{} was not running", m.id));
            continue;
        };
        signal(pid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + STOP_WITHIN;
        while running(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if running(pid) {
            signal(pid, rustix::process::Signal::KILL);
            say(m.id, "killed", format!("node-{} did not stop within {STOP_WITHIN:?}; killed", m.id));
        } else {
            say(m.id, "stopped", format!("node-{} stopped", m.id));
        }
        let _ = std::fs::remove_file(pid_file(dir, m.id));
    }
    if json {
        crate::commands::print_json(&rows);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cores_are_split_among_the_nodes_at_least_one_each() {
        assert_eq!(workers_each(3, 2), 1);
        assert_eq!(workers_each(1, 2), 2);
        assert_eq!(workers_each(3, 16), 5);
        assert_eq!(workers_each(4, 8), 2);
        assert_eq!(workers_each(0, 8), 8, "no nodes is refused before; never a division by zero");
    }

    /// Without `taken`, 400 picks among the ~22 000 ports below the ephemeral range repeat
    /// one with a probability of about 97% (the birthday bound).
    #[test]
    fn the_ports_given_to_one_cluster_are_all_different() {
        let mut taken: Vec<SocketAddr> = Vec::new();
        for _ in 0..400 {
            let Ok(addr) = free_addr(&taken) else { panic!("no free port after {} picks", taken.len()) };
            assert!(!taken.iter().any(|t| t.port() == addr.port()), "{addr} was handed out twice");
            taken.push(addr);
        }
    }
}
