//! The invocation engine: runs methods of the objects in this node's store.
//!
//! Layout:
//! - `table`: activated objects and their readers-writer locks (bounded cache).
//! - `slot`: an activated object's state and the pure rule admitting a request to it.
//! - `reentrancy`: the pure rule for a thread entering an object it already holds.
//! - `writeset`: a running write method's page writes (read-your-writes, merge).
//! - `commit`: group commit, many writers per flush.
//! - `clock`: the Lamport clock.
//! - `deadlock`: the wait-for graph that turns a cycle of waiting threads into `Deadlock`.
//! - `backend`: what `Ctx` does for a method running here.
//! - `locks`: taking an object's lock, with deadlock bookkeeping.
//! - `outcome`: deadline and panic handling, replies recorded under a call id.
//! - `guard`: the capability check at the door, with its cache of verified chains.
//! - `names`: invoking by path in one request, resolved on the caller's behalf.
//! - `migrate`: moving a live object to another node, both ends (`crate::migration`'s
//!   driver); `faults`: fault points a test arms at each step.
//! - `lifecycle`: create (placement), delete, describe, revoke, status, the node's mode.
//! - `meter`: the node's measured load (busy time, calls, lock waiters), smoothed.
//! - `usage`: what each activated object costs (busy time, calls, partner objects).
//! - `balancer`: the periodic task that moves objects on its own (`crate::balance`
//!   decides), evicts a workstation's guests, and answers `clouds top`.
//! - `drain`: moving everything off the node, then handing its home records over; the
//!   keeping of another node's home records.
//! - `decisions`: the log of what the node decided on its own, and why.
//! - `route`: where an object is, and taking each request there (the one routing path).
//! - `pages`: where a method's committed pages are read from (a page source).
//! - `peers`: the trait through which the engine reaches other nodes.
//! - `serve`: one request served on this node, by kind.
//!
//! An invocation: route (another node's object: forward it there, the thread continues
//! there) -> deadline and hop checks -> activate (table) -> method lookup -> capability
//! check (chain, object, epoch, expiry, right, method list; `Denied` and nothing runs) ->
//! re-entrancy rule -> lock (read shared, write exclusive, fair; a wait that would close a
//! cycle of waiting threads fails with `Deadlock`) -> for writes, a recorded
//! reply under the same call id short-cuts here -> run the method under the deadline,
//! catching panics -> writes: encode state, commit state + pages + call record in one
//! store transaction, version + 1, wait for the group flush -> reply. A write that fails,
//! panics or runs out of time reloads the object from its last committed state.

mod action;
mod backend;
mod balancer;
mod clock;
mod commit;
mod deadlock;
mod decisions;
mod drain;
pub mod faults;
pub use deadlock::WaitEdge;
pub mod guard;
pub use balancer::Published;
pub use guard::Guard;
pub use lifecycle::prepare_root;
pub use peers::Peers;
pub use route::Origin;
mod lifecycle;
mod locks;
mod meter;
mod migrate;
mod names;
mod outcome;
pub mod pages;
pub mod peers;
mod reentrancy;
mod route;
mod serve;
mod slot;
mod table;
mod usage;
mod writeset;

use crate::config::{Config, Durability};
use crate::registry::Registry;
use crate::store::{Commit, Record, Store, Unit};
use backend::NodeBackend;
use clouds::{Access, BoxFuture, ClassInfo, Ctx, Frame, InvokeError, MethodInfo, NodeId, ObjectId, ThreadId};
use outcome::{guarded, record_reply, replay};
use protocol::wire::Hop;
use protocol::{Invocation, Locations, Reply, RequestBody, Response, ResponseBody};
use slot::{admit, Admission, SlotState, Want};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use table::{Active, ObjectTable, Slot};
use tokio::sync::OwnedRwLockReadGuard;
use tokio::time::{Duration, Instant};
use tracing::Instrument;

type ReadHold = Arc<OwnedRwLockReadGuard<Active>>;

tokio::task_local! {
    /// Time the running invocation spent in its nested calls, in µs (`NodeBackend::invoke`
    /// adds to it): not the invocation's own load.
    static NESTED_US: std::cell::Cell<u64>;
}

/// Counts `micros` spent in a nested call against the invocation running in this task.
pub(crate) fn nested_call(micros: u64) {
    let _ = NESTED_US.try_with(|n| n.set(n.get() + micros));
}

