//! Taking an object's lock, with deadlock bookkeeping: holds are recorded in the wait-for
//! graph, and a thread that would block first adds its wait edge, which fails with
//! `Deadlock` if it closes a cycle.

use super::deadlock::{WaitEdge, WaitGraph};
use super::outcome::deadline_error;
use super::table::{Active, Slot};
use super::{Engine, Inner, ReadHold};
use crate::wire::Invocation;
use clouds::{InvokeError, ObjectId, ThreadId};
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
        if let Err(cycle) = self.inner.waits.lock().expect("wait graph mutex").wait(thread, slot.id) {
            return Err(InvokeError::Deadlock { cycle: deadlock_text(&cycle) });
        }
        let acquired = timeout_at(deadline, lock).await;
        self.inner.waits.lock().expect("wait graph mutex").stop_waiting(thread);
        acquired.map_err(|_| deadline_error(inv))
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

    pub(super) async fn acquire_write<'s>(
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
}

/// `thread …1a2b waits for object …3c4d, held by thread …5e6f, which waits for …, held by the first thread`
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
