//! The `version` table over a three-node `TestCluster` (paused time): long block lists
//! leave the object entry, read back through any node, follow copies and multipart
//! completions, and are deleted — then collected — with their version.

use super::body::{Body, Owner};
use super::gc::{BlockGc, GcConfig};
use super::multipart::{PART_SIZE_BYTES_MIN, UploadMeta};
use super::version_blocks::VersionBlocks;
use super::{ObjectError, ObjectStore, VersionData, VersionId, Versioning};
use crate::node::Node;
use crate::node_tests::{TestCluster, blocks_on_each_node, let_gc_run, meta, patterned};
use crate::table::entry_key;
use crate::table::tombstones::TombstoneGc;

const BLOCK: usize = 8 * 1024;
/// Lists of more blocks than this go to the `version` table in these tests.
const LIST_MAX: usize = 4;

async fn listing_stores() -> (TestCluster, Vec<ObjectStore>) {
    let cluster = TestCluster::start_with_sync_interval(60_000).await;
    let stores = (cluster.nodes.iter())
        .map(|n| {
            ObjectStore::with_block_size(n.clone(), BLOCK).with_list_inline_max_blocks(LIST_MAX)
        })
        .collect();
    (cluster, stores)
}

/// The current version's body as the object table stores it.
async fn stored_body(node: &Node, key: &str) -> Body {
    let entry = node.objects.get(&entry_key(b"b", key.as_bytes())).await.unwrap().unwrap();
    match entry.current() {
        Some((_, VersionData::Object(stored))) => stored.body.clone(),
        other => panic!("no current object for {key}: {other:?}"),
    }
}

/// Every list this node holds, deleted or not.
fn local_lists(node: &Node) -> Vec<VersionBlocks> {
    let table = &node.tables["version"];
    let entries = (0..=u8::MAX).flat_map(|p| table.partition_entries(p).unwrap());
    entries.map(|(_, v)| crate::table::schema::decode_entry(&v).unwrap()).collect()
}

fn live_lists(cluster: &TestCluster) -> Vec<usize> {
    let live = |n: &Node| local_lists(n).iter().filter(|l| !l.deleted.get()).count();
    cluster.nodes.iter().map(|n| live(n)).collect()
}

