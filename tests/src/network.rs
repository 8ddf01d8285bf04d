//! An in-process cluster for protocol tests: N engines in one process, each with a store of
//! its own in a temporary directory, connected by a router that implements `engine::Peers`
//! and can cut, drop and delay messages between chosen nodes and crash a node.
//!
//! The model is raft-rs's test network (`harness/src/network.rs`: `drop`, `cut`, `isolate`,
//! `recover`). A message is a request from one node to another and its answer: a cut link
//! fails at once (`Unavailable`, as a refused connection does); a dropped request is lost
//! and the sender hears nothing until its deadline; a dropped answer means the request ran
//! and the sender never learns it (a reply lost on the way back); a delay holds the request
//! before it is delivered.
//!
//! A crash ends a node's incarnation: it receives nothing more, what it sends is lost, and
//! its store refuses every operation from then on, so work still running in the old engine
//! can change nothing. A restart opens a new engine on the same committed store, as a node
//! restarting after `kill -9` would (with durability `power-loss` or `process-crash`, every acknowledged
//! write was flushed before its reply). Losing what sled had not yet flushed is what the
//! multi-process kill -9 tests check.

use crate::relay::Relay;
use capability::{KeyPair, PublicKey};
use clouds::{BoxFuture, Codec, InvokeError, NodeId, ObjectId, Pages, RawRef, ThreadCtx};
use objectd::engine::{Guard, Origin, Peers};
use objectd::store::{Chunk, Commit, Cursor, IntentChange, Intents, Record, StoreError, Unit};
use objectd::{Config, Engine, Registry, SledStore, Store};
use protocol::migration::{MigrationReport, Strategy};
use protocol::{Identity, InitialState, Invocation, Liveness, NodeView, Placement, RequestBody, Response};
use std::collections::{HashMap, HashSet};
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What can go wrong between two nodes, directed: `(from, to)`.
#[derive(Default)]
struct Faults {
    cut: HashSet<(NodeId, NodeId)>,
    /// Requests refused at once (their answers, for requests the other way, still pass).
    refused: HashSet<(NodeId, NodeId)>,
    /// Requests to lose, counted down.
    drop_requests: HashMap<(NodeId, NodeId), usize>,
    /// Answers to lose (the request runs), counted down.
    drop_answers: HashMap<(NodeId, NodeId), usize>,
    delay: HashMap<(NodeId, NodeId), Duration>,
}

/// A node of the network: its engine and incarnation.
struct Member {
    engine: Engine,
    incarnation: u64,
    /// Set when the incarnation crashes: requests in flight to it fail then.
    crashed: tokio::sync::watch::Sender<bool>,
}

#[derive(Default)]
struct Shared {
    /// std `Mutex`es: one map operation at a time, never across an `.await`.
    members: Mutex<HashMap<NodeId, Member>>,
    faults: Mutex<Faults>,
    /// Every node that ever joined, so that a crashed one shows as dead.
    known: Mutex<HashSet<NodeId>>,
    /// The incarnation each node runs now (set before its engine starts, so that what the
    /// engine sends while it starts, such as recovery, goes out).
    current: Mutex<HashMap<NodeId, u64>>,
    /// The last incarnation given to a node.
    incarnations: std::sync::atomic::AtomicU64,
    /// Requests delivered per link, for tests that count messages.
    delivered: Mutex<HashMap<(NodeId, NodeId), u64>>,
}

/// How one node reaches the others: through the router, as its incarnation.
struct Port {
    from: NodeId,
    incarnation: u64,
    shared: Arc<Shared>,
}

impl Port {
    /// Whether the sending incarnation is still the node's (it may still be starting).
    fn alive(&self) -> bool {
        self.shared.current.lock().expect("current").get(&self.from) == Some(&self.incarnation)
    }

