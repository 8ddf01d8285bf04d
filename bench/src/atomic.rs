//! Section 8: atomic transfers between accounts on two nodes of the in-process cluster,
//! next to the same transfer without the label (each write commits on its own) in the
//! same run; and deadlock victims among crossing atomic transfers.

use clouds::{methods, Ctx, InvokeError, Object, RawRef, Ref};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tests::network::Network;

const RUN: Duration = Duration::from_secs(2);
const DEADLINE: Duration = Duration::from_secs(30);

/// `stdobjects::Account`'s transfer without `#[atomic]`: the baseline.
#[derive(Object, Default, Serialize, Deserialize)]
pub struct PlainAccount {
    balance: u64,
}

#[methods]
impl PlainAccount {
    pub fn balance(&self) -> u64 {
        self.balance
    }

    pub fn deposit(&mut self, amount: u64) -> u64 {
        self.balance += amount;
        self.balance
    }

    pub async fn transfer(&mut self, ctx: &Ctx, to: Ref<PlainAccount>, amount: u64) -> Result<u64, InvokeError> {
        if amount > self.balance {
            return Err(InvokeError::invalid("insufficient funds"));
        }
        self.balance -= amount;
        to.deposit(ctx, amount).await?;
        Ok(self.balance)
    }
}

fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

async fn accounts(net: &Network, class: &str, n: usize) -> Vec<RawRef> {
    let mut out = Vec::new();
    for i in 0..n {
        let a = net.create(1, class, 1 + (i % 2) as u16).await;
        net.invoke(1, &a, "deposit", json!([1_000_000_000u64]), DEADLINE).await.expect("opening deposit");
        out.push(a);
    }
    out
}

/// `threads` threads transferring for `RUN` from accounts on node 1 to accounts on node 2
/// (each thread its own pair, so that none waits for another): transfers/s, p50, p99.
async fn transfers(net: &Arc<Network>, class: &str, threads: usize) -> (f64, u64, u64) {
    let accs = accounts(net, class, threads * 2).await;
    let stop = Arc::new(AtomicBool::new(false));
    let lat = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let tasks: Vec<_> = (0..threads)
        .map(|t| {
            let (net, stop, lat) = (net.clone(), stop.clone(), lat.clone());
            let (from, to) = (accs[2 * t].clone(), accs[2 * t + 1].clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let began = Instant::now();
                    net.invoke(1, &from, "transfer", json!([to, 1]), DEADLINE).await.expect("a transfer");
                    lat.lock().expect("latencies").push(began.elapsed().as_micros() as u64);
                }
            })
        })
        .collect();
    tokio::time::sleep(RUN).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("a thread");
    }
    let mut lat = lat.lock().expect("latencies").clone();
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    (lat.len() as f64 / started.elapsed().as_secs_f64(), pct(0.5), pct(0.99))
}

/// 16 threads of crossing atomic transfers among `n` accounts: deadlock victims per 1 000
/// transfers done.
async fn victims(net: &Arc<Network>, n: usize) -> (u64, u64) {
    let accs = Arc::new(accounts(net, "Account", n).await);
    let (done, victims) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let tasks: Vec<_> = (0..16usize)
        .map(|w| {
            let (net, accs, done, victims) = (net.clone(), accs.clone(), done.clone(), victims.clone());
            tokio::spawn(async move {
                for t in 0..60usize {
                    let (from, to) = ((w * 3 + t) % n, (w * 7 + t * 5 + 1) % n);
                    if from == to {
                        continue;
                    }
                    loop {
                        match net
                            .invoke(1 + (t % 2) as u16, &accs[from], "transfer", json!([accs[to], 1]), DEADLINE)
                            .await
                        {
                            Ok(_) => break,
                            Err(InvokeError::Deadlock { .. }) => {
                                victims.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => panic!("a crossing transfer: {e}"),
                        }
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("a thread");
    }
    (done.load(Ordering::Relaxed), victims.load(Ordering::Relaxed))
}

pub async fn run() {
    println!("\n## 8. Atomic transfers, in-process cluster of 2 nodes (withdraw on node 1, deposit on node 2)\n");
    let net = Arc::new(
        Network::start_with(2, |_| objectd::Registry::standard().with::<PlainAccount>().expect("a class")).await,
    );
    println!("| {:>7} | {:<22} | {:>12} | {:>10} | {:>10} |", "threads", "transfer", "transfers/s", "p50", "p99");
    println!("|{:-<9}|{:-<24}|{:-<14}|{:-<12}|{:-<12}|", "", "", "", "", "");
    for threads in [1, 16, 64] {
        for (class, label) in [("PlainAccount", "without the label"), ("Account", "#[atomic]")] {
            let (rate, p50, p99) = transfers(&net, class, threads).await;
            println!("| {threads:>7} | {label:<22} | {rate:>12.0} | {:>10} | {:>10} |", ms(p50), ms(p99));
        }
    }
    println!("\n| accounts | transfers | deadlock victims | per 1 000 |");
    println!("|---:|---:|---:|---:|");
    for n in [8, 64] {
        let (done, v) = victims(&net, n).await;
        println!("| {n} | {done} | {v} | {:.0} |", v as f64 * 1000.0 / done.max(1) as f64);
    }
}
