//! The invocation engine: runs methods of the objects in this node's store.
//!
//! Layout:
//! - `table`: activated objects and their readers-writer locks (bounded cache).
//! - `reentrancy`: the pure rule for a thread entering an object it already holds.
//! - `writeset`: a running write method's page writes (read-your-writes, merge).
//! - `commit`: group commit, many writers per flush.
//! - `clock`: the Lamport clock.
//! - `deadlock`: the wait-for graph that turns a cycle of waiting threads into `Deadlock`.
//! - `backend`: what `Ctx` does for a method running here.
//!
//! An invocation: deadline and hop checks -> activate (table) -> method lookup ->
//! re-entrancy rule -> lock (read shared, write exclusive, fair; a wait that would close a
//! cycle of waiting threads fails with `Deadlock`) -> for writes, a recorded
//! reply under the same call id short-cuts here -> run the method under the deadline,
//! catching panics -> writes: encode state, commit state + pages + call record in one
//! store transaction, version + 1, wait for the group flush -> reply. A write that fails,
//! panics or runs out of time reloads the object from its last committed state.

mod backend;
mod clock;
mod commit;
mod deadlock;
mod reentrancy;
mod table;
mod writeset;

use crate::config::{Config, Durability};
use crate::registry::Registry;
use crate::store::{Commit, Record, Store};
use crate::wire::{InitialState, Invocation, NodeStatus, ObjectInfo};
use backend::NodeBackend;
use clouds::{Access, BoxFuture, ClassInfo, Codec, Ctx, Frame, InvokeError, MethodInfo, NodeId, ObjectId, ThreadId};
use futures::FutureExt;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use table::{Active, ObjectTable, Slot};
use tokio::sync::OwnedRwLockReadGuard;
use tokio::time::{timeout_at, Duration, Instant};
use tracing::Instrument;

/// Node metadata key of the root directory's id.
const ROOT_KEY: &str = "root";

type ReadHold = Arc<OwnedRwLockReadGuard<Active>>;

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
    root: ObjectId,
    /// Read holds by thread, so that a thread re-entering an object it holds for reading
    /// runs under its hold instead of queueing behind a writer that waits for it.
    /// std `Mutex`: held for one map operation, never across an `.await`.
    reads_held: Mutex<HashMap<(ThreadId, ObjectId), ReadHold>>,
    /// Who holds and who waits for which object. std `Mutex`: held for one graph update,
    /// never across an `.await`.
    waits: Mutex<deadlock::WaitGraph>,
}

/// Records a thread's hold of an object in the wait-for graph while alive.
struct Held<'a> {
    inner: &'a Inner,
    object: ObjectId,
    thread: ThreadId,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.inner.waits.lock().expect("wait graph mutex").release(self.object, self.thread);
    }
}

impl Engine {
    /// Builds the engine on an open store; creates the root directory on first start.
    /// Must run inside a tokio runtime (it starts the flusher task).
    pub async fn start(config: &Config, store: Arc<dyn Store>, registry: Registry) -> Result<Engine, InvokeError> {
        let commits = commit::GroupCommit::start(config.durability, store.clone());
        let root = match store.meta_get(ROOT_KEY)? {
            Some(bytes) => {
                ObjectId::from_bytes(bytes.try_into().map_err(|_| InvokeError::storage("root id is not 16 bytes"))?)
            }
            None => {
                let id = ObjectId::new(config.id);
                let dir = registry.get("Directory")?;
                store.create(id, "Directory", &dir.initial_state(None)?)?;
                store.meta_put(ROOT_KEY, id.as_bytes())?;
                store.flush()?;
                id
            }
        };
        Ok(Engine {
            inner: Arc::new(Inner {
                node: config.id,
                store,
                registry,
                table: ObjectTable::new(config.cache_objects),
                commits,
                clock: clock::LamportClock::default(),
                hop_limit: config.hop_limit,
                durability: config.durability,
                root,
                reads_held: Mutex::new(HashMap::new()),
                waits: Mutex::new(deadlock::WaitGraph::default()),
            }),
        })
    }

