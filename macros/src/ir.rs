//! What `#[methods]` knows about a class after parsing.

pub struct Class {
    /// The type the impl block is for.
    pub ident: syn::Ident,
    pub methods: Vec<Method>,
}

pub struct Method {
    pub ident: syn::Ident,
    pub write: bool,
    /// `#[atomic]`: an atomic action's boundary.
    pub atomic: bool,
    pub is_async: bool,
    pub takes_ctx: bool,
    pub params: Vec<Param>,
    pub output: Output,
}

pub struct Param {
    pub ident: syn::Ident,
    pub ty: syn::Type,
}

#[allow(clippy::large_enum_variant)] // a handful per class, at compile time
pub enum Output {
    /// No return type.
    Unit,
    /// `-> T`.
    Value(syn::Type),
    /// `-> Result<T, E>`; `passthrough` when `E` is `InvokeError`, which reaches the
    /// caller as it is instead of as `App`.
    Fallible { ok: syn::Type, err: syn::Type, passthrough: bool },
}

/// A type as people read it: `Ref<Counter>`, not `Ref < Counter >`.
pub fn type_text(ty: &impl quote::ToTokens) -> String {
    let mut s = quote::quote!(#ty).to_string();
    for (from, to) in [
        (" <", "<"),
        ("< ", "<"),
        (" >", ">"),
        (" ,", ","),
        (" :: ", "::"),
        (":: ", "::"),
        ("& ", "&"),
        ("( ", "("),
        (" )", ")"),
        ("[ ", "["),
        (" ]", "]"),
        (" ;", ";"),
    ] {
        s = s.replace(from, to);
    }
    s
}
