//! `SledStore`: the default store, on one sled database with four trees.
//!
//! - `objects`: object id (16 bytes) -> versioned `Record`
//! - `pages`:   object id ++ page key  -> page bytes
//! - `calls`:   object id ++ call id   -> recorded reply
//! - `meta`:    name -> bytes (node metadata)
//! - `intents`: key -> bytes (protocol intents that outlive a crash)
//!
//! A commit is one sled transaction over `objects`, `pages` and `calls`. sled's `flush()`
//! writes to the OS but does not fsync (it calls `sync_file_range`; only its background
//! thread fsyncs, every 500 ms). A store opened `synced` (durability `power-loss`) makes
//! every `flush` survive a power cut too: after sled's flush it fdatasyncs sled's log file,
//! and fsyncs each blob file sled wrote since (values too big for the log, which sled
//! writes without any sync) and the blob directory.

use super::record::{self, Record};
use super::{Chunk, Commit, Cursor, IntentChange, Intents, Store, StoreError, Unit};
use clouds::{NodeId, ObjectId};
use sled::transaction::{ConflictableTransactionError, TransactionError, UnabortableTransactionError};
use sled::Transactional;
use std::collections::HashSet;
use std::ffi::OsString;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// sled's page cache when nothing else is asked for: a node's default (`store_cache_mib`).
const DEFAULT_CACHE: u64 = 64 << 20;

/// Units of a group in one sled transaction at most (a bigger group takes several).
const MAX_UNITS: usize = 512;

/// `meta` key of the number of records, as of the last flush.
const COUNT_KEY: &str = "object-count";

/// The number of records, how many writes that may change it began since the store
/// opened, and how many are under way: the background recount takes its figure only if
/// no such write was under way when it began or began while it counted.
struct Count {
    records: u64,
    changes: u64,
    writing: u64,
}

pub struct SledStore {
    db: sled::Db,
    objects: sled::Tree,
    pages: sled::Tree,
    calls: sled::Tree,
    meta: sled::Tree,
    intent_tree: sled::Tree,
    /// Number of records in `objects` (sled's `len` scans), and how many times it changed:
    /// kept in `meta` at every flush, read back at open, and recounted in the background
    /// after it (see `open_synced`). std `Mutex`: one update at a time.
    count: Arc<Mutex<Count>>,
    /// `Some` when every flush must also survive a power cut (`open_synced`).
    synced: Option<Synced>,
}

/// What a synced store fsyncs after each flush.
struct Synced {
    /// sled's log file (`DIR/db`).
    log: std::fs::File,
    blobs: PathBuf,
    /// Blob files already fsynced. std `Mutex`: one flush at a time holds it.
    done: Mutex<HashSet<OsString>>,
}

impl Synced {
    fn open(dir: &Path) -> Result<Synced, StoreError> {
        let log = std::fs::File::open(dir.join("db"))
            .map_err(|e| io(format!("cannot open {} to fsync it: {e}", dir.join("db").display())))?;
        // The directory entries of the files sled made must be durable too.
        for d in [dir.to_path_buf(), dir.join("blobs")] {
            if d.is_dir() {
                std::fs::File::open(&d)
                    .and_then(|f| f.sync_all())
                    .map_err(|e| io(format!("fsync {}: {e}", d.display())))?;
            }
        }
        Ok(Synced { log, blobs: dir.join("blobs"), done: Mutex::new(HashSet::new()) })
    }

    /// After sled's flush: the log's data, then new blob files and their directory.
    fn sync(&self) -> Result<(), StoreError> {
        self.log.sync_data().map_err(|e| io(format!("fdatasync of the store's log: {e}")))?;
        let Ok(entries) = std::fs::read_dir(&self.blobs) else { return Ok(()) };
        let mut done = self.done.lock().expect("synced blobs mutex");
        let mut new = false;
        for entry in entries {
            let entry = entry.map_err(io)?;
            if done.contains(&entry.file_name()) {
                continue;
            }
            // A blob sled removed meanwhile needs no sync.
            if let Ok(f) = std::fs::File::open(entry.path()) {
                f.sync_all().map_err(|e| io(format!("fsync {}: {e}", entry.path().display())))?;
            }
            done.insert(entry.file_name());
            new = true;
        }
        if new {
            std::fs::File::open(&self.blobs).and_then(|f| f.sync_all()).map_err(|e| io(format!("fsync blobs: {e}")))?;
        }
        Ok(())
    }
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

fn prefixed(id: ObjectId, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(16 + key.len());
    k.extend_from_slice(id.as_bytes());
    k.extend_from_slice(key);
    k
}

/// The first key after every key that starts with `id`.
fn prefix_end(id: ObjectId) -> Bound<Vec<u8>> {
    match u128::from_be_bytes(*id.as_bytes()).checked_add(1) {
        Some(next) => Bound::Excluded(next.to_be_bytes().to_vec()),
        None => Bound::Unbounded,
    }
}

impl SledStore {
    /// Opens (or creates) the store in `dir`; a flush survives a crash of the process.
    pub fn open(dir: &Path) -> Result<SledStore, StoreError> {
        SledStore::open_synced(dir, false)
    }

