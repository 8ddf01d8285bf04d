use clouds::{Object, Ref};
use serde::{Deserialize, Serialize};

#[derive(Object, Default, Serialize, Deserialize)]
pub struct C { v: i64 }

fn main() {
    let _ = clouds::class_of::<C>();
    let _: Option<Ref<C>> = None;
}
