//! The node's tarpc service: a thin adapter between the wire and the engine.
//!
//! It checks the wire version and hands the typed request to the engine in a task of its
//! own: tarpc drops a handler's future when its client goes away or its deadline passes,
//! and a method must never be left half-applied, so the engine's work runs to its end
//! whatever happens to the connection.

use crate::engine::Engine;
use crate::wire::{Request, RequestBody, Response, ResponseBody, WIRE_VERSION};
use clouds::InvokeError;
use futures::StreamExt;
use std::future::Future;
use std::time::Duration;
use tarpc::server::{BaseChannel, Channel};
use tarpc::tokio_serde::formats::Bincode;
use tarpc::tokio_util::codec::{Framed, LengthDelimitedCodec};
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

/// Largest RPC frame: enough for the largest single-call payload (4 MiB of blob data)
/// with room for the envelope.
pub const MAX_FRAME: usize = 8 * 1024 * 1024;

#[tarpc::service]
pub trait NodeRpc {
    /// Every request: versioned, typed by `RequestBody`.
    async fn call(req: Request) -> Response;
}

#[derive(Clone)]
struct Server {
    engine: Engine,
    /// Engine work in flight, so that shutdown can wait for it.
    work: TaskTracker,
}

impl NodeRpc for Server {
    async fn call(self, _: tarpc::context::Context, req: Request) -> Response {
        if req.version != WIRE_VERSION {
            return Err(InvokeError::invalid(format!(
                "wire version {} is not supported by this node (it speaks {WIRE_VERSION}); upgrade the client or the node",
                req.version
            )));
        }
        let engine = self.engine.clone();
        match self.work.spawn(handle(engine, req.body)).await {
            Ok(response) => response,
            Err(e) => Err(InvokeError::Panicked { method: "request".into(), message: e.to_string() }),
        }
    }
}

async fn handle(engine: Engine, body: RequestBody) -> Response {
    match body {
        RequestBody::Invoke(inv) => engine.invoke(inv).await.map(ResponseBody::Invoked),
        RequestBody::Create(req) => {
            engine.create(&req.class, req.state, req.placement).await.map(ResponseBody::Created)
        }
        RequestBody::Describe(id) => engine.describe(id).await.map(|i| ResponseBody::Described(Box::new(i))),
        RequestBody::Delete(id) => {
            let deadline = Duration::from_millis(clouds::thread::DEFAULT_DEADLINE_MS);
            engine.delete(id, deadline).await.map(|()| ResponseBody::Deleted)
        }
        RequestBody::Classes => Ok(ResponseBody::Classes(engine.classes())),
        RequestBody::Status => engine.status().await.map(ResponseBody::Status),
        RequestBody::Nodes => Ok(ResponseBody::Nodes(engine.cluster()?.membership.peers().await)),
        RequestBody::Probe(p) => Ok(ResponseBody::Probed(engine.probe(p.initiator, p.object, p.path).await)),
    }
}

/// The length-delimited frame codec both ends use.
pub fn frame_codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder().max_frame_length(MAX_FRAME).new_codec()
}

/// Serves `listener` until `shutdown` resolves, then waits up to `grace` for engine work
/// in flight to finish.
pub async fn serve(listener: TcpListener, engine: Engine, shutdown: impl Future<Output = ()>, grace: Duration) {
    let server = Server { engine, work: TaskTracker::new() };
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            // Asked to stop: accept nothing more.
            _ = &mut shutdown => break,
            // A client connected.
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        continue;
                    }
                };
                // Small request/reply messages: do not wait to coalesce them.
                let _ = stream.set_nodelay(true);
                let transport = tarpc::serde_transport::new(Framed::new(stream, frame_codec()), Bincode::default());
                let server = server.clone();
                tokio::spawn(
                    BaseChannel::with_defaults(transport)
                        .execute(server.serve())
                        .for_each(|request| async move {
                            tokio::spawn(request);
                        }),
                );
            }
        }
    }
    server.work.close();
    if tokio::time::timeout(grace, server.work.wait()).await.is_err() {
        tracing::warn!("{} invocations still running after the shutdown grace period", server.work.len());
    }
}
