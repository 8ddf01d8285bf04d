//! The client library: talk to a node, invoke objects, and get a `Ctx` so that typed
//! stubs (`counter.incr(&ctx, 1).await`) work from code outside any object.
//!
//! A client acts for the holder of a `Wallet`: it proves the wallet's key when it
//! connects, presents the capability that suits each call best (its wallet's, or the one
//! a reference carries), and keeps the owner capabilities of the objects it creates in
//! the wallet.

use crate::engine::WaitEdge;
use crate::handshake;
use crate::handshake::Credentials;
use crate::identity::Identity;
use crate::membership::Peer;
use crate::placement::Placement;
use crate::rpc::{frame_codec, NodeRpcClient};
use crate::wallet::{suitability, Wallet};
use crate::wire::{
    CreateRequest, Hop, InitialState, Invocation, NodeStatus, ObjectInfo, ProbeRequest, Reply, Request, RequestBody,
    Response, ResponseBody,
};
use capability::{Denied, PublicKey, Restrict, Token};
use clouds::{
    Backend, BoxFuture, CallId, Cap, ClassInfo, Codec, Ctx, Frame, InvokeError, NodeId, ObjectId, RawRef, Rights,
    ThreadCtx, ThreadId,
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
    wallet: Arc<Wallet>,
}

impl Client {
    /// Connects with a wallet of its own, in memory: it holds what this client creates.
    pub async fn connect(addr: SocketAddr) -> Result<Client, InvokeError> {
        Client::connect_within(addr, CONNECT_TIMEOUT).await
    }

    /// `connect`, giving up after `within`.
    pub async fn connect_within(addr: SocketAddr, within: Duration) -> Result<Client, InvokeError> {
        Client::connect_with(addr, within, Arc::new(Wallet::ephemeral())).await
    }

    /// Connects for the holder of `wallet`.
    pub async fn connect_with(addr: SocketAddr, within: Duration, wallet: Arc<Wallet>) -> Result<Client, InvokeError> {
        let holder = wallet.clone();
        Client::open(addr, within, Credentials::User(holder.key()), None, wallet).await
    }

    /// Connects as a node (`identity`), checking that the server is node `expect` of the
    /// same cluster; without an identity, anonymously.
    pub async fn connect_as(
        addr: SocketAddr,
        within: Duration,
        identity: Option<&Identity>,
        expect: Option<NodeId>,
    ) -> Result<Client, InvokeError> {
        let credentials = identity.map(Credentials::Node).unwrap_or(Credentials::Anonymous);
        Client::open(addr, within, credentials, expect, Arc::new(Wallet::ephemeral())).await
    }

