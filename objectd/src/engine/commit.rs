//! Group commit: many writers share one store write and one flush.
//!
//! The common path (`apply`): a writer hands its unit (a method's commit, a creation) to
//! the flusher and waits. The flusher task takes every unit queued so far, applies them
//! with one `Store::apply_group` (one sled transaction, where a transaction per writer
//! would serialize them) and one flush, off the async threads, and tells each writer its
//! own outcome; while it works the next group gathers. A writer that wrote the store
//! itself (`record`) waits (`durable`) for a flush that started after its write.
//! With `buffered` durability nothing waits: `apply` writes at once.

use crate::config::Durability;
use crate::store::{Store, StoreError, Unit};
use clouds::InvokeError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{oneshot, watch, Notify};

/// How far flushing has got: every ticket up to `durable` is durable; `error` is the
/// failure of the last flush, if it failed.
#[derive(Clone, Debug, Default)]
struct Flushed {
    durable: u64,
    error: Option<String>,
}

/// A unit waiting for the next group, and where its outcome goes.
struct Queued {
    unit: Unit,
    done: oneshot::Sender<Result<(), InvokeError>>,
}

pub struct GroupCommit {
    durability: Durability,
    store: Arc<dyn Store>,
    written: AtomicU64,
    /// std `Mutex`: held only to push or to take the whole queue.
    queued: Mutex<Vec<Queued>>,
    wake: Notify,
    flushed: watch::Sender<Flushed>,
}

impl GroupCommit {
    /// Starts the flusher task; it ends when the last `Arc` is dropped.
    pub fn start(durability: Durability, store: Arc<dyn Store>) -> Arc<GroupCommit> {
        let gc = Arc::new(GroupCommit {
            durability,
            store: store.clone(),
            written: AtomicU64::new(0),
            queued: Mutex::new(Vec::new()),
            wake: Notify::new(),
            flushed: watch::Sender::new(Flushed::default()),
        });
        if durability != Durability::Buffered {
            tokio::spawn(Flusher { gc: Arc::downgrade(&gc), store }.run());
        }
        gc
    }

    /// Applies `unit` with the next group and returns once it is durable (at once with
    /// `buffered` durability). An error means the unit may or may not have been applied
    /// (a failed flush): the caller reads back what the store holds.
    pub async fn apply(&self, unit: Unit) -> Result<(), InvokeError> {
        if self.durability == Durability::Buffered {
            let mut results = self.store.apply_group(std::slice::from_ref(&unit))?;
            return Ok(results.pop().expect("one result per unit")?);
        }
        let (done, outcome) = oneshot::channel();
        self.queued.lock().expect("group queue mutex").push(Queued { unit, done });
        self.wake.notify_one();
        outcome.await.unwrap_or_else(|_| Err(InvokeError::storage("the flusher stopped (node shutting down)")))
    }

    /// `apply`, and flushed at every durability level: the steps of an atomic action,
    /// which other nodes act on. With `buffered` (no flusher groups), a flush of its own.
    pub async fn apply_flushed(&self, unit: Unit) -> Result<(), InvokeError> {
        self.apply(unit).await?;
        if self.durability != Durability::Buffered {
            return Ok(());
        }
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.flush()).await {
            Ok(result) => Ok(result?),
            Err(e) => Err(InvokeError::storage(format!("the flush task failed: {e}"))),
        }
    }

    /// Takes a ticket for a commit that has been applied to the store.
    pub fn record(&self) -> u64 {
        self.written.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Waits until the commit with this ticket is durable.
    pub async fn durable(&self, ticket: u64) -> Result<(), InvokeError> {
        if self.durability == Durability::Buffered {
            return Ok(());
        }
        let mut rx = self.flushed.subscribe();
        self.wake.notify_one();
        loop {
            {
                let f = rx.borrow_and_update();
                if f.durable >= ticket {
                    return Ok(());
                }
                if let Some(e) = &f.error {
                    return Err(InvokeError::storage(format!("flush failed: {e}")));
                }
            }
            if rx.changed().await.is_err() {
                return Err(InvokeError::storage("the flusher stopped (node shutting down)"));
            }
        }
    }
}

struct Flusher {
    gc: std::sync::Weak<GroupCommit>,
    store: Arc<dyn Store>,
}

impl Flusher {
    async fn run(self) {
        loop {
            let Some(gc) = self.gc.upgrade() else { return };
            let target = gc.written.load(Ordering::SeqCst);
            let group = std::mem::take(&mut *gc.queued.lock().expect("group queue mutex"));
            let before = gc.flushed.borrow().durable;
            if group.is_empty() && before >= target {
                // Nothing new: wait for a writer (or the engine to go away).
                let notified = gc.wake.notified();
                tokio::select! {
                    // A writer is waiting for a flush.
                    _ = notified => {}
                    // Re-check now and then, so that the task ends soon after the engine is
                    // dropped (the upgrade above then fails).
                    _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                }
                continue;
            }
            let (units, waiters): (Vec<Unit>, Vec<_>) = group.into_iter().map(|q| (q.unit, q.done)).unzip();
            let (store, began, writes) = (self.store.clone(), std::time::Instant::now(), units.len());
            let result = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
                let results = if units.is_empty() { Vec::new() } else { store.apply_group(&units)? };
                store.flush()?;
                Ok(results)
            })
            .await
            .unwrap_or_else(|e| Err(StoreError::Io(format!("the flush task failed: {e}"))));
            let state = match result {
                Ok(results) => {
                    crate::telemetry::record_flush(writes + target.saturating_sub(before) as usize, began.elapsed());
                    for (done, result) in waiters.into_iter().zip(results) {
                        let _ = done.send(result.map_err(InvokeError::from));
                    }
                    Flushed { durable: target, error: None }
                }
                Err(e) => {
                    for done in waiters {
                        let _ = done.send(Err(InvokeError::storage(format!("flush failed: {e}"))));
                    }
                    Flushed { durable: before, error: Some(e.to_string()) }
                }
            };
            gc.flushed.send_replace(state);
        }
    }
}
