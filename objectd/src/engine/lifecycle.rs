//! An object's life outside its methods: creation (with its owner capability), deletion,
//! description, revocation; the root directory's capability; and the node's status.

use super::slot::{admit, Admission, SlotState, Want};
use super::table::{Active, Slot};
use super::Engine;
use crate::config::Config;
use crate::placement;
use crate::registry::Registry;
use crate::store::{Commit, Record, Store, Unit};
use capability::PublicKey;
use clouds::{Cap, InvokeError, NodeId, ObjectId, RawRef, Rights};
use protocol::wire::{CreateRequest, NodeStatus, ObjectEntry, ObjectInfo, ObjectPage, MAX_OBJECTS_PER_PAGE};
use protocol::{InitialState, Load, NodeMode, Placement, RequestBody, ResponseBody};
use std::sync::atomic::Ordering;
use tokio::sync::OwnedRwLockWriteGuard;
use tokio::time::Duration;

/// Node metadata key of the root directory's id.
const ROOT_KEY: &str = "root";
/// Node metadata key of the node's mode.
const MODE_KEY: &str = "mode";
/// Node metadata key prefixes of an object's marks: never moved automatically; placed
/// here by another node's creation (a guest, which a workstation evicts).
const PINNED: &str = "pinned/";
const GUEST: &str = "guest/";

/// The mode this node was last set to (a server, if never).
pub(super) fn stored_mode(store: &dyn Store) -> Result<NodeMode, InvokeError> {
    let text = store.meta_get(MODE_KEY)?.map(|v| String::from_utf8_lossy(&v).into_owned());
    Ok(NodeMode::decode(text.as_deref()))
}

/// The root directory this node keeps, if it is the root node: read from the store, or
/// created there on the first start. Other nodes keep none.
pub fn prepare_root(config: &Config, store: &dyn Store, registry: &Registry) -> Result<Option<ObjectId>, InvokeError> {
    if let Some(bytes) = store.meta_get(ROOT_KEY)? {
        let id = bytes.try_into().map_err(|_| InvokeError::storage("root id is not 16 bytes"))?;
        return Ok(Some(ObjectId::from_bytes(id)));
    }
    if config.root_node() != config.id {
        return Ok(None);
    }
    let id = ObjectId::new(config.id);
    let dir = registry.get("Directory")?;
    store.create(id, "Directory", &dir.initial_state(None)?)?;
    store.meta_put(ROOT_KEY, id.as_bytes())?;
    store.flush()?;
    Ok(Some(id))
}

/// What a node answering `body` is expected to send back, or the error it sent.
fn expect<T>(answer: protocol::Response, pick: impl FnOnce(ResponseBody) -> Option<T>) -> Result<T, InvokeError> {
    let body = answer?;
    let text = format!("{body:?}");
    pick(body).ok_or_else(|| InvokeError::storage(format!("the node answered with an unexpected message: {text}")))
}

/// The object's write lock, waiting at most `deadline` (for `operation`).
async fn write_within(
    slot: &Slot,
    deadline: Duration,
    operation: &str,
) -> Result<OwnedRwLockWriteGuard<Active>, InvokeError> {
    tokio::time::timeout(deadline, slot.lock.clone().write_owned()).await.map_err(|_| InvokeError::DeadlineExceeded {
        object: slot.id,
        method: operation.into(),
        elapsed_ms: deadline.as_millis() as u64,
    })
}

impl Engine {
    /// Creates an object of `class` where `placement` says; returns once its record is
    /// durable, with an owner capability (every right) for `owner`. The node that stores
    /// it is its home.
    pub async fn create(
        &self,
        class: &str,
        state: InitialState,
        placement: Placement,
        owner: PublicKey,
    ) -> Result<RawRef, InvokeError> {
        let req = CreateRequest { class: class.into(), state, placement, owner, pinned: false, placed_by: None };
        self.create_request(req).await
    }

