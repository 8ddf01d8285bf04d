//! Moving a live object to another node: the driver of the protocol in `crate::migration`
//! (the steps, the precopy rule and the recovery rule are there, pure), on both ends.
//!
//! Source: intent, offer, precopy rounds (pages dirtied by commits meanwhile are tracked
//! and sent again), freeze (the write lock: running methods finish first, new calls wait),
//! the rest of the pages, the call records and the record, commit at the target, forwarding
//! entry here, home updated, intent dropped. Callers that waited at the freeze find the slot
//! `Moved` and go on to the target. Target: accepts or refuses the offer, installs chunks
//! (invisible until the record), commits the record durably (from then on it is the
//! owner), answers a `Resolve` (committed, or refused for good), discards on `Abort`.
//! Home: records where the object went. A lazy move sends the page keys instead of the
//! pages; the target fetches them afterwards (`engine::pages`) and releases the source.

use super::faults::Role;
use super::slot::{admit, in_doubt, Admission, SlotState, Want};
use super::table::Slot;
use super::Engine;
use crate::migration::{after_round, recover, AfterRound, Precopy, Recovery, Step};
use crate::store::{Chunk, Cursor, Record};
use clouds::{InvokeError, NodeId, ObjectId, RawRef, Rights};
use protocol::migration::{MigrationReport, Resolution, Strategy};
use protocol::wire::{MigrationStep, MoveProgress};
use protocol::{NodeMode, RequestBody, ResponseBody};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::time::{Duration, Instant};

/// Payload per chunk: well inside the 8 MiB frame.
pub(super) const CHUNK_BYTES: usize = 1 << 20;
/// Page keys per `Missing` step of a lazy move.
const KEYS_PER_STEP: usize = 16 * 1024;
/// How long a step's message to another node may take.
const STEP_WITHIN: Duration = Duration::from_secs(10);
/// How long the freeze may wait for running methods to finish.
const FREEZE_WITHIN: Duration = Duration::from_secs(30);
/// How often, and how many times, a move in doubt asks the target to resolve it.
const RESOLVE_EVERY: Duration = Duration::from_millis(200);
const RESOLVE_TRIES: u32 = 3000;

const OUT: &[u8] = b"migrate-out/";
const IN: &[u8] = b"migrate-in/";

fn key(prefix: &[u8], id: ObjectId) -> Vec<u8> {
    [prefix, id.as_bytes()].concat()
}

/// The source's durable record of a move.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Outgoing {
    to: NodeId,
    strategy: Strategy,
    step: Step,
}

/// A move in, at the target, until its commit.
pub(super) struct Incoming {
    from: NodeId,
    strategy: Strategy,
    /// Lazy: the keys of the pages left on the source.
    missing: BTreeSet<Vec<u8>>,
    /// Why the source moves it (empty: by hand), for the decision log.
    reason: String,
    /// Never moved automatically: the mark goes with it.
    pinned: bool,
}

fn unexpected(body: ResponseBody) -> InvokeError {
    InvokeError::storage(format!("a migration step was answered with {body:?}"))
}

impl Engine {
    /// Moves `target` to node `to` with `strategy`; returns once the target owns it and
    /// this node forwards to it. Needs the migrate right. Calls keep being served during
    /// the copy; during the freeze they wait, then go on to `to`.
    pub async fn migrate(
        &self,
        target: RawRef,
        to: NodeId,
        strategy: Strategy,
    ) -> Result<MigrationReport, InvokeError> {
        self.migrate_why(target, to, strategy, "").await
    }

