//! The capability attack matrix, at the level of tokens: each attack is refused with the
//! reason that names the check it failed; the normal paths work.

use capability::verify::{check, verify_chain};
use capability::{Denied, Grant, KeyPair, NodeCert, Restrict, Rights, Token};
use clouds::{NodeId, ObjectId};

const NOW: u64 = 1_800_000_000;

struct World {
    authority: KeyPair,
    node: KeyPair,
    cert: NodeCert,
    owner: KeyPair,
    object: ObjectId,
}

fn world() -> World {
    let (authority, node, owner) = (KeyPair::generate(), KeyPair::generate(), KeyPair::generate());
    let cert = NodeCert::issue(&authority, NodeId(1), node.public());
    World { authority, node, cert, owner, object: ObjectId::new(NodeId(1)) }
}

impl World {
    fn owner_token(&self) -> Token {
        self.owner_token_for(self.object)
    }

    fn owner_token_for(&self, object: ObjectId) -> Token {
        let grant =
            Grant { object, rights: Rights::ALL, methods: None, expires: None, epoch: 0, holder: self.owner.public() };
        Token::issue(self.cert.clone(), &self.node, grant)
    }

    /// Verifies `token` for calling `method` (needing `needed`) on the world's object.
    fn allows(&self, token: &Token, needed: Rights, method: &str) -> Result<(), Denied> {
        let verified = verify_chain(token, &self.authority.public())?;
        check(&verified.grant, self.object, 0, needed, method, NOW)
    }
}

#[test]
fn the_owner_can_do_everything() {
    let w = world();
    let t = w.owner_token();
    assert_eq!(w.allows(&t, Rights::READ, "get"), Ok(()));
    assert_eq!(w.allows(&t, Rights::WRITE, "incr"), Ok(()));
    assert_eq!(verify_chain(&t, &w.authority.public()).unwrap().issuer, NodeId(1));
}

#[test]
fn read_only_for_a_second_user_reads_and_cannot_write() {
    let w = world();
    let bob = KeyPair::generate();
    let ro = w
        .owner_token()
        .attenuate(&w.owner, Restrict { rights: Some(Rights::READ), ..Default::default() }, bob.public())
        .unwrap();
    assert_eq!(w.allows(&ro, Rights::READ, "get"), Ok(()));
    assert_eq!(w.allows(&ro, Rights::WRITE, "incr"), Err(Denied::Right { needed: "write".into(), has: "read".into() }));
    // Bob cannot pass it on: it lacks delegate.
    let carol = KeyPair::generate();
    assert_eq!(ro.attenuate(&bob, Restrict::default(), carol.public()), Err(Denied::NotDelegable { link: 1 }));
}

#[test]
fn a_forged_signature_is_refused() {
    let w = world();
    let forger = KeyPair::generate();
    let mut t = w.owner_token();
    t.links[0].signature = forger.sign(b"anything");
    assert_eq!(w.allows(&t, Rights::READ, "get"), Err(Denied::Signature { link: 0 }));
    // A whole token signed by a node key the authority never certified.
    let rogue = Token::issue(w.cert.clone(), &forger, w.owner_token().grant().clone());
    assert_eq!(w.allows(&rogue, Rights::READ, "get"), Err(Denied::Signature { link: 0 }));
}

#[test]
fn tampering_with_any_field_breaks_the_signature() {
    let w = world();
    let base = w.owner_token().attenuate(
        &w.owner,
        Restrict { rights: Some(Rights::READ), methods: Some(vec!["get".into()]), expires: Some(NOW + 60) },
        KeyPair::generate().public(),
    );
    let base = base.unwrap();
    type Tamper = Box<dyn Fn(&mut Grant)>;
    let tampers: Vec<(&str, Tamper)> = vec![
        ("rights", Box::new(|g| g.rights = Rights::ALL)),
        ("object", Box::new(|g| g.object = ObjectId::new(NodeId(1)))),
        ("expiry", Box::new(|g| g.expires = Some(NOW + 1_000_000))),
        ("epoch", Box::new(|g| g.epoch = 7)),
        ("methods", Box::new(|g| g.methods = Some(vec!["get".into(), "incr".into()]))),
        ("holder", Box::new(|g| g.holder = KeyPair::generate().public())),
    ];
    for (what, tamper) in tampers {
        let mut t = base.clone();
        tamper(&mut t.links[1].grant);
        let err = verify_chain(&t, &w.authority.public()).unwrap_err();
        assert!(matches!(err, Denied::Signature { link: 1 } | Denied::Amplified { link: 1, .. }), "{what}: {err}");
    }
}

