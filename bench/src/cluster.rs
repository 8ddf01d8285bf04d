//! Section 6: a real 3-node cluster on 127.0.0.1, started with `clouds cluster up`, its
//! nodes running `testnode` (the standard classes plus `Relay`, a chain of objects). Needs
//! the release binaries: `cargo build --release --workspace --bins`.

use crate::stats::{self, measure_concurrent, Figures, Row};
use client::Client;
use clouds::{Codec, RawRef, ThreadCtx};
use protocol::wire::InitialState;
use protocol::Placement;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const RUN: Duration = Duration::from_secs(2);

fn binary(name: &str) -> Option<PathBuf> {
    let path = std::env::current_exe().ok()?.with_file_name(name);
    path.exists().then_some(path)
}

/// A figure of `/proc/PID/smaps_rollup`, in KiB: `Rss` (resident, pages shared with other
/// processes counted whole), `Pss` (shared pages split between the processes sharing them:
/// the three nodes run one binary), `Pss_Anon` (the process's own heap and stacks).
pub(crate) fn memory_kib(pid: &str, field: &str) -> u64 {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    rollup
        .lines()
        .find(|l| l.split(':').next() == Some(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The client's threads: like each node's (`clouds cluster up` splits the cores among the
/// nodes, at least one each), the cores split among the three nodes and this process.
/// With a thread per core here as well, the client's two threads and the nodes' three took
/// turns on 2 cores and the client's were switched out thousands of times a second: every
/// row at 256 callers ran at two thirds of the rate it has with one thread (measured
/// 2026-12-04: nested 67-86k/s against 96-140k/s). `BENCH_CLIENT_WORKERS=N` sets it.
pub fn client_workers() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    match std::env::var("BENCH_CLIENT_WORKERS") {
        Err(_) => (cores / 4).max(1),
        Ok(w) => match w.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => panic!("BENCH_CLIENT_WORKERS={w:?}: expected a number of threads, at least 1"),
        },
    }
}

pub async fn run(client_workers: usize) {
    println!("\n## 6. A 3-node cluster on 127.0.0.1 (clouds cluster up, one process per node)\n");
    println!("the client (this process) runs {client_workers} worker thread(s)\n");
    let (Some(clouds), Some(testnode)) = (binary("clouds"), binary("testnode")) else {
        println!("skipped: build the node binaries first (cargo build --release --workspace --bins)");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    // The wallet that runs `cluster up` is the cluster's administrator (names need it).
    let mut up = Command::new(&clouds);
    up.arg("--wallet")
        .arg(dir.path().join("bench.wallet"))
        .args(["cluster", "up", "--nodes", "3", "--dir"])
        .arg(dir.path())
        .arg("--objectd")
        .arg(&testnode);
    // `BENCH_NODE_WORKERS=N`: each node's threads (default: `cluster up`'s split of the cores).
    if let Ok(workers) = std::env::var("BENCH_NODE_WORKERS") {
        up.args(["--workers", &workers]);
    }
    let up = up.output().expect("clouds cluster up");
    assert!(up.status.success(), "cluster up: {}", String::from_utf8_lossy(&up.stderr));
    let nodes: Vec<SocketAddr> = String::from_utf8_lossy(&up.stdout)
        .lines()
        .map(|l| l.split_once(' ').expect("ID ADDRESS").1.parse().expect("address"))
        .collect();

    tokio::time::sleep(Duration::from_secs(2)).await;
    println!("idle memory of the 3 nodes, from /proc/PID/smaps_rollup:\n");
    println!("| measure | node-1 | node-2 | node-3 | cluster |");
    println!("|---|---:|---:|---:|---:|");
    let pids: Vec<String> = (1..=3)
        .map(|id| std::fs::read_to_string(dir.path().join(format!("{id}.pid"))).unwrap_or_default().trim().to_string())
        .collect();
    for (field, what) in [
        ("Rss", "RSS (the shared binary counted in each)"),
        ("Pss", "PSS (shared pages split)"),
        ("Pss_Anon", "own memory (anonymous)"),
    ] {
        let kib: Vec<u64> = pids.iter().map(|pid| memory_kib(pid, field)).collect();
        let mib = |k: u64| format!("{:.1} MiB", k as f64 / 1024.0);
        println!("| {what} | {} | {} | {} | {} |", mib(kib[0]), mib(kib[1]), mib(kib[2]), mib(kib.iter().sum()));
    }
    println!();

    let via1 = Client::connect(nodes[0]).await.expect("connect node 1");
    let at2 = Client::connect(nodes[1]).await.expect("connect node 2");
    let on = |n: u16| Placement::On(clouds::NodeId(n));
    // Pinned: otherwise the balancer puts `a` next to `b`, its partner, within seconds (as
    // it should), and a nested row measures a forwarded call to two neighbours.
    let relay_on = |n| via1.create_pinned("Relay", InitialState::Default, on(n), true);
    let a = relay_on(1).await.expect("relay on 1");
    let b = relay_on(2).await.expect("relay on 2");
    let c = relay_on(3).await.expect("relay on 3");

    let call = |client: &Client, target: &RawRef, method: &'static str, args: Vec<u8>| {
        let (client, target) = (client.clone(), target.clone());
        move |_| {
            let (client, args, target) = (client.clone(), args.clone(), target.clone());
            async move {
                client
                    .invoke_on(ThreadCtx::new(30_000), &target, method, Codec::Binary, args, None)
                    .await
                    .expect("invoke");
            }
        }
    };
    let routed = via1.clone().routed().await.expect("routes");
    let one_hop = postcard::to_stdvec(&(vec![b.clone()],)).expect("args");
    let three_hops = postcard::to_stdvec(&(vec![b.clone(), c.clone()],)).expect("args");
    // The echo's two ends in two processes, as a hop's are: the baseline of a hop.
    let mut server = Command::new(std::env::current_exe().expect("this binary"))
        .arg("echo-server")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the echo process");
    let mut port = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(server.stdout.take().expect("stdout")), &mut port)
        .expect("the echo's port");
    let port: u16 = port.trim().parse().expect("a port");
    let echo_of = |e: crate::EchoClient| {
        move |_| {
            let e = e.clone();
            async move {
                e.echo(tarpc::context::current(), vec![0u8; 64]).await.expect("echo");
            }
        }
    };
    let apart = echo_of(crate::echo_client_of(([127, 0, 0, 1], port).into(), true, false).await);
    let together = echo_of(crate::echo_pair(true).await);
    // One thread: the rows take turns (`stats::interleaved`), so that the hop, a difference
    // of two rows, is taken from the same moments of the machine.
    let one = [
        Row::new("raw tarpc echo (64 B), to another process, 1 thread", 1, apart),
        Row::new("raw tarpc echo (64 B), in the bench's process, 1 thread", 1, together),
        Row::new("null read on node 2, asked of node 2, 1 thread", 1, call(&at2, &b, "visits", vec![])),
        Row::new("null read on node 2, routed client (entry node 1)", 1, call(&routed, &b, "visits", vec![])),
        Row::new("null read on node 2, asked of node 1 (forwarded), 1 thread", 1, call(&via1, &b, "visits", vec![])),
        Row::new(
            "nested: node 1 -> node 2 (1 hop out and back), 1 thread",
            1,
            call(&via1, &a, "look", one_hop.clone()),
        ),
        Row::new("nested: node 1 -> node 2 -> node 3 (3 objects)", 1, call(&via1, &a, "look", three_hops)),
    ];
    let many = |threads: usize| {
        [
            Row::new(
                format!("null read on node 2, asked of node 2, {threads} threads"),
                threads,
                call(&at2, &b, "visits", vec![]),
            ),
            Row::new(
                format!("null read on node 2, asked of node 1 (forwarded), {threads} threads"),
                threads,
                call(&via1, &b, "visits", vec![]),
            ),
            Row::new(
                format!("nested: node 1 -> node 2 (1 hop out and back), {threads} threads"),
                threads,
                call(&via1, &a, "look", one_hop.clone()),
            ),
        ]
    };
    // This process and the three nodes: what each spends per call.
    let meter = stats::CpuMeter::new(
        std::iter::once(std::process::id()).chain(pids.iter().filter_map(|p| p.parse().ok())).collect(),
    );
    Figures::print_header();
    let single = stats::interleaved_metered(&one, crate::ROUNDS, RUN, &meter).await;
    single.iter().for_each(Figures::print);
    let mut metered: Vec<Figures> = Vec::new();
    for threads in [64, 256] {
        let rows = stats::interleaved_metered(&many(threads), crate::ROUNDS, RUN, &meter).await;
        rows.iter().for_each(Figures::print);
        metered.extend(rows);
    }
    // The CPU each process spent per call (user + system time over the calls made): what a
    // call costs, steadier than its rate, which moves with the machine's mode. The echo
    // server's process is not counted.
    println!("\nCPU time per call, by process (from /proc, 10 ms ticks over each row's turns):\n");
    println!("| what | bench (the client) | node 1 | node 2 | node 3 | all |");
    println!("|---|---:|---:|---:|---:|---:|");
    for f in single.iter().skip(2).chain(&metered) {
        let per = f.cpu_per_op();
        let us = |d: Duration| format!("{:.1} us", d.as_secs_f64() * 1e6);
        let all: Duration = per.iter().sum();
        let cells: Vec<String> = per.iter().map(|d| us(*d)).collect();
        println!("| {} | {} | {} |", f.name(), cells.join(" | "), us(all));
    }
    drop(server.stdin.take());
    let _ = server.wait();
    let (echo_m, direct, forwarded, nested) =
        (single[0].median(), single[2].median(), single[4].median(), single[5].median());
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let hop = |with: Duration| with.saturating_sub(direct);
    println!(
        "\none thread, medians: a forwarded call adds {:.1} us to the direct read ({:.2}x the echo between \
         processes, {:.1} us); a nested call's hop out and back adds {:.1} us ({:.2}x)",
        us(hop(forwarded)),
        us(hop(forwarded)) / us(echo_m),
        us(echo_m),
        us(hop(nested)),
        us(hop(nested)) / us(echo_m),
    );
    println!();

    // Profiling rows (`BENCH_ROWS`, see `stats::interleaved`): the tables after them wait.
    if std::env::var_os("BENCH_ROWS").is_none() {
        by_name(&clouds, dir.path(), &nodes).await;
        placement_spread(&via1, &a).await;
    }

    let _ = Command::new(&clouds).args(["cluster", "down", "--dir"]).arg(dir.path()).output();
}

/// A read by name (`bench/x/r`, an object on node 2, asked of node 2): resolved and invoked
/// in one request, next to the client resolving it step by step first (as `clouds invoke`
/// did before), with the round trips each costs.
async fn by_name(clouds: &std::path::Path, dir: &std::path::Path, nodes: &[SocketAddr]) {
    let wallet = dir.join("bench.wallet");
    let create = Command::new(clouds)
        .arg("--node")
        .arg(nodes[0].to_string())
        .arg("--wallet")
        .arg(&wallet)
        .args(["create", "Relay", "--on", "2", "--name", "bench/x/r"])
        .output()
        .expect("clouds create");
    if !create.status.success() {
        // Only the administrator (the wallet that ran `cluster up`) reaches the root.
        println!("\n(by-name rows skipped: {})", String::from_utf8_lossy(&create.stderr).trim());
        return;
    }
    let wallet = std::sync::Arc::new(client::Wallet::open(&wallet).expect("wallet"));
    let client = Client::connect_with(nodes[1], client::CONNECT_TIMEOUT, wallet).await.expect("connect");
    let path: naming::Path = "bench/x/r".parse().expect("path");
    let (one, before) = (client.clone(), client.requests_sent());
    let p = path.clone();
    client.invoke_path_json(&p, "visits", &[], None, false).await.expect("by name");
    let trips = client.requests_sent() - before;
    let one = measure_concurrent("read by name a/b/c, one request (resolved on the node)", 1, RUN, move |_| {
        let (client, path) = (one.clone(), path.clone());
        async move {
            client.invoke_path_json(&path, "visits", &[], None, false).await.expect("by name");
        }
    })
    .await;
    let step = client.clone();
    let path: naming::Path = "bench/x/r".parse().expect("path");
    let before = client.requests_sent();
    let steps = move |_| {
        let (client, path) = (step.clone(), path.clone());
        async move {
            let root = RawRef::new(client.status().await.expect("status").root);
            let entry = naming::resolve(&client.ctx(), &root, &path).await.expect("resolve");
            client.invoke_json(&entry.raw(), "visits", &[], None).await.expect("invoke");
        }
    };
    steps(0).await;
    let step_trips = client.requests_sent() - before;
    let stepwise = measure_concurrent("read by name a/b/c, resolved step by step first", 1, RUN, steps).await;
    one.print();
    stepwise.print();
    println!("\nround trips of one call by name: {trips} (one request) vs {step_trips} (step by step)");
}

/// How evenly 10 000 creations through node 1 spread over the three nodes under each
/// policy, 32 creators at once, while 16 threads keep calling an object on node 1 (so that
/// node 1 is the busy one).
async fn placement_spread(via1: &Client, busy: &RawRef) {
    const CREATIONS: usize = 10_000;
    println!(
        "\nplacement of {CREATIONS} creations through node 1 (32 creators; 16 threads calling an object on node 1):\n"
    );
    println!("| policy | node-1 | node-2 | node-3 | max / mean | creations/s |");
    println!("|---|---|---|---|---|---|");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..16)
        .map(|_| {
            let (client, target, stop) = (via1.clone(), busy.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ =
                        client.invoke_on(ThreadCtx::new(30_000), &target, "visits", Codec::Binary, vec![], None).await;
                }
            })
        })
        .collect();
    // Node 1's load shows in gossip, and the earlier rows' load on node 2 decays (3 s time constant).
    tokio::time::sleep(Duration::from_secs(20)).await;
    // The node's balancer may have moved the busy object meanwhile (rebalancing is on): the
    // busy node is where it is now.
    let busy_on = via1.locate(busy.id).await.map_or_else(|e| format!("unknown ({e})"), |n| n.to_string());

    for policy in [Placement::Random, Placement::LeastLoaded, Placement::TwoChoices] {
        let started = std::time::Instant::now();
        let counts = std::sync::Arc::new(std::sync::Mutex::new([0usize; 3]));
        let creators: Vec<_> = (0..32)
            .map(|_| {
                let (client, policy, counts) = (via1.clone(), policy.clone(), counts.clone());
                tokio::spawn(async move {
                    for _ in 0..CREATIONS / 32 {
                        let made = client.create_placed("Counter", InitialState::Default, policy.clone()).await;
                        let home = made.expect("create").id.home().0 as usize;
                        counts.lock().expect("counts")[home - 1] += 1;
                    }
                })
            })
            .collect();
        for c in creators {
            c.await.expect("creator");
        }
        let rate = (CREATIONS / 32 * 32) as f64 / started.elapsed().as_secs_f64();
        let c = *counts.lock().expect("counts");
        let mean = c.iter().sum::<usize>() as f64 / 3.0;
        let max = *c.iter().max().expect("three") as f64;
        println!("| {policy} | {} | {} | {} | {:.2} | {rate:.0} |", c[0], c[1], c[2], max / mean);
    }
    println!("\n(the object the 16 threads call was on {busy_on} when the creations started)");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for l in load {
        let _ = l.await;
    }
}
