//! Multipart uploads over a three-node `TestCluster` (paused time): parts through different
//! coordinators, completion rules, abort, listings, what the block collector keeps, and
//! the collection of finished uploads' entries.

use std::collections::BTreeMap;

use super::gc::{BlockGc, GcConfig};
use super::multipart::{
    MultipartUpload, PART_SIZE_BYTES_MIN, PartRecord, UploadMeta, upload_entry_key,
};
use super::{ObjectError, ObjectStore, VersionId};
use crate::block::BLOCK_SIZE_BYTES_DEFAULT;
use crate::node_tests::{
    SYNC_INTERVAL_MS, TestCluster, blocks_on_each_node, let_gc_run, object_stores, patterned,
    wait_until,
};
use crate::table::tombstones::TombstoneGc;

const PART_BYTES: usize = PART_SIZE_BYTES_MIN as usize;

/// A body whose blocks differ from those of any other `salt` (and from each other).
fn body(len: usize, salt: u8) -> Vec<u8> {
    patterned(len).into_iter().map(|b| b.wrapping_add(salt)).collect()
}

fn upload_meta() -> UploadMeta {
    let user_metadata = BTreeMap::from([("owner".to_string(), "ops".to_string())]);
    UploadMeta { content_type: "video/mp4".into(), user_metadata }
}

fn chosen(parts: &[(u32, &str)]) -> Vec<(u32, String)> {
    parts.iter().map(|(n, e)| (*n, e.to_string())).collect()
}

#[tokio::test(start_paused = true)]
async fn parts_uploaded_out_of_order_and_replaced_complete_into_the_right_object() {
    let (cluster, s) = object_stores().await;
    s[0].create_bucket("b").await.unwrap();
    let id = s[0].create_multipart_upload("b", "k", upload_meta()).await.unwrap();
    let (p1, p2_old, p2, p3) =
        (body(PART_BYTES, 1), body(PART_BYTES, 2), body(PART_BYTES, 3), body(100_000, 4));
    // Out of order, through every coordinator, part 2 twice.
    s[1].upload_part("b", "k", &id, 3, p3.clone(), "e3".into()).await.unwrap();
    s[2].upload_part("b", "k", &id, 2, p2_old, "e2-old".into()).await.unwrap();
    s[0].upload_part("b", "k", &id, 1, p1.clone(), "e1".into()).await.unwrap();
    s[1].upload_part("b", "k", &id, 2, p2.clone(), "e2".into()).await.unwrap();
    let per_part = PART_BYTES / BLOCK_SIZE_BYTES_DEFAULT;
    assert_eq!(blocks_on_each_node(&cluster), vec![3 * per_part + 1; 3]);

    let parts = s[2].list_parts("b", "k", &id).await.unwrap();
    let seen: Vec<_> =
        parts.iter().map(|p| (p.part_number, p.etag.as_str(), p.size_bytes)).collect();
    assert_eq!(
        seen,
        [(1, "e1", PART_SIZE_BYTES_MIN), (2, "e2", PART_SIZE_BYTES_MIN), (3, "e3", 100_000)]
    );

    let list = chosen(&[(1, "e1"), (2, "e2"), (3, "e3")]);
    let done = s[2].complete_multipart_upload("b", "k", &id, &list, "md5-3".into()).await.unwrap();
    assert_eq!(done.version_id.to_hex(), id, "the upload id names the object's version");
    let expected: Vec<u8> = [p1, p2, p3].concat();
    assert_eq!(done.size_bytes, expected.len() as u64);
    for store in &s {
        let got = store.get_object("b", "k").await.unwrap();
        assert!(got.data == expected, "the body is the newest upload of each chosen part");
        assert_eq!((got.etag.as_str(), got.content_type.as_str()), ("md5-3", "video/mp4"));
        assert_eq!(got.user_metadata, upload_meta().user_metadata);
    }
    assert!(s[1].list_multipart_uploads("b", "", 100).await.unwrap().is_empty());
    assert_eq!(s[1].list_parts("b", "k", &id).await, Err(ObjectError::NoSuchUpload));
    // A retried completion (the client lost the first answer) gets the same object.
    let again = s[0].complete_multipart_upload("b", "k", &id, &list, "md5-3".into()).await;
    assert_eq!(again.unwrap().version_id, done.version_id);

    let_gc_run().await;
    let kept = 2 * per_part + 1;
    assert_eq!(blocks_on_each_node(&cluster), vec![kept; 3], "the replaced part 2 is collected");
    assert!(s[1].get_object("b", "k").await.unwrap().data == expected);
}

