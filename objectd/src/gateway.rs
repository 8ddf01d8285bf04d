//! The HTTP/JSON gateway (`--http ADDR`, off by default): objects from curl and any
//! language, the dashboard at `/`, Prometheus metrics at `/metrics`, and an OpenAPI
//! description of every class the node has.
//!
//! It is a client of the engine like any other, never a way around capabilities: a call
//! presents the capability the request carries (`Authorization: Bearer cap1...`), and the
//! engine checks it as it checks every call. Names are resolved with that capability and a
//! read-only capability for the root directory, which every user may have anyway.
//! Errors are JSON (`{"error": {"kind", "message"}}`, the kinds of the CLI) with fitting
//! statuses: 400 bad arguments or request, 401 no capability, 403 denied, 404 not found,
//! 409 name bound, 422 the method's own error, 503 unavailable or overloaded, 504 deadline.

use crate::engine::{Engine, Origin};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use capability::Token;
use clouds::{Cap, ClassInfo, Codec, InvokeError, ObjectId, RawRef, ThreadCtx};
use metrics_exporter_prometheus::PrometheusHandle;
use protocol::wire::{CreateRequest, InitialState, PathInvocation};
use protocol::{Invocation, RequestBody, ResponseBody};
use serde::Deserialize;
use serde_json::{json, Value};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// The page at `/`: no external assets (the machines that run it may have no internet).
const DASHBOARD: &str = include_str!("gateway/dashboard.html");
/// A call's deadline unless the request names one (`X-Clouds-Deadline-Ms`).
const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);
/// How long a cluster-wide view waits for each node.
const ASK_WITHIN: Duration = Duration::from_secs(2);

struct Gateway {
    engine: Engine,
    metrics: Option<PrometheusHandle>,
    /// A read-only capability for the root directory, made out to this node's key.
    root_read: tokio::sync::OnceCell<Cap>,
}

type Shared = State<Arc<Gateway>>;

/// An error as the gateway answers it.
struct Failure(StatusCode, &'static str, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": { "kind": self.1, "message": self.2 } }))).into_response()
    }
}

