//! Capabilities at the door: the check every invocation passes before anything runs, and
//! the capabilities this node issues.
//!
//! The decisions are the `capability` crate's pure functions (`verify_chain`, `check`);
//! this adds a cache of verified chains, keyed by the token's exact bytes, so that the
//! signatures of a token are checked once and each later call costs a map lookup and the
//! per-call checks (object, epoch, expiry, right, method); and a set of the node
//! certificates found signed by the authority (one per node), so that a new token costs
//! only its own links' signatures; and the batch roots found signed, so that of the
//! capabilities signed in one batch only the first presented costs an ed25519 check.
//!
//! Owner capabilities for creations are signed by one task, in batches
//! (`issue_owner_batched`): the requests that arrive while a batch is being signed go in
//! the next, up to `capability::batch::MAX_BATCH` under one ed25519 signature. Alone, a
//! request is signed at once, as `issue_owner` would.

use capability::batch::{Signed, MAX_BATCH};
use capability::verify::{check, verify_links_by};
use capability::{Denied, Grant, NodeCert, PublicKey, Restrict, Token};
use clouds::{Cap, InvokeError, ObjectId, Rights};
use lru::LruCache;
use protocol::Identity;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::{mpsc, oneshot};

/// How many verified chains (and node certificates) the caches keep; beyond, the least
/// recently used goes.
const CACHE_ENTRIES: NonZeroUsize = NonZeroUsize::new(4096).expect("not zero");

pub struct Guard {
    identity: Arc<Identity>,
    /// `false` only in benchmark builds measuring what the checks cost.
    enforce: bool,
    /// std `Mutex`es: one map operation at a time, never across an `.await`.
    verified: Mutex<LruCache<Vec<u8>, Grant>>,
    certs: Mutex<LruCache<NodeCert, ()>>,
    /// Batch roots found signed (key, signature, root): the batch's other capabilities
    /// need no ed25519 check of their own.
    roots: Mutex<LruCache<Vec<u8>, ()>>,
    /// The batching signer's queue, started at the first batched request.
    signer: OnceLock<mpsc::UnboundedSender<Signing>>,
}

/// A grant to sign, and where its capability goes.
type Signing = (Grant, oneshot::Sender<Cap>);

/// A denial's reason as a metric label.
fn denial_kind(d: &Denied) -> &'static str {
    match d {
        Denied::Missing => "missing",
        Denied::Malformed | Denied::Version { .. } => "malformed",
        Denied::OtherCluster => "other_cluster",
        Denied::Signature { .. } => "signature",
        Denied::NotDelegable { .. } | Denied::Amplified { .. } | Denied::NotHolder => "delegation",
        Denied::WrongObject { .. } => "wrong_object",
        Denied::Expired { .. } => "expired",
        Denied::Revoked { .. } => "revoked",
        Denied::Right { .. } => "right",
        Denied::Method { .. } => "method",
    }
}

