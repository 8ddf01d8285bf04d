use serde_json::json;
use tests::Node;

/// The id a name is bound to, through the CLI.
fn node_id(node: &Node, name: &str) -> clouds::ObjectId {
    node.clouds(&["--json", "describe", name]).json()["id"].as_str().unwrap().parse().unwrap()
}

/// Creates named objects, invokes them (nested too), lists, describes, removes; stops the
/// node with SIGTERM and checks that a restarted node answers with the same state.
#[test]
fn round_trip_through_the_cli_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_with(1, dir.path(), &["--labels", "gpu,zone-a"]);
    let me = &node.clouds(&["--json", "nodes"]).json()[0];
    assert_eq!((me["id"].clone(), me["labels"].clone()), (json!(1), json!(["gpu", "zone-a"])));
    let a = node.clouds(&["create", "Counter", "--name", "counters/a"]).ok().to_string();
    node.clouds(&["create", "Counter", "--name", "/counters/b", "--state", r#"{"value": 10}"#]).ok();
    assert_eq!(node.clouds(&["invoke", "counters/a.incr", "5"]).json(), json!(5));
    assert_eq!(node.clouds(&["invoke", "counters/a.add_from", "counters/b"]).json(), json!(15));
    assert_eq!(node.clouds(&["invoke", &format!("{a}.get")]).json(), json!(15), "targets may be UUIDs");

    let ls = node.clouds(&["--json", "ls", "counters"]).json();
    assert_eq!(ls.as_array().unwrap().len(), 2);
    assert_eq!(ls[0]["name"], json!("a"));
    assert_eq!(ls[0]["id"], json!(a));
    assert!(node.clouds(&["ls"]).ok().contains("counters/"));

    let d = node.clouds(&["--json", "describe", "counters/a"]).json();
    assert_eq!(
        (d["class"].clone(), d["version"].clone(), d["state"].clone()),
        (json!("Counter"), json!(3), json!({"value": 15}))
    );
    let text = node.clouds(&["describe", "counters/a"]).ok().to_string();
    assert!(
        text.contains("incr(by: i64) -> Result<i64, CounterError>") && text.contains("add_from(other: Ref<Counter>)"),
        "{text}"
    );
    assert!(node.clouds(&["classes"]).ok().contains("transfer(to: Ref<Account>, amount: u64)"));

    node.clouds(&["create", "Register", "--name", "tmp/r"]).ok();
    node.clouds(&["rm", "tmp/r"]).ok();
    node.clouds(&["invoke", "tmp/r.get"]).fails(3, "no object is bound to the name `/tmp/r`");

    let data = node.terminate();
    let node = Node::start(1, &data);
    assert_eq!(node.clouds(&["invoke", "counters/a.get"]).json(), json!(15));
    assert_eq!(node.clouds(&["invoke", "counters/b.get"]).json(), json!(10));
    let status = node.clouds(&["--json", "status"]).json();
    assert_eq!(status["node"], json!(1));
}

/// Money moves between accounts by a thread that continues from one object into the
/// other; a failing transfer changes neither account.
#[test]
fn transfers_are_nested_invocations_and_fail_whole() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(1, dir.path());
    node.clouds(&["create", "Account", "--name", "bank/alice", "--state", r#"{"balance": 100}"#]).ok();
    node.clouds(&["create", "Account", "--name", "bank/bob"]).ok();
    assert_eq!(node.clouds(&["invoke", "bank/alice.transfer", "bank/bob", "30"]).json(), json!(70));
    node.clouds(&["invoke", "bank/alice.transfer", "bank/bob", "500"])
        .fails(7, "insufficient funds: balance is 70, asked for 500");
    node.clouds(&["invoke", "bank/alice.transfer", "bank/alice", "5"]).fails(7, "same account");
    // The method's own error type comes back typed through the client library.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = node.client().await;
        let alice = clouds::RawRef::new(node_id(&node, "bank/alice"));
        let err = client.invoke_json(&alice, "withdraw", &[json!(1_000)], None).await.unwrap_err();
        match err.app_detail::<stdobjects::AccountError>() {
            Some(stdobjects::AccountError::InsufficientFunds { balance: 70, requested: 1_000 }) => {}
            other => panic!("{other:?} from {err:?}"),
        }
    });
    assert_eq!(node.clouds(&["invoke", "bank/alice.balance"]).json(), json!(70));
    assert_eq!(node.clouds(&["invoke", "bank/bob.balance"]).json(), json!(30));
    // README's exactly-once example, as written: options after the arguments.
    assert_eq!(node.clouds(&["invoke", "bank/alice.deposit", "10", "--call-id", "dep-17"]).json(), json!(80));
    assert_eq!(node.clouds(&["invoke", "bank/alice.deposit", "10", "--call-id", "dep-17"]).json(), json!(80), "once");
    assert_eq!(node.clouds(&["invoke", "bank/alice.balance"]).json(), json!(80));
}

