//! `Ctx`: a method's (or a client's) view of the thread it runs on.
//!
//! Through it a method invokes other objects (the same thread continues there), creates
//! objects, and reads and writes its object's storage pages. The node implements
//! [`Backend`] for code running inside an object; the client library implements it for
//! code outside any object. Page writes made in a write method commit atomically with the
//! struct state when the method returns `Ok`, and vanish otherwise.

use crate::codec::Codec;
use crate::error::InvokeError;
use crate::id::{NodeId, ObjectId, ThreadId};
use crate::object::{encode_state, Object, ObjectState};
use crate::reference::{RawRef, Ref};
use crate::rights::Rights;
use crate::strategy::Strategy;
use crate::thread::Frame;
use crate::BoxFuture;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::ops::Bound;
use std::sync::Arc;

/// Storage pages as (key, value) pairs, in key order.
pub type Pages = Vec<(Vec<u8>, Vec<u8>)>;

/// What a runtime provides to a `Ctx`.
pub trait Backend: Send + Sync {
    /// The thread this context runs for.
    fn thread_id(&self) -> ThreadId;
    /// The node the thread is on now; `None` in client code, which runs on no node.
    fn node(&self) -> Option<NodeId>;
    /// The object whose method is running, if any.
    fn this(&self) -> Option<ObjectId>;
    /// The objects the thread is inside of, outermost first.
    fn chain(&self) -> Vec<Frame>;
    /// Time left until the thread's deadline, where the runtime knows it.
    fn remaining(&self) -> Option<std::time::Duration>;
    /// Invokes `method` on `target.id`, presenting `target.cap` (a client may present a
    /// capability of its own instead).
    fn invoke<'a>(
        &'a self,
        target: &'a RawRef,
        method: &'a str,
        codec: Codec,
        args: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, InvokeError>>;
    /// Creates an object; the reference carries its owner capability.
    fn create<'a>(&'a self, class: &'a str, state: Vec<u8>) -> BoxFuture<'a, Result<RawRef, InvokeError>>;
    /// A reference to the same object whose capability grants only `rights` (and no more
    /// than `target`'s does). Needs the delegate right.
    fn attenuate(&self, target: &RawRef, rights: Rights) -> Result<RawRef, InvokeError>;
    /// A reference to the running object with a capability for every right on it.
    fn this_ref(&self) -> Result<RawRef, InvokeError>;
    /// Moves `target` to node `to` (needs the migrate right); returns once it is there.
    fn migrate<'a>(
        &'a self,
        target: &'a RawRef,
        to: NodeId,
        strategy: Strategy,
    ) -> BoxFuture<'a, Result<(), InvokeError>>;
    /// Moves the running object to node `to` once the current invocation has committed.
    fn migrate_after(&self, to: NodeId) -> Result<(), InvokeError>;
    /// Reads a page. Asynchronous: a page of an object that arrived by a lazy move may
    /// still be on the node it came from, and the read fetches it from there.
    fn page_get<'a>(&'a self, key: &'a [u8]) -> BoxFuture<'a, Result<Option<Vec<u8>>, InvokeError>>;
    /// Writes a page (committed with the method's state, or not at all).
    fn page_put(&self, key: &[u8], value: &[u8]) -> Result<(), InvokeError>;
    /// Deletes a page (committed with the method's state).
    fn page_delete(&self, key: &[u8]) -> Result<(), InvokeError>;
    /// The pages in `start..end` (`None`: to the end), at most `limit`, in key order.
    fn page_range(
        &self,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Pages, InvokeError>>;
}

/// A handle on the running thread. Cheap to clone.
#[derive(Clone)]
pub struct Ctx {
    backend: Arc<dyn Backend>,
}

