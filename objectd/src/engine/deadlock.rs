//! Deadlock detection: a wait-for graph per node (pure data), and the probes that extend
//! the search to other nodes (edge chasing, after Chandy, Misra and Haas).
//!
//! Threads hold objects (a write hold, or one of several read holds) and wait: for an
//! object's lock here, or for a call they made to an object on another node. Before a
//! thread blocks on a lock it adds its wait edge and searches from the object's holders
//! along their waits. Reaching the thread itself closes a cycle: the edge is refused and
//! the invocation fails with `Deadlock`. Adding the edge and searching locally happen in
//! one step (the engine holds a mutex around both), so whichever thread closes a local
//! cycle sees it. A search that reaches a thread waiting on another node yields a probe
//! for that node, which continues the search there; the waiter keeps waiting for its lock
//! while probes run, and fails if one comes back with a cycle.

use clouds::{NodeId, ObjectId, ThreadId};
pub use protocol::WaitEdge;
use std::collections::{HashMap, HashSet};

/// The longest chain of waits a search follows (the hop limit bounds real ones).
pub const MAX_PATH: usize = 128;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wait {
    /// For the lock of an object on this node.
    Local(ObjectId),
    /// For a call to an object on another node.
    Remote(ObjectId, NodeId),
}

#[derive(Default, Debug)]
pub struct WaitGraph {
    /// object -> threads holding it (one writer, or readers; a thread may appear twice).
    holders: HashMap<ObjectId, Vec<ThreadId>>,
    /// thread -> what it waits for, innermost last. A thread waiting in a call to another
    /// node may come back here and wait again inside that call.
    waiting: HashMap<ThreadId, Vec<Wait>>,
}

/// A search to continue on another node: from the holders of `object` there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    pub node: NodeId,
    pub object: ObjectId,
    /// The edges followed so far, from the waiting thread.
    pub path: Vec<WaitEdge>,
}

/// The outcome of a search.
#[derive(Debug, PartialEq, Eq)]
pub enum Search {
    /// The search came back to the thread: these edges form the cycle.
    Cycle(Vec<WaitEdge>),
    /// No cycle here; these probes continue the search elsewhere (none: no cycle at all).
    Continue(Vec<Probe>),
}

impl WaitGraph {
    pub fn hold(&mut self, object: ObjectId, thread: ThreadId) {
        self.holders.entry(object).or_default().push(thread);
    }

    pub fn release(&mut self, object: ObjectId, thread: ThreadId) {
        if let Some(hs) = self.holders.get_mut(&object) {
            if let Some(i) = hs.iter().position(|t| *t == thread) {
                hs.swap_remove(i);
            }
            if hs.is_empty() {
                self.holders.remove(&object);
            }
        }
    }

    /// Records that `thread` waits for the lock of `object`, unless that closes a cycle on
    /// this node: then nothing is recorded and the cycle is returned, starting with this
    /// edge. Otherwise returns the probes that continue the search on other nodes.
    pub fn wait(&mut self, thread: ThreadId, object: ObjectId) -> Result<Vec<Probe>, Vec<WaitEdge>> {
        match self.search(thread, object, vec![WaitEdge { thread, object }]) {
            Search::Cycle(cycle) => Err(cycle),
            Search::Continue(probes) => {
                self.waiting.entry(thread).or_default().push(Wait::Local(object));
                Ok(probes)
            }
        }
    }

    /// Records that `thread` waits for its call to `object` on `node`.
    pub fn wait_remote(&mut self, thread: ThreadId, object: ObjectId, node: NodeId) {
        self.waiting.entry(thread).or_default().push(Wait::Remote(object, node));
    }

    /// Ends the innermost wait of `thread`.
    pub fn stop_waiting(&mut self, thread: ThreadId) {
        if let Some(waits) = self.waiting.get_mut(&thread) {
            waits.pop();
            if waits.is_empty() {
                self.waiting.remove(&thread);
            }
        }
    }

    /// From the holders of `object`, along what they wait for: does it come back to
    /// `initiator`? `path` is what was followed to get here.
    pub fn search(&self, initiator: ThreadId, object: ObjectId, mut path: Vec<WaitEdge>) -> Search {
        let mut probes = Vec::new();
        let mut seen = HashSet::new();
        if self.walk(initiator, object, &mut path, &mut seen, &mut probes) {
            Search::Cycle(path)
        } else {
            Search::Continue(probes)
        }
    }