    /// A creation as a client asks for it: `pinned`, it never moves on its own. A
    /// creation placed here by another node (`placed_by`) makes a guest, which a
    /// workstation evicts when its owner is back.
    pub async fn create_request(&self, req: CreateRequest) -> Result<RawRef, InvokeError> {
        let CreateRequest { class, state, placement, owner, pinned, placed_by } = req;
        let class = class.as_str();
        let me = self.inner.node;
        if let Some(by) = placed_by.filter(|by| *by != me) {
            let mode = self.mode();
            if !mode.takes_new(!self.owner_present()) {
                let why =
                    if mode == NodeMode::Workstation { "a workstation whose owner is present" } else { "draining" };
                return Err(InvokeError::invalid(format!(
                    "{me} refuses an object of class `{class}` placed by {by}: it is {why} and takes no new objects"
                )));
            }
        }
        let (node, why) = self.place(class, placement).await?;
        if node != me {
            let req = CreateRequest {
                class: class.to_string(),
                state,
                placement: Placement::Local,
                owner,
                pinned,
                placed_by: Some(me),
            };
            let answer = self.inner.peers.send(node, RequestBody::Create(req), super::route::LIFECYCLE_DEADLINE).await;
            let raw = expect(answer, |b| match b {
                ResponseBody::Created(raw) => Some(raw),
                _ => None,
            })?;
            if let Some(reason) = why {
                let e = super::decisions::Entry {
                    kind: protocol::decision::DecisionKind::Placed,
                    object: Some(raw.id),
                    class,
                    from: None,
                    to: Some(node),
                    reason,
                };
                self.inner.decisions.record(me, e);
            }
            return Ok(raw);
        }
        let c = self.inner.registry.get(class)?;
        let state = match state {
            InitialState::Default => c.initial_state(None)?,
            InitialState::Json(text) => {
                let v: serde_json::Value = serde_json::from_str(&text)
                    .map_err(|e| InvokeError::invalid(format!("initial state is not valid JSON: {e}")))?;
                c.initial_state(Some(&v))?
            }
            InitialState::Encoded(bytes) => {
                c.instantiate(&bytes)
                    .map_err(|e| InvokeError::invalid(format!("initial state does not fit class `{class}`: {e}")))?;
                bytes
            }
        };
        let id = ObjectId::new(self.inner.node);
        let guest = placed_by.is_some_and(|by| by != me);
        if pinned || guest {
            // Its marks go in the same flush as the object.
            self.inner.store.create(id, class, &state)?;
            if pinned {
                self.set_pinned(id, true)?;
            }
            if guest {
                self.inner.store.meta_put(&format!("{GUEST}{id}"), b"")?;
            }
            let ticket = self.inner.commits.record();
            self.inner.commits.durable(ticket).await?;
        } else {
            self.inner.commits.apply(Unit::Create { id, class: class.to_string(), state }).await?;
        }
        tracing::debug!(%id, class, "created");
        Ok(RawRef { id, cap: Some(self.inner.guard.issue_owner_batched(id, owner).await) })
    }

    /// Deletes an object: waits for running methods, then removes it and its pages.
    /// Needs the admin right.
    pub async fn delete(&self, target: RawRef, deadline: Duration) -> Result<(), InvokeError> {
        let id = target.id;
        let slot = self.inner.table.get_or_load(id, || self.activate(id))?;
        self.inner.guard.admit(target.cap.as_ref(), id, slot.epoch.load(Ordering::Acquire), Rights::ADMIN, "delete")?;
        if Some(id) == self.inner.local_root {
            return Err(InvokeError::invalid("the root directory cannot be deleted"));
        }
        let mut active = write_within(&slot, deadline, "delete").await?;
        if let Admission::Refuse(e) = admit(active.state, id, Want::Delete) {
            return Err(e);
        }
        // A stale slot needs no reload to be deleted: nothing of it is kept.
        if !self.inner.store.delete(id)? {
            return Err(InvokeError::NotFound { id });
        }
        self.drop_marks(id)?;
        active.state = SlotState::Deleted;
        self.inner.table.remove(&slot);
        let ticket = self.inner.commits.record();
        self.inner.commits.durable(ticket).await
    }

