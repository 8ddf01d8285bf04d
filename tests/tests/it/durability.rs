use client::Client;
use clouds::{CallId, RawRef};
use serde_json::json;
use std::time::Duration;
use tests::Node;

async fn log_entries(client: &Client, log: &RawRef) -> Vec<serde_json::Value> {
    let read = client.invoke_json(log, "read", &[json!(0), json!(10_000)], None).await.unwrap();
    read.as_array().unwrap().clone()
}

/// With `--durability buffered` replies do not wait for a flush; a clean stop (SIGTERM)
/// still flushes everything before the node exits.
#[test]
fn buffered_writes_survive_a_clean_stop() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_with(1, dir.path(), &["--durability", "buffered"]);
    assert_eq!(node.clouds(&["--json", "status"]).json()["durability"], json!("buffered"));
    node.clouds(&["create", "Counter", "--name", "c"]).ok();
    for _ in 0..20 {
        node.clouds(&["invoke", "c.incr", "1"]).ok();
    }
    let node = Node::start(1, &node.terminate());
    assert_eq!(node.clouds(&["invoke", "c.get"]).json(), json!(20));
    assert_eq!(node.clouds(&["--json", "status"]).json()["durability"], json!("process-crash"));
}

/// Appends 0, 1, 2, ... to a Log, each with a call id, and kills the node with -9 in the
/// middle of the stream. After a restart the log holds every acknowledged entry in order,
/// plus at most the one write in flight; retrying that write with its call id settles it
/// exactly once.
#[test]
fn kill_9_during_writes_loses_no_acknowledged_write() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(1, dir.path());
    let addr = node.addr;
    let (log, acked) = rt.block_on(async {
        let client = Client::connect(addr).await.unwrap().with_deadline(Duration::from_secs(5));
        let log = client.create("Log", protocol::wire::InitialState::Default).await.unwrap();
        let writing = log.clone();
        let writer = tokio::spawn(async move {
            let mut acked = 0u64;
            for i in 0..100_000u64 {
                let call = Some(CallId(format!("append-{i}")));
                match client.invoke_json(&writing, "append", &[json!(i)], call).await {
                    Ok(index) => {
                        assert_eq!(index, json!(i));
                        acked = i + 1;
                    }
                    Err(_) => break,
                }
            }
            acked
        });
        // Let a few hundred writes through, then pull the plug.
        tokio::time::sleep(Duration::from_millis(700)).await;
        (log, writer)
    });
    let data = node.kill9();
    let acked = rt.block_on(acked).unwrap();
    assert!(acked > 10, "only {acked} writes were acknowledged before the kill");

    let node = Node::start(1, &data);
    rt.block_on(async {
        let client = Client::connect(node.addr).await.unwrap();
        let entries = log_entries(&client, &log).await;
        let n = entries.len() as u64;
        assert!(n == acked || n == acked + 1, "acknowledged {acked}, found {n} entries");
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(*e, json!(i), "entries are in order with no gap");
        }
        // Another client: the reference carries its capability.
        // The write in flight at the kill: retrying it with its call id runs it at most once.
        let retry =
            client.invoke_json(&log, "append", &[json!(acked)], Some(CallId(format!("append-{acked}")))).await.unwrap();
        assert_eq!(retry, json!(acked));
        let after = log_entries(&client, &log).await;
        assert_eq!(after.len() as u64, acked + 1);
        assert_eq!(after.last(), Some(&json!(acked)));
    });
}
