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
    assert_eq!(node.clouds(&["--json", "status"]).json()["durability"], json!("power-loss"));
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

/// Atomic transfers between six accounts on three real nodes, 8 threads at a time, each
/// transfer with a call id and tried again while a node is down; in each of three rounds
/// one node (a different one each time) is killed with -9 at a random moment and
/// restarted (the seed is printed; `CLOUDS_TEST_SEED=N` replays it).
/// After every round the total is what it was: no transfer is half done, none ran twice.
#[test]
fn atomic_transfers_conserve_money_through_kill_9_of_any_node() {
    use clouds::{InvokeError, NodeId};
    use protocol::wire::InitialState;
    use protocol::Placement;
    let mut c = tests::LocalCluster::up(3);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let accounts: Vec<RawRef> = rt.block_on(async {
        let client = c.client(1).await;
        let mut accounts = Vec::new();
        for i in 0..6u16 {
            let state = InitialState::Json(r#"{"balance": 1000}"#.into());
            accounts.push(client.create_placed("Account", state, Placement::On(NodeId(1 + i % 3))).await.unwrap());
        }
        accounts
    });
    let total = |c: &tests::LocalCluster, entry: u16| {
        rt.block_on(async {
            let client = c.client(entry).await;
            let mut sum = 0;
            for a in &accounts {
                sum += client.invoke_json(a, "balance", &[], None).await.unwrap().as_u64().unwrap();
            }
            sum
        })
    };
    let seed: u64 = std::env::var("CLOUDS_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos().into()
    });
    eprintln!("seed {seed} (CLOUDS_TEST_SEED={seed} replays the kill moments)");
    for (round, victim) in [2u16, 3, 1].into_iter().enumerate() {
        let entry = if victim == 1 { 2 } else { 1 };
        let addr = c.addr(entry);
        let wallet = c.wallet();
        let workers: Vec<_> = (0..8usize)
            .map(|w| {
                let (accounts, wallet) = (accounts.clone(), wallet.clone());
                rt.spawn(async move {
                    let client = tests::client_with(addr, &wallet).await.with_deadline(Duration::from_secs(5));
                    for t in 0..12usize {
                        let (from, to) = ((w + t) % 6, (w * 5 + t * 7 + 1) % 6);
                        if from == to {
                            continue;
                        }
                        let call = Some(CallId(format!("r{round}-w{w}-t{t}")));
                        let args = [serde_json::to_value(&accounts[to]).unwrap(), json!(1 + t % 9)];
                        for _ in 0..400 {
                            match client.invoke_json(&accounts[from], "transfer", &args, call.clone()).await {
                                Err(
                                    InvokeError::Unavailable { .. }
                                    | InvokeError::Aborted { .. }
                                    | InvokeError::Deadlock { .. }
                                    | InvokeError::DeadlineExceeded { .. },
                                ) => tokio::time::sleep(Duration::from_millis(50)).await,
                                Ok(_) => break,
                                Err(e) => panic!("transfer {t} of worker {w}: {e}"),
                            }
                        }
                    }
                })
            })
            .collect();
        // 100-900 ms into the round, from the seed.
        let moment =
            100 + (seed.wrapping_mul(6364136223846793005).wrapping_add(round as u64 * 1442695040888963407) >> 33) % 800;
        std::thread::sleep(Duration::from_millis(moment));
        c.kill9(victim);
        std::thread::sleep(Duration::from_millis(200));
        c.start(3);
        rt.block_on(async {
            for w in workers {
                w.await.expect("a worker");
            }
        });
        assert_eq!(total(&c, entry), 6000, "round {round}: node {victim} killed with -9 in the middle of transfers");
    }
}

