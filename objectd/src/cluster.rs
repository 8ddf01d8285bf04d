//! A node's view of and links to the rest of the cluster: membership (gossip) and the pool of
//! connections to other nodes, one per node incarnation. It is how the engine reaches
//! other nodes (`engine::Peers`).

use crate::engine::Peers;
use crate::membership::Membership;
use clouds::{BoxFuture, InvokeError, NodeId};
use protocol::pool::Endpoint;
use protocol::{Connection, Credentials, Identity, NodeView, Pool, RequestBody, Response};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// The longest a connection attempt to another node may take.
const CONNECT: Duration = Duration::from_secs(3);

pub struct Cluster {
    pub membership: Membership,
    /// This node's identity, presented to other nodes (and theirs checked).
    identity: Arc<Identity>,
    pool: Pool,
}

impl Cluster {
    pub fn new(membership: Membership, identity: Arc<Identity>) -> Cluster {
        Cluster { membership, identity, pool: Pool::default() }
    }

    /// Drops pooled connections to incarnations that are no longer live (a node that died
    /// or restarted), so that the next call connects afresh instead of failing on a dead
    /// connection. Runs until the membership stops.
    pub async fn prune_pool(&self) {
        let mut live = self.membership.live_watcher().await;
        while live.changed().await.is_ok() {
            let current: HashSet<(u16, u64)> =
                live.borrow().keys().filter_map(|c| Some((c.node_id.parse().ok()?, c.generation_id))).collect();
            self.pool.retain(|node, generation| current.contains(&(node.0, generation)));
        }
    }

    /// A connection to `node`: pooled (the watcher keeps only live incarnations there), or
    /// opened to the incarnation membership reports now.
    /// `true` with a pooled one.
    async fn connection(&self, node: NodeId, within: Duration) -> Result<(Connection, bool), InvokeError> {
        match self.pool.pooled(node) {
            Some(conn) => Ok((conn, true)),
            // Boxed: the connecting future is large (a handshake), and a request's future
            // would carry its size on every call, pooled or not.
            None => Box::pin(self.connect(node, within)).await,
        }
    }

    async fn connect(&self, node: NodeId, within: Duration) -> Result<(Connection, bool), InvokeError> {
        // Its newest incarnation, even one the failure detector counts as dead: after this
        // node stalled (stopped, swapped out) it counts every other node dead for a while,
        // wrongly; a connection attempt tells, within the time given.
        let Some(view) = self.membership.peers().await.into_iter().find(|p| p.id == node) else {
            return Err(InvokeError::Unavailable {
                node: node.to_string(),
                reason: "not a member of the cluster".into(),
            });
        };
        let to = Endpoint { node, generation: view.generation, addr: view.addr };
        match self.pool.get(to, within.min(CONNECT), Credentials::Node(&self.identity), true).await {
            Ok((conn, _)) => Ok((conn, false)),
            Err(e) => {
                self.membership.mark_unreachable(node);
                Err(e)
            }
        }
    }

    async fn send_to(&self, node: NodeId, mut body: RequestBody, within: Duration) -> Response {
        let mut retried = false;
        loop {
            let (conn, pooled) = self.connection(node, within).await?;
            // A pooled connection to an incarnation that may be gone: a request that may
            // run twice goes once more, to the incarnation membership knows now (so it is
            // kept); any other could have run, and the caller hears `Unavailable`.
            let again = (pooled && !retried && body.repeatable()).then(|| body.clone());
            match conn.send(body, within).await {
                Err(reason) => {
                    self.pool.forget(node);
                    if let Some(same) = again {
                        body = same;
                        retried = true;
                        continue;
                    }
                    self.membership.mark_unreachable(node);
                    return Err(InvokeError::Unavailable { node: format!("{node} at {}", conn.addr()), reason });
                }
                Ok(answer) => {
                    self.membership.mark_reachable(node);
                    return answer;
                }
            }
        }
    }
}

impl Peers for Cluster {
    fn send(&self, node: NodeId, body: RequestBody, within: Duration) -> BoxFuture<'_, Response> {
        Box::pin(self.send_to(node, body, within))
    }

    fn nodes(&self) -> BoxFuture<'_, Vec<NodeView>> {
        Box::pin(self.membership.peers())
    }
}
