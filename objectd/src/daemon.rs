//! The `objectd` command line: flags over an optional TOML file, tracing from `RUST_LOG`,
//! one node until SIGTERM or Ctrl-C. An application with classes of its own makes its
//! node binary with one call:
//!
//! ```no_run
//! #[global_allocator]
//! static ALLOCATOR: objectd::daemon::Allocator = objectd::daemon::Allocator;
//!
//! fn main() -> std::process::ExitCode {
//!     objectd::daemon::main(objectd::Registry::standard() /* .with::<MyClass>()? */)
//! }
//! ```

/// The allocator a node binary should declare (`#[global_allocator]`, as above): mimalloc,
/// built without transparent huge pages. A node allocates and frees a request's futures
/// and buffers on whichever worker runs them; glibc's malloc spent about 40% of a busy
/// node's time there (README, "Benchmarks"), mimalloc much less. Without huge pages an
/// idle node holds what it touched, not 2 MiB for every thread's first page.
pub use mimalloc::MiMalloc as Allocator;

use crate::config::{Config, Durability};
use crate::registry::Registry;
use anyhow::Context as _;
use clap::Parser;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// objectd: one Clouds node, keeping persistent objects and running their methods.
///
/// Every setting may come from a flag, from an `OBJECTD_*` environment variable (the
/// flag's name in capitals, `-` as `_`: `OBJECTD_CACHE_OBJECTS=5000`) or from the TOML
/// file `--config` names (the field as the flag, `_` for `-`); a flag wins over the
/// variable, the variable over the file, the file over the default. All are checked alike.
#[derive(Parser, Debug)]
#[command(
    version,
    after_help = "Examples:
  objectd --id 1 --listen 127.0.0.1:7100 --data /var/lib/clouds
  OBJECTD_ID=2 OBJECTD_SEEDS=node1:7100 objectd --listen 0.0.0.0:7100 --log-format json"
)]
pub struct Args {
    /// A TOML config file; flags and variables override its fields.
    #[arg(long, env = "OBJECTD_CONFIG")]
    pub config: Option<PathBuf>,
    /// This node's id (0-65535), unique in the cluster.
    #[arg(long, env = "OBJECTD_ID")]
    pub id: Option<u16>,
    /// Address to listen on, HOST:PORT (port 0: any free port; the chosen address is printed).
    #[arg(long, env = "OBJECTD_LISTEN", value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// Directory of the object store.
    #[arg(long, env = "OBJECTD_DATA")]
    pub data: Option<PathBuf>,
    /// `power-loss` (default), `process-crash` or `buffered`.
    #[arg(long, env = "OBJECTD_DURABILITY")]
    pub durability: Option<Durability>,
    /// Nodes to join through: their listen addresses (HOST:PORT), comma-separated.
    #[arg(long, env = "OBJECTD_SEEDS", value_delimiter = ',', value_name = "HOST:PORT")]
    pub seeds: Vec<String>,
    /// The node keeping the cluster's root directory (default: this node).
    #[arg(long, env = "OBJECTD_ROOT_NODE")]
    pub root_node: Option<u16>,
    /// The cluster's name; nodes of other clusters are ignored.
    #[arg(long, env = "OBJECTD_CLUSTER")]
    pub cluster: Option<String>,
    /// Labels other nodes see, comma-separated (`gpu,ssd`).
    #[arg(long, env = "OBJECTD_LABELS", value_delimiter = ',')]
    pub labels: Vec<String>,
    /// The node's identity directory (from `clouds cluster init`; default: an authority of
    /// the node's own under DATA/identity).
    #[arg(long, env = "OBJECTD_IDENTITY")]
    pub identity: Option<PathBuf>,
    /// The administrator's public key (`clouds whoami`), who may ask for the root
    /// directory's owner capability.
    #[arg(long, env = "OBJECTD_ADMIN")]
    pub admin: Option<String>,
    /// Activated objects kept decoded in memory (default 10000).
    #[arg(long, env = "OBJECTD_CACHE_OBJECTS")]
    pub cache_objects: Option<usize>,
    /// Memory for sled's cache of store pages, in MiB (default 64).
    #[arg(long, env = "OBJECTD_STORE_CACHE_MIB")]
    pub store_cache_mib: Option<u64>,
    /// Deadline of a thread that arrives without one, in ms (default 30000).
    #[arg(long, env = "OBJECTD_DEFAULT_DEADLINE_MS")]
    pub default_deadline_ms: Option<u64>,
    /// Frames a call chain may hold before `HopLimit` stops runaway recursion (default 64).
    #[arg(long, env = "OBJECTD_HOP_LIMIT")]
    pub hop_limit: Option<usize>,
    /// How long shutdown waits for invocations in flight, in ms (default 10000).
    #[arg(long, env = "OBJECTD_SHUTDOWN_GRACE_MS")]
    pub shutdown_grace_ms: Option<u64>,
    /// How often membership gossip runs, in ms (default 300).
    #[arg(long, env = "OBJECTD_GOSSIP_INTERVAL_MS")]
    pub gossip_interval_ms: Option<u64>,
    /// Where a new object goes by default: `local`, `random`, `least-loaded`,
    /// `two-choices`, `node:N` or `label:KEY=VALUE`.
    #[arg(long, env = "OBJECTD_PLACEMENT")]
    pub placement: Option<String>,
    /// Whether the node moves objects off on its own when busier than the mean (`true`,
    /// `false`; default true).
    #[arg(long, env = "OBJECTD_REBALANCE", action = clap::ArgAction::Set, value_name = "BOOL")]
    pub rebalance: Option<bool>,
    /// How often the node looks at its load, in ms (default 1000).
    #[arg(long, env = "OBJECTD_REBALANCE_EVERY_MS")]
    pub rebalance_every_ms: Option<u64>,
    /// The share above the mean busy time at which moves begin (default 0.25).
    #[arg(long, env = "OBJECTD_REBALANCE_MARGIN")]
    pub rebalance_margin: Option<f64>,
    /// Below this busy time (ms per second) a node is not worth evening out (default 200).
    #[arg(long, env = "OBJECTD_REBALANCE_MIN_BUSY_MS")]
    pub rebalance_min_busy_ms: Option<f64>,
    /// Whether objects that mostly call objects on another node move there (`true`,
    /// `false`; default true).
    #[arg(long, env = "OBJECTD_AFFINITY", action = clap::ArgAction::Set, value_name = "BOOL")]
    pub affinity: Option<bool>,
    /// How long a moved object stays before it may move on its own again, in ms.
    #[arg(long, env = "OBJECTD_MOVE_COOLDOWN_MS")]
    pub move_cooldown_ms: Option<u64>,
    /// A workstation's owner counts as away this long after the last activity, in ms.
    #[arg(long, env = "OBJECTD_OWNER_AWAY_MS")]
    pub owner_away_ms: Option<u64>,
    /// Close a connection with no request in flight for this long, in ms (default 120000).
    #[arg(long, env = "OBJECTD_IDLE_TIMEOUT_MS")]
    pub idle_timeout_ms: Option<u64>,
    /// Requests from callers served at once; beyond, `Overloaded` at once (default 4096).
    #[arg(long, env = "OBJECTD_MAX_REQUESTS")]
    pub max_requests: Option<usize>,
    /// Threads that run the node's tasks (default: one per core).
    #[arg(long, env = "OBJECTD_WORKERS")]
    pub workers: Option<usize>,
    /// Serve the HTTP gateway here (HOST:PORT): the dashboard at `/`, the JSON API under
    /// `/v1`, Prometheus metrics at `/metrics`. Default: off.
    #[arg(long, env = "OBJECTD_HTTP", value_name = "HOST:PORT")]
    pub http: Option<String>,
    /// Export a span per invocation to this OTLP/HTTP receiver (`http://HOST:4318`, JSON
    /// encoding); also read from `OTEL_EXPORTER_OTLP_ENDPOINT`. Default: nothing exported.
    #[arg(long, env = "OBJECTD_OTLP", value_name = "URL")]
    pub otlp: Option<String>,
    /// Log lines as `text` (default; coloured only on a terminal) or `json` (one object
    /// per line). What is logged: `RUST_LOG` (default `info,tarpc=warn`).
    #[arg(long, env = "OBJECTD_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `HOST:PORT` to an address: an address as it is, a host name looked up (its first
/// address).
fn socket_addr(what: &str, text: &str) -> anyhow::Result<SocketAddr> {
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    use std::net::ToSocketAddrs as _;
    let found = text.to_socket_addrs().with_context(|| format!("{what} `{text}` is not HOST:PORT"))?.next();
    found.with_context(|| format!("{what} `{text}`: the name has no address"))
}

impl Args {
    pub fn into_config(self) -> anyhow::Result<Config> {
        let mut c = match &self.config {
            Some(path) => Config::from_toml_file(path).map_err(anyhow::Error::msg)?,
            None => Config::default(),
        };
        fn set<T>(field: &mut T, value: Option<T>) {
            if let Some(v) = value {
                *field = v;
            }
        }
        set(&mut c.id, self.id.map(clouds::NodeId));
        set(&mut c.listen, self.listen.as_deref().map(|l| socket_addr("--listen", l)).transpose()?);
        set(&mut c.data, self.data);
        set(&mut c.durability, self.durability);
        if !self.seeds.is_empty() {
            c.seeds = self.seeds.iter().map(|s| socket_addr("--seeds", s)).collect::<Result<_, _>>()?;
        }
        set(&mut c.root_node, self.root_node.map(|r| Some(clouds::NodeId(r))));
        set(&mut c.cluster, self.cluster);
        if !self.labels.is_empty() {
            c.labels = self.labels;
        }
        set(&mut c.identity, self.identity.map(Some));
        set(&mut c.admin, self.admin.map(Some));
        set(&mut c.cache_objects, self.cache_objects);
        set(&mut c.store_cache_mib, self.store_cache_mib);
        set(&mut c.default_deadline_ms, self.default_deadline_ms);
        set(&mut c.hop_limit, self.hop_limit);
        set(&mut c.shutdown_grace_ms, self.shutdown_grace_ms);
        set(&mut c.gossip_interval_ms, self.gossip_interval_ms);
        set(&mut c.placement, self.placement);
        set(&mut c.rebalance, self.rebalance);
        set(&mut c.rebalance_every_ms, self.rebalance_every_ms);
        set(&mut c.rebalance_margin, self.rebalance_margin);
        set(&mut c.rebalance_min_busy_ms, self.rebalance_min_busy_ms);
        set(&mut c.affinity, self.affinity);
        set(&mut c.move_cooldown_ms, self.move_cooldown_ms);
        set(&mut c.owner_away_ms, self.owner_away_ms);
        set(&mut c.idle_timeout_ms, self.idle_timeout_ms);
        set(&mut c.max_requests, self.max_requests);
        set(&mut c.workers, self.workers.map(Some));
        set(&mut c.http, self.http.as_deref().map(|h| socket_addr("--http", h).map(Some)).transpose()?);
        c.validate().map_err(|e| anyhow::anyhow!("invalid config: {e}"))?;
        Ok(c)
    }
}

/// What is logged when `RUST_LOG` is not set.
const DEFAULT_LOG: &str = "info,tarpc=warn";

/// Parses argv, runs the node with `registry`'s classes, and maps the outcome to an exit code.
pub fn main(registry: Registry) -> ExitCode {
    let args = Args::parse();
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;
    // tarpc opens an INFO span per request (its fields formatted for the log layer, a
    // timestamp among them): off unless `RUST_LOG` asks for it.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| DEFAULT_LOG.into());
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = match args.log_format {
        LogFormat::Json => logs.json().with_filter(filter).boxed(),
        LogFormat::Text => {
            logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).with_filter(filter).boxed()
        }
    };
    let endpoint = args.otlp.clone().or_else(|| std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok());
    let node = args.id.map_or_else(|| "node".to_string(), |id| clouds::NodeId(id).to_string());
    let (spans, provider) = match endpoint.map(|e| crate::telemetry::otlp_layer(&e, &node)).transpose() {
        Ok(Some((layer, provider))) => (Some(layer), Some(provider)),
        Ok(None) => (None, None),
        Err(e) => {
            eprintln!("objectd: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // No layer at all without OTel: an absent (`None`) layer counts as interested in every
    // span and event, so each debug span of the hot path would be built and dropped.
    let subscriber = tracing_subscriber::registry().with(logs);
    match spans {
        Some(spans) => subscriber.with(spans).init(),
        None => subscriber.init(),
    }
    let result = run(args, registry);
    // The last spans go out before the process ends.
    if let Some(provider) = provider {
        let _ = provider.shutdown();
    }
    match result {
        Ok(()) => {
            // The store was flushed as the node stopped. Exit now rather than run the
            // destructors: sled's would join its background flusher (up to 500 ms) to flush
            // again what is already flushed. Exiting here is as safe as a crash after that
            // flush, which the store is built to survive.
            std::process::exit(0)
        }
        Err(e) => {
            eprintln!("objectd: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args, registry: Registry) -> anyhow::Result<()> {
    let config = args.into_config()?;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = config.workers {
        runtime.worker_threads(workers);
    }
    let runtime = runtime.enable_all().build()?;
    let result = runtime.block_on(async {
        let listener = bind(config.listen).await.with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        // Scripts and tests read this line to learn the address (port 0 picks one).
        println!("objectd {} listening on {addr}", config.id);
        std::io::stdout().flush()?;
        crate::node::run(config, registry, listener, crate::shutdown::signal()).await
    });
    // Background tasks (gossip, its address refresh) are cut off rather than waited for.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    result
}

/// Binds the listener. An address in use is tried again for up to 3 s: a node restarted
/// right after it was killed may find its port still held while the dead process's last
/// threads exit.
async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let mut tries = 0;
    loop {
        match tokio::net::TcpListener::bind(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && addr.port() != 0 && tries < 30 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}
