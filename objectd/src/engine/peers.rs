//! How the engine reaches other nodes: a trait of its own, so that the engine depends on
//! no transport. The node's `cluster` implements it over gossip and pooled connections;
//! the in-process test cluster implements it with a router that can drop, delay and cut
//! messages.

use clouds::{BoxFuture, InvokeError, NodeId};
use protocol::{NodeView, RequestBody, Response};
use std::time::Duration;

/// The other nodes of the cluster, as the engine needs them.
pub trait Peers: Send + Sync {
    /// Sends `body` to `node`, waiting at most `within` for the answer. A node that cannot
    /// be reached gives `Unavailable` naming it; otherwise the node's own answer.
    fn send(&self, node: NodeId, body: RequestBody, within: Duration) -> BoxFuture<'_, Response>;

    /// The cluster's nodes as this node knows them, itself included.
    fn nodes(&self) -> BoxFuture<'_, Vec<NodeView>>;
}

/// No other nodes: an engine on its own serves only its own objects.
pub struct Alone(pub NodeId);

impl Peers for Alone {
    fn send(&self, node: NodeId, _: RequestBody, _: Duration) -> BoxFuture<'_, Response> {
        let me = self.0;
        Box::pin(async move {
            Err(InvokeError::Unavailable { node: node.to_string(), reason: format!("{me} is not part of a cluster") })
        })
    }

    fn nodes(&self) -> BoxFuture<'_, Vec<NodeView>> {
        Box::pin(async { Vec::new() })
    }
}
