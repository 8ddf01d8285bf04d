//! `cargo run --release -p bench`: measures the node and prints figures, each next to a
//! baseline measured in the same run on the same machine. Not a test: no thresholds.
//!
//! 1. Same-node invocation (engine, no network) vs a plain method call behind a lock.
//! 2. Durable write invocations/s at 1, 16, 64, 256 concurrent callers vs raw sled
//!    insert + flush, and vs a raw sled 3-tree transaction + flush (what one atomic
//!    commit costs without group commit), at the same concurrency.
//! 3. Client-to-node invocation over tarpc on loopback (encrypted, as every connection is)
//!    vs a raw tarpc echo, plain and over the same encrypted channel.
//! 4. Transport choices: TCP_NODELAY on/off, multi-thread vs current-thread runtime.
//! 5. A 256 MiB Blob written and read back in 4 MiB calls.
//! 6. A real 3-node cluster: remote and nested invocations, idle memory (needs the release
//!    node binaries: `cargo build --release --workspace --bins`).
//! 7. What capability checks cost: the same invocation with checks off (an engine built
//!    with `Guard::unchecked`, which only this harness uses), with a cached verified chain,
//!    and with every call's token new to the node (chains of 1 and 3 links).
//!
//! 8. Atomic transfers (`atomic`); 9. rebalancing, affinity and drain (`balance`).
//! 10. Load dissemination schemes compared in a seeded simulation (`dissemination`).
//! 11. Node memory with 1 000 000 objects stored (`memory`).
//!
//! Sections by name: `node durable tarpc transport blob cluster caps migrate atomic balance
//! dissemination memory observe startup create`; none named runs all.

mod atomic;
mod balance;
mod cluster;
mod dissemination;
mod memory;
mod migrate;
mod observe;
mod stats;

use clouds::{Codec, RawRef, Rights, ThreadCtx};
use futures::StreamExt;
use objectd::engine::peers::Alone;
use objectd::engine::Guard;
use objectd::{Config, Durability, Engine, Registry, SledStore};
use protocol::identity::Identity;
use protocol::wire::{InitialState, Invocation};
use protocol::Placement;
use sled::Transactional;
use stats::{measure_concurrent, measure_latency, Figures};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tarpc::server::{BaseChannel, Channel};

const RUN: Duration = Duration::from_secs(2);

async fn engine(durability: Durability) -> (Engine, tempfile::TempDir) {
    engine_guarded(durability, Guard::new).await
}

async fn engine_guarded(
    durability: Durability,
    guard: impl FnOnce(Arc<Identity>) -> Guard,
) -> (Engine, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::for_test(dir.path().to_path_buf());
    config.durability = durability;
    let store = Arc::new(SledStore::open_synced(dir.path(), durability == Durability::PowerLoss).expect("store"));
    let identity = Arc::new(Identity::ephemeral(config.id));
    (
        Engine::start(&config, store, Registry::standard(), guard(identity), Arc::new(Alone(config.id)))
            .await
            .expect("engine"),
        dir,
    )
}

/// A new object of `class` on `engine`, with its owner capability.
async fn create(engine: &Engine, class: &str) -> RawRef {
    let owner = capability::KeyPair::generate().public();
    engine.create(class, InitialState::Default, Placement::Local, owner).await.expect("create")
}

fn invocation(target: &RawRef, method: &str, args: Vec<u8>) -> Invocation {
    Invocation {
        thread: ThreadCtx::new(30_000),
        target: target.id,
        method: method.into(),
        codec: Codec::Binary,
        args,
        call_id: None,
        capability: target.cap.clone(),
    }
}

