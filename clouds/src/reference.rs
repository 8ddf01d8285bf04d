//! `Ref<T>`: a typed reference to another object, passed by value.
//!
//! `Ref<T>` dereferences to the stub type `#[derive(Object)]` generates for `T`, on which
//! `#[methods]` defines one async method per method of `T`:
//! `counter.incr(&ctx, 5).await` invokes `Counter::incr` on the referenced object, from
//! inside another object or from client code alike.

use crate::id::ObjectId;
use crate::object::ObjectState;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::marker::PhantomData;

/// An untyped reference: what every stub holds. It serializes as the object id (a UUID
/// string in JSON, 16 bytes in binary).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RawRef {
    pub id: ObjectId,
}

/// Implemented by generated stub types.
pub trait StubOf: Send + Sync + 'static {
    fn from_raw(raw: RawRef) -> Self;
    fn raw(&self) -> &RawRef;
}

/// A typed reference to an object of class `T`.
pub struct Ref<T: ObjectState> {
    stub: T::Stub,
    _t: PhantomData<fn() -> T>,
}

impl<T: ObjectState> Ref<T> {
    pub fn new(id: ObjectId) -> Self {
        Ref { stub: T::Stub::from_raw(RawRef { id }), _t: PhantomData }
    }

    pub fn id(&self) -> ObjectId {
        self.stub.raw().id
    }
}

impl<T: ObjectState> std::ops::Deref for Ref<T> {
    type Target = T::Stub;
    fn deref(&self) -> &T::Stub {
        &self.stub
    }
}

impl<T: ObjectState> Clone for Ref<T> {
    fn clone(&self) -> Self {
        Ref::new(self.id())
    }
}

impl<T: ObjectState> PartialEq for Ref<T> {
    fn eq(&self, other: &Self) -> bool {
        self.id() == other.id()
    }
}

impl<T: ObjectState> Eq for Ref<T> {}

impl<T: ObjectState> fmt::Debug for Ref<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ref<{}>({})", T::CLASS, self.id())
    }
}

impl<T: ObjectState> Serialize for Ref<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.stub.raw().serialize(s)
    }
}

impl<'de, T: ObjectState> Deserialize<'de> for Ref<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        RawRef::deserialize(d).map(|raw| Ref::new(raw.id))
    }
}
