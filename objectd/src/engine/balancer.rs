//! The node's own object moves: a periodic task that reads what each activated object
//! cost (`usage`), and then, by the node's mode,
//! - a workstation whose owner is present evicts its guests (objects placed or moved there
//!   from elsewhere): each to its home if the home takes it, otherwise to the least loaded
//!   server;
//! - otherwise the node rebalances (`balance::rebalance`) and puts objects next to their
//!   partners (`balance::affinity`), unless the node's config turns either off.
//!
//! Decisions are pure (`crate::balance`); this task executes them (`Engine::move_auto`) and
//! records each in the decision log. It also answers `clouds top` (`Hot`) and keeps the
//! owner's activity, and refreshes who keeps drained nodes' home records.

use super::usage::Rates;
use super::Engine;
use crate::balance::{self, ObjectStat, Pending, Situation};
use crate::config::Config;
use clouds::{InvokeError, NodeId, ObjectId};
use protocol::decision::{DecisionKind, ObjectLoad};
use protocol::{Load, NodeMode, NodeView, Placement};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::time::{Duration, Instant};

/// What the node publishes by gossip about itself.
#[derive(Clone, Debug)]
pub struct Published {
    pub load: Load,
    pub mode: NodeMode,
    pub owner_present: bool,
    pub keeps_homes: Vec<NodeId>,
}

/// The time constant of the per-object rates (as the node's own, `meter::SMOOTHING`).
const TAU: Duration = super::meter::SMOOTHING;

pub(super) struct State {
    rebalance: bool,
    affinity: bool,
    every: Duration,
    cooldown: Duration,
    owner_away: Duration,
    settings: balance::Settings,
    started: Instant,
    /// std `Mutex`es below: one operation at a time, never across an `.await`.
    readings: Mutex<Readings>,
    /// When each object last arrived here or was moved automatically: its cooldown.
    moved_at: Mutex<HashMap<ObjectId, Instant>>,
    /// The last owner activity reported (a workstation's); none since the start: away.
    owner_active: Mutex<Option<Instant>>,
    pending: Mutex<Pending>,
}

struct Readings {
    at: Instant,
    rates: HashMap<ObjectId, Rates>,
}

impl State {
    pub(super) fn new(config: &Config) -> State {
        State {
            rebalance: config.rebalance,
            affinity: config.affinity,
            every: Duration::from_millis(config.rebalance_every_ms),
            cooldown: Duration::from_millis(config.move_cooldown_ms),
            owner_away: Duration::from_millis(config.owner_away_ms),
            settings: balance::Settings {
                margin: config.rebalance_margin,
                min_busy_ms: config.rebalance_min_busy_ms,
                ..balance::Settings::default()
            },
            started: Instant::now(),
            readings: Mutex::new(Readings { at: Instant::now(), rates: HashMap::new() }),
            moved_at: Mutex::new(HashMap::new()),
            owner_active: Mutex::new(None),
            pending: Mutex::new(Pending::new(TAU)),
        }
    }

    /// An object arrived here, or left: it stays put for the cooldown.
    pub(super) fn moved(&self, id: ObjectId) {
        self.moved_at.lock().expect("moved mutex").insert(id, Instant::now());
    }

    fn cooling(&self, id: ObjectId) -> bool {
        self.moved_at.lock().expect("moved mutex").get(&id).is_some_and(|at| at.elapsed() < self.cooldown)
    }
}