async fn same_node() {
    println!("\n## 1. Same-node invocation (in-process engine, binary codec)\n");
    let (engine, _dir) = engine(Durability::Buffered).await;
    let id = create(&engine, "Counter").await;
    let plain = Arc::new(Mutex::new(0i64));

    let p = plain.clone();
    Figures::print_header();
    measure_latency("plain call behind a Mutex (read)", RUN, || {
        let p = p.clone();
        async move {
            std::hint::black_box(*p.lock().unwrap());
        }
    })
    .await
    .print();
    let e = engine.clone();
    let id = Arc::new(id);
    let read = id.clone();
    measure_latency("Counter.get invocation (read)", RUN, || {
        let (e, id) = (e.clone(), read.clone());
        async move {
            e.invoke(invocation(&id, "get", vec![])).await.unwrap();
        }
    })
    .await
    .print();
    let p = plain.clone();
    measure_latency("plain call behind a Mutex (write)", RUN, || {
        let p = p.clone();
        async move {
            *p.lock().unwrap() += 1;
        }
    })
    .await
    .print();
    let e = engine.clone();
    let one = postcard::to_stdvec(&(1i64,)).unwrap();
    measure_latency("Counter.incr invocation (write, buffered)", RUN, || {
        let (e, one, id) = (e.clone(), one.clone(), id.clone());
        async move {
            e.invoke(invocation(&id, "incr", one)).await.unwrap();
        }
    })
    .await
    .print();
}

async fn durable_writes() {
    println!("\n## 2. Durable writes (group commit) at each durability level vs raw sled insert + flush, and the fdatasync floor\n");
    Figures::print_header();
    // The disk's floor: one 8-byte write and fdatasync at a time, on a file of its own.
    let dir = tempfile::tempdir().unwrap();
    let file = Arc::new(std::fs::File::create(dir.path().join("floor")).unwrap());
    measure_concurrent("fdatasync floor: write 8 bytes + fdatasync, one at a time", 1, RUN, move |_| {
        let file = file.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                use std::io::Write;
                (&*file).write_all(&[1u8; 8]).unwrap();
                file.sync_data().unwrap();
            })
            .await
            .unwrap();
        }
    })
    .await
    .print();
    for callers in [1usize, 16, 64, 256] {
        for durability in [Durability::Buffered, Durability::ProcessCrash, Durability::PowerLoss] {
            let (engine, _dir) = engine(durability).await;
            let mut ids = Vec::new();
            for _ in 0..callers {
                ids.push(create(&engine, "Counter").await);
            }
            let one = postcard::to_stdvec(&(1i64,)).unwrap();
            let ids = Arc::new(ids);
            let e = engine.clone();
            let name = format!("Counter.incr ({durability}), {callers} callers, one object each");
            measure_concurrent(&name, callers, RUN, move |i| {
                let (e, one, ids) = (e.clone(), one.clone(), ids.clone());
                async move {
                    e.invoke(invocation(&ids[i], "incr", one)).await.unwrap();
                }
            })
            .await
            .print();
        }

        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let trees = Arc::new((db.open_tree("a").unwrap(), db.open_tree("b").unwrap(), db.open_tree("c").unwrap()));
        let next_key = Arc::new(AtomicU64::new(0));
        let (d, k) = (db.clone(), next_key.clone());
        measure_concurrent(&format!("raw sled insert + flush, {callers} callers"), callers, RUN, move |_| {
            let (db, key) = (d.clone(), k.fetch_add(1, Ordering::Relaxed));
            async move {
                tokio::task::spawn_blocking(move || {
                    db.insert(key.to_be_bytes(), &[1u8; 8]).unwrap();
                    db.flush().unwrap();
                })
                .await
                .unwrap();
            }
        })
        .await
        .print();
        let (d, k) = (db.clone(), next_key.clone());
        measure_concurrent(
            &format!("raw sled 3-tree transaction + flush, {callers} callers"),
            callers,
            RUN,
            move |_| {
                let (db, trees, key) = (d.clone(), trees.clone(), k.fetch_add(1, Ordering::Relaxed));
                async move {
                    tokio::task::spawn_blocking(move || {
                        let (a, b, c) = &*trees;
                        (a, b, c)
                            .transaction(|(a, _, _)| {
                                a.insert(&key.to_be_bytes(), &[1u8; 8])?;
                                Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
                            })
                            .unwrap();
                        db.flush().unwrap();
                    })
                    .await
                    .unwrap();
                }
            },
        )
        .await
        .print();
    }
}

#[tarpc::service]
trait Echo {
    async fn echo(payload: Vec<u8>) -> Vec<u8>;
}

#[derive(Clone)]
struct EchoServer;

