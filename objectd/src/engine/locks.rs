//! Taking an object's lock, with deadlock bookkeeping: holds are recorded in the wait-for
//! graph, and a thread that would block first adds its wait edge, which fails with
//! `Deadlock` if it closes a cycle.

use super::deadlock::{Probe, Search, WaitEdge, WaitGraph, MAX_PATH};
use super::outcome::deadline_error;
use super::slot::{admit, Admission, Want};
use super::table::{Active, Slot};
use super::{Engine, Inner, ReadHold};
use clouds::{BoxFuture, InvokeError, ObjectId, ThreadId};
use protocol::wire::ProbeRequest;
use protocol::{Invocation, RequestBody, ResponseBody};
use std::time::Duration;

/// How long one probe to another node may take.
const PROBE_WITHIN: Duration = Duration::from_secs(2);
/// How often a thread waiting on a lock whose holders wait elsewhere searches again.
const REPROBE: Duration = Duration::from_millis(50);

/// The member of a cycle that fails: the same for every member that finds the cycle.
fn victim(cycle: &[WaitEdge]) -> ThreadId {
    cycle.iter().map(|e| e.thread).max_by_key(|t| t.0).expect("a cycle has edges")
}
use std::sync::{Arc, Mutex};

use tokio::time::{timeout_at, Instant};

