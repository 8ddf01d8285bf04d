//! Draining a node for maintenance, and keeping a drained node's home records.
//!
//! A drain, in steps: the node becomes `draining` (it takes nothing new, durably, and a
//! restart resumes the drain); every object it holds moves to the node the placement
//! policy picks (least loaded of those that take it), a few at a time, while calls go on
//! (each move is a live migration); an object that cannot move (no other node has its
//! class, the root directory) is reported with the reason, and stays. Then the moves out
//! must have told their homes where the objects went (the migrate-out intents are gone).
//! Last, the **handover**: under the `homes` lock (which every home-record change takes),
//! the node's home records, the forwarding entries of the objects whose home it is (and
//! of the drained homes it keeps), go to a keeper, a live node that takes new objects; the
//! keeper stores them and publishes by gossip that it keeps them; this node remembers,
//! durably, that it handed them over and relays any later home update to the keeper, and
//! reports the drain done once every other live node's view names the keeper (so that a
//! node stopped right after its drain leaves no caller asking it for a home record).
//! From then on callers ask the keeper for those objects (`Locations::home_of`), and the
//! node can be stopped for good.
//!
//! `--undo` (or any other mode) stops the moves and takes the home records back. A drain
//! whose moves do not end in time (their homes not told, a lazy move's pages not pulled)
//! or whose handover finds no keeper stops as `failed`, with the reason; the node stays
//! draining, and starting the drain again takes up where it stopped.

use super::Engine;
use clouds::{InvokeError, NodeId, ObjectId};
use protocol::decision::{DecisionKind, DrainReport, DrainState as Phase, Drained, HomeRecord};
use protocol::migration::MigrationReport;
use protocol::wire::MigrationStep;
use protocol::{NodeMode, NodeView, RequestBody, ResponseBody};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use tokio::time::{Duration, Instant};

/// Node metadata: a drain is under way (resumed after a restart), with the keeper it
/// chose once it did (`Draining`).
const DRAINING_KEY: &str = "drain";
/// Node metadata: where this node's home records went (`Handed`).
const HANDED_KEY: &str = "handed-to";
/// Node metadata: the drained homes whose records this node keeps.
const KEEPS_KEY: &str = "keeps";

/// Moves under way at once during a drain.
const PARALLEL: usize = 4;
/// Passes over what is left, for objects that could not move yet (held by an action,
/// finishing a lazy move).
const PASSES: u32 = 5;
const PASS_PAUSE: Duration = Duration::from_millis(500);
/// How long the drain waits for its moves to have told their homes.
const HOMES_TOLD_WITHIN: Duration = Duration::from_secs(60);
/// How long a finished handover waits for every live node to hear of the keeper.
const HEARD_WITHIN: Duration = Duration::from_secs(30);
/// Home records per `Adopt` message.
const RECORDS_PER_STEP: usize = 4096;
const STEP_WITHIN: Duration = Duration::from_secs(10);

/// A drain under way, as its node records it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Draining {
    /// The node chosen to keep the home records: once chosen, every try (and a restart)
    /// hands them to it, so that no two nodes ever claim them.
    keeper: Option<NodeId>,
}

/// How often, and how long apart, a handover is tried (its keeper may be restarting).
const HANDOVER_TRIES: u32 = 40;
const HANDOVER_PAUSE: Duration = Duration::from_millis(250);

/// The home records this node handed over, and to whom.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Handed {
    to: NodeId,
    /// The homes whose records went: this node's, and those it kept.
    homes: Vec<NodeId>,
}

pub(super) struct DrainState {
    /// std `Mutex`es: one operation at a time, never across an `.await`.
    report: Mutex<Option<(DrainReport, Instant)>>,
    /// Bumped by every start and end: a drain task whose number is past stops.
    run: AtomicU64,
    handed: Mutex<Option<Handed>>,
    keeps: Mutex<BTreeSet<NodeId>>,
    /// The (home, keeper) pairs gossip reported last.
    seen: Mutex<Vec<(NodeId, NodeId)>>,
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: Option<Vec<u8>>) -> Result<Option<T>, InvokeError> {
    bytes.map(|b| serde_json::from_slice(&b)).transpose().map_err(InvokeError::storage)
}

