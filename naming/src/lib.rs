//! The user-level name service.
//!
//! Names are not known to the runtime, which knows only object ids. A name such as
//! `/bank/alice` is resolved by walking ordinary persistent objects of class
//! [`Directory`], each mapping path components to `(id, class)` entries, starting at the
//! node's root directory. So names persist, move and are protected like any object.
//!
//! Layout:
//! - [`path`]: `Path`, a parsed and validated name.
//! - [`directory`]: the `Directory` class.
//! - [`resolve`](mod@resolve): walking paths through directories with a `Ctx`: resolve, bind (creating
//!   missing parent directories), unbind, list.

pub mod directory;
pub mod path;
pub mod resolve;

pub use directory::{Directory, Entry, NameError};
pub use path::Path;
pub use resolve::{bind, list, resolve, unbind};

/// The classes of this crate, for a node's class registry.
pub fn classes() -> Vec<std::sync::Arc<dyn clouds::Class>> {
    vec![clouds::class_of::<Directory>()]
}
