//! Single-node engine tests: a real engine on a sled store in a temporary directory,
//! driven in-process (and once over tarpc on 127.0.0.1), with classes made to probe the
//! guarantees of docs/semantics.md.

use capability::KeyPair;
use clouds::{methods, CallId, Cap, Codec, Ctx, InvokeError, Object, ObjectId, RawRef, Ref, ThreadCtx};
use objectd::engine::peers::Alone;
use objectd::engine::Guard;
use objectd::{Config, Engine, Registry, SledStore};
use protocol::identity::Identity;
use protocol::wire::{InitialState, Invocation};
use protocol::Placement;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Per object: how many slow methods run at this moment, and the most seen at once.
static RUNNING: Mutex<BTreeMap<ObjectId, (usize, usize)>> = Mutex::new(BTreeMap::new());

fn max_running(id: ObjectId) -> usize {
    RUNNING.lock().unwrap().get(&id).map_or(0, |r| r.1)
}

/// Counts one running method of an object while alive (also when cancelled).
struct Running(ObjectId);

impl Running {
    fn start(id: ObjectId) -> Running {
        let mut map = RUNNING.lock().unwrap();
        let entry = map.entry(id).or_default();
        entry.0 += 1;
        entry.1 = entry.1.max(entry.0);
        Running(id)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.lock().unwrap().get_mut(&self.0).expect("started").0 -= 1;
    }
}

#[derive(Object, Default, Serialize, Deserialize)]
pub struct Probe {
    value: i64,
    order: Vec<i64>,
}

async fn occupy(ctx: &Ctx, ms: u64) {
    let _running = Running::start(ctx.this().expect("inside an object"));
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[methods]
impl Probe {
    pub fn get(&self) -> i64 {
        self.value
    }

    pub fn order(&self) -> Vec<i64> {
        self.order.clone()
    }

    pub fn incr(&mut self, by: i64) -> i64 {
        self.value += by;
        self.value
    }

    pub async fn slow_get(&self, ctx: &Ctx, ms: u64) -> i64 {
        occupy(ctx, ms).await;
        self.value
    }

    pub async fn slow_append(&mut self, ctx: &Ctx, tag: i64, ms: u64) -> usize {
        occupy(ctx, ms).await;
        self.order.push(tag);
        self.order.len()
    }

    pub async fn page(&self, ctx: &Ctx, key: String) -> Result<Option<String>, InvokeError> {
        ctx.storage().get_value(key.as_bytes()).await
    }

    pub fn put_page(&mut self, ctx: &Ctx, key: String, value: String) -> Result<(), InvokeError> {
        ctx.storage().put_value(key.as_bytes(), &value)
    }

    pub fn write_in_read(&self, ctx: &Ctx) -> Result<(), InvokeError> {
        ctx.storage().put(b"k", b"v")
    }

    /// Changes state and a page, then fails: nothing may stick.
    pub fn set_then_fail(&mut self, ctx: &Ctx, v: i64) -> Result<i64, String> {
        self.value = v;
        ctx.storage().put_value(b"p", &"dirty".to_string()).map_err(|e| e.to_string())?;
        Err(format!("refusing {v}"))
    }

    /// Changes state and a page, then panics: nothing may stick.
    pub fn set_then_panic(&mut self, ctx: &Ctx, v: i64) -> i64 {
        self.value = v;
        let _ = ctx.storage().put_value(b"p", &"dirty".to_string());
        panic!("boom at {v}");
    }

    /// Changes state, then sleeps past the deadline: nothing may stick.
    pub async fn set_then_sleep(&mut self, v: i64, ms: u64) -> i64 {
        self.value = v;
        tokio::time::sleep(Duration::from_millis(ms)).await;
        v
    }

    /// Reads `other` slowly, from inside this object: the nested call inherits the deadline.
    pub async fn nested_slow(&self, ctx: &Ctx, other: Ref<Probe>, ms: u64) -> Result<i64, InvokeError> {
        other.slow_get(ctx, ms).await
    }

    /// [time left here, time left in a nested call to `other`], in ms.
    pub async fn deadlines(&self, ctx: &Ctx, other: Ref<Probe>) -> Result<[u64; 2], InvokeError> {
        let here = ctx.remaining().expect("inside an object").as_millis() as u64;
        Ok([here, other.remaining(ctx).await?])
    }

    pub fn remaining(&self, ctx: &Ctx) -> u64 {
        ctx.remaining().expect("inside an object").as_millis() as u64
    }

    /// Ping-pong between two objects, as reads, `depth` times.
    pub async fn bounce(&self, ctx: &Ctx, other: Ref<Probe>, depth: u32) -> Result<u32, InvokeError> {
        if depth == 0 {
            return Ok(ctx.chain().len() as u32);
        }
        let me: Ref<Probe> = ctx.this_ref()?;
        other.bounce(ctx, me, depth - 1).await
    }

    /// Writes here, then reads itself through a nested call: re-entry into a write hold.
    pub async fn write_then_reenter(&mut self, ctx: &Ctx) -> Result<i64, InvokeError> {
        self.value += 1;
        let me: Ref<Probe> = ctx.this_ref()?;
        me.get(ctx).await
    }

    /// Writes here, waits, then writes `other`: two of these crossing over make a cycle.
    pub async fn hold_then_call(&mut self, ctx: &Ctx, other: Ref<Probe>, ms: u64) -> Result<i64, InvokeError> {
        self.value += 1;
        tokio::time::sleep(Duration::from_millis(ms)).await;
        other.incr(ctx, 10).await
    }

    /// Creates another object from inside a method.
    pub async fn spawn_child(&mut self, ctx: &Ctx, start: i64) -> Result<Ref<Probe>, InvokeError> {
        ctx.create(&Probe { value: start, order: vec![] }).await
    }
}

/// An engine, and the owner capabilities of the objects the test created.
struct Harness {
    engine: Engine,
    caps: Mutex<HashMap<ObjectId, Cap>>,
    _dir: tempfile::TempDir,
}

async fn harness(tune: impl FnOnce(&mut Config)) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_test(dir.path().to_path_buf());
    tune(&mut config);
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let registry = Registry::standard().with::<Probe>().unwrap();
    let guard = Guard::new(Arc::new(Identity::ephemeral(config.id)));
    let engine = Engine::start(&config, store, registry, guard, Arc::new(Alone(config.id))).await.unwrap();
    Harness { engine, caps: Mutex::new(HashMap::new()), _dir: dir }
}

