use client::Client;
use clouds::Ref;
use serde_json::json;
use stdobjects::{Blob, Log, Map, Queue, Register};
use tests::Node;

/// The standard classes through typed stubs from client code, against a real node.
#[test]
fn standard_classes_work_through_typed_stubs() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(2, dir.path());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = Client::connect(node.addr).await.unwrap();
        let ctx = client.ctx();

        let r: Ref<Register> = ctx.create(&Register::default()).await.unwrap();
        assert_eq!(r.id().home().0, 2, "ids name their home node");
        r.set(&ctx, json!({"v": 1}).into()).await.unwrap();
        assert!(!r.compare_and_set(&ctx, json!(0).into(), json!(2).into()).await.unwrap());
        assert!(r.compare_and_set(&ctx, json!({"v": 1}).into(), json!(2).into()).await.unwrap());
        assert_eq!(r.get(&ctx).await.unwrap().0, json!(2));

        let m: Ref<Map> = ctx.create(&Map::default()).await.unwrap();
        for k in ["b", "a", "c"] {
            m.put(&ctx, k.into(), json!(k).into()).await.unwrap();
        }
        assert_eq!(m.put(&ctx, "a".into(), json!(1).into()).await.unwrap().map(|v| v.0), Some(json!("a")));
        assert_eq!(m.remove(&ctx, "c".into()).await.unwrap().map(|v| v.0), Some(json!("c")));
        assert_eq!(m.len(&ctx).await.unwrap(), 2);
        let range = m.range(&ctx, "".into(), None, 10).await.unwrap();
        assert_eq!(range.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["a", "b"]);

        let q: Ref<Queue> = ctx.create(&Queue::default()).await.unwrap();
        q.push(&ctx, json!(1).into()).await.unwrap();
        q.push(&ctx, json!(2).into()).await.unwrap();
        assert_eq!(q.pop(&ctx).await.unwrap().map(|v| v.0), Some(json!(1)));
        assert_eq!(q.len(&ctx).await.unwrap(), 1);

        let l: Ref<Log> = ctx.create(&Log::default()).await.unwrap();
        for i in 0..5 {
            assert_eq!(l.append(&ctx, json!(i).into()).await.unwrap(), i);
        }
        let tail: Vec<_> = l.read(&ctx, 3, 10).await.unwrap().into_iter().map(|v| v.0).collect();
        assert_eq!(tail, [json!(3), json!(4)]);
    });
}

/// A blob spread over many pages: writes that straddle pages, a gap that reads as zeros,
/// and a request over the per-call limit refused with the reason.
#[test]
fn blobs_span_many_pages() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(1, dir.path());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = Client::connect(node.addr).await.unwrap();
        let ctx = client.ctx();
        let b: Ref<Blob> = ctx.create(&Blob::default()).await.unwrap();
        let chunk: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        b.write_at(&ctx, 0, chunk.clone()).await.unwrap();
        b.write_at(&ctx, 3_000_000, chunk.clone()).await.unwrap();
        assert_eq!(b.write_at(&ctx, 7_000_000, vec![9; 10]).await.unwrap(), 7_000_010);
        let back = b.read_at(&ctx, 2_999_000, 2_000).await.unwrap();
        assert_eq!(back[..1_000], chunk[2_999_000..]);
        assert_eq!(back[1_000..], chunk[..1_000]);
        assert_eq!(b.read_at(&ctx, 6_500_000, 100).await.unwrap(), vec![0; 100], "the gap reads as zeros");
        assert_eq!(b.read_at(&ctx, 7_000_005, 100).await.unwrap(), vec![9; 5], "reads stop at the end");
        let err = b.read_at(&ctx, 0, 5_000_000).await.unwrap_err();
        assert!(err.to_string().contains("more than the limit"), "{err}");
        let info = client.describe(b.raw().clone()).await.unwrap();
        // 6 MB is 92 pages of 64 KiB, plus one at 7 MB: the gap between takes none.
        assert_eq!(info.pages, 93);
    });
}