    async fn deliver(&self, to: NodeId, body: RequestBody, within: Duration) -> Response {
        let unavailable = |reason: &str| Err(InvokeError::Unavailable { node: to.to_string(), reason: reason.into() });
        let link = (self.from, to);
        let (cut, lose_request, delay) = {
            let mut faults = self.shared.faults.lock().expect("faults");
            let lose = take_one(&mut faults.drop_requests, link);
            (faults.cut.contains(&link) || faults.refused.contains(&link), lose, faults.delay.get(&link).copied())
        };
        if !self.alive() {
            // A crashed node's messages go nowhere; its caller is gone too.
            tokio::time::sleep(within).await;
            return unavailable("the sending node crashed");
        }
        if cut {
            return unavailable("the link is cut");
        }
        if lose_request {
            tokio::time::sleep(within).await;
            return unavailable(&format!("no answer within {} ms (the request was lost)", within.as_millis()));
        }
        if let Some(d) = delay {
            if d >= within {
                tokio::time::sleep(within).await;
                return unavailable(&format!("no answer within {} ms (delayed)", within.as_millis()));
            }
            tokio::time::sleep(d).await;
        }
        let Some((engine, mut crashed)) =
            self.shared.members.lock().expect("members").get(&to).map(|m| (m.engine.clone(), m.crashed.subscribe()))
        else {
            return unavailable("not a live member of the cluster");
        };
        *self.shared.delivered.lock().expect("delivered").entry(link).or_default() += 1;
        // As the RPC layer does: the engine's work runs to its end in a task of its own.
        let work = tokio::spawn(async move { engine.handle(Origin::Node, body).await });
        let answer = tokio::select! {
            // The node answered, or the deadline passed.
            done = tokio::time::timeout(within, work) => match done {
                Err(_) => return unavailable(&format!("no answer within {} ms", within.as_millis())),
                Ok(Err(e)) => return Err(InvokeError::Panicked { method: "request".into(), message: e.to_string() }),
                Ok(Ok(answer)) => answer,
            },
            // The node crashed with the request in flight: its connection closes.
            _ = crashed.wait_for(|c| *c) => return unavailable("the connection closed (the node crashed)"),
        };
        let (cut_back, lose_answer) = {
            let mut faults = self.shared.faults.lock().expect("faults");
            let back = (to, self.from);
            (faults.cut.contains(&back), take_one(&mut faults.drop_answers, link))
        };
        if cut_back || lose_answer {
            return unavailable("the connection broke before the answer came back");
        }
        answer
    }
}

fn take_one(counts: &mut HashMap<(NodeId, NodeId), usize>, link: (NodeId, NodeId)) -> bool {
    match counts.get_mut(&link) {
        Some(n) if *n > 0 => {
            *n -= 1;
            true
        }
        _ => false,
    }
}

impl Peers for Port {
    fn send(&self, node: NodeId, body: RequestBody, within: Duration) -> BoxFuture<'_, Response> {
        Box::pin(self.deliver(node, body, within))
    }

    fn nodes(&self) -> BoxFuture<'_, Vec<NodeView>> {
        let known: Vec<NodeId> = self.shared.known.lock().expect("known").iter().copied().collect();
        let members: HashMap<NodeId, (Engine, u64)> = self
            .shared
            .members
            .lock()
            .expect("members")
            .iter()
            .map(|(id, m)| (*id, (m.engine.clone(), m.incarnation)))
            .collect();
        let mut views: Vec<NodeView> = known
            .into_iter()
            .map(|id| {
                let member = members.get(&id);
                NodeView {
                    id,
                    generation: member.map_or(0, |(_, g)| *g),
                    // Never connected to: messages go through the router.
                    addr: ([127, 0, 0, 1], 0).into(),
                    state: if member.is_some() { Liveness::Alive } else { Liveness::Dead },
                    classes: member.map(|(e, _)| e.classes().into_iter().map(|c| c.name).collect()).unwrap_or_default(),
                    labels: Vec::new(),
                    root: member.and_then(|(e, _)| e.local_root()),
                    load: member.and_then(|(e, _)| e.load().ok()),
                    mode: member.map(|(e, _)| e.mode()).unwrap_or_default(),
                    owner_present: member.is_some_and(|(e, _)| e.owner_present()),
                    keeps_homes: member.map(|(e, _)| e.keeps()).unwrap_or_default(),
                }
            })
            .collect();
        views.sort_by_key(|v| v.id);
        Box::pin(async move { views })
    }
}

