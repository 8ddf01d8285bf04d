//! Integration and fault tests with real `objectd` processes on 127.0.0.1.
//!
//! - `cli`: the `clouds` commands end to end, and state across a clean restart.
//! - `errors`: every bad input gets a clear one-line error, its exit code, and changes nothing.
//! - `durability`: kill -9 during a stream of writes loses no acknowledged write.
//! - `classes`: the standard classes through the client library, blobs of many pages.
//! - `cluster`: threads across the nodes of a cluster started with `clouds cluster up`.
//! - `caps`: capabilities end to end: grants, the attack matrix, references, names.
//! - `migration`: live objects moving between nodes, with crashes at every protocol step.
//! - `network`: the cluster in one process, with cut links, lost messages, delays and crashes.
//! - `placement`: placement policies, draining nodes and the load vector, in one process.
//! - `extremes`: the standard classes at the edges of their numbers: overflow is an
//!   application error that changes nothing (property tests, in one process).
//! - `hostile`: a peer that holds connections and partial frames; small frames for a peer
//!   that proved no key.
//! - `balancing`: drain with home handover, workstation eviction, rebalancing, affinity.

mod atomic;
mod balancing;
mod caps;
mod classes;
mod cli;
mod cluster;
mod durability;
mod errors;
mod extremes;
mod gateway;
mod hostile;
mod migration;
mod network;
mod placement;
mod traces;
