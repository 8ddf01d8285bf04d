//! Standard classes every node registers.
//!
//! Layout (one class per file):
//! - [`counter`]: `Counter`, an i64 with get / incr / add_from (a nested invocation).
//! - [`register`]: `Register`, one JSON value with get / set / compare_and_set.
//! - [`map`]: `Map`, string keys to JSON values, kept in storage pages.
//! - [`queue`]: `Queue`, a FIFO of JSON values in pages.
//! - [`log`]: `Log`, an append-only sequence of JSON values in pages.
//! - [`blob`]: `Blob`, bytes in 64 KiB pages; holds hundreds of MB.
//! - [`account`]: `Account`, a balance with deposit / withdraw / transfer.

// `len` is an object method callers invoke; an `is_empty` beside it would be one more
// method on the wire for what `len() == 0` says.
#![allow(clippy::len_without_is_empty)]

pub mod account;
pub mod blob;
pub mod counter;
pub mod log;
pub mod map;
pub mod queue;
pub mod register;

pub use account::{Account, AccountError};
pub use blob::{Blob, BlobError};
pub use counter::{Counter, CounterError};
pub use log::Log;
pub use map::Map;
pub use queue::Queue;
pub use register::Register;

use std::sync::Arc;

/// The type-erased classes of this crate, for a node's class registry.
pub fn classes() -> Vec<Arc<dyn clouds::Class>> {
    vec![
        clouds::class_of::<Counter>(),
        clouds::class_of::<Register>(),
        clouds::class_of::<Map>(),
        clouds::class_of::<Queue>(),
        clouds::class_of::<Log>(),
        clouds::class_of::<Blob>(),
        clouds::class_of::<Account>(),
    ]
}

/// Page key of the `i`th element of a sequence: big-endian, so that key order is index order.
pub(crate) fn index_key(i: u64) -> [u8; 8] {
    i.to_be_bytes()
}
