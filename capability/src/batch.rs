//! Signatures over many messages at once: one ed25519 signature over the root of a
//! Merkle tree whose leaves are the messages, each message's signature being that one
//! signature and the path from its leaf to the root.
//!
//! A link's signature has one of two forms, told apart by length:
//! - 64 bytes: an ed25519 signature over the message itself;
//! - `64 + 4 + 32·d` bytes with `1 <= d <= MAX_DEPTH`: an ed25519 signature over
//!   `ROOT_DOMAIN || d || root`, the leaf's index (u32, little-endian) in a tree of depth
//!   `d`, then the `d` sibling hashes from the leaf up.
//!
//! Hashes are SHA-256 with a first byte that keeps the kinds apart: `0` for a leaf (over
//! the message), `1` for an inner node (over its two children), `2` for the padding that
//! fills a tree to a power of two. A message can thus never pass for an inner node or for
//! padding, the depth is signed with the root, and the index is bounded by the depth, so
//! each message has exactly one signature in a batch and no path proves another message.
//!
//! A node signs the capabilities it issues in batches when many are asked for at once
//! (the creations of one group commit): the signature, the costliest step, is made once
//! per batch, and verifying a batched signature costs one ed25519 check and `d` hashes.

use crate::keys::{KeyPair, PublicKey};
use sha2::{Digest, Sha256};
use std::borrow::Cow;

/// The most leaves one signature covers: `2^MAX_DEPTH`. Each level adds 32 bytes to every
/// token of the batch, and every call carries its token.
pub const MAX_DEPTH: usize = 5;
/// The most messages one batch signs.
pub const MAX_BATCH: usize = 1 << MAX_DEPTH;
/// Domain separation for the signed root.
const ROOT_DOMAIN: &[u8] = b"clouds capability batch root v1";

const SIGNATURE: usize = 64;
const INDEX: usize = 4;
const HASH: usize = 32;

type Hash = [u8; HASH];

fn leaf(message: &[u8]) -> Hash {
    Sha256::new().chain_update([0u8]).chain_update(message).finalize().into()
}

fn inner(left: &Hash, right: &Hash) -> Hash {
    Sha256::new().chain_update([1u8]).chain_update(left).chain_update(right).finalize().into()
}

fn padding() -> Hash {
    Sha256::digest([2u8]).into()
}

fn root_message(depth: usize, root: &Hash) -> Vec<u8> {
    let mut m = ROOT_DOMAIN.to_vec();
    m.push(depth as u8);
    m.extend_from_slice(root);
    m
}

/// One signature for each message: a plain signature for a single message, batched ones
/// (one ed25519 signature for all) for more, up to `MAX_BATCH`.
///
/// # Panics
/// If `messages` is empty or holds more than `MAX_BATCH`: callers split their batches.
pub fn sign_all(key: &KeyPair, messages: &[Vec<u8>]) -> Vec<Vec<u8>> {
    assert!(!messages.is_empty() && messages.len() <= MAX_BATCH, "a batch holds 1 to {MAX_BATCH} messages");
    if let [message] = messages {
        return vec![key.sign(message)];
    }
    let depth = messages.len().next_power_of_two().trailing_zeros() as usize;
    // levels[0]: the leaves, padded; levels[depth]: the root alone.
    let mut level: Vec<Hash> = messages.iter().map(|m| leaf(m)).collect();
    level.resize(1 << depth, padding());
    let mut levels = vec![level];
    while levels.last().expect("one level at least").len() > 1 {
        let below = levels.last().expect("one level at least");
        let above = below.chunks(2).map(|pair| inner(&pair[0], &pair[1])).collect();
        levels.push(above);
    }
    let signature = key.sign(&root_message(depth, &levels[depth][0]));
    (0..messages.len())
        .map(|index| {
            let mut s = Vec::with_capacity(SIGNATURE + INDEX + HASH * depth);
            s.extend_from_slice(&signature);
            s.extend_from_slice(&(index as u32).to_le_bytes());
            for (height, level) in levels[..depth].iter().enumerate() {
                s.extend_from_slice(&level[(index >> height) ^ 1]);
            }
            s
        })
        .collect()
}

/// What the ed25519 signature inside `signature` must be over for `signature` to sign
/// `message`: the message itself (a plain signature), or the root its path leads to from
/// the message's leaf (a batched one). `None`: `signature` has neither form.
pub fn signed_part<'a>(message: &'a [u8], signature: &'a [u8]) -> Option<Signed<'a>> {
    if signature.len() == SIGNATURE {
        return Some(Signed { message: Cow::Borrowed(message), signature, batched: false });
    }
    let path = signature.get(SIGNATURE + INDEX..)?;
    let depth = path.len() / HASH;
    if path.len() % HASH != 0 || !(1..=MAX_DEPTH).contains(&depth) {
        return None;
    }
    let index = u32::from_le_bytes(signature[SIGNATURE..SIGNATURE + INDEX].try_into().expect("four bytes")) as usize;
    if index >> depth != 0 {
        return None;
    }
    let mut hash = leaf(message);
    for (height, sibling) in path.chunks(HASH).enumerate() {
        let sibling: &Hash = sibling.try_into().expect("chunks of HASH bytes");
        hash = if (index >> height) & 1 == 0 { inner(&hash, sibling) } else { inner(sibling, &hash) };
    }
    Some(Signed { message: Cow::Owned(root_message(depth, &hash)), signature: &signature[..SIGNATURE], batched: true })
}

