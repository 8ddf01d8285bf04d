//! Errors of the command line and their exit codes.

use clouds::InvokeError;
use std::fmt;

pub enum CliError {
    /// The command line itself is wrong.
    Usage(String),
    /// A name is taken.
    NameTaken { path: String, id: clouds::ObjectId },
    /// The node or the method said no.
    Invoke(InvokeError),
    /// A local operation failed (starting or stopping a cluster).
    Failed(String),
}

impl From<InvokeError> for CliError {
    fn from(e: InvokeError) -> Self {
        CliError::Invoke(e)
    }
}

impl CliError {
    pub fn code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Failed(_) => 1,
            CliError::NameTaken { .. } => 8,
            CliError::Invoke(e) => match e {
                InvokeError::NotFound { .. } | InvokeError::NameNotFound { .. } => 3,
                InvokeError::BadArgs { .. }
                | InvokeError::NoSuchMethod { .. }
                | InvokeError::NoSuchClass { .. }
                | InvokeError::Invalid { .. } => 4,
                InvokeError::Denied { .. } => 5,
                InvokeError::Unavailable { .. } => 6,
                InvokeError::App { .. } => 7,
                _ => 1,
            },
        }
    }
}

impl CliError {
    /// A short, stable name of what went wrong (`usage`, `name_taken`, `failed`, or the
    /// invocation error's kind: `not_found`, `denied`, ...), for `--json`.
    pub fn kind(&self) -> &'static str {
        match self {
            CliError::Usage(_) => "usage",
            CliError::NameTaken { .. } => "name_taken",
            CliError::Failed(_) => "failed",
            CliError::Invoke(e) => e.kind(),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(m) => write!(f, "{m}"),
            CliError::NameTaken { path, id } => {
                write!(f, "the name `{path}` is already bound (to {id}); nothing was created")
            }
            CliError::Invoke(e) => write!(f, "{e}"),
            CliError::Failed(m) => write!(f, "{m}"),
        }
    }
}
