//! `Directory`: one level of the name tree, kept in storage pages (one page per entry).

use crate::path::validate_component;
use clouds::{methods, Cap, Ctx, InvokeError, Object, ObjectId, RawRef};
use serde::{Deserialize, Serialize};

/// What a name is bound to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub id: ObjectId,
    /// The class of the object, so that listings need not visit every object.
    pub class: String,
    /// A capability the binder chose to hand to everyone who can read the directory
    /// (`lookup` and `list` need the read right); `None`: the name gives the id only.
    pub cap: Option<Cap>,
}

impl Entry {
    /// A reference to the bound object, carrying the entry's capability.
    pub fn raw(&self) -> RawRef {
        RawRef { id: self.id, cap: self.cap.clone() }
    }
}

#[derive(Debug, Serialize, Deserialize, thiserror::Error)]
pub enum NameError {
    #[error("`{name}` is already bound (to {id})")]
    AlreadyBound { name: String, id: ObjectId },
    #[error("`{name}` is not bound")]
    NotBound { name: String },
    #[error("invalid name: {reason}")]
    InvalidName { reason: String },
}

#[derive(Object, Default, Serialize, Deserialize)]
pub struct Directory {
    len: u64,
}

/// The most entries one `list` call returns.
pub const MAX_LIST: u32 = 10_000;

#[methods]
#[allow(clippy::len_without_is_empty)] // `len` is an object method; see stdobjects
impl Directory {
    pub async fn lookup(&self, ctx: &Ctx, name: String) -> Result<Option<Entry>, InvokeError> {
        ctx.storage().get_value(name.as_bytes()).await
    }

    /// Binds `name`; fails if it is bound already.
    pub async fn bind(&mut self, ctx: &Ctx, name: String, entry: Entry) -> Result<(), InvokeError> {
        validate_component(&name).map_err(|reason| InvokeError::app(NameError::InvalidName { reason }))?;
        if let Some(existing) = ctx.storage().get_value::<Entry>(name.as_bytes()).await? {
            return Err(InvokeError::app(NameError::AlreadyBound { name, id: existing.id }));
        }
        ctx.storage().put_value(name.as_bytes(), &entry)?;
        self.len += 1;
        Ok(())
    }

    /// Removes `name`; returns what it was bound to.
    pub async fn unbind(&mut self, ctx: &Ctx, name: String) -> Result<Entry, InvokeError> {
        let Some(entry) = ctx.storage().get_value::<Entry>(name.as_bytes()).await? else {
            return Err(InvokeError::app(NameError::NotBound { name }));
        };
        ctx.storage().delete(name.as_bytes())?;
        self.len -= 1;
        Ok(entry)
    }

    /// Entries after `after` (or from the first), in name order, at most `limit` (and
    /// never more than 10 000).
    pub async fn list(
        &self,
        ctx: &Ctx,
        after: Option<String>,
        limit: u32,
    ) -> Result<Vec<(String, Entry)>, InvokeError> {
        let limit = limit.min(MAX_LIST) as usize;
        // A key just after `after`: `after` followed by the smallest byte.
        let start = after.map(|a| [a.as_bytes(), &[0]].concat()).unwrap_or_default();
        let pages = ctx.storage().range(&start, None, limit).await?;
        pages
            .into_iter()
            .map(|(k, v)| Ok((String::from_utf8(k).map_err(InvokeError::storage)?, clouds::object::decode_state(&v)?)))
            .collect()
    }

    pub fn len(&self) -> u64 {
        self.len
    }
}
