//! Helpers for the integration tests: start `objectd` processes on 127.0.0.1 and run the
//! `clouds` binary against them; or run a cluster in one process ([`network`]), with a
//! router that cuts, drops and delays messages and crashes nodes. Every wait here is
//! bounded.
//!
//! Each node or cluster comes with a wallet (the administrator's: nodes start with
//! `--admin` set to its key); `clouds` commands run with it through `CLOUDS_WALLET`, and
//! `client()` opens it for library calls. `clouds_as` runs a command with another wallet.
//!
//! The binaries are the ones cargo built for this run (`target/<profile>/`): the `objectd`
//! package has integration tests of its own, so `cargo test --workspace` and
//! `cargo nextest run --workspace` build its binaries before any test runs.

pub mod network;
pub mod relay;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long a node may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The path of a binary of this workspace, built for the running profile.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test binary>  ->  target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace binaries (cargo build --workspace --bins)",
        path.display()
    );
    path
}

/// A running `objectd`.
pub struct Node {
    child: Child,
    pub id: u16,
    pub addr: SocketAddr,
    pub data: PathBuf,
    /// The administrator's wallet: next to `data`, so a restart on the same data keeps it.
    pub wallet: PathBuf,
}

/// The wallet kept next to a node's data directory.
fn wallet_beside(data: &Path) -> PathBuf {
    let mut name = data.file_name().expect("data directory name").to_os_string();
    name.push(".wallet");
    data.with_file_name(name)
}

/// The public key of the wallet in `dir` (made if missing).
pub fn wallet_key(dir: &Path) -> String {
    client::Wallet::open(dir).expect("open wallet").public().to_string()
}

/// A client acting for the wallet in `dir`.
pub async fn client_with(addr: SocketAddr, wallet: &Path) -> client::Client {
    let wallet = std::sync::Arc::new(client::Wallet::open(wallet).expect("open wallet"));
    client::Client::connect_with(addr, client::CONNECT_TIMEOUT, wallet).await.expect("connect")
}

impl Node {
    /// Starts a node with its store in `data`, on a port the OS picks.
    pub fn start(id: u16, data: &Path) -> Node {
        Node::start_with(id, data, &[])
    }

    /// `start` with more `objectd` flags.
    pub fn start_with(id: u16, data: &Path, flags: &[&str]) -> Node {
        let wallet = wallet_beside(data);
        let admin = wallet_key(&wallet);
        Node::spawn("objectd", id, data, wallet, &[&["--admin", &admin], flags].concat(), &[])
    }

    /// `start_with`, running `testnode` (the standard classes and `Relay`).
    pub fn start_testnode(id: u16, data: &Path, flags: &[&str]) -> Node {
        Node::start_testnode_env(id, data, flags, &[])
    }

    /// `start_testnode` with environment variables for it (a fault to inject).
    pub fn start_testnode_env(id: u16, data: &Path, flags: &[&str], env: &[(&str, &str)]) -> Node {
        let wallet = wallet_beside(data);
        let admin = wallet_key(&wallet);
        Node::spawn("testnode", id, data, wallet, &[&["--admin", &admin], flags].concat(), env)
    }

    /// Starts a node the obvious way, without `--admin`, as the user whose wallet is
    /// beside `data` (`CLOUDS_WALLET`): that wallet's key becomes the administrator.
    pub fn start_as_user(id: u16, data: &Path) -> Node {
        Node::spawn("objectd", id, data, wallet_beside(data), &[], &[])
    }

