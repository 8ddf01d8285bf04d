//! Node memory with many objects stored (`bench -- memory`).
//!
//! The store of 1 000 000 `Counter`s is written first; a child process (this binary,
//! `memory-node DIR`) then opens it as a node does (store and engine) and reports its
//! resident memory when started, after reading every object once, and after writing a
//! tenth of them, so that nothing the writing of the store left behind counts.
//! `BENCH_STORE_CACHE_MIB=N` gives sled's page cache another size than the node's default.

use crate::{invocation, RUN};
use objectd::engine::peers::Alone;
use objectd::engine::Guard;
use objectd::store::{Store, Unit};
use objectd::{Config, Durability, Engine, Registry, SledStore};
use protocol::identity::Identity;
use std::sync::Arc;
use std::time::{Duration, Instant};

const OBJECTS: usize = 1_000_000;

/// Resident memory of this process, in MiB.
fn rss_mib() -> f64 {
    crate::cluster::memory_kib("self", "Rss") as f64 / 1024.0
}

pub fn run() {
    println!("\n## Node memory with {OBJECTS} objects stored (store and engine in a process of their own)\n");
    let dir = tempfile::tempdir().expect("temp dir");
    let began = Instant::now();
    {
        let store = SledStore::open(dir.path()).expect("store");
        let units: Vec<Unit> = (0..OBJECTS)
            .map(|_| Unit::Create {
                id: clouds::ObjectId::new(clouds::NodeId(1)),
                class: "Counter".into(),
                state: vec![0],
            })
            .collect();
        for group in units.chunks(10_000) {
            assert!(store.apply_group(group).expect("store").iter().all(Result::is_ok));
        }
        store.flush().expect("flush");
    }
    println!("(store written in {:.1} s)\n", began.elapsed().as_secs_f64());
    // sled lets go of its lock a little after the drop.
    std::thread::sleep(Duration::from_millis(500));
    let exe = std::env::current_exe().expect("this binary");
    let out = std::process::Command::new(exe).arg("memory-node").arg(dir.path()).output().expect("child");
    print!("{}", String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        println!("the node process failed: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// The child: a node's store and engine on `dir`, its memory at each step.
pub fn node(dir: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let before = rss_mib();
        let mut config = Config::for_test(std::path::PathBuf::from(dir));
        config.durability = Durability::ProcessCrash;
        if let Some(mib) = std::env::var("BENCH_STORE_CACHE_MIB").ok().and_then(|v| v.parse().ok()) {
            config.store_cache_mib = mib;
        }
        let store = Arc::new(SledStore::open_for(&config).expect("store"));
        let identity = Arc::new(Identity::ephemeral(config.id));
        let cache = config.cache_objects;
        let engine = Engine::start(&config, store.clone(), Registry::standard(), Guard::unchecked(identity), {
            Arc::new(Alone(config.id))
        })
        .await
        .expect("engine");
        println!("sled page cache: {} MiB (`store_cache_mib`)\n", config.store_cache_mib);
        println!("| step | RSS | per object stored |");
        println!("|---|---:|---:|");
        let row = |step: &str, mib: f64| {
            println!("| {step} | {mib:.1} MiB | {:.0} B |", (mib - before) * 1048576.0 / OBJECTS as f64);
        };
        row("process before the node opens its store", before);
        row("store and engine open", rss_mib());
        // The harness's list of ids (16 B each) is not the node's memory, but counts here.
        let mut ids = Vec::with_capacity(OBJECTS);
        let mut after = None;
        loop {
            let page = store.list(after, 100_000).expect("list");
            let Some(last) = page.last().copied() else { break };
            after = Some(last);
            ids.extend(page);
        }
        let ids: Arc<Vec<clouds::ObjectId>> = Arc::new(ids);
        row("every id listed (the harness keeps them: 15 MiB)", rss_mib());
        let touch = |method: &'static str, count: usize| {
            let (engine, ids) = (engine.clone(), ids.clone());
            async move {
                let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
                let workers: Vec<_> = (0..16)
                    .map(|_| {
                        let (engine, ids, next) = (engine.clone(), ids.clone(), next.clone());
                        let args = if method == "incr" { postcard::to_stdvec(&(1i64,)).unwrap() } else { vec![] };
                        tokio::spawn(async move {
                            loop {
                                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                if i >= count {
                                    return;
                                }
                                let target = clouds::RawRef { id: ids[i], cap: None };
                                engine.invoke(invocation(&target, method, args.clone())).await.expect("invoke");
                            }
                        })
                    })
                    .collect();
                for w in workers {
                    w.await.expect("worker");
                }
            }
        };
        let t = Instant::now();
        touch("get", OBJECTS).await;
        let read = t.elapsed();
        row(&format!("every object read once ({:.1} s; {cache} stay decoded)", read.as_secs_f64()), rss_mib());
        let t = Instant::now();
        touch("incr", OBJECTS / 10).await;
        let wrote = t.elapsed();
        row(&format!("a tenth of them written once ({:.1} s)", wrote.as_secs_f64()), rss_mib());
        tokio::time::sleep(RUN).await;
        row("2 s later", rss_mib());
    });
}
