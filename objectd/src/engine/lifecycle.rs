//! An object's life outside its methods: creation, deletion, description; and the
//! node's status.

use super::Engine;
use crate::store::Record;
use crate::wire::{InitialState, NodeStatus, ObjectInfo};
use clouds::{InvokeError, ObjectId};
use tokio::time::Duration;

impl Engine {
    /// Creates an object of `class`; returns once its record is durable.
    pub async fn create(&self, class: &str, state: InitialState) -> Result<ObjectId, InvokeError> {
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
        let slot = self.inner.table.get_or_load(id, || self.activate(id))?;
        if id == self.inner.root {
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
    pub fn describe(&self, id: ObjectId) -> Result<ObjectInfo, InvokeError> {
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

    pub fn status(&self) -> Result<NodeStatus, InvokeError> {
        Ok(NodeStatus {
            node: self.inner.node,
            root: self.inner.root,
            objects: self.inner.store.count()?,
            active: self.inner.table.len() as u64,
            durability: self.inner.durability.to_string(),
            build: env!("CARGO_PKG_VERSION").to_string(),
        })
    }

    /// Flushes the store (at shutdown).
    pub fn flush(&self) -> Result<(), InvokeError> {
        Ok(self.inner.store.flush()?)
    }
}
