//! Where an object is, and the one loop that follows `Moved` to it.
//!
//! An object's home (the node named in its id) keeps its authoritative record: the object
//! itself, or a forwarding entry once it has moved. A node or a client that sends a request
//! for an object sends it where the object is believed to be ([`Locations`]); an answer
//! `Moved { to }` is remembered and followed, a bounded number of times ([`follow`]). Every
//! request kind that names an object (invoke, describe, delete, revoke, and those to come)
//! goes through `follow`, on clients and nodes alike.

use crate::wire::Response;
use clouds::{InvokeError, NodeId, ObjectId};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use tokio::time::{Duration, Instant};

/// How many `Moved` answers one request follows before giving up.
pub const MAX_REDIRECTS: usize = 4;

/// How many objects seen away from their home a process remembers. Beyond it an arbitrary
/// entry is forgotten: the object's home still knows, so forgetting costs a redirect.
const CAPACITY: usize = 1 << 16;

/// The error when an object keeps moving faster than a request can follow it.
pub fn moved_too_often(id: ObjectId, last: NodeId) -> InvokeError {
    InvokeError::Unavailable {
        node: last.to_string(),
        reason: format!("object {id} moved more than {MAX_REDIRECTS} times while being called"),
    }
}

/// Objects seen away from their home, and where. One per process; the rule: an object is
/// believed to be where it was last seen, or with its home records: at its home, or at the
/// node that keeps them since its home was drained.
#[derive(Default)]
pub struct Locations {
    /// std `Mutex`: one map operation at a time, never across an `.await`.
    away: Mutex<HashMap<ObjectId, NodeId>>,
    /// Drained homes and the nodes keeping their records (from gossip).
    keepers: Mutex<HashMap<NodeId, NodeId>>,
}

impl Locations {
    /// The node `id` is believed to be on.
    pub fn get(&self, id: ObjectId) -> NodeId {
        let away = self.away.lock().expect("locations mutex").get(&id).copied();
        away.unwrap_or_else(|| self.home_of(id))
    }

    /// The node keeping `id`'s home record: its home, or the home's keeper.
    pub fn home_of(&self, id: ObjectId) -> NodeId {
        let home = id.home();
        self.keepers.lock().expect("keepers mutex").get(&home).copied().unwrap_or(home)
    }

    /// Replaces what is known of drained homes: `(home, keeper)` pairs.
    pub fn set_keepers(&self, keepers: impl IntoIterator<Item = (NodeId, NodeId)>) {
        *self.keepers.lock().expect("keepers mutex") = keepers.into_iter().collect();
    }

    /// Forgets where `id` was seen (the node there could not be reached): the next request
    /// asks its home records.
    pub fn forget(&self, id: ObjectId) {
        self.away.lock().expect("locations mutex").remove(&id);
    }

    /// `id` was seen on `at` (a `Moved` answer named it).
    pub fn remember(&self, id: ObjectId, at: NodeId) {
        let home = self.home_of(id);
        let mut away = self.away.lock().expect("locations mutex");
        if at == home {
            away.remove(&id);
            return;
        }
        if away.len() >= CAPACITY && !away.contains_key(&id) {
            if let Some(any) = away.keys().next().copied() {
                away.remove(&any);
            }
        }
        away.insert(id, at);
    }

