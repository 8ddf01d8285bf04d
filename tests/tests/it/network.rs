//! The cluster in one process (`tests::network`): threads across nodes, a deadlock across
//! nodes, and what cut links, lost requests, lost answers, delays and crashes do to calls.

use clouds::{InvokeError, NodeId, RawRef};
use objectd::store::Cursor;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tests::network::Network;

const SHORT: Duration = Duration::from_secs(5);

fn refs(refs: &[&RawRef]) -> Value {
    serde_json::to_value(refs).unwrap()
}

fn unavailable_naming(result: Result<Value, InvokeError>, node: &str) -> String {
    match result {
        Err(InvokeError::Unavailable { node: named, reason }) => {
            assert!(named.contains(node), "names {named}, not {node}: {reason}");
            reason
        }
        other => panic!("expected Unavailable naming {node}, got {other:?}"),
    }
}

/// A -> B -> C -> D with A on node 1, B on 2, C on 3, D on 1, asked through every node: the
/// thread continues on each node in turn and comes back along the same path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thread_crosses_three_nodes_and_comes_back() {
    let net = Network::start(3).await;
    let (a, b, c, d) = (
        net.create(1, "Relay", 1).await,
        net.create(2, "Relay", 2).await,
        net.create(1, "Relay", 3).await,
        net.create(3, "Relay", 1).await,
    );
    for via in [1, 2, 3] {
        let path = net.invoke(via, &a, "pass", json!([refs(&[&b, &c, &d])]), SHORT).await.unwrap();
        assert_eq!(path, json!([1, 2, 3, 1]), "asked through node {via}");
    }
    assert_eq!(net.invoke(3, &b, "visits", json!([]), SHORT).await.unwrap(), json!(3));
}

/// Two threads cross over between objects on two nodes (a -> b while b -> a): the cycle is
/// found across the nodes and exactly one of them fails with `Deadlock`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadlock_across_nodes_is_broken() {
    let net = Network::start(2).await;
    let (a, b) = (net.create(1, "Relay", 1).await, net.create(1, "Relay", 2).await);
    let deadline = Duration::from_secs(20);
    let (one, two) = tokio::join!(
        net.invoke(1, &a, "hold_then_pass", json!([b, 200]), deadline),
        net.invoke(2, &b, "hold_then_pass", json!([a, 200]), deadline),
    );
    let outcomes = [&one, &two];
    let victims = outcomes.iter().filter(|r| matches!(r, Err(InvokeError::Deadlock { .. }))).count();
    assert_eq!(victims, 1, "one victim: {one:?} / {two:?}");
    assert_eq!(outcomes.iter().filter(|r| r.is_ok()).count(), 1, "the other goes on: {one:?} / {two:?}");
}

/// A cut link fails a call at once with `Unavailable` naming the node that could not be
/// reached, and a call through another node still works; healed, the link works again.
#[tokio::test]
async fn a_cut_link_is_unavailable_naming_the_node_then_heals() {
    let net = Network::start(3).await;
    let counter = net.create(1, "Counter", 2).await;
    net.invoke(1, &counter, "incr", json!([1]), SHORT).await.unwrap();
    net.cut(1, 2);
    let started = Instant::now();
    unavailable_naming(net.invoke(1, &counter, "incr", json!([1]), SHORT).await, "node-2");
    assert!(started.elapsed() < SHORT, "a cut link fails at once");
    assert_eq!(net.invoke(3, &counter, "get", json!([]), SHORT).await.unwrap(), json!(1), "nothing ran");
    net.recover();
    assert_eq!(net.invoke(1, &counter, "incr", json!([1]), SHORT).await.unwrap(), json!(2));
}

/// An isolated node reaches nobody and nobody reaches it; its own objects still serve
/// the threads that start there.
#[tokio::test]
async fn an_isolated_node_serves_only_its_own_objects() {
    let net = Network::start(3).await;
    let (here, there) = (net.create(1, "Counter", 3).await, net.create(1, "Counter", 1).await);
    net.isolate(3);
    assert_eq!(net.invoke(3, &here, "incr", json!([5]), SHORT).await.unwrap(), json!(5));
    unavailable_naming(net.invoke(3, &there, "get", json!([]), SHORT).await, "node-1");
    unavailable_naming(net.invoke(2, &here, "get", json!([]), SHORT).await, "node-3");
}

/// A request lost on the way is never run; the caller learns at its deadline, not later.
#[tokio::test]
async fn a_lost_request_runs_nothing_and_fails_at_the_deadline() {
    let net = Network::start(2).await;
    let counter = net.create(1, "Counter", 2).await;
    net.drop_requests(1, 2, 1);
    let deadline = Duration::from_millis(400);
    let started = Instant::now();
    let reason = unavailable_naming(net.invoke(1, &counter, "incr", json!([1]), deadline).await, "node-2");
    assert!(reason.contains("lost"), "{reason}");
    assert!(started.elapsed() >= deadline && started.elapsed() < deadline * 5, "{:?}", started.elapsed());
    assert_eq!(net.invoke(1, &counter, "get", json!([]), SHORT).await.unwrap(), json!(0), "nothing ran");
}

