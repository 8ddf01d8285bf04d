//! The node's tarpc service: a thin adapter between the wire and the engine.
//!
//! It checks the wire version and hands the typed request to the engine in a task of its
//! own: tarpc drops a handler's future when its client goes away or its deadline passes,
//! and a method must never be left half-applied, so the engine's work runs to its end
//! whatever happens to the connection.

use crate::admission::{Activity, Admission, Busy, Limits, Metered};
use crate::engine::{Engine, Origin};
use capability::PublicKey;
use clouds::InvokeError;
use futures::StreamExt;
use protocol::handshake::{self, Peer};
use protocol::service::{frame_codec, NodeRpc};
use protocol::wire::WIRE_VERSION;
use protocol::{Request, RequestBody, Response};
use std::future::Future;
use std::time::Duration;
use tarpc::server::{BaseChannel, Channel};
use tarpc::tokio_serde::formats::Bincode;
use tarpc::tokio_util::codec::Framed;
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

#[derive(Clone)]
struct Server {
    engine: Engine,
    /// Engine work in flight, so that shutdown can wait for it.
    work: TaskTracker,
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
        // Boxed: tarpc spawns this request's future and moves it on the way; a small one
        // moves cheaply.
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
        let engine = self.engine.clone();
        let origin = if matches!(self.peer, Peer::Node(_)) { Origin::Node } else { Origin::Caller };
        match self.work.spawn(async move { engine.handle(origin, req.body).await }).await {
            Ok(response) => response,
            Err(e) => Err(InvokeError::Panicked { method: "request".into(), message: e.to_string() }),
        }
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
                    let server = Server { engine, work, peer, activity: activity.clone(), busy };
                    let transport = tarpc::serde_transport::new(Framed::new(stream, frame_codec()), Bincode::default());
                    let channel = BaseChannel::with_defaults(transport)
                        .execute(server.serve())
                        .for_each(|request| async move {
                            tokio::spawn(request);
                        });
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
