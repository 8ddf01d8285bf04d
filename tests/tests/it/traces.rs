//! OpenTelemetry traces of threads across nodes, on the in-process cluster with the SDK's
//! in-memory exporter: one thread through objects on three nodes is one trace, with one
//! span per invocation, each on its node, each the child of the call that made it.

use opentelemetry::trace::{SpanId, TraceId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use serde_json::json;
use std::time::Duration;
use tests::network::{invocation, Network};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::Layer as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thread_across_three_nodes_is_one_trace_with_a_span_per_node() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    let spans = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("test"))
        .with_filter(tracing_subscriber::filter::filter_fn(|m| m.is_span() && m.name() == "invoke"));
    tracing_subscriber::registry().with(spans).init();

    let net = Network::start(3).await;
    let (a, b, c) = (net.create(1, "Relay", 1).await, net.create(1, "Relay", 2).await, net.create(1, "Relay", 3).await);
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut inv = invocation(&a, "pass", json!([[b, c]]), Duration::from_secs(5));
    inv.thread.trace = Some(format!("00-{trace}-00f067aa0ba902b7-01"));
    inv.thread.record_path = true;
    let reply = net.engine(2).invoke(inv).await.expect("the thread went through three nodes");
    assert_eq!(reply.hops.len(), 3);
    assert!(
        reply.hops.iter().all(|h| h.trace_id.as_deref() == Some(trace)),
        "every hop names the trace: {:?}",
        reply.hops
    );
    let _ = provider.force_flush();

    let finished = exporter.get_finished_spans().unwrap();
    let ours: Vec<_> =
        finished.iter().filter(|s| s.span_context.trace_id() == TraceId::from_hex(trace).unwrap()).collect();
    assert_eq!(ours.len(), 3, "a span per invocation, all in the one trace: {finished:#?}");
    let node_of = |s: &opentelemetry_sdk::trace::SpanData| {
        s.attributes.iter().find(|kv| kv.key.as_str() == "node").map(|kv| kv.value.to_string()).unwrap_or_default()
    };
    let mut nodes: Vec<String> = ours.iter().map(|s| node_of(s)).collect();
    nodes.sort();
    assert_eq!(nodes, ["node-1", "node-2", "node-3"]);
    // Each span's parent is the invocation that called it; the first's is the caller's.
    let on = |n: &str| ours.iter().find(|s| node_of(s) == n).unwrap();
    assert_eq!(on("node-1").parent_span_id, SpanId::from_hex("00f067aa0ba902b7").unwrap());
    assert_eq!(on("node-2").parent_span_id, on("node-1").span_context.span_id());
    assert_eq!(on("node-3").parent_span_id, on("node-2").span_context.span_id());
}

/// An OTLP/HTTP receiver stand-in on 127.0.0.1: keeps the body of every request.
fn receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead as _, Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = bodies.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(1000) {
            let Ok(mut stream) = stream else { continue };
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let (mut line, mut length) = (String::new(), 0usize);
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; length];
            if reader.read_exact(&mut body).is_ok() {
                kept.lock().unwrap().push(String::from_utf8_lossy(&body).into_owned());
            }
            let _ =
                stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}");
        }
    });
    (url, bodies)
}

/// Real processes exporting over OTLP (`OTEL_EXPORTER_OTLP_ENDPOINT`): `clouds invoke
/// --trace` of a thread through three nodes prints the trace id, and the receiver gets
/// that trace's spans from each of the three nodes.
#[test]
fn nodes_export_the_spans_of_a_traced_call_over_otlp() {
    let (url, bodies) = receiver();
    let mut c = tests::LocalCluster { dir: tempfile::tempdir().unwrap(), nodes: Vec::new() };
    c.start_env(3, &[("OTEL_EXPORTER_OTLP_ENDPOINT", &url)]);
    let relay = |name: &str, on: u16| {
        c.clouds(1, &["create", "Relay", "--on", &on.to_string(), "--name", name, "--pinned"]).ok().to_string()
    };
    let (_, b, cc) = (relay("t/a", 1), relay("t/b", 2), relay("t/c", 3));
    let out =
        c.clouds(2, &["invoke", "--trace", "t/a.pass", &serde_json::to_string(&[&b, &cc]).unwrap()]).ok().to_string();
    let trace =
        out.split("trace ").nth(1).and_then(|t| t.split(':').next()).unwrap_or_else(|| panic!("{out}")).to_string();
    assert_eq!(trace.len(), 32, "{out}");
    // The batch processor sends every 5 s.
    let mut nodes = std::collections::BTreeSet::new();
    for _ in 0..150 {
        nodes.clear();
        for body in bodies.lock().unwrap().iter().filter(|b| b.contains(&trace)) {
            for node in ["node-1", "node-2", "node-3"] {
                if body.contains(&format!("\"{node}\"")) {
                    nodes.insert(node);
                }
            }
        }
        if nodes.len() == 3 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(nodes.len(), 3, "spans of trace {trace} from every node: {:?}", bodies.lock().unwrap());
}
