//! Activated objects: a bounded table of slots, each with a fair readers-writer lock.
//!
//! A slot exists while its object is activated: its state decoded in memory. Beyond
//! `capacity`, idle slots (nobody holds them) are dropped least recently used first, so
//! an idle object costs nothing but its bytes on disk.

use super::slot::SlotState;
use clouds::{Class, Instance, InvokeError, ObjectId};
use lru::LruCache;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

/// The activated state of one object, behind its lock.
pub struct Active {
    pub instance: Box<dyn Instance>,
    /// The committed version `instance` was loaded at or last committed as.
    pub version: u64,
    /// Live, stale (reload before use) or deleted (`slot::admit` decides what that means).
    pub state: SlotState,
    /// The revocation epoch of the committed record.
    pub epoch: u64,
}

pub struct Slot {
    pub id: ObjectId,
    pub class: Arc<dyn Class>,
    /// tokio's `RwLock` is fair: a queued writer is served before readers that arrive
    /// after it, so writers are served in arrival order and never starve.
    pub lock: Arc<tokio::sync::RwLock<Active>>,
    /// The committed revocation epoch, readable without the lock: capabilities are checked
    /// before a call waits for anything. Changed only under the write lock, by a revoke.
    pub epoch: AtomicU64,
    /// What the object costs the node (the balancer reads it).
    pub usage: super::usage::Usage,
}

pub struct ObjectTable {
    /// In order of use, the most recent first. std `Mutex`: held only to look up, insert
    /// or evict, never across an `.await`.
    slots: Mutex<LruCache<ObjectId, Arc<Slot>>>,
    capacity: usize,
}

impl ObjectTable {
    pub fn new(capacity: usize) -> ObjectTable {
        ObjectTable { slots: Mutex::new(LruCache::unbounded()), capacity }
    }

    /// The slot of `id`, activating the object with `load` if it is not active. `load`
    /// runs outside the table's mutex; if two callers race, one activation wins.
    pub fn get_or_load(
        &self,
        id: ObjectId,
        load: impl FnOnce() -> Result<(Arc<dyn Class>, Active), InvokeError>,
    ) -> Result<Arc<Slot>, InvokeError> {
        if let Some(slot) = self.slots.lock().expect("table mutex").get(&id) {
            return Ok(slot.clone());
        }
        let (class, active) = load()?;
        let fresh = Arc::new(Slot {
            id,
            class,
            epoch: AtomicU64::new(active.epoch),
            lock: Arc::new(tokio::sync::RwLock::new(active)),
            usage: Default::default(),
        });
        let mut slots = self.slots.lock().expect("table mutex");
        let slot = slots.get_or_insert(id, || fresh).clone();
        if slots.len() > self.capacity {
            evict(&mut slots, self.capacity);
        }
        Ok(slot)
    }

    /// Forgets `slot` (after its object was deleted).
    pub fn remove(&self, slot: &Arc<Slot>) {
        let mut slots = self.slots.lock().expect("table mutex");
        if slots.peek(&slot.id).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            slots.pop(&slot.id);
        }
    }

    /// Forgets the slot of `id`, whoever holds it (they keep their hold): the next
    /// activation reads the store again. For objects that moved in or out.
    pub fn forget(&self, id: ObjectId) {
        self.slots.lock().expect("table mutex").pop(&id);
    }

    /// The slot of `id` if it is activated (not activating it).
    pub fn peek(&self, id: ObjectId) -> Option<Arc<Slot>> {
        self.slots.lock().expect("table mutex").peek(&id).cloned()
    }

    /// Every activated slot now.
    pub fn all(&self) -> Vec<Arc<Slot>> {
        self.slots.lock().expect("table mutex").iter().map(|(_, s)| s.clone()).collect()
    }

    pub fn len(&self) -> usize {
        self.slots.lock().expect("table mutex").len()
    }
}

/// Drops idle slots, least recently used first, down to 90% of `capacity`. A slot someone
/// holds (an invocation running or waiting) is never dropped.
fn evict(slots: &mut LruCache<ObjectId, Arc<Slot>>, capacity: usize) {
    let excess = slots.len().saturating_sub(capacity - capacity / 10);
    let idle: Vec<ObjectId> =
        slots.iter().rev().filter(|(_, s)| Arc::strong_count(s) == 1).map(|(id, _)| *id).take(excess).collect();
    for id in idle {
        slots.pop(&id);
    }
}
