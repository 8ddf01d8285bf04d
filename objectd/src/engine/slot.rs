//! The state of an activated object and the pure rule that admits a request to it.
//!
//! A slot (`table::Slot`) exists while its object is activated. Loading happens before a
//! slot exists: `table::get_or_load` decodes the committed record outside the table's
//! mutex and the first activation wins a race, so every slot starts `Live`. Behind the
//! slot's lock the object is then in one [`SlotState`], and a request that holds the lock
//! asks [`admit`] what to do. A move (`engine::migrate`) freezes an object by holding its
//! write lock, then leaves it `Moved` (callers that waited go on to the target) or, if the
//! target's commit is in doubt, `InDoubt`. The states still to come (fetching pages lazily,
//! prepared in an atomic action) are rows to add to this table.

use clouds::{InvokeError, NodeId, ObjectId};

/// The state of an activated object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotState {
    /// The state in memory is the committed one.
    Live,
    /// A write was cut short (failed, panicked, timed out or cancelled) and may have left
    /// uncommitted changes in memory: reload the committed state before anyone uses it.
    Stale,
    /// The object was deleted while callers waited for its lock.
    Deleted,
    /// The object moved to this node while callers waited: they go on there.
    Moved(NodeId),
    /// A move to this node was asked to commit and its answer is not known yet: neither
    /// node may serve the object until the target says whether it committed.
    InDoubt(NodeId),
}

/// What a request wants of the object, holding its lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// Run a read method.
    Read,
    /// Run a write method; `recorded`: its call id has a recorded reply.
    Write { recorded: bool },
    /// Delete the object.
    Delete,
    /// Move it to the next revocation epoch.
    Revoke,
    /// Freeze it to move it to another node.
    Move,
}

/// The decision.
#[derive(Debug, PartialEq)]
pub enum Admission {
    /// Go ahead on the state in memory.
    Run,
    /// Reload the committed state first (under the write lock), then ask again.
    Reload,
    /// Answer with the reply recorded under the call id; run nothing.
    Replay,
    /// Refuse with this error; nothing runs.
    Refuse(InvokeError),
}

/// The refusal while a move's commit is in doubt.
pub fn in_doubt(id: ObjectId, to: NodeId) -> InvokeError {
    InvokeError::Unavailable {
        node: to.to_string(),
        reason: format!("object {id} is moving there and its commit is in doubt until {to} answers"),
    }
}

/// What a request that holds the object's lock does, from the slot's state.
pub fn admit(state: SlotState, id: ObjectId, want: Want) -> Admission {
    match (state, want) {
        (SlotState::Deleted, _) => Admission::Refuse(InvokeError::NotFound { id }),
        (SlotState::Moved(to), _) => Admission::Refuse(InvokeError::Moved { id, to }),
        (SlotState::InDoubt(to), _) => Admission::Refuse(in_doubt(id, to)),
        (SlotState::Stale, _) => Admission::Reload,
        (SlotState::Live, Want::Write { recorded: true }) => Admission::Replay,
        (SlotState::Live, _) => Admission::Run,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admission_table() {
        let id = ObjectId::new(NodeId(1));
        let not_found = || Admission::Refuse(InvokeError::NotFound { id });
        let fresh = Want::Write { recorded: false };
        let retry = Want::Write { recorded: true };
        let table = [
            (SlotState::Live, Want::Read, Admission::Run),
            (SlotState::Live, fresh, Admission::Run),
            (SlotState::Live, retry, Admission::Replay),
            (SlotState::Live, Want::Delete, Admission::Run),
            (SlotState::Live, Want::Revoke, Admission::Run),
            (SlotState::Live, Want::Move, Admission::Run),
            (SlotState::Stale, Want::Read, Admission::Reload),
            (SlotState::Stale, fresh, Admission::Reload),
            (SlotState::Stale, retry, Admission::Reload),
            (SlotState::Stale, Want::Delete, Admission::Reload),
            (SlotState::Stale, Want::Revoke, Admission::Reload),
            (SlotState::Deleted, Want::Read, not_found()),
            (SlotState::Deleted, fresh, not_found()),
            (SlotState::Deleted, retry, not_found()),
            (SlotState::Deleted, Want::Delete, not_found()),
            (SlotState::Deleted, Want::Revoke, not_found()),
            (SlotState::Deleted, Want::Move, not_found()),
        ];
        let moved = || Admission::Refuse(InvokeError::Moved { id, to: NodeId(3) });
        let doubt = || Admission::Refuse(in_doubt(id, NodeId(3)));
        let table = table.into_iter().chain([
            (SlotState::Moved(NodeId(3)), Want::Read, moved()),
            (SlotState::Moved(NodeId(3)), retry, moved()),
            (SlotState::Moved(NodeId(3)), Want::Delete, moved()),
            (SlotState::Moved(NodeId(3)), Want::Move, moved()),
            (SlotState::InDoubt(NodeId(3)), Want::Read, doubt()),
            (SlotState::InDoubt(NodeId(3)), fresh, doubt()),
            (SlotState::InDoubt(NodeId(3)), Want::Revoke, doubt()),
        ]);
        for (state, want, expected) in table {
            assert_eq!(admit(state, id, want), expected, "{state:?} {want:?}");
        }
    }
}
