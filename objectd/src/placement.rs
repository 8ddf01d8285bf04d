//! Where a new object goes: a pure decision from the policy, this node, and the members as
//! gossip reports them.

use clouds::{InvokeError, NodeId};
use protocol::{Liveness, NodeView, Placement};

/// Picks the node for a new object of `class`. `random` is any random number (the caller's
/// dice), so that the choice is deterministic under test.
pub fn choose(
    policy: Placement,
    me: NodeId,
    peers: &[NodeView],
    class: &str,
    random: u64,
) -> Result<NodeId, InvokeError> {
    let members = || peers.iter().map(|p| format!("{} ({})", p.id, p.state)).collect::<Vec<_>>().join(", ");
    match policy {
        Placement::Local => Ok(me),
        Placement::On(node) if node == me => Ok(me),
        Placement::On(node) => match peers.iter().find(|p| p.id == node) {
            None => Err(InvokeError::Unavailable {
                node: node.to_string(),
                reason: format!("not a member of the cluster; members: {}", members()),
            }),
            Some(p) if p.state == Liveness::Dead => {
                Err(InvokeError::Unavailable { node: node.to_string(), reason: "the node is down".into() })
            }
            Some(p) if !p.classes.iter().any(|c| c == class) => {
                Err(InvokeError::NoSuchClass { class: class.to_string(), available: p.classes.clone() })
            }
            Some(_) => Ok(node),
        },
        Placement::Random => {
            let candidates: Vec<NodeId> = peers
                .iter()
                .filter(|p| p.state == Liveness::Alive && p.classes.iter().any(|c| c == class))
                .map(|p| p.id)
                .collect();
            if candidates.is_empty() {
                let mut available: Vec<String> = peers.iter().flat_map(|p| p.classes.iter().cloned()).collect();
                available.sort();
                available.dedup();
                return Err(InvokeError::NoSuchClass { class: class.to_string(), available });
            }
            Ok(candidates[(random % candidates.len() as u64) as usize])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        }
    }

    #[test]
    fn local_and_explicit_nodes() {
        let peers = [
            peer(1, Liveness::Alive, &["Counter"]),
            peer(2, Liveness::Alive, &["Counter"]),
            peer(3, Liveness::Dead, &["Counter"]),
        ];
        assert_eq!(choose(Placement::Local, NodeId(1), &peers, "Counter", 0), Ok(NodeId(1)));
        assert_eq!(choose(Placement::On(NodeId(2)), NodeId(1), &peers, "Counter", 0), Ok(NodeId(2)));
        let down = choose(Placement::On(NodeId(3)), NodeId(1), &peers, "Counter", 0).unwrap_err();
        assert!(down.to_string().contains("node-3 is unavailable: the node is down"), "{down}");
        let unknown = choose(Placement::On(NodeId(9)), NodeId(1), &peers, "Counter", 0).unwrap_err();
        assert!(
            unknown
                .to_string()
                .contains("not a member of the cluster; members: node-1 (alive), node-2 (alive), node-3 (dead)"),
            "{unknown}"
        );
        let class = choose(Placement::On(NodeId(2)), NodeId(1), &peers, "Blob", 0).unwrap_err();
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
        let picks: Vec<NodeId> =
            (0..10).map(|r| choose(Placement::Random, NodeId(1), &peers, "Gpu", r).unwrap()).collect();
        assert!(picks.iter().all(|n| *n == NodeId(2)), "{picks:?}");
        let spread: std::collections::BTreeSet<NodeId> =
            (0..10).map(|r| choose(Placement::Random, NodeId(1), &peers, "Counter", r).unwrap()).collect();
        assert_eq!(spread.len(), 2);
        assert!(matches!(
            choose(Placement::Random, NodeId(1), &peers, "Nope", 0),
            Err(InvokeError::NoSuchClass { .. })
        ));
    }
}
