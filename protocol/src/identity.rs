//! A node's identity: its key, its certificate from the cluster authority, and the
//! authority's public key, kept as files in one directory.
//!
//! - `node.key`: the node's secret key (hex), readable by its owner only;
//! - `node.cert`: the certificate (hex of its binary form);
//! - `authority.pub`: the cluster authority's public key (hex).
//!
//! `init` makes a cluster's authority (`authority.key`, `authority.pub`) in a directory and
//! an identity directory for each node it is given.

use capability::{KeyPair, NodeCert, PublicKey};
use clouds::NodeId;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct Identity {
    pub node: NodeId,
    pub key: KeyPair,
    pub cert: NodeCert,
    pub authority: PublicKey,
}

/// A file's contents, as hex.
fn read(path: &Path) -> Result<Vec<u8>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    hex::decode(text.trim()).ok().ok_or_else(|| format!("{} is not hex", path.display()))
}

/// Writes a file readable by its owner only (secrets) or by everyone.
fn write(path: &Path, text: &str, secret: bool) -> Result<(), String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mode = if secret { 0o600 } else { 0o644 };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    writeln!(f, "{text}").map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn secret_of(bytes: Vec<u8>, path: &Path) -> Result<KeyPair, String> {
    let secret: [u8; 32] = bytes.try_into().map_err(|_| format!("{} does not hold a 32-byte key", path.display()))?;
    Ok(KeyPair::from_secret(secret))
}

impl Identity {
    /// Reads a node's identity directory and checks that its parts fit together.
    pub fn load(dir: &Path) -> Result<Identity, String> {
        let key = secret_of(read(&dir.join("node.key"))?, &dir.join("node.key"))?;
        let cert_path = dir.join("node.cert");
        let text =
            std::fs::read_to_string(&cert_path).map_err(|e| format!("cannot read {}: {e}", cert_path.display()))?;
        let cert =
            NodeCert::from_text(&text).ok_or_else(|| format!("{} is not a node certificate", cert_path.display()))?;
        let auth_path = dir.join("authority.pub");
        let authority = PublicKey(
            read(&auth_path)?.try_into().map_err(|_| format!("{} does not hold a public key", auth_path.display()))?,
        );
        if cert.key != key.public() {
            return Err(format!(
                "{} certifies another key than {}",
                cert_path.display(),
                dir.join("node.key").display()
            ));
        }
        if !cert.is_signed_by(&authority) {
            return Err(format!("{} is not signed by the authority in {}", cert_path.display(), auth_path.display()));
        }
        Ok(Identity { node: cert.node, key, cert, authority })
    }

    /// An identity under a fresh authority that nobody keeps: for engines in tests and
    /// benchmarks.
    pub fn ephemeral(node: NodeId) -> Identity {
        let authority = KeyPair::generate();
        let key = KeyPair::generate();
        let cert = NodeCert::issue(&authority, node, key.public());
        Identity { node, key, cert, authority: authority.public() }
    }

    /// The directory `init` makes for `node` under a cluster directory.
    pub fn dir_in(cluster_dir: &Path, node: NodeId) -> PathBuf {
        cluster_dir.join(format!("identity-{}", node.0))
    }
}

/// Makes (or reuses) the authority in `dir` and an identity directory for each of `nodes`
/// that has none yet. Returns the authority's public key.
pub fn init(dir: &Path, nodes: &[NodeId]) -> Result<PublicKey, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let auth_key_path = dir.join("authority.key");
    let authority = if auth_key_path.exists() {
        secret_of(read(&auth_key_path)?, &auth_key_path)?
    } else {
        let k = KeyPair::generate();
        write(&auth_key_path, &hex::encode(k.secret_bytes()), true)?;
        write(&dir.join("authority.pub"), &k.public().to_string(), false)?;
        k
    };
    for &node in nodes {
        let id_dir = Identity::dir_in(dir, node);
        if id_dir.join("node.cert").exists() {
            continue;
        }
        std::fs::create_dir_all(&id_dir).map_err(|e| format!("cannot create {}: {e}", id_dir.display()))?;
        let key = KeyPair::generate();
        let cert = NodeCert::issue(&authority, node, key.public());
        write(&id_dir.join("node.key"), &hex::encode(key.secret_bytes()), true)?;
        write(&id_dir.join("node.cert"), &cert.to_text(), false)?;
        write(&id_dir.join("authority.pub"), &authority.public().to_string(), false)?;
    }
    Ok(authority.public())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_then_load_and_refuse_mismatched_parts() {
        let dir = std::env::temp_dir().join(format!("clouds-identity-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let authority = init(&dir, &[NodeId(1), NodeId(2)]).unwrap();
        let one = Identity::load(&Identity::dir_in(&dir, NodeId(1))).unwrap();
        assert_eq!((one.node, one.authority), (NodeId(1), authority));
        // A second init keeps the authority and the existing identities.
        assert_eq!(init(&dir, &[NodeId(1), NodeId(3)]).unwrap(), authority);
        assert_eq!(Identity::load(&Identity::dir_in(&dir, NodeId(1))).unwrap().key.public(), one.key.public());
        // Node 2's certificate with node 1's key: refused.
        let two = Identity::dir_in(&dir, NodeId(2));
        std::fs::copy(Identity::dir_in(&dir, NodeId(1)).join("node.key"), two.join("node.key")).unwrap();
        assert!(Identity::load(&two).unwrap_err().contains("certifies another key"));
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.join("authority.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
