//! The `objectd` command line: flags over an optional TOML file, tracing from `RUST_LOG`,
//! one node until SIGTERM or Ctrl-C. An application with classes of its own makes its
//! node binary with one call:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     objectd::daemon::main(objectd::Registry::standard() /* .with::<MyClass>()? */)
//! }
//! ```

use crate::config::{Config, Durability};
use crate::registry::Registry;
use anyhow::Context as _;
use clap::Parser;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// objectd: one Clouds node, keeping persistent objects and running their methods.
#[derive(Parser, Debug)]
#[command(version)]
pub struct Args {
    /// A TOML config file; flags override its fields.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// This node's id (0-65535), unique in the cluster.
    #[arg(long)]
    pub id: Option<u16>,
    /// Address to listen on (port 0: any free port; the chosen address is printed).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Directory of the object store.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// `power-loss` (default), `process-crash` or `buffered`.
    #[arg(long)]
    pub durability: Option<Durability>,
    /// Nodes to join through: their listen addresses, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub seeds: Vec<SocketAddr>,
    /// The node keeping the cluster's root directory (default: this node).
    #[arg(long)]
    pub root_node: Option<u16>,
    /// The cluster's name; nodes of other clusters are ignored.
    #[arg(long)]
    pub cluster: Option<String>,
    /// Labels other nodes see, comma-separated (`gpu,ssd`).
    #[arg(long, value_delimiter = ',')]
    pub labels: Vec<String>,
    /// The node's identity directory (from `clouds cluster init`; default: an authority of
    /// the node's own under DATA/identity).
    #[arg(long)]
    pub identity: Option<PathBuf>,
    /// The administrator's public key (`clouds whoami`), who may ask for the root
    /// directory's owner capability.
    #[arg(long)]
    pub admin: Option<String>,
}

impl Args {
    pub fn into_config(self) -> anyhow::Result<Config> {
        let mut c = match &self.config {
            Some(path) => Config::from_toml_file(path).map_err(anyhow::Error::msg)?,
            None => Config::default(),
        };
        if let Some(id) = self.id {
            c.id = clouds::NodeId(id);
        }
        if let Some(listen) = self.listen {
            c.listen = listen;
        }
        if let Some(data) = self.data {
            c.data = data;
        }
        if let Some(d) = self.durability {
            c.durability = d;
        }
        if !self.seeds.is_empty() {
            c.seeds = self.seeds;
        }
        if let Some(r) = self.root_node {
            c.root_node = Some(clouds::NodeId(r));
        }
        if let Some(name) = self.cluster {
            c.cluster = name;
        }
        if !self.labels.is_empty() {
            c.labels = self.labels;
        }
        if let Some(dir) = self.identity {
            c.identity = Some(dir);
        }
        if let Some(admin) = self.admin {
            c.admin = Some(admin);
        }
        c.validate().map_err(|e| anyhow::anyhow!("invalid config: {e}"))?;
        Ok(c)
    }
}

/// Parses argv, runs the node with `registry`'s classes, and maps the outcome to an exit code.
pub fn main(registry: Registry) -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    match run(args, registry) {
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
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
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
