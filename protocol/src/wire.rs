//! The messages between clients and nodes. Every request carries `WIRE_VERSION`; a node
//! refuses a version it does not speak with a clear error instead of misreading it.

use crate::decision::{Decision, DrainReport, HomeRecord, ObjectLoad};
use crate::migration::{Chunk, MigrationReport, Resolution, Strategy};
use crate::placement::Placement;
use crate::view::{NodeMode, NodeView};
use capability::PublicKey;
use clouds::{ActionRef, CallId, Cap, ClassInfo, Codec, InvokeError, NodeId, ObjectId, RawRef, ThreadCtx, ThreadId};
use serde::{Deserialize, Serialize};

/// 3: the node view carries a versioned load vector; invocations may name their target by
/// path; objects move between nodes (`Migrate`, `Migration`).
/// 4: lazy moves (`Missing`, `Fetch`, `Release`); the offer names its source and
/// strategy; `describe` shows a move under way and a lazy move's residual pages.
/// 5: atomic actions (the thread's action, `Action` steps, replies naming the nodes an
/// action touched).
/// 6: placement policies (least-loaded, two choices, labels, near another object), node
/// modes (`SetMode`), `Locate`; the load vector's version 2.
/// 7: drains, decisions, hot objects, home records, pinned objects.
/// 8: `Objects` (listing a node's objects), `describe` shows the first page keys, a drain
/// may end `failed`.
/// 9: a hop names the thread's trace id.
/// 10: `InvokeError::InDoubt` (a write the node's store could not flush).
/// 11: capabilities may carry batched signatures (`capability::batch`).
pub const WIRE_VERSION: u16 = 11;

/// One method call by one thread.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Invocation {
    pub thread: ThreadCtx,
    pub target: ObjectId,
    pub method: String,
    pub codec: Codec,
    #[serde(with = "serde_bytes")]
    pub args: Vec<u8>,
    /// Idempotency key: a write with a call id seen before returns the recorded reply.
    pub call_id: Option<CallId>,
    /// The capability presented for this call; the node that runs it checks it.
    pub capability: Option<Cap>,
}

/// An invocation of the object a path names (`bank/alice`), resolved by the node that
/// receives it from the cluster's root directory, and run in the same request. Each
/// directory on the way, and the target, is entered with the capability presented for it
/// in `caps` if there is one, else with the one its parent's entry hands out: nothing is
/// resolved that the caller could not resolve itself.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PathInvocation {
    pub thread: ThreadCtx,
    /// The path, relative to the root directory.
    pub path: String,
    pub method: String,
    pub codec: Codec,
    #[serde(with = "serde_bytes")]
    pub args: Vec<u8>,
    pub call_id: Option<CallId>,
    /// The caller's capabilities that may be needed on the way (at most one per object).
    pub caps: Vec<Cap>,
}

/// The most capabilities a `PathInvocation` may carry.
pub const MAX_PRESENTED: usize = 64;

/// The initial state of a new object.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum InitialState {
    /// The class's `Default`.
    Default,
    /// JSON text, from people.
    Json(String),
    /// The stored (postcard) form, from programs.
    Encoded(#[serde(with = "serde_bytes")] Vec<u8>),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CreateRequest {
    pub class: String,
    pub state: InitialState,
    pub placement: Placement,
    /// Never moved automatically (rebalancing, affinity, eviction); moves by hand and
    /// drains still move it.
    pub pinned: bool,
    /// The node that chose this one for the object, when it was another: on a
    /// workstation, such an object is a guest even though its home is there.
    pub placed_by: Option<NodeId>,
    /// Who gets the owner capability of the new object.
    pub owner: PublicKey,
}

/// One object a thread entered, as `--trace` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hop {
    pub node: NodeId,
    pub object: ObjectId,
    pub class: String,
    pub method: String,
    /// Lamport time at which the node received the invocation.
    pub lamport: u64,
    /// How deep in the call chain (0: the call the client made).
    pub depth: u16,
    /// Time spent in this invocation, nested invocations included.
    pub micros: u64,
    /// The trace the thread belongs to (W3C trace id): what an OpenTelemetry backend
    /// shows it under, when the nodes export traces.
    pub trace_id: Option<String>,
}

