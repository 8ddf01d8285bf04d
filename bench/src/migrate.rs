//! Section 7: live migration between two nodes of the in-process cluster (`tests::network`:
//! engines on their own sled stores, joined by the router), 16 callers writing to the
//! object all the while; next to pushing the same bytes through one loopback TCP socket in
//! the same run.

use clouds::{Codec, RawRef};
use protocol::migration::Strategy;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tests::network::Network;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MIB: usize = 1 << 20;
const WRITERS: usize = 16;
const DEADLINE: Duration = Duration::from_secs(60);

fn pct(sorted: &[u64], p: f64) -> u64 {
    sorted.get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1))).copied().unwrap_or(0)
}

fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

/// MB/s of `bytes` pushed through one loopback TCP connection.
async fn tcp_push(bytes: usize) -> f64 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("listen");
    let addr = listener.local_addr().expect("addr");
    let sink = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.expect("accept");
        let mut buf = vec![0u8; MIB];
        let mut got = 0;
        while got < bytes {
            got += s.read(&mut buf).await.expect("read");
        }
        s.write_all(b"k").await.expect("ack");
    });
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let chunk = vec![7u8; MIB];
    let started = Instant::now();
    for _ in 0..bytes / MIB {
        s.write_all(&chunk).await.expect("write");
    }
    let mut ack = [0u8; 1];
    s.read_exact(&mut ack).await.expect("ack");
    sink.await.expect("sink");
    bytes as f64 / 1e6 / started.elapsed().as_secs_f64()
}

async fn fill(net: &Network, blob: &RawRef, size: usize) {
    let mut offset = 0;
    while offset < size {
        let n = MIB.min(size - offset);
        let args = postcard::to_stdvec(&(offset as u64, vec![offset as u8; n])).expect("args");
        net.invoke_encoded(1, blob, "write_at", Codec::Binary, args, DEADLINE).await.expect("fill");
        offset += n;
    }
}

pub async fn run() {
    println!("\n## 7. Live migration, in-process cluster of 2 nodes, {WRITERS} callers writing 4 KiB at a time\n");
    for size in [64 * MIB, 256 * MIB] {
        println!("raw TCP push of {} MiB over loopback: {:.0} MB/s", size / MIB, tcp_push(size).await);
    }
    println!();
    println!(
        "| {:>8} | {:<8} | {:>6} | {:>11} | {:>11} | {:>11} | {:>9} | {:>6} | {:>12} | {:>11} | {:>11} |",
        "size",
        "strategy",
        "moves",
        "freeze p50",
        "freeze p99",
        "total p50",
        "MB/s",
        "rounds",
        "writer p99",
        "first call",
        "residual"
    );
    println!(
        "|{:-<10}|{:-<10}|{:-<8}|{:-<13}|{:-<13}|{:-<13}|{:-<11}|{:-<8}|{:-<14}|{:-<13}|{:-<13}|",
        "", "", "", "", "", "", "", "", "", "", ""
    );
    // Each row in a process of its own: sled databases of earlier rows linger in a process
    // after they are dropped (their background threads), and a later row could stall on them.
    let exe = std::env::current_exe().expect("bench binary");
    let mut rows = vec![(0, 0, Strategy::Eager)];
    for (size, moves) in [(4 * 1024, 10), (MIB, 10), (64 * MIB, 4), (256 * MIB, 2)] {
        rows.extend([(size, moves, Strategy::Eager), (size, moves, Strategy::Precopy), (size, moves, Strategy::Lazy)]);
    }
    for (size, moves, strategy) in rows {
        let out = std::process::Command::new(&exe)
            .args(["migrate-row", &size.to_string(), &moves.to_string(), &strategy.to_string()])
            .output()
            .expect("a bench row");
        print!("{}", String::from_utf8_lossy(&out.stdout));
        if !out.status.success() {
            println!("| {size} bytes, {strategy}: failed: {} |", String::from_utf8_lossy(&out.stderr).trim());
        }
    }
    println!("\n(size 0: the writers alone, no move: their latency without a migration. Lazy: MB/s is the");
    println!("pull's, over the residual time; first call: from the switch to a read served at the new");
    println!("node that fetched its page; residual: from the switch until every page was pulled)");
}

/// `bench migrate-row SIZE MOVES STRATEGY`: one row of the table.
pub async fn one_row(args: &[String]) {
    let size = args[0].parse().expect("size");
    let moves = args[1].parse().expect("moves");
    let strategy = args[2].parse().expect("strategy");
    row(size, moves, strategy).await;
}

