//! Moving live objects between nodes, on the in-process cluster: both strategies, calls
//! during a move, refusals, and a crash of the source, the target or the home at every step
//! of the protocol, after which exactly one node owns the object and nothing committed is
//! lost.

use clouds::{InvokeError, NodeId, RawRef};
use objectd::engine::faults::Role;
use objectd::migration::Step;
use protocol::migration::Strategy;
use serde_json::{json, Value};
use std::time::Duration;
use tests::network::Network;

const SHORT: Duration = Duration::from_secs(5);

/// Polls `get` through `via` until it answers (a recovery may take a few retries), at most
/// 10 s.
async fn settled(net: &Network, via: u16, target: &RawRef) -> Value {
    for _ in 0..100 {
        match net.invoke(via, target, "get", json!([]), SHORT).await {
            Ok(v) => return v,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("the object was not served through node {via} within 10 s");
}

/// A counter on node 2 moves to node 3 with each strategy: the report says what moved; the
/// state is intact; every node reaches it there (the old node forwards, the caller's node
/// remembers); describe names its home and its node; it can move back.
#[tokio::test]
async fn a_live_object_moves_and_every_node_finds_it() {
    for strategy in [Strategy::Eager, Strategy::Precopy] {
        let net = Network::start(3).await;
        let counter = net.create(1, "Counter", 2).await;
        net.invoke(1, &counter, "incr", json!([41]), SHORT).await.unwrap();
        let report = net.migrate(1, &counter, 3, strategy).await.unwrap();
        assert_eq!((report.from, report.to, report.strategy), (NodeId(2), NodeId(3), strategy));
        assert!(report.bytes > 0 && report.freeze_us <= report.total_us, "{report}");
        assert_eq!(net.owners(counter.id), [3]);
        for via in [1, 2, 3] {
            assert_eq!(net.invoke(via, &counter, "incr", json!([1]), SHORT).await.unwrap(), json!(41 + via as i64));
        }
        let body = protocol::RequestBody::Describe(counter.clone());
        let info = net.engine(1).handle(objectd::engine::Origin::Caller, body).await;
        assert!(
            matches!(&info, Ok(protocol::ResponseBody::Described(i)) if i.node == NodeId(3) && i.home == NodeId(2)),
            "describe names the home and the node: {info:?}"
        );
        let back = net.migrate(3, &counter, 2, strategy).await.unwrap();
        assert_eq!(back.to, NodeId(2), "an object moves back to a node it left");
        assert_eq!(net.owners(counter.id), [2]);
        assert_eq!(net.invoke(3, &counter, "get", json!([]), SHORT).await.unwrap(), json!(44));
    }
}

/// A write with a call id, retried after its object moved, returns the reply recorded before
/// the move and runs nothing again: call records move with the object. The revocation epoch
/// moves too: a capability revoked before the move stays void after it.
#[tokio::test]
async fn exactly_once_and_revocations_hold_across_a_move() {
    let net = Network::start(3).await;
    let counter = net.create(1, "Counter", 2).await;
    assert_eq!(net.invoke_once(1, &counter, "incr", json!([5]), "dep-17").await.unwrap(), json!(5));
    let revoked = counter.clone();
    let body = protocol::RequestBody::Revoke { target: counter.clone(), holder: net.user() };
    let fresh = match net.engine(1).handle(objectd::engine::Origin::Caller, body).await.unwrap() {
        protocol::ResponseBody::Capability(cap) => RawRef { id: counter.id, cap: Some(cap) },
        other => panic!("{other:?}"),
    };
    net.migrate(1, &fresh, 3, Strategy::Precopy).await.unwrap();
    assert_eq!(net.invoke_once(2, &fresh, "incr", json!([5]), "dep-17").await.unwrap(), json!(5), "the recorded reply");
    assert_eq!(net.invoke(1, &fresh, "get", json!([]), SHORT).await.unwrap(), json!(5), "it ran once");
    let void = net.invoke(1, &revoked, "get", json!([]), SHORT).await.unwrap_err();
    assert!(matches!(void, InvokeError::Denied { .. }), "{void}");
}

/// A method moves its own object once its call committed (`ctx.migrate_to`), and another
/// object it holds a capability for (`ctx.migrate`); an object the thread is inside of
/// cannot be moved from within (it could not freeze).
#[tokio::test]
async fn methods_move_their_object_and_others() {
    let net = Network::start(3).await;
    let (a, b) = (net.create(1, "Relay", 2).await, net.create(1, "Relay", 2).await);
    assert_eq!(net.invoke(1, &a, "go", json!([3]), SHORT).await.unwrap(), json!(1));
    for _ in 0..100 {
        if net.owners(a.id) == [3] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(net.owners(a.id), [3], "it moved after its call");
    assert_eq!(net.invoke(2, &a, "visits", json!([]), SHORT).await.unwrap(), json!(1));
    net.invoke(1, &a, "send", json!([b, 1]), SHORT).await.unwrap();
    assert_eq!(net.owners(b.id), [1]);
    let inside = net.invoke(1, &a, "send", json!([a, 2]), SHORT).await.unwrap_err();
    assert!(inside.to_string().contains("cannot move while this thread is inside it"), "{inside}");
}

/// A map of 300 pages moves while a writer keeps changing it: every write succeeds (those
/// during the freeze wait, then go to the target); by precopy the pages it dirtied are
/// copied again, lazily the writes at the target fetch their pages first and the pull
/// goes on beside them; the target ends with exactly the writer's last state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_during_a_move_all_succeed_and_none_is_lost() {
    for strategy in [Strategy::Precopy, Strategy::Lazy] {
        calls_during_a_move(strategy).await;
    }
}

async fn calls_during_a_move(strategy: Strategy) {
    let net = std::sync::Arc::new(Network::start(3).await);
    let map = net.create(1, "Map", 2).await;
    for i in 0..300 {
        net.invoke(1, &map, "put", json!([format!("k{i:03}"), "x".repeat(200)]), SHORT).await.unwrap();
    }
    let written = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let writer = {
        let (net, map, written) = (net.clone(), map.clone(), written.clone());
        tokio::spawn(async move {
            for i in 0..200 {
                let key = format!("k{:03}", i % 300);
                net.invoke(1, &map, "put", json!([key, format!("v{i}")]), SHORT)
                    .await
                    .expect("a write during the move");
                written.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            written.load(std::sync::atomic::Ordering::SeqCst)
        })
    };
    while written.load(std::sync::atomic::Ordering::SeqCst) < 20 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let report = net.migrate(1, &map, 3, strategy).await.unwrap();
    let during = written.load(std::sync::atomic::Ordering::SeqCst);
    assert!(during < 200, "the writes went on while the object moved ({during} of 200 done when it had moved)");
    assert!(report.rounds >= 1 || strategy == Strategy::Lazy, "{report}");
    eprintln!("{report}; {during} writes done when it had moved");
    assert_eq!(writer.await.unwrap(), 200, "no write failed");
    assert_eq!(net.owners(map.id), [3]);
    assert_eq!(net.invoke(2, &map, "len", json!([]), SHORT).await.unwrap(), json!(300));
    for i in 100..200 {
        let key = format!("k{:03}", i % 300);
        assert_eq!(net.invoke(3, &map, "get", json!([key]), SHORT).await.unwrap(), json!(format!("v{i}")));
    }
    assert_eq!(net.invoke(1, &map, "get", json!(["k250"]), SHORT).await.unwrap(), json!("x".repeat(200)));
}

/// A target without the class refuses; a target that cannot be reached fails the move;
/// either way the object was served at its node throughout and stays there. A move needs
/// the migrate right.
#[tokio::test]
async fn a_refused_or_failed_move_leaves_the_object_where_it_was() {
    let net = Network::start_with(3, |id| {
        let standard = objectd::Registry::standard();
        if id == 3 {
            standard
        } else {
            standard.with::<tests::relay::Relay>().unwrap()
        }
    })
    .await;
    let relay = net.create(1, "Relay", 2).await;
    let refused = net.migrate(1, &relay, 3, Strategy::Eager).await.unwrap_err();
    assert!(refused.to_string().contains("node-3 refuses object"), "{refused}");
    net.cut(2, 1);
    let unreachable = net.migrate(2, &relay, 1, Strategy::Precopy).await.unwrap_err();
    assert!(matches!(unreachable, InvokeError::Unavailable { .. }), "{unreachable}");
    net.recover();
    assert_eq!(net.owners(relay.id), [2]);
    assert_eq!(net.invoke(1, &relay, "visits", json!([]), SHORT).await.unwrap(), json!(0));
    let read_only = RawRef { id: relay.id, cap: None };
    let denied = net.migrate(1, &read_only, 1, Strategy::Eager).await.unwrap_err();
    assert!(matches!(denied, InvokeError::Denied { .. }), "{denied}");
}

/// A class whose state format moved on: the same class name at version 1 and at version 2.
mod v1 {
    #[derive(clouds::Object, Default, serde::Serialize, serde::Deserialize)]
    pub struct Versioned {
        pub n: u64,
    }
    #[clouds::methods]
    impl Versioned {
        pub fn get(&self) -> u64 {
            self.n
        }
    }
}

mod v2 {
    #[derive(clouds::Object, Default, serde::Serialize, serde::Deserialize)]
    #[object(version = 2)]
    pub struct Versioned {
        pub n: u64,
        pub label: String,
    }
    #[clouds::methods]
    impl Versioned {
        pub fn get(&self) -> u64 {
            self.n
        }
    }
}

/// A node whose class reads another format version of the state refuses the object, and
/// says which versions; the object stays where it was. (Heterogeneous nodes agree on the
/// class and its format, not on the build.)
#[tokio::test]
async fn a_target_with_another_state_format_refuses_the_object() {
    let net = Network::start_with(3, |id| {
        let standard = objectd::Registry::standard();
        if id == 3 {
            standard.with::<v2::Versioned>().unwrap()
        } else {
            standard.with::<v1::Versioned>().unwrap()
        }
    })
    .await;
    let old = net.create(1, "Versioned", 2).await;
    let refused = net.migrate(1, &old, 3, Strategy::Precopy).await.unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("its Versioned state has format version 1, and node-3's Versioned reads version 2"),
        "{refused}"
    );
    assert_eq!(net.owners(old.id), [2]);
    net.migrate(1, &old, 1, Strategy::Lazy).await.expect("a node with the same format takes it");
    assert_eq!(net.invoke(2, &old, "get", json!([]), SHORT).await.unwrap(), json!(0));
}

/// The source crashes at each step of the protocol (the step made durable, nothing after
/// it), then restarts: before the commit was asked it aborts and keeps the object; once it
/// was asked it asks the target, which committed or refuses for good; once the target
/// committed it finishes. Every time exactly one node owns the object afterwards, every
/// node reaches it, and the acknowledged writes are there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_crash_at_every_step_leaves_exactly_one_owner() {
    let steps = [
        (Step::IntentWritten, 2),
        (Step::TargetAccepted, 2),
        (Step::Copied(1), 2),
        (Step::Frozen, 2),
        (Step::CommitAsked, 2),
        (Step::TargetCommitted, 3),
        (Step::SourceForwarded, 3),
    ];
    for (step, owner) in steps {
        eprintln!("crash at {step}");
        let mut net = Network::start(3).await;
        let counter = net.create(1, "Counter", 2).await;
        net.invoke(1, &counter, "incr", json!([7]), SHORT).await.unwrap();
        let hit = net.engine(2).arm_fault(Role::Source, step);
        let mover = moving(&net, 1, &counter, 3, Strategy::Precopy);
        tokio::time::timeout(SHORT, hit.notified()).await.unwrap_or_else(|_| panic!("reached {step}"));
        net.crash(2);
        let _ = mover.await;
        net.restart(2).await;
        for via in [1, 2, 3] {
            assert_eq!(settled(&net, via, &counter).await, json!(7), "after a crash at {step}, through node {via}");
        }
        assert_eq!(net.owners(counter.id), [owner], "after a crash at {step}");
        assert_eq!(net.invoke(2, &counter, "incr", json!([1]), SHORT).await.unwrap(), json!(8), "at {step}");
        // The object can move again: nothing of the first move is left in the way.
        let to = if owner == 2 { 3 } else { 2 };
        net.migrate(1, &counter, to, Strategy::Eager).await.unwrap_or_else(|e| panic!("moving on after {step}: {e}"));
        assert_eq!(net.owners(counter.id), [to]);
    }
}

/// The target crashes right after it committed, before its answer left: the source hears
/// nothing, asks the restarted target, learns that it committed, and forwards. The home
/// crashes as it records the new location: it comes back and is told again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_or_home_crash_is_resolved_when_it_comes_back() {
    let mut net = Network::start(3).await;
    let counter = net.create(1, "Counter", 2).await;
    net.invoke(1, &counter, "incr", json!([3]), SHORT).await.unwrap();
    let hit = net.engine(3).arm_fault(Role::Target, Step::TargetCommitted);
    let mover = moving(&net, 2, &counter, 3, Strategy::Eager);
    tokio::time::timeout(SHORT, hit.notified()).await.expect("the target committed");
    net.crash(3);
    net.restart(3).await;
    let moved = mover.await.unwrap();
    assert!(moved.is_ok(), "the source resolved the commit with the restarted target: {moved:?}");
    assert_eq!(net.owners(counter.id), [3]);
    assert_eq!(settled(&net, 1, &counter).await, json!(3));

    // The home (node 2, which created it) crashes as it records that the object went
    // from 3 to 1: the move is done; the home is told again once it is back.
    let hit = net.engine(2).arm_fault(Role::Home, Step::HomeUpdated);
    let mover = moving(&net, 3, &counter, 1, Strategy::Eager);
    tokio::time::timeout(SHORT, hit.notified()).await.expect("the home was told");
    net.crash(2);
    assert!(mover.await.unwrap().is_ok(), "the move completes; the home is told later");
    assert_eq!(net.owners(counter.id), [1]);
    net.restart(2).await;
    for via in [1, 2, 3] {
        assert_eq!(settled(&net, via, &counter).await, json!(3), "through node {via}");
    }
    assert_eq!(net.invoke(2, &counter, "incr", json!([1]), SHORT).await.unwrap(), json!(4));
}

