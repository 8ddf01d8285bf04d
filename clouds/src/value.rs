//! `Value`: any JSON value, storable in object state and passable through both codecs.
//!
//! `serde_json::Value` needs a self-describing format; the binary codec (postcard) is not
//! one. `Value` is a JSON value in JSON and its JSON text in binary formats.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
/// Any JSON value, as object state or an argument, in both codecs.
pub struct Value(pub serde_json::Value);

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            self.0.serialize(s)
        } else {
            s.serialize_str(&self.0.to_string())
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            serde_json::Value::deserialize(d).map(Value)
        } else {
            let text = String::deserialize(d)?;
            serde_json::from_str(&text).map(Value).map_err(D::Error::custom)
        }
    }
}

impl From<serde_json::Value> for Value {
    fn from(v: serde_json::Value) -> Self {
        Value(v)
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_both_codecs() {
        let v = Value(serde_json::json!({"a": [1, "x", null, 2.5], "b": {"c": true}}));
        let bin = postcard::to_stdvec(&v).unwrap();
        assert_eq!(postcard::from_bytes::<Value>(&bin).unwrap(), v);
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, r#"{"a":[1,"x",null,2.5],"b":{"c":true}}"#);
        assert_eq!(serde_json::from_str::<Value>(&json).unwrap(), v);
    }
}