/// The result of an invocation, and the path the thread took if it was asked for.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Reply {
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    /// In call order; empty unless the thread's `record_path` is set.
    pub hops: Vec<Hop>,
    /// Inside an atomic action: the nodes it holds objects on, and whether a call inside it
    /// failed (which dooms it).
    #[serde(default)]
    pub trail: ActionTrail,
}

/// What an invocation inside an atomic action tells the caller about the action.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionTrail {
    /// Nodes where the action holds objects (participants), this one included.
    pub joined: Vec<NodeId>,
    /// Why the action can only abort, if a call inside it failed.
    pub doomed: Option<String>,
}

impl ActionTrail {
    pub fn join(&mut self, node: NodeId) {
        if !self.joined.contains(&node) {
            self.joined.push(node);
        }
    }

    /// Adds what a nested invocation reported.
    pub fn merge(&mut self, other: ActionTrail) {
        for n in other.joined {
            self.join(n);
        }
        if self.doomed.is_none() {
            self.doomed = other.doomed;
        }
    }
}

/// The node-to-node messages of an atomic action's two-phase commit.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ActionStep {
    /// Coordinator to participant: make your part durable, keep its locks, and vote.
    Prepare { action: ActionRef },
    /// Coordinator to participant: the action committed; apply and unlock.
    Commit { action: ActionRef },
    /// Coordinator (or anyone who knows) to participant: the action aborted; roll back.
    Abort { action: ActionRef },
    /// Participant to coordinator: what was decided?
    Decision { action: ActionRef },
}

/// What a coordinator answers about an action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Committed,
    Aborted,
    /// Still running or collecting votes: ask again.
    Pending,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum RequestBody {
    Invoke(Invocation),
    /// Resolve a path, then invoke what it names: one round trip.
    InvokePath(PathInvocation),
    Create(CreateRequest),
    /// Needs the read right.
    Describe(RawRef),
    /// Needs the admin right.
    Delete(RawRef),
    /// Moves the object to a new revocation epoch, voiding every capability granted
    /// before; `holder` gets a fresh owner capability. Needs the admin right.
    Revoke {
        target: RawRef,
        holder: PublicKey,
    },
    /// A capability for the root directory made out to `holder`: an owner capability for
    /// the cluster's administrator (a connection that proved the configured admin key),
    /// a read-only one for any other user (everyone may read the names at the root). A
    /// node passing the request on says which (`read_only`).
    RootCapability {
        holder: PublicKey,
        #[serde(default)]
        read_only: bool,
    },
    Classes,
    Status,
    /// The cluster as this node sees it.
    Nodes,
    /// Continue a deadlock search here (node to node).
    Probe(ProbeRequest),
    /// Move the object to another node. Needs the migrate right.
    Migrate {
        target: RawRef,
        to: NodeId,
        strategy: Strategy,
    },
    /// A step of a move, from the source (or, for `Home`, to the object's home); node to node.
    Migration(MigrationStep),
    /// A step of an atomic action's commit; node to node.
    Action(ActionStep),
    /// The administrator decides by hand a prepared action whose coordinator does not come
    /// back (`clouds action resolve`): commit or abort this node's part of it.
    ResolveAction {
        action: String,
        commit: bool,
    },
    /// Sets the node's mode (a draining node takes no new objects). Only the administrator may.
    SetMode(NodeMode),
    /// Where the object is now (routed to it like an invocation; answered `Located`).
    Locate(ObjectId),
    /// Administrator: move every object off this node (mode `draining`) and hand its home
    /// records over; `undo` ends a drain (mode `server`). Answered at once with the report.
    Drain {
        undo: bool,
    },
    /// How this node's drain is going.
    DrainStatus,
    /// Administrator: the owner of this workstation is using it now (evicts its guests).
    OwnerActive,
    /// The recent decisions of this node, about one object or all.
    Decisions {
        object: Option<ObjectId>,
    },
    /// The busiest objects of this node.
    Hot {
        limit: u32,
    },
    /// Between nodes: keep the home records of drained node `home` from now on.
    Adopt {
        home: NodeId,
        records: Vec<HomeRecord>,
    },
    /// Between nodes: give back the home records of `home`, which is a server again.
    Reclaim {
        home: NodeId,
    },
    /// Administrator: the objects this node holds, in id order after `after`, only those
    /// of `class` if named, at most `limit` (answered `Objects`).
    Objects {
        class: Option<String>,
        after: Option<ObjectId>,
        limit: u32,
    },
}

