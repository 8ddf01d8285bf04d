//! [`Client`]: talks to a node for the holder of a [`Wallet`].
//!
//! A client proves the wallet's key when it connects, presents the capability that suits
//! each call best (its wallet's, or the one a reference carries), and keeps the owner
//! capabilities of the objects it creates in the wallet. Every request about an object
//! goes through `protocol::route::follow`, so a `Moved` answer is followed the same way
//! here as on a node.

use crate::backend::ClientBackend;
use crate::routes::Routes;
use crate::wallet::{suitability, Wallet};
use capability::{PublicKey, Token};
use clouds::{CallId, Cap, ClassInfo, Codec, Ctx, InvokeError, NodeId, ObjectId, RawRef, Rights, ThreadCtx, ThreadId};
use protocol::migration::{MigrationReport, Strategy};
use protocol::route::{self, Locations};
use protocol::service::CONNECT_TIMEOUT;
use protocol::wire::{CreateRequest, Hop, NodeStatus, ObjectInfo, MAX_PRESENTED};
use protocol::{
    Connection, Credentials, InitialState, Invocation, NodeView, PathInvocation, Placement, Reply, RequestBody,
    Response, ResponseBody,
};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::time::Instant;

/// The connection to the entry node: opened again when it closed, or sat idle so long that
/// the node may be closing it (`protocol::service::REUSE_WITHIN`).
struct Entry {
    addr: SocketAddr,
    /// std `Mutex`: held to look at or replace the connection, never across an `.await`.
    conn: std::sync::Mutex<Connection>,
}

