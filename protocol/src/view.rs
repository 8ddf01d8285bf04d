//! A node as the cluster's membership reports it: where it listens, what it hosts, whether
//! it is up, and its load vector. Sent on the wire (`Nodes`) and read by placement.

use clouds::{NodeId, ObjectId};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// Version of the load vector's encoding in gossip. A node that reads a load of another
/// version (a newer node in a rolling upgrade) treats it as unknown rather than misread it.
pub const LOAD_VERSION: u16 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Liveness {
    /// Gossip hears its heartbeat and direct contact works.
    Alive,
    /// Gossip still hears it, but a direct call failed in the last few seconds.
    Suspect,
    /// The failure detector stopped hearing its heartbeat.
    Dead,
}

impl std::fmt::Display for Liveness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Liveness::Alive => "alive",
            Liveness::Suspect => "suspect",
            Liveness::Dead => "dead",
        })
    }
}

/// The load vector a node publishes. Adding a field means a new `LOAD_VERSION`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Load {
    /// Objects in the node's store.
    pub objects: u64,
    /// Objects activated (decoded in memory).
    pub active: u64,
    /// Invocations running now.
    pub inflight: u64,
}

/// The load vector as it travels in gossip: with its version.
#[derive(Serialize, Deserialize)]
struct Versioned {
    v: u16,
    #[serde(flatten)]
    load: Load,
}

impl Load {
    /// The gossip form: JSON text carrying `LOAD_VERSION`.
    pub fn encode(&self) -> String {
        serde_json::to_string(&Versioned { v: LOAD_VERSION, load: *self }).expect("a load vector encodes")
    }

    /// Reads the gossip form; `None` for another version or a malformed value.
    pub fn decode(text: &str) -> Option<Load> {
        let v: Versioned = serde_json::from_str(text).ok()?;
        (v.v == LOAD_VERSION).then_some(v.load)
    }
}

/// One node as a node sees it (itself included).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeView {
    pub id: NodeId,
    /// The incarnation: a new one each time the node starts.
    pub generation: u64,
    pub addr: SocketAddr,
    pub state: Liveness,
    pub classes: Vec<String>,
    pub labels: Vec<String>,
    pub root: Option<ObjectId>,
    /// `None`: the node published no load vector this node can read.
    pub load: Option<Load>,
}

impl NodeView {
    /// Whether the node runs objects of `class`.
    pub fn has_class(&self, class: &str) -> bool {
        self.classes.iter().any(|c| c == class)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_load_vector_round_trips_with_its_version() {
        let load = Load { objects: 7, active: 2, inflight: 1 };
        assert_eq!(Load::decode(&load.encode()), Some(load));
        assert!(load.encode().contains("\"v\":1"));
    }

    #[test]
    fn another_version_or_garbage_is_unknown_not_misread() {
        assert_eq!(Load::decode(r#"{"v":2,"objects":7,"active":2,"inflight":1}"#), None);
        assert_eq!(Load::decode("7"), None);
        assert_eq!(Load::decode(""), None);
    }
}