/// A store that stops working when its node crashes: the old engine's work still running
/// can neither read nor change anything. `flush_fails`: every flush fails (a disk that
/// broke), until the node's next boot.
struct Fenced {
    inner: Arc<SledStore>,
    up: Arc<AtomicBool>,
    flush_fails: Arc<AtomicBool>,
}

impl Fenced {
    fn check(&self) -> Result<&SledStore, StoreError> {
        if self.up.load(Ordering::Acquire) {
            Ok(&self.inner)
        } else {
            Err(StoreError::Io("the node crashed".into()))
        }
    }
}

impl Store for Fenced {
    fn get(&self, id: ObjectId) -> Result<Option<Record>, StoreError> {
        self.check()?.get(id)
    }
    fn create(&self, id: ObjectId, class: &str, state: &[u8]) -> Result<(), StoreError> {
        self.check()?.create(id, class, state)
    }
    fn commit_with_intent(&self, commits: &[Commit], intent: Option<IntentChange<'_>>) -> Result<(), StoreError> {
        self.check()?.commit_with_intent(commits, intent)
    }
    fn apply_group(&self, units: &[Unit]) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        self.check()?.apply_group(units)
    }
    fn delete(&self, id: ObjectId) -> Result<bool, StoreError> {
        self.check()?.delete(id)
    }
    fn page_get(&self, id: ObjectId, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.check()?.page_get(id, key)
    }
    fn page_range(&self, id: ObjectId, s: Bound<&[u8]>, e: Bound<&[u8]>, limit: usize) -> Result<Pages, StoreError> {
        self.check()?.page_range(id, s, e, limit)
    }
    fn page_keys(&self, id: ObjectId, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        self.check()?.page_keys(id, after, limit)
    }
    fn page_usage(&self, id: ObjectId) -> Result<(u64, u64), StoreError> {
        self.check()?.page_usage(id)
    }
    fn call_reply(&self, id: ObjectId, call: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.check()?.call_reply(id, call)
    }
    fn list(&self, after: Option<ObjectId>, limit: usize) -> Result<Vec<ObjectId>, StoreError> {
        self.check()?.list(after, limit)
    }
    fn count(&self) -> Result<u64, StoreError> {
        self.check()?.count()
    }
    fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.check()?.size_on_disk()
    }
    fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.check()?.meta_get(key)
    }
    fn meta_put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.check()?.meta_put(key, value)
    }
    fn meta_remove(&self, key: &str) -> Result<(), StoreError> {
        self.check()?.meta_remove(key)
    }
    fn flush(&self) -> Result<(), StoreError> {
        if self.flush_fails.load(Ordering::Acquire) {
            return Err(StoreError::Io("the disk failed to sync (injected)".into()));
        }
        self.check()?.flush()
    }
    fn export(&self, id: ObjectId, cursor: &Cursor, max: usize) -> Result<Option<(Chunk, Cursor)>, StoreError> {
        self.check()?.export(id, cursor, max)
    }
    fn install(&self, id: ObjectId, chunk: &Chunk) -> Result<(), StoreError> {
        self.check()?.install(id, chunk)
    }
    fn forward(&self, id: ObjectId, to: NodeId) -> Result<(), StoreError> {
        self.check()?.forward(id, to)
    }
    fn put_forward(&self, id: ObjectId, to: NodeId, epoch: u64) -> Result<(), StoreError> {
        self.check()?.put_forward(id, to, epoch)
    }
    fn discard(&self, id: ObjectId) -> Result<(), StoreError> {
        self.check()?.discard(id)
    }
    fn intent_put(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.check()?.intent_put(key, value)
    }
    fn intent_remove(&self, key: &[u8]) -> Result<(), StoreError> {
        self.check()?.intent_remove(key)
    }
    fn intent_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.check()?.intent_get(key)
    }
    fn intents(&self) -> Result<Intents, StoreError> {
        self.check()?.intents()
    }
}