/// A move of `target` to node `to`, asked of node `via`, in a task of its own (a test
/// stops one end of it at a fault point).
fn moving(
    net: &Network,
    via: u16,
    target: &RawRef,
    to: u16,
    strategy: Strategy,
) -> tokio::task::JoinHandle<protocol::Response> {
    let (engine, target) = (net.engine(via), target.clone());
    tokio::spawn(async move {
        let body = protocol::RequestBody::Migrate { target, to: NodeId(to), strategy };
        engine.handle(objectd::engine::Origin::Caller, body).await
    })
}

async fn describe(net: &Network, via: u16, target: &RawRef) -> protocol::wire::ObjectInfo {
    let body = protocol::RequestBody::Describe(target.clone());
    match net.engine(via).handle(objectd::engine::Origin::Caller, body).await {
        Ok(protocol::ResponseBody::Described(info)) => *info,
        other => panic!("describe through node {via}: {other:?}"),
    }
}

/// Waits (at most 10 s) until the lazy move of `id` is over: no residual at the target,
/// nothing left at the source, not even its record of the move.
async fn pulled(net: &Network, target: &RawRef, at: u16, from: u16) {
    for _ in 0..100 {
        let info = describe(net, at, target).await;
        let left = net.engine(from).store().page_usage(target.id).unwrap();
        let open = net.engine(from).open_moves_out().unwrap();
        if info.residual.is_none() && left == (0, 0) && open == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the lazy move of {} did not finish within 10 s", target.id);
}

/// A map of 200 pages on node 2, every value `v{i}`.
async fn map_of_pages(net: &Network) -> RawRef {
    let map = net.create(1, "Map", 2).await;
    for i in 0..200 {
        net.invoke(1, &map, "put", json!([format!("k{i:03}"), format!("v{i}")]), SHORT).await.unwrap();
    }
    map
}

/// A lazy move switches at once (its report counts keys, not pages) and the target serves
/// the struct state at once; while the source cannot be reached from the target, a
/// method that needs a page not pulled yet fails with `Unavailable` naming the source and
/// changes nothing (never wrong data), and describe shows the residual dependency; once
/// the link is back the pull finishes, the source drops its pages, and every page is the
/// source's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lazy_move_serves_at_once_and_fetches_pages_from_the_source() {
    let net = Network::start(3).await;
    let map = map_of_pages(&net).await;
    net.refuse_requests(3, 2);
    let report = net.migrate(1, &map, 3, Strategy::Lazy).await.unwrap();
    assert_eq!((report.to, report.strategy, report.rounds), (NodeId(3), Strategy::Lazy, 0), "{report}");
    assert_eq!(net.owners(map.id), [3]);
    assert_eq!(net.invoke(1, &map, "len", json!([]), SHORT).await.unwrap(), json!(200), "the state is there at once");
    let info = describe(&net, 1, &map).await;
    let residual = info.residual.expect("a residual while the pages are on node 2");
    assert_eq!((residual.from, residual.missing, residual.pages), (NodeId(2), 200, 200));
    assert_eq!(residual.percent(), 100.0);
    let missing = net.invoke(1, &map, "get", json!(["k007"]), SHORT).await.unwrap_err();
    assert!(
        matches!(&missing, InvokeError::Unavailable { node, .. } if node == "node-2"),
        "a missing page names its node: {missing}"
    );
    let write = net.invoke(1, &map, "put", json!(["k008", "lost?"]), SHORT).await.unwrap_err();
    assert!(matches!(write, InvokeError::Unavailable { .. }), "{write}");
    let fresh = net.invoke(1, &map, "put", json!(["new", "here"]), SHORT).await.unwrap();
    assert_eq!(fresh, json!(null), "a page the object never had needs nothing from the source");
    net.recover();
    assert_eq!(net.invoke(1, &map, "get", json!(["k007"]), SHORT).await.unwrap(), json!("v7"), "fetched on touch");
    pulled(&net, &map, 3, 2).await;
    for i in 0..200 {
        let value = net.invoke(2, &map, "get", json!([format!("k{i:03}")]), SHORT).await.unwrap();
        assert_eq!(value, json!(format!("v{i}")), "page {i}");
    }
    assert_eq!(net.invoke(1, &map, "get", json!(["new"]), SHORT).await.unwrap(), json!("here"));
    let range = net.invoke(1, &map, "range", json!(["k198", null, 10]), SHORT).await.unwrap();
    assert_eq!(range, json!([["k198", "v198"], ["k199", "v199"], ["new", "here"]]));
    // Over: it moves on like any object, back to where it came from.
    net.migrate(1, &map, 2, Strategy::Lazy).await.unwrap();
    pulled(&net, &map, 2, 3).await;
    assert_eq!(net.invoke(3, &map, "get", json!(["k150"]), SHORT).await.unwrap(), json!("v150"));
}

