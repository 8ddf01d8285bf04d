//! The command line's shape.

use clap::{Parser, Subcommand};

/// The default node address: a node started with default settings listens here.
pub const DEFAULT_NODE: &str = "127.0.0.1:7100";

/// clouds: create, invoke and inspect persistent objects; run a local cluster.
///
/// Exit codes: 0 success, 1 other failure (deadline, re-entrancy, panic, storage),
/// 2 usage, 3 not found, 4 bad arguments or request, 5 denied, 6 node unavailable,
/// 7 application error (the method's own error), 8 name already bound.
#[derive(Parser, Debug)]
#[command(
    name = "clouds",
    version,
    after_help = "Examples:
  clouds cluster up --dir /tmp/c             a local cluster of 3 nodes
  clouds create Counter --name counters/a    an object, named
  clouds invoke counters/a.incr 5            a method call
  clouds objects                             every object of the cluster"
)]
pub struct Cli {
    /// The node to talk to: HOST:PORT, by name or address.
    #[arg(long, global = true, env = "CLOUDS_NODE", default_value = DEFAULT_NODE, value_name = "HOST:PORT")]
    pub node: String,
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
    #[command(after_help = "Examples:
  clouds create Counter
  clouds create Account --name bank/alice --state '{\"balance\": 100}'
  clouds create Map --placement least-loaded --pinned
  clouds create Log --state @initial.json")]
    Create {
        /// The class (see `clouds classes`).
        class: String,
        /// Bind the new object to this name (missing directories are created).
        #[arg(long)]
        name: Option<String>,
        /// Initial state as JSON (default: the class's default state); `@FILE` reads it from
        /// a file, `-` from stdin.
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
    #[command(after_help = "Examples:
  clouds invoke counters/a.incr 5
  clouds invoke bank/alice.transfer bank/bob 30 --call-id pay-17
  clouds invoke logs/events.append '{\"user\": \"alice\"}'
  clouds invoke blobs/b.write_at 0 @bytes.json     (the argument read from a file)
  cat bytes.json | clouds invoke blobs/b.write_at 0 -")]
    Invoke {
        /// TARGET.METHOD: the object (a name such as `counters/a`, or a UUID) and the method.
        #[arg(value_name = "TARGET.METHOD")]
        call: String,
        /// The arguments, each JSON or a plain string; `@FILE` reads one from a file
        /// (`@@...` is a literal `@...`), `-` from stdin. Options may come before or after
        /// them; negative numbers are arguments; a string that starts with `-` goes after `--`.
        #[arg(allow_negative_numbers = true, value_name = "ARG")]
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
    /// Show an object: id, class, node, version, size, first pages, state, methods.
    #[command(
        after_help = "Examples:\n  clouds describe counters/a\n  clouds --json describe 01a23b17-9c6c-8ec4-9e03-0001b2211ff9"
    )]
    Describe {
        /// The object: a name or a UUID.
        target: String,
    },
    /// Move a live object to another node (needs the migrate right); calls go on meanwhile.
    /// Shows its progress on a terminal; ends with a one-line report: strategy, bytes
    /// moved, copy rounds, freeze time, total.
    #[command(
        after_help = "Examples:\n  clouds migrate counters/a --to 3\n  clouds migrate logs/big --to node-1 --strategy lazy"
    )]
    Migrate {
        /// The object: a name or a UUID.
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
    #[command(after_help = "Examples:\n  clouds ls\n  clouds ls bank")]
    Ls {
        /// The directory, such as `bank` or `/bank` (default: the root).
        path: Option<String>,
    },
    /// List objects cluster-wide, named or not, in id order: id, class, node, version,
    /// size. Paged: when there are more, the last line gives the `--after` that goes on.
    /// The administrator only.
    #[command(after_help = "Examples:\n  clouds objects\n  clouds objects --on 2 --class Counter --limit 20")]
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
    #[command(after_help = "Examples:\n  clouds mkdir projects/x\n  clouds mkdir home/bob --for 9bf1b2af2081...")]
    Mkdir {
        /// The directory to make, such as `home/bob`.
        path: String,
        /// The user the directory is for: their public key.
        #[arg(long = "for")]
        owner: Option<capability::PublicKey>,
    },
    /// Delete an object (and its name, if given by name).
    #[command(after_help = "Examples:\n  clouds rm counters/a\n  clouds rm 01a23b17-9c6c-8ec4-9e03-0001b2211ff9")]
    Rm {
        /// The object: a name or a UUID.
        target: String,
    },
    /// List the classes the node can run, with their methods.
    #[command(after_help = "Example:\n  clouds classes")]
    Classes,
    /// Show the node's id, root directory and object count.
    #[command(after_help = "Example:\n  clouds --node 127.0.0.1:7101 status")]
    Status,
    /// List the cluster's nodes: id, address, state, mode, objects, load (busy time of
    /// invocations in ms per second, calls per second, lock waiters, memory).
    #[command(after_help = "Example:\n  clouds nodes")]
    Nodes,
    /// A node's role in the cluster.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Move every object off NODE (`3`, `node-3` or an address) while calls go on, then
    /// hand its home records to another node: afterwards NODE can be stopped for good.
    /// Shows a progress bar, then where each object went. The administrator only.
    #[command(after_help = "Examples:\n  clouds drain 3\n  clouds drain node-3 --undo")]
    Drain {
        /// The node: `3`, `node-3` or its address.
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
    #[command(after_help = "Example:\n  clouds why counters/a")]
    Why {
        /// The object: a name or a UUID.
        target: String,
    },
    /// The recent decisions nodes made on their own: placements, rebalancing, affinity,
    /// evictions, drains; oldest first.
    #[command(after_help = "Examples:\n  clouds decisions\n  clouds decisions 2 --limit 10")]
    Decisions {
        /// Only this node's (`3`, `node-3` or an address); default: every live node's.
        #[arg(value_name = "NODE")]
        which: Option<String>,
        /// Show at most this many, the most recent.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// A live view of the nodes' load and the hottest objects, refreshed until interrupted.
    #[command(after_help = "Examples:\n  clouds top\n  clouds top --every 500 --limit 20")]
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
    #[command(after_help = "Example:\n  clouds whoami")]
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
    /// Print a shell completion script: bash, zsh, fish, elvish or powershell.
    #[command(after_help = "Examples:
  clouds completions bash > ~/.local/share/bash-completion/completions/clouds
  clouds completions zsh > ~/.zfunc/_clouds
  clouds completions fish > ~/.config/fish/completions/clouds.fish")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// Set the mode of NODE (`3`, `node-3` or an address): `server` (takes any object),
    /// `workstation` (takes objects from elsewhere only while its owner is away, and
    /// evicts them when the owner is back) or `draining` (takes no new object). Leaving
    /// `draining` ends a drain (`clouds drain NODE --undo`). The administrator only.
    #[command(after_help = "Examples:\n  clouds node mode 3 workstation\n  clouds node mode node-3 server")]
    Mode {
        /// The node: `3`, `node-3` or its address.
        #[arg(value_name = "NODE")]
        which: String,
        /// `server`, `workstation` or `draining`.
        mode: protocol::NodeMode,
    },
    /// Report that NODE's owner is active (a desktop hook or cron job calls this): a
    /// workstation then takes no guests for `owner_away_ms` and evicts those it has.
    /// The administrator only.
    #[command(after_help = "Example:\n  clouds node active 3")]
    Active {
        /// The node: `3`, `node-3` or its address.
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
    #[command(
        after_help = "Example:\n  clouds --node 127.0.0.1:7102 action resolve 0b6f5c9e-0e0c-4a51-9a43-1f5f3c0a9d2e --abort"
    )]
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
    #[command(after_help = "Examples:\n  clouds cap show\n  clouds cap show counters/a")]
    Show {
        /// The object: a name or a UUID (default: every object).
        target: Option<String>,
    },
    /// Print a capability for TARGET, narrower than yours, to hand to someone.
    #[command(after_help = "Example:\n  clouds cap grant counters/a --rights read --expires 1h --to 9bf1b2af2081...")]
    Grant {
        /// The object: a name or a UUID.
        target: String,
        /// Rights, comma-separated: read, write, admin, delegate, migrate.
        #[arg(long)]
        rights: clouds::Rights,
        /// Only these methods (comma-separated).
        #[arg(long, value_delimiter = ',')]
        methods: Option<Vec<String>>,
        /// Expires after this long: `90s`, `15m`, `1h`, `7d`, `2h 30m`.
        #[arg(long, value_parser = parse_duration)]
        expires: Option<u64>,
        /// The receiver's public key (`clouds whoami`): who may pass it on further, if it
        /// has `delegate`. Default: you.
        #[arg(long)]
        to: Option<capability::PublicKey>,
    },
    /// Keep a capability someone granted you (the `cap1.` text).
    #[command(after_help = "Example:\n  clouds cap import cap1.AQFiAkEDZQhr...")]
    Import {
        /// The capability, as `clouds cap grant` printed it; `@FILE` reads it from a file,
        /// `-` from stdin.
        token: String,
    },
    /// Void every capability for TARGET granted so far; you get a fresh owner capability.
    #[command(after_help = "Example:\n  clouds cap revoke counters/a")]
    Revoke {
        /// The object: a name or a UUID.
        target: String,
    },
}

/// `90s`, `15m`, `1h`, `7d`, `2h 30m` -> whole seconds (humantime's syntax).
fn parse_duration(text: &str) -> Result<u64, String> {
    let too_long = || format!("`{text}` is too long: a capability expires within 100 years (36500d) at most");
    match humantime::parse_duration(text) {
        Ok(d) if d.as_secs() <= MAX_EXPIRY_S => Ok(d.as_secs()),
        Ok(_) => Err(too_long()),
        Err(humantime::DurationError::NumberOverflow) => Err(too_long()),
        Err(e) => {
            Err(format!("`{text}` is not a duration ({e}; expected a number and a unit: `90s`, `15m`, `1h`, `7d`)"))
        }
    }
}

/// The longest a granted capability may run: 100 years.
const MAX_EXPIRY_S: u64 = 36_500 * 86_400;

#[cfg(test)]
mod tests {
    use super::{parse_duration, Cli};
    use clap::{CommandFactory, Parser};

    /// The definitions are consistent (clap's own checks), and every command has an
    /// example and every argument a help text.
    #[test]
    fn every_command_has_an_example_and_every_argument_help() {
        Cli::command().debug_assert();
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let path = format!("{path} {}", cmd.get_name());
            let leaf = !cmd.has_subcommands();
            if leaf && !cmd.get_after_help().is_some_and(|h| h.to_string().contains("Example")) {
                missing.push(format!("`{path}` has no example"));
            }
            for arg in cmd.get_arguments() {
                let builtin = ["help", "version"].contains(&arg.get_id().as_str());
                if !builtin && arg.get_help().is_none() {
                    missing.push(format!("`{path}` argument `{}` has no help", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                walk(sub, &path, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "", &mut missing);
        assert!(missing.is_empty(), "{missing:#?}");
    }

    /// Every `clouds ...` command line README shows parses as written (the options after
    /// the arguments, as people type them); the demo and the tests run most of them.
    #[test]
    fn every_command_line_in_the_readme_parses() {
        let readme = include_str!("../../README.md");
        let mut checked = 0;
        for line in readme.lines().map(str::trim) {
            let Some(rest) = line.strip_prefix("$ ").unwrap_or(line).strip_prefix("clouds ") else { continue };
            // Up to a comment, a pipe or a redirection.
            let rest = rest.split(" #").next().unwrap_or(rest);
            let rest = rest.split(['|', '>']).next().unwrap_or(rest);
            // Placeholders, as README writes them, with values of their kind.
            let key = "9bf1b2af208100ff4b8b6fdd65bac0e050ce35c858aeb9678a31ee976095238d";
            let rest = rest.replace("BOBS_KEY", key).replace(":PORT2", ":7101").replace(":PORT", ":7100");
            let words = shell_words(&rest);
            if let Err(e) = Cli::try_parse_from(std::iter::once("clouds".to_string()).chain(words)) {
                panic!("README's `{line}` does not parse: {e}");
            }
            checked += 1;
        }
        assert!(checked >= 10, "README shows {checked} command lines");
    }

    /// Splits like a shell, for the quoting README uses: words, '...' and "...".
    fn shell_words(text: &str) -> Vec<String> {
        let (mut words, mut word, mut quote, mut any) = (Vec::new(), String::new(), None, false);
        for c in text.chars() {
            match (quote, c) {
                (None, '\'' | '"') => (quote, any) = (Some(c), true),
                (Some(q), c) if c == q => quote = None,
                (None, c) if c.is_whitespace() => {
                    if any {
                        words.push(std::mem::take(&mut word));
                    }
                    any = false;
                }
                (_, c) => (word, any) = (word + &c.to_string(), true),
            }
        }
        if any {
            words.push(word);
        }
        words
    }

    #[test]
    fn durations_have_a_unit() {
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("1h"), Ok(3600));
        assert_eq!(parse_duration("7d"), Ok(604_800));
        assert_eq!(parse_duration("2h 30m"), Ok(9000));
        assert!(
            parse_duration("10").unwrap_err().contains("expected a number and a unit"),
            "{:?}",
            parse_duration("10")
        );
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("213503982334601d").unwrap_err().contains("too long"));
        assert_eq!(parse_duration("36500d"), Ok(36_500 * 86_400));
    }
}

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Create a cluster authority in DIR (kept if there is one) and an identity (key and
    /// certificate) for nodes 1..=N under DIR/identity-N. `cluster up` does this by itself.
    #[command(after_help = "Example:\n  clouds cluster init /srv/clouds --nodes 5")]
    Init {
        /// Where the authority and the identities go.
        dir: std::path::PathBuf,
        /// How many node identities to make.
        #[arg(long, default_value_t = 3)]
        nodes: u16,
    },
    /// Start N objectd processes on 127.0.0.1 with free ports, data and logs under DIR;
    /// prints `ID ADDRESS` per node (also written to DIR/nodes). Run again on the same DIR,
    /// it starts whichever nodes are not running, with the same id, address and data.
    #[command(
        after_help = "Examples:\n  clouds cluster up --dir /tmp/c\n  clouds cluster up --nodes 5 --dir /tmp/c --objectd target/release/objectd"
    )]
    Up {
        /// How many nodes.
        #[arg(long, default_value_t = 3)]
        nodes: u16,
        /// The cluster's directory: node data, logs, pids, identities.
        #[arg(long)]
        dir: std::path::PathBuf,
        /// The node binary (default: `objectd` next to this `clouds`).
        #[arg(long)]
        objectd: Option<std::path::PathBuf>,
        /// Threads each node runs its tasks on (default: the machine's cores split among
        /// the nodes, at least one each).
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Stop the nodes of the cluster in DIR cleanly (SIGTERM, then wait).
    #[command(after_help = "Example:\n  clouds cluster down --dir /tmp/c")]
    Down {
        /// The cluster's directory (as given to `cluster up`).
        #[arg(long)]
        dir: std::path::PathBuf,
    },
}
