//! The re-entrancy rule: pure, decided from the thread's call chain before any lock.
//!
//! A thread inside object X that invokes X again would wait for itself if it held X for
//! writing, or if it held X for reading and wanted to write (or a writer queued in
//! between). Those cases fail at once with the chain. A read re-entering an object the
//! thread holds for reading needs no lock: the thread's hold already excludes writers.

use clouds::thread::chain_text;
use clouds::{Access, Frame, InvokeError, ObjectId};

#[derive(Debug, PartialEq, Eq)]
pub enum Entry {
    /// Not held by this thread: take the lock as usual.
    Acquire,
    /// Held for reading and entered for reading: run under the existing hold.
    Nested,
}

pub fn check(
    chain: &[Frame],
    target: ObjectId,
    access: Access,
    method: &str,
    class: &str,
) -> Result<Entry, InvokeError> {
    let Some(held) = chain.iter().find(|f| f.object == target) else {
        return Ok(Entry::Acquire);
    };
    if held.access == Access::Read && access == Access::Read {
        return Ok(Entry::Nested);
    }
    let mut full = chain.to_vec();
    full.push(Frame { object: target, class: class.to_string(), method: method.to_string(), node: held.node, access });
    Err(InvokeError::Reentrancy { object: target, chain: chain_text(&full) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clouds::NodeId;

    fn frame(object: ObjectId, access: Access) -> Frame {
        Frame { object, class: "Counter".into(), method: "m".into(), node: NodeId(1), access }
    }

    #[test]
    fn objects_not_in_the_chain_are_acquired() {
        let (a, b) = (ObjectId::new(NodeId(1)), ObjectId::new(NodeId(1)));
        assert_eq!(check(&[frame(a, Access::Write)], b, Access::Write, "m", "C"), Ok(Entry::Acquire));
        assert_eq!(check(&[], a, Access::Read, "m", "C"), Ok(Entry::Acquire));
    }

    #[test]
    fn a_read_inside_a_read_hold_runs_nested() {
        let a = ObjectId::new(NodeId(1));
        assert_eq!(check(&[frame(a, Access::Read)], a, Access::Read, "get", "C"), Ok(Entry::Nested));
    }

    #[test]
    fn conflicting_reentry_fails_with_the_whole_chain() {
        let (a, b) = (ObjectId::new(NodeId(1)), ObjectId::new(NodeId(1)));
        for (held, wanted) in
            [(Access::Write, Access::Read), (Access::Write, Access::Write), (Access::Read, Access::Write)]
        {
            let chain = [frame(a, held), frame(b, Access::Read)];
            match check(&chain, a, wanted, "get", "Counter") {
                Err(InvokeError::Reentrancy { object, chain }) => {
                    assert_eq!(object, a);
                    assert_eq!(chain.matches(" -> ").count(), 2, "{chain}");
                    let id = a.to_string();
                    assert!(chain.ends_with(&format!("Counter.get(…{})@node-1", &id[id.len() - 8..])), "{chain}");
                }
                other => panic!("{held:?} then {wanted:?}: {other:?}"),
            }
        }
    }
}