    pub fn node(&self) -> NodeId {
        self.inner.node
    }

    pub fn root(&self) -> ObjectId {
        self.inner.root
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    pub(crate) fn tick(&self) -> u64 {
        self.inner.clock.tick()
    }

    pub fn classes(&self) -> Vec<ClassInfo> {
        self.inner.registry.infos()
    }

    /// Runs one invocation to its reply.
    pub fn invoke(&self, inv: Invocation) -> BoxFuture<'static, Result<Vec<u8>, InvokeError>> {
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
            engine.run(inv).instrument(span).await
        })
    }

    async fn run(&self, inv: Invocation) -> Result<Vec<u8>, InvokeError> {
        let started = Instant::now();
        let deadline = started + Duration::from_millis(inv.thread.remaining_ms);
        if inv.thread.remaining_ms == 0 {
            return Err(InvokeError::DeadlineExceeded { object: inv.target, method: inv.method, elapsed_ms: 0 });
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
        let entry = reentrancy::check(&inv.thread.chain, inv.target, method.access, &method.name, &class.info().name)?;
        let result = match method.access {
            Access::Read => self.run_read(&slot, method, &inv, deadline, entry).await,
            Access::Write => self.run_write(&slot, method, &inv, deadline).await,
        };
        tracing::debug!(ok = result.is_ok(), elapsed_us = started.elapsed().as_micros() as u64, "invoked");
        result
    }

    /// Reads the object's committed record and decodes it.
    fn activate(&self, id: ObjectId) -> Result<(Arc<dyn clouds::Class>, Active), InvokeError> {
        match self.inner.store.get(id)? {
            None => Err(InvokeError::NotFound { id }),
            Some(Record::Forward { to, .. }) => Err(InvokeError::Moved { id, to }),
            Some(Record::Live { class, version, state }) => {
                let class = self.inner.registry.get(&class)?.clone();
                let instance = class.instantiate(&state)?;
                Ok((class, Active { instance, version, stale: false, deleted: false }))
            }
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
            method: method.name.clone(),
            writes: (method.access == Access::Write).then(Default::default),
        }
    }

    /// Waits for `lock` unless that would close a cycle of waiting threads.
    async fn wait_for<G>(
        &self,
        slot: &Slot,
        inv: &Invocation,
        deadline: Instant,
        lock: impl std::future::Future<Output = G>,
    ) -> Result<G, InvokeError> {
        let thread = inv.thread.id;
        if let Err(cycle) = self.inner.waits.lock().expect("wait graph mutex").wait(thread, slot.id) {
            return Err(InvokeError::Deadlock { cycle: deadlock_text(&cycle) });
        }
        let acquired = timeout_at(deadline, lock).await;
        self.inner.waits.lock().expect("wait graph mutex").stop_waiting(thread);
        acquired.map_err(|_| deadline_error(inv, deadline))
    }

    fn held(&self, slot: &Slot, inv: &Invocation) -> Held<'_> {
        self.inner.waits.lock().expect("wait graph mutex").hold(slot.id, inv.thread.id);
        Held { inner: &self.inner, object: slot.id, thread: inv.thread.id }
    }

    async fn acquire_read(&self, slot: &Slot, inv: &Invocation, deadline: Instant) -> Result<ReadHold, InvokeError> {
        loop {
            let guard = match slot.lock.clone().try_read_owned() {
                Ok(g) => g,
                Err(_) => self.wait_for(slot, inv, deadline, slot.lock.clone().read_owned()).await?,
            };
            if !guard.stale {
                return Ok(Arc::new(guard));
            }
            // A write was cut short (cancelled) and left uncommitted changes: reload.
            drop(guard);
            let mut w = self.acquire_write(slot, inv, deadline).await?;
            if w.stale {
                self.reload(slot, &mut w)?;
            }
        }
    }

    async fn acquire_write<'s>(
        &self,
        slot: &'s Slot,
        inv: &Invocation,
        deadline: Instant,
    ) -> Result<tokio::sync::RwLockWriteGuard<'s, Active>, InvokeError> {
        match slot.lock.try_write() {
            Ok(g) => Ok(g),
            Err(_) => self.wait_for(slot, inv, deadline, slot.lock.write()).await,
        }
    }

    async fn run_read(
        &self,
        slot: &Slot,
        method: &MethodInfo,
        inv: &Invocation,
        deadline: Instant,
        entry: reentrancy::Entry,
    ) -> Result<Vec<u8>, InvokeError> {
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
        let result = if hold.deleted {
            Err(InvokeError::NotFound { id: slot.id })
        } else {
            let ctx = Ctx::new(Arc::new(self.backend(slot, method, inv, deadline)));
            let run = hold.instance.read(&ctx, method, inv.codec, &inv.args);
            guarded(run, inv, method, deadline).await
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
    ) -> Result<Vec<u8>, InvokeError> {
        let mut active = self.acquire_write(slot, inv, deadline).await?;
        // Declared after the guard: dropped before it, so the graph never shows a hold
        // that the lock no longer has.
        let _held = self.held(slot, inv);
        if active.deleted {
            return Err(InvokeError::NotFound { id: slot.id });
        }
        if active.stale {
            self.reload(slot, &mut active)?;
        }
        if let Some(call) = &inv.call_id {
            if let Some(recorded) = self.inner.store.call_reply(slot.id, &call.0)? {
                return replay(recorded, inv.codec, &call.0);
            }
        }
        active.stale = true;
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
            },
            Err(e) => {
                self.reload(slot, &mut active)?;
                return Err(e);
            }
        };
        if let Err(e) = self.inner.store.commit(&commit) {
            self.reload(slot, &mut active)?;
            return Err(e.into());
        }
        active.version += 1;
        active.stale = false;
        let ticket = self.inner.commits.record();
        // Keep the write lock until the commit is durable: nobody may read a state that
        // a crash could still take back.
        self.inner.commits.durable(ticket).await?;
        drop(active);
        Ok(reply)
    }

    /// Creates an object of `class`; returns once its record is durable.
    pub async fn create(&self, class: &str, state: InitialState) -> Result<ObjectId, InvokeError> {
        let c = self.inner.registry.get(class)?;
        let state = match state {
            InitialState::Default => c.initial_state(None)?,
            InitialState::Json(text) => {
                let v: serde_json::Value = serde_json::from_str(&text)
                    .map_err(|e| InvokeError::invalid(format!("initial state is not valid JSON: {e}")))?;
                c.initial_state(Some(&v))?
            }
            InitialState::Encoded(bytes) => {
                c.instantiate(&bytes)
                    .map_err(|e| InvokeError::invalid(format!("initial state does not fit class `{class}`: {e}")))?;
                bytes
            }
        };
        let id = ObjectId::new(self.inner.node);
        self.inner.store.create(id, class, &state)?;
        let ticket = self.inner.commits.record();
        self.inner.commits.durable(ticket).await?;
        tracing::debug!(%id, class, "created");
        Ok(id)
    }

    /// Deletes an object: waits for running methods, then removes it and its pages.
    pub async fn delete(&self, id: ObjectId, deadline: Duration) -> Result<(), InvokeError> {
        let slot = self.inner.table.get_or_load(id, || self.activate(id))?;
        if id == self.inner.root {
            return Err(InvokeError::invalid("the root directory cannot be deleted"));
        }
        let mut active =
            tokio::time::timeout(deadline, slot.lock.write()).await.map_err(|_| InvokeError::DeadlineExceeded {
                object: id,
                method: "delete".into(),
                elapsed_ms: deadline.as_millis() as u64,
            })?;
        if active.deleted || !self.inner.store.delete(id)? {
            return Err(InvokeError::NotFound { id });
        }
        active.deleted = true;
        self.inner.table.remove(&slot);
        let ticket = self.inner.commits.record();
        self.inner.commits.durable(ticket).await
    }

    /// What `clouds describe` shows: the committed record, its size and its class.
    pub fn describe(&self, id: ObjectId) -> Result<ObjectInfo, InvokeError> {
        let (class, version, state) = match self.inner.store.get(id)? {
            None => return Err(InvokeError::NotFound { id }),
            Some(Record::Forward { to, .. }) => return Err(InvokeError::Moved { id, to }),
            Some(Record::Live { class, version, state }) => (class, version, state),
        };
        let c = self.inner.registry.get(&class)?;
        let (pages, page_bytes) = self.inner.store.page_usage(id)?;
        Ok(ObjectInfo {
            id,
            class,
            node: self.inner.node,
            home: id.home(),
            version,
            state_bytes: state.len() as u64,
            pages,
            page_bytes,
            state: c.state_json(&state)?.to_string(),
            methods: c.info().clone(),
        })
    }

    pub fn status(&self) -> Result<NodeStatus, InvokeError> {
        Ok(NodeStatus {
            node: self.inner.node,
            root: self.inner.root,
            objects: self.inner.store.count()?,
            active: self.inner.table.len() as u64,
            durability: format!("{:?}", self.inner.durability),
            build: env!("CARGO_PKG_VERSION").to_string(),
        })
    }

    /// Flushes the store (at shutdown).
    pub fn flush(&self) -> Result<(), InvokeError> {
        Ok(self.inner.store.flush()?)
    }
}

