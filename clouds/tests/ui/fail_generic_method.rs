use clouds::{methods, Object};
use serde::{Deserialize, Serialize};

#[derive(Object, Default, Serialize, Deserialize)]
pub struct C { v: i64 }

#[methods]
impl C {
    pub fn put<T: Into<i64>>(&mut self, x: T) { self.v = x.into(); }
}

fn main() {}