impl DrainState {
    pub(super) fn load(store: &dyn crate::store::Store) -> Result<DrainState, InvokeError> {
        Ok(DrainState {
            report: Mutex::new(None),
            run: AtomicU64::new(0),
            handed: Mutex::new(decode(store.meta_get(HANDED_KEY)?)?),
            keeps: Mutex::new(decode(store.meta_get(KEEPS_KEY)?)?.unwrap_or_default()),
            seen: Mutex::new(Vec::new()),
        })
    }
}

impl Engine {
    /// Starts draining this node (or reports the drain under way).
    pub async fn drain(&self) -> Result<DrainReport, InvokeError> {
        self.start_drain()
    }

    fn start_drain(&self) -> Result<DrainReport, InvokeError> {
        if let Some(report) = self.running_drain() {
            return Ok(report);
        }
        self.store_mode(NodeMode::Draining)?;
        if self.inner.store.meta_get(DRAINING_KEY)?.is_none() {
            self.put_draining(&Draining::default())?;
        }
        let mut total = 0;
        self.each_live(|_, _| {
            total += 1;
            Ok(())
        })?;
        let report = DrainReport {
            node: self.inner.node,
            state: Phase::Moving,
            total,
            objects: Vec::new(),
            homes_to: None,
            home_records: 0,
            elapsed_ms: 0,
            problem: None,
        };
        *self.inner.drain.report.lock().expect("drain mutex") = Some((report.clone(), Instant::now()));
        let run = self.inner.drain.run.fetch_add(1, Ordering::AcqRel) + 1;
        let engine = self.clone();
        tokio::spawn(async move { engine.run_drain(run).await });
        tracing::info!(node = %self.inner.node, objects = total, "drain started");
        Ok(report)
    }

    /// The drain under way, if one is.
    fn running_drain(&self) -> Option<DrainReport> {
        let report = self.inner.drain.report.lock().expect("drain mutex");
        report.as_ref().filter(|(r, _)| matches!(r.state, Phase::Moving | Phase::HandingOver)).map(|(r, _)| r.clone())
    }

    fn put_draining(&self, d: &Draining) -> Result<(), InvokeError> {
        self.inner.store.meta_put(DRAINING_KEY, &serde_json::to_vec(d).map_err(InvokeError::storage)?)?;
        Ok(self.inner.store.flush()?)
    }

    /// After a restart: a drain that was under way goes on.
    pub(super) fn resume_drain(&self) -> Result<(), InvokeError> {
        if self.inner.store.meta_get(DRAINING_KEY)?.is_some() && self.mode() == NodeMode::Draining {
            tracing::info!(node = %self.inner.node, "resuming the drain under way before the restart");
            self.start_drain()?;
        }
        Ok(())
    }

    /// How the drain goes.
    pub fn drain_report(&self) -> Result<DrainReport, InvokeError> {
        let report = self.inner.drain.report.lock().expect("drain mutex");
        match report.as_ref() {
            Some((r, started)) => {
                let mut r = r.clone();
                if matches!(r.state, Phase::Moving | Phase::HandingOver) {
                    r.elapsed_ms = started.elapsed().as_millis() as u64;
                }
                Ok(r)
            }
            None => Err(InvokeError::invalid(format!(
                "{} is not being drained (since it started); `clouds drain {}` starts a drain",
                self.inner.node, self.inner.node
            ))),
        }
    }

    fn update_report(&self, run: u64, f: impl FnOnce(&mut DrainReport)) -> bool {
        if self.inner.drain.run.load(Ordering::Acquire) != run {
            return false;
        }
        if let Some((r, started)) = self.inner.drain.report.lock().expect("drain mutex").as_mut() {
            f(r);
            r.elapsed_ms = started.elapsed().as_millis() as u64;
        }
        true
    }

