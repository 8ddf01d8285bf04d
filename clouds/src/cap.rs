//! `Cap`: a capability as it travels with a reference: the token's binary form, opaque
//! here (the `capability` crate reads, checks and makes tokens).
//!
//! In JSON it is the token's text form, `cap1.` and base64url, which is also what
//! `clouds cap grant` prints; in the binary codec it is the bytes themselves.

use base64::Engine as _;
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// The prefix of a capability's text form.
pub const CAP_TEXT_PREFIX: &str = "cap1.";

/// A capability token, encoded.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Cap(Vec<u8>);

impl Cap {
    /// A capability from its bytes (as `as_bytes` gave them).
    pub fn from_bytes(bytes: Vec<u8>) -> Cap {
        Cap(bytes)
    }

    /// The capability's bytes: a token, as `capability::Token` encodes it.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// `cap1.` and the bytes in base64url without padding.
    pub fn to_text(&self) -> String {
        format!("{CAP_TEXT_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&self.0))
    }

    /// Reads the text form. Says only whether it is text of the right shape; whether the
    /// token inside is valid is for the node that checks it.
    pub fn from_text(text: &str) -> Result<Cap, String> {
        let body = text.trim().strip_prefix(CAP_TEXT_PREFIX).ok_or_else(|| {
            format!("a capability's text starts with `{CAP_TEXT_PREFIX}`; this does not: `{}`", short(text))
        })?;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .map(Cap)
            .map_err(|e| format!("a capability's text is base64url after `{CAP_TEXT_PREFIX}`: {e}"))
    }
}

fn short(text: &str) -> String {
    text.chars().take(24).collect()
}

impl fmt::Debug for Cap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.to_text();
        write!(f, "Cap({}…, {} bytes)", &text[..text.len().min(16)], self.0.len())
    }
}

impl Serialize for Cap {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_text())
        } else {
            s.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Cap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let text = String::deserialize(d)?;
            Cap::from_text(&text).map_err(de::Error::custom)
        } else {
            struct Bytes;
            impl<'de> de::Visitor<'de> for Bytes {
                type Value = Cap;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("capability bytes")
                }
                fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Cap, E> {
                    Ok(Cap(v.to_vec()))
                }
                fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Cap, E> {
                    Ok(Cap(v))
                }
                fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Cap, A::Error> {
                    let mut out = Vec::new();
                    while let Some(b) = seq.next_element()? {
                        out.push(b);
                    }
                    Ok(Cap(out))
                }
            }
            d.deserialize_byte_buf(Bytes)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_binary_forms_round_trip() {
        let cap = Cap::from_bytes(vec![1, 0, 255, 7]);
        assert_eq!(Cap::from_text(&cap.to_text()).unwrap(), cap);
        let json = serde_json::to_string(&cap).unwrap();
        assert!(json.starts_with("\"cap1."), "{json}");
        assert_eq!(serde_json::from_str::<Cap>(&json).unwrap(), cap);
        let bin = postcard::to_stdvec(&cap).unwrap();
        assert_eq!(postcard::from_bytes::<Cap>(&bin).unwrap(), cap);
    }

    #[test]
    fn text_of_another_shape_is_refused_with_what_was_expected() {
        assert!(Cap::from_text("hello").unwrap_err().contains("starts with `cap1.`"));
        assert!(Cap::from_text("cap1.!!").unwrap_err().contains("base64url"));
    }
}
