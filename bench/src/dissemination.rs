//! Section 10: how load information travels, compared in a deterministic simulation
//! (pure code, seeded): 10, 100 and 1000 nodes, the same skewed workload, and the
//! rebalancing policy the nodes run (`objectd::balance::rebalance`, the real function)
//! driven by what each dissemination scheme lets a node know:
//!
//! - **gossip** as implemented (chitchat): every second each node publishes its load and
//!   reconciles with 3 random peers (syn, syn-ack, ack); an exchange carries at most
//!   `MTU_ENTRIES` entries, the ones the other side is furthest behind on.
//! - **random subset** (MOSIX): every second each node sends its own load and the freshest
//!   half of its small vector (`VECTOR` entries) to one random node, which keeps the
//!   freshest `VECTOR` entries it knows.
//! - **anti-tasks** with load-state vectors (Lau et al.): a node below the mean sends an
//!   anti-task each second; it travels (up to `HOPS` hops, or until it reaches a node above
//!   1.25x the mean) towards the busiest node its load-state vector knows, and at every
//!   node it visits the two exchange what they know (the node learns of the light nodes,
//!   the vector of the busy ones), so that busy nodes learn of light ones.
//! - **central**: every node reports to a coordinator each second and gets the whole table
//!   back (a round old).
//!
//! Per scheme: messages per node per second (and load entries carried), the mean age of
//! what a node knows of the others (and how many of them it knows), and how far from even
//! the load ends (max over mean, and the coefficient of variation), with the time it took
//! to come within 1.25x of the mean. Moves take effect at once; a moved object is frozen
//! for the cooldown, as in the nodes.

use clouds::{NodeId, ObjectId};
use objectd::balance::{rebalance, ObjectStat, Pending, Settings, Situation};
use protocol::{Liveness, Load, NodeMode, NodeView};
use std::collections::HashMap;
use std::time::Duration;

const SECONDS: u64 = 60;
const OBJECTS_PER_NODE: usize = 8;
const MEAN_BUSY_MS: f64 = 300.0;
/// The share of nodes every object starts on.
const HOT_SHARE: f64 = 0.2;
const COOLDOWN_S: u64 = 30;
const GOSSIP_FANOUT: usize = 3;
const MTU_ENTRIES: usize = 256;
const VECTOR: usize = 16;
const HOPS: usize = 8;
const CLASS: &str = "Worker";

/// splitmix64: a seeded, portable source of numbers.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scheme {
    Gossip,
    RandomSubset,
    AntiTasks,
    Central,
}

impl Scheme {
    fn name(self) -> &'static str {
        match self {
            Scheme::Gossip => "gossip (chitchat, fanout 3)",
            Scheme::RandomSubset => "random subset (MOSIX, 16 entries)",
            Scheme::AntiTasks => "anti-tasks + load-state vectors",
            Scheme::Central => "central coordinator",
        }
    }
}

/// What one node believes of another: its load and when it was measured (second).
#[derive(Clone, Copy)]
struct Entry {
    busy: f64,
    at: u64,
}

struct World {
    n: usize,
    /// Each object's load (ms/s), node, and when it last moved.
    objects: Vec<(f64, usize, Option<u64>)>,
    views: Vec<HashMap<usize, Entry>>,
    pending: Vec<Pending>,
    /// The coordinator's table (central scheme): every node decides from it, and it
    /// learns each node's moves at once.
    table: HashMap<usize, Entry>,
    /// Anti-tasks: the light nodes whose anti-task reached each node this round, with their
    /// load then: the only nodes it sends load to (one anti-task, one transfer).
    invited: Vec<Vec<(usize, f64)>>,
    messages: u64,
    entries: u64,
    dice: Dice,
}

impl World {
    fn new(n: usize, seed: u64) -> World {
        let mut dice = Dice(seed);
        let m = n * OBJECTS_PER_NODE;
        // Object loads spread 0.2x to 1.8x around their mean: none alone above a node's share.
        let per_object = MEAN_BUSY_MS / OBJECTS_PER_NODE as f64;
        let weights: Vec<f64> = (0..m).map(|_| per_object * (0.2 + 1.6 * dice.unit())).collect();
        let hot = ((n as f64 * HOT_SHARE).ceil() as usize).max(1);
        let objects = weights.into_iter().map(|w| (w, dice.below(hot), None)).collect();
        World {
            n,
            objects,
            views: vec![HashMap::new(); n],
            pending: (0..n).map(|_| Pending::new(Duration::from_secs(1))).collect(),
            table: HashMap::new(),
            invited: vec![Vec::new(); n],
            messages: 0,
            entries: 0,
            dice,
        }
    }

