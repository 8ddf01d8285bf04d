//! Prometheus metrics (the `metrics` facade, rendered by `metrics-exporter-prometheus` at
//! the HTTP gateway's `/metrics`): off unless the node serves HTTP, and then recorded where
//! the work happens. While off, every `record_*` costs one relaxed load.
//!
//! What is counted: invocations by class, method and outcome (`clouds_invocations_total`)
//! and their latency (`clouds_invocation_seconds`, a histogram); capability checks, and
//! denials by reason; lock waits; deadlocks broken; group flushes and the commits each
//! carried; forwarded calls; and, read when
//! scraped, activated objects, stored objects, store bytes, requests in flight and each
//! peer's membership state.

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

static ON: AtomicBool = AtomicBool::new(false);
static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Latency buckets, in seconds: 50 us to 10 s.
const BUCKETS: &[f64] = &[0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5, 10.0];

/// Installs the process's recorder (once; later calls return the same handle).
pub fn install() -> Result<PrometheusHandle, String> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets(BUCKETS)
        .map_err(|e| e.to_string())?
        .install_recorder()
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
    let handle = HANDLE.get_or_init(|| handle).clone();
    ON.store(true, Ordering::Release);
    Ok(handle)
}

/// Stops or resumes recording (the recorder stays installed): for the benchmark harness,
/// which measures a call with and without metrics in the same run.
pub fn set_recording(on: bool) {
    ON.store(on && HANDLE.get().is_some(), Ordering::Release);
}

fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// One invocation served here: `outcome` is `ok` or the error's kind. A method the class
/// does not have is counted as `(unknown)`: the method is the caller's text, and a label
/// for every name a caller makes up would grow the node's memory without bound.
pub fn record_invocation(class: &clouds::ClassInfo, method: &str, outcome: &'static str, took: Duration) {
    if !on() {
        return;
    }
    let seconds = took.as_secs_f64();
    // The handles of each class and method are made once: a handle made by the macros
    // costs a registry lookup and the labels' strings, on every call.
    if let Some(h) = INVOCATIONS.read().expect("metric handles").get(&class.name).and_then(|m| m.get(method)) {
        return h.count(&class.name, method, outcome, seconds);
    }
    let method = if class.methods.iter().any(|m| m.name == method) { method } else { UNKNOWN_METHOD };
    let handles = Invocations {
        ok: invocation_counter(&class.name, method, "ok"),
        seconds: metrics::histogram!("clouds_invocation_seconds", "class" => class.name.clone(), "method" => method.to_string()),
    };
    handles.count(&class.name, method, outcome, seconds);
    let mut all = INVOCATIONS.write().expect("metric handles");
    all.entry(class.name.clone()).or_default().insert(method.to_string(), handles);
}

/// The `method` label of calls to a method the class does not have.
const UNKNOWN_METHOD: &str = "(unknown)";

/// The handles of one class's method, by class and then method (looked up by `&str`).
static INVOCATIONS: std::sync::LazyLock<std::sync::RwLock<HashMap<String, HashMap<String, Invocations>>>> =
    std::sync::LazyLock::new(Default::default);

struct Invocations {
    ok: metrics::Counter,
    seconds: metrics::Histogram,
}

impl Invocations {
    fn count(&self, class: &str, method: &str, outcome: &'static str, seconds: f64) {
        match outcome {
            "ok" => self.ok.increment(1),
            // Errors are rarer: their counters are looked up.
            _ => invocation_counter(class, method, outcome).increment(1),
        }
        self.seconds.record(seconds);
    }
}

fn invocation_counter(class: &str, method: &str, outcome: &'static str) -> metrics::Counter {
    metrics::counter!("clouds_invocations_total", "class" => class.to_string(), "method" => method.to_string(), "outcome" => outcome)
}

/// How often a node folds the latency samples recorded since the last time into their
/// histograms' buckets (`upkeep`).
pub const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Folds recorded latency samples into their buckets, every `UPKEEP_EVERY`, until dropped.
/// The recorder keeps each sample until a scrape or an upkeep takes it: a node that
/// nobody scrapes would otherwise keep eight bytes for every invocation it serves.
pub async fn upkeep(handle: PrometheusHandle) {
    let mut every = tokio::time::interval(UPKEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        handle.run_upkeep();
    }
}

// The counters without labels below are made once, on first use (always after `install`,
// so bound to its recorder): the macro alone looks its key up in the registry every time.

/// A capability check that failed, by reason (`missing`, `expired`, `revoked`, ...).
pub fn record_denial(reason: &'static str) {
    if on() {
        metrics::counter!("clouds_capability_denials_total", "reason" => reason).increment(1);
    }
}

