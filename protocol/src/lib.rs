//! The Clouds wire protocol: everything two ends of a connection must agree on.
//!
//! Layout:
//! - [`wire`]: the versioned request and response messages (`WIRE_VERSION`).
//! - [`service`]: the tarpc service trait, the frame codec, and [`Connection`]: a connection
//!   opened with the handshake, sending one typed request at a time.
//! - [`handshake`]: the signed exchange that opens every connection.
//! - [`identity`]: a node's key and certificate files; `init` makes a cluster's authority.
//! - [`coalesce`]: when a connection's written messages are flushed (many per flush).
//! - [`pool`]: connections to nodes, one per node incarnation.
//! - [`route`]: where an object is believed to be ([`Locations`]) and the one loop that
//!   follows `Moved` ([`route::follow`]), for clients and nodes alike.
//! - [`view`]: a node as membership reports it ([`NodeView`]) and its versioned load vector.
//! - [`placement`]: the placement policies a creation may ask for.
//! - [`decision`]: what nodes decide on their own and why; drain and object load reports.
//! - [`migration`]: strategies, chunks and reports of moving an object between nodes.
//!
//! Both the client library and the node depend on this crate; it holds no storage and no
//! gossip, so a program that only calls objects does not build them.

pub mod coalesce;
pub mod decision;
mod dispatch;
pub mod handshake;
pub mod identity;
pub mod migration;
pub mod placement;
pub mod pool;
pub mod route;
pub mod secure;
pub mod service;
pub mod view;
pub mod wire;

pub use handshake::Credentials;
pub use identity::Identity;
pub use placement::Placement;
pub use pool::{Endpoint, Pool};
pub use route::Locations;
pub use service::Connection;
pub use view::{Liveness, Load, NodeMode, NodeView};
pub use wire::{
    InitialState, Invocation, PathInvocation, Reply, Request, RequestBody, Response, ResponseBody, WaitEdge,
};
