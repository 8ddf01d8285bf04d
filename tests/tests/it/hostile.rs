//! A hostile peer against a real node: connections that send most of a big frame and then
//! wait cost the node a bounded amount of memory, and it keeps serving; an unauthenticated
//! peer's big frame is refused before its body is read.

use capability::KeyPair;
use protocol::handshake::{self, Credentials};
use std::time::Duration;
use tests::Node;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HOLDERS: usize = 48;
const FRAME: usize = 8 * 1024 * 1024 - 1024;
const SENT: usize = 2 * 1024 * 1024;

#[test]
fn held_frames_cost_bounded_memory_and_the_node_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(1, dir.path());
    node.clouds(&["create", "Counter", "--name", "c"]).ok();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let before = node.resident_bytes();
    let held = rt.block_on(async {
        let mut held = Vec::new();
        for _ in 0..HOLDERS {
            let key = KeyPair::generate();
            let s = TcpStream::connect(node.addr).await.unwrap();
            let mut s = protocol::secure::connect(s).await.unwrap();
            let binding = s.binding().to_vec();
            handshake::connect(&mut s, Credentials::User(&key), None, &binding).await.unwrap();
            s.write_all(&(FRAME as u32).to_be_bytes()).await.unwrap();
            let chunk = vec![0x5au8; SENT];
            // The node stops reading once its budget is held: the write may stall.
            let _ = tokio::time::timeout(Duration::from_millis(50), s.write_all(&chunk)).await;
            held.push(s);
        }
        held
    });
    std::thread::sleep(Duration::from_millis(500));
    let grown = node.resident_bytes().saturating_sub(before);
    assert!(grown < 160 << 20, "the node grew by {} MiB holding {HOLDERS} partial frames", grown >> 20);
    // It keeps serving while they hold on.
    node.clouds(&["invoke", "c.incr", "1"]).ok();
    assert_eq!(node.clouds(&["invoke", "c.get"]).json(), serde_json::json!(1));
    drop(held);

    // A peer that proved no key may send small frames only: a big one closes it at once.
    rt.block_on(async {
        let s = TcpStream::connect(node.addr).await.unwrap();
        let mut s = protocol::secure::connect(s).await.unwrap();
        let binding = s.binding().to_vec();
        handshake::connect(&mut s, Credentials::Anonymous, None, &binding).await.unwrap();
        s.write_all(&(1u32 << 20).to_be_bytes()).await.unwrap();
        s.flush().await.unwrap();
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await.expect("closed, not hung");
        assert!(matches!(read, Ok(0) | Err(_)), "the connection is closed: {read:?}");
    });
}

/// Datagrams on the gossip port from a process with no key (random bytes, bytes that look
/// like Clouds gossip, a forged certificate's worth) change nothing: every node still sees
/// every other alive, nothing panics, and the drops are logged only now and then.
#[test]
fn unsigned_gossip_changes_nothing() {
    let c = tests::LocalCluster::up(3);
    let target = c.addr(1);
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for i in 0..3_000u32 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = 1 + (x % 1400) as usize;
        let mut datagram: Vec<u8> = (0..len).map(|k| (x >> (k % 8 * 8)) as u8 ^ k as u8).collect();
        if i % 3 == 0 {
            // Starts like a signed datagram, with a made-up certificate and signature.
            datagram.splice(0..0, b"CLG1\x00\x60".iter().copied());
        }
        let _ = socket.send_to(&datagram, target);
    }
    std::thread::sleep(Duration::from_secs(2));
    for node in [1, 2, 3] {
        let nodes = c.clouds(node, &["--json", "nodes"]).json();
        let alive = nodes.as_array().unwrap().iter().filter(|n| n["state"] == serde_json::json!("alive")).count();
        assert_eq!(alive, 3, "node {node} sees: {nodes}");
    }
    assert!(c.clouds(2, &["status"]).code == 0);
    let warnings = c.log_count(1, "dropped a gossip datagram");
    assert!((1..=3).contains(&warnings), "drops are logged, rate-limited: {warnings} lines");
    assert_eq!(c.log_count(1, "panicked"), 0);
}

/// A node stopped with SIGSTOP: a call through a healthy node to its object returns by the
/// deadline naming the stopped node, a call to it directly returns by the deadline too,
/// and once it resumes, calls through it to other nodes work at once.
#[test]
fn a_stopped_node_costs_callers_no_more_than_their_deadline() {
    let c = tests::LocalCluster::up(3);
    c.clouds(1, &["create", "Counter", "--name", "on2", "--on", "2"]).ok();
    c.clouds(1, &["create", "Counter", "--name", "on3", "--on", "3"]).ok();
    // Resolve the names once while every node answers (the root is on node 1).
    c.clouds(1, &["invoke", "on2.get"]).ok();
    let id2 = c.clouds(1, &["--json", "describe", "on2"]).json()["id"].as_str().unwrap().to_string();
    let pid = std::fs::read_to_string(c.dir.path().join("2.pid")).unwrap();
    let signal =
        |sig: &str| assert!(std::process::Command::new("kill").args([sig, pid.trim()]).status().unwrap().success());
    signal("-STOP");
    let timed = |node: u16, args: &[&str]| {
        let started = std::time::Instant::now();
        let run = c.clouds(node, args);
        (run, started.elapsed())
    };
    // Before, both took the deadline plus the transport's 2 s margin (3 s here) and named the
    // healthy node; the bounds leave time for starting `clouds` on a busy machine.
    let (run, took) = timed(1, &["--deadline", "1000", "invoke", &format!("{id2}.get")]);
    assert!(took < Duration::from_millis(2_900), "through a healthy node: {took:?} {run:?}");
    assert!(run.code == 6 && run.stderr.contains("node-2"), "names the stopped node: {run:?}");
    let (run, took) = timed(2, &["--deadline", "1000", "status"]);
    assert!(took < Duration::from_millis(2_900), "to the stopped node: {took:?} {run:?}");
    assert_eq!(run.code, 6, "{run:?}");
    // Stopped long enough for the others to count it dead, and it them once it resumes.
    std::thread::sleep(Duration::from_secs(4));
    signal("-CONT");
    let (run, took) = timed(2, &["--deadline", "5000", "invoke", "on3.get"]);
    assert_eq!(run.code, 0, "through the resumed node, at once: {run:?} after {took:?}");
}