    async fn open(
        addr: SocketAddr,
        within: Duration,
        credentials: Credentials<'_>,
        expect: Option<NodeId>,
        wallet: Arc<Wallet>,
    ) -> Result<Client, InvokeError> {
        let unavailable = |reason: String| InvokeError::Unavailable { node: addr.to_string(), reason };
        let connected = tokio::time::timeout(within, async {
            let mut stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| unavailable(e.to_string()))?;
            let _ = stream.set_nodelay(true);
            handshake::connect(&mut stream, credentials, expect)
                .await
                .map_err(|reason| InvokeError::Denied { reason })?;
            Ok::<_, InvokeError>(stream)
        });
        let stream =
            connected.await.map_err(|_| unavailable(format!("no answer within {} ms", within.as_millis())))??;
        let transport = tarpc::serde_transport::new(Framed::new(stream, frame_codec()), Bincode::default());
        let rpc = NodeRpcClient::new(tarpc::client::Config::default(), transport).spawn();
        let deadline = Duration::from_millis(clouds::thread::DEFAULT_DEADLINE_MS);
        Ok(Client { rpc, addr, deadline, routes: None, wallet })
    }

    /// The wallet this client acts for.
    pub fn wallet(&self) -> &Arc<Wallet> {
        &self.wallet
    }

    /// The capability this client presents for `target.id`: the reference's own or its
    /// wallet's, whichever suits a method call better.
    pub fn capability_for(&self, target: &RawRef) -> Option<Cap> {
        self.capability_needing(target, Rights::NONE)
    }

    /// The reference's capability or the wallet's, whichever suits a call needing
    /// `needed` better (`wallet::suitability`); the reference's on a tie.
    pub fn capability_needing(&self, target: &RawRef, needed: Rights) -> Option<Cap> {
        match (&target.cap, self.wallet.best_for(target.id, needed)) {
            (Some(given), Some((held, _))) if *given == held => Some(held),
            (Some(given), Some((held, rights))) => {
                let given_rights = Token::from_cap(given).map(|t| t.grant().rights).unwrap_or(Rights::NONE);
                let better = suitability(rights, needed) > suitability(given_rights, needed);
                Some(if better { held } else { given.clone() })
            }
            (given, held) => given.clone().or(held.map(|(cap, _)| cap)),
        }
    }

    fn with_cap(&self, target: &RawRef, needed: Rights) -> RawRef {
        RawRef { id: target.id, cap: self.capability_needing(target, needed) }
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
        target: &RawRef,
        method: &str,
        codec: Codec,
        args: Vec<u8>,
        call_id: Option<CallId>,
    ) -> Result<Reply, InvokeError> {
        let capability = self.capability_for(target);
        let inv =
            Invocation { thread, target: target.id, method: method.to_string(), codec, args, call_id, capability };
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
            let (conn, pooled) = routes.connection(node, within, self.deadline, &self.wallet).await?;
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
        target: &RawRef,
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
        target: &RawRef,
        method: &str,
        args: &[serde_json::Value],
        call_id: Option<CallId>,
    ) -> Result<serde_json::Value, InvokeError> {
        Ok(self.invoke_json_traced(target, method, args, call_id, false).await?.0)
    }

    /// `invoke_json`; with `trace`, also the path the thread took, one hop per object entered.
    pub async fn invoke_json_traced(
        &self,
        target: &RawRef,
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
    pub async fn create(&self, class: &str, state: InitialState) -> Result<RawRef, InvokeError> {
        self.create_placed(class, state, Placement::Local).await
    }

    /// Creates an object where `placement` says; its owner capability goes into the
    /// wallet (and comes back in the reference).
    pub async fn create_placed(
        &self,
        class: &str,
        state: InitialState,
        placement: Placement,
    ) -> Result<RawRef, InvokeError> {
        let created = self.create_for(class, state, placement, self.wallet.public()).await?;
        if let Some(cap) = &created.cap {
            self.wallet.add(cap).map_err(InvokeError::storage)?;
        }
        Ok(created)
    }

    /// Creates an object with an owner capability for `owner` (node to node).
    pub async fn create_for(
        &self,
        class: &str,
        state: InitialState,
        placement: Placement,
        owner: PublicKey,
    ) -> Result<RawRef, InvokeError> {
        let req = CreateRequest { class: class.to_string(), state, placement, owner };
        match self.call(RequestBody::Create(req)).await? {
            ResponseBody::Created(raw) => Ok(raw),
            other => Err(unexpected(other)),
        }
    }

    /// Needs the read right.
    pub async fn describe(&self, target: RawRef) -> Result<ObjectInfo, InvokeError> {
        match self.call(RequestBody::Describe(self.with_cap(&target, Rights::READ))).await? {
            ResponseBody::Described(info) => Ok(*info),
            other => Err(unexpected(other)),
        }
    }

    /// Needs the admin right.
    pub async fn delete(&self, target: RawRef) -> Result<(), InvokeError> {
        match self.call(RequestBody::Delete(self.with_cap(&target, Rights::ADMIN))).await? {
            ResponseBody::Deleted => {
                self.wallet.forget(target.id).map_err(InvokeError::storage)?;
                Ok(())
            }
            other => Err(unexpected(other)),
        }
    }

    /// Voids every capability for the object granted so far, this client's included, and
    /// returns a fresh owner capability for `holder` (kept in the wallet if it is the
    /// wallet's key). Needs the admin right.
    pub async fn revoke(&self, target: RawRef, holder: PublicKey) -> Result<Cap, InvokeError> {
        let id = target.id;
        match self.call(RequestBody::Revoke { target: self.with_cap(&target, Rights::ADMIN), holder }).await? {
            ResponseBody::Capability(cap) => {
                if holder == self.wallet.public() {
                    self.wallet.forget(id).and_then(|()| self.wallet.add(&cap)).map_err(InvokeError::storage)?;
                }
                Ok(cap)
            }
            other => Err(unexpected(other)),
        }
    }

    /// The root directory's owner capability, if this client's wallet holds the
    /// cluster's admin key; kept in the wallet.
    pub async fn root_capability(&self) -> Result<Cap, InvokeError> {
        let cap = self.root_capability_for(self.wallet.public()).await?;
        self.wallet.add(&cap).map_err(InvokeError::storage)?;
        Ok(cap)
    }

    /// The root directory's owner capability for `holder` (node to node, or for the admin).
    pub async fn root_capability_for(&self, holder: PublicKey) -> Result<Cap, InvokeError> {
        match self.call(RequestBody::RootCapability { holder }).await? {
            ResponseBody::Capability(cap) => Ok(cap),
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
        target: &'a RawRef,
        method: &'a str,
        codec: Codec,
        args: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, InvokeError>> {
        let mut thread = self.client.new_thread();
        thread.id = self.thread;
        Box::pin(self.client.invoke_on(thread, target, method, codec, args, None))
    }

    fn create<'a>(&'a self, class: &'a str, state: Vec<u8>) -> BoxFuture<'a, Result<RawRef, InvokeError>> {
        Box::pin(self.client.create(class, InitialState::Encoded(state)))
    }

    fn this_ref(&self) -> Result<RawRef, InvokeError> {
        Err(InvokeError::invalid("client code runs in no object, so it has no `this`"))
    }

    /// Signs a narrower capability with the wallet's key, which must hold the one given.
    fn attenuate(&self, target: &RawRef, rights: Rights) -> Result<RawRef, InvokeError> {
        let cap = self.client.capability_needing(target, Rights::DELEGATE).ok_or(Denied::Missing)?;
        let token = Token::from_cap(&cap)?;
        let restrict = Restrict { rights: Some(rights), ..Restrict::default() };
        let wallet = &self.client.wallet;
        let narrower = token.attenuate(wallet.key(), restrict, wallet.public())?;
        Ok(RawRef { id: target.id, cap: Some(narrower.to_cap()) })
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
