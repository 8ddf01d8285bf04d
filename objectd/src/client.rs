//! The client library: talk to a node, invoke objects, and get a `Ctx` so that typed
//! stubs (`counter.incr(&ctx, 1).await`) work from code outside any object.

use crate::rpc::{frame_codec, NodeRpcClient};
use crate::wire::{
    CreateRequest, InitialState, Invocation, NodeStatus, ObjectInfo, Request, RequestBody, ResponseBody,
};
use clouds::{
    Backend, BoxFuture, CallId, ClassInfo, Codec, Ctx, Frame, InvokeError, NodeId, ObjectId, ThreadCtx, ThreadId,
};
use std::net::SocketAddr;
use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tarpc::tokio_serde::formats::Bincode;
use tarpc::tokio_util::codec::Framed;

/// How long connecting to a node may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to one node. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct Client {
    rpc: NodeRpcClient,
    addr: SocketAddr,
    /// Deadline of the threads this client starts.
    deadline: Duration,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Result<Client, InvokeError> {
        let unavailable = |reason: String| InvokeError::Unavailable { node: addr.to_string(), reason };
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| unavailable(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs())))?
            .map_err(|e| unavailable(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let transport = tarpc::serde_transport::new(Framed::new(stream, frame_codec()), Bincode::default());
        let rpc = NodeRpcClient::new(tarpc::client::Config::default(), transport).spawn();
        Ok(Client { rpc, addr, deadline: Duration::from_millis(clouds::thread::DEFAULT_DEADLINE_MS) })
    }

    /// Threads started by this client get `deadline` instead of the default 30 s.
    pub fn with_deadline(mut self, deadline: Duration) -> Client {
        self.deadline = deadline;
        self
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    async fn call(&self, body: RequestBody) -> Result<ResponseBody, InvokeError> {
        let mut ctx = tarpc::context::current();
        // The thread's own deadline rules; the transport's gives it a margin to report.
        ctx.deadline = Instant::now() + self.deadline + Duration::from_secs(2);
        self.rpc
            .call(ctx, Request::new(body))
            .await
            .map_err(|e| InvokeError::Unavailable { node: self.addr.to_string(), reason: e.to_string() })?
    }

    /// Invokes a method with arguments already encoded in `codec`, on a new thread.
    pub async fn invoke_on(
        &self,
        thread: ThreadCtx,
        target: ObjectId,
        method: &str,
        codec: Codec,
        args: Vec<u8>,
        call_id: Option<CallId>,
    ) -> Result<Vec<u8>, InvokeError> {
        let inv = Invocation { thread, target, method: method.to_string(), codec, args, call_id, capability: None };
        match self.call(RequestBody::Invoke(inv)).await? {
            ResponseBody::Invoked(reply) => Ok(reply),
            other => Err(unexpected(other)),
        }
    }

    /// Invokes a method with JSON arguments; returns the JSON result.
    pub async fn invoke_json(
        &self,
        target: ObjectId,
        method: &str,
        args: &[serde_json::Value],
        call_id: Option<CallId>,
    ) -> Result<serde_json::Value, InvokeError> {
        let bytes = serde_json::to_vec(args).map_err(|e| InvokeError::invalid(e.to_string()))?;
        let reply = self.invoke_on(self.new_thread(), target, method, Codec::Json, bytes, call_id).await?;
        serde_json::from_slice(&reply).map_err(|e| InvokeError::storage(format!("reply is not JSON: {e}")))
    }

    pub async fn create(&self, class: &str, state: InitialState) -> Result<ObjectId, InvokeError> {
        match self.call(RequestBody::Create(CreateRequest { class: class.to_string(), state })).await? {
            ResponseBody::Created(id) => Ok(id),
            other => Err(unexpected(other)),
        }
    }

    pub async fn describe(&self, id: ObjectId) -> Result<ObjectInfo, InvokeError> {
        match self.call(RequestBody::Describe(id)).await? {
            ResponseBody::Described(info) => Ok(*info),
            other => Err(unexpected(other)),
        }
    }

    pub async fn delete(&self, id: ObjectId) -> Result<(), InvokeError> {
        match self.call(RequestBody::Delete(id)).await? {
            ResponseBody::Deleted => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    pub async fn classes(&self) -> Result<Vec<ClassInfo>, InvokeError> {
        match self.call(RequestBody::Classes).await? {
            ResponseBody::Classes(c) => Ok(c),
            other => Err(unexpected(other)),
        }
    }

    pub async fn status(&self) -> Result<NodeStatus, InvokeError> {
        match self.call(RequestBody::Status).await? {
            ResponseBody::Status(s) => Ok(s),
            other => Err(unexpected(other)),
        }
    }

    fn new_thread(&self) -> ThreadCtx {
        ThreadCtx::new(self.deadline.as_millis() as u64)
    }

    /// A new thread, as a `Ctx` for typed stubs.
    pub fn ctx(&self) -> Ctx {
        Ctx::new(Arc::new(ClientBackend { client: self.clone(), thread: ThreadId::new() }))
    }
}

fn unexpected(body: ResponseBody) -> InvokeError {
    InvokeError::storage(format!("the node answered with an unexpected message: {body:?}"))
}

/// `Ctx` for client code: invocations go to the node; there is no object, so no pages.
struct ClientBackend {
    client: Client,
    thread: ThreadId,
}

fn no_object() -> InvokeError {
    InvokeError::invalid("storage pages exist only inside an object's method, not in client code")
}

impl Backend for ClientBackend {
    fn thread_id(&self) -> ThreadId {
        self.thread
    }

    fn node(&self) -> Option<NodeId> {
        None
    }

    fn this(&self) -> Option<ObjectId> {
        None
    }

    fn chain(&self) -> Vec<Frame> {
        Vec::new()
    }

    fn invoke<'a>(
        &'a self,
        target: ObjectId,
        method: &'a str,
        codec: Codec,
        args: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, InvokeError>> {
        let mut thread = self.client.new_thread();
        thread.id = self.thread;
        Box::pin(self.client.invoke_on(thread, target, method, codec, args, None))
    }

    fn create<'a>(&'a self, class: &'a str, state: Vec<u8>) -> BoxFuture<'a, Result<ObjectId, InvokeError>> {
        Box::pin(self.client.create(class, InitialState::Encoded(state)))
    }

    fn page_get(&self, _: &[u8]) -> Result<Option<Vec<u8>>, InvokeError> {
        Err(no_object())
    }

    fn page_put(&self, _: &[u8], _: &[u8]) -> Result<(), InvokeError> {
        Err(no_object())
    }

    fn page_delete(&self, _: &[u8]) -> Result<(), InvokeError> {
        Err(no_object())
    }

    fn page_range(
        &self,
        _: Bound<Vec<u8>>,
        _: Bound<Vec<u8>>,
        _: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, InvokeError> {
        Err(no_object())
    }
}
