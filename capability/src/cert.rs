//! A node's certificate: the cluster authority's signature over the node's id and key.

use crate::keys::{KeyPair, PublicKey};
use clouds::NodeId;
use serde::{Deserialize, Serialize};

/// Domain separation for certificate signatures.
const CERT_DOMAIN: &[u8] = b"clouds node certificate v1";

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeCert {
    pub node: NodeId,
    pub key: PublicKey,
    /// The authority that signed it.
    pub authority: PublicKey,
    pub signature: Vec<u8>,
}

fn message(node: NodeId, key: &PublicKey) -> Vec<u8> {
    let mut m = CERT_DOMAIN.to_vec();
    m.extend_from_slice(&node.0.to_be_bytes());
    m.extend_from_slice(&key.0);
    m
}

impl NodeCert {
    /// The authority certifies `key` as node `node`'s.
    pub fn issue(authority: &KeyPair, node: NodeId, key: PublicKey) -> NodeCert {
        NodeCert { node, key, authority: authority.public(), signature: authority.sign(&message(node, &key)) }
    }

    /// The text form: hex of the binary (postcard) form.
    pub fn to_text(&self) -> String {
        hex::encode(postcard::to_stdvec(self).expect("certificates encode"))
    }

    pub fn from_text(text: &str) -> Option<NodeCert> {
        postcard::from_bytes(&hex::decode(text.trim()).ok()?).ok()
    }

    /// Whether `authority` signed this certificate.
    pub fn is_signed_by(&self, authority: &PublicKey) -> bool {
        self.authority == *authority && authority.verifies(&message(self.node, &self.key), &self.signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_holds_only_for_its_authority_node_and_key() {
        let (authority, node, other) = (KeyPair::generate(), KeyPair::generate(), KeyPair::generate());
        let cert = NodeCert::issue(&authority, NodeId(3), node.public());
        assert!(cert.is_signed_by(&authority.public()));
        assert!(!cert.is_signed_by(&other.public()));
        let mut forged = cert.clone();
        forged.node = NodeId(4);
        assert!(!forged.is_signed_by(&authority.public()));
        assert_eq!(NodeCert::from_text(&cert.to_text()), Some(cert.clone()));
        assert_eq!(NodeCert::from_text("not a certificate"), None);
        let mut swapped = cert.clone();
        swapped.key = other.public();
        assert!(!swapped.is_signed_by(&authority.public()));
    }
}
