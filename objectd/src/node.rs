//! A whole node: open the store, start the engine, join the cluster, serve until
//! shutdown, then drain, leave and flush.

use crate::cluster::Cluster;
use crate::config::Config;
use crate::engine::{prepare_root, Engine, Guard};
use crate::membership::Membership;
use crate::registry::Registry;
use crate::store::SledStore;
use anyhow::Context as _;
use protocol::{Connection, Credentials, Identity, RequestBody, ResponseBody};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Node metadata key of the administrator's public key.
const ADMIN_KEY: &str = "admin";

/// Who administers this node: the key `--admin` (or the config) names, kept in the store;
/// else the one kept from an earlier start; else, on a new data directory, the key of the
/// wallet of the user who starts the node (`$CLOUDS_WALLET`, or `~/.clouds/wallet`, made if
/// there is none): the wallet `clouds` uses by default, so names work at once.
fn administrator(config: &Config, store: &dyn crate::store::Store) -> anyhow::Result<Option<String>> {
    if let Some(admin) = &config.admin {
        store.meta_put(ADMIN_KEY, admin.as_bytes())?;
        return Ok(Some(admin.clone()));
    }
    if let Some(kept) = store.meta_get(ADMIN_KEY)? {
        return Ok(Some(String::from_utf8_lossy(&kept).into_owned()));
    }
    if store.meta_get("root")?.is_some() || store.count()? > 0 {
        tracing::warn!("no administrator: this data directory was made without one and none is given (--admin KEY)");
        return Ok(None);
    }
    let dir =
        std::env::var_os("CLOUDS_WALLET").map(std::path::PathBuf::from).unwrap_or_else(client::Wallet::default_dir);
    let wallet = client::Wallet::open(&dir).map_err(|e| {
        anyhow::anyhow!("no --admin given, and the wallet of the user starting the node cannot be opened: {e}")
    })?;
    let admin = wallet.public().to_string();
    store.meta_put(ADMIN_KEY, admin.as_bytes())?;
    store.flush()?;
    tracing::info!(%admin, wallet = %dir.display(), "no --admin given: the administrator is the key of the wallet of the user who started this node");
    Ok(Some(admin))
}