/// Real processes, kill -9 at each step of an atomic transfer's commit (`testnode` with
/// `CLOUDS_FAULT`): the withdrawal on node 1 (the coordinator) and the deposit on node 2
/// (the participant) are both done, or both undone, once the killed node is back; the
/// accounts take transfers again.
#[test]
fn kill_9_at_every_step_of_an_atomic_commit_leaves_the_transfer_whole() {
    let mut c = tests::LocalCluster::up(3);
    let points = [
        ("participant:prepared", 2, false),
        ("coordinator:votes-asked", 1, false),
        ("coordinator:decided", 1, true),
        ("participant:applied", 2, true),
        ("coordinator:told", 1, true),
    ];
    let stopped = "stopping at an armed fault point";
    for (i, (point, armed, done)) in points.into_iter().enumerate() {
        c.kill9(armed);
        c.start_env(3, &[("CLOUDS_FAULT", point)]);
        let (a, b) = (format!("tx{i}/a"), format!("tx{i}/b"));
        c.clouds(3, &["create", "Account", "--on", "1", "--name", &a, "--state", r#"{"balance": 100}"#]).ok();
        c.clouds(3, &["create", "Account", "--on", "2", "--name", &b, "--state", r#"{"balance": 50}"#]).ok();
        let seen = c.log_count(armed, stopped);
        let mut mover = c.clouds_in_background(3, &["invoke", &format!("{a}.transfer"), &b, "30"]);
        c.wait_for_log(armed, stopped, seen);
        c.kill9(armed);
        let _ = mover.kill();
        let _ = mover.wait();
        c.start(3);
        let read = |name: &str| {
            for _ in 0..100 {
                let r = c.clouds(3, &["invoke", &format!("{name}.balance")]);
                if r.code == 0 {
                    return r.json();
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            panic!("{name} was not served after a kill -9 at {point}");
        };
        let expected = if done { (70, 80) } else { (100, 50) };
        assert_eq!((read(&a), read(&b)), (json!(expected.0), json!(expected.1)), "kill -9 at {point}");
        assert_eq!(c.clouds(1, &["invoke", &format!("{b}.transfer"), &a, "10"]).json(), json!(expected.1 - 10));
        assert_eq!(read(&a), json!(expected.0 + 10), "after {point}");
    }
}

/// A flush that fails stops the node (fail-stop): the writers of that group hear that
/// their outcome is in doubt, nothing after it is written or served (`Unavailable`), and
/// after a restart the node serves what its disk holds and writes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_flush_stops_the_node_until_it_restarts() {
    use clouds::InvokeError;
    use tests::network::Network;
    let short = Duration::from_secs(5);
    let mut net = Network::start(2).await;
    let c = net.create(1, "Counter", 1).await;
    assert_eq!(net.invoke(1, &c, "incr", json!([1]), short).await.unwrap(), json!(1));
    let failed = {
        let engine = net.engine(1);
        tokio::spawn(async move { engine.store_failed().await })
    };
    net.fail_flushes(1);
    let e = net.invoke(1, &c, "incr", json!([1]), short).await.unwrap_err();
    assert!(matches!(e, InvokeError::InDoubt { .. }), "the write whose flush failed is in doubt: {e}");
    assert!(e.to_string().contains("injected"), "it says what failed: {e}");
    let why = tokio::time::timeout(short, failed).await.expect("the engine reports the failure").unwrap();
    assert!(why.contains("injected"), "{why}");
    // Nothing more is served, here or through another node.
    for via in [1, 2] {
        let e = net.invoke(via, &c, "get", json!([]), short).await.unwrap_err();
        assert!(matches!(e, InvokeError::Unavailable { .. }), "node 1 serves nothing now: {e}");
        assert!(e.to_string().contains("failed to flush"), "{e}");
    }
    assert!(net.engine(1).flush().is_err(), "nor flushes anything more");
    net.crash(1);
    net.restart(1).await;
    let after = net.invoke(2, &c, "get", json!([]), short).await.unwrap();
    assert!(after == json!(1) || after == json!(2), "the write in doubt is there or not: {after}");
    let next = after.as_u64().unwrap() + 1;
    assert_eq!(net.invoke(2, &c, "incr", json!([1]), short).await.unwrap(), json!(next));
}

/// A client that goes away in the middle of a write (its call dropped: tarpc tells the node
/// the request is cancelled) does not cut the method short: the write runs to its end and
/// commits, as it would have for a client that stayed.
#[test]
fn a_write_whose_client_goes_away_still_commits() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_testnode(1, dir.path(), &[]);
    rt.block_on(async {
        let client = Client::connect(node.addr).await.unwrap();
        let relay = client.create("Relay", protocol::wire::InitialState::Default).await.expect("create");
        // `pass_then_sleep` counts a visit, then sleeps 500 ms before it returns and commits.
        let args = [json!([]), json!(500)];
        let call = client.invoke_json(&relay, "pass_then_sleep", &args, None);
        assert!(tokio::time::timeout(Duration::from_millis(100), call).await.is_err(), "still running");
        drop(client);
        let client = Client::connect(node.addr).await.unwrap();
        client.wallet().add(relay.cap.as_ref().unwrap()).unwrap();
        let mut visits = json!(0);
        for _ in 0..50 {
            visits = client.invoke_json(&relay, "visits", &[], None).await.unwrap();
            if visits == json!(1) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(visits, json!(1), "the write committed though its client went away");
    });
}

/// A real node whose disk stops syncing (`CLOUDS_FAIL_FLUSH_AFTER`, in `testnode` only):
/// the write whose flush failed is in doubt, the process exits with an error (fail-stop),
/// and a restart on the same data serves every acknowledged write.
#[test]
fn a_node_whose_flush_fails_exits_and_its_restart_keeps_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start_testnode_env(1, dir.path(), &[], &[("CLOUDS_FAIL_FLUSH_AFTER", "20")]);
    node.clouds(&["create", "Counter", "--name", "c"]).ok();
    let mut acked = 0u64;
    let mut failed = None;
    for _ in 0..200 {
        let run = node.clouds(&["invoke", "c.incr", "1"]);
        if run.code != 0 {
            failed = Some(run);
            break;
        }
        acked += 1;
    }
    let failed = failed.expect("a flush failed within 200 writes");
    failed.fails(1, "outcome in doubt");
    assert!(failed.stderr.contains("injected"), "it says what failed: {}", failed.stderr);
    let status = node.exited_within(Duration::from_secs(10)).expect("the node exits after a failed flush");
    assert!(!status.success(), "it exits with an error: {status}");
    let data = node.kill9();
    let node = Node::start_testnode(1, &data, &[]);
    let value = node.clouds(&["invoke", "c.get"]).json().as_u64().unwrap();
    assert!(value == acked || value == acked + 1, "{acked} acknowledged, the next in doubt; found {value}");
    node.clouds(&["invoke", "c.incr", "1"]).ok();
}
