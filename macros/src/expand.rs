//! IR -> generated code: metadata, dispatch table, typed stubs, type assertions.

use crate::ir::{type_text, Class, Method, Output};
use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::ItemImpl;

pub fn expand(item: &ItemImpl, class: &Class) -> TokenStream {
    let ident = &class.ident;
    let stub = format_ident!("{}Stub", ident);
    let infos = class.methods.iter().map(method_info);
    let reads = class.methods.iter().filter(|m| !m.write).map(dispatch_arm);
    let writes = class.methods.iter().filter(|m| m.write).map(dispatch_arm);
    let stubs = class.methods.iter().map(stub_method);
    let asserts = class.methods.iter().map(type_assertions);
    quote! {
        #item

        const _: () = {
            use ::clouds::__private::{Box, String, ToString, Vec};

            fn __assert_wire<T: ::clouds::__private::serde::Serialize + ::clouds::__private::serde::de::DeserializeOwned>() {}
            fn __assert_error<T: ::clouds::__private::serde::Serialize + ::core::fmt::Display>() {}
            #[allow(dead_code)]
            fn __assertions() { #(#asserts)* }

            impl ::clouds::__private::MethodTable for #ident {
                fn class_info() -> ::clouds::ClassInfo {
                    ::clouds::ClassInfo {
                        name: <#ident as ::clouds::__private::ObjectState>::CLASS.to_string(),
                        format: <#ident as ::clouds::__private::ObjectState>::FORMAT,
                        placement: <#ident as ::clouds::__private::ObjectState>::PLACEMENT.map(ToString::to_string),
                        labels: <#ident as ::clouds::__private::ObjectState>::LABELS.iter().map(|l| l.to_string()).collect(),
                        pinned: <#ident as ::clouds::__private::ObjectState>::PINNED,
                        methods: ::std::vec![#(#infos),*],
                    }
                }

                fn dispatch_read<'a>(
                    &'a self,
                    ctx: &'a ::clouds::Ctx,
                    method: &'a ::clouds::MethodInfo,
                    codec: ::clouds::Codec,
                    args: &'a [u8],
                ) -> ::clouds::__private::BoxFuture<'a, ::core::result::Result<Vec<u8>, ::clouds::InvokeError>> {
                    Box::pin(async move {
                        let _ = (ctx, codec, args);
                        match method.name.as_str() {
                            #(#reads)*
                            _ => ::core::result::Result::Err(::clouds::__private::not_dispatched(&Self::class_info(), &method.name, ::clouds::Access::Read)),
                        }
                    })
                }

                fn dispatch_write<'a>(
                    &'a mut self,
                    ctx: &'a ::clouds::Ctx,
                    method: &'a ::clouds::MethodInfo,
                    codec: ::clouds::Codec,
                    args: &'a [u8],
                ) -> ::clouds::__private::BoxFuture<'a, ::core::result::Result<Vec<u8>, ::clouds::InvokeError>> {
                    Box::pin(async move {
                        let _ = (ctx, codec, args);
                        match method.name.as_str() {
                            #(#writes)*
                            _ => ::core::result::Result::Err(::clouds::__private::not_dispatched(&Self::class_info(), &method.name, ::clouds::Access::Write)),
                        }
                    })
                }
            }

            impl #stub {
                #(#stubs)*
            }
        };
    }
}

fn method_info(m: &Method) -> TokenStream {
    let name = m.ident.to_string();
    let access = if m.write { quote!(::clouds::Access::Write) } else { quote!(::clouds::Access::Read) };
    let params = m.params.iter().map(|p| {
        let pname = p.ident.to_string();
        let ty = type_text(&p.ty);
        quote!(::clouds::ParamInfo { name: #pname.to_string(), ty: #ty.to_string() })
    });
    let returns = match &m.output {
        Output::Unit => "()".to_string(),
        Output::Value(t) => type_text(t),
        Output::Fallible { ok, err, .. } => format!("Result<{}, {}>", type_text(ok), type_text(err)),
    };
    let is_async = m.is_async;
    let atomic = m.atomic;
    quote! {
        ::clouds::MethodInfo {
            name: #name.to_string(),
            access: #access,
            params: ::std::vec![#(#params),*],
            returns: #returns.to_string(),
            is_async: #is_async,
            atomic: #atomic,
        }
    }
}

fn dispatch_arm(m: &Method) -> TokenStream {
    let name = m.ident.to_string();
    let ident = &m.ident;
    let vars: Vec<_> = (0..m.params.len()).map(|i| format_ident!("__arg{}", i)).collect();
    let tys = m.params.iter().map(|p| &p.ty);
    let ctx = m.takes_ctx.then(|| quote!(ctx,));
    let await_ = m.is_async.then(|| quote!(.await));
    let reply = match &m.output {
        Output::Unit | Output::Value(_) => quote!(::clouds::__private::encode_reply(codec, &__out)),
        Output::Fallible { passthrough: true, .. } => quote! {
            match __out {
                ::core::result::Result::Ok(v) => ::clouds::__private::encode_reply(codec, &v),
                ::core::result::Result::Err(e) => ::core::result::Result::Err(e),
            }
        },
        Output::Fallible { passthrough: false, .. } => quote! {
            match __out {
                ::core::result::Result::Ok(v) => ::clouds::__private::encode_reply(codec, &v),
                ::core::result::Result::Err(e) => ::core::result::Result::Err(::clouds::InvokeError::app(e)),
            }
        },
    };
    quote! {
        #name => {
            let mut __decoder = ::clouds::__private::ArgDecoder::new(method, codec, args)?;
            #( let #vars: #tys = __decoder.next_arg()?; )*
            __decoder.finish()?;
            let __out = self.#ident(#ctx #(#vars),*)#await_;
            #reply
        }
    }
}

fn stub_method(m: &Method) -> TokenStream {
    let ident = &m.ident;
    let name = ident.to_string();
    let params = m.params.iter().map(|p| {
        let (i, t) = (&p.ident, &p.ty);
        quote!(#i: #t)
    });
    let names: Vec<_> = m.params.iter().map(|p| &p.ident).collect();
    let ok = match &m.output {
        Output::Unit => quote!(()),
        Output::Value(t) => quote!(#t),
        Output::Fallible { ok, .. } => quote!(#ok),
    };
    let access = if m.write { "a write" } else { "a read" };
    let doc = format!("Invokes `{name}` ({access}) on the referenced object, on the thread of `ctx`.");
    quote! {
        #[doc = #doc]
        pub async fn #ident(&self, ctx: &::clouds::Ctx, #(#params),*) -> ::core::result::Result<#ok, ::clouds::InvokeError> {
            let __raw = ::clouds::__private::StubOf::raw(self);
            ctx.call(__raw, #name, &(#(&#names,)*)).await
        }
    }
}

/// Makes a non-serializable argument or result a compile error that points at its type.
fn type_assertions(m: &Method) -> TokenStream {
    let mut out = TokenStream::new();
    for p in &m.params {
        let ty = &p.ty;
        out.extend(quote_spanned!(ty.span()=> __assert_wire::<#ty>();));
    }
    match &m.output {
        Output::Unit => {}
        Output::Value(t) => out.extend(quote_spanned!(t.span()=> __assert_wire::<#t>();)),
        Output::Fallible { ok, err, .. } => {
            out.extend(quote_spanned!(ok.span()=> __assert_wire::<#ok>();));
            out.extend(quote_spanned!(err.span()=> __assert_error::<#err>();));
        }
    }
    out
}
