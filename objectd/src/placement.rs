//! Where a new object goes: a pure decision from the policy, this node, and the members as
//! gossip reports them.
//!
//! Candidates are the live nodes that have the class, carry every label the class needs,
//! and take new objects (not draining, not a workstation whose owner is there). `least-loaded` takes the candidate with the least
//! busy time, then the fewest objects; since loads are a gossip round old, what this node
//! placed on a node since it last reported counts as load there (each placement as one
//! more object, and as the node's mean busy time per active object), so that a burst of
//! creations spreads instead of piling onto the node that looked lightest.
//! `two-choices` compares two candidates drawn at random the same way (Mitzenmacher's
//! power of two choices: nearly as even, and no herd on one node).

use clouds::{InvokeError, NodeId};
use protocol::{Liveness, NodeMode, NodeView, Placement};
use std::collections::HashMap;

/// What the new object needs of its node.
#[derive(Clone, Copy, Debug)]
pub struct Needs<'a> {
    pub class: &'a str,
    /// Labels its class requires (`#[object(labels = "gpu")]`).
    pub labels: &'a [String],
}

/// Busy times closer than this (ms per second) count as equal...
const TIE_MS: f64 = 5.0;
/// ...and so do those within this share of the larger.
const TIE_SHARE: f64 = 0.1;

/// Objects this node placed on each node since that node last reported its load.
pub type Placed = HashMap<NodeId, u64>;

/// Picks the node for a new object. `policy` is never `Default` or `Near` here (the engine
/// resolves those first). `random` is any random number (the caller's dice), so that the
/// choice is deterministic under test.
pub fn choose(
    policy: &Placement,
    me: NodeId,
    peers: &[NodeView],
    needs: Needs<'_>,
    placed: &Placed,
    random: u64,
) -> Result<NodeId, InvokeError> {
    match policy {
        Placement::Local | Placement::Default | Placement::Near(_) => fits(me, peers, needs).map(|_| me),
        Placement::On(node) => fits(*node, peers, needs).map(|_| *node),
        Placement::Random => {
            let c = candidates(peers, needs, None)?;
            Ok(c[(random % c.len() as u64) as usize].id)
        }
        Placement::LeastLoaded => {
            let c = candidates(peers, needs, None)?;
            Ok(lightest(c.iter().copied(), placed).expect("candidates are never empty"))
        }
        Placement::TwoChoices => {
            let c = candidates(peers, needs, None)?;
            let first = (random % c.len() as u64) as usize;
            let second = if c.len() == 1 {
                first
            } else {
                (first + 1 + ((random >> 32) % (c.len() as u64 - 1)) as usize) % c.len()
            };
            Ok(lightest([c[first], c[second]].into_iter(), placed).expect("two candidates"))
        }
        Placement::Label(label) => {
            let c = candidates(peers, needs, Some(label))?;
            Ok(lightest(c.iter().copied(), placed).expect("candidates are never empty"))
        }
    }
}

/// How loaded `node` looks, counting what this node placed there since its last report:
/// (busy ms per second, objects).
fn estimate(node: &NodeView, placed: &Placed) -> (f64, f64) {
    let load = node.load.unwrap_or_default();
    let extra = placed.get(&node.id).copied().unwrap_or(0) as f64;
    let per_object = if load.active > 0 { load.busy_ms / load.active as f64 } else { 0.0 };
    (load.busy_ms + extra * per_object, load.objects as f64 + extra)
}

/// The candidate with the least busy time; busy times within `TIE_MS` or `TIE_SHARE` of each
/// other are noise (a node just finished a burst and its mean is still decaying), and the
/// one with the fewest objects wins; then the lowest id.
fn lightest<'a>(nodes: impl Iterator<Item = &'a NodeView>, placed: &Placed) -> Option<NodeId> {
    nodes
        .map(|n| (estimate(n, placed), n.id))
        .min_by(|((busy_a, objects_a), a), ((busy_b, objects_b), b)| {
            let tie = TIE_MS.max(TIE_SHARE * busy_a.max(*busy_b));
            let busy = if (busy_a - busy_b).abs() < tie { std::cmp::Ordering::Equal } else { busy_a.total_cmp(busy_b) };
            busy.then(objects_a.total_cmp(objects_b)).then(a.cmp(b))
        })
        .map(|(_, id)| id)
}