/// A cloneable handle on the engine.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    node: NodeId,
    store: Arc<dyn Store>,
    registry: Registry,
    table: ObjectTable,
    commits: Arc<commit::GroupCommit>,
    clock: clock::LamportClock,
    hop_limit: usize,
    durability: Durability,
    /// The root directory, if this node keeps it (it is the root node).
    local_root: Option<ObjectId>,
    /// The root directory as the root node published it, once learned.
    remote_root: std::sync::OnceLock<ObjectId>,
    /// The node keeping the cluster's root directory.
    root_node: NodeId,
    /// Lazily moved objects whose pages are partly still on the node they came from.
    residuals: pages::Residuals,
    /// The other nodes (`peers::Alone` for an engine on its own).
    peers: Arc<dyn Peers>,
    /// Where objects are known to be when not at their home (learned from `Moved`).
    locations: Locations,
    /// Invocations running on this node: part of the published load.
    inflight: std::sync::atomic::AtomicU64,
    /// Busy time, calls and lock waiters: the rest of it.
    meter: meter::Meter,
    /// Whether this node takes new objects (kept in the store's metadata).
    mode: Mutex<protocol::NodeMode>,
    /// The policy of a creation that names none and whose class declares none.
    default_placement: protocol::Placement,
    /// Objects placed on each node since its last load report, and that report.
    placed: Mutex<(crate::placement::Placed, HashMap<NodeId, protocol::Load>)>,
    /// Bytes per second of the last move out (f64 bits), for the load vector.
    copy_rate: std::sync::atomic::AtomicU64,
    /// Read holds by thread, so that a thread re-entering an object it holds for reading
    /// runs under its hold instead of queueing behind a writer that waits for it.
    /// std `Mutex`: held for one map operation, never across an `.await`.
    reads_held: Mutex<HashMap<(ThreadId, ObjectId), ReadHold>>,
    /// Who holds and who waits for which object.
    waits: locks::Waits,
    /// Objects this node is moving out now. The migration maps below are behind std
    /// `Mutex`es: one operation at a time, never across an `.await`.
    moving: Mutex<HashMap<ObjectId, protocol::wire::MoveProgress>>,
    /// Pages commits dirtied since the last copy round, per object under precopy.
    dirty: Mutex<HashMap<ObjectId, std::collections::BTreeSet<Vec<u8>>>>,
    /// Moves out whose commit at the target is in doubt: the object is served nowhere.
    resolving: Mutex<HashMap<ObjectId, NodeId>>,
    /// Moves in under way: the objects whose chunks this node accepts.
    incoming: Mutex<HashMap<ObjectId, migrate::Incoming>>,
    /// The armed fault point (tests only).
    #[cfg(feature = "faults")]
    faults: Mutex<Option<faults::Armed>>,
    /// This node's parts of atomic actions.
    actions: action::Actions,
    /// Checks capabilities and issues them.
    guard: Guard,
    /// The administrator's key: who may have the root directory's capability.
    admin: Option<capability::PublicKey>,
    /// What the node decided on its own, the recent decisions.
    decisions: decisions::Log,
    /// Taken by every change of the home records this node keeps (its own objects', and a
    /// drained node's it adopted) and by their handover, so that none is lost between.
    homes: tokio::sync::Mutex<()>,
    /// The drain of this node and the home records it keeps for others.
    drain: drain::DrainState,
    /// The balancer's state: settings, per-object rates, cooldowns, owner activity.
    balance: balancer::State,
}

