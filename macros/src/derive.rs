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
    let name = &input.ident;
    let vis = &input.vis;
    let class = name.to_string();
    let stub = format_ident!("{}Stub", name);
    let doc = format!("Typed stubs for [`{class}`]: what `Ref<{class}>` dereferences to.");
    Ok(quote! {
        impl ::clouds::__private::ObjectState for #name {
            const CLASS: &'static str = #class;
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
