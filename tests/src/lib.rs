//! Helpers for the integration tests: start `objectd` processes on 127.0.0.1 and run the
//! `clouds` binary against them. Every wait here is bounded.
//!
//! The binaries are the ones cargo built for this run (`target/<profile>/`): the `objectd`
//! package has integration tests of its own, so `cargo test --workspace` and
//! `cargo nextest run --workspace` build its binaries before any test runs.

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
}

impl Node {
    /// Starts a node with its store in `data`, on a port the OS picks.
    pub fn start(id: u16, data: &Path) -> Node {
        Node::start_with(id, data, &[])
    }

    /// `start` with more `objectd` flags.
    pub fn start_with(id: u16, data: &Path, flags: &[&str]) -> Node {
        let mut child = Command::new(bin("objectd"))
            .args(["--id", &id.to_string(), "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(flags)
            .env("RUST_LOG", "warn")
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
        Node { child, id, addr, data: data.to_path_buf() }
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

    /// Runs `clouds --node <this node> ARGS`.
    pub fn clouds(&self, args: &[&str]) -> Run {
        clouds_at(&self.addr.to_string(), args)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

/// Runs `clouds --node ADDR ARGS`.
pub fn clouds_at(addr: &str, args: &[&str]) -> Run {
    let out: Output = Command::new(bin("clouds"))
        .arg("--node")
        .arg(addr)
        .args(args)
        .env_remove("CLOUDS_NODE")
        .output()
        .expect("run clouds");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
