//! Capabilities at system level: real nodes, the real `clouds` binary and the client
//! library. Every refusal is `Denied` (exit code 5) with the reason, and changes nothing.

use capability::{Grant, KeyPair, Link, Restrict, Rights, Token};
use clouds::{Cap, RawRef};
use protocol::wire::InitialState;
use serde_json::json;
use tests::{LocalCluster, Node};

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// Grant read to a second user, who reads and cannot write, delete or pass it on; a
/// method allow-list holds; a revocation ends every earlier capability.
#[test]
fn a_second_user_reads_with_a_read_grant_until_it_is_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(1, dir.path());
    let bob = dir.path().join("bob.wallet");
    let id = node.clouds(&["create", "Counter", "--name", "c"]).ok().to_string();
    let get = format!("{id}.get");
    let incr = format!("{id}.incr");
    node.clouds_as(&bob, &["invoke", &get]).fails(5, "no capability was presented");

    let bob_key = node.clouds_as(&bob, &["whoami"]).ok().to_string();
    let token = node.clouds(&["cap", "grant", "c", "--rights", "read", "--to", &bob_key]).ok().to_string();
    node.clouds_as(&bob, &["cap", "import", &token]).ok();
    let shown = node.clouds_as(&bob, &["--json", "cap", "show"]).json();
    assert_eq!(shown[0]["rights"], json!("read"));
    assert_eq!(shown[0]["yours"], json!(true));

    assert_eq!(node.clouds_as(&bob, &["invoke", &get]).json(), json!(0));
    node.clouds_as(&bob, &["invoke", &incr, "1"]).fails(5, "lacks the write right (it has read)");
    node.clouds_as(&bob, &["rm", &id]).fails(5, "lacks the admin right");
    let carol = KeyPair::generate().public().to_string();
    node.clouds_as(&bob, &["cap", "grant", &id, "--rights", "read", "--to", &carol]).fails(5, "delegate right");
    assert_eq!(node.clouds(&["invoke", "c.get"]).json(), json!(0), "nothing Bob tried changed anything");

    // Read and write, but only `get`: the allow-list holds even with the write right.
    let token = node
        .clouds(&["cap", "grant", "c", "--rights", "read,write", "--methods", "get", "--to", &bob_key])
        .ok()
        .to_string();
    node.clouds_as(&bob, &["cap", "import", &token]).ok();
    node.clouds_as(&bob, &["invoke", &incr, "1"]).fails(5, "method `incr` is not in the capability's allow-list (get)");

    node.clouds(&["cap", "revoke", "c"]).ok();
    node.clouds_as(&bob, &["invoke", &get]).fails(5, "was revoked (granted at epoch 0, the object is at epoch 1)");
    assert_eq!(node.clouds(&["invoke", "c.incr", "2"]).json(), json!(2), "the owner got a fresh capability");
    assert_eq!(node.clouds(&["--json", "describe", "c"]).json()["epoch"], json!(1));

    // The revocation was committed: it survives kill -9.
    let node = Node::start(1, &node.kill9());
    node.clouds_as(&bob, &["invoke", &get]).fails(5, "was revoked");
    assert_eq!(node.clouds(&["invoke", "c.get"]).json(), json!(2));
}

