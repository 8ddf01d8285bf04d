//! Paths: `/bank/alice` or `bank/alice` (the leading slash is optional).

use std::fmt;
use std::str::FromStr;

/// The longest path component.
pub const MAX_COMPONENT: usize = 255;

/// A validated path: a list of components, possibly empty (the root).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Path {
    components: Vec<String>,
}

impl Path {
    pub fn root() -> Self {
        Path { components: Vec::new() }
    }

    pub fn components(&self) -> &[String] {
        &self.components
    }

    pub fn is_root(&self) -> bool {
        self.components.is_empty()
    }

    /// This path with one more (already validated) component.
    pub fn child(&self, component: &str) -> Path {
        let mut components = self.components.clone();
        components.push(component.to_string());
        Path { components }
    }

    /// The parent directory and the last component; `None` for the root.
    pub fn split_last(&self) -> Option<(Path, &str)> {
        let (last, parent) = self.components.split_last()?;
        Some((Path { components: parent.to_vec() }, last))
    }
}

/// Checks one component: 1-255 characters of `A-Z a-z 0-9 . _ - @ +`, and not `.` or `..`.
pub fn validate_component(c: &str) -> Result<(), String> {
    if c.is_empty() {
        return Err("a path component is empty (two slashes in a row?)".into());
    }
    if c == "." || c == ".." {
        return Err(format!("`{c}` is not allowed as a path component"));
    }
    if c.len() > MAX_COMPONENT {
        return Err(format!("path component `{}...` is longer than {MAX_COMPONENT} bytes", &c[..16]));
    }
    if let Some(bad) = c.chars().find(|ch| !(ch.is_ascii_alphanumeric() || "._-@+".contains(*ch))) {
        return Err(format!("`{c}` contains `{bad}`; names use letters, digits and . _ - @ +"));
    }
    Ok(())
}

impl FromStr for Path {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let trimmed = s.strip_prefix('/').unwrap_or(s);
        let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
        if trimmed.is_empty() {
            return Ok(Path::root());
        }
        let components: Vec<String> = trimmed.split('/').map(str::to_string).collect();
        for c in &components {
            validate_component(c).map_err(|e| format!("invalid name `{s}`: {e}"))?;
        }
        Ok(Path { components })
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", self.components.join("/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_and_trailing_slashes_are_optional() {
        let a: Path = "/bank/alice".parse().unwrap();
        let b: Path = "bank/alice/".parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "/bank/alice");
        assert_eq!(a.components(), ["bank", "alice"]);
        assert!("/".parse::<Path>().unwrap().is_root());
        assert!("".parse::<Path>().unwrap().is_root());
    }

    #[test]
    fn split_last_gives_parent_and_name() {
        let p: Path = "a/b/c".parse().unwrap();
        let (parent, last) = p.split_last().unwrap();
        assert_eq!(parent.to_string(), "/a/b");
        assert_eq!(last, "c");
        assert!(Path::root().split_last().is_none());
        assert_eq!(Path::root().child("a").child("b").to_string(), "/a/b");
    }

    #[test]
    fn bad_names_are_rejected_with_the_reason() {
        for (bad, why) in
            [("a//b", "empty"), ("a/../b", "not allowed"), ("a b", "contains ` `"), ("a/b*", "contains `*`")]
        {
            let err = bad.parse::<Path>().unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
        assert!("x".repeat(300).parse::<Path>().unwrap_err().contains("longer than"));
        assert!("v1.2/my-obj_3@x+y".parse::<Path>().is_ok());
    }
}