impl Engine {
    /// Builds the engine on an open store, reaching other nodes through `peers`; creates
    /// the root directory on first start of the root node. Must run inside a tokio runtime
    /// (it starts the flusher task).
    pub async fn start(
        config: &Config,
        store: Arc<dyn Store>,
        registry: Registry,
        guard: Guard,
        peers: Arc<dyn Peers>,
    ) -> Result<Engine, InvokeError> {
        let root = prepare_root(config, store.as_ref(), &registry)?;
        let commits = commit::GroupCommit::start(config.durability, store.clone());
        let mode = lifecycle::stored_mode(store.as_ref())?;
        let store_for_drain = store.clone();
        let engine = Engine {
            inner: Arc::new(Inner {
                node: config.id,
                residuals: pages::Residuals::default(),
                store,
                registry,
                table: ObjectTable::new(config.cache_objects),
                commits,
                clock: clock::LamportClock::default(),
                hop_limit: config.hop_limit,
                durability: config.durability,
                local_root: root,
                root_node: config.root_node(),
                remote_root: std::sync::OnceLock::new(),
                admin: config.admin.as_deref().map(str::parse).transpose().map_err(InvokeError::invalid)?,
                peers,
                locations: Locations::default(),
                inflight: std::sync::atomic::AtomicU64::new(0),
                meter: meter::Meter::default(),
                mode: Mutex::new(mode),
                default_placement: config.placement.parse().map_err(InvokeError::invalid)?,
                placed: Mutex::new(Default::default()),
                copy_rate: std::sync::atomic::AtomicU64::new(0),
                reads_held: Mutex::new(HashMap::new()),
                waits: Mutex::new(deadlock::WaitGraph::default()),
                moving: Mutex::new(HashMap::new()),
                dirty: Mutex::new(HashMap::new()),
                resolving: Mutex::new(HashMap::new()),
                incoming: Mutex::new(HashMap::new()),
                #[cfg(feature = "faults")]
                faults: Mutex::new(None),
                actions: action::Actions::default(),
                guard,
                decisions: decisions::Log::default(),
                homes: tokio::sync::Mutex::new(()),
                drain: drain::DrainState::load(store_for_drain.as_ref())?,
                balance: balancer::State::new(config),
            }),
        };
        #[cfg(feature = "faults")]
        engine.arm_from_env()?;
        engine.recover_moves()?;
        engine.recover_residuals()?;
        engine.recover_actions()?;
        engine.resume_drain()?;
        engine.sweep_later();
        engine.balance_later();
        engine.refresh_keepers(&[]);
        Ok(engine)
    }

    pub fn node(&self) -> NodeId {
        self.inner.node
    }

    /// The root directory, if this node keeps it.
    pub fn local_root(&self) -> Option<ObjectId> {
        self.inner.local_root
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    pub(crate) fn tick(&self) -> u64 {
        self.inner.clock.tick()
    }

    pub fn admin(&self) -> Option<&capability::PublicKey> {
        self.inner.admin.as_ref()
    }

    pub fn guard(&self) -> &Guard {
        &self.inner.guard
    }

    pub fn classes(&self) -> Vec<ClassInfo> {
        self.inner.registry.infos()
    }

    /// Sets the gauges `/metrics` shows, as they are now: objects activated and stored,
    /// store bytes, requests in flight, and each peer's membership state (2 alive, 1
    /// suspect, 0 dead).
    pub async fn publish_gauges(&self) {
        use crate::telemetry::{gauge, gauge_with};
        gauge("clouds_activated_objects", self.inner.table.len() as f64);
        if let Ok(n) = self.inner.store.count() {
            gauge("clouds_stored_objects", n as f64);
        }
        if let Ok(bytes) = self.inner.store.size_on_disk() {
            gauge("clouds_store_bytes", bytes as f64);
        }
        for v in self.inner.peers.nodes().await {
            let state = match v.state {
                protocol::Liveness::Alive => 2.0,
                protocol::Liveness::Suspect => 1.0,
                protocol::Liveness::Dead => 0.0,
            };
            gauge_with("clouds_peer_state", "peer", v.id.to_string(), state);
        }
    }

    /// Asks node `node` (this one, or another) `body`, within `within`.
    pub async fn ask(&self, node: NodeId, body: RequestBody, within: Duration) -> Response {
        if node == self.inner.node {
            self.handle(Origin::Caller, body).await
        } else {
            self.inner.peers.send(node, body, within).await
        }
    }

    /// Asks every node this one knows to be live (itself included) `body`, each within
    /// `within`: for views of the whole cluster (the gateway's dashboard).
    pub async fn ask_each(&self, body: RequestBody, within: Duration) -> Vec<(NodeId, Response)> {
        let mut answers = Vec::new();
        for view in self.inner.peers.nodes().await {
            if view.state == protocol::Liveness::Dead {
                continue;
            }
            answers.push((view.id, self.ask(view.id, body.clone(), within).await));
        }
        answers
    }

    /// Runs one invocation to its reply, wherever its object is (a thread of this node,
    /// or a client's request).
    pub async fn invoke(&self, inv: Invocation) -> Result<Reply, InvokeError> {
        match self.handle(Origin::Caller, RequestBody::Invoke(inv)).await? {
            ResponseBody::Invoked(reply) => Ok(reply),
            other => Err(InvokeError::storage(format!("an invocation was answered with {other:?}"))),
        }
    }

    /// Runs an invocation of an object believed to be here.
    fn invoke_here(&self, inv: Invocation) -> BoxFuture<'static, Result<Reply, InvokeError>> {
        let engine = self.clone();
        Box::pin(async move {
            let lamport = engine.inner.clock.receive(inv.thread.lamport);
            let span = tracing::debug_span!(
                "invoke",
                thread = %inv.thread.id,
                object = %inv.target,
                method = %inv.method,
                node = %engine.inner.node,
                lamport,
                class = tracing::field::Empty,
            );
            if let Some(parent) = &inv.thread.trace {
                crate::telemetry::continue_trace(&span, parent);
            }
            let began = Instant::now();
            let result = engine.run(&inv, lamport, began).instrument(span).await;
            if let Some(slot) = engine.inner.table.peek(inv.target) {
                let outcome = result.as_ref().map_or_else(InvokeError::kind, |_| "ok");
                // A run that ended well timed itself; the clock is read once.
                let took =
                    result.as_ref().map_or_else(|_| began.elapsed(), |(_, micros)| Duration::from_micros(*micros));
                crate::telemetry::record_invocation(slot.class.info(), &inv.method, outcome, took);
            }
            result.map(|(reply, _)| reply)
        })
    }

