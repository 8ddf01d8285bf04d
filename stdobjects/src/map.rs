//! `Map`: string keys to JSON values, one storage page per entry, so a map is not limited
//! by the size of its struct state.

use clouds::{methods, Ctx, InvokeError, Object, Value};
use serde::{Deserialize, Serialize};

#[derive(Object, Default, Serialize, Deserialize)]
pub struct Map {
    len: u64,
}

/// The most entries one `range` call returns.
pub const MAX_RANGE: u32 = 10_000;

#[methods]
impl Map {
    pub async fn get(&self, ctx: &Ctx, key: String) -> Result<Option<Value>, InvokeError> {
        ctx.storage().get_value(key.as_bytes()).await
    }

    /// Inserts or replaces; returns the previous value.
    pub async fn put(&mut self, ctx: &Ctx, key: String, value: Value) -> Result<Option<Value>, InvokeError> {
        let previous: Option<Value> = ctx.storage().get_value(key.as_bytes()).await?;
        ctx.storage().put_value(key.as_bytes(), &value)?;
        if previous.is_none() {
            self.len += 1;
        }
        Ok(previous)
    }

    /// Removes a key; returns its value.
    pub async fn remove(&mut self, ctx: &Ctx, key: String) -> Result<Option<Value>, InvokeError> {
        let previous: Option<Value> = ctx.storage().get_value(key.as_bytes()).await?;
        if previous.is_some() {
            ctx.storage().delete(key.as_bytes())?;
            self.len -= 1;
        }
        Ok(previous)
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    /// Entries with `start <= key < end` (`end` null: to the last key), in key order, at
    /// most `limit` of them (and never more than 10 000).
    pub async fn range(
        &self,
        ctx: &Ctx,
        start: String,
        end: Option<String>,
        limit: u32,
    ) -> Result<Vec<(String, Value)>, InvokeError> {
        let pages = ctx
            .storage()
            .range(start.as_bytes(), end.as_deref().map(str::as_bytes), limit.min(MAX_RANGE) as usize)
            .await?;
        pages
            .into_iter()
            .map(|(k, v)| {
                let key = String::from_utf8(k).map_err(InvokeError::storage)?;
                let value = clouds::object::decode_state(&v)?;
                Ok((key, value))
            })
            .collect()
    }
}