    /// A move for `reason` (empty: asked by hand), which the target records.
    pub(super) async fn migrate_why(
        &self,
        target: RawRef,
        to: NodeId,
        strategy: Strategy,
        reason: &str,
    ) -> Result<MigrationReport, InvokeError> {
        let id = target.id;
        let slot = self.inner.table.get_or_load(id, || self.activate(id))?;
        let epoch = slot.epoch.load(Ordering::Acquire);
        self.inner.guard.admit(target.cap.as_ref(), id, epoch, Rights::MIGRATE, "migrate")?;
        if to == self.inner.node {
            return Err(InvokeError::invalid(format!("object {id} is already on {to}")));
        }
        if Some(id) == self.inner.local_root {
            return Err(InvokeError::invalid("the root directory stays on the root node"));
        }
        if let Some(held) = self.inner.actions.held_by(id) {
            return Err(InvokeError::invalid(format!(
                "object {id} is held by {held}; it moves once the action is decided"
            )));
        }
        if let Some(r) = self.inner.residuals.info(id) {
            return Err(InvokeError::invalid(format!(
                "object {id} is still pulling {} of its {} pages from {} (a lazy move is finishing); \
                 move it again once that is done",
                r.missing, r.pages, r.from
            )));
        }
        let (_, page_bytes) = self.inner.store.page_usage(id)?;
        let progress = MoveProgress {
            to,
            strategy,
            step: Step::IntentWritten.to_string(),
            bytes: 0,
            total_bytes: page_bytes,
            rounds: 0,
        };
        {
            let mut moving = self.inner.moving.lock().expect("moving mutex");
            if moving.contains_key(&id) {
                return Err(InvokeError::invalid(format!("object {id} is already moving")));
            }
            moving.insert(id, progress);
        }
        let result = self.move_out(&slot, to, strategy, reason).await;
        if let Ok(r) = &result {
            if let Err(e) = self.drop_marks(id) {
                tracing::warn!(%id, "could not drop the marks of a moved object: {e}");
            }
            // Only moves big enough to time: a small one measures its round trips.
            if r.bytes >= 1 << 20 && r.total_us > 0 {
                let rate = r.bytes as f64 * 1e6 / r.total_us as f64;
                self.inner.copy_rate.store(rate.to_bits(), Ordering::Relaxed);
            }
        }
        self.inner.moving.lock().expect("moving mutex").remove(&id);
        self.inner.dirty.lock().expect("dirty mutex").remove(&id);
        result
    }

    async fn move_out(
        &self,
        slot: &Arc<Slot>,
        to: NodeId,
        strategy: Strategy,
        reason: &str,
    ) -> Result<MigrationReport, InvokeError> {
        let (id, started) = (slot.id, Instant::now());
        let pinned = self.pinned(id)?;
        let mut out = Outgoing { to, strategy, step: Step::IntentWritten };
        self.record_step(id, &mut out, Step::IntentWritten).await?;
        let (class, format) = (slot.class.info().name.clone(), slot.class.info().format);
        let from = self.inner.node;
        let offer = MigrationStep::Offer { id, class, format, from, strategy, reason: reason.into(), pinned };
        if let Err(e) = self.step_to(to, offer).await {
            self.drop_intent(id)?;
            return Err(e);
        }
        self.record_step(id, &mut out, Step::TargetAccepted).await?;
        match self.copy_and_switch(slot, &mut out, started).await {
            Ok(report) => Ok(report),
            Err((e, Abortable::Yes)) => {
                let _ = self.step_to(to, MigrationStep::Abort { id }).await;
                self.drop_intent(id)?;
                Err(e)
            }
            Err((e, Abortable::No)) => Err(e),
        }
    }