impl Harness {
    async fn create(&self) -> ObjectId {
        let owner = KeyPair::generate().public();
        let created = self.engine.create("Probe", InitialState::Default, Placement::Local, owner).await.unwrap();
        self.caps.lock().unwrap().insert(created.id, created.cap.expect("an owner capability"));
        created.id
    }

    /// `id` with its owner capability.
    fn raw(&self, id: ObjectId) -> RawRef {
        RawRef { id, cap: self.caps.lock().unwrap().get(&id).cloned() }
    }

    /// `id` with its owner capability, as a JSON argument.
    fn r(&self, id: ObjectId) -> serde_json::Value {
        serde_json::to_value(self.raw(id)).unwrap()
    }

    async fn call_with(
        &self,
        thread: ThreadCtx,
        id: ObjectId,
        method: &str,
        args: serde_json::Value,
        call_id: Option<&str>,
    ) -> Result<serde_json::Value, InvokeError> {
        let inv = Invocation {
            thread,
            target: id,
            method: method.into(),
            codec: Codec::Json,
            args: serde_json::to_vec(&args).unwrap(),
            call_id: call_id.map(|c| CallId(c.into())),
            capability: self.raw(id).cap,
        };
        let reply = self.engine.invoke(inv).await?;
        Ok(serde_json::from_slice(&reply.value).unwrap())
    }

    async fn call(
        &self,
        id: ObjectId,
        method: &str,
        args: serde_json::Value,
    ) -> Result<serde_json::Value, InvokeError> {
        self.call_with(ThreadCtx::new(30_000), id, method, args, None).await
    }
}

use serde_json::json;

#[tokio::test]
async fn a_failed_write_leaves_no_trace() {
    let h = harness(|_| {}).await;
    let id = h.create().await;
    h.call(id, "incr", json!([5])).await.unwrap();
    let err = h.call(id, "set_then_fail", json!([99])).await.unwrap_err();
    assert!(matches!(&err, InvokeError::App { message, .. } if message == "refusing 99"), "{err:?}");
    assert_eq!(h.call(id, "get", json!([])).await.unwrap(), json!(5));
    assert_eq!(h.call(id, "page", json!(["p"])).await.unwrap(), json!(null));
    assert_eq!(h.engine.describe(h.raw(id)).await.unwrap().version, 2, "only the incr committed");
}

#[tokio::test]
async fn a_panicking_write_leaves_no_trace_and_the_object_keeps_working() {
    let h = harness(|_| {}).await;
    let id = h.create().await;
    h.call(id, "incr", json!([3])).await.unwrap();
    let err = h.call(id, "set_then_panic", json!([42])).await.unwrap_err();
    assert!(matches!(&err, InvokeError::Panicked { message, .. } if message.contains("boom at 42")), "{err:?}");
    assert_eq!(h.call(id, "get", json!([])).await.unwrap(), json!(3));
    assert_eq!(h.call(id, "page", json!(["p"])).await.unwrap(), json!(null));
    assert_eq!(h.call(id, "incr", json!([1])).await.unwrap(), json!(4));
}

