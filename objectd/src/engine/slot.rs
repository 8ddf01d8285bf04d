//! The state of an activated object and the pure rule that admits a request to it.
//!
//! A slot (`table::Slot`) exists while its object is activated. Loading happens before a
//! slot exists: `table::get_or_load` decodes the committed record outside the table's
//! mutex and the first activation wins a race, so every slot starts `Live`. Behind the
//! slot's lock the object is then in one [`SlotState`], and a request that holds the lock
//! asks [`admit`] what to do. The states the migration and atomic-commit protocols add
//! (frozen, forwarding, fetching pages, prepared) are rows to add to this table: their
//! answers are waiting and forwarding.

use clouds::{InvokeError, ObjectId};

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

/// What a request that holds the object's lock does, from the slot's state.
pub fn admit(state: SlotState, id: ObjectId, want: Want) -> Admission {
    match (state, want) {
        (SlotState::Deleted, _) => Admission::Refuse(InvokeError::NotFound { id }),
        (SlotState::Stale, _) => Admission::Reload,
        (SlotState::Live, Want::Write { recorded: true }) => Admission::Replay,
        (SlotState::Live, _) => Admission::Run,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clouds::NodeId;

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
        ];
        for (state, want, expected) in table {
            assert_eq!(admit(state, id, want), expected, "{state:?} {want:?}");
        }
    }
}
