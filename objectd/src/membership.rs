//! Membership: who is in the cluster, where each node listens, what it hosts, how loaded it
//! is, and whether it is up. Spread by gossip (chitchat: scuttlebutt with phi-accrual
//! failure detection) on UDP, on the same port number as the node's RPC address.
//!
//! Each node publishes its own keys; nobody else writes them:
//! `addr` (RPC address), `classes`, `labels`, `root` (its root directory), `load`
//! (the load vector, versioned), `mode` (whether it takes new objects), and `cert` (its
//! certificate, with an identity).
//! A node with an identity counts as members only the nodes whose certificate its
//! authority signed for that node id: gossip from anyone else is heard but ignored.

mod signed;

use crate::config::Config;
use chitchat::transport::UdpTransport;
use chitchat::{spawn_chitchat, ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig};
use clouds::{NodeId, ObjectId};
use protocol::{Identity, Liveness, Load, NodeMode, NodeView};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const KEY_ADDR: &str = "addr";
const KEY_CLASSES: &str = "classes";
const KEY_LABELS: &str = "labels";
const KEY_CERT: &str = "cert";
const KEY_ROOT: &str = "root";
const KEY_LOAD: &str = "load";
const KEY_MODE: &str = "mode";
/// `present` while a workstation's owner is active.
const KEY_OWNER: &str = "owner";
/// The drained nodes whose home records this node keeps (comma-separated numbers).
const KEY_KEEPS: &str = "keeps";

/// How long a failed direct contact keeps a node `Suspect` while gossip still says alive.
const SUSPECT_FOR: Duration = Duration::from_secs(10);

pub struct Membership {
    handle: ChitchatHandle,
    id: NodeId,
    /// With an identity: the authority whose certificates make a member.
    authority: Option<capability::PublicKey>,
    addr: SocketAddr,
    /// Nodes whose direct contact failed, and when. std `Mutex`: one map operation at a time.
    /// When a direct call to a node last failed: monotonic, and wall-clock ms to compare
    /// with incarnations' generations.
    unreachable: Mutex<HashMap<NodeId, (Instant, u64)>>,
}