/// The live nodes that can take the object (and carry `label`, if given); an error that
/// says why there are none.
fn candidates<'a>(
    peers: &'a [NodeView],
    needs: Needs<'_>,
    label: Option<&str>,
) -> Result<Vec<&'a NodeView>, InvokeError> {
    let with_class: Vec<&NodeView> = peers.iter().filter(|p| p.has_class(needs.class)).collect();
    if with_class.is_empty() {
        let mut available: Vec<String> = peers.iter().flat_map(|p| p.classes.iter().cloned()).collect();
        available.sort();
        available.dedup();
        return Err(InvokeError::NoSuchClass { class: needs.class.to_string(), available });
    }
    let wanted: Vec<&str> = needs.labels.iter().map(String::as_str).chain(label).collect();
    let fitting: Vec<&NodeView> =
        with_class.iter().copied().filter(|p| p.takes_new() && wanted.iter().all(|l| p.has_label(l))).collect();
    if fitting.is_empty() {
        let seen = with_class
            .iter()
            .map(|p| format!("{} ({}, {}, labels: {})", p.id, p.state, mode(p), labels(p)))
            .collect::<Vec<_>>()
            .join("; ");
        let needing = if wanted.is_empty() { String::new() } else { format!(" with label {}", wanted.join(" and ")) };
        return Err(InvokeError::invalid(format!(
            "no live node that takes new objects has class `{}`{needing}; nodes with the class: {seen}",
            needs.class
        )));
    }
    Ok(fitting)
}

/// The node's mode, and for a workstation whether its owner is there.
fn mode(node: &NodeView) -> String {
    match node.mode {
        NodeMode::Workstation if node.owner_present => "a workstation whose owner is present".into(),
        NodeMode::Workstation => "a workstation whose owner is away".into(),
        mode => mode.to_string(),
    }
}

fn labels(node: &NodeView) -> String {
    if node.labels.is_empty() {
        "none".into()
    } else {
        node.labels.join(",")
    }
}

