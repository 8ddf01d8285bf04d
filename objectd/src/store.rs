//! The object store: a trait, its record format, and the sled implementation.
//!
//! Layout:
//! - `record`: what is stored per object (`Record`: live state, or a forwarding entry
//!   for a migrated object) and its versioned on-disk encoding.
//! - `sled_store`: `SledStore`, the default implementation.
//! - `transfer`: an object exported in chunks and installed elsewhere (migration's seam).
//! - `conformance`: the suite every implementation must pass, plus a model test.
//!
//! Invariants: a commit applies the struct state, its page writes and its call record as
//! one unit or not at all; a commit applies only on top of the version it was computed
//! from; `flush` returns once every commit that returned before it survives a crash of
//! the process.

pub mod conformance;
pub mod record;
pub mod sled_store;
pub mod transfer;

pub use record::{Record, FORMAT_VERSION};
pub use sled_store::SledStore;
pub use transfer::{Chunk, Cursor};

use clouds::{NodeId, ObjectId};
use std::ops::Bound;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("object {0} not found")]
    NotFound(ObjectId),
    #[error("object {0} already exists")]
    AlreadyExists(ObjectId),
    #[error("object {id} is at version {found}, the commit expected {expected}")]
    VersionConflict { id: ObjectId, expected: u64, found: u64 },
    #[error("object {0} has moved; its record is a forwarding entry")]
    Forwarded(ObjectId),
    #[error("stored record is unreadable: {0}")]
    Corrupt(String),
    #[error("store I/O failed: {0}")]
    Io(String),
}

impl From<StoreError> for clouds::InvokeError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(id) => clouds::InvokeError::NotFound { id },
            other => clouds::InvokeError::storage(other),
        }
    }
}

/// An intent written with a commit (`Store::commit_with_intent`).
#[derive(Clone, Copy, Debug)]
pub enum IntentChange<'a> {
    Put(&'a [u8], &'a [u8]),
    Remove(&'a [u8]),
}

/// Protocol intents: key and value, in key order.
pub type Intents = Vec<(Vec<u8>, Vec<u8>)>;

/// One page write of a commit: `None` deletes the page.
pub type PageWrite = (Vec<u8>, Option<Vec<u8>>);

/// Everything a write method changed, applied as one unit.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Commit {
    pub id: ObjectId,
    /// The version the method ran on; the commit fails if the store holds another.
    pub base_version: u64,
    pub state: Vec<u8>,
    pub pages: Vec<PageWrite>,
    /// The idempotency key and the encoded reply, recorded with the state.
    pub call: Option<(String, Vec<u8>)>,
    /// The revocation epoch after the commit (a revoke moves it on; methods keep it).
    pub epoch: u64,
}

/// One write of a group flush (`Store::apply_group`): applied all or nothing, on its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unit {
    /// A write method's changes, as `Store::commit`.
    Commit(Commit),
    /// A new live object at version 1, as `Store::create`.
    Create { id: ObjectId, class: String, state: Vec<u8> },
    /// An atomic action's commits on this node with a protocol intent put (`Some` value)
    /// or removed (`None`), all or nothing, as `Store::commit_with_intent`.
    Action { commits: Vec<Commit>, intent: Option<(Vec<u8>, Option<Vec<u8>>)> },
}

impl Unit {
    /// The intent change of an `Action`, borrowed.
    pub fn intent_change(intent: &Option<(Vec<u8>, Option<Vec<u8>>)>) -> Option<IntentChange<'_>> {
        intent.as_ref().map(|(key, value)| match value {
            Some(value) => IntentChange::Put(key, value),
            None => IntentChange::Remove(key),
        })
    }
}

