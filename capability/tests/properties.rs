//! Property: no sequence of attenuations yields more than the root grant, and every
//! sequence the holders could sign verifies.

use capability::verify::verify_chain;
use capability::{Grant, KeyPair, NodeCert, Restrict, Rights, Token};
use clouds::{NodeId, ObjectId};
use proptest::prelude::*;

const METHODS: [&str; 4] = ["get", "set", "incr", "drop"];

fn restrict() -> impl Strategy<Value = Restrict> {
    (
        proptest::option::of(0u8..32),
        proptest::option::of(proptest::collection::vec(0usize..4, 0..4)),
        proptest::option::of(0u64..1_000),
    )
        .prop_map(|(rights, methods, expires)| Restrict {
            // Keep delegate most of the time so that chains get long.
            rights: rights.map(|r| {
                let r: Rights = rights_of(r);
                if r.contains(Rights::READ) {
                    r.union(Rights::DELEGATE)
                } else {
                    r
                }
            }),
            methods: methods.map(|m| m.into_iter().map(|i| METHODS[i].to_string()).collect()),
            expires,
        })
}

fn rights_of(bits: u8) -> Rights {
    let all = [Rights::READ, Rights::WRITE, Rights::ADMIN, Rights::DELEGATE, Rights::MIGRATE];
    all.iter().enumerate().filter(|(i, _)| bits & (1 << i) != 0).fold(Rights::NONE, |acc, (_, r)| acc.union(*r))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn attenuation_never_amplifies(steps in proptest::collection::vec(restrict(), 1..6), root_expiry in proptest::option::of(0u64..1_000)) {
        let (authority, node) = (KeyPair::generate(), KeyPair::generate());
        let cert = NodeCert::issue(&authority, NodeId(1), node.public());
        let mut holder = KeyPair::generate();
        let root = Grant {
            object: ObjectId::new(NodeId(1)),
            rights: Rights::ALL,
            methods: None,
            expires: root_expiry,
            epoch: 3,
            holder: holder.public(),
        };
        let mut token = Token::issue(cert, &node, root.clone());
        let mut previous = root.clone();
        for step in steps {
            let next = KeyPair::generate();
            match token.attenuate(&holder, step, next.public()) {
                Ok(t) => {
                    let g = t.grant().clone();
                    // Never more than the link before, hence never more than the root.
                    prop_assert!(previous.rights.contains(g.rights));
                    prop_assert!(root.rights.contains(g.rights));
                    if let Some(p) = &previous.methods {
                        let child = g.methods.clone().expect("a listed parent keeps a list");
                        prop_assert!(child.iter().all(|m| p.contains(m)));
                    }
                    if let Some(e) = previous.expires {
                        prop_assert!(g.expires.is_some_and(|c| c <= e));
                    }
                    prop_assert_eq!(g.epoch, root.epoch);
                    prop_assert_eq!(g.object, root.object);
                    prop_assert!(verify_chain(&t, &authority.public()).is_ok());
                    previous = g;
                    token = t;
                    holder = next;
                }
                // Refused: the token must be unchanged and still valid.
                Err(_) => prop_assert!(verify_chain(&token, &authority.public()).is_ok()),
            }
        }
    }
}
