//! A whole node: open the store, start the engine, serve until shutdown, flush.

use crate::config::Config;
use crate::engine::Engine;
use crate::registry::Registry;
use crate::store::SledStore;
use anyhow::Context as _;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Runs a node on an already bound listener until `shutdown` resolves. In-flight
/// invocations get `config.shutdown_grace_ms` to finish; then the store is flushed.
pub async fn run(
    config: Config,
    registry: Registry,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    config.validate().map_err(|e| anyhow::anyhow!("invalid config: {e}"))?;
    std::fs::create_dir_all(&config.data)
        .with_context(|| format!("cannot create data directory {}", config.data.display()))?;
    let store = Arc::new(SledStore::open(&config.data)?);
    let engine =
        Engine::start(&config, store, registry).await.map_err(|e| anyhow::anyhow!("cannot start the engine: {e}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(node = %config.id, %addr, root = %engine.root(), data = %config.data.display(), "objectd ready");
    crate::rpc::serve(listener, engine.clone(), shutdown, Duration::from_millis(config.shutdown_grace_ms)).await;
    engine.flush().map_err(|e| anyhow::anyhow!("final flush failed: {e}"))?;
    tracing::info!(node = %config.id, "objectd stopped");
    Ok(())
}
