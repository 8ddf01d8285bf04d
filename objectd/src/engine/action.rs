//! Atomic actions on this node: the driver of `crate::atomic`'s rules (the participant's
//! table, the coordinator's decision and presumed abort are there, pure).
//!
//! Inside an action every object the thread touches (read or written) is taken with its
//! write lock, and the lock stays with the action until the decision (strict two-phase
//! locking): the guard moves into this node's part of the action, with the object's
//! changes as a pending commit. A later call of the same action to the object runs on that
//! guard and sees the action's own writes. At the atomic method's end the coordinator (the
//! node it ran on) asks every other participant to prepare (durable intent
//! `prepared/ACTION`, locks kept), writes its decision (`decided/ACTION`) in the same
//! store transaction as its own changes, answers, and tells the participants, which apply
//! (their changes and the end of their intent, one transaction) and unlock. Any
//! failed call inside the action, a no vote or a lost vote aborts it everywhere: the
//! pending states are reloaded from the store, and the locks go.

use super::faults::Role;
use super::table::{Active, Slot};
use super::Engine;
use crate::atomic::{self, Decision, Effect, Event, Part, Vote};
use crate::store::{Commit, Unit};
use clouds::{ActionRef, InvokeError, NodeId, ObjectId, ThreadId};
use protocol::wire::{ActionStep, ActionTrail, Outcome};
use protocol::{RequestBody, ResponseBody};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::OwnedRwLockWriteGuard;
use tokio::time::{Duration, Instant};

const PREPARED: &[u8] = b"prepared/";
const DECIDED: &[u8] = b"decided/";
/// How long a step's message to another node may take.
const STEP_WITHIN: Duration = Duration::from_secs(5);
/// How long after its thread's deadline a part that heard nothing acts on its own: an
/// active part aborts, a prepared part asks the coordinator.
const GRACE: Duration = Duration::from_secs(2);
/// How long a prepared part waits for the decision before it asks the coordinator.
const ASK_AFTER: Duration = Duration::from_secs(1);
/// How often parts past their time are looked at.
const SWEEP_EVERY: Duration = Duration::from_millis(500);
/// How often, and how many times, a decision is told to a participant that does not answer.
const TELL_EVERY: Duration = Duration::from_millis(200);
const TELL_TRIES: u32 = 3000;

fn key(prefix: &[u8], id: uuid::Uuid) -> Vec<u8> {
    [prefix, id.as_bytes()].concat()
}

/// This node's parts of atomic actions. std `Mutex`: one map operation at a time, never
/// across an `.await`.
#[derive(Default)]
pub struct Actions {
    parts: Mutex<HashMap<uuid::Uuid, PartHere>>,
    /// Atomic methods running here as coordinators, not yet decided.
    deciding: Mutex<std::collections::HashSet<uuid::Uuid>>,
}

struct PartHere {
    action: ActionRef,
    thread: ThreadId,
    /// After this, a part that heard nothing acts alone (`GRACE` past the thread's deadline).
    due: Instant,
    state: Part,
    holds: HashMap<ObjectId, Hold>,
    doomed: Option<String>,
}

/// One object the action holds here.
struct Hold {
    slot: Arc<Slot>,
    /// `None` while a method of the action runs on it.
    guard: Option<OwnedRwLockWriteGuard<Active>>,
    /// The object's changes so far (`None`: only read).
    pending: Option<Commit>,
}

/// The durable record of a prepared part.
#[derive(Serialize, Deserialize)]
struct PreparedRecord {
    action: ActionRef,
    thread: ThreadId,
    commits: Vec<Commit>,
}

/// The durable record of a decided commit: whom to tell.
#[derive(Serialize, Deserialize)]
struct DecidedRecord {
    action: ActionRef,
    participants: Vec<NodeId>,
}

/// An object of an action, taken out of the part for a method to run on it.
pub(super) struct Taken {
    pub guard: OwnedRwLockWriteGuard<Active>,
    pub pending: Option<Commit>,
}

