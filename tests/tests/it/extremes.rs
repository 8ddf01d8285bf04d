//! The standard classes at the edges of their numbers, as property tests on the in-process
//! cluster: an operation either does exactly what checked arithmetic says, or fails with
//! the class's own error and changes nothing.

use clouds::{InvokeError, RawRef};
use proptest::prelude::*;
use protocol::{InitialState, Placement};
use serde_json::{json, Value};
use std::sync::OnceLock;
use std::time::Duration;
use tests::network::Network;

const SHORT: Duration = Duration::from_secs(5);

/// One runtime and one node for every case (starting a network per case would dominate).
fn world() -> &'static (tokio::runtime::Runtime, Network) {
    static WORLD: OnceLock<(tokio::runtime::Runtime, Network)> = OnceLock::new();
    WORLD.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let net = rt.block_on(Network::start(1));
        (rt, net)
    })
}

fn create(class: &str, state: Value) -> RawRef {
    let (rt, net) = world();
    let initial = InitialState::Json(state.to_string());
    rt.block_on(net.engine(1).create(class, initial, Placement::Local, net.user())).unwrap()
}

fn call(target: &RawRef, method: &str, args: Value) -> Result<Value, InvokeError> {
    let (rt, net) = world();
    rt.block_on(net.invoke(1, target, method, args, SHORT))
}

/// The application error a class gave, as its JSON.
fn app_error(result: Result<Value, InvokeError>) -> String {
    match result {
        Err(InvokeError::App { message, detail }) => format!("{message} {detail}"),
        other => panic!("expected the class's own error, got {other:?}"),
    }
}

fn extreme_i64() -> impl Strategy<Value = i64> {
    prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(0), Just(-1), Just(1), any::<i64>()]
}

fn extreme_u64() -> impl Strategy<Value = u64> {
    prop_oneof![Just(u64::MAX), Just(u64::MAX - 1), Just(0), Just(1), any::<u64>()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn a_counter_adds_exactly_or_refuses(start in extreme_i64(), by in extreme_i64()) {
        let c = create("Counter", json!({ "value": start }));
        let result = call(&c, "incr", json!([by]));
        match start.checked_add(by) {
            Some(sum) => prop_assert_eq!(result.unwrap(), json!(sum)),
            None => prop_assert!(app_error(result).contains("Overflow")),
        }
        let expected = start.checked_add(by).unwrap_or(start);
        prop_assert_eq!(call(&c, "get", json!([])).unwrap(), json!(expected));
    }

    #[test]
    fn an_account_deposits_exactly_or_refuses(balance in extreme_u64(), amount in extreme_u64()) {
        let a = create("Account", json!({ "balance": balance }));
        let result = call(&a, "deposit", json!([amount]));
        match balance.checked_add(amount) {
            Some(sum) => prop_assert_eq!(result.unwrap(), json!(sum)),
            None => prop_assert!(app_error(result).contains("Overflow")),
        }
        let withdrawn = call(&a, "withdraw", json!([u64::MAX]));
        let now = balance.checked_add(amount).unwrap_or(balance);
        if now == u64::MAX {
            prop_assert_eq!(withdrawn.unwrap(), json!(0));
        } else {
            prop_assert!(app_error(withdrawn).contains("InsufficientFunds"));
            prop_assert_eq!(call(&a, "balance", json!([])).unwrap(), json!(now));
        }
    }

    #[test]
    fn a_blob_writes_where_asked_or_refuses(offset in extreme_u64(), len in 0usize..8) {
        let b = create("Blob", json!({ "len": 0 }));
        let data: Vec<u8> = (0..len as u8).collect();
        let result = call(&b, "write_at", json!([offset, data]));
        match offset.checked_add(len as u64) {
            Some(end) => prop_assert_eq!(result.unwrap(), json!(if len == 0 { 0 } else { end })),
            None => prop_assert!(app_error(result).contains("PastTheEnd")),
        }
        // Nothing landed before the offset (a wrapped offset would have written at 0).
        let head = call(&b, "read_at", json!([0, 8])).unwrap();
        let before = (offset.min(8) as usize).min(head.as_array().unwrap().len());
        prop_assert!(head.as_array().unwrap()[..before].iter().all(|v| *v == json!(0)), "{head}");
    }
}

#[test]
fn a_transfer_that_would_overflow_the_payee_moves_nothing() {
    let rich = create("Account", json!({ "balance": u64::MAX }));
    let payer = create("Account", json!({ "balance": 10 }));
    let payee = serde_json::to_value(&rich).unwrap();
    let e = call(&payer, "transfer", json!([payee, 5])).unwrap_err();
    assert!(e.to_string().contains("overflows"), "{e}");
    assert_eq!(call(&payer, "balance", json!([])).unwrap(), json!(10), "the withdrawal was rolled back");
    assert_eq!(call(&rich, "balance", json!([])).unwrap(), json!(u64::MAX));
}