impl Echo for EchoServer {
    async fn echo(self, _: tarpc::context::Context, payload: Vec<u8>) -> Vec<u8> {
        payload
    }
}

/// A raw tarpc echo server on 127.0.0.1 and a client connected to it.
async fn echo_pair(nodelay: bool) -> EchoClient {
    echo_pair_over(nodelay, false).await
}

/// An echo server and a client of it; `encrypted`: over the nodes' encrypted channel
/// (`protocol::secure`), as every Clouds connection is.
async fn echo_pair_over(nodelay: bool, encrypted: bool) -> EchoClient {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_echo_on(listener, nodelay, encrypted));
    echo_client_of(addr, nodelay, encrypted).await
}

/// Serves the echo to every connection `listener` accepts.
async fn serve_echo_on(listener: tokio::net::TcpListener, nodelay: bool, encrypted: bool) {
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        stream.set_nodelay(nodelay).unwrap();
        tokio::spawn(async move {
            if encrypted {
                let secure = protocol::secure::accept(stream).await.unwrap();
                serve_echo(secure).await;
            } else {
                serve_echo(stream).await;
            }
        });
    }
}

/// A client of the echo server at `addr`.
async fn echo_client_of(addr: std::net::SocketAddr, nodelay: bool, encrypted: bool) -> EchoClient {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(nodelay).unwrap();
    if encrypted {
        echo_client(protocol::secure::connect(stream).await.unwrap())
    } else {
        echo_client(stream)
    }
}

async fn serve_echo<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static>(stream: S) {
    let framed = tarpc::tokio_util::codec::Framed::new(stream, protocol::service::frame_codec());
    let transport = tarpc::serde_transport::new(framed, tarpc::tokio_serde::formats::Bincode::default());
    BaseChannel::with_defaults(transport)
        .execute(EchoServer.serve())
        .for_each(|r| async move {
            tokio::spawn(r);
        })
        .await;
}

fn echo_client<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static>(stream: S) -> EchoClient {
    let framed = tarpc::tokio_util::codec::Framed::new(stream, protocol::service::frame_codec());
    let transport = tarpc::serde_transport::new(framed, tarpc::tokio_serde::formats::Bincode::default());
    EchoClient::new(tarpc::client::Config::default(), transport).spawn()
}

/// Echo figures at 1 and 64 in flight, in whatever runtime runs this.
async fn echo_figures(label: &str, nodelay: bool) -> Vec<stats::Figures> {
    echo_figures_at(label, nodelay, &[1, 64]).await
}

/// Echo figures at the given numbers in flight.
pub(crate) async fn echo_figures_at(label: &str, nodelay: bool, inflight: &[usize]) -> Vec<stats::Figures> {
    let echo = echo_pair(nodelay).await;
    let mut out = Vec::new();
    for &concurrency in inflight {
        let e = echo.clone();
        out.push(
            measure_concurrent(&format!("{label}, {concurrency} in flight"), concurrency, RUN, move |_| {
                let e = e.clone();
                async move {
                    e.echo(tarpc::context::current(), vec![0u8; 64]).await.unwrap();
                }
            })
            .await,
        );
    }
    out
}

/// How the socket option and the runtime flavour change a round trip on this machine:
/// the measurements behind objectd's choices (NODELAY on, multi-thread runtime).
fn transport_choices() {
    println!("\n## 4. Transport choices: raw tarpc echo (64 B) on 127.0.0.1\n");
    Figures::print_header();
    for nodelay in [true, false] {
        let flag = if nodelay { "NODELAY on" } else { "NODELAY off" };
        let multi = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        for f in multi.block_on(echo_figures(&format!("multi-thread runtime, {flag}"), nodelay)) {
            f.print();
        }
        drop(multi);
        let single = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        for f in single.block_on(echo_figures(&format!("current-thread runtime, {flag}"), nodelay)) {
            f.print();
        }
    }
}

/// An engine served over tarpc on 127.0.0.1, a client of it, and a `Counter` to call.
struct Served {
    engine: Engine,
    addr: std::net::SocketAddr,
    client: client::Client,
    counter: RawRef,
    _dir: tempfile::TempDir,
}