/// The most objects one `Objects` request may ask for.
pub const MAX_OBJECTS_PER_PAGE: u32 = 10_000;

/// One object as `clouds objects` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectEntry {
    pub id: ObjectId,
    pub class: String,
    pub node: NodeId,
    pub home: NodeId,
    pub version: u64,
    pub state_bytes: u64,
    pub pages: u64,
    pub page_bytes: u64,
}

/// A page of one node's objects.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectPage {
    pub objects: Vec<ObjectEntry>,
    /// Where the next page starts (`after`), if the node may have more: the listing stops at
    /// the limit, or after looking at a bounded number of records for a class filter.
    pub next: Option<ObjectId>,
}

/// The node-to-node messages of a move of `id`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum MigrationStep {
    /// Can the target take an object of `class` whose state has format `format`, moving
    /// from node `from` with `strategy`?
    Offer {
        id: ObjectId,
        class: String,
        format: u32,
        from: NodeId,
        strategy: Strategy,
        /// Why it moves (the target records it).
        reason: String,
        /// The object is pinned (never moved automatically): the target keeps the mark.
        pinned: bool,
    },
    /// A chunk of the object (pages, removed pages, call records): invisible until `Commit`.
    Chunk { id: ObjectId, chunk: Chunk },
    /// The record (a `Chunk::Record`): the target installs it, durably, and owns the object.
    Commit { id: ObjectId, record: Chunk },
    /// The source does not know whether `Commit` arrived: the target says whether it
    /// committed, and if not refuses the commit from now on.
    Resolve { id: ObjectId },
    /// The move is off: discard what arrived.
    Abort { id: ObjectId },
    /// To the object's home: it lives at `at` now.
    Home { id: ObjectId, at: NodeId },
    /// A lazy move, in the freeze: keys of pages that stay on the source until the target
    /// fetches them (in chunks, before `Commit`).
    Missing { id: ObjectId, keys: Vec<Vec<u8>> },
    /// From the target of a lazy move to its source: the pages under these keys, as many
    /// as fit a chunk, in the order asked (answered by `Fetched`).
    Fetch { id: ObjectId, keys: Vec<Vec<u8>> },
    /// From the target of a lazy move to its source: every page was pulled; the source
    /// may drop them, and the move is over.
    Release { id: ObjectId },
}

impl RequestBody {
    /// Whether the request may run twice with the effect of once, so that a transport
    /// failure (which may come after it ran) can be answered by sending it again: reads,
    /// writes with a call id, and the protocol steps whose handlers are idempotent.
    pub fn repeatable(&self) -> bool {
        match self {
            RequestBody::Invoke(inv) => inv.call_id.is_some(),
            RequestBody::InvokePath(inv) => inv.call_id.is_some(),
            RequestBody::Describe(_)
            | RequestBody::Classes
            | RequestBody::Status
            | RequestBody::Nodes
            | RequestBody::Probe(_)
            | RequestBody::Locate(_)
            | RequestBody::SetMode(_)
            | RequestBody::DrainStatus
            | RequestBody::Drain { .. }
            | RequestBody::OwnerActive
            | RequestBody::Decisions { .. }
            | RequestBody::Hot { .. }
            | RequestBody::Adopt { .. }
            | RequestBody::Reclaim { .. }
            | RequestBody::Objects { .. }
            | RequestBody::Action(_) => true,
            RequestBody::Migration(step) => matches!(
                step,
                MigrationStep::Fetch { .. }
                    | MigrationStep::Resolve { .. }
                    | MigrationStep::Home { .. }
                    | MigrationStep::Release { .. }
                    | MigrationStep::Abort { .. }
            ),
            _ => false,
        }
    }

    /// The object the request is about, for those that go to the node that has it.
    pub fn target(&self) -> Option<ObjectId> {
        match self {
            RequestBody::Invoke(inv) => Some(inv.target),
            RequestBody::Migrate { target, .. } => Some(target.id),
            RequestBody::Describe(r) | RequestBody::Delete(r) | RequestBody::Revoke { target: r, .. } => Some(r.id),
            RequestBody::Locate(id) => Some(*id),
            _ => None,
        }
    }