    fn loads(&self) -> Vec<f64> {
        let mut load = vec![0.0; self.n];
        for (w, node, _) in &self.objects {
            load[*node] += w;
        }
        load
    }

    /// Merges `from`'s view into `to`'s (the newer entry wins), at most `limit` entries,
    /// those `to` is furthest behind on; returns how many went.
    fn merge(&mut self, from: usize, to: usize, limit: usize) -> u64 {
        let mut offered: Vec<(u64, usize, Entry)> = self.views[from]
            .iter()
            .filter(|(k, _)| **k != to)
            .filter_map(|(k, e)| {
                let behind = self.views[to].get(k).map_or(u64::MAX, |mine| e.at.saturating_sub(mine.at));
                (behind > 0).then_some((behind, *k, *e))
            })
            .collect();
        offered.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        offered.truncate(limit);
        let sent = offered.len() as u64;
        for (_, k, e) in offered {
            self.views[to].insert(k, e);
        }
        sent
    }

    fn disseminate(&mut self, scheme: Scheme, now: u64, loads: &[f64]) {
        let n = self.n;
        for (i, load) in loads.iter().enumerate() {
            self.views[i].insert(i, Entry { busy: *load, at: now });
        }
        match scheme {
            Scheme::Gossip => {
                for i in 0..n {
                    for _ in 0..GOSSIP_FANOUT.min(n - 1) {
                        let mut j = self.dice.below(n - 1);
                        if j >= i {
                            j += 1;
                        }
                        // syn (digest), syn-ack (deltas for i), ack (deltas for j).
                        self.messages += 3;
                        self.entries += self.merge(j, i, MTU_ENTRIES) + self.merge(i, j, MTU_ENTRIES);
                    }
                }
            }
            Scheme::RandomSubset => {
                for i in 0..n {
                    let mut j = self.dice.below(n - 1);
                    if j >= i {
                        j += 1;
                    }
                    self.messages += 1;
                    self.entries += self.merge(i, j, VECTOR / 2);
                    trim(&mut self.views[j], VECTOR, j);
                }
            }
            Scheme::AntiTasks => {
                self.invited.iter_mut().for_each(Vec::clear);
                let mean = loads.iter().sum::<f64>() / n as f64;
                for origin in 0..n {
                    if loads[origin] >= mean * 0.875 {
                        continue;
                    }
                    // The anti-task carries a load-state vector, starting with its origin's.
                    let mut vector = self.views[origin].clone();
                    let mut visited = vec![origin];
                    let mut at = origin;
                    for _ in 0..HOPS {
                        let next = vector
                            .iter()
                            .filter(|(k, e)| !visited.contains(k) && e.busy > mean)
                            .max_by(|a, b| a.1.busy.total_cmp(&b.1.busy).then(b.0.cmp(a.0)))
                            .map(|(k, _)| *k);
                        let next = next.unwrap_or_else(|| {
                            let mut j = self.dice.below(n - 1);
                            if j >= at {
                                j += 1;
                            }
                            j
                        });
                        self.messages += 1;
                        self.entries += vector.len() as u64;
                        at = next;
                        visited.push(at);
                        // The node learns the light nodes the vector knows; the vector
                        // learns what the node knows.
                        for (k, e) in &vector {
                            let newer = self.views[at].get(k).is_none_or(|mine| mine.at < e.at);
                            if newer && *k != at {
                                self.views[at].insert(*k, *e);
                            }
                        }
                        for (k, e) in self.views[at].clone() {
                            if vector.get(&k).is_none_or(|v| v.at < e.at) {
                                vector.insert(k, e);
                            }
                        }
                        trim(&mut vector, VECTOR, origin);
                        trim(&mut self.views[at], VECTOR * 2, at);
                        if loads[at] > mean * 1.25 {
                            self.invited[at].push((origin, loads[origin]));
                            break;
                        }
                    }
                }
            }
            Scheme::Central => {
                // Reports in, and the table (as of the last round) back out.
                // Reports in; each node's decision asks the coordinator's table (a request
                // and an answer carrying it).
                self.messages += 3 * n as u64;
                self.entries += (n + n * n) as u64;
                self.table = loads.iter().enumerate().map(|(i, b)| (i, Entry { busy: *b, at: now })).collect();
            }
        }
    }

