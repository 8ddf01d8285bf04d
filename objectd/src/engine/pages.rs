//! Where a running method's committed pages come from: this node's store, and, for an
//! object that arrived by a lazy move, the node it came from for the pages not pulled yet.
//!
//! A lazy move leaves the object's pages on its source S and gives the target the list of
//! their keys: the residual. The residual is durable (an intent per key, beside a
//! `lazy-in` intent that names S) and shrinks as pages arrive:
//! - a read of a missing page fetches it from S, installs it, then drops its key;
//! - before a write method commits, the missing pages it writes are fetched the same way,
//!   so no commit ever writes a page still in the residual (a restart can then tell a
//!   page pulled but whose key was not dropped yet by its presence in the store);
//! - a background pull fetches the rest, a chunk at a time, under the object's read lock
//!   (so it never crosses a writer); when the residual is empty it releases S's pages.
//!
//! Every fetch holds the object's lock (read or write), and pages on S no longer change
//! (S forwards), so two fetches of one page install the same bytes. If S cannot be
//! reached, a method that needs a missing page fails with `Unavailable` naming S; it never
//! reads wrong data.

use super::slot::SlotState;
use super::Engine;
use crate::migration::Step;
use crate::store::Chunk;
use clouds::{InvokeError, NodeId, ObjectId, Pages};
use protocol::wire::{MigrationStep, Residual as ResidualInfo};
use protocol::{RequestBody, ResponseBody};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Mutex;
use tokio::time::Duration;

const LAZY: &[u8] = b"lazy-in/";
const RESIDUAL: &[u8] = b"residual/";
/// Keys asked per fetch; the source answers as many as fit a chunk.
const FETCH_KEYS: usize = 4096;
const FETCH_WITHIN: Duration = Duration::from_secs(10);
/// How often, and how many times, the background pull tries again when the source
/// does not answer (about ten minutes; a restart resumes it).
const RETRY_EVERY: Duration = Duration::from_millis(200);
const RETRY_TRIES: u32 = 3000;

/// Objects whose pages are partly still on the node they came from. std `Mutex`: held
/// for one map operation, never across an `.await`.
#[derive(Default)]
pub struct Residuals(Mutex<HashMap<ObjectId, Residual>>);

struct Residual {
    from: NodeId,
    missing: BTreeSet<Vec<u8>>,
    /// Pages when the move switched.
    pages: u64,
}

/// The `lazy-in` intent: where the pages are.
#[derive(Serialize, Deserialize)]
struct LazyIn {
    from: NodeId,
    pages: u64,
}

fn lazy_key(id: ObjectId) -> Vec<u8> {
    [LAZY, id.as_bytes()].concat()
}

fn residual_key(id: ObjectId, key: &[u8]) -> Vec<u8> {
    [RESIDUAL, id.as_bytes(), key].concat()
}

fn unreachable_page(id: ObjectId, from: NodeId, e: InvokeError) -> InvokeError {
    InvokeError::Unavailable {
        node: from.to_string(),
        reason: format!("a page of object {id} is still on {from}, which a lazy move left it on, and it failed: {e}"),
    }
}

impl Residuals {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<ObjectId, Residual>) -> R) -> R {
        f(&mut self.0.lock().expect("residuals mutex"))
    }

    /// Of `keys`, those of `id` still on its source, and the source.
    fn missing<'k>(&self, id: ObjectId, keys: impl IntoIterator<Item = &'k [u8]>) -> Option<(NodeId, Vec<Vec<u8>>)> {
        self.with(|all| {
            let r = all.get(&id)?;
            let keys: Vec<Vec<u8>> = keys.into_iter().filter(|k| r.missing.contains(*k)).map(<[u8]>::to_vec).collect();
            (!keys.is_empty()).then_some((r.from, keys))
        })
    }

    /// The first `limit` keys of `id` in the range still on its source.
    fn missing_in(
        &self,
        id: ObjectId,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        limit: usize,
    ) -> Option<(NodeId, Vec<Vec<u8>>)> {
        self.with(|all| {
            let r = all.get(&id)?;
            let keys: Vec<Vec<u8>> = r.missing.range::<[u8], _>((start, end)).take(limit).cloned().collect();
            (!keys.is_empty()).then_some((r.from, keys))
        })
    }

    /// What `describe` shows.
    pub fn info(&self, id: ObjectId) -> Option<ResidualInfo> {
        self.with(|all| {
            all.get(&id).map(|r| ResidualInfo { from: r.from, missing: r.missing.len() as u64, pages: r.pages })
        })
    }

    pub fn contains(&self, id: ObjectId) -> bool {
        self.with(|all| all.contains_key(&id))
    }
}

impl Engine {
    /// A committed page of `id`, fetched from the source of a lazy move if still there.
    pub(super) async fn page_get(&self, id: ObjectId, key: &[u8]) -> Result<Option<Vec<u8>>, InvokeError> {
        if let Some((from, keys)) = self.inner.residuals.missing(id, [key]) {
            self.pull(id, from, keys).await?;
        }
        Ok(self.inner.store.page_get(id, key)?)
    }

