//! `Queue`: a FIFO of JSON values, one storage page per element.

use crate::index_key;
use clouds::{methods, Ctx, InvokeError, Object, Value};
use serde::{Deserialize, Serialize};

#[derive(Object, Default, Serialize, Deserialize)]
pub struct Queue {
    /// Index of the oldest element.
    head: u64,
    /// Index the next pushed element gets.
    tail: u64,
}

#[methods]
impl Queue {
    /// Appends at the back; returns the new length.
    pub fn push(&mut self, ctx: &Ctx, value: Value) -> Result<u64, InvokeError> {
        ctx.storage().put_value(&index_key(self.tail), &value)?;
        self.tail += 1;
        Ok(self.tail - self.head)
    }

    /// Takes from the front; `null` when empty.
    pub async fn pop(&mut self, ctx: &Ctx) -> Result<Option<Value>, InvokeError> {
        if self.head == self.tail {
            return Ok(None);
        }
        let key = index_key(self.head);
        let value = ctx.storage().get_value(&key).await?;
        ctx.storage().delete(&key)?;
        self.head += 1;
        Ok(value)
    }

    pub fn len(&self) -> u64 {
        self.tail - self.head
    }
}
