//! Group commit: many writers wait on one flush.
//!
//! A writer commits its transaction, takes a ticket (`record`), and waits (`durable`)
//! until a flush that started after its commit has finished. One flusher task runs the
//! blocking `Store::flush` off the async threads, always for everything written so far,
//! so while one flush runs the next batch gathers.

use crate::config::Durability;
use crate::store::Store;
use clouds::InvokeError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{watch, Notify};

/// How far flushing has got: every ticket up to `durable` is durable; `error` is the
/// failure of the last flush, if it failed.
#[derive(Clone, Debug, Default)]
struct Flushed {
    durable: u64,
    error: Option<String>,
}

pub struct GroupCommit {
    durability: Durability,
    written: AtomicU64,
    wake: Notify,
    flushed: watch::Sender<Flushed>,
}

impl GroupCommit {
    /// Starts the flusher task; it ends when the last `Arc` is dropped.
    pub fn start(durability: Durability, store: Arc<dyn Store>) -> Arc<GroupCommit> {
        let gc = Arc::new(GroupCommit {
            durability,
            written: AtomicU64::new(0),
            wake: Notify::new(),
            flushed: watch::Sender::new(Flushed::default()),
        });
        if durability != Durability::Buffered {
            tokio::spawn(Flusher { gc: Arc::downgrade(&gc), store }.run());
        }
        gc
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
            if gc.flushed.borrow().durable >= target {
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
            let store = self.store.clone();
            let (began, before) = (std::time::Instant::now(), gc.flushed.borrow().durable);
            let result = tokio::task::spawn_blocking(move || store.flush()).await;
            let state = match result {
                Ok(Ok(())) => {
                    crate::telemetry::record_flush(target.saturating_sub(before) as usize, began.elapsed());
                    Flushed { durable: target, error: None }
                }
                Ok(Err(e)) => Flushed { durable: gc.flushed.borrow().durable, error: Some(e.to_string()) },
                Err(e) => Flushed { durable: gc.flushed.borrow().durable, error: Some(e.to_string()) },
            };
            gc.flushed.send_replace(state);
        }
    }
}
