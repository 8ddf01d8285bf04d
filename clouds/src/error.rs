//! `InvokeError`: the one error type an invocation returns, on every path.
//!
//! It is serializable (it crosses the network inside replies) and every variant prints a
//! sentence that says what went wrong and, where there is one, what to do next.

use crate::id::{NodeId, ObjectId};
use serde::{Deserialize, Serialize};

/// Why an invocation did not produce a result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum InvokeError {
    /// No object with this id exists on the node that was asked.
    #[error("object {id} not found")]
    NotFound { id: ObjectId },

    /// The name service has no binding for this path.
    #[error("no object is bound to the name `{path}`")]
    NameNotFound { path: String },

    /// The class is not registered on the node.
    #[error("unknown class `{class}`; this node has: {}", .available.join(", "))]
    NoSuchClass { class: String, available: Vec<String> },

    /// The object's class has no method by that name.
    #[error("class `{class}` has no method `{method}`; its methods are: {}", .available.join(", "))]
    NoSuchMethod { class: String, method: String, available: Vec<String> },

    /// The arguments do not fit the method's signature. Nothing ran.
    #[error("bad arguments for {signature}: {reason}")]
    BadArgs { method: String, signature: String, reason: String },

    /// A request that is malformed in itself (an invalid name, initial state that does not
    /// fit the class). Nothing changed.
    #[error("invalid request: {reason}")]
    Invalid { reason: String },

    /// The capability check failed.
    #[error("denied: {reason}")]
    Denied { reason: String },

    /// The node that holds the object cannot be reached.
    #[error("{node} is unavailable: {reason}")]
    Unavailable { node: String, reason: String },

    /// The thread's deadline passed; effects not yet committed were rolled back.
    #[error("deadline exceeded after {elapsed_ms} ms (in {method} on {object})")]
    DeadlineExceeded { object: ObjectId, method: String, elapsed_ms: u64 },

    /// The thread tried to re-enter an object it already holds in a conflicting mode.
    #[error("re-entrant call: thread re-entered {object} which it holds; call chain: {chain}")]
    Reentrancy { object: ObjectId, chain: String },

    /// A cycle of threads waiting for each other; this invocation was chosen to fail.
    #[error("deadlock detected, cycle: {cycle}")]
    Deadlock { cycle: String },

    /// The call chain grew past the hop limit.
    #[error("hop limit of {limit} frames exceeded; call chain: {chain}")]
    HopLimit { limit: usize, chain: String },

    /// The node sheds load; try again later.
    #[error("{node} is overloaded: {reason}")]
    Overloaded { node: NodeId, reason: String },

    /// The method panicked; its writes were discarded and the object keeps its last
    /// committed state.
    #[error("method {method} panicked: {message}")]
    Panicked { method: String, message: String },

    /// The method returned its own error. `detail` is that error as JSON.
    #[error("{message}")]
    App { message: String, detail: String },

    /// The object lives elsewhere now; the client library follows this by itself.
    #[error("object {id} moved to {to}")]
    Moved { id: ObjectId, to: NodeId },

    /// An atomic action was rolled back on every node it touched: a call inside it failed
    /// (even one the method caught), a node it touched could not prepare, or it was
    /// chosen as a deadlock victim. Nothing it did is visible.
    #[error("atomic action aborted: {reason}")]
    Aborted { reason: String },

    /// The node's store failed (disk full, corrupt record). Nothing was committed.
    #[error("storage error: {reason}")]
    Storage { reason: String },
}

impl InvokeError {
    /// A short, stable name of the variant, for logs, JSON output and exit codes.
    pub fn kind(&self) -> &'static str {
        match self {
            InvokeError::NotFound { .. } => "not_found",
            InvokeError::NameNotFound { .. } => "name_not_found",
            InvokeError::NoSuchClass { .. } => "no_such_class",
            InvokeError::NoSuchMethod { .. } => "no_such_method",
            InvokeError::BadArgs { .. } => "bad_args",
            InvokeError::Invalid { .. } => "invalid",
            InvokeError::Denied { .. } => "denied",
            InvokeError::Unavailable { .. } => "unavailable",
            InvokeError::DeadlineExceeded { .. } => "deadline_exceeded",
            InvokeError::Reentrancy { .. } => "reentrancy",
            InvokeError::Deadlock { .. } => "deadlock",
            InvokeError::HopLimit { .. } => "hop_limit",
            InvokeError::Overloaded { .. } => "overloaded",
            InvokeError::Panicked { .. } => "panicked",
            InvokeError::App { .. } => "app",
            InvokeError::Moved { .. } => "moved",
            InvokeError::Aborted { .. } => "aborted",
            InvokeError::Storage { .. } => "storage",
        }
    }

    /// A method's own error, as the caller receives it.
    pub fn app<E: Serialize + std::fmt::Display>(e: E) -> Self {
        InvokeError::App { message: e.to_string(), detail: serde_json::to_string(&e).unwrap_or_default() }
    }

    /// The method's own error, decoded as `E`, if this is an `App` error of that type:
    /// `match e.app_detail::<AccountError>() { Some(AccountError::InsufficientFunds { .. }) => .. }`.
    pub fn app_detail<E: serde::de::DeserializeOwned>(&self) -> Option<E> {
        match self {
            InvokeError::App { detail, .. } => serde_json::from_str(detail).ok(),
            _ => None,
        }
    }

    pub fn storage(e: impl std::fmt::Display) -> Self {
        InvokeError::Storage { reason: e.to_string() }
    }

    pub fn invalid(reason: impl Into<String>) -> Self {
        InvokeError::Invalid { reason: reason.into() }
    }
}