#[test]
fn expired_revoked_and_wrong_object_are_refused() {
    let w = world();
    let short = w
        .owner_token()
        .attenuate(&w.owner, Restrict { expires: Some(NOW - 1), ..Default::default() }, w.owner.public())
        .unwrap();
    assert_eq!(w.allows(&short, Rights::READ, "get"), Err(Denied::Expired { expired: NOW - 1, now: NOW }));
    let verified = verify_chain(&w.owner_token(), &w.authority.public()).unwrap();
    assert_eq!(
        check(&verified.grant, w.object, 1, Rights::READ, "get", NOW),
        Err(Denied::Revoked { granted: 0, current: 1 })
    );
    let other = ObjectId::new(NodeId(1));
    assert_eq!(
        check(&verified.grant, other, 0, Rights::READ, "get", NOW),
        Err(Denied::WrongObject { granted: w.object, asked: other })
    );
}

#[test]
fn attenuation_cannot_amplify() {
    let w = world();
    let bob = KeyPair::generate();
    let ro = w.owner_token().attenuate(
        &w.owner,
        Restrict {
            rights: Some(Rights::READ.union(Rights::DELEGATE)),
            methods: Some(vec!["get".into()]),
            expires: Some(NOW + 60),
        },
        bob.public(),
    );
    let ro = ro.unwrap();
    let carol = KeyPair::generate().public();
    let asks = [
        Restrict { rights: Some(Rights::WRITE), ..Default::default() },
        Restrict { methods: Some(vec!["get".into(), "incr".into()]), ..Default::default() },
    ];
    for ask in asks {
        assert!(matches!(ro.attenuate(&bob, ask, carol), Err(Denied::Amplified { link: 2, .. })));
    }
    // A later expiry is capped at the parent's, never extended.
    let capped = ro.attenuate(&bob, Restrict { expires: Some(NOW + 1_000), ..Default::default() }, carol).unwrap();
    assert_eq!(capped.grant().expires, Some(NOW + 60));
    // A child signed by hand with more rights than its parent is refused by verification.
    let mut forged = ro.clone();
    let mut grant = ro.grant().clone();
    grant.rights = Rights::ALL;
    grant.holder = carol;
    let message_forger = ro.attenuate(&bob, Restrict::default(), carol).unwrap();
    forged.links.push(capability::Link { grant, signature: message_forger.links[2].signature.clone() });
    assert!(matches!(verify_chain(&forged, &w.authority.public()), Err(Denied::Amplified { link: 2, .. })));
    // Only the holder can attenuate.
    assert_eq!(ro.attenuate(&w.owner, Restrict::default(), carol), Err(Denied::NotHolder));
}

#[test]
fn another_clusters_authority_is_refused() {
    let (w, stranger) = (world(), world());
    assert_eq!(w.allows(&stranger.owner_token(), Rights::READ, "get"), Err(Denied::OtherCluster));
}

#[test]
fn the_method_allow_list_holds() {
    let w = world();
    let only_get = w.owner_token().attenuate(
        &w.owner,
        Restrict { methods: Some(vec!["get".into()]), ..Default::default() },
        w.owner.public(),
    );
    let only_get = only_get.unwrap();
    assert_eq!(w.allows(&only_get, Rights::READ, "get"), Ok(()));
    assert_eq!(
        w.allows(&only_get, Rights::WRITE, "incr"),
        Err(Denied::Method { method: "incr".into(), allowed: "get".into() })
    );
}

#[test]
fn text_and_binary_forms_round_trip_and_refuse_garbage() {
    let w = world();
    let t = w
        .owner_token()
        .attenuate(&w.owner, Restrict { rights: Some(Rights::READ), ..Default::default() }, w.owner.public())
        .unwrap();
    let text = t.to_text();
    assert!(text.starts_with("cap1."));
    assert_eq!(Token::from_text(&text).unwrap(), t);
    assert_eq!(Token::from_bytes(&t.to_bytes()).unwrap(), t);
    assert_eq!(Token::from_text("cap1.!!!"), Err(Denied::Malformed));
    assert_eq!(Token::from_text("hello"), Err(Denied::Malformed));
    let mut bytes = t.to_bytes();
    bytes.push(0);
    assert_eq!(Token::from_bytes(&bytes), Err(Denied::Malformed), "trailing bytes");
    let mut v2 = t.to_bytes();
    v2[0] = 2;
    assert_eq!(Token::from_bytes(&v2), Err(Denied::Version { found: 2 }));
}

