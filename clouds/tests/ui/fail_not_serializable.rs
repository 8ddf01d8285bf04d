use clouds::{methods, Object};
use serde::{Deserialize, Serialize};

pub struct Opaque;

#[derive(Object, Default, Serialize, Deserialize)]
pub struct C { v: i64 }

#[methods]
impl C {
    pub fn feed(&mut self, o: Opaque) { let _ = o; }
}

fn main() {}
