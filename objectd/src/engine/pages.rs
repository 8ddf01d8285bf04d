//! Where a running method's committed pages come from: a page source. Today every page is
//! in this node's store (`Local`); a lazily migrated object will read the pages not yet
//! pulled from the node it came from, through a source of its own.

use crate::store::Store;
use clouds::{InvokeError, ObjectId, Pages};
use std::ops::Bound;
use std::sync::Arc;

pub trait PageSource: Send + Sync {
    fn get(&self, id: ObjectId, key: &[u8]) -> Result<Option<Vec<u8>>, InvokeError>;
    /// Up to `limit` pages of `id` with keys in the range, in key order.
    fn range(&self, id: ObjectId, start: Bound<&[u8]>, end: Bound<&[u8]>, limit: usize) -> Result<Pages, InvokeError>;
}

/// Pages from this node's store.
pub struct Local(pub Arc<dyn Store>);

impl PageSource for Local {
    fn get(&self, id: ObjectId, key: &[u8]) -> Result<Option<Vec<u8>>, InvokeError> {
        Ok(self.0.page_get(id, key)?)
    }

    fn range(&self, id: ObjectId, start: Bound<&[u8]>, end: Bound<&[u8]>, limit: usize) -> Result<Pages, InvokeError> {
        Ok(self.0.page_range(id, start, end, limit)?)
    }
}