    async fn run_drain(&self, run: u64) {
        let me = self.inner.node;
        let mut dealt: BTreeSet<ObjectId> = BTreeSet::new();
        for pass in 1..=PASSES {
            let last = pass == PASSES;
            let views = self.inner.peers.nodes().await;
            let mut left = Vec::new();
            if let Err(e) = self.each_live(|id, class| {
                if !dealt.contains(&id) {
                    left.push((id, class.to_string()));
                }
                Ok(())
            }) {
                self.update_report(run, |r| r.problem = Some(format!("cannot list the objects: {e}")));
                return;
            }
            if left.is_empty() {
                break;
            }
            let mut moves = tokio::task::JoinSet::new();
            let mut queue = left.into_iter();
            loop {
                while moves.len() < PARALLEL {
                    let Some((id, class)) = queue.next() else { break };
                    if Some(id) == self.inner.local_root {
                        dealt.insert(id);
                        let reason = "the root directory stays on the root node".to_string();
                        self.update_report(run, |r| r.objects.push(Drained { id, class, to: None, reason }));
                        continue;
                    }
                    let to = match self.target_for(&class, None, &views) {
                        Ok(to) => to,
                        Err(why) => {
                            if last {
                                dealt.insert(id);
                                self.update_report(run, |r| {
                                    r.objects.push(Drained { id, class, to: None, reason: why })
                                });
                            }
                            continue;
                        }
                    };
                    let engine = self.clone();
                    moves.spawn(async move {
                        let reason = format!("{me} is being drained; {to} is the least loaded node that takes it");
                        let moved: Result<MigrationReport, InvokeError> =
                            engine.move_auto(id, &class, to, DecisionKind::Drained, reason).await;
                        (id, class, to, moved)
                    });
                }
                let Some(done) = moves.join_next().await else { break };
                let Ok((id, class, to, moved)) = done else { continue };
                if self.inner.drain.run.load(Ordering::Acquire) != run {
                    return;
                }
                match moved {
                    Ok(_) => {
                        dealt.insert(id);
                        let reason = "moved".to_string();
                        self.update_report(run, |r| r.objects.push(Drained { id, class, to: Some(to), reason }));
                    }
                    // Gone meanwhile (deleted): nothing to move.
                    Err(InvokeError::NotFound { .. }) => {
                        dealt.insert(id);
                    }
                    Err(e) if last => {
                        dealt.insert(id);
                        let reason = e.to_string();
                        self.update_report(run, |r| r.objects.push(Drained { id, class, to: None, reason }));
                    }
                    Err(_) => {}
                }
            }
            if self.inner.drain.run.load(Ordering::Acquire) != run {
                return;
            }
            tokio::time::sleep(PASS_PAUSE).await;
        }
        if !self.update_report(run, |r| r.state = Phase::HandingOver) {
            return;
        }
        if let Err(e) = self.homes_told(run).await {
            self.update_report(run, |r| (r.state, r.problem) = (Phase::Failed, Some(e.to_string())));
            tracing::warn!(node = %me, "the drain stopped short: {e}");
            return;
        }
        for _ in 0..HANDOVER_TRIES {
            match self.hand_over(run).await {
                Ok(Some((to, n))) => {
                    let unheard = self.keeper_heard(run, to).await;
                    let _ = self.inner.store.meta_remove(DRAINING_KEY).and_then(|()| self.inner.store.flush());
                    let problem = (!unheard.is_empty()).then(|| {
                        let nodes = unheard.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
                        format!("{nodes} had not heard that {to} keeps the home records yet (gossip tells them)")
                    });
                    self.update_report(run, |r| {
                        (r.state, r.homes_to, r.home_records, r.problem) = (Phase::Done, Some(to), n, problem);
                    });
                    tracing::info!(node = %me, keeper = %to, records = n, "drain done");
                    return;
                }
                Ok(None) => return,
                Err(e) => {
                    let problem = format!("the home records could not be handed over yet: {e}");
                    if !self.update_report(run, |r| r.problem = Some(problem)) {
                        return;
                    }
                }
            }
            tokio::time::sleep(HANDOVER_PAUSE).await;
        }
        self.update_report(run, |r| r.state = Phase::Failed);
        tracing::warn!(node = %me, "the drain stopped short: the home records could not be handed over");
    }

