//! What the node measures of its own load, for the load vector it publishes: the own time
//! of every invocation here (its nested calls excluded: they count where they ran) and
//! their count, smoothed (an exponentially weighted
//! rate with a time constant of `SMOOTHING`), and invocations waiting for a lock now.
//!
//! Counting is two relaxed atomic adds per invocation; the rates are computed when the
//! load vector is read (every gossip interval), from the time since the last reading.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The time constant of the smoothing: a step in load shows two thirds of its size after
/// this long.
pub const SMOOTHING: Duration = Duration::from_secs(3);

pub struct Meter {
    busy_us: AtomicU64,
    calls: AtomicU64,
    /// Invocations waiting for an object's lock now.
    waiting: AtomicU64,
    /// std `Mutex`: one update per reading, never across an `.await`.
    rates: Mutex<Rates>,
}

struct Rates {
    at: Instant,
    /// Counter values at the last reading.
    busy_us: u64,
    calls: u64,
    /// Smoothed: ms of invocations per second, invocations per second.
    busy_ms: f64,
    per_s: f64,
}

impl Default for Meter {
    fn default() -> Self {
        Meter {
            busy_us: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            waiting: AtomicU64::new(0),
            rates: Mutex::new(Rates { at: Instant::now(), busy_us: 0, calls: 0, busy_ms: 0.0, per_s: 0.0 }),
        }
    }
}

impl Meter {
    /// An invocation here took `micros` of its own.
    pub fn called(&self, micros: u64) {
        self.busy_us.fetch_add(micros, Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one invocation waiting for a lock while the guard lives.
    pub fn waiting(&self) -> Waiting<'_> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        Waiting(&self.waiting)
    }

    /// (busy ms per second, invocations per second, waiting now), smoothed up to now.
    pub fn read(&self) -> (f64, f64, u64) {
        let now = Instant::now();
        let (busy_us, calls) = (self.busy_us.load(Ordering::Relaxed), self.calls.load(Ordering::Relaxed));
        let mut r = self.rates.lock().expect("meter mutex");
        let dt = now.duration_since(r.at).as_secs_f64();
        if dt > 0.0 {
            let (busy, per_s) = ((busy_us - r.busy_us) as f64 / 1000.0 / dt, (calls - r.calls) as f64 / dt);
            (r.busy_ms, r.per_s) = (smooth(r.busy_ms, busy, dt), smooth(r.per_s, per_s, dt));
            (r.at, r.busy_us, r.calls) = (now, busy_us, calls);
        }
        (r.busy_ms, r.per_s, self.waiting.load(Ordering::Relaxed))
    }
}

/// The exponentially weighted mean after `dt` seconds at rate `now`, from `before`.
fn smooth(before: f64, now: f64, dt: f64) -> f64 {
    let keep = (-dt / SMOOTHING.as_secs_f64()).exp();
    before * keep + now * (1.0 - keep)
}

pub struct Waiting<'a>(&'a AtomicU64);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Resident memory of this process, in bytes (0 where `/proc` is not there).
pub fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        .map_or(0, |pages| pages * 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_follows_a_step_with_its_time_constant() {
        let t = SMOOTHING.as_secs_f64();
        assert!((smooth(0.0, 100.0, t) - 63.2).abs() < 0.1);
        assert!((smooth(100.0, 100.0, 0.3) - 100.0).abs() < 1e-9, "a steady rate stays");
        // Many short readings come to the same as one long one.
        let mut v = 0.0;
        for _ in 0..10 {
            v = smooth(v, 100.0, t / 10.0);
        }
        assert!((v - 63.2).abs() < 0.1, "{v}");
    }

    #[test]
    fn counts_calls_busy_time_and_waiters() {
        let meter = Meter::default();
        std::thread::sleep(Duration::from_millis(20));
        for _ in 0..10 {
            meter.called(2_000);
        }
        let w = meter.waiting();
        let (busy, calls, waiting) = meter.read();
        assert!(busy > 0.0 && calls > 0.0, "{busy} {calls}");
        assert_eq!(waiting, 1);
        drop(w);
        assert_eq!(meter.read().2, 0);
        assert!(resident_bytes() > 0);
    }
}