impl Engine {
    /// Starts the balancer's task; it ends with the engine.
    pub(super) fn balance_later(&self) {
        let weak = Arc::downgrade(&self.inner);
        let every = self.inner.balance.every;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                Engine { inner }.balance_round().await;
            }
        });
    }

    /// One round: read the objects' rates, then evict, or rebalance and group partners.
    async fn balance_round(&self) {
        let views = self.inner.peers.nodes().await;
        self.refresh_keepers(&views);
        self.read_rates();
        let mode = self.mode();
        if mode == NodeMode::Workstation && self.owner_present() {
            self.evict(&views).await;
            return;
        }
        if mode == NodeMode::Draining {
            return;
        }
        let state = &self.inner.balance;
        if !state.rebalance && !state.affinity {
            return;
        }
        let objects = match self.object_stats() {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!("the balancer could not read its objects: {e}");
                return;
            }
        };
        let now = state.started.elapsed();
        let (my_busy, _, _) = self.inner.meter.read();
        let copy_rate = f64::from_bits(self.inner.copy_rate.load(std::sync::atomic::Ordering::Relaxed));
        let moves = {
            let mut pending = state.pending.lock().expect("pending mutex");
            pending.expire(now);
            let dice = u64::from_le_bytes(clouds::ThreadId::new().0.as_bytes()[..8].try_into().expect("8 bytes"));
            let at = Situation { me: self.inner.node, my_busy, views: &views, pending: &pending, now, dice };
            let mut moves = if state.rebalance {
                balance::rebalance(&at, &objects, &state.settings, copy_rate)
            } else {
                Vec::new()
            };
            if state.affinity && moves.is_empty() {
                moves = balance::affinity(&at, &objects, &state.settings);
            }
            moves
        };
        for m in moves {
            let slot = self.inner.table.peek(m.id);
            if self.move_auto(m.id, &m.class, m.to, m.kind, m.reason).await.is_ok() {
                // What the node's smoothed busy time holds of the object now that it has
                // left (it kept counting while the move ran): the part still to fade.
                let busy = slot.map_or(m.busy_ms, |slot| self.rate_now(&slot).busy_ms);
                let mut pending = state.pending.lock().expect("pending mutex");
                pending.moved(self.inner.node, m.to, busy.max(m.busy_ms), state.started.elapsed());
            }
        }
    }

    /// The smoothed rates of one object up to now, without storing the reading.
    fn rate_now(&self, slot: &super::table::Slot) -> Rates {
        let r = self.inner.balance.readings.lock().expect("readings mutex");
        let mut rate = r.rates.get(&slot.id).cloned().unwrap_or_default();
        rate.read(&slot.usage, r.at.elapsed(), TAU);
        rate
    }

    /// Reads every activated object's counters into its smoothed rates.
    fn read_rates(&self) {
        let slots = self.inner.table.all();
        let mut r = self.inner.balance.readings.lock().expect("readings mutex");
        let dt = r.at.elapsed();
        r.at = Instant::now();
        let live: std::collections::HashSet<ObjectId> = slots.iter().map(|s| s.id).collect();
        r.rates.retain(|id, _| live.contains(id));
        for slot in slots {
            r.rates.entry(slot.id).or_default().read(&slot.usage, dt, TAU);
        }
    }

    /// What the pure decisions need of each object with any recent load.
    fn object_stats(&self) -> Result<Vec<ObjectStat>, InvokeError> {
        type Loaded = (ObjectId, f64, Vec<(ObjectId, NodeId, f64)>);
        let loads: Vec<Loaded> = {
            let r = self.inner.balance.readings.lock().expect("readings mutex");
            r.rates
                .iter()
                .filter(|(_, rate)| rate.busy_ms > 0.01 || !rate.partners.is_empty())
                .map(|(id, rate)| {
                    let partners = rate.partners.iter().map(|(o, (n, c))| (*o, *n, *c)).collect();
                    (*id, rate.busy_ms, partners)
                })
                .collect()
        };
        let mut out = Vec::with_capacity(loads.len());
        for (id, busy_ms, partners) in loads {
            let Some(slot) = self.inner.table.peek(id) else { continue };
            let (_, page_bytes) = self.inner.store.page_usage(id)?;
            out.push(ObjectStat {
                id,
                class: slot.class.info().name.clone(),
                busy_ms,
                bytes: page_bytes,
                movable: self.movable(id, slot.class.info().pinned)?,
                partners,
            });
        }
        out.sort_by_key(|o| o.id);
        Ok(out)
    }

    /// Whether the node may move `id` on its own now.
    fn movable(&self, id: ObjectId, class_pinned: bool) -> Result<bool, InvokeError> {
        Ok(!class_pinned
            && !self.pinned(id)?
            && !self.inner.balance.cooling(id)
            && Some(id) != self.inner.local_root
            && self.inner.actions.held_by(id).is_none()
            && !self.inner.residuals.contains(id)
            && !self.inner.moving.lock().expect("moving mutex").contains_key(&id))
    }

    /// Moves `id` to `to` for `kind`, as the node itself (with an owner capability it
    /// issues itself), and records the decision at both ends.
    pub(super) async fn move_auto(
        &self,
        id: ObjectId,
        class: &str,
        to: NodeId,
        kind: DecisionKind,
        reason: String,
    ) -> Result<protocol::migration::MigrationReport, InvokeError> {
        let me = self.inner.node;
        let entry = |kind, reason| super::decisions::Entry {
            kind,
            object: Some(id),
            class,
            from: Some(me),
            to: Some(to),
            reason,
        };
        let raw = self.own_capability(id)?;
        match self.migrate_why(raw, to, protocol::migration::Strategy::Precopy, &reason).await {
            Ok(report) => {
                self.inner.decisions.record(me, entry(kind, format!("{reason}; {report}")));
                Ok(report)
            }
            Err(e) => {
                self.inner.decisions.record(me, entry(DecisionKind::Failed, format!("{kind} move failed: {e}")));
                Err(e)
            }
        }
    }

    /// A reference to `id` with an owner capability this node issues for itself.
    pub(super) fn own_capability(&self, id: ObjectId) -> Result<clouds::RawRef, InvokeError> {
        let epoch = match self.inner.store.get(id)? {
            Some(crate::store::Record::Live { epoch, .. }) => epoch,
            _ => return Err(InvokeError::NotFound { id }),
        };
        let guard = self.guard();
        let cap = guard.issue_owner(id, epoch, guard.identity().key.public());
        Ok(clouds::RawRef { id, cap: Some(cap) })
    }

    /// Where an object leaving this node (drained, evicted) goes: `prefer` if it takes
    /// the class, else the least loaded node that does.
    pub(super) fn target_for(&self, class: &str, prefer: Option<NodeId>, views: &[NodeView]) -> Result<NodeId, String> {
        let me = self.inner.node;
        if let Some(p) = prefer.filter(|p| *p != me) {
            if views.iter().any(|v| v.id == p && v.takes_new() && v.has_class(class)) {
                return Ok(p);
            }
        }
        let labels = self.inner.registry.get(class).map(|c| c.info().labels.clone()).unwrap_or_default();
        let others: Vec<NodeView> = views.iter().filter(|v| v.id != me).cloned().collect();
        let needs = crate::placement::Needs { class, labels: &labels };
        let placed = self.inner.placed.lock().expect("placed mutex").0.clone();
        let to = crate::placement::choose(&Placement::LeastLoaded, me, &others, needs, &placed, 0)
            .map_err(|e| e.to_string())?;
        *self.inner.placed.lock().expect("placed mutex").0.entry(to).or_default() += 1;
        Ok(to)
    }

    /// A workstation whose owner is present: every guest goes.
    async fn evict(&self, views: &[NodeView]) {
        let me = self.inner.node;
        let guests = match self.guests() {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!("could not list the guests to evict: {e}");
                return;
            }
        };
        for (id, class) in guests {
            if self.inner.moving.lock().expect("moving mutex").contains_key(&id) {
                continue;
            }
            let home = self.inner.locations.home_of(id);
            let to = match self.target_for(&class, Some(home), views) {
                Ok(to) => to,
                Err(why) => {
                    let reason = format!("the owner of {me} is back, and no node takes it: {why}");
                    let e = super::decisions::Entry {
                        kind: DecisionKind::Failed,
                        object: Some(id),
                        class: &class,
                        from: Some(me),
                        to: None,
                        reason,
                    };
                    self.inner.decisions.record(me, e);
                    continue;
                }
            };
            let whither = if to == home {
                format!("back to its home {home}")
            } else {
                format!("to {to}, the least loaded server that takes it (its home {home} does not)")
            };
            let reason = format!("the owner of workstation {me} is back: its guests leave, this one {whither}");
            let _ = self.move_auto(id, &class, to, DecisionKind::Evicted, reason).await;
        }
    }

    /// The objects on this node that came from elsewhere: moved here (their home is
    /// another node) or placed here by another node's creation.
    fn guests(&self) -> Result<Vec<(ObjectId, String)>, InvokeError> {
        let me = self.inner.node;
        let mut out = Vec::new();
        self.each_live(|id, class| {
            if self.inner.locations.home_of(id) != me || self.guest(id)? {
                out.push((id, class.to_string()));
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Calls `f` with every object live in this store, in id order.
    pub(super) fn each_live(
        &self,
        mut f: impl FnMut(ObjectId, &str) -> Result<(), InvokeError>,
    ) -> Result<(), InvokeError> {
        let mut after = None;
        loop {
            let ids = self.inner.store.list(after, 1024)?;
            let Some(last) = ids.last().copied() else { return Ok(()) };
            for id in ids {
                if let Some(crate::store::Record::Live { class, .. }) = self.inner.store.get(id)? {
                    f(id, &class)?;
                }
            }
            after = Some(last);
        }
    }

    /// The owner of this workstation is active now.
    pub fn owner_activity(&self) {
        *self.inner.balance.owner_active.lock().expect("owner mutex") = Some(Instant::now());
        if self.mode() == NodeMode::Workstation {
            // Evict now rather than at the next round.
            let engine = self.clone();
            tokio::spawn(async move {
                let views = engine.inner.peers.nodes().await;
                engine.evict(&views).await;
            });
        }
    }

    /// Whether the owner was active within `owner_away_ms`.
    pub fn owner_present(&self) -> bool {
        let last = *self.inner.balance.owner_active.lock().expect("owner mutex");
        last.is_some_and(|at| at.elapsed() < self.inner.balance.owner_away)
    }

    /// The `limit` busiest objects here, by their smoothed rates.
    pub fn hot(&self, limit: usize) -> Result<Vec<ObjectLoad>, InvokeError> {
        self.read_rates();
        let mut rows: Vec<(ObjectId, f64, f64, Vec<protocol::decision::Partner>)> = {
            let r = self.inner.balance.readings.lock().expect("readings mutex");
            r.rates.iter().map(|(id, rate)| (*id, rate.busy_ms, rate.calls, rate.partners())).collect()
        };
        rows.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.2.total_cmp(&a.2)).then(a.0.cmp(&b.0)));
        rows.truncate(limit);
        let mut out = Vec::with_capacity(rows.len());
        for (id, busy_ms, calls, partners) in rows {
            let Some(slot) = self.inner.table.peek(id) else { continue };
            let pinned = slot.class.info().pinned || self.pinned(id)?;
            let class = slot.class.info().name.clone();
            out.push(ObjectLoad { id, class, node: self.inner.node, busy_ms, calls, pinned, partners });
        }
        Ok(out)
    }

    /// The decisions this node made on its own, oldest first; about `object` only, if named.
    pub fn decisions(&self, object: Option<ObjectId>) -> Vec<protocol::decision::Decision> {
        self.inner.decisions.list(object)
    }

    /// What gossip carries about this node.
    pub fn published(&self) -> Result<Published, InvokeError> {
        Ok(Published {
            load: self.load()?,
            mode: self.mode(),
            owner_present: self.owner_present(),
            keeps_homes: self.keeps(),
        })
    }
}
