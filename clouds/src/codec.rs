//! Argument and result codecs.
//!
//! People write arguments as JSON (the CLI); programs send a compact binary form
//! (postcard: object to object, client library). Arguments travel as one message: a JSON
//! array, or the postcard encoding of the argument tuple, which is the concatenation of
//! each argument's encoding. Results come back in the codec of the request.

use crate::error::InvokeError;
use crate::object::MethodInfo;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// How deep JSON may nest, everywhere (arguments, initial states, results): serde_json's
/// recursion limit, which every reader of JSON in the system uses. Deeper is refused.
pub const MAX_JSON_DEPTH: usize = 128;

/// How an invocation's arguments and result are encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Codec {
    /// A JSON array of arguments; the result is JSON text.
    Json,
    /// postcard: the argument tuple, and the result value.
    Binary,
}

impl Codec {
    /// `value` in this codec's bytes.
    pub fn encode<T: Serialize + ?Sized>(self, value: &T) -> Result<Vec<u8>, String> {
        match self {
            Codec::Json => serde_json::to_vec(value).map_err(|e| e.to_string()),
            Codec::Binary => postcard::to_stdvec(value).map_err(|e| e.to_string()),
        }
    }

    /// A value of type `T` from this codec's bytes; the error says what did not fit.
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, String> {
        match self {
            Codec::Json => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
            Codec::Binary => postcard::from_bytes(bytes).map_err(|e| e.to_string()),
        }
    }
}

/// Encodes a method's return value in the request's codec.
pub fn encode_reply<T: Serialize>(codec: Codec, value: &T) -> Result<Vec<u8>, InvokeError> {
    codec.encode(value).map_err(|e| InvokeError::storage(format!("could not encode the result: {e}")))
}

/// Decodes a method's arguments one at a time, so that an error names the argument.
/// The generated dispatch makes one, calls `next_arg` per parameter, then `finish`.
pub struct ArgDecoder<'a> {
    method: &'a MethodInfo,
    source: Source<'a>,
    index: usize,
}

enum Source<'a> {
    Json(std::vec::IntoIter<serde_json::Value>),
    Binary(&'a [u8]),
}

impl<'a> ArgDecoder<'a> {
    /// A decoder of `args` (this codec's bytes) for `method`'s parameters, one at a time.
    pub fn new(method: &'a MethodInfo, codec: Codec, args: &'a [u8]) -> Result<Self, InvokeError> {
        let source = match codec {
            Codec::Binary => Source::Binary(args),
            Codec::Json => {
                let parsed: serde_json::Value = if args.is_empty() {
                    serde_json::Value::Array(vec![])
                } else {
                    serde_json::from_slice(args)
                        .map_err(|e| bad(method, format!("arguments are not valid JSON: {e}")))?
                };
                let serde_json::Value::Array(items) = parsed else {
                    return Err(bad(method, "arguments must be a JSON array".into()));
                };
                if items.len() != method.params.len() {
                    return Err(bad(
                        method,
                        format!(
                            "expected {} argument{}, got {}",
                            method.params.len(),
                            if method.params.len() == 1 { "" } else { "s" },
                            items.len()
                        ),
                    ));
                }
                Source::Json(items.into_iter())
            }
        };
        Ok(ArgDecoder { method, source, index: 0 })
    }

    /// Decodes the next argument.
    pub fn next_arg<T: DeserializeOwned>(&mut self) -> Result<T, InvokeError> {
        let param = &self.method.params[self.index];
        self.index += 1;
        let result = match &mut self.source {
            Source::Json(items) => {
                let item = items.next().unwrap_or(serde_json::Value::Null);
                serde_json::from_value(item).map_err(|e| e.to_string())
            }
            Source::Binary(rest) => match postcard::take_from_bytes::<T>(rest) {
                Ok((value, tail)) => {
                    *rest = tail;
                    Ok(value)
                }
                Err(e) => Err(e.to_string()),
            },
        };
        result.map_err(|e| bad(self.method, format!("argument `{}` (expected {}): {e}", param.name, param.ty)))
    }

    /// Checks that nothing is left over.
    pub fn finish(self) -> Result<(), InvokeError> {
        match self.source {
            Source::Binary(rest) if !rest.is_empty() => {
                Err(bad(self.method, format!("{} bytes left over after the last argument", rest.len())))
            }
            _ => Ok(()),
        }
    }
}

fn bad(method: &MethodInfo, reason: String) -> InvokeError {
    InvokeError::BadArgs { method: method.name.clone(), signature: method.signature(), reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::{Access, ParamInfo};

    fn method() -> MethodInfo {
        MethodInfo {
            name: "put".into(),
            access: Access::Write,
            params: vec![
                ParamInfo { name: "key".into(), ty: "String".into() },
                ParamInfo { name: "n".into(), ty: "i64".into() },
            ],
            returns: "()".into(),
            is_async: false,
            atomic: false,
        }
    }

    fn decode(codec: Codec, bytes: &[u8]) -> Result<(String, i64), InvokeError> {
        let m = method();
        let mut d = ArgDecoder::new(&m, codec, bytes)?;
        let a = d.next_arg::<String>()?;
        let b = d.next_arg::<i64>()?;
        d.finish()?;
        Ok((a, b))
    }

    #[test]
    fn json_and_binary_decode_the_same_arguments() {
        let json = decode(Codec::Json, br#"["k", 5]"#).unwrap();
        let bin = decode(Codec::Binary, &postcard::to_stdvec(&("k", 5i64)).unwrap()).unwrap();
        assert_eq!(json, ("k".to_string(), 5));
        assert_eq!(bin, json);
    }

    #[test]
    fn errors_name_the_argument_and_the_signature() {
        let err = decode(Codec::Json, br#"["k", "five"]"#).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("put(key: String, n: i64) -> ()"), "{text}");
        assert!(text.contains("argument `n` (expected i64)"), "{text}");
        let err = decode(Codec::Json, br#"["k"]"#).unwrap_err();
        assert!(err.to_string().contains("expected 2 arguments, got 1"), "{err}");
        let err = decode(Codec::Json, br#"{"k": 1}"#).unwrap_err();
        assert!(err.to_string().contains("must be a JSON array"), "{err}");
        let err = decode(Codec::Json, br#"["k", 1"#).unwrap_err();
        assert!(err.to_string().contains("not valid JSON"), "{err}");
    }

    #[test]
    fn binary_rejects_trailing_and_truncated_input() {
        let mut bytes = postcard::to_stdvec(&("k", 5i64)).unwrap();
        bytes.push(0);
        assert!(decode(Codec::Binary, &bytes).unwrap_err().to_string().contains("left over"));
        let bytes = postcard::to_stdvec(&("k",)).unwrap();
        assert!(matches!(decode(Codec::Binary, &bytes), Err(InvokeError::BadArgs { .. })));
    }
}