/// One node's parts that outlive its crashes.
struct Disk {
    store: Arc<SledStore>,
    up: Arc<AtomicBool>,
    flush_fails: Arc<AtomicBool>,
    identity: Arc<Identity>,
    config: Config,
}

/// N engines connected by the router, node 1 keeping the root directory. Messages between
/// nodes go through the router; a test calls in as a client would (`invoke`), through
/// any node.
pub struct Network {
    shared: Arc<Shared>,
    disks: HashMap<NodeId, Disk>,
    /// The user the tests act as: creations give it owner capabilities.
    user: KeyPair,
    /// The classes of each node.
    registry: fn(u16) -> Registry,
    /// Changes each node's test config (`Config::for_test`) before it starts.
    configure: fn(u16, &mut Config),
    _dir: tempfile::TempDir,
}

impl Network {
    /// Starts nodes 1..=n, each with the standard classes and `Relay`.
    pub async fn start(n: u16) -> Network {
        Network::start_with(n, |_| Registry::standard().with::<Relay>().expect("registry")).await
    }

    /// Starts nodes 1..=n, node `i` with the classes `registry(i)` gives.
    pub async fn start_with(n: u16, registry: fn(u16) -> Registry) -> Network {
        Network::start_configured(n, registry, |_, _| {}).await
    }

    /// Starts nodes 1..=n, node `i` with the classes `registry(i)` gives and its config
    /// changed by `configure(i, config)` (to turn rebalancing on, say).
    pub async fn start_configured(n: u16, registry: fn(u16) -> Registry, configure: fn(u16, &mut Config)) -> Network {
        let dir = tempfile::tempdir().expect("temp dir");
        let ids: Vec<NodeId> = (1..=n).map(NodeId).collect();
        protocol::identity::init(&dir.path().join("cluster"), &ids).expect("cluster identities");
        let mut net = Network {
            shared: Arc::new(Shared::default()),
            disks: HashMap::new(),
            user: KeyPair::generate(),
            registry,
            configure,
            _dir: dir,
        };
        for id in ids {
            let data = net._dir.path().join(format!("node-{}", id.0));
            net.disks.insert(id, net.disk(id, &data));
            net.boot(id).await;
        }
        net
    }

    fn disk(&self, id: NodeId, data: &Path) -> Disk {
        let mut config = Config::for_test(data.to_path_buf());
        config.id = id;
        config.root_node = Some(NodeId(1));
        (self.configure)(id.0, &mut config);
        std::fs::create_dir_all(data).expect("data dir");
        let identity = Identity::load(&Identity::dir_in(&self._dir.path().join("cluster"), id)).expect("identity");
        Disk {
            store: Arc::new(SledStore::open_for(&config).expect("store")),
            up: Arc::new(AtomicBool::new(true)),
            flush_fails: Arc::new(AtomicBool::new(false)),
            identity: Arc::new(identity),
            config,
        }
    }

    /// Starts an engine for `id` on its disk, as a new incarnation.
    async fn boot(&mut self, id: NodeId) {
        let disk = self.disks.get_mut(&id).expect("a node of this network");
        disk.up = Arc::new(AtomicBool::new(true));
        disk.flush_fails = Arc::new(AtomicBool::new(false));
        let store =
            Arc::new(Fenced { inner: disk.store.clone(), up: disk.up.clone(), flush_fails: disk.flush_fails.clone() });
        let incarnation = self.shared.incarnations.fetch_add(1, Ordering::Relaxed) + 1;
        self.shared.current.lock().expect("current").insert(id, incarnation);
        let port = Arc::new(Port { from: id, incarnation, shared: self.shared.clone() });
        let registry = (self.registry)(id.0);
        let guard = Guard::new(disk.identity.clone());
        let engine = Engine::start(&disk.config, store, registry, guard, port).await.expect("engine");
        self.shared.known.lock().expect("known").insert(id);
        let crashed = tokio::sync::watch::Sender::new(false);
        self.shared.members.lock().expect("members").insert(id, Member { engine, incarnation, crashed });
    }