    /// Waits until every move out of this node has told the object's home.
    async fn homes_told(&self, run: u64) -> Result<(), InvokeError> {
        let deadline = Instant::now() + HOMES_TOLD_WITHIN;
        loop {
            let open = self.open_moves_out()?;
            if open == 0 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(InvokeError::invalid(format!(
                    "{open} moves out of {} have not told their objects' homes yet (or their targets have \
                     not pulled every page of a lazy move); `clouds drain {}` tries again",
                    self.inner.node, self.inner.node.0
                )));
            }
            if self.inner.drain.run.load(Ordering::Acquire) != run {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits (at most `HEARD_WITHIN`) until every other live node knows, from gossip, that
    /// `keeper` keeps the records this node handed over, so that once the drain is done
    /// this node can stop without a call anywhere going to it for them. Returns the nodes
    /// that had not heard by then.
    async fn keeper_heard(&self, run: u64, keeper: NodeId) -> Vec<NodeId> {
        let me = self.inner.node;
        let homes = self.inner.drain.handed.lock().expect("handed mutex").as_ref().map(|h| h.homes.clone());
        let homes = homes.unwrap_or_default();
        let deadline = Instant::now() + HEARD_WITHIN;
        loop {
            let mut unheard = Vec::new();
            for v in self.inner.peers.nodes().await {
                if v.id == me || v.id == keeper || v.state == protocol::Liveness::Dead {
                    continue;
                }
                let heard = match self.inner.peers.send(v.id, RequestBody::Nodes, STEP_WITHIN).await {
                    Ok(ResponseBody::Nodes(seen)) => {
                        let keepers = protocol::view::keepers(&seen);
                        homes.iter().all(|h| keepers.contains(&(*h, keeper)))
                    }
                    _ => false,
                };
                if !heard {
                    unheard.push(v.id);
                }
            }
            if unheard.is_empty() || Instant::now() >= deadline || self.inner.drain.run.load(Ordering::Acquire) != run {
                return unheard;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Hands this node's home records (and those it keeps for drained nodes) to a keeper.
    /// `None`: the drain was ended meanwhile.
    async fn hand_over(&self, run: u64) -> Result<Option<(NodeId, u64)>, InvokeError> {
        let me = self.inner.node;
        let mut draining: Draining = decode(self.inner.store.meta_get(DRAINING_KEY)?)?.unwrap_or_default();
        let keeper = match draining.keeper {
            Some(k) => k,
            None => {
                let views = self.inner.peers.nodes().await;
                let k = views
                    .iter()
                    .filter(|v| v.id != me && v.takes_new())
                    .min_by(|a, b| a.busy().total_cmp(&b.busy()).then(a.id.cmp(&b.id)))
                    .map(|v| v.id)
                    .ok_or_else(|| InvokeError::invalid("no live node takes new objects to keep the home records"))?;
                draining.keeper = Some(k);
                self.put_draining(&draining)?;
                k
            }
        };
        let _homes = self.inner.homes.lock().await;
        if self.inner.drain.run.load(Ordering::Acquire) != run {
            return Ok(None);
        }
        let mut homes: Vec<NodeId> = self.keeps();
        homes.push(me);
        let mut count = 0u64;
        for home in &homes {
            let records = self.home_records(*home)?;
            count += records.len() as u64;
            for part in records.chunks(RECORDS_PER_STEP) {
                let body = RequestBody::Adopt { home: *home, records: part.to_vec() };
                match self.inner.peers.send(keeper, body, STEP_WITHIN).await? {
                    ResponseBody::StepDone => {}
                    other => return Err(InvokeError::storage(format!("adopt was answered with {other:?}"))),
                }
            }
        }
        let handed = Handed { to: keeper, homes: homes.clone() };
        self.inner.store.meta_put(HANDED_KEY, &serde_json::to_vec(&handed).map_err(InvokeError::storage)?)?;
        self.inner.store.meta_remove(KEEPS_KEY)?;
        self.inner.store.flush()?;
        *self.inner.drain.handed.lock().expect("handed mutex") = Some(handed);
        self.inner.drain.keeps.lock().expect("keeps mutex").clear();
        self.refresh_keepers(&[]);
        self.handover_fault(super::faults::Role::Drained, super::faults::Handover::Handed).await;
        let list = homes.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        let reason = format!("{count} home records of {list} went to {keeper}: callers find those objects there");
        let e = super::decisions::Entry {
            kind: DecisionKind::HandedOver,
            object: None,
            class: "",
            from: Some(me),
            to: Some(keeper),
            reason,
        };
        self.inner.decisions.record(me, e);
        Ok(Some((keeper, count)))
    }

    /// The home records this store holds of the objects whose home is `home`: where each is.
    fn home_records(&self, home: NodeId) -> Result<Vec<HomeRecord>, InvokeError> {
        let me = self.inner.node;
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let ids = self.inner.store.list(after, 1024)?;
            let Some(last) = ids.last().copied() else { return Ok(out) };
            for id in ids.into_iter().filter(|id| id.home() == home) {
                match self.inner.store.get(id)? {
                    Some(crate::store::Record::Forward { to, epoch }) => out.push(HomeRecord { id, at: to, epoch }),
                    Some(crate::store::Record::Live { epoch, .. }) => out.push(HomeRecord { id, at: me, epoch }),
                    None => {}
                }
            }
            after = Some(last);
        }
    }

    /// Ends the drain (`--undo`, or another mode set): the moves stop, the home records
    /// come back, and the node takes `mode`.
    pub(super) async fn undrain(&self, mode: NodeMode) -> Result<DrainReport, InvokeError> {
        self.inner.drain.run.fetch_add(1, Ordering::AcqRel);
        // Under the lock: a handover under way has finished (or seen the run end) first.
        let homes = self.inner.homes.lock().await;
        let handed = self.inner.drain.handed.lock().expect("handed mutex").clone();
        if let Some(handed) = handed {
            for home in &handed.homes {
                let body = RequestBody::Reclaim { home: *home };
                let records = match self.inner.peers.send(handed.to, body, STEP_WITHIN).await {
                    Ok(ResponseBody::HomeRecords(r)) => r,
                    Ok(other) => return Err(InvokeError::storage(format!("reclaim was answered with {other:?}"))),
                    Err(e) => {
                        return Err(InvokeError::Unavailable {
                            node: handed.to.to_string(),
                            reason: format!("it keeps the home records of {home} and must give them back first: {e}"),
                        })
                    }
                };
                self.put_home_records(&records)?;
                if *home != self.inner.node {
                    self.inner.drain.keeps.lock().expect("keeps mutex").insert(*home);
                }
            }
            self.persist_keeps()?;
            self.inner.store.meta_remove(HANDED_KEY)?;
            *self.inner.drain.handed.lock().expect("handed mutex") = None;
        }
        drop(homes);
        self.inner.store.meta_remove(DRAINING_KEY)?;
        self.store_mode(mode)?;
        self.refresh_keepers(&[]);
        let mut report = self.inner.drain.report.lock().expect("drain mutex");
        let (r, started) = report.get_or_insert_with(|| {
            let r = DrainReport {
                node: self.inner.node,
                state: Phase::Undone,
                total: 0,
                objects: Vec::new(),
                homes_to: None,
                home_records: 0,
                elapsed_ms: 0,
                problem: None,
            };
            (r, Instant::now())
        });
        r.state = Phase::Undone;
        r.homes_to = None;
        r.elapsed_ms = started.elapsed().as_millis() as u64;
        tracing::info!(node = %self.inner.node, %mode, "drain ended");
        Ok(r.clone())
    }

    /// Stores home records (each object's forwarding entry) unless the object lives here.
    fn put_home_records(&self, records: &[HomeRecord]) -> Result<(), InvokeError> {
        for r in records {
            if !matches!(self.inner.store.get(r.id)?, Some(crate::store::Record::Live { .. }))
                && r.at != self.inner.node
            {
                self.inner.store.put_forward(r.id, r.at, r.epoch)?;
            }
        }
        Ok(())
    }

    fn persist_keeps(&self) -> Result<(), InvokeError> {
        let keeps = self.inner.drain.keeps.lock().expect("keeps mutex").clone();
        self.inner.store.meta_put(KEEPS_KEY, &serde_json::to_vec(&keeps).map_err(InvokeError::storage)?)?;
        Ok(self.inner.store.flush()?)
    }

    /// A drained node hands its home records (of `home`'s objects) to this node.
    pub(super) async fn adopt(&self, home: NodeId, records: Vec<HomeRecord>) -> Result<(), InvokeError> {
        if home == self.inner.node {
            return Err(InvokeError::invalid(format!("{home} cannot keep its own home records for itself")));
        }
        let _homes = self.inner.homes.lock().await;
        self.put_home_records(&records)?;
        self.inner.drain.keeps.lock().expect("keeps mutex").insert(home);
        self.persist_keeps()?;
        self.refresh_keepers(&[]);
        tracing::info!(%home, records = records.len(), "adopted home records");
        self.handover_fault(super::faults::Role::Keeper, super::faults::Handover::Adopted).await;
        Ok(())
    }

    /// The drained node `home` takes its home records back.
    pub(super) async fn reclaim(&self, home: NodeId) -> Result<Vec<HomeRecord>, InvokeError> {
        let _homes = self.inner.homes.lock().await;
        if !self.inner.drain.keeps.lock().expect("keeps mutex").contains(&home) {
            return Err(InvokeError::invalid(format!("{} keeps no home records of {home}", self.inner.node)));
        }
        let records = self.home_records(home)?;
        self.inner.drain.keeps.lock().expect("keeps mutex").remove(&home);
        self.persist_keeps()?;
        self.refresh_keepers(&[]);
        Ok(records)
    }

    /// The drained homes whose records this node keeps.
    pub fn keeps(&self) -> Vec<NodeId> {
        self.inner.drain.keeps.lock().expect("keeps mutex").iter().copied().collect()
    }

    /// Where home updates of `home`'s objects go now that this node handed them over.
    fn handed_to(&self, home: NodeId) -> Option<NodeId> {
        let handed = self.inner.drain.handed.lock().expect("handed mutex");
        handed.as_ref().filter(|h| h.homes.contains(&home)).map(|h| h.to)
    }

    /// Learns who keeps drained nodes' home records: from `views` (if any; else as last
    /// seen), then this node's own keeping and handover, which it knows best.
    pub(super) fn refresh_keepers(&self, views: &[NodeView]) {
        let mut seen = self.inner.drain.seen.lock().expect("seen mutex");
        if !views.is_empty() {
            *seen = protocol::view::keepers(views);
        }
        let me = self.inner.node;
        let mut pairs: Vec<(NodeId, NodeId)> = seen.clone();
        pairs.retain(|(h, _)| *h != me || self.handed_to(me).is_some());
        pairs.extend(self.keeps().into_iter().map(|h| (h, me)));
        if let Some(h) = self.inner.drain.handed.lock().expect("handed mutex").as_ref() {
            pairs.extend(h.homes.iter().map(|home| (*home, h.to)));
        }
        self.inner.locations.set_keepers(pairs);
    }

    /// A home update (`MigrationStep::Home`): applied where the object's home records are
    /// kept, relayed to the keeper by a node that handed them over.
    pub(super) async fn home_step(&self, id: ObjectId, at: NodeId) -> Result<(), InvokeError> {
        let me = self.inner.node;
        let homes = self.inner.homes.lock().await;
        if let Some(keeper) = self.handed_to(id.home()) {
            drop(homes);
            let step = RequestBody::Migration(MigrationStep::Home { id, at });
            return match self.inner.peers.send(keeper, step, STEP_WITHIN).await? {
                ResponseBody::StepDone => Ok(()),
                other => Err(InvokeError::storage(format!("a home update was answered with {other:?}"))),
            };
        }
        if id.home() != me && !self.inner.drain.keeps.lock().expect("keeps mutex").contains(&id.home()) {
            return Err(InvokeError::invalid(format!(
                "{me} keeps no home records of {}'s objects (object {id})",
                id.home()
            )));
        }
        match self.inner.store.get(id)? {
            // A late update from an earlier move: the object has come back here since.
            Some(crate::store::Record::Live { .. }) => {
                tracing::debug!(%id, %at, "a home update for an object that lives here again: ignored");
                return Ok(());
            }
            Some(crate::store::Record::Forward { epoch, .. }) => self.inner.store.put_forward(id, at, epoch)?,
            None => self.inner.store.put_forward(id, at, 0)?,
        }
        self.inner.store.flush()?;
        drop(homes);
        self.inner.locations.remember(id, at);
        self.fault(super::faults::Role::Home, crate::migration::Step::HomeUpdated).await;
        Ok(())
    }
}
