//! Section 9: objects moving on their own, in the in-process cluster of 3 nodes.
//!
//! - Skewed load: 12 `Worker` objects all created on node 1, threads calling them with
//!   Zipf(1) weights. A `Worker` call holds one of its node's 2 "cores" (a per-node
//!   semaphore) for 2 ms: a node serves at most 1 000 calls/s, so where the objects are
//!   decides the throughput. Throughput with rebalancing off, placed evenly by hand, and
//!   with rebalancing on (the default settings): per second, and the time until it reaches
//!   0.9x of the even placement's.
//! - Affinity: 8 pairs of `Relay` objects, one of each pair on node 1 and the other on
//!   node 2, each call bouncing 5 times between the two (every link delayed 1 ms, as a LAN
//!   hop); cross-node messages per second and throughput with affinity off, then on.
//! - Drain: 1 000 objects on node 2 drained while 4 callers keep calling them; the time it
//!   takes and the calls that failed.

use clouds::{methods, Ctx, NodeId, Object, RawRef};
use objectd::config::Config;
use objectd::registry::Registry;
use protocol::decision::DrainState;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tests::network::Network;
use tests::relay::Relay;

const DEADLINE: Duration = Duration::from_secs(30);
const CORES: usize = 2;
const WORK: Duration = Duration::from_millis(2);

/// The cores of each node: a `Worker` call holds one while it works.
fn cores(node: NodeId) -> Arc<tokio::sync::Semaphore> {
    static CORES_OF: OnceLock<Mutex<HashMap<NodeId, Arc<tokio::sync::Semaphore>>>> = OnceLock::new();
    let map = CORES_OF.get_or_init(Default::default);
    map.lock().expect("cores mutex").entry(node).or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(CORES))).clone()
}

/// An object whose calls cost its node CPU time (modelled: a core held for 2 ms).
#[derive(Object, Default, Serialize, Deserialize)]
pub struct Worker {
    done: u64,
}

#[methods]
impl Worker {
    pub async fn work(&self, ctx: &Ctx) -> u64 {
        let node = ctx.node().unwrap_or(NodeId(0));
        let _core = cores(node).acquire_owned().await.expect("the semaphore is never closed");
        tokio::time::sleep(WORK).await;
        self.done
    }
}

fn registry(_: u16) -> Registry {
    Registry::standard().with::<Relay>().and_then(|r| r.with::<Worker>()).expect("registry")
}

fn off(_: u16, _: &mut Config) {}

fn rebalancing(_: u16, c: &mut Config) {
    let defaults = Config::default();
    (c.rebalance, c.rebalance_every_ms, c.rebalance_margin) =
        (true, defaults.rebalance_every_ms, defaults.rebalance_margin);
}

fn grouping(_: u16, c: &mut Config) {
    c.affinity = true;
}

/// Zipf(1) weights over `n` objects, as cumulative shares.
fn zipf(n: usize) -> Vec<f64> {
    let w: Vec<f64> = (1..=n).map(|k| 1.0 / k as f64).collect();
    let total: f64 = w.iter().sum();
    w.iter()
        .scan(0.0, |acc, x| {
            *acc += x / total;
            Some(*acc)
        })
        .collect()
}

