//! Moving an object between stores: an export read in chunks that fit a frame, installed
//! on the other side, and durable intents that a protocol spanning a crash resumes from.
//!
//! An export runs pages, then call records, then the record (`Cursor` says where it goes
//! on). Installed pages and call records stay invisible until the record is installed,
//! which makes the object live at the record's version and epoch; until then the object
//! does not exist at the target (or is still the forwarding entry it was), so an export
//! cut short leaves nothing anyone can see.

use serde::{Deserialize, Serialize};

/// A piece of an exported object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Chunk {
    /// Storage pages, in key order.
    Pages(Vec<(Vec<u8>, Vec<u8>)>),
    /// Recorded replies by call id, so that exactly-once holds where the object goes.
    Calls(Vec<(String, Vec<u8>)>),
    /// The committed record: always the last chunk.
    Record { class: String, version: u64, epoch: u64, state: Vec<u8> },
}

impl Chunk {
    /// Bytes of payload it carries.
    pub fn bytes(&self) -> usize {
        match self {
            Chunk::Pages(p) => p.iter().map(|(k, v)| k.len() + v.len()).sum(),
            Chunk::Calls(c) => c.iter().map(|(k, v)| k.len() + v.len()).sum(),
            Chunk::Record { class, state, .. } => class.len() + state.len() + 16,
        }
    }
}

/// Where an export goes on from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cursor {
    /// Pages after this key (`None`: from the first).
    Pages(Option<Vec<u8>>),
    /// Call records after this call id (`None`: from the first).
    Calls(Option<String>),
    /// The record is next.
    Record,
    /// Everything was exported.
    Done,
}

impl Cursor {
    /// Where every export starts.
    pub fn start() -> Cursor {
        Cursor::Pages(None)
    }
}
