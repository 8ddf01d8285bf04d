//! Where an object is, and taking the thread there.
//!
//! An object's home (encoded in its id) keeps its authoritative record: the object itself,
//! or a forwarding entry once it has moved. An invocation for an object elsewhere is
//! forwarded to the node it is believed to be on, with the whole thread context, so the
//! thread continues there; `Moved` answers are followed (and remembered) a bounded number
//! of times. A node that cannot be reached gives `Unavailable` naming it, within the
//! thread's deadline.

use super::Engine;
use crate::cluster::Cluster;
use crate::wire::{Invocation, Reply};
use clouds::{InvokeError, NodeId, ObjectId};
use std::sync::Arc;
use tokio::time::{Duration, Instant};

/// How many `Moved` answers one invocation follows before giving up.
const MAX_REDIRECTS: usize = 4;
/// The longest a connection attempt to another node may take.
const CONNECT: Duration = Duration::from_secs(3);

impl Engine {
    /// Links the engine to the cluster; before this it serves only its own objects.
    pub fn join(&self, cluster: Arc<Cluster>) {
        let _ = self.inner.cluster.set(cluster);
    }

    pub fn cluster(&self) -> Result<&Arc<Cluster>, InvokeError> {
        self.inner.cluster.get().ok_or_else(|| InvokeError::Unavailable {
            node: "the cluster".into(),
            reason: format!("{} is not part of a cluster", self.inner.node),
        })
    }

    /// The node an object is believed to be on: where it was last seen moving to, or its home.
    pub(super) fn location(&self, id: ObjectId) -> NodeId {
        self.inner.locations.lock().expect("locations mutex").get(&id).copied().unwrap_or_else(|| id.home())
    }

    fn remember(&self, id: ObjectId, at: NodeId) {
        let mut locations = self.inner.locations.lock().expect("locations mutex");
        if at == id.home() {
            locations.remove(&id);
        } else {
            locations.insert(id, at);
        }
    }

    /// Passes the invocation to `node`, following `Moved`.
    pub(super) async fn forward(&self, node: NodeId, mut inv: Invocation) -> Result<Reply, InvokeError> {
        let cluster = self.cluster()?;
        let deadline = Instant::now() + Duration::from_millis(inv.thread.remaining_ms);
        let mut to = node;
        for _ in 0..MAX_REDIRECTS {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(InvokeError::DeadlineExceeded { object: inv.target, method: inv.method, elapsed_ms: 0 });
            }
            let client = cluster.client(to, left.min(CONNECT)).await?;
            inv.thread.remaining_ms = left.as_millis() as u64;
            inv.thread.lamport = self.tick();
            // While the call is out, the thread waits for it: an edge for deadlock searches.
            let _waiting = RemoteWait::start(self, inv.thread.id, inv.target, to);
            match client.forward(inv.clone(), left).await {
                Err(transport) => {
                    cluster.failed(to);
                    return Err(InvokeError::Unavailable {
                        node: format!("{to} at {}", client.addr()),
                        reason: transport,
                    });
                }
                Ok(Err(InvokeError::Moved { to: next, .. })) => {
                    cluster.worked(to);
                    self.remember(inv.target, next);
                    to = next;
                }
                Ok(result) => {
                    cluster.worked(to);
                    return result;
                }
            }
        }
        Err(InvokeError::Unavailable {
            node: to.to_string(),
            reason: format!("object {} moved more than {MAX_REDIRECTS} times while being called", inv.target),
        })
    }
}

/// A thread's call out to another node, recorded in the wait-for graph while alive.
struct RemoteWait<'a> {
    engine: &'a Engine,
    thread: clouds::ThreadId,
}

impl<'a> RemoteWait<'a> {
    fn start(engine: &'a Engine, thread: clouds::ThreadId, object: ObjectId, node: NodeId) -> Self {
        engine.inner.waits.lock().expect("wait graph mutex").wait_remote(thread, object, node);
        RemoteWait { engine, thread }
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
        if let Some(root) = self.inner.local_root {
            return Ok(root);
        }
        let root_node = self.inner.root_node;
        let peers = self.cluster()?.membership.peers().await;
        peers.iter().find(|p| p.id == root_node).and_then(|p| p.root).ok_or_else(|| InvokeError::Unavailable {
            node: root_node.to_string(),
            reason: "it keeps the root directory and has not been heard from yet".into(),
        })
    }
}