    /// Copy rounds, freeze, commit at the target, switch. An error before the commit was
    /// asked is abortable (this node still owns the object); after, it is not.
    async fn copy_and_switch(
        &self,
        slot: &Arc<Slot>,
        out: &mut Outgoing,
        started: Instant,
    ) -> Result<MigrationReport, (InvokeError, Abortable)> {
        let (id, to, strategy) = (slot.id, out.to, out.strategy);
        let abortable = |e: InvokeError| (e, Abortable::Yes);
        let mut rounds = 0u32;
        if strategy == Strategy::Precopy {
            self.inner.dirty.lock().expect("dirty mutex").insert(id, BTreeSet::new());
            self.send_export(id, to, Cursor::start(), false).await.map_err(abortable)?;
            rounds = 1;
            self.record_step(id, out, Step::Copied(rounds)).await.map_err(abortable)?;
            loop {
                let dirty = self.inner.dirty.lock().expect("dirty mutex").get(&id).map_or(0, BTreeSet::len);
                if after_round(strategy, Precopy::default(), rounds, dirty) == AfterRound::Freeze {
                    break;
                }
                self.send_dirty(id, to).await.map_err(abortable)?;
                rounds += 1;
                self.record_step(id, out, Step::Copied(rounds)).await.map_err(abortable)?;
            }
        }
        if strategy == Strategy::Lazy {
            // The page keys go while the object serves; the freeze adds those of pages
            // that commits wrote meanwhile. A key whose page is deleted meanwhile stays in
            // the list: the target's fetch finds no page, and drops it.
            self.inner.dirty.lock().expect("dirty mutex").insert(id, BTreeSet::new());
            self.send_keys(id, to).await.map_err(abortable)?;
        }
        // The freeze: the write lock waits for running methods; new calls queue behind it.
        let mut active = tokio::time::timeout(FREEZE_WITHIN, slot.lock.clone().write_owned()).await.map_err(|_| {
            abortable(InvokeError::DeadlineExceeded {
                object: id,
                method: "migrate (freeze)".into(),
                elapsed_ms: FREEZE_WITHIN.as_millis() as u64,
            })
        })?;
        let frozen = Instant::now();
        // A stale slot needs no reload: the move copies the committed record from the store.
        if let Admission::Refuse(e) = admit(active.state, id, Want::Move) {
            return Err(abortable(e));
        }
        self.record_step(id, out, Step::Frozen).await.map_err(abortable)?;
        match strategy {
            Strategy::Eager => self.send_export(id, to, Cursor::start(), true).await,
            Strategy::Precopy => match self.send_dirty(id, to).await {
                Ok(()) => self.send_export(id, to, Cursor::Calls(None), true).await,
                Err(e) => Err(e),
            },
            Strategy::Lazy => match self.send_export(id, to, Cursor::Calls(None), true).await {
                Ok(()) => self.send_dirty_keys(id, to).await,
                Err(e) => Err(e),
            },
        }
        .map_err(abortable)?;
        let record = match self.inner.store.export(id, &Cursor::Record, CHUNK_BYTES).map_err(|e| abortable(e.into()))? {
            Some((record, _)) => record,
            None => return Err(abortable(InvokeError::storage("the record did not export"))),
        };
        self.sent(id, record.bytes());
        self.record_step(id, out, Step::CommitAsked).await.map_err(abortable)?;
        match self.step_to(to, MigrationStep::Commit { id, record }).await {
            Ok(()) => {}
            // Refused: the target did not commit and never will.
            Err(e @ InvokeError::Invalid { .. }) => return Err(abortable(e)),
            Err(e) => match self.resolve(id, to, 5).await {
                Some(Resolution::Committed) => {}
                Some(Resolution::Aborted) => return Err(abortable(e)),
                None => {
                    // Neither node may serve it until the target answers.
                    active.state = SlotState::InDoubt(to);
                    self.resolve_later(id, to, strategy == Strategy::Lazy);
                    return Err((in_doubt(id, to), Abortable::No));
                }
            },
        }
        self.record_step(id, out, Step::TargetCommitted).await.map_err(|e| (e, Abortable::No))?;
        out.step = Step::SourceForwarded;
        self.forward_here(slot, &mut active.state, to, out).map_err(|e| (e, Abortable::No))?;
        self.fault(Role::Source, Step::SourceForwarded).await;
        drop(active);
        let freeze_us = frozen.elapsed().as_micros() as u64;
        // What the object left here is garbage now (but for the pages a lazy move's target
        // still fetches); dropping it waited for the unfreeze.
        let lazy = strategy == Strategy::Lazy;
        if !lazy {
            if let Err(e) = self.inner.store.discard(id) {
                tracing::warn!(%id, "could not drop the pages a moved object left: {e}");
            }
        }
        if !self.update_home(id, to).await {
            self.finish_later(id, to, lazy);
        } else {
            self.record_step(id, out, Step::HomeUpdated).await.map_err(|e| (e, Abortable::No))?;
            if !lazy {
                self.drop_intent(id).map_err(|e| (e, Abortable::No))?;
            }
        }
        let bytes = self.inner.moving.lock().expect("moving mutex").get(&id).map_or(0, |p| p.bytes);
        let report = MigrationReport {
            object: id,
            from: self.inner.node,
            to,
            strategy,
            bytes,
            rounds,
            freeze_us,
            total_us: started.elapsed().as_micros() as u64,
        };
        tracing::info!(%id, %to, %strategy, bytes, rounds, freeze_us, "migrated");
        Ok(report)
    }