/// Where the objects of one node live.
pub trait Store: Send + Sync + 'static {
    fn get(&self, id: ObjectId) -> Result<Option<Record>, StoreError>;
    /// Stores a new live object at version 1.
    fn create(&self, id: ObjectId, class: &str, state: &[u8]) -> Result<(), StoreError>;
    /// Applies a write method's changes atomically and bumps the version by one.
    fn commit(&self, commit: &Commit) -> Result<(), StoreError> {
        self.commit_all(std::slice::from_ref(commit))
    }
    /// Applies the commits of several objects (an atomic action's, on this node) as one
    /// unit: all of them, or none if any does not apply.
    fn commit_all(&self, commits: &[Commit]) -> Result<(), StoreError> {
        self.commit_with_intent(commits, None)
    }
    /// `commit_all`, with a protocol intent put or removed in the same unit: after a crash
    /// both are there or neither is (an atomic action's decision and the coordinator's own
    /// changes; a participant's changes and the end of its prepared intent).
    fn commit_with_intent(&self, commits: &[Commit], intent: Option<IntentChange<'_>>) -> Result<(), StoreError>;
    /// Applies the units of many writers (one group flush's) as one write where the store
    /// can: each unit all or nothing, and a unit that does not apply gets its own error,
    /// in its place in the result, without stopping the others. The outer error is a
    /// failure of the store itself. The default applies them one at a time.
    fn apply_group(&self, units: &[Unit]) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        Ok(units
            .iter()
            .map(|unit| match unit {
                Unit::Commit(c) => self.commit(c),
                Unit::Create { id, class, state } => self.create(*id, class, state),
                Unit::Action { commits, intent } => self.commit_with_intent(commits, Unit::intent_change(intent)),
            })
            .collect())
    }
    /// Removes the object, its pages and its call records. Returns whether it existed.
    fn delete(&self, id: ObjectId) -> Result<bool, StoreError>;
    fn page_get(&self, id: ObjectId, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Up to `limit` pages of `id` with keys in the range, in key order.
    fn page_range(
        &self,
        id: ObjectId,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        limit: usize,
    ) -> Result<clouds::Pages, StoreError>;
    /// Up to `limit` page keys of `id` after `after` (`None`: from the first), in key order,
    /// without reading the values.
    fn page_keys(&self, id: ObjectId, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>, StoreError>;
    /// Number of pages and their total bytes.
    fn page_usage(&self, id: ObjectId) -> Result<(u64, u64), StoreError>;
    /// The reply recorded with a commit under this idempotency key.
    fn call_reply(&self, id: ObjectId, call: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Object ids in id order, after `after`.
    fn list(&self, after: Option<ObjectId>, limit: usize) -> Result<Vec<ObjectId>, StoreError>;
    fn count(&self) -> Result<u64, StoreError>;
    /// Bytes the store takes on disk.
    fn size_on_disk(&self) -> Result<u64, StoreError>;
    /// Node metadata (for example the root directory's id).
    fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn meta_put(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Removes a metadata key (absent: nothing to do).
    fn meta_remove(&self, key: &str) -> Result<(), StoreError>;
    /// Blocks until everything committed so far survives a process crash.
    fn flush(&self) -> Result<(), StoreError>;

    /// The next chunk of object `id` from `cursor`, at most about `max_bytes` of payload
    /// (at least one page or call record), and where the export goes on; `None` once
    /// `cursor` is `Done`. Pages and call records are read as they are now: commits
    /// between chunks are the caller's to track.
    fn export(&self, id: ObjectId, cursor: &Cursor, max_bytes: usize) -> Result<Option<(Chunk, Cursor)>, StoreError>;
    /// Installs an exported chunk. Pages and call records stay invisible until the
    /// `Record` chunk makes the object live at its version and epoch; that fails with
    /// `AlreadyExists` over a live record (it replaces a forwarding entry).
    fn install(&self, id: ObjectId, chunk: &Chunk) -> Result<(), StoreError>;
    /// Turns the record of `id` into a forwarding entry to `to`, keeping its revocation
    /// epoch. Its pages and call records stay until `discard`: dropping them can take a
    /// while, and a move does it after the object is served again.
    fn forward(&self, id: ObjectId, to: NodeId) -> Result<(), StoreError>;
    /// Writes a forwarding entry to `to` at `epoch` for an object this store has no live
    /// record of (a drained home's records, handed to this node); `AlreadyExists` over a
    /// live record.
    fn put_forward(&self, id: ObjectId, to: NodeId, epoch: u64) -> Result<(), StoreError>;
    /// Drops the pages and call records of `id` when it has no live record here (what an
    /// install cut short left, or what a forwarded object left behind); a live object is
    /// left alone.
    fn discard(&self, id: ObjectId) -> Result<(), StoreError>;

    /// Records an intent of a protocol that must outlive a crash (durable at the next
    /// flush), under a key of the protocol's choosing; replaces an earlier one.
    fn intent_put(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError>;
    fn intent_remove(&self, key: &[u8]) -> Result<(), StoreError>;
    fn intent_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every intent, in key order: what a restart resumes.
    fn intents(&self) -> Result<Intents, StoreError>;
}