    /// `lamport`: the node's Lamport time when the invocation arrived, `started` the moment.
    /// With the reply, how long the run took (µs).
    async fn run(&self, inv: &Invocation, lamport: u64, started: Instant) -> Result<(Reply, u64), InvokeError> {
        let deadline = started + clouds::thread::time_left(inv.thread.remaining_ms);
        if inv.thread.remaining_ms == 0 {
            return Err(InvokeError::DeadlineExceeded {
                object: inv.target,
                method: inv.method.clone(),
                elapsed_ms: 0,
            });
        }
        if inv.thread.chain.len() >= self.inner.hop_limit {
            let mut chain = inv.thread.chain_text();
            chain.push_str(&format!(" -> {}.{}", inv.target, inv.method));
            return Err(InvokeError::HopLimit { limit: self.inner.hop_limit, chain });
        }
        let slot = self.inner.table.get_or_load(inv.target, || self.activate(inv.target))?;
        let class = slot.class.clone();
        tracing::Span::current().record("class", class.info().name.as_str());
        let method = class.info().method(&inv.method)?;
        let epoch = slot.epoch.load(std::sync::atomic::Ordering::Acquire);
        let needed = clouds::Rights::required_for(method.access);
        self.inner.guard.admit(inv.capability.as_ref(), inv.target, epoch, needed, &method.name)?;
        let entry = reentrancy::check(&inv.thread.chain, inv.target, method.access, &method.name, &class.info().name)?;
        let _running = Running::start(&self.inner.inflight);
        let dispatch = async {
            let out = match inv.thread.action {
                // Boxed, both: their futures are the largest here, and every invocation's
                // would carry their size (and be copied with it) otherwise.
                Some(action) => Box::pin(self.run_in_action(&slot, method, inv, deadline, action)).await?,
                None if method.atomic || inv.thread.atomic => {
                    Box::pin(self.run_atomic(&slot, method, inv, deadline)).await?
                }
                None => {
                    let (value, nested) = match method.access {
                        Access::Read => self.run_read(&slot, method, inv, deadline, entry).await?,
                        Access::Write => self.run_write(&slot, method, inv, deadline).await?,
                    };
                    (value, nested, protocol::wire::ActionTrail::default())
                }
            };
            Ok::<_, InvokeError>((out, NESTED_US.with(std::cell::Cell::get)))
        };
        let ((value, nested, trail), nested_us) = NESTED_US.scope(std::cell::Cell::new(0), dispatch).await?;
        let micros = started.elapsed().as_micros() as u64;
        tracing::debug!(elapsed_us = micros, "invoked");
        // Load is the time of the invocation itself: what its nested calls took is counted
        // where they ran (here, or on the node the thread went on to).
        let own = micros.saturating_sub(nested_us);
        slot.usage.called(own);
        self.inner.meter.called(own);
        if let Some(caller) = inv.thread.chain.last() {
            slot.usage.partner(caller.object, caller.node);
            // A caller on another node counts this call when it sends it (`route`).
            if caller.node == self.inner.node {
                if let Some(theirs) = self.inner.table.peek(caller.object) {
                    theirs.usage.partner(inv.target, self.inner.node);
                }
            }
        }
        let mut hops = Vec::new();
        if inv.thread.record_path {
            let trace = crate::telemetry::traceparent(&tracing::Span::current()).or_else(|| inv.thread.trace.clone());
            hops.push(Hop {
                trace_id: trace.as_deref().and_then(crate::telemetry::trace_id).map(str::to_string),
                node: self.inner.node,
                object: inv.target,
                class: class.info().name.clone(),
                method: method.name.clone(),
                lamport,
                depth: inv.thread.chain.len() as u16,
                micros,
            });
            hops.extend(nested);
        }
        Ok((Reply { value, hops, trail }, micros))
    }