/// A thread that had to wait for an object's lock.
pub fn record_lock_wait() {
    if on() {
        static COUNTER: OnceLock<metrics::Counter> = OnceLock::new();
        COUNTER.get_or_init(|| metrics::counter!("clouds_lock_waits_total")).increment(1);
    }
}

/// A capability check (passed or not).
pub fn record_check() {
    if on() {
        static COUNTER: OnceLock<metrics::Counter> = OnceLock::new();
        COUNTER.get_or_init(|| metrics::counter!("clouds_capability_checks_total")).increment(1);
    }
}

/// One signature this node made, for `issued` capabilities (more than one: a batch).
pub fn record_signed_batch(issued: usize) {
    if on() {
        metrics::counter!("clouds_capability_signatures_total").increment(1);
        metrics::counter!("clouds_capabilities_issued_total").increment(issued as u64);
    }
}

/// A deadlock this node broke.
pub fn record_deadlock() {
    if on() {
        static COUNTER: OnceLock<metrics::Counter> = OnceLock::new();
        COUNTER.get_or_init(|| metrics::counter!("clouds_deadlocks_broken_total")).increment(1);
    }
}

/// A group flush of the store and the commits it made durable.
pub fn record_flush(commits: usize, took: Duration) {
    if on() {
        metrics::counter!("clouds_group_flushes_total").increment(1);
        metrics::counter!("clouds_commits_total").increment(commits as u64);
        metrics::histogram!("clouds_group_flush_seconds").record(took.as_secs_f64());
    }
}

/// A request this node sent on to the node that has the object.
pub fn record_forward() {
    if on() {
        static COUNTER: OnceLock<metrics::Counter> = OnceLock::new();
        COUNTER.get_or_init(|| metrics::counter!("clouds_forwarded_total")).increment(1);
    }
}

/// Sets a gauge (read when scraped).
pub fn gauge(name: &'static str, value: f64) {
    if on() {
        metrics::gauge!(name).set(value);
    }
}

/// Sets a gauge with one label.
pub fn gauge_with(name: &'static str, label: &'static str, value_of_label: String, value: f64) {
    if on() {
        metrics::gauge!(name, label => value_of_label).set(value);
    }
}

// ---- Traces (OpenTelemetry) ----
//
// Every invocation is a span (`invoke`, made in `Engine::invoke_here`). A thread's trace
// context travels in the invocation message (`ThreadCtx::trace`, W3C `traceparent`), so a
// thread that crosses nodes is one trace, with a span on each node it runs on. Spans are
// exported over OTLP (HTTP, JSON) when the node is given an endpoint (`--otlp`,
// `OTEL_EXPORTER_OTLP_ENDPOINT`); otherwise there is no OpenTelemetry layer, and a span
// costs what a disabled `tracing` span costs.

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// `span`'s parent is the remote span `traceparent` names (`00-TRACE-SPAN-FLAGS`); a
/// malformed one is ignored (the span starts a trace of its own).
pub fn continue_trace(span: &tracing::Span, traceparent: &str) {
    let mut parts = traceparent.split('-');
    let (Some("00"), Some(trace), Some(parent), Some(_)) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return;
    };
    let (Ok(trace), Ok(parent)) = (TraceId::from_hex(trace), SpanId::from_hex(parent)) else { return };
    let remote = SpanContext::new(trace, parent, TraceFlags::SAMPLED, true, TraceState::default());
    if remote.is_valid() {
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
    }
}

/// The W3C `traceparent` of `span`, if it belongs to an exported trace.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| format!("00-{}-{}-01", sc.trace_id(), sc.span_id()))
}

/// The trace id in a `traceparent`.
pub fn trace_id(traceparent: &str) -> Option<&str> {
    traceparent.split('-').nth(1).filter(|t| t.len() == 32)
}

/// The OpenTelemetry layer for this process's subscriber, exporting `invoke` spans of node
/// `node` to the OTLP/HTTP endpoint `endpoint` (`http://HOST:PORT`, or its full
/// `/v1/traces` URL). Keep the provider, and shut it down at exit to flush the last spans.
pub fn otlp_layer<S>(
    endpoint: &str,
    node: &str,
) -> Result<(impl tracing_subscriber::Layer<S>, opentelemetry_sdk::trace::SdkTracerProvider), String>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
    use tracing_subscriber::Layer as _;
    let base = endpoint.trim_end_matches('/');
    let url = if base.ends_with("/v1/traces") { base.to_string() } else { format!("{base}/v1/traces") };
    if !url.starts_with("http://") {
        return Err(format!("--otlp `{endpoint}`: expected an http:// address of an OTLP/HTTP receiver"));
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(PlainHttp)
        .with_protocol(opentelemetry_otlp::Protocol::HttpJson)
        .with_endpoint(url)
        .build()
        .map_err(|e| format!("the OTLP exporter: {e}"))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("objectd")
        .with_attribute(opentelemetry::KeyValue::new("clouds.node", node.to_string()))
        .build();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("objectd"))
        .with_filter(tracing_subscriber::filter::filter_fn(|m| m.is_span() && m.name() == "invoke"));
    Ok((layer, provider))
}

