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
    pub async fn add_from(&mut self, ctx: &Ctx, other: Ref<Counter>) -> Result<i64, InvokeError> {
        let v = other.get(ctx).await?;
        self.value += v;
        Ok(self.value)
    }
    fn helper(&self) -> i64 {
        self.value * 2
    }
    pub fn new_with(value: i64) -> Self {
        Counter { value }
    }
}

fn main() {
    let info = <Counter as clouds::__private::MethodTable>::class_info();
    assert_eq!(info.name, "Counter");
    let names: Vec<_> = info.methods.iter().map(|m| m.signature()).collect();
    assert_eq!(names, ["get() -> i64", "incr(by: i64) -> i64", "add_from(other: Ref<Counter>) -> Result<i64, InvokeError>"]);
    let _ = Counter::new_with(1).helper();
}
