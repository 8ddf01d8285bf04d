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
    NotFound {
        /// The object asked for.
        id: ObjectId,
    },

    /// The name service has no binding for this path.
    #[error("no object is bound to the name `{path}`")]
    NameNotFound {
        /// The path that was looked up.
        path: String,
    },

    /// The class is not registered on the node.
    #[error("unknown class `{class}`; this node has: {}", .available.join(", "))]
    NoSuchClass {
        /// The class asked for.
        class: String,
        /// The classes the node has.
        available: Vec<String>,
    },

    /// The object's class has no method by that name.
    #[error("class `{class}` has no method `{method}`; its methods are: {}", .available.join(", "))]
    NoSuchMethod {
        /// The object's class.
        class: String,
        /// The method asked for.
        method: String,
        /// The methods the class has.
        available: Vec<String>,
    },

    /// The arguments do not fit the method's signature. Nothing ran.
    #[error("bad arguments for {signature}: {reason}")]
    BadArgs {
        /// The method called.
        method: String,
        /// Its signature, as `describe` shows it.
        signature: String,
        /// What did not fit.
        reason: String,
    },

    /// A request that is malformed in itself (an invalid name, initial state that does not
    /// fit the class). Nothing changed.
    #[error("invalid request: {reason}")]
    Invalid {
        /// What is wrong with the request, and what was expected.
        reason: String,
    },

    /// The capability check failed.
    #[error("denied: {reason}")]
    Denied {
        /// Which check failed.
        reason: String,
    },

    /// The node that holds the object cannot be reached.
    #[error("{node} is unavailable: {reason}")]
    Unavailable {
        /// The node that could not be reached (`node-3`).
        node: String,
        /// Why: the transport's error, or what the cluster knows of the node.
        reason: String,
    },

    /// The thread's deadline passed; effects not yet committed were rolled back.
    #[error("deadline exceeded after {elapsed_ms} ms (in {method} on {object})")]
    DeadlineExceeded {
        /// The object the thread was in (or waiting for).
        object: ObjectId,
        /// The method it was running.
        method: String,
        /// How long the thread had run.
        elapsed_ms: u64,
    },

    /// The thread tried to re-enter an object it already holds in a conflicting mode.
    #[error("re-entrant call: thread re-entered {object} which it holds; call chain: {chain}")]
    Reentrancy {
        /// The object re-entered.
        object: ObjectId,
        /// The thread's call chain, outermost first.
        chain: String,
    },

    /// A cycle of threads waiting for each other; this invocation was chosen to fail.
    #[error("deadlock detected, cycle: {cycle}")]
    Deadlock {
        /// The threads and objects of the cycle.
        cycle: String,
    },

    /// The call chain grew past the hop limit.
    #[error("hop limit of {limit} frames exceeded; call chain: {chain}")]
    HopLimit {
        /// The node's hop limit.
        limit: usize,
        /// The thread's call chain, outermost first.
        chain: String,
    },

    /// The node sheds load; try again later.
    #[error("{node} is overloaded: {reason}")]
    Overloaded {
        /// The node that sheds load.
        node: NodeId,
        /// Which limit was reached.
        reason: String,
    },

    /// The method panicked; its writes were discarded and the object keeps its last
    /// committed state.
    #[error("method {method} panicked: {message}")]
    Panicked {
        /// The method that panicked.
        method: String,
        /// The panic's message.
        message: String,
    },

    /// The method returned its own error. `detail` is that error as JSON.
    #[error("{message}")]
    App {
        /// The error as the method's error type prints it.
        message: String,
        /// The error as JSON (`app_detail` decodes it).
        detail: String,
    },

    /// The object lives elsewhere now; the client library follows this by itself.
    #[error("object {id} moved to {to}")]
    Moved {
        /// The object.
        id: ObjectId,
        /// Where it went.
        to: NodeId,
    },

    /// An atomic action was rolled back on every node it touched: a call inside it failed
    /// (even one the method caught), a node it touched could not prepare, or it was
    /// chosen as a deadlock victim. Nothing it did is visible.
    #[error("atomic action aborted: {reason}")]
    Aborted {
        /// Why the action was rolled back.
        reason: String,
    },

    /// The node's store failed (disk full, corrupt record). Nothing was committed.
    #[error("storage error: {reason}")]
    Storage {
        /// The store's error.
        reason: String,
    },

    /// The node wrote the change but could not make it durable (its store failed to flush):
    /// it may or may not have been committed. The node then serves nothing more (it is
    /// `Unavailable`) until it restarts, and its restart settles it: read the object again
    /// then. An atomic action in doubt is committed on every node or on none.
    #[error("outcome in doubt: {reason}")]
    InDoubt {
        /// What failed, and how the outcome will be settled.
        reason: String,
    },
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
            InvokeError::InDoubt { .. } => "in_doubt",
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

    /// A failure of the node's store, with the store's error as the reason.
    pub fn storage(e: impl std::fmt::Display) -> Self {
        InvokeError::Storage { reason: e.to_string() }
    }

    /// A malformed request: `reason` says what was wrong and what was expected.
    ///
    /// ```
    /// let e = clouds::InvokeError::invalid("a page holds 1 to 100 objects, not 0");
    /// assert_eq!(e.kind(), "invalid");
    /// assert_eq!(e.to_string(), "invalid request: a page holds 1 to 100 objects, not 0");
    /// ```
    pub fn invalid(reason: impl Into<String>) -> Self {
        InvokeError::Invalid { reason: reason.into() }
    }
}