#[tokio::test]
async fn a_write_past_its_deadline_is_rolled_back() {
    let h = harness(|_| {}).await;
    let id = h.create().await;
    let err = h.call_with(ThreadCtx::new(100), id, "set_then_sleep", json!([7, 5_000]), None).await.unwrap_err();
    assert!(matches!(err, InvokeError::DeadlineExceeded { object, .. } if object == id), "{err:?}");
    assert_eq!(h.call(id, "get", json!([])).await.unwrap(), json!(0));
}

#[tokio::test]
async fn nested_calls_inherit_what_is_left_of_the_deadline() {
    let h = harness(|_| {}).await;
    let (a, b) = (h.create().await, h.create().await);
    let left = h.call_with(ThreadCtx::new(5_000), a, "deadlines", json!([h.r(b)]), None).await.unwrap();
    let (here, there) = (left[0].as_u64().unwrap(), left[1].as_u64().unwrap());
    assert!(here <= 5_000 && there <= here && there > 0, "here {here} ms, nested {there} ms");
    // A nested call slower than what is left fails the thread at the deadline; the outer
    // or the nested invocation reports it, whichever notices first.
    let err = h.call_with(ThreadCtx::new(200), a, "nested_slow", json!([h.r(b), 5_000]), None).await.unwrap_err();
    assert!(matches!(err, InvokeError::DeadlineExceeded { object, .. } if object == a || object == b), "{err:?}");
    assert_eq!(h.call_with(ThreadCtx::new(5_000), a, "nested_slow", json!([h.r(b), 1]), None).await.unwrap(), json!(0));
}

