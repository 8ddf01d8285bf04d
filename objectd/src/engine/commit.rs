//! Group commit: many writers share one store write and one flush.
//!
//! The common path (`apply`): a writer hands its unit (a method's commit, a creation) to
//! the flusher and waits. The flusher task takes every unit queued so far, applies them
//! with one `Store::apply_group` (one sled transaction, where a transaction per writer
//! would serialize them) and one flush, off the async threads, and tells each writer its
//! own outcome; while it works the next group gathers. A writer that wrote the store
//! itself (`record`) waits (`durable`) for a flush that started after its write.
//! With `buffered` durability nothing waits: `apply` writes at once.
//!
//! A failed flush stops the node's writing for good (fail-stop). What the store wrote but
//! could not flush may or may not be on the disk, and a later flush that succeeds does not
//! say the earlier writes are (an fsync error can drop the pages it failed on); so the
//! writers of that group hear `InDoubt`, every write after it is refused before it is
//! applied, and the engine serves nothing more: the node must restart, and its recovery
//! reads what the disk holds.

use crate::config::Durability;
use crate::store::{Store, StoreError, Unit};
use clouds::InvokeError;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{oneshot, watch, Notify};

/// How far flushing has got: every ticket up to `durable` is durable; `failed`: the flush
/// that failed, after which nothing more is flushed.
#[derive(Clone, Debug, Default)]
struct Flushed {
    durable: u64,
    failed: Option<String>,
}

/// What the writers of a group whose flush failed hear.
fn in_doubt(e: &str) -> InvokeError {
    InvokeError::InDoubt {
        reason: format!(
            "the store failed to flush ({e}); the write may or may not be on the disk; the node stops \
             serving, and its restart settles what is committed"
        ),
    }
}

/// What a write after a failed flush hears: it was not applied.
fn stopped(e: &str) -> InvokeError {
    InvokeError::storage(format!(
        "this node's store failed to flush earlier ({e}), so it writes nothing more until it restarts; \
         nothing of this write was applied"
    ))
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
    /// Whether `flushed.failed` is set: read on every request, so a plain load.
    stopped: AtomicBool,
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
            stopped: AtomicBool::new(false),
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
            if let Some(e) = self.failed() {
                return Err(stopped(&e));
            }
            let mut results = self.store.apply_group(std::slice::from_ref(&unit))?;
            return Ok(results.pop().expect("one result per unit")?);
        }
        let (done, outcome) = oneshot::channel();
        {
            // Under the queue's lock: the flusher marks the failure under it too, so no unit
            // joins a queue nobody will apply.
            let mut queued = self.queued.lock().expect("group queue mutex");
            if let Some(e) = self.failed() {
                return Err(stopped(&e));
            }
            queued.push(Queued { unit, done });
        }
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
        let flushed = tokio::task::spawn_blocking(move || store.flush())
            .await
            .unwrap_or_else(|e| Err(StoreError::Io(format!("the flush task failed: {e}"))));
        flushed.map_err(|e| self.fail(e.to_string()))
    }

    /// The failed flush that stopped this node's writing, if one did.
    pub fn failed(&self) -> Option<String> {
        match self.stopped.load(Ordering::Acquire) {
            true => self.flushed.borrow().failed.clone(),
            false => None,
        }
    }

    /// Waits until a flush fails (never, on a healthy disk).
    pub async fn until_failed(&self) -> String {
        let mut rx = self.flushed.subscribe();
        loop {
            if let Some(e) = rx.borrow_and_update().failed.clone() {
                return e;
            }
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// Records that a flush failed (the first failure is the one kept), and what the
    /// writers of its group hear.
    fn fail(&self, e: String) -> InvokeError {
        let error = in_doubt(&e);
        self.flushed.send_if_modified(|f| {
            let first = f.failed.is_none();
            if first {
                tracing::error!("the store failed to flush: {e}; this node writes nothing more until it restarts");
                f.failed = Some(e);
            }
            first
        });
        self.stopped.store(true, Ordering::Release);
        error
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
                if let Some(e) = &f.failed {
                    return Err(in_doubt(e));
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
            match result {
                Ok(results) => {
                    crate::telemetry::record_flush(writes + target.saturating_sub(before) as usize, began.elapsed());
                    for (done, result) in waiters.into_iter().zip(results) {
                        let _ = done.send(result.map_err(InvokeError::from));
                    }
                    gc.flushed.send_modify(|f| f.durable = target);
                }
                Err(e) => {
                    // Fail-stop: this group is in doubt, and what queued behind it was never
                    // applied; the flusher ends.
                    let e = e.to_string();
                    let (doubt, later) = {
                        let mut queued = gc.queued.lock().expect("group queue mutex");
                        (gc.fail(e.clone()), std::mem::take(&mut *queued))
                    };
                    for done in waiters {
                        let _ = done.send(Err(doubt.clone()));
                    }
                    for q in later {
                        let _ = q.done.send(Err(stopped(&e)));
                    }
                    return;
                }
            }
        }
    }
}