    /// What the request does, for messages (`incr`, `describe`).
    pub fn operation(&self) -> &str {
        match self {
            RequestBody::Invoke(inv) => &inv.method,
            RequestBody::InvokePath(inv) => &inv.method,
            RequestBody::Create(_) => "create",
            RequestBody::Describe(_) => "describe",
            RequestBody::Delete(_) => "delete",
            RequestBody::Revoke { .. } => "revoke",
            RequestBody::RootCapability { .. } => "root capability",
            RequestBody::Classes => "classes",
            RequestBody::Status => "status",
            RequestBody::Nodes => "nodes",
            RequestBody::Probe(_) => "probe",
            RequestBody::Migrate { .. } => "migrate",
            RequestBody::Migration(_) => "migration step",
            RequestBody::Action(_) => "atomic action step",
            RequestBody::ResolveAction { .. } => "resolve an action",
            RequestBody::SetMode(_) => "set the node's mode",
            RequestBody::Locate(_) => "locate",
            RequestBody::Drain { undo: false } => "drain the node",
            RequestBody::Drain { undo: true } => "end the node's drain",
            RequestBody::DrainStatus => "drain status",
            RequestBody::OwnerActive => "report owner activity",
            RequestBody::Decisions { .. } => "decisions",
            RequestBody::Hot { .. } => "hot objects",
            RequestBody::Adopt { .. } => "adopt home records",
            RequestBody::Reclaim { .. } => "reclaim home records",
            RequestBody::Objects { .. } => "list every object",
        }
    }
}

/// One step of a deadlock cycle: `thread` waits for `object`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitEdge {
    pub thread: ThreadId,
    pub object: ObjectId,
}

/// A deadlock search arriving from another node.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProbeRequest {
    /// The waiting thread that started the search.
    pub initiator: ThreadId,
    /// Continue from the holders of this object.
    pub object: ObjectId,
    /// The wait edges followed so far.
    pub path: Vec<WaitEdge>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Request {
    pub version: u16,
    pub body: RequestBody,
}

impl Request {
    pub fn new(body: RequestBody) -> Request {
        Request { version: WIRE_VERSION, body }
    }
}

/// What `describe` tells about an object.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ObjectInfo {
    pub id: ObjectId,
    pub class: String,
    pub node: NodeId,
    pub home: NodeId,
    pub version: u64,
    /// The revocation epoch: how many times every capability was revoked.
    pub epoch: u64,
    pub state_bytes: u64,
    pub pages: u64,
    pub page_bytes: u64,
    /// The state as JSON text.
    pub state: String,
    pub methods: ClassInfo,
    /// A move out of this node under way.
    #[serde(default)]
    pub moving: Option<MoveProgress>,
    /// Pages still on the node a lazy move came from.
    #[serde(default)]
    pub residual: Option<Residual>,
    /// The atomic action that holds the object locked, if it is prepared (or in doubt).
    #[serde(default)]
    pub held_by: Option<String>,
    /// The keys of its first pages (up to `FIRST_PAGES`), as text where they are UTF-8,
    /// else in hex.
    #[serde(default)]
    pub first_pages: Vec<String>,
}

/// How many page keys `describe` shows.
pub const FIRST_PAGES: usize = 5;

/// How far a move of an object has come, as its source sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MoveProgress {
    pub to: NodeId,
    pub strategy: Strategy,
    /// The protocol step passed last (`migration::Step`, as text).
    pub step: String,
    /// Payload bytes sent so far.
    pub bytes: u64,
    /// Of about this many (the object's pages and state when the move began).
    pub total_bytes: u64,
    pub rounds: u32,
}

/// A lazily moved object's dependency on the node it came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Residual {
    pub from: NodeId,
    /// Pages not pulled yet, of `pages` when the move switched.
    pub missing: u64,
    pub pages: u64,
}

impl Residual {
    /// The share of pages still on the source, in percent.
    pub fn percent(&self) -> f64 {
        if self.pages == 0 {
            0.0
        } else {
            self.missing as f64 * 100.0 / self.pages as f64
        }
    }
}