    fn walk(
        &self,
        target: ThreadId,
        object: ObjectId,
        path: &mut Vec<WaitEdge>,
        seen: &mut HashSet<ThreadId>,
        probes: &mut Vec<Probe>,
    ) -> bool {
        if path.len() > MAX_PATH {
            return false;
        }
        for &holder in self.holders.get(&object).map(Vec::as_slice).unwrap_or(&[]) {
            if holder == target {
                return true;
            }
            if !seen.insert(holder) {
                continue;
            }
            match self.waiting.get(&holder).and_then(|w| w.last()) {
                Some(&Wait::Local(next)) => {
                    path.push(WaitEdge { thread: holder, object: next });
                    if self.walk(target, next, path, seen, probes) {
                        return true;
                    }
                    path.pop();
                }
                Some(&Wait::Remote(next, node)) => {
                    let mut p = path.clone();
                    p.push(WaitEdge { thread: holder, object: next });
                    probes.push(Probe { node, object: next, path: p });
                }
                None => {}
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids<const N: usize>() -> [ObjectId; N] {
        std::array::from_fn(|_| ObjectId::new(NodeId(1)))
    }

    #[test]
    fn two_threads_crossing_over_two_objects_is_a_cycle() {
        let [a, b] = ids();
        let (t1, t2) = (ThreadId::new(), ThreadId::new());
        let mut g = WaitGraph::default();
        g.hold(a, t1);
        g.hold(b, t2);
        assert_eq!(g.wait(t1, b), Ok(vec![]), "t1 waiting for b alone is no deadlock");
        let cycle = g.wait(t2, a).unwrap_err();
        assert_eq!(cycle, vec![WaitEdge { thread: t2, object: a }, WaitEdge { thread: t1, object: b }]);
    }

    #[test]
    fn a_chain_without_a_loop_is_no_cycle_and_releases_clear_edges() {
        let [a, b, c] = ids();
        let (t1, t2, t3) = (ThreadId::new(), ThreadId::new(), ThreadId::new());
        let mut g = WaitGraph::default();
        g.hold(a, t1);
        g.hold(b, t2);
        g.hold(c, t3);
        assert!(g.wait(t1, b).is_ok());
        assert!(g.wait(t2, c).is_ok());
        assert_eq!(g.wait(t3, a).unwrap_err().len(), 3, "t3 -> a -> t1 -> b -> t2 -> c -> t3");
        g.stop_waiting(t2);
        assert!(g.wait(t3, a).is_ok(), "with t2 no longer waiting the loop is open");
        g.release(a, t1);
        g.stop_waiting(t3);
        assert!(g.wait(t3, a).is_ok());
    }

    #[test]
    fn any_of_several_readers_can_close_a_cycle() {
        let [a, b] = ids();
        let (t1, t2, t3) = (ThreadId::new(), ThreadId::new(), ThreadId::new());
        let mut g = WaitGraph::default();
        g.hold(a, t1);
        g.hold(a, t2);
        g.hold(b, t3);
        assert!(g.wait(t2, b).is_ok());
        assert!(g.wait(t3, a).is_err(), "t3 waits for a, read-held by t2, who waits for b held by t3");
        g.release(a, t2);
        assert!(g.wait(t3, a).is_ok(), "t1 alone holds a and waits for nothing");
    }

    /// Node 1 has A (held by T1, who calls B on node 2); node 2 has B (held by T2, who
    /// calls A on node 1). Each graph sees half; the probe from one finds the other half.
    #[test]
    fn a_cycle_across_two_nodes_is_found_by_a_probe() {
        let [a, b] = ids();
        let (t1, t2) = (ThreadId::new(), ThreadId::new());
        let (mut n1, mut n2) = (WaitGraph::default(), WaitGraph::default());
        n1.hold(a, t1);
        n1.wait_remote(t1, b, NodeId(2));
        n2.hold(b, t2);
        n2.wait_remote(t2, a, NodeId(1));
        // T1's call arrives at node 2 and blocks on B: the local search reaches T2, who is
        // in a call to A on node 1, so a probe goes there.
        let probes = n2.wait(t1, b).unwrap();
        assert_eq!(probes.len(), 1);
        let p = &probes[0];
        assert_eq!((p.node, p.object), (NodeId(1), a));
        match n1.search(t1, p.object, p.path.clone()) {
            Search::Cycle(cycle) => assert_eq!(
                cycle,
                vec![WaitEdge { thread: t1, object: b }, WaitEdge { thread: t2, object: a }],
                "T1 waits for B, held by T2, who waits for A, held by T1"
            ),
            other => panic!("{other:?}"),
        }
        // Once T2's call returns, the same probe finds nothing.
        n2.stop_waiting(t2);
        n2.stop_waiting(t1);
        assert_eq!(n2.wait(t1, b), Ok(vec![]));
    }

    #[test]
    fn a_thread_that_comes_back_keeps_its_outer_wait() {
        let [a, x] = ids();
        let (t1, t2) = (ThreadId::new(), ThreadId::new());
        let mut g = WaitGraph::default();
        g.hold(a, t1);
        g.wait_remote(t1, x, NodeId(2));
        g.hold(x, t2);
        // T1's call comes back to this node and waits here; when that ends, the remote
        // wait is what a search sees again.
        assert!(g.wait(t1, x).is_ok());
        g.stop_waiting(t1);
        let probes = match g.search(t2, a, vec![]) {
            Search::Continue(p) => p,
            other => panic!("{other:?}"),
        };
        assert_eq!(probes.len(), 1, "T1's outer call to node 2 is still a wait");
    }
}
