//! The node's tarpc service: a thin adapter between the wire and the engine.
//!
//! It checks the wire version and hands the typed request to the engine. Each request runs
//! in one task of its own, to its end whatever happens to the connection: a method must
//! never be left half-applied. That is why the connection is driven here (`drive`) and not
//! by tarpc's `execute`, which aborts a handler whose client cancelled or whose deadline
//! passed (and would take a second task per request to keep the engine's work out of its
//! reach).

use crate::admission::{Activity, Admission, Busy, Limits, Metered};
use crate::engine::{Engine, Origin};
use capability::PublicKey;
use clouds::InvokeError;
use futures::FutureExt;
use protocol::handshake::{self, Peer};
use protocol::service::{frame_codec, NodeRpc, NodeRpcRequest, NodeRpcResponse};
use protocol::wire::WIRE_VERSION;
use protocol::{Request, RequestBody, Response};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::task::Poll;
use std::time::Duration;
use tarpc::tokio_serde::formats::Bincode;
use tarpc::tokio_util::codec::Framed;
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

#[derive(Clone)]
struct Server {
    engine: Engine,
    /// Who is at the other end of this connection, as the handshake established.
    peer: Peer,
    /// This connection's requests in flight (its idle timeout).
    activity: std::sync::Arc<Activity>,
    /// The node's requests from callers in flight (its limit).
    busy: std::sync::Arc<Busy>,
}

impl NodeRpc for Server {
    async fn call(self, _: tarpc::context::Context, req: Request) -> Response {
        // What was asked, only when a refusal would be logged (the common path allocates nothing).
        let asked = tracing::enabled!(tracing::Level::DEBUG).then(|| req.body.operation().to_string());
        let peer = self.peer.clone();
        let (activity, busy) = (self.activity.clone(), self.busy.clone());
        let _serving = activity.serve();
        // The cluster's own protocol steps always go through: they finish what was begun.
        let _slot = match is_internal(&req.body) {
            true => None,
            false => match busy.enter() {
                Ok(slot) => Some(slot),
                Err(inflight) => {
                    return Err(InvokeError::Overloaded {
                        node: self.engine.node(),
                        reason: format!("{inflight} requests in flight, the most it serves at once; try again shortly"),
                    })
                }
            },
        };
        // Boxed: the request's task is spawned with this future in it (`drive`); a small
        // one moves cheaply.
        let answer = Box::pin(self.answer(req)).await;
        if let (Some(operation), Err(e)) = (asked, &answer) {
            if refused(e) {
                tracing::debug!(?peer, %operation, kind = e.kind(), "refused: {e}");
            }
        }
        answer
    }
}

/// Errors that refuse a request as it was made (the caller's to fix), as opposed to
/// failures of the node or of the method.
fn refused(e: &InvokeError) -> bool {
    matches!(
        e,
        InvokeError::Denied { .. }
            | InvokeError::BadArgs { .. }
            | InvokeError::NoSuchMethod { .. }
            | InvokeError::NoSuchClass { .. }
            | InvokeError::Invalid { .. }
    )
}

impl Server {
    async fn answer(self, mut req: Request) -> Response {
        if req.version != WIRE_VERSION {
            return Err(InvokeError::invalid(format!(
                "wire version {} is not supported by this node (it speaks {WIRE_VERSION}); upgrade the client or the node",
                req.version
            )));
        }
        if is_internal(&req.body) && !matches!(self.peer, Peer::Node(_)) {
            return Err(InvokeError::Denied {
                reason: "this request is for nodes of the cluster; the connection did not present a node certificate"
                    .into(),
            });
        }
        if let RequestBody::RootCapability { holder, read_only } = &mut req.body {
            *read_only = root_read_only(&self.peer, holder, self.engine.admin(), *read_only)
                .map_err(|reason| InvokeError::Denied { reason })?;
        }
        if let RequestBody::ResolveAction { .. }
        | RequestBody::SetMode(_)
        | RequestBody::Drain { .. }
        | RequestBody::OwnerActive = &req.body
        {
            is_admin(&self.peer, self.engine.admin(), req.body.operation())
                .map_err(|reason| InvokeError::Denied { reason })?;
        }
        // Listing every object: the administrator, or a node asking for a gateway that
        // checked the administrator's capability.
        if matches!(req.body, RequestBody::Objects { .. }) && !matches!(self.peer, Peer::Node(_)) {
            is_admin(&self.peer, self.engine.admin(), req.body.operation())
                .map_err(|reason| InvokeError::Denied { reason })?;
        }
        let origin = if matches!(self.peer, Peer::Node(_)) { Origin::Node } else { Origin::Caller };
        self.engine.handle(origin, req.body).await
    }
}