async fn served(durability: Durability) -> Served {
    let (engine, _dir) = engine(durability).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(objectd::rpc::serve(listener, engine.clone(), std::future::pending(), Duration::from_secs(1)));
    let client = client::Client::connect(addr).await.expect("connect");
    let counter = client.create("Counter", InitialState::Default).await.expect("create");
    Served { engine, addr, client, counter, _dir }
}

/// A 256 MiB blob written and read back through the client in 4 MiB calls.
async fn big_blob() {
    println!("\n## 5. A 256 MiB Blob over tarpc, in 4 MiB calls (process-crash durability)\n");
    let Served { client, .. } = served(Durability::ProcessCrash).await;
    let ctx = client.ctx();
    let blob: clouds::Ref<stdobjects::Blob> = ctx.create(&stdobjects::Blob::default()).await.unwrap();
    const CHUNK: u64 = 4 << 20;
    const TOTAL: u64 = 256 << 20;
    let chunk = |i: u64| -> Vec<u8> { (0..CHUNK).map(|j| ((i * 31 + j) % 251) as u8).collect() };
    let t = std::time::Instant::now();
    for i in 0..TOTAL / CHUNK {
        blob.write_at(&ctx, i * CHUNK, chunk(i)).await.unwrap();
    }
    let write = t.elapsed();
    let t = std::time::Instant::now();
    for i in 0..TOTAL / CHUNK {
        let back = blob.read_at(&ctx, i * CHUNK, CHUNK).await.unwrap();
        assert!(back == chunk(i), "chunk {i} read back differs");
    }
    let read = t.elapsed();
    let info = client.describe(blob.raw().clone()).await.unwrap();
    let mib = (TOTAL >> 20) as f64;
    println!("| write {mib} MiB | {:.1} s | {:.0} MiB/s |", write.as_secs_f64(), mib / write.as_secs_f64());
    println!("| read back and compare | {:.1} s | {:.0} MiB/s |", read.as_secs_f64(), mib / read.as_secs_f64());
    println!("| stored | {} pages | {} MiB |", info.pages, info.page_bytes >> 20);
}

/// `n` distinct capabilities for `object`, each a chain of `links` links, all granting
/// read: tokens the node has not seen, so every call verifies its chain.
/// `batched`: the first links signed `MAX_BATCH` at a time, as a node signs creations'.
fn fresh_tokens(engine: &Engine, object: &RawRef, n: usize, links: usize, batched: bool) -> Vec<clouds::Cap> {
    use capability::{batch::MAX_BATCH, Grant, KeyPair, Restrict, Token};
    let identity = engine.guard().identity();
    let holder = KeyPair::generate();
    let rights = Rights::READ.union(Rights::DELEGATE);
    // A different expiry makes each token (and its signatures) different.
    let grants: Vec<Grant> = (0..n)
        .map(|i| {
            let expires = Some(4_000_000_000 + i as u64);
            Grant { object: object.id, rights, methods: None, expires, epoch: 0, holder: holder.public() }
        })
        .collect();
    let firsts: Vec<Token> = if batched {
        grants.chunks(MAX_BATCH).flat_map(|g| Token::issue_batch(&identity.cert, &identity.key, g.to_vec())).collect()
    } else {
        grants.into_iter().map(|g| Token::issue(identity.cert.clone(), &identity.key, g)).collect()
    };
    firsts
        .into_iter()
        .map(|mut token| {
            for _ in 1..links {
                token = token.attenuate(&holder, Restrict::default(), holder.public()).expect("attenuate");
            }
            token.to_cap()
        })
        .collect()
}

