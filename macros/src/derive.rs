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
    let (version, bad) = match format_version(&input.attrs) {
        Ok(v) => (v, None),
        Err(e) => (1, Some(e.into_compile_error())),
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

/// The state format version from `#[object(version = N)]` (default 1): a node refuses to
/// take, by a move, an object whose state has a format its class does not read.
fn format_version(attrs: &[syn::Attribute]) -> syn::Result<u32> {
    let mut version = 1u32;
    for attr in attrs.iter().filter(|a| a.path().is_ident("object")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("version") {
                let lit: syn::LitInt = meta.value()?.parse()?;
                version = lit.base10_parse()?;
                if version == 0 {
                    return Err(meta.error("the state format version starts at 1"));
                }
                Ok(())
            } else {
                Err(meta.error("unknown `object` attribute; expected `version = N`"))
            }
        })?;
    }
    Ok(version)
}