/// `moves` moves of a blob of `size` bytes back and forth between the two nodes, with the
/// writers running; size 0: the writers alone, on a 1 MiB blob, for the latency baseline.
async fn row(size: usize, moves: usize, strategy: Strategy) {
    let net = Arc::new(Network::start(2).await);
    let blob = net.create(1, "Blob", 1).await;
    let span = size.max(MIB);
    fill(&net, &blob, span).await;
    let stop = Arc::new(AtomicBool::new(false));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (net, blob, stop, latencies) = (net.clone(), blob.clone(), stop.clone(), latencies.clone());
            tokio::spawn(async move {
                let mut i = w;
                while !stop.load(Ordering::Relaxed) {
                    let offset = (i * 4096) % span.saturating_sub(4096).max(1);
                    let args = postcard::to_stdvec(&(offset as u64, vec![w as u8; 4096])).expect("args");
                    let started = Instant::now();
                    net.invoke_encoded(1, &blob, "write_at", Codec::Binary, args, DEADLINE).await.expect("a write");
                    latencies.lock().expect("latencies").push(started.elapsed().as_micros() as u64);
                    i += WRITERS;
                }
            })
        })
        .collect();
    let (mut freeze, mut total, mut bytes, mut rounds) = (Vec::new(), Vec::new(), 0u64, 0u32);
    let (mut first, mut residual) = (Vec::new(), Vec::new());
    if moves == 0 {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    for m in 0..moves {
        let (from, to) = if m % 2 == 0 { (1, 2) } else { (2, 1) };
        let report = net.migrate(from, &blob, to, strategy).await.expect("a move");
        freeze.push(report.freeze_us);
        total.push(report.total_us);
        bytes += report.bytes;
        rounds += report.rounds;
        if strategy == Strategy::Lazy {
            let switched = Instant::now();
            let args = postcard::to_stdvec(&(0u64, 4096u64)).expect("args");
            net.invoke_encoded(to, &blob, "read_at", Codec::Binary, args, DEADLINE).await.expect("a first read");
            first.push(switched.elapsed().as_micros() as u64);
            pulled(&net, &blob, to).await;
            residual.push(switched.elapsed().as_micros() as u64);
        }
    }
    let lazy = strategy == Strategy::Lazy && moves > 0;
    if lazy {
        bytes = (span * moves) as u64;
        total.clone_from(&residual);
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.expect("writer");
    }
    let mut lat = latencies.lock().expect("latencies").clone();
    lat.sort_unstable();
    freeze.sort_unstable();
    total.sort_unstable();
    let size_text = if size == 0 {
        "0".to_string()
    } else if size < MIB {
        format!("{} KiB", size / 1024)
    } else {
        format!("{} MiB", size / MIB)
    };
    let rate = if total.is_empty() { 0.0 } else { bytes as f64 / total.iter().sum::<u64>() as f64 };
    let total_p50 = if lazy { String::new() } else { ms(pct(&total, 0.5)) };
    first.sort_unstable();
    residual.sort_unstable();
    let lazy_cell = |v: &[u64]| if lazy { ms(pct(v, 0.5)) } else { String::new() };
    println!(
        "| {:>8} | {:<8} | {:>6} | {:>11} | {:>11} | {:>11} | {:>9.0} | {:>6} | {:>12} | {:>11} | {:>11} |",
        size_text,
        if moves == 0 { "none".to_string() } else { strategy.to_string() },
        moves,
        ms(pct(&freeze, 0.5)),
        ms(pct(&freeze, 0.99)),
        total_p50,
        rate,
        if moves == 0 { 0.0 } else { rounds as f64 / moves as f64 },
        ms(pct(&lat, 0.99)),
        lazy_cell(&first),
        lazy_cell(&residual),
    );
}

/// Waits until the lazy move of `blob` to node `at` has pulled every page (at most 10 min).
async fn pulled(net: &Network, blob: &RawRef, at: u16) {
    for _ in 0..120_000 {
        let body = protocol::RequestBody::Describe(blob.clone());
        if let Ok(protocol::ResponseBody::Described(info)) =
            net.engine(at).handle(objectd::engine::Origin::Caller, body).await
        {
            if info.residual.is_none() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the lazy move did not finish pulling");
}
