//! Verification: a token back to the cluster authority, then against one call.

use crate::keys::PublicKey;
use crate::token::{link_message, Grant, Token, TOKEN_VERSION};
use crate::Rights;
use clouds::{NodeId, ObjectId};

/// Why a capability does not allow a call. Each says which check failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("no capability was presented")]
    Missing,
    #[error("the capability is malformed (not a token of this format)")]
    Malformed,
    #[error("capability format {found} is not supported (this build reads {TOKEN_VERSION})")]
    Version { found: u16 },
    #[error("the capability's node certificate is not signed by this cluster's authority")]
    OtherCluster,
    #[error("the signature of link {link} is not valid (forged or tampered)")]
    Signature { link: usize },
    #[error("link {link} was passed on without the delegate right")]
    NotDelegable { link: usize },
    #[error("link {link} grants more than the link before it: {what}")]
    Amplified { link: usize, what: String },
    #[error("only the capability's holder can pass it on")]
    NotHolder,
    #[error("the capability is for object {granted}, not {asked}")]
    WrongObject { granted: ObjectId, asked: ObjectId },
    #[error("the capability expired at {expired} (unix seconds; now {now})")]
    Expired { expired: u64, now: u64 },
    #[error("the capability was revoked (granted at epoch {granted}, the object is at epoch {current})")]
    Revoked { granted: u64, current: u64 },
    #[error("the capability lacks the {needed} right (it has {has})")]
    Right { needed: String, has: String },
    #[error("method `{method}` is not in the capability's allow-list ({allowed})")]
    Method { method: String, allowed: String },
}

/// A refusal travels as `InvokeError::Denied`, with the reason.
impl From<Denied> for clouds::InvokeError {
    fn from(e: Denied) -> Self {
        clouds::InvokeError::Denied { reason: e.to_string() }
    }
}

/// A token whose chain checked out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// What the token grants, after every attenuation.
    pub grant: Grant,
    /// The node that issued its first link.
    pub issuer: NodeId,
}

/// Whether `child` asks for nothing `parent` does not have; if not, what it asks for.
pub(crate) fn narrower(parent: &Grant, child: &Grant) -> Result<(), String> {
    if child.object != parent.object {
        return Err(format!("another object ({})", child.object));
    }
    if child.epoch != parent.epoch {
        return Err(format!("another epoch ({})", child.epoch));
    }
    if !parent.rights.contains(child.rights) {
        return Err(format!("rights {} beyond {}", child.rights, parent.rights));
    }
    match (&parent.methods, &child.methods) {
        (Some(_), None) => return Err("every method, where the parent allows a list".into()),
        (Some(p), Some(c)) => {
            if let Some(m) = c.iter().find(|m| !p.contains(m)) {
                return Err(format!("method `{m}`, not in the parent's list"));
            }
        }
        _ => {}
    }
    match (parent.expires, child.expires) {
        (Some(_), None) => Err("no expiry, where the parent expires".into()),
        (Some(p), Some(c)) if c > p => Err(format!("expiry {c}, after the parent's {p}")),
        _ => Ok(()),
    }
}

/// Walks the chain back to `authority`: the certificate, every signature, every hand-over.
/// Says nothing yet about which object, method or moment the token is used for.
pub fn verify_chain(token: &Token, authority: &PublicKey) -> Result<Verified, Denied> {
    if !token.cert.is_signed_by(authority) {
        return Err(Denied::OtherCluster);
    }
    verify_links(token)
}

/// `verify_chain` for a token whose certificate the caller has already checked against
/// the authority (a verifier may remember the certificates it checked: there are few).
pub fn verify_links(token: &Token) -> Result<Verified, Denied> {
    verify_links_by(token, |key, signed| signed.by(key))
}

/// `verify_links`, each link's ed25519 signature checked by `verifies` (which may remember
/// the batch roots it found signed, so that the other links of a batch cost only their
/// paths' hashes). Everything else is checked here, for every link, every time.
pub fn verify_links_by(
    token: &Token,
    mut verifies: impl FnMut(&PublicKey, &crate::batch::Signed<'_>) -> bool,
) -> Result<Verified, Denied> {
    if token.version != TOKEN_VERSION {
        return Err(Denied::Version { found: token.version });
    }
    let mut issuer = token.cert.key;
    let mut previous: Option<&[u8]> = None;
    let mut parent: Option<&Grant> = None;
    for (i, link) in token.links.iter().enumerate() {
        if let Some(p) = parent {
            if !p.rights.contains(Rights::DELEGATE) {
                return Err(Denied::NotDelegable { link: i });
            }
            narrower(p, &link.grant).map_err(|what| Denied::Amplified { link: i, what })?;
        }
        let message = link_message(&link.grant, previous);
        let signed = crate::batch::signed_part(&message, &link.signature);
        if !signed.is_some_and(|signed| verifies(&issuer, &signed)) {
            return Err(Denied::Signature { link: i });
        }
        issuer = link.grant.holder;
        previous = Some(&link.signature);
        parent = Some(&link.grant);
    }
    let grant = parent.ok_or(Denied::Malformed)?.clone();
    Ok(Verified { grant, issuer: token.cert.node })
}

/// Whether a verified grant allows calling `method` (needing `needed`) on `object`, whose
/// revocation epoch is `epoch`, at unix time `now`.
pub fn check(
    grant: &Grant,
    object: ObjectId,
    epoch: u64,
    needed: Rights,
    method: &str,
    now: u64,
) -> Result<(), Denied> {
    if grant.object != object {
        return Err(Denied::WrongObject { granted: grant.object, asked: object });
    }
    if grant.epoch != epoch {
        return Err(Denied::Revoked { granted: grant.epoch, current: epoch });
    }
    if let Some(expired) = grant.expires.filter(|e| now > *e) {
        return Err(Denied::Expired { expired, now });
    }
    if !grant.rights.contains(needed) {
        return Err(Denied::Right { needed: needed.to_string(), has: grant.rights.to_string() });
    }
    if let Some(allowed) = &grant.methods {
        if !allowed.iter().any(|m| m == method) {
            return Err(Denied::Method { method: method.to_string(), allowed: allowed.join(", ") });
        }
    }
    Ok(())
}