    pub fn len(&self) -> usize {
        self.away.lock().expect("locations mutex").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Sends a request about `target` where it is believed to be, following `Moved` answers
/// (and remembering them) until a node answers otherwise, the deadline passes, or
/// `MAX_REDIRECTS` moves were followed. A node that cannot be reached, where the object
/// was only believed to be, is forgotten and the home records are asked instead (the
/// keeper's, if `attempt` learned of one meanwhile). `attempt(node, left)` sends the request to `node`
/// with `left` of the deadline; `what` names the operation in a `DeadlineExceeded`.
pub async fn follow<F, Fut>(
    target: ObjectId,
    what: &str,
    locations: &Locations,
    deadline: Instant,
    mut attempt: F,
) -> Response
where
    F: FnMut(NodeId, Duration) -> Fut,
    Fut: Future<Output = Response>,
{
    let mut started = None;
    let mut to = locations.get(target);
    // A node found unreachable, and what it said: the answer if the home sends us back.
    let mut down: Option<(NodeId, InvokeError)> = None;
    for _ in 0..MAX_REDIRECTS {
        let now = Instant::now();
        let started = *started.get_or_insert(now);
        let left = deadline.saturating_duration_since(now);
        if left.is_zero() {
            return Err(InvokeError::DeadlineExceeded {
                object: target,
                method: what.to_string(),
                elapsed_ms: started.elapsed().as_millis() as u64,
            });
        }
        match attempt(to, left).await {
            Err(InvokeError::Moved { to: next, .. }) => {
                if let Some((node, e)) = down.take() {
                    if node == next {
                        return Err(e);
                    }
                }
                locations.remember(target, next);
                to = next;
            }
            // A node where the object was only seen cannot be reached: it may have moved on
            // and that node left (drained and stopped); its home records know.
            Err(e @ InvokeError::Unavailable { .. }) => {
                locations.forget(target);
                let home = locations.home_of(target);
                if home == to {
                    return Err(e);
                }
                down = Some((to, e));
                to = home;
            }
            answer => return answer,
        }
    }
    Err(moved_too_often(target, to))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ResponseBody;
    use std::cell::RefCell;

    fn at(home: u16) -> ObjectId {
        ObjectId::new(NodeId(home))
    }

    #[test]
    fn an_object_is_where_it_was_last_seen_or_at_home() {
        let locations = Locations::default();
        let id = at(1);
        assert_eq!(locations.get(id), NodeId(1));
        locations.remember(id, NodeId(3));
        assert_eq!(locations.get(id), NodeId(3));
        locations.remember(id, NodeId(1));
        assert_eq!(locations.get(id), NodeId(1));
        assert!(locations.is_empty(), "back home: nothing to remember");
    }

    #[tokio::test]
    async fn moved_answers_are_followed_and_remembered() {
        let (locations, id) = (Locations::default(), at(1));
        let sent = RefCell::new(Vec::new());
        let answer = follow(id, "get", &locations, Instant::now() + Duration::from_secs(1), |node, _| {
            sent.borrow_mut().push(node);
            let answer = match node.0 {
                1 => Err(InvokeError::Moved { id, to: NodeId(2) }),
                2 => Err(InvokeError::Moved { id, to: NodeId(3) }),
                _ => Ok(ResponseBody::Deleted),
            };
            async move { answer }
        })
        .await;
        assert!(matches!(answer, Ok(ResponseBody::Deleted)));
        assert_eq!(*sent.borrow(), [NodeId(1), NodeId(2), NodeId(3)]);
        assert_eq!(locations.get(id), NodeId(3), "the next request goes straight there");
    }

    #[tokio::test]
    async fn an_object_that_keeps_moving_is_given_up_on_with_one_message() {
        let (locations, id) = (Locations::default(), at(1));
        let answer = follow(id, "get", &locations, Instant::now() + Duration::from_secs(1), |node, _| async move {
            Err(InvokeError::Moved { id, to: NodeId(node.0 % 2 + 1) })
        })
        .await;
        let e = answer.unwrap_err();
        assert!(e.to_string().contains("moved more than 4 times"), "{e}");
    }

    #[tokio::test]
    async fn other_errors_end_the_loop_at_once() {
        let (locations, id) = (Locations::default(), at(1));
        let mut calls = 0;
        let answer = follow(id, "get", &locations, Instant::now() + Duration::from_secs(1), |_, _| {
            calls += 1;
            async move { Err(InvokeError::NotFound { id }) }
        })
        .await;
        assert!(matches!(answer, Err(InvokeError::NotFound { .. })));
        assert_eq!(calls, 1);
    }

    #[test]
    fn a_drained_home_is_asked_at_its_keeper() {
        let (locations, id) = (Locations::default(), at(1));
        locations.set_keepers([(NodeId(1), NodeId(2))]);
        assert_eq!(locations.get(id), NodeId(2));
        assert_eq!(locations.home_of(id), NodeId(2));
        locations.remember(id, NodeId(2));
        assert!(locations.is_empty(), "seen at its keeper: nothing to remember");
        locations.set_keepers([]);
        assert_eq!(locations.get(id), NodeId(1));
    }

    #[tokio::test]
    async fn an_unreachable_node_where_the_object_was_seen_sends_the_request_home() {
        let (locations, id) = (Locations::default(), at(1));
        locations.remember(id, NodeId(3));
        let sent = RefCell::new(Vec::new());
        let answer = follow(id, "get", &locations, Instant::now() + Duration::from_secs(1), |node, _| {
            sent.borrow_mut().push(node);
            let answer = match node.0 {
                3 => Err(InvokeError::Unavailable { node: "node-3".into(), reason: "stopped".into() }),
                1 => Err(InvokeError::Moved { id, to: NodeId(2) }),
                _ => Ok(ResponseBody::Deleted),
            };
            async move { answer }
        })
        .await;
        assert!(matches!(answer, Ok(ResponseBody::Deleted)), "{answer:?}");
        assert_eq!(*sent.borrow(), [NodeId(3), NodeId(1), NodeId(2)]);
        // The object really is on the unreachable node: its home says so, and that is the answer.
        locations.remember(id, NodeId(3));
        let answer = follow(id, "get", &locations, Instant::now() + Duration::from_secs(1), |node, _| async move {
            match node.0 {
                3 => Err(InvokeError::Unavailable { node: "node-3".into(), reason: "stopped".into() }),
                _ => Err(InvokeError::Moved { id, to: NodeId(3) }),
            }
        })
        .await;
        assert!(matches!(answer, Err(InvokeError::Unavailable { ref node, .. }) if node == "node-3"), "{answer:?}");
        // The home itself unreachable: that is the answer.
        let answer = follow(at(4), "get", &locations, Instant::now() + Duration::from_secs(1), |_, _| async {
            Err(InvokeError::Unavailable { node: "node-4".into(), reason: "stopped".into() })
        })
        .await;
        assert!(matches!(answer, Err(InvokeError::Unavailable { .. })));
    }

    #[tokio::test]
    async fn a_passed_deadline_sends_nothing() {
        let (locations, id) = (Locations::default(), at(1));
        let answer = follow(id, "get", &locations, Instant::now(), |_, _| async { panic!("sent") }).await;
        assert!(matches!(answer, Err(InvokeError::DeadlineExceeded { .. })));
    }
}
