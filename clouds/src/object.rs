//! The object model: what a class is, what the macros generate, and the type-erased form
//! the node runs.
//!
//! `#[derive(Object)]` implements [`ObjectState`] (class name, stub type);
//! `#[methods]` implements [`MethodTable`] (metadata and dispatch). Every type with both,
//! plus `Default` and serde, is an [`Object`]. The node never sees `T`: it holds an
//! `Arc<dyn Class>` per class and a `Box<dyn Instance>` per activated object.

use crate::codec::Codec;
use crate::ctx::Ctx;
use crate::error::InvokeError;
use crate::BoxFuture;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::marker::PhantomData;
use std::sync::Arc;

/// Read methods (`&self`) may run concurrently; write methods (`&mut self`) run alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// `&self`: reads, run concurrently.
    Read,
    /// `&mut self`: writes, run alone, in arrival order.
    Write,
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Access::Read => "read",
            Access::Write => "write",
        })
    }
}

/// One parameter of a method, as written in the source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamInfo {
    /// The parameter's name.
    pub name: String,
    /// Its Rust type, as written (`i64`, `Ref<Counter>`).
    pub ty: String,
}

impl ParamInfo {
    /// Whether the parameter holds object references (`Ref<T>`, `Vec<Ref<T>>`,
    /// `Option<Ref<T>>`...), which the CLI lets users write as paths or UUIDs.
    pub fn holds_refs(&self) -> bool {
        self.ty.contains("Ref<")
    }
}

/// A method's metadata: what `clouds describe` prints and what argument errors quote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MethodInfo {
    /// The method's name.
    pub name: String,
    /// Read or write.
    pub access: Access,
    /// Its parameters, in order.
    pub params: Vec<ParamInfo>,
    /// Its return type, as written.
    pub returns: String,
    /// Whether the method is `async`.
    pub is_async: bool,
    /// `#[atomic]`: the method is an atomic action's boundary (or joins the one it runs in).
    #[serde(default)]
    pub atomic: bool,
}

impl MethodInfo {
    /// `incr(by: i64) -> i64`
    pub fn signature(&self) -> String {
        let params: Vec<String> = self.params.iter().map(|p| format!("{}: {}", p.name, p.ty)).collect();
        format!("{}({}) -> {}", self.name, params.join(", "), self.returns)
    }
}

/// A class's metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassInfo {
    /// The class name objects are created under.
    pub name: String,
    /// The format version of its stored state (`#[object(version = N)]`).
    #[serde(default = "first_format")]
    pub format: u32,
    /// Its methods, in the order the `impl` defines them.
    pub methods: Vec<MethodInfo>,
    /// The placement policy its objects get when the creator names none
    /// (`#[object(placement = "least-loaded")]`).
    #[serde(default)]
    pub placement: Option<String>,
    /// Labels a node must carry to hold its objects (`#[object(labels = "gpu")]`).
    #[serde(default)]
    pub labels: Vec<String>,
    /// Its objects never move on their own (`#[object(pinned)]`).
    #[serde(default)]
    pub pinned: bool,
}

fn first_format() -> u32 {
    1
}

impl ClassInfo {
    /// The method called `name`, or `NoSuchMethod` listing the ones there are.
    pub fn method(&self, name: &str) -> Result<&MethodInfo, InvokeError> {
        self.methods.iter().find(|m| m.name == name).ok_or_else(|| InvokeError::NoSuchMethod {
            class: self.name.clone(),
            method: name.to_string(),
            available: self.methods.iter().map(|m| m.name.clone()).collect(),
        })
    }
}

/// Implemented by `#[derive(Object)]`.
pub trait ObjectState {
    /// The class name objects of this type are registered and created under.
    const CLASS: &'static str;
    /// The version of the stored state's format (`#[object(version = N)]`, default 1).
    const FORMAT: u32 = 1;
    /// The default placement policy (`#[object(placement = "POLICY")]`).
    const PLACEMENT: Option<&'static str> = None;
    /// Labels a node must carry to hold objects of the class (`#[object(labels = "a,b")]`).
    const LABELS: &'static [&'static str] = &[];
    /// Its objects never move on their own (`#[object(pinned)]`).
    const PINNED: bool = false;
    /// The generated type that `Ref<Self>` dereferences to; it carries the typed stubs.
    type Stub: crate::reference::StubOf;
}

/// Implemented by `#[methods]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no method table",
    note = "put `#[clouds::methods]` on the `impl {Self}` block that defines its methods"
)]
pub trait MethodTable {
    /// The class's name, methods and options.
    fn class_info() -> ClassInfo;
    /// Runs read method `method` with `args` on `&self`.
    fn dispatch_read<'a>(
        &'a self,
        ctx: &'a Ctx,
        method: &'a MethodInfo,
        codec: Codec,
        args: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, InvokeError>>;
    /// Runs write method `method` with `args` on `&mut self`.
    fn dispatch_write<'a>(
        &'a mut self,
        ctx: &'a Ctx,
        method: &'a MethodInfo,
        codec: Codec,
        args: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, InvokeError>>;
}

