//! The vocabulary of moving an object between nodes: the strategy a move uses, the chunks
//! its state travels in, how the target resolves a move whose commit is in doubt, and what
//! a finished move reports. The protocol itself is `objectd::migration`.

use clouds::NodeId;
use serde::{Deserialize, Serialize};

pub use clouds::Strategy;

/// A piece of an exported object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Chunk {
    /// Storage pages, in key order.
    Pages(Vec<(Vec<u8>, Vec<u8>)>),
    /// Keys of pages deleted at the source after they were copied (a precopy round).
    Removed(Vec<Vec<u8>>),
    /// Recorded replies by call id, so that exactly-once holds where the object goes.
    Calls(Vec<(String, Vec<u8>)>),
    /// The committed record: always the last chunk.
    Record {
        class: String,
        version: u64,
        epoch: u64,
        #[serde(with = "serde_bytes")]
        state: Vec<u8>,
    },
}

impl Chunk {
    /// Bytes of payload it carries.
    pub fn bytes(&self) -> usize {
        match self {
            Chunk::Pages(p) => p.iter().map(|(k, v)| k.len() + v.len()).sum(),
            Chunk::Removed(keys) => keys.iter().map(Vec::len).sum(),
            Chunk::Calls(c) => c.iter().map(|(k, v)| k.len() + v.len()).sum(),
            Chunk::Record { class, state, .. } => class.len() + state.len() + 16,
        }
    }
}

/// What a target that has (or has not) installed the record answers a resolve: the
/// commit happened, or it is refused from now on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Resolution {
    Committed,
    Aborted,
}

/// What a finished move reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MigrationReport {
    pub object: clouds::ObjectId,
    pub from: NodeId,
    pub to: NodeId,
    pub strategy: Strategy,
    /// Payload bytes sent to the target, pages copied again included.
    pub bytes: u64,
    /// Copy rounds while the object kept serving (0 for eager).
    pub rounds: u32,
    /// How long the object served nothing.
    pub freeze_us: u64,
    pub total_us: u64,
}

impl std::fmt::Display for MigrationReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "moved {} from {} to {} ({}): {} bytes, {} rounds, frozen {:.3} ms, total {:.3} ms",
            self.object,
            self.from,
            self.to,
            self.strategy,
            self.bytes,
            self.rounds,
            self.freeze_us as f64 / 1000.0,
            self.total_us as f64 / 1000.0
        )
    }
}