async fn capability_checks() {
    println!("\n## 7. What capability checks cost (same-node Counter.get, in-process engine)\n");
    Figures::print_header();
    let (off, _d1) = engine_guarded(Durability::Buffered, Guard::unchecked).await;
    let target = Arc::new(create(&off, "Counter").await);
    let (e, t) = (off.clone(), target.clone());
    measure_latency("checks off (test build)", RUN, move || {
        let (e, t) = (e.clone(), t.clone());
        async move {
            e.invoke(invocation(&t, "get", vec![])).await.unwrap();
        }
    })
    .await
    .print();

    let (on, _d2) = engine(Durability::Buffered).await;
    let target = Arc::new(create(&on, "Counter").await);
    let (e, t) = (on.clone(), target.clone());
    measure_latency("checked, verified chain cached", RUN, move || {
        let (e, t) = (e.clone(), t.clone());
        async move {
            e.invoke(invocation(&t, "get", vec![])).await.unwrap();
        }
    })
    .await
    .print();
    let kinds = [(1usize, false, ""), (3, false, ""), (1, true, ", signed in batches of 32")];
    for (links, batched, how) in kinds {
        // More tokens than the cache holds, used in turn: every call misses.
        let tokens = Arc::new(fresh_tokens(&on, &target, 10_000, links, batched));
        let next = Arc::new(AtomicU64::new(0));
        let (e, t) = (on.clone(), target.clone());
        measure_latency(&format!("checked, uncached, {links}-link chain{how}"), RUN, move || {
            let (e, t, tokens) = (e.clone(), t.clone(), tokens.clone());
            let i = next.fetch_add(1, Ordering::Relaxed) as usize % tokens.len();
            async move {
                let r = RawRef { id: t.id, cap: Some(tokens[i].clone()) };
                e.invoke(invocation(&r, "get", vec![])).await.unwrap();
            }
        })
        .await
        .print();
    }
}

/// How long a node takes to open its store and start its engine, by how many objects it
/// holds: the store keeps its record count at each flush, so nothing is scanned.
async fn startup() {
    println!("\n## Start-up by objects stored (store open + engine start, release build)\n");
    println!("| objects stored | store open (sled) | engine start | store on disk |");
    println!("|---:|---:|---:|---:|");
    for n in [10_000usize, 200_000, 1_000_000] {
        let dir = tempfile::tempdir().expect("temp dir");
        {
            let store = SledStore::open_synced(dir.path(), false).expect("store");
            for _ in 0..n {
                objectd::store::Store::create(&store, clouds::ObjectId::new(clouds::NodeId(1)), "Counter", &[0])
                    .expect("create");
            }
            objectd::store::Store::flush(&store).expect("flush");
        }
        // sled lets go of its lock a little after the drop.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = std::time::Instant::now();
        let store = Arc::new(SledStore::open_synced(dir.path(), false).expect("store"));
        let opened = started.elapsed();
        let mut config = Config::for_test(dir.path().to_path_buf());
        config.durability = Durability::ProcessCrash;
        let identity = Arc::new(Identity::ephemeral(config.id));
        let engine = Engine::start(
            &config,
            store.clone(),
            Registry::standard(),
            Guard::new(identity),
            Arc::new(Alone(config.id)),
        )
        .await
        .expect("engine");
        let took = started.elapsed() - opened;
        let bytes = objectd::store::Store::size_on_disk(store.as_ref()).unwrap_or(0);
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!("| {n} | {:.1} ms | {:.1} ms | {} MiB |", ms(opened), ms(took), bytes >> 20);
        drop(engine);
    }
}

