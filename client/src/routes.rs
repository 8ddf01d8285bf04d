//! Client-side routing (`Client::routed`): requests go straight to the node that has the
//! object (its home, or where a `Moved` said it went) over pooled connections, instead of
//! through the entry node.

use crate::wallet::Wallet;
use clouds::{InvokeError, NodeId};
use protocol::pool::Endpoint;
use protocol::service::CONNECT_TIMEOUT;
use protocol::{Connection, Credentials, Liveness, NodeView, Pool, RequestBody, Response};
use std::collections::HashMap;
use std::time::Duration;

pub(crate) struct Routes {
    /// Where each node listens, as membership reported it when the client was routed.
    endpoints: HashMap<NodeId, Endpoint>,
    pool: Pool,
}

impl Routes {
    pub(crate) fn new(nodes: &[NodeView]) -> Routes {
        let endpoints = nodes
            .iter()
            .filter(|n| n.state != Liveness::Dead)
            .map(|n| (n.id, Endpoint { node: n.id, generation: n.generation, addr: n.addr }))
            .collect();
        Routes { endpoints, pool: Pool::default() }
    }

    /// Sends `body` to `node` directly. A node that is unknown or does not accept a
    /// connection is reached through `entry` (nothing was sent yet, so going another way
    /// is safe). A connection that breaks after sending is retried once, fresh, only when
    /// a repeat cannot run a method twice (an invocation with a call id).
    pub(crate) async fn send(
        &self,
        node: NodeId,
        body: RequestBody,
        left: Duration,
        entry: &Connection,
        wallet: &Wallet,
    ) -> Response {
        let Some(endpoint) = self.endpoints.get(&node).copied() else {
            return entry.call(None, body, left).await;
        };
        let repeatable = body.repeatable();
        let mut retried = false;
        loop {
            let within = CONNECT_TIMEOUT.min(left);
            let Ok((conn, pooled)) = self.pool.get(endpoint, within, Credentials::User(wallet.key()), false).await
            else {
                return entry.call(None, body, left).await;
            };
            if !pooled {
                if let Err(e) = wallet.trust(conn.server(), conn.addr()) {
                    self.pool.forget(node);
                    return Err(e);
                }
            }
            match conn.send(body.clone(), left).await {
                Ok(response) => return response,
                Err(reason) => {
                    self.pool.forget(node);
                    if pooled && repeatable && !retried {
                        retried = true;
                        continue;
                    }
                    return Err(InvokeError::Unavailable { node: format!("{node} at {}", conn.addr()), reason });
                }
            }
        }
    }
}
