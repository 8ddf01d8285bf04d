//! Prometheus metrics (the `metrics` facade, rendered by `metrics-exporter-prometheus` at
//! the HTTP gateway's `/metrics`): off unless the node serves HTTP, and then recorded where
//! the work happens. While off, every `record_*` costs one relaxed load.
//!
//! What is counted: invocations by class, method and outcome (`clouds_invocations_total`)
//! and their latency (`clouds_invocation_seconds`, a histogram); capability denials by
//! reason; deadlocks broken; group flushes and the commits each carried; and, read when
//! scraped, activated objects, stored objects, store bytes, requests in flight and each
//! peer's membership state.

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

static ON: AtomicBool = AtomicBool::new(false);
static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Latency buckets, in seconds: 50 us to 10 s.
const BUCKETS: &[f64] = &[0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5, 10.0];

/// Installs the process's recorder (once; later calls return the same handle).
pub fn install() -> Result<PrometheusHandle, String> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets(BUCKETS)
        .map_err(|e| e.to_string())?
        .install_recorder()
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
    let handle = HANDLE.get_or_init(|| handle).clone();
    ON.store(true, Ordering::Release);
    Ok(handle)
}

/// Stops or resumes recording (the recorder stays installed): for the benchmark harness,
/// which measures a call with and without metrics in the same run.
pub fn set_recording(on: bool) {
    ON.store(on && HANDLE.get().is_some(), Ordering::Release);
}

fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// One invocation served here: `outcome` is `ok` or the error's kind.
pub fn record_invocation(class: &str, method: &str, outcome: &'static str, took: Duration) {
    if !on() {
        return;
    }
    let (class, method) = (class.to_string(), method.to_string());
    metrics::counter!("clouds_invocations_total", "class" => class.clone(), "method" => method.clone(), "outcome" => outcome)
        .increment(1);
    metrics::histogram!("clouds_invocation_seconds", "class" => class, "method" => method).record(took.as_secs_f64());
}

/// A capability check that failed, by reason (`missing`, `expired`, `revoked`, ...).
pub fn record_denial(reason: &'static str) {
    if on() {
        metrics::counter!("clouds_capability_denials_total", "reason" => reason).increment(1);
    }
}

/// A deadlock this node broke.
pub fn record_deadlock() {
    if on() {
        metrics::counter!("clouds_deadlocks_broken_total").increment(1);
    }
}

/// A group flush of the store and the commits it made durable.
pub fn record_flush(commits: usize, took: Duration) {
    if on() {
        metrics::counter!("clouds_group_flushes_total").increment(1);
        metrics::counter!("clouds_commits_total").increment(commits as u64);
        metrics::histogram!("clouds_group_flush_seconds").record(took.as_secs_f64());
    }
}

/// A request this node sent on to the node that has the object.
pub fn record_forward() {
    if on() {
        metrics::counter!("clouds_forwarded_total").increment(1);
    }
}

/// Sets a gauge (read when scraped).
pub fn gauge(name: &'static str, value: f64) {
    if on() {
        metrics::gauge!(name).set(value);
    }
}

/// Sets a gauge with one label.
pub fn gauge_with(name: &'static str, label: &'static str, value_of_label: String, value: f64) {
    if on() {
        metrics::gauge!(name, label => value_of_label).set(value);
    }
}
