//! The command line's shape.

use clap::{Parser, Subcommand};
use std::net::SocketAddr;

/// The default node address: a node started with default settings listens here.
pub const DEFAULT_NODE: &str = "127.0.0.1:7100";

/// clouds: create, invoke and inspect persistent objects; run a local cluster.
///
/// Exit codes: 0 success, 1 other failure (deadline, re-entrancy, panic, storage),
/// 2 usage, 3 not found, 4 bad arguments or request, 5 denied, 6 node unavailable,
/// 7 application error (the method's own error), 8 name already bound.
#[derive(Parser, Debug)]
#[command(name = "clouds", version)]
pub struct Cli {
    /// The node to talk to.
    #[arg(long, global = true, env = "CLOUDS_NODE", default_value = DEFAULT_NODE)]
    pub node: SocketAddr,
    /// Print results as JSON.
    #[arg(long, global = true)]
    pub json: bool,
    /// Deadline of the thread, in milliseconds (1 to 86400000, a day).
    #[arg(long, global = true, default_value_t = clouds::thread::DEFAULT_DEADLINE_MS,
          value_parser = clap::value_parser!(u64).range(1..=clouds::thread::MAX_DEADLINE_MS))]
    pub deadline: u64,
    /// The wallet: your key and capabilities (made on first use, readable by you only).
    /// Default: ~/.clouds/wallet.
    #[arg(long, global = true, env = "CLOUDS_WALLET")]
    pub wallet: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create an object; prints its id.
    Create {
        /// The class (see `clouds classes`).
        class: String,
        /// Bind the new object to this name (missing directories are created).
        #[arg(long)]
        name: Option<String>,
        /// Initial state as JSON (default: the class's default state).
        #[arg(long)]
        state: Option<String>,
        /// Where: `local` (the node asked), `random`, `least-loaded`, `two-choices` (the
        /// lighter of two nodes drawn at random), `node:N` (or `N`), `label:KEY=VALUE`
        /// (only nodes with that label), or `near:TARGET` (on the node of another object,
        /// by name or id). Default: the class's policy, else the node's (`placement` in
        /// its config, `local` unless set).
        #[arg(long, alias = "on")]
        placement: Option<String>,
        /// With --name: hand a capability with these rights (`read`, `read,write`...) to
        /// everyone who can read the directory. Default: the name gives the id only.
        #[arg(long, requires = "name")]
        share: Option<clouds::Rights>,
        /// Never move it automatically (rebalancing, affinity, eviction); by hand and by
        /// a drain it still moves.
        #[arg(long)]
        pinned: bool,
    },
    /// Invoke a method: TARGET.METHOD [ARG...]; prints the result as JSON.
    ///
    /// TARGET is a name or a UUID; it is split from METHOD at the last `.`. Each ARG is
    /// parsed as JSON, or taken as a string if it is not JSON. An object-reference
    /// argument is written as the object's name or UUID.
    Invoke {
        call: String,
        /// The arguments. Options may come before or after them; negative numbers are
        /// arguments; a string argument that starts with `-` goes after `--`.
        #[arg(allow_negative_numbers = true)]
        args: Vec<String>,
        /// Idempotency key: retrying a write with the same key does not run it again.
        #[arg(long)]
        call_id: Option<String>,
        /// After the result, print the path the thread took: node, object, method, time per hop.
        #[arg(long)]
        trace: bool,
        /// Run the call as one atomic action: everything it does, on every object and node,
        /// commits together, or nothing does.
        #[arg(long)]
        atomic: bool,
    },
    /// Show an object: id, class, node, version, size, state, methods.
    Describe { target: String },
    /// Move a live object to another node (needs the migrate right); calls go on meanwhile.
    /// Shows its progress on a terminal; ends with a one-line report: strategy, bytes
    /// moved, copy rounds, freeze time, total.
    Migrate {
        target: String,
        /// The node to move it to (`3` or `node-3`).
        #[arg(long)]
        to: clouds::NodeId,
        /// `precopy` (copy while the object serves, freeze for the rest), `eager` (freeze,
        /// copy everything) or `lazy` (freeze, move the state and switch at once; the new
        /// node fetches pages from the old one as they are touched, and pulls the rest).
        #[arg(long, default_value = "precopy")]
        strategy: protocol::migration::Strategy,
    },
    /// List a directory (default: the root).
    Ls { path: Option<String> },
    /// List objects cluster-wide, named or not, in id order: id, class, node, version,
    /// size. Paged: when there are more, the last line gives the `--after` that goes on.
    /// The administrator only.
    Objects {
        /// Only the objects of this node (`3` or `node-3`).
        #[arg(long, value_name = "NODE")]
        on: Option<clouds::NodeId>,
        /// Only the objects of this class.
        #[arg(long)]
        class: Option<String>,
        /// At most this many (1 to 10000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Start after this object id (the previous page's last).
        #[arg(long)]
        after: Option<clouds::ObjectId>,
    },
    /// Make a directory at PATH (missing parents too), readable by whoever can read its
    /// parent. With `--for KEY`, prints a capability with every right on it made out to
    /// that user (`clouds whoami` prints theirs), who imports it (`clouds cap import`) and
    /// can then bind names in it: a directory of their own in one command.
    Mkdir {
        path: String,
        /// The user the directory is for: their public key.
        #[arg(long = "for")]
        owner: Option<capability::PublicKey>,
    },
    /// Delete an object (and its name, if given by name).
    Rm { target: String },
    /// List the classes the node can run, with their methods.
    Classes,
    /// Show the node's id, root directory and object count.
    Status,
    /// List the cluster's nodes: id, address, state, mode, objects, load (busy time of
    /// invocations in ms per second, calls per second, lock waiters, memory).
    Nodes,
    /// A node's role in the cluster.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Move every object off NODE (`3`, `node-3` or an address) while calls go on, then
    /// hand its home records to another node: afterwards NODE can be stopped for good.
    /// Shows a progress bar, then where each object went. The administrator only.
    Drain {
        #[arg(value_name = "NODE")]
        which: String,
        /// End the drain: the node takes objects again and takes its home records back.
        #[arg(long)]
        undo: bool,
        /// Start the drain and return (`clouds drain NODE` again shows how it goes).
        #[arg(long)]
        detach: bool,
    },
    /// Where an object has lived and why it moved each time (from every node's log).
    Why { target: String },
    /// The recent decisions nodes made on their own: placements, rebalancing, affinity,
    /// evictions, drains; oldest first.
    Decisions {
        /// Only this node's (`3`, `node-3` or an address); default: every live node's.
        #[arg(value_name = "NODE")]
        which: Option<String>,
        /// Show at most this many, the most recent.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// A live view of the nodes' load and the hottest objects, refreshed until interrupted.
    Top {
        /// Refresh every this many milliseconds.
        #[arg(long, default_value_t = 1000)]
        every: u64,
        /// Stop after this many frames.
        #[arg(long)]
        iterations: Option<u32>,
        /// How many of the hottest objects to show.
        #[arg(long, default_value_t = 10)]
        limit: u32,
    },
    /// Print your public key (the wallet's): what others grant capabilities to.
    Whoami,
    /// Capabilities: show, grant, import, revoke.
    #[command(subcommand)]
    Cap(CapCommand),
    /// Run a local cluster on 127.0.0.1.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Atomic actions held in doubt.
    #[command(subcommand)]
    Action(ActionCommand),
}