    /// As `open`; with `synced`, every flush also survives a power cut (an fsync each).
    pub fn open_synced(dir: &Path, synced: bool) -> Result<SledStore, StoreError> {
        SledStore::open_with(dir, synced, DEFAULT_CACHE)
    }

    /// The store a node's configuration asks for: its directory, `synced` for `power-loss`
    /// durability, and its page cache.
    pub fn open_for(config: &crate::config::Config) -> Result<SledStore, StoreError> {
        let synced = config.durability == crate::config::Durability::PowerLoss;
        SledStore::open_with(&config.data, synced, config.store_cache_mib.saturating_mul(1 << 20))
    }

    /// As `open_synced`, with sled's page cache at most `cache_bytes`.
    pub fn open_with(dir: &Path, synced: bool, cache_bytes: u64) -> Result<SledStore, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .open()
            .map_err(|e| io(format!("cannot open the store at {}: {e}", dir.display())))?;
        let tree = |name: &str| db.open_tree(name).map_err(io);
        let objects = tree("objects")?;
        let meta = tree("meta")?;
        // Start-up reads the count kept at the last flush instead of counting every record;
        // a crash may have left it a few creations or deletions behind, so a background
        // scan counts again and takes its figure if nothing changed meanwhile. A store that
        // kept no count is counted now (empty, at once).
        let kept = meta.get(COUNT_KEY).map_err(io)?.and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok());
        let records = match kept {
            Some(bytes) => u64::from_be_bytes(bytes),
            None => objects.len() as u64,
        };
        let count = Arc::new(Mutex::new(Count { records, changes: 0, writing: 0 }));
        if kept.is_some() {
            let (objects, count) = (objects.clone(), count.clone());
            let _ = std::thread::Builder::new().name("recount".into()).spawn(move || {
                // Bounded: under writes that never pause, the kept count stays.
                for _ in 0..100 {
                    let before = {
                        let now = count.lock().expect("count mutex");
                        (now.writing == 0).then_some(now.changes)
                    };
                    let Some(before) = before else {
                        std::thread::sleep(std::time::Duration::from_millis(10));
                        continue;
                    };
                    let n = objects.len() as u64;
                    let mut now = count.lock().expect("count mutex");
                    if now.changes == before {
                        now.records = n;
                    }
                    return;
                }
            });
        }
        let store = SledStore {
            count,
            pages: tree("pages")?,
            calls: tree("calls")?,
            meta,
            intent_tree: tree("intents")?,
            objects,
            db,
            synced: if synced { Some(Synced::open(dir)?) } else { None },
        };
        match store.meta.get("format").map_err(io)? {
            None => {
                store.meta.insert("format", &record::FORMAT_VERSION.to_be_bytes()).map_err(io)?;
            }
            Some(v) if v.as_ref() == record::FORMAT_VERSION.to_be_bytes() => {}
            Some(v) => {
                return Err(StoreError::Corrupt(format!(
                    "the store at {} has format {:?}; this build reads format {}",
                    dir.display(),
                    v.as_ref(),
                    record::FORMAT_VERSION
                )))
            }
        }
        Ok(store)
    }

    /// Runs a write that changes the number of records by the figure it returns.
    fn counting<T>(&self, write: impl FnOnce() -> Result<(T, i64), StoreError>) -> Result<T, StoreError> {
        {
            let mut count = self.count.lock().expect("count mutex");
            count.changes += 1;
            count.writing += 1;
        }
        let result = write();
        let mut count = self.count.lock().expect("count mutex");
        count.writing -= 1;
        result.map(|(value, by)| {
            count.records = count.records.saturating_add_signed(by);
            value
        })
    }

    /// The units in transactions of `MAX_UNITS`, and how many records they created.
    fn apply_chunks(&self, units: &[Unit]) -> (Result<Vec<Result<(), StoreError>>, StoreError>, i64) {
        let (mut all, mut created) = (Vec::with_capacity(units.len()), 0);
        for chunk in units.chunks(MAX_UNITS) {
            let results = (&self.objects, &self.pages, &self.calls, &self.intent_tree)
                .transaction(|(objects, pages, calls, intents)| {
                    let mut results = Vec::with_capacity(chunk.len());
                    for unit in chunk {
                        results.push(match unit {
                            Unit::Commit(c) => match check_commit(objects, c)? {
                                Ok(class) => write_commit(objects, pages, calls, c, class).map(Ok)?,
                                Err(e) => Err(e),
                            },
                            Unit::Create { id, class, state } => match objects.get(id.as_bytes())? {
                                Some(_) => Err(StoreError::AlreadyExists(*id)),
                                None => objects.insert(id.as_bytes(), new_record(class, state)).map(|_| Ok(()))?,
                            },
                            Unit::Action { commits, intent } => match check_commits(objects, commits)? {
                                Err(e) => Err(e),
                                Ok(classes) => {
                                    for (c, class) in commits.iter().zip(classes) {
                                        write_commit(objects, pages, calls, c, class)?;
                                    }
                                    if let Some(change) = Unit::intent_change(intent) {
                                        write_intent(intents, change)?;
                                    }
                                    Ok(())
                                }
                            },
                        });
                    }
                    Ok::<_, ConflictableTransactionError<StoreError>>(results)
                })
                .map_err(|e| match e {
                    TransactionError::Abort(e) => e,
                    TransactionError::Storage(e) => io(e),
                });
            let results = match results {
                Ok(results) => results,
                Err(e) => return (Err(e), created as i64),
            };
            created +=
                chunk.iter().zip(&results).filter(|(u, r)| matches!(u, Unit::Create { .. }) && r.is_ok()).count();
            all.extend(results);
        }
        (Ok(all), created as i64)
    }

    fn remove_prefix(&self, tree: &sled::Tree, id: ObjectId) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for kv in tree.range::<Vec<u8>, _>((Bound::Included(id.as_bytes().to_vec()), prefix_end(id))) {
            batch.remove(kv.map_err(io)?.0);
        }
        tree.apply_batch(batch).map_err(io)
    }
}