/// Records a thread's hold of an object in the wait-for graph while alive.
pub(super) struct Held<'a> {
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
    /// Waits for `lock` unless that would close a cycle of waiting threads.
    pub(super) async fn wait_for<G>(
        &self,
        slot: &Slot,
        inv: &Invocation,
        deadline: Instant,
        lock: impl std::future::Future<Output = G>,
    ) -> Result<G, InvokeError> {
        let thread = inv.thread.id;
        let probes = match self.inner.waits.lock().expect("wait graph mutex").wait(thread, slot.id) {
            Ok(probes) => probes,
            Err(cycle) => return Err(self.broke_deadlock(slot, &cycle)),
        };
        let _waiting = self.inner.meter.waiting();
        crate::telemetry::record_lock_wait();
        let lock = timeout_at(deadline, lock);
        tokio::pin!(lock);
        let acquired = tokio::select! {
            // The lock came: no deadlock, or one that another waiter broke.
            got = &mut lock => got.map_err(|_| deadline_error(inv)),
            // This thread is the victim of a cycle through other nodes.
            cycle = self.watch_for_cycle(thread, slot.id, probes) => Err(self.broke_deadlock(slot, &cycle)),
        };
        self.inner.waits.lock().expect("wait graph mutex").stop_waiting(thread);
        acquired
    }

    /// While `thread` waits for `object`: searches through other nodes now and every
    /// `REPROBE`, and resolves with the cycle once one is found in which this thread is the
    /// victim. Every member of a cycle computes the same victim, so exactly one of them
    /// fails; searching again lets a thread that blocked before the cycle was complete
    /// find it later. Never resolves otherwise.
    async fn watch_for_cycle(&self, thread: ThreadId, object: ObjectId, mut probes: Vec<Probe>) -> Vec<WaitEdge> {
        loop {
            if !probes.is_empty() {
                if let Some(cycle) = self.probe_all(thread, probes).await {
                    if victim(&cycle) == thread {
                        return cycle;
                    }
                }
            }
            tokio::time::sleep(REPROBE).await;
            let start = vec![WaitEdge { thread, object }];
            probes = match self.inner.waits.lock().expect("wait graph mutex").search(thread, object, start) {
                Search::Cycle(cycle) if victim(&cycle) == thread => return cycle,
                Search::Cycle(_) => Vec::new(),
                Search::Continue(probes) => probes,
            };
        }
    }

    /// Continues a deadlock search on this node for a probe from another: from the holders
    /// of `object`, does a chain of waits lead back to `initiator`?
    pub fn probe(
        &self,
        initiator: ThreadId,
        object: ObjectId,
        path: Vec<WaitEdge>,
    ) -> BoxFuture<'_, Option<Vec<WaitEdge>>> {
        Box::pin(async move {
            let search = self.inner.waits.lock().expect("wait graph mutex").search(initiator, object, path);
            match search {
                Search::Cycle(cycle) => Some(cycle),
                Search::Continue(probes) => self.probe_all(initiator, probes).await,
            }
        })
    }

    /// Sends each probe to its node (this one included); the first cycle found, if any.
    /// A node that does not answer is taken to have no cycle: the deadline remains.
    async fn probe_all(&self, initiator: ThreadId, probes: Vec<Probe>) -> Option<Vec<WaitEdge>> {
        for p in probes {
            if p.path.len() > MAX_PATH {
                continue;
            }
            let found = if p.node == self.node() {
                self.probe(initiator, p.object, p.path).await
            } else {
                let request = ProbeRequest { initiator, object: p.object, path: p.path };
                match self.inner.peers.send(p.node, RequestBody::Probe(request), PROBE_WITHIN).await {
                    Ok(ResponseBody::Probed(cycle)) => cycle,
                    _ => None,
                }
            };
            if found.is_some() {
                return found;
            }
        }
        None
    }

    pub(super) fn held(&self, slot: &Slot, inv: &Invocation) -> Held<'_> {
        self.inner.waits.lock().expect("wait graph mutex").hold(slot.id, inv.thread.id);
        Held { inner: &self.inner, object: slot.id, thread: inv.thread.id }
    }

    pub(super) async fn acquire_read(
        &self,
        slot: &Slot,
        inv: &Invocation,
        deadline: Instant,
    ) -> Result<ReadHold, InvokeError> {
        loop {
            let guard = match slot.lock.clone().try_read_owned() {
                Ok(g) => g,
                // Boxed (here and for writes): the waiting future, with its deadlock
                // watch, is large, and a lock taken at once need not carry it.
                Err(_) => Box::pin(self.wait_for(slot, inv, deadline, slot.lock.clone().read_owned())).await?,
            };
            // Deleted: the read method refuses, holding the lock.
            if admit(guard.state, slot.id, Want::Read) != Admission::Reload {
                return Ok(Arc::new(guard));
            }
            // A write was cut short (cancelled) and left uncommitted changes: reload.
            drop(guard);
            let mut w = self.acquire_write(slot, inv, deadline).await?;
            if admit(w.state, slot.id, Want::Read) == Admission::Reload {
                self.reload(slot, &mut w)?;
            }
        }
    }

    pub(super) async fn acquire_write<'s>(
        &self,
        slot: &'s Slot,
        inv: &Invocation,
        deadline: Instant,
    ) -> Result<tokio::sync::RwLockWriteGuard<'s, Active>, InvokeError> {
        match slot.lock.try_write() {
            Ok(g) => Ok(g),
            Err(_) => Box::pin(self.wait_for(slot, inv, deadline, slot.lock.write())).await,
        }
    }
}

/// `thread …1a2b waits for object …3c4d, held by thread …5e6f, which waits for …, held by the first thread`
impl Engine {
    /// This thread, waiting for `slot`, is the victim of `cycle`: the error it fails with,
    /// logged, counted and kept in the decision log.
    fn broke_deadlock(&self, slot: &Slot, cycle: &[WaitEdge]) -> InvokeError {
        let cycle = deadlock_text(cycle);
        crate::telemetry::record_deadlock();
        tracing::info!(object = %slot.id, %cycle, "deadlock broken: this thread fails so that the others go on");
        let e = super::decisions::Entry {
            kind: protocol::decision::DecisionKind::DeadlockBroken,
            object: Some(slot.id),
            class: &slot.class.info().name,
            from: None,
            to: None,
            reason: format!("the waiting thread failed with Deadlock to break the cycle {cycle}"),
        };
        self.inner.decisions.record(self.inner.node, e);
        InvokeError::Deadlock { cycle }
    }
}

fn deadlock_text(cycle: &[WaitEdge]) -> String {
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

/// The engine's wait-for graph. std `Mutex`: held for one graph update, never across an `.await`.
pub(super) type Waits = Mutex<WaitGraph>;