    /// Reads the object's committed record and decodes it.
    fn activate(&self, id: ObjectId) -> Result<(Arc<dyn clouds::Class>, Active), InvokeError> {
        if let Some(e) = self.moving_in_doubt(id) {
            return Err(e);
        }
        match self.inner.store.get(id)? {
            None => Err(self.absent(id)),
            Some(Record::Forward { to, .. }) => Err(InvokeError::Moved { id, to }),
            Some(Record::Live { class, version, epoch, state }) => {
                let class = self.inner.registry.get(&class)?.clone();
                let instance = class.instantiate(&state)?;
                Ok((class, Active { instance, version, state: SlotState::Live, epoch }))
            }
        }
    }

    /// The answer for an object this store has no record of: `NotFound` from the node
    /// keeping its home records (its home, or a drained home's keeper), which knows;
    /// elsewhere `Moved` to where it is believed to be, or to those records.
    fn absent(&self, id: ObjectId) -> InvokeError {
        let me = self.inner.node;
        match (self.inner.locations.home_of(id), self.location(id)) {
            (home, _) if home == me => InvokeError::NotFound { id },
            (home, at) if at == me => InvokeError::Moved { id, to: home },
            (_, at) => InvokeError::Moved { id, to: at },
        }
    }

    /// Puts the object back to its last committed state.
    fn reload(&self, slot: &Slot, active: &mut Active) -> Result<(), InvokeError> {
        let (_, fresh) = self.activate(slot.id)?;
        *active = fresh;
        Ok(())
    }

    fn frame(&self, slot: &Slot, method: &MethodInfo) -> Frame {
        Frame {
            object: slot.id,
            class: slot.class.info().name.clone(),
            method: method.name.clone(),
            node: self.inner.node,
            access: method.access,
        }
    }

    fn backend(&self, slot: &Slot, method: &MethodInfo, inv: &Invocation, deadline: Instant) -> NodeBackend {
        let mut thread = inv.thread.clone();
        thread.chain.push(self.frame(slot, method));
        NodeBackend {
            engine: self.clone(),
            thread,
            deadline,
            this: slot.id,
            epoch: slot.epoch.load(std::sync::atomic::Ordering::Acquire),
            method: method.name.clone(),
            writes: (method.access == Access::Write).then(Default::default),
            writable: method.access == Access::Write,
            trail: Mutex::new(Default::default()),
            move_after: Mutex::new(None),
            hops: Mutex::new(Vec::new()),
        }
    }

    async fn run_read(
        &self,
        slot: &Slot,
        method: &MethodInfo,
        inv: &Invocation,
        deadline: Instant,
        entry: reentrancy::Entry,
    ) -> Result<(Vec<u8>, Vec<Hop>), InvokeError> {
        let key = (inv.thread.id, slot.id);
        let mut held = None;
        let (hold, registered) = match entry {
            reentrancy::Entry::Nested => {
                let held = self.inner.reads_held.lock().expect("reads mutex").get(&key).cloned();
                match held {
                    Some(hold) => (hold, false),
                    // Held on another node's behalf but not registered here: take the lock.
                    None => (self.acquire_read(slot, inv, deadline).await?, false),
                }
            }
            reentrancy::Entry::Acquire => {
                let hold = self.acquire_read(slot, inv, deadline).await?;
                held = Some(self.held(slot, inv));
                self.inner.reads_held.lock().expect("reads mutex").insert(key, hold.clone());
                (hold, true)
            }
        };
        let result = if let Admission::Refuse(e) = admit(hold.state, slot.id, Want::Read) {
            Err(e)
        } else {
            let backend = Arc::new(self.backend(slot, method, inv, deadline));
            let ctx = Ctx::new(backend.clone());
            let run = hold.instance.read(&ctx, method, inv.codec, &inv.args);
            let result = guarded(run, inv, method, deadline).await.map(|value| (value, backend.take_hops()));
            if let (Ok(_), Some(to)) = (&result, backend.take_move()) {
                self.move_later(slot.id, to);
            }
            result
        };
        if registered {
            self.inner.reads_held.lock().expect("reads mutex").remove(&key);
        }
        drop(held);
        result
    }