/// Serves one connection until it closes: each request in a task of its own, never
/// aborted; a panic that escapes the engine is answered as `Panicked`. Answers go back as
/// they come, many per flush. A request counts in `work` until its answer is flushed to the
/// socket (or the connection fails), so that shutdown waits for the answer, not only the work:
/// a node that stops after a failed flush still tells its callers their writes are in doubt.
///
/// It reads the transport itself rather than through tarpc's `BaseChannel`, whose per-request
/// bookkeeping (a deadline timer, a span, an abort handle) serves only to cut handlers short
/// and to drop the answers of cancelled or expired requests: here every request runs to its
/// end and is answered, and a client drops an answer it no longer waits for.
async fn drive<T>(transport: T, server: Server, work: TaskTracker)
where
    T: tarpc::Transport<tarpc::Response<NodeRpcResponse>, tarpc::ClientMessage<NodeRpcRequest>> + Send + 'static,
{
    let mut channel = Box::pin(transport);
    let (answered, mut answers) = tokio::sync::mpsc::unbounded_channel();
    // The answers written but not yet flushed, each holding its request's place in `work`.
    let mut unflushed = Vec::new();
    // Requests of this connection whose answers have not come back from their tasks.
    let mut running = 0usize;
    let mut flush = protocol::coalesce::Flush::default();
    let served = std::future::poll_fn(|cx| {
        // Answers first, while the transport takes them; then one flush for all.
        while channel.as_mut().poll_ready(cx).is_ready() {
            match answers.poll_recv(cx) {
                Poll::Ready(Some((answer, held))) => match channel.as_mut().start_send(answer) {
                    Ok(()) => {
                        unflushed.push(held);
                        running -= 1;
                    }
                    Err(e) => return Poll::Ready(Err(format!("an answer failed: {e}"))),
                },
                _ => break,
            }
        }
        // Many answers per flush (`protocol::coalesce`): held one turn while other requests run.
        if flush.now(cx, !unflushed.is_empty(), running) {
            match channel.as_mut().poll_flush(cx) {
                Poll::Ready(Ok(())) => unflushed.clear(),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(format!("a flush failed: {e}"))),
                Poll::Pending => {}
            }
        }
        loop {
            match channel.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(tarpc::ClientMessage::Request(request)))) => {
                    running += 1;
                    let (server, answered, held) = (server.clone(), answered.clone(), work.token());
                    let tarpc::Request { context, id, message: NodeRpcRequest::Call { req } } = request;
                    tokio::spawn(async move {
                        let response = AssertUnwindSafe(server.call(context, req)).catch_unwind().await;
                        let response = response.unwrap_or_else(|panic| {
                            let message = panic_message(panic.as_ref());
                            Err(InvokeError::Panicked { method: "request".into(), message })
                        });
                        let message = Ok(NodeRpcResponse::Call(response));
                        // The connection may be gone: the work is done all the same.
                        let _ = answered.send((tarpc::Response { request_id: id, message }, held));
                    });
                }
                // A caller that gave up on a request: it runs to its end all the same (its
                // answer is dropped by the caller). Whatever else tarpc may send asks nothing.
                Poll::Ready(Some(Ok(_))) => {}
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(format!("reading failed: {e}"))),
                Poll::Ready(None) => {
                    // The caller stopped sending: what it was answered goes out, held or not.
                    if !unflushed.is_empty() {
                        let _ = channel.as_mut().poll_flush(cx);
                    }
                    return Poll::Ready(Ok(()));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    });
    if let Err(e) = served.await {
        tracing::debug!("a connection ended: {e}");
    }
}

/// What a panic said, if it said it as text.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(s), _) => s.to_string(),
        (_, Some(s)) => s.clone(),
        _ => "a panic without a message".into(),
    }
}

/// Which capability for the root directory `peer` may have made out to `holder`: `false`
/// the owner capability, `true` a read-only one. A node passes on what it decided
/// (`read_only`); the administrator, having proved the admin key at the handshake, gets the
/// owner capability for themself; any other user a read-only one for themself.
fn root_read_only(peer: &Peer, holder: &PublicKey, admin: Option<&PublicKey>, read_only: bool) -> Result<bool, String> {
    match peer {
        Peer::Node(_) => Ok(read_only),
        Peer::User(key) if key != holder => {
            Err("the root directory's capability is made out only to the key the connection proved".into())
        }
        Peer::User(key) => Ok(read_only || admin != Some(key)),
        Peer::Anonymous => Err("the connection did not prove a key, so no capability can be made out to it \
             (clouds and the client library prove their wallet's key)"
            .into()),
    }
}

/// Whether `peer` proved the administrator's key (who alone may decide an action by hand,
/// or set a node's mode): `operation` names what was asked, for the message.
fn is_admin(peer: &Peer, admin: Option<&PublicKey>, operation: &str) -> Result<(), String> {
    match (peer, admin) {
        (Peer::User(key), Some(admin)) if key == admin => Ok(()),
        (_, None) => Err("no administrator is configured for this cluster (objectd --admin KEY)".into()),
        _ => Err(format!(
            "only the cluster's administrator may {operation} (the connection did not prove the admin key)"
        )),
    }
}

