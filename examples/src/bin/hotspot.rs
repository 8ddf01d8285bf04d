//! A hot spot that the cluster evens out by itself: creates counters all on one node, then
//! runs threads that keep incrementing them, and prints every second the calls done and
//! how many counters each node holds. With rebalancing on (the default), the busy node
//! moves counters to the others while they are called; `clouds why ID` then tells why
//! each one moved. Ends with the ids of the counters that moved.
//!
//!     cargo run -p examples --bin hotspot -- --node 127.0.0.1:7100 --on 1 --seconds 15

use clap::Parser;
use client::{Client, Wallet, CONNECT_TIMEOUT};
use clouds::{InvokeError, NodeId, RawRef};
use protocol::wire::InitialState;
use protocol::Placement;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// The node to talk to.
    #[arg(long, env = "CLOUDS_NODE", default_value = "127.0.0.1:7100")]
    node: std::net::SocketAddr,
    /// The node every counter is created on.
    #[arg(long, default_value = "1")]
    on: NodeId,
    #[arg(long, default_value_t = 12)]
    objects: usize,
    /// Threads incrementing them, each in a loop.
    #[arg(long, default_value_t = 24)]
    threads: usize,
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// The wallet to act for (default: ~/.clouds/wallet).
    #[arg(long, env = "CLOUDS_WALLET")]
    wallet: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.objects > 0 && args.threads > 0, "--objects and --threads must be at least 1");
    let wallet = Wallet::open(&args.wallet.unwrap_or_else(Wallet::default_dir)).map_err(anyhow::Error::msg)?;
    let client = Client::connect_with(args.node, CONNECT_TIMEOUT, Arc::new(wallet)).await?.routed().await?;
    let mut counters: Vec<RawRef> = Vec::new();
    for _ in 0..args.objects {
        counters.push(client.create_placed("Counter", InitialState::Default, Placement::On(args.on)).await?);
    }
    println!(
        "{} counters created on {}; {} threads increment them for {} s",
        args.objects, args.on, args.threads, args.seconds
    );
    let (stop, done, failed) = (AtomicBool::new(false), AtomicU64::new(0), AtomicU64::new(0));
    let threads = (0..args.threads).map(|t| {
        let (client, counters, stop, done, failed) = (&client, &counters, &stop, &done, &failed);
        async move {
            let mut i = t;
            while !stop.load(Ordering::Acquire) {
                i = (i + 1) % counters.len();
                match client.invoke_json(&counters[i], "incr", &[serde_json::json!(1)], None).await {
                    Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        eprintln!("a call failed: {e}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }
    });
    let watch = async {
        let started = Instant::now();
        let mut last = 0;
        for second in 1..=args.seconds {
            tokio::time::sleep_until((started + Duration::from_secs(second)).into()).await;
            let now = done.load(Ordering::Relaxed);
            let spread = spread(&client, &counters).await;
            let spread = spread.iter().map(|(n, c)| format!("{n} {c}")).collect::<Vec<_>>().join(", ");
            println!("{second:>3} s  {:>6} calls/s  counters per node: {spread}", now - last);
            last = now;
        }
        stop.store(true, Ordering::Release);
    };
    tokio::join!(futures::future::join_all(threads), watch);
    let mut moved = Vec::new();
    for c in &counters {
        let at = client.locate(c.id).await?;
        if at != args.on {
            moved.push((c.id, at));
        }
    }
    println!(
        "{} calls done, {} failed; {} of {} counters moved off {}:",
        done.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        moved.len(),
        counters.len(),
        args.on
    );
    for (id, at) in moved {
        println!("  {id} -> {at}");
    }
    anyhow::ensure!(failed.load(Ordering::Relaxed) == 0, "calls failed while counters moved");
    Ok(())
}

/// How many of `counters` each node holds now.
async fn spread(client: &Client, counters: &[RawRef]) -> BTreeMap<String, usize> {
    let mut per_node = BTreeMap::new();
    for c in counters {
        let at: Result<NodeId, InvokeError> = client.locate(c.id).await;
        let name = at.map_or_else(|e| format!("? ({e})"), |n| n.to_string());
        *per_node.entry(name).or_default() += 1;
    }
    per_node
}