impl Membership {
    /// Joins (or starts) the cluster: gossip on UDP `addr`, through `config.seeds`.
    pub async fn start(
        config: &Config,
        addr: SocketAddr,
        classes: &[String],
        root: Option<ObjectId>,
        identity: Option<&Arc<Identity>>,
    ) -> anyhow::Result<Membership> {
        let generation = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let interval = Duration::from_millis(config.gossip_interval_ms);
        let chitchat_config = ChitchatConfig {
            chitchat_id: ChitchatId::new(config.id.0.to_string(), generation, addr),
            cluster_id: config.cluster.clone(),
            gossip_interval: interval,
            listen_addr: addr,
            seed_nodes: config.seeds.iter().filter(|s| **s != addr).map(|s| s.to_string()).collect(),
            failure_detector_config: FailureDetectorConfig {
                initial_interval: interval,
                max_interval: interval * 20,
                dead_node_grace_period: Duration::from_secs(3600),
                ..FailureDetectorConfig::default()
            },
            marked_for_deletion_grace_period: Duration::from_secs(3600),
            catchup_callback: None,
            extra_liveness_predicate: None,
            protocol_version: chitchat::ProtocolVersion::V0,
        };
        let mut initial = vec![(KEY_ADDR.to_string(), addr.to_string()), (KEY_CLASSES.to_string(), classes.join(","))];
        if let Some(root) = root {
            initial.push((KEY_ROOT.to_string(), root.to_string()));
        }
        initial.push((KEY_LABELS.to_string(), config.labels.join(",")));
        if let Some(id) = identity {
            initial.push((KEY_CERT.to_string(), id.cert.to_text()));
        }
        // With an identity, only this cluster's certified nodes are heard (`signed`).
        let handle = match identity {
            Some(identity) => {
                let transport = signed::SignedTransport { identity: identity.clone(), dropped: Default::default() };
                spawn_chitchat(chitchat_config, initial, &transport).await
            }
            None => spawn_chitchat(chitchat_config, initial, &UdpTransport).await,
        }
        .map_err(|e| anyhow::anyhow!("cannot start gossip on udp {addr}: {e:#}"))?;
        let authority = identity.map(|i| i.authority);
        Ok(Membership { handle, id: config.id, authority, addr, unreachable: Mutex::new(HashMap::new()) })
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Every node this node knows of, itself included, by id; the newest incarnation of each.
    pub async fn peers(&self) -> Vec<NodeView> {
        let chitchat = self.handle.chitchat();
        let chitchat = chitchat.lock().await;
        let live: Vec<ChitchatId> = chitchat.live_nodes().cloned().collect();
        let dead: Vec<ChitchatId> = chitchat.dead_nodes().cloned().collect();
        let mut newest: BTreeMap<NodeId, (u64, NodeView)> = BTreeMap::new();
        let unreachable = self.unreachable.lock().expect("unreachable mutex").clone();
        for (cid, is_live) in live.iter().map(|c| (c, true)).chain(dead.iter().map(|c| (c, false))) {
            let Ok(id) = cid.node_id.parse::<u16>().map(NodeId) else { continue };
            let Some(state) = chitchat.node_state(cid) else { continue };
            let get = |k: &str| state.get(k).map(str::to_string);
            let Some(addr) = get(KEY_ADDR).and_then(|a| a.parse().ok()) else { continue };
            if let Some(authority) = &self.authority {
                if !certified(get(KEY_CERT), id, authority) {
                    continue;
                }
            }
            // A failure to reach a node counts against the incarnations that were up then,
            // not against one started after it (a generation is its start time in ms).
            let suspect = id != self.id
                && unreachable
                    .get(&id)
                    .is_some_and(|(at, wall)| at.elapsed() < SUSPECT_FOR && *wall >= cid.generation_id);
            let peer = NodeView {
                id,
                generation: cid.generation_id,
                addr,
                state: match (is_live, suspect) {
                    (false, _) => Liveness::Dead,
                    (true, true) => Liveness::Suspect,
                    (true, false) => Liveness::Alive,
                },
                classes: list(get(KEY_CLASSES)),
                labels: list(get(KEY_LABELS)),
                root: get(KEY_ROOT).and_then(|r| r.parse().ok()),
                load: get(KEY_LOAD).as_deref().and_then(Load::decode),
                mode: NodeMode::decode(get(KEY_MODE).as_deref()),
                owner_present: get(KEY_OWNER).as_deref() == Some("present"),
                keeps_homes: list(get(KEY_KEEPS)).iter().filter_map(|n| n.parse().ok()).collect(),
            };
            let keep = newest.get(&id).is_none_or(|(g, p)| {
                cid.generation_id > *g || (cid.generation_id == *g && is_live && p.state == Liveness::Dead)
            });
            if keep {
                newest.insert(id, (cid.generation_id, peer));
            }
        }
        newest.into_values().map(|(_, p)| p).collect()
    }

    /// Live nodes with the same id as this one at another address: a configuration error.
    pub async fn same_id_elsewhere(&self) -> Vec<SocketAddr> {
        let chitchat = self.handle.chitchat();
        let chitchat = chitchat.lock().await;
        let mine = self.id.0.to_string();
        let live: Vec<ChitchatId> = chitchat.live_nodes().cloned().collect();
        live.iter()
            .filter(|c| *c.node_id == *mine && c.gossip_advertise_addr != self.addr)
            .map(|c| c.gossip_advertise_addr)
            .collect()
    }

    /// The newest incarnation of a node, if it is known and not dead.
    pub async fn peer(&self, node: NodeId) -> Option<NodeView> {
        self.peers().await.into_iter().find(|p| p.id == node && p.state != Liveness::Dead)
    }

    /// Changes of the set of live incarnations, as `(node, generation)` pairs.
    pub async fn live_watcher(&self) -> tokio::sync::watch::Receiver<BTreeMap<ChitchatId, chitchat::NodeState>> {
        self.handle.chitchat().lock().await.live_nodes_watcher()
    }

    /// Publishes this node's load vector, mode, owner presence and kept home records.
    pub async fn publish(&self, p: crate::engine::Published) {
        let chitchat = self.handle.chitchat();
        let mut chitchat = chitchat.lock().await;
        let me = chitchat.self_node_state();
        me.set(KEY_LOAD, p.load.encode());
        let owner = if p.owner_present { "present" } else { "away" };
        let keeps = p.keeps_homes.iter().map(|n| n.0.to_string()).collect::<Vec<_>>().join(",");
        for (key, value) in [(KEY_MODE, p.mode.as_str()), (KEY_OWNER, owner), (KEY_KEEPS, keeps.as_str())] {
            if me.get(key) != Some(value) {
                me.set(key, value);
            }
        }
    }

    /// A direct call to `node` failed: show it as suspect for a while.
    pub fn mark_unreachable(&self, node: NodeId) {
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        self.unreachable.lock().expect("unreachable mutex").insert(node, (Instant::now(), wall));
    }

    /// A direct call to `node` worked.
    pub fn mark_reachable(&self, node: NodeId) {
        self.unreachable.lock().expect("unreachable mutex").remove(&node);
    }

    /// Stops gossiping.
    pub async fn shutdown(self) {
        let _ = self.handle.shutdown().await;
    }
}

/// A comma-separated value as a list.
fn list(value: Option<String>) -> Vec<String> {
    value.map(|v| v.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect()).unwrap_or_default()
}

/// Whether a gossiped certificate is `authority`'s, for node `id`.
fn certified(cert: Option<String>, id: NodeId, authority: &capability::PublicKey) -> bool {
    cert.and_then(|text| capability::NodeCert::from_text(&text))
        .is_some_and(|cert| cert.node == id && cert.is_signed_by(authority))
}

#[cfg(test)]
mod tests {
    use super::*;
    use capability::{KeyPair, NodeCert};

    /// A peer counts only with a certificate from this cluster's authority for its own id,
    /// whatever name it gossips under.
    #[test]
    fn only_peers_certified_for_their_id_count() {
        let (authority, other) = (KeyPair::generate(), KeyPair::generate());
        let key = KeyPair::generate().public();
        let ours = NodeCert::issue(&authority, NodeId(2), key).to_text();
        assert!(certified(Some(ours.clone()), NodeId(2), &authority.public()));
        assert!(!certified(Some(ours), NodeId(3), &authority.public()), "a certificate for another id");
        let theirs = NodeCert::issue(&other, NodeId(2), key).to_text();
        assert!(!certified(Some(theirs), NodeId(2), &authority.public()), "another cluster's authority");
        assert!(!certified(None, NodeId(2), &authority.public()), "no certificate");
        assert!(!certified(Some("garbage".into()), NodeId(2), &authority.public()));
    }
}