    /// Every node decides from its view, in a random order; moves apply at once.
    fn decide(&mut self, scheme: Scheme, now: u64, settings: &Settings) {
        let n = self.n;
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            order.swap(i, self.dice.below(i + 1));
        }
        for me in order {
            let my_busy: f64 = self.objects.iter().filter(|o| o.1 == me).map(|o| o.0).sum();
            let view = if scheme == Scheme::Central { &self.table } else { &self.views[me] };
            let known_mean = view.values().map(|e| e.busy).sum::<f64>() / view.len().max(1) as f64;
            // The policy's own first test, done here to skip building views it would not read.
            if my_busy < settings.min_busy_ms || my_busy <= known_mean * (1.0 + settings.margin) {
                continue;
            }
            // Under anti-tasks only the nodes that sent one take load; the rest count for
            // the mean only.
            let invited = &self.invited[me];
            let takes = |k: usize| scheme != Scheme::AntiTasks || invited.iter().any(|(o, _)| *o == k);
            let mut views: Vec<NodeView> = view
                .iter()
                .filter(|(k, _)| **k != me && !invited.iter().any(|(o, _)| o == *k))
                .map(|(k, e)| node_view(*k, e.busy, takes(*k)))
                .collect();
            if scheme == Scheme::AntiTasks {
                views.extend(invited.iter().map(|(o, busy)| node_view(*o, *busy, true)));
            }
            let stats: Vec<ObjectStat> = self
                .objects
                .iter()
                .enumerate()
                .filter(|(_, o)| o.1 == me)
                .map(|(i, o)| ObjectStat {
                    id: object_id(i),
                    class: CLASS.into(),
                    busy_ms: o.0,
                    bytes: 64 << 10,
                    movable: o.2.is_none_or(|at| now >= at + COOLDOWN_S),
                    partners: Vec::new(),
                })
                .collect();
            let at = Situation {
                me: NodeId(me as u16),
                my_busy,
                views: &views,
                pending: &self.pending[me],
                now: Duration::from_secs(now),
                dice: self.dice.next(),
            };
            for m in rebalance(&at, &stats, settings, 0.0) {
                let i = index_of(m.id);
                let to = m.to.0 as usize;
                self.objects[i].1 = to;
                self.objects[i].2 = Some(now);
                self.messages += 1;
                // The mover (or the coordinator) knows what it sent where.
                let view = if scheme == Scheme::Central { &mut self.table } else { &mut self.views[me] };
                if let Some(e) = view.get_mut(&to) {
                    e.busy += m.busy_ms;
                }
                if let Some(e) = view.get_mut(&me) {
                    e.busy -= m.busy_ms;
                }
            }
        }
    }
}

/// Keeps the `keep` freshest entries of a view, and always `own`'s.
fn trim(view: &mut HashMap<usize, Entry>, keep: usize, own: usize) {
    if view.len() > keep {
        let mut ages: Vec<(u64, usize)> = view.iter().filter(|(k, _)| **k != own).map(|(k, e)| (e.at, *k)).collect();
        ages.sort_by(|a, b| b.cmp(a));
        let kept: std::collections::HashSet<usize> = ages.into_iter().take(keep - 1).map(|(_, k)| k).collect();
        view.retain(|k, _| *k == own || kept.contains(k));
    }
}

/// A node as the policy sees it; `takes`: it has the class (else it counts for the mean
/// only).
fn node_view(id: usize, busy: f64, takes: bool) -> NodeView {
    NodeView {
        id: NodeId(id as u16),
        generation: 1,
        addr: ([127, 0, 0, 1], 0).into(),
        state: Liveness::Alive,
        classes: if takes { vec![CLASS.into()] } else { Vec::new() },
        labels: Vec::new(),
        root: None,
        load: Some(Load { busy_ms: busy, ..Load::default() }),
        mode: NodeMode::Server,
        owner_present: false,
        keeps_homes: Vec::new(),
    }
}

fn object_id(i: usize) -> ObjectId {
    let mut bytes = [0u8; 16];
    bytes[8..].copy_from_slice(&(i as u64).to_be_bytes());
    ObjectId::from_bytes(bytes)
}

fn index_of(id: ObjectId) -> usize {
    u64::from_be_bytes(id.as_bytes()[8..].try_into().expect("8 bytes")) as usize
}

