//! Client-side routing (`Client::routed`): invocations go straight to the node that has the
//! object (its home, or where a `Moved` said it went) over pooled connections, instead of
//! through the node the client connected to.

use super::Client;
use crate::membership::{Peer, PeerState};
use crate::wallet::Wallet;
use clouds::{NodeId, ObjectId};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
pub(super) struct Routes {
    /// Node addresses, as membership reported them. The maps below are behind std
    /// `Mutex`es: one map operation at a time, never across an `.await`.
    addrs: Mutex<HashMap<NodeId, SocketAddr>>,
    conns: Mutex<HashMap<NodeId, Client>>,
    /// Objects seen to live away from their home.
    locations: Mutex<HashMap<ObjectId, NodeId>>,
}

impl Routes {
    pub(super) fn new(peers: &[Peer]) -> Routes {
        let addrs = peers.iter().filter(|p| p.state != PeerState::Dead).map(|p| (p.id, p.addr)).collect();
        Routes { addrs: Mutex::new(addrs), ..Routes::default() }
    }

    pub(super) fn location(&self, id: ObjectId) -> NodeId {
        self.locations.lock().expect("locations mutex").get(&id).copied().unwrap_or_else(|| id.home())
    }

    pub(super) fn remember(&self, id: ObjectId, at: NodeId) {
        self.locations.lock().expect("locations mutex").insert(id, at);
    }

    /// A connection to `node`: pooled, or opened now. `None` if the node is unknown or
    /// does not accept a connection (nothing was sent, so going another way is safe).
    pub(super) async fn connection(
        &self,
        node: NodeId,
        within: Duration,
        deadline: Duration,
        wallet: &Arc<Wallet>,
    ) -> Option<(Client, bool)> {
        if let Some(c) = self.conns.lock().expect("conns mutex").get(&node) {
            return Some((c.clone(), true));
        }
        let addr = *self.addrs.lock().expect("addrs mutex").get(&node)?;
        let client = Client::connect_with(addr, within, wallet.clone()).await.ok()?.with_deadline(deadline);
        self.conns.lock().expect("conns mutex").insert(node, client.clone());
        Some((client, false))
    }

    pub(super) fn forget(&self, node: NodeId) {
        self.conns.lock().expect("conns mutex").remove(&node);
    }
}
