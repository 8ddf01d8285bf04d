//! The thread context: the explicit request data every invocation message carries.

use crate::id::{NodeId, ObjectId, ThreadId};
use crate::object::Access;
use serde::{Deserialize, Serialize};

/// The default deadline of a thread started by a client.
pub const DEFAULT_DEADLINE_MS: u64 = 30_000;
/// The longest deadline a thread may have (a day): what a message asks beyond it counts as
/// this much, so that no deadline arithmetic overflows.
pub const MAX_DEADLINE_MS: u64 = 86_400_000;
/// The default hop limit: how many frames a call chain may hold.
pub const DEFAULT_HOP_LIMIT: usize = 64;

/// One object a thread is inside of.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// The object entered.
    pub object: ObjectId,
    /// Its class.
    pub class: String,
    /// The method the thread runs in it.
    pub method: String,
    /// The node where it runs.
    pub node: NodeId,
    /// Whether the method reads or writes.
    pub access: Access,
}

/// `remaining_ms` as a duration, at most `MAX_DEADLINE_MS`.
pub fn time_left(remaining_ms: u64) -> std::time::Duration {
    std::time::Duration::from_millis(remaining_ms.min(MAX_DEADLINE_MS))
}

/// A logical thread as it travels with an invocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadCtx {
    /// The thread's id, the same on every node it visits.
    pub id: ThreadId,
    /// The objects the thread is inside of, outermost first.
    pub chain: Vec<Frame>,
    /// Time left until the thread's deadline when the message was sent. Relative, so that
    /// clocks of different nodes need not agree.
    pub remaining_ms: u64,
    /// Lamport clock of the sender.
    pub lamport: u64,
    /// W3C trace context of the caller's span, when tracing is exported.
    pub trace: Option<String>,
    /// Whether replies carry the path the thread took (`clouds invoke --trace`).
    pub record_path: bool,
    /// The atomic action the thread is inside of, if any: everything it does commits with
    /// the action or not at all.
    #[serde(default)]
    pub action: Option<ActionRef>,
    /// Asked by a client for one call (`clouds invoke --atomic`): the method the thread
    /// invokes first is an atomic action's boundary, as if it were `#[atomic]`.
    #[serde(default)]
    pub atomic: bool,
}

/// An atomic action, as threads inside it carry it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ActionRef {
    /// The action's id.
    pub id: uuid::Uuid,
    /// The node where the atomic method runs: it decides, and participants ask it.
    pub coordinator: NodeId,
}

impl std::fmt::Display for ActionRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "action {} (coordinator {})", self.id, self.coordinator)
    }
}

impl ThreadCtx {
    /// A new thread, as a client starts one.
    pub fn new(deadline_ms: u64) -> Self {
        ThreadCtx {
            id: ThreadId::new(),
            chain: Vec::new(),
            remaining_ms: deadline_ms,
            lamport: 0,
            trace: None,
            record_path: false,
            action: None,
            atomic: false,
        }
    }

    /// Starts a trace for this thread (W3C `traceparent`): its trace id is the thread's
    /// id, so `clouds invoke --trace` can name the trace a backend shows; the first node
    /// the thread reaches continues it.
    pub fn start_trace(&mut self) {
        let parent = uuid::Uuid::new_v4().as_u64_pair().1 | 1;
        self.trace = Some(format!("00-{}-{parent:016x}-01", self.id.0.simple()));
    }

    /// The frame in which the thread holds `object`, if it does.
    pub fn holding(&self, object: ObjectId) -> Option<&Frame> {
        self.chain.iter().find(|f| f.object == object)
    }

    /// The call chain for people: `Counter.add_from(…5eff84fc)@node-1 -> …`.
    pub fn chain_text(&self) -> String {
        chain_text(&self.chain)
    }
}

/// A call chain for messages: `Counter.incr(…1f) <- Bank.transfer(…2a)`.
pub fn chain_text(chain: &[Frame]) -> String {
    let parts: Vec<String> = chain
        .iter()
        .map(|f| {
            // The last 8 hex digits: random, unlike the leading time prefix.
            let id = f.object.to_string();
            format!("{}.{}(…{})@{}", f.class, f.method, &id[id.len() - 8..], f.node)
        })
        .collect();
    parts.join(" -> ")
}
