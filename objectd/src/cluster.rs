//! A node's view of and links to the rest of the cluster: membership (gossip) and a pool of
//! RPC connections to other nodes, one per node, opened on first use and dropped when it
//! fails so that the next call reconnects.

use crate::client::Client;
use crate::membership::Membership;
use clouds::{InvokeError, NodeId};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

pub struct Cluster {
    pub membership: Membership,
    /// std `Mutex`: held to look up or change the map, never across an `.await`.
    pool: Mutex<HashMap<NodeId, Client>>,
}

impl Cluster {
    pub fn new(membership: Membership) -> Cluster {
        Cluster { membership, pool: Mutex::new(HashMap::new()) }
    }

    /// A connection to `node`, pooled. Fails with `Unavailable` naming the node when it is
    /// not a live member or does not answer within `within`.
    pub async fn client(&self, node: NodeId, within: Duration) -> Result<Client, InvokeError> {
        if let Some(c) = self.pool.lock().expect("pool mutex").get(&node) {
            return Ok(c.clone());
        }
        let Some(addr) = self.membership.addr_of(node).await else {
            return Err(InvokeError::Unavailable {
                node: node.to_string(),
                reason: "not a live member of the cluster".into(),
            });
        };
        let client = match Client::connect_within(addr, within).await {
            Ok(c) => c,
            Err(e) => {
                self.membership.mark_unreachable(node);
                return Err(InvokeError::Unavailable { node: format!("{node} at {addr}"), reason: reason_of(e) });
            }
        };
        self.pool.lock().expect("pool mutex").insert(node, client.clone());
        Ok(client)
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