/// `threads` callers, each picking objects by the cumulative weights `cdf`, for `run`;
/// calls done per second of the run.
async fn skewed_load(net: &Network, objects: &[RawRef], cdf: &[f64], threads: usize, run: Duration) -> Vec<u64> {
    let seconds = run.as_secs() as usize;
    let per_second: Vec<AtomicU64> = (0..seconds).map(|_| AtomicU64::new(0)).collect();
    let started = Instant::now();
    let callers = (0..threads).map(|t| {
        let per_second = &per_second;
        async move {
            let mut x = 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(t as u64 + 1);
            for _ in 0..1_000_000 {
                let s = started.elapsed().as_secs() as usize;
                if s >= seconds {
                    break;
                }
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let u = (x >> 11) as f64 / (1u64 << 53) as f64;
                let i = cdf.iter().position(|c| u <= *c).unwrap_or(cdf.len() - 1);
                let via = 1 + (t % 3) as u16;
                if net.invoke(via, &objects[i], "work", json!([]), DEADLINE).await.is_ok() {
                    per_second[s.min(seconds - 1)].fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    });
    futures::future::join_all(callers).await;
    per_second.iter().map(|c| c.load(Ordering::Relaxed)).collect()
}

async fn skew() {
    const OBJECTS: usize = 12;
    const THREADS: usize = 48;
    let cdf = zipf(OBJECTS);
    let weights: Vec<f64> = cdf.iter().scan(0.0, |prev, c| Some(c - std::mem::replace(prev, *c))).collect();
    println!("| run | calls/s (per second) | mean calls/s |");
    println!("|---|---|---:|");
    let mean = |v: &[u64]| v.iter().sum::<u64>() as f64 / v.len().max(1) as f64;
    let show = |name: &str, v: &[u64]| {
        let each = v.iter().map(u64::to_string).collect::<Vec<_>>().join(" ");
        println!("| {name} | {each} | {:.0} |", mean(v));
    };
    // All on node 1, nothing moves.
    let net = Network::start_configured(3, registry, off).await;
    let mut objects = Vec::new();
    for _ in 0..OBJECTS {
        objects.push(net.create(1, "Worker", 1).await);
    }
    let all_on_one = skewed_load(&net, &objects, &cdf, THREADS, Duration::from_secs(5)).await;
    show("all on node 1, rebalancing off", &all_on_one);
    drop(net);
    // Placed evenly by hand: heaviest first onto the lightest node.
    let net = Network::start_configured(3, registry, off).await;
    let mut sums = [0.0f64; 3];
    let mut objects = Vec::new();
    for w in &weights {
        let node = (0..3).min_by(|a, b| sums[*a].total_cmp(&sums[*b])).expect("three nodes");
        sums[node] += w;
        objects.push(net.create(1, "Worker", node as u16 + 1).await);
    }
    let even = skewed_load(&net, &objects, &cdf, THREADS, Duration::from_secs(5)).await;
    show("placed evenly by hand", &even);
    let target = 0.9 * mean(&even);
    drop(net);
    // All on node 1, rebalancing on with the default settings.
    let net = Network::start_configured(3, registry, rebalancing).await;
    let mut objects = Vec::new();
    for _ in 0..OBJECTS {
        objects.push(net.create(1, "Worker", 1).await);
    }
    let on = skewed_load(&net, &objects, &cdf, THREADS, Duration::from_secs(20)).await;
    show("all on node 1, rebalancing on (defaults)", &on);
    let reached =
        on.iter().position(|c| *c as f64 >= target).map_or("not within 20 s".to_string(), |s| format!("{} s", s + 1));
    let moves: usize = (1..=3)
        .map(|n| {
            net.engine(n)
                .decisions(None)
                .iter()
                .filter(|d| d.kind == protocol::decision::DecisionKind::Rebalanced)
                .count()
        })
        .sum();
    let spread: Vec<usize> = (1..=3).map(|n| objects.iter().filter(|o| net.owners(o.id) == vec![n]).count()).collect();
    println!(
        "\n0.9x of the even placement ({target:.0} calls/s) reached after {reached} (target: within 10 s); \
         {moves} rebalancing moves; objects per node at the end: {spread:?}\n"
    );
}

async fn affinity() {
    const PAIRS: usize = 8;
    const BOUNCES: usize = 5;
    let run = |net: Arc<Network>, pairs: Arc<Vec<(RawRef, RawRef)>>, seconds: u64| async move {
        let stop = AtomicBool::new(false);
        let done = AtomicU64::new(0);
        let before: u64 = [(1, 2), (2, 1)].iter().map(|(a, b)| net.delivered(*a, *b)).sum();
        let started = Instant::now();
        let callers = pairs.iter().map(|(a, b)| {
            let (net, stop, done) = (&net, &stop, &done);
            async move {
                let mut rest = Vec::new();
                for i in 0..BOUNCES {
                    rest.push(if i % 2 == 0 { b.clone() } else { a.clone() });
                }
                for _ in 0..100_000 {
                    if stop.load(Ordering::Acquire) || started.elapsed().as_secs() >= seconds {
                        break;
                    }
                    if net.invoke(3, a, "look", json!([rest]), DEADLINE).await.is_ok() {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
        futures::future::join_all(callers).await;
        stop.store(true, Ordering::Release);
        let secs = started.elapsed().as_secs_f64();
        let after: u64 = [(1, 2), (2, 1)].iter().map(|(a, b)| net.delivered(*a, *b)).sum();
        (done.load(Ordering::Relaxed) as f64 / secs, (after - before) as f64 / secs)
    };
    println!("| run | calls/s | node-1 <-> node-2 messages/s |");
    println!("|---|---:|---:|");
    for (name, configure, on) in
        [("affinity off", off as fn(u16, &mut Config), false), ("affinity on, first 5 s", grouping, true)]
    {
        let net = Arc::new(Network::start_configured(3, registry, configure).await);
        for a in 1..=3 {
            for b in 1..=3 {
                if a != b {
                    net.delay(a, b, Duration::from_millis(1));
                }
            }
        }
        let mut pairs = Vec::new();
        for _ in 0..PAIRS {
            pairs.push((net.create(1, "Relay", 1).await, net.create(1, "Relay", 2).await));
        }
        let pairs = Arc::new(pairs);
        let (calls, cross) = run(net.clone(), pairs.clone(), 5).await;
        println!("| {name} | {calls:.0} | {cross:.0} |");
        if on {
            let (calls, cross) = run(net.clone(), pairs.clone(), 5).await;
            println!("| affinity on, next 5 s | {calls:.0} | {cross:.0} |");
            let together = pairs.iter().filter(|(a, b)| net.owners(a.id) == net.owners(b.id)).count();
            println!("\n{together} of {PAIRS} pairs on one node after 10 s.\n");
        }
    }
}

async fn drain() {
    const OBJECTS: usize = 1_000;
    let net = Network::start_configured(3, registry, off).await;
    let mut objects = Vec::new();
    for _ in 0..OBJECTS {
        objects.push(net.create(2, "Counter", 2).await);
    }
    let stop = AtomicBool::new(false);
    let (ok, failed) = (AtomicU64::new(0), AtomicU64::new(0));
    let callers = (0..4u64).map(|t| {
        let (net, objects, stop, ok, failed) = (&net, &objects, &stop, &ok, &failed);
        async move {
            let mut i = t as usize * 7;
            for _ in 0..1_000_000 {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                i = (i * 31 + 17) % objects.len();
                let via = if t % 2 == 0 { 1 } else { 3 };
                match net.invoke(via, &objects[i], "incr", json!([1]), DEADLINE).await {
                    Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }
    });
    let drain = async {
        let started = Instant::now();
        net.engine(2).drain().await.expect("drain starts");
        let mut report = None;
        for _ in 0..6_000 {
            let r = net.engine(2).drain_report().expect("a report");
            if matches!(r.state, DrainState::Done | DrainState::Undone | DrainState::Failed) {
                report = Some(r);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop.store(true, Ordering::Release);
        (started.elapsed(), report)
    };
    let (_, (took, report)) = tokio::join!(futures::future::join_all(callers), drain);
    let report = report.expect("the drain ended within 5 minutes");
    println!(
        "| objects | drain time | moved | could not move | home records handed over | calls during it | failed calls |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {OBJECTS} | {:.1} s | {} | {} | {} | {} | {} |",
        took.as_secs_f64(),
        report.moved(),
        report.stuck().count(),
        report.home_records,
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
}

pub async fn run() {
    println!("\n## 9. Balancing, in-process cluster of 3 nodes\n");
    println!("Skewed load: 12 Workers (2 ms on one of 2 cores per node per call), Zipf(1), 48 threads.\n");
    skew().await;
    println!("Affinity: 8 pairs, each call bouncing 5 times between the pair, every link delayed 1 ms.\n");
    affinity().await;
    println!("Drain of a node holding 1 000 Counters while 4 callers keep incrementing them.\n");
    drain().await;
}