impl Actions {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<uuid::Uuid, PartHere>) -> R) -> R {
        f(&mut self.parts.lock().expect("actions mutex"))
    }

    /// Why `id` is held, for `describe`: a prepared action's lock.
    pub fn held_by(&self, id: ObjectId) -> Option<String> {
        self.with(|parts| {
            parts.values().find(|p| p.holds.contains_key(&id)).map(|p| match p.state {
                Part::Prepared => format!("{}: prepared, its locks held until the coordinator's decision", p.action),
                _ => format!("{}: running", p.action),
            })
        })
    }
}

impl Engine {
    /// The object `id` as action `action` holds it here, taken out for a method to run
    /// on; `None` if the action does not hold it yet (the caller takes its lock).
    pub(super) fn take_held(
        &self,
        action: ActionRef,
        thread: ThreadId,
        deadline: Instant,
        id: ObjectId,
    ) -> Option<Taken> {
        self.inner.actions.with(|parts| {
            let part = parts.entry(action.id).or_insert_with(|| PartHere {
                action,
                thread,
                due: deadline + GRACE,
                state: Part::Active,
                holds: HashMap::new(),
                doomed: None,
            });
            part.due = part.due.max(deadline + GRACE);
            let hold = part.holds.get_mut(&id)?;
            Some(Taken { guard: hold.guard.take()?, pending: hold.pending.take() })
        })
    }

    /// Gives the object back to its action after a method ran on it (`doomed`: the method
    /// failed). If the action ended meanwhile (aborted by a timeout, or by the
    /// coordinator), the object is rolled back here and the call fails.
    pub(super) fn put_held(
        &self,
        action: ActionRef,
        thread: ThreadId,
        slot: &Arc<Slot>,
        taken: Taken,
        doomed: Option<String>,
    ) -> Result<(), InvokeError> {
        let mut taken = Some(taken);
        let kept = self.inner.actions.with(|parts| {
            let Some(part) = parts.get_mut(&action.id).filter(|p| p.state == Part::Active) else { return false };
            if part.doomed.is_none() {
                part.doomed = doomed;
            }
            let t = taken.take().expect("taken once");
            let hold = part.holds.entry(slot.id).or_insert(Hold { slot: slot.clone(), guard: None, pending: None });
            hold.guard = Some(t.guard);
            hold.pending = t.pending;
            true
        });
        if kept {
            return Ok(());
        }
        let mut t = taken.expect("not kept");
        self.reload(slot, &mut t.guard)?;
        self.inner.waits.lock().expect("wait graph mutex").release(slot.id, thread);
        Err(InvokeError::Aborted { reason: format!("{action} ended while this call ran in it") })
    }

    /// Marks the action doomed here: it can only abort.
    pub(super) fn doom(&self, action: ActionRef, why: &InvokeError) {
        self.inner.actions.with(|parts| {
            if let Some(part) = parts.get_mut(&action.id) {
                part.doomed.get_or_insert_with(|| why.to_string());
            }
        });
    }

    /// Starts an atomic action coordinated here.
    pub(super) fn begin(&self) -> ActionRef {
        let action = ActionRef { id: uuid::Uuid::new_v4(), coordinator: self.inner.node };
        self.inner.actions.deciding.lock().expect("deciding mutex").insert(action.id);
        action
    }

    /// The atomic method returned (`outcome`) and `trail` says where the action went:
    /// commits it everywhere or aborts it everywhere. Returns what the caller gets.
    pub(super) async fn finish(
        &self,
        action: ActionRef,
        outcome: Result<Vec<u8>, InvokeError>,
        trail: ActionTrail,
    ) -> Result<Vec<u8>, InvokeError> {
        let result = self.decide_and_tell(action, &outcome, &trail).await;
        self.inner.actions.deciding.lock().expect("deciding mutex").remove(&action.id);
        match (outcome, result) {
            (Ok(value), Ok(())) => Ok(value),
            (Err(e), _) => Err(e),
            (Ok(_), Err(e)) => Err(e),
        }
    }