#[tokio::test]
async fn the_hop_limit_stops_runaway_recursion() {
    let h = harness(|c| c.hop_limit = 8).await;
    let (a, b) = (h.create().await, h.create().await);
    assert_eq!(h.call(a, "bounce", json!([h.r(b), 3])).await.unwrap(), json!(4), "read re-entry is allowed");
    let err = h.call(a, "bounce", json!([h.r(b), 50])).await.unwrap_err();
    match err {
        InvokeError::HopLimit { limit, chain } => {
            assert_eq!(limit, 8);
            assert_eq!(chain.matches(" -> ").count(), 8, "{chain}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn reentering_a_write_hold_fails_at_once_with_the_chain() {
    let h = harness(|_| {}).await;
    let a = h.create().await;
    let err = h.call(a, "write_then_reenter", json!([])).await.unwrap_err();
    match &err {
        InvokeError::Reentrancy { object, chain } => {
            assert_eq!(*object, a);
            assert!(chain.contains("Probe.write_then_reenter") && chain.contains("Probe.get"), "{chain}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(h.call(a, "get", json!([])).await.unwrap(), json!(0), "the failed write was rolled back");
}

#[tokio::test]
async fn a_cycle_of_waiting_threads_fails_one_of_them_with_the_cycle() {
    let h = Arc::new(harness(|_| {}).await);
    let (a, b) = (h.create().await, h.create().await);
    let cross = |from: ObjectId, to: ObjectId| {
        let h = h.clone();
        tokio::spawn(async move { h.call(from, "hold_then_call", json!([h.r(to), 100])).await })
    };
    let (ab, ba) = (cross(a, b), cross(b, a));
    let (ab, ba) = (ab.await.unwrap(), ba.await.unwrap());
    let (ok, failed) = match (&ab, &ba) {
        (Ok(_), Err(e)) | (Err(e), Ok(_)) => (if ab.is_ok() { a } else { b }, e.clone()),
        other => panic!("expected exactly one failure, got {other:?}"),
    };
    match failed {
        InvokeError::Deadlock { cycle } => assert_eq!(cycle.matches("waits for object").count(), 2, "{cycle}"),
        other => panic!("expected Deadlock, got {other:?}"),
    }
    // The survivor committed its +1 and the victim's +10 deposit; the victim's +1 was rolled back.
    let victim = if ok == a { b } else { a };
    assert_eq!(h.call(ok, "get", json!([])).await.unwrap(), json!(1));
    assert_eq!(h.call(victim, "get", json!([])).await.unwrap(), json!(10));
}

#[tokio::test]
async fn readers_share_and_writers_run_alone_in_arrival_order() {
    let h = Arc::new(harness(|_| {}).await);
    let (id, wid) = (h.create().await, h.create().await);
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let h = h.clone();
            tokio::spawn(async move { h.call(id, "slow_get", json!([150])).await.unwrap() })
        })
        .collect();
    for r in readers {
        r.await.unwrap();
    }
    assert!(max_running(id) >= 2, "reads of one object ran one at a time");

    let mut writers = Vec::new();
    for tag in 1..=5 {
        let h = h.clone();
        writers.push(tokio::spawn(async move { h.call(wid, "slow_append", json!([tag, 150])).await.unwrap() }));
        // Let this writer reach the lock queue before the next one arrives (each holds the
        // lock for 150 ms, so the queue is never empty in between).
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(max_running(wid), 1, "two writes of one object overlapped");
    assert_eq!(h.call(wid, "order", json!([])).await.unwrap(), json!([1, 2, 3, 4, 5]));
}

#[tokio::test]
async fn a_call_id_makes_a_write_happen_once() {
    let h = harness(|_| {}).await;
    let id = h.create().await;
    let first = h.call_with(ThreadCtx::new(5_000), id, "incr", json!([10]), Some("k1")).await.unwrap();
    let retry = h.call_with(ThreadCtx::new(5_000), id, "incr", json!([10]), Some("k1")).await.unwrap();
    assert_eq!((first, retry), (json!(10), json!(10)));
    assert_eq!(h.call(id, "get", json!([])).await.unwrap(), json!(10));
    h.call_with(ThreadCtx::new(5_000), id, "incr", json!([1]), Some("k2")).await.unwrap();
    assert_eq!(h.call(id, "get", json!([])).await.unwrap(), json!(11));
}

#[tokio::test]
async fn pages_commit_with_the_method_and_are_read_only_in_reads() {
    let h = harness(|_| {}).await;
    let id = h.create().await;
    h.call(id, "put_page", json!(["k", "v"])).await.unwrap();
    assert_eq!(h.call(id, "page", json!(["k"])).await.unwrap(), json!("v"));
    let err = h.call(id, "write_in_read", json!([])).await.unwrap_err();
    assert!(err.to_string().contains("can be written only in write methods"), "{err}");
    assert_eq!(h.engine.describe(h.raw(id)).await.unwrap().pages, 1);
}

#[tokio::test]
async fn idle_objects_leave_memory_and_come_back_from_disk() {
    let h = harness(|c| c.cache_objects = 3).await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let id = h.create().await;
        h.call(id, "incr", json!([i])).await.unwrap();
        ids.push(id);
    }
    assert!(h.engine.status().await.unwrap().active <= 3);
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(h.call(*id, "get", json!([])).await.unwrap(), json!(i));
    }
}

#[tokio::test]
async fn deleted_objects_are_not_found_and_unknown_names_are_clear() {
    let h = harness(|_| {}).await;
    let id = h.create().await;
    h.engine.delete(h.raw(id), Duration::from_secs(5)).await.unwrap();
    assert!(matches!(h.call(id, "get", json!([])).await, Err(InvokeError::NotFound { .. })));
    assert!(matches!(h.engine.delete(h.raw(id), Duration::from_secs(5)).await, Err(InvokeError::NotFound { .. })));
    let err = h.call(h.create().await, "nope", json!([])).await.unwrap_err();
    assert!(err.to_string().contains("its methods are: get, order, incr"), "{err}");
    let err = h
        .engine
        .create("Nope", InitialState::Default, Placement::Local, KeyPair::generate().public())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unknown class `Nope`"), "{err}");
    let err = h
        .engine
        .create(
            "Probe",
            InitialState::Json("{\"value\": \"x\"}".into()),
            Placement::Local,
            KeyPair::generate().public(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not fit class `Probe`"), "{err}");
}

#[tokio::test]
async fn methods_create_objects_and_typed_stubs_work_from_client_code() {
    let h = harness(|_| {}).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(objectd::rpc::serve(
        listener,
        h.engine.clone(),
        async move {
            let _ = stopped.await;
        },
        Duration::from_secs(1),
    ));

    let client = client::Client::connect(addr).await.unwrap();
    let ctx = client.ctx();
    let parent: Ref<Probe> = ctx.create(&Probe::default()).await.unwrap();
    let child = parent.spawn_child(&ctx, 40).await.unwrap();
    assert_eq!(child.incr(&ctx, 2).await.unwrap(), 42);
    assert_eq!(child.get(&ctx).await.unwrap(), 42);
    let counter: Ref<stdobjects::Counter> = ctx.create(&stdobjects::Counter::default()).await.unwrap();
    let other: Ref<stdobjects::Counter> = ctx.create(&stdobjects::Counter::default()).await.unwrap();
    other.incr(&ctx, 5).await.unwrap();
    assert_eq!(counter.add_from(&ctx, other.clone()).await.unwrap(), 5);
    assert!(matches!(ctx.storage().get(b"x").await, Err(InvokeError::Invalid { .. })));

    stop.send(()).unwrap();
    server.await.unwrap();
}
