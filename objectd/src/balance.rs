//! Which objects a node moves on its own, and where: pure decisions from what the node
//! measured of its objects and what gossip says of the others (MOSIX-style: every node
//! decides for itself, from its view of the rest; nobody coordinates).
//!
//! - [`rebalance`]: a node busier than the cluster's mean by more than `margin` moves its
//!   objects whose measured load best evens things out to lighter nodes that take
//!   them, until it is within half the margin (hysteresis: the band between the two
//!   thresholds is where nothing moves). A move must pay for itself: the busy time it
//!   takes off the peak, over `horizon`, must exceed what the copy costs (the object's
//!   bytes over the measured copy rate, plus the freeze). A move never makes its target
//!   busier than the source was, nor pushes it past the lower threshold, so the hottest
//!   single object never just changes node. Of more than two lighter nodes, a move goes
//!   to the lighter of two drawn at random: nodes that decide at once from the same view
//!   would otherwise all send to the same lightest node (the herd the simulation in
//!   `bench -- dissemination` shows).
//! - [`affinity`]: an object whose calls go mostly to objects on another node moves there,
//!   when that cuts cross-node calls by at least `min_calls` per second and the other
//!   node stays under the lower threshold. Of two objects that call each other, only the
//!   one with the smaller id moves, so both nodes never swap them.
//! - [`Pending`]: moves made recently, whose effect the smoothed loads do not show yet.
//!
//! Objects that are pinned, cooling down after a move, or moving now are not `movable`:
//! the driver says so (`engine::balancer`).

use clouds::{NodeId, ObjectId};
use protocol::decision::DecisionKind;
use protocol::NodeView;
use std::collections::HashMap;
use std::time::Duration;

/// Thresholds and the cost model.
#[derive(Clone, Debug)]
pub struct Settings {
    /// A node moves objects off when its busy time exceeds the mean by this share, and
    /// stops once within half of it.
    pub margin: f64,
    /// Below this busy time (ms per second) a node is not worth evening out.
    pub min_busy_ms: f64,
    /// At most this many moves per round.
    pub max_moves: usize,
    /// How long a move's gain is counted for, against its cost.
    pub horizon: Duration,
    /// The copy rate to assume before the node has measured one (bytes per second).
    pub copy_rate: f64,
    /// What the freeze costs a move, beyond the copy.
    pub freeze: Duration,
    /// The fewest cross-node calls per second an affinity move must save.
    pub min_calls: f64,
    /// The smallest share of the node's busy time an object must carry to be moved for
    /// rebalancing.
    pub min_share: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            margin: 0.25,
            min_busy_ms: 200.0,
            max_moves: 16,
            horizon: Duration::from_secs(10),
            copy_rate: 50e6,
            freeze: Duration::from_millis(5),
            min_calls: 5.0,
            min_share: 0.02,
        }
    }
}

/// What the node measured of one of its objects.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectStat {
    pub id: ObjectId,
    pub class: String,
    /// Time in its methods, ms per second (smoothed).
    pub busy_ms: f64,
    /// Its state and pages, in bytes.
    pub bytes: u64,
    /// Not pinned, not cooling down, not moving.
    pub movable: bool,
    /// Calls per second with each partner object, and the node the partner was on.
    pub partners: Vec<(ObjectId, NodeId, f64)>,
}

/// A move the node decided on.
#[derive(Clone, Debug, PartialEq)]
pub struct Move {
    pub id: ObjectId,
    pub class: String,
    pub to: NodeId,
    pub kind: DecisionKind,
    /// The inputs, in words (the decision log's reason).
    pub reason: String,
    /// Busy time the move takes off this node (ms per second).
    pub busy_ms: f64,
}