#[tokio::test(start_paused = true)]
async fn completion_refuses_wrong_etags_small_middle_parts_and_disorder() {
    let (_cluster, s) = object_stores().await;
    s[0].create_bucket("b").await.unwrap();
    let id = s[0].create_multipart_upload("b", "k", UploadMeta::default()).await.unwrap();
    let (p1, p2) = (body(1_000, 1), body(2_000, 2));
    s[0].upload_part("b", "k", &id, 1, p1, "e1".into()).await.unwrap();
    s[1].upload_part("b", "k", &id, 2, p2.clone(), "e2".into()).await.unwrap();
    let complete = |list: &[(u32, &str)]| {
        let list = chosen(list);
        let store = &s[2];
        let id = id.clone();
        async move { store.complete_multipart_upload("b", "k", &id, &list, "f".into()).await }
    };
    assert_eq!(
        complete(&[(1, "wrong"), (2, "e2")]).await,
        Err(ObjectError::InvalidPart { part_number: 1 })
    );
    assert_eq!(complete(&[(3, "e3")]).await, Err(ObjectError::InvalidPart { part_number: 3 }));
    assert_eq!(
        complete(&[(1, "e1"), (2, "e2")]).await,
        Err(ObjectError::EntityTooSmall { part_number: 1, size_bytes: 1_000 })
    );
    assert_eq!(complete(&[(2, "e2"), (1, "e1")]).await, Err(ObjectError::InvalidPartOrder));
    assert_eq!(complete(&[]).await, Err(ObjectError::InvalidPartOrder));
    // Refused completions leave the upload open; a single (last) part may be small.
    assert_eq!(s[0].list_parts("b", "k", &id).await.unwrap().len(), 2);
    complete(&[(2, "e2")]).await.unwrap();
    assert_eq!(s[0].get_object("b", "k").await.unwrap().data, p2);
}

#[tokio::test(start_paused = true)]
async fn an_aborted_upload_leaves_the_previous_version_and_its_blocks_are_collected() {
    let (cluster, s) = object_stores().await;
    s[0].create_bucket("b").await.unwrap();
    let before = body(BLOCK_SIZE_BYTES_DEFAULT + 10, 9);
    s[0].put_object("b", "k", Default::default(), before.clone()).await.unwrap();
    let id = s[1].create_multipart_upload("b", "k", UploadMeta::default()).await.unwrap();
    s[2].upload_part("b", "k", &id, 1, body(PART_BYTES, 1), "e1".into()).await.unwrap();
    s[0].upload_part("b", "k", &id, 2, body(10, 2), "e2".into()).await.unwrap();
    let per_part = PART_BYTES / BLOCK_SIZE_BYTES_DEFAULT;
    assert_eq!(blocks_on_each_node(&cluster), vec![2 + per_part + 1; 3]);

    s[1].abort_multipart_upload("b", "k", &id).await.unwrap();
    s[2].abort_multipart_upload("b", "k", &id).await.expect("aborting again succeeds");
    for store in &s {
        assert!(store.get_object("b", "k").await.unwrap().data == before);
    }
    assert!(s[0].list_multipart_uploads("b", "", 10).await.unwrap().is_empty());
    let late = s[0].upload_part("b", "k", &id, 3, vec![1], "e3".into()).await;
    assert_eq!(late, Err(ObjectError::NoSuchUpload));
    let list = chosen(&[(1, "e1"), (2, "e2")]);
    let complete = s[0].complete_multipart_upload("b", "k", &id, &list, "f".into()).await;
    assert_eq!(complete, Err(ObjectError::NoSuchUpload));

    let_gc_run().await;
    assert_eq!(blocks_on_each_node(&cluster), vec![2; 3], "only the previous body's blocks");
    assert!(s[2].get_object("b", "k").await.unwrap().data == before);
}

