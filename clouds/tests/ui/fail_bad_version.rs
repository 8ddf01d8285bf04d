use clouds::{methods, Object};
use serde::{Deserialize, Serialize};

#[derive(Object, Default, Serialize, Deserialize)]
#[object(version = 0)]
pub struct Zero {}

#[methods]
impl Zero {}

#[derive(Object, Default, Serialize, Deserialize)]
#[object(format = 2)]
pub struct Unknown {}

#[methods]
impl Unknown {}

fn main() {}
