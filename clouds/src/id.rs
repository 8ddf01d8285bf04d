//! Identifiers: nodes, objects, threads and calls.
//!
//! An `ObjectId` is a UUID v8 whose custom bits carry a millisecond time prefix and the
//! **home node** (the node that created the object), so the node that keeps an object's
//! authoritative location record is known from the id alone, without a lookup.
//!
//! Layout (big-endian, 128 bits): 48 bits of Unix milliseconds, 4 bits version (8),
//! 12 random bits, 2 bits variant, 14 random bits, 16 bits home node id, 32 random bits.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};
use uuid::Uuid;

/// A node's id: unique in the cluster, chosen by the operator (`objectd --id`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub u16);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node-{}", self.0)
    }
}

impl FromStr for NodeId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let digits = s.strip_prefix("node-").unwrap_or(s);
        digits
            .parse::<u16>()
            .map(NodeId)
            .map_err(|_| format!("`{s}` is not a node id (expected a number 0-65535 or node-N)"))
    }
}

/// The global id of a persistent object.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ObjectId(pub Uuid);

impl ObjectId {
    /// A fresh id whose home is `home`.
    pub fn new(home: NodeId) -> Self {
        let millis = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let random = *Uuid::new_v4().as_bytes();
        let mut b = [0u8; 16];
        b[0..6].copy_from_slice(&millis.to_be_bytes()[2..8]);
        b[6..8].copy_from_slice(&random[6..8]);
        b[8..10].copy_from_slice(&random[8..10]);
        b[10..12].copy_from_slice(&home.0.to_be_bytes());
        b[12..16].copy_from_slice(&random[12..16]);
        // `new_v8` sets the version (8) and variant bits over what we wrote there.
        ObjectId(Uuid::new_v8(b))
    }

    /// The node that created this object and keeps its location record.
    ///
    /// ```
    /// use clouds::{NodeId, ObjectId};
    /// let id = ObjectId::new(NodeId(3));
    /// assert_eq!(id.home(), NodeId(3));
    /// assert_eq!(id.to_string().parse::<ObjectId>().unwrap(), id, "ids print and parse as UUIDs");
    /// ```
    pub fn home(&self) -> NodeId {
        let b = self.0.as_bytes();
        NodeId(u16::from_be_bytes([b[10], b[11]]))
    }

    /// The id's 16 bytes (a UUID's).
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    /// An id from its 16 bytes.
    pub fn from_bytes(b: [u8; 16]) -> Self {
        ObjectId(Uuid::from_bytes(b))
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for ObjectId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, uuid::Error> {
        Uuid::parse_str(s).map(ObjectId)
    }
}

/// A logical thread of control; it keeps its id as it moves between objects and nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ThreadId(pub Uuid);

impl ThreadId {
    /// A fresh thread id (random).
    pub fn new() -> Self {
        ThreadId(Uuid::new_v4())
    }
}

impl Default for ThreadId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for ThreadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// An idempotency key: a write invoked twice with the same call id runs once.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CallId(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_id_carries_its_home_and_is_a_v8_uuid() {
        for home in [0u16, 1, 7, 300, u16::MAX] {
            let id = ObjectId::new(NodeId(home));
            assert_eq!(id.home(), NodeId(home));
            assert_eq!(id.0.get_version_num(), 8);
            let parsed: ObjectId = id.to_string().parse().unwrap();
            assert_eq!(parsed, id);
        }
    }

    #[test]
    fn object_ids_are_distinct_and_time_ordered() {
        let a = ObjectId::new(NodeId(1));
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = ObjectId::new(NodeId(1));
        assert_ne!(a, b);
        assert!(a.as_bytes()[..6] < b.as_bytes()[..6]);
    }

    #[test]
    fn node_id_parses_both_forms() {
        assert_eq!("3".parse::<NodeId>().unwrap(), NodeId(3));
        assert_eq!("node-3".parse::<NodeId>().unwrap(), NodeId(3));
        assert!("node-x".parse::<NodeId>().is_err());
        assert!("70000".parse::<NodeId>().is_err());
    }
}
