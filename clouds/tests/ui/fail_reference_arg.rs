use clouds::{methods, Object};
use serde::{Deserialize, Serialize};

#[derive(Object, Default, Serialize, Deserialize)]
pub struct C { v: String }

#[methods]
impl C {
    pub fn set(&mut self, s: &str) { self.v = s.to_string(); }
}

fn main() {}
