//! The exchange that opens every RPC connection, before any request.
//!
//! 1. The server sends its node id, its certificate (if it has an identity) and a nonce.
//! 2. The client answers with who it is (anonymous, a user's public key, or a node
//!    certificate), its own nonce, and, as a user or a node, its signature over the
//!    server's nonce and id.
//! 3. The server checks the certificate against its authority and the signature against
//!    the key, then answers with its signature over the client's nonce, or refuses
//!    with the reason.
//!
//! A node connecting to another node checks, in turn, that the answer comes from a holder of
//! that node's certificate from the same authority, so an impostor at a node's address is
//! found out. The server learns its peer (`Peer`), which decides what it may ask.

use crate::identity::Identity;
use capability::{KeyPair, NodeCert, PublicKey};
use clouds::NodeId;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub const HANDSHAKE_VERSION: u16 = 2;
const CLIENT_DOMAIN: &[u8] = b"clouds handshake client v1";
const SERVER_DOMAIN: &[u8] = b"clouds handshake server v1";
/// The largest handshake message.
const MAX_MESSAGE: u32 = 64 * 1024;

/// Who is at the other end of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    /// A node of this cluster (its certificate and signature checked).
    Node(NodeId),
    /// Someone who proved they hold this key (a user's wallet key).
    User(PublicKey),
    /// Anyone else: clients, or any peer of a node that has no identity.
    Anonymous,
}

#[derive(Serialize, Deserialize)]
struct ServerHello {
    version: u16,
    node: NodeId,
    cert: Option<NodeCert>,
    nonce: [u8; 32],
}

#[derive(Serialize, Deserialize)]
enum ClientIdentity {
    Anonymous,
    Node(NodeCert),
    User(PublicKey),
}

/// Who a client connects as.
#[derive(Clone, Copy)]
pub enum Credentials<'a> {
    Anonymous,
    /// A user, proving they hold this key.
    User(&'a KeyPair),
    /// A node of the cluster.
    Node(&'a Identity),
}

#[derive(Serialize, Deserialize)]
struct ClientHello {
    version: u16,
    identity: ClientIdentity,
    nonce: [u8; 32],
    signature: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
enum ServerAnswer {
    Welcome { proof: Vec<u8> },
    Refused { reason: String },
}

fn nonce() -> [u8; 32] {
    let mut n = [0u8; 32];
    getrandom::fill(&mut n).expect("the operating system's random source works");
    n
}

/// What a proof signs: the domain, the other side's nonce, the server's node, and the
/// encrypted channel's handshake hash (`secure::Secure::binding`), which ties the proof to
/// this one channel: a relay in the middle has another hash with each side.
fn signed(domain: &[u8], nonce: &[u8; 32], node: NodeId, binding: &[u8]) -> Vec<u8> {
    [domain, nonce, &node.0.to_be_bytes(), binding].concat()
}

/// Why a handshake failed: the connection broke (the peer may be going down: try again
/// later), or the peer is not who it must be or refused us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Transport(String),
    Refused(String),
}

impl From<Failure> for String {
    fn from(f: Failure) -> String {
        match f {
            Failure::Transport(s) | Failure::Refused(s) => s,
        }
    }
}

async fn send<S: AsyncWrite + Unpin, T: Serialize>(stream: &mut S, message: &T) -> Result<(), Failure> {
    let bytes = postcard::to_stdvec(message).expect("handshake messages encode");
    let broke = |e: std::io::Error| Failure::Transport(format!("connection closed during the handshake: {e}"));
    stream.write_u32(bytes.len() as u32).await.map_err(broke)?;
    stream.write_all(&bytes).await.map_err(broke)?;
    stream.flush().await.map_err(broke)
}

async fn recv<S: AsyncRead + Unpin, T: for<'de> Deserialize<'de>>(stream: &mut S) -> Result<T, Failure> {
    let broke = |e: std::io::Error| Failure::Transport(format!("connection closed during the handshake: {e}"));
    let len = stream.read_u32().await.map_err(broke)?;
    if len > MAX_MESSAGE {
        return Err(Failure::Refused(format!("handshake message of {len} bytes is too large (not a Clouds peer?)")));
    }
    let mut bytes = vec![0u8; len as usize];
    stream.read_exact(&mut bytes).await.map_err(broke)?;
    postcard::from_bytes(&bytes)
        .map_err(|_| Failure::Refused("malformed handshake message (not a Clouds peer?)".into()))
}

fn version_ok(version: u16) -> Result<(), String> {
    if version == HANDSHAKE_VERSION {
        Ok(())
    } else {
        Err(format!("handshake version {version} is not supported (this build speaks {HANDSHAKE_VERSION})"))
    }
}

/// The server side: returns who the peer is, or why it was refused.
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    me: NodeId,
    identity: Option<&Identity>,
    binding: &[u8],
) -> Result<Peer, String> {
    let my_nonce = nonce();
    send(
        stream,
        &ServerHello { version: HANDSHAKE_VERSION, node: me, cert: identity.map(|i| i.cert.clone()), nonce: my_nonce },
    )
    .await?;
    let hello: ClientHello = recv(stream).await?;
    let checked = version_ok(hello.version).and_then(|()| match (&hello.identity, identity) {
        (ClientIdentity::User(key), _) => {
            if !key.verifies(&signed(CLIENT_DOMAIN, &my_nonce, me, binding), &hello.signature) {
                return Err("the client does not hold the key it names".to_string());
            }
            Ok(Peer::User(*key))
        }
        (ClientIdentity::Anonymous, _) | (_, None) => Ok(Peer::Anonymous),
        (ClientIdentity::Node(cert), Some(id)) => {
            if !cert.is_signed_by(&id.authority) {
                return Err(format!("{}'s certificate is not from this cluster's authority", cert.node));
            }
            if !cert.key.verifies(&signed(CLIENT_DOMAIN, &my_nonce, me, binding), &hello.signature) {
                return Err(format!("the peer does not hold the key of {}'s certificate", cert.node));
            }
            Ok(Peer::Node(cert.node))
        }
    });
    match checked {
        Ok(peer) => {
            let proof =
                identity.map(|i| i.key.sign(&signed(SERVER_DOMAIN, &hello.nonce, me, binding))).unwrap_or_default();
            send(stream, &ServerAnswer::Welcome { proof }).await?;
            Ok(peer)
        }
        Err(reason) => {
            let _ = send(stream, &ServerAnswer::Refused { reason: reason.clone() }).await;
            Err(reason)
        }
    }
}

