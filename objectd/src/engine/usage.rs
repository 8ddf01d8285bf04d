//! What one object costs its node: counters kept on its slot while it is activated (time
//! in its methods, calls, and the objects it calls or is called by, with their nodes), and
//! the smoothed rates the balancer reads from them (`Rates`).
//!
//! Counting is two relaxed atomic adds per invocation; a call between two objects also
//! takes the partner map's mutex of each (bounded to `PARTNERS` entries: the smallest count
//! gives way). An object no longer activated is idle, and its counters go with its slot.

use clouds::{NodeId, ObjectId};
use protocol::decision::Partner;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// How many partners an object remembers.
const PARTNERS: usize = 32;

#[derive(Default)]
pub struct Usage {
    busy_us: AtomicU64,
    calls: AtomicU64,
    /// std `Mutex`: one map operation at a time.
    partners: Mutex<HashMap<ObjectId, (NodeId, u64)>>,
}

impl Usage {
    pub fn called(&self, micros: u64) {
        self.busy_us.fetch_add(micros, Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// One call between this object and `other`, which is on `node`.
    pub fn partner(&self, other: ObjectId, node: NodeId) {
        let mut partners = self.partners.lock().expect("partners mutex");
        if partners.len() >= PARTNERS && !partners.contains_key(&other) {
            if let Some(least) = partners.iter().min_by_key(|(_, (_, n))| *n).map(|(id, _)| *id) {
                partners.remove(&least);
            }
        }
        let entry = partners.entry(other).or_insert((node, 0));
        *entry = (node, entry.1 + 1);
    }

    fn snapshot(&self) -> (u64, u64, HashMap<ObjectId, (NodeId, u64)>) {
        let partners = self.partners.lock().expect("partners mutex").clone();
        (self.busy_us.load(Ordering::Relaxed), self.calls.load(Ordering::Relaxed), partners)
    }
}

/// One object's smoothed rates, from readings of its counters.
#[derive(Clone, Debug, Default)]
pub struct Rates {
    last: (u64, u64, HashMap<ObjectId, u64>),
    pub busy_ms: f64,
    pub calls: f64,
    pub partners: HashMap<ObjectId, (NodeId, f64)>,
}

impl Rates {
    /// Reads the counters `dt` after the last reading, smoothing with time constant `tau`.
    pub fn read(&mut self, usage: &Usage, dt: Duration, tau: Duration) {
        let (busy_us, calls, partners) = usage.snapshot();
        let dt_s = dt.as_secs_f64().max(1e-3);
        let keep = (-dt_s / tau.as_secs_f64()).exp();
        let smooth = |before: f64, now: f64| before * keep + now * (1.0 - keep);
        self.busy_ms = smooth(self.busy_ms, busy_us.saturating_sub(self.last.0) as f64 / 1000.0 / dt_s);
        self.calls = smooth(self.calls, calls.saturating_sub(self.last.1) as f64 / dt_s);
        let mut counts = HashMap::new();
        for (other, (node, n)) in partners {
            let before = self.last.2.get(&other).copied().unwrap_or(0);
            let rate = n.saturating_sub(before) as f64 / dt_s;
            let old = self.partners.get(&other).map_or(0.0, |(_, r)| *r);
            self.partners.insert(other, (node, smooth(old, rate)));
            counts.insert(other, n);
        }
        self.partners.retain(|id, (_, r)| counts.contains_key(id) && *r > 0.01);
        self.last = (busy_us, calls, counts);
    }

    /// The partners, busiest first.
    pub fn partners(&self) -> Vec<Partner> {
        let mut out: Vec<Partner> = self
            .partners
            .iter()
            .map(|(object, (node, calls))| Partner { object: *object, node: *node, calls: *calls })
            .collect();
        out.sort_by(|a, b| b.calls.total_cmp(&a.calls).then(a.object.cmp(&b.object)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_follow_the_counters_and_partners_are_bounded() {
        let usage = Usage::default();
        let mut rates = Rates::default();
        for _ in 0..100 {
            usage.called(1_000);
        }
        let (a, b) = (ObjectId::new(NodeId(1)), ObjectId::new(NodeId(2)));
        for _ in 0..50 {
            usage.partner(b, NodeId(2));
        }
        usage.partner(a, NodeId(1));
        let tau = Duration::from_secs(3);
        rates.read(&usage, Duration::from_secs(1), tau);
        let keep = 1.0 - (-1.0f64 / 3.0).exp();
        assert!((rates.calls - 100.0 * keep).abs() < 1e-6, "{}", rates.calls);
        assert!((rates.busy_ms - 100.0 * keep).abs() < 1e-6, "{}", rates.busy_ms);
        let p = rates.partners();
        assert_eq!((p[0].object, p[0].node), (b, NodeId(2)));
        assert!(p[0].calls > p[1].calls);
        // Idle since: the rates decay.
        rates.read(&usage, Duration::from_secs(30), tau);
        assert!(rates.calls < 1.0 && rates.partners.is_empty(), "{rates:?}");
        for _ in 0..PARTNERS + 10 {
            usage.partner(ObjectId::new(NodeId(3)), NodeId(3));
        }
        assert_eq!(usage.partners.lock().unwrap().len(), PARTNERS);
    }
}
