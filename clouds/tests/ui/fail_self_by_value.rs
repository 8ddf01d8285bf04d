use clouds::{methods, Object};
use serde::{Deserialize, Serialize};

#[derive(Object, Default, Serialize, Deserialize)]
pub struct C { v: i64 }

#[methods]
impl C {
    pub fn take(self) -> i64 { self.v }
}

fn main() {}