/// A lazy move survives crashes of either end while pages are still on the source: the
/// source restarts still holding them and serving fetches; the target restarts with its
/// residual from its intents and resumes the pull; the target crashing after the last page
/// but before it released the source releases it once back. Every page ends intact at the
/// target, and the source keeps nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lazy_move_survives_a_crash_of_either_end_before_the_pull_ends() {
    let mut net = Network::start(3).await;
    let map = map_of_pages(&net).await;
    net.refuse_requests(3, 2);
    net.migrate(1, &map, 3, Strategy::Lazy).await.unwrap();
    net.crash(2);
    net.restart(2).await;
    net.crash(3);
    net.restart(3).await;
    assert_eq!(describe(&net, 1, &map).await.residual.map(|r| r.missing), Some(200), "the residual is durable");
    net.recover();
    pulled(&net, &map, 3, 2).await;
    for i in (0..200).step_by(7) {
        let value = net.invoke(1, &map, "get", json!([format!("k{i:03}")]), SHORT).await.unwrap();
        assert_eq!(value, json!(format!("v{i}")), "page {i}");
    }

    // The target stops right after pulling the last page, before telling the source.
    let hit = net.engine(2).arm_fault(Role::Target, Step::PullDone);
    net.migrate(1, &map, 2, Strategy::Lazy).await.unwrap();
    tokio::time::timeout(SHORT, hit.notified()).await.expect("the target pulled everything");
    assert!(net.engine(3).store().page_usage(map.id).unwrap().0 > 0, "the source still holds its pages");
    net.crash(2);
    net.restart(2).await;
    pulled(&net, &map, 2, 3).await;
    assert_eq!(net.owners(map.id), [2]);
    assert_eq!(net.invoke(3, &map, "get", json!(["k199"]), SHORT).await.unwrap(), json!("v199"));
}