/// The client side. As a node, it proves it is one; expecting node `expect`, it checks
/// that the server holds that node's certificate from the same authority. As a user, it
/// proves it holds its key.
pub async fn connect<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    credentials: Credentials<'_>,
    expect: Option<NodeId>,
    binding: &[u8],
) -> Result<Option<NodeCert>, Failure> {
    let hello: ServerHello = recv(stream).await?;
    version_ok(hello.version).map_err(Failure::Refused)?;
    let refused = |s: String| Err(Failure::Refused(s));
    let server_key = match (credentials, expect) {
        (Credentials::Node(id), Some(expected)) => {
            let Some(cert) = hello.cert.as_ref() else {
                return refused(format!("the node at this address presents no certificate (expected {expected})"));
            };
            if cert.node != expected || hello.node != expected {
                return refused(format!("the node at this address is {}, not {expected}", cert.node));
            }
            if !cert.is_signed_by(&id.authority) {
                return refused(format!("{expected}'s certificate is not from this cluster's authority"));
            }
            Some(cert.key)
        }
        // Any other client checks the proof of the certificate the node presents; whose
        // authority it trusts is the client's to decide (`connect` returns the certificate).
        _ => hello.cert.as_ref().map(|c| c.key),
    };
    let my_nonce = nonce();
    let proof = |key: &KeyPair| key.sign(&signed(CLIENT_DOMAIN, &hello.nonce, hello.node, binding));
    let (who, signature) = match credentials {
        Credentials::Node(id) => (ClientIdentity::Node(id.cert.clone()), proof(&id.key)),
        Credentials::User(key) => (ClientIdentity::User(key.public()), proof(key)),
        Credentials::Anonymous => (ClientIdentity::Anonymous, Vec::new()),
    };
    send(stream, &ClientHello { version: HANDSHAKE_VERSION, identity: who, nonce: my_nonce, signature }).await?;
    match recv::<_, ServerAnswer>(stream).await? {
        ServerAnswer::Refused { reason } => refused(format!("the node refused the connection: {reason}")),
        ServerAnswer::Welcome { proof } => match server_key {
            Some(key) if !key.verifies(&signed(SERVER_DOMAIN, &my_nonce, hello.node, binding), &proof) => {
                refused(format!("the node at this address does not hold {}'s key", hello.node))
            }
            // The node proved the key of the certificate it presents, on this channel.
            _ => Ok(hello.cert),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::init;

    fn identities(tag: &str, nodes: &[u16]) -> Vec<Identity> {
        let dir = std::env::temp_dir().join(format!("clouds-hs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let ids: Vec<NodeId> = nodes.iter().map(|n| NodeId(*n)).collect();
        init(&dir, &ids).unwrap();
        let out = ids.iter().map(|n| Identity::load(&Identity::dir_in(&dir, *n)).unwrap()).collect();
        let _ = std::fs::remove_dir_all(&dir);
        out
    }

    async fn run(
        server: Option<&Identity>,
        server_node: u16,
        client: Option<&Identity>,
        expect: Option<u16>,
    ) -> (Result<Peer, String>, Result<(), String>) {
        let (mut a, b) = tokio::io::duplex(4096);
        let client_side = async move {
            let mut b = b;
            // The client hangs up when it is done, as a TCP client would.
            let credentials = client.map(Credentials::Node).unwrap_or(Credentials::Anonymous);
            connect(&mut b, credentials, expect.map(NodeId), b"channel").await
        };
        let server_side = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            accept(&mut a, NodeId(server_node), server, b"channel"),
        );
        let (server, client) = tokio::join!(server_side, client_side);
        (server.unwrap_or_else(|_| Err("timed out".into())), client.map(|_| ()).map_err(String::from))
    }

    #[tokio::test]
    async fn nodes_of_one_cluster_recognize_each_other() {
        let ids = identities("same", &[1, 2]);
        let (server, client) = run(Some(&ids[1]), 2, Some(&ids[0]), Some(2)).await;
        assert_eq!(server, Ok(Peer::Node(NodeId(1))));
        assert_eq!(client, Ok(()));
    }

    #[tokio::test]
    async fn anonymous_clients_connect_but_are_not_nodes() {
        let ids = identities("anon", &[1]);
        let (server, client) = run(Some(&ids[0]), 1, None, None).await;
        assert_eq!((server, client), (Ok(Peer::Anonymous), Ok(())));
    }

    #[tokio::test]
    async fn users_prove_their_key_and_nothing_more() {
        let ids = identities("user", &[1]);
        let user = KeyPair::generate();
        let (mut a, mut b) = tokio::io::duplex(4096);
        let (server, client) = tokio::join!(
            accept(&mut a, NodeId(1), Some(&ids[0]), b"channel"),
            connect(&mut b, Credentials::User(&user), None, b"channel")
        );
        assert_eq!(server, Ok(Peer::User(user.public())));
        // The client learns the node's certificate, proven on this channel.
        assert_eq!(client.map(|c| c.map(|c| c.node)), Ok(Some(NodeId(1))));
    }

    #[tokio::test]
    async fn another_clusters_node_is_refused_both_ways() {
        let (ours, theirs) = (identities("ours", &[1, 2]), identities("theirs", &[2]));
        // Their node 2 calls our node 2: refused, with the reason, on both ends.
        let (server, client) = run(Some(&ours[1]), 2, Some(&theirs[0]), Some(2)).await;
        assert!(client.is_err(), "{client:?}");
        assert!(
            server.unwrap_err().contains("not from this cluster's authority")
                || client.as_ref().unwrap_err().contains("authority")
        );
        // Our node 1 reaches an impostor claiming to be node 2: found out.
        let (_, client) = run(Some(&theirs[0]), 2, Some(&ours[0]), Some(2)).await;
        assert!(client.unwrap_err().contains("not from this cluster's authority"));
    }

    #[tokio::test]
    async fn a_node_answering_for_another_id_is_found_out() {
        let ids = identities("wrong", &[1, 2, 3]);
        let (_, client) = run(Some(&ids[2]), 3, Some(&ids[0]), Some(2)).await;
        assert!(client.unwrap_err().contains("is node-3, not node-2"));
        // A server without an identity cannot pass for a node.
        let (_, client) = run(None, 2, Some(&ids[0]), Some(2)).await;
        assert!(client.unwrap_err().contains("presents no certificate"));
    }

    #[tokio::test]
    async fn a_proof_made_for_another_channel_is_refused() {
        // A relay in the middle has one channel with each side: the proofs name different
        // channels, and neither side accepts the other's.
        let ids = identities("relay", &[1]);
        let user = KeyPair::generate();
        let (mut a, mut b) = tokio::io::duplex(4096);
        let (server, _client) = tokio::join!(
            accept(&mut a, NodeId(1), Some(&ids[0]), b"channel with the relay, server side"),
            connect(&mut b, Credentials::User(&user), None, b"channel with the relay, client side")
        );
        assert!(server.unwrap_err().contains("does not hold the key"));
    }
}
