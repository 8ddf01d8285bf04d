use serde_json::json;
use tests::{clouds_at, Node};

/// Each bad input: the exit code, a message that says what was wrong, and no change.
#[test]
fn bad_inputs_are_refused_clearly_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(1, dir.path());
    node.clouds(&["create", "Counter", "--name", "c"]).ok();
    node.clouds(&["invoke", "c.incr", "2"]).ok();
    let before = node.clouds(&["--json", "describe", "c"]).json();
    let objects = node.clouds(&["--json", "status"]).json()["objects"].clone();

    node.clouds(&["create", "Nope"]).fails(4, "unknown class `Nope`; this node has: Account, Blob, Counter");
    node.clouds(&["invoke", "c.nope"])
        .fails(4, "class `Counter` has no method `nope`; its methods are: get, incr, add_from");
    node.clouds(&["invoke", "c.incr"])
        .fails(4, "bad arguments for incr(by: i64) -> Result<i64, CounterError>: expected 1 argument, got 0");
    node.clouds(&["invoke", "c.incr", "1", "2"]).fails(4, "expected 1 argument, got 2");
    node.clouds(&["invoke", "c.incr", "abc"])
        .fails(4, "argument `by` (expected i64): invalid type: string \"abc\", expected i64");
    node.clouds(&["invoke", "c.incr", "1.5"]).fails(4, "argument `by` (expected i64)");
    node.clouds(&["create", "Counter", "--state", "{broken"]).fails(4, "initial state is not valid JSON");
    node.clouds(&["create", "Counter", "--state", r#"{"value": "x"}"#]).fails(4, "does not fit class `Counter`");
    node.clouds(&["invoke", "nothing/here.get"]).fails(3, "no object is bound to the name `/nothing/here`");
    node.clouds(&["invoke", "01a2012c-0000-8000-8000-000100000000.get"]).fails(3, "not found");
    // An id whose home node never existed: not found, not "node-17767 is unavailable".
    let made_up = clouds::ObjectId::new(clouds::NodeId(17767));
    node.clouds(&["invoke", &format!("{made_up}.get")]).fails(3, "not found");
    node.clouds(&["create", "Counter", "--name", "c"]).fails(8, "the name `/c` is already bound");
    node.clouds(&["create", "Counter", "--name", "c/x"]).fails(4, "`c` is a Counter, not a directory");
    node.clouds(&["create", "Counter", "--name", "bad name"]).fails(2, "contains ` `");
    node.clouds(&["invoke", "noMethod"]).fails(2, "is not TARGET.METHOD");
    node.clouds(&["invoke", "c.add_from", "c"]).fails(1, "re-entrant call");
    node.clouds(&["invoke", "c.incr", &i64::MAX.to_string()]).fails(7, "overflows a counter");
    let deep = "[".repeat(200) + &"]".repeat(200);
    node.clouds(&["invoke", "c.incr", &deep]).fails(4, "nested deeper than 128 levels");
    node.clouds(&["create", "Counter", "--state", r#"{"value": 1, "colour": "red"}"#])
        .fails(4, "has no field `colour`; its fields are: value");
    let long = "n".repeat(100_000);
    let run = node.clouds(&["invoke", &format!("{long}.get")]);
    assert!(run.code == 2 && run.stderr.contains("(100003 characters)") && run.stderr.len() < 400, "{run:?}");
    for (args, needle) in [
        (&["--deadline", "18446744073709551615", "status"][..], "is not in 1..=86400000"),
        (&["cap", "grant", "c", "--rights", "read", "--expires", "213503982334601d"][..], "too long"),
    ] {
        let run = node.clouds(args);
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        assert!(run.stderr.contains(needle) && !run.stderr.contains("panicked"), "{args:?}: {}", run.stderr);
    }
    let wallet = tempfile::tempdir().unwrap();
    clouds_at("127.0.0.1:1", wallet.path(), &["status"]).fails(6, "127.0.0.1:1 is unavailable");
    // Under --json, the error is a JSON object too, with its kind and exit code.
    let run = node.clouds(&["--json", "invoke", "c.nope"]);
    let error: serde_json::Value = serde_json::from_str(run.stderr.trim()).expect("a JSON error");
    assert_eq!(
        (error["error"]["kind"].clone(), error["error"]["exit_code"].clone()),
        (json!("no_such_method"), json!(4))
    );
    assert_eq!(run.code, 4);

    assert_eq!(node.clouds(&["--json", "describe", "c"]).json(), before, "the object changed");
    assert_eq!(node.clouds(&["--json", "status"]).json()["objects"], objects, "objects were created");
    assert_eq!(node.clouds(&["invoke", "c.get"]).json(), json!(2));
}

/// The daemon refuses bad flags and config with a clear message.
#[test]
fn objectd_refuses_bad_configuration() {
    let out = std::process::Command::new(tests::bin("objectd")).args(["--durability", "fsync"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected `power-loss`, `process-crash` or `buffered`"));
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("node.toml");
    std::fs::write(&cfg, "idd = 3\n").unwrap();
    let out = std::process::Command::new(tests::bin("objectd")).arg("--config").arg(&cfg).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field `idd`"));
    let out = std::process::Command::new(tests::bin("objectd")).args(["--labels", "gpu,,ssd"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("label `` must be non-empty"));
}
