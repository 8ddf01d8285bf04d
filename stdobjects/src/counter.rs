//! `Counter`: the smallest useful class.

use clouds::{methods, Ctx, InvokeError, Object, Ref};
use serde::{Deserialize, Serialize};

#[derive(Object, Default, Serialize, Deserialize)]
pub struct Counter {
    value: i64,
}

#[derive(Debug, Serialize, Deserialize, thiserror::Error)]
pub enum CounterError {
    #[error("{value} + {by} overflows a counter (an i64: {} to {}); the counter is unchanged", i64::MIN, i64::MAX)]
    Overflow { value: i64, by: i64 },
}

#[methods]
impl Counter {
    pub fn get(&self) -> i64 {
        self.value
    }

    /// Adds `by` (negative: subtracts); returns the new value. Past the range of an i64 it
    /// fails and changes nothing.
    pub fn incr(&mut self, by: i64) -> Result<i64, CounterError> {
        self.value = self.value.checked_add(by).ok_or(CounterError::Overflow { value: self.value, by })?;
        Ok(self.value)
    }

    /// Adds the value of another counter, read by a nested invocation of the same thread.
    pub async fn add_from(&mut self, ctx: &Ctx, other: Ref<Counter>) -> Result<i64, InvokeError> {
        let v = other.get(ctx).await?;
        self.incr(v).map_err(InvokeError::app)
    }
}