/// Builds with the `faults` feature only (the tests' `testnode`): with
/// `CLOUDS_FAIL_FLUSH_AFTER=N` in the environment, every flush of the process after its
/// first N fails, as on a disk that broke, so that a test can watch a real node stop.
#[cfg(feature = "faults")]
fn injected_flush_failure() -> Option<StoreError> {
    static AFTER: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    static FLUSHES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let after = (*AFTER.get_or_init(|| std::env::var("CLOUDS_FAIL_FLUSH_AFTER").ok().and_then(|v| v.parse().ok())))?;
    let n = FLUSHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    (n >= after).then(|| StoreError::Io("the disk failed to sync (injected: CLOUDS_FAIL_FLUSH_AFTER)".into()))
}

impl Store for SledStore {
    fn get(&self, id: ObjectId) -> Result<Option<Record>, StoreError> {
        match self.objects.get(id.as_bytes()).map_err(io)? {
            None => Ok(None),
            Some(bytes) => record::decode(&bytes).map(Some).map_err(StoreError::Corrupt),
        }
    }

    fn create(&self, id: ObjectId, class: &str, state: &[u8]) -> Result<(), StoreError> {
        self.counting(|| {
            match self
                .objects
                .compare_and_swap(id.as_bytes(), None as Option<&[u8]>, Some(new_record(class, state)))
                .map_err(io)?
            {
                Ok(()) => Ok(((), 1)),
                Err(_) => Err(StoreError::AlreadyExists(id)),
            }
        })
    }

    fn commit_with_intent(&self, commits: &[Commit], intent: Option<IntentChange<'_>>) -> Result<(), StoreError> {
        // Plain commits stay a transaction of three trees; the intents tree joins only when
        // an intent changes with them.
        let result = match intent {
            None => (&self.objects, &self.pages, &self.calls)
                .transaction(|(objects, pages, calls)| apply_commits(objects, pages, calls, commits)),
            Some(change) => (&self.objects, &self.pages, &self.calls, &self.intent_tree).transaction(
                |(objects, pages, calls, intents)| {
                    apply_commits(objects, pages, calls, commits)?;
                    Ok(write_intent(intents, change)?)
                },
            ),
        };
        match result {
            Ok(()) => Ok(()),
            Err(TransactionError::Abort(e)) => Err(e),
            Err(TransactionError::Storage(e)) => Err(io(e)),
        }
    }