#[tokio::test(start_paused = true)]
async fn unfinished_uploads_are_listed_by_key_and_prefix() {
    let (_cluster, s) = object_stores().await;
    s[0].create_bucket("b").await.unwrap();
    let mut ids = Vec::new();
    for (i, key) in ["b/1", "a/1", "a/2", "a/1", "gone"].into_iter().enumerate() {
        let id = s[i % 3].create_multipart_upload("b", key, UploadMeta::default()).await;
        ids.push((key, id.unwrap()));
    }
    s[0].abort_multipart_upload("b", "gone", &ids[4].1).await.unwrap();
    let listed = |prefix: &'static str, max: usize| {
        let store = &s[1];
        async move {
            let uploads = store.list_multipart_uploads("b", prefix, max).await.unwrap();
            uploads.into_iter().map(|u| (u.key, u.upload_id)).collect::<Vec<_>>()
        }
    };
    let owned = |i: usize| (ids[i].0.to_string(), ids[i].1.clone());
    // By key, then by age (upload ids sort like their creation stamps).
    assert_eq!(listed("", 100).await, [owned(1), owned(3), owned(2), owned(0)]);
    assert_eq!(listed("a/", 100).await, [owned(1), owned(3), owned(2)]);
    assert_eq!(listed("", 1).await, [owned(1)]);

    let missing = s[0].list_multipart_uploads("nope", "", 10).await;
    assert_eq!(missing, Err(ObjectError::NoSuchBucket));
    let bad_id = s[0].upload_part("b", "a/1", "not-an-id", 1, vec![1], "e".into()).await;
    assert_eq!(bad_id, Err(ObjectError::NoSuchUpload));
    let wrong_key = s[0].list_parts("b", "a/2", &ids[1].1).await;
    assert_eq!(wrong_key, Err(ObjectError::NoSuchUpload), "an upload id belongs to its key");
    let zero = s[0].upload_part("b", "a/1", &ids[1].1, 0, vec![1], "e".into()).await;
    assert_eq!(zero, Err(ObjectError::InvalidPartNumber { part_number: 0 }));
}

// Finished uploads as tombstones (`MpuSchema::tombstone_since_ms`). Regression: a finished
// upload's `mpu` entry used to stay forever (it had no finish time to age from), so a
// backup tool doing one multipart upload per file grew the metadata without bound.

/// One collection pass on every node (each leads its own partitions) of what became a
/// tombstone before `before_ms`; `u64::MAX`: of any age (test clocks stand still while
/// write stamps move past them).
async fn collect_tombstones_before(cluster: &TestCluster, before_ms: u64) -> usize {
    let mut collected = 0;
    for node in &cluster.nodes {
        collected +=
            TombstoneGc::new(node.clone(), 1, 0).collect_older_than(before_ms).await.collected;
    }
    collected
}

/// Each replica's `mpu` entry for the upload: `None` where it holds none.
fn upload_on_replicas(cluster: &TestCluster, key: &str, id: &str) -> Vec<Option<MultipartUpload>> {
    let id = VersionId::from_hex(id).expect("an upload id");
    let storage_key = upload_entry_key("b", key, id);
    cluster.nodes.iter().map(|n| n.mpu.local.get(&storage_key).unwrap()).collect()
}