    /// Moves the object to the next revocation epoch: every capability granted before
    /// stops working. Returns a fresh owner capability for `holder`. Needs the admin right.
    pub async fn revoke(&self, target: RawRef, holder: PublicKey, deadline: Duration) -> Result<Cap, InvokeError> {
        let id = target.id;
        let slot = self.inner.table.get_or_load(id, || self.activate(id))?;
        self.inner.guard.admit(target.cap.as_ref(), id, slot.epoch.load(Ordering::Acquire), Rights::ADMIN, "revoke")?;
        let mut active = write_within(&slot, deadline, "revoke").await?;
        loop {
            match admit(active.state, id, Want::Revoke) {
                Admission::Run | Admission::Replay => break,
                Admission::Reload => self.reload(&slot, &mut active)?,
                Admission::Refuse(e) => return Err(e),
            }
        }
        let epoch = active.epoch + 1;
        let state = active.instance.encode()?;
        let commit = Commit { id, base_version: active.version, state, pages: Vec::new(), call: None, epoch };
        self.inner.store.commit(&commit)?;
        active.version += 1;
        active.epoch = epoch;
        slot.epoch.store(epoch, Ordering::Release);
        let ticket = self.inner.commits.record();
        self.inner.commits.durable(ticket).await?;
        tracing::info!(%id, epoch, "revoked every earlier capability");
        Ok(self.inner.guard.issue_owner(id, epoch, holder))
    }

    /// A capability for the root directory, for `holder` (whom the caller vouches for):
    /// an owner capability, or with `read_only` the read right alone.
    pub async fn root_capability(&self, holder: PublicKey, read_only: bool) -> Result<Cap, InvokeError> {
        let Some(root) = self.inner.local_root else {
            let node = self.inner.root_node;
            let body = RequestBody::RootCapability { holder, read_only };
            let answer = self.inner.peers.send(node, body, Duration::from_secs(3)).await;
            return expect(answer, |b| match b {
                ResponseBody::Capability(cap) => Some(cap),
                _ => None,
            });
        };
        let slot = self.inner.table.get_or_load(root, || self.activate(root))?;
        let rights = if read_only { Rights::READ } else { Rights::ALL };
        Ok(self.inner.guard.issue(root, slot.epoch.load(Ordering::Acquire), holder, rights))
    }

    /// What `clouds describe` shows: the committed record, its size and its class. Needs
    /// the read right.
    pub async fn describe(&self, target: RawRef) -> Result<ObjectInfo, InvokeError> {
        let id = target.id;
        let (class, version, epoch, state) = match self.inner.store.get(id)? {
            None => return Err(self.absent(id)),
            Some(Record::Forward { to, .. }) => return Err(InvokeError::Moved { id, to }),
            Some(Record::Live { class, version, epoch, state }) => (class, version, epoch, state),
        };
        self.inner.guard.admit(target.cap.as_ref(), id, epoch, Rights::READ, "describe")?;
        let c = self.inner.registry.get(&class)?;
        let (pages, page_bytes) = self.inner.store.page_usage(id)?;
        let first_pages = self.inner.store.page_keys(id, None, protocol::wire::FIRST_PAGES)?;
        Ok(ObjectInfo {
            id,
            class,
            node: self.inner.node,
            home: id.home(),
            version,
            epoch,
            state_bytes: state.len() as u64,
            pages,
            page_bytes,
            state: c.state_json(&state)?.to_string(),
            methods: c.info().clone(),
            moving: self.move_progress(id),
            residual: self.inner.residuals.info(id),
            held_by: self.inner.actions.held_by(id),
            first_pages: first_pages.iter().map(|k| page_key_text(k)).collect(),
        })
    }

    /// The objects this node holds, in id order after `after` (of `class` only, if named),
    /// at most `limit`. A class filter looks at `SCAN_RECORDS` records at most, so that a
    /// page of a rare class on a big node is answered in bounded time (`next` goes on).
    pub fn list_objects(
        &self,
        class: Option<&str>,
        after: Option<ObjectId>,
        limit: u32,
    ) -> Result<ObjectPage, InvokeError> {
        const SCAN_RECORDS: usize = 50_000;
        const BATCH: usize = 1024;
        if limit == 0 || limit > MAX_OBJECTS_PER_PAGE {
            return Err(InvokeError::invalid(format!(
                "a page of objects holds 1 to {MAX_OBJECTS_PER_PAGE}, not {limit}"
            )));
        }
        let (mut page, mut cursor, mut scanned) = (ObjectPage::default(), after, 0usize);
        loop {
            let ids = self.inner.store.list(cursor, BATCH)?;
            let Some(&last) = ids.last() else { return Ok(page) };
            for id in ids {
                scanned += 1;
                cursor = Some(id);
                if let Some(Record::Live { class: c, version, state, .. }) = self.inner.store.get(id)? {
                    if class.is_none_or(|want| want == c) {
                        let (pages, page_bytes) = self.inner.store.page_usage(id)?;
                        let (node, home, state_bytes) = (self.inner.node, id.home(), state.len() as u64);
                        page.objects.push(ObjectEntry {
                            id,
                            class: c,
                            node,
                            home,
                            version,
                            state_bytes,
                            pages,
                            page_bytes,
                        });
                    }
                }
                if page.objects.len() == limit as usize || scanned >= SCAN_RECORDS {
                    page.next = cursor;
                    return Ok(page);
                }
            }
            cursor = Some(last);
        }
    }