/// `clouds invoke a/b/c.incr` costs one request once the wallet holds the root directory's
/// capability: the node resolves the path with the capabilities that travel with it.
/// Resolving step by step, as before, costs a status call, one call per path component and
/// the invocation. A wallet with no capability for the root resolves nothing by name.
#[test]
fn a_call_by_name_is_one_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(1, dir.path());
    node.clouds(&["create", "Counter", "--name", "a/b/c"]).ok();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = node.client().await;
        let path: naming::Path = "a/b/c".parse().unwrap();
        let before = client.requests_sent();
        let (value, _) = client.invoke_path_json(&path, "incr", &[json!(2)], None, false).await.unwrap();
        assert_eq!((value, client.requests_sent() - before), (json!(2), 1));

        let before = client.requests_sent();
        let root = clouds::RawRef::new(client.status().await.unwrap().root);
        let entry = naming::resolve(&client.ctx(), &root, &path).await.unwrap();
        assert_eq!(client.invoke_json(&entry.raw(), "incr", &[json!(3)], None).await.unwrap(), json!(5));
        assert_eq!(client.requests_sent() - before, 5, "status, three lookups, the call");

        let stranger = client::Client::connect(node.addr).await.unwrap();
        let denied = stranger.invoke_path_json(&path, "get", &[], None, false).await.unwrap_err();
        assert!(matches!(denied, clouds::InvokeError::Denied { .. }), "{denied}");
    });
    assert_eq!(node.clouds(&["invoke", "a/b/c.get"]).json(), json!(5));
}

/// `clouds --version` names clouds; a reader that closes stdout early ends a command
/// quietly (`clouds classes | head`), with no panic and no backtrace.
#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(1, dir.path());
    assert!(node.clouds(&["--version"]).ok().starts_with("clouds "));
    let mut child = std::process::Command::new(tests::bin("clouds"))
        .args(["--node", &node.addr.to_string(), "classes"])
        .env("CLOUDS_WALLET", &node.wallet)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !stderr.contains("panicked"), "{:?}: {stderr}", out.status);
}

/// `clouds objects` lists every object, named or not, in pages that `--after` continues
/// without a gap or a repeat; `--class` filters; `describe` names an object's first pages;
/// only the administrator may list, and `rm` says what it deleted.
#[test]
fn objects_are_listed_named_or_not_in_pages() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(1, dir.path());
    let named = node.clouds(&["create", "Counter", "--name", "c/one"]).ok().to_string();
    let map = node.clouds(&["create", "Map"]).ok().to_string();
    for key in ["apple", "banana", "cherry", "date", "elder", "fig", "grape"] {
        node.clouds(&["invoke", &format!("{map}.put"), key, "1"]).ok();
    }
    let all = node.clouds(&["--json", "objects"]).json();
    let ids: Vec<String> =
        all["objects"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap().into()).collect();
    assert!(ids.contains(&named) && ids.contains(&map), "{all}");
    assert_eq!(all["next"], json!(null));
    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..ids.len() + 1 {
        let mut args = vec!["--json", "objects", "--limit", "1"];
        if let Some(a) = &after {
            args.extend(["--after", a.as_str()]);
        }
        let page = node.clouds(&args).json();
        paged.extend(page["objects"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap().to_string()));
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(paged, ids, "pages of one, in id order, are the whole listing");
    let maps = node.clouds(&["--json", "objects", "--class", "Map"]).json();
    let entry = &maps["objects"][0];
    assert_eq!((maps["objects"].as_array().unwrap().len(), entry["pages"].clone()), (1, json!(7)), "{maps}");
    let text = node.clouds(&["objects", "--class", "Counter"]).ok().to_string();
    assert!(text.contains(&named) && text.contains("1 objects"), "{text}");

    let described = node.clouds(&["describe", &map]).ok().to_string();
    assert!(described.contains("pages:    apple, banana, cherry, date, elder, ..."), "{described}");

    let stranger = dir.path().join("stranger-wallet");
    node.clouds_as(&stranger, &["objects"]).fails(5, "only the cluster's administrator may list every object");
    node.clouds(&["objects", "--limit", "0"]).fails(4, "1 to 10000");
    let removed = node.clouds(&["--json", "rm", &map]).json();
    assert_eq!(removed, json!({ "deleted": map }));
}

