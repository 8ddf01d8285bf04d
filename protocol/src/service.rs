//! The tarpc service every node serves, its frame codec, and [`Connection`]: one connection
//! to a node, opened with the handshake, carrying typed requests.

use crate::handshake::{self, Credentials};
use crate::wire::{Request, RequestBody, Response};
use clouds::{InvokeError, NodeId};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tarpc::tokio_serde::formats::Bincode;
use tarpc::tokio_util::codec::{Framed, LengthDelimitedCodec};

/// Largest RPC frame: enough for the largest single-call payload (4 MiB of blob data)
/// with room for the envelope.
pub const MAX_FRAME: usize = 8 * 1024 * 1024;

/// How long connecting to a node may take, unless the caller has less time.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The margin the transport's deadline gives beyond the thread's own, so that the node
/// can report a `DeadlineExceeded` of its own before the transport gives up.
const TRANSPORT_MARGIN: Duration = Duration::from_secs(2);

#[tarpc::service]
pub trait NodeRpc {
    /// Every request: versioned, typed by `RequestBody`.
    async fn call(req: Request) -> Response;
}

/// The length-delimited frame codec both ends use.
pub fn frame_codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder().max_frame_length(MAX_FRAME).new_codec()
}

/// A node closes a connection that has had no request in flight for its idle timeout
/// (`idle_timeout_ms`, default 120 s); a connection idle longer than this is not reused,
/// but opened again, so that a request never goes out on a connection the node is closing.
pub const REUSE_WITHIN: Duration = Duration::from_secs(30);

/// Milliseconds from the first call in this process to `at`: when a connection was last used.
fn ms_at(at: Instant) -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    at.saturating_duration_since(*START.get_or_init(Instant::now)).as_millis() as u64
}

fn now_ms() -> u64 {
    ms_at(Instant::now())
}

/// A connection to one node. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct Connection {
    /// To the connection's dispatch (`dispatch::run`), which writes the requests and hands
    /// the answers back.
    requests: tokio::sync::mpsc::UnboundedSender<crate::dispatch::Outgoing>,
    addr: SocketAddr,
    /// Set once the connection's dispatch ended (the peer went away; nothing sent on it
    /// would go out), to why: what callers hear when no answer can come.
    ended: std::sync::Arc<std::sync::OnceLock<String>>,
    /// The node's certificate, proven at the handshake.
    server: Option<std::sync::Arc<capability::NodeCert>>,
    /// When a request last went out or came back (`now_ms`).
    used: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Connection {
    /// Connects to `addr` and runs the handshake as `credentials`, checking that the server
    /// is node `expect` of the same cluster if given; gives up after `within`.
    pub async fn open(
        addr: SocketAddr,
        within: Duration,
        credentials: Credentials<'_>,
        expect: Option<NodeId>,
    ) -> Result<Connection, InvokeError> {
        let unavailable = |reason: String| InvokeError::Unavailable { node: addr.to_string(), reason };
        let connected = tokio::time::timeout(within, async {
            let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| unavailable(e.to_string()))?;
            // Small request/reply messages: do not wait to coalesce them.
            let _ = stream.set_nodelay(true);
            // Everything from here on is encrypted; the handshake proves who is at each end
            // of this channel (its binding).
            let mut stream = crate::secure::connect(stream).await.map_err(|e| unavailable(e.to_string()))?;
            let binding = stream.binding().to_vec();
            let server = handshake::connect(&mut stream, credentials, expect, &binding).await.map_err(|f| match f {
                // The connection broke: the node may be going down or starting up.
                handshake::Failure::Transport(reason) => InvokeError::Unavailable { node: addr.to_string(), reason },
                handshake::Failure::Refused(reason) => InvokeError::Denied { reason },
            })?;
            Ok::<_, InvokeError>((stream, server))
        });
        let (stream, server) =
            connected.await.map_err(|_| unavailable(format!("no answer within {} ms", within.as_millis())))??;
        let transport = tarpc::serde_transport::new(Framed::new(stream, frame_codec()), Bincode::default());
        let (requests, incoming) = tokio::sync::mpsc::unbounded_channel();
        let ended = std::sync::Arc::new(std::sync::OnceLock::new());
        tokio::spawn(crate::dispatch::run(transport, incoming, ended.clone()));
        let used = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(now_ms()));
        Ok(Connection { requests, addr, ended, server: server.map(std::sync::Arc::new), used })
    }

    /// The certificate the node presented and proved on this connection, if it has one.
    pub fn server(&self) -> Option<&capability::NodeCert> {
        self.server.as_deref()
    }

    /// Whether the connection is closed for good: a pool hands it out no more.
    pub fn is_closed(&self) -> bool {
        self.ended.get().is_some()
    }

    /// Whether to open a new connection rather than use this one: it is closed, or has
    /// been idle past `REUSE_WITHIN` (the node may be closing it).
    pub fn is_stale(&self) -> bool {
        let idle = now_ms().saturating_sub(self.used.load(std::sync::atomic::Ordering::Relaxed));
        self.is_closed() || idle > REUSE_WITHIN.as_millis() as u64
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends one request that may take up to `deadline`. `Err` is a transport failure: the
    /// node could not be reached or went away, and the request may or may not have run
    /// (tarpc cannot tell a request that never went out from one cut off mid-way, so only
    /// a request that may run twice, `RequestBody::repeatable`, may be sent again).
    pub async fn send(&self, body: RequestBody, deadline: Duration) -> Result<Response, String> {
        // A copy of a blank one, not `tarpc::context::current()`, which reads the clock and
        // looks up the current span's OpenTelemetry context for a trace id nothing reads: the
        // thread's trace travels in the invocation (`ThreadCtx::trace`), and the node
        // keeps deadlines itself.
        static BLANK: std::sync::OnceLock<tarpc::context::Context> = std::sync::OnceLock::new();
        let mut context = *BLANK.get_or_init(|| {
            let mut blank = tarpc::context::current();
            blank.trace_context = Default::default();
            blank
        });
        let now = Instant::now();
        let within = deadline + TRANSPORT_MARGIN;
        context.deadline = now + within;
        // Stamped when sent, not again when answered (a clock read saved on every call): a
        // request that took long makes the connection look idle longer than it was, so it
        // is opened again sooner, never reused past the node's idle timeout.
        self.used.store(ms_at(now), std::sync::atomic::Ordering::Relaxed);
        let (answer, answered) = tokio::sync::oneshot::channel();
        // The dispatch ended: it recorded why before letting its callers go.
        let gone = || self.ended.get().cloned().unwrap_or_else(|| "the connection closed".to_string());
        self.requests
            .send(crate::dispatch::Outgoing { context, request: Request::new(body), answer })
            .map_err(|_| gone())?;
        // Past its deadline the caller stops waiting; the node answers all the same, and the
        // dispatch drops that answer.
        let answer = match tokio::time::timeout_at((now + within).into(), answered).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(gone()),
            Err(_) => Err(format!("no answer within {} ms", within.as_millis())),
        };
        answer
    }

    /// `send`, with a transport failure as `Unavailable` naming `node` (or the address).
    pub async fn call(&self, node: Option<NodeId>, body: RequestBody, deadline: Duration) -> Response {
        self.send(body, deadline).await.map_err(|reason| InvokeError::Unavailable {
            node: match node {
                Some(n) => format!("{n} at {}", self.addr),
                None => self.addr.to_string(),
            },
            reason,
        })?
    }
}
