//! Objects moving on their own, in the in-process cluster: a drain that empties a node
//! while calls go on and hands its home records over (the node can then be stopped), its
//! undo, a workstation evicting its guests, rebalancing that settles without ping-pong, and
//! affinity putting two objects that call each other on one node.

use clouds::{NodeId, ObjectId, RawRef};
use objectd::config::Config;
use objectd::registry::Registry;
use protocol::decision::{DecisionKind, DrainReport, DrainState};
use protocol::migration::Strategy;
use protocol::{InitialState, NodeMode, Placement};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tests::network::Network;
use tests::relay::Relay;

const SHORT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(100);

fn registry(_: u16) -> Registry {
    Registry::standard().with::<Relay>().expect("registry")
}

/// Waits (at most `tries` polls) until `done` holds; panics with `what` otherwise.
async fn eventually(tries: u32, what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..tries {
        if done() {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
    panic!("{what}: not within {} ms", tries as u128 * POLL.as_millis());
}

async fn drained(net: &Network, node: u16) -> DrainReport {
    for _ in 0..600 {
        let report = net.engine(node).drain_report().unwrap();
        match report.state {
            DrainState::Done => return report,
            DrainState::Undone | DrainState::Failed => panic!("the drain ended short: {report:?}"),
            _ => tokio::time::sleep(POLL).await,
        }
    }
    panic!("the drain of node {node} did not finish: {:?}", net.engine(node).drain_report());
}

/// Increments every counter once per round through nodes 1 and 3 in turn until `stop`;
/// returns the increments that succeeded per counter, and the failures.
async fn keep_calling(net: &Network, counters: &[RawRef], stop: &AtomicBool) -> (BTreeMap<ObjectId, u64>, Vec<String>) {
    let (mut done, mut failed) = (BTreeMap::new(), Vec::new());
    let mut round = 0u32;
    while !stop.load(Ordering::Acquire) && round < 2_000 {
        for c in counters {
            let via = if round.is_multiple_of(2) { 1 } else { 3 };
            match net.invoke(via, c, "incr", json!([1]), SHORT).await {
                Ok(_) => *done.entry(c.id).or_default() += 1,
                Err(e) => failed.push(format!("{}: {e}", c.id)),
            }
        }
        round += 1;
    }
    (done, failed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_node_can_be_stopped_and_every_object_stays_reachable() {
    let mut net = Network::start(3).await;
    let mut counters = Vec::new();
    for _ in 0..12 {
        counters.push(net.create(2, "Counter", 2).await);
    }
    // Two left before the drain: node 2 keeps only their home records.
    net.migrate(1, &counters[0], 3, Strategy::Eager).await.unwrap();
    net.migrate(1, &counters[1], 1, Strategy::Eager).await.unwrap();
    // One of another home lives on node 2.
    let guest = net.create(3, "Counter", 3).await;
    net.migrate(1, &guest, 2, Strategy::Precopy).await.unwrap();
    counters.push(guest);

    let stop = AtomicBool::new(false);
    let calls = keep_calling(&net, &counters, &stop);
    let drain = async {
        let started = net.engine(2).drain().await.unwrap();
        assert_eq!((started.state, started.total), (DrainState::Moving, 11), "{started:?}");
        let report = drained(&net, 2).await;
        stop.store(true, Ordering::Release);
        report
    };
    let ((done, failed), report) = tokio::join!(calls, drain);
    assert_eq!(failed, Vec::<String>::new(), "no call fails during the drain");
    assert_eq!(report.moved(), 11, "{report:?}");
    assert_eq!(report.stuck().count(), 0, "{report:?}");
    assert_eq!(report.home_records, 12, "node 2's own twelve objects: {report:?}");
    let keeper = report.homes_to.expect("a keeper");
    assert_ne!(keeper, NodeId(2));
    assert_eq!(net.engine(keeper.0).keeps(), vec![NodeId(2)]);
    for c in &counters {
        let owners = net.owners(c.id);
        assert!(owners.len() == 1 && owners[0] != 2, "{} lives on {owners:?}", c.id);
    }
    assert_eq!(net.engine(2).mode(), NodeMode::Draining);

    // Stopped for good: every object is still there, with every increment.
    net.crash(2);
    for via in [1, 3] {
        for c in &counters {
            let expected = done.get(&c.id).copied().unwrap_or(0);
            assert_eq!(net.invoke(via, c, "get", json!([]), SHORT).await.unwrap(), json!(expected), "via node {via}");
        }
    }
    // A node that never called them finds them too, through the keeper's records.
    for c in &counters {
        assert!(net.engine(3).locate(c.id).await.is_ok(), "{} is found without node 2", c.id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_undone_takes_its_home_records_back() {
    let net = Network::start(3).await;
    let mut counters = Vec::new();
    for _ in 0..4 {
        counters.push(net.create(3, "Counter", 3).await);
    }
    net.engine(3).drain().await.unwrap();
    let report = drained(&net, 3).await;
    let keeper = report.homes_to.expect("a keeper").0;
    assert_eq!(net.engine(keeper).keeps(), vec![NodeId(3)]);
    // While drained, a move to it is refused.
    let refused = net.migrate(1, &counters[0], 3, Strategy::Eager).await.unwrap_err();
    assert!(refused.to_string().contains("draining"), "{refused}");

    let undone = net.engine(3).set_mode(NodeMode::Server).await.unwrap();
    assert_eq!(undone, NodeMode::Server);
    assert_eq!(net.engine(3).drain_report().unwrap().state, DrainState::Undone);
    assert!(net.engine(keeper).keeps().is_empty(), "the keeper gave them back");
    for c in &counters {
        net.invoke(3, c, "incr", json!([2]), SHORT).await.unwrap();
        assert_eq!(net.invoke(1, c, "get", json!([]), SHORT).await.unwrap(), json!(2));
    }
    // It takes objects again, and its home records follow them.
    net.migrate(1, &counters[0], 3, Strategy::Eager).await.unwrap();
    net.migrate(3, &counters[0], 2, Strategy::Eager).await.unwrap();
    assert_eq!(net.engine(1).locate(counters[0].id).await.unwrap(), NodeId(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workstation_evicts_its_guests_when_the_owner_comes_back() {
    let net = Network::start(3).await;
    net.engine(3).set_mode(NodeMode::Workstation).await.unwrap();
    // The owner is away: the workstation takes guests.
    let placed = net.create(1, "Counter", 3).await;
    let moved = net.create(1, "Counter", 1).await;
    net.migrate(1, &moved, 3, Strategy::Eager).await.unwrap();
    let own = net.engine(3).create("Counter", InitialState::Default, Placement::Local, net.user()).await.unwrap();
    assert_eq!((net.owners(placed.id), net.owners(moved.id), net.owners(own.id)), (vec![3], vec![3], vec![3]));

    net.engine(3).owner_activity();
    eventually(100, "the guests leave", || net.owners(placed.id) != vec![3] && net.owners(moved.id) != vec![3]).await;
    assert_eq!(net.owners(moved.id), vec![1], "back to its home");
    let to = net.owners(placed.id);
    assert!(to == vec![1] || to == vec![2], "to a server: {to:?}");
    assert_eq!(net.owners(own.id), vec![3], "its own objects stay");
    let evictions: Vec<_> =
        net.engine(3).decisions(None).into_iter().filter(|d| d.kind == DecisionKind::Evicted).collect();
    assert_eq!(evictions.len(), 2, "{evictions:#?}");
    assert!(evictions.iter().all(|d| d.reason.contains("the owner of workstation node-3 is back")), "{evictions:#?}");

    // With the owner there it takes nothing from elsewhere, but its own objects come home.
    let e = net.engine(1).create("Counter", InitialState::Default, Placement::On(NodeId(3)), net.user()).await;
    assert!(e.unwrap_err().to_string().contains("workstation whose owner is present"));
    let e = net.migrate(1, &moved, 3, Strategy::Eager).await.unwrap_err();
    assert!(e.to_string().contains("workstation whose owner is present"), "{e}");
    net.migrate(1, &own, 1, Strategy::Eager).await.unwrap();
    net.migrate(1, &own, 3, Strategy::Eager).await.unwrap();
    assert_eq!(net.invoke(2, &placed, "incr", json!([1]), SHORT).await.unwrap(), json!(1));
}

fn balancing(_: u16, config: &mut Config) {
    config.rebalance = true;
    config.rebalance_every_ms = 200;
    config.rebalance_min_busy_ms = 20.0;
    // Short: what keeps objects from ping-ponging here is the hysteresis, not the cooldown.
    config.move_cooldown_ms = 500;
}

/// Calls `pass_then_sleep([], 20)` on each object in a loop of its own until `stop`.
async fn keep_busy(net: &Network, objects: &[RawRef], stop: &AtomicBool) -> usize {
    let loops = objects.iter().map(|o| async move {
        let mut failed = 0;
        for _ in 0..5_000 {
            if stop.load(Ordering::Acquire) {
                break;
            }
            if net.invoke(2, o, "pass_then_sleep", json!([[], 20]), SHORT).await.is_err() {
                failed += 1;
            }
        }
        failed
    });
    futures::future::join_all(loops).await.into_iter().sum()
}

fn spread(net: &Network, objects: &[RawRef]) -> BTreeMap<u16, usize> {
    let mut count = BTreeMap::new();
    for o in objects {
        for n in net.owners(o.id) {
            *count.entry(n).or_default() += 1;
        }
    }
    count
}

fn moves(net: &Network, kind: DecisionKind) -> usize {
    (1..=3).map(|n| net.engine(n).decisions(None).iter().filter(|d| d.kind == kind).count()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalancing_spreads_a_busy_node_and_settles() {
    let net = Network::start_configured(3, registry, balancing).await;
    let mut objects = Vec::new();
    for _ in 0..6 {
        objects.push(net.create(1, "Relay", 1).await);
    }
    let stop = AtomicBool::new(false);
    let watch = async {
        let mut even = false;
        for _ in 0..200 {
            tokio::time::sleep(POLL).await;
            let now = spread(&net, &objects);
            if now.len() == 3 && now.values().all(|n| *n == 2) && moves(&net, DecisionKind::Rebalanced) >= 4 {
                even = true;
                break;
            }
        }
        let settled = moves(&net, DecisionKind::Rebalanced);
        // The same load for a while longer: nothing moves back and forth.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let later = moves(&net, DecisionKind::Rebalanced);
        stop.store(true, Ordering::Release);
        (even, settled, later)
    };
    let (failed, (even, settled, later)) = tokio::join!(keep_busy(&net, &objects, &stop), watch);
    assert_eq!(failed, 0, "no call fails while objects move");
    assert!(even, "two objects on each node: {:?}", spread(&net, &objects));
    let log: Vec<String> = (1..=3).flat_map(|n| net.engine(n).decisions(None)).map(|d| d.to_string()).collect();
    assert_eq!(settled, 4, "four moves even six equal objects out: {log:#?}");
    assert_eq!(later, settled, "nothing moved once the load was even: {log:#?}");
    let why = net.engine(1).decisions(None);
    let first = why.iter().find(|d| d.kind == DecisionKind::Rebalanced).expect("a rebalancing decision");
    assert!(first.reason.contains("the mean busy time") && first.reason.contains("expected gain"), "{first}");
}

fn grouping(_: u16, config: &mut Config) {
    config.affinity = true;
    config.rebalance_every_ms = 200;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_that_call_each_other_end_up_on_one_node() {
    let net = Network::start_configured(3, registry, grouping).await;
    let a = net.create(1, "Relay", 1).await;
    let b = net.create(1, "Relay", 2).await;
    let stop = AtomicBool::new(false);
    let calls = async {
        for _ in 0..20_000 {
            if stop.load(Ordering::Acquire) {
                break;
            }
            net.invoke(3, &a, "look", json!([[b]]), SHORT).await.unwrap();
        }
    };
    let watch = async {
        // The decision is recorded once the move is over, a little after the switch.
        let together = || net.owners(a.id) == net.owners(b.id) && moves(&net, DecisionKind::Affinity) > 0;
        eventually(150, "a and b on one node", together).await;
        let moved = moves(&net, DecisionKind::Affinity);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let later = moves(&net, DecisionKind::Affinity);
        stop.store(true, Ordering::Release);
        (moved, later)
    };
    let ((), (moved, later)) = tokio::join!(calls, watch);
    assert_eq!((moved, later), (1, 1), "one move, and it stays");
    // Of the two, the one with the smaller id moved to the other.
    let (mover, stayer) = if a.id < b.id { (&a, &b) } else { (&b, &a) };
    assert_eq!(net.owners(mover.id), vec![stayer.id.home().0]);
    let d = (1..=3)
        .flat_map(|n| net.engine(n).decisions(Some(mover.id)))
        .find(|d| d.kind == DecisionKind::Affinity)
        .expect("the affinity decision");
    assert!(d.reason.contains("cross-node calls/s"), "{d}");
}

/// Two nodes: node 2 is drained, node 1 keeps its home records. `role:step` is armed, the
/// node it names stops there and is crashed and restarted; the drain still ends, and with
/// node 2 stopped for good every object answers with what it had.
async fn handover_survives_a_crash_at(role: objectd::engine::faults::Role, step: objectd::engine::faults::Handover) {
    use objectd::engine::faults::Role;
    let mut net = Network::start(2).await;
    let mut counters = Vec::new();
    for i in 0..3 {
        let c = net.create(2, "Counter", 2).await;
        net.invoke(1, &c, "incr", json!([i + 1]), SHORT).await.unwrap();
        counters.push(c);
    }
    let crashed = if role == Role::Keeper { 1 } else { 2 };
    let hit = net.engine(crashed).arm_handover_fault(role, step);
    net.engine(2).drain().await.unwrap();
    tokio::time::timeout(SHORT * 4, hit.notified()).await.expect("the armed step is reached");
    net.crash(crashed);
    net.restart(crashed).await;
    let report = drained(&net, 2).await;
    assert_eq!(report.homes_to, Some(NodeId(1)), "{report:?}");
    assert_eq!(net.engine(1).keeps(), vec![NodeId(2)]);
    net.crash(2);
    for (i, c) in counters.iter().enumerate() {
        assert_eq!(net.invoke(1, c, "get", json!([]), SHORT).await.unwrap(), json!(i + 1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keeper_crashed_after_adopting_the_records_still_gets_them() {
    use objectd::engine::faults::{Handover, Role};
    handover_survives_a_crash_at(Role::Keeper, Handover::Adopted).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_node_crashed_after_the_handover_finishes_it_on_restart() {
    use objectd::engine::faults::{Handover, Role};
    handover_survives_a_crash_at(Role::Drained, Handover::Handed).await;
}

/// A class only the drained node has: its objects are reported with the reason and stay;
/// the drain still hands the home records over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_that_can_move_nowhere_is_reported_and_stays() {
    fn only_node_2_runs_relays(node: u16) -> Registry {
        let standard = Registry::standard();
        if node == 2 {
            standard.with::<Relay>().expect("registry")
        } else {
            standard
        }
    }
    let net = Network::start_with(3, only_node_2_runs_relays).await;
    let relay = net.create(2, "Relay", 2).await;
    let counter = net.create(2, "Counter", 2).await;
    net.engine(2).drain().await.unwrap();
    let report = drained(&net, 2).await;
    assert_eq!(report.moved(), 1, "{report:?}");
    let stuck: Vec<_> = report.stuck().collect();
    assert_eq!(stuck.len(), 1, "{report:?}");
    assert_eq!((stuck[0].id, stuck[0].class.as_str()), (relay.id, "Relay"));
    assert!(stuck[0].reason.contains("Relay"), "the reason names the class: {}", stuck[0].reason);
    assert_eq!(net.owners(relay.id), vec![2], "it stays, served");
    assert_eq!(net.invoke(1, &relay, "visits", json!([]), SHORT).await.unwrap(), json!(0));
    assert_ne!(net.owners(counter.id), vec![2]);
}

/// A pinned object is never moved by rebalancing; moved by hand, it stays pinned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_object_stays_where_it_is_put() {
    let net = Network::start_configured(2, registry, balancing).await;
    let req = |pinned| protocol::wire::CreateRequest {
        class: "Relay".into(),
        state: InitialState::Default,
        placement: Placement::On(NodeId(1)),
        owner: net.user(),
        pinned,
        placed_by: None,
    };
    let pinned = net.engine(1).create_request(req(true)).await.unwrap();
    let free = net.engine(1).create_request(req(false)).await.unwrap();
    let stop = AtomicBool::new(false);
    let objects = [pinned.clone(), free.clone()];
    let watch = async {
        eventually(100, "the free one moves", || net.owners(free.id) == vec![2]).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop.store(true, Ordering::Release);
    };
    let (failed, ()) = tokio::join!(keep_busy(&net, &objects, &stop), watch);
    assert_eq!(failed, 0);
    assert_eq!(net.owners(pinned.id), vec![1], "pinned: it stays");
    assert!(net.engine(1).hot(10).unwrap().iter().any(|o| o.id == pinned.id && o.pinned));
    net.migrate(1, &pinned, 2, Strategy::Eager).await.unwrap();
    net.invoke(1, &pinned, "visits", json!([]), SHORT).await.unwrap();
    assert!(net.engine(2).hot(10).unwrap().iter().any(|o| o.id == pinned.id && o.pinned), "the mark moved with it");
}
