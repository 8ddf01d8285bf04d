//! Section "observe": what watching a node costs, and the HTTP gateway's path, next to the
//! client's in the same run: `Counter.get` through the client with metrics off and on, and
//! the same call through the gateway (`POST /v1/objects/{id}/get`, HTTP/1.1 keep-alive, as
//! curl or any HTTP library sends it).

use crate::stats::{measure_concurrent, measure_latency, Figures};
use capability::Token;
use clouds::{Codec, ThreadCtx};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const RUN: Duration = Duration::from_secs(2);

/// A keep-alive HTTP/1.1 connection that sends one POST at a time.
struct Http {
    stream: BufReader<tokio::net::TcpStream>,
    request: Vec<u8>,
}

impl Http {
    async fn connect(addr: std::net::SocketAddr, path: &str, token: &str, body: &str) -> Http {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect to the gateway");
        stream.set_nodelay(true).expect("nodelay");
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        Http { stream: BufReader::new(stream), request: request.into_bytes() }
    }

    /// Sends the request and reads the answer; its status.
    async fn post(&mut self) -> u16 {
        self.stream.get_mut().write_all(&self.request).await.expect("send");
        let (mut status, mut length) = (0u16, 0usize);
        let mut line = String::new();
        loop {
            line.clear();
            self.stream.read_line(&mut line).await.expect("read a header");
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some(rest) = l.strip_prefix("HTTP/1.1 ") {
                status = rest.split(' ').next().and_then(|c| c.parse().ok()).unwrap_or(0);
            } else if let Some((name, value)) = l.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; length];
        self.stream.read_exact(&mut body).await.expect("read the body");
        status
    }
}

pub async fn run() {
    println!("\n## Observing a node: metrics off and on, and the HTTP gateway\n");
    let crate::Served { engine, client, counter, _dir, .. } = crate::served(objectd::Durability::Buffered).await;
    let handle = objectd::telemetry::install().expect("the metrics recorder");
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let http_addr = http.local_addr().expect("address");
    tokio::spawn(objectd::gateway::serve(http, engine.clone(), Some(handle), std::future::pending()));
    let token = Token::from_cap(counter.cap.as_ref().expect("an owner capability")).expect("a token").to_text();

    Figures::print_header();
    for concurrency in [1usize, 16] {
        for (label, on) in [("metrics off", false), ("metrics on", true)] {
            objectd::telemetry::set_recording(on);
            let (c, id) = (client.clone(), counter.clone());
            let name = format!("Counter.get via client, {label}, {concurrency} in flight");
            measure_concurrent(&name, concurrency, RUN, move |_| {
                let (c, id) = (c.clone(), id.clone());
                async move {
                    c.invoke_on(ThreadCtx::new(30_000), &id, "get", Codec::Binary, vec![], None).await.expect("get");
                }
            })
            .await
            .print();
        }
    }
    // With every invocation a span exported over OTLP: in a process of its own, since the
    // tracing subscriber is the process's.
    let me = std::env::current_exe().expect("this binary");
    match std::process::Command::new(me).arg("observe-traced").output() {
        Ok(out) => print!("{}", String::from_utf8_lossy(&out.stdout)),
        Err(e) => println!("(the traced rows could not run: {e})"),
    }
    objectd::telemetry::set_recording(true);
    let path = format!("/v1/objects/{}/get", counter.id);
    let conn = std::sync::Arc::new(tokio::sync::Mutex::new(Http::connect(http_addr, &path, &token, "[]").await));
    measure_latency("Counter.get via the HTTP gateway (keep-alive), metrics on, 1 in flight", RUN, || {
        let conn = conn.clone();
        async move {
            assert_eq!(conn.lock().await.post().await, 200);
        }
    })
    .await
    .print();
}

/// An OTLP/HTTP receiver stand-in: answers every request 200 and counts them.
fn collector() -> String {
    use std::io::{BufRead as _, Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = std::io::BufReader::new(stream.try_clone().expect("clone"));
            let (mut line, mut length) = (String::new(), 0usize);
            while reader.read_line(&mut line).unwrap_or(0) > 0 && !line.trim().is_empty() {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}");
        }
    });
    url
}

/// The rows with traces exported (run as `bench observe-traced`, by `run`).
pub fn traced_rows() {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let (layer, provider) = objectd::telemetry::otlp_layer(&collector(), "node-1").expect("the OTLP layer");
    tracing_subscriber::registry().with(layer).init();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let crate::Served { client, counter, _dir, .. } = crate::served(objectd::Durability::Buffered).await;
        objectd::telemetry::install().expect("the metrics recorder");
        for concurrency in [1usize, 16] {
            let (c, id) = (client.clone(), counter.clone());
            let name = format!("Counter.get via client, metrics on, traces exported, {concurrency} in flight");
            measure_concurrent(&name, concurrency, RUN, move |_| {
                let (c, id) = (c.clone(), id.clone());
                async move {
                    let mut thread = ThreadCtx::new(30_000);
                    thread.start_trace();
                    c.invoke_on(thread, &id, "get", Codec::Binary, vec![], None).await.expect("get");
                }
            })
            .await
            .print();
        }
    });
    let _ = provider.shutdown();
}
