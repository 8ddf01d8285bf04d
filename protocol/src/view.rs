//! A node as the cluster's membership reports it: where it listens, what it hosts, whether
//! it is up, and its load vector. Sent on the wire (`Nodes`) and read by placement.

use clouds::{NodeId, ObjectId};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// Version of the load vector's encoding in gossip. A node that reads a load of another
/// version (a newer node in a rolling upgrade) treats it as unknown rather than misread it.
/// 2: busy time, calls, lock waiters, store bytes, memory and the measured copy rate.
pub const LOAD_VERSION: u16 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
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

/// The load vector a node publishes, smoothed over the last few seconds (an exponentially
/// weighted mean refreshed every second). Adding a field means a new `LOAD_VERSION`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Load {
    /// Objects in the node's store.
    pub objects: u64,
    /// Objects activated (decoded in memory).
    pub active: u64,
    /// Invocations running now.
    pub inflight: u64,
    /// Invocations waiting for an object's lock now.
    pub waiting: u64,
    /// Time spent in invocations that entered this node (running, or waiting for an
    /// object's lock), in milliseconds per second: 1000 is one invocation always in
    /// progress. The measure that rebalancing evens out.
    pub busy_ms: f64,
    /// Invocations that entered this node, per second.
    pub calls: f64,
    /// Bytes of the node's store on disk.
    pub store_bytes: u64,
    /// Resident memory of the node's process.
    pub memory_bytes: u64,
    /// How fast this node last copied an object to another (bytes per second); 0 until it has.
    pub copy_rate: f64,
}

impl Load {
    /// How loaded the node is, as one number: its busy time (ms per second).
    pub fn busy(&self) -> f64 {
        self.busy_ms
    }
}

/// The drained homes and the nodes that keep their home records, as `nodes` publish them.
pub fn keepers(nodes: &[NodeView]) -> Vec<(NodeId, NodeId)> {
    nodes.iter().flat_map(|v| v.keeps_homes.iter().filter(move |h| **h != v.id).map(move |h| (*h, v.id))).collect()
}

/// What a node takes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeMode {
    /// Takes any object.
    #[default]
    Server,
    /// Someone's desk machine: takes objects from elsewhere only while its owner is away,
    /// and evicts them when the owner comes back (its own objects stay).
    Workstation,
    /// Takes no new object (placement passes it over, moves to it are refused); what it
    /// has keeps being served, and may be moved off.
    Draining,
}

impl NodeMode {
    pub fn as_str(&self) -> &'static str {
        match self {
            NodeMode::Server => "server",
            NodeMode::Workstation => "workstation",
            NodeMode::Draining => "draining",
        }
    }

    /// Whether a node in this mode takes objects from elsewhere (creations placed there,
    /// moves to it), its owner being `away` (which matters only to a workstation).
    pub fn takes_new(&self, away: bool) -> bool {
        match self {
            NodeMode::Server => true,
            NodeMode::Workstation => away,
            NodeMode::Draining => false,
        }
    }

    /// Reads the gossip form; a node that published none is a server.
    pub fn decode(text: Option<&str>) -> NodeMode {
        text.and_then(|t| t.parse().ok()).unwrap_or_default()
    }
}

impl std::fmt::Display for NodeMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for NodeMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "server" => Ok(NodeMode::Server),
            "workstation" => Ok(NodeMode::Workstation),
            "draining" => Ok(NodeMode::Draining),
            other => Err(format!("`{other}` is not a node mode; expected `server`, `workstation` or `draining`")),
        }
    }
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    /// Whether it takes new objects.
    #[serde(default)]
    pub mode: NodeMode,
    /// A workstation's owner is using it (the node says so; only workstations care).
    #[serde(default)]
    pub owner_present: bool,
    /// Nodes whose home records this node keeps since they were drained (besides its own).
    #[serde(default)]
    pub keeps_homes: Vec<NodeId>,
}

impl NodeView {
    /// Whether the node runs objects of `class`.
    pub fn has_class(&self, class: &str) -> bool {
        self.classes.iter().any(|c| c == class)
    }

    /// Whether the node carries the label `want`: `KEY=VALUE` exactly, or `KEY` alone as a
    /// label of its own or as the key of one (`gpu` matches `gpu` and `gpu=a100`).
    pub fn has_label(&self, want: &str) -> bool {
        self.labels.iter().any(|l| l == want || (!want.contains('=') && l.split('=').next() == Some(want)))
    }

    /// Whether the node takes objects from elsewhere now: a live server, or a live
    /// workstation whose owner is away.
    pub fn takes_new(&self) -> bool {
        self.state == Liveness::Alive && self.mode.takes_new(!self.owner_present)
    }

    /// The node's busy time (ms per second), 0 if it published no load.
    pub fn busy(&self) -> f64 {
        self.load.map_or(0.0, |l| l.busy())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_load_vector_round_trips_with_its_version() {
        let load = Load { objects: 7, active: 2, inflight: 1, busy_ms: 12.5, ..Load::default() };
        assert_eq!(Load::decode(&load.encode()), Some(load));
        assert!(load.encode().contains("\"v\":2"));
    }

    #[test]
    fn another_version_or_garbage_is_unknown_not_misread() {
        assert_eq!(Load::decode(r#"{"v":1,"objects":7,"active":2,"inflight":1}"#), None);
        assert_eq!(Load::decode("7"), None);
        assert_eq!(Load::decode(""), None);
    }

    #[test]
    fn modes_round_trip_through_gossip_and_say_who_takes_new_objects() {
        let table = [
            (NodeMode::Server, [true, true]),
            (NodeMode::Workstation, [false, true]),
            (NodeMode::Draining, [false, false]),
        ];
        for (mode, [present, away]) in table {
            assert_eq!(NodeMode::decode(Some(mode.as_str())), mode);
            assert_eq!(mode.takes_new(false), present, "{mode}, owner present");
            assert_eq!(mode.takes_new(true), away, "{mode}, owner away");
        }
        assert_eq!(NodeMode::decode(None), NodeMode::Server, "an older node is a server");
        assert!("laptop".parse::<NodeMode>().unwrap_err().contains("expected `server`"));
    }

    #[test]
    fn labels_match_by_key_or_key_and_value() {
        let node = NodeView {
            id: NodeId(1),
            generation: 1,
            addr: ([127, 0, 0, 1], 1).into(),
            state: Liveness::Alive,
            classes: Vec::new(),
            labels: vec!["gpu=a100".into(), "ssd".into()],
            root: None,
            load: None,
            mode: NodeMode::Server,
            owner_present: false,
            keeps_homes: Vec::new(),
        };
        assert!(node.has_label("gpu") && node.has_label("gpu=a100") && node.has_label("ssd"));
        assert!(!node.has_label("gpu=h100") && !node.has_label("ssd=nvme") && !node.has_label("zone"));
    }
}
