//! One request served on this node, by kind: the table from a typed request to the engine
//! operation that answers it. Routing has happened (`route`): an object named here is
//! believed to be on this node.

use super::route::LIFECYCLE_DEADLINE;
use super::Engine;
use clouds::BoxFuture;
use futures::FutureExt as _;
use protocol::{NodeMode, RequestBody, Response, ResponseBody};

impl Engine {
    /// Boxed: a request by name resolves and invokes through `handle` again. An invocation,
    /// the common request, goes straight to its own (boxed) future rather than through
    /// `serve_now`'s, which is as large as its largest kind of request.
    pub(super) fn serve(&self, body: RequestBody) -> BoxFuture<'_, Response> {
        match body {
            RequestBody::Invoke(inv) => Box::pin(self.invoke_here(inv).map(|r| r.map(ResponseBody::Invoked))),
            body => Box::pin(self.serve_now(body)),
        }
    }

    async fn serve_now(&self, body: RequestBody) -> Response {
        match body {
            // `serve` takes invocations before they come here; the table stays whole.
            RequestBody::Invoke(inv) => self.invoke_here(inv).await.map(ResponseBody::Invoked),
            RequestBody::InvokePath(inv) => self.invoke_path(inv).await.map(ResponseBody::Invoked),
            RequestBody::Create(req) => self.create_request(req).await.map(ResponseBody::Created),
            RequestBody::Describe(target) => self.describe(target).await.map(|i| ResponseBody::Described(Box::new(i))),
            RequestBody::Delete(target) => {
                self.delete(target, LIFECYCLE_DEADLINE).await.map(|()| ResponseBody::Deleted)
            }
            RequestBody::Revoke { target, holder } => {
                self.revoke(target, holder, LIFECYCLE_DEADLINE).await.map(ResponseBody::Capability)
            }
            RequestBody::RootCapability { holder, read_only } => {
                self.root_capability(holder, read_only).await.map(ResponseBody::Capability)
            }
            RequestBody::Classes => Ok(ResponseBody::Classes(self.classes())),
            RequestBody::Status => self.status().await.map(ResponseBody::Status),
            RequestBody::Nodes => Ok(ResponseBody::Nodes(self.inner.peers.nodes().await)),
            RequestBody::Migrate { target, to, strategy } => {
                self.migrate(target, to, strategy).await.map(ResponseBody::Migrated)
            }
            RequestBody::Migration(step) => self.migration_step(step).await,
            RequestBody::Action(step) => self.action_step(step).await,
            RequestBody::ResolveAction { action, commit } => self.resolve_by_hand(&action, commit).await,
            RequestBody::Probe(p) => Ok(ResponseBody::Probed(self.probe(p.initiator, p.object, p.path).await)),
            RequestBody::SetMode(mode) => self.set_mode(mode).await.map(ResponseBody::Mode),
            RequestBody::Drain { undo: false } => self.drain().await.map(|r| ResponseBody::Drain(Box::new(r))),
            RequestBody::Drain { undo: true } => {
                self.undrain(NodeMode::Server).await.map(|r| ResponseBody::Drain(Box::new(r)))
            }
            RequestBody::DrainStatus => self.drain_report().map(|r| ResponseBody::Drain(Box::new(r))),
            RequestBody::OwnerActive => {
                self.owner_activity();
                Ok(ResponseBody::Mode(self.mode()))
            }
            RequestBody::Decisions { object } => Ok(ResponseBody::Decisions(self.inner.decisions.list(object))),
            RequestBody::Hot { limit } => self.hot(limit as usize).map(ResponseBody::Hot),
            RequestBody::Adopt { home, records } => self.adopt(home, records).await.map(|()| ResponseBody::StepDone),
            RequestBody::Reclaim { home } => self.reclaim(home).await.map(ResponseBody::HomeRecords),
            RequestBody::Locate(id) => self.located(id).map(ResponseBody::Located),
            RequestBody::Objects { class, after, limit } => {
                self.list_objects(class.as_deref(), after, limit).map(ResponseBody::Objects)
            }
        }
    }
}
