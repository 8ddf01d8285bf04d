//! What the nodes decide on their own and why: placements, rebalancing and affinity moves,
//! evictions, drains, handovers of home records. Each node keeps the recent ones
//! (`Decisions`); `clouds why` and `clouds decisions` gather them from every node.
//! Also the reports of a drain and of the load of single objects.

use clouds::{NodeId, ObjectId};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DecisionKind {
    /// A new object's node was chosen by a policy other than `local`.
    Placed,
    /// Moved off a node busier than the cluster's mean.
    Rebalanced,
    /// Moved next to the objects it calls and is called by.
    Affinity,
    /// Moved off a workstation whose owner came back.
    Evicted,
    /// Moved off a node being drained.
    Drained,
    /// An object arrived here (the target's side of a move, with the source's reason).
    Arrived,
    /// A drained node's home records were handed to another node.
    HandedOver,
    /// An automatic move was wanted but could not be done.
    Failed,
    /// A cycle of threads waiting for each other was found; this node failed one of them
    /// (`Deadlock`), which let the others go on.
    DeadlockBroken,
}

impl DecisionKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            DecisionKind::Placed => "placed",
            DecisionKind::Rebalanced => "rebalanced",
            DecisionKind::Affinity => "affinity",
            DecisionKind::Evicted => "evicted",
            DecisionKind::Drained => "drained",
            DecisionKind::Arrived => "arrived",
            DecisionKind::HandedOver => "handed-over",
            DecisionKind::Failed => "failed",
            DecisionKind::DeadlockBroken => "deadlock-broken",
        }
    }
}

impl fmt::Display for DecisionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One decision a node made, with its inputs in words.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Wall-clock time, ms since the Unix epoch.
    pub at_ms: u64,
    /// The node that recorded it.
    pub node: NodeId,
    pub kind: DecisionKind,
    pub object: Option<ObjectId>,
    pub class: String,
    pub from: Option<NodeId>,
    pub to: Option<NodeId>,
    /// Why, with the figures the decision was made from.
    pub reason: String,
}

impl Decision {
    /// `at` as `HH:MM:SS` (UTC).
    pub fn clock(&self) -> String {
        let secs = self.at_ms / 1000;
        format!("{:02}:{:02}:{:02}", secs / 3600 % 24, secs / 60 % 60, secs % 60)
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.clock(), self.node, self.kind)?;
        if let Some(id) = self.object {
            write!(f, " {id}")?;
        }
        if !self.class.is_empty() {
            write!(f, " ({})", self.class)?;
        }
        match (self.from, self.to) {
            (Some(from), Some(to)) => write!(f, " {from} -> {to}")?,
            (None, Some(to)) => write!(f, " -> {to}")?,
            (Some(from), None) => write!(f, " from {from}")?,
            (None, None) => {}
        }
        write!(f, ": {}", self.reason)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DrainState {
    /// Objects are being moved off.
    Moving,
    /// Every object that could move has; the home records are being handed over.
    HandingOver,
    /// Over: the node holds no object that could move, and keeps no home records.
    Done,
    /// Ended by `--undo` (or `node mode server`) before it was over.
    Undone,
    /// Stopped short: a step could not finish in time (the report's problem says which).
    /// The node stays draining; `clouds drain NODE` again takes up where it stopped.
    Failed,
}

impl fmt::Display for DrainState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DrainState::Moving => "moving",
            DrainState::HandingOver => "handing over",
            DrainState::Done => "done",
            DrainState::Undone => "undone",
            DrainState::Failed => "failed",
        })
    }
}

/// An object a drain moved, or could not.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Drained {
    pub id: ObjectId,
    pub class: String,
    /// Where it went; `None`: it stays, for `reason`.
    pub to: Option<NodeId>,
    pub reason: String,
}

/// How a drain is going.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DrainReport {
    pub node: NodeId,
    pub state: DrainState,
    /// Objects the node held when the drain began.
    pub total: u64,
    /// Each object dealt with so far: moved, or left with the reason.
    pub objects: Vec<Drained>,
    /// The node that keeps this node's home records now.
    pub homes_to: Option<NodeId>,
    /// How many home records were handed over.
    pub home_records: u64,
    pub elapsed_ms: u64,
    /// What keeps the drain from finishing, if something does (no node to hand the home
    /// records to; moves whose home was not told yet).
    #[serde(default)]
    pub problem: Option<String>,
}

impl DrainReport {
    pub fn moved(&self) -> usize {
        self.objects.iter().filter(|o| o.to.is_some()).count()
    }

    pub fn stuck(&self) -> impl Iterator<Item = &Drained> {
        self.objects.iter().filter(|o| o.to.is_none())
    }
}

/// A home's record of where one of its objects is: what a handover carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HomeRecord {
    pub id: ObjectId,
    pub at: NodeId,
    pub epoch: u64,
}

/// Another object that one object calls or is called by, and how often (per second).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Partner {
    pub object: ObjectId,
    pub node: NodeId,
    pub calls: f64,
}

/// The recent load of one object on its node, smoothed like the node's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObjectLoad {
    pub id: ObjectId,
    pub class: String,
    pub node: NodeId,
    /// Time in its methods, ms per second.
    pub busy_ms: f64,
    /// Invocations per second.
    pub calls: f64,
    /// Never moved automatically.
    pub pinned: bool,
    /// The objects it calls or is called by, busiest first.
    pub partners: Vec<Partner>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decision_reads_as_a_sentence() {
        let id = ObjectId::new(NodeId(1));
        let d = Decision {
            at_ms: 12 * 3_600_000 + 60_000 + 7_000,
            node: NodeId(1),
            kind: DecisionKind::Rebalanced,
            object: Some(id),
            class: "Counter".into(),
            from: Some(NodeId(1)),
            to: Some(NodeId(3)),
            reason: "node-1 at 2.4x the mean".into(),
        };
        assert_eq!(
            d.to_string(),
            format!("12:01:07 node-1 rebalanced {id} (Counter) node-1 -> node-3: node-1 at 2.4x the mean")
        );
    }
}