/// The source of a lazy move crashes at each step: before the commit was asked the move
/// is called off and the object stays, pages and all; after, the target owns it and the
/// restarted source still hands over every page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lazy_source_crash_at_every_step_leaves_one_owner_and_every_page() {
    let steps = [
        (Step::IntentWritten, 2),
        (Step::TargetAccepted, 2),
        (Step::Frozen, 2),
        (Step::CommitAsked, 2),
        (Step::TargetCommitted, 3),
        (Step::SourceForwarded, 3),
        (Step::HomeUpdated, 3),
    ];
    for (step, owner) in steps {
        eprintln!("lazy: crash at {step}");
        let mut net = Network::start(3).await;
        let map = map_of_pages(&net).await;
        let hit = net.engine(2).arm_fault(Role::Source, step);
        let mover = moving(&net, 1, &map, 3, Strategy::Lazy);
        tokio::time::timeout(SHORT, hit.notified()).await.unwrap_or_else(|_| panic!("reached {step}"));
        net.crash(2);
        let _ = mover.await;
        net.restart(2).await;
        for i in (0..200).step_by(13) {
            let key = format!("k{i:03}");
            for _ in 0..100 {
                match net.invoke(1, &map, "get", json!([key]), SHORT).await {
                    Ok(v) => {
                        assert_eq!(v, json!(format!("v{i}")), "page {i} after a crash at {step}");
                        break;
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }
        assert_eq!(net.owners(map.id), [owner], "after a crash at {step}");
        if owner == 3 {
            pulled(&net, &map, 3, 2).await;
        } else {
            assert_eq!(describe(&net, 1, &map).await.residual, None);
        }
        assert_eq!(net.invoke(1, &map, "len", json!([]), SHORT).await.unwrap(), json!(200), "at {step}");
    }
}

/// The target of a lazy move pulls every page and releases the source while the source is
/// still recording the switch (paused right after the target committed): the release is
/// refused until the source has recorded it, so the move ends at both ends (before, the
/// source's last step brought back the record the release had dropped, and a drain of the
/// source waited for it for ever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_that_overtakes_the_switch_still_ends_the_move() {
    let net = Network::start(3).await;
    let map = net.create(1, "Map", 2).await;
    for i in 0..3 {
        net.invoke(1, &map, "put", json!([format!("k{i}"), i]), SHORT).await.unwrap();
    }
    let (hit, resume) = net.engine(2).arm_pause(Role::Source, Step::TargetCommitted);
    let mover = moving(&net, 1, &map, 3, Strategy::Lazy);
    tokio::time::timeout(SHORT, hit.notified()).await.expect("the source reached the commit");
    // The target pulls the three pages and asks for the release meanwhile.
    for _ in 0..100 {
        if net.engine(3).store().page_usage(map.id).unwrap().0 == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(net.engine(3).store().page_usage(map.id).unwrap().0, 3, "the target pulled every page");
    tokio::time::sleep(Duration::from_millis(300)).await;
    resume.notify_one();
    let moved = mover.await.unwrap();
    assert!(matches!(moved, Ok(protocol::ResponseBody::Migrated(_))), "{moved:?}");
    pulled(&net, &map, 3, 2).await;
    assert_eq!(net.invoke(1, &map, "get", json!(["k2"]), SHORT).await.unwrap(), json!(2));
}

/// A lazy move of an object with no pages has nothing to pull: it ends at once, and the
/// source keeps no record of it.
#[tokio::test]
async fn a_lazy_move_of_an_object_without_pages_ends() {
    let net = Network::start(3).await;
    let counter = net.create(1, "Counter", 2).await;
    net.invoke(1, &counter, "incr", json!([4]), SHORT).await.unwrap();
    net.migrate(1, &counter, 3, Strategy::Lazy).await.unwrap();
    pulled(&net, &counter, 3, 2).await;
    assert_eq!(net.invoke(2, &counter, "get", json!([]), SHORT).await.unwrap(), json!(4));
}
