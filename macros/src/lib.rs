//! Macros that turn a Rust struct and impl block into a Clouds class.
//!
//! Layout:
//! - `derive`: `#[derive(Object)]`: the class name and the stub type `Ref<T>` derefs to.
//! - `ir`: what `#[methods]` knows about each exported method.
//! - `parse`: impl block -> IR, with validation; misuse becomes one clear compile error.
//! - `expand`: IR -> metadata, dispatch table, typed stubs.
//!
//! For this class:
//!
//! ```ignore
//! #[derive(Object, Default, Serialize, Deserialize)]
//! pub struct Counter { value: i64 }
//!
//! #[methods]
//! impl Counter {
//!     pub fn get(&self) -> i64 { self.value }
//!     pub fn incr(&mut self, by: i64) -> i64 { self.value += by; self.value }
//! }
//! ```
//!
//! the macros generate, in outline:
//!
//! ```ignore
//! impl ObjectState for Counter { const CLASS: &str = "Counter"; type Stub = CounterStub; }
//! pub struct CounterStub { raw: RawRef }
//! impl MethodTable for Counter {
//!     fn class_info() -> ClassInfo { /* get: read, incr(by: i64): write */ }
//!     fn dispatch_read(&self, ctx, method, codec, args) -> .. {
//!         match method.name { "get" => { decode no args; encode_reply(codec, &self.get()) } .. }
//!     }
//!     fn dispatch_write(&mut self, ..) -> .. { "incr" => { let by = decoder.next()?; .. } }
//! }
//! impl CounterStub {
//!     pub async fn get(&self, ctx: &Ctx) -> Result<i64, InvokeError> { ctx.call(id, "get", &()).await }
//!     pub async fn incr(&self, ctx: &Ctx, by: i64) -> Result<i64, InvokeError> { .. }
//! }
//! ```
//!
//! Only `pub` methods with a `&self` or `&mut self` receiver are exported; other items of
//! the impl block stay ordinary Rust. `#[atomic]` on a method makes it an atomic action's
//! boundary: everything the thread does inside it, on every object and node, commits
//! together when it returns `Ok`, or not at all.

use proc_macro::TokenStream;

mod derive;
mod expand;
mod ir;
mod parse;

/// Makes a struct the state of a class. See the crate docs. `#[object(version = N)]`
/// (default 1) names the format of its stored state: bump it when the struct changes in a
/// way old nodes cannot read, and a move to a node with another format is refused.
/// `#[object(placement = "least-loaded")]` gives the class a default placement policy,
/// and `#[object(labels = "gpu")]` the labels a node must carry to hold its objects.
/// `#[object(pinned)]`: its objects never move on their own (rebalancing, affinity,
/// eviction); a move by hand or a drain still moves them.
#[proc_macro_derive(Object, attributes(object))]
pub fn derive_object(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    derive::expand(&input).unwrap_or_else(syn::Error::into_compile_error).into()
}

/// Exports the `pub` methods of an impl block as the class's methods. See the crate docs.
#[proc_macro_attribute]
pub fn methods(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut item = syn::parse_macro_input!(item as syn::ItemImpl);
    if !attr.is_empty() {
        let err = syn::Error::new(proc_macro2::Span::call_site(), "#[methods] takes no arguments");
        return err.into_compile_error().into();
    }
    let parsed = parse::class(&item);
    // `#[atomic]` is read by `parse` and is no attribute of Rust's: it leaves the item.
    for it in &mut item.items {
        if let syn::ImplItem::Fn(f) = it {
            f.attrs.retain(|a| !a.path().is_ident("atomic"));
        }
    }
    match parsed {
        Ok(class) => expand::expand(&item, &class).into(),
        Err(err) => {
            // Keep the user's impl block so that one error shows, not a cascade of
            // "method not found" errors from code that calls it.
            let mut out = err.into_compile_error();
            out.extend(quote::quote!(#item));
            out.into()
        }
    }
}
