//! The encrypted channel every connection runs in: a Noise handshake
//! (`Noise_NN_25519_ChaChaPoly_BLAKE2s`, with the `snow` crate) gives both ends fresh keys
//! and a handshake hash; then every byte goes in ChaCha20-Poly1305 messages. Noise NN
//! authenticates nobody by itself: the Clouds handshake that follows, inside the channel,
//! signs the handshake hash with the keys the cluster certifies (`handshake`), so a relay
//! in the middle, which has a different hash with each side, cannot pass the signatures
//! on. Why Noise and not TLS: the cluster's identities are ed25519 keys with certificates
//! of its own, not X.509; Noise needs no certificates, and binding its hash into the
//! existing signed handshake authenticates it with the keys already there.
//!
//! On the wire: the two handshake messages, then transport messages; each is a 2-byte
//! big-endian length and that many bytes.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

const PATTERN: &str = "Noise_NN_25519_ChaChaPoly_BLAKE2s";
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
    let n = noise.write_message(&[], &mut buf).map_err(broke)?;
    send_message(&mut stream, &buf[..n]).await?;
    let reply = recv_message(&mut stream).await?;
    noise.read_message(&reply, &mut buf).map_err(broke)?;
    Secure::new(stream, noise)
}

/// Opens the channel as the side that accepted.
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) -> io::Result<Secure<S>> {
    let mut noise = snow::Builder::new(PATTERN.parse().expect("a valid pattern")).build_responder().map_err(broke)?;
    let mut buf = vec![0u8; MAX_MESSAGE];
    let hello = recv_message(&mut stream).await?;
    noise.read_message(&hello, &mut buf).map_err(broke)?;
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
    /// Incoming: the message being read (length prefix, then body), and decrypted bytes
    /// not handed out yet.
    head: [u8; 2],
    head_have: usize,
    body: Vec<u8>,
    body_have: usize,
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
            head: [0; 2],
            head_have: 0,
            body: Vec::new(),
            body_have: 0,
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

/// Reads what `inner` has into `dst`: how many bytes (0: the end of the stream).
fn poll_fill<S: AsyncRead + Unpin>(inner: &mut S, cx: &mut Context<'_>, dst: &mut [u8]) -> Poll<io::Result<usize>> {
    let mut rb = ReadBuf::new(dst);
    ready!(Pin::new(inner).poll_read(cx, &mut rb))?;
    Poll::Ready(Ok(rb.filled().len()))
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
            // The length prefix, then the body, of the next message.
            if this.head_have < 2 {
                let n = ready!(poll_fill(&mut this.inner, cx, &mut this.head[this.head_have..]))?;
                if n == 0 {
                    // The peer closed: the end of the stream (mid-prefix: broken).
                    return Poll::Ready(if this.head_have == 0 { Ok(()) } else { Err(broke("closed mid-message")) });
                }
                this.head_have += n;
                if this.head_have == 2 {
                    this.body = vec![0u8; u16::from_be_bytes(this.head) as usize];
                    this.body_have = 0;
                }
                continue;
            }
            if this.body_have < this.body.len() {
                let n = ready!(poll_fill(&mut this.inner, cx, &mut this.body[this.body_have..]))?;
                if n == 0 {
                    return Poll::Ready(Err(broke("closed mid-message")));
                }
                this.body_have += n;
                continue;
            }
            // A whole message: decrypt it.
            let mut plain = vec![0u8; this.body.len()];
            let n = this.noise.read_message(&this.body, &mut plain).map_err(broke)?;
            plain.truncate(n);
            (this.plain, this.plain_at, this.head_have) = (plain, 0, 0);
        }
    }
}

impl<S: AsyncWrite + Unpin> Secure<S> {
    /// Encrypts the gathered plaintext as one message, behind what waits to be written.
    fn seal(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut message = vec![0u8; self.pending.len() + 16];
        let n = self.noise.write_message(&self.pending, &mut message).map_err(broke)?;
        self.out.extend_from_slice(&(n as u16).to_be_bytes());
        self.out.extend_from_slice(&message[..n]);
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
}