/// Creations per second through the client at `process-crash` durability (each one made
/// durable by the group commit and given an owner capability), next to a null read from
/// the same callers.
async fn creation() {
    println!("\n## Object creation through the client, 127.0.0.1\n");
    let Served { engine, client, counter: id, .. } = served(Durability::ProcessCrash).await;
    Figures::print_header();
    for callers in [1usize, 128] {
        let e = engine.clone();
        let owner = capability::KeyPair::generate().public();
        measure_concurrent(
            &format!("create Counter in the node's process, {callers} callers"),
            callers,
            RUN,
            move |_| {
                let e = e.clone();
                async move {
                    e.create("Counter", InitialState::Default, Placement::Local, owner).await.unwrap();
                }
            },
        )
        .await
        .print();
        if callers == 1 {
            // What each creation signs: an owner capability for its creator.
            let (e, id, holder) = (engine.clone(), id.id, capability::KeyPair::generate().public());
            measure_latency("issue an owner capability (one ed25519 signature)", RUN, move || {
                let e = e.clone();
                async move {
                    std::hint::black_box(e.guard().issue_owner(id, 0, holder));
                }
            })
            .await
            .print();
            // What creations asking at once sign: one signature for a batch of them.
            let (e, holder) = (engine.clone(), capability::KeyPair::generate().public());
            let batch = capability::batch::MAX_BATCH;
            measure_latency(&format!("issue {batch} owner capabilities at once (one batch)"), RUN, move || {
                let e = e.clone();
                async move {
                    let asked = (0..batch)
                        .map(|_| e.guard().issue_owner_batched(clouds::ObjectId::new(clouds::NodeId(1)), holder));
                    std::hint::black_box(futures::future::join_all(asked).await);
                }
            })
            .await
            .print();
        }
        let c = client.clone();
        measure_concurrent(&format!("create Counter, {callers} callers"), callers, RUN, move |_| {
            let c = c.clone();
            async move {
                c.create("Counter", InitialState::Default).await.unwrap();
            }
        })
        .await
        .print();
        let (c, id) = (client.clone(), id.clone());
        measure_concurrent(&format!("Counter.get (baseline), {callers} callers"), callers, RUN, move |_| {
            let (c, id) = (c.clone(), id.clone());
            async move {
                c.invoke_on(ThreadCtx::new(30_000), &id, "get", Codec::Binary, vec![], None).await.unwrap();
            }
        })
        .await
        .print();
    }
}

async fn over_tarpc() {
    println!("\n## 3. Client to node over tarpc on 127.0.0.1 vs a raw tarpc echo\n");
    let Served { addr, client, counter: id, .. } = served(Durability::Buffered).await;
    // The same node, through a connection whose bytes are not encrypted: what the
    // encryption costs a null invocation, side by side.
    protocol::secure::measure_unencrypted(true);
    let clear = client::Client::connect(addr).await.unwrap();
    protocol::secure::measure_unencrypted(false);
    let id = RawRef { id: id.id, cap: id.cap.clone() };
    clear.wallet().add(id.cap.as_ref().expect("an owner capability")).unwrap();

    let echo = echo_pair(true).await;
    let sealed = echo_pair_over(true, true).await;

    // The same bytes travel both ways: the invocation's payload size.
    let payload = vec![0u8; 64];
    Figures::print_header();
    for concurrency in [1usize, 64, 256] {
        let echo_row = |label: &str, e: &EchoClient| {
            let (e, p) = (e.clone(), payload.clone());
            stats::Row::new(format!("{label}, {concurrency} in flight"), concurrency, move |_| {
                let (e, p) = (e.clone(), p.clone());
                async move {
                    e.echo(tarpc::context::current(), p).await.unwrap();
                }
            })
        };
        let call_row = |label: &str, c: &client::Client| {
            let (c, id) = (c.clone(), id.clone());
            stats::Row::new(format!("Counter.get via client{label}, {concurrency} in flight"), concurrency, move |_| {
                let (c, id) = (c.clone(), id.clone());
                async move {
                    c.invoke_on(ThreadCtx::new(30_000), &id, "get", Codec::Binary, vec![], None).await.unwrap();
                }
            })
        };
        let rows = [
            echo_row("raw tarpc echo (64 B)", &echo),
            echo_row("raw tarpc echo (64 B), encrypted", &sealed),
            call_row("", &client),
            call_row(", unencrypted (measuring only)", &clear),
        ];
        let rows = stats::interleaved(&rows, ROUNDS, RUN).await;
        for f in &rows {
            f.print();
        }
        let (echo_f, call) = (&rows[0], &rows[2]);
        println!(
            "| -> Counter.get / plain echo: median {:.2}x, throughput {:.2}x; / encrypted echo: median {:.2}x, throughput {:.2}x |||",
            call.median().as_secs_f64() / echo_f.median().as_secs_f64(),
            call.ops_per_sec() / echo_f.ops_per_sec(),
            call.median().as_secs_f64() / rows[1].median().as_secs_f64(),
            call.ops_per_sec() / rows[1].ops_per_sec(),
        );
    }
    channel_ciphers();
}

