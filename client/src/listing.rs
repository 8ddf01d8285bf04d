//! Every object of the cluster, named or not: what `clouds objects` shows.

use crate::client::{unexpected, Client};
use clouds::{InvokeError, NodeId, ObjectId};
use protocol::wire::{ObjectEntry, ObjectPage, MAX_OBJECTS_PER_PAGE};
use protocol::{Liveness, RequestBody, ResponseBody};
use serde::Serialize;

/// Which objects to list.
#[derive(Clone, Debug, Default)]
pub struct ObjectQuery {
    /// Only this node's; `None`: every live node's.
    pub node: Option<NodeId>,
    /// Only objects of this class.
    pub class: Option<String>,
    /// Only objects whose id comes after this one (the `next` of the page before).
    pub after: Option<ObjectId>,
    /// At most this many (1 to `MAX_OBJECTS_PER_PAGE`).
    pub limit: u32,
}

/// A page of the cluster's objects, in id order.
#[derive(Clone, Debug, Serialize)]
pub struct ObjectListing {
    /// The objects, in id order.
    pub objects: Vec<ObjectEntry>,
    /// Where the next page starts (`ObjectQuery::after`), if there may be more.
    pub next: Option<ObjectId>,
    /// Live nodes that could not be asked, with why: their objects are missing here.
    pub unreachable: Vec<(NodeId, String)>,
}

impl Client {
    /// One page of the entry node's objects. Needs the administrator's wallet.
    pub async fn objects_here(
        &self,
        class: Option<&str>,
        after: Option<ObjectId>,
        limit: u32,
    ) -> Result<ObjectPage, InvokeError> {
        let body = RequestBody::Objects { class: class.map(str::to_string), after, limit };
        match self.request(body).await? {
            ResponseBody::Objects(page) => Ok(page),
            other => Err(unexpected(other)),
        }
    }

    /// Objects cluster-wide (or of one node), named or not, in id order: asks every live
    /// node for its first `limit` after `query.after` and keeps the first `limit` of all.
    /// Needs the administrator's wallet.
    pub async fn list_objects(&self, query: &ObjectQuery) -> Result<ObjectListing, InvokeError> {
        if query.limit == 0 || query.limit > MAX_OBJECTS_PER_PAGE {
            return Err(InvokeError::invalid(format!(
                "--limit must be 1 to {MAX_OBJECTS_PER_PAGE}, not {}",
                query.limit
            )));
        }
        let nodes = self.nodes().await?;
        if let Some(want) = query.node {
            if !nodes.iter().any(|n| n.id == want) {
                let known: Vec<String> = nodes.iter().map(|n| n.id.to_string()).collect();
                return Err(InvokeError::invalid(format!(
                    "no node {want} in the cluster; its nodes: {}",
                    known.join(", ")
                )));
            }
        }
        let entry = self.status().await?.node;
        let (mut nodes_found, mut unreachable) = (Vec::new(), Vec::new());
        for node in nodes.iter().filter(|n| query.node.is_none_or(|want| want == n.id)) {
            if node.state == Liveness::Dead {
                unreachable.push((node.id, "the node is down".to_string()));
                continue;
            }
            let other = if node.id == entry {
                self.clone()
            } else {
                match Client::connect_with(node.addr, crate::CONNECT_TIMEOUT, self.wallet().clone()).await {
                    Ok(c) => c,
                    Err(e) => {
                        unreachable.push((node.id, e.to_string()));
                        continue;
                    }
                }
            };
            let fetch = |after, left| other.objects_here(query.class.as_deref(), after, left);
            match first_objects(query, fetch).await {
                Ok(found) => nodes_found.push(found),
                Err(e @ InvokeError::Denied { .. }) => return Err(e),
                Err(e) => unreachable.push((node.id, e.to_string())),
            }
        }
        let (objects, next) = merge(nodes_found, query.limit);
        Ok(ObjectListing { objects, next, unreachable })
    }
}

/// One node's first `query.limit` objects after `query.after`, and whether it has more:
/// asks `fetch(after, limit)` page after page until the limit or the end.
pub async fn first_objects<F, Fut>(query: &ObjectQuery, fetch: F) -> Result<(Vec<ObjectEntry>, bool), InvokeError>
where
    F: Fn(Option<ObjectId>, u32) -> Fut,
    Fut: std::future::Future<Output = Result<ObjectPage, InvokeError>>,
{
    let (mut found, mut after) = (Vec::new(), query.after);
    loop {
        let left = query.limit - found.len() as u32;
        let page = fetch(after, left).await?;
        found.extend(page.objects);
        match page.next {
            Some(next) if found.len() < query.limit as usize => after = Some(next),
            next => return Ok((found, next.is_some())),
        }
    }
}

/// The first `limit` of every node's first objects, in id order, and where the next page
/// starts if any node may have more.
pub fn merge(nodes: Vec<(Vec<ObjectEntry>, bool)>, limit: u32) -> (Vec<ObjectEntry>, Option<ObjectId>) {
    let mut more = nodes.iter().any(|(_, more)| *more);
    let mut objects: Vec<ObjectEntry> = nodes.into_iter().flat_map(|(o, _)| o).collect();
    objects.sort_by_key(|o| o.id);
    more |= objects.len() > limit as usize;
    objects.truncate(limit as usize);
    let next = if more { objects.last().map(|o| o.id) } else { None };
    (objects, next)
}