/// Runs a node on an already bound listener until `shutdown` resolves. Gossip uses UDP on
/// the listener's address. In-flight invocations get `config.shutdown_grace_ms` to finish;
/// then the store is flushed.
pub async fn run(
    mut config: Config,
    registry: Registry,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    config.validate().map_err(|e| anyhow::anyhow!("invalid config: {e}"))?;
    let dir = match &config.identity {
        Some(dir) => dir.clone(),
        None => {
            // A cluster of one: an authority of its own, kept with the data.
            let own = config.data.join("identity");
            protocol::identity::init(&own, &[config.id]).map_err(|e| anyhow::anyhow!("identity: {e}"))?;
            Identity::dir_in(&own, config.id)
        }
    };
    let id = Identity::load(&dir).map_err(|e| anyhow::anyhow!("identity: {e}"))?;
    anyhow::ensure!(
        id.node == config.id,
        "the identity in {} is for {}, but this node is {}",
        dir.display(),
        id.node,
        config.id
    );
    let identity = Arc::new(id);
    std::fs::create_dir_all(&config.data)
        .with_context(|| format!("cannot create data directory {}", config.data.display()))?;
    let store = Arc::new(SledStore::open_for(&config)?);
    config.admin = administrator(&config, store.as_ref())?;
    let classes: Vec<String> = registry.infos().into_iter().map(|c| c.name).collect();
    let root = prepare_root(&config, store.as_ref(), &registry).map_err(|e| anyhow::anyhow!("root directory: {e}"))?;
    let addr = listener.local_addr()?;
    // Nodes under another authority gossip in another cluster, whatever its name.
    let mut gossip = config.clone();
    gossip.cluster = format!("{}-{}", config.cluster, &identity.authority.to_string()[..16]);
    let membership = Membership::start(&gossip, addr, &classes, root, Some(&identity)).await?;
    refuse_duplicate_id(&config, &membership).await?;
    let cluster = Arc::new(Cluster::new(membership, identity.clone()));
    let engine = Engine::start(&config, store, registry, Guard::new(identity.clone()), cluster.clone())
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the engine: {e}"))?;
    let load =
        tokio::spawn(publish_load(engine.clone(), cluster.clone(), Duration::from_millis(config.gossip_interval_ms)));
    let prune = {
        let cluster = cluster.clone();
        tokio::spawn(async move { cluster.prune_pool().await })
    };
    let gateway = match config.http {
        Some(at) => {
            let metrics = crate::telemetry::install().map_err(anyhow::Error::msg)?;
            let listener = TcpListener::bind(at).await.with_context(|| format!("cannot listen for HTTP on {at}"))?;
            let url = format!("http://{}/", listener.local_addr()?);
            tracing::info!(%url, "HTTP gateway: dashboard, JSON API, metrics");
            // Scripts read this line to learn the address (port 0 picks one).
            println!("objectd {} http on {url}", config.id);
            let engine = engine.clone();
            let upkeep = tokio::spawn(crate::telemetry::upkeep(metrics.clone()));
            let gateway = tokio::spawn(crate::gateway::serve(listener, engine, Some(metrics), std::future::pending()));
            Some((gateway, upkeep))
        }
        None => None,
    };
    tracing::info!(node = %config.id, %addr, data = %config.data.display(), seeds = ?config.seeds, "objectd ready");

    let limits = crate::admission::Limits {
        idle_within: Duration::from_millis(config.idle_timeout_ms),
        max_requests: config.max_requests,
        ..Default::default()
    };
    let grace = Duration::from_millis(config.shutdown_grace_ms);
    // A failed flush stops the node (fail-stop): it exits with an error, so that whatever
    // supervises it restarts it and recovery reads what the disk holds.
    let failed = std::sync::Mutex::new(None);
    let stop = async {
        tokio::select! {
            () = shutdown => {}
            e = engine.store_failed() => *failed.lock().expect("failure mutex") = Some(e),
        }
    };
    crate::rpc::serve_with(listener, engine.clone(), stop, grace, limits).await;
    load.abort();
    prune.abort();
    if let Some((gateway, upkeep)) = gateway {
        gateway.abort();
        upkeep.abort();
    }
    if let Some(e) = failed.lock().expect("failure mutex").take() {
        anyhow::bail!(
            "the store failed to flush ({e}); the node stopped so that a restart recovers what is on the disk"
        );
    }
    engine.flush().map_err(|e| anyhow::anyhow!("final flush failed: {e}"))?;
    tracing::info!(node = %config.id, "objectd stopped");
    Ok(())
}

/// Another live node with this node's id is a configuration error: two homes for one set of
/// object ids. Gossip shows it within a few rounds; the other node confirms it by answering.
async fn refuse_duplicate_id(config: &Config, membership: &Membership) -> anyhow::Result<()> {
    if config.seeds.is_empty() {
        return Ok(());
    }
    tokio::time::sleep(Duration::from_millis(config.gossip_interval_ms * 4)).await;
    for other in membership.same_id_elsewhere().await {
        if let Ok(conn) = Connection::open(other, Duration::from_secs(2), Credentials::Anonymous, None).await {
            let answer = conn.call(None, RequestBody::Status, Duration::from_secs(2)).await;
            if matches!(answer, Ok(ResponseBody::Status(s)) if s.node == config.id) {
                anyhow::bail!(
                    "node id {} is already used by the node at {other}; every node of a cluster needs its own --id",
                    config.id.0
                );
            }
        }
    }
    Ok(())
}

/// Publishes the load vector, the mode, the owner's presence and the kept home records
/// every gossip interval.
async fn publish_load(engine: Engine, cluster: Arc<Cluster>, every: Duration) {
    use crate::engine::peers::Peers as _;
    let mut tick = tokio::time::interval(every);
    let mut seen: std::collections::HashMap<clouds::NodeId, protocol::Liveness> = Default::default();
    loop {
        tick.tick().await;
        if let Ok(published) = engine.published() {
            cluster.membership.publish(published).await;
        }
        // One log line per change of what this node believes about a peer.
        for view in cluster.nodes().await {
            match seen.insert(view.id, view.state) {
                None if view.id != engine.node() => {
                    tracing::info!(peer = %view.id, addr = %view.addr, state = %view.state, "peer joined")
                }
                Some(before) if before != view.state => {
                    tracing::info!(peer = %view.id, %before, now = %view.state, "peer state changed")
                }
                _ => {}
            }
        }
    }
}