/// A connection to one node (the entry node). Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct Client {
    entry: Arc<Entry>,
    /// Deadline of the threads this client starts.
    deadline: Duration,
    /// Where objects were seen away from their home: used by `routed` clients.
    locations: Arc<Locations>,
    /// With `routed`: node addresses and connections to them.
    routes: Option<Arc<Routes>>,
    wallet: Arc<Wallet>,
    /// The cluster's root directory, once a status answer named it.
    root: Arc<OnceLock<ObjectId>>,
    /// Requests sent (each attempt counts): what a call by name costs in round trips.
    sent: Arc<AtomicU64>,
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

    /// Connects for the holder of `wallet`: the handshake proves its key, and the wallet's
    /// capabilities are presented with each call.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), clouds::InvokeError> {
    /// use client::{Client, Wallet, CONNECT_TIMEOUT};
    /// use std::sync::Arc;
    /// let wallet = Wallet::open(&Wallet::default_dir()).map_err(clouds::InvokeError::invalid)?;
    /// let client = Client::connect_with("127.0.0.1:7100".parse().unwrap(), CONNECT_TIMEOUT, Arc::new(wallet)).await?;
    /// println!("{} nodes", client.nodes().await?.len());
    /// # Ok(()) }
    /// ```
    pub async fn connect_with(addr: SocketAddr, within: Duration, wallet: Arc<Wallet>) -> Result<Client, InvokeError> {
        let conn = Connection::open(addr, within, Credentials::User(wallet.key()), None).await?;
        wallet.trust(conn.server(), addr)?;
        Ok(Client {
            entry: Arc::new(Entry { addr, conn: std::sync::Mutex::new(conn) }),
            deadline: Duration::from_millis(clouds::thread::DEFAULT_DEADLINE_MS),
            locations: Arc::new(Locations::default()),
            routes: None,
            wallet,
            root: Arc::new(OnceLock::new()),
            sent: Arc::new(AtomicU64::new(0)),
        })
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

    /// Sends requests straight to the node that has the object, over pooled connections,
    /// rather than through the entry node (which then forwards them): one network round
    /// trip instead of two. Node addresses come from the cluster's membership now; objects
    /// that moved are followed and remembered. A node that refuses the connection is
    /// reached through the entry node instead; a call whose connection breaks after it was
    /// sent fails with `Unavailable` (with a call id, it is retried once on a fresh
    /// connection).
    pub async fn routed(mut self) -> Result<Client, InvokeError> {
        let nodes = self.nodes().await?;
        self.locations.set_keepers(protocol::view::keepers(&nodes));
        self.routes = Some(Arc::new(Routes::new(&nodes)));
        Ok(self)
    }

    /// Threads started by this client get `deadline` instead of the default 30 s.
    /// (At most `clouds::thread::MAX_DEADLINE_MS`, a day.)
    pub fn with_deadline(mut self, deadline: Duration) -> Client {
        self.deadline = deadline.min(Duration::from_millis(clouds::thread::MAX_DEADLINE_MS));
        self
    }

    /// The entry node's address.
    pub fn addr(&self) -> SocketAddr {
        self.entry.addr
    }

    /// The connection to the entry node, opened again if it is stale.
    async fn entry(&self) -> Result<Connection, InvokeError> {
        let conn = self.entry.conn.lock().expect("entry mutex").clone();
        if !conn.is_stale() {
            return Ok(conn);
        }
        let addr = self.entry.addr;
        // Boxed: the handshake's future is large, and every call's future would carry it.
        let fresh =
            Box::pin(Connection::open(addr, CONNECT_TIMEOUT, Credentials::User(self.wallet.key()), None)).await?;
        self.wallet.trust(fresh.server(), addr)?;
        *self.entry.conn.lock().expect("entry mutex") = fresh.clone();
        Ok(fresh)
    }

    /// Sends one request to the entry node as it is, without following `Moved`: the
    /// protocol's raw form, for tools and tests.
    pub async fn request(&self, body: RequestBody) -> Response {
        self.sent.fetch_add(1, Ordering::Relaxed);
        self.entry().await?.call(None, body, self.deadline).await
    }

    /// Requests this client (and its clones) sent so far, each attempt counted: round trips.
    pub fn requests_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Sends a request: about an object, where the object is (following `Moved`); any
    /// other, to the entry node.
    async fn call(&self, body: RequestBody) -> Response {
        let Some(target) = body.target() else {
            return self.request(body).await;
        };
        let deadline = Instant::now() + self.deadline;
        let attempt = || {
            route::follow(target, body.operation(), &self.locations, deadline, |node, left| {
                let body = body.clone();
                self.sent.fetch_add(1, Ordering::Relaxed);
                async move {
                    let entry = self.entry().await?;
                    match &self.routes {
                        // Boxed, as the rarer path: it may open connections to other nodes.
                        Some(routes) => Box::pin(routes.send(node, body, left, &entry, &self.wallet)).await,
                        None => entry.call(None, body, left).await,
                    }
                }
            })
        };
        match attempt().await {
            // The node with the object's home records is gone: if it was drained, the
            // cluster names the node that keeps them now. (Boxed, as rare: the common
            // path's future stays small.)
            Err(e @ InvokeError::Unavailable { .. }) if self.routes.is_some() => {
                let before = self.locations.home_of(target);
                let Ok(ResponseBody::Nodes(nodes)) = Box::pin(self.request(RequestBody::Nodes)).await else {
                    return Err(e);
                };
                self.locations.set_keepers(protocol::view::keepers(&nodes));
                if self.locations.home_of(target) != before && Instant::now() < deadline {
                    Box::pin(attempt()).await
                } else {
                    Err(e)
                }
            }
            answer => answer,
        }
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
        match self.call(RequestBody::Invoke(inv)).await? {
            ResponseBody::Invoked(reply) => Ok(reply),
            other => Err(unexpected(other)),
        }
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
        self.invoke_json_on(target, method, args, call_id, trace, false).await
    }

    /// `invoke_json_traced` as one atomic action, as if the method were `#[atomic]`:
    /// everything it does, on every object and node it reaches, commits together when it
    /// returns `Ok`, or none of it does (`clouds invoke --atomic`).
    pub async fn invoke_json_atomic(
        &self,
        target: &RawRef,
        method: &str,
        args: &[serde_json::Value],
        call_id: Option<CallId>,
        trace: bool,
    ) -> Result<(serde_json::Value, Vec<Hop>), InvokeError> {
        self.invoke_json_on(target, method, args, call_id, trace, true).await
    }

    async fn invoke_json_on(
        &self,
        target: &RawRef,
        method: &str,
        args: &[serde_json::Value],
        call_id: Option<CallId>,
        trace: bool,
        atomic: bool,
    ) -> Result<(serde_json::Value, Vec<Hop>), InvokeError> {
        let bytes = serde_json::to_vec(args).map_err(|e| InvokeError::invalid(e.to_string()))?;
        let mut thread = self.new_thread();
        thread.record_path = trace;
        thread.atomic = atomic;
        if trace {
            thread.start_trace();
        }
        let reply = self.invoke_reply(thread, target, method, Codec::Json, bytes, call_id).await?;
        let value = serde_json::from_slice(&reply.value)
            .map_err(|e| InvokeError::storage(format!("reply is not JSON: {e}")))?;
        Ok((value, reply.hops))
    }

    /// Invokes the method of the object `path` names, with JSON arguments, in one request:
    /// the node resolves the path with the capabilities this client's wallet holds (they
    /// travel with the request) and invokes in the same round trip. With `trace`, also the
    /// path the thread took. A wallet of more than `MAX_PRESENTED` objects resolves step by
    /// step instead.
    pub async fn invoke_path_json(
        &self,
        path: &naming::Path,
        method: &str,
        args: &[serde_json::Value],
        call_id: Option<CallId>,
        trace: bool,
    ) -> Result<(serde_json::Value, Vec<Hop>), InvokeError> {
        let caps = self.presented();
        if caps.len() > MAX_PRESENTED {
            let root = RawRef::new(self.root().await?);
            let entry = naming::resolve(&self.ctx(), &root, path).await?;
            return self.invoke_json_traced(&entry.raw(), method, args, call_id, trace).await;
        }
        let mut thread = self.new_thread();
        thread.record_path = trace;
        if trace {
            thread.start_trace();
        }
        let args = serde_json::to_vec(args).map_err(|e| InvokeError::invalid(e.to_string()))?;
        let req = PathInvocation {
            thread,
            path: path.to_string(),
            method: method.into(),
            codec: Codec::Json,
            args,
            call_id,
            caps,
        };
        let reply = match self.call(RequestBody::InvokePath(req)).await? {
            ResponseBody::Invoked(reply) => reply,
            other => return Err(unexpected(other)),
        };
        let value = serde_json::from_slice(&reply.value)
            .map_err(|e| InvokeError::storage(format!("reply is not JSON: {e}")))?;
        Ok((value, reply.hops))
    }

    /// The wallet's best capability for each object it holds one for.
    fn presented(&self) -> Vec<Cap> {
        let mut ids: Vec<ObjectId> = self.wallet.all().iter().map(|t| t.grant().object).collect();
        ids.sort();
        ids.dedup();
        ids.into_iter().filter_map(|id| self.wallet.best(id)).collect()
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
        self.create_pinned(class, state, placement, false).await
    }

    /// `create_placed`, and `pinned`: the object is never moved automatically (by
    /// rebalancing, affinity or eviction; moves by hand and drains still move it).
    pub async fn create_pinned(
        &self,
        class: &str,
        state: InitialState,
        placement: Placement,
        pinned: bool,
    ) -> Result<RawRef, InvokeError> {
        let owner = self.wallet.public();
        let req = CreateRequest { class: class.to_string(), state, placement, owner, pinned, placed_by: None };
        let created = match self.call(RequestBody::Create(req)).await? {
            ResponseBody::Created(raw) => raw,
            other => return Err(unexpected(other)),
        };
        if let Some(cap) = &created.cap {
            self.wallet.add(cap).map_err(InvokeError::storage)?;
        }
        Ok(created)
    }

    /// Needs the read right.
    pub async fn describe(&self, target: RawRef) -> Result<ObjectInfo, InvokeError> {
        match self.call(RequestBody::Describe(self.with_cap(&target, Rights::READ))).await? {
            ResponseBody::Described(info) => Ok(*info),
            other => Err(unexpected(other)),
        }
    }

    /// Moves the object to node `to` with `strategy` and reports how the move went. Needs
    /// the migrate right. Calls to the object go on meanwhile (during the freeze they wait,
    /// then go on to `to`).
    pub async fn migrate(
        &self,
        target: RawRef,
        to: NodeId,
        strategy: Strategy,
    ) -> Result<MigrationReport, InvokeError> {
        let target = self.with_cap(&target, Rights::MIGRATE);
        match self.call(RequestBody::Migrate { target, to, strategy }).await? {
            ResponseBody::Migrated(report) => Ok(report),
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

    /// A capability for the root directory, kept in the wallet: the owner capability if
    /// this client's wallet holds the cluster's admin key, else a read-only one (every
    /// user may read the names at the root).
    pub async fn root_capability(&self) -> Result<Cap, InvokeError> {
        let holder = self.wallet.public();
        let cap = match self.call(RequestBody::RootCapability { holder, read_only: false }).await? {
            ResponseBody::Capability(cap) => cap,
            other => return Err(unexpected(other)),
        };
        self.wallet.add(&cap).map_err(InvokeError::storage)?;
        Ok(cap)
    }

    /// Sets the mode of the node this client talks to (the administrator only).
    pub async fn set_mode(&self, mode: protocol::NodeMode) -> Result<protocol::NodeMode, InvokeError> {
        match self.call(RequestBody::SetMode(mode)).await? {
            ResponseBody::Mode(mode) => Ok(mode),
            other => Err(unexpected(other)),
        }
    }

    /// Starts draining the entry node (`undo`: ends its drain); the administrator only.
    pub async fn drain(&self, undo: bool) -> Result<protocol::decision::DrainReport, InvokeError> {
        match self.call(RequestBody::Drain { undo }).await? {
            ResponseBody::Drain(report) => Ok(*report),
            other => Err(unexpected(other)),
        }
    }

    /// How the entry node's drain goes.
    pub async fn drain_status(&self) -> Result<protocol::decision::DrainReport, InvokeError> {
        match self.call(RequestBody::DrainStatus).await? {
            ResponseBody::Drain(report) => Ok(*report),
            other => Err(unexpected(other)),
        }
    }

    /// Reports owner activity on the entry node (a workstation); the administrator only.
    pub async fn owner_active(&self) -> Result<protocol::NodeMode, InvokeError> {
        match self.call(RequestBody::OwnerActive).await? {
            ResponseBody::Mode(mode) => Ok(mode),
            other => Err(unexpected(other)),
        }
    }

    /// The decisions the entry node made on its own (about `object` only, if named).
    pub async fn decisions(&self, object: Option<ObjectId>) -> Result<Vec<protocol::decision::Decision>, InvokeError> {
        match self.call(RequestBody::Decisions { object }).await? {
            ResponseBody::Decisions(d) => Ok(d),
            other => Err(unexpected(other)),
        }
    }

    /// The entry node's `limit` busiest objects.
    pub async fn hot(&self, limit: u32) -> Result<Vec<protocol::decision::ObjectLoad>, InvokeError> {
        match self.call(RequestBody::Hot { limit }).await? {
            ResponseBody::Hot(h) => Ok(h),
            other => Err(unexpected(other)),
        }
    }

    /// The node that has `id` now.
    pub async fn locate(&self, id: ObjectId) -> Result<NodeId, InvokeError> {
        match self.call(RequestBody::Locate(id)).await? {
            ResponseBody::Located(node) => Ok(node),
            other => Err(unexpected(other)),
        }
    }

    /// Decides by hand the entry node's part of a prepared atomic action whose coordinator
    /// will not come back (`clouds action resolve`). Needs the administrator's wallet.
    pub async fn resolve_action(&self, action: &str, commit: bool) -> Result<protocol::wire::Outcome, InvokeError> {
        match self.call(RequestBody::ResolveAction { action: action.to_string(), commit }).await? {
            ResponseBody::Decided(outcome) => Ok(outcome),
            other => Err(unexpected(other)),
        }
    }

    /// The cluster's root directory: asked of the entry node once, then remembered.
    pub async fn root(&self) -> Result<ObjectId, InvokeError> {
        if let Some(root) = self.root.get() {
            return Ok(*root);
        }
        Ok(self.status().await?.root)
    }

    /// The classes the entry node can run, with their methods.
    pub async fn classes(&self) -> Result<Vec<ClassInfo>, InvokeError> {
        match self.call(RequestBody::Classes).await? {
            ResponseBody::Classes(c) => Ok(c),
            other => Err(unexpected(other)),
        }
    }

    /// The entry node's id, root directory, object count, durability and build.
    pub async fn status(&self) -> Result<NodeStatus, InvokeError> {
        match self.call(RequestBody::Status).await? {
            ResponseBody::Status(s) => {
                let _ = self.root.set(s.root);
                Ok(s)
            }
            other => Err(unexpected(other)),
        }
    }

    /// The cluster as the node sees it.
    pub async fn nodes(&self) -> Result<Vec<NodeView>, InvokeError> {
        match self.call(RequestBody::Nodes).await? {
            ResponseBody::Nodes(n) => Ok(n),
            other => Err(unexpected(other)),
        }
    }

    pub(crate) fn new_thread(&self) -> ThreadCtx {
        ThreadCtx::new(self.deadline.as_millis() as u64)
    }

    /// A new thread, as a `Ctx` for typed stubs.
    pub fn ctx(&self) -> Ctx {
        Ctx::new(Arc::new(ClientBackend { client: self.clone(), thread: ThreadId::new() }))
    }
}

pub(crate) fn unexpected(body: ResponseBody) -> InvokeError {
    InvokeError::storage(format!("the node answered with an unexpected message: {body:?}"))
}