    pub async fn status(&self) -> Result<NodeStatus, InvokeError> {
        Ok(NodeStatus {
            node: self.inner.node,
            root: self.root().await?,
            objects: self.inner.store.count()?,
            active: self.inner.table.len() as u64,
            durability: self.inner.durability.to_string(),
            build: env!("CARGO_PKG_VERSION").to_string(),
            admin: self.inner.admin.as_ref().map(ToString::to_string),
        })
    }

    /// The node a new object of `class` goes to under `placement`: the policy named, else
    /// the class's, else this node's default; `near:` is where that object is now. A
    /// draining node places what would be local on the least loaded node instead. With
    /// the node, the reason for the decision log (none for a creation that stays here).
    async fn place(&self, class: &str, placement: Placement) -> Result<(NodeId, Option<String>), InvokeError> {
        let me = self.inner.node;
        let info = self.inner.registry.get(class).ok().map(|c| c.info());
        let labels: &[String] = info.map_or(&[], |i| &i.labels);
        let mut policy = match placement {
            Placement::Default => match info.and_then(|i| i.placement.as_deref()) {
                Some(p) => p.parse().map_err(|e| {
                    InvokeError::invalid(format!("class `{class}` declares a placement this node does not know: {e}"))
                })?,
                None if !labels.is_empty() => Placement::LeastLoaded,
                None => self.inner.default_placement.clone(),
            },
            p => p,
        };
        if let Placement::Near(other) = policy {
            policy = Placement::On(self.locate(other).await?);
        }
        let mode = self.mode();
        let draining = mode == NodeMode::Draining;
        let here = matches!(policy, Placement::Local) || policy == Placement::On(me);
        let mut why = None;
        if here && draining {
            policy = Placement::LeastLoaded;
            why = Some(format!("{me} is draining: a creation that would stay there goes to the least loaded node"));
        } else if here && labels.is_empty() {
            // The common case needs no view of the cluster.
            return Ok((me, None));
        }
        let nodes = self.inner.peers.nodes().await;
        let dice = u64::from_le_bytes(clouds::ThreadId::new().0.as_bytes()[..8].try_into().expect("8 bytes"));
        let mut placed = self.inner.placed.lock().expect("placed mutex");
        let (counts, reports) = &mut *placed;
        // A node's new report includes what was placed there before it.
        for n in &nodes {
            if let Some(load) = n.load {
                if reports.get(&n.id) != Some(&load) {
                    reports.insert(n.id, load);
                    counts.remove(&n.id);
                }
            }
        }
        let needs = placement::Needs { class, labels };
        let node = placement::choose(&policy, me, &nodes, needs, counts, dice)?;
        *counts.entry(node).or_default() += 1;
        tracing::debug!(class, %policy, %node, "placed");
        let loads = nodes
            .iter()
            .filter(|n| n.takes_new() && n.has_class(class))
            .map(|n| {
                let busy = n.load.map_or(0.0, |l| l.busy_ms);
                let objects = n.load.map_or(0, |l| l.objects) + counts.get(&n.id).copied().unwrap_or(0);
                format!("{} {busy:.0} ms/s, {objects} objects", n.id)
            })
            .collect::<Vec<_>>()
            .join("; ");
        let reason = why.unwrap_or_else(|| format!("policy {policy}"));
        Ok((node, Some(format!("{reason}: chose {node} of the nodes taking `{class}` ({loads})"))))
    }

    /// Whether `id` is pinned here (never moved automatically).
    pub(super) fn pinned(&self, id: ObjectId) -> Result<bool, InvokeError> {
        Ok(self.inner.store.meta_get(&format!("{PINNED}{id}"))?.is_some())
    }