/// Whether the named node can take the object; if not, why.
fn fits(node: NodeId, peers: &[NodeView], needs: Needs<'_>) -> Result<(), InvokeError> {
    let Some(p) = peers.iter().find(|p| p.id == node) else {
        // A node that was never a member is a bad request, not one that is down.
        let members = peers.iter().map(|p| format!("{} ({})", p.id, p.state)).collect::<Vec<_>>().join(", ");
        return Err(InvokeError::invalid(format!("{node} is not a member of the cluster; members: {members}")));
    };
    if p.state == Liveness::Dead {
        return Err(InvokeError::Unavailable { node: node.to_string(), reason: "the node is down".into() });
    }
    if !p.has_class(needs.class) {
        return Err(InvokeError::NoSuchClass { class: needs.class.to_string(), available: p.classes.clone() });
    }
    if !p.takes_new() {
        return Err(InvokeError::invalid(format!("{node} is {} and takes no new objects", mode(p))));
    }
    if let Some(missing) = needs.labels.iter().find(|l| !p.has_label(l)) {
        return Err(InvokeError::invalid(format!(
            "class `{}` needs nodes with label `{missing}`; {node} has labels: {}",
            needs.class,
            labels(p)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::Load;

    fn peer(id: u16, state: Liveness, classes: &[&str]) -> NodeView {
        NodeView {
            id: NodeId(id),
            generation: 1,
            addr: format!("127.0.0.1:{}", 7000 + id).parse().unwrap(),
            state,
            classes: classes.iter().map(|c| c.to_string()).collect(),
            labels: Vec::new(),
            root: None,
            load: None,
            mode: NodeMode::Server,
            owner_present: false,
            keeps_homes: Vec::new(),
        }
    }

    fn loaded(id: u16, busy_ms: f64, objects: u64) -> NodeView {
        let load = Load { busy_ms, objects, active: objects, ..Load::default() };
        NodeView { load: Some(load), ..peer(id, Liveness::Alive, &["Counter"]) }
    }

    fn needs(class: &str) -> Needs<'_> {
        Needs { class, labels: &[] }
    }

    fn pick(policy: Placement, peers: &[NodeView], class: &str, random: u64) -> Result<NodeId, InvokeError> {
        choose(&policy, NodeId(1), peers, needs(class), &Placed::new(), random)
    }

    #[test]
    fn local_and_explicit_nodes() {
        let peers = [
            peer(1, Liveness::Alive, &["Counter"]),
            peer(2, Liveness::Alive, &["Counter"]),
            peer(3, Liveness::Dead, &["Counter"]),
        ];
        assert_eq!(pick(Placement::Local, &peers, "Counter", 0), Ok(NodeId(1)));
        assert_eq!(pick(Placement::On(NodeId(2)), &peers, "Counter", 0), Ok(NodeId(2)));
        let down = pick(Placement::On(NodeId(3)), &peers, "Counter", 0).unwrap_err();
        assert!(down.to_string().contains("node-3 is unavailable: the node is down"), "{down}");
        let unknown = pick(Placement::On(NodeId(9)), &peers, "Counter", 0).unwrap_err();
        assert!(matches!(unknown, InvokeError::Invalid { .. }), "a bad request: {unknown:?}");
        assert!(
            unknown
                .to_string()
                .contains("not a member of the cluster; members: node-1 (alive), node-2 (alive), node-3 (dead)"),
            "{unknown}"
        );
        let class = pick(Placement::On(NodeId(2)), &peers, "Blob", 0).unwrap_err();
        assert!(matches!(class, InvokeError::NoSuchClass { .. }));
    }

    #[test]
    fn random_picks_only_live_nodes_with_the_class() {
        let peers = [
            peer(1, Liveness::Alive, &["Counter"]),
            peer(2, Liveness::Alive, &["Counter", "Gpu"]),
            peer(3, Liveness::Suspect, &["Gpu"]),
            peer(4, Liveness::Dead, &["Gpu"]),
        ];
        let picks: Vec<NodeId> = (0..10).map(|r| pick(Placement::Random, &peers, "Gpu", r).unwrap()).collect();
        assert!(picks.iter().all(|n| *n == NodeId(2)), "{picks:?}");
        let spread: std::collections::BTreeSet<NodeId> =
            (0..10).map(|r| pick(Placement::Random, &peers, "Counter", r).unwrap()).collect();
        assert_eq!(spread.len(), 2);
        assert!(matches!(pick(Placement::Random, &peers, "Nope", 0), Err(InvokeError::NoSuchClass { .. })));
    }

    /// Table: nodes as (busy ms/s, objects), what this node placed since their reports, and
    /// where least-loaded puts the next object.
    #[test]
    fn least_loaded_takes_the_least_busy_then_the_fewest_objects() {
        type Row = (&'static [(f64, u64)], &'static [(u16, u64)], u16);
        let table: [Row; 5] = [
            (&[(300.0, 10), (100.0, 50), (200.0, 5)], &[], 2),
            // Idle cluster: busy times tie, object counts decide.
            (&[(0.0, 10), (0.3, 50), (0.0, 5)], &[], 3),
            // What was placed since the last report counts: node 3 got 6 already.
            (&[(0.0, 10), (0.0, 50), (0.0, 5)], &[(3, 6)], 1),
            // A placement on a busy node adds its busy time per object.
            (&[(100.0, 10), (150.0, 10), (400.0, 10)], &[(1, 6)], 2),
            // Equal in everything: the lowest id.
            (&[(0.0, 0), (0.0, 0), (0.0, 0)], &[], 1),
        ];
        for (nodes, placed, want) in table {
            let peers: Vec<NodeView> =
                nodes.iter().enumerate().map(|(i, (busy, objects))| loaded(i as u16 + 1, *busy, *objects)).collect();
            let placed: Placed = placed.iter().map(|(n, c)| (NodeId(*n), *c)).collect();
            let got = choose(&Placement::LeastLoaded, NodeId(1), &peers, needs("Counter"), &placed, 0).unwrap();
            assert_eq!(got, NodeId(want), "{nodes:?} placed {placed:?}");
        }
    }

    #[test]
    fn two_choices_takes_the_lighter_of_two_distinct_draws() {
        let peers = [loaded(1, 500.0, 10), loaded(2, 10.0, 10), loaded(3, 900.0, 10)];
        let mut seen = std::collections::BTreeSet::new();
        for random in 0..64u64 {
            let random = random.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let got = pick(Placement::TwoChoices, &peers, "Counter", random).unwrap();
            assert_ne!(got, NodeId(3), "the busiest node loses every comparison");
            seen.insert(got);
        }
        assert_eq!(seen.len(), 2, "node 1 wins when it is drawn with node 3");
        let one = [loaded(1, 500.0, 10)];
        assert_eq!(pick(Placement::TwoChoices, &one, "Counter", 7), Ok(NodeId(1)));
    }

    #[test]
    fn labels_and_modes_narrow_the_candidates() {
        let mut gpu = loaded(2, 800.0, 10);
        gpu.labels = vec!["gpu=a100".into()];
        let mut draining = loaded(3, 0.0, 0);
        draining.labels = vec!["gpu=a100".into()];
        draining.mode = NodeMode::Draining;
        let peers = [loaded(1, 0.0, 0), gpu, draining];
        assert_eq!(pick(Placement::Label("gpu".into()), &peers, "Counter", 0), Ok(NodeId(2)));
        assert_eq!(pick(Placement::Label("gpu=a100".into()), &peers, "Counter", 0), Ok(NodeId(2)));
        let none = pick(Placement::Label("gpu=h100".into()), &peers, "Counter", 0).unwrap_err().to_string();
        assert!(none.contains("no live node that takes new objects has class `Counter` with label gpu=h100"), "{none}");
        assert!(none.contains("node-3 (alive, draining, labels: gpu=a100)"), "{none}");
        assert_eq!(pick(Placement::LeastLoaded, &peers, "Counter", 0), Ok(NodeId(1)), "never the draining node");
        let drained = pick(Placement::On(NodeId(3)), &peers, "Counter", 0).unwrap_err().to_string();
        assert!(drained.contains("node-3 is draining and takes no new objects"), "{drained}");
        // A class that needs a label: every policy honours it, and a named node without it is refused.
        let need = ["gpu".to_string()];
        let with = Needs { class: "Counter", labels: &need };
        assert_eq!(choose(&Placement::Random, NodeId(1), &peers, with, &Placed::new(), 0), Ok(NodeId(2)));
        let local = choose(&Placement::Local, NodeId(1), &peers, with, &Placed::new(), 0).unwrap_err().to_string();
        assert!(local.contains("class `Counter` needs nodes with label `gpu`; node-1 has labels: none"), "{local}");
    }

    #[test]
    fn a_workstation_takes_new_objects_only_while_its_owner_is_away() {
        let mut desk = loaded(2, 0.0, 0);
        desk.mode = NodeMode::Workstation;
        let peers = [loaded(1, 500.0, 50), desk.clone()];
        assert_eq!(pick(Placement::LeastLoaded, &peers, "Counter", 0), Ok(NodeId(2)), "owner away: a guest goes there");
        desk.owner_present = true;
        let peers = [loaded(1, 500.0, 50), desk];
        assert_eq!(pick(Placement::LeastLoaded, &peers, "Counter", 0), Ok(NodeId(1)));
        let refused = pick(Placement::On(NodeId(2)), &peers, "Counter", 0).unwrap_err().to_string();
        assert!(
            refused.contains("node-2 is a workstation whose owner is present and takes no new objects"),
            "{refused}"
        );
    }
}
