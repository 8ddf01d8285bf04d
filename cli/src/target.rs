//! Turning what the user typed into object ids, methods and arguments.

use crate::exit::CliError;
use client::Client;
use clouds::{InvokeError, ObjectId, RawRef};
use naming::Path;

/// The address of a node as typed: `HOST:PORT`, the host a name (`localhost`) or an
/// address; a name is looked up, its first address taken.
pub async fn node_addr(text: &str) -> Result<std::net::SocketAddr, CliError> {
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    let bad = |why: String| {
        CliError::Usage(format!(
            "`{text}` is not a node address ({why}; expected HOST:PORT, such as 127.0.0.1:7100 or localhost:7100)"
        ))
    };
    if !text.contains(':') {
        return Err(bad("no port".into()));
    }
    let mut found = tokio::net::lookup_host(text).await.map_err(|e| bad(e.to_string()))?;
    found.next().ok_or_else(|| bad("the name has no address".into()))
}

/// A target as typed: a UUID or a name.
pub enum Target {
    Id(ObjectId),
    Name(Path),
}

pub fn parse_target(text: &str) -> Result<Target, CliError> {
    if let Ok(id) = text.parse::<ObjectId>() {
        return Ok(Target::Id(id));
    }
    text.parse::<Path>().map(Target::Name).map_err(CliError::Usage)
}

/// `counters/a.incr` -> (`counters/a`, `incr`): split at the last `.`.
pub fn split_call(call: &str) -> Result<(&str, &str), CliError> {
    match call.rsplit_once('.') {
        Some((target, method)) if !target.is_empty() && !method.is_empty() => Ok((target, method)),
        _ => Err(CliError::Usage(format!("`{call}` is not TARGET.METHOD (for example `counters/a.incr`)"))),
    }
}

/// Where an input's text comes from: `-` stdin (once per command), `@FILE` a file, `@@...`
/// the literal `@...`, anything else itself. One trailing newline of stdin or a file is
/// dropped, as the shell does for `$(cat FILE)`.
pub fn read_input(text: &str, stdin_used: &mut bool) -> Result<String, CliError> {
    let strip = |mut t: String| {
        if t.ends_with('\n') {
            t.pop();
            if t.ends_with('\r') {
                t.pop();
            }
        }
        t
    };
    if text == "-" {
        if std::mem::replace(stdin_used, true) {
            return Err(CliError::Usage("only one input may come from stdin (`-`)".into()));
        }
        let mut read = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut read)
            .map_err(|e| CliError::Usage(format!("cannot read stdin (for `-`): {e}")))?;
        return Ok(strip(read));
    }
    if let Some(literal) = text.strip_prefix("@@") {
        return Ok(format!("@{literal}"));
    }
    if let Some(path) = text.strip_prefix('@') {
        let read = std::fs::read_to_string(path).map_err(|e| {
            CliError::Usage(format!(
                "cannot read `{}` (for `@{}`): {e}; `@@...` is a literal `@...`",
                shorten(path, 80),
                shorten(path, 80)
            ))
        })?;
        return Ok(strip(read));
    }
    Ok(text.to_string())
}

/// Each argument as JSON, or as a string when it is not JSON.
pub fn parse_arg(text: &str) -> Result<serde_json::Value, CliError> {
    match serde_json::from_str(text) {
        Ok(v) => Ok(v),
        // JSON too deep for any node to read (serde_json's limit, the same everywhere):
        // refused, not passed on as a string.
        Err(e) if e.to_string().contains("recursion limit") => Err(CliError::Invoke(InvokeError::invalid(format!(
            "argument `{}` is JSON nested deeper than {} levels, the most a node reads",
            shorten(text, 40),
            clouds::codec::MAX_JSON_DEPTH
        )))),
        Err(_) => Ok(serde_json::Value::String(text.to_string())),
    }
}

/// `text`, or its start and length when it is longer than `max` characters: what error
/// messages quote of an input.
pub fn shorten(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_string();
    }
    let head: String = text.chars().take(max.saturating_sub(3)).collect();
    let tail: String = text.chars().skip(count - 3).collect();
    format!("{head}…{tail} ({count} characters)")
}

/// The object a target names (with the capability its directory entry hands out, if
/// any), and its class when the name service knows it.
pub async fn resolve(client: &Client, target: &Target) -> Result<(RawRef, Option<String>), CliError> {
    match target {
        Target::Id(id) => Ok((RawRef::new(*id), None)),
        Target::Name(path) => {
            let root = root(client).await?;
            let entry = naming::resolve(&client.ctx(), &root, path).await?;
            Ok((entry.raw(), Some(entry.class)))
        }
    }
}

/// The cluster's root directory, with the wallet's capability for it (asked for if it
/// has none: `Client::root_ref`).
pub async fn root(client: &Client) -> Result<RawRef, CliError> {
    Ok(client.root_ref().await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_split_at_the_last_dot() {
        assert_eq!(split_call("counters/a.incr").ok(), Some(("counters/a", "incr")));
        assert_eq!(split_call("v1.2/x.get").ok(), Some(("v1.2/x", "get")));
        assert!(split_call("noop").is_err());
        assert!(split_call("a.").is_err());
    }

    #[test]
    fn inputs_come_from_files_or_are_literal() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("arg.json");
        std::fs::write(&file, "[1, 2]\n").unwrap();
        let mut stdin = false;
        assert_eq!(read_input(&format!("@{}", file.display()), &mut stdin).ok(), Some("[1, 2]".into()));
        assert_eq!(read_input("@@alice", &mut stdin).ok(), Some("@alice".into()));
        assert_eq!(read_input("plain", &mut stdin).ok(), Some("plain".into()));
        let missing = read_input("@/no/such/file", &mut stdin).err().unwrap().to_string();
        assert!(missing.contains("cannot read `/no/such/file`"), "{missing}");
        let mut used = true;
        assert!(read_input("-", &mut used).err().unwrap().to_string().contains("only one input"));
    }

    #[test]
    fn args_are_json_or_strings() {
        assert_eq!(parse_arg("5").ok(), Some(serde_json::json!(5)));
        assert_eq!(parse_arg("[1,2]").ok(), Some(serde_json::json!([1, 2])));
        assert_eq!(parse_arg("\"x\"").ok(), Some(serde_json::json!("x")));
        assert_eq!(parse_arg("alice").ok(), Some(serde_json::json!("alice")));
        assert_eq!(parse_arg("{broken").ok(), Some(serde_json::json!("{broken")));
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(parse_arg(&deep).err().unwrap().to_string().contains("nested deeper than 128 levels"));
        assert_eq!(shorten("abc", 5), "abc");
        assert_eq!(shorten(&format!("`{}`:", "x".repeat(100)), 10), "`xxxxxx…x`: (103 characters)");
    }
}