    async fn decide_and_tell(
        &self,
        action: ActionRef,
        outcome: &Result<Vec<u8>, InvokeError>,
        trail: &ActionTrail,
    ) -> Result<(), InvokeError> {
        let me = self.inner.node;
        let doomed = match outcome {
            Err(e) => Some(e.to_string()),
            Ok(_) => trail.doomed.clone().or_else(|| self.local_doom(action)),
        };
        let others: Vec<NodeId> = trail.joined.iter().copied().filter(|n| *n != me).collect();
        let mut votes = Vec::new();
        if doomed.is_none() {
            let asks = others.iter().map(|&node| async move {
                let ask = RequestBody::Action(ActionStep::Prepare { action });
                let vote = match self.inner.peers.send(node, ask, STEP_WITHIN).await {
                    Ok(ResponseBody::Voted(None)) => Vote::Yes,
                    Ok(ResponseBody::Voted(Some(why))) => Vote::No(why),
                    Ok(other) => Vote::No(format!("answered {other:?}")),
                    Err(e) => Vote::Lost(e.to_string()),
                };
                (node.to_string(), vote)
            });
            votes = futures::future::join_all(asks).await;
            self.action_fault(Role::Coordinator, atomic::Step::VotesAsked).await;
        }
        match atomic::decide(doomed.as_deref(), &votes) {
            Decision::Abort(reason) => {
                self.abort_everywhere(action).await;
                tracing::debug!(%action, %reason, "atomic action aborted");
                Err(InvokeError::Aborted { reason })
            }
            Decision::Commit => {
                // The decision and this node's changes in one store transaction: after a
                // crash both are there or neither is.
                let decided = key(DECIDED, action.id);
                let record = DecidedRecord { action, participants: others.clone() };
                let bytes = serde_json::to_vec(&record).map_err(InvokeError::storage)?;
                let intent = (!others.is_empty()).then_some((decided, Some(bytes)));
                match self.apply_here(action, intent).await {
                    Ok(()) => {}
                    // Written but perhaps not durable: neither outcome may be told. The
                    // participants stay prepared; this node stops (fail-stop) and its
                    // restart finds the decision (commit, told to all) or not (they ask,
                    // and hear abort).
                    Err(InvokeError::InDoubt { reason }) => {
                        return Err(InvokeError::InDoubt {
                            reason: format!(
                                "{action}'s decision to commit may not be on {me}'s disk ({reason}): it commits on \
                                 every node it touched or on none, settled when {me} restarts"
                            ),
                        })
                    }
                    Err(e) => {
                        // Nothing was applied here, no decision was recorded, nobody was told.
                        self.abort_everywhere(action).await;
                        return Err(InvokeError::Aborted { reason: format!("the coordinator's commit failed: {e}") });
                    }
                }
                self.action_fault(Role::Coordinator, atomic::Step::Decided).await;
                if !others.is_empty() {
                    self.tell_later(action, others);
                }
                Ok(())
            }
        }
    }

    fn local_doom(&self, action: ActionRef) -> Option<String> {
        self.inner.actions.with(|parts| parts.get(&action.id).and_then(|p| p.doomed.clone()))
    }

    /// Rolls the action back here and tells every other node, in the background (a failed
    /// call may have left parts on nodes the trail does not name); nodes that hold nothing
    /// of it ignore it. The caller hears of the abort at once; a node that misses the news
    /// aborts its part alone once its time is up.
    async fn abort_everywhere(&self, action: ActionRef) {
        self.roll_back(action);
        let engine = self.clone();
        tokio::spawn(async move {
            let me = engine.inner.node;
            let nodes = engine.inner.peers.nodes().await;
            let tells = nodes
                .iter()
                .filter(|n| n.id != me)
                .map(|n| engine.inner.peers.send(n.id, RequestBody::Action(ActionStep::Abort { action }), STEP_WITHIN));
            let _ = futures::future::join_all(tells).await;
        });
    }

