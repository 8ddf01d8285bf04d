//! `Register`: one JSON value.

use clouds::{methods, Object, Value};
use serde::{Deserialize, Serialize};

#[derive(Object, Default, Serialize, Deserialize)]
pub struct Register {
    value: Value,
}

#[methods]
impl Register {
    pub fn get(&self) -> Value {
        self.value.clone()
    }

    /// Sets the value; returns the previous one.
    pub fn set(&mut self, value: Value) -> Value {
        std::mem::replace(&mut self.value, value)
    }

    /// Sets the value to `new` if it equals `expected`; returns whether it did.
    pub fn compare_and_set(&mut self, expected: Value, new: Value) -> bool {
        if self.value == expected {
            self.value = new;
            true
        } else {
            false
        }
    }
}
