//! The HTTP gateway of a real cluster, driven as curl would: calls with a capability in
//! `Authorization: Bearer`, refusals without one or with the wrong one, errors as JSON with
//! fitting statuses, names, creation, the OpenAPI description, the dashboard page and
//! Prometheus metrics that parse.

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::SocketAddr;
use tests::LocalCluster;

/// One HTTP/1.1 request; the status and the body.
fn http(addr: SocketAddr, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    let body = body.unwrap_or("");
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let status = answer.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("{answer}"));
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

fn json_of(answer: (u16, String)) -> (u16, Value) {
    let value = serde_json::from_str(&answer.1).unwrap_or_else(|e| panic!("not JSON ({e}): {}", answer.1));
    (answer.0, value)
}

/// Every line of Prometheus text is a comment or `name{labels} value` with a number.
fn parse_prometheus(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("not `series value`: {l}"));
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("not a number: {l}"));
            let name = series.split('{').next().unwrap();
            assert!(!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'), "{l}");
            (series.to_string(), value)
        })
        .collect()
}

#[test]
fn curl_calls_objects_with_capabilities_and_sees_the_cluster() {
    let c = LocalCluster::up(3);
    let http_file = std::fs::read_to_string(c.dir.path().join("http")).unwrap();
    let gateway: SocketAddr = http_file.lines().next().unwrap().split_once(' ').unwrap().1.parse().unwrap();
    let id = c.clouds(1, &["create", "Counter", "--name", "web/visits", "--on", "2"]).ok().to_string();
    let token = c.clouds(1, &["cap", "grant", "web/visits", "--rights", "read,write"]).ok().to_string();
    let other = c.clouds(1, &["create", "Counter", "--name", "web/other"]).ok().to_string();
    let other_token = c.clouds(1, &["cap", "grant", "web/other", "--rights", "read"]).ok().to_string();

    let (status, nodes) = json_of(http(gateway, "GET", "/v1/nodes", None, None));
    assert_eq!((status, nodes.as_array().map(Vec::len)), (200, Some(3)), "{nodes}");

    // A call by name and by id, through node 1 to the object on node 2.
    let incr = |token: Option<&str>, body: &str| {
        json_of(http(gateway, "POST", "/v1/objects/web/visits/incr", token, Some(body)))
    };
    assert_eq!(incr(Some(&token), "[5]"), (200, json!(5)));
    let (status, v) = json_of(http(gateway, "POST", &format!("/v1/objects/{id}/incr"), Some(&token), Some("[2]")));
    assert_eq!((status, v), (200, json!(7)));

    let (status, e) = incr(None, "[1]");
    assert_eq!((status, e["error"]["kind"].clone()), (401, json!("unauthorized")), "{e}");
    let (status, e) = incr(Some(&other_token), "[1]");
    assert_eq!((status, e["error"]["kind"].clone()), (403, json!("denied")), "{e}");
    let (status, e) = incr(Some(&token), r#"["many"]"#);
    assert_eq!((status, e["error"]["kind"].clone()), (400, json!("bad_args")), "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("incr(by: i64)"), "{e}");
    let (status, e) = incr(Some(&token), r#"{"by": 1}"#);
    assert_eq!(status, 400, "{e}");
    let (status, e) = json_of(http(gateway, "POST", "/v1/objects/web/nowhere/get", Some(&token), Some("[]")));
    assert_eq!((status, e["error"]["kind"].clone()), (404, json!("name_not_found")), "{e}");
    let (status, _) = json_of(http(gateway, "POST", "/v1/objects/web/visits/incr", Some("cap1.garbage"), Some("[1]")));
    assert_eq!(status, 403);

    let (status, traced) =
        json_of(http(gateway, "POST", "/v1/objects/web/visits/get?trace=1", Some(&token), Some("[]")));
    assert_eq!(
        (status, traced["result"].clone(), traced["path"][0]["node"].clone()),
        (200, json!(7), json!(2)),
        "{traced}"
    );
    assert_eq!(traced["trace_id"].as_str().map(str::len), Some(32), "{traced}");
    let (status, d) = json_of(http(gateway, "GET", "/v1/objects/web/visits", Some(&token), None));
    assert_eq!(
        (status, d["class"].clone(), d["node"].clone(), d["state"].clone()),
        (200, json!("Counter"), json!(2), json!({"value": 7}))
    );
    let (status, names) = json_of(http(gateway, "GET", "/v1/names/web", None, None));
    assert_eq!(status, 200);
    let listed: Vec<&str> = names.as_array().unwrap().iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert_eq!(listed, ["other", "visits"], "{names}");
    assert!(names.to_string().contains(&other));

    // Creation: the owner capability comes back, made out to the key given.
    let key = tests::wallet_key(&c.wallet());
    let (status, made) = json_of(http(
        gateway,
        "POST",
        "/v1/objects",
        None,
        Some(&format!(r#"{{"class": "Counter", "owner": "{key}", "state": {{"value": 40}}}}"#)),
    ));
    assert_eq!(status, 201, "{made}");
    let cap = made["capability"].as_str().unwrap();
    let (status, v) = json_of(http(
        gateway,
        "POST",
        &format!("/v1/objects/{}/incr", made["id"].as_str().unwrap()),
        Some(cap),
        Some("[2]"),
    ));
    assert_eq!((status, v), (200, json!(42)));
    let (status, e) =
        json_of(http(gateway, "POST", "/v1/objects", None, Some(r#"{"class": "Countr", "owner": "00"}"#)));
    assert_eq!(status, 400, "{e}");

    // Every object, for the administrator only (their capability for the root directory).
    let admin = c.clouds(1, &["cap", "grant", "/", "--rights", "read,admin"]).ok().to_string();
    let (status, all) = json_of(http(gateway, "GET", "/v1/objects?class=Counter&limit=2", Some(&admin), None));
    assert_eq!((status, all["objects"].as_array().map(Vec::len)), (200, Some(2)), "{all}");
    let next = all["next"].as_str().expect("a third counter is on the next page").to_string();
    let (_, rest) =
        json_of(http(gateway, "GET", &format!("/v1/objects?class=Counter&after={next}"), Some(&admin), None));
    assert_eq!((rest["objects"].as_array().map(Vec::len), rest["next"].clone()), (Some(1), json!(null)), "{rest}");
    let (status, on2) = json_of(http(gateway, "GET", "/v1/objects?node=2", Some(&admin), None));
    assert_eq!((status, on2["objects"][0]["id"].clone()), (200, json!(id)), "{on2}");
    let (status, e) = json_of(http(gateway, "GET", "/v1/objects", Some(&token), None));
    assert_eq!((status, e["error"]["kind"].clone()), (403, json!("denied")), "{e}");

    let (status, api) = json_of(http(gateway, "GET", "/v1/openapi.json", None, None));
    assert_eq!((status, api["openapi"].clone()), (200, json!("3.1.0")));
    assert!(api["paths"]["/v1/objects/{target}/incr"]["post"].is_object(), "{api}");
    assert!(api["components"]["schemas"]["Account.transfer.args"].is_object());

    let (status, page) = http(gateway, "GET", "/", None, None);
    assert!(status == 200 && page.contains("<title>Clouds</title>") && page.contains("/v1/nodes"), "{page}");
    let (status, hot) = json_of(http(gateway, "GET", "/v1/hot?limit=5", None, None));
    assert!(status == 200 && hot.is_array(), "{hot}");
    let (status, decisions) = json_of(http(gateway, "GET", "/v1/decisions", None, None));
    assert!(status == 200 && decisions.is_array(), "{decisions}");

    // Node 2 ran the calls: its metrics count them, by class, method and outcome.
    let node2: SocketAddr = http_file.lines().nth(1).unwrap().split_once(' ').unwrap().1.parse().unwrap();
    let (status, text) = http(node2, "GET", "/metrics", None, None);
    assert_eq!(status, 200);
    let series = parse_prometheus(&text);
    let ok = series.iter().find(|(s, _)| {
        s.starts_with("clouds_invocations_total") && s.contains("method=\"incr\"") && s.contains("outcome=\"ok\"")
    });
    assert_eq!(ok.map(|(_, v)| *v), Some(2.0), "{text}");
    assert!(series.iter().any(|(s, _)| s.starts_with("clouds_invocation_seconds_bucket")), "{text}");
    assert!(series.iter().any(|(s, v)| s.starts_with("clouds_peer_state") && *v == 2.0), "{text}");
    assert!(series.iter().any(|(s, _)| s.starts_with("clouds_store_bytes")), "{text}");
    // The other object's capability does not travel for this one: none was presented.
    let denied = series
        .iter()
        .find(|(s, _)| s.starts_with("clouds_capability_denials_total") && s.contains("reason=\"missing\""));
    assert_eq!(denied.map(|(_, v)| *v), Some(1.0), "refused where the object is: {text}");
}

/// The browser used for the dashboard test: `$CLOUDS_CHROMIUM`, else Debian's.
fn chromium() -> Option<std::path::PathBuf> {
    let path =
        std::env::var_os("CLOUDS_CHROMIUM").map(std::path::PathBuf::from).unwrap_or_else(|| "/usr/bin/chromium".into());
    path.exists().then_some(path)
}

/// Headless Chromium, as the machines here run it (no sandbox as root, no background
/// networking: the network is closed), with `args`; its stdout.
fn run_chromium(browser: &std::path::Path, profile: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
        .args(["--disable-background-networking", "--disable-component-update", "--disable-sync"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("run chromium");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The dashboard in a real browser: the page loads, its script asks the gateway, and the
/// three nodes and a named object appear; a screenshot is saved beside the test binaries
/// (README shows one). Needs Chromium (`.ci/run` installs Debian's); without one the test
/// says so and passes, unless `CLOUDS_REQUIRE_BROWSER` is set, as CI sets it.
#[test]
fn the_dashboard_shows_the_cluster_in_a_browser() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("CLOUDS_REQUIRE_BROWSER").is_none(),
            "no Chromium at /usr/bin/chromium or $CLOUDS_CHROMIUM"
        );
        eprintln!("skipped: no Chromium (apt-get install chromium), so the dashboard was not loaded in a browser");
        return;
    };
    let c = LocalCluster::up(3);
    let http_file = std::fs::read_to_string(c.dir.path().join("http")).unwrap();
    let gateway = http_file.lines().next().unwrap().split_once(' ').unwrap().1.to_string();
    let id = c.clouds(1, &["create", "Counter", "--name", "shown/on-the-dashboard", "--on", "3"]).ok().to_string();
    c.clouds(2, &["invoke", "shown/on-the-dashboard.incr", "1"]).ok();
    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://{gateway}/");
    let mut dom = String::new();
    for _ in 0..5 {
        dom = run_chromium(&browser, profile.path(), &["--virtual-time-budget=8000", "--dump-dom", &url]);
        if ["node-1", "node-2", "node-3", "shown/"].iter().all(|n| dom.contains(n)) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    for node in ["node-1", "node-2", "node-3"] {
        assert!(dom.contains(&format!("<td>{node}</td>")), "{node} in the nodes table: {dom}");
    }
    assert!(dom.contains("<td>shown/</td>"), "the object's directory is listed: {dom}");
    assert!(dom.contains(&format!("<td>{id}</td>")), "the object itself, among the busiest: {dom}");
    assert!(dom.contains(r#"<span id="error"></span>"#), "every request of the page succeeded: {dom}");
    // The trace view: a link that fills the form calls the object and shows the thread's path.
    let token = c.clouds(1, &["cap", "grant", "shown/on-the-dashboard", "--rights", "read"]).ok().to_string();
    let traced = format!("{url}?target=shown/on-the-dashboard&method=get&cap={token}");
    let mut dom = String::new();
    for _ in 0..5 {
        dom = run_chromium(&browser, profile.path(), &["--virtual-time-budget=8000", "--dump-dom", &traced]);
        if dom.contains("1 hops:") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert!(dom.contains("result: 1") && dom.contains("1 hops:") && dom.contains("node-3  Counter.get("), "{dom}");
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    run_chromium(
        &browser,
        profile.path(),
        &["--virtual-time-budget=8000", "--window-size=1280,900", &format!("--screenshot={}", shot.display()), &url],
    );
    assert!(std::fs::metadata(&shot).is_ok_and(|m| m.len() > 10_000), "a screenshot at {}", shot.display());
}