/// What a node knows when it decides: itself, the others as gossip reports them, and the
/// moves it made recently.
#[derive(Clone, Copy, Debug)]
pub struct Situation<'a> {
    pub me: NodeId,
    /// This node's own busy time (ms per second), measured now.
    pub my_busy: f64,
    pub views: &'a [NodeView],
    pub pending: &'a Pending,
    /// Time since the driver started (the clock of `pending`).
    pub now: Duration,
    /// Any random number (the driver's dice): which lighter node a move goes to, when
    /// more than two could take it.
    pub dice: u64,
}

impl Situation<'_> {
    /// Busy time of each node that counts: alive, with a load report, taking new objects
    /// (and this node, whatever its mode).
    fn busy(&self) -> HashMap<NodeId, f64> {
        let mut busy: HashMap<NodeId, f64> = self
            .views
            .iter()
            .filter(|v| v.id != self.me && v.takes_new() && v.load.is_some())
            .map(|v| (v.id, self.pending.adjust(v.id, v.busy(), self.now)))
            .collect();
        busy.insert(self.me, self.pending.adjust(self.me, self.my_busy, self.now));
        busy
    }
}

/// The nodes that could take an object of `class` from this node.
fn takers<'a>(me: NodeId, views: &'a [NodeView], class: &'a str) -> impl Iterator<Item = NodeId> + 'a {
    views.iter().filter(move |v| v.id != me && v.takes_new() && v.load.is_some() && v.has_class(class)).map(|v| v.id)
}

/// The moves that even this node's load out with the others'. `copy_rate` is the node's
/// measured one (0: not measured yet).
pub fn rebalance(at: &Situation<'_>, objects: &[ObjectStat], s: &Settings, copy_rate: f64) -> Vec<Move> {
    let (me, views) = (at.me, at.views);
    let mut busy = at.busy();
    if busy.len() < 2 {
        return Vec::new();
    }
    let mean = busy.values().sum::<f64>() / busy.len() as f64;
    let start = busy[&me];
    let (upper, lower) = (mean * (1.0 + s.margin), mean * (1.0 + s.margin / 2.0));
    if start < s.min_busy_ms || start <= upper {
        return Vec::new();
    }
    let rate = if copy_rate > 0.0 { copy_rate } else { s.copy_rate };
    let mut order: Vec<&ObjectStat> = objects.iter().filter(|o| o.movable && o.busy_ms > 0.0).collect();
    order.sort_by(|a, b| b.busy_ms.total_cmp(&a.busy_ms).then(a.id.cmp(&b.id)));
    let mut moves = Vec::new();
    for o in order {
        let mine = busy[&me];
        if mine <= lower || moves.len() >= s.max_moves {
            break;
        }
        // An object that carries a sliver of the node's load is not worth a move (nor are
        // the smaller ones after it).
        if o.busy_ms < s.min_share * mine {
            break;
        }
        // The nodes that could take it without ending busier than this node, or past the
        // lower threshold.
        let mut lighter: Vec<(NodeId, f64)> = takers(me, views, &o.class)
            .filter_map(|n| busy.get(&n).map(|b| (n, *b)))
            .filter(|(_, b)| b + o.busy_ms < mine && b + o.busy_ms <= lower)
            .collect();
        lighter.sort_by(|(a, x), (b, y)| x.total_cmp(y).then(a.cmp(b)));
        let Some((to, theirs)) = pick_lighter(&lighter, at.dice, moves.len()) else { continue };
        let how = if lighter.len() <= 2 { "lightest" } else { "the lighter of two drawn at random" };
        let after = theirs + o.busy_ms;
        let gain = mine - (mine - o.busy_ms).max(after);
        let cost_ms = o.bytes as f64 / rate * 1000.0 + s.freeze.as_secs_f64() * 1000.0;
        if gain * s.horizon.as_secs_f64() <= cost_ms {
            continue;
        }
        let reason = format!(
            "{me} at {:.1}x the mean busy time ({mine:.0} of {mean:.0} ms/s), the object carried {:.0}% of it \
             ({:.0} ms/s); {to} {how} ({theirs:.0} ms/s); expected gain {:.0}%, cost {cost_ms:.0} ms",
            mine / mean.max(f64::MIN_POSITIVE),
            o.busy_ms * 100.0 / mine,
            o.busy_ms,
            gain * 100.0 / mine,
        );
        *busy.get_mut(&me).expect("me") -= o.busy_ms;
        *busy.get_mut(&to).expect("a taker") += o.busy_ms;
        moves.push(Move {
            id: o.id,
            class: o.class.clone(),
            to,
            kind: DecisionKind::Rebalanced,
            reason,
            busy_ms: o.busy_ms,
        });
    }
    moves
}