    /// Tells the participants of a decided commit, each until it answers; then the
    /// decision record goes.
    fn tell_later(&self, action: ActionRef, participants: Vec<NodeId>) {
        let engine = self.clone();
        tokio::spawn(async move {
            let mut unheard = Vec::new();
            for node in participants {
                let mut told = false;
                for attempt in 0..TELL_TRIES {
                    if attempt > 0 {
                        tokio::time::sleep(TELL_EVERY).await;
                    }
                    let commit = RequestBody::Action(ActionStep::Commit { action });
                    if let Ok(ResponseBody::StepDone) = engine.inner.peers.send(node, commit, STEP_WITHIN).await {
                        told = true;
                        break;
                    }
                }
                if !told {
                    unheard.push(node);
                }
            }
            if !unheard.is_empty() {
                // The record stays: a participant that comes back asks, and must hear
                // committed (presumed abort would answer a missing record with abort); the
                // next restart of this node tells them again.
                tracing::warn!(%action, ?unheard, "participants did not acknowledge a commit; its decision record stays");
                return;
            }
            engine.action_fault(Role::Coordinator, atomic::Step::Told).await;
            if let Err(e) = engine.inner.store.intent_remove(&key(DECIDED, action.id)) {
                tracing::warn!(%action, "could not drop a decision record: {e}");
            }
        });
    }

    /// Applies this node's part of a committed action durably, then unlocks its objects.
    /// `intent`: the coordinator's decision, written with its changes; a participant's
    /// prepared intent goes with its changes instead.
    async fn apply_here(
        &self,
        action: ActionRef,
        intent: Option<(Vec<u8>, Option<Vec<u8>>)>,
    ) -> Result<(), InvokeError> {
        let Some(part) = self.inner.actions.with(|parts| parts.remove(&action.id)) else {
            // Nothing here (or applied already): a decision is still recorded.
            return self.inner.commits.apply_flushed(Unit::Action { commits: Vec::new(), intent }).await;
        };
        let intent = match (intent, part.state) {
            (None, Part::Prepared) => Some((key(PREPARED, action.id), None)),
            (intent, _) => intent,
        };
        let commits: Vec<Commit> = part.holds.values().filter_map(|h| h.pending.clone()).collect();
        // One unit of the group commit: in the same store transaction and flush as the
        // node's other writers.
        let result = self.inner.commits.apply_flushed(Unit::Action { commits, intent }).await;
        for (id, hold) in part.holds {
            if let Some(mut guard) = hold.guard {
                match (&result, &hold.pending) {
                    (Ok(()), Some(_)) => {
                        guard.version += 1;
                        guard.state = super::slot::SlotState::Live;
                    }
                    (Ok(()), None) => {}
                    (Err(_), _) => {
                        let _ = self.reload(&hold.slot, &mut guard);
                    }
                }
            }
            self.inner.waits.lock().expect("wait graph mutex").release(id, part.thread);
        }
        result
    }

    /// Rolls this node's part back: every object reloads its committed state and unlocks.
    fn roll_back(&self, action: ActionRef) {
        let Some(part) = self.inner.actions.with(|parts| parts.remove(&action.id)) else { return };
        for (id, hold) in part.holds {
            if let Some(mut guard) = hold.guard {
                if let Err(e) = self.reload(&hold.slot, &mut guard) {
                    tracing::warn!(%id, "could not reload an object an aborted action held: {e}");
                }
            }
            self.inner.waits.lock().expect("wait graph mutex").release(id, part.thread);
        }
        if part.state == Part::Prepared {
            let _ = self.inner.store.intent_remove(&key(PREPARED, action.id)).and_then(|()| self.inner.store.flush());
        }
    }