/// A recording proxy between `clouds` and a node: none of the names, arguments, results,
/// keys or capabilities that cross it appear in the bytes it saw.
#[test]
fn what_crosses_the_network_is_encrypted() {
    use std::io::{Read, Write};
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(1, dir.path());
    let seen = Arc::new(Mutex::new(Vec::<u8>::new()));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = listener.local_addr().unwrap();
    let (target, recorded) = (node.addr, seen.clone());
    std::thread::spawn(move || {
        for client in listener.incoming().take(64) {
            let Ok(client) = client else { return };
            let Ok(server) = std::net::TcpStream::connect(target) else { return };
            for (mut from, mut to) in [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)] {
                let recorded = recorded.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 * 1024];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 || to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        recorded.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                    let _ = to.shutdown(std::net::Shutdown::Both);
                });
            }
        }
    });
    let via = |args: &[&str]| tests::clouds_at(&proxy.to_string(), &node.wallet, args);
    via(&["create", "Counter", "--name", "name-that-must-not-leak"]).ok();
    assert_eq!(via(&["invoke", "name-that-must-not-leak.incr", "987654321"]).json(), serde_json::json!(987654321));
    std::thread::sleep(Duration::from_millis(200));
    let seen = seen.lock().unwrap().clone();
    assert!(seen.len() > 1000, "the proxy saw the traffic ({} bytes)", seen.len());
    let key = tests::wallet_key(&node.wallet);
    let key_bytes: Vec<u8> =
        (0..key.len() / 2).map(|i| u8::from_str_radix(&key[2 * i..2 * i + 2], 16).unwrap()).collect();
    for (what, needle) in [
        ("the name", b"name-that-must-not-leak".to_vec()),
        ("the argument", b"987654321".to_vec()),
        ("the result", 987654321i64.to_le_bytes().to_vec()),
        ("the user's key", key_bytes),
        ("the class", b"Counter".to_vec()),
    ] {
        assert!(!seen.windows(needle.len()).any(|w| w == needle.as_slice()), "{what} crossed in clear");
    }
}

/// Right after a killed node is restarted, calls through another node to its objects go to
/// the new incarnation: none is sent on a connection to the one that died.
#[test]
fn calls_right_after_a_restart_reach_the_new_incarnation() {
    let mut c = tests::LocalCluster::up(3);
    let ids: Vec<String> = (0..8)
        .map(|i| {
            c.clouds(1, &["create", "Counter", "--on", "2", "--pinned", "--name", &format!("r{i}")]).ok().to_string()
        })
        .collect();
    // Node 1 has pooled connections to node 2.
    for id in &ids {
        c.clouds(1, &["invoke", &format!("{id}.incr"), "1"]).ok();
    }
    c.kill9(2);
    c.start(3);
    let mut failed = Vec::new();
    for round in 0..3 {
        for id in &ids {
            let run = c.clouds(1, &["invoke", &format!("{id}.get")]);
            if run.code != 0 {
                failed.push(format!("round {round}: {}", run.stderr.trim()));
            }
        }
    }
    assert!(failed.is_empty(), "{} of 24 first calls failed: {failed:#?}", failed.len());
}

/// A node serves at most `max_requests` callers' requests at once and answers the rest
/// `Overloaded` at once, rather than queueing them without bound; it serves again as soon
/// as they end. A connection with nothing in flight for `idle_timeout_ms` is closed, and a
/// client whose connection was closed opens a new one for its next call.
#[test]
fn a_full_node_answers_overloaded_and_idle_connections_close() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_testnode(1, dir.path(), &["--max-requests", "4", "--idle-timeout-ms", "1000"]);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let client = tests::client_with(node.addr, &node.wallet).await;
        let relay = client.create("Relay", protocol::InitialState::Default).await.unwrap();
        let calls = (0..16).map(|_| {
            let (client, relay) = (&client, &relay);
            async move {
                client
                    .invoke_json(relay, "pass_then_sleep", &[serde_json::json!([]), serde_json::json!(300)], None)
                    .await
            }
        });
        let answers = futures::future::join_all(calls).await;
        let served = answers.iter().filter(|a| a.is_ok()).count();
        let overloaded = answers.iter().filter(|a| matches!(a, Err(clouds::InvokeError::Overloaded { .. }))).count();
        assert_eq!(served + overloaded, 16, "served or refused at once, nothing else: {answers:?}");
        assert!((1..=4).contains(&served) && overloaded >= 12, "{served} served, {overloaded} refused");
        let refusal = answers.iter().find_map(|a| a.as_ref().err()).unwrap().to_string();
        assert!(refusal.contains("node-1 is overloaded") && refusal.contains("try again"), "{refusal}");
        client.invoke_json(&relay, "visits", &[], None).await.expect("served again once they ended");

        let idle =
            protocol::Connection::open(node.addr, Duration::from_secs(5), Credentials::Anonymous, None).await.unwrap();
        for _ in 0..60 {
            if idle.is_closed() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(idle.is_closed(), "the node closed a connection idle for its timeout");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        client.invoke_json(&relay, "visits", &[], None).await.expect("a new connection for the next call");
    });
}
