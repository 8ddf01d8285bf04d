//! `objectd`: a Clouds node.
//!
//! Layout:
//! - [`config`]: `Config` and `Durability`, data with defaults and validation.
//! - [`store`]: the `Store` trait, `SledStore`, record format, conformance suite.
//! - [`registry`]: the classes a node can run.
//! - [`engine`]: the invocation engine: routing, activation, concurrency, re-entrancy,
//!   deadlines, commit and group flush; it reaches other nodes through `engine::Peers`.
//! - [`membership`]: gossip (chitchat): members, addresses, classes, load, liveness.
//! - [`cluster`]: membership plus pooled connections to the other nodes: the `Peers` of a
//!   real node.
//! - [`placement`]: where a new object goes (pure).
//! - [`balance`]: which objects a node moves on its own, and where (pure).
//! - [`migration`]: the migration protocol's steps, precopy rule and recovery rule (pure).
//! - [`rpc`]: the tarpc service: a thin adapter from the wire to the engine.
//! - [`gateway`]: the HTTP/JSON gateway, the dashboard and `/metrics` (`--http`).
//! - [`telemetry`]: Prometheus metrics, recorded when the gateway is on.
//! - [`daemon`]: the `objectd` command line, reusable for custom node binaries.
//! - [`node`]: composition: open the store, build the engine, serve until shutdown.
//! - [`shutdown`]: the shutdown signal.
//!
//! The wire protocol, the handshake and node identities are in the `protocol` crate; the
//! client library is the `client` crate. An application with its own classes builds its
//! own node binary: `node::run` with a `Registry` that has them (see `examples/`).

pub mod admission;
pub mod atomic;
pub mod balance;
pub mod cluster;
pub mod config;
pub mod daemon;
pub mod engine;
pub mod gateway;
pub mod membership;
pub mod migration;
pub mod node;
pub mod placement;
pub mod registry;
pub mod rpc;
pub mod shutdown;
pub mod store;
pub mod telemetry;

pub use config::{Config, Durability};
pub use engine::Engine;
pub use registry::Registry;
pub use store::{SledStore, Store};
