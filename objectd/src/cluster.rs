//! A node's view of and links to the rest of the cluster: membership (gossip) and a pool of
//! RPC connections to other nodes, one per node, opened on first use and dropped when it
//! fails so that the next call reconnects.

use crate::client::Client;
use crate::identity::Identity;
use crate::membership::Membership;
use clouds::{InvokeError, NodeId};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

pub struct Cluster {
    pub membership: Membership,
    /// This node's identity, presented to other nodes (and theirs checked), if it has one.
    identity: Option<Arc<Identity>>,
    /// A connection per node, with the incarnation (gossip generation) it leads to. std
    /// `Mutex`: held to look up or change the map, never across an `.await`.
    pool: Mutex<HashMap<NodeId, (u64, Client)>>,
}

impl Cluster {
    pub fn new(membership: Membership, identity: Option<Arc<Identity>>) -> Cluster {
        Cluster { membership, identity, pool: Mutex::new(HashMap::new()) }
    }

    /// A connection to `node`, pooled. Fails with `Unavailable` naming the node when it is
    /// not a live member or does not answer within `within`.
    pub async fn client(&self, node: NodeId, within: Duration) -> Result<Client, InvokeError> {
        if let Some((_, c)) = self.pool.lock().expect("pool mutex").get(&node) {
            return Ok(c.clone());
        }
        let Some(peer) = self.membership.peer(node).await else {
            return Err(InvokeError::Unavailable {
                node: node.to_string(),
                reason: "not a live member of the cluster".into(),
            });
        };
        let addr = peer.addr;
        let expect = self.identity.as_ref().map(|_| node);
        let client = match Client::connect_as(addr, within, self.identity.as_deref(), expect).await {
            Ok(c) => c,
            Err(e) => {
                self.membership.mark_unreachable(node);
                return Err(InvokeError::Unavailable { node: format!("{node} at {addr}"), reason: reason_of(e) });
            }
        };
        self.pool.lock().expect("pool mutex").insert(node, (peer.generation, client.clone()));
        Ok(client)
    }

    /// Drops pooled connections to incarnations that are no longer live (a node that died
    /// or restarted), so that the next call connects afresh instead of failing on a dead
    /// connection. Runs until the membership stops.
    pub async fn prune_pool(&self) {
        let mut live = self.membership.live_watcher().await;
        while live.changed().await.is_ok() {
            let current: HashSet<(u16, u64)> =
                live.borrow().keys().filter_map(|c| Some((c.node_id.parse().ok()?, c.generation_id))).collect();
            self.pool
                .lock()
                .expect("pool mutex")
                .retain(|node, (generation, _)| current.contains(&(node.0, *generation)));
        }
    }

    /// The connection to `node` failed: drop it, and show the node as suspect.
    pub fn failed(&self, node: NodeId) {
        self.pool.lock().expect("pool mutex").remove(&node);
        self.membership.mark_unreachable(node);
    }

    pub fn worked(&self, node: NodeId) {
        self.membership.mark_reachable(node);
    }
}

fn reason_of(e: InvokeError) -> String {
    match e {
        InvokeError::Unavailable { reason, .. } => reason,
        other => other.to_string(),
    }
}
