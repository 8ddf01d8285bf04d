//! Section "observe": what watching a node costs, and the HTTP gateway's path, next to the
//! client's in the same run: `Counter.get` through the client with metrics off and on, and
//! the same call through the gateway (`POST /v1/objects/{id}/get`, HTTP/1.1 keep-alive, as
//! curl or any HTTP library sends it).

use crate::stats::{measure_concurrent, measure_latency, Figures};
use capability::Token;
use clouds::{Codec, ThreadCtx};
use protocol::wire::InitialState;
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
    let (engine, _dir) = crate::engine(objectd::Durability::Buffered).await;
    let handle = objectd::telemetry::install().expect("the metrics recorder");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(objectd::rpc::serve(listener, engine.clone(), std::future::pending(), Duration::from_secs(1)));
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let http_addr = http.local_addr().expect("address");
    tokio::spawn(objectd::gateway::serve(http, engine.clone(), Some(handle), std::future::pending()));
    let client = client::Client::connect(addr).await.expect("connect");
    let counter = client.create("Counter", InitialState::Default).await.expect("create");
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
