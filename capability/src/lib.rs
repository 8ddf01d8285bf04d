//! Capabilities: what a holder may do to one object.
//!
//! This crate is pure and synchronous. Today it defines the rights and the rule that maps
//! a method's access to the right it needs; signed, attenuable tokens and their
//! verification are built on these (issue 4). Until then the node does not check
//! capabilities: see `docs/semantics.md`.

use clouds::Access;
use serde::{Deserialize, Serialize};

/// A set of rights on one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Rights(u8);

impl Rights {
    pub const READ: Rights = Rights(1);
    pub const WRITE: Rights = Rights(1 << 1);
    pub const ADMIN: Rights = Rights(1 << 2);
    pub const DELEGATE: Rights = Rights(1 << 3);
    pub const MIGRATE: Rights = Rights(1 << 4);
    pub const NONE: Rights = Rights(0);
    pub const ALL: Rights = Rights(0b1_1111);

    pub fn contains(self, other: Rights) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn union(self, other: Rights) -> Rights {
        Rights(self.0 | other.0)
    }

    pub fn intersection(self, other: Rights) -> Rights {
        Rights(self.0 & other.0)
    }

    /// The right a method with this access needs.
    pub fn required_for(access: Access) -> Rights {
        match access {
            Access::Read => Rights::READ,
            Access::Write => Rights::WRITE,
        }
    }
}

impl std::str::FromStr for Rights {
    type Err = String;
    /// `read,write` and so on.
    fn from_str(s: &str) -> Result<Self, String> {
        s.split(',').map(str::trim).filter(|p| !p.is_empty()).try_fold(Rights::NONE, |acc, p| {
            let r = match p {
                "read" => Rights::READ,
                "write" => Rights::WRITE,
                "admin" => Rights::ADMIN,
                "delegate" => Rights::DELEGATE,
                "migrate" => Rights::MIGRATE,
                other => {
                    return Err(format!("unknown right `{other}`; rights are read, write, admin, delegate, migrate"))
                }
            };
            Ok(acc.union(r))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rights_parse_and_combine() {
        let rw: Rights = "read, write".parse().unwrap();
        assert!(rw.contains(Rights::READ) && rw.contains(Rights::WRITE));
        assert!(!rw.contains(Rights::ADMIN));
        assert_eq!(rw.intersection(Rights::READ), Rights::READ);
        assert!("read,fly".parse::<Rights>().unwrap_err().contains("unknown right `fly`"));
    }

    #[test]
    fn reads_need_read_and_writes_need_write() {
        assert_eq!(Rights::required_for(Access::Read), Rights::READ);
        assert_eq!(Rights::required_for(Access::Write), Rights::WRITE);
    }
}