    fn spawn(binary: &str, id: u16, data: &Path, wallet: PathBuf, flags: &[&str], env: &[(&str, &str)]) -> Node {
        let mut child = Command::new(bin(binary))
            .args(["--id", &id.to_string(), "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(flags)
            .env("CLOUDS_WALLET", &wallet)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn objectd");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!("objectd {id} did not start within {START_TIMEOUT:?}");
            }
        };
        let addr = line
            .trim()
            .rsplit(' ')
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("objectd printed `{line}`, expected `objectd node-N listening on ADDR`"));
        Node { child, id, addr, data: data.to_path_buf(), wallet }
    }

    /// The node's resident memory now, in bytes (from `/proc`).
    pub fn resident_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next().and_then(|kb| kb.parse::<u64>().ok()))
            .map_or(0, |kb| kb * 1024)
    }

    /// A library client acting for the administrator's wallet.
    pub async fn client(&self) -> client::Client {
        client_with(self.addr, &self.wallet).await
    }

    /// How the process ended, if it ends within `within` (waited for in 50 ms steps).
    pub fn exited_within(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let steps = (within.as_millis() / 50).max(1);
        for _ in 0..steps {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// kill -9: no shutdown, no final flush.
    pub fn kill9(mut self) -> PathBuf {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.data.clone()
    }

    /// SIGTERM, then wait (bounded) for a clean exit.
    pub fn terminate(mut self) -> PathBuf {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        for _ in 0..300 {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "objectd exited with {status} after SIGTERM");
                return self.data.clone();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("objectd did not stop within 15 s of SIGTERM");
    }

    /// Runs `clouds --node <this node> ARGS` with the administrator's wallet.
    pub fn clouds(&self, args: &[&str]) -> Run {
        clouds_at(&self.addr.to_string(), &self.wallet, args)
    }

    /// Runs `clouds --node <this node> ARGS` with the wallet in `wallet`.
    pub fn clouds_as(&self, wallet: &Path, args: &[&str]) -> Run {
        clouds_at(&self.addr.to_string(), wallet, args)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A local cluster started with `clouds cluster up` (nodes run `testnode`); stopped with
/// `clouds cluster down` when dropped.
pub struct LocalCluster {
    pub dir: tempfile::TempDir,
    /// `(id, address)` per node, from `DIR/nodes`.
    pub nodes: Vec<(u16, SocketAddr)>,
}

impl LocalCluster {
    pub fn up(n: u16) -> LocalCluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cluster = LocalCluster { dir, nodes: Vec::new() };
        cluster.start(n);
        cluster
    }

    /// Runs `clouds cluster up` (again): starts whichever nodes are not running.
    pub fn start(&mut self, n: u16) {
        self.start_env(n, &[]);
    }

    /// `start`, with environment variables for the nodes it starts (for example
    /// `CLOUDS_FAULT`, which arms a fault point in a `testnode`).
    pub fn start_env(&mut self, n: u16, env: &[(&str, &str)]) {
        let out = Command::new(bin("clouds"))
            .args(["cluster", "up", "--nodes", &n.to_string(), "--dir"])
            .arg(self.dir.path())
            .arg("--objectd")
            .arg(bin("testnode"))
            .env("CLOUDS_WALLET", self.wallet())
            .envs(env.iter().copied())
            .output()
            .expect("run clouds cluster up");
        assert!(out.status.success(), "cluster up failed: {}", String::from_utf8_lossy(&out.stderr));
        let printed = String::from_utf8_lossy(&out.stdout).into_owned();
        let file = std::fs::read_to_string(self.dir.path().join("nodes")).expect("DIR/nodes");
        assert_eq!(printed, file, "cluster up prints what it writes to DIR/nodes");
        self.nodes = file
            .lines()
            .map(|l| {
                let (id, addr) = l.split_once(' ').expect("ID ADDRESS");
                (id.parse().expect("id"), addr.parse().expect("address"))
            })
            .collect();
    }

    pub fn addr(&self, id: u16) -> SocketAddr {
        self.nodes.iter().find(|(i, _)| *i == id).expect("node in the cluster").1
    }

    /// The administrator's wallet (the one `cluster up` ran with).
    pub fn wallet(&self) -> PathBuf {
        self.dir.path().join("wallet")
    }

    /// `clouds --node <node id> ARGS`, with the administrator's wallet.
    pub fn clouds(&self, id: u16, args: &[&str]) -> Run {
        clouds_at(&self.addr(id).to_string(), &self.wallet(), args)
    }

    /// A library client at node `id`, acting for the administrator's wallet.
    pub async fn client(&self, id: u16) -> client::Client {
        client_with(self.addr(id), &self.wallet()).await
    }

    /// `clouds --node <node id> ARGS` started in the background, output discarded (for a
    /// command that a test's kill -9 cuts short).
    pub fn clouds_in_background(&self, id: u16, args: &[&str]) -> Child {
        Command::new(bin("clouds"))
            .arg("--node")
            .arg(self.addr(id).to_string())
            .args(args)
            .env("CLOUDS_WALLET", self.wallet())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run clouds")
    }

    /// How many lines of node `id`'s log (kept across restarts) contain `needle`.
    pub fn log_count(&self, id: u16, needle: &str) -> usize {
        let path = self.dir.path().join(format!("node-{id}.log"));
        std::fs::read_to_string(path).unwrap_or_default().lines().filter(|l| l.contains(needle)).count()
    }

    /// Waits (at most 10 s) until more than `seen` lines of node `id`'s log contain `needle`.
    pub fn wait_for_log(&self, id: u16, needle: &str, seen: usize) {
        for _ in 0..200 {
            if self.log_count(id, needle) > seen {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("node {id} did not log `{needle}` within 10 s");
    }

    /// kill -9 one node, by the pid `cluster up` recorded.
    pub fn kill9(&self, id: u16) {
        let pid = std::fs::read_to_string(self.dir.path().join(format!("{id}.pid"))).expect("pid file");
        let ok = Command::new("kill").args(["-9", pid.trim()]).status().expect("kill").success();
        assert!(ok, "kill -9 {pid}");
        // Bounded wait until the process is gone.
        for _ in 0..100 {
            let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
            // Gone, or exited and waiting to be reaped (state Z).
            let dead = stat.rsplit_once(')').is_none_or(|(_, rest)| rest.trim_start().starts_with('Z'));
            // A zombie leader may still have threads exiting, and with them its sockets:
            // dead means its port is free again too.
            if dead && std::net::TcpListener::bind(self.addr(id)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("node {id} did not die");
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let _ = Command::new(bin("clouds")).args(["cluster", "down", "--dir"]).arg(self.dir.path()).output();
    }
}

/// The outcome of one `clouds` command.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts success; returns stdout without the final newline.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "clouds failed: {}", self.stderr);
        self.stdout.trim_end()
    }

    /// The result, parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }

    /// Asserts failure with `code` and a message containing `needle`.
    pub fn fails(&self, code: i32, needle: &str) {
        assert_eq!(self.code, code, "expected exit {code}; stdout: {} stderr: {}", self.stdout, self.stderr);
        assert!(self.stderr.contains(needle), "expected `{needle}` in: {}", self.stderr);
        assert_eq!(self.stderr.lines().count(), 1, "errors are one line: {}", self.stderr);
    }
}

/// Runs `clouds --node ADDR ARGS` with the wallet in `wallet`.
pub fn clouds_at(addr: &str, wallet: &Path, args: &[&str]) -> Run {
    let out: Output = Command::new(bin("clouds"))
        .arg("--node")
        .arg(addr)
        .args(args)
        .env_remove("CLOUDS_NODE")
        .env("CLOUDS_WALLET", wallet)
        .output()
        .expect("run clouds");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