impl From<InvokeError> for Failure {
    fn from(e: InvokeError) -> Failure {
        let status = match &e {
            InvokeError::BadArgs { .. }
            | InvokeError::Invalid { .. }
            | InvokeError::NoSuchMethod { .. }
            | InvokeError::NoSuchClass { .. }
            | InvokeError::HopLimit { .. }
            | InvokeError::Reentrancy { .. } => StatusCode::BAD_REQUEST,
            InvokeError::Denied { .. } => StatusCode::FORBIDDEN,
            InvokeError::NotFound { .. } | InvokeError::NameNotFound { .. } => StatusCode::NOT_FOUND,
            InvokeError::App { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            InvokeError::Unavailable { .. } | InvokeError::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            InvokeError::DeadlineExceeded { .. } => StatusCode::GATEWAY_TIMEOUT,
            InvokeError::Deadlock { .. } | InvokeError::Aborted { .. } => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        // A directory's own error for a name already bound: the CLI's `name_taken`, 409.
        if naming::resolve::is_already_bound(&e) {
            return Failure(StatusCode::CONFLICT, "name_taken", e.to_string());
        }
        Failure(status, e.kind(), e.to_string())
    }
}

fn bad(message: impl Into<String>) -> Failure {
    Failure(StatusCode::BAD_REQUEST, "invalid", message.into())
}

/// Serves the gateway on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    engine: Engine,
    metrics: Option<PrometheusHandle>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let gateway = Arc::new(Gateway { engine, metrics, root_read: tokio::sync::OnceCell::new() });
    let app = Router::new()
        .route("/", get(|| async { Html(DASHBOARD) }))
        .route("/metrics", get(prometheus))
        .route("/v1/nodes", get(nodes))
        .route("/v1/classes", get(classes))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/hot", get(hot))
        .route("/v1/decisions", get(decisions))
        .route("/v1/objects", axum::routing::post(create).get(list))
        .route("/v1/objects/{*rest}", get(describe).post(invoke))
        .route("/v1/names", get(names_root))
        .route("/v1/names/{*path}", get(names))
        .layer(axum::extract::DefaultBodyLimit::max(protocol::service::MAX_FRAME))
        .with_state(gateway);
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

/// The capability the request carries, if any.
fn bearer(headers: &HeaderMap) -> Result<Option<Cap>, Failure> {
    let Some(value) = headers.get(header::AUTHORIZATION) else { return Ok(None) };
    let text = value.to_str().map_err(|_| bad("the Authorization header is not text"))?;
    let token = text.strip_prefix("Bearer ").ok_or_else(|| {
        Failure(StatusCode::UNAUTHORIZED, "unauthorized", "expected `Authorization: Bearer cap1...`".into())
    })?;
    let token = Token::from_text(token.trim())
        .map_err(|e| Failure(StatusCode::FORBIDDEN, "denied", format!("denied: not a capability ({e})")))?;
    Ok(Some(token.to_cap()))
}

/// The capability, which calls on objects need.
fn required(headers: &HeaderMap) -> Result<Cap, Failure> {
    bearer(headers)?.ok_or_else(|| {
        Failure(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a call on an object needs its capability: `Authorization: Bearer cap1...` (`clouds cap grant` prints one)"
                .into(),
        )
    })
}

fn deadline(headers: &HeaderMap) -> Result<Duration, Failure> {
    match headers.get("x-clouds-deadline-ms") {
        None => Ok(DEFAULT_DEADLINE),
        Some(v) => {
            let ms: u64 = v
                .to_str()
                .ok()
                .and_then(|t| t.parse().ok())
                .filter(|ms| (1..=clouds::thread::MAX_DEADLINE_MS).contains(ms))
                .ok_or_else(|| bad("X-Clouds-Deadline-Ms must be 1 to 86400000 (milliseconds)"))?;
            Ok(Duration::from_millis(ms))
        }
    }
}

impl Gateway {
    async fn root_read(&self) -> Result<Cap, InvokeError> {
        let key = self.engine.guard().identity().key.public();
        self.root_read.get_or_try_init(|| self.engine.root_capability(key, true)).await.cloned()
    }

    /// Refuses unless `cap` is the administrator's: a capability for the root directory
    /// with the admin right (only the administrator is given one).
    async fn must_be_admin(&self, cap: &Cap) -> Result<(), Failure> {
        let root = self.engine.root().await?;
        let raw = RawRef { id: root, cap: Some(self.root_read().await?) };
        let epoch = match self.engine.handle(Origin::Caller, RequestBody::Describe(raw)).await? {
            ResponseBody::Described(info) => info.epoch,
            other => return Err(InvokeError::storage(format!("describe was answered with {other:?}")).into()),
        };
        self.engine.guard().admit(Some(cap), root, epoch, clouds::Rights::ADMIN, "list every object").map_err(|e| {
            Failure(
                StatusCode::FORBIDDEN,
                "denied",
                format!("{e} (listing every object needs the administrator's capability for the root directory)"),
            )
        })
    }

    /// The capabilities a name is resolved with: the request's and the root's.
    async fn caps(&self, cap: Option<Cap>) -> Result<Vec<Cap>, InvokeError> {
        Ok(cap.into_iter().chain([self.root_read().await?]).collect())
    }

    /// The object `target` names (a UUID or a path), with the capability to call it with.
    async fn target(&self, target: &str, cap: Cap, within: Duration) -> Result<RawRef, InvokeError> {
        if let Ok(id) = target.parse::<ObjectId>() {
            return Ok(RawRef { id, cap: Some(cap) });
        }
        let entry = self.engine.resolve_name(target, self.caps(Some(cap.clone())).await?, within).await?;
        let for_it = Token::from_cap(&cap).is_ok_and(|t| t.grant().object == entry.id);
        Ok(RawRef { id: entry.id, cap: if for_it { Some(cap) } else { entry.cap.or(Some(cap)) } })
    }
}

#[derive(Deserialize)]
struct CallOptions {
    /// `?trace=1`: answer `{"result", "path", "trace_id"}`, with the path the thread took.
    #[serde(default)]
    trace: Option<String>,
}

async fn invoke(
    State(g): Shared,
    Path(rest): Path<String>,
    Query(options): Query<CallOptions>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, Failure> {
    let traced = options.trace.as_deref().is_some_and(|t| t != "0" && t != "false");
    let (target, method) = rest
        .rsplit_once('/')
        .filter(|(t, m)| !t.is_empty() && !m.is_empty())
        .ok_or_else(|| bad(format!("`{rest}` is not TARGET/METHOD (for example /v1/objects/counters/a/incr)")))?;
    let cap = required(&headers)?;
    let within = deadline(&headers)?;
    let args: Value = if body.is_empty() {
        json!([])
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| bad(format!("the body is not JSON ({e}); expected an array of the arguments")))?
    };
    if !args.is_array() {
        return Err(bad("the body must be a JSON array of the arguments, such as [5]"));
    }
    let args = serde_json::to_vec(&args).expect("JSON encodes");
    let call_id = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(|k| clouds::CallId(k.to_string()));
    let mut thread = ThreadCtx::new(within.as_millis() as u64);
    if traced {
        thread.record_path = true;
        thread.start_trace();
    }
    let body = match target.parse::<ObjectId>() {
        Ok(id) => RequestBody::Invoke(Invocation {
            thread,
            target: id,
            method: method.to_string(),
            codec: Codec::Json,
            args,
            call_id,
            capability: Some(cap),
        }),
        Err(_) => RequestBody::InvokePath(PathInvocation {
            thread,
            path: target.to_string(),
            method: method.to_string(),
            codec: Codec::Json,
            args,
            call_id,
            caps: g.caps(Some(cap)).await?,
        }),
    };
    match g.engine.handle(Origin::Caller, body).await? {
        ResponseBody::Invoked(reply) => {
            let value: Value = serde_json::from_slice(&reply.value).map_err(|e| InvokeError::storage(e.to_string()))?;
            if !traced {
                return Ok(Json(value));
            }
            let trace_id = reply.hops.first().and_then(|h| h.trace_id.clone());
            Ok(Json(json!({ "result": value, "path": reply.hops, "trace_id": trace_id })))
        }
        other => Err(InvokeError::storage(format!("an invocation was answered with {other:?}")).into()),
    }
}

async fn describe(State(g): Shared, Path(target): Path<String>, headers: HeaderMap) -> Result<Json<Value>, Failure> {
    let cap = required(&headers)?;
    let raw = g.target(&target, cap, deadline(&headers)?).await?;
    match g.engine.handle(Origin::Caller, RequestBody::Describe(raw)).await? {
        ResponseBody::Described(info) => {
            let mut v = serde_json::to_value(&*info).expect("JSON encodes");
            v["state"] = serde_json::from_str(&info.state).unwrap_or(Value::Null);
            Ok(Json(v))
        }
        other => Err(InvokeError::storage(format!("describe was answered with {other:?}")).into()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Creation {
    class: String,
    #[serde(default)]
    state: Option<Value>,
    #[serde(default)]
    placement: Option<String>,
    /// Who gets the owner capability (a public key, as `clouds whoami` prints it).
    owner: String,
    #[serde(default)]
    pinned: bool,
}

async fn create(State(g): Shared, body: Bytes) -> Result<(StatusCode, Json<Value>), Failure> {
    let c: Creation = serde_json::from_slice(&body).map_err(|e| {
        bad(format!(
            "the body is not a creation ({e}); expected {{\"class\": ..., \"owner\": KEY, \"state\"?, \"placement\"?}}"
        ))
    })?;
    let owner = c.owner.parse().map_err(|e: String| bad(format!("owner: {e}")))?;
    let placement = match c.placement.as_deref() {
        None => protocol::Placement::Default,
        Some(p) => p.parse().map_err(|e: String| bad(format!("placement: {e}")))?,
    };
    let state = match c.state {
        Some(v) => InitialState::Json(v.to_string()),
        None => InitialState::Default,
    };
    let req = CreateRequest { class: c.class, state, placement, pinned: c.pinned, placed_by: None, owner };
    match g.engine.handle(Origin::Caller, RequestBody::Create(req)).await? {
        ResponseBody::Created(raw) => {
            let capability = raw.cap.as_ref().and_then(|c| Token::from_cap(c).ok()).map(|t| t.to_text());
            Ok((StatusCode::CREATED, Json(json!({ "id": raw.id, "capability": capability }))))
        }
        other => Err(InvokeError::storage(format!("create was answered with {other:?}")).into()),
    }
}

#[derive(Deserialize)]
struct Listing {
    node: Option<u16>,
    class: Option<String>,
    after: Option<String>,
    limit: Option<u32>,
}

/// Every object of the cluster (or of one node), named or not, paged in id order: for the
/// administrator, whose capability for the root directory carries the admin right.
async fn list(State(g): Shared, Query(q): Query<Listing>, headers: HeaderMap) -> Result<Json<Value>, Failure> {
    let cap = required(&headers)?;
    g.must_be_admin(&cap).await?;
    let after = q.after.map(|a| a.parse::<ObjectId>()).transpose().map_err(|e| bad(format!("after: {e}")))?;
    let query =
        client::ObjectQuery { node: q.node.map(clouds::NodeId), class: q.class, after, limit: q.limit.unwrap_or(100) };
    if query.limit == 0 || query.limit > protocol::wire::MAX_OBJECTS_PER_PAGE {
        return Err(bad(format!("limit must be 1 to {}, not {}", protocol::wire::MAX_OBJECTS_PER_PAGE, query.limit)));
    }
    let (mut found, mut unreachable) = (Vec::new(), Vec::new());
    let nodes = match g.engine.handle(Origin::Caller, RequestBody::Nodes).await? {
        ResponseBody::Nodes(n) => n,
        other => return Err(InvokeError::storage(format!("nodes was answered with {other:?}")).into()),
    };
    for view in nodes.iter().filter(|v| query.node.is_none_or(|want| want == v.id)) {
        let node = view.id;
        if view.state == protocol::Liveness::Dead {
            unreachable.push(json!({ "node": node, "reason": "the node is down" }));
            continue;
        }
        let fetch = |after, limit| {
            let body = RequestBody::Objects { class: query.class.clone(), after, limit };
            let engine = g.engine.clone();
            async move {
                match engine.ask(node, body, ASK_WITHIN).await? {
                    ResponseBody::Objects(page) => Ok(page),
                    other => Err(InvokeError::storage(format!("objects was answered with {other:?}"))),
                }
            }
        };
        match client::listing::first_objects(&query, fetch).await {
            Ok(page) => found.push(page),
            Err(e) => unreachable.push(json!({ "node": node, "reason": e.to_string() })),
        }
    }
    let (objects, next) = client::listing::merge(found, query.limit);
    Ok(Json(json!({ "objects": objects, "next": next, "unreachable": unreachable })))
}

async fn names_root(state: Shared, headers: HeaderMap) -> Result<Json<Value>, Failure> {
    names(state, Path(String::new()), headers).await
}

async fn names(State(g): Shared, Path(path): Path<String>, headers: HeaderMap) -> Result<Json<Value>, Failure> {
    let caps = g.caps(bearer(&headers)?).await?;
    let entries = g.engine.list_names(&path, caps, deadline(&headers)?).await?;
    let rows: Vec<Value> = entries
        .iter()
        .map(|(n, e)| json!({ "name": n, "class": e.class, "id": e.id, "shared": e.cap.is_some() }))
        .collect();
    Ok(Json(Value::Array(rows)))
}

async fn nodes(State(g): Shared) -> Result<Json<Value>, Failure> {
    match g.engine.handle(Origin::Caller, RequestBody::Nodes).await? {
        ResponseBody::Nodes(n) => Ok(Json(serde_json::to_value(n).expect("JSON encodes"))),
        other => Err(InvokeError::storage(format!("nodes was answered with {other:?}")).into()),
    }
}

async fn classes(State(g): Shared) -> Json<Value> {
    Json(serde_json::to_value(g.engine.classes()).expect("JSON encodes"))
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<u32>,
}

/// The busiest objects of every live node, busiest first.
async fn hot(State(g): Shared, Query(q): Query<Limit>) -> Json<Value> {
    let limit = q.limit.unwrap_or(10).min(1000);
    let mut all = Vec::new();
    for (_, answer) in g.engine.ask_each(RequestBody::Hot { limit }, ASK_WITHIN).await {
        if let Ok(ResponseBody::Hot(h)) = answer {
            all.extend(h);
        }
    }
    all.sort_by(|a, b| b.busy_ms.total_cmp(&a.busy_ms).then(b.calls.total_cmp(&a.calls)));
    all.truncate(limit as usize);
    Json(serde_json::to_value(all).expect("JSON encodes"))
}

/// The recent decisions of every live node (placements, moves, drains), newest last.
async fn decisions(State(g): Shared, Query(q): Query<Limit>) -> Json<Value> {
    let limit = q.limit.unwrap_or(20).min(2000) as usize;
    let mut all = Vec::new();
    for (_, answer) in g.engine.ask_each(RequestBody::Decisions { object: None }, ASK_WITHIN).await {
        if let Ok(ResponseBody::Decisions(d)) = answer {
            all.extend(d);
        }
    }
    all.sort_by_key(|d| (d.at_ms, d.node));
    let recent: Vec<Value> = all[all.len().saturating_sub(limit)..]
        .iter()
        .map(|d| {
            let mut v = serde_json::to_value(d).expect("JSON encodes");
            v["text"] = Value::String(d.to_string());
            v
        })
        .collect();
    Json(Value::Array(recent))
}

async fn prometheus(State(g): Shared) -> Result<([(header::HeaderName, &'static str); 1], String), Failure> {
    let Some(handle) = &g.metrics else {
        return Err(Failure(StatusCode::NOT_FOUND, "not_found", "metrics are not recorded on this node".into()));
    };
    g.engine.publish_gauges().await;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()))
}

async fn openapi(State(g): Shared) -> Json<Value> {
    Json(openapi_of(&g.engine.classes()))
}

/// A JSON schema for a parameter or return type as the method table writes it.
fn schema_of(ty: &str) -> Value {
    let ty = ty.trim();
    if let Some(inner) = ty.strip_prefix("Option<").and_then(|t| t.strip_suffix('>')) {
        let mut s = schema_of(inner);
        s["nullable"] = json!(true);
        return s;
    }
    if let Some(inner) = ty.strip_prefix("Vec<").and_then(|t| t.strip_suffix('>')) {
        return json!({ "type": "array", "items": schema_of(inner) });
    }
    if let Some(inner) = ty.strip_prefix("Result<").and_then(|t| t.strip_suffix('>')) {
        return schema_of(inner.split(',').next().unwrap_or(inner));
    }
    if ty.starts_with("Ref<") {
        return json!({ "type": "object", "description": format!("a reference, {{\"id\": UUID, \"cap\": ...}} ({ty})") });
    }
    match ty {
        "i8" | "i16" | "i32" | "i64" | "u8" | "u16" | "u32" | "u64" | "usize" | "isize" => json!({ "type": "integer" }),
        "f32" | "f64" => json!({ "type": "number" }),
        "bool" => json!({ "type": "boolean" }),
        "String" | "&str" => json!({ "type": "string" }),
        "()" => json!({ "type": "null" }),
        _ => json!({ "description": ty }),
    }
}

/// The OpenAPI description of the gateway with every class's methods: one path per method
/// name, whose request body is one of the classes' argument lists.
fn openapi_of(classes: &[ClassInfo]) -> Value {
    let mut schemas = serde_json::Map::new();
    let mut by_method: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
    for class in classes {
        for m in &class.methods {
            let name = format!("{}.{}", class.name, m.name);
            let items: Vec<Value> = m
                .params
                .iter()
                .map(|p| {
                    let mut s = schema_of(&p.ty);
                    s["title"] = json!(p.name);
                    s
                })
                .collect();
            let n = items.len();
            schemas.insert(
                format!("{name}.args"),
                json!({ "type": "array", "prefixItems": items, "minItems": n, "maxItems": n,
                        "description": format!("{} ({}): {}", m.signature(), m.access, class.name) }),
            );
            schemas.insert(format!("{name}.result"), schema_of(&m.returns));
            by_method
                .entry(m.name.clone())
                .or_default()
                .push(json!({ "$ref": format!("#/components/schemas/{name}.args") }));
        }
    }
    let target = json!({ "name": "target", "in": "path", "required": true, "schema": { "type": "string" },
                         "description": "an object id (UUID) or a name such as bank/alice" });
    let mut paths = serde_json::Map::new();
    for (method, bodies) in by_method {
        paths.insert(
            format!("/v1/objects/{{target}}/{method}"),
            json!({ "post": {
                "summary": format!("invoke `{method}`"),
                "parameters": [target],
                "security": [{ "capability": [] }],
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "oneOf": bodies } } } },
                "responses": { "200": { "description": "the result, as JSON" },
                               "400": { "description": "bad arguments" }, "401": { "description": "no capability" },
                               "403": { "description": "denied" }, "404": { "description": "not found" },
                               "422": { "description": "the method's own error" },
                               "503": { "description": "unavailable" }, "504": { "description": "deadline exceeded" } }
            }}),
        );
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "Clouds HTTP gateway", "version": env!("CARGO_PKG_VERSION") },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": { "capability": { "type": "http", "scheme": "bearer", "bearerFormat": "cap1" } }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_map_to_json_schemas() {
        assert_eq!(schema_of("i64"), json!({ "type": "integer" }));
        assert_eq!(schema_of("Option<String>"), json!({ "type": "string", "nullable": true }));
        assert_eq!(schema_of("Vec<u8>"), json!({ "type": "array", "items": { "type": "integer" } }));
        assert_eq!(schema_of("Result<i64, CounterError>"), json!({ "type": "integer" }));
        assert_eq!(schema_of("Ref<Counter>")["type"], json!("object"));
    }

    #[test]
    fn errors_map_to_statuses() {
        let status = |e: InvokeError| Failure::from(e).0;
        assert_eq!(status(InvokeError::invalid("x")), StatusCode::BAD_REQUEST);
        assert_eq!(status(InvokeError::Denied { reason: "x".into() }), StatusCode::FORBIDDEN);
        assert_eq!(status(InvokeError::NameNotFound { path: "/a".into() }), StatusCode::NOT_FOUND);
        let unavailable = InvokeError::Unavailable { node: "node-2".into(), reason: "down".into() };
        assert_eq!(status(unavailable), StatusCode::SERVICE_UNAVAILABLE);
        let late = InvokeError::DeadlineExceeded {
            object: ObjectId::new(clouds::NodeId(1)),
            method: "m".into(),
            elapsed_ms: 1,
        };
        assert_eq!(status(late), StatusCode::GATEWAY_TIMEOUT);
        let bound = InvokeError::app(naming::NameError::AlreadyBound {
            name: "a".into(),
            id: ObjectId::new(clouds::NodeId(1)),
        });
        assert_eq!((Failure::from(bound.clone()).0, Failure::from(bound).1), (StatusCode::CONFLICT, "name_taken"));
    }
}
