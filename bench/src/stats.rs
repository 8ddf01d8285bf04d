//! Measuring loops and the table they print.

use std::future::Future;
use std::time::{Duration, Instant};

/// The most operations one measurement runs, whatever its time budget.
const MAX_OPS: usize = 2_000_000;

pub struct Figures {
    name: String,
    ops: usize,
    elapsed: Duration,
    /// Per-operation latencies, sorted.
    latencies: Vec<Duration>,
}

impl Figures {
    pub fn print_header() {
        println!("| {:<58} | {:>10} | {:>10} | {:>10} |", "what", "ops/s", "median", "p99");
        println!("|{:-<60}|{:-<12}|{:-<12}|{:-<12}|", "", "", "", "");
    }

    pub fn print(&self) {
        let pct = |p: f64| {
            let i = ((self.latencies.len() as f64 * p) as usize).min(self.latencies.len().saturating_sub(1));
            self.latencies.get(i).copied().unwrap_or_default()
        };
        println!(
            "| {:<58} | {:>10.0} | {:>10} | {:>10} |",
            self.name,
            self.ops_per_sec(),
            show(pct(0.5)),
            show(pct(0.99))
        );
    }
}

impl Figures {
    /// Adds another measurement of the same thing (a later round of an interleaved run).
    pub fn merge(&mut self, other: Figures) {
        self.ops += other.ops;
        self.elapsed += other.elapsed;
        self.latencies.extend(other.latencies);
        self.latencies.sort_unstable();
    }

    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    pub fn median(&self) -> Duration {
        self.latencies.get(self.latencies.len() / 2).copied().unwrap_or_default()
    }
}

pub fn show(d: Duration) -> String {
    if d < Duration::from_micros(10) {
        format!("{} ns", d.as_nanos())
    } else if d < Duration::from_millis(10) {
        format!("{:.1} us", d.as_nanos() as f64 / 1000.0)
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    }
}

/// One caller, back to back, for `budget` (after a short warm-up).
pub async fn measure_latency<F, Fut>(name: &str, budget: Duration, op: F) -> Figures
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    for _ in 0..1_000 {
        op().await;
    }
    let mut latencies = Vec::new();
    let start = Instant::now();
    while start.elapsed() < budget && latencies.len() < MAX_OPS {
        let t = Instant::now();
        op().await;
        latencies.push(t.elapsed());
    }
    let elapsed = start.elapsed();
    latencies.sort_unstable();
    Figures { name: name.into(), ops: latencies.len(), elapsed, latencies }
}

/// `callers` tasks, each calling `op(its index)` back to back, for `budget`.
pub async fn measure_concurrent<F, Fut>(name: &str, callers: usize, budget: Duration, op: F) -> Figures
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let op = std::sync::Arc::new(op);
    let per_caller = (MAX_OPS / callers).max(1);
    let start = Instant::now();
    let deadline = start + budget;
    let handles: Vec<_> = (0..callers)
        .map(|i| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                while Instant::now() < deadline && lat.len() < per_caller {
                    let t = Instant::now();
                    op(i).await;
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for h in handles {
        latencies.extend(h.await.expect("caller task"));
    }
    let elapsed = start.elapsed();
    latencies.sort_unstable();
    Figures { name: name.into(), ops: latencies.len(), elapsed, latencies }
}

/// One row of an interleaved measurement: its name, its callers and the operation each
/// caller repeats (given its index).
pub struct Row {
    pub name: String,
    pub callers: usize,
    pub op: std::sync::Arc<dyn Fn(usize) -> futures::future::BoxFuture<'static, ()> + Send + Sync>,
}

impl Row {
    pub fn new<F, Fut>(name: impl Into<String>, callers: usize, op: F) -> Row
    where
        F: Fn(usize) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Row { name: name.into(), callers, op: std::sync::Arc::new(move |i| Box::pin(op(i))) }
    }
}

/// The rows take turns, a short run each, `rounds` times, `budget` in all for each row:
/// this machine switches between a fast and a slow mode for seconds at a time, and taking
/// turns gives every row its share of both, so that ratios between rows hold within a run.
///
/// For profiling one row: `BENCH_ROWS=TEXT` gives the rows whose names do not contain TEXT
/// a fiftieth of their time (they still run, so that what is derived from them still prints)
/// and the rows that do five times theirs, for a profile long enough to read; the cluster
/// section leaves out its tables after the rows.
pub async fn interleaved(rows: &[Row], rounds: u32, budget: Duration) -> Vec<Figures> {
    let only = std::env::var("BENCH_ROWS").ok();
    let mut out: Vec<Option<Figures>> = rows.iter().map(|_| None).collect();
    for _ in 0..rounds {
        for (row, slot) in rows.iter().zip(out.iter_mut()) {
            let op = row.op.clone();
            let budget = match &only {
                Some(text) if !row.name.contains(text.as_str()) => budget / 50,
                Some(_) => budget * 5,
                None => budget,
            };
            let figures = measure_concurrent(&row.name, row.callers, budget / rounds, move |i| op(i)).await;
            match slot {
                Some(f) => f.merge(figures),
                None => *slot = Some(figures),
            }
        }
    }
    out.into_iter().flatten().collect()
}
