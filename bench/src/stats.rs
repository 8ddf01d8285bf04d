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
    /// CPU time each metered process spent while the row ran (`interleaved_metered`).
    cpu: Vec<Duration>,
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
        // Both from the same meter: one figure per process.
        self.cpu.iter_mut().zip(&other.cpu).for_each(|(mine, theirs)| *mine += *theirs);
        self.ops += other.ops;
        self.elapsed += other.elapsed;
        self.latencies.extend(other.latencies);
        self.latencies.sort_unstable();
    }

    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    /// CPU time per operation in each metered process.
    pub fn cpu_per_op(&self) -> Vec<Duration> {
        self.cpu.iter().map(|c| c.checked_div(self.ops as u32).unwrap_or_default()).collect()
    }

    pub fn name(&self) -> &str {
        &self.name
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
    Figures { name: name.into(), ops: latencies.len(), elapsed, latencies, cpu: Vec::new() }
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
    Figures { name: name.into(), ops: latencies.len(), elapsed, latencies, cpu: Vec::new() }
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
    interleaved_metered(rows, rounds, budget, &CpuMeter::default()).await
}

/// The CPU time (user and system, all threads) of some processes, read from
/// `/proc/PID/stat`: what an operation costs each process, a steadier figure than its rate on
/// a machine whose speed changes from one second to the next. Ticks of 10 ms (Linux reports
/// these fields in USER_HZ, 100 per second), summed over a row's turns.
#[derive(Default)]
pub struct CpuMeter {
    pids: Vec<u32>,
}

impl CpuMeter {
    pub fn new(pids: Vec<u32>) -> CpuMeter {
        CpuMeter { pids }
    }

    fn read(&self) -> Vec<Duration> {
        self.pids.iter().map(|pid| cpu_time(*pid)).collect()
    }
}

fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command's name (in parentheses, which may hold spaces): the state is field
    // 3, utime field 14 and stime field 15.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    Duration::from_millis(10 * (ticks(11) + ticks(12)))
}

/// `interleaved`, with the CPU time `meter`'s processes spend during each row's turns.
pub async fn interleaved_metered(rows: &[Row], rounds: u32, budget: Duration, meter: &CpuMeter) -> Vec<Figures> {
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
            let before = meter.read();
            let mut figures = measure_concurrent(&row.name, row.callers, budget / rounds, move |i| op(i)).await;
            figures.cpu =
                meter.read().iter().zip(&before).map(|(after, before)| after.saturating_sub(*before)).collect();
            match slot {
                Some(f) => f.merge(figures),
                None => *slot = Some(figures),
            }
        }
    }
    out.into_iter().flatten().collect()
}
