//! Connections to nodes, one per node incarnation, opened on first use.
//!
//! A connection is pooled with the incarnation (gossip generation) of the node it leads to;
//! asking for a newer incarnation drops the old connection instead of reusing it, so a
//! connection never outlives a restart of its node. Clients and nodes use the same pool.

use crate::handshake::Credentials;
use crate::service::Connection;
use clouds::{InvokeError, NodeId};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

/// Where a node is: its address and incarnation, as membership reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub node: NodeId,
    pub generation: u64,
    pub addr: SocketAddr,
}

#[derive(Default)]
pub struct Pool {
    /// std `Mutex`: held to look up or change the map, never across an `.await`.
    conns: Mutex<HashMap<NodeId, (Endpoint, Connection)>>,
}

impl Pool {
    /// The pooled connection to `node`, whatever incarnation it leads to: for a pool whose
    /// owner drops connections to incarnations that ended (`retain`).
    pub fn pooled(&self, node: NodeId) -> Option<Connection> {
        let mut conns = self.conns.lock().expect("pool mutex");
        // A connection whose peer went away (or that sat idle so long that the peer may be
        // closing it) is dropped, not handed out: a request sent on it would fail.
        if conns.get(&node).is_some_and(|(_, conn)| conn.is_stale()) {
            conns.remove(&node);
        }
        conns.get(&node).map(|(_, conn)| conn.clone())
    }

    /// A connection to `to`: pooled (`true`), or opened now as `credentials` (`false`),
    /// checking that the server is `to.node` when `check` is set.
    pub async fn get(
        &self,
        to: Endpoint,
        within: Duration,
        credentials: Credentials<'_>,
        check: bool,
    ) -> Result<(Connection, bool), InvokeError> {
        if let Some((at, conn)) = self.conns.lock().expect("pool mutex").get(&to.node) {
            if *at == to && !conn.is_stale() {
                return Ok((conn.clone(), true));
            }
        }
        let conn =
            Connection::open(to.addr, within, credentials, check.then_some(to.node)).await.map_err(|e| match e {
                InvokeError::Unavailable { reason, .. } => {
                    InvokeError::Unavailable { node: format!("{} at {}", to.node, to.addr), reason }
                }
                other => other,
            })?;
        self.conns.lock().expect("pool mutex").insert(to.node, (to, conn.clone()));
        Ok((conn, false))
    }

    /// The connection to `node` failed: the next request opens a new one.
    pub fn forget(&self, node: NodeId) {
        self.conns.lock().expect("pool mutex").remove(&node);
    }

    /// Keeps only connections to incarnations `live` still reports.
    pub fn retain(&self, live: impl Fn(NodeId, u64) -> bool) {
        self.conns.lock().expect("pool mutex").retain(|node, (at, _)| live(*node, at.generation));
    }

    pub fn len(&self) -> usize {
        self.conns.lock().expect("pool mutex").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
