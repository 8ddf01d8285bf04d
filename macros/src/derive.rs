//! `#[derive(Object)]`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

pub fn expand(input: &syn::DeriveInput) -> syn::Result<TokenStream> {
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &input.generics,
            "an object class cannot be generic: each class is one concrete type registered by name",
        ));
    }
    // A bad attribute is one error; the impls still come (at version 1), so that no
    // cascade of "not implemented" errors follows it.
    let (attrs, bad) = match object_attrs(&input.attrs) {
        Ok(a) => (a, None),
        Err(e) => (ObjectAttrs::default(), Some(e.into_compile_error())),
    };
    let ObjectAttrs { version, placement, labels, pinned } = attrs;
    let placement = match placement {
        Some(p) => quote!(::core::option::Option::Some(#p)),
        None => quote!(::core::option::Option::None),
    };
    let name = &input.ident;
    let vis = &input.vis;
    let class = name.to_string();
    let stub = format_ident!("{}Stub", name);
    let doc = format!("Typed stubs for [`{class}`]: what `Ref<{class}>` dereferences to.");
    Ok(quote! {
        #bad

        impl ::clouds::__private::ObjectState for #name {
            const CLASS: &'static str = #class;
            const FORMAT: u32 = #version;
            const PLACEMENT: ::core::option::Option<&'static str> = #placement;
            const LABELS: &'static [&'static str] = &[#(#labels),*];
            const PINNED: bool = #pinned;
            type Stub = #stub;
        }

        #[doc = #doc]
        #[derive(Clone, Debug, PartialEq, Eq)]
        #vis struct #stub {
            raw: ::clouds::RawRef,
        }

        impl ::clouds::__private::StubOf for #stub {
            fn from_raw(raw: ::clouds::RawRef) -> Self {
                #stub { raw }
            }
            fn raw(&self) -> &::clouds::RawRef {
                &self.raw
            }
        }
    })
}

/// What `#[object(...)]` says about a class.
struct ObjectAttrs {
    /// The format version of its stored state (default 1): a node refuses to take, by a
    /// move, an object whose state has a format its class does not read.
    version: u32,
    /// Its default placement policy (checked when the node reads it: `least-loaded`...).
    placement: Option<String>,
    /// Labels a node must carry to hold objects of the class.
    labels: Vec<String>,
    /// Its objects never move on their own (rebalancing, affinity); by hand they still do.
    pinned: bool,
}

impl Default for ObjectAttrs {
    fn default() -> Self {
        ObjectAttrs { version: 1, placement: None, labels: Vec::new(), pinned: false }
    }
}

/// `#[object(version = N, placement = "POLICY", labels = "a,b=c", pinned)]`, all optional.
fn object_attrs(attrs: &[syn::Attribute]) -> syn::Result<ObjectAttrs> {
    let mut out = ObjectAttrs::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("object")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("version") {
                let lit: syn::LitInt = meta.value()?.parse()?;
                out.version = lit.base10_parse()?;
                if out.version == 0 {
                    return Err(meta.error("the state format version starts at 1"));
                }
                Ok(())
            } else if meta.path.is_ident("placement") {
                let lit: syn::LitStr = meta.value()?.parse()?;
                if lit.value().is_empty() {
                    return Err(meta.error("the placement policy is empty; expected for example `least-loaded`"));
                }
                out.placement = Some(lit.value());
                Ok(())
            } else if meta.path.is_ident("pinned") {
                out.pinned = true;
                Ok(())
            } else if meta.path.is_ident("labels") {
                let lit: syn::LitStr = meta.value()?.parse()?;
                out.labels = lit.value().split(',').map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect();
                Ok(())
            } else {
                Err(meta.error(
                    "unknown `object` attribute; expected `version = N`, `placement = \"POLICY\"`, \
                     `labels = \"KEY=VALUE,...\"` or `pinned`",
                ))
            }
        })?;
    }
    Ok(out)
}