struct Outcome {
    messages_per_node_s: f64,
    entries_per_node_s: f64,
    age_s: f64,
    known: f64,
    max_over_mean: f64,
    cv: f64,
    within_125: Option<u64>,
}

fn simulate(scheme: Scheme, n: usize, seed: u64) -> Outcome {
    let mut w = World::new(n, seed);
    let settings = Settings::default();
    let (mut age_sum, mut known_sum, mut samples) = (0.0, 0.0, 0u64);
    let mut within_125 = None;
    for now in 1..=SECONDS {
        let loads = w.loads();
        w.disseminate(scheme, now, &loads);
        for (i, v) in w.views.iter().enumerate() {
            let v = if scheme == Scheme::Central { &w.table } else { v };
            let others: Vec<&Entry> = v.iter().filter(|(k, _)| **k != i).map(|(_, e)| e).collect();
            if !others.is_empty() {
                age_sum += others.iter().map(|e| (now - e.at) as f64).sum::<f64>() / others.len() as f64;
            }
            known_sum += others.len() as f64 / (n - 1) as f64;
            samples += 1;
        }
        w.decide(scheme, now, &settings);
        let loads = w.loads();
        let mean = loads.iter().sum::<f64>() / n as f64;
        let max = loads.iter().copied().fold(0.0, f64::max);
        if within_125.is_none() && max <= mean * 1.25 {
            within_125 = Some(now);
        }
    }
    let loads = w.loads();
    let mean = loads.iter().sum::<f64>() / n as f64;
    let var = loads.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / n as f64;
    Outcome {
        messages_per_node_s: w.messages as f64 / n as f64 / SECONDS as f64,
        entries_per_node_s: w.entries as f64 / n as f64 / SECONDS as f64,
        age_s: age_sum / samples as f64,
        known: known_sum / samples as f64,
        max_over_mean: loads.iter().copied().fold(0.0, f64::max) / mean,
        cv: var.sqrt() / mean,
        within_125,
    }
}

pub fn run() {
    println!("\n## 10. Load dissemination compared (deterministic simulation, seed 7, {SECONDS} s simulated)\n");
    println!(
        "{} objects per node, each 0.2x to 1.8x of {:.1} ms/s (a node's share: {MEAN_BUSY_MS} ms/s), all \
         starting on {:.0}% of the nodes; each node runs `balance::rebalance` once a second on what it knows.\n",
        OBJECTS_PER_NODE,
        MEAN_BUSY_MS / OBJECTS_PER_NODE as f64,
        HOT_SHARE * 100.0
    );
    println!("| nodes | scheme | msgs/node/s | entries/node/s | view age (s) | others known | max/mean at end | CV at end | within 1.25x after |");
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for n in [10, 100, 1000] {
        let start = {
            let w = World::new(n, 7);
            let loads = w.loads();
            let mean = loads.iter().sum::<f64>() / n as f64;
            loads.iter().copied().fold(0.0, f64::max) / mean
        };
        println!("| {n} | (start) | | | | | {start:.2} | | |");
        for scheme in [Scheme::Gossip, Scheme::RandomSubset, Scheme::AntiTasks, Scheme::Central] {
            let o = simulate(scheme, n, 7);
            let within = o.within_125.map_or("never".to_string(), |s| format!("{s} s"));
            println!(
                "| {n} | {} | {:.1} | {:.0} | {:.2} | {:.0}% | {:.2} | {:.3} | {within} |",
                scheme.name(),
                o.messages_per_node_s,
                o.entries_per_node_s,
                o.age_s,
                o.known * 100.0,
                o.max_over_mean,
                o.cv,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simulation_is_deterministic_and_evens_a_small_cluster_out() {
        let a = simulate(Scheme::Gossip, 10, 7);
        let b = simulate(Scheme::Gossip, 10, 7);
        assert_eq!((a.max_over_mean, a.messages_per_node_s), (b.max_over_mean, b.messages_per_node_s));
        let start = World::new(10, 7);
        let loads = start.loads();
        let mean = loads.iter().sum::<f64>() / 10.0;
        assert!(a.max_over_mean < loads.iter().copied().fold(0.0, f64::max) / mean, "it evens out");
        let central = simulate(Scheme::Central, 10, 7);
        assert!(central.age_s <= a.age_s + 1e-9, "the coordinator's table is the freshest");
    }
}