    async fn run_write(
        &self,
        slot: &Slot,
        method: &MethodInfo,
        inv: &Invocation,
        deadline: Instant,
    ) -> Result<(Vec<u8>, Vec<Hop>), InvokeError> {
        let mut active = self.acquire_write(slot, inv, deadline).await?;
        // Declared after the guard: dropped before it, so the graph never shows a hold
        // that the lock no longer has.
        let _held = self.held(slot, inv);
        let recorded = match &inv.call_id {
            Some(call) => self.inner.store.call_reply(slot.id, &call.0)?,
            None => None,
        };
        loop {
            match admit(active.state, slot.id, Want::Write { recorded: recorded.is_some() }) {
                Admission::Run => break,
                Admission::Reload => self.reload(slot, &mut active)?,
                Admission::Replay => {
                    let (recorded, call) =
                        (recorded.expect("a recorded reply"), inv.call_id.as_ref().expect("a call id"));
                    return replay(recorded, inv.codec, &call.0).map(|value| (value, Vec::new()));
                }
                Admission::Refuse(e) => return Err(e),
            }
        }
        // Until the commit, memory may differ from the store.
        active.state = SlotState::Stale;
        let backend = Arc::new(self.backend(slot, method, inv, deadline));
        let ctx = Ctx::new(backend.clone());
        let outcome = guarded(active.instance.write(&ctx, method, inv.codec, &inv.args), inv, method, deadline).await;
        drop(ctx);
        let reply = match outcome {
            Ok(reply) => reply,
            Err(e) => {
                self.reload(slot, &mut active)?;
                return Err(e);
            }
        };
        let pages = backend
            .writes
            .as_ref()
            .map(|w| std::mem::take(&mut *w.lock().expect("write set mutex")))
            .unwrap_or_default();
        let commit = match active.instance.encode() {
            Ok(state) => Commit {
                id: slot.id,
                base_version: active.version,
                state,
                pages: pages.into_changes(),
                call: inv.call_id.as_ref().map(|c| (c.0.clone(), record_reply(inv.codec, &reply))),
                epoch: active.epoch,
            },
            Err(e) => {
                self.reload(slot, &mut active)?;
                return Err(e);
            }
        };
        // A page still on the node a lazy move came from is fetched before it is written.
        if let Err(e) = self.pull_written(slot.id, commit.pages.iter().map(|(k, _)| k.as_slice())).await {
            self.reload(slot, &mut active)?;
            return Err(e);
        }
        let written: Vec<Vec<u8>> = commit.pages.iter().map(|(k, _)| k.clone()).collect();
        // The write lock stays until the commit is durable: nobody may read a state that a
        // crash could still take back.
        let applied = self.inner.commits.apply(Unit::Commit(commit)).await;
        // Marked after the write (a copy round between could take the mark and copy the
        // old page), and after a failure too: a failed flush may follow a write.
        if !written.is_empty() {
            self.dirtied(slot.id, written.into_iter());
        }
        if let Err(e) = applied {
            // Not applied, or applied and not flushed: memory follows what the store holds.
            self.reload(slot, &mut active)?;
            return Err(e);
        }
        active.version += 1;
        active.state = SlotState::Live;
        drop(active);
        if let Some(to) = backend.take_move() {
            self.move_later(slot.id, to);
        }
        Ok((reply, backend.take_hops()))
    }
}

/// Counts one running invocation while alive: the `inflight` of the load vector.
struct Running<'a>(&'a std::sync::atomic::AtomicU64);

impl<'a> Running<'a> {
    fn start(counter: &'a std::sync::atomic::AtomicU64) -> Self {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Running(counter)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}