    fn apply_group(&self, units: &[Unit]) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        // One transaction for the whole group: sled serializes each transaction against
        // every other write, so a transaction per writer caps commits near the rate of
        // transactions alone. A unit is checked before anything of it is written, so one
        // that does not apply leaves nothing behind.
        // Created records count even when a later chunk fails.
        self.counting(|| {
            let (results, created) = self.apply_chunks(units);
            Ok((results, created))
        })?
    }

    fn delete(&self, id: ObjectId) -> Result<bool, StoreError> {
        // The record goes first: once it is gone the object is gone, whatever happens to
        // the cleanup of its pages below (ids are never reused, so leftovers stay unseen).
        let existed = self.counting(|| {
            let existed = self.objects.remove(id.as_bytes()).map_err(io)?.is_some();
            Ok((existed, if existed { -1 } else { 0 }))
        })?;
        self.remove_prefix(&self.pages, id)?;
        self.remove_prefix(&self.calls, id)?;
        Ok(existed)
    }

    fn page_get(&self, id: ObjectId, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.pages.get(prefixed(id, key)).map_err(io)?.map(|v| v.to_vec()))
    }

    fn page_range(
        &self,
        id: ObjectId,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        limit: usize,
    ) -> Result<clouds::Pages, StoreError> {
        let start = match start {
            Bound::Included(k) => Bound::Included(prefixed(id, k)),
            Bound::Excluded(k) => Bound::Excluded(prefixed(id, k)),
            Bound::Unbounded => Bound::Included(id.as_bytes().to_vec()),
        };
        let end = match end {
            Bound::Included(k) => Bound::Included(prefixed(id, k)),
            Bound::Excluded(k) => Bound::Excluded(prefixed(id, k)),
            Bound::Unbounded => prefix_end(id),
        };
        if let (Bound::Included(s) | Bound::Excluded(s), Bound::Included(e) | Bound::Excluded(e)) = (&start, &end) {
            if s > e {
                return Ok(Vec::new());
            }
        }
        self.pages
            .range::<Vec<u8>, _>((start, end))
            .take(limit)
            .map(|kv| {
                let (k, v) = kv.map_err(io)?;
                Ok((k[16..].to_vec(), v.to_vec()))
            })
            .collect()
    }

    fn page_keys(&self, id: ObjectId, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        let start = match after {
            Some(k) => Bound::Excluded(prefixed(id, k)),
            None => Bound::Included(id.as_bytes().to_vec()),
        };
        self.pages
            .range::<Vec<u8>, _>((start, prefix_end(id)))
            .keys()
            .take(limit)
            .map(|k| Ok(k.map_err(io)?[16..].to_vec()))
            .collect()
    }

    fn page_usage(&self, id: ObjectId) -> Result<(u64, u64), StoreError> {
        let mut n = 0;
        let mut bytes = 0;
        for kv in self.pages.range::<Vec<u8>, _>((Bound::Included(id.as_bytes().to_vec()), prefix_end(id))) {
            let (k, v) = kv.map_err(io)?;
            n += 1;
            bytes += (k.len() - 16 + v.len()) as u64;
        }
        Ok((n, bytes))
    }

    fn call_reply(&self, id: ObjectId, call: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.calls.get(prefixed(id, call.as_bytes())).map_err(io)?.map(|v| v.to_vec()))
    }

    fn list(&self, after: Option<ObjectId>, limit: usize) -> Result<Vec<ObjectId>, StoreError> {
        let start = match after {
            Some(a) => Bound::Excluded(a.as_bytes().to_vec()),
            None => Bound::Unbounded,
        };
        self.objects
            .range::<Vec<u8>, _>((start, Bound::Unbounded))
            .take(limit)
            .map(|kv| {
                let (k, _) = kv.map_err(io)?;
                let bytes: [u8; 16] =
                    k.as_ref().try_into().map_err(|_| StoreError::Corrupt("object key is not 16 bytes".into()))?;
                Ok(ObjectId::from_bytes(bytes))
            })
            .collect()
    }

    fn count(&self) -> Result<u64, StoreError> {
        Ok(self.count.lock().expect("count mutex").records)
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.db.size_on_disk().map_err(io)
    }

    fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.meta.get(key).map_err(io)?.map(|v| v.to_vec()))
    }

    fn meta_put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.meta.insert(key, value).map_err(io).map(|_| ())
    }

    fn meta_remove(&self, key: &str) -> Result<(), StoreError> {
        self.meta.remove(key).map_err(io).map(|_| ())
    }

    fn flush(&self) -> Result<(), StoreError> {
        #[cfg(feature = "faults")]
        if let Some(e) = injected_flush_failure() {
            return Err(e);
        }
        // The count as of now goes out with the data: what the next start reads.
        let count = self.count.lock().expect("count mutex").records;
        self.meta.insert(COUNT_KEY, &count.to_be_bytes()).map_err(io)?;
        self.db.flush().map_err(io)?;
        match &self.synced {
            Some(s) => s.sync(),
            None => Ok(()),
        }
    }

    fn export(&self, id: ObjectId, cursor: &Cursor, max_bytes: usize) -> Result<Option<(Chunk, Cursor)>, StoreError> {
        let after = |key: &Option<Vec<u8>>| match key {
            Some(k) => Bound::Excluded(prefixed(id, k)),
            None => Bound::Included(id.as_bytes().to_vec()),
        };
        let chunk = match cursor {
            Cursor::Done => return Ok(None),
            Cursor::Record => match self.get(id)? {
                None => return Err(StoreError::NotFound(id)),
                Some(Record::Forward { .. }) => return Err(StoreError::Forwarded(id)),
                Some(Record::Live { class, version, epoch, state }) => {
                    return Ok(Some((Chunk::Record { class, version, epoch, state }, Cursor::Done)))
                }
            },
            Cursor::Pages(key) => {
                let (items, full) = self.read_prefix(&self.pages, after(key), id, max_bytes)?;
                let next = match items.last() {
                    Some((k, _)) if full => Cursor::Pages(Some(k.clone())),
                    _ => Cursor::Calls(None),
                };
                (Chunk::Pages(items), next)
            }
            Cursor::Calls(call) => {
                let (items, full) =
                    self.read_prefix(&self.calls, after(&call.clone().map(String::into_bytes)), id, max_bytes)?;
                let calls = items
                    .into_iter()
                    .map(|(k, v)| {
                        String::from_utf8(k)
                            .map(|k| (k, v))
                            .map_err(|_| StoreError::Corrupt("call id is not UTF-8".into()))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let next = match calls.last() {
                    Some((k, _)) if full => Cursor::Calls(Some(k.clone())),
                    _ => Cursor::Record,
                };
                (Chunk::Calls(calls), next)
            }
        };
        Ok(Some(chunk))
    }

    fn install(&self, id: ObjectId, chunk: &Chunk) -> Result<(), StoreError> {
        match chunk {
            Chunk::Pages(pages) => self.insert_all(&self.pages, id, pages.iter().map(|(k, v)| (k.as_slice(), v))),
            Chunk::Removed(keys) => {
                let mut batch = sled::Batch::default();
                for k in keys {
                    batch.remove(prefixed(id, k));
                }
                self.pages.apply_batch(batch).map_err(io)
            }
            Chunk::Calls(calls) => self.insert_all(&self.calls, id, calls.iter().map(|(k, v)| (k.as_bytes(), v))),
            Chunk::Record { class, version, epoch, state } => {
                let rec = Record::Live { class: class.clone(), version: *version, epoch: *epoch, state: state.clone() };
                let current = self.objects.get(id.as_bytes()).map_err(io)?;
                if let Some(bytes) = &current {
                    if let Record::Live { .. } = record::decode(bytes).map_err(StoreError::Corrupt)? {
                        return Err(StoreError::AlreadyExists(id));
                    }
                }
                self.counting(|| {
                    match self
                        .objects
                        .compare_and_swap(id.as_bytes(), current.clone(), Some(record::encode(&rec)))
                        .map_err(io)?
                    {
                        Ok(()) => Ok(((), i64::from(current.is_none()))),
                        Err(_) => Err(StoreError::AlreadyExists(id)),
                    }
                })
            }
        }
    }

    fn forward(&self, id: ObjectId, to: NodeId) -> Result<(), StoreError> {
        let epoch = match self.get(id)? {
            None => return Err(StoreError::NotFound(id)),
            Some(Record::Live { epoch, .. } | Record::Forward { epoch, .. }) => epoch,
        };
        self.objects.insert(id.as_bytes(), record::encode(&Record::Forward { to, epoch })).map_err(io)?;
        Ok(())
    }

    fn put_forward(&self, id: ObjectId, to: NodeId, epoch: u64) -> Result<(), StoreError> {
        if let Some(Record::Live { .. }) = self.get(id)? {
            return Err(StoreError::AlreadyExists(id));
        }
        self.objects.insert(id.as_bytes(), record::encode(&Record::Forward { to, epoch })).map_err(io)?;
        Ok(())
    }

    fn discard(&self, id: ObjectId) -> Result<(), StoreError> {
        if let Some(Record::Live { .. }) = self.get(id)? {
            return Ok(());
        }
        self.remove_prefix(&self.pages, id)?;
        self.remove_prefix(&self.calls, id)
    }

    fn intent_put(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.intent_tree.insert(key, value).map_err(io).map(|_| ())
    }

    fn intent_remove(&self, key: &[u8]) -> Result<(), StoreError> {
        self.intent_tree.remove(key).map_err(io).map(|_| ())
    }

    fn intent_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.intent_tree.get(key).map_err(io)?.map(|v| v.to_vec()))
    }

    fn intents(&self) -> Result<Intents, StoreError> {
        self.intent_tree.iter().map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(io)).collect()
    }
}

