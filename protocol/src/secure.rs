//! The encrypted channel every connection runs in: a Noise handshake
//! (`Noise_NN_25519_AESGCM_BLAKE2s`, with the `snow` crate) gives both ends fresh keys
//! and a handshake hash; then every byte goes in AES-256-GCM messages. Noise NN
//! authenticates nobody by itself: the Clouds handshake that follows, inside the channel,
//! signs the handshake hash with the keys the cluster certifies (`handshake`), so a relay
//! in the middle, which has a different hash with each side, cannot pass the signatures
//! on. Why Noise and not TLS: the cluster's identities are ed25519 keys with certificates
//! of its own, not X.509; Noise needs no certificates, and binding its hash into the
//! existing signed handshake authenticates it with the keys already there.
//!
//! Why AES-GCM and not ChaCha20-Poly1305: sealing and opening a 150-byte message takes
//! 220 ns with AES-GCM and 451 ns with ChaCha20-Poly1305 on the project's machine (`bench
//! -- tarpc`, last table), and a null call seals and opens two messages. The ciphers are
//! `ring`'s (snow's `ring-accelerated` resolver; DH and hashes stay snow's defaults): with
//! the RustCrypto crates snow uses otherwise, the same took 657 ns and 3.4 us, because
//! snow builds a RustCrypto AES-GCM afresh for every message (its key schedule and hash key
//! each time) and that GHASH multiplies one block at a time. A CPU without AES-NI gets
//! ring's slower, still constant-time, software AES.
//!
//! On the wire: the two handshake messages, then transport messages; each is a 2-byte
//! big-endian length and that many bytes. The first handshake message carries the pattern's
//! name in clear, so a peer built with another channel is told so instead of failing to
//! decrypt.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

const PATTERN: &str = "Noise_NN_25519_AESGCM_BLAKE2s";
/// The largest Noise message, and the most plaintext one carries (less the 16-byte tag).
const MAX_MESSAGE: usize = 65_535;
const MAX_PLAIN: usize = MAX_MESSAGE - 16;

fn broke(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("encrypted channel: {e}"))
}

async fn send_message<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> io::Result<()> {
    stream.write_u16(bytes.len() as u16).await?;
    stream.write_all(bytes).await?;
    stream.flush().await
}

async fn recv_message<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<Vec<u8>> {
    let len = stream.read_u16().await? as usize;
    let mut bytes = vec![0u8; len];
    stream.read_exact(&mut bytes).await?;
    Ok(bytes)
}

/// Opens the channel as the side that connected.
pub async fn connect<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) -> io::Result<Secure<S>> {
    let mut noise = snow::Builder::new(PATTERN.parse().expect("a valid pattern")).build_initiator().map_err(broke)?;
    let mut buf = vec![0u8; MAX_MESSAGE];
    let n = noise.write_message(PATTERN.as_bytes(), &mut buf).map_err(broke)?;
    send_message(&mut stream, &buf[..n]).await?;
    let reply = recv_message(&mut stream).await.map_err(|e| {
        broke(format!("the peer closed the handshake ({e}): is it a Clouds node of this version ({PATTERN})?"))
    })?;
    noise.read_message(&reply, &mut buf).map_err(broke)?;
    Secure::new(stream, noise)
}

/// Opens the channel as the side that accepted.
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) -> io::Result<Secure<S>> {
    let mut noise = snow::Builder::new(PATTERN.parse().expect("a valid pattern")).build_responder().map_err(broke)?;
    let mut buf = vec![0u8; MAX_MESSAGE];
    let hello = recv_message(&mut stream).await?;
    let n = noise.read_message(&hello, &mut buf).map_err(broke)?;
    if &buf[..n] != PATTERN.as_bytes() {
        let theirs = String::from_utf8_lossy(&buf[..n.min(64)]);
        return Err(broke(format!("the peer opened its channel as {theirs:?}; this build speaks {PATTERN}")));
    }
    let n = noise.write_message(&[], &mut buf).map_err(broke)?;
    send_message(&mut stream, &buf[..n]).await?;
    Secure::new(stream, noise)
}

/// Benchmark builds only (feature `plaintext`, which only the benchmark harness enables):
/// whether channels opened from now on skip the encryption of their bytes (the Noise
/// handshake and its binding still run), to measure what the encryption costs. Nothing in
/// the daemon or the CLI can select it.
#[cfg(feature = "plaintext")]
static PLAINTEXT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Benchmark builds only: channels opened after `measure_unencrypted(true)` carry their
/// bytes in the clear, until `measure_unencrypted(false)`.
#[cfg(feature = "plaintext")]
pub fn measure_unencrypted(on: bool) {
    PLAINTEXT.store(on, std::sync::atomic::Ordering::SeqCst);
}

fn clear_text() -> bool {
    #[cfg(feature = "plaintext")]
    return PLAINTEXT.load(std::sync::atomic::Ordering::SeqCst);
    #[cfg(not(feature = "plaintext"))]
    false
}