/// A complete class: state, methods, a default initial state, and serde.
///
/// State is stored with postcard, so it must not need `deserialize_any` (no untagged
/// enums, no `serde_json::Value`: use [`crate::Value`] instead).
pub trait Object: ObjectState + MethodTable + Default + Serialize + DeserializeOwned + Send + Sync + 'static {}

impl<T> Object for T where T: ObjectState + MethodTable + Default + Serialize + DeserializeOwned + Send + Sync + 'static {}

/// A class with its type erased: what a node's class registry holds.
pub trait Class: Send + Sync + 'static {
    /// The class's name, methods and options.
    fn info(&self) -> &ClassInfo;
    /// Activates an object from its stored state.
    fn instantiate(&self, state: &[u8]) -> Result<Box<dyn Instance>, InvokeError>;
    /// The stored form of a new object: `Default`, or the given JSON.
    fn initial_state(&self, json: Option<&serde_json::Value>) -> Result<Vec<u8>, InvokeError>;
    /// The stored state as JSON, for people.
    fn state_json(&self, state: &[u8]) -> Result<serde_json::Value, InvokeError>;
}

/// A field of an initial state that the class does not have would be dropped without a
/// word: it is refused instead, with the fields the class has.
fn refuse_unknown_fields<T: Object>(given: &serde_json::Value, state: &T) -> Result<(), InvokeError> {
    let (Some(given), Ok(serde_json::Value::Object(known))) = (given.as_object(), serde_json::to_value(state)) else {
        return Ok(());
    };
    let unknown: Vec<&str> = given.keys().filter(|k| !known.contains_key(*k)).map(String::as_str).collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let fields: Vec<&str> = known.keys().map(String::as_str).collect();
    Err(InvokeError::invalid(format!(
        "initial state does not fit class `{}`: it has no field {}; its fields are: {}",
        T::CLASS,
        unknown.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", "),
        if fields.is_empty() { "none".to_string() } else { fields.join(", ") }
    )))
}

/// An activated object with its type erased.
pub trait Instance: Send + Sync {
    /// Runs read method `method` with `args`.
    fn read<'a>(
        &'a self,
        ctx: &'a Ctx,
        method: &'a MethodInfo,
        codec: Codec,
        args: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, InvokeError>>;
    /// Runs write method `method` with `args`.
    fn write<'a>(
        &'a mut self,
        ctx: &'a Ctx,
        method: &'a MethodInfo,
        codec: Codec,
        args: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, InvokeError>>;
    /// The stored form of the current state.
    fn encode(&self) -> Result<Vec<u8>, InvokeError>;
}

impl<T: Object> Instance for T {
    fn read<'a>(
        &'a self,
        ctx: &'a Ctx,
        method: &'a MethodInfo,
        codec: Codec,
        args: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, InvokeError>> {
        self.dispatch_read(ctx, method, codec, args)
    }

    fn write<'a>(
        &'a mut self,
        ctx: &'a Ctx,
        method: &'a MethodInfo,
        codec: Codec,
        args: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, InvokeError>> {
        self.dispatch_write(ctx, method, codec, args)
    }

    fn encode(&self) -> Result<Vec<u8>, InvokeError> {
        encode_state(self)
    }
}

/// The stored form of a state value.
pub fn encode_state<T: Serialize>(state: &T) -> Result<Vec<u8>, InvokeError> {
    postcard::to_stdvec(state).map_err(|e| InvokeError::storage(format!("could not encode state: {e}")))
}

/// Reads a stored state value.
pub fn decode_state<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, InvokeError> {
    postcard::from_bytes(bytes).map_err(|e| InvokeError::storage(format!("stored state does not decode: {e}")))
}

struct ClassOf<T> {
    info: ClassInfo,
    _t: PhantomData<fn() -> T>,
}

impl<T: Object> Class for ClassOf<T> {
    fn info(&self) -> &ClassInfo {
        &self.info
    }

    fn instantiate(&self, state: &[u8]) -> Result<Box<dyn Instance>, InvokeError> {
        Ok(Box::new(decode_state::<T>(state)?))
    }

    fn initial_state(&self, json: Option<&serde_json::Value>) -> Result<Vec<u8>, InvokeError> {
        let state: T = match json {
            None => T::default(),
            Some(v) => {
                let state: T = serde_json::from_value(v.clone()).map_err(|e| {
                    InvokeError::invalid(format!("initial state does not fit class `{}`: {e}", T::CLASS))
                })?;
                refuse_unknown_fields::<T>(v, &state)?;
                state
            }
        };
        encode_state(&state)
    }

    fn state_json(&self, state: &[u8]) -> Result<serde_json::Value, InvokeError> {
        let state: T = decode_state(state)?;
        serde_json::to_value(&state).map_err(InvokeError::storage)
    }
}

/// The type-erased class of `T`, for a node's registry.
pub fn class_of<T: Object>() -> Arc<dyn Class> {
    let info = T::class_info();
    debug_assert_eq!(info.name, T::CLASS);
    Arc::new(ClassOf::<T> { info, _t: PhantomData })
}
