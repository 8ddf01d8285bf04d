//! The messages between clients and nodes. Every request carries `WIRE_VERSION`; a node
//! refuses a version it does not speak with a clear error instead of misreading it.

use clouds::{CallId, ClassInfo, Codec, InvokeError, NodeId, ObjectId, ThreadCtx};
use serde::{Deserialize, Serialize};

pub const WIRE_VERSION: u16 = 1;

/// One method call by one thread.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Invocation {
    pub thread: ThreadCtx,
    pub target: ObjectId,
    pub method: String,
    pub codec: Codec,
    pub args: Vec<u8>,
    /// Idempotency key: a write with a call id seen before returns the recorded reply.
    pub call_id: Option<CallId>,
    /// The capability presented for this call (checked from issue 4 on).
    pub capability: Option<Vec<u8>>,
}

/// The initial state of a new object.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum InitialState {
    /// The class's `Default`.
    Default,
    /// JSON text, from people.
    Json(String),
    /// The stored (postcard) form, from programs.
    Encoded(Vec<u8>),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CreateRequest {
    pub class: String,
    pub state: InitialState,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum RequestBody {
    Invoke(Invocation),
    Create(CreateRequest),
    Describe(ObjectId),
    Delete(ObjectId),
    Classes,
    Status,
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
    pub state_bytes: u64,
    pub pages: u64,
    pub page_bytes: u64,
    /// The state as JSON text.
    pub state: String,
    pub methods: ClassInfo,
}

/// What `status` tells about a node.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeStatus {
    pub node: NodeId,
    pub root: ObjectId,
    pub objects: u64,
    pub active: u64,
    pub durability: String,
    pub build: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ResponseBody {
    Invoked(Vec<u8>),
    Created(ObjectId),
    Described(Box<ObjectInfo>),
    Deleted,
    Classes(Vec<ClassInfo>),
    Status(NodeStatus),
}

pub type Response = Result<ResponseBody, InvokeError>;