/// What `status` tells about a node.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeStatus {
    pub node: NodeId,
    /// The cluster's root directory (kept by the root node).
    pub root: ObjectId,
    pub objects: u64,
    pub active: u64,
    pub durability: String,
    pub build: String,
    /// The administrator's public key, if the node has one.
    #[serde(default)]
    pub admin: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ResponseBody {
    Invoked(Reply),
    /// The new object, with its owner capability.
    Created(RawRef),
    Capability(Cap),
    Described(Box<ObjectInfo>),
    Deleted,
    Classes(Vec<ClassInfo>),
    Status(NodeStatus),
    Nodes(Vec<NodeView>),
    /// The cycle the probe found, if any.
    Probed(Option<Vec<WaitEdge>>),
    Migrated(MigrationReport),
    /// Pages a `Fetch` asked for, a prefix of its keys: the value, or `None` for a page
    /// the source does not have.
    Fetched(Vec<(Vec<u8>, Option<Vec<u8>>)>),
    /// A migration step was done (an offer accepted, a chunk installed, the home updated).
    StepDone,
    Resolved(Resolution),
    /// A participant's vote: `None` yes, `Some(reason)` no.
    Voted(Option<String>),
    Decided(Outcome),
    /// The node's mode now.
    Mode(NodeMode),
    /// The node that has the object.
    Located(NodeId),
    Drain(Box<DrainReport>),
    Decisions(Vec<Decision>),
    Hot(Vec<ObjectLoad>),
    /// Home records given back (`Reclaim`).
    HomeRecords(Vec<HomeRecord>),
    Objects(ObjectPage),
}

pub type Response = Result<ResponseBody, InvokeError>;

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte fields (`serde_bytes`) are written as one slice now, as they were byte by
    /// byte before: the same bytes on the wire (tarpc's bincode) and in postcard, so the
    /// wire version stands.
    #[test]
    fn byte_fields_encode_as_they_did_byte_by_byte() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct ByteByByte {
            v: Vec<u8>,
        }
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Sliced {
            #[serde(with = "serde_bytes")]
            v: Vec<u8>,
        }
        use std::pin::Pin;
        use tarpc::tokio_serde::{formats::Bincode, Deserializer as _, Serializer as _};
        for v in [Vec::new(), vec![7], (0..=255).collect(), vec![0xAB; 70_000]] {
            let old = Pin::new(&mut Bincode::<ByteByByte, ByteByByte>::default())
                .serialize(&ByteByByte { v: v.clone() })
                .unwrap();
            let new = Pin::new(&mut Bincode::<Sliced, Sliced>::default()).serialize(&Sliced { v: v.clone() }).unwrap();
            assert_eq!(old, new);
            let back = Pin::new(&mut Bincode::<Sliced, Sliced>::default()).deserialize(&old[..].into()).unwrap();
            assert_eq!(back.v, v);
            let old = postcard::to_stdvec(&ByteByByte { v: v.clone() }).unwrap();
            assert_eq!(old, postcard::to_stdvec(&Sliced { v: v.clone() }).unwrap());
            assert_eq!(postcard::from_bytes::<Sliced>(&old).unwrap().v, v);
        }
    }

    #[test]
    fn only_requests_that_may_run_twice_are_repeatable() {
        let id = ObjectId::new(NodeId(1));
        let inv = |call: Option<&str>| Invocation {
            thread: ThreadCtx::new(1000),
            target: id,
            method: "incr".into(),
            codec: Codec::Json,
            args: Vec::new(),
            call_id: call.map(|c| CallId(c.into())),
            capability: None,
        };
        let target = RawRef { id, cap: None };
        let to = NodeId(2);
        let table = [
            (RequestBody::Invoke(inv(None)), false),
            (RequestBody::Invoke(inv(Some("dep-17"))), true),
            (RequestBody::Describe(target.clone()), true),
            (RequestBody::Delete(target.clone()), false),
            (RequestBody::Migrate { target, to, strategy: Strategy::Eager }, false),
            (RequestBody::Migration(MigrationStep::Fetch { id, keys: Vec::new() }), true),
            (RequestBody::Migration(MigrationStep::Missing { id, keys: Vec::new() }), false),
            (RequestBody::Migration(MigrationStep::Resolve { id }), true),
            (RequestBody::ResolveAction { action: "x".into(), commit: true }, false),
        ];
        for (body, repeatable) in table {
            assert_eq!(body.repeatable(), repeatable, "{}", body.operation());
        }
    }
}