    /// A step of an action's commit, from another node.
    pub(super) async fn action_step(&self, step: ActionStep) -> Result<ResponseBody, InvokeError> {
        match step {
            ActionStep::Decision { action } => {
                let decided = self.inner.store.intent_get(&key(DECIDED, action.id))?.is_some();
                let running = self.inner.actions.deciding.lock().expect("deciding mutex").contains(&action.id);
                Ok(ResponseBody::Decided(atomic::answer(decided, running)))
            }
            ActionStep::Prepare { action } => {
                let doomed = self.local_doom(action);
                match self.on_event(action, Event::Prepare { doomed }).await? {
                    Effect::PrepareAndVoteYes => {
                        self.action_fault(Role::Participant, atomic::Step::Prepared).await;
                        Ok(ResponseBody::Voted(None))
                    }
                    Effect::Ack => Ok(ResponseBody::Voted(None)),
                    Effect::RollBackAndVoteNo(why) | Effect::VoteNo(why) => Ok(ResponseBody::Voted(Some(why))),
                    other => Err(InvokeError::storage(format!("unexpected {other:?} on a prepare"))),
                }
            }
            ActionStep::Commit { action } => match self.on_event(action, Event::Commit).await? {
                Effect::Refuse(why) => Err(InvokeError::invalid(why)),
                _ => {
                    self.action_fault(Role::Participant, atomic::Step::Applied).await;
                    Ok(ResponseBody::StepDone)
                }
            },
            ActionStep::Abort { action } => {
                self.on_event(action, Event::Abort).await?;
                Ok(ResponseBody::StepDone)
            }
        }
    }

    /// The administrator decides this node's prepared part of an action by hand: its
    /// coordinator is gone for good. Breaks atomicity if the coordinator decided otherwise,
    /// which is why only the administrator may, and why it is logged.
    pub(super) async fn resolve_by_hand(&self, id: &str, commit: bool) -> Result<ResponseBody, InvokeError> {
        let uuid: uuid::Uuid =
            id.parse().map_err(|e| InvokeError::invalid(format!("`{id}` is not an action id (a UUID): {e}")))?;
        let found = self.inner.actions.with(|parts| parts.get(&uuid).map(|p| (p.action, p.state)));
        let Some((action, state)) = found else {
            return Err(InvokeError::invalid(format!("no action {uuid} holds anything on {}", self.inner.node)));
        };
        if state != Part::Prepared {
            return Err(InvokeError::invalid(format!(
                "{action} is not prepared on {} (it is still running): it decides itself",
                self.inner.node
            )));
        }
        let outcome = if commit { Outcome::Committed } else { Outcome::Aborted };
        tracing::warn!(%action, ?outcome, "an action decided by hand by the administrator");
        self.on_event(action, Event::Answer(outcome)).await?;
        Ok(ResponseBody::Decided(outcome))
    }

    /// Runs the participant's rule on this node's part of `action` and does its effect.
    async fn on_event(&self, action: ActionRef, event: Event) -> Result<Effect, InvokeError> {
        let state = self.inner.actions.with(|parts| parts.get(&action.id).map_or(Part::Over, |p| p.state));
        // A part with an object out (a call of it still running here) cannot prepare.
        let busy = self
            .inner
            .actions
            .with(|parts| parts.get(&action.id).is_some_and(|p| p.holds.values().any(|h| h.guard.is_none())));
        let event = match event {
            Event::Prepare { doomed: None } if busy => {
                Event::Prepare { doomed: Some("a call of the action is still running on this node".into()) }
            }
            other => other,
        };
        let (next, effect) = atomic::participant(state, event);
        match &effect {
            Effect::PrepareAndVoteYes => {
                if let Err(e) = self.prepare_here(action).await {
                    self.roll_back(action);
                    return Ok(Effect::RollBackAndVoteNo(format!("its prepare failed: {e}")));
                }
            }
            Effect::Apply => self.apply_here(action, None).await?,
            Effect::RollBack | Effect::RollBackAndVoteNo(_) => self.roll_back(action),
            _ => {}
        }
        self.inner.actions.with(|parts| {
            if let Some(p) = parts.get_mut(&action.id) {
                if state == Part::Active && next == Part::Prepared {
                    // The decision should follow at once; if it does not, ask soon.
                    p.due = Instant::now() + ASK_AFTER;
                }
                p.state = next;
            }
        });
        Ok(effect)
    }

