//! `objectd`: a Clouds node.
//!
//! Layout:
//! - [`config`]: `Config` and `Durability`, data with defaults and validation.
//! - [`store`]: the `Store` trait, `SledStore`, record format, conformance suite.
//! - [`registry`]: the classes a node can run.
//! - [`engine`]: the invocation engine: activation, concurrency, re-entrancy,
//!   deadlines, commit and group flush.
//! - [`identity`]: a node's key and certificate files; `init` makes a cluster's authority.
//! - [`handshake`]: the signed exchange that opens every RPC connection.
//! - [`wire`]: the versioned request and response messages.
//! - [`membership`]: gossip (chitchat): members, addresses, classes, load, liveness.
//! - [`cluster`]: membership plus pooled connections to the other nodes.
//! - [`placement`]: where a new object goes (pure).
//! - [`rpc`]: the tarpc service: a thin adapter from the wire to the engine.
//! - [`client`]: the client library (also what the `clouds` CLI uses).
//! - [`wallet`]: a user's key and capabilities (files readable by the owner only).
//! - [`daemon`]: the `objectd` command line, reusable for custom node binaries.
//! - [`node`]: composition: open the store, build the engine, serve until shutdown.
//! - [`shutdown`]: the shutdown signal.
//!
//! An application with its own classes builds its own node binary: `node::run` with a
//! `Registry` that has them (see `examples/`).

pub mod client;
pub mod cluster;
pub mod config;
pub mod daemon;
pub mod engine;
pub mod handshake;
pub mod identity;
pub mod membership;
pub mod node;
pub mod placement;
pub mod registry;
pub mod rpc;
pub mod shutdown;
pub mod store;
pub mod wallet;
pub mod wire;

pub use client::Client;
pub use config::{Config, Durability};
pub use engine::Engine;
pub use registry::Registry;
pub use store::{SledStore, Store};
pub use wallet::Wallet;
