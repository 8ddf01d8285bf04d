//! How a migration copies an object: named here so that methods can ask for a move
//! (`Ctx::migrate`) and the wire and the node agree on the same word.

use serde::{Deserialize, Serialize};

/// How a move copies the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Freeze, copy everything, switch. The freeze grows with the object's size.
    Eager,
    /// Copy pages while the object serves, again for those dirtied, freeze for the rest.
    Precopy,
    /// Freeze, move the state and the list of pages, switch at once; the target fetches a
    /// page from the source when a method first touches it, and pulls the rest behind.
    Lazy,
}

impl std::str::FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Strategy, String> {
        match s {
            "eager" => Ok(Strategy::Eager),
            "precopy" => Ok(Strategy::Precopy),
            "lazy" => Ok(Strategy::Lazy),
            other => Err(format!("`{other}` is not a migration strategy; expected `eager`, `precopy` or `lazy`")),
        }
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Strategy::Eager => "eager",
            Strategy::Precopy => "precopy",
            Strategy::Lazy => "lazy",
        })
    }
}