    /// Moves `id` to `to` once the invocation that asked (`ctx.migrate_to`) has let go of
    /// it: in a task of its own, with an owner capability the node issues for itself.
    pub(super) fn move_later(&self, id: ObjectId, to: NodeId) {
        let engine = self.clone();
        tokio::spawn(async move {
            let Ok(raw) = engine.own_capability(id) else { return };
            match engine.migrate(raw, to, Strategy::Precopy).await {
                Ok(report) => tracing::debug!(%report, "moved as its method asked"),
                Err(e) => tracing::warn!(%id, %to, "the move a method asked for failed: {e}"),
            }
        });
    }

    /// This node's record becomes a forwarding entry to `to` (and the intent says so, in
    /// the same flush); waiting callers go there.
    fn forward_here(
        &self,
        slot: &Arc<Slot>,
        state: &mut SlotState,
        to: NodeId,
        out: &Outgoing,
    ) -> Result<(), InvokeError> {
        self.inner.store.forward(slot.id, to)?;
        self.inner.store.intent_put(&key(OUT, slot.id), &serde_json::to_vec(out).map_err(InvokeError::storage)?)?;
        self.inner.store.flush()?;
        *state = SlotState::Moved(to);
        self.inner.locations.remember(slot.id, to);
        self.inner.table.remove(slot);
        Ok(())
    }

    /// Tells the object's home where it went; `true` once the home knows (or this node, or
    /// the target, is the home).
    async fn update_home(&self, id: ObjectId, at: NodeId) -> bool {
        let home = self.inner.locations.home_of(id);
        if home == self.inner.node || home == at {
            return true;
        }
        self.step_to(home, MigrationStep::Home { id, at }).await.is_ok()
    }

    /// Sends the export of `id` from `cursor`: up to the call records (`false`) or up to
    /// the record, calls included (`true`).
    async fn send_export(&self, id: ObjectId, to: NodeId, mut cursor: Cursor, calls: bool) -> Result<(), InvokeError> {
        loop {
            if matches!(cursor, Cursor::Record | Cursor::Done) || (!calls && matches!(cursor, Cursor::Calls(_))) {
                return Ok(());
            }
            let Some((chunk, next)) = self.inner.store.export(id, &cursor, CHUNK_BYTES)? else { return Ok(()) };
            let bytes = chunk.bytes();
            if bytes > 0 {
                self.step_to(to, MigrationStep::Chunk { id, chunk }).await?;
                self.sent(id, bytes);
            }
            cursor = next;
        }
    }

    /// A lazy move, in the freeze: sends the keys of the pages commits wrote since
    /// `send_keys`.
    async fn send_dirty_keys(&self, id: ObjectId, to: NodeId) -> Result<(), InvokeError> {
        let keys = self.inner.dirty.lock().expect("dirty mutex").get_mut(&id).map(std::mem::take).unwrap_or_default();
        let keys: Vec<Vec<u8>> = keys.into_iter().collect();
        for part in keys.chunks(KEYS_PER_STEP) {
            self.step_to(to, MigrationStep::Missing { id, keys: part.to_vec() }).await?;
            self.sent(id, part.iter().map(Vec::len).sum());
        }
        Ok(())
    }

