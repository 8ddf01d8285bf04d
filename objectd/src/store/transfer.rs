//! Moving an object between stores: an export read in chunks that fit a frame, installed
//! on the other side, and durable intents that a protocol spanning a crash resumes from.
//!
//! An export runs pages, then call records, then the record (`Cursor` says where it goes
//! on). Installed pages and call records stay invisible until the record is installed,
//! which makes the object live at the record's version and epoch; until then the object
//! does not exist at the target (or is still the forwarding entry it was), so an export
//! cut short leaves nothing anyone can see.

use serde::{Deserialize, Serialize};

pub use protocol::migration::Chunk;

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
