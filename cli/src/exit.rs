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
    /// An error, and the likely meant word: `did you mean ...?`.
    Hinted(Box<CliError>, String),
}

/// Of `candidates`, the one `word` most likely misspells: the closest by edit distance
/// (transpositions count once), if within a third of its length (at least 1, at most 3).
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let most = (word.chars().count() / 3).clamp(1, 3);
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, _)| *d <= most)
        .min()
        .map(|(_, c)| c)
}

impl From<InvokeError> for CliError {
    fn from(e: InvokeError) -> Self {
        CliError::Invoke(e)
    }
}

impl CliError {
    pub fn code(&self) -> u8 {
        match self {
            CliError::Hinted(e, _) => e.code(),
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
    /// With a suggestion, when the error names a word that was likely misspelt and the
    /// choices are in the error itself (a method, a class).
    pub fn hinted(self) -> CliError {
        let hint = match &self {
            CliError::Invoke(InvokeError::NoSuchMethod { method, available, .. }) => {
                did_you_mean(method, available.iter().map(String::as_str))
            }
            CliError::Invoke(InvokeError::NoSuchClass { class, available }) => {
                did_you_mean(class, available.iter().map(String::as_str))
            }
            _ => None,
        };
        match hint.map(str::to_string) {
            Some(hint) => CliError::Hinted(Box::new(self), hint),
            None => self,
        }
    }

    /// A short, stable name of what went wrong (`usage`, `name_taken`, `failed`, or the
    /// invocation error's kind: `not_found`, `denied`, ...), for `--json`.
    pub fn kind(&self) -> &'static str {
        match self {
            CliError::Hinted(e, _) => e.kind(),
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
            CliError::Hinted(e, hint) => write!(f, "{e}; did you mean `{hint}`?"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::did_you_mean;

    #[test]
    fn suggestions_are_close_and_few() {
        let methods = ["get", "incr", "add_from"];
        assert_eq!(did_you_mean("inrc", methods), Some("incr"), "a transposition");
        assert_eq!(did_you_mean("icnr", methods), Some("incr"));
        assert_eq!(did_you_mean("gte", methods), Some("get"));
        assert_eq!(did_you_mean("add-from", methods), Some("add_from"));
        assert_eq!(did_you_mean("delete", methods), None, "nothing close");
        assert_eq!(did_you_mean("Countr", ["Counter", "Account"]), Some("Counter"));
        assert_eq!(did_you_mean("node-9", ["node-1", "node-2"]), Some("node-1"), "one of the nearest");
    }
}
