//! Gossip that only certified nodes of this cluster can speak: a chitchat transport over
//! UDP whose every datagram carries the sender's node certificate and its signature over
//! the chitchat payload. A datagram that is not signed by a certificate of this cluster's
//! authority (forged, replayed from another cluster, truncated, random bytes) is dropped
//! before chitchat parses it, and counted; refusals are logged at most once per 10 s.
//!
//! Datagram: `MAGIC` (4 bytes) | certificate length (u16, big-endian) | certificate
//! (postcard) | signature (64 bytes) over `DOMAIN | certificate | payload` | payload (the
//! chitchat envelope as chitchat serializes it).

use crate::admission::RateLimited;
use anyhow::Context as _;
use capability::{NodeCert, PublicKey};
use chitchat::transport::{RecvOutcome, SendOutcome, Socket, Transport};
use chitchat::ChitchatEnvelope;
use protocol::Identity;
use std::net::SocketAddr;
use std::sync::Arc;

const MAGIC: &[u8; 4] = b"CLG1";
const DOMAIN: &[u8] = b"clouds gossip v1";
const SIGNATURE: usize = 64;
/// The largest UDP payload.
const MAX_DATAGRAM: usize = 65_507;

/// The transport: opens signed sockets for this node's identity.
pub struct SignedTransport {
    pub identity: Arc<Identity>,
    /// Datagrams dropped, for the rate-limited log (shared by the sockets it opened).
    pub dropped: Arc<RateLimited>,
}

#[async_trait::async_trait]
impl Transport for SignedTransport {
    async fn open(&self, listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let socket = tokio::net::UdpSocket::bind(listen_addr)
            .await
            .with_context(|| format!("failed to bind to {listen_addr}/UDP for gossip"))?;
        let cert = postcard::to_stdvec(&self.identity.cert).expect("certificates encode");
        Ok(Box::new(SignedSocket {
            socket,
            identity: self.identity.clone(),
            cert,
            buf: vec![0u8; MAX_DATAGRAM].into_boxed_slice(),
            dropped: self.dropped.clone(),
        }))
    }
}

struct SignedSocket {
    socket: tokio::net::UdpSocket,
    identity: Arc<Identity>,
    /// This node's certificate, encoded once.
    cert: Vec<u8>,
    buf: Box<[u8]>,
    dropped: Arc<RateLimited>,
}

/// Seals `payload` as `identity`'s datagram.
fn seal(identity: &Identity, cert: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut signed = Vec::with_capacity(DOMAIN.len() + cert.len() + payload.len());
    signed.extend_from_slice(DOMAIN);
    signed.extend_from_slice(cert);
    signed.extend_from_slice(payload);
    let signature = identity.key.sign(&signed);
    let mut out = Vec::with_capacity(MAGIC.len() + 2 + cert.len() + SIGNATURE + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(cert.len() as u16).to_be_bytes());
    out.extend_from_slice(cert);
    out.extend_from_slice(&signature);
    out.extend_from_slice(payload);
    out
}

