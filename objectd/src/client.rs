//! The client library: talk to a node, invoke objects, and get a `Ctx` so that typed
//! stubs (`counter.incr(&ctx, 1).await`) work from code outside any object.

use crate::engine::WaitEdge;
use crate::handshake;
use crate::identity::Identity;
use crate::membership::Peer;
use crate::placement::Placement;
use crate::rpc::{frame_codec, NodeRpcClient};
use crate::wire::{
    CreateRequest, Hop, InitialState, Invocation, NodeStatus, ObjectInfo, ProbeRequest, Reply, Request, RequestBody,
    Response, ResponseBody,
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

mod routes;

/// How long connecting to a node may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How many `Moved` answers a routed invocation follows.
const MAX_REDIRECTS: usize = 4;

/// A connection to one node. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct Client {
    rpc: NodeRpcClient,
    addr: SocketAddr,
    /// Deadline of the threads this client starts.
    deadline: Duration,
    /// With `routed`: where objects are and connections to their nodes.
    routes: Option<Arc<routes::Routes>>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Result<Client, InvokeError> {
        Client::connect_within(addr, CONNECT_TIMEOUT).await
    }

    /// Connects, giving up after `within`.
    pub async fn connect_within(addr: SocketAddr, within: Duration) -> Result<Client, InvokeError> {
        Client::connect_as(addr, within, None, None).await
    }

    /// Connects as a node (`identity`), checking that the server is node `expect` of the
    /// same cluster; without an identity, as an anonymous client.
    pub async fn connect_as(
        addr: SocketAddr,
        within: Duration,
        identity: Option<&Identity>,
        expect: Option<NodeId>,
    ) -> Result<Client, InvokeError> {
        let unavailable = |reason: String| InvokeError::Unavailable { node: addr.to_string(), reason };
        let connected = tokio::time::timeout(within, async {
            let mut stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| unavailable(e.to_string()))?;
            let _ = stream.set_nodelay(true);
            handshake::connect(&mut stream, identity, expect).await.map_err(|reason| InvokeError::Denied { reason })?;
            Ok::<_, InvokeError>(stream)
        });
        let stream =
            connected.await.map_err(|_| unavailable(format!("no answer within {} ms", within.as_millis())))??;
        let transport = tarpc::serde_transport::new(Framed::new(stream, frame_codec()), Bincode::default());
        let rpc = NodeRpcClient::new(tarpc::client::Config::default(), transport).spawn();
        Ok(Client { rpc, addr, deadline: Duration::from_millis(clouds::thread::DEFAULT_DEADLINE_MS), routes: None })
    }

    /// Sends invocations straight to the node that has the object, over pooled
    /// connections, rather than through the node this client connected to (which then
    /// forwards them): one network round trip instead of two. Node addresses come from the
    /// cluster's membership now; objects that moved are followed and remembered. A node
    /// that refuses the connection is reached through the first node instead, which
    /// reports on it; a call whose connection breaks after it was sent fails with
    /// `Unavailable` (with a call id, it is retried once on a fresh connection).
    pub async fn routed(mut self) -> Result<Client, InvokeError> {
        let peers = self.nodes().await?;
        self.routes = Some(Arc::new(routes::Routes::new(&peers)));
        Ok(self)
    }

    /// Threads started by this client get `deadline` instead of the default 30 s.
    pub fn with_deadline(mut self, deadline: Duration) -> Client {
        self.deadline = deadline;
        self
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends one request. `Err` is a transport failure: the node could not be reached or
    /// went away, and the request may or may not have run.
    async fn send(&self, body: RequestBody, deadline: Duration) -> Result<Response, String> {
        let mut ctx = tarpc::context::current();
        // The thread's own deadline rules; the transport's gives the node a margin to report it.
        ctx.deadline = Instant::now() + deadline + Duration::from_secs(2);
        self.rpc.call(ctx, Request::new(body)).await.map_err(|e| e.to_string())
    }

    async fn call(&self, body: RequestBody) -> Result<ResponseBody, InvokeError> {
        self.send(body, self.deadline)
            .await
            .map_err(|reason| InvokeError::Unavailable { node: self.addr.to_string(), reason })?
    }

    /// Passes an invocation on to this node (node to node). The outer `Err` is a transport
    /// failure; the inner result is the node's answer.
    pub async fn forward(&self, inv: Invocation, deadline: Duration) -> Result<Result<Reply, InvokeError>, String> {
        Ok(match self.send(RequestBody::Invoke(inv), deadline).await? {
            Ok(ResponseBody::Invoked(reply)) => Ok(reply),
            Ok(other) => Err(unexpected(other)),
            Err(e) => Err(e),
        })
    }

    /// Invokes a method with arguments already encoded in `codec`, on the given thread.
    pub async fn invoke_reply(
        &self,
        thread: ThreadCtx,
        target: ObjectId,
        method: &str,
        codec: Codec,
        args: Vec<u8>,
        call_id: Option<CallId>,
    ) -> Result<Reply, InvokeError> {
        let inv = Invocation { thread, target, method: method.to_string(), codec, args, call_id, capability: None };
        if let Some(routes) = &self.routes {
            if let Some(answer) = self.invoke_routed(routes, &inv).await {
                return answer;
            }
        }
        match self.call(RequestBody::Invoke(inv)).await? {
            ResponseBody::Invoked(reply) => Ok(reply),
            other => Err(unexpected(other)),
        }
    }

    /// Sends `inv` to the object's node directly; `None`: could not connect there, so
    /// nothing was sent and the entry node should be asked instead.
    async fn invoke_routed(&self, routes: &routes::Routes, inv: &Invocation) -> Option<Result<Reply, InvokeError>> {
        let within = CONNECT_TIMEOUT.min(self.deadline);
        let mut retried = false;
        for _ in 0..MAX_REDIRECTS {
            let node = routes.location(inv.target);
            let (conn, pooled) = routes.connection(node, within, self.deadline).await?;
            match conn.send(RequestBody::Invoke(inv.clone()), self.deadline).await {
                Ok(Ok(ResponseBody::Invoked(reply))) => return Some(Ok(reply)),
                Ok(Ok(other)) => return Some(Err(unexpected(other))),
                Ok(Err(InvokeError::Moved { to, .. })) => routes.remember(inv.target, to),
                Ok(Err(e)) => return Some(Err(e)),
                Err(reason) => {
                    routes.forget(node);
                    // Safe to send again only if a repeat cannot run the method twice.
                    if pooled && inv.call_id.is_some() && !retried {
                        retried = true;
                        continue;
                    }
                    return Some(Err(InvokeError::Unavailable { node: format!("{node} at {}", conn.addr()), reason }));
                }
            }
        }
        Some(Err(InvokeError::Unavailable {
            node: inv.target.home().to_string(),
            reason: format!("object {} moved more than {MAX_REDIRECTS} times while being called", inv.target),
        }))
    }

    /// `invoke_reply`, keeping only the value.
    pub async fn invoke_on(
        &self,
        thread: ThreadCtx,
        target: ObjectId,
        method: &str,
        codec: Codec,
        args: Vec<u8>,
        call_id: Option<CallId>,
    ) -> Result<Vec<u8>, InvokeError> {
        Ok(self.invoke_reply(thread, target, method, codec, args, call_id).await?.value)
    }

    /// Invokes a method with JSON arguments on a new thread; returns the JSON result.
    pub async fn invoke_json(
        &self,
        target: ObjectId,
        method: &str,
        args: &[serde_json::Value],
        call_id: Option<CallId>,
    ) -> Result<serde_json::Value, InvokeError> {
        Ok(self.invoke_json_traced(target, method, args, call_id, false).await?.0)
    }

    /// `invoke_json`; with `trace`, also the path the thread took, one hop per object entered.
    pub async fn invoke_json_traced(
        &self,
        target: ObjectId,
        method: &str,
        args: &[serde_json::Value],
        call_id: Option<CallId>,
        trace: bool,
    ) -> Result<(serde_json::Value, Vec<Hop>), InvokeError> {
        let bytes = serde_json::to_vec(args).map_err(|e| InvokeError::invalid(e.to_string()))?;
        let mut thread = self.new_thread();
        thread.record_path = trace;
        let reply = self.invoke_reply(thread, target, method, Codec::Json, bytes, call_id).await?;
        let value = serde_json::from_slice(&reply.value)
            .map_err(|e| InvokeError::storage(format!("reply is not JSON: {e}")))?;
        Ok((value, reply.hops))
    }

    /// Creates an object on the node this client talks to.
    pub async fn create(&self, class: &str, state: InitialState) -> Result<ObjectId, InvokeError> {
        self.create_placed(class, state, Placement::Local).await
    }

    /// Creates an object where `placement` says.
    pub async fn create_placed(
        &self,
        class: &str,
        state: InitialState,
        placement: Placement,
    ) -> Result<ObjectId, InvokeError> {
        match self.call(RequestBody::Create(CreateRequest { class: class.to_string(), state, placement })).await? {
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

    /// Continues a deadlock search on the node (node to node).
    pub async fn probe(
        &self,
        initiator: ThreadId,
        object: ObjectId,
        path: Vec<WaitEdge>,
        within: Duration,
    ) -> Result<Option<Vec<WaitEdge>>, InvokeError> {
        let body = RequestBody::Probe(ProbeRequest { initiator, object, path });
        match self
            .send(body, within)
            .await
            .map_err(|reason| InvokeError::Unavailable { node: self.addr.to_string(), reason })??
        {
            ResponseBody::Probed(cycle) => Ok(cycle),
            other => Err(unexpected(other)),
        }
    }

    /// The cluster as the node sees it.
    pub async fn nodes(&self) -> Result<Vec<Peer>, InvokeError> {
        match self.call(RequestBody::Nodes).await? {
            ResponseBody::Nodes(n) => Ok(n),
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

    fn remaining(&self) -> Option<Duration> {
        None
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