/// The attack matrix through the client library: each bad capability is refused with the
/// reason, by a client that holds nothing itself, and the object is untouched.
#[test]
fn forged_tampered_expired_and_foreign_capabilities_are_denied_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(1, dir.path());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let admin = node.client().await;
        let wallet = client::Wallet::open(&node.wallet).unwrap();
        let counter = admin.create("Counter", InitialState::Default).await.unwrap();
        let other = admin.create("Counter", InitialState::Default).await.unwrap();
        let owner = Token::from_cap(counter.cap.as_ref().unwrap()).unwrap();
        let narrowed = |r: Restrict| owner.attenuate(wallet.key(), r, wallet.public()).unwrap();
        let read_delegate =
            narrowed(Restrict { rights: Some(Rights::READ.union(Rights::DELEGATE)), ..Default::default() });
        let tamper = |token: &Token, change: &dyn Fn(&mut Grant)| {
            let mut t = token.clone();
            change(&mut t.links.last_mut().unwrap().grant);
            t.to_cap()
        };
        let mut flipped = owner.to_bytes();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x01;
        let mut amplified = read_delegate.clone();
        let child = read_delegate.attenuate(wallet.key(), Restrict::default(), wallet.public()).unwrap();
        let mut more = child.grant().clone();
        more.rights = Rights::ALL;
        amplified.links.push(Link { grant: more, signature: child.links[2].signature.clone() });
        let stranger = protocol::identity::Identity::ephemeral(clouds::NodeId(1));
        let foreign = Token::issue(
            stranger.cert.clone(),
            &stranger.key,
            Grant {
                object: counter.id,
                rights: Rights::ALL,
                methods: None,
                expires: None,
                epoch: 0,
                holder: wallet.public(),
            },
        );
        let expired = narrowed(Restrict { expires: Some(now() - 10), ..Default::default() });

        let wrong_object = format!("is for object {}", counter.id);
        let cases: Vec<(&str, RawRef, &str)> = vec![
            ("missing", RawRef::new(counter.id), "no capability was presented"),
            ("malformed", with(counter.id, Cap::from_bytes(vec![1, 2, 3])), "malformed"),
            ("forged signature", with(counter.id, Cap::from_bytes(flipped)), "signature of link 0 is not valid"),
            (
                "tampered rights",
                with(counter.id, tamper(&read_delegate, &|g| g.rights = Rights::ALL)),
                "link 1 is not valid",
            ),
            ("tampered object", with(other.id, tamper(&owner, &|g| g.object = other.id)), "signature of link 0"),
            ("tampered expiry", with(counter.id, tamper(&expired, &|g| g.expires = None)), "not valid"),
            ("tampered epoch", with(counter.id, tamper(&owner, &|g| g.epoch = 7)), "signature of link 0"),
            ("expired", with(counter.id, expired.to_cap()), "expired at"),
            ("wrong object", with(other.id, owner.to_cap()), &wrong_object),
            ("amplified", with(counter.id, amplified.to_cap()), "grants more than the link before it"),
            ("another cluster", with(counter.id, foreign.to_cap()), "not signed by this cluster's authority"),
        ];
        let stranger_client = client::Client::connect(node.addr).await.unwrap();
        for (case, target, reason) in cases {
            match stranger_client.invoke_json(&target, "incr", &[json!(1)], None).await {
                Err(clouds::InvokeError::Denied { reason: got }) => assert!(got.contains(reason), "{case}: {got}"),
                other => panic!("{case}: not denied: {other:?}"),
            }
        }
        assert_eq!(admin.invoke_json(&counter, "get", &[], None).await.unwrap(), json!(0), "nothing ran");

        // Revoked: the owner's old capability, presented by anyone, no longer works.
        let old = counter.clone();
        admin.revoke(counter.clone(), wallet.public()).await.unwrap();
        let err = stranger_client.invoke_json(&old, "get", &[], None).await.unwrap_err();
        assert!(err.to_string().contains("was revoked"), "{err}");
    });
}

fn with(id: clouds::ObjectId, cap: Cap) -> RawRef {
    RawRef { id, cap: Some(cap) }
}