    /// Makes this node's part durable (its changes, as an intent), keeping its locks.
    async fn prepare_here(&self, action: ActionRef) -> Result<(), InvokeError> {
        let record = self.inner.actions.with(|parts| {
            parts.get(&action.id).map(|p| PreparedRecord {
                action,
                thread: p.thread,
                commits: p.holds.values().filter_map(|h| h.pending.clone()).collect(),
            })
        });
        let Some(record) = record else { return Err(InvokeError::invalid("the part is gone")) };
        let bytes = serde_json::to_vec(&record).map_err(InvokeError::storage)?;
        let intent = Some((key(PREPARED, action.id), Some(bytes)));
        self.inner.commits.apply_flushed(Unit::Action { commits: Vec::new(), intent }).await?;
        self.action_fault(Role::Participant, atomic::Step::Preparing).await;
        // The part may have been rolled back while the intent was being written (an abort
        // from the coordinator): then the intent goes too. Marked prepared under the same
        // lock as a rollback takes the part, so that one of the two drops the intent.
        let kept = self.inner.actions.with(|parts| match parts.get_mut(&action.id) {
            Some(p) => {
                p.state = Part::Prepared;
                true
            }
            None => false,
        });
        if !kept {
            self.inner.store.intent_remove(&key(PREPARED, action.id))?;
            return Err(InvokeError::invalid("the part was rolled back while it prepared"));
        }
        Ok(())
    }

    /// After a restart: prepared parts take their objects' locks again (before anything is
    /// served) and ask their coordinators; decided commits are told again.
    pub(super) fn recover_actions(&self) -> Result<(), InvokeError> {
        for (k, v) in self.inner.store.intents()? {
            if k.starts_with(PREPARED) {
                let record: PreparedRecord = serde_json::from_slice(&v).map_err(InvokeError::storage)?;
                tracing::info!(action = %record.action, objects = record.commits.len(), "holding a prepared action after a restart");
                let mut holds = HashMap::new();
                for commit in record.commits {
                    let slot = self.inner.table.get_or_load(commit.id, || self.activate(commit.id))?;
                    let mut guard = slot
                        .lock
                        .clone()
                        .try_write_owned()
                        .map_err(|_| InvokeError::storage("a prepared object was locked at start"))?;
                    // In memory, the object is as the action left it: what a commit makes
                    // durable must be what is served after it.
                    guard.instance = slot.class.instantiate(&commit.state)?;
                    self.inner.waits.lock().expect("wait graph mutex").hold(commit.id, record.thread);
                    holds.insert(commit.id, Hold { slot, guard: Some(guard), pending: Some(commit) });
                }
                let part = PartHere {
                    action: record.action,
                    thread: record.thread,
                    due: Instant::now(),
                    state: atomic::restart(true),
                    holds,
                    doomed: None,
                };
                self.inner.actions.with(|parts| parts.insert(record.action.id, part));
            } else if k.starts_with(DECIDED) {
                let record: DecidedRecord = serde_json::from_slice(&v).map_err(InvokeError::storage)?;
                self.tell_later(record.action, record.participants);
            }
        }
        Ok(())
    }

