//! Node configuration: data, with defaults, a reason per field, and validation.
//!
//! The `objectd` binary reads an optional TOML file and lays its flags over it; the
//! library takes the resulting `Config` and never reads argv.

use clouds::NodeId;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

/// What a reply waits for before it is sent, named for what an acknowledged write survives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Durability {
    /// Reply after the commit reached sled's in-memory log, before it reached the OS. A
    /// process crash may lose acknowledged writes of the last flush interval (500 ms).
    Buffered,
    /// Reply after a group flush wrote the commit to the OS (sled `flush()`). Survives a
    /// crash of the process (kill -9). Does not fsync: a power loss may lose writes of the
    /// last 500 ms, until sled's background fsync.
    ProcessCrash,
    /// Reply after a group flush wrote the commit to the OS and fsynced it (one fdatasync
    /// per group flush, shared by every write it carries). Survives a power cut.
    PowerLoss,
}

impl std::fmt::Display for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Durability::Buffered => "buffered",
            Durability::ProcessCrash => "process-crash",
            Durability::PowerLoss => "power-loss",
        })
    }
}

impl std::str::FromStr for Durability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "buffered" => Ok(Durability::Buffered),
            "process-crash" => Ok(Durability::ProcessCrash),
            "power-loss" => Ok(Durability::PowerLoss),
            other => Err(format!("unknown durability `{other}`; expected `power-loss`, `process-crash` or `buffered`")),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// This node's id; unique in the cluster, and the home encoded in the ids of the
    /// objects it creates.
    pub id: NodeId,
    /// Address the RPC server listens on. Loopback by default: a node is reachable from
    /// elsewhere only when the operator says so.
    pub listen: SocketAddr,
    /// Directory of the sled object store. Created if missing.
    pub data: PathBuf,
    /// What an acknowledged write survives.
    pub durability: Durability,
    /// How many activated objects stay decoded in memory; an idle object beyond this costs
    /// only its bytes on disk.
    pub cache_objects: usize,
    /// Memory sled may use to cache the store's pages, in MiB: with many objects stored
    /// this, not the objects, bounds most of a node's memory.
    pub store_cache_mib: u64,
    /// Deadline of a thread that arrives without one, in milliseconds.
    pub default_deadline_ms: u64,
    /// How many frames a call chain may hold before `HopLimit` stops runaway recursion.
    pub hop_limit: usize,
    /// How long shutdown waits for in-flight invocations before it flushes and exits.
    pub shutdown_grace_ms: u64,
    /// Addresses of nodes to join through (their `listen` addresses). Empty: a cluster of
    /// one, which others may join through this node.
    pub seeds: Vec<SocketAddr>,
    /// The node that keeps the cluster's root directory. `None`: this node (right for a
    /// single node); every node of a cluster names the same one.
    pub root_node: Option<NodeId>,
    /// Name of the cluster: gossip from another cluster is ignored.
    pub cluster: String,
    /// How often membership gossip runs. Failure detection takes a few intervals.
    pub gossip_interval_ms: u64,
    /// Free-form labels other nodes see (`gpu`, `ssd`, `zone=a`), for placement rules
    /// (`label:zone=a`, and classes that need a label).
    pub labels: Vec<String>,
    /// Where a new object goes when its creator names no policy and its class declares
    /// none: `local`, `random`, `least-loaded`, `two-choices`, `node:N` or `label:KEY=VALUE`.
    pub placement: String,
    /// The node's identity directory (`clouds cluster init` makes one per node): its key and
    /// its certificate from the cluster authority. Only certified nodes of the same cluster
    /// may join and make internal requests, and the node checks the nodes it calls.
    /// `None`: the node makes an authority of its own under `DATA/identity` on first start
    /// (a cluster of one).
    pub identity: Option<PathBuf>,
    /// The cluster administrator's public key (hex, as `clouds whoami` prints it): the root
    /// node hands the holder of this key an owner capability for the root directory.
    /// `None`: nobody gets one (the root directory is then reachable only through
    /// capabilities granted before).
    pub admin: Option<String>,
    /// Whether this node moves objects off on its own when it is busier than the cluster's
    /// mean by more than `rebalance_margin` (MOSIX-style: each node decides for itself).
    pub rebalance: bool,
    /// How often the node looks at its load and its objects' (and evicts, as a workstation).
    pub rebalance_every_ms: u64,
    /// The share above the mean busy time at which moves begin; they stop within half of it.
    pub rebalance_margin: f64,
    /// Below this busy time (ms per second; 1000 is one core always busy) a node is not
    /// worth evening out.
    pub rebalance_min_busy_ms: f64,
    /// Whether objects that call objects on another node far more than objects here move
    /// there on their own (affinity).
    pub affinity: bool,
    /// How long an object stays where it was moved before it may move on its own again.
    pub move_cooldown_ms: u64,
    /// A workstation's owner counts as away this long after the last activity reported
    /// (`clouds node active`); until then the workstation takes no guests.
    pub owner_away_ms: u64,
    /// A connection with no request in flight for this long is closed (clients and nodes
    /// open a new one when they need it; they reuse one idle for at most 30 s).
    pub idle_timeout_ms: u64,
    /// Requests from callers the node serves at once; beyond, it answers `Overloaded` at
    /// once rather than queueing them.
    pub max_requests: usize,
    /// Where the HTTP gateway listens (dashboard, JSON API, `/metrics`); `None`: off.
    pub http: Option<SocketAddr>,
    /// Threads that run the node's tasks; `None`: one per core. Nodes that share a machine
    /// (`clouds cluster up`) do better with the cores split among them than with each
    /// running a thread per core.
    pub workers: Option<usize>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            id: NodeId(1),
            listen: "127.0.0.1:7100".parse().expect("valid literal"),
            data: PathBuf::from("clouds-data"),
            durability: Durability::PowerLoss,
            cache_objects: 10_000,
            store_cache_mib: 64,
            default_deadline_ms: clouds::thread::DEFAULT_DEADLINE_MS,
            hop_limit: clouds::thread::DEFAULT_HOP_LIMIT,
            shutdown_grace_ms: 10_000,
            seeds: Vec::new(),
            root_node: None,
            cluster: "clouds".into(),
            gossip_interval_ms: 300,
            labels: Vec::new(),
            placement: "local".into(),
            identity: None,
            admin: None,
            rebalance: true,
            rebalance_every_ms: 1_000,
            rebalance_margin: 0.25,
            rebalance_min_busy_ms: 200.0,
            affinity: true,
            move_cooldown_ms: 30_000,
            owner_away_ms: 300_000,
            idle_timeout_ms: 120_000,
            max_requests: 4096,
            http: None,
            workers: None,
        }
    }
}

