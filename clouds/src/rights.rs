//! Rights: what a capability allows on its object.

use crate::object::Access;
use serde::{Deserialize, Serialize};

/// A set of rights on one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Rights(u8);

impl Rights {
    /// Call read methods; `describe`.
    pub const READ: Rights = Rights(1);
    /// Call write methods.
    pub const WRITE: Rights = Rights(1 << 1);
    /// Delete the object, revoke its capabilities.
    pub const ADMIN: Rights = Rights(1 << 2);
    /// Pass the capability on to another key (attenuated).
    pub const DELEGATE: Rights = Rights(1 << 3);
    /// Move the object to another node.
    pub const MIGRATE: Rights = Rights(1 << 4);
    /// No right at all.
    pub const NONE: Rights = Rights(0);
    /// Every right: what the creator's owner capability holds.
    pub const ALL: Rights = Rights(0b1_1111);

    /// Whether every right of `other` is in `self`.
    ///
    /// ```
    /// use clouds::Rights;
    /// let rw: Rights = "read,write".parse().unwrap();
    /// assert!(rw.contains(Rights::READ) && !rw.contains(Rights::ADMIN));
    /// assert_eq!(rw.intersection(Rights::WRITE), Rights::WRITE);
    /// assert_eq!(rw.to_string(), "read,write");
    /// ```
    pub fn contains(self, other: Rights) -> bool {
        self.0 & other.0 == other.0
    }

    /// The rights in either.
    pub fn union(self, other: Rights) -> Rights {
        Rights(self.0 | other.0)
    }

    /// The rights in both.
    pub fn intersection(self, other: Rights) -> Rights {
        Rights(self.0 & other.0)
    }

    /// How many rights the set holds.
    pub fn count(self) -> u32 {
        self.0.count_ones()
    }

    /// The right a method with this access needs.
    pub fn required_for(access: Access) -> Rights {
        match access {
            Access::Read => Rights::READ,
            Access::Write => Rights::WRITE,
        }
    }
}

/// `read,write` and so on; `none` for the empty set.
impl std::fmt::Display for Rights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = [
            (Rights::READ, "read"),
            (Rights::WRITE, "write"),
            (Rights::ADMIN, "admin"),
            (Rights::DELEGATE, "delegate"),
            (Rights::MIGRATE, "migrate"),
        ]
        .iter()
        .filter(|(r, _)| self.contains(*r))
        .map(|(_, n)| *n)
        .collect();
        if names.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&names.join(","))
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
                "none" => Rights::NONE,
                other => {
                    return Err(format!(
                        "unknown right `{other}`; rights are read, write, admin, delegate, migrate (or none)"
                    ))
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
        assert_eq!(rw.to_string(), "read,write");
        assert_eq!(Rights::NONE.to_string(), "none");
        assert_eq!(Rights::ALL.to_string().parse::<Rights>().unwrap(), Rights::ALL);
    }

    #[test]
    fn reads_need_read_and_writes_need_write() {
        assert_eq!(Rights::required_for(Access::Read), Rights::READ);
        assert_eq!(Rights::required_for(Access::Write), Rights::WRITE);
    }
}
