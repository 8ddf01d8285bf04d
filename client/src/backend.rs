//! `Ctx` for client code: invocations go to the cluster through the client; there is no
//! object, so no pages and no `this`.

use crate::client::Client;
use capability::{Denied, Restrict, Token};
use clouds::{
    Backend, BoxFuture, Codec, Frame, InvokeError, NodeId, ObjectId, Pages, RawRef, Rights, Strategy, ThreadId,
};
use protocol::InitialState;
use std::ops::Bound;
use std::time::Duration;

/// `Ctx` for client code: invocations go to the node; there is no object, so no pages.
pub(crate) struct ClientBackend {
    pub(crate) client: Client,
    pub(crate) thread: ThreadId,
}

fn no_object() -> InvokeError {
    InvokeError::invalid("storage pages exist only inside an object's method, not in client code")
}

impl Backend for ClientBackend {
    fn thread_id(&self) -> ThreadId {
        self.thread
    }

    fn node(&self) -> Option<NodeId> {
        None
    }

    fn this(&self) -> Option<ObjectId> {
        None
    }

    fn chain(&self) -> Vec<Frame> {
        Vec::new()
    }

    fn remaining(&self) -> Option<Duration> {
        None
    }

    fn invoke<'a>(
        &'a self,
        target: &'a RawRef,
        method: &'a str,
        codec: Codec,
        args: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, InvokeError>> {
        let mut thread = self.client.new_thread();
        thread.id = self.thread;
        Box::pin(self.client.invoke_on(thread, target, method, codec, args, None))
    }

    fn create<'a>(&'a self, class: &'a str, state: Vec<u8>) -> BoxFuture<'a, Result<RawRef, InvokeError>> {
        Box::pin(self.client.create(class, InitialState::Encoded(state)))
    }

    fn migrate<'a>(
        &'a self,
        target: &'a RawRef,
        to: NodeId,
        strategy: Strategy,
    ) -> BoxFuture<'a, Result<(), InvokeError>> {
        Box::pin(async move { self.client.migrate(target.clone(), to, strategy).await.map(|_| ()) })
    }

    fn migrate_after(&self, _: NodeId) -> Result<(), InvokeError> {
        Err(InvokeError::invalid("client code runs in no object, so it has nothing to move after its call"))
    }

    fn this_ref(&self) -> Result<RawRef, InvokeError> {
        Err(InvokeError::invalid("client code runs in no object, so it has no `this`"))
    }

    /// Signs a narrower capability with the wallet's key, which must hold the one given.
    fn attenuate(&self, target: &RawRef, rights: Rights) -> Result<RawRef, InvokeError> {
        let cap = self.client.capability_needing(target, Rights::DELEGATE).ok_or(Denied::Missing)?;
        let token = Token::from_cap(&cap)?;
        let restrict = Restrict { rights: Some(rights), ..Restrict::default() };
        let wallet = self.client.wallet();
        let narrower = token.attenuate(wallet.key(), restrict, wallet.public())?;
        Ok(RawRef { id: target.id, cap: Some(narrower.to_cap()) })
    }

    fn page_get<'a>(&'a self, _: &'a [u8]) -> BoxFuture<'a, Result<Option<Vec<u8>>, InvokeError>> {
        Box::pin(async { Err(no_object()) })
    }

    fn page_put(&self, _: &[u8], _: &[u8]) -> Result<(), InvokeError> {
        Err(no_object())
    }

    fn page_delete(&self, _: &[u8]) -> Result<(), InvokeError> {
        Err(no_object())
    }

    fn page_range(&self, _: Bound<Vec<u8>>, _: Bound<Vec<u8>>, _: usize) -> BoxFuture<'_, Result<Pages, InvokeError>> {
        Box::pin(async { Err(no_object()) })
    }
}