/// The commits of one transaction: each on top of the version it ran on.
fn apply_commits(
    objects: &sled::transaction::TransactionalTree,
    pages: &sled::transaction::TransactionalTree,
    calls: &sled::transaction::TransactionalTree,
    commits: &[Commit],
) -> sled::transaction::ConflictableTransactionResult<(), StoreError> {
    let classes = check_commits(objects, commits)?.map_err(ConflictableTransactionError::Abort)?;
    for (c, class) in commits.iter().zip(classes) {
        write_commit(objects, pages, calls, c, class)?;
    }
    Ok(())
}

/// Whether every commit applies: their objects' classes, or why the first does not.
fn check_commits(
    objects: &sled::transaction::TransactionalTree,
    commits: &[Commit],
) -> Result<Result<Vec<String>, StoreError>, UnabortableTransactionError> {
    let mut classes = Vec::with_capacity(commits.len());
    for c in commits {
        match check_commit(objects, c)? {
            Ok(class) => classes.push(class),
            Err(e) => return Ok(Err(e)),
        }
    }
    Ok(Ok(classes))
}

/// A protocol intent put or removed.
fn write_intent(
    intents: &sled::transaction::TransactionalTree,
    change: IntentChange<'_>,
) -> Result<(), UnabortableTransactionError> {
    match change {
        IntentChange::Put(k, v) => intents.insert(k, v).map(|_| ()),
        IntentChange::Remove(k) => intents.remove(k).map(|_| ()),
    }
}