async fn collect_tombstones(cluster: &TestCluster) {
    for node in &cluster.nodes {
        TombstoneGc::new(node.clone(), 1, 0).collect_older_than(u64::MAX).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_long_block_list_lives_in_the_version_table_and_reads_back_through_any_node() {
    let (cluster, s) = listing_stores().await;
    s[0].create_bucket("b").await.unwrap();
    let long = patterned(10 * BLOCK + 17);
    let short = patterned(3 * BLOCK).into_iter().rev().collect::<Vec<u8>>();
    s[0].put_object("b", "long", meta("a/b", "e1"), long.clone()).await.unwrap();
    s[1].put_object("b", "short", meta("a/b", "e2"), short.clone()).await.unwrap();

    match stored_body(cluster.node(2), "long").await {
        Body::Listed(listed) => assert_eq!(listed.block_count, 11),
        other => panic!("a list of 11 blocks stays in the entry: {other:?}"),
    }
    assert!(matches!(stored_body(cluster.node(2), "short").await, Body::Blocks(b) if b.len() == 3));
    assert_eq!(live_lists(&cluster), vec![1, 1, 1], "one list, on every replica");

    for store in &s {
        assert_eq!(store.get_object("b", "long").await.unwrap().data, long);
        assert_eq!(store.get_object("b", "short").await.unwrap().data, short);
        assert_eq!(store.head_object("b", "long").await.unwrap().size_bytes, long.len() as u64);
    }
    // A range across a block boundary, read through a listed body.
    let (_, mut reader) = s[2].open_object("b", "long", None).await.unwrap();
    let (start, end) = (3 * BLOCK as u64 - 5, 4 * BLOCK as u64 + 5);
    reader.select(start, end);
    assert_eq!(reader.read_all().await.unwrap(), long[start as usize..end as usize]);
}

/// Deletes cascade: the overwritten version's list is deleted, then its blocks; the list's
/// tombstone is collected once every replica holds it.
#[tokio::test(start_paused = true)]
async fn an_overwritten_version_s_list_is_deleted_then_collected_and_its_blocks_with_it() {
    let (cluster, s) = listing_stores().await;
    s[0].create_bucket("b").await.unwrap();
    s[0].put_object("b", "k", meta("a/b", "e1"), patterned(10 * BLOCK)).await.unwrap();
    assert_eq!(blocks_on_each_node(&cluster), vec![10; 3]);
    s[1].put_object("b", "k", meta("a/b", "e2"), b"small".to_vec()).await.unwrap();
    let_gc_run().await;
    assert_eq!(live_lists(&cluster), vec![0; 3], "the list went with its version");
    assert_eq!(blocks_on_each_node(&cluster), vec![0; 3], "and then its blocks");
    for node in &cluster.nodes {
        assert_eq!(local_lists(node).len(), 1, "a tombstone until collected");
    }
    collect_tombstones(&cluster).await;
    for node in &cluster.nodes {
        assert_eq!(local_lists(node), vec![], "n{}: the tombstone is collected", node.id.0);
    }
    assert_eq!(s[2].get_object("b", "k").await.unwrap().data, b"small");
}

/// A version kept by a versioned bucket keeps its list until it is deleted by id.
#[tokio::test(start_paused = true)]
async fn a_kept_version_keeps_its_list_until_deleted_by_id() {
    let (cluster, s) = listing_stores().await;
    s[0].create_bucket("b").await.unwrap();
    s[0].set_versioning("b", Versioning::Enabled).await.unwrap();
    let old = patterned(6 * BLOCK);
    let v1 = s[0].put_object("b", "k", meta("a/b", "e1"), old.clone()).await.unwrap();
    s[1].put_object("b", "k", meta("a/b", "e2"), b"new".to_vec()).await.unwrap();
    let_gc_run().await;
    assert_eq!(live_lists(&cluster), vec![1; 3]);
    let v1_hex = v1.version_id.to_hex();
    let got = s[2].get_object_version("b", "k", Some(&v1_hex)).await.unwrap();
    assert_eq!(got.data, old);

    s[2].delete_object_version("b", "k", &v1_hex).await.unwrap();
    let_gc_run().await;
    assert_eq!(live_lists(&cluster), vec![0; 3]);
    assert_eq!(blocks_on_each_node(&cluster), vec![0; 3]);
    let gone = s[0].get_object_version("b", "k", Some(&v1_hex)).await;
    assert!(matches!(gone, Err(ObjectError::NoSuchVersion)), "{gone:?}");
}

/// A copy records its own list under its own version: deleting the source takes the
/// source's list and references, never the copy's.
#[tokio::test(start_paused = true)]
async fn a_copy_of_a_listed_object_outlives_its_source() {
    let (cluster, s) = listing_stores().await;
    s[0].create_bucket("b").await.unwrap();
    let data = patterned(8 * BLOCK + 1);
    let src = s[0].put_object("b", "src", meta("a/b", "e1"), data.clone()).await.unwrap();
    let src_hex = src.version_id.to_hex();
    let copy = s[1].copy_object(("b", "src", &src_hex), "b", "dst", UploadMeta::default());
    copy.await.unwrap();
    assert!(matches!(stored_body(cluster.node(1), "dst").await, Body::Listed(_)));
    assert_eq!(live_lists(&cluster), vec![2; 3], "the copy has a list of its own");

    s[2].delete_object("b", "src").await.unwrap();
    let_gc_run().await;
    assert_eq!(live_lists(&cluster), vec![1; 3], "only the source's list went");
    assert_eq!(blocks_on_each_node(&cluster), vec![9; 3], "the copy keeps every block");
    assert_eq!(s[0].get_object("b", "dst").await.unwrap().data, data);
}

/// A multipart completion of many blocks records its list before the version completes.
#[tokio::test(start_paused = true)]
async fn a_multipart_completion_of_many_blocks_is_listed() {
    let (cluster, s) = listing_stores().await;
    s[0].create_bucket("b").await.unwrap();
    let part = PART_SIZE_BYTES_MIN as usize;
    let (p1, p2) = (patterned(part), patterned(3 * BLOCK).into_iter().rev().collect::<Vec<_>>());
    let id = s[0].create_multipart_upload("b", "k", UploadMeta::default()).await.unwrap();
    s[1].upload_part("b", "k", &id, 1, p1.clone(), "e1".into()).await.unwrap();
    s[2].upload_part("b", "k", &id, 2, p2.clone(), "e2".into()).await.unwrap();
    let parts = [(1, "e1".to_string()), (2, "e2".to_string())];
    s[0].complete_multipart_upload("b", "k", &id, &parts, "e-2".into()).await.unwrap();
    let blocks = part / BLOCK + 3;
    match stored_body(cluster.node(1), "k").await {
        Body::Listed(listed) => assert_eq!(listed.block_count as usize, blocks),
        other => panic!("{blocks} blocks are listed: {other:?}"),
    }
    let whole: Vec<u8> = p1.into_iter().chain(p2).collect();
    assert_eq!(s[2].get_object("b", "k").await.unwrap().data, whole);
}

/// A listed PUT re-stamped by the key's consensus (a newer write completed while it
/// streamed) records its list again under the new id, before proposing it; the list under
/// the id it gave up goes with that id.
#[tokio::test(start_paused = true)]
async fn a_re_stamped_listed_put_is_listed_under_its_final_id() {
    let (cluster, s) = listing_stores().await;
    s[0].create_bucket("b").await.unwrap();
    let s: Vec<std::sync::Arc<ObjectStore>> = s.into_iter().map(std::sync::Arc::new).collect();
    let (reached, resume) = cluster.node(3).cas.test_knobs.park_next_after_prepare();
    let large = patterned(20 * BLOCK);
    let slow = {
        let (store, body) = (s[2].clone(), large.clone());
        tokio::spawn(async move { store.put_object("b", "k", meta("t", "big"), body).await })
    };
    reached.await.expect("the large PUT prepared");
    let quick = s[0].put_object("b", "k", meta("t", "small"), b"small".to_vec()).await.unwrap();
    resume.send(()).unwrap();
    let slow = slow.await.unwrap().expect("an unconditional PUT is never refused");
    assert!(slow.version_id > quick.version_id, "re-stamped above the write decided first");
    assert!(matches!(stored_body(cluster.node(1), "k").await, Body::Listed(_)));
    for store in &s {
        assert_eq!(store.get_object("b", "k").await.unwrap().data, large);
    }
    let_gc_run().await;
    for node in &cluster.nodes {
        let live: Vec<_> = local_lists(node).into_iter().filter(|l| !l.deleted.get()).collect();
        let ids: Vec<_> = live.iter().map(|l| l.version).collect();
        assert_eq!(ids, vec![slow.version_id], "n{}: only the final id's list", node.id.0);
    }
    assert_eq!(blocks_on_each_node(&cluster), vec![20; 3]);
    assert_eq!(s[1].get_object("b", "k").await.unwrap().data, large);
}

/// A list written after its version was already gone — a writer so slow that a newer
/// write pruned its upload and the collector retired every reference first — has no
/// reference left to lead the cascade to it: the collector's pass over the lists of the
/// partitions it leads deletes it. A list of a version still uploading stays.
#[tokio::test(start_paused = true)]
async fn a_list_written_after_its_version_was_gone_is_deleted() {
    let (cluster, s) = listing_stores().await;
    s[0].create_bucket("b").await.unwrap();
    s[0].put_object("b", "k", meta("a/b", "e1"), b"current".to_vec()).await.unwrap();
    let blocks = vec![super::body::BodyBlock { hash: [7; 32], size_bytes: 1 }];
    let gone = VersionId { timestamp: 1, unique: 9 };
    let owner = |version| Owner { bucket: "b".into(), key: "k".into(), version };
    s[1].write_list(&owner(gone), blocks.clone()).await.unwrap();
    let uploading = s[0].create_multipart_upload("b", "u", UploadMeta::default()).await.unwrap();
    let uploading = VersionId::from_hex(&uploading).unwrap();
    let upload_owner = Owner { bucket: "b".into(), key: "u".into(), version: uploading };
    s[1].write_list(&upload_owner, blocks).await.unwrap();
    assert_eq!(live_lists(&cluster), vec![2; 3]);
    for node in &cluster.nodes {
        BlockGc::new(node.clone(), GcConfig::default()).step().await;
    }
    let kept: Vec<_> =
        local_lists(cluster.node(1)).into_iter().filter(|l| !l.deleted.get()).collect();
    assert_eq!(kept.iter().map(|l| l.version).collect::<Vec<_>>(), vec![uploading]);
    assert_eq!(live_lists(&cluster), vec![1; 3], "deleted on every replica");
}

/// The pass over the lists reads them a page at a time and still reaches every one.
#[tokio::test(start_paused = true)]
async fn the_pass_over_the_lists_reaches_lists_beyond_its_first_page() {
    let (cluster, s) = listing_stores().await;
    s[0].create_bucket("b").await.unwrap();
    let blocks = vec![super::body::BodyBlock { hash: [7; 32], size_bytes: 1 }];
    for t in 1..=150 {
        let owner = Owner {
            bucket: "b".into(),
            key: "k".into(),
            version: VersionId { timestamp: t, unique: 9 },
        };
        s[0].write_list(&owner, blocks.clone()).await.unwrap();
    }
    assert_eq!(live_lists(&cluster), vec![150; 3]);
    for node in &cluster.nodes {
        BlockGc::new(node.clone(), GcConfig::default()).step().await;
    }
    assert_eq!(live_lists(&cluster), vec![0; 3]);
}