/// Requests only nodes of the cluster may make.
fn is_internal(body: &RequestBody) -> bool {
    matches!(
        body,
        RequestBody::Probe(_)
            | RequestBody::Migration(_)
            | RequestBody::Action(_)
            | RequestBody::Adopt { .. }
            | RequestBody::Reclaim { .. }
    )
}

/// How long a peer may take over the handshake.
const HANDSHAKE_WITHIN: Duration = Duration::from_secs(5);

/// Serves `listener` until `shutdown` resolves, then waits up to `grace` for engine work
/// in flight to finish. Every connection opens with the handshake (as the node the engine's
/// identity names), within the limits of `admission` (connections, frame sizes and times,
/// bytes of frames still arriving).
pub async fn serve(listener: TcpListener, engine: Engine, shutdown: impl Future<Output = ()>, grace: Duration) {
    serve_with(listener, engine, shutdown, grace, Limits::default()).await
}

/// `serve`, within `limits`.
pub async fn serve_with(
    listener: TcpListener,
    engine: Engine,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
    limits: Limits,
) {
    let identity = engine.guard().identity().clone();
    let work = TaskTracker::new();
    let (idle_within, busy) = (limits.idle_within, std::sync::Arc::new(Busy::new(limits.max_requests)));
    let admission = Admission::new(limits);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            // Asked to stop: accept nothing more.
            _ = &mut shutdown => break,
            // A client connected.
            accepted = listener.accept() => {
                let (stream, from) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        continue;
                    }
                };
                // Closed at once beyond the limits on connections.
                let ticket = match admission.admit(from.ip()) {
                    Ok(ticket) => ticket,
                    Err(why) => {
                        admission.refused(&why);
                        continue;
                    }
                };
                // Small request/reply messages: do not wait to coalesce them.
                let _ = stream.set_nodelay(true);
                let (engine, work, identity, admission) = (engine.clone(), work.clone(), identity.clone(), admission.clone());
                let busy = busy.clone();
                // The handshake runs in the connection's own task: a slow peer delays nobody.
                tokio::spawn(async move {
                    let _ticket = ticket;
                    // The encrypted channel, then the handshake inside it, bound to it.
                    let shake = async {
                        let mut stream = protocol::secure::accept(stream).await.map_err(|e| e.to_string())?;
                        let binding = stream.binding().to_vec();
                        let peer = handshake::accept(&mut stream, engine.node(), Some(&identity), &binding).await?;
                        Ok::<_, String>((stream, peer))
                    };
                    let (stream, peer) = match tokio::time::timeout(HANDSHAKE_WITHIN, shake).await {
                        Ok(Ok(done)) => done,
                        Ok(Err(reason)) => return admission.refused(&format!("a handshake: {reason}")),
                        Err(_) => return admission.refused("a peer did not finish the handshake in time"),
                    };
                    let stream = Metered::new(stream, admission, matches!(peer, Peer::Anonymous));
                    let activity = std::sync::Arc::new(Activity::new());
                    let server = Server { engine, peer, activity: activity.clone(), busy };
                    let transport = tarpc::serde_transport::new(Framed::new(stream, frame_codec()), Bincode::default());
                    let channel = drive(transport, server, work);
                    // Dropping the channel closes the connection.
                    tokio::select! {
                        () = channel => {}
                        () = activity.idle(idle_within) => tracing::debug!("closed a connection idle for {idle_within:?}"),
                    }
                });
            }
        }
    }
    work.close();
    if tokio::time::timeout(grace, work.wait()).await.is_err() {
        tracing::warn!("{} invocations still running after the shutdown grace period", work.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use capability::KeyPair;
    use clouds::NodeId;

    #[test]
    fn the_root_capability_goes_whole_to_the_proven_admin_and_read_only_to_other_users() {
        let (admin, other) = (KeyPair::generate().public(), KeyPair::generate().public());
        assert_eq!(root_read_only(&Peer::User(admin), &admin, Some(&admin), false), Ok(false));
        assert_eq!(root_read_only(&Peer::User(admin), &admin, Some(&admin), true), Ok(true));
        assert_eq!(root_read_only(&Peer::User(other), &other, Some(&admin), false), Ok(true));
        assert_eq!(root_read_only(&Peer::User(other), &other, None, false), Ok(true));
        assert_eq!(root_read_only(&Peer::Node(NodeId(2)), &other, Some(&admin), false), Ok(false));
        let no = |peer: Peer, holder: &PublicKey| root_read_only(&peer, holder, Some(&admin), false).unwrap_err();
        assert!(no(Peer::User(admin), &other).contains("made out only to the key"));
        assert!(no(Peer::Anonymous, &admin).contains("did not prove a key"));
        assert!(is_admin(&Peer::User(admin), Some(&admin), "resolve an action").is_ok());
        let other = is_admin(&Peer::User(other), Some(&admin), "set the node's mode").unwrap_err();
        assert!(other.contains("only the cluster's administrator may set the node's mode"), "{other}");
        assert!(is_admin(&Peer::Node(NodeId(2)), Some(&admin), "resolve an action").is_err(), "not even a node");
    }
}