/// What a good CLI does for the person at the keyboard: a typo in a method, class, name or
/// node is answered with the likely word; arguments and states come from files (`@FILE`,
/// here 3 MB, past what a command line may hold) or stdin (`-`); host names work as
/// addresses; completions print for each shell.
#[test]
fn typos_get_suggestions_and_inputs_come_from_files_or_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(1, dir.path());
    node.clouds(&["create", "Counter", "--name", "counters/visits"]).ok();
    node.clouds(&["invoke", "counters/visits.icnr", "1"]).fails(4, "did you mean `incr`?");
    node.clouds(&["create", "Countr"]).fails(4, "did you mean `Counter`?");
    node.clouds(&["invoke", "counters/visist.get"]).fails(3, "did you mean `/counters/visits`?");
    node.clouds(&["drain", "node-9"]).fails(2, "no node `node-9` in the cluster");
    node.clouds(&["invoke", "counters/nothing-like-it.get"]).fails(3, "no object is bound");

    let big = "x".repeat(3 << 20);
    let file = dir.path().join("big.json");
    std::fs::write(&file, serde_json::to_string(&big).unwrap()).unwrap();
    node.clouds(&["create", "Register", "--name", "r", "--state", r#"{"value": null}"#]).ok();
    node.clouds(&["invoke", "r.set", &format!("@{}", file.display())]).ok();
    assert_eq!(node.clouds(&["invoke", "r.get"]).json().as_str().map(str::len), Some(3 << 20));
    let state = dir.path().join("state.json");
    std::fs::write(&state, r#"{"value": 41}"#).unwrap();
    node.clouds(&["create", "Counter", "--name", "from-file", "--state", &format!("@{}", state.display())]).ok();
    assert_eq!(node.clouds(&["invoke", "from-file.incr", "1"]).json(), json!(42));
    node.clouds(&["invoke", "r.set", "@@literal"]).ok();
    assert_eq!(node.clouds(&["invoke", "r.get"]).json(), json!("@literal"));
    node.clouds(&["invoke", "r.set", "@/no/such/file"]).fails(2, "cannot read `/no/such/file`");

    let mut piped = std::process::Command::new(tests::bin("clouds"))
        .args(["--node", &format!("localhost:{}", node.addr.port()), "invoke", "r.set", "-"])
        .env("CLOUDS_WALLET", &node.wallet)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    piped.stdin.take().unwrap().write_all(b"[1, 2, 3]\n").unwrap();
    assert!(piped.wait().unwrap().success());
    assert_eq!(node.clouds(&["invoke", "r.get"]).json(), json!([1, 2, 3]), "the argument came from stdin");
    let by_name = tests::clouds_at(&format!("localhost:{}", node.addr.port()), &node.wallet, &["invoke", "r.get"]);
    assert_eq!(by_name.json(), json!([1, 2, 3]), "a host name is an address");
    tests::clouds_at("localhost", &node.wallet, &["status"]).fails(2, "expected HOST:PORT");

    for shell in ["bash", "zsh", "fish"] {
        let script = node.clouds(&["completions", shell]).ok().to_string();
        assert!(script.contains("invoke") && script.contains("migrate"), "{shell}: {script}");
    }
}

/// Every objectd setting can come from an `OBJECTD_*` variable (host names too), checked as
/// the config file's are; `--log-format json` writes one JSON object per line, with no
/// colour codes, and a refused invocation is logged at debug with its reason.
#[test]
fn objectd_reads_its_settings_from_the_environment_and_logs_json() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let refused = std::process::Command::new(tests::bin("objectd"))
        .env("OBJECTD_DATA", dir.path().join("bad"))
        .env("OBJECTD_CACHE_OBJECTS", "0")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("invalid config: cache_objects must be at least 1"), "{said}");

    let wallet = dir.path().join("wallet");
    let mut node = std::process::Command::new(tests::bin("objectd"))
        .env("OBJECTD_ID", "4")
        .env("OBJECTD_LISTEN", "localhost:0")
        .env("OBJECTD_DATA", dir.path().join("data"))
        .env("OBJECTD_ADMIN", tests::wallet_key(&wallet))
        .env("OBJECTD_LOG_FORMAT", "json")
        .env("OBJECTD_REBALANCE", "false")
        .env("RUST_LOG", "debug")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(node.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(first.starts_with("objectd node-4 listening on 127.0.0.1:"), "{first}");
    let addr = first.trim().rsplit(' ').next().unwrap().to_string();
    tests::clouds_at(&addr, &wallet, &["create", "Counter", "--name", "c"]).ok();
    tests::clouds_at(&addr, &wallet, &["invoke", "c.nope"]).fails(4, "has no method `nope`");
    let _ = node.kill();
    let out = node.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!log.contains('\u{1b}'), "no colour codes off a terminal");
    let lines: Vec<serde_json::Value> =
        log.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    let refusal = lines
        .iter()
        .find(|l| l["fields"]["message"].as_str().is_some_and(|m| m.starts_with("refused:")))
        .unwrap_or_else(|| panic!("no refusal in {log}"));
    assert_eq!(refusal["level"], json!("DEBUG"));
    assert_eq!(refusal["fields"]["kind"], json!("no_such_method"), "{refusal}");
}