    /// Parts past their time, every `SWEEP_EVERY`: an active one (its coordinator never
    /// asked) aborts; a prepared one asks its coordinator and does what it answers.
    pub(super) fn sweep_later(&self) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(SWEEP_EVERY).await;
                // Stop with the engine: the task holds no reference between sweeps.
                let Some(inner) = weak.upgrade() else { return };
                Engine { inner }.sweep().await;
            }
        });
    }

    async fn sweep(&self) {
        let now = Instant::now();
        let due: Vec<ActionRef> =
            self.inner.actions.with(|parts| parts.values().filter(|p| p.due <= now).map(|p| p.action).collect());
        for action in due {
            if self.inner.actions.deciding.lock().expect("deciding mutex").contains(&action.id) {
                continue; // its coordinator is here, deciding
            }
            let effect = match self.on_event(action, Event::Timeout).await {
                Ok(effect) => effect,
                Err(e) => {
                    tracing::warn!(%action, "a part past its time: {e}");
                    continue;
                }
            };
            if effect == Effect::Ask {
                let ask = RequestBody::Action(ActionStep::Decision { action });
                if let Ok(ResponseBody::Decided(outcome)) =
                    self.inner.peers.send(action.coordinator, ask, STEP_WITHIN).await
                {
                    if let Err(e) = self.on_event(action, Event::Answer(outcome)).await {
                        tracing::warn!(%action, "acting on the coordinator's answer: {e}");
                    }
                    if outcome != Outcome::Pending {
                        tracing::info!(%action, ?outcome, "a prepared action was resolved by its coordinator");
                    }
                }
                self.inner.actions.with(|parts| {
                    if let Some(p) = parts.get_mut(&action.id) {
                        p.due = Instant::now() + SWEEP_EVERY;
                    }
                });
            }
        }
    }
}

impl Engine {
    /// An atomic method (or a call asked to be atomic) outside any action: the boundary of
    /// a new action coordinated here.
    pub(super) async fn run_atomic(
        &self,
        slot: &Arc<Slot>,
        method: &clouds::MethodInfo,
        inv: &protocol::Invocation,
        deadline: Instant,
    ) -> Result<(Vec<u8>, Vec<protocol::wire::Hop>, ActionTrail), InvokeError> {
        let action = self.begin();
        let mut inside = inv.clone();
        inside.thread.action = Some(action);
        inside.thread.atomic = false;
        let (outcome, hops, trail) = match self.run_in_action(slot, method, &inside, deadline, action).await {
            Ok((value, hops, trail)) => (Ok(value), hops, trail),
            Err(e) => (Err(e), Vec::new(), ActionTrail::default()),
        };
        let value = self.finish(action, outcome, trail).await?;
        Ok((value, hops, ActionTrail::default()))
    }

