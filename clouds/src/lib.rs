//! `clouds`: what an application author imports to write persistent object classes.
//!
//! Layout:
//! - [`id`]: `NodeId`, `ObjectId` (UUID v8 carrying its home node), `ThreadId`, `CallId`.
//! - [`error`]: `InvokeError`, the one serializable error every invocation can return.
//! - [`codec`]: the two argument codecs (JSON for people, postcard for programs) and the
//!   argument decoder the generated dispatch uses.
//! - [`value`]: `Value`, a JSON value that also travels through the binary codec.
//! - [`object`]: the `Object` trait the macros implement, class metadata, and the
//!   type-erased `Class` / `Instance` pair the node runs.
//! - [`ctx`]: `Ctx`, a method's view of the running thread: nested invocations, object
//!   creation and per-object storage pages.
//! - [`reference`](mod@reference): `Ref<T>`, a typed, by-value reference to another object, carrying
//!   its capability.
//! - [`cap`]: `Cap`, a capability token in transit (opaque here).
//! - [`rights`]: `Rights`, what a capability allows (read, write, admin, delegate, migrate).
//! - [`thread`]: the thread context that travels in every invocation message.
//!
//! This crate holds vocabulary only: no tokio, tarpc or sled. Classes depend on it and
//! never on the daemon.
//!
//! A class is a struct with `#[derive(Object)]` and an `impl` with `#[methods]`: `&self`
//! methods are reads, `&mut self` methods writes, and the metadata the node and `clouds
//! describe` show comes from the signatures:
//!
//! ```
//! use clouds::object::{MethodTable, ObjectState};
//! use clouds::{methods, Access, Object};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Object, Default, Serialize, Deserialize)]
//! pub struct Tally { count: u64 }
//!
//! #[methods]
//! impl Tally {
//!     pub fn count(&self) -> u64 { self.count }
//!     pub fn add(&mut self, n: u64) -> u64 { self.count += n; self.count }
//! }
//!
//! let info = Tally::class_info();
//! assert_eq!((Tally::CLASS, info.methods.len()), ("Tally", 2));
//! let add = info.method("add").unwrap();
//! assert_eq!((add.access, add.signature()), (Access::Write, "add(n: u64) -> u64".to_string()));
//! assert!(info.method("sub").is_err(), "NoSuchMethod, listing the methods there are");
//! ```

#![warn(missing_docs)]

pub mod cap;
pub mod codec;
pub mod ctx;
pub mod error;
pub mod id;
pub mod object;
pub mod reference;
pub mod rights;
pub mod strategy;
pub mod thread;
pub mod value;

pub use cap::Cap;
pub use clouds_macros::{methods, Object};
pub use codec::Codec;
pub use ctx::{Backend, Ctx, Pages, Storage};
pub use error::InvokeError;
pub use id::{CallId, NodeId, ObjectId, ThreadId};
pub use object::{class_of, Access, Class, ClassInfo, Instance, MethodInfo, Object, ParamInfo};
pub use reference::{RawRef, Ref};
pub use rights::Rights;
pub use strategy::Strategy;
pub use thread::{ActionRef, Frame, ThreadCtx};
pub use value::Value;

/// A boxed, sendable future: how async work crosses the `dyn` boundaries of this crate.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Items the generated code names. Not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::codec::{encode_reply, ArgDecoder};
    pub use crate::object::{MethodTable, ObjectState};
    pub use crate::reference::StubOf;
    pub use crate::BoxFuture;
    pub use serde;
    pub use std::boxed::Box;
    pub use std::string::{String, ToString};
    pub use std::vec::Vec;

    /// The error when a dispatch table is asked for a method it does not have in this
    /// access mode: unknown, or a read asked to write (or the reverse).
    pub fn not_dispatched(info: &crate::ClassInfo, method: &str, access: crate::Access) -> crate::InvokeError {
        match info.method(method) {
            Err(e) => e,
            Ok(m) => crate::InvokeError::invalid(format!("`{method}` is a {} method, not a {access} method", m.access)),
        }
    }
}
