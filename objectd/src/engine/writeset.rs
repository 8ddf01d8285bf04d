//! The page writes of one running write method: read-your-writes over the committed
//! pages, and the list of changes the commit applies. Pure data, no I/O.

use std::collections::BTreeMap;
use std::ops::Bound;

#[derive(Default, Debug)]
pub struct WriteSet {
    /// key -> new value, or `None` for a delete.
    changes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl WriteSet {
    /// A write set that starts with these changes (an atomic action's earlier writes).
    pub fn from_changes(changes: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> WriteSet {
        WriteSet { changes: changes.into_iter().collect() }
    }

    pub fn put(&mut self, key: &[u8], value: &[u8]) {
        self.changes.insert(key.to_vec(), Some(value.to_vec()));
    }

    pub fn delete(&mut self, key: &[u8]) {
        self.changes.insert(key.to_vec(), None);
    }

    /// `Some(change)` if this write set decides the key's value.
    pub fn get(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        self.changes.get(key).map(|v| v.as_deref())
    }

    /// How many committed entries a range read must fetch so that, after this write set
    /// hides some of them, `limit` remain.
    pub fn fetch_limit(&self, start: &Bound<Vec<u8>>, end: &Bound<Vec<u8>>, limit: usize) -> usize {
        limit.saturating_add(self.changes.range((start.clone(), end.clone())).count())
    }

    /// Overlays this write set on `committed` (sorted, within the range) and keeps the
    /// first `limit` entries.
    pub fn merge_range(
        &self,
        committed: Vec<(Vec<u8>, Vec<u8>)>,
        start: &Bound<Vec<u8>>,
        end: &Bound<Vec<u8>>,
        limit: usize,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = committed.into_iter().collect();
        // If the committed fetch stopped short (`fetch_limit` rows), at least `limit`
        // merged entries precede its last key, so the entries taken below are exact.
        for (k, v) in self.changes.range((start.clone(), end.clone())) {
            match v {
                Some(v) => merged.insert(k.clone(), v.clone()),
                None => merged.remove(k),
            };
        }
        merged.into_iter().take(limit).collect()
    }

    pub fn into_changes(self) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        self.changes.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(k: &str, v: &str) -> (Vec<u8>, Vec<u8>) {
        (k.as_bytes().to_vec(), v.as_bytes().to_vec())
    }

    #[test]
    fn reads_see_own_writes_and_deletes() {
        let mut w = WriteSet::default();
        assert_eq!(w.get(b"a"), None);
        w.put(b"a", b"1");
        assert_eq!(w.get(b"a"), Some(Some(&b"1"[..])));
        w.delete(b"a");
        assert_eq!(w.get(b"a"), Some(None));
        assert_eq!(w.into_changes(), vec![(b"a".to_vec(), None)]);
    }

    #[test]
    fn range_overlays_puts_and_deletes_in_key_order() {
        let mut w = WriteSet::default();
        w.put(b"b", b"new");
        w.delete(b"c");
        w.put(b"z", b"out of range");
        let (s, e) = (Bound::Included(b"a".to_vec()), Bound::Excluded(b"y".to_vec()));
        let committed = vec![kv("a", "1"), kv("c", "3"), kv("d", "4")];
        assert_eq!(w.fetch_limit(&s, &e, 2), 4);
        assert_eq!(w.merge_range(committed.clone(), &s, &e, 10), vec![kv("a", "1"), kv("b", "new"), kv("d", "4")]);
        assert_eq!(w.merge_range(committed, &s, &e, 2), vec![kv("a", "1"), kv("b", "new")]);
    }
}
