//! The conformance suite every `Store` implementation must pass, and a model test.
//!
//! `run(open)` checks each contract of the trait; `model(seed, steps, open)` applies
//! random operations, restarts included, and after every step compares the store with a
//! plain in-memory model. `open(dir)` opens (or reopens) a store in `dir`.

use super::{Chunk, Commit, Cursor, IntentChange, Record, Store, StoreError, Unit};
use clouds::{NodeId, ObjectId};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "clouds-store-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

type Open<'a> = &'a dyn Fn(&Path) -> Result<Box<dyn Store>, StoreError>;
type Check = (&'static str, fn(Open));

/// Runs every conformance check against fresh stores from `open`.
pub fn run(open: impl Fn(&Path) -> Result<Box<dyn Store>, StoreError>) {
    let checks: &[Check] = &[
        ("create_and_get", create_and_get),
        ("commit_is_atomic_and_versioned", commit_is_atomic_and_versioned),
        ("pages_are_per_object_and_ordered", pages_are_per_object_and_ordered),
        ("delete_removes_everything", delete_removes_everything),
        ("survives_reopen", survives_reopen),
        ("epochs_start_at_zero_and_follow_commits", epochs_start_at_zero_and_follow_commits),
        ("list_count_and_meta", list_count_and_meta),
        ("export_and_install_move_everything", export_and_install_move_everything),
        ("install_never_replaces_a_live_object", install_never_replaces_a_live_object),
        ("forward_and_discard", forward_and_discard),
        ("intents_are_kept_across_restarts", intents_are_kept_across_restarts),
        ("commits_of_several_objects_and_an_intent_are_one_unit", commits_and_an_intent_are_one_unit),
        ("a_group_applies_each_unit_on_its_own", a_group_applies_each_unit_on_its_own),
    ];
    for (name, check) in checks {
        eprintln!("store conformance: {name}");
        check(&open);
    }
}

fn live(store: &dyn Store, id: ObjectId) -> (String, u64, Vec<u8>) {
    match store.get(id).unwrap() {
        Some(Record::Live { class, version, state, .. }) => (class, version, state),
        other => panic!("expected a live record for {id}, got {other:?}"),
    }
}

fn commit(id: ObjectId, base: u64, state: &[u8], pages: &[(&[u8], Option<&[u8]>)]) -> Commit {
    Commit {
        id,
        base_version: base,
        state: state.to_vec(),
        pages: pages.iter().map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec))).collect(),
        call: None,
        epoch: 0,
    }
}

fn epoch(store: &dyn Store, id: ObjectId) -> u64 {
    match store.get(id).unwrap() {
        Some(Record::Live { epoch, .. }) => epoch,
        other => panic!("expected a live record for {id}, got {other:?}"),
    }
}

fn epochs_start_at_zero_and_follow_commits(open: Open) {
    let dir = Scratch::new();
    let id = ObjectId::new(NodeId(1));
    {
        let s = open(&dir.0).unwrap();
        s.create(id, "C", b"v1").unwrap();
        assert_eq!(epoch(&*s, id), 0);
        let mut c = commit(id, 1, b"v1", &[]);
        c.epoch = 1;
        s.commit(&c).unwrap();
        s.flush().unwrap();
    }
    // sled lets go of its lock a little after the drop: reopen as a restart would.
    let s = reopen(open, &dir.0);
    assert_eq!(epoch(&*s, id), 1, "a revocation survives a restart");
    assert_eq!(live(&*s, id), ("C".into(), 2, b"v1".to_vec()));
}

fn create_and_get(open: Open) {
    let dir = Scratch::new();
    let s = open(&dir.0).unwrap();
    let id = ObjectId::new(NodeId(1));
    assert!(s.get(id).unwrap().is_none());
    s.create(id, "Counter", b"s0").unwrap();
    assert_eq!(live(&*s, id), ("Counter".into(), 1, b"s0".to_vec()));
    assert!(matches!(s.create(id, "Counter", b"other"), Err(StoreError::AlreadyExists(_))));
    assert_eq!(live(&*s, id).2, b"s0");
}