/// Waits until every replica holds the upload finished.
async fn wait_finished_everywhere(cluster: &TestCluster, key: &str, id: &str) {
    wait_until("every replica holds the upload finished", 10_000, || {
        upload_on_replicas(cluster, key, id)
            .iter()
            .all(|u| u.as_ref().is_some_and(|u| u.finished.get()))
    })
    .await;
}

/// Every call naming a forgotten upload answers as for a finished one, and stores nothing.
async fn assert_no_such_upload(cluster: &TestCluster, s: &[ObjectStore], key: &str, id: &str) {
    let blocks = blocks_on_each_node(cluster);
    let late = s[0].upload_part("b", key, id, 7, body(PART_BYTES, 42), "late".into()).await;
    assert_eq!(late, Err(ObjectError::NoSuchUpload), "a late part of {key}");
    assert_eq!(blocks_on_each_node(cluster), blocks, "a refused part stores no block");
    let list = chosen(&[(1, "e1")]);
    let complete = s[1].complete_multipart_upload("b", key, id, &list, "f".into()).await;
    assert_eq!(complete.map(|_| ()), Err(ObjectError::NoSuchUpload), "a late completion");
    assert_eq!(s[2].list_parts("b", key, id).await, Err(ObjectError::NoSuchUpload));
    assert_eq!(s[2].abort_multipart_upload("b", key, id).await, Err(ObjectError::NoSuchUpload));
    assert!(upload_on_replicas(cluster, key, id).iter().all(Option::is_none), "{key} came back");
}

#[tokio::test(start_paused = true)]
async fn finished_uploads_leave_every_replica_after_the_delay_and_stay_gone() {
    let (cluster, s) = object_stores().await;
    s[0].create_bucket("b").await.unwrap();
    let (p1, p2) = (body(PART_BYTES, 1), body(10, 2));
    let done = s[0].create_multipart_upload("b", "done", upload_meta()).await.unwrap();
    s[1].upload_part("b", "done", &done, 1, p1.clone(), "e1".into()).await.unwrap();
    s[2].upload_part("b", "done", &done, 2, p2.clone(), "e2".into()).await.unwrap();
    let list = chosen(&[(1, "e1"), (2, "e2")]);
    s[0].complete_multipart_upload("b", "done", &done, &list, "f".into()).await.unwrap();
    let dropped = s[1].create_multipart_upload("b", "dropped", UploadMeta::default()).await;
    let dropped = dropped.unwrap();
    s[2].upload_part("b", "dropped", &dropped, 1, body(PART_BYTES, 3), "e1".into()).await.unwrap();
    s[0].abort_multipart_upload("b", "dropped", &dropped).await.unwrap();
    let open = s[2].create_multipart_upload("b", "open", UploadMeta::default()).await.unwrap();
    s[0].upload_part("b", "open", &open, 1, body(10, 4), "e1".into()).await.unwrap();
    wait_finished_everywhere(&cluster, "done", &done).await;
    wait_finished_everywhere(&cluster, "dropped", &dropped).await;

    // Before the delay has passed since the finish: kept (the clocks read 1000 ms).
    for node in &cluster.nodes {
        TombstoneGc::new(node.clone(), 1, 24 * 3_600_000).step().await;
    }
    let finished_ms = |key: &str, id: &str| {
        let entry = upload_on_replicas(&cluster, key, id)[0].clone().unwrap();
        entry.tombstone_since_ms().expect("a finished upload is a tombstone")
    };
    let at = finished_ms("done", &done).max(finished_ms("dropped", &dropped));
    assert!(upload_on_replicas(&cluster, "done", &done).iter().all(Option::is_some));
    collect_tombstones_before(&cluster, finished_ms("done", &done)).await;
    assert!(upload_on_replicas(&cluster, "done", &done).iter().all(Option::is_some));

    // Once older than the delay (every replica holds them): gone from every replica.
    assert!(collect_tombstones_before(&cluster, at + 1).await >= 2);
    assert_no_such_upload(&cluster, &s, "done", &done).await;
    assert_no_such_upload(&cluster, &s, "dropped", &dropped).await;
    let listed = s[1].list_multipart_uploads("b", "", 100).await.unwrap();
    assert_eq!(listed.iter().map(|u| u.upload_id.as_str()).collect::<Vec<_>>(), [open.as_str()]);
    assert_eq!(s[1].list_parts("b", "open", &open).await.unwrap().len(), 1, "the open one stays");

    // The completed object stays readable; every other block is collected.
    let_gc_run().await;
    let per_part = PART_BYTES / BLOCK_SIZE_BYTES_DEFAULT;
    assert_eq!(
        blocks_on_each_node(&cluster),
        vec![per_part + 1 + 1; 3],
        "done's body, open's part"
    );
    assert!(s[2].get_object("b", "done").await.unwrap().data == [p1, p2].concat());
    // Anti-entropy rounds later, nothing came back.
    for key_id in [("done", &done), ("dropped", &dropped)] {
        assert!(upload_on_replicas(&cluster, key_id.0, key_id.1).iter().all(Option::is_none));
    }
}

