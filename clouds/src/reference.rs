//! `Ref<T>`: a typed reference to another object, passed by value with its capability.
//!
//! `Ref<T>` dereferences to the stub type `#[derive(Object)]` generates for `T`, on which
//! `#[methods]` defines one async method per method of `T`:
//! `counter.incr(&ctx, 5).await` invokes `Counter::incr` on the referenced object, from
//! inside another object or from client code alike, presenting the reference's capability.
//!
//! A reference carries its capability wherever it goes: as an argument, in a reply, in an
//! object's state. Passing a reference passes the access it grants; `ctx.attenuate(&r,
//! Rights::READ)` makes a weaker one to pass instead.

use crate::cap::Cap;
use crate::id::ObjectId;
use crate::object::ObjectState;
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::marker::PhantomData;

/// An untyped reference: what every stub holds. In JSON it is the object id (a UUID
/// string) when it carries no capability, `{"id": UUID, "cap": "cap1.…"}` when it does;
/// in binary, the id's 16 bytes and the optional token.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RawRef {
    /// The object.
    pub id: ObjectId,
    /// The capability presented when invoking through this reference.
    pub cap: Option<Cap>,
}

impl RawRef {
    /// A reference to `id` carrying no capability (the caller's wallet supplies one).
    pub fn new(id: ObjectId) -> RawRef {
        RawRef { id, cap: None }
    }
}

#[derive(Serialize, Deserialize)]
struct BinaryRef {
    id: ObjectId,
    cap: Option<Cap>,
}

/// The JSON forms, read as text first so that the id and token parse with their own errors.
#[derive(Deserialize)]
#[serde(untagged)]
enum JsonRef {
    Id(String),
    Full { id: String, cap: Option<String> },
}

impl Serialize for RawRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match (&self.cap, s.is_human_readable()) {
            (None, true) => self.id.serialize(s),
            _ => BinaryRef { id: self.id, cap: self.cap.clone() }.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for RawRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if !d.is_human_readable() {
            return BinaryRef::deserialize(d).map(|b| RawRef { id: b.id, cap: b.cap });
        }
        let (id, cap) = match JsonRef::deserialize(d)? {
            JsonRef::Id(id) => (id, None),
            JsonRef::Full { id, cap } => (id, cap),
        };
        let id = id.parse::<ObjectId>().map_err(|e| de::Error::custom(format!("object reference: {e}")))?;
        let cap = cap.map(|c| Cap::from_text(&c)).transpose().map_err(de::Error::custom)?;
        Ok(RawRef { id, cap })
    }
}

/// Implemented by generated stub types.
pub trait StubOf: Send + Sync + 'static {
    /// A stub over `raw`.
    fn from_raw(raw: RawRef) -> Self;
    /// The reference it calls through.
    fn raw(&self) -> &RawRef;
}

/// A typed reference to an object of class `T`.
pub struct Ref<T: ObjectState> {
    stub: T::Stub,
    _t: PhantomData<fn() -> T>,
}

impl<T: ObjectState> Ref<T> {
    /// A reference without a capability: calls through it are denied unless the caller
    /// has a capability of its own for the object (a client's wallet, say).
    pub fn new(id: ObjectId) -> Self {
        Ref::from_raw(RawRef::new(id))
    }

    /// A typed reference from an untyped one (the class is not checked here; a call to a method the object lacks fails with `NoSuchMethod`).
    pub fn from_raw(raw: RawRef) -> Self {
        Ref { stub: T::Stub::from_raw(raw), _t: PhantomData }
    }

    /// The object's id.
    pub fn id(&self) -> ObjectId {
        self.stub.raw().id
    }

    /// The capability this reference carries.
    pub fn cap(&self) -> Option<&Cap> {
        self.stub.raw().cap.as_ref()
    }

    /// The untyped reference: id and capability.
    pub fn raw(&self) -> &RawRef {
        self.stub.raw()
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
        Ref::from_raw(self.raw().clone())
    }
}

/// Two references are equal when they name the same object, whatever they grant.
impl<T: ObjectState> PartialEq for Ref<T> {
    fn eq(&self, other: &Self) -> bool {
        self.id() == other.id()
    }
}

impl<T: ObjectState> Eq for Ref<T> {}

impl<T: ObjectState> fmt::Debug for Ref<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let with = if self.cap().is_some() { " with capability" } else { "" };
        write!(f, "Ref<{}>({}{with})", T::CLASS, self.id())
    }
}

impl<T: ObjectState> Serialize for Ref<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.raw().serialize(s)
    }
}

impl<'de, T: ObjectState> Deserialize<'de> for Ref<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        RawRef::deserialize(d).map(Ref::from_raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::NodeId;

    #[test]
    fn references_keep_their_capability_in_both_codecs() {
        let bare = RawRef::new(ObjectId::new(NodeId(1)));
        let json = serde_json::to_string(&bare).unwrap();
        assert_eq!(json, format!("\"{}\"", bare.id), "a bare reference is its id in JSON");
        assert_eq!(serde_json::from_str::<RawRef>(&json).unwrap(), bare);

        let full = RawRef { id: bare.id, cap: Some(Cap::from_bytes(vec![9, 8, 7])) };
        let json = serde_json::to_string(&full).unwrap();
        assert_eq!(serde_json::from_str::<RawRef>(&json).unwrap(), full);
        for r in [&bare, &full] {
            let bin = postcard::to_stdvec(r).unwrap();
            assert_eq!(&postcard::from_bytes::<RawRef>(&bin).unwrap(), r);
        }
    }

    #[test]
    fn malformed_references_say_what_was_wrong() {
        let e = serde_json::from_str::<RawRef>("\"not-a-uuid\"").unwrap_err().to_string();
        assert!(e.contains("object reference"), "{e}");
        let id = ObjectId::new(NodeId(1));
        let e = serde_json::from_str::<RawRef>(&format!("{{\"id\":\"{id}\",\"cap\":\"x\"}}")).unwrap_err().to_string();
        assert!(e.contains("cap1."), "{e}");
    }
}
