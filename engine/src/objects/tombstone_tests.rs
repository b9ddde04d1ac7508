//! Object entries as tombstones (`ObjectEntry::tombstone_since_ms`), over a three-node
//! `TestCluster` (paused time): a deleted key's entry is collected from every replica, the
//! collection leaves nothing for the block collector to miss, the key can be written again,
//! and what a versioned bucket keeps as history is never collected.

use super::{ObjectError, Versioning};
use crate::block::BLOCK_SIZE_BYTES_DEFAULT;
use crate::node_tests::{
    TestCluster, blocks_on_each_node, let_gc_run, meta, object_stores, patterned,
};
use crate::table::tombstones::TombstoneGc;

/// One collection pass on every node (each leads its own partitions), of any age.
async fn collect_tombstones(cluster: &TestCluster) -> usize {
    let mut collected = 0;
    for node in &cluster.nodes {
        // Test clocks stand still while stamps move past them: "older than ever".
        let gc = TombstoneGc::new(node.clone(), 1, 0);
        collected += gc.collect_older_than(u64::MAX).await.collected;
    }
    collected
}

/// How many replicas hold an `object` entry for `bucket`/`key`.
fn replicas_holding(cluster: &TestCluster, bucket: &str, key: &str) -> usize {
    let storage_key = super::object_ops::object_key(bucket, key);
    cluster.nodes.iter().filter(|n| n.objects.local.get(&storage_key).unwrap().is_some()).count()
}

#[tokio::test(start_paused = true)]
async fn a_deleted_key_is_collected_everywhere_its_blocks_go_and_it_can_return() {
    let (cluster, s) = object_stores().await;
    s[0].create_bucket("b").await.unwrap();
    let big = patterned(2 * BLOCK_SIZE_BYTES_DEFAULT + 5);
    s[0].put_object("b", "big", meta("a/b", "e1"), big).await.unwrap();
    s[0].put_object("b", "small", meta("a/b", "e2"), b"inline".to_vec()).await.unwrap();
    s[1].put_object("b", "live", meta("a/b", "e3"), b"stays".to_vec()).await.unwrap();
    assert_eq!(blocks_on_each_node(&cluster), vec![3; 3]);
    assert_eq!(collect_tombstones(&cluster).await, 0, "nothing deleted yet");

    s[2].delete_object("b", "big").await.unwrap();
    s[2].delete_object("b", "small").await.unwrap();
    assert_eq!(replicas_holding(&cluster, "b", "big"), 3, "the delete is a marker first");
    assert!(collect_tombstones(&cluster).await >= 2);
    for key in ["big", "small"] {
        assert_eq!(replicas_holding(&cluster, "b", key), 0, "{key} still on a replica");
        assert!(matches!(s[0].get_object("b", key).await, Err(ObjectError::NoSuchKey)));
    }
    assert_eq!(replicas_holding(&cluster, "b", "live"), 3, "a live key is never collected");
    // The block collector finds the references of a collected entry's versions gone.
    let_gc_run().await;
    assert_eq!(blocks_on_each_node(&cluster), vec![0; 3]);

    s[1].put_object("b", "big", meta("a/b", "again"), b"back".to_vec()).await.unwrap();
    let got = s[2].get_object("b", "big").await.unwrap();
    assert_eq!((got.etag.as_str(), &got.data[..]), ("again", &b"back"[..]));
    let listed: Vec<String> =
        s[0].list_objects("b", "", "", 100).await.unwrap().into_iter().map(|o| o.key).collect();
    assert_eq!(listed, vec!["big".to_string(), "live".to_string()]);
}

#[tokio::test(start_paused = true)]
async fn history_a_versioned_bucket_keeps_is_never_collected() {
    let (cluster, s) = object_stores().await;
    s[0].create_bucket("v").await.unwrap();
    s[0].set_versioning("v", Versioning::Enabled).await.unwrap();
    let first = s[0].put_object("v", "k", meta("a/b", "e1"), b"one".to_vec()).await.unwrap();
    s[0].delete_object("v", "k").await.unwrap();
    assert_eq!(collect_tombstones(&cluster).await, 0);
    assert_eq!(replicas_holding(&cluster, "v", "k"), 3);
    let versions = s[1].list_object_versions("v", "", "", 100).await.unwrap();
    assert_eq!(versions.len(), 2, "the object and its delete marker are both listed");
    assert!(versions.iter().any(|v| v.object.is_none()), "the marker");
    let old = s[2].get_object_version("v", "k", Some(&first.version_id.to_hex())).await.unwrap();
    assert_eq!(&old.data[..], b"one");

    // Deleting every version by id leaves nothing to list: now it is a tombstone.
    for v in versions {
        s[0].delete_object_version("v", "k", &v.version_id.to_hex()).await.unwrap();
    }
    assert!(collect_tombstones(&cluster).await >= 1);
    assert_eq!(replicas_holding(&cluster, "v", "k"), 0);
    assert!(s[1].list_object_versions("v", "", "", 100).await.unwrap().is_empty());
}