/// Flipping any single bit of a token's binary form makes it invalid: it no longer
/// decodes, or its chain no longer verifies.
#[test]
fn flipping_any_bit_makes_a_token_invalid() {
    let w = world();
    let t = w.owner_token().attenuate(
        &w.owner,
        Restrict {
            rights: Some(Rights::READ.union(Rights::DELEGATE)),
            methods: Some(vec!["get".into()]),
            expires: Some(NOW + 60),
        },
        KeyPair::generate().public(),
    );
    let bytes = t.unwrap().to_bytes();
    for bit in 0..bytes.len() * 8 {
        let mut flipped = bytes.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        if let Ok(token) = Token::from_bytes(&flipped) {
            assert!(verify_chain(&token, &w.authority.public()).is_err(), "flipping bit {bit} left a valid token");
        }
    }
}

/// Owner capabilities issued in one batch (one ed25519 signature for all): each verifies
/// alone and for its own object only, passes on like any other, and neither a grant nor a
/// signature moved between tokens of the batch verifies; every bit of one matters.
#[test]
fn tokens_issued_in_one_batch_each_hold_alone_and_only_for_their_own_grant() {
    let w = world();
    let objects: Vec<ObjectId> = (0..7).map(|_| ObjectId::new(NodeId(1))).collect();
    let grants = objects
        .iter()
        .map(|&object| Grant {
            object,
            rights: Rights::ALL,
            methods: None,
            expires: None,
            epoch: 0,
            holder: w.owner.public(),
        })
        .collect();
    let tokens = Token::issue_batch(&w.cert, &w.node, grants);
    let authority = w.authority.public();
    for (token, object) in tokens.iter().zip(&objects) {
        let grant = verify_chain(token, &authority).unwrap().grant;
        assert_eq!(check(&grant, *object, 0, Rights::WRITE, "incr", NOW), Ok(()));
        let elsewhere = objects.iter().find(|o| *o != object).unwrap();
        assert!(matches!(check(&grant, *elsewhere, 0, Rights::READ, "get", NOW), Err(Denied::WrongObject { .. })));
        // Passed on, read-only, it verifies through the batched link.
        let bob = KeyPair::generate();
        let ro = token
            .attenuate(&w.owner, Restrict { rights: Some(Rights::READ), ..Default::default() }, bob.public())
            .unwrap();
        assert_eq!(verify_chain(&ro, &authority).unwrap().grant.rights, Rights::READ);
    }
    // Another token's grant under this token's signature, and the other way round.
    let mut swapped = tokens[0].clone();
    swapped.links[0].grant = tokens[1].grant().clone();
    assert_eq!(verify_chain(&swapped, &authority), Err(Denied::Signature { link: 0 }));
    let mut swapped = tokens[0].clone();
    swapped.links[0].signature = tokens[1].links[0].signature.clone();
    assert_eq!(verify_chain(&swapped, &authority), Err(Denied::Signature { link: 0 }));
    // A batch signed by a key the authority never certified.
    let rogue =
        Token::issue_batch(&w.cert, &KeyPair::generate(), vec![tokens[0].grant().clone(), tokens[1].grant().clone()]);
    assert_eq!(verify_chain(&rogue[0], &authority), Err(Denied::Signature { link: 0 }));
    let bytes = tokens[3].to_bytes();
    for bit in 0..bytes.len() * 8 {
        let mut flipped = bytes.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        if let Ok(token) = Token::from_bytes(&flipped) {
            assert!(verify_chain(&token, &authority).is_err(), "flipping bit {bit} left a valid token");
        }
    }
    // One grant alone: the plain form, as `issue` makes it.
    let single = Token::issue_batch(&w.cert, &w.node, vec![tokens[0].grant().clone()]);
    assert_eq!(single[0], w.owner_token_for(objects[0]));
}

/// A token longer than the encoder's stack buffer (a long chain with a long method list)
/// encodes, decodes and verifies like a short one.
#[test]
fn a_long_token_round_trips_and_verifies() {
    let w = world();
    let methods: Vec<String> = (0..40).map(|i| format!("method_number_{i}")).collect();
    let (mut token, mut holder) = (w.owner_token(), KeyPair::generate());
    token =
        token.attenuate(&w.owner, Restrict { methods: Some(methods), ..Default::default() }, holder.public()).unwrap();
    for _ in 0..6 {
        let next = KeyPair::generate();
        token = token.attenuate(&holder, Restrict::default(), next.public()).unwrap();
        holder = next;
    }
    let bytes = token.to_bytes();
    assert!(bytes.len() > 1024, "{} bytes", bytes.len());
    let back = Token::from_bytes(&bytes).unwrap();
    assert_eq!(back, token);
    assert_eq!(w.allows(&back, Rights::READ, "method_number_39"), Ok(()));
}
