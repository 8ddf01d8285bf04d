//! `Counter`: the smallest useful class.

use clouds::{methods, Ctx, InvokeError, Object, Ref};
use serde::{Deserialize, Serialize};

#[derive(Object, Default, Serialize, Deserialize)]
pub struct Counter {
    value: i64,
}

#[methods]
impl Counter {
    pub fn get(&self) -> i64 {
        self.value
    }

    pub fn incr(&mut self, by: i64) -> i64 {
        self.value += by;
        self.value
    }

    /// Adds the value of another counter, read by a nested invocation of the same thread.
    pub async fn add_from(&mut self, ctx: &Ctx, other: Ref<Counter>) -> Result<i64, InvokeError> {
        let v = other.get(ctx).await?;
        self.value += v;
        Ok(self.value)
    }
}
