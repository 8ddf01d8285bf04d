//! Placement through the in-process cluster: policies spread creations, `near:` follows
//! an object, a draining node takes nothing new, and the load vector measures calls.

use clouds::{InvokeError, NodeId, ObjectId};
use protocol::migration::Strategy;
use protocol::{InitialState, NodeMode, Placement};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;
use tests::network::Network;

const SHORT: Duration = Duration::from_secs(5);

async fn create(net: &Network, via: u16, placement: Placement) -> Result<clouds::RawRef, InvokeError> {
    net.engine(via).create("Counter", InitialState::Default, placement, net.user()).await
}

fn homes(ids: &[ObjectId]) -> BTreeMap<u16, usize> {
    let mut count = BTreeMap::new();
    for id in ids {
        *count.entry(id.home().0).or_default() += 1;
    }
    count
}

/// 60 creations through one node: least-loaded and two-choices spread them over the three
/// nodes (what was placed since a node's last report counts as its load, so a burst does
/// not pile onto one node); each node gets its share within a few objects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_loaded_and_two_choices_spread_a_burst_of_creations() {
    let net = Network::start(3).await;
    for policy in [Placement::LeastLoaded, Placement::TwoChoices] {
        let mut ids = Vec::new();
        for _ in 0..60 {
            ids.push(create(&net, 1, policy.clone()).await.unwrap().id);
        }
        let spread = homes(&ids);
        assert_eq!(spread.len(), 3, "{policy}: {spread:?}");
        assert!(spread.values().all(|n| (12..=28).contains(n)), "{policy}: {spread:?}");
    }
}

/// `near:` puts the new object on the node where the other one is now, after it moved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_places_next_to_an_object_wherever_it_moved() {
    let net = Network::start(3).await;
    let anchor = net.create(1, "Counter", 2).await;
    net.migrate(1, &anchor, 3, Strategy::Eager).await.unwrap();
    let near = create(&net, 1, Placement::Near(anchor.id)).await.unwrap();
    assert_eq!(near.id.home(), NodeId(3));
    let gone = ObjectId::new(NodeId(2));
    let err = create(&net, 1, Placement::Near(gone)).await.unwrap_err();
    assert!(matches!(err, InvokeError::NotFound { .. }), "{err:?}");
}

/// A draining node: placement passes it over, a creation named for it and a move to it are
/// refused with the reason, what it has keeps being served, and as a server again it takes
/// objects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_node_takes_nothing_new_but_serves_what_it_has() {
    let net = Network::start(3).await;
    let kept = net.create(1, "Counter", 3).await;
    let mover = net.create(1, "Counter", 1).await;
    net.engine(3).set_mode(NodeMode::Draining).await.unwrap();
    for _ in 0..20 {
        let id = create(&net, 1, Placement::LeastLoaded).await.unwrap().id;
        assert_ne!(id.home(), NodeId(3), "placed on the draining node");
    }
    let named = create(&net, 1, Placement::On(NodeId(3))).await.unwrap_err().to_string();
    assert!(named.contains("node-3 is draining and takes no new objects"), "{named}");
    // Asked of the draining node itself, a local creation goes elsewhere.
    assert_ne!(create(&net, 3, Placement::Local).await.unwrap().id.home(), NodeId(3));
    let moved = net.migrate(1, &mover, 3, Strategy::Eager).await.unwrap_err().to_string();
    assert!(moved.contains("node-3 refuses object") && moved.contains("draining"), "{moved}");
    assert_eq!(net.owners(mover.id), vec![1], "a refused move leaves the object where it was");
    assert_eq!(net.invoke(2, &kept, "incr", json!([5]), SHORT).await.unwrap(), json!(5));
    net.engine(3).set_mode(NodeMode::Server).await.unwrap();
    net.migrate(1, &mover, 3, Strategy::Eager).await.unwrap();
    assert_eq!(net.owners(mover.id), vec![3]);
}

/// The load vector counts the invocations that entered a node and the time they took.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_vector_measures_calls_and_busy_time() {
    let net = Network::start(2).await;
    let counter = net.create(1, "Counter", 2).await;
    let before = net.engine(2).load().unwrap();
    for _ in 0..50 {
        net.invoke(1, &counter, "incr", json!([1]), SHORT).await.unwrap();
    }
    let after = net.engine(2).load().unwrap();
    assert!(after.calls > before.calls && after.busy_ms > before.busy_ms, "{before:?} -> {after:?}");
    assert_eq!(after.objects, 1);
    assert!(after.memory_bytes > 0 && after.store_bytes > 0, "{after:?}");
    assert_eq!(net.engine(1).load().unwrap().calls, 0.0, "node 1 only passed the calls on");
}
