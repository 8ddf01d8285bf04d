//! A job queue with workers on Clouds: a producer fills a few `Queue` objects (named
//! `/jobs/queue-<i>`, spread over the nodes) with jobs, and workers, each a thread of its
//! own, take jobs from the queues and write each result into the `Map` placed next to its
//! queue (`/jobs/results-<i>`, `near:` the queue, so a worker's two calls land on one node).
//! Every take carries a call id, so a take retried after a lost reply gets the same job
//! back instead of losing it; a result is keyed by the job, so writing it twice changes
//! nothing. At the end every job has exactly one result, checked against the same work
//! done here.
//!
//!     cargo run -p examples --bin jobs -- --node 127.0.0.1:7100 --queues 3 --jobs 300 --workers 12

use clap::Parser;
use client::{Client, Placement, Wallet, CONNECT_TIMEOUT};
use clouds::{CallId, InvokeError, Ref};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
use stdobjects::{Map, Queue};

#[derive(Parser)]
struct Args {
    /// The node to talk to.
    #[arg(long, env = "CLOUDS_NODE", default_value = "127.0.0.1:7100")]
    node: std::net::SocketAddr,
    /// How many queues (each with its results map), made the first time, reused after.
    #[arg(long, default_value_t = 3)]
    queues: usize,
    /// How many jobs the producer puts in, round robin over the queues.
    #[arg(long, default_value_t = 300)]
    jobs: u64,
    /// How many workers take jobs at once.
    #[arg(long, default_value_t = 12)]
    workers: usize,
    /// The wallet to act for (default: ~/.clouds/wallet).
    #[arg(long, env = "CLOUDS_WALLET")]
    wallet: Option<std::path::PathBuf>,
}

/// The work of one job: the steps of its Collatz sequence down to 1.
fn collatz_steps(mut n: u64) -> u64 {
    let mut steps = 0;
    while n > 1 {
        n = if n.is_multiple_of(2) { n / 2 } else { 3 * n + 1 };
        steps += 1;
    }
    steps
}

/// How often a take or a result is tried again when a node is briefly unreachable.
const TRIES: u32 = 50;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.queues > 0 && args.workers > 0, "--queues and --workers must be at least 1");
    let wallet = Wallet::open(&args.wallet.unwrap_or_else(Wallet::default_dir)).map_err(anyhow::Error::msg)?;
    let client = Client::connect_with(args.node, CONNECT_TIMEOUT, Arc::new(wallet)).await?.routed().await?;
    let ctx = client.ctx();

    let mut shards: Vec<(Ref<Queue>, Ref<Map>)> = Vec::new();
    for i in 0..args.queues {
        let queue = match client.lookup::<Queue>(&format!("/jobs/queue-{i}")).await {
            Ok(q) => q,
            Err(InvokeError::NameNotFound { .. }) => {
                let q = client.create_object(&Queue::default(), Placement::LeastLoaded).await?;
                client.bind(&format!("/jobs/queue-{i}"), &q).await?;
                q
            }
            Err(e) => return Err(e.into()),
        };
        let results = match client.lookup::<Map>(&format!("/jobs/results-{i}")).await {
            Ok(m) => m,
            Err(InvokeError::NameNotFound { .. }) => {
                let m = client.create_object(&Map::default(), Placement::Near(queue.id())).await?;
                client.bind(&format!("/jobs/results-{i}"), &m).await?;
                m
            }
            Err(e) => return Err(e.into()),
        };
        shards.push((queue, results));
    }
    let mut placed = BTreeMap::new();
    for (q, _) in &shards {
        *placed.entry(client.locate(q.id()).await?.to_string()).or_insert(0) += 1;
    }
    println!("{} queues under /jobs, each with its results beside it, on {placed:?}", shards.len());

    // Each run's jobs and call ids are its own.
    let run = uuid::Uuid::new_v4().simple().to_string();
    let started = Instant::now();
    for j in 0..args.jobs {
        let (queue, _) = &shards[j as usize % shards.len()];
        let job = json!({ "run": run, "id": j, "n": 1_000 + j * 7 });
        queue.push(&ctx, job.into()).await?;
    }
    println!("{} jobs queued in {:.0} ms", args.jobs, started.elapsed().as_secs_f64() * 1e3);

    let started = Instant::now();
    let workers = (0..args.workers).map(|w| {
        let (client, shards, run) = (&client, &shards, &run);
        async move {
            let ctx = client.ctx();
            let (mut done, mut taken) = (0u64, 0u64);
            // Start at a queue of its own, go on to the others when it is empty.
            for k in 0..shards.len() {
                let (queue, results) = &shards[(w + k) % shards.len()];
                loop {
                    let call = CallId(format!("take-{run}-{w}-{taken}"));
                    let job = retry(|| client.invoke_json(queue.raw(), "pop", &[], Some(call.clone()))).await?;
                    taken += 1;
                    let Value::Object(job) = job else { break }; // `null`: this queue is empty
                    if job.get("run").and_then(Value::as_str) != Some(run.as_str()) {
                        continue; // left over from a run that stopped early
                    }
                    let (id, n) = (job["id"].as_u64().unwrap_or(0), job["n"].as_u64().unwrap_or(0));
                    let key = format!("{run}-{id:06}");
                    let steps: clouds::Value = json!(collatz_steps(n)).into();
                    retry(|| results.put(&ctx, key.clone(), steps.clone())).await?;
                    done += 1;
                }
            }
            Ok::<u64, InvokeError>(done)
        }
    });
    let per_worker = futures::future::try_join_all(workers).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let done: u64 = per_worker.iter().sum();
    println!(
        "{done} jobs done by {} workers in {:.0} ms ({:.0} jobs/s); per worker: {per_worker:?}",
        args.workers,
        elapsed * 1e3,
        done as f64 / elapsed
    );

    // Every job has one result, and it is right.
    let mut wrong = 0;
    for j in 0..args.jobs {
        let (_, results) = &shards[j as usize % shards.len()];
        let got = results.get(&ctx, format!("{run}-{j:06}")).await?;
        if got.map(|v| v.0) != Some(json!(collatz_steps(1_000 + j * 7))) {
            wrong += 1;
        }
    }
    anyhow::ensure!(
        done == args.jobs && wrong == 0,
        "{done} of {} jobs done, {wrong} results missing or wrong",
        args.jobs
    );
    println!("all {} results present and right", args.jobs);
    Ok(())
}

/// Tries `call` again while the node is unavailable (restarting, or a connection lost).
async fn retry<T, F: std::future::Future<Output = Result<T, InvokeError>>>(
    mut call: impl FnMut() -> F,
) -> Result<T, InvokeError> {
    let mut tries = 0;
    loop {
        match call().await {
            Err(InvokeError::Unavailable { .. }) if tries < TRIES => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}
