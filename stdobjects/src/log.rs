//! `Log`: an append-only sequence of JSON values, one storage page per entry.

use crate::index_key;
use clouds::{methods, Ctx, InvokeError, Object, Value};
use serde::{Deserialize, Serialize};

#[derive(Object, Default, Serialize, Deserialize)]
pub struct Log {
    len: u64,
}

/// The most entries one `read` call returns.
pub const MAX_READ: u32 = 10_000;

#[methods]
impl Log {
    /// Appends an entry; returns its index.
    pub fn append(&mut self, ctx: &Ctx, entry: Value) -> Result<u64, InvokeError> {
        ctx.storage().put_value(&index_key(self.len), &entry)?;
        self.len += 1;
        Ok(self.len - 1)
    }

    /// Up to `count` entries (at most 10 000) starting at index `from`.
    pub async fn read(&self, ctx: &Ctx, from: u64, count: u32) -> Result<Vec<Value>, InvokeError> {
        let end = from.saturating_add(count.min(MAX_READ) as u64).min(self.len);
        if from >= end {
            return Ok(Vec::new());
        }
        let pages = ctx.storage().range(&index_key(from), Some(&index_key(end)), (end - from) as usize).await?;
        pages.into_iter().map(|(_, v)| clouds::object::decode_state(&v)).collect()
    }

    pub fn len(&self) -> u64 {
        self.len
    }
}
