//! `NodeBackend`: what `Ctx` does for a method running on this node.

use super::writeset::WriteSet;
use super::Engine;
use clouds::{
    Backend, BoxFuture, Codec, Frame, InvokeError, NodeId, ObjectId, Pages, RawRef, Rights, Strategy, ThreadCtx,
    ThreadId,
};
use protocol::wire::Hop;
use protocol::{InitialState, Invocation, Placement};
use std::ops::Bound;
use std::sync::Mutex;
use tokio::time::Instant;

pub struct NodeBackend {
    pub engine: Engine,
    /// The thread as it is inside this method: its chain ends with this method's frame.
    pub thread: ThreadCtx,
    pub deadline: Instant,
    pub this: ObjectId,
    /// The running object's revocation epoch when the method started.
    pub epoch: u64,
    pub method: String,
    /// Page writes of a write method (and, in an atomic action, those the action made
    /// before); `None` in a read method outside an action. std `Mutex`: held only for one
    /// map operation, never across an `.await`.
    pub writes: Option<Mutex<WriteSet>>,
    /// Whether the method may write pages (a write method).
    pub writable: bool,
    /// Inside an atomic action: where it went and whether a call failed. std `Mutex`.
    pub trail: Mutex<protocol::wire::ActionTrail>,
    /// Where the running object moves once the invocation committed (`ctx.migrate_to`).
    /// std `Mutex`: one set or take at a time.
    pub move_after: Mutex<Option<NodeId>>,
    /// Path of the nested invocations, when the thread records it. std `Mutex`: one push
    /// at a time, never across an `.await`.
    pub hops: Mutex<Vec<Hop>>,
}

impl NodeBackend {
    /// Where the object moves after this invocation, if its method asked.
    pub fn take_move(&self) -> Option<NodeId> {
        self.move_after.lock().expect("move mutex").take()
    }

    /// The hops of the nested invocations so far.
    pub fn take_hops(&self) -> Vec<Hop> {
        std::mem::take(&mut *self.hops.lock().expect("hops mutex"))
    }

    /// What the atomic action this method runs in learned from its nested calls.
    pub fn take_trail(&self) -> protocol::wire::ActionTrail {
        std::mem::take(&mut *self.trail.lock().expect("trail mutex"))
    }

    fn writes(&self) -> Result<std::sync::MutexGuard<'_, WriteSet>, InvokeError> {
        match &self.writes {
            Some(w) if self.writable => Ok(w.lock().expect("write set mutex")),
            _ => Err(InvokeError::invalid(format!(
                "`{}` is a read method (&self); storage pages can be written only in write methods (&mut self)",
                self.method
            ))),
        }
    }
}

impl Backend for NodeBackend {
    fn thread_id(&self) -> ThreadId {
        self.thread.id
    }

    fn node(&self) -> Option<NodeId> {
        Some(self.engine.node())
    }

    fn this(&self) -> Option<ObjectId> {
        Some(self.this)
    }

    fn chain(&self) -> Vec<Frame> {
        self.thread.chain.clone()
    }

    fn remaining(&self) -> Option<std::time::Duration> {
        Some(self.deadline.saturating_duration_since(Instant::now()))
    }

    fn invoke<'a>(
        &'a self,
        target: &'a RawRef,
        method: &'a str,
        codec: Codec,
        args: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, InvokeError>> {
        let started = Instant::now();
        let remaining = self.deadline.saturating_duration_since(started);
        let inv = Invocation {
            thread: ThreadCtx {
                id: self.thread.id,
                chain: self.thread.chain.clone(),
                remaining_ms: remaining.as_millis() as u64,
                lamport: self.engine.tick(),
                // This invocation's span, when traces are exported: the nested call's parent.
                trace: crate::telemetry::traceparent(&tracing::Span::current()).or_else(|| self.thread.trace.clone()),
                record_path: self.thread.record_path,
                action: self.thread.action,
                atomic: false,
            },
            target: target.id,
            method: method.to_string(),
            codec,
            args,
            call_id: None,
            capability: target.cap.clone(),
        };
        Box::pin(async move {
            let answer = self.engine.invoke(inv).await;
            super::nested_call(started.elapsed().as_micros() as u64);
            let reply = match answer {
                Ok(reply) => reply,
                Err(e) => {
                    // Inside an atomic action, a failed call dooms it (no partial rollback).
                    if self.thread.action.is_some() {
                        self.trail.lock().expect("trail mutex").doomed.get_or_insert_with(|| e.to_string());
                    }
                    return Err(e);
                }
            };
            self.hops.lock().expect("hops mutex").extend(reply.hops);
            self.trail.lock().expect("trail mutex").merge(reply.trail);
            Ok(reply.value)
        })
    }

