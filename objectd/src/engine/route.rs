//! Where an object is, and taking the request there.
//!
//! Every request that names an object passes through [`Engine::handle`]. A request from a
//! client, or from a thread running on this node, is sent where the object is believed to
//! be (`protocol::route::follow`: served here, or forwarded over `Peers` with the whole
//! thread context, so the thread continues there; `Moved` answers followed and
//! remembered). A request forwarded by another node is served here if this store has the
//! object, and otherwise answered: `NotFound` by the object's home, which knows, or
//! `Moved` (from a forwarding entry, or to where the object is believed to be), so that
//! the forwarding node learns the route itself. A node that cannot be reached gives `Unavailable` naming it,
//! within the request's deadline.

use super::Engine;
use clouds::{BoxFuture, InvokeError, NodeId, ObjectId};
use protocol::route;
use protocol::{Invocation, RequestBody, Response};
use tokio::time::{Duration, Instant};

/// Who sent a request, as far as routing cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A client, or a thread running on this node: the request is taken to the object.
    Caller,
    /// Another node, which chose this node for the object: it is served here, or answered
    /// with `Moved` or `NotFound`.
    Node,
}

/// How much of a thread's time left a node keeps back when it sends the thread on to
/// another node: the time an answer sent at the other node's deadline may take to arrive.
const ANSWER_MARGIN: Duration = Duration::from_millis(20);

/// The longest a request about an object's life (describe, delete, revoke) may take.
pub(super) const LIFECYCLE_DEADLINE: Duration = Duration::from_millis(clouds::thread::DEFAULT_DEADLINE_MS);

impl Engine {
    /// The node an object is believed to be on: where it was last seen moving to, or its home.
    pub(super) fn location(&self, id: ObjectId) -> NodeId {
        self.inner.locations.get(id)
    }

    /// Serves one request from `origin`: about an object, where the object is.
    pub async fn handle(&self, origin: Origin, body: RequestBody) -> Response {
        // Fail-stop: after a failed flush the node answers nothing (`commit`).
        if let Some(e) = self.inner.commits.failed() {
            return Err(InvokeError::Unavailable {
                node: self.inner.node.to_string(),
                reason: format!("its store failed to flush ({e}); it serves nothing until it restarts"),
            });
        }
        let Some(target) = body.target() else {
            return self.serve(body).await;
        };
        if origin == Origin::Node {
            return self.serve(body).await;
        }
        let me = self.inner.node;
        let deadline = Instant::now() + deadline_of(&body);
        let attempt = || {
            // Each attempt boxed: this future, and every one that awaits it, stays small
            // (they are moved whole as they start, on every call).
            route::follow(target, body.operation(), &self.inner.locations, deadline, |node, left| {
                let body = body.clone();
                if node == me {
                    self.serve(body)
                } else {
                    Box::pin(self.send_to(node, body, left, deadline)) as BoxFuture<'_, Response>
                }
            })
        };
        match attempt().await {
            // The node with the object's home records is gone: if it was drained, gossip
            // names the node that keeps them now.
            Err(InvokeError::Unavailable { node, reason }) => {
                let before = self.inner.locations.home_of(target);
                let views = self.inner.peers.nodes().await;
                self.refresh_keepers(&views);
                let home = self.inner.locations.home_of(target);
                if home != before && Instant::now() < deadline {
                    attempt().await
                } else if home == target.home() && !views.iter().any(|v| v.id == home) {
                    // Its home has never been a member (no record of it, not even dead):
                    // a made-up or mistyped id, not a node that is down.
                    Err(InvokeError::NotFound { id: target })
                } else {
                    Err(InvokeError::Unavailable { node, reason })
                }
            }
            answer => answer,
        }
    }

    /// Sends a request to another node; an invocation carries what is left of the
    /// thread's deadline and the Lamport time, and while it is out the thread waits for it
    /// (an edge for deadlock searches).
    /// `left` of the time until `deadline`.
    async fn send_to(&self, node: NodeId, mut body: RequestBody, left: Duration, deadline: Instant) -> Response {
        crate::telemetry::record_forward();
        let _waiting = match &mut body {
            RequestBody::Invoke(inv) => {
                if let Some(caller) = inv.thread.chain.last().and_then(|f| self.inner.table.peek(f.object)) {
                    caller.usage.partner(inv.target, node);
                }
                // The other node keeps the thread's deadline itself and answers
                // `DeadlineExceeded` when it passes: a little before this end stops waiting,
                // so that a live node's answer arrives in time and wins over "no answer".
                inv.thread.remaining_ms = left.saturating_sub(ANSWER_MARGIN).as_millis() as u64;
                inv.thread.lamport = self.tick();
                Some(RemoteWait::start(self, inv, node))
            }
            _ => None,
        };
        // Whatever the transport's own margins, the answer is given up on at the thread's
        // deadline, naming the node that did not answer (not this one, to its caller).
        match tokio::time::timeout_at(deadline, self.inner.peers.send(node, body, left)).await {
            Ok(answer) => answer,
            Err(_) => Err(InvokeError::Unavailable {
                node: node.to_string(),
                reason: format!("no answer within {} ms", left.as_millis()),
            }),
        }
    }
}

/// How long a request may take: an invocation, what is left of its thread's deadline.
fn deadline_of(body: &RequestBody) -> Duration {
    match body {
        RequestBody::Invoke(inv) => clouds::thread::time_left(inv.thread.remaining_ms),
        _ => LIFECYCLE_DEADLINE,
    }
}

/// A thread's call out to another node, recorded in the wait-for graph while alive.
struct RemoteWait<'a> {
    engine: &'a Engine,
    thread: clouds::ThreadId,
}

impl<'a> RemoteWait<'a> {
    fn start(engine: &'a Engine, inv: &Invocation, node: NodeId) -> Self {
        engine.inner.waits.lock().expect("wait graph mutex").wait_remote(inv.thread.id, inv.target, node);
        RemoteWait { engine, thread: inv.thread.id }
    }
}

impl Drop for RemoteWait<'_> {
    fn drop(&mut self) {
        self.engine.inner.waits.lock().expect("wait graph mutex").stop_waiting(self.thread);
    }
}

impl Engine {
    /// The cluster's root directory: kept here, or as the root node publishes it.
    pub async fn root(&self) -> Result<ObjectId, InvokeError> {
        if let Some(root) = self.inner.local_root.or_else(|| self.inner.remote_root.get().copied()) {
            return Ok(root);
        }
        let root_node = self.inner.root_node;
        let nodes = self.inner.peers.nodes().await;
        let root =
            nodes.iter().find(|p| p.id == root_node).and_then(|p| p.root).ok_or_else(|| InvokeError::Unavailable {
                node: root_node.to_string(),
                reason: "it keeps the root directory and has not been heard from yet".into(),
            })?;
        // The root directory of a cluster never changes: learned once.
        Ok(*self.inner.remote_root.get_or_init(|| root))
    }
}