    pub(super) fn set_pinned(&self, id: ObjectId, pinned: bool) -> Result<(), InvokeError> {
        let key = format!("{PINNED}{id}");
        if pinned {
            self.inner.store.meta_put(&key, b"")?;
        } else {
            self.inner.store.meta_remove(&key)?;
        }
        Ok(())
    }

    /// Whether `id` was placed here by another node's creation.
    pub(super) fn guest(&self, id: ObjectId) -> Result<bool, InvokeError> {
        Ok(self.inner.store.meta_get(&format!("{GUEST}{id}"))?.is_some())
    }

    /// The object left: its marks go (the target sets its own).
    pub(super) fn drop_marks(&self, id: ObjectId) -> Result<(), InvokeError> {
        self.inner.store.meta_remove(&format!("{GUEST}{id}"))?;
        Ok(self.inner.store.meta_remove(&format!("{PINNED}{id}"))?)
    }

    /// The node that has `id` now, found as an invocation would find it.
    pub async fn locate(&self, id: ObjectId) -> Result<NodeId, InvokeError> {
        match self.handle(super::Origin::Caller, RequestBody::Locate(id)).await? {
            ResponseBody::Located(node) => Ok(node),
            other => Err(InvokeError::storage(format!("locate was answered with {other:?}"))),
        }
    }

    /// Answers `Locate` for an object believed to be here.
    pub(super) fn located(&self, id: ObjectId) -> Result<NodeId, InvokeError> {
        match self.inner.store.get(id)? {
            None => Err(self.absent(id)),
            Some(Record::Forward { to, .. }) => Err(InvokeError::Moved { id, to }),
            Some(Record::Live { .. }) => Ok(self.inner.node),
        }
    }

    /// Whether this node takes new objects.
    pub fn mode(&self) -> NodeMode {
        *self.inner.mode.lock().expect("mode mutex")
    }

    /// Sets the node's mode, durably. Leaving `draining` ends a drain under way (as
    /// `clouds drain --undo`).
    pub async fn set_mode(&self, mode: NodeMode) -> Result<NodeMode, InvokeError> {
        if mode != NodeMode::Draining && self.mode() == NodeMode::Draining {
            self.undrain(mode).await?;
            return Ok(mode);
        }
        self.store_mode(mode)
    }

    pub(super) fn store_mode(&self, mode: NodeMode) -> Result<NodeMode, InvokeError> {
        let mut now = self.inner.mode.lock().expect("mode mutex");
        self.inner.store.meta_put(MODE_KEY, mode.as_str().as_bytes())?;
        self.inner.store.flush()?;
        tracing::info!(node = %self.inner.node, %mode, "mode set");
        *now = mode;
        Ok(mode)
    }

    /// The load vector this node publishes.
    pub fn load(&self) -> Result<Load, InvokeError> {
        let (busy_ms, calls, waiting) = self.inner.meter.read();
        Ok(Load {
            objects: self.inner.store.count()?,
            active: self.inner.table.len() as u64,
            inflight: self.inner.inflight.load(std::sync::atomic::Ordering::Relaxed),
            waiting,
            busy_ms,
            calls,
            store_bytes: self.inner.store.size_on_disk()?,
            memory_bytes: super::meter::resident_bytes(),
            copy_rate: f64::from_bits(self.inner.copy_rate.load(std::sync::atomic::Ordering::Relaxed)),
        })
    }

    /// Flushes the store (at shutdown). After a failed flush nothing more is flushed: the
    /// failure is the answer (`commit`: fail-stop).
    pub fn flush(&self) -> Result<(), InvokeError> {
        if let Some(e) = self.inner.commits.failed() {
            return Err(InvokeError::storage(format!("an earlier flush failed: {e}")));
        }
        Ok(self.inner.store.flush()?)
    }

    /// Resolves when the store fails to flush, with the store's error (never on a healthy
    /// disk). The engine then serves nothing; `objectd` exits, for its restart to recover.
    pub async fn store_failed(&self) -> String {
        self.inner.commits.until_failed().await
    }
}

/// A page key as `describe` shows it: the text if it is printable UTF-8, else hex.
fn page_key_text(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(text) if !text.chars().any(char::is_control) => text.to_string(),
        _ => format!("0x{}", hex::encode(key)),
    }
}
