//! The Clouds client library: what a program that only calls objects needs.
//!
//! Layout:
//! - [`client`]: [`Client`], acting for the holder of a [`Wallet`]: invoke, create,
//!   describe, delete, revoke; requests follow `Moved` through the one loop of
//!   `protocol::route`.
//! - `names`: typed access by name (`Client::lookup`, `Client::bind`,
//!   `Client::create_object`).
//! - [`listing`]: every object of the cluster, named or not (`Client::list_objects`).
//! - `routes`: with `Client::routed`, requests go straight to the object's node over pooled
//!   connections (the process's one location cache and connection pool).
//! - `backend`: `Ctx` for client code, so typed stubs (`counter.incr(&ctx, 1)`) work here.
//! - [`wallet`]: a user's key and capabilities (files readable by the owner only).
//!
//! It depends on the protocol, the name service and the vocabulary, never on the node: no
//! storage, no gossip.

#![warn(missing_docs)]

mod backend;
pub mod client;
pub mod listing;
mod names;
mod routes;
pub mod wallet;

pub use client::Client;
pub use listing::{ObjectListing, ObjectQuery};
pub use protocol::migration::{MigrationReport, Strategy};
pub use protocol::service::CONNECT_TIMEOUT;
pub use protocol::{InitialState, Placement};
pub use wallet::Wallet;
