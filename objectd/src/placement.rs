//! Where a new object goes: a pure decision from the policy, this node, and the members as
//! gossip reports them.

use crate::membership::{Peer, PeerState};
use clouds::{InvokeError, NodeId};
use serde::{Deserialize, Serialize};

/// How to place a new object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Placement {
    /// On the node that handles the request.
    Local,
    /// On this node.
    On(NodeId),
    /// On a node chosen at random among the live nodes that have the class.
    Random,
}

impl std::str::FromStr for Placement {
    type Err = String;
    /// `local`, `random`, or a node id (`3` or `node-3`).
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "local" => Ok(Placement::Local),
            "random" => Ok(Placement::Random),
            other => other.parse::<NodeId>().map(Placement::On).map_err(|_| {
                format!("`{other}` is not a placement; expected `local`, `random` or a node id such as `2` or `node-2`")
            }),
        }
    }
}

/// Picks the node for a new object of `class`. `random` is any random number (the caller's
/// dice), so that the choice is deterministic under test.
pub fn choose(policy: Placement, me: NodeId, peers: &[Peer], class: &str, random: u64) -> Result<NodeId, InvokeError> {
    let members = || peers.iter().map(|p| format!("{} ({})", p.id, p.state)).collect::<Vec<_>>().join(", ");
    match policy {
        Placement::Local => Ok(me),
        Placement::On(node) if node == me => Ok(me),
        Placement::On(node) => match peers.iter().find(|p| p.id == node) {
            None => Err(InvokeError::Unavailable {
                node: node.to_string(),
                reason: format!("not a member of the cluster; members: {}", members()),
            }),
            Some(p) if p.state == PeerState::Dead => {
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
                .filter(|p| p.state == PeerState::Alive && p.classes.iter().any(|c| c == class))
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

    fn peer(id: u16, state: PeerState, classes: &[&str]) -> Peer {
        Peer {
            id: NodeId(id),
            generation: 1,
            addr: format!("127.0.0.1:{}", 7000 + id).parse().unwrap(),
            state,
            classes: classes.iter().map(|c| c.to_string()).collect(),
            labels: Vec::new(),
            root: None,
            objects: 0,
            active: 0,
            inflight: 0,
        }
    }

    #[test]
    fn local_and_explicit_nodes() {
        let peers = [
            peer(1, PeerState::Alive, &["Counter"]),
            peer(2, PeerState::Alive, &["Counter"]),
            peer(3, PeerState::Dead, &["Counter"]),
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
            peer(1, PeerState::Alive, &["Counter"]),
            peer(2, PeerState::Alive, &["Counter", "Gpu"]),
            peer(3, PeerState::Suspect, &["Gpu"]),
            peer(4, PeerState::Dead, &["Gpu"]),
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

    #[test]
    fn placements_parse() {
        assert_eq!("local".parse::<Placement>(), Ok(Placement::Local));
        assert_eq!("node-2".parse::<Placement>(), Ok(Placement::On(NodeId(2))));
        assert!("somewhere".parse::<Placement>().unwrap_err().contains("expected `local`, `random`"));
    }
}