#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// Set the mode of NODE (`3`, `node-3` or an address): `server` (takes any object),
    /// `workstation` (takes objects from elsewhere only while its owner is away, and
    /// evicts them when the owner is back) or `draining` (takes no new object). Leaving
    /// `draining` ends a drain (`clouds drain NODE --undo`). The administrator only.
    Mode {
        #[arg(value_name = "NODE")]
        which: String,
        mode: protocol::NodeMode,
    },
    /// Report that NODE's owner is active (a desktop hook or cron job calls this): a
    /// workstation then takes no guests for `owner_away_ms` and evicts those it has.
    /// The administrator only.
    Active {
        #[arg(value_name = "NODE")]
        which: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum ActionCommand {
    /// Decide by hand the part of a prepared action on the node `--node` names, when its
    /// coordinator will not come back (`clouds describe` shows the action holding an
    /// object). Only the administrator may; deciding otherwise than the coordinator did
    /// breaks the action's atomicity.
    #[command(group(clap::ArgGroup::new("decision").required(true).args(["commit", "abort"])))]
    Resolve {
        /// The action's id (a UUID, as `describe` prints it).
        action: String,
        /// Apply the node's part.
        #[arg(long)]
        commit: bool,
        /// Roll the node's part back.
        #[arg(long)]
        abort: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum CapCommand {
    /// The capabilities your wallet holds (for TARGET, or all of them).
    Show { target: Option<String> },
    /// Print a capability for TARGET, narrower than yours, to hand to someone.
    Grant {
        target: String,
        /// Rights, comma-separated: read, write, admin, delegate, migrate.
        #[arg(long)]
        rights: clouds::Rights,
        /// Only these methods (comma-separated).
        #[arg(long, value_delimiter = ',')]
        methods: Option<Vec<String>>,
        /// Expires after this long: `90s`, `15m`, `1h`, `7d`.
        #[arg(long, value_parser = parse_duration)]
        expires: Option<u64>,
        /// The receiver's public key (`clouds whoami`): who may pass it on further, if it
        /// has `delegate`. Default: you.
        #[arg(long)]
        to: Option<capability::PublicKey>,
    },
    /// Keep a capability someone granted you (the `cap1.` text).
    Import { token: String },
    /// Void every capability for TARGET granted so far; you get a fresh owner capability.
    Revoke { target: String },
}

/// `90s`, `15m`, `1h`, `7d` -> seconds.
fn parse_duration(text: &str) -> Result<u64, String> {
    let bad = || format!("`{text}` is not a duration (expected a number and s, m, h or d: `90s`, `15m`, `1h`, `7d`)");
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: u64 = number.parse().map_err(|_| bad())?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    match n.checked_mul(scale) {
        Some(secs) if secs <= MAX_EXPIRY_S => Ok(secs),
        _ => Err(format!("`{text}` is too long: a capability expires within 100 years (36500d) at most")),
    }
}

/// The longest a granted capability may run: 100 years.
const MAX_EXPIRY_S: u64 = 36_500 * 86_400;

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations_have_a_unit() {
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("1h"), Ok(3600));
        assert_eq!(parse_duration("7d"), Ok(604_800));
        assert!(parse_duration("10").unwrap_err().contains("expected a number and s, m, h or d"));
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("213503982334601d").unwrap_err().contains("too long"));
        assert_eq!(parse_duration("36500d"), Ok(36_500 * 86_400));
    }
}

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Create a cluster authority in DIR (kept if there is one) and an identity (key and
    /// certificate) for nodes 1..=N under DIR/identity-N. `cluster up` does this by itself.
    Init {
        dir: std::path::PathBuf,
        #[arg(long, default_value_t = 3)]
        nodes: u16,
    },
    /// Start N objectd processes on 127.0.0.1 with free ports, data and logs under DIR;
    /// prints `ID ADDRESS` per node (also written to DIR/nodes). Run again on the same DIR,
    /// it starts whichever nodes are not running, with the same id, address and data.
    Up {
        #[arg(long, default_value_t = 3)]
        nodes: u16,
        #[arg(long)]
        dir: std::path::PathBuf,
        /// The node binary (default: `objectd` next to this `clouds`).
        #[arg(long)]
        objectd: Option<std::path::PathBuf>,
    },
    /// Stop the nodes of the cluster in DIR cleanly (SIGTERM, then wait).
    Down {
        #[arg(long)]
        dir: std::path::PathBuf,
    },
}