/// Upload `k` of bucket `b` with one part on every replica, then aborted while n3 is down
/// (n3 still holds it open, with its part).
async fn aborted_while_n3_is_away() -> (TestCluster, Vec<ObjectStore>, String) {
    let (cluster, s) = object_stores().await;
    s[0].create_bucket("b").await.unwrap();
    let id = s[0].create_multipart_upload("b", "k", UploadMeta::default()).await.unwrap();
    s[1].upload_part("b", "k", &id, 1, body(10, 1), "e1".into()).await.unwrap();
    wait_until("every replica holds the part", 10_000, || {
        upload_on_replicas(&cluster, "k", &id)
            .iter()
            .all(|u| u.as_ref().is_some_and(|u| u.parts.len() == 1))
    })
    .await;
    cluster.set_down(3, true);
    s[0].abort_multipart_upload("b", "k", &id).await.unwrap();
    (cluster, s, id)
}

/// The rule collection rests on, for uploads: n3 is away while the upload is aborted and
/// still holds it open, with its part. Collecting then would let anti-entropy bring the
/// upload back from n3 (shown with the weakened collector at the end).
#[tokio::test(start_paused = true)]
async fn a_finished_upload_is_kept_while_a_replica_is_unreachable() {
    let (cluster, s, id) = aborted_while_n3_is_away().await;
    collect_tombstones_before(&cluster, u64::MAX).await;
    let held = upload_on_replicas(&cluster, "k", &id);
    assert!(held[..2].iter().all(|u| u.as_ref().is_some_and(|u| u.finished.get())), "{held:?}");
    assert!(held[2].as_ref().is_some_and(|u| !u.finished.get()), "n3 missed the abort");

    cluster.set_down(3, false);
    wait_until("the others are reachable again", 10_000, || true).await;
    for _ in 0..50 {
        collect_tombstones_before(&cluster, u64::MAX).await;
        if upload_on_replicas(&cluster, "k", &id).iter().all(Option::is_none) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_no_such_upload(&cluster, &s, "k", &id).await;
    tokio::time::sleep(std::time::Duration::from_millis(10 * SYNC_INTERVAL_MS)).await;
    assert!(upload_on_replicas(&cluster, "k", &id).iter().all(Option::is_none));
    assert!(s[2].list_multipart_uploads("b", "", 10).await.unwrap().is_empty());
}

/// The same story with the collector weakened to skip unreachable replicas: the upload
/// comes back, listed and open — what the test above guards against.
#[tokio::test(start_paused = true)]
async fn the_weakened_collector_lets_an_aborted_upload_come_back() {
    let (cluster, s, id) = aborted_while_n3_is_away().await;
    let config = GcConfig { tombstone_unsafe_skip_unreachable: true, ..GcConfig::default() };
    for node in &cluster.nodes[..2] {
        TombstoneGc::from_config(node.clone(), &config).collect_older_than(u64::MAX).await;
    }
    cluster.set_down(3, false);
    wait_until("anti-entropy brings the open upload back", 30_000, || {
        upload_on_replicas(&cluster, "k", &id)
            .iter()
            .all(|u| u.as_ref().is_some_and(|u| !u.finished.get()))
    })
    .await;
    let listed = s[0].list_multipart_uploads("b", "", 10).await.unwrap();
    assert_eq!(listed.len(), 1, "the aborted upload is listed again");
}

#[tokio::test(start_paused = true)]
async fn uploads_the_collector_aborts_are_finished_and_collected_with_or_without_parts() {
    let (cluster, s) = object_stores().await;
    s[0].create_bucket("b").await.unwrap();
    let id = s[0].create_multipart_upload("b", "k", UploadMeta::default()).await.unwrap();
    s[1].upload_part("b", "k", &id, 1, body(PART_BYTES, 1), "e1".into()).await.unwrap();
    // An upload that never got a part has no block to be found by.
    let empty = s[2].create_multipart_upload("b", "empty", UploadMeta::default()).await.unwrap();
    // Every upload is past a timeout of 0.
    let config = GcConfig { upload_timeout_ms: 0, ..GcConfig::default() };
    let mut aborted = 0;
    for node in &cluster.nodes {
        aborted += BlockGc::new(node.clone(), config).step().await.uploads_aborted;
    }
    assert!(aborted >= 2, "the collector aborted both uploads");
    assert!(s[2].list_multipart_uploads("b", "", 10).await.unwrap().is_empty());
    wait_finished_everywhere(&cluster, "k", &id).await;
    wait_finished_everywhere(&cluster, "empty", &empty).await;
    assert!(collect_tombstones_before(&cluster, u64::MAX).await >= 2);
    assert_no_such_upload(&cluster, &s, "k", &id).await;
    assert_no_such_upload(&cluster, &s, "empty", &empty).await;
    let_gc_run().await;
    assert_eq!(blocks_on_each_node(&cluster), vec![0; 3], "the part's blocks are collected");
    // Their versions were aborted: neither key ever shows an object.
    for key in ["k", "empty"] {
        assert_eq!(s[0].get_object("b", key).await.map(|_| ()), Err(ObjectError::NoSuchKey));
    }
}

/// A part that was streaming while its upload finished, or finished and was collected, is
/// refused when it comes to be recorded: it must not give the upload back a part, nor
/// recreate a collected entry as an open upload.
#[tokio::test(start_paused = true)]
async fn a_part_recorded_after_its_upload_finished_is_refused() {
    let (cluster, s) = object_stores().await;
    s[0].create_bucket("b").await.unwrap();
    let id = s[0].create_multipart_upload("b", "k", UploadMeta::default()).await.unwrap();
    // What UploadPart read before streaming the body.
    let (version, snapshot) = s[1].open_upload("b", "k", &id).await.unwrap();
    let part = || PartRecord { etag: "late".into(), size_bytes: 0, blocks: Vec::new() };
    s[2].abort_multipart_upload("b", "k", &id).await.unwrap();
    let late = s[1].record_part(("b", "k", version), &snapshot, 1, part()).await;
    assert_eq!(late, Err(ObjectError::NoSuchUpload));
    wait_finished_everywhere(&cluster, "k", &id).await;
    assert!(collect_tombstones_before(&cluster, u64::MAX).await >= 1);
    let later = s[1].record_part(("b", "k", version), &snapshot, 1, part()).await;
    assert_eq!(later, Err(ObjectError::NoSuchUpload));
    assert!(upload_on_replicas(&cluster, "k", &id).iter().all(Option::is_none), "recreated");
    assert!(s[0].list_multipart_uploads("b", "", 10).await.unwrap().is_empty());
}