/// Runs a method future under the thread's deadline, turning a panic into `Panicked`.
async fn guarded(
    run: BoxFuture<'_, Result<Vec<u8>, InvokeError>>,
    inv: &Invocation,
    method: &MethodInfo,
    deadline: Instant,
) -> Result<Vec<u8>, InvokeError> {
    match timeout_at(deadline, AssertUnwindSafe(run).catch_unwind()).await {
        Err(_) => Err(deadline_error(inv, deadline)),
        Ok(Err(panic)) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".into());
            Err(InvokeError::Panicked { method: method.name.clone(), message })
        }
        Ok(Ok(result)) => result,
    }
}

/// `thread …1a2b waits for …3c4d, held by thread …5e6f, which waits for …7a8b, held by the first`
fn deadlock_text(cycle: &[deadlock::WaitEdge]) -> String {
    let tail = |s: String| s[s.len() - 8..].to_string();
    let steps: Vec<String> = cycle
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let who = if i == 0 {
                format!("thread …{}", tail(e.thread.to_string()))
            } else {
                format!("held by thread …{}, which", tail(e.thread.to_string()))
            };
            format!("{who} waits for object …{}", tail(e.object.to_string()))
        })
        .collect();
    format!("{}, held by the first thread", steps.join(", "))
}

fn deadline_error(inv: &Invocation, deadline: Instant) -> InvokeError {
    let _ = deadline;
    InvokeError::DeadlineExceeded {
        object: inv.target,
        method: inv.method.clone(),
        elapsed_ms: inv.thread.remaining_ms,
    }
}

/// A reply as recorded under a call id: the codec it was encoded in, and the bytes.
fn record_reply(codec: Codec, reply: &[u8]) -> Vec<u8> {
    postcard::to_stdvec(&(codec, reply)).expect("replies always encode")
}

fn replay(recorded: Vec<u8>, codec: Codec, call: &str) -> Result<Vec<u8>, InvokeError> {
    let (recorded_codec, reply): (Codec, Vec<u8>) = postcard::from_bytes(&recorded)
        .map_err(|e| InvokeError::storage(format!("recorded reply of call `{call}` does not decode: {e}")))?;
    if recorded_codec != codec {
        return Err(InvokeError::invalid(format!(
            "call id `{call}` was first used with {recorded_codec:?} arguments; a retry must use the same codec"
        )));
    }
    Ok(reply)
}