/// Unix time in seconds.
fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Guard {
    pub fn new(identity: Arc<Identity>) -> Guard {
        Guard {
            identity,
            enforce: true,
            verified: Mutex::new(LruCache::new(CACHE_ENTRIES)),
            certs: Mutex::new(LruCache::new(CACHE_ENTRIES)),
            roots: Mutex::new(LruCache::new(CACHE_ENTRIES)),
            signer: OnceLock::new(),
        }
    }

    /// A guard that lets every call through: only for measuring the checks' cost.
    #[cfg(feature = "unchecked")]
    pub fn unchecked(identity: Arc<Identity>) -> Guard {
        Guard { enforce: false, ..Guard::new(identity) }
    }

    pub fn identity(&self) -> &Arc<Identity> {
        &self.identity
    }

    /// The grant `cap` carries, its chain checked back to this cluster's authority.
    pub fn grant(&self, cap: Option<&Cap>) -> Result<Grant, Denied> {
        let cap = cap.ok_or(Denied::Missing)?;
        if let Some(g) = self.verified.lock().expect("cache mutex").get(cap.as_bytes()) {
            return Ok(g.clone());
        }
        let token = Token::from_cap(cap)?;
        let known = self.certs.lock().expect("certs mutex").get(&token.cert).is_some();
        if !known {
            if !token.cert.is_signed_by(&self.identity.authority) {
                return Err(Denied::OtherCluster);
            }
            self.certs.lock().expect("certs mutex").put(token.cert.clone(), ());
        }
        let grant = verify_links_by(&token, |key, signed| self.signed_by(key, signed))?.grant;
        self.verified.lock().expect("cache mutex").put(cap.as_bytes().to_vec(), grant.clone());
        Ok(grant)
    }

    /// Whether `key` made `signed`'s signature; a batch's root, once found signed, is
    /// remembered, so that the other capabilities of the batch cost only their paths.
    fn signed_by(&self, key: &PublicKey, signed: &Signed<'_>) -> bool {
        if !signed.batched {
            return signed.by(key);
        }
        let root = [&key.0[..], signed.signature, &signed.message].concat();
        if self.roots.lock().expect("roots mutex").get(&root).is_some() {
            return true;
        }
        let good = signed.by(key);
        if good {
            self.roots.lock().expect("roots mutex").put(root, ());
        }
        good
    }

    /// Whether `cap` allows `operation` (a method, or `describe`, `delete`, `revoke`),
    /// which needs `needed`, on `object` at revocation epoch `epoch`, now.
    pub fn admit(
        &self,
        cap: Option<&Cap>,
        object: ObjectId,
        epoch: u64,
        needed: Rights,
        operation: &str,
    ) -> Result<(), InvokeError> {
        if !self.enforce {
            return Ok(());
        }
        crate::telemetry::record_check();
        let checked = self.grant(cap).and_then(|grant| check(&grant, object, epoch, needed, operation, now()));
        if let Err(denied) = &checked {
            crate::telemetry::record_denial(denial_kind(denied));
        }
        Ok(checked?)
    }

    /// A capability for `object` signed by this node: every right, for `holder`.
    pub fn issue_owner(&self, object: ObjectId, epoch: u64, holder: PublicKey) -> Cap {
        self.issue(object, epoch, holder, Rights::ALL)
    }

    /// A capability for `object` signed by this node: `rights`, for `holder`.
    pub fn issue(&self, object: ObjectId, epoch: u64, holder: PublicKey, rights: Rights) -> Cap {
        self.sign_alone(whole_grant(object, epoch, holder, rights))
    }

    /// `grant` as the first link of a token, signed by this node alone.
    fn sign_alone(&self, grant: Grant) -> Cap {
        crate::telemetry::record_signed_batch(1);
        Token::issue(self.identity.cert.clone(), &self.identity.key, grant).to_cap()
    }

    /// `issue_owner` for a new object, signed in a batch with the others asked for at the
    /// same time (the creations of one group commit): one signature for up to
    /// `MAX_BATCH` of them.
    pub async fn issue_owner_batched(&self, object: ObjectId, holder: PublicKey) -> Cap {
        let grant = whole_grant(object, 0, holder, Rights::ALL);
        let (tx, rx) = oneshot::channel();
        let queue = self.signer.get_or_init(|| {
            let (queue, requests) = mpsc::unbounded_channel();
            tokio::spawn(sign_batches(self.identity.clone(), requests));
            queue
        });
        if queue.send((grant.clone(), tx)).is_ok() {
            if let Ok(cap) = rx.await {
                return cap;
            }
        }
        // The signer is gone (the runtime it was started on has stopped): sign alone.
        self.sign_alone(grant)
    }

    /// A capability granting only `rights` of what `cap` grants, signed by this node (for
    /// code running here, which holds no key). Needs the delegate right in `cap`.
    pub fn attenuate(&self, cap: Option<&Cap>, rights: Rights) -> Result<Cap, Denied> {
        let parent = self.grant(cap)?;
        let restrict = Restrict { rights: Some(rights), ..Restrict::default() };
        let child = parent.restricted(restrict, self.identity.key.public(), 1)?;
        Ok(self.sign_alone(child))
    }
}

/// A grant of `rights` on `object` to `holder`, for every method and without expiry.
fn whole_grant(object: ObjectId, epoch: u64, holder: PublicKey, rights: Rights) -> Grant {
    Grant { object, rights, methods: None, expires: None, epoch, holder }
}