    fn create<'a>(&'a self, class: &'a str, state: Vec<u8>) -> BoxFuture<'a, Result<RawRef, InvokeError>> {
        // A new object starts next to the object that creates it. Code here holds no key of
        // its own, so the node holds the owner capability (and attenuates it on request).
        let owner = self.engine.guard().identity().key.public();
        Box::pin(self.engine.create(class, InitialState::Encoded(state), Placement::Local, owner))
    }

    fn migrate<'a>(
        &'a self,
        target: &'a RawRef,
        to: NodeId,
        strategy: Strategy,
    ) -> BoxFuture<'a, Result<(), InvokeError>> {
        Box::pin(async move {
            if self.thread.chain.iter().any(|f| f.object == target.id) {
                return Err(InvokeError::invalid(format!(
                    "object {} cannot move while this thread is inside it (it could not freeze); \
                     from its own methods, use ctx.migrate_to",
                    target.id
                )));
            }
            let body = protocol::RequestBody::Migrate { target: target.clone(), to, strategy };
            match self.engine.handle(super::Origin::Caller, body).await? {
                protocol::ResponseBody::Migrated(_) => Ok(()),
                other => Err(InvokeError::storage(format!("a migration was answered with {other:?}"))),
            }
        })
    }

    fn migrate_after(&self, to: NodeId) -> Result<(), InvokeError> {
        *self.move_after.lock().expect("move mutex") = Some(to);
        Ok(())
    }

    fn this_ref(&self) -> Result<RawRef, InvokeError> {
        let guard = self.engine.guard();
        let cap = guard.issue_owner(self.this, self.epoch, guard.identity().key.public());
        Ok(RawRef { id: self.this, cap: Some(cap) })
    }

    fn attenuate(&self, target: &RawRef, rights: Rights) -> Result<RawRef, InvokeError> {
        let cap = self.engine.guard().attenuate(target.cap.as_ref(), rights)?;
        Ok(RawRef { id: target.id, cap: Some(cap) })
    }

    fn page_get<'a>(&'a self, key: &'a [u8]) -> BoxFuture<'a, Result<Option<Vec<u8>>, InvokeError>> {
        if let Some(w) = &self.writes {
            if let Some(change) = w.lock().expect("write set mutex").get(key) {
                let found = change.map(<[u8]>::to_vec);
                return Box::pin(async move { Ok(found) });
            }
        }
        Box::pin(self.engine.page_get(self.this, key))
    }

    fn page_put(&self, key: &[u8], value: &[u8]) -> Result<(), InvokeError> {
        self.writes()?.put(key, value);
        Ok(())
    }

    fn page_delete(&self, key: &[u8]) -> Result<(), InvokeError> {
        self.writes()?.delete(key);
        Ok(())
    }

    fn page_range(
        &self,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Pages, InvokeError>> {
        Box::pin(async move {
            let Some(w) = &self.writes else {
                return self.engine.page_range(self.this, as_ref(&start), as_ref(&end), limit).await;
            };
            // The write set's mutex is not held across the read.
            let fetch_limit = w.lock().expect("write set mutex").fetch_limit(&start, &end, limit);
            let committed = self.engine.page_range(self.this, as_ref(&start), as_ref(&end), fetch_limit).await?;
            Ok(w.lock().expect("write set mutex").merge_range(committed, &start, &end, limit))
        })
    }
}

fn as_ref(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(k) => Bound::Included(k.as_slice()),
        Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}