/// The payload of a datagram signed by a node certified by `authority`, or why not.
pub fn open_sealed<'a>(datagram: &'a [u8], authority: &PublicKey) -> Result<(&'a [u8], NodeCert), &'static str> {
    let rest = datagram.strip_prefix(MAGIC.as_slice()).ok_or("not a Clouds gossip datagram")?;
    let (len, rest) = rest.split_at_checked(2).ok_or("truncated")?;
    let len = u16::from_be_bytes([len[0], len[1]]) as usize;
    let (cert_bytes, rest) = rest.split_at_checked(len).ok_or("truncated certificate")?;
    let (signature, payload) = rest.split_at_checked(SIGNATURE).ok_or("truncated signature")?;
    let cert: NodeCert = postcard::from_bytes(cert_bytes).map_err(|_| "malformed certificate")?;
    if !cert.is_signed_by(authority) {
        return Err("a certificate not from this cluster's authority");
    }
    let mut signed = Vec::with_capacity(DOMAIN.len() + cert_bytes.len() + payload.len());
    signed.extend_from_slice(DOMAIN);
    signed.extend_from_slice(cert_bytes);
    signed.extend_from_slice(payload);
    if !cert.key.verifies(&signed, signature) {
        return Err("a bad signature");
    }
    Ok((payload, cert))
}

impl SignedSocket {
    fn drop_one(&self, from: SocketAddr, why: &str) {
        if let Some(n) = self.dropped.note() {
            tracing::warn!(%from, dropped = n, "dropped a gossip datagram: {why} (logged at most every 10 s)");
        }
    }
}

#[async_trait::async_trait]
impl Socket for SignedSocket {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.socket.local_addr().context("failed to get UDP socket address")
    }

    async fn send(&mut self, to: SocketAddr, envelope: ChitchatEnvelope) -> anyhow::Result<SendOutcome> {
        let payload = envelope.serialize_to_vec();
        let datagram = seal(&self.identity, &self.cert, &payload);
        if datagram.len() > MAX_DATAGRAM {
            // chitchat (patched) leaves 512 bytes for the seal: this would be a bug.
            anyhow::bail!("a gossip message of {} bytes does not fit a datagram once signed", payload.len());
        }
        let num_bytes_sent = self.socket.send_to(&datagram, to).await.context("failed to send gossip")?;
        Ok(SendOutcome { num_bytes_sent })
    }

    async fn recv(&mut self) -> anyhow::Result<RecvOutcome> {
        loop {
            let (n, from) = match self.socket.recv_from(&mut self.buf[..]).await {
                Ok(got) => got,
                // Sending to a closed port comes back as an error on some systems: not fatal.
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(e).context("fatal UDP recv error"),
            };
            let datagram = self.buf[..n].to_vec();
            let payload = match open_sealed(&datagram, &self.identity.authority) {
                Ok((payload, _)) => payload,
                Err(why) => {
                    self.drop_one(from, why);
                    continue;
                }
            };
            let mut bytes = payload;
            match ChitchatEnvelope::deserialize(&mut bytes) {
                Ok(envelope) => return Ok(RecvOutcome { from_addr: from, envelope, num_bytes_received: n }),
                Err(_) => self.drop_one(from, "a signed datagram chitchat cannot read"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clouds::NodeId;

    fn identities() -> (Identity, Identity) {
        let dir = tempfile::tempdir().unwrap();
        protocol::identity::init(&dir.path().join("a"), &[NodeId(1)]).unwrap();
        protocol::identity::init(&dir.path().join("b"), &[NodeId(1)]).unwrap();
        let load = |d: &str| Identity::load(&Identity::dir_in(&dir.path().join(d), NodeId(1))).unwrap();
        (load("a"), load("b"))
    }

    #[test]
    fn only_this_clusters_signed_datagrams_open() {
        let (ours, theirs) = identities();
        let cert = postcard::to_stdvec(&ours.cert).unwrap();
        let sealed = seal(&ours, &cert, b"payload");
        let (payload, by) = open_sealed(&sealed, &ours.authority).unwrap();
        assert_eq!((payload, by.node), (&b"payload"[..], NodeId(1)));
        // Another cluster's node, a changed payload, random bytes, a truncation.
        assert_eq!(
            open_sealed(&sealed, &theirs.authority).unwrap_err(),
            "a certificate not from this cluster's authority"
        );
        let mut changed = sealed.clone();
        *changed.last_mut().unwrap() ^= 1;
        assert_eq!(open_sealed(&changed, &ours.authority).unwrap_err(), "a bad signature");
        assert!(open_sealed(b"\x00\x01garbage", &ours.authority).is_err());
        for cut in 0..sealed.len() - 7 {
            assert!(open_sealed(&sealed[..cut], &ours.authority).is_err(), "cut at {cut}");
        }
    }
}