    /// The engine of a live node.
    pub fn engine(&self, id: u16) -> Engine {
        self.shared.members.lock().expect("members").get(&NodeId(id)).expect("a live node").engine.clone()
    }

    /// The key creations made by the test are owned by.
    pub fn user(&self) -> PublicKey {
        self.user.public()
    }

    /// Creates an object of `class` through node `via`, placed on `on`; its reference
    /// carries the owner capability.
    pub async fn create(&self, via: u16, class: &str, on: u16) -> RawRef {
        let engine = self.engine(via);
        let placement = Placement::On(NodeId(on));
        engine.create(class, InitialState::Default, placement, self.user()).await.expect("create")
    }

    /// Invokes `target.method(args)` on a new thread through node `via`, as a client would,
    /// with `deadline`.
    pub async fn invoke(
        &self,
        via: u16,
        target: &RawRef,
        method: &str,
        args: serde_json::Value,
        deadline: Duration,
    ) -> Result<serde_json::Value, InvokeError> {
        let reply = self.engine(via).invoke(invocation(target, method, args, deadline)).await?;
        Ok(serde_json::from_slice(&reply.value).expect("a JSON reply"))
    }

    /// Moves `target` to node `to` with `strategy`, asked of node `via`.
    pub async fn migrate(
        &self,
        via: u16,
        target: &RawRef,
        to: u16,
        strategy: Strategy,
    ) -> Result<MigrationReport, InvokeError> {
        let body = RequestBody::Migrate { target: target.clone(), to: NodeId(to), strategy };
        match self.engine(via).handle(Origin::Caller, body).await? {
            protocol::ResponseBody::Migrated(report) => Ok(report),
            other => panic!("a migration was answered with {other:?}"),
        }
    }

    /// The nodes whose store holds `id` live (exactly one, when no move is under way).
    pub fn owners(&self, id: ObjectId) -> Vec<u16> {
        let mut owners: Vec<u16> = self
            .disks
            .iter()
            .filter(|(_, d)| matches!(d.store.get(id), Ok(Some(Record::Live { .. }))))
            .map(|(n, _)| n.0)
            .collect();
        owners.sort();
        owners
    }

    /// Invokes with arguments already encoded in `codec`; returns the encoded result.
    pub async fn invoke_encoded(
        &self,
        via: u16,
        target: &RawRef,
        method: &str,
        codec: Codec,
        args: Vec<u8>,
        deadline: Duration,
    ) -> Result<Vec<u8>, InvokeError> {
        let inv = Invocation {
            thread: ThreadCtx::new(deadline.as_millis() as u64),
            target: target.id,
            method: method.into(),
            codec,
            args,
            call_id: None,
            capability: target.cap.clone(),
        };
        Ok(self.engine(via).invoke(inv).await?.value)
    }

    /// `invoke` with an idempotency key: a retry with the same key returns the recorded reply.
    pub async fn invoke_once(
        &self,
        via: u16,
        target: &RawRef,
        method: &str,
        args: serde_json::Value,
        call_id: &str,
    ) -> Result<serde_json::Value, InvokeError> {
        let inv = Invocation {
            thread: ThreadCtx::new(30_000),
            target: target.id,
            method: method.into(),
            codec: Codec::Json,
            args: serde_json::to_vec(&args).expect("JSON args"),
            call_id: Some(clouds::CallId(call_id.into())),
            capability: target.cap.clone(),
        };
        let reply = self.engine(via).invoke(inv).await?;
        Ok(serde_json::from_slice(&reply.value).expect("a JSON reply"))
    }

