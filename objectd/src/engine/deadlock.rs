//! Deadlock detection on one node: a wait-for graph, pure data.
//!
//! Threads hold objects (a write hold, or one of several read holds) and wait for objects.
//! Before a thread blocks on an object's lock it adds its wait edge; if the holders of that
//! object, followed through what they wait for, lead back to the thread, the edge would
//! close a cycle: it is refused with the cycle, and the invocation that asked fails with
//! `Deadlock`. Adding the edge and checking happen in one step (the engine holds a mutex
//! around both), so whichever thread closes a cycle sees it. Across nodes the same rule
//! needs edge-chasing probes (issue 3).

use clouds::{ObjectId, ThreadId};
use std::collections::{HashMap, HashSet};

#[derive(Default, Debug)]
pub struct WaitGraph {
    /// object -> threads holding it (one writer, or readers; a thread may appear twice).
    holders: HashMap<ObjectId, Vec<ThreadId>>,
    /// thread -> the object it waits for.
    waiting: HashMap<ThreadId, ObjectId>,
}

/// One step of a cycle: `thread` waits for `object`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaitEdge {
    pub thread: ThreadId,
    pub object: ObjectId,
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

    /// Records that `thread` waits for `object`, unless that closes a cycle: then nothing
    /// is recorded and the cycle is returned, starting with this edge.
    pub fn wait(&mut self, thread: ThreadId, object: ObjectId) -> Result<(), Vec<WaitEdge>> {
        let mut path = vec![WaitEdge { thread, object }];
        let mut seen = HashSet::new();
        if self.leads_to(thread, object, &mut path, &mut seen) {
            return Err(path);
        }
        self.waiting.insert(thread, object);
        Ok(())
    }

    pub fn stop_waiting(&mut self, thread: ThreadId) {
        self.waiting.remove(&thread);
    }

    /// Depth-first: does some holder of `object`, through what it waits for, reach `target`?
    fn leads_to(
        &self,
        target: ThreadId,
        object: ObjectId,
        path: &mut Vec<WaitEdge>,
        seen: &mut HashSet<ThreadId>,
    ) -> bool {
        for &holder in self.holders.get(&object).map(Vec::as_slice).unwrap_or(&[]) {
            if holder == target {
                return true;
            }
            if !seen.insert(holder) {
                continue;
            }
            if let Some(&next) = self.waiting.get(&holder) {
                path.push(WaitEdge { thread: holder, object: next });
                if self.leads_to(target, next, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clouds::NodeId;

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
        assert!(g.wait(t1, b).is_ok(), "t1 waiting for b alone is no deadlock");
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
}