/// The encoded record of a new live object.
fn new_record(class: &str, state: &[u8]) -> Vec<u8> {
    record::encode(&Record::Live { class: class.to_string(), version: 1, epoch: 0, state: state.to_vec() })
}

/// Whether `c` applies: the object's class if it is live at the commit's base version.
fn check_commit(
    objects: &sled::transaction::TransactionalTree,
    c: &Commit,
) -> Result<Result<String, StoreError>, UnabortableTransactionError> {
    let Some(current) = objects.get(c.id.as_bytes())? else { return Ok(Err(StoreError::NotFound(c.id))) };
    Ok(match record::decode(&current) {
        Err(e) => Err(StoreError::Corrupt(e)),
        Ok(Record::Forward { .. }) => Err(StoreError::Forwarded(c.id)),
        Ok(Record::Live { version, .. }) if version != c.base_version => {
            Err(StoreError::VersionConflict { id: c.id, expected: c.base_version, found: version })
        }
        Ok(Record::Live { class, .. }) => Ok(class),
    })
}

/// Writes a checked commit: the next version of the record, its pages and its call record.
fn write_commit(
    objects: &sled::transaction::TransactionalTree,
    pages: &sled::transaction::TransactionalTree,
    calls: &sled::transaction::TransactionalTree,
    c: &Commit,
    class: String,
) -> Result<(), UnabortableTransactionError> {
    let next = Record::Live { class, version: c.base_version + 1, epoch: c.epoch, state: c.state.clone() };
    objects.insert(c.id.as_bytes(), record::encode(&next))?;
    for (key, value) in &c.pages {
        match value {
            Some(v) => pages.insert(prefixed(c.id, key), v.as_slice())?,
            None => pages.remove(prefixed(c.id, key))?,
        };
    }
    if let Some((call, reply)) = &c.call {
        calls.insert(prefixed(c.id, call.as_bytes()), reply.as_slice())?;
    }
    Ok(())
}

