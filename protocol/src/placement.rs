//! The placement policies a creation may ask for. Where an object then goes is the node's
//! decision (`objectd::placement::choose`).

use clouds::{NodeId, ObjectId};
use serde::{Deserialize, Serialize};

/// How to place a new object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Placement {
    /// The class's declared policy if it has one, else the node's configured default.
    Default,
    /// On the node that handles the request.
    Local,
    /// On this node.
    On(NodeId),
    /// On a node chosen at random among the live nodes that have the class.
    Random,
    /// On the live node with the least busy time (then the fewest objects), counting what
    /// this node placed since each node last reported its load.
    LeastLoaded,
    /// Power of two choices: the lighter of two live nodes drawn at random.
    TwoChoices,
    /// On a node with this label (`KEY=VALUE`, or `KEY`), the least loaded of them.
    Label(String),
    /// On the node where this object is now.
    Near(ObjectId),
}

impl std::fmt::Display for Placement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Placement::Default => f.write_str("default"),
            Placement::Local => f.write_str("local"),
            Placement::On(node) => write!(f, "node:{}", node.0),
            Placement::Random => f.write_str("random"),
            Placement::LeastLoaded => f.write_str("least-loaded"),
            Placement::TwoChoices => f.write_str("two-choices"),
            Placement::Label(label) => write!(f, "label:{label}"),
            Placement::Near(id) => write!(f, "near:{id}"),
        }
    }
}

/// What `from_str` accepts, for error messages.
pub const POLICIES: &str =
    "`local`, `random`, `least-loaded`, `two-choices`, `node:N` (or `N`, `node-N`), `label:KEY=VALUE` or `near:OBJECT`";

impl std::str::FromStr for Placement {
    type Err = String;
    /// One of [`POLICIES`]; `near:` takes an object id here (the CLI resolves names first).
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a placement; expected {POLICIES}");
        match s {
            "default" => Ok(Placement::Default),
            "local" => Ok(Placement::Local),
            "random" => Ok(Placement::Random),
            "least-loaded" => Ok(Placement::LeastLoaded),
            "two-choices" => Ok(Placement::TwoChoices),
            other => {
                if let Some(node) = other.strip_prefix("node:") {
                    return node.parse::<NodeId>().map(Placement::On).map_err(|_| bad());
                }
                if let Some(label) = other.strip_prefix("label:") {
                    if label.is_empty() || label.contains(',') || label.starts_with('=') {
                        return Err(format!("`{s}`: a label is `KEY` or `KEY=VALUE`, without commas"));
                    }
                    return Ok(Placement::Label(label.to_string()));
                }
                if let Some(target) = other.strip_prefix("near:") {
                    return target
                        .parse::<ObjectId>()
                        .map(Placement::Near)
                        .map_err(|_| format!("`{s}`: `near:` takes an object's id (a UUID)"));
                }
                other.parse::<NodeId>().map(Placement::On).map_err(|_| bad())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placements_parse_and_print_back() {
        let id = ObjectId::new(NodeId(2));
        for (text, want) in [
            ("local", Placement::Local),
            ("random", Placement::Random),
            ("least-loaded", Placement::LeastLoaded),
            ("two-choices", Placement::TwoChoices),
            ("node:2", Placement::On(NodeId(2))),
            ("label:gpu=a100", Placement::Label("gpu=a100".into())),
            (&format!("near:{id}"), Placement::Near(id)),
        ] {
            let parsed = text.parse::<Placement>().unwrap();
            assert_eq!(parsed, want);
            assert_eq!(parsed.to_string(), text);
        }
        assert_eq!("node-2".parse::<Placement>(), Ok(Placement::On(NodeId(2))));
        assert_eq!("3".parse::<Placement>(), Ok(Placement::On(NodeId(3))));
        assert!("somewhere".parse::<Placement>().unwrap_err().contains("expected `local`, `random`"));
        assert!("label:".parse::<Placement>().unwrap_err().contains("KEY=VALUE"));
        assert!("near:bank".parse::<Placement>().unwrap_err().contains("object's id"));
        assert!("node:x".parse::<Placement>().is_err());
    }
}
