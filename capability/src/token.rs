//! Tokens: a node certificate and a chain of signed grants.
//!
//! Link 0 is signed by the node the certificate names; link `i` by the holder of link
//! `i - 1`. Each signature covers the grant and the previous link's signature, so links can
//! neither be reordered nor spliced between tokens. A signature is a plain ed25519 one or a
//! batched one (one ed25519 signature for many links, see [`crate::batch`]).

use crate::cert::NodeCert;
use crate::keys::{KeyPair, PublicKey};
use crate::verify::Denied;
use crate::Rights;
use clouds::{Cap, ObjectId};
use serde::{Deserialize, Serialize};

/// The token format this build writes and reads.
pub const TOKEN_VERSION: u16 = 1;
/// Domain separation for link signatures.
const LINK_DOMAIN: &[u8] = b"clouds capability link v1";

/// What one link grants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub object: ObjectId,
    pub rights: Rights,
    /// `None`: every method the rights allow; `Some`: only these.
    pub methods: Option<Vec<String>>,
    /// Unix time (seconds) after which the grant is void; `None`: no expiry.
    pub expires: Option<u64>,
    /// The object's revocation epoch when granted; a revoke moves the object past it.
    pub epoch: u64,
    /// Who may pass the grant on (with the `delegate` right).
    pub holder: PublicKey,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub grant: Grant,
    pub signature: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    pub version: u16,
    /// The node that issued link 0, vouched for by the cluster authority.
    pub cert: NodeCert,
    pub links: Vec<Link>,
}

/// How a holder narrows a grant when passing it on. `None` keeps the parent's value.
#[derive(Clone, Debug, Default)]
pub struct Restrict {
    pub rights: Option<Rights>,
    pub methods: Option<Vec<String>>,
    pub expires: Option<u64>,
}

impl Grant {
    /// The narrower grant `restrict` makes of this one for `to`, as link `link` of a chain.
    /// Refused if this grant lacks `delegate`, or `restrict` asks for more than it has.
    pub fn restricted(&self, restrict: Restrict, to: PublicKey, link: usize) -> Result<Grant, Denied> {
        if !self.rights.contains(Rights::DELEGATE) {
            return Err(Denied::NotDelegable { link: link.saturating_sub(1) });
        }
        let rights = restrict.rights.unwrap_or(self.rights);
        let methods = restrict.methods.or_else(|| self.methods.clone());
        let expires = match (restrict.expires, self.expires) {
            (Some(e), Some(p)) => Some(e.min(p)),
            (e, p) => e.or(p),
        };
        let child = Grant { object: self.object, rights, methods, expires, epoch: self.epoch, holder: to };
        crate::verify::narrower(self, &child).map_err(|what| Denied::Amplified { link, what })?;
        Ok(child)
    }
}

/// The binary form (postcard) of a token or a grant. On the stack first: postcard's own
/// growing `Vec` reallocates its way up to a token's size, which costs more than the rest.
fn encode(value: &impl Serialize) -> Vec<u8> {
    let mut buf = [0u8; 1024];
    match postcard::to_slice(value, &mut buf) {
        Ok(bytes) => bytes.to_vec(),
        Err(_) => postcard::to_stdvec(value).expect("tokens and grants always encode"),
    }
}

/// What link `grant` signs, chained to the previous link's signature.
pub(crate) fn link_message(grant: &Grant, previous: Option<&[u8]>) -> Vec<u8> {
    let grant = encode(grant);
    let mut m = Vec::with_capacity(LINK_DOMAIN.len() + grant.len() + previous.map_or(0, <[u8]>::len));
    m.extend_from_slice(LINK_DOMAIN);
    m.extend(grant);
    if let Some(p) = previous {
        m.extend_from_slice(p);
    }
    m
}

impl Token {
    /// A node issues the first grant of a token (an owner capability, say).
    pub fn issue(cert: NodeCert, node_key: &KeyPair, grant: Grant) -> Token {
        let signature = node_key.sign(&link_message(&grant, None));
        Token { version: TOKEN_VERSION, cert, links: vec![Link { grant, signature }] }
    }

    /// `issue` for many grants at once, with one ed25519 signature for all (see
    /// [`crate::batch`]); a single grant gets a plain signature, as `issue` makes.
    ///
    /// # Panics
    /// If `grants` is empty or holds more than [`crate::batch::MAX_BATCH`].
    pub fn issue_batch(cert: &NodeCert, node_key: &KeyPair, grants: Vec<Grant>) -> Vec<Token> {
        let messages: Vec<Vec<u8>> = grants.iter().map(|g| link_message(g, None)).collect();
        let signatures = crate::batch::sign_all(node_key, &messages);
        grants
            .into_iter()
            .zip(signatures)
            .map(|(grant, signature)| Token {
                version: TOKEN_VERSION,
                cert: cert.clone(),
                links: vec![Link { grant, signature }],
            })
            .collect()
    }

    /// What the token grants, after every attenuation.
    pub fn grant(&self) -> &Grant {
        &self.links.last().expect("a token has at least one link").grant
    }

    /// The holder passes on a narrower grant to `to`. Refused (and nothing signed) if
    /// `holder_key` does not hold the token, the token lacks `delegate`, or `restrict` asks
    /// for anything the token does not have.
    pub fn attenuate(&self, holder_key: &KeyPair, restrict: Restrict, to: PublicKey) -> Result<Token, Denied> {
        let parent = self.grant();
        if holder_key.public() != parent.holder {
            return Err(Denied::NotHolder);
        }
        let child = parent.restricted(restrict, to, self.links.len())?;
        let previous = &self.links.last().expect("a token has at least one link").signature;
        let signature = holder_key.sign(&link_message(&child, Some(previous)));
        let mut token = self.clone();
        token.links.push(Link { grant: child, signature });
        Ok(token)
    }

    /// The binary form (postcard), for the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(self)
    }

    /// Reads the binary form. Only the canonical encoding is accepted, so that one token
    /// has exactly one binary form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Token, Denied> {
        let version = postcard::take_from_bytes::<u16>(bytes).map(|(v, _)| v).map_err(|_| Denied::Malformed)?;
        if version != TOKEN_VERSION {
            return Err(Denied::Version { found: version });
        }
        let token: Token = postcard::from_bytes(bytes).map_err(|_| Denied::Malformed)?;
        if token.links.is_empty() || token.to_bytes() != bytes {
            return Err(Denied::Malformed);
        }
        Ok(token)
    }

    /// The form references carry (`clouds::Cap`): the binary form, opaque to classes.
    pub fn to_cap(&self) -> Cap {
        Cap::from_bytes(self.to_bytes())
    }

    pub fn from_cap(cap: &Cap) -> Result<Token, Denied> {
        Token::from_bytes(cap.as_bytes())
    }

    /// The text form, for people and the command line: `cap1.` + base64url.
    pub fn to_text(&self) -> String {
        self.to_cap().to_text()
    }

    pub fn from_text(text: &str) -> Result<Token, Denied> {
        Token::from_cap(&Cap::from_text(text).map_err(|_| Denied::Malformed)?)
    }
}