impl SledStore {
    /// Entries of `id` in `tree` from `start`, up to about `max_bytes` (at least one);
    /// `true` if the budget cut the read short (more may follow).
    fn read_prefix(
        &self,
        tree: &sled::Tree,
        start: Bound<Vec<u8>>,
        id: ObjectId,
        max_bytes: usize,
    ) -> Result<(clouds::Pages, bool), StoreError> {
        let mut items = Vec::new();
        let mut bytes = 0;
        for kv in tree.range::<Vec<u8>, _>((start, prefix_end(id))) {
            if bytes >= max_bytes && !items.is_empty() {
                return Ok((items, true));
            }
            let (k, v) = kv.map_err(io)?;
            bytes += k.len() - 16 + v.len();
            items.push((k[16..].to_vec(), v.to_vec()));
        }
        Ok((items, false))
    }

    fn insert_all<'a>(
        &self,
        tree: &sled::Tree,
        id: ObjectId,
        items: impl Iterator<Item = (&'a [u8], &'a Vec<u8>)>,
    ) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (k, v) in items {
            batch.insert(prefixed(id, k), v.as_slice());
        }
        tree.apply_batch(batch).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conformance() {
        super::super::conformance::run(|dir| Ok(Box::new(SledStore::open(dir)?)));
    }

    /// Start-up reads the count the last flush kept, without a scan; when a crash left it
    /// behind the records, the background recount puts it right.
    #[test]
    fn the_count_survives_a_restart_and_a_stale_one_is_recounted() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SledStore::open(dir.path()).unwrap();
            for _ in 0..3 {
                s.create(ObjectId::new(NodeId(1)), "C", b"").unwrap();
            }
            s.flush().unwrap();
            // As after a crash: the kept count is behind what the store holds.
            s.meta.insert(COUNT_KEY, &100u64.to_be_bytes()).unwrap();
            s.db.flush().unwrap();
        }
        let s = (0..50).find_map(|_| {
            SledStore::open(dir.path()).ok().or_else(|| {
                std::thread::sleep(std::time::Duration::from_millis(100));
                None
            })
        });
        let s = s.expect("the store reopens");
        for _ in 0..100 {
            if s.count().unwrap() == 3 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(s.count().unwrap(), 3, "recounted");
        s.create(ObjectId::new(NodeId(1)), "C", b"").unwrap();
        s.flush().unwrap();
        assert_eq!(s.meta_get(COUNT_KEY).unwrap(), Some(4u64.to_be_bytes().to_vec()), "kept at the flush");
    }

    #[test]
    fn conformance_synced() {
        super::super::conformance::run(|dir| Ok(Box::new(SledStore::open_synced(dir, true)?)));
    }

    #[test]
    fn a_synced_store_fsyncs_the_blobs_sled_writes() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open_synced(dir.path(), true).unwrap();
        let id = ObjectId::new(NodeId(1));
        s.create(id, "Blob", b"").unwrap();
        // A value over sled's blob threshold (a quarter of a 512 KiB segment).
        let big = vec![7u8; 300 << 10];
        let commit = Commit {
            id,
            base_version: 1,
            state: vec![],
            pages: vec![(b"p".to_vec(), Some(big))],
            call: None,
            epoch: 0,
        };
        s.commit(&commit).unwrap();
        s.flush().unwrap();
        let synced = s.synced.as_ref().unwrap().done.lock().unwrap().len();
        let on_disk = std::fs::read_dir(dir.path().join("blobs")).map_or(0, |d| d.count());
        assert!(on_disk >= 1, "sled wrote the big value as a blob file");
        assert!(synced >= 1, "and the flush fsynced it");
    }

    #[test]
    fn model() {
        for seed in 1..=4 {
            super::super::conformance::model(seed, 300, |dir| Ok(Box::new(SledStore::open(dir)?)));
        }
    }
}