/// The node a move goes to, of `lighter` (sorted, lightest first): the lightest of two
/// or fewer; of more, the lighter of two drawn at random (Mitzenmacher's two choices), so
/// that nodes that decide at once from the same stale view do not all pick the same
/// node. `k` varies the draw between the moves of one round.
fn pick_lighter(lighter: &[(NodeId, f64)], dice: u64, k: usize) -> Option<(NodeId, f64)> {
    if lighter.len() <= 2 {
        return lighter.first().copied();
    }
    let n = lighter.len() as u64;
    let roll = dice.wrapping_add((k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let first = roll % n;
    let second = (first + 1 + (roll >> 32) % (n - 1)) % n;
    Some(lighter[first.min(second) as usize])
}

/// The moves that put objects next to the objects they call and are called by.
pub fn affinity(at: &Situation<'_>, objects: &[ObjectStat], s: &Settings) -> Vec<Move> {
    let (me, views) = (at.me, at.views);
    let mut busy = at.busy();
    let mean = busy.values().sum::<f64>() / busy.len() as f64;
    let lower = (mean * (1.0 + s.margin / 2.0)).max(s.min_busy_ms);
    let mut moves = Vec::new();
    for o in objects.iter().filter(|o| o.movable) {
        if moves.len() >= s.max_moves {
            break;
        }
        let mut by_node: HashMap<NodeId, f64> = HashMap::new();
        for (_, node, calls) in &o.partners {
            *by_node.entry(*node).or_default() += calls;
        }
        let local = by_node.get(&me).copied().unwrap_or(0.0);
        let best = takers(me, views, &o.class)
            .filter_map(|n| by_node.get(&n).map(|c| (n, *c)))
            .max_by(|(a, x), (b, y)| x.total_cmp(y).then(b.cmp(a)));
        let Some((to, remote)) = best else { continue };
        let saved = remote - local;
        if saved < s.min_calls {
            continue;
        }
        // Of two objects that call each other, the one with the smaller id moves.
        let heaviest = o
            .partners
            .iter()
            .filter(|(_, n, _)| *n == to)
            .max_by(|a, b| a.2.total_cmp(&b.2).then(b.0.cmp(&a.0)))
            .expect("a partner there");
        if heaviest.0 < o.id {
            continue;
        }
        let theirs = busy.get(&to).copied().unwrap_or(0.0);
        if theirs + o.busy_ms > lower {
            continue;
        }
        let reason = format!(
            "{:.0} calls/s with objects on {to} against {local:.0} with objects here; moving saves {saved:.0} \
             cross-node calls/s; {to} stays at {:.0} ms/s (limit {lower:.0})",
            remote,
            theirs + o.busy_ms
        );
        *busy.entry(me).or_default() -= o.busy_ms;
        *busy.entry(to).or_default() += o.busy_ms;
        moves.push(Move {
            id: o.id,
            class: o.class.clone(),
            to,
            kind: DecisionKind::Affinity,
            reason,
            busy_ms: o.busy_ms,
        });
    }
    moves
}

/// Moves made recently: a node's smoothed busy time shows a move's effect only gradually
/// (an exponentially weighted mean with time constant `tau`), so until it does, the
/// moved busy time still counts at the source and not yet at the target. `adjust`
/// corrects a reported busy time by what the smoothing has not caught up with.
#[derive(Clone, Debug, Default)]
pub struct Pending {
    tau: Duration,
    /// (node, busy time moved to it (+) or off it (-), when).
    moves: Vec<(NodeId, f64, Duration)>,
}

impl Pending {
    pub fn new(tau: Duration) -> Pending {
        Pending { tau, moves: Vec::new() }
    }

    /// `busy` ms/s moved from `from` to `to` at `now`.
    pub fn moved(&mut self, from: NodeId, to: NodeId, busy: f64, now: Duration) {
        self.moves.push((from, -busy, now));
        self.moves.push((to, busy, now));
    }

    /// `node`'s reported busy time, corrected.
    pub fn adjust(&self, node: NodeId, reported: f64, now: Duration) -> f64 {
        let tau = self.tau.as_secs_f64().max(f64::MIN_POSITIVE);
        let lag: f64 = self
            .moves
            .iter()
            .filter(|(n, _, _)| *n == node)
            .map(|(_, delta, at)| delta * (-(now.saturating_sub(*at)).as_secs_f64() / tau).exp())
            .sum();
        (reported + lag).max(0.0)
    }

    /// Drops moves the smoothing has caught up with (after five time constants).
    pub fn expire(&mut self, now: Duration) {
        let keep = self.tau * 5;
        self.moves.retain(|(_, _, at)| now.saturating_sub(*at) < keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{Liveness, Load, NodeMode};

    fn node(id: u16, busy_ms: f64) -> NodeView {
        NodeView {
            id: NodeId(id),
            generation: 1,
            addr: format!("127.0.0.1:{}", 7000 + id).parse().unwrap(),
            state: Liveness::Alive,
            classes: vec!["Counter".into()],
            labels: Vec::new(),
            root: None,
            load: Some(Load { busy_ms, ..Load::default() }),
            mode: NodeMode::Server,
            owner_present: false,
            keeps_homes: Vec::new(),
        }
    }

    fn object(n: u8, busy_ms: f64) -> ObjectStat {
        let mut bytes = [0u8; 16];
        bytes[15] = n;
        bytes[6] = 0x80; // a valid version nibble is not needed: ids compare by bytes
        ObjectStat {
            id: ObjectId::from_bytes(bytes),
            class: "Counter".into(),
            busy_ms,
            bytes: 100,
            movable: true,
            partners: Vec::new(),
        }
    }

    fn at<'a>(me: u16, my_busy: f64, views: &'a [NodeView], pending: &'a Pending, now: Duration) -> Situation<'a> {
        Situation { me: NodeId(me), my_busy, views, pending, now, dice: 0 }
    }

    fn plan(my_busy: f64, views: &[NodeView], objects: &[ObjectStat]) -> Vec<Move> {
        rebalance(&at(1, my_busy, views, &Pending::default(), Duration::ZERO), objects, &Settings::default(), 0.0)
    }

    fn near(me: u16, my_busy: f64, views: &[NodeView], objects: &[ObjectStat]) -> Vec<Move> {
        affinity(&at(me, my_busy, views, &Pending::default(), Duration::ZERO), objects, &Settings::default())
    }

    #[test]
    fn a_node_above_the_mean_moves_objects_to_the_lightest_until_within_the_band() {
        // 900 ms/s here, nothing elsewhere: mean 300; moves until at most 337.5.
        let objects: Vec<ObjectStat> = (0..9).map(|i| object(i, 100.0)).collect();
        let views = [node(1, 900.0), node(2, 0.0), node(3, 0.0)];
        let moves = plan(900.0, &views, &objects);
        let to = |n: u16| moves.iter().filter(|m| m.to == NodeId(n)).count();
        assert_eq!(moves.len(), 6, "{moves:#?}");
        assert_eq!((to(2), to(3)), (3, 3), "alternating to whichever is lighter");
        assert!(moves[0].reason.contains("node-1 at 3.0x the mean busy time (900 of 300 ms/s)"), "{}", moves[0].reason);
        assert!(moves[0].reason.contains("node-2 lightest (0 ms/s)"), "{}", moves[0].reason);
    }

    #[test]
    fn nothing_moves_inside_the_band_or_when_idle_or_alone() {
        let objects: Vec<ObjectStat> = (0..4).map(|i| object(i, 30.0)).collect();
        let views = [node(1, 120.0), node(2, 100.0), node(3, 100.0)];
        assert!(plan(120.0, &views, &objects).is_empty(), "within 25% of the mean");
        let views = [node(1, 40.0), node(2, 0.0)];
        assert!(plan(40.0, &views, &objects).is_empty(), "below the floor");
        assert!(plan(900.0, &[node(1, 900.0)], &objects).is_empty(), "nobody else");
    }

    #[test]
    fn the_hottest_object_alone_does_not_just_change_node() {
        let views = [node(1, 600.0), node(2, 0.0), node(3, 0.0)];
        assert!(plan(600.0, &views, &[object(1, 600.0)]).is_empty());
        // A big share may move if the target ends lighter than the source was and under the band.
        let moves = plan(600.0, &views, &[object(1, 200.0), object(2, 200.0), object(3, 200.0)]);
        assert_eq!(moves.len(), 2);
    }

    #[test]
    fn pinned_cooling_and_costly_objects_stay() {
        let views = [node(1, 900.0), node(2, 0.0)];
        let mut pinned = object(1, 300.0);
        pinned.movable = false;
        assert!(plan(900.0, &views, &[pinned]).is_empty());
        // 300 ms/s for 10 s saves 3 s: a 1 GB object at 50 MB/s costs 20 s.
        let mut big = object(2, 300.0);
        big.bytes = 1 << 30;
        assert!(plan(900.0, &views, &[big]).is_empty());
    }

    #[test]
    fn draining_and_classless_nodes_take_nothing() {
        let mut draining = node(2, 0.0);
        draining.mode = NodeMode::Draining;
        let mut other = node(3, 0.0);
        other.classes = vec!["Blob".into()];
        let views = [node(1, 900.0), draining, other, node(4, 850.0)];
        assert!(plan(900.0, &views, &[object(1, 100.0)]).is_empty());
    }

    #[test]
    fn recent_moves_count_until_the_smoothing_shows_them() {
        let tau = Duration::from_secs(3);
        let mut pending = Pending::new(tau);
        pending.moved(NodeId(1), NodeId(2), 300.0, Duration::ZERO);
        assert_eq!(pending.adjust(NodeId(1), 900.0, Duration::ZERO), 600.0);
        assert_eq!(pending.adjust(NodeId(2), 0.0, Duration::ZERO), 300.0);
        let later = pending.adjust(NodeId(1), 900.0, tau);
        assert!((later - (900.0 - 300.0 / std::f64::consts::E)).abs() < 1e-6, "{later}");
        // Right after a round, the next one sees the node as already lighter: no second wave.
        let views = [node(1, 900.0), node(2, 0.0), node(3, 0.0)];
        let objects: Vec<ObjectStat> = (0..9).map(|i| object(i, 100.0)).collect();
        let s = Settings::default();
        let first = rebalance(&at(1, 900.0, &views, &Pending::new(tau), Duration::ZERO), &objects, &s, 0.0);
        assert_eq!(first.len(), 6);
        let mut pending = Pending::new(tau);
        for m in &first {
            pending.moved(NodeId(1), m.to, m.busy_ms, Duration::ZERO);
        }
        let rest: Vec<ObjectStat> = objects.iter().filter(|o| first.iter().all(|m| m.id != o.id)).cloned().collect();
        // A second later the smoothed reports have moved only part of the way.
        let moved: f64 = first.iter().map(|m| m.busy_ms).sum();
        let (to_2, to_3): (f64, f64) = (
            first.iter().filter(|m| m.to == NodeId(2)).map(|m| m.busy_ms).sum(),
            first.iter().filter(|m| m.to == NodeId(3)).map(|m| m.busy_ms).sum(),
        );
        let shown = 1.0 - (-1.0f64 / 3.0).exp();
        let views = [node(1, 900.0 - moved * shown), node(2, to_2 * shown), node(3, to_3 * shown)];
        let mine = 900.0 - moved * shown;
        let second = rebalance(&at(1, mine, &views, &pending, Duration::from_secs(1)), &rest, &s, 0.0);
        assert!(second.is_empty(), "{second:#?}");
        pending.expire(Duration::from_secs(16));
        assert_eq!(pending.adjust(NodeId(1), 900.0, Duration::from_secs(16)), 900.0);
    }

    #[test]
    fn an_object_moves_to_the_node_it_talks_to() {
        let (a, b) = (object(1, 10.0), object(2, 10.0));
        let mut caller = a.clone();
        caller.partners = vec![(b.id, NodeId(2), 50.0)];
        let views = [node(1, 20.0), node(2, 20.0)];
        let moves = near(1, 20.0, &views, &[caller.clone()]);
        assert_eq!(moves.len(), 1);
        assert_eq!(moves[0].to, NodeId(2));
        assert!(moves[0].reason.contains("50 calls/s with objects on node-2 against 0"), "{}", moves[0].reason);
        // The other side of the pair, with the greater id, stays where it is.
        let mut callee = b.clone();
        callee.partners = vec![(a.id, NodeId(1), 50.0)];
        let moves = near(2, 20.0, &views, &[callee]);
        assert!(moves.is_empty(), "{moves:#?}");
        // Not when calls here weigh as much, nor onto a node that would be overloaded.
        let mut torn = caller.clone();
        torn.partners.push((object(3, 0.0).id, NodeId(1), 48.0));
        assert!(near(1, 20.0, &views, &[torn]).is_empty());
        let busy = [node(1, 100.0), node(2, 1000.0)];
        assert!(near(1, 100.0, &busy, &[caller]).is_empty());
    }

    #[test]
    fn with_many_lighter_nodes_moves_spread_over_them() {
        // Ten idle nodes: one busy node's moves do not all go to the same one.
        let mut views: Vec<NodeView> = (2..=11).map(|i| node(i, 0.0)).collect();
        views.push(node(1, 1100.0));
        let objects: Vec<ObjectStat> = (0..11).map(|i| object(i, 100.0)).collect();
        let pending = Pending::default();
        let at = Situation { dice: 12345, ..at(1, 1100.0, &views, &pending, Duration::ZERO) };
        let moves = rebalance(&at, &objects, &Settings::default(), 0.0);
        let targets: std::collections::BTreeSet<NodeId> = moves.iter().map(|m| m.to).collect();
        assert!(moves.len() >= 8, "{moves:#?}");
        assert!(targets.len() >= 4, "spread over several nodes: {targets:?}");
        assert!(moves[0].reason.contains("the lighter of two drawn at random"), "{}", moves[0].reason);
        assert_eq!(pick_lighter(&[(NodeId(2), 1.0), (NodeId(3), 2.0)], 99, 0), Some((NodeId(2), 1.0)));
        assert_eq!(pick_lighter(&[], 99, 0), None);
    }

    #[test]
    fn slivers_of_the_excess_stay() {
        // 420 here: three objects of 100 and thirty of 4 (1% each); two of the big ones go,
        // the third fits nowhere, and the small ones are not worth a move each.
        let mut objects: Vec<ObjectStat> = (0..3).map(|i| object(i, 100.0)).collect();
        objects.extend((10..40).map(|i| object(i, 4.0)));
        let views = [node(1, 420.0), node(2, 0.0), node(3, 0.0)];
        let moves = plan(420.0, &views, &objects);
        assert_eq!(moves.len(), 2, "{moves:#?}");
        assert!(moves.iter().all(|m| m.busy_ms == 100.0));
    }
}
