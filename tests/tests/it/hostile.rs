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
const SENT: usize = 7 * 1024 * 1024;

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
            let mut s = TcpStream::connect(node.addr).await.unwrap();
            handshake::connect(&mut s, Credentials::User(&key), None).await.unwrap();
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
        let mut s = TcpStream::connect(node.addr).await.unwrap();
        handshake::connect(&mut s, Credentials::Anonymous, None).await.unwrap();
        s.write_all(&(1u32 << 20).to_be_bytes()).await.unwrap();
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await.expect("closed, not hung");
        assert!(matches!(read, Ok(0) | Err(_)), "the connection is closed: {read:?}");
    });
}