    /// A lazy move: sends the keys of every page, which stay here until the target
    /// fetches them.
    async fn send_keys(&self, id: ObjectId, to: NodeId) -> Result<(), InvokeError> {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let keys = self.inner.store.page_keys(id, after.as_deref(), KEYS_PER_STEP)?;
            let Some(last) = keys.last().cloned() else { return Ok(()) };
            let bytes = keys.iter().map(Vec::len).sum();
            self.step_to(to, MigrationStep::Missing { id, keys }).await?;
            self.sent(id, bytes);
            after = Some(last);
        }
    }

    /// Counts `bytes` sent for the move of `id` (what `describe` shows while it runs).
    fn sent(&self, id: ObjectId, bytes: usize) {
        if let Some(p) = self.inner.moving.lock().expect("moving mutex").get_mut(&id) {
            p.bytes += bytes as u64;
        }
    }

    /// How far the move of `id` out of this node has come, if one runs.
    pub(super) fn move_progress(&self, id: ObjectId) -> Option<MoveProgress> {
        self.inner.moving.lock().expect("moving mutex").get(&id).cloned()
    }

    /// Sends the pages commits dirtied since the last round (and the removal of those
    /// that were deleted); starts the next dirty set empty.
    async fn send_dirty(&self, id: ObjectId, to: NodeId) -> Result<(), InvokeError> {
        let keys = self.inner.dirty.lock().expect("dirty mutex").get_mut(&id).map(std::mem::take).unwrap_or_default();
        let (mut pages, mut removed, mut bytes) = (Vec::new(), Vec::new(), 0usize);
        for key in keys {
            match self.inner.store.page_get(id, &key)? {
                Some(value) => {
                    bytes += key.len() + value.len();
                    pages.push((key, value));
                }
                None => removed.push(key),
            }
            if bytes >= CHUNK_BYTES {
                self.step_to(to, MigrationStep::Chunk { id, chunk: Chunk::Pages(std::mem::take(&mut pages)) }).await?;
                self.sent(id, std::mem::take(&mut bytes));
            }
        }
        if !pages.is_empty() {
            self.step_to(to, MigrationStep::Chunk { id, chunk: Chunk::Pages(pages) }).await?;
            self.sent(id, bytes);
        }
        if !removed.is_empty() {
            self.step_to(to, MigrationStep::Chunk { id, chunk: Chunk::Removed(removed) }).await?;
        }
        Ok(())
    }

    /// A write committed page changes of `id`: a precopy in progress copies them again.
    pub(super) fn dirtied(&self, id: ObjectId, keys: impl Iterator<Item = Vec<u8>>) {
        let mut dirty = self.inner.dirty.lock().expect("dirty mutex");
        if let Some(set) = dirty.get_mut(&id) {
            set.extend(keys);
        }
    }

    /// Sends one migration step to `node` and expects it done.
    async fn step_to(&self, node: NodeId, step: MigrationStep) -> Result<(), InvokeError> {
        match self.inner.peers.send(node, RequestBody::Migration(step), STEP_WITHIN).await? {
            ResponseBody::StepDone => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Asks `to` up to `tries` times whether it committed `id`.
    async fn resolve(&self, id: ObjectId, to: NodeId, tries: u32) -> Option<Resolution> {
        for attempt in 0..tries {
            if attempt > 0 {
                tokio::time::sleep(RESOLVE_EVERY).await;
            }
            let answer =
                self.inner.peers.send(to, RequestBody::Migration(MigrationStep::Resolve { id }), STEP_WITHIN).await;
            if let Ok(ResponseBody::Resolved(r)) = answer {
                return Some(r);
            }
        }
        None
    }

    /// Resolves a move in doubt in the background, then finishes it or takes the object back.
    fn resolve_later(&self, id: ObjectId, to: NodeId, lazy: bool) {
        self.inner.resolving.lock().expect("resolving mutex").insert(id, to);
        let engine = self.clone();
        tokio::spawn(async move {
            let outcome = engine.resolve(id, to, RESOLVE_TRIES).await;
            engine.inner.table.forget(id);
            match outcome {
                Some(Resolution::Committed) => {
                    let store = &engine.inner.store;
                    let _ = store.forward(id, to).and_then(|()| store.flush());
                    if !lazy {
                        let _ = store.discard(id);
                    }
                    engine.inner.locations.remember(id, to);
                    engine.inner.resolving.lock().expect("resolving mutex").remove(&id);
                    engine.finish_later(id, to, lazy);
                }
                Some(Resolution::Aborted) => {
                    let _ = engine.drop_intent(id);
                    engine.inner.resolving.lock().expect("resolving mutex").remove(&id);
                    tracing::info!(%id, %to, "a move in doubt was aborted by the target: the object stays here");
                }
                None => {
                    tracing::error!(%id, %to, "a move in doubt could not be resolved: the object stays unavailable")
                }
            }
        });
    }

    /// Updates the home in the background until it answers, then drops the intent (a lazy
    /// move's stays until the target releases the pages left here).
    fn finish_later(&self, id: ObjectId, to: NodeId, lazy: bool) {
        let engine = self.clone();
        tokio::spawn(async move {
            for _ in 0..RESOLVE_TRIES {
                if engine.update_home(id, to).await {
                    if !lazy {
                        let _ = engine.drop_intent(id);
                    }
                    return;
                }
                tokio::time::sleep(RESOLVE_EVERY).await;
            }
            tracing::error!(%id, %to, "the home of a moved object could not be told where it went");
        });
    }

    /// Records that the move of `id` passed `step`, then stops there if a test armed a
    /// fault at this step. The record is flushed only where recovery would decide otherwise
    /// than from the step before (`migration::recover`): the first intent, and the commit
    /// being asked; the steps in between recover alike, and the steps after the commit are
    /// made durable by the flush of the forwarding entry. The freeze so costs three flushes:
    /// this one, the target's commit, and the forwarding entry.
    async fn record_step(&self, id: ObjectId, out: &mut Outgoing, step: Step) -> Result<(), InvokeError> {
        out.step = step;
        if let Some(p) = self.inner.moving.lock().expect("moving mutex").get_mut(&id) {
            p.step = step.to_string();
            if let Step::Copied(round) = step {
                p.rounds = round;
            }
        }
        let bytes = serde_json::to_vec(out).map_err(InvokeError::storage)?;
        self.inner.store.intent_put(&key(OUT, id), &bytes)?;
        if matches!(step, Step::IntentWritten | Step::CommitAsked) {
            self.inner.store.flush()?;
        }
        self.fault(Role::Source, step).await;
        Ok(())
    }

    /// The move is over (done or called off). Not flushed: a restart that still finds the
    /// intent redoes what is left, which is idempotent (abort, home update).
    fn drop_intent(&self, id: ObjectId) -> Result<(), InvokeError> {
        Ok(self.inner.store.intent_remove(&key(OUT, id))?)
    }

    /// The moves out of this node that are not over: the home is still to be told where
    /// the object went, or a lazy move's target still to pull its pages.
    pub fn open_moves_out(&self) -> Result<usize, InvokeError> {
        Ok(self.inner.store.intents()?.iter().filter(|(k, _)| k.starts_with(OUT)).count())
    }

    /// Why this node may not serve `id` now, if a move of it is in doubt.
    pub(super) fn moving_in_doubt(&self, id: ObjectId) -> Option<InvokeError> {
        self.inner.resolving.lock().expect("resolving mutex").get(&id).map(|to| in_doubt(id, *to))
    }

    /// After a restart: resumes or aborts every move this node's intents record.
    pub(super) fn recover_moves(&self) -> Result<(), InvokeError> {
        let id_after = |prefix: &[u8], k: &[u8]| k.strip_prefix(prefix)?.try_into().ok().map(ObjectId::from_bytes);
        for (k, v) in self.inner.store.intents()? {
            if let Some(id) = id_after(OUT, &k) {
                let out: Outgoing = serde_json::from_slice(&v).map_err(InvokeError::storage)?;
                self.recover_outgoing(id, out)?;
            } else if let Some(id) = id_after(IN, &k) {
                // An incoming move cut short by the restart: committed if the record is
                // here; otherwise its chunks are garbage, and the source aborts or resolves
                // (Aborted).
                if !self.live_here(id)? {
                    self.inner.store.discard(id)?;
                    self.residual_drop(id)?;
                }
                self.inner.store.intent_remove(&k)?;
            }
        }
        Ok(self.inner.store.flush()?)
    }

    fn recover_outgoing(&self, id: ObjectId, out: Outgoing) -> Result<(), InvokeError> {
        tracing::info!(%id, to = %out.to, step = %out.step, "resuming a move after a restart");
        match recover(out.strategy, out.step) {
            Recovery::Abort => {
                let engine = self.clone();
                tokio::spawn(async move {
                    let _ = engine.step_to(out.to, MigrationStep::Abort { id }).await;
                });
                self.inner.store.intent_remove(&key(OUT, id))?;
            }
            Recovery::Resolve => self.resolve_later(id, out.to, out.strategy == Strategy::Lazy),
            Recovery::Finish { keep_pages } => {
                if self.live_here(id)? {
                    self.inner.store.forward(id, out.to)?;
                }
                if !keep_pages {
                    self.inner.store.discard(id)?;
                }
                self.inner.locations.remember(id, out.to);
                self.finish_later(id, out.to, keep_pages);
            }
            Recovery::Done => self.released(id)?,
        }
        Ok(())
    }

    /// A migration step from another node.
    pub(super) async fn migration_step(&self, step: MigrationStep) -> Result<ResponseBody, InvokeError> {
        match step {
            MigrationStep::Offer { id, class, format, from, strategy, reason, pinned } => {
                let me = self.inner.node;
                let ours = self
                    .inner
                    .registry
                    .get(&class)
                    .map_err(|e| InvokeError::invalid(format!("{me} refuses object {id}: {e}")))?
                    .info()
                    .format;
                if format != ours {
                    return Err(InvokeError::invalid(format!(
                        "{me} refuses object {id}: its {class} state has format version {format}, \
                         and {me}'s {class} reads version {ours}"
                    )));
                }
                if self.live_here(id)? {
                    return Err(InvokeError::invalid(format!("{me} already has object {id}")));
                }
                let mode = self.mode();
                let present = self.owner_present();
                // A workstation always takes its own objects back.
                let going_home = mode == NodeMode::Workstation && id.home() == me;
                if !mode.takes_new(!present) && !going_home {
                    let what =
                        if mode == NodeMode::Workstation { "a workstation whose owner is present" } else { "draining" };
                    return Err(InvokeError::invalid(format!(
                        "{me} refuses object {id}: it is {what} and takes no objects from elsewhere"
                    )));
                }
                if self.inner.residuals.contains(id) || self.live_out_lazy(id)? {
                    return Err(InvokeError::invalid(format!(
                        "{me} refuses object {id}: a lazy move of it from {me} is still finishing"
                    )));
                }
                self.inner.store.discard(id)?;
                self.residual_drop(id)?;
                self.inner.store.intent_put(&key(IN, id), b"receiving")?;
                self.inner.store.flush()?;
                let incoming = Incoming { from, strategy, missing: BTreeSet::new(), reason, pinned };
                self.inner.incoming.lock().expect("incoming mutex").insert(id, incoming);
                Ok(ResponseBody::StepDone)
            }
            MigrationStep::Missing { id, keys } => {
                self.receiving(id)?;
                self.residual_keys(id, &keys)?;
                self.inner.store.flush()?;
                if let Some(m) = self.inner.incoming.lock().expect("incoming mutex").get_mut(&id) {
                    m.missing.extend(keys);
                }
                Ok(ResponseBody::StepDone)
            }
            MigrationStep::Fetch { id, keys } => {
                if !self.live_out_lazy(id)? {
                    return Err(InvokeError::invalid(format!(
                        "no lazy move of object {id} from {} is finishing: it has no pages to hand over",
                        self.inner.node
                    )));
                }
                self.fetched(id, keys, CHUNK_BYTES)
            }
            MigrationStep::Release { id } => {
                // The target may have pulled every page before this node has recorded the
                // switch (the steps after the commit): the release waits for that, or the
                // step recorded last would bring the dropped intent back.
                if self.move_progress(id).is_some() {
                    return Err(InvokeError::invalid(format!(
                        "the move of object {id} out of {} is still switching over; release it again",
                        self.inner.node
                    )));
                }
                if let Some(out) = self.outgoing(id)? {
                    let mut out = out;
                    // Not flushed: `released` flushes the discard with the intent's removal.
                    self.record_step(id, &mut out, Step::PullDone).await?;
                    self.released(id)?;
                }
                Ok(ResponseBody::StepDone)
            }
            MigrationStep::Chunk { id, chunk } => {
                self.receiving(id)?;
                if matches!(chunk, Chunk::Record { .. }) {
                    return Err(InvokeError::invalid("the record comes with the commit"));
                }
                self.inner.store.install(id, &chunk)?;
                // Flushed as it arrives, so that the commit's flush (in the freeze) has
                // only the record left to write.
                self.inner.store.flush()?;
                Ok(ResponseBody::StepDone)
            }
            MigrationStep::Commit { id, record } => {
                let (lazy, from, reason, pinned, class) = self.commit_incoming(id, &record)?;
                if pinned {
                    self.set_pinned(id, true)?;
                }
                self.inner.balance.moved(id);
                let reason = if reason.is_empty() { "moved by hand".to_string() } else { reason };
                let e = super::decisions::Entry {
                    kind: protocol::decision::DecisionKind::Arrived,
                    object: Some(id),
                    class: &class,
                    from: Some(from),
                    to: Some(self.inner.node),
                    reason,
                };
                self.inner.decisions.record(self.inner.node, e);
                self.inner.table.forget(id);
                self.inner.locations.remember(id, self.inner.node);
                if lazy {
                    self.pull_later(id);
                }
                self.fault(Role::Target, Step::TargetCommitted).await;
                Ok(ResponseBody::StepDone)
            }
            MigrationStep::Resolve { id } => {
                let mut incoming = self.inner.incoming.lock().expect("incoming mutex");
                if self.live_here(id)? {
                    return Ok(ResponseBody::Resolved(Resolution::Committed));
                }
                // Not committed: and now never will be.
                incoming.remove(&id);
                self.drop_incoming(id)?;
                Ok(ResponseBody::Resolved(Resolution::Aborted))
            }
            MigrationStep::Abort { id } => {
                let mut incoming = self.inner.incoming.lock().expect("incoming mutex");
                if incoming.remove(&id).is_some() {
                    self.drop_incoming(id)?;
                }
                Ok(ResponseBody::StepDone)
            }
            MigrationStep::Home { id, at } => self.home_step(id, at).await.map(|()| ResponseBody::StepDone),
        }
    }

    /// Installs the record of a move in, durably (with the residual of a lazy move, in
    /// the same flush). Under the incoming map's lock: a commit and a resolve never cross.
    /// Returns whether the move was lazy, where it came from, why, whether the object is
    /// pinned, and its class.
    fn commit_incoming(
        &self,
        id: ObjectId,
        record: &Chunk,
    ) -> Result<(bool, NodeId, String, bool, String), InvokeError> {
        let mut incoming = self.inner.incoming.lock().expect("incoming mutex");
        let Some(m) = incoming.get(&id) else {
            return Err(InvokeError::invalid(format!(
                "no move of object {id} is under way on {} (it was aborted or the node restarted)",
                self.inner.node
            )));
        };
        let lazy = m.strategy == Strategy::Lazy;
        self.inner.store.install(id, record)?;
        if lazy {
            self.residual_start(id, m.from, m.missing.clone())?;
        }
        self.inner.store.intent_remove(&key(IN, id))?;
        self.inner.store.flush()?;
        let m = incoming.remove(&id).expect("looked up above");
        let class = match record {
            Chunk::Record { class, .. } => class.clone(),
            _ => String::new(),
        };
        Ok((lazy, m.from, m.reason, m.pinned, class))
    }

    /// Drops what a move in that did not commit left: chunks, residual keys, intent.
    fn drop_incoming(&self, id: ObjectId) -> Result<(), InvokeError> {
        self.inner.store.discard(id)?;
        self.residual_drop(id)?;
        Ok(self.inner.store.intent_remove(&key(IN, id))?)
    }

    /// The durable record of a move of `id` out of this node, if one is not over.
    fn outgoing(&self, id: ObjectId) -> Result<Option<Outgoing>, InvokeError> {
        let bytes = self.inner.store.intent_get(&key(OUT, id))?;
        bytes.map(|v| serde_json::from_slice(&v)).transpose().map_err(InvokeError::storage)
    }

    /// Whether a lazy move of `id` out of this node may have switched and its target may
    /// still fetch pages from here: from the commit being asked (the target may fetch
    /// before this node hears that it committed; the pages are frozen here by then).
    fn live_out_lazy(&self, id: ObjectId) -> Result<bool, InvokeError> {
        Ok(self.outgoing(id)?.is_some_and(|o| o.strategy == Strategy::Lazy && o.step >= Step::CommitAsked))
    }

    /// The target of a lazy move released the pages it left here: the move is over.
    fn released(&self, id: ObjectId) -> Result<(), InvokeError> {
        self.inner.store.discard(id)?;
        self.drop_intent(id)?;
        self.inner.store.flush()?;
        tracing::info!(%id, "a lazy move out finished: the target has every page");
        Ok(())
    }

    /// Whether this store holds `id` live.
    fn live_here(&self, id: ObjectId) -> Result<bool, InvokeError> {
        Ok(matches!(self.inner.store.get(id)?, Some(Record::Live { .. })))
    }

    fn receiving(&self, id: ObjectId) -> Result<(), InvokeError> {
        if self.inner.incoming.lock().expect("incoming mutex").contains_key(&id) {
            Ok(())
        } else {
            Err(InvokeError::invalid(format!("no move of object {id} is under way on {}", self.inner.node)))
        }
    }
}

/// Whether a failed move can still be called off (this node owns the object).
enum Abortable {
    Yes,
    No,
}