impl Ctx {
    /// A context over `backend` (the node's, or a client's).
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Ctx { backend }
    }

    /// The thread this context runs for: the same across every node it visits.
    pub fn thread_id(&self) -> ThreadId {
        self.backend.thread_id()
    }

    /// The node the thread is on now; `None` in client code.
    pub fn node(&self) -> Option<NodeId> {
        self.backend.node()
    }

    /// The object whose method is running (`None` in client code).
    pub fn this(&self) -> Option<ObjectId> {
        self.backend.this()
    }

    /// A reference to the running object, with a capability for every right on it: an
    /// object may do anything to itself, and pass itself on (attenuated, as a rule) to
    /// others. Fails in client code, which runs in no object.
    pub fn this_ref<T: ObjectState>(&self) -> Result<Ref<T>, InvokeError> {
        self.backend.this_ref().map(Ref::from_raw)
    }

    /// The thread's call chain, outermost first: which objects it is in.
    pub fn chain(&self) -> Vec<Frame> {
        self.backend.chain()
    }

    /// Time left until the thread's deadline (`None` in client code): a long method can
    /// check it and give up cleanly instead of being cut off.
    pub fn remaining(&self) -> Option<std::time::Duration> {
        self.backend.remaining()
    }

    /// Invokes `method` on `target` with arguments already encoded in `codec`.
    pub async fn invoke_raw(
        &self,
        target: &RawRef,
        method: &str,
        codec: Codec,
        args: Vec<u8>,
    ) -> Result<Vec<u8>, InvokeError> {
        self.backend.invoke(target, method, codec, args).await
    }

    /// Invokes `method` on `target` with a tuple of arguments; what the typed stubs call.
    pub async fn call<A: Serialize, R: DeserializeOwned>(
        &self,
        target: &RawRef,
        method: &str,
        args: &A,
    ) -> Result<R, InvokeError> {
        let bytes = Codec::Binary.encode(args).map_err(|e| InvokeError::BadArgs {
            method: method.to_string(),
            signature: method.to_string(),
            reason: format!("arguments do not encode: {e}"),
        })?;
        let reply = self.invoke_raw(target, method, Codec::Binary, bytes).await?;
        Codec::Binary
            .decode(&reply)
            .map_err(|e| InvokeError::storage(format!("reply of {method} does not decode: {e}")))
    }

    /// Creates a new object of class `T` with `state`; it is placed by the node's policy.
    /// The reference carries the owner capability (every right).
    pub async fn create<T: Object>(&self, state: &T) -> Result<Ref<T>, InvokeError> {
        let raw = self.backend.create(T::CLASS, encode_state(state)?).await?;
        Ok(Ref::from_raw(raw))
    }

    /// A reference to the same object granting only `rights`, to pass on instead of `r`.
    /// Fails with `Denied` if `r`'s capability lacks the delegate right, and asks for
    /// nothing more than `r` grants (`rights` beyond it are refused, not widened).
    pub fn attenuate<T: ObjectState>(&self, r: &Ref<T>, rights: Rights) -> Result<Ref<T>, InvokeError> {
        self.attenuate_raw(r.raw(), rights).map(Ref::from_raw)
    }

    /// `attenuate` for an untyped reference.
    /// Moves the object `r` refers to to node `to` with `strategy`, and returns once it is
    /// there; `r` must carry the migrate right. Not for an object the thread is inside of
    /// (it could not freeze while the thread holds it): use `migrate_to` for this object.
    pub async fn migrate<T: ObjectState>(&self, r: &Ref<T>, to: NodeId, strategy: Strategy) -> Result<(), InvokeError> {
        self.backend.migrate(r.raw(), to, strategy).await
    }

    /// Moves the object whose method is running to node `to`, once this invocation has
    /// committed (a process that moves itself to reach a resource). The move runs after
    /// the reply; a move that fails leaves the object where it is.
    pub fn migrate_to(&self, to: NodeId) -> Result<(), InvokeError> {
        self.backend.migrate_after(to)
    }

    /// `r` with a capability narrowed to `rights` (attenuated from the best one this thread holds for it).
    pub fn attenuate_raw(&self, r: &RawRef, rights: Rights) -> Result<RawRef, InvokeError> {
        self.backend.attenuate(r, rights)
    }

    /// The running object's own storage pages.
    pub fn storage(&self) -> Storage<'_> {
        Storage { backend: &*self.backend }
    }
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("thread", &self.thread_id())
            .field("node", &self.node())
            .field("this", &self.this())
            .finish()
    }
}

/// Per-object key-value pages, for state too large for one struct. Reads see the
/// method's own writes; writes are allowed only in write (`&mut self`) methods. Reads are
/// `async` (a page may have to come from another node, while a lazy move finishes);
/// writes are buffered until the method commits, so they are not.
pub struct Storage<'a> {
    backend: &'a dyn Backend,
}

impl Storage<'_> {
    /// The page under `key`, if there is one.
    pub async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, InvokeError> {
        self.backend.page_get(key).await
    }

    /// Writes the page under `key` (committed with the method's state).
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<(), InvokeError> {
        self.backend.page_put(key, value)
    }

    /// Deletes the page under `key` (committed with the method's state).
    pub fn delete(&self, key: &[u8]) -> Result<(), InvokeError> {
        self.backend.page_delete(key)
    }

    /// Up to `limit` pages with keys in `[start, end)` (`end` `None`: to the last key), in
    /// key order.
    pub async fn range(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Result<Pages, InvokeError> {
        let end = match end {
            Some(e) => Bound::Excluded(e.to_vec()),
            None => Bound::Unbounded,
        };
        self.backend.page_range(Bound::Included(start.to_vec()), end, limit).await
    }

    /// `get`, decoding a value stored with [`Storage::put_value`].
    pub async fn get_value<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, InvokeError> {
        match self.get(key).await? {
            None => Ok(None),
            Some(bytes) => crate::object::decode_state(&bytes).map(Some),
        }
    }

    /// `put` of a serializable value.
    pub fn put_value<T: Serialize>(&self, key: &[u8], value: &T) -> Result<(), InvokeError> {
        self.put(key, &encode_state(value)?)
    }
}