    /// Up to `limit` committed pages of `id` in the range, in key order.
    pub(super) async fn page_range(
        &self,
        id: ObjectId,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        limit: usize,
    ) -> Result<Pages, InvokeError> {
        // The first `limit` pages of the range are among the first `limit` here and the
        // first `limit` still missing: fetching those is enough.
        if let Some((from, keys)) = self.inner.residuals.missing_in(id, start, end, limit) {
            self.pull(id, from, keys).await?;
        }
        Ok(self.inner.store.page_range(id, start, end, limit)?)
    }

    /// Before a commit of `id` that writes these pages: fetches those still missing, so
    /// that no commit writes a page of the residual. Under the object's write lock.
    pub(super) async fn pull_written<'k>(
        &self,
        id: ObjectId,
        keys: impl IntoIterator<Item = &'k [u8]>,
    ) -> Result<(), InvokeError> {
        match self.inner.residuals.missing(id, keys) {
            Some((from, keys)) => self.pull(id, from, keys).await,
            None => Ok(()),
        }
    }

    /// Fetches `keys` of `id` from `from` until every one is here (or known absent there).
    async fn pull(&self, id: ObjectId, from: NodeId, mut keys: Vec<Vec<u8>>) -> Result<(), InvokeError> {
        while !keys.is_empty() {
            let answered = self.fetch_once(id, from, &keys).await?;
            keys.drain(..answered);
        }
        Ok(())
    }

    /// One fetch: installs the pages the source sent (a prefix of `keys`), durably, then
    /// drops their keys from the residual. Returns how many keys were answered.
    async fn fetch_once(&self, id: ObjectId, from: NodeId, keys: &[Vec<u8>]) -> Result<usize, InvokeError> {
        let step = MigrationStep::Fetch { id, keys: keys.to_vec() };
        let answer = self
            .inner
            .peers
            .send(from, RequestBody::Migration(step), FETCH_WITHIN)
            .await
            .map_err(|e| unreachable_page(id, from, e))?;
        let ResponseBody::Fetched(pages) = answer else {
            return Err(InvokeError::storage(format!("a page fetch was answered with {answer:?}")));
        };
        if pages.is_empty() || pages.len() > keys.len() || pages.iter().zip(keys).any(|((k, _), asked)| k != asked) {
            return Err(InvokeError::storage(format!("{from} answered a page fetch of object {id} out of order")));
        }
        let present: Pages = pages.iter().filter_map(|(k, v)| Some((k.clone(), v.clone()?))).collect();
        let store = &self.inner.store;
        store.install(id, &Chunk::Pages(present))?;
        for (k, _) in &pages {
            store.intent_remove(&residual_key(id, k))?;
        }
        // One flush: the pages reach the disk before (or with) the dropped keys.
        store.flush()?;
        let empty = self.inner.residuals.with(|all| {
            let Some(r) = all.get_mut(&id) else { return false };
            for (k, _) in &pages {
                r.missing.remove(k);
            }
            r.missing.is_empty()
        });
        if empty {
            self.release_later(id);
        }
        Ok(pages.len())
    }

    /// The target of a lazy move, at its commit: the residual starts with `missing`.
    /// The caller flushes (with the record).
    pub(super) fn residual_start(
        &self,
        id: ObjectId,
        from: NodeId,
        missing: BTreeSet<Vec<u8>>,
    ) -> Result<(), InvokeError> {
        let pages = missing.len() as u64;
        let intent = serde_json::to_vec(&LazyIn { from, pages }).map_err(InvokeError::storage)?;
        self.inner.store.intent_put(&lazy_key(id), &intent)?;
        self.inner.residuals.with(|all| all.insert(id, Residual { from, missing, pages }));
        Ok(())
    }

    /// Keys of a lazy move arriving (before its commit): durable with the next flush.
    pub(super) fn residual_keys(&self, id: ObjectId, keys: &[Vec<u8>]) -> Result<(), InvokeError> {
        for k in keys {
            self.inner.store.intent_put(&residual_key(id, k), b"")?;
        }
        Ok(())
    }

    /// Drops every residual key of `id` (a move in that was called off, or is over).
    pub(super) fn residual_drop(&self, id: ObjectId) -> Result<(), InvokeError> {
        let prefix = [RESIDUAL, id.as_bytes()].concat();
        for (k, _) in self.inner.store.intents()? {
            if k.starts_with(&prefix) {
                self.inner.store.intent_remove(&k)?;
            }
        }
        self.inner.store.intent_remove(&lazy_key(id))?;
        self.inner.residuals.with(|all| all.remove(&id));
        Ok(())
    }

    /// After a restart: the residuals of lazy moves in, from their intents; pulls resume.
    /// A key whose page is here was pulled just before the restart: dropped.
    pub(super) fn recover_residuals(&self) -> Result<(), InvokeError> {
        let intents = self.inner.store.intents()?;
        let id_of = |rest: &[u8]| rest.get(..16)?.try_into().ok().map(ObjectId::from_bytes);
        for (k, v) in &intents {
            let Some(id) = k.strip_prefix(LAZY).and_then(id_of) else { continue };
            let lazy: LazyIn = serde_json::from_slice(v).map_err(InvokeError::storage)?;
            let prefix = [RESIDUAL, id.as_bytes()].concat();
            let mut missing = BTreeSet::new();
            for (k, _) in intents.iter().filter(|(k, _)| k.starts_with(&prefix)) {
                let page = &k[prefix.len()..];
                if self.inner.store.page_get(id, page)?.is_some() {
                    self.inner.store.intent_remove(k)?;
                } else {
                    missing.insert(page.to_vec());
                }
            }
            tracing::info!(%id, from = %lazy.from, missing = missing.len(), "resuming the pull of a lazy move");
            let empty = missing.is_empty();
            self.inner.residuals.with(|all| all.insert(id, Residual { from: lazy.from, missing, pages: lazy.pages }));
            if empty {
                self.release_later(id);
            } else {
                self.pull_later(id);
            }
        }
        Ok(())
    }

    /// Pulls the residual of `id` in the background, a chunk at a time, each under the
    /// object's read lock; then releases the source.
    pub(super) fn pull_later(&self, id: ObjectId) {
        if self.inner.residuals.with(|all| all.get(&id).is_some_and(|r| r.missing.is_empty())) {
            // Nothing to pull (an object with no pages): the move is over once released.
            self.release_later(id);
            return;
        }
        let engine = self.clone();
        tokio::spawn(async move {
            let mut failures = 0;
            loop {
                if !engine.inner.residuals.contains(id) {
                    return;
                }
                let slot = match engine.inner.table.get_or_load(id, || engine.activate(id)) {
                    Ok(slot) => slot,
                    Err(InvokeError::NotFound { .. } | InvokeError::Moved { .. }) => {
                        // Deleted here before the pull ended: nothing is left to pull.
                        engine.release_later(id);
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(%id, "the background pull cannot activate the object: {e}");
                        return;
                    }
                };
                let hold = slot.lock.clone().read_owned().await;
                if hold.state == SlotState::Deleted {
                    drop(hold);
                    engine.release_later(id);
                    return;
                }
                // The keys are taken under the lock: a writer that ran while this pull
                // waited for it may have fetched (and then changed) some of them.
                let Some((from, keys)) =
                    engine.inner.residuals.missing_in(id, Bound::Unbounded, Bound::Unbounded, FETCH_KEYS)
                else {
                    return; // empty: the last fetch released the source
                };
                let result = engine.fetch_once(id, from, &keys).await;
                drop(hold);
                if let Err(e) = result {
                    failures += 1;
                    if failures >= RETRY_TRIES {
                        tracing::error!(%id, %from, "the pull of a lazy move gave up: {e}; a restart resumes it");
                        return;
                    }
                    tracing::debug!(%id, %from, "a background pull failed, trying again: {e}");
                    tokio::time::sleep(RETRY_EVERY).await;
                }
            }
        });
    }

    /// Tells the source of a lazy move that its pages may go, until it answers; then the
    /// move is over here.
    fn release_later(&self, id: ObjectId) {
        let engine = self.clone();
        tokio::spawn(async move {
            let Some(from) = engine.inner.residuals.with(|all| all.get(&id).map(|r| r.from)) else { return };
            engine.fault(super::faults::Role::Target, Step::PullDone).await;
            for _ in 0..RETRY_TRIES {
                let release = RequestBody::Migration(MigrationStep::Release { id });
                if let Ok(ResponseBody::StepDone) = engine.inner.peers.send(from, release, FETCH_WITHIN).await {
                    if let Err(e) = engine.residual_drop(id).and_then(|()| Ok(engine.inner.store.flush()?)) {
                        tracing::warn!(%id, "could not drop the finished lazy move's intent: {e}");
                    }
                    tracing::info!(%id, %from, "lazy move finished: every page pulled");
                    return;
                }
                tokio::time::sleep(RETRY_EVERY).await;
            }
            tracing::error!(%id, %from, "the source of a lazy move could not be told it is over; a restart tries again");
        });
    }

    /// The source of a lazy move: the pages under `keys`, as many as fit `max_bytes`.
    pub(super) fn fetched(
        &self,
        id: ObjectId,
        keys: Vec<Vec<u8>>,
        max_bytes: usize,
    ) -> Result<ResponseBody, InvokeError> {
        let mut out = Vec::new();
        let mut bytes = 0;
        for key in keys {
            if bytes >= max_bytes && !out.is_empty() {
                break;
            }
            let value = self.inner.store.page_get(id, &key)?;
            bytes += key.len() + value.as_ref().map_or(0, Vec::len);
            out.push((key, value));
        }
        Ok(ResponseBody::Fetched(out))
    }
}
