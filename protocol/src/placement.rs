//! The placement policies a creation may ask for. Where an object then goes is the node's
//! decision (`objectd::placement::choose`).

use clouds::NodeId;
use serde::{Deserialize, Serialize};

/// How to place a new object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Placement {
    /// On the node that handles the request.
    Local,
    /// On this node.
    On(NodeId),
    /// On a node chosen at random among the live nodes that have the class.
    Random,
}

impl std::str::FromStr for Placement {
    type Err = String;
    /// `local`, `random`, or a node id (`3` or `node-3`).
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "local" => Ok(Placement::Local),
            "random" => Ok(Placement::Random),
            other => other.parse::<NodeId>().map(Placement::On).map_err(|_| {
                format!("`{other}` is not a placement; expected `local`, `random` or a node id such as `2` or `node-2`")
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placements_parse() {
        assert_eq!("local".parse::<Placement>(), Ok(Placement::Local));
        assert_eq!("node-2".parse::<Placement>(), Ok(Placement::On(NodeId(2))));
        assert!("somewhere".parse::<Placement>().unwrap_err().contains("expected `local`, `random`"));
    }
}