    /// One invocation inside `action`: on the object as the action holds it, or with its
    /// write lock taken now and kept by the action until the decision.
    pub(super) async fn run_in_action(
        &self,
        slot: &Arc<Slot>,
        method: &clouds::MethodInfo,
        inv: &protocol::Invocation,
        deadline: Instant,
        action: ActionRef,
    ) -> Result<(Vec<u8>, Vec<protocol::wire::Hop>, ActionTrail), InvokeError> {
        use super::slot::{admit, Admission, SlotState, Want};
        let thread = inv.thread.id;
        let mut trail = ActionTrail::default();
        trail.join(self.inner.node);
        if inv.thread.chain.iter().any(|f| f.object == slot.id) {
            // The action's hold is the thread's, and the thread is inside the object.
            let mut chain = inv.thread.chain_text();
            chain.push_str(&format!(" -> {}.{}", slot.id, method.name));
            let e = InvokeError::Reentrancy { object: slot.id, chain };
            self.doom(action, &e);
            return Err(e);
        }
        let mut taken = match self.take_held(action, thread, deadline, slot.id) {
            Some(taken) => taken,
            None => {
                let guard = match slot.lock.clone().try_write_owned() {
                    Ok(g) => g,
                    Err(_) => match self.wait_for(slot, inv, deadline, slot.lock.clone().write_owned()).await {
                        Ok(g) => g,
                        Err(e) => {
                            self.doom(action, &e);
                            return Err(e);
                        }
                    },
                };
                self.inner.waits.lock().expect("wait graph mutex").hold(slot.id, thread);
                Taken { guard, pending: None }
            }
        };
        let fresh = taken.pending.is_none();
        let recorded = match (&inv.call_id, fresh) {
            (Some(call), true) => self.inner.store.call_reply(slot.id, &call.0)?,
            _ => None,
        };
        loop {
            match admit(taken.guard.state, slot.id, Want::Write { recorded: recorded.is_some() }) {
                Admission::Run => break,
                Admission::Reload if fresh => self.reload(slot, &mut taken.guard)?,
                Admission::Reload => {
                    let e =
                        InvokeError::Aborted { reason: format!("an earlier call of {action} on {} failed", slot.id) };
                    self.put_held(action, thread, slot, taken, Some(e.to_string()))?;
                    return Err(e);
                }
                Admission::Replay => {
                    let (recorded, call) = (recorded.expect("recorded"), inv.call_id.as_ref().expect("a call id"));
                    let value = super::outcome::replay(recorded, inv.codec, &call.0)?;
                    self.put_held(action, thread, slot, taken, None)?;
                    return Ok((value, Vec::new(), trail));
                }
                Admission::Refuse(e) => {
                    // Moved or deleted while the thread waited: the action does not hold it.
                    if fresh {
                        drop(taken);
                        self.inner.waits.lock().expect("wait graph mutex").release(slot.id, thread);
                    } else {
                        self.put_held(action, thread, slot, taken, Some(e.to_string()))?;
                    }
                    return Err(e);
                }
            }
        }
        let write = method.access == clouds::Access::Write;
        let mut backend = self.backend(slot, method, inv, deadline);
        let earlier = taken.pending.as_ref().map(|p| p.pages.clone()).unwrap_or_default();
        backend.writes = Some(std::sync::Mutex::new(super::writeset::WriteSet::from_changes(earlier)));
        let backend = Arc::new(backend);
        let ctx = clouds::Ctx::new(backend.clone());
        if write {
            // Until it returns, memory may be half changed.
            taken.guard.state = SlotState::Stale;
        }
        let outcome = if write {
            let run = taken.guard.instance.write(&ctx, method, inv.codec, &inv.args);
            super::outcome::guarded(run, inv, method, deadline).await
        } else {
            let run = taken.guard.instance.read(&ctx, method, inv.codec, &inv.args);
            super::outcome::guarded(run, inv, method, deadline).await
        };
        drop(ctx);
        trail.merge(backend.take_trail());
        let value = match outcome {
            Ok(value) => value,
            Err(e) => {
                self.put_held(action, thread, slot, taken, Some(e.to_string()))?;
                return Err(e);
            }
        };
        if write {
            let pages = backend
                .writes
                .as_ref()
                .map(|w| std::mem::take(&mut *w.lock().expect("write set mutex")))
                .unwrap_or_default()
                .into_changes();
            let encoded = taken.guard.instance.encode();
            let pulled = match &encoded {
                Ok(_) => self.pull_written(slot.id, pages.iter().map(|(k, _)| k.as_slice())).await,
                Err(_) => Ok(()),
            };
            let state = match encoded.and_then(|s| pulled.map(|()| s)) {
                Ok(state) => state,
                Err(e) => {
                    self.put_held(action, thread, slot, taken, Some(e.to_string()))?;
                    return Err(e);
                }
            };
            let call = inv
                .call_id
                .as_ref()
                .map(|c| (c.0.clone(), super::outcome::record_reply(inv.codec, &value)))
                .or_else(|| taken.pending.as_ref().and_then(|p| p.call.clone()));
            let (base_version, epoch) = (taken.guard.version, taken.guard.epoch);
            taken.pending = Some(Commit { id: slot.id, base_version, state, pages, call, epoch });
            taken.guard.state = SlotState::Live;
        }
        self.put_held(action, thread, slot, taken, trail.doomed.clone())?;
        Ok((value, backend.take_hops(), trail))
    }
}