impl Config {
    /// Reads a TOML file; fields it leaves out keep their defaults.
    pub fn from_toml_file(path: &std::path::Path) -> Result<Config, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.cache_objects == 0 {
            return Err("cache_objects must be at least 1".into());
        }
        if self.store_cache_mib == 0 {
            return Err("store_cache_mib must be at least 1".into());
        }
        if self.default_deadline_ms == 0 {
            return Err("default_deadline_ms must be at least 1".into());
        }
        if self.hop_limit == 0 {
            return Err("hop_limit must be at least 1".into());
        }
        if self.data.as_os_str().is_empty() {
            return Err("data must name a directory".into());
        }
        if let Some(admin) = &self.admin {
            admin.parse::<capability::PublicKey>().map_err(|e| format!("admin: {e}"))?;
        }
        if self.idle_timeout_ms == 0 {
            return Err("idle_timeout_ms must be at least 1".into());
        }
        if self.max_requests == 0 {
            return Err("max_requests must be at least 1".into());
        }
        if self.workers == Some(0) {
            return Err("workers must be at least 1 (leave it out for one per core)".into());
        }
        if self.gossip_interval_ms == 0 {
            return Err("gossip_interval_ms must be at least 1".into());
        }
        if self.cluster.is_empty() {
            return Err("cluster must not be empty".into());
        }
        match self.placement.parse::<protocol::Placement>() {
            Ok(protocol::Placement::Near(_) | protocol::Placement::Default) => {
                return Err("placement: a node's default cannot be `near:` or `default`".into())
            }
            Ok(_) => {}
            Err(e) => return Err(format!("placement: {e}")),
        }
        if self.rebalance_every_ms == 0 {
            return Err("rebalance_every_ms must be at least 1".into());
        }
        if !(self.rebalance_margin > 0.0 && self.rebalance_margin.is_finite()) {
            return Err(format!(
                "rebalance_margin must be a positive share (0.25: 25%), not {}",
                self.rebalance_margin
            ));
        }
        if !(self.rebalance_min_busy_ms >= 0.0 && self.rebalance_min_busy_ms.is_finite()) {
            return Err(format!("rebalance_min_busy_ms must be 0 or more, not {}", self.rebalance_min_busy_ms));
        }
        if let Some(bad) = self.labels.iter().find(|l| l.is_empty() || l.contains(',')) {
            return Err(format!("label `{bad}` must be non-empty and contain no comma"));
        }
        Ok(())
    }

    /// A config for tests: a fresh data directory, port chosen by the OS, and no object
    /// moving on its own (a test that wants it turns it on).
    pub fn for_test(data: PathBuf) -> Config {
        Config {
            listen: "127.0.0.1:0".parse().expect("valid literal"),
            data,
            shutdown_grace_ms: 2_000,
            rebalance: false,
            affinity: false,
            ..Config::default()
        }
    }

    /// The node keeping the root directory.
    pub fn root_node(&self) -> NodeId {
        self.root_node.unwrap_or(self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_overrides_defaults_and_rejects_unknown_fields() {
        let c: Config = toml::from_str("id = 7\nlisten = \"127.0.0.1:9000\"\ndurability = \"buffered\"").unwrap();
        assert_eq!(c.id, NodeId(7));
        assert_eq!(c.durability, Durability::Buffered);
        assert_eq!(c.hop_limit, 64);
        let err = toml::from_str::<Config>("idd = 7").unwrap_err().to_string();
        assert!(err.contains("unknown field `idd`"), "{err}");
    }

    #[test]
    fn validate_names_the_bad_field() {
        let c = Config { cache_objects: 0, ..Config::default() };
        assert!(c.validate().unwrap_err().contains("cache_objects"));
        let c = Config { store_cache_mib: 0, ..Config::default() };
        assert!(c.validate().unwrap_err().contains("store_cache_mib"));
        assert!(Config::default().validate().is_ok());
        let c = Config { placement: "least-loaded".into(), ..Config::default() };
        assert!(c.validate().is_ok());
        let c = Config { rebalance_margin: 0.0, ..Config::default() };
        assert!(c.validate().unwrap_err().contains("rebalance_margin must be a positive share"));
        let c = Config { placement: "everywhere".into(), ..Config::default() };
        assert!(c.validate().unwrap_err().contains("placement: `everywhere` is not a placement"));
        assert!("fsync".parse::<Durability>().unwrap_err().contains("process-crash"));
        let c = Config { workers: Some(0), ..Config::default() };
        assert!(c.validate().unwrap_err().contains("workers must be at least 1"));
        let c: Config = toml::from_str("workers = 2").unwrap();
        assert_eq!((c.workers, Config::default().workers), (Some(2), None));
    }
}