/// An answer lost on the way back: the write ran and committed, the caller was told
/// `Unavailable` (delivery is at most once without a call id).
#[tokio::test]
async fn a_lost_answer_leaves_the_write_committed() {
    let net = Network::start(2).await;
    let counter = net.create(1, "Counter", 2).await;
    net.drop_answers(1, 2, 1);
    unavailable_naming(net.invoke(1, &counter, "incr", json!([1]), SHORT).await, "node-2");
    assert_eq!(net.invoke(1, &counter, "get", json!([]), SHORT).await.unwrap(), json!(1));
}

/// A delay shorter than the deadline only makes the call longer; a longer one fails it
/// at the deadline.
#[tokio::test]
async fn delays_slow_calls_down_within_their_deadline() {
    let net = Network::start(2).await;
    let counter = net.create(1, "Counter", 2).await;
    net.delay(1, 2, Duration::from_millis(150));
    let started = Instant::now();
    assert_eq!(net.invoke(1, &counter, "incr", json!([1]), SHORT).await.unwrap(), json!(1));
    assert!(started.elapsed() >= Duration::from_millis(150));
    unavailable_naming(net.invoke(1, &counter, "incr", json!([1]), Duration::from_millis(100)).await, "node-2");
}

/// A crashed node's objects are unavailable; restarted, it has every acknowledged write
/// and serves again, and work of the crashed incarnation changes nothing.
#[tokio::test]
async fn a_crashed_node_comes_back_with_what_it_committed() {
    let mut net = Network::start(3).await;
    let counter = net.create(1, "Counter", 2).await;
    net.invoke(1, &counter, "incr", json!([5]), SHORT).await.unwrap();
    net.crash(2);
    unavailable_naming(net.invoke(1, &counter, "incr", json!([1]), SHORT).await, "node-2");
    net.restart(2).await;
    assert_eq!(net.invoke(3, &counter, "get", json!([]), SHORT).await.unwrap(), json!(5));
    assert_eq!(net.invoke(2, &counter, "incr", json!([1]), SHORT).await.unwrap(), json!(6));
}

/// An object whose record its home turned into a forwarding entry is found where it went,
/// for every request kind; the caller's node remembers the move and goes straight there.
#[tokio::test]
async fn a_moved_object_is_followed_and_the_route_remembered() {
    let mut net = Network::start(3).await;
    let counter = net.create(1, "Counter", 2).await;
    net.invoke(1, &counter, "incr", json!([7]), SHORT).await.unwrap();
    // Move it from node 2 to node 3 by hand, through the store seams.
    let (from, to) = (net.engine(2).store().clone(), net.engine(3).store().clone());
    let mut cursor = Cursor::start();
    while let Some((chunk, next)) = from.export(counter.id, &cursor, 1024).unwrap() {
        to.install(counter.id, &chunk).unwrap();
        cursor = next;
    }
    from.forward(counter.id, NodeId(3)).unwrap();
    // Node 2 still has the object activated in memory: a crash clears it.
    net.crash(2);
    net.restart(2).await;

    assert_eq!(net.invoke(1, &counter, "incr", json!([1]), SHORT).await.unwrap(), json!(8));
    let asked_home = net.delivered(1, 2);
    assert_eq!(net.invoke(1, &counter, "get", json!([]), SHORT).await.unwrap(), json!(8));
    assert_eq!(net.delivered(1, 2), asked_home, "node 1 went straight to node 3");
    let info =
        net.engine(1).handle(objectd::engine::Origin::Caller, protocol::RequestBody::Describe(counter.clone())).await;
    assert!(matches!(info, Ok(protocol::ResponseBody::Described(i)) if i.node == NodeId(3)), "describe follows too");
    assert_eq!(net.invoke(2, &counter, "get", json!([]), SHORT).await.unwrap(), json!(8), "and through the old node");
}

/// Creations made at once get owner capabilities signed in one batch; after their objects
/// move to node 2, node 2 checks node 1's batched signatures (the first of a batch by
/// ed25519, the others by their paths), each capability for its own object only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_signed_in_one_batch_hold_on_another_node_each_for_its_own_object() {
    use protocol::migration::Strategy;
    let net = Network::start(2).await;
    let made = futures::future::join_all((0..40).map(|_| net.create(1, "Counter", 1))).await;
    let batched = |r: &RawRef| {
        let token = capability::Token::from_cap(r.cap.as_ref().unwrap()).unwrap();
        token.links[0].signature.len() > 64
    };
    assert!(made.iter().any(batched), "40 creations at once share a signature");
    for r in &made {
        net.migrate(1, r, 2, Strategy::Eager).await.unwrap();
    }
    for r in &made {
        net.invoke(1, r, "incr", json!([1]), SHORT).await.unwrap();
        assert_eq!(net.owners(r.id), vec![2]);
    }
    let (batch_mate, alone) = (made.iter().find(|r| batched(r)).unwrap(), &made[0]);
    let other = made.iter().find(|r| r.id != batch_mate.id && batched(r)).unwrap();
    let swapped = RawRef { id: other.id, cap: batch_mate.cap.clone() };
    match net.invoke(1, &swapped, "get", json!([]), SHORT).await {
        Err(InvokeError::Denied { reason }) => assert!(reason.contains("is for object"), "{reason}"),
        e => panic!("another object's capability was taken: {e:?}"),
    }
    assert_eq!(net.invoke(1, alone, "get", json!([]), SHORT).await.unwrap(), json!(1));
}