/// What sealing and opening one small message costs with each cipher Noise offers: the
/// measurement behind the channel's choice of AES-GCM (`protocol::secure`).
fn channel_ciphers() {
    println!("\nseal + open of one 150-byte transport message (snow, one core):\n");
    println!("| pattern | per message |");
    println!("|---|---:|");
    for pattern in ["Noise_NN_25519_ChaChaPoly_BLAKE2s", "Noise_NN_25519_AESGCM_BLAKE2s"] {
        let params: snow::params::NoiseParams = pattern.parse().expect("a valid pattern");
        let mut i = snow::Builder::new(params.clone()).build_initiator().expect("initiator");
        let mut r = snow::Builder::new(params).build_responder().expect("responder");
        let (mut wire, mut plain) = (vec![0u8; 1024], vec![0u8; 1024]);
        let n = i.write_message(&[], &mut wire).expect("hello");
        r.read_message(&wire[..n], &mut plain).expect("hello read");
        let n = r.write_message(&[], &mut wire).expect("reply");
        i.read_message(&wire[..n], &mut plain).expect("reply read");
        let (mut i, mut r) = (i.into_transport_mode().expect("i"), r.into_transport_mode().expect("r"));
        let message = [7u8; 150];
        let rounds = 200_000u32;
        let began = std::time::Instant::now();
        for _ in 0..rounds {
            let n = i.write_message(&message, &mut wire).expect("seal");
            r.read_message(&wire[..n], &mut plain).expect("open");
        }
        println!("| `{pattern}` | {} |", stats::show(began.elapsed() / rounds));
    }
}

/// How many turns each row of an interleaved section takes.
pub(crate) const ROUNDS: u32 = 5;

// The nodes' allocator (`objectd::daemon::Allocator`), here too: the harness's own node
// (`memory-node`, the in-process rows) and its baselines run on what a node runs on.
#[global_allocator]
static ALLOCATOR: objectd::daemon::Allocator = objectd::daemon::Allocator;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "observe-traced") {
        return observe::traced_rows();
    }
    if args.first().is_some_and(|a| a == "echo-server") {
        // The cluster section's echo in a process of its own: prints its port, serves until
        // its standard input closes (the parent went away).
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
        return rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            println!("{}", listener.local_addr().expect("address").port());
            tokio::spawn(serve_echo_on(listener, true, false));
            let _ = tokio::task::spawn_blocking(|| std::io::Read::read(&mut std::io::stdin(), &mut [0u8; 1])).await;
        });
    }
    if args.first().is_some_and(|a| a == "memory-node") {
        return memory::node(&args[1]);
    }
    if args.first().is_some_and(|a| a == "migrate-row") {
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
        return rt.block_on(migrate::one_row(&args[1..]));
    }
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!(
        "# Clouds benchmark\n\nmachine: {threads} cores, {}, release build: {}",
        std::env::consts::ARCH,
        !cfg!(debug_assertions)
    );
    // `cargo run --release -p bench -- cluster` runs only the sections named.
    let only: Vec<String> = std::env::args().skip(1).collect();
    let wanted = |section: &str| only.is_empty() || only.iter().any(|s| s == section);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        if wanted("node") {
            same_node().await;
        }
        if wanted("durable") {
            durable_writes().await;
        }
        if wanted("tarpc") {
            over_tarpc().await;
        }
        if wanted("caps") {
            capability_checks().await;
        }
        if wanted("observe") {
            observe::run().await;
        }
        if wanted("startup") {
            startup().await;
        }
        if wanted("create") {
            creation().await;
        }
    });
    drop(rt);
    if wanted("transport") {
        transport_choices();
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    if wanted("blob") {
        rt.block_on(big_blob());
    }
    if wanted("cluster") {
        // Its own runtime: the bench is a fourth process on the cores the nodes share.
        let workers = cluster::client_workers();
        let client =
            tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build().expect("runtime");
        client.block_on(cluster::run(workers));
    }
    if wanted("migrate") {
        rt.block_on(migrate::run());
    }
    if wanted("atomic") {
        rt.block_on(atomic::run());
    }
    if wanted("balance") {
        rt.block_on(balance::run());
    }
    if wanted("dissemination") {
        dissemination::run();
    }
    if wanted("memory") {
        memory::run();
    }
}