/// References carry their capabilities through nested invocations across nodes; code in
/// an object narrows a reference before using it, and a narrowed reference cannot be
/// widened again. A transfer given a read-only payee is refused and rolled back.
#[test]
fn references_pass_access_through_nested_calls_attenuated() {
    let c = LocalCluster::up(2);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = c.client(1).await;
        let ctx = client.ctx();
        let on = |n: u16| protocol::Placement::On(clouds::NodeId(n));
        let a = client.create_placed("Relay", InitialState::Default, on(1)).await.unwrap();
        let b = client.create_placed("Relay", InitialState::Default, on(2)).await.unwrap();
        let call = |arg: RawRef| {
            let (client, a) = (client.clone(), a.clone());
            async move { client.invoke_json(&a, "narrow_then_use", &[serde_json::to_value(&arg).unwrap()], None).await }
        };
        let (visits, write) = serde_json::from_value::<(u64, String)>(call(b.clone()).await.unwrap()).unwrap();
        assert_eq!(visits, 0);
        assert!(write.contains("lacks the write right (it has read)"), "{write}");
        let err = call(RawRef::new(b.id)).await.unwrap_err();
        assert!(err.to_string().contains("no capability was presented"), "{err}");
        // Narrowed by the client (signed with its wallet's key), without delegate: the
        // object cannot narrow it further, let alone widen it.
        let read_only = ctx.attenuate_raw(&b, Rights::READ).unwrap();
        let err = call(read_only).await.unwrap_err();
        assert!(err.to_string().contains("delegate right"), "{err}");

        let state = |n: u64| InitialState::Json(format!(r#"{{"balance": {n}}}"#));
        let x = client.create_placed("Account", state(100), on(1)).await.unwrap();
        let y = client.create_placed("Account", state(0), on(2)).await.unwrap();
        let pay = |to: RawRef| {
            let (client, x) = (client.clone(), x.clone());
            async move {
                client.invoke_json(&x, "transfer", &[serde_json::to_value(&to).unwrap(), json!(10)], None).await
            }
        };
        pay(ctx.attenuate_raw(&y, Rights::WRITE).unwrap()).await.unwrap();
        let err = pay(ctx.attenuate_raw(&y, Rights::READ).unwrap()).await.unwrap_err();
        assert!(err.to_string().contains("lacks the write right"), "{err}");
        assert_eq!(client.invoke_json(&x, "balance", &[], None).await.unwrap(), json!(90), "the refused one rolled back");
        assert_eq!(client.invoke_json(&y, "balance", &[], None).await.unwrap(), json!(10));
    });
}

/// Names are protected like objects: reading a directory needs a capability for it, and a
/// binding hands out only what its binder shared.
#[test]
fn names_hand_out_what_the_binder_shared() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(1, dir.path());
    node.clouds(&["create", "Counter", "--name", "pub/c", "--share", "read"]).ok();
    node.clouds(&["create", "Counter", "--name", "priv/d"]).ok();
    let (bob, carol) = (dir.path().join("bob.wallet"), dir.path().join("carol.wallet"));
    // Everyone reads the names (the root directory is readable by every user): what a
    // name shares, anyone can use; what it does not, they cannot.
    assert_eq!(node.clouds_as(&carol, &["invoke", "pub/c.get"]).json(), json!(0));
    node.clouds_as(&carol, &["invoke", "priv/d.get"]).fails(5, "no capability was presented");

    let bob_key = node.clouds_as(&bob, &["whoami"]).ok().to_string();
    let token = node.clouds(&["cap", "grant", "/", "--rights", "read", "--to", &bob_key]).ok().to_string();
    node.clouds_as(&bob, &["cap", "import", &token]).ok();
    assert_eq!(node.clouds_as(&bob, &["invoke", "pub/c.get"]).json(), json!(0));
    node.clouds_as(&bob, &["invoke", "pub/c.incr", "1"]).fails(5, "lacks the write right");
    assert_eq!(node.clouds_as(&bob, &["--json", "ls", "pub"]).json()[0]["shared"], json!(true));
    node.clouds_as(&bob, &["invoke", "priv/d.get"]).fails(5, "no capability was presented");
    node.clouds_as(&bob, &["create", "Counter", "--name", "pub/x"]).fails(5, "lacks the write right");
    assert_eq!(node.clouds(&["--json", "ls", "pub"]).json().as_array().unwrap().len(), 1, "nothing was bound");

    // Bob may delete pub/c (admin) but not change pub: the name and the object both stay.
    // Given delete rights alone on pub/d, he deletes it by id.
    let token = node.clouds(&["cap", "grant", "pub/c", "--rights", "admin", "--to", &bob_key]).ok().to_string();
    node.clouds_as(&bob, &["cap", "import", &token]).ok();
    node.clouds_as(&bob, &["rm", "pub/c"]).fails(5, "lacks the write right");
    assert_eq!(node.clouds_as(&bob, &["invoke", "pub/c.get"]).json(), json!(0), "reads present the read one");
    let d = node.clouds(&["create", "Counter", "--name", "pub/d", "--share", "read"]).ok().to_string();
    let token = node.clouds(&["cap", "grant", "pub/d", "--rights", "admin", "--to", &bob_key]).ok().to_string();
    node.clouds_as(&bob, &["cap", "import", &token]).ok();
    node.clouds_as(&bob, &["rm", &d]).ok();
    node.clouds(&["invoke", &format!("{d}.get")]).fails(3, "not found");
    assert_eq!(node.clouds(&["invoke", "pub/c.get"]).json(), json!(0));
    node.clouds(&["rm", "pub/c"]).ok();
    node.clouds(&["invoke", "pub/c.get"]).fails(3, "pub/c");
}

