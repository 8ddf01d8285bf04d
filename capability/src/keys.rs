//! ed25519 keys: a key pair to sign with, a public key to name holders and issuers.

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A public key: names a holder, an issuer, a node or the cluster authority.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// Checks `signature` over `message`. Strict: rejects malleable and weak-key signatures.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(&self.0) else { return false };
        let Ok(sig) = <[u8; 64]>::try_from(signature) else { return false };
        key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(&sig)).is_ok()
    }
}

/// Lowercase hex, 64 characters.
impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", &self.to_string()[..16])
    }
}

impl FromStr for PublicKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        hex::decode(s.trim())
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .map(PublicKey)
            .ok_or_else(|| format!("`{s}` is not a public key (expected 64 hex digits)"))
    }
}

/// A key pair. The secret never leaves it except through `secret_bytes`, for storing.
pub struct KeyPair(SigningKey);

impl KeyPair {
    /// A new key from the operating system's random source.
    pub fn generate() -> KeyPair {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).expect("the operating system's random source works");
        KeyPair(SigningKey::from_bytes(&secret))
    }

    pub fn from_secret(secret: [u8; 32]) -> KeyPair {
        KeyPair(SigningKey::from_bytes(&secret))
    }

    /// The secret key, to store (readable by its owner only).
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.0.sign(message).to_bytes().to_vec()
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyPair({:?})", self.public())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_for_their_key_and_message() {
        let (a, b) = (KeyPair::generate(), KeyPair::generate());
        let sig = a.sign(b"hello");
        assert!(a.public().verifies(b"hello", &sig));
        assert!(!a.public().verifies(b"hellO", &sig));
        assert!(!b.public().verifies(b"hello", &sig));
        assert!(!a.public().verifies(b"hello", &sig[..63]));
    }

    #[test]
    fn keys_round_trip_through_text_and_secret_bytes() {
        let k = KeyPair::generate();
        let text = k.public().to_string();
        assert_eq!(text.parse::<PublicKey>().unwrap(), k.public());
        assert_eq!(KeyPair::from_secret(k.secret_bytes()).public(), k.public());
        assert!("xyz".parse::<PublicKey>().unwrap_err().contains("64 hex digits"));
    }
}
