//! Invoking by name in one request: the node resolves the path from the root directory on
//! the caller's behalf, as a thread of the caller's, then invokes what it names.
//!
//! Each directory on the way, and the target, is entered with the capability the caller
//! presented for it, or else with the one its parent's entry hands out, exactly as the
//! caller's own step-by-step resolution (`naming::resolve`) would: the node adds no
//! authority of its own.

use super::Engine;
use capability::Token;
use clouds::{
    Backend, BoxFuture, Cap, Codec, Ctx, Frame, InvokeError, NodeId, ObjectId, Pages, RawRef, Rights, Strategy,
    ThreadCtx, ThreadId,
};
use protocol::wire::MAX_PRESENTED;
use protocol::{Invocation, PathInvocation, Reply};
use std::collections::HashMap;
use std::ops::Bound;
use std::sync::Arc;
use tokio::time::Instant;

impl Engine {
    /// What `path` names, resolved with the capabilities `caps` (and those the entries on
    /// the way hand out), within `within`: as the caller would resolve it.
    pub async fn resolve_name(
        &self,
        path: &str,
        caps: Vec<Cap>,
        within: std::time::Duration,
    ) -> Result<naming::Entry, InvokeError> {
        let (ctx, root, path) = self.resolver(path, caps, within).await?;
        naming::resolve(&ctx, &root, &path).await
    }

    /// The entries of the directory at `path`, read with the capabilities `caps`.
    pub async fn list_names(
        &self,
        path: &str,
        caps: Vec<Cap>,
        within: std::time::Duration,
    ) -> Result<Vec<(String, naming::Entry)>, InvokeError> {
        let (ctx, root, path) = self.resolver(path, caps, within).await?;
        naming::list(&ctx, &root, &path).await
    }

    async fn resolver(
        &self,
        path: &str,
        caps: Vec<Cap>,
        within: std::time::Duration,
    ) -> Result<(Ctx, RawRef, naming::Path), InvokeError> {
        let path: naming::Path = path.parse().map_err(InvokeError::invalid)?;
        let presented: HashMap<ObjectId, Cap> =
            caps.into_iter().filter_map(|cap| Token::from_cap(&cap).ok().map(|t| (t.grant().object, cap))).collect();
        let thread = ThreadCtx::new(within.as_millis() as u64);
        let deadline = Instant::now() + within;
        let root = self.root().await?;
        let resolver = Arc::new(Resolver { engine: self.clone(), thread, deadline, presented });
        let root = RawRef { id: root, cap: resolver.presented.get(&root).cloned() };
        Ok((Ctx::new(resolver), root, path))
    }

    pub(super) async fn invoke_path(&self, req: PathInvocation) -> Result<Reply, InvokeError> {
        if req.caps.len() > MAX_PRESENTED {
            return Err(InvokeError::invalid(format!(
                "{} capabilities were presented; at most {MAX_PRESENTED} travel with a request by name",
                req.caps.len()
            )));
        }
        let path: naming::Path = req.path.parse().map_err(InvokeError::invalid)?;
        let presented: HashMap<ObjectId, Cap> = req
            .caps
            .into_iter()
            .filter_map(|cap| Token::from_cap(&cap).ok().map(|t| (t.grant().object, cap)))
            .collect();
        let deadline = Instant::now() + clouds::thread::time_left(req.thread.remaining_ms);
        let root = self.root().await?;
        let resolver = Arc::new(Resolver { engine: self.clone(), thread: req.thread.clone(), deadline, presented });
        let ctx = Ctx::new(resolver.clone());
        let root = RawRef { id: root, cap: resolver.presented.get(&root).cloned() };
        let entry = naming::resolve(&ctx, &root, &path).await?;
        let mut thread = req.thread;
        thread.remaining_ms = deadline.saturating_duration_since(Instant::now()).as_millis() as u64;
        let capability = resolver.presented.get(&entry.id).cloned().or(entry.cap);
        let inv = Invocation {
            thread,
            target: entry.id,
            method: req.method,
            codec: req.codec,
            args: req.args,
            call_id: req.call_id,
            capability,
        };
        self.invoke(inv).await
    }
}

/// The caller's thread while the node resolves a path for it: it reads directories only.
struct Resolver {
    engine: Engine,
    thread: ThreadCtx,
    deadline: Instant,
    presented: HashMap<ObjectId, Cap>,
}

fn only_lookups() -> InvokeError {
    InvokeError::invalid("resolving a name on the caller's behalf only reads directories")
}

impl Backend for Resolver {
    fn thread_id(&self) -> ThreadId {
        self.thread.id
    }

    fn node(&self) -> Option<NodeId> {
        Some(self.engine.node())
    }

    fn this(&self) -> Option<ObjectId> {
        None
    }

    fn chain(&self) -> Vec<Frame> {
        self.thread.chain.clone()
    }

    fn remaining(&self) -> Option<std::time::Duration> {
        Some(self.deadline.saturating_duration_since(Instant::now()))
    }

    fn invoke<'a>(
        &'a self,
        target: &'a RawRef,
        method: &'a str,
        codec: Codec,
        args: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, InvokeError>> {
        let mut thread = self.thread.clone();
        thread.remaining_ms = self.deadline.saturating_duration_since(Instant::now()).as_millis() as u64;
        thread.record_path = false;
        let capability = self.presented.get(&target.id).cloned().or_else(|| target.cap.clone());
        let inv =
            Invocation { thread, target: target.id, method: method.into(), codec, args, call_id: None, capability };
        Box::pin(async move { Ok(self.engine.invoke(inv).await?.value) })
    }

    fn create<'a>(&'a self, _: &'a str, _: Vec<u8>) -> BoxFuture<'a, Result<RawRef, InvokeError>> {
        Box::pin(async { Err(only_lookups()) })
    }

    fn attenuate(&self, _: &RawRef, _: Rights) -> Result<RawRef, InvokeError> {
        Err(only_lookups())
    }

    fn this_ref(&self) -> Result<RawRef, InvokeError> {
        Err(only_lookups())
    }

    fn migrate<'a>(&'a self, _: &'a RawRef, _: NodeId, _: Strategy) -> BoxFuture<'a, Result<(), InvokeError>> {
        Box::pin(async { Err(only_lookups()) })
    }

    fn migrate_after(&self, _: NodeId) -> Result<(), InvokeError> {
        Err(only_lookups())
    }

    fn page_get<'a>(&'a self, _: &'a [u8]) -> BoxFuture<'a, Result<Option<Vec<u8>>, InvokeError>> {
        Box::pin(async { Err(only_lookups()) })
    }

    fn page_put(&self, _: &[u8], _: &[u8]) -> Result<(), InvokeError> {
        Err(only_lookups())
    }

    fn page_delete(&self, _: &[u8]) -> Result<(), InvokeError> {
        Err(only_lookups())
    }

    fn page_range(&self, _: Bound<Vec<u8>>, _: Bound<Vec<u8>>, _: usize) -> BoxFuture<'_, Result<Pages, InvokeError>> {
        Box::pin(async { Err(only_lookups()) })
    }
}