/// A stream whose bytes travel encrypted. Reads and writes are the plaintext.
pub struct Secure<S> {
    inner: S,
    /// Only in benchmark builds measuring the encryption's cost: bytes pass as they are.
    clear: bool,
    noise: snow::TransportState,
    /// The handshake hash both ends share: what the Clouds handshake signs.
    binding: Vec<u8>,
    /// Incoming: bytes read from `inner` and not decrypted yet (`wire[wire_at..]`: whole
    /// messages, then perhaps the start of one), and decrypted bytes not handed out yet.
    /// One read takes whatever the socket has, so messages that arrive together cost one
    /// system call; a read shorter than the buffer also tells tokio the socket is drained,
    /// which spares the call that would only say so.
    wire: Vec<u8>,
    wire_at: usize,
    plain: Vec<u8>,
    plain_at: usize,
    /// Outgoing: plaintext gathered until a flush (or a full message), then encrypted
    /// bytes not written yet.
    pending: Vec<u8>,
    out: Vec<u8>,
    out_at: usize,
}

impl<S> Secure<S> {
    fn new(inner: S, noise: snow::HandshakeState) -> io::Result<Secure<S>> {
        let binding = noise.get_handshake_hash().to_vec();
        let noise = noise.into_transport_mode().map_err(broke)?;
        Ok(Secure {
            inner,
            clear: clear_text(),
            noise,
            binding,
            wire: Vec::new(),
            wire_at: 0,
            plain: Vec::new(),
            plain_at: 0,
            pending: Vec::new(),
            out: Vec::new(),
            out_at: 0,
        })
    }

    /// The handshake hash: the same at both ends of this channel, and only of this one.
    pub fn binding(&self) -> &[u8] {
        &self.binding
    }
}

/// What a read from the socket asks for at least: room for many small messages at once.
const READ_CHUNK: usize = 16 * 1024;

/// The length of the whole message (prefix and body) at the start of `bytes`, once its
/// prefix is there.
fn message_len(bytes: &[u8]) -> Option<usize> {
    (bytes.len() >= 2).then(|| 2 + u16::from_be_bytes([bytes[0], bytes[1]]) as usize)
}