/// An ed25519 signature and what it must sign.
#[derive(Debug)]
pub struct Signed<'a> {
    pub message: Cow<'a, [u8]>,
    pub signature: &'a [u8],
    /// Over a batch's root: every link of the batch has the same `Signed`, so a verifier
    /// that remembers it checks the signature once for the whole batch.
    pub batched: bool,
}

impl Signed<'_> {
    /// Whether `key` made the ed25519 signature. Strict verification.
    pub fn by(&self, key: &PublicKey) -> bool {
        key.verifies(&self.message, self.signature)
    }
}

/// Whether `signature`, in either form, is `key`'s over `message`.
pub fn verifies(key: &PublicKey, message: &[u8], signature: &[u8]) -> bool {
    signed_part(message, signature).is_some_and(|s| s.by(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("message {i}").into_bytes()).collect()
    }

    #[test]
    fn every_message_of_a_batch_verifies_with_its_own_signature_for_every_size() {
        let key = KeyPair::generate();
        for n in 1..=MAX_BATCH {
            let ms = messages(n);
            let sigs = sign_all(&key, &ms);
            assert_eq!(sigs.len(), n);
            for (m, s) in ms.iter().zip(&sigs) {
                assert!(verifies(&key.public(), m, s), "batch of {n}");
            }
        }
    }

    #[test]
    fn a_single_message_gets_a_plain_signature_and_a_batch_one_signature_for_all() {
        let key = KeyPair::generate();
        let one = sign_all(&key, &messages(1));
        assert_eq!(one[0].len(), SIGNATURE);
        assert!(key.public().verifies(b"message 0", &one[0]));
        let sigs = sign_all(&key, &messages(5));
        assert!(sigs.iter().all(|s| s.len() == SIGNATURE + INDEX + 3 * HASH), "5 leaves: depth 3");
        assert!(sigs.iter().all(|s| s[..SIGNATURE] == sigs[0][..SIGNATURE]), "one ed25519 signature");
    }

    #[test]
    fn every_link_of_a_batch_has_the_same_signed_root_and_a_plain_one_its_message() {
        let key = KeyPair::generate();
        let ms = messages(9);
        let sigs = sign_all(&key, &ms);
        let roots: Vec<_> = ms.iter().zip(&sigs).map(|(m, s)| signed_part(m, s).unwrap()).collect();
        assert!(roots.iter().all(|r| r.batched && r.message == roots[0].message && r.signature == roots[0].signature));
        assert!(roots[0].by(&key.public()));
        let plain = sign_all(&key, &ms[..1]);
        let signed = signed_part(&ms[0], &plain[0]).unwrap();
        assert!(!signed.batched && *signed.message == *ms[0] && signed.by(&key.public()));
    }

    #[test]
    fn a_batched_signature_proves_only_its_own_message_and_key() {
        let (key, other) = (KeyPair::generate(), KeyPair::generate());
        let ms = messages(6);
        let sigs = sign_all(&key, &ms);
        // Another message of the batch, an unknown message, another key.
        assert!(!verifies(&key.public(), &ms[1], &sigs[0]));
        assert!(!verifies(&key.public(), b"message 9", &sigs[0]));
        assert!(!verifies(&other.public(), &ms[0], &sigs[0]));
        // Another index, a path cut short or grown, any byte changed.
        let mut moved = sigs[0].clone();
        moved[SIGNATURE] = 1;
        assert!(!verifies(&key.public(), &ms[0], &moved));
        assert!(!verifies(&key.public(), &ms[0], &sigs[0][..sigs[0].len() - HASH]));
        let mut grown = sigs[0].clone();
        grown.extend_from_slice(&[0; HASH]);
        assert!(!verifies(&key.public(), &ms[0], &grown));
        for at in 0..sigs[0].len() {
            let mut bent = sigs[0].clone();
            bent[at] ^= 0x40;
            assert!(!verifies(&key.public(), &ms[0], &bent), "byte {at} changed");
        }
        // An index past the tree (the padding's places), and lengths that are no form.
        let mut past = sigs[5].clone();
        past[SIGNATURE] = 8;
        assert!(!verifies(&key.public(), &ms[5], &past));
        for len in [0, 63, 65, SIGNATURE + INDEX, SIGNATURE + INDEX + 31] {
            assert!(!verifies(&key.public(), &ms[0], &vec![0; len]), "{len} bytes");
        }
    }

    #[test]
    fn neither_an_inner_node_nor_the_padding_passes_for_a_message() {
        let key = KeyPair::generate();
        let ms = messages(3);
        let sigs = sign_all(&key, &ms);
        // Leaf 3 is padding: its path is the same shape as leaf 2's, but no message hashes
        // to the padding, whatever bytes are offered.
        let mut as_padding = sigs[2].clone();
        as_padding[SIGNATURE] = 3;
        as_padding[SIGNATURE + INDEX..SIGNATURE + INDEX + HASH].copy_from_slice(&leaf(&ms[2]));
        assert!(!verifies(&key.public(), &[2u8], &as_padding));
        assert!(!verifies(&key.public(), &[], &as_padding));
        // The two children of the left inner node, offered as a message one level up.
        let (l0, l1) = (leaf(&ms[0]), leaf(&ms[1]));
        let mut up = Vec::new();
        up.extend_from_slice(&sigs[0][..SIGNATURE]);
        up.extend_from_slice(&0u32.to_le_bytes());
        up.extend_from_slice(&sigs[0][SIGNATURE + INDEX + HASH..]);
        let forged: Vec<u8> = [&[1u8][..], &l0, &l1].concat();
        assert!(!verifies(&key.public(), &forged[1..], &up), "an inner node's preimage is no message");
    }
}
