//! Typed access by name: look an object up, bind one, create one, in one call each.

use crate::client::Client;
use clouds::object::ObjectState;
use clouds::{InvokeError, RawRef, Ref};
use naming::{Entry, Path};
use protocol::{InitialState, Placement};
use serde::Serialize;

impl Client {
    /// The cluster's root directory, with a capability for it: the wallet's, or one the
    /// entry node makes out to this wallet (the owner capability for the administrator, a
    /// read-only one for anyone else), kept in the wallet for next time.
    pub async fn root_ref(&self) -> Result<RawRef, InvokeError> {
        let id = self.root().await?;
        if self.wallet().best(id).is_none() {
            self.root_capability().await.map_err(|e| match e {
                InvokeError::Denied { reason } => InvokeError::Denied {
                    reason: format!(
                        "the wallet holds no capability for the root directory {id}, so names cannot be used: \
                         {reason}. Ask the administrator for one (`clouds cap grant / --rights read --to {}`), \
                         or use object ids",
                        self.wallet().public()
                    ),
                },
                other => other,
            })?;
        }
        Ok(RawRef { id, cap: self.wallet().best(id) })
    }

    /// The object bound to `path`, as a typed reference carrying the best capability this
    /// client has for it (the wallet's, or the one the directory entry hands out).
    ///
    /// Fails with `NameNotFound` if nothing is bound there, and with `Invalid` if the
    /// object bound there is not a `T`.
    ///
    /// ```no_run
    /// # async fn example(client: client::Client) -> Result<(), clouds::InvokeError> {
    /// use stdobjects::Counter;
    /// let visits = client.lookup::<Counter>("/counters/visits").await?;
    /// let now = visits.incr(&client.ctx(), 1).await?;
    /// println!("{now} visits");
    /// # Ok(()) }
    /// ```
    pub async fn lookup<T: ObjectState>(&self, path: &str) -> Result<Ref<T>, InvokeError> {
        let path: Path = path.parse().map_err(InvokeError::invalid)?;
        let entry = naming::resolve(&self.ctx(), &self.root_ref().await?, &path).await?;
        if entry.class != T::CLASS {
            return Err(InvokeError::invalid(format!(
                "{path} is a {}, not a {} (object {})",
                entry.class,
                T::CLASS,
                entry.id
            )));
        }
        let raw = entry.raw();
        Ok(Ref::from_raw(RawRef { id: raw.id, cap: self.capability_for(&raw) }))
    }

    /// Binds `path` (its missing directories are made) to `object`. The name gives the id
    /// only: whoever looks it up needs a capability of their own to call it.
    pub async fn bind<T: ObjectState>(&self, path: &str, object: &Ref<T>) -> Result<(), InvokeError> {
        let path: Path = path.parse().map_err(InvokeError::invalid)?;
        let entry = Entry { id: object.id(), class: T::CLASS.to_string(), cap: None };
        naming::bind(&self.ctx(), &self.root_ref().await?, &path, entry).await
    }

    /// Creates an object with `state` (its class is `T`'s) where `placement` says; its owner
    /// capability goes into the wallet and comes back in the reference.
    ///
    /// ```no_run
    /// # async fn example(client: client::Client) -> Result<(), clouds::InvokeError> {
    /// use client::Placement;
    /// use stdobjects::Account;
    /// let alice = client.create_object(&Account::with_balance(100), Placement::LeastLoaded).await?;
    /// client.bind("/bank/alice", &alice).await?;
    /// # Ok(()) }
    /// ```
    pub async fn create_object<T: ObjectState + Serialize>(
        &self,
        state: &T,
        placement: Placement,
    ) -> Result<Ref<T>, InvokeError> {
        let encoded = clouds::object::encode_state(state)?;
        let raw = self.create_placed(T::CLASS, InitialState::Encoded(encoded), placement).await?;
        Ok(Ref::from_raw(raw))
    }
}