/// A plain HTTP/1.1 client for the exporter (it runs on the span processor's own thread,
/// so it may block): `http://` only, one request per connection.
#[derive(Debug)]
struct PlainHttp;

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for PlainHttp {
    async fn send_bytes(
        &self,
        request: opentelemetry_http::Request<opentelemetry_http::Bytes>,
    ) -> Result<opentelemetry_http::Response<opentelemetry_http::Bytes>, opentelemetry_http::HttpError> {
        use std::io::{Read as _, Write as _};
        let uri = request.uri();
        let host = uri.authority().ok_or("the endpoint has no host")?.to_string();
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
        let mut stream = std::net::TcpStream::connect(&host)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut head = format!("{} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n", request.method());
        for (name, value) in request.headers() {
            head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap_or("")));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", request.body().len()));
        stream.write_all(head.as_bytes())?;
        stream.write_all(request.body())?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer)?;
        let text = String::from_utf8_lossy(&answer);
        let status: u16 = text.split(' ').nth(1).and_then(|c| c.parse().ok()).ok_or("no HTTP status in the answer")?;
        let body = text.split_once("\r\n\r\n").map_or(String::new(), |(_, b)| b.to_string());
        Ok(opentelemetry_http::Response::builder().status(status).body(opentelemetry_http::Bytes::from(body))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series<'a>(text: &'a str, starts: &str, with: &[&str]) -> Option<&'a str> {
        text.lines()
            .find(|l| l.starts_with(starts) && with.iter().all(|w| l.contains(w)))
            .and_then(|l| l.rsplit(' ').next())
    }

    #[test]
    fn invocations_are_counted_by_class_method_and_outcome_and_timed_once_each_and_checks_counted() {
        let handle = install().expect("the recorder");
        let ms = Duration::from_millis(1);
        let class = |name: &str, methods: &[&str]| clouds::ClassInfo {
            name: name.into(),
            methods: methods
                .iter()
                .map(|m| clouds::MethodInfo {
                    name: m.to_string(),
                    access: clouds::Access::Read,
                    params: Vec::new(),
                    returns: String::new(),
                    is_async: false,
                    atomic: false,
                })
                .collect(),
            format: 1,
            placement: None,
            labels: Vec::new(),
            pinned: false,
        };
        let (counter, account) = (class("Counter", &["incr", "get"]), class("Account", &["incr"]));
        record_invocation(&counter, "incr", "ok", ms);
        record_invocation(&counter, "incr", "ok", ms);
        record_invocation(&counter, "incr", "denied", ms);
        record_invocation(&counter, "get", "denied", ms);
        record_invocation(&counter, "get", "ok", ms);
        record_invocation(&account, "incr", "ok", ms);
        // Names the class does not have, all under one label.
        record_invocation(&counter, "made-up-1", "no_such_method", ms);
        record_invocation(&counter, "made-up-2", "no_such_method", ms);
        record_check();
        record_check();
        handle.run_upkeep();
        let text = handle.render();
        let count = |method: &str, outcome: &str, class: &str| {
            let (c, m, o) =
                (format!("class=\"{class}\""), format!("method=\"{method}\""), format!("outcome=\"{outcome}\""));
            series(&text, "clouds_invocations_total", &[&c, &m, &o]).map(str::to_string)
        };
        assert_eq!(count("incr", "ok", "Counter").as_deref(), Some("2"), "{text}");
        assert_eq!(count("incr", "denied", "Counter").as_deref(), Some("1"), "{text}");
        assert_eq!(count("get", "denied", "Counter").as_deref(), Some("1"), "{text}");
        assert_eq!(count("get", "ok", "Counter").as_deref(), Some("1"), "{text}");
        assert_eq!(count("incr", "ok", "Account").as_deref(), Some("1"), "{text}");
        let timed = series(&text, "clouds_invocation_seconds_count", &["class=\"Counter\"", "method=\"incr\""]);
        assert_eq!(timed, Some("3"), "{text}");
        assert_eq!(series(&text, "clouds_capability_checks_total", &[]), Some("2"), "{text}");
        assert_eq!(count("(unknown)", "no_such_method", "Counter").as_deref(), Some("2"), "{text}");
        assert!(!text.contains("made-up"), "{text}");
    }
}