/// A node started without `--admin` makes its starting user the administrator, so names
/// work at once; any other user reads the names, reaches by name an object they hold a
/// capability for, and gets a directory of their own from the administrator in one
/// command, in which they bind names.
#[test]
fn names_work_for_every_user() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_as_user(1, &dir.path().join("n1"));
    node.clouds(&["create", "Counter", "--name", "c1"]).ok();
    node.clouds(&["invoke", "c1.incr", "4"]).ok();
    let status = node.clouds(&["status"]).ok().to_string();
    assert!(status.contains("(you)"), "the starting user is the administrator: {status}");

    let bob = dir.path().join("bob-wallet");
    let bob_key = tests::wallet_key(&bob);
    let addr = node.addr.to_string();
    let as_bob = |args: &[&str]| tests::clouds_at(&addr, &bob, args);
    // Bob reads the names, but the object itself needs a capability.
    assert_eq!(as_bob(&["--json", "ls"]).json().as_array().unwrap().len(), 1);
    as_bob(&["invoke", "c1.get"]).fails(5, "denied");
    let token = node.clouds(&["cap", "grant", "c1", "--rights", "read", "--to", &bob_key]).ok().to_string();
    as_bob(&["cap", "import", &token]).ok();
    assert_eq!(as_bob(&["invoke", "c1.get"]).json(), json!(4), "by its name");
    as_bob(&["invoke", "c1.incr", "1"]).fails(5, "lacks the write right");
    // Binding at the root needs write on it.
    as_bob(&["create", "Counter", "--name", "mine"]).fails(5, "denied");

    let made = node.clouds(&["--json", "mkdir", "home/bob", "--for", &bob_key]).json();
    as_bob(&["cap", "import", made["token"].as_str().unwrap()]).ok();
    as_bob(&["create", "Counter", "--name", "home/bob/mine"]).ok();
    as_bob(&["invoke", "home/bob/mine.incr", "2"]).ok();
    assert_eq!(as_bob(&["invoke", "home/bob/mine.get"]).json(), json!(2));
    // The administrator's own objects stay out of Bob's reach.
    node.clouds(&["mkdir", "home/bob"]).fails(8, "already bound");
    node.clouds(&["invoke", "c1.get"]).ok();
}

/// A wallet trusts the cluster it first reached (the authority of the certificate that
/// node proved), and refuses a node of another cluster after that.
#[test]
fn a_wallet_refuses_a_node_of_another_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let (ours, theirs) = (Node::start(1, &dir.path().join("a")), Node::start(1, &dir.path().join("b")));
    let wallet = dir.path().join("carol.wallet");
    tests::clouds_at(&ours.addr.to_string(), &wallet, &["status"]).ok();
    assert!(wallet.join("authority").exists(), "trusted on first use");
    tests::clouds_at(&ours.addr.to_string(), &wallet, &["status"]).ok();
    tests::clouds_at(&theirs.addr.to_string(), &wallet, &["status"]).fails(5, "belongs to another cluster");
}