fn commit_is_atomic_and_versioned(open: Open) {
    let dir = Scratch::new();
    let s = open(&dir.0).unwrap();
    let id = ObjectId::new(NodeId(1));
    s.create(id, "C", b"v1").unwrap();
    let mut c = commit(id, 1, b"v2", &[(b"a", Some(b"1")), (b"b", Some(b"2"))]);
    c.call = Some(("call-1".into(), b"reply".to_vec()));
    s.commit(&c).unwrap();
    assert_eq!(live(&*s, id), ("C".into(), 2, b"v2".to_vec()));
    assert_eq!(s.page_get(id, b"a").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(s.call_reply(id, "call-1").unwrap().as_deref(), Some(&b"reply"[..]));
    assert_eq!(s.call_reply(id, "call-2").unwrap(), None);

    // A commit computed from a stale version changes nothing at all.
    let stale = commit(id, 1, b"lost", &[(b"a", None), (b"c", Some(b"3"))]);
    assert!(matches!(s.commit(&stale), Err(StoreError::VersionConflict { expected: 1, found: 2, .. })));
    assert_eq!(live(&*s, id).2, b"v2");
    assert_eq!(s.page_get(id, b"a").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(s.page_get(id, b"c").unwrap(), None);

    // Deleting a page in a commit.
    s.commit(&commit(id, 2, b"v3", &[(b"a", None)])).unwrap();
    assert_eq!(s.page_get(id, b"a").unwrap(), None);
    assert_eq!(live(&*s, id).1, 3);

    let missing = ObjectId::new(NodeId(1));
    assert!(matches!(s.commit(&commit(missing, 1, b"x", &[])), Err(StoreError::NotFound(_))));
}

fn a_group_applies_each_unit_on_its_own(open: Open) {
    let dir = Scratch::new();
    let s = open(&dir.0).unwrap();
    let (a, b, taken) = (ObjectId::new(NodeId(1)), ObjectId::new(NodeId(1)), ObjectId::new(NodeId(1)));
    s.create(a, "C", b"a1").unwrap();
    s.create(taken, "C", b"t1").unwrap();
    let mut good = commit(a, 1, b"a2", &[(b"p", Some(b"1"))]);
    good.call = Some(("call-1".into(), b"reply".to_vec()));
    let units = vec![
        Unit::Commit(good),
        // Stale: nothing of it is written, and the units after it still apply.
        Unit::Commit(commit(taken, 7, b"lost", &[(b"q", Some(b"x"))])),
        Unit::Create { id: b, class: "D".into(), state: b"b1".to_vec() },
        Unit::Create { id: taken, class: "C".into(), state: b"again".to_vec() },
        Unit::Commit(commit(ObjectId::new(NodeId(1)), 1, b"x", &[])),
    ];
    let results = s.apply_group(&units).unwrap();
    assert_eq!(results.len(), 5);
    // An action's unit is all or nothing, its intent included.
    let (x, y) = (ObjectId::new(NodeId(1)), ObjectId::new(NodeId(1)));
    s.create(x, "C", b"x1").unwrap();
    s.create(y, "C", b"y1").unwrap();
    let actions = vec![
        Unit::Action {
            commits: vec![commit(x, 1, b"x-lost", &[]), commit(y, 9, b"y-lost", &[])],
            intent: Some((b"decided/lost".to_vec(), Some(b"1".to_vec()))),
        },
        Unit::Action {
            commits: vec![commit(x, 1, b"x2", &[(b"p", Some(b"2"))]), commit(y, 1, b"y2", &[])],
            intent: Some((b"decided/kept".to_vec(), Some(b"1".to_vec()))),
        },
    ];
    let done = s.apply_group(&actions).unwrap();
    assert!(matches!(done[0], Err(StoreError::VersionConflict { expected: 9, .. })), "{:?}", done[0]);
    assert!(done[1].is_ok(), "{:?}", done[1]);
    assert_eq!((live(&*s, x).2, live(&*s, y).2), (b"x2".to_vec(), b"y2".to_vec()));
    assert_eq!(s.intent_get(b"decided/lost").unwrap(), None);
    assert_eq!(s.intent_get(b"decided/kept").unwrap().as_deref(), Some(&b"1"[..]));
    let remove = [Unit::Action { commits: vec![], intent: Some((b"decided/kept".to_vec(), None)) }];
    assert!(s.apply_group(&remove).unwrap()[0].is_ok());
    assert_eq!(s.intent_get(b"decided/kept").unwrap(), None);
    s.delete(x).unwrap();
    s.delete(y).unwrap();
    assert!(results[0].is_ok());
    assert!(matches!(results[1], Err(StoreError::VersionConflict { expected: 7, found: 1, .. })));
    assert!(results[2].is_ok());
    assert!(matches!(results[3], Err(StoreError::AlreadyExists(id)) if id == taken));
    assert!(matches!(results[4], Err(StoreError::NotFound(_))));
    assert_eq!(live(&*s, a), ("C".into(), 2, b"a2".to_vec()));
    assert_eq!(s.page_get(a, b"p").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(s.call_reply(a, "call-1").unwrap().as_deref(), Some(&b"reply"[..]));
    assert_eq!(live(&*s, taken), ("C".into(), 1, b"t1".to_vec()));
    assert_eq!(s.page_get(taken, b"q").unwrap(), None);
    assert_eq!(live(&*s, b), ("D".into(), 1, b"b1".to_vec()));
    assert_eq!(s.count().unwrap(), 3);
    // A group bigger than one write of the store, and an empty one.
    let many: Vec<Unit> =
        (0..1200).map(|_| Unit::Create { id: ObjectId::new(NodeId(1)), class: "C".into(), state: vec![] }).collect();
    assert!(s.apply_group(&many).unwrap().iter().all(Result::is_ok));
    assert_eq!(s.count().unwrap(), 1203);
    assert!(s.apply_group(&[]).unwrap().is_empty());
    s.flush().unwrap();
    drop(s);
    let s = reopen(open, &dir.0);
    assert_eq!(live(&*s, b).2, b"b1");
    assert_eq!(s.count().unwrap(), 1203);
}

fn pages_are_per_object_and_ordered(open: Open) {
    let dir = Scratch::new();
    let s = open(&dir.0).unwrap();
    let (a, b) = (ObjectId::new(NodeId(1)), ObjectId::new(NodeId(1)));
    s.create(a, "C", b"").unwrap();
    s.create(b, "C", b"").unwrap();
    s.commit(&commit(a, 1, b"", &[(b"k3", Some(b"3")), (b"k1", Some(b"1")), (b"k2", Some(b"2"))])).unwrap();
    s.commit(&commit(b, 1, b"", &[(b"k1", Some(b"other"))])).unwrap();
    let keys = |start: Bound<&[u8]>, end: Bound<&[u8]>, limit| -> Vec<Vec<u8>> {
        s.page_range(a, start, end, limit).unwrap().into_iter().map(|(k, _)| k).collect()
    };
    assert_eq!(keys(Bound::Unbounded, Bound::Unbounded, 10), vec![b"k1".to_vec(), b"k2".to_vec(), b"k3".to_vec()]);
    assert_eq!(keys(Bound::Included(b"k2"), Bound::Unbounded, 10), vec![b"k2".to_vec(), b"k3".to_vec()]);
    assert_eq!(keys(Bound::Excluded(b"k1"), Bound::Excluded(b"k3"), 10), vec![b"k2".to_vec()]);
    assert_eq!(keys(Bound::Unbounded, Bound::Unbounded, 2).len(), 2);
    assert!(keys(Bound::Included(b"k3"), Bound::Excluded(b"k1"), 10).is_empty());
    assert_eq!(s.page_get(b, b"k1").unwrap().as_deref(), Some(&b"other"[..]));
    assert_eq!(s.page_usage(a).unwrap(), (3, 9));
    assert_eq!(s.page_keys(a, None, 10).unwrap(), vec![b"k1".to_vec(), b"k2".to_vec(), b"k3".to_vec()]);
    assert_eq!(s.page_keys(a, Some(b"k1"), 1).unwrap(), vec![b"k2".to_vec()]);
    assert!(s.page_keys(a, Some(b"k3"), 10).unwrap().is_empty());
    assert_eq!(s.page_keys(b, None, 10).unwrap(), vec![b"k1".to_vec()]);
}

fn delete_removes_everything(open: Open) {
    let dir = Scratch::new();
    let s = open(&dir.0).unwrap();
    let (a, b) = (ObjectId::new(NodeId(1)), ObjectId::new(NodeId(1)));
    s.create(a, "C", b"").unwrap();
    s.create(b, "C", b"").unwrap();
    let mut c = commit(a, 1, b"x", &[(b"p", Some(b"1"))]);
    c.call = Some(("k".into(), b"r".to_vec()));
    s.commit(&c).unwrap();
    s.commit(&commit(b, 1, b"y", &[(b"p", Some(b"2"))])).unwrap();
    assert!(s.delete(a).unwrap());
    assert!(s.get(a).unwrap().is_none());
    assert_eq!(s.page_get(a, b"p").unwrap(), None);
    assert_eq!(s.call_reply(a, "k").unwrap(), None);
    assert!(!s.delete(a).unwrap());
    assert_eq!(s.page_get(b, b"p").unwrap().as_deref(), Some(&b"2"[..]));
}

fn survives_reopen(open: Open) {
    let dir = Scratch::new();
    let id = ObjectId::new(NodeId(1));
    {
        let s = open(&dir.0).unwrap();
        s.create(id, "C", b"a").unwrap();
        s.commit(&commit(id, 1, b"b", &[(b"p", Some(b"1"))])).unwrap();
        s.meta_put("root", b"r").unwrap();
        s.flush().unwrap();
    }
    let s = reopen(open, &dir.0);
    assert_eq!(live(&*s, id), ("C".into(), 2, b"b".to_vec()));
    assert_eq!(s.page_get(id, b"p").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(s.meta_get("root").unwrap().as_deref(), Some(&b"r"[..]));
    assert_eq!(s.count().unwrap(), 1);
}

fn list_count_and_meta(open: Open) {
    let dir = Scratch::new();
    let s = open(&dir.0).unwrap();
    let mut ids: Vec<ObjectId> = (0..5).map(|_| ObjectId::new(NodeId(2))).collect();
    for id in &ids {
        s.create(*id, "C", b"").unwrap();
    }
    ids.sort();
    assert_eq!(s.count().unwrap(), 5);
    assert_eq!(s.list(None, 10).unwrap(), ids);
    assert_eq!(s.list(Some(ids[1]), 2).unwrap(), ids[2..4].to_vec());
    s.delete(ids[0]).unwrap();
    assert_eq!(s.count().unwrap(), 4);
    assert_eq!(s.meta_get("nothing").unwrap(), None);
    s.meta_put("mark", b"1").unwrap();
    s.meta_remove("mark").unwrap();
    s.meta_remove("never-there").unwrap();
    assert_eq!(s.meta_get("mark").unwrap(), None);
}

/// Every chunk of `id` from `from`, exported `max_bytes` at a time.
fn export_all(from: &dyn Store, id: ObjectId, max_bytes: usize) -> Vec<Chunk> {
    let (mut chunks, mut cursor) = (Vec::new(), Cursor::start());
    while let Some((chunk, next)) = from.export(id, &cursor, max_bytes).unwrap() {
        chunks.push(chunk);
        cursor = next;
        assert!(chunks.len() < 10_000, "the export ends");
    }
    chunks
}

fn export_and_install_move_everything(open: Open) {
    let (a, b) = (Scratch::new(), Scratch::new());
    let (from, to) = (open(&a.0).unwrap(), open(&b.0).unwrap());
    let id = ObjectId::new(NodeId(1));
    from.create(id, "Blob", b"s").unwrap();
    let page = vec![7u8; 100];
    let pages: Vec<(Vec<u8>, Vec<u8>)> = (0..50u32).map(|i| (i.to_be_bytes().to_vec(), page.clone())).collect();
    let writes: Vec<(&[u8], Option<&[u8]>)> = pages.iter().map(|(k, v)| (k.as_slice(), Some(v.as_slice()))).collect();
    let mut c = commit(id, 1, b"s2", &writes);
    c.call = Some(("call-1".into(), b"reply".to_vec()));
    c.epoch = 3;
    from.commit(&c).unwrap();

    let chunks = export_all(&*from, id, 300);
    assert!(matches!(chunks.last(), Some(Chunk::Record { version: 2, epoch: 3, .. })), "the record comes last");
    assert!(chunks.len() > 10, "300-byte chunks: {} of them", chunks.len());
    assert!(chunks.iter().all(|c| c.bytes() <= 300 + 104), "a chunk stays within its budget and one item");
    let (last, rest) = chunks.split_last().unwrap();
    for chunk in rest {
        to.install(id, chunk).unwrap();
    }
    assert!(to.get(id).unwrap().is_none(), "nothing is live before the record is installed");
    to.install(id, last).unwrap();
    assert_eq!(to.get(id).unwrap(), from.get(id).unwrap(), "same record, version and epoch");
    to.install(id, &Chunk::Removed(vec![49u32.to_be_bytes().to_vec()])).unwrap();
    assert_eq!(to.page_get(id, &49u32.to_be_bytes()).unwrap(), None, "a page removed at the source goes");
    to.install(id, &Chunk::Pages(vec![pages[49].clone()])).unwrap();
    assert_eq!(to.page_range(id, Bound::Unbounded, Bound::Unbounded, 100).unwrap(), pages);
    assert_eq!(to.call_reply(id, "call-1").unwrap().as_deref(), Some(&b"reply"[..]));
    assert_eq!(to.count().unwrap(), 1);

    let empty = ObjectId::new(NodeId(1));
    from.create(empty, "Counter", b"0").unwrap();
    let chunks = export_all(&*from, empty, 300);
    assert!(matches!(chunks.last(), Some(Chunk::Record { version: 1, .. })));
    assert!(matches!(from.export(ObjectId::new(NodeId(1)), &Cursor::Record, 300), Err(StoreError::NotFound(_))));
}

fn install_never_replaces_a_live_object(open: Open) {
    let dir = Scratch::new();
    let s = open(&dir.0).unwrap();
    let id = ObjectId::new(NodeId(1));
    s.create(id, "C", b"mine").unwrap();
    let record = Chunk::Record { class: "C".into(), version: 9, epoch: 0, state: b"theirs".to_vec() };
    assert!(matches!(s.install(id, &record), Err(StoreError::AlreadyExists(_))));
    assert_eq!(live(&*s, id), ("C".into(), 1, b"mine".to_vec()));
    s.forward(id, NodeId(2)).unwrap();
    s.install(id, &record).unwrap();
    assert_eq!(live(&*s, id), ("C".into(), 9, b"theirs".to_vec()), "an object may come back to a node it left");
}

fn forward_and_discard(open: Open) {
    let dir = Scratch::new();
    let s = open(&dir.0).unwrap();
    let id = ObjectId::new(NodeId(1));
    s.create(id, "C", b"a").unwrap();
    let mut c = commit(id, 1, b"b", &[(b"p", Some(b"1"))]);
    c.call = Some(("k".into(), b"r".to_vec()));
    c.epoch = 2;
    s.commit(&c).unwrap();
    s.forward(id, NodeId(3)).unwrap();
    assert_eq!(s.get(id).unwrap(), Some(Record::Forward { to: NodeId(3), epoch: 2 }));
    s.discard(id).unwrap();
    assert_eq!(s.page_get(id, b"p").unwrap(), None, "pages went with the object");
    assert_eq!(s.call_reply(id, "k").unwrap(), None);
    assert!(matches!(s.commit(&commit(id, 2, b"c", &[])), Err(StoreError::Forwarded(_))));
    assert!(matches!(s.forward(ObjectId::new(NodeId(1)), NodeId(2)), Err(StoreError::NotFound(_))));
    // A handed-over home record: a forwarding entry where there was nothing, or over one.
    let adopted = ObjectId::new(NodeId(5));
    s.put_forward(adopted, NodeId(2), 4).unwrap();
    assert_eq!(s.get(adopted).unwrap(), Some(Record::Forward { to: NodeId(2), epoch: 4 }));
    s.put_forward(id, NodeId(2), 2).unwrap();
    assert_eq!(s.get(id).unwrap(), Some(Record::Forward { to: NodeId(2), epoch: 2 }));
    let live = ObjectId::new(NodeId(1));
    s.create(live, "C", b"a").unwrap();
    assert!(matches!(s.put_forward(live, NodeId(2), 0), Err(StoreError::AlreadyExists(_))), "never over a live object");

    let other = ObjectId::new(NodeId(1));
    s.install(other, &Chunk::Pages(vec![(b"x".to_vec(), b"1".to_vec())])).unwrap();
    s.discard(other).unwrap();
    assert_eq!(s.page_get(other, b"x").unwrap(), None, "an install cut short leaves nothing");
    let kept = ObjectId::new(NodeId(1));
    s.create(kept, "C", b"").unwrap();
    s.commit(&commit(kept, 1, b"", &[(b"x", Some(b"1"))])).unwrap();
    s.discard(kept).unwrap();
    assert_eq!(s.page_get(kept, b"x").unwrap().as_deref(), Some(&b"1"[..]), "a live object is left alone");
}

fn intents_are_kept_across_restarts(open: Open) {
    let dir = Scratch::new();
    {
        let s = open(&dir.0).unwrap();
        assert!(s.intents().unwrap().is_empty());
        s.intent_put(b"migrate/b", b"2").unwrap();
        s.intent_put(b"migrate/a", b"1").unwrap();
        s.intent_put(b"migrate/c", b"3").unwrap();
        s.intent_put(b"migrate/a", b"1'").unwrap();
        s.intent_remove(b"migrate/c").unwrap();
        s.flush().unwrap();
    }
    let s = reopen(open, &dir.0);
    let expected = vec![(b"migrate/a".to_vec(), b"1'".to_vec()), (b"migrate/b".to_vec(), b"2".to_vec())];
    assert_eq!(s.intents().unwrap(), expected, "in key order, the last value of each");
    assert_eq!(s.intent_get(b"migrate/a").unwrap().as_deref(), Some(&b"1'"[..]));
    assert_eq!(s.intent_get(b"migrate/c").unwrap(), None);
}

fn commits_and_an_intent_are_one_unit(open: Open) {
    let dir = Scratch::new();
    let (a, b) = (ObjectId::new(NodeId(1)), ObjectId::new(NodeId(1)));
    {
        let s = open(&dir.0).unwrap();
        s.create(a, "C", b"a0").unwrap();
        s.create(b, "C", b"b0").unwrap();
        let both = [commit(a, 1, b"a1", &[]), commit(b, 1, b"b1", &[(b"p", Some(b"1"))])];
        s.commit_with_intent(&both, Some(IntentChange::Put(b"decided/x", b"1"))).unwrap();
        // One of two does not apply: neither does, nor the intent change.
        let stale = [commit(a, 2, b"a2", &[]), commit(b, 1, b"b2", &[])];
        let refused = s.commit_with_intent(&stale, Some(IntentChange::Remove(b"decided/x")));
        assert!(matches!(refused, Err(StoreError::VersionConflict { .. })), "{refused:?}");
        s.commit_all(&[commit(a, 2, b"a2", &[])]).unwrap();
        s.flush().unwrap();
    }
    let s = reopen(open, &dir.0);
    assert_eq!(live(s.as_ref(), a), ("C".into(), 3, b"a2".to_vec()));
    assert_eq!(live(s.as_ref(), b), ("C".into(), 2, b"b1".to_vec()));
    assert_eq!(s.page_get(b, b"p").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(s.intent_get(b"decided/x").unwrap().as_deref(), Some(&b"1"[..]));
    s.commit_with_intent(&[], Some(IntentChange::Remove(b"decided/x"))).unwrap();
    assert_eq!(s.intent_get(b"decided/x").unwrap(), None);
}

/// A tiny deterministic generator, so that a failing seed replays exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Clone, Default, Debug, PartialEq)]
struct ModelObject {
    version: u64,
    state: Vec<u8>,
    pages: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// Opens the store again after a restart. sled releases its file lock from a background
/// thread shortly after the last handle is dropped, so the first tries may find it taken.
fn reopen(open: Open, dir: &Path) -> Box<dyn Store> {
    for _ in 0..200 {
        if let Ok(store) = open(dir) {
            return store;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    open(dir).expect("the store reopens within 5 s")
}

/// Random creates, commits (some stale), deletes and restarts, checked against a model.
pub fn model(seed: u64, steps: usize, open: impl Fn(&Path) -> Result<Box<dyn Store>, StoreError>) {
    let dir = Scratch::new();
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut store = open(&dir.0).unwrap();
    let mut model: BTreeMap<ObjectId, ModelObject> = BTreeMap::new();
    let mut gone: Vec<ObjectId> = Vec::new();
    for step in 0..steps {
        let ids: Vec<ObjectId> = model.keys().copied().collect();
        match rng.below(10) {
            0 | 1 => {
                let id = ObjectId::new(NodeId(1));
                let state = vec![rng.below(256) as u8; rng.below(4) as usize];
                store.create(id, "M", &state).unwrap();
                model.insert(id, ModelObject { version: 1, state, pages: BTreeMap::new() });
            }
            2..=6 if !ids.is_empty() => {
                let id = ids[rng.below(ids.len() as u64) as usize];
                let m = model.get_mut(&id).expect("listed");
                let stale = rng.below(8) == 0;
                let base = if stale { m.version + 1 } else { m.version };
                let state = vec![step as u8; rng.below(5) as usize];
                let pages: Vec<(Vec<u8>, Option<Vec<u8>>)> = (0..rng.below(4))
                    .map(|_| {
                        let key = vec![b'k', rng.below(6) as u8];
                        let value = (rng.below(3) != 0).then(|| vec![step as u8, rng.below(256) as u8]);
                        (key, value)
                    })
                    .collect();
                let c =
                    Commit { id, base_version: base, state: state.clone(), pages: pages.clone(), call: None, epoch: 0 };
                let result = store.commit(&c);
                if stale {
                    assert!(matches!(result, Err(StoreError::VersionConflict { .. })), "step {step}: {result:?}");
                } else {
                    result.unwrap();
                    m.version += 1;
                    m.state = state;
                    for (k, v) in pages {
                        match v {
                            Some(v) => m.pages.insert(k, v),
                            None => m.pages.remove(&k),
                        };
                    }
                }
            }
            7 if !ids.is_empty() => {
                let id = ids[rng.below(ids.len() as u64) as usize];
                assert!(store.delete(id).unwrap());
                model.remove(&id);
                gone.push(id);
            }
            8 => {
                store.flush().unwrap();
                drop(store);
                store = reopen(&open, &dir.0);
            }
            _ => {}
        }
        for (id, m) in &model {
            let (_, version, state) = live(&*store, *id);
            assert_eq!((version, &state), (m.version, &m.state), "step {step}, object {id}");
            let pages: BTreeMap<Vec<u8>, Vec<u8>> =
                store.page_range(*id, Bound::Unbounded, Bound::Unbounded, usize::MAX).unwrap().into_iter().collect();
            assert_eq!(pages, m.pages, "step {step}, pages of {id}");
        }
        for id in &gone {
            assert!(store.get(*id).unwrap().is_none(), "step {step}: deleted {id} came back");
        }
        assert_eq!(store.count().unwrap(), model.len() as u64, "step {step}");
    }
}
