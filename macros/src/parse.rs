//! Impl block -> IR, with the checks that make misuse a clear compile error.

use crate::ir::{Class, Method, Output, Param};
use syn::spanned::Spanned;
use syn::{FnArg, ImplItem, ItemImpl, Pat, ReturnType, Type};

/// Names a method cannot have, because `Ref<T>` or the generated code already uses them.
const RESERVED: &[&str] =
    &["id", "new", "clone", "deref", "raw", "from_raw", "class_info", "dispatch_read", "dispatch_write"];

pub fn class(item: &ItemImpl) -> syn::Result<Class> {
    if let Some((_, path, _)) = &item.trait_ {
        return Err(syn::Error::new_spanned(path, "#[methods] goes on an inherent impl block, not a trait impl"));
    }
    if !item.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(&item.generics, "#[methods] cannot be used on a generic impl block"));
    }
    let ident = match &*item.self_ty {
        Type::Path(p) if p.qself.is_none() && p.path.segments.len() == 1 => p.path.segments[0].ident.clone(),
        other => {
            return Err(syn::Error::new_spanned(
                other,
                "#[methods] expects `impl TypeName`, with the type named directly",
            ))
        }
    };
    let mut methods = Vec::new();
    for it in &item.items {
        if let ImplItem::Fn(f) = it {
            if let Some(m) = method(f)? {
                methods.push(m);
            }
        }
    }
    Ok(Class { ident, methods })
}

fn method(f: &syn::ImplItemFn) -> syn::Result<Option<Method>> {
    let exported = matches!(f.vis, syn::Visibility::Public(_));
    let mut inputs = f.sig.inputs.iter();
    let receiver = match inputs.next() {
        Some(FnArg::Receiver(r)) => r,
        _ => return Ok(None), // associated functions (constructors, helpers) stay plain Rust
    };
    if !exported {
        return Ok(None);
    }
    let name = f.sig.ident.to_string();
    if receiver.reference.is_none() {
        return Err(syn::Error::new_spanned(
            receiver,
            format!(
                "method `{name}` takes `self` by value; object methods take `&self` (a read) or `&mut self` (a write)"
            ),
        ));
    }
    if !f.sig.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &f.sig.generics,
            format!("method `{name}` is generic; object methods are called by name with encoded arguments, so each needs concrete types"),
        ));
    }
    if RESERVED.contains(&name.as_str()) {
        return Err(syn::Error::new_spanned(
            &f.sig.ident,
            format!("`{name}` is reserved: `Ref<T>` or the generated code already has an item of that name; rename the method"),
        ));
    }
    let write = receiver.mutability.is_some();
    let mut takes_ctx = false;
    let mut params = Vec::new();
    for (i, arg) in inputs.enumerate() {
        let FnArg::Typed(pt) = arg else { unreachable!("receiver only comes first") };
        if is_ctx(&pt.ty) {
            if i != 0 {
                return Err(syn::Error::new_spanned(&pt.ty, "`&Ctx` must be the first parameter after `self`"));
            }
            takes_ctx = true;
            continue;
        }
        let Pat::Ident(pi) = &*pt.pat else {
            return Err(syn::Error::new_spanned(&pt.pat, "object method parameters must be plain names, not patterns"));
        };
        if let Type::Reference(_) = &*pt.ty {
            return Err(syn::Error::new_spanned(
                &pt.ty,
                format!("argument `{}` is a reference; arguments travel by value, so take an owned type (String, Vec<T>, ...)", pi.ident),
            ));
        }
        params.push(Param { ident: pi.ident.clone(), ty: (*pt.ty).clone() });
    }
    let atomic = f.attrs.iter().any(|a| a.path().is_ident("atomic"));
    if let Some(a) = f.attrs.iter().find(|a| a.path().is_ident("atomic")) {
        if !matches!(a.meta, syn::Meta::Path(_)) {
            return Err(syn::Error::new_spanned(a, "#[atomic] takes no arguments"));
        }
    }
    Ok(Some(Method {
        ident: f.sig.ident.clone(),
        write,
        atomic,
        is_async: f.sig.asyncness.is_some(),
        takes_ctx,
        params,
        output: output(&f.sig.output)?,
    }))
}

fn is_ctx(ty: &Type) -> bool {
    match ty {
        Type::Reference(r) => match &*r.elem {
            Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == "Ctx"),
            _ => false,
        },
        _ => false,
    }
}

fn output(ret: &ReturnType) -> syn::Result<Output> {
    let ty = match ret {
        ReturnType::Default => return Ok(Output::Unit),
        ReturnType::Type(_, ty) => ty,
    };
    if let Type::Reference(r) = &**ty {
        return Err(syn::Error::new(r.span(), "object methods return owned values; results travel by value"));
    }
    if let Type::Path(p) = &**ty {
        if let Some(last) = p.path.segments.last() {
            if last.ident == "Result" {
                if let syn::PathArguments::AngleBracketed(args) = &last.arguments {
                    let tys: Vec<&Type> = args
                        .args
                        .iter()
                        .filter_map(|a| match a {
                            syn::GenericArgument::Type(t) => Some(t),
                            _ => None,
                        })
                        .collect();
                    if let [ok, err] = tys[..] {
                        let passthrough = matches!(err, Type::Path(ep) if ep.path.segments.last().is_some_and(|s| s.ident == "InvokeError"));
                        return Ok(Output::Fallible { ok: ok.clone(), err: err.clone(), passthrough });
                    }
                }
            }
        }
    }
    Ok(Output::Value((**ty).clone()))
}