impl<S: AsyncRead + Unpin> Secure<S> {
    /// Reads what the socket has behind the bytes not yet decrypted, with room for at least
    /// the message they begin: how many bytes came (0: the end of the stream).
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        // What was decrypted is dropped, and the start of the next message moves to the front.
        self.wire.drain(..self.wire_at);
        self.wire_at = 0;
        let have = self.wire.len();
        let room = message_len(&self.wire).unwrap_or(2).saturating_sub(have).max(READ_CHUNK);
        // Into the spare capacity: nothing is zeroed first.
        self.wire.reserve(room);
        tokio_util::io::poll_read_buf(Pin::new(&mut self.inner), cx, &mut self.wire)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Secure<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.clear {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        loop {
            if this.plain_at < this.plain.len() {
                let n = (this.plain.len() - this.plain_at).min(buf.remaining());
                buf.put_slice(&this.plain[this.plain_at..this.plain_at + n]);
                this.plain_at += n;
                return Poll::Ready(Ok(()));
            }
            let unread = &this.wire[this.wire_at..];
            match message_len(unread) {
                Some(len) if unread.len() >= len => {
                    // A whole message: decrypt it.
                    this.plain.resize(len - 2, 0);
                    let n = this.noise.read_message(&unread[2..len], &mut this.plain).map_err(broke)?;
                    this.plain.truncate(n);
                    this.plain_at = 0;
                    this.wire_at += len;
                }
                _ => {
                    if ready!(this.poll_fill(cx))? == 0 {
                        // The peer closed: the end of the stream (mid-message: broken).
                        let clean = this.wire.len() == this.wire_at;
                        return Poll::Ready(if clean { Ok(()) } else { Err(broke("closed mid-message")) });
                    }
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> Secure<S> {
    /// Encrypts the gathered plaintext as one message, behind what waits to be written.
    fn seal(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        // Sealed in place behind its length prefix: no buffer of its own.
        let at = self.out.len();
        self.out.resize(at + 2 + self.pending.len() + 16, 0);
        let n = self.noise.write_message(&self.pending, &mut self.out[at + 2..]).map_err(broke)?;
        self.out[at..at + 2].copy_from_slice(&(n as u16).to_be_bytes());
        self.out.truncate(at + 2 + n);
        self.pending.clear();
        Ok(())
    }

    /// Writes out what is encrypted and not written yet.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.out_at < self.out.len() {
            match Pin::new(&mut self.inner).poll_write(cx, &self.out[self.out_at..]) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => self.out_at += n,
            }
        }
        self.out.clear();
        self.out_at = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Secure<S> {
    /// Gathers plaintext; a full message is encrypted and sent, the rest waits for a flush.
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.clear {
            return Pin::new(&mut this.inner).poll_write(cx, data);
        }
        if this.pending.len() == MAX_PLAIN {
            // A full message waits: it goes out before more is taken.
            if this.poll_drain(cx)?.is_pending() {
                return Poll::Pending;
            }
            this.seal()?;
            let _ = this.poll_drain(cx)?;
        }
        let take = data.len().min(MAX_PLAIN - this.pending.len());
        this.pending.extend_from_slice(&data[..take]);
        Poll::Ready(Ok(take))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.clear {
            return Pin::new(&mut this.inner).poll_flush(cx);
        }
        if this.poll_drain(cx)?.is_pending() {
            return Poll::Pending;
        }
        this.seal()?;
        if this.poll_drain(cx)?.is_pending() {
            return Poll::Pending;
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.as_mut().poll_flush(cx)?.is_pending() {
            return Poll::Pending;
        }
        let this = &mut *self;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bytes_cross_encrypted_and_both_ends_share_the_binding() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let (client, server) = tokio::join!(connect(a), accept(b));
        let (mut client, mut server) = (client.unwrap(), server.unwrap());
        assert_eq!(client.binding(), server.binding());
        assert_eq!(client.binding().len(), 32);
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let sent = big.clone();
        let writer = tokio::spawn(async move {
            client.write_all(&sent).await.unwrap();
            client.flush().await.unwrap();
            client
        });
        let mut got = vec![0u8; big.len()];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(got, big);
        drop(writer.await.unwrap());
        let mut rest = Vec::new();
        server.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "a clean end of stream");
    }

    #[tokio::test]
    async fn what_crosses_the_wire_is_not_the_plaintext() {
        let (a, mut wire) = tokio::io::duplex(1 << 16);
        let (b, mut wire_b) = tokio::io::duplex(1 << 16);
        // A relay that records every byte from the client.
        let relay = tokio::spawn(async move {
            let mut seen = Vec::new();
            let (mut up, mut down) = ([0u8; 4096], [0u8; 4096]);
            loop {
                tokio::select! {
                    n = wire.read(&mut up) => {
                        let n = n.unwrap();
                        if n == 0 { return seen; }
                        seen.extend_from_slice(&up[..n]);
                        wire_b.write_all(&up[..n]).await.unwrap();
                    }
                    n = wire_b.read(&mut down) => {
                        let n = n.unwrap();
                        if n == 0 { return seen; }
                        wire.write_all(&down[..n]).await.unwrap();
                    }
                }
            }
        });
        let (client, server) = tokio::join!(connect(a), accept(b));
        let (mut client, mut server) = (client.unwrap(), server.unwrap());
        let secret = b"cap1.a-very-secret-capability-token";
        client.write_all(secret).await.unwrap();
        client.flush().await.unwrap();
        let mut got = vec![0u8; secret.len()];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, secret);
        drop(client);
        drop(server);
        let seen = relay.await.unwrap();
        assert!(!seen.windows(secret.len()).any(|w| w == secret), "the token crossed in clear");
    }

    #[tokio::test]
    async fn messages_split_across_reads_or_arriving_together_come_out_whole() {
        // A pipe that holds one byte splits every message, its prefix too.
        let (a, b) = tokio::io::duplex(1);
        let (client, server) = tokio::join!(connect(a), accept(b));
        let (mut client, mut server) = (client.unwrap(), server.unwrap());
        let writer = tokio::spawn(async move {
            for i in 0..50u8 {
                client.write_all(&[i; 3]).await.unwrap();
                client.flush().await.unwrap();
            }
        });
        let mut got = vec![0u8; 150];
        server.read_exact(&mut got).await.unwrap();
        writer.await.unwrap();
        assert_eq!(got, (0..50u8).flat_map(|i| [i; 3]).collect::<Vec<_>>());
        // A roomy pipe: many messages wait together and one read takes them all.
        let (a, b) = tokio::io::duplex(1 << 16);
        let (client, server) = tokio::join!(connect(a), accept(b));
        let (mut client, mut server) = (client.unwrap(), server.unwrap());
        for i in 0..50u8 {
            client.write_all(&[i; 3]).await.unwrap();
            client.flush().await.unwrap();
        }
        drop(client);
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, (0..50u8).flat_map(|i| [i; 3]).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_peer_speaking_another_channel_is_told_which_one_this_build_speaks() {
        let (mut a, b) = tokio::io::duplex(1 << 16);
        let other = "Noise_NN_25519_ChaChaPoly_BLAKE2s";
        let peer = tokio::spawn(async move {
            let mut noise = snow::Builder::new(other.parse().unwrap()).build_initiator().unwrap();
            let mut buf = vec![0u8; 1024];
            let n = noise.write_message(other.as_bytes(), &mut buf).unwrap();
            send_message(&mut a, &buf[..n]).await.unwrap();
            a
        });
        let err = accept(b).await.err().expect("refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let text = err.to_string();
        assert!(text.contains(other) && text.contains(PATTERN), "{text}");
        drop(peer.await.unwrap());
    }
}
