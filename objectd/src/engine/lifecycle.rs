//! An object's life outside its methods: creation, deletion, description; and the
//! node's status.

use super::Engine;
use crate::membership::Load;
use crate::placement::{self, Placement};
use crate::store::Record;
use crate::wire::{InitialState, NodeStatus, ObjectInfo};
use clouds::{InvokeError, ObjectId};
use tokio::time::Duration;

impl Engine {
    /// Creates an object of `class` where `placement` says; returns once its record is
    /// durable. The node that stores it is its home.
    pub async fn create(
        &self,
        class: &str,
        state: InitialState,
        placement: Placement,
    ) -> Result<ObjectId, InvokeError> {
        let me = self.inner.node;
        let node = match (placement, self.cluster()) {
            (Placement::Local, _) => me,
            (Placement::On(n), _) if n == me => me,
            (policy, Ok(cluster)) => {
                let peers = cluster.membership.peers().await;
                let dice = u64::from_le_bytes(clouds::ThreadId::new().0.as_bytes()[..8].try_into().expect("8 bytes"));
                placement::choose(policy, me, &peers, class, dice)?
            }
            (_, Err(e)) => return Err(e),
        };
        if node != me {
            let client = self.cluster()?.client(node, Duration::from_secs(3)).await?;
            return client.create_placed(class, state, Placement::Local).await;
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
        self.inner.store.create(id, class, &state)?;
        let ticket = self.inner.commits.record();
        self.inner.commits.durable(ticket).await?;
        tracing::debug!(%id, class, "created");
        Ok(id)
    }

    /// Deletes an object: waits for running methods, then removes it and its pages.
    pub async fn delete(&self, id: ObjectId, deadline: Duration) -> Result<(), InvokeError> {
        let at = self.location(id);
        if at != self.inner.node {
            return self.cluster()?.client(at, Duration::from_secs(3)).await?.delete(id).await;
        }
        let slot = self.inner.table.get_or_load(id, || self.activate(id))?;
        if Some(id) == self.inner.local_root {
            return Err(InvokeError::invalid("the root directory cannot be deleted"));
        }
        let mut active =
            tokio::time::timeout(deadline, slot.lock.write()).await.map_err(|_| InvokeError::DeadlineExceeded {
                object: id,
                method: "delete".into(),
                elapsed_ms: deadline.as_millis() as u64,
            })?;
        if active.deleted || !self.inner.store.delete(id)? {
            return Err(InvokeError::NotFound { id });
        }
        active.deleted = true;
        self.inner.table.remove(&slot);
        let ticket = self.inner.commits.record();
        self.inner.commits.durable(ticket).await
    }

    /// What `clouds describe` shows: the committed record, its size and its class.
    pub async fn describe(&self, id: ObjectId) -> Result<ObjectInfo, InvokeError> {
        let at = self.location(id);
        if at != self.inner.node {
            return self.cluster()?.client(at, Duration::from_secs(3)).await?.describe(id).await;
        }
        let (class, version, state) = match self.inner.store.get(id)? {
            None => return Err(InvokeError::NotFound { id }),
            Some(Record::Forward { to, .. }) => return Err(InvokeError::Moved { id, to }),
            Some(Record::Live { class, version, state }) => (class, version, state),
        };
        let c = self.inner.registry.get(&class)?;
        let (pages, page_bytes) = self.inner.store.page_usage(id)?;
        Ok(ObjectInfo {
            id,
            class,
            node: self.inner.node,
            home: id.home(),
            version,
            state_bytes: state.len() as u64,
            pages,
            page_bytes,
            state: c.state_json(&state)?.to_string(),
            methods: c.info().clone(),
        })
    }

    pub async fn status(&self) -> Result<NodeStatus, InvokeError> {
        Ok(NodeStatus {
            node: self.inner.node,
            root: self.root().await?,
            objects: self.inner.store.count()?,
            active: self.inner.table.len() as u64,
            durability: self.inner.durability.to_string(),
            build: env!("CARGO_PKG_VERSION").to_string(),
        })
    }

    /// Flushes the store (at shutdown).
    /// The load vector this node publishes.
    pub fn load(&self) -> Result<Load, InvokeError> {
        Ok(Load {
            objects: self.inner.store.count()?,
            active: self.inner.table.len() as u64,
            inflight: self.inner.inflight.load(std::sync::atomic::Ordering::Relaxed),
        })
    }

    pub fn flush(&self) -> Result<(), InvokeError> {
        Ok(self.inner.store.flush()?)
    }
}
