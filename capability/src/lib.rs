//! Capabilities: signed, attenuable tokens that say what their holder may do to one object.
//!
//! Pure and synchronous: no I/O, no clocks (callers pass the time), no runtime.
//!
//! Layout:
//! `Rights` (read, write, admin, delegate, migrate) live in `clouds`, so that classes can name
//! them (`ctx.attenuate(&r, Rights::READ)`); this crate re-exports them.
//! - [`keys`]: ed25519 key pairs and public keys.
//! - [`hex`]: the text form of keys and certificates.
//! - [`cert`]: a node's certificate: the cluster authority vouches for the node's key.
//! - [`token`]: `Token`: a node certificate, then a chain of signed grants; issuing,
//!   attenuating, and the binary and text forms.
//! - [`verify`]: walking a token back to the authority, and checking it against a call.
//! - [`batch`]: one signature for many links (a Merkle tree's root), as a node signs the
//!   owner capabilities of many creations at once.
//!
//! The chain: the authority signs each node's key (`NodeCert`); a node signs the first
//! grant (the owner capability of an object it created) to a holder; a holder with the
//! `delegate` right signs a narrower grant to a new holder, and so on. Every link names the
//! same object and revocation epoch, and no link grants more than the one before it:
//! fewer or equal rights, a method allow-list no wider, an expiry no later.
//!
//! Tokens are bearer tokens for invocation (presenting one is enough to call); the holder
//! key decides who can attenuate it further.

pub mod batch;
pub mod cert;
pub mod keys;
pub mod token;
pub mod verify;

pub use cert::NodeCert;
pub use clouds::Rights;
pub use keys::{KeyPair, PublicKey};
pub use token::{Grant, Link, Restrict, Token, TOKEN_VERSION};
pub use verify::{Denied, Verified};