/// The batching signer: takes what is queued, up to `MAX_BATCH`, signs it with one
/// signature, answers, and again, until the guard (the queue's sender) is gone.
async fn sign_batches(identity: Arc<Identity>, mut requests: mpsc::UnboundedReceiver<Signing>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while requests.recv_many(&mut batch, 1).await > 0 {
        // Let the tasks woken with this one (a group commit wakes all its creations at
        // once) queue theirs: they go in this batch instead of each in its own.
        tokio::task::yield_now().await;
        while batch.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let (grants, answers): (Vec<Grant>, Vec<oneshot::Sender<Cap>>) = batch.drain(..).unzip();
        let tokens = Token::issue_batch(&identity.cert, &identity.key, grants);
        crate::telemetry::record_signed_batch(tokens.len());
        for (token, answer) in tokens.iter().zip(answers) {
            // The creation may have been given up on: its object exists all the same.
            let _ = answer.send(token.to_cap());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clouds::NodeId;

    fn guard() -> Guard {
        Guard::new(Arc::new(Identity::ephemeral(NodeId(1))))
    }

    #[test]
    fn owner_capabilities_pass_and_others_are_denied_with_the_reason() {
        let g = guard();
        let object = ObjectId::new(NodeId(1));
        let owner = g.issue_owner(object, 0, KeyHolder::public());
        g.admit(Some(&owner), object, 0, Rights::WRITE, "incr").unwrap();
        // Cached now: the same answer, and a tampered copy is not mistaken for it.
        g.admit(Some(&owner), object, 0, Rights::WRITE, "incr").unwrap();
        let mut bytes = owner.as_bytes().to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let e = g.admit(Some(&Cap::from_bytes(bytes)), object, 0, Rights::WRITE, "incr").unwrap_err();
        assert!(e.to_string().contains("signature"), "{e}");
        let e = g.admit(None, object, 0, Rights::READ, "get").unwrap_err();
        assert!(e.to_string().contains("no capability"), "{e}");
        let e = g.admit(Some(&owner), object, 1, Rights::READ, "get").unwrap_err();
        assert!(e.to_string().contains("revoked"), "{e}");
        let other = ObjectId::new(NodeId(1));
        let e = g.admit(Some(&owner), other, 0, Rights::READ, "get").unwrap_err();
        assert!(e.to_string().contains("is for object"), "{e}");
    }

    #[test]
    fn attenuation_here_narrows_and_never_widens() {
        let g = guard();
        let object = ObjectId::new(NodeId(1));
        let owner = g.issue_owner(object, 0, KeyHolder::public());
        let read = g.attenuate(Some(&owner), Rights::READ).unwrap();
        g.admit(Some(&read), object, 0, Rights::READ, "get").unwrap();
        let e = g.admit(Some(&read), object, 0, Rights::WRITE, "incr").unwrap_err();
        assert!(e.to_string().contains("lacks the write right"), "{e}");
        // `read` has no delegate right: it cannot be passed on, let alone widened.
        assert!(matches!(g.attenuate(Some(&read), Rights::ALL), Err(Denied::NotDelegable { .. })));
        let delegable = g.attenuate(Some(&owner), Rights::READ.union(Rights::DELEGATE)).unwrap();
        assert!(matches!(g.attenuate(Some(&delegable), Rights::WRITE), Err(Denied::Amplified { .. })));
    }

    /// Creations asking at once share signatures, `MAX_BATCH` at most under each; every
    /// capability holds for its own object only; one asking alone gets a plain signature.
    #[tokio::test(flavor = "current_thread")]
    async fn owner_capabilities_asked_for_at_once_are_signed_in_batches_each_for_its_object() {
        let g = guard();
        let objects: Vec<ObjectId> = (0..2 * MAX_BATCH + 3).map(|_| ObjectId::new(NodeId(1))).collect();
        let caps =
            futures::future::join_all(objects.iter().map(|&o| g.issue_owner_batched(o, KeyHolder::public()))).await;
        let mut signatures = std::collections::HashSet::new();
        for (cap, &object) in caps.iter().zip(&objects) {
            g.admit(Some(cap), object, 0, Rights::WRITE, "incr").unwrap();
            let other = objects.iter().find(|o| **o != object).unwrap();
            assert!(g.admit(Some(cap), *other, 0, Rights::READ, "get").is_err());
            let token = Token::from_cap(cap).unwrap();
            signatures.insert(token.links[0].signature[..64].to_vec());
        }
        assert_eq!(signatures.len(), 3, "{} capabilities, batches of {MAX_BATCH}", caps.len());
        // Each batch's root was checked once and remembered...
        assert_eq!(g.roots.lock().unwrap().len(), 3);
        // ...which lets no other grant through under it: a capability of a remembered
        // batch with its object changed leads to another root, and fails.
        let mut token = Token::from_cap(&caps[0]).unwrap();
        token.links[0].grant.object = objects[1];
        let e = g.admit(Some(&token.to_cap()), objects[1], 0, Rights::READ, "get").unwrap_err();
        assert!(e.to_string().contains("signature"), "{e}");
        let alone = g.issue_owner_batched(objects[0], KeyHolder::public()).await;
        assert_eq!(Token::from_cap(&alone).unwrap().links[0].signature.len(), 64);
    }

    /// The signer runs on the runtime that first asked; once that runtime is gone, a
    /// guard used on another still issues, each capability signed alone.
    #[test]
    fn a_guard_outliving_its_signers_runtime_still_issues() {
        let g = guard();
        let object = ObjectId::new(NodeId(1));
        let issue = || {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            rt.block_on(g.issue_owner_batched(object, KeyHolder::public()))
        };
        for cap in [issue(), issue()] {
            g.admit(Some(&cap), object, 0, Rights::WRITE, "incr").unwrap();
        }
    }

    /// Some holder's key; who holds it does not matter to these checks.
    struct KeyHolder;
    impl KeyHolder {
        fn public() -> PublicKey {
            capability::KeyPair::generate().public()
        }
    }
}