    /// The protocol intents node `id`'s store holds now (what a restart would resume).
    pub fn intents(&self, id: u16) -> Intents {
        self.disks[&NodeId(id)].store.intents().expect("the store's intents")
    }

    /// Crashes node `id`: its engine is gone, with everything it held in memory.
    pub fn crash(&mut self, id: u16) {
        let id = NodeId(id);
        self.disks[&id].up.store(false, Ordering::Release);
        self.shared.current.lock().expect("current").remove(&id);
        if let Some(member) = self.shared.members.lock().expect("members").remove(&id) {
            member.crashed.send_replace(true);
        }
    }

    /// Makes every flush of node `id`'s store fail from now on (a disk that broke), until
    /// the node is crashed and restarted.
    pub fn fail_flushes(&self, id: u16) {
        self.disks[&NodeId(id)].flush_fails.store(true, Ordering::Release);
    }

    /// Starts node `id` again on what its store committed.
    pub async fn restart(&mut self, id: u16) {
        self.boot(NodeId(id)).await;
    }

    /// Cuts the link between `a` and `b`, both ways.
    pub fn cut(&self, a: u16, b: u16) {
        let mut faults = self.shared.faults.lock().expect("faults");
        faults.cut.insert((NodeId(a), NodeId(b)));
        faults.cut.insert((NodeId(b), NodeId(a)));
    }

    /// Refuses every request from `from` to `to` at once, as unreachable; requests the
    /// other way and their answers still pass.
    pub fn refuse_requests(&self, from: u16, to: u16) {
        self.shared.faults.lock().expect("faults").refused.insert((NodeId(from), NodeId(to)));
    }

    /// Cuts every link of `id`.
    pub fn isolate(&self, id: u16) {
        let others: Vec<u16> = self.disks.keys().map(|n| n.0).filter(|n| *n != id).collect();
        for other in others {
            self.cut(id, other);
        }
    }

    /// Loses the next `n` requests from `from` to `to`.
    pub fn drop_requests(&self, from: u16, to: u16, n: usize) {
        self.shared.faults.lock().expect("faults").drop_requests.insert((NodeId(from), NodeId(to)), n);
    }

    /// Loses the answers to the next `n` requests from `from` to `to` (they run).
    pub fn drop_answers(&self, from: u16, to: u16, n: usize) {
        self.shared.faults.lock().expect("faults").drop_answers.insert((NodeId(from), NodeId(to)), n);
    }

    /// Holds every request from `from` to `to` for `by` before delivering it.
    pub fn delay(&self, from: u16, to: u16, by: Duration) {
        self.shared.faults.lock().expect("faults").delay.insert((NodeId(from), NodeId(to)), by);
    }

    /// Heals every link: no cuts, drops or delays.
    pub fn recover(&self) {
        *self.shared.faults.lock().expect("faults") = Faults::default();
    }

    /// Requests delivered from `from` to `to` so far.
    pub fn delivered(&self, from: u16, to: u16) -> u64 {
        self.shared.delivered.lock().expect("delivered").get(&(NodeId(from), NodeId(to))).copied().unwrap_or(0)
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        // Engines hold their ports, which hold the router: break the cycle.
        self.shared.members.lock().expect("members").clear();
    }
}

/// An invocation of `method` with JSON `args` by a new thread with `deadline`, presenting
/// the reference's capability.
pub fn invocation(target: &RawRef, method: &str, args: serde_json::Value, deadline: Duration) -> Invocation {
    Invocation {
        thread: ThreadCtx::new(deadline.as_millis() as u64),
        target: target.id,
        method: method.into(),
        codec: Codec::Json,
        args: serde_json::to_vec(&args).expect("JSON args"),
        call_id: None,
        capability: target.cap.clone(),
    }
}
