//! Atomic actions on the in-process cluster: a transfer between accounts on two nodes
//! commits on both or on neither, through a lost reply, a failed deposit, and a crash of
//! the coordinator or the participant at every step of the two-phase commit; crossing
//! transfers over three nodes conserve money.

use clouds::{InvokeError, RawRef};
use objectd::atomic::Step;
use objectd::engine::faults::Role;
use serde_json::{json, Value};
use std::time::Duration;
use tests::network::Network;

const SHORT: Duration = Duration::from_secs(5);

async fn account(net: &Network, on: u16, balance: u64) -> RawRef {
    let a = net.create(1, "Account", on).await;
    net.invoke(1, &a, "deposit", json!([balance]), SHORT).await.unwrap();
    a
}

/// Waits (at most 10 s) until `node` has told every participant of its decided actions.
async fn told(net: &Network, node: u16) {
    for _ in 0..100 {
        let intents = net.engine(node).store().intents().unwrap();
        if !intents.iter().any(|(k, _)| k.starts_with(b"decided/")) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("node {node} did not finish telling its participants");
}

/// The balance, once the account is served again (a recovery may take a few retries).
async fn balance(net: &Network, via: u16, a: &RawRef) -> u64 {
    for _ in 0..150 {
        if let Ok(Value::Number(n)) = net.invoke(via, a, "balance", json!([]), Duration::from_secs(2)).await {
            return n.as_u64().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("account {} was not served within 15 s", a.id);
}

/// `a.transfer(b, 30)` through node 3, in a task (30 s deadline), for a test to act while
/// it is under way.
fn transfer_in_background(
    net: &Network,
    a: &RawRef,
    b: &RawRef,
) -> tokio::task::JoinHandle<Result<protocol::wire::Reply, InvokeError>> {
    let (engine, a, b) = (net.engine(3), a.clone(), b.clone());
    tokio::spawn(async move {
        let inv = tests::network::invocation(&a, "transfer", json!([b, 30]), Duration::from_secs(30));
        engine.invoke(inv).await
    })
}

/// Whether `node`'s store holds a prepared intent.
fn prepared_on(net: &Network, node: u16) -> bool {
    net.intents(node).iter().any(|(k, _)| k.starts_with(b"prepared/"))
}

/// An atomic transfer commits on both nodes; one whose deposit fails, or whose deposit's
/// reply is lost after the deposit ran, leaves both accounts as they were; a withdrawal
/// beyond the balance changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_commits_on_both_nodes_or_on_neither() {
    let net = Network::start(3).await;
    let (a, b) = (account(&net, 1, 100).await, account(&net, 2, 0).await);
    assert_eq!(net.invoke(1, &a, "transfer", json!([b, 30]), SHORT).await.unwrap(), json!(70));
    assert_eq!((balance(&net, 3, &a).await, balance(&net, 3, &b).await), (70, 30));

    // The deposit runs on node 2, its answer to node 1 is lost: the action aborts on both.
    // (First the coordinator finishes telling node 2 of the transfer before, in the
    // background: its decision record goes once node 2 answered.)
    told(&net, 1).await;
    net.drop_answers(1, 2, 1);
    let lost = net.invoke(1, &a, "transfer", json!([b, 20]), SHORT).await.unwrap_err();
    assert!(matches!(lost, InvokeError::Unavailable { .. } | InvokeError::Aborted { .. }), "{lost}");
    net.recover();
    assert_eq!((balance(&net, 3, &a).await, balance(&net, 3, &b).await), (70, 30), "nothing half done");

    // A deposit into something that is not an account fails: the withdrawal goes with it.
    let counter = net.create(1, "Counter", 2).await;
    let failed = net.invoke(1, &a, "transfer", json!([counter, 10]), SHORT).await.unwrap_err();
    assert!(matches!(failed, InvokeError::NoSuchMethod { .. }), "{failed}");
    let broke = net.invoke(1, &a, "transfer", json!([b, 1000]), SHORT).await.unwrap_err();
    assert!(broke.to_string().contains("insufficient funds"), "{broke}");
    assert_eq!((balance(&net, 3, &a).await, balance(&net, 3, &b).await), (70, 30));
    // And the locks are gone: both accounts take new transfers.
    assert_eq!(net.invoke(2, &b, "transfer", json!([a, 30]), SHORT).await.unwrap(), json!(0));
    assert_eq!(balance(&net, 1, &a).await, 100);
}

/// The coordinator (node 1, where `transfer` runs) or the participant (node 2, the
/// deposit) crashes at each step of the commit, and comes back. Before the decision was
/// durable the transfer is undone on both; after it, it is done on both. Either way the
/// money is conserved, and the accounts take transfers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_every_step_of_the_commit_leaves_the_transfer_whole() {
    // (the node that stops, its role, the step, whether the transfer is done afterwards)
    let points = [
        (2, Role::Participant, Step::Preparing, false),
        (2, Role::Participant, Step::Prepared, false),
        (1, Role::Coordinator, Step::VotesAsked, false),
        (1, Role::Coordinator, Step::Decided, true),
        (2, Role::Participant, Step::Applied, true),
        (1, Role::Coordinator, Step::Told, true),
    ];
    for (node, role, step, done) in points {
        eprintln!("crash of node {node} at {step}");
        let mut net = Network::start(3).await;
        let (a, b) = (account(&net, 1, 100).await, account(&net, 2, 50).await);
        let hit = net.engine(node).arm_action_fault(role, step);
        let transfer = {
            let (engine, a, b) = (net.engine(3), a.clone(), b.clone());
            tokio::spawn(async move {
                let inv = tests::network::invocation(&a, "transfer", json!([b, 30]), SHORT);
                engine.invoke(inv).await
            })
        };
        tokio::time::timeout(SHORT, hit.notified()).await.unwrap_or_else(|_| panic!("reached {step}"));
        if step == Step::VotesAsked {
            // The participant is prepared: its account is held, and says by what.
            let participant = net.engine(2);
            let describe = protocol::RequestBody::Describe(b.clone());
            match participant.handle(objectd::engine::Origin::Caller, describe).await {
                Ok(protocol::ResponseBody::Described(i)) => {
                    assert!(i.held_by.as_deref().is_some_and(|h| h.contains("prepared")), "{:?}", i.held_by)
                }
                other => panic!("{other:?}"),
            }
            // Nor does it move until the action is decided.
            let refused = net.migrate(2, &b, 3, protocol::migration::Strategy::Eager).await.unwrap_err();
            assert!(refused.to_string().contains("moves once the action is decided"), "{refused}");
        }
        net.crash(node);
        net.restart(node).await;
        let _ = transfer.await;
        let expected = if done { (70, 80) } else { (100, 50) };
        let got = (balance(&net, 3, &a).await, balance(&net, 3, &b).await);
        assert_eq!(got, expected, "after a crash of node {node} at {step}");
        assert_eq!(net.invoke(2, &b, "transfer", json!([a, 10]), SHORT).await.unwrap(), json!(expected.1 - 10));
        assert_eq!(balance(&net, 1, &a).await, expected.0 + 10, "at {step}");
    }
}

/// The coordinator hears no vote from a participant whose prepare is slow and aborts; the
/// participant rolls its part back while its prepared intent is still being written. The
/// intent goes too, so that a restart finds nothing to hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_rolled_back_while_it_prepares_leaves_no_prepared_intent() {
    let mut net = Network::start(3).await;
    let (a, b) = (account(&net, 1, 100).await, account(&net, 2, 50).await);
    let (hit, resume) = net.engine(2).arm_action_pause(Role::Participant, Step::Preparing);
    let transfer = transfer_in_background(&net, &a, &b);
    tokio::time::timeout(SHORT, hit.notified()).await.expect("the participant reached its prepare");
    assert!(prepared_on(&net, 2), "the prepared intent is written before the pause");
    // The coordinator waits 5 s for the vote, then aborts and tells the participant.
    let outcome = tokio::time::timeout(Duration::from_secs(20), transfer).await.expect("the transfer ended");
    assert!(matches!(outcome.expect("task"), Err(InvokeError::Aborted { .. })));
    let mut released = false;
    for _ in 0..100 {
        let describe = protocol::RequestBody::Describe(b.clone());
        if let Ok(protocol::ResponseBody::Described(i)) =
            net.engine(2).handle(objectd::engine::Origin::Caller, describe).await
        {
            if i.held_by.is_none() {
                released = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(released, "the abort rolled the participant's part back");
    resume.notify_one();
    let mut gone = false;
    for _ in 0..100 {
        if !prepared_on(&net, 2) {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "the prepare took its intent back once it found the part rolled back");
    net.crash(2);
    net.restart(2).await;
    assert_eq!((balance(&net, 3, &a).await, balance(&net, 3, &b).await), (100, 50));
    assert_eq!(net.invoke(2, &b, "transfer", json!([a, 10]), SHORT).await.unwrap(), json!(40));
}

/// The coordinator writes its decision to commit but its flush fails: the decision may or
/// may not be on its disk, so it tells nobody either outcome. The caller hears the action is
/// in doubt, the participant stays prepared, and the coordinator's restart settles it the
/// same on both nodes (here the decision was written, so both commit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_that_does_not_flush_is_in_doubt_until_the_coordinator_restarts() {
    let mut net = Network::start(3).await;
    let (a, b) = (account(&net, 1, 100).await, account(&net, 2, 50).await);
    let (hit, resume) = net.engine(2).arm_action_pause(Role::Participant, Step::Prepared);
    let transfer = transfer_in_background(&net, &a, &b);
    tokio::time::timeout(SHORT, hit.notified()).await.expect("the participant prepared");
    // The coordinator's disk breaks before it writes its decision.
    net.fail_flushes(1);
    resume.notify_one();
    let outcome = tokio::time::timeout(SHORT, transfer).await.expect("the transfer ended").expect("task");
    let Err(InvokeError::InDoubt { reason }) = outcome else { panic!("in doubt, not {outcome:?}") };
    assert!(reason.contains("node-1 restarts"), "it says what settles it: {reason}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(prepared_on(&net, 2), "the participant was told nothing: it stays prepared");
    net.crash(1);
    net.restart(1).await;
    told(&net, 1).await;
    assert_eq!((balance(&net, 3, &a).await, balance(&net, 3, &b).await), (70, 80));
    assert!(!prepared_on(&net, 2), "the participant committed its part");
}

/// Crossing transfers between six accounts on three nodes, 8 at a time: deadlocks between
/// them are broken (the victim's whole action rolls back) and retried; the total stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crossing_transfers_over_three_nodes_conserve_money() {
    let net = std::sync::Arc::new(Network::start(3).await);
    let mut accounts = Vec::new();
    for i in 0..6u16 {
        accounts.push(account(&net, 1 + i % 3, 100).await);
    }
    let accounts = std::sync::Arc::new(accounts);
    let workers: Vec<_> = (0..8usize)
        .map(|w| {
            let (net, accounts) = (net.clone(), accounts.clone());
            tokio::spawn(async move {
                let mut done = 0;
                for t in 0..15usize {
                    let (from, to) = ((w + t) % 6, (w * 5 + t * 7 + 1) % 6);
                    if from == to {
                        continue;
                    }
                    for _ in 0..20 {
                        let via = 1 + (t % 3) as u16;
                        let args = json!([accounts[to], 1 + (t % 5)]);
                        match net.invoke(via, &accounts[from], "transfer", args, SHORT).await {
                            Ok(_) => {
                                done += 1;
                                break;
                            }
                            Err(e) if e.to_string().contains("insufficient funds") => break,
                            Err(_) => tokio::time::sleep(Duration::from_millis(5 * (w as u64 + 1))).await,
                        }
                    }
                }
                done
            })
        })
        .collect();
    let mut done = 0;
    for w in workers {
        done += w.await.unwrap();
    }
    let mut total = 0;
    for a in accounts.iter() {
        total += balance(&net, 1, a).await;
    }
    assert_eq!(total, 600, "money is conserved ({done} transfers done)");
    assert!(done > 50, "most transfers went through: {done}");
}

/// A call asked to be atomic (`ThreadCtx::atomic`, what `clouds invoke --atomic` and
/// `Client::invoke_json_atomic` send) undoes the nested writes it made on other nodes when
/// it fails; the same call without it leaves them committed, as a method without the label
/// promises.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_asked_to_be_atomic_undoes_its_nested_writes_when_it_fails() {
    let net = Network::start(3).await;
    let (a, b, c) = (net.create(1, "Relay", 1).await, net.create(1, "Relay", 2).await, net.create(1, "Relay", 3).await);
    let visits = |r: RawRef| {
        let net = &net;
        async move { net.invoke(1, &r, "visits", json!([]), SHORT).await.unwrap() }
    };
    let plain = net.invoke(1, &a, "pass_then_fail", json!([[b, c]]), SHORT).await.unwrap_err();
    assert!(plain.to_string().contains("failing after the calls"), "{plain}");
    assert_eq!(
        (visits(a.clone()).await, visits(b.clone()).await, visits(c.clone()).await),
        (json!(0), json!(1), json!(1))
    );
    let mut inv = tests::network::invocation(&a, "pass_then_fail", json!([[b, c]]), SHORT);
    inv.thread.atomic = true;
    let atomic = net.engine(1).invoke(inv).await.unwrap_err();
    assert!(atomic.to_string().contains("failing after the calls"), "{atomic}");
    assert_eq!(
        (visits(a.clone()).await, visits(b.clone()).await, visits(c.clone()).await),
        (json!(0), json!(1), json!(1)),
        "all undone"
    );
    let mut inv = tests::network::invocation(&a, "pass", json!([[b, c]]), SHORT);
    inv.thread.atomic = true;
    net.engine(1).invoke(inv).await.unwrap();
    assert_eq!((visits(a).await, visits(b).await, visits(c).await), (json!(1), json!(2), json!(2)), "all done");
}

/// An atomic call whose deadline passes after its nested writes on other nodes ran fails
/// with `DeadlineExceeded`, and none of those writes stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_atomic_call_past_its_deadline_leaves_nothing() {
    let net = Network::start(3).await;
    let (a, b) = (net.create(1, "Relay", 1).await, net.create(1, "Relay", 2).await);
    let mut inv = tests::network::invocation(&a, "pass_then_sleep", json!([[b], 2000]), Duration::from_millis(300));
    inv.thread.atomic = true;
    let late = net.engine(1).invoke(inv).await.unwrap_err();
    assert!(matches!(late, InvokeError::DeadlineExceeded { .. }), "{late}");
    assert_eq!(
        net.invoke(3, &b, "visits", json!([]), SHORT).await.unwrap(),
        json!(0),
        "the deposit-like write is undone"
    );
    assert_eq!(net.invoke(3, &a, "visits", json!([]), SHORT).await.unwrap(), json!(0));
}

/// The coordinator dies for good after the participant prepared: the participant keeps the
/// account locked and says why; the administrator decides its part by hand (`clouds action
/// resolve`), and the account is served again, rolled back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_whose_coordinator_never_returns_is_resolved_by_hand() {
    let mut net = Network::start(3).await;
    let (a, b) = (account(&net, 1, 100).await, account(&net, 2, 50).await);
    let hit = net.engine(1).arm_action_fault(Role::Coordinator, Step::VotesAsked);
    let engine = net.engine(3);
    let inv = tests::network::invocation(&a, "transfer", json!([b, 30]), SHORT);
    let transfer = tokio::spawn(async move { engine.invoke(inv).await });
    tokio::time::timeout(SHORT, hit.notified()).await.expect("the votes were asked");
    net.crash(1);
    let _ = transfer.await;
    let describe = || {
        let (participant, b) = (net.engine(2), b.clone());
        async move {
            match participant.handle(objectd::engine::Origin::Caller, protocol::RequestBody::Describe(b)).await {
                Ok(protocol::ResponseBody::Described(i)) => i.held_by,
                other => panic!("{other:?}"),
            }
        }
    };
    let held = describe().await.expect("held by the prepared action");
    let id = held.split_whitespace().nth(1).expect("the action id").to_string();
    let still = net.invoke(3, &b, "balance", json!([]), Duration::from_millis(300)).await.unwrap_err();
    assert!(matches!(still, InvokeError::DeadlineExceeded { .. }), "locked while in doubt: {still}");
    let body = protocol::RequestBody::ResolveAction { action: "not-a-uuid".into(), commit: false };
    let bad = net.engine(2).handle(objectd::engine::Origin::Caller, body).await.unwrap_err();
    assert!(bad.to_string().contains("is not an action id"), "{bad}");
    let body = protocol::RequestBody::ResolveAction { action: id, commit: false };
    let done = net.engine(2).handle(objectd::engine::Origin::Caller, body).await.unwrap();
    assert!(matches!(done, protocol::ResponseBody::Decided(protocol::wire::Outcome::Aborted)), "{done:?}");
    assert_eq!(describe().await, None);
    assert_eq!(balance(&net, 3, &b).await, 50);
}
