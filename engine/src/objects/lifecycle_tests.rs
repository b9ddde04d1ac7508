//! The lifecycle worker against a three-node test cluster, with a clock the test moves by
//! whole days: nothing sleeps, and an off-by-one in "days after the write" shows up as an
//! object expired a day early (or late).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::*;
use crate::node_tests::{meta, object_stores};
use crate::objects::Versioning;
use crate::objects::multipart::UploadMeta;
use crate::objects::version::VersionId;
use crate::testkit::ManualClock;

/// The test kit's nodes start their clocks at 1 000 ms and never move them: every object
/// below is written "at" 1 000 ms.
const WRITTEN_MS: u64 = 1_000;

fn rule(prefix: &str, expiration: Option<Expiration>, abort_days: Option<u32>) -> LifecycleRule {
    LifecycleRule {
        enabled: true,
        prefix: prefix.into(),
        expiration,
        abort_incomplete_upload_days: abort_days,
        ..LifecycleRule::default()
    }
}

/// One worker per node, all reading `clock`.
fn workers(stores: Vec<ObjectStore>, clock: &Arc<ManualClock>) -> Vec<LifecycleWorker> {
    let stores = stores.into_iter().map(Arc::new);
    stores.map(|s| LifecycleWorker::new(s, DAY_MS).with_clock(clock.clone())).collect()
}

/// Runs one pass on every node; returns the reports summed.
async fn pass(workers: &[LifecycleWorker]) -> LifecycleReport {
    let mut total = LifecycleReport::default();
    for w in workers {
        let r = w.step().await;
        total.buckets += r.buckets;
        total.objects_expired += r.objects_expired;
        total.uploads_aborted += r.uploads_aborted;
        total.noncurrent_versions_expired += r.noncurrent_versions_expired;
        total.delete_markers_removed += r.delete_markers_removed;
        total.errors += r.errors;
    }
    total
}

async fn keys(store: &ObjectStore, bucket: &str) -> Vec<String> {
    let listed = store.list_objects(bucket, "", "", 100).await.unwrap();
    listed.into_iter().map(|o| o.key).collect()
}

#[tokio::test(start_paused = true)]
async fn objects_expire_on_their_day_under_their_prefix_and_by_one_node() {
    let (_cluster, s) = object_stores().await;
    s[0].create_bucket("bk").await.unwrap();
    for key in ["logs/a", "logs/b", "keep/c"] {
        s[0].put_object("bk", key, meta("text/plain", key), vec![1; 10]).await.unwrap();
    }
    let expire = rule("logs/", Some(Expiration::Days(3)), None);
    s[1].set_bucket_lifecycle("bk", Some(vec![expire])).await.unwrap();
    let clock = Arc::new(ManualClock(AtomicU64::new(WRITTEN_MS + 3 * DAY_MS - 1)));
    let store = Arc::new(ObjectStore::new(s[2].node.clone()));
    let w = workers(s, &clock);
    let report = pass(&w).await;
    assert_eq!(report.buckets, 1, "exactly one node (the first replica) takes the bucket");
    assert_eq!(report.objects_expired, 0, "a millisecond before the third day: kept");
    clock.0.fetch_add(1, Ordering::Relaxed);
    let report = pass(&w).await;
    assert_eq!((report.objects_expired, report.errors), (2, 0));
    assert_eq!(keys(&store, "bk").await, ["keep/c"]);
    // A second pass finds nothing more to do.
    assert_eq!(pass(&w).await.objects_expired, 0);
}

/// As in S3: in a versioned bucket expiration adds a delete marker, and the expired
/// version stays, readable by id.
#[tokio::test(start_paused = true)]
async fn a_versioned_object_expires_to_a_delete_marker_and_keeps_its_history() {
    let (_cluster, s) = object_stores().await;
    s[0].create_bucket("bk").await.unwrap();
    s[0].set_versioning("bk", Versioning::Enabled).await.unwrap();
    let put = s[0].put_object("bk", "k", meta("text/plain", "k"), vec![2; 10]).await.unwrap();
    let at = WRITTEN_MS + DAY_MS;
    s[0].set_bucket_lifecycle("bk", Some(vec![rule("", Some(Expiration::AtMs(at)), None)]))
        .await
        .unwrap();
    let clock = Arc::new(ManualClock(AtomicU64::new(at)));
    let store = Arc::new(ObjectStore::new(s[0].node.clone()));
    let w = workers(s, &clock);
    assert_eq!(pass(&w).await.objects_expired, 1);
    assert_eq!(store.head_object("bk", "k").await.unwrap_err(), ObjectError::NoSuchKey);
    let versions = store.list_object_versions("bk", "", "", 10).await.unwrap();
    assert_eq!(versions.len(), 2, "{versions:?}");
    assert!(versions[0].is_latest && versions[0].object.is_none(), "a marker on top");
    assert_eq!(versions[1].version_id, put.version_id);
    let old = store.get_object_version("bk", "k", Some(&put.version_id.to_hex())).await;
    assert_eq!(old.unwrap().data, vec![2; 10]);
}

#[tokio::test(start_paused = true)]
async fn old_incomplete_uploads_are_aborted_and_disabled_rules_do_nothing() {
    let (_cluster, s) = object_stores().await;
    s[0].create_bucket("bk").await.unwrap();
    let upload_meta = || UploadMeta { content_type: "x".into(), user_metadata: Default::default() };
    let upload = s[0].create_multipart_upload("bk", "big", upload_meta()).await.unwrap();
    s[0].put_object("bk", "k", meta("text/plain", "k"), vec![3; 10]).await.unwrap();
    let disabled = LifecycleRule { enabled: false, ..rule("", Some(Expiration::Days(1)), None) };
    let abort = rule("", None, Some(2));
    s[0].set_bucket_lifecycle("bk", Some(vec![disabled, abort])).await.unwrap();
    let clock = Arc::new(ManualClock(AtomicU64::new(WRITTEN_MS + 10 * DAY_MS)));
    let store = Arc::new(ObjectStore::new(s[0].node.clone()));
    let w = workers(s, &clock);
    let report = pass(&w).await;
    assert_eq!((report.uploads_aborted, report.objects_expired), (1, 0));
    assert!(store.list_multipart_uploads("bk", "", 10).await.unwrap().is_empty());
    let parts = store.list_parts("bk", "big", &upload).await;
    assert_eq!(parts.unwrap_err(), ObjectError::NoSuchUpload);
    assert_eq!(keys(&store, "bk").await, ["k"], "the disabled rule expired nothing");
}

#[test]
fn size_filters_are_strict_bounds() {
    let r = LifecycleRule {
        size_greater_than_bytes: Some(10),
        size_less_than_bytes: Some(20),
        ..rule("p/", None, None)
    };
    assert!(!r.selects("p/a", 10) && r.selects("p/a", 11) && r.selects("p/a", 19));
    assert!(!r.selects("p/a", 20) && !r.selects("q/a", 15));
    assert!(is_expired(Expiration::Days(0), 5, 5));
    assert!(!is_expired(Expiration::AtMs(10), 0, 9));
}

// ---- noncurrent versions and expired delete markers ----

fn noncurrent_rule(days: u32, newer: Option<u32>, markers: bool) -> LifecycleRule {
    LifecycleRule {
        noncurrent_days: Some(days),
        newer_noncurrent_versions: newer,
        expired_object_delete_marker: markers,
        ..rule("", None, None)
    }
}

async fn version_ids(store: &ObjectStore, key: &str) -> Vec<VersionId> {
    let listed = store.list_object_versions("bk", key, "", 10).await.unwrap();
    listed.into_iter().filter(|v| v.key == key).map(|v| v.version_id).collect()
}

/// Why: S3 counts a version's noncurrent days from when its successor was written. Counted
/// from the version's own write, every version would go as soon as it is overwritten after
/// living the rule's days. Each version below is stamped a millisecond after the previous
/// (the test nodes' clocks stand still), so a count from the wrong instant removes a
/// version one millisecond early and the test fails.
#[tokio::test(start_paused = true)]
async fn noncurrent_versions_expire_counted_from_their_successor() {
    let (_cluster, s) = object_stores().await;
    s[0].create_bucket("bk").await.unwrap();
    s[0].set_versioning("bk", Versioning::Enabled).await.unwrap();
    let mut written = Vec::new();
    for n in 0..3u8 {
        let put = s[0].put_object("bk", "k", meta("text/plain", "k"), vec![n; 10]).await.unwrap();
        written.push(put.version_id);
    }
    let (v1, v2, v3) = (written[0], written[1], written[2]);
    s[0].set_bucket_lifecycle("bk", Some(vec![noncurrent_rule(2, None, false)])).await.unwrap();
    // v1 became noncurrent when v2 was written (its stamp), v2 when v3 was.
    let clock = Arc::new(ManualClock(AtomicU64::new(v2.timestamp + 2 * DAY_MS - 1)));
    let store = Arc::new(ObjectStore::new(s[0].node.clone()));
    let w = workers(s, &clock);
    let report = pass(&w).await;
    assert_eq!(report.noncurrent_versions_expired, 0, "v1 is noncurrent 1 ms short of 2 days");
    assert_eq!(version_ids(&store, "k").await, [v3, v2, v1]);
    clock.0.store(v2.timestamp + 2 * DAY_MS, Ordering::Relaxed);
    assert_eq!(pass(&w).await.noncurrent_versions_expired, 1);
    assert_eq!(version_ids(&store, "k").await, [v3, v2]);
    clock.0.store(v3.timestamp + 2 * DAY_MS, Ordering::Relaxed);
    assert_eq!(pass(&w).await.noncurrent_versions_expired, 1);
    assert_eq!(version_ids(&store, "k").await, [v3], "the current version is never removed");
    assert_eq!(pass(&w).await, LifecycleReport { buckets: 1, ..Default::default() });
}

#[tokio::test(start_paused = true)]
async fn the_newest_noncurrent_versions_are_kept_and_lone_markers_removed() {
    let (_cluster, s) = object_stores().await;
    s[0].create_bucket("bk").await.unwrap();
    s[0].set_versioning("bk", Versioning::Enabled).await.unwrap();
    let mut written = Vec::new();
    for n in 0..5u8 {
        let put = s[0].put_object("bk", "k", meta("text/plain", "k"), vec![n; 10]).await.unwrap();
        written.push(put.version_id);
    }
    // "gone": an object, then a marker over it; "lone": a marker whose object was removed.
    s[0].put_object("bk", "gone", meta("text/plain", "g"), vec![1]).await.unwrap();
    s[0].delete_object("bk", "gone").await.unwrap();
    let lone = s[0].put_object("bk", "lone", meta("text/plain", "l"), vec![1]).await.unwrap();
    s[0].delete_object("bk", "lone").await.unwrap();
    s[0].delete_object_version("bk", "lone", &lone.version_id.to_hex()).await.unwrap();
    let lone_marker = version_ids(&s[0], "lone").await;
    assert_eq!(lone_marker.len(), 1);
    // Only ExpiredObjectDeleteMarker first: the lone marker goes, the one over an object stays.
    let markers = LifecycleRule { expired_object_delete_marker: true, ..rule("", None, None) };
    s[0].set_bucket_lifecycle("bk", Some(vec![markers])).await.unwrap();
    let clock = Arc::new(ManualClock(AtomicU64::new(WRITTEN_MS)));
    let store = Arc::new(ObjectStore::new(s[0].node.clone()));
    let w = workers(s, &clock);
    let report = pass(&w).await;
    assert_eq!((report.delete_markers_removed, report.noncurrent_versions_expired), (1, 0));
    assert!(version_ids(&store, "lone").await.is_empty());
    assert_eq!(version_ids(&store, "gone").await.len(), 2);
    // Then noncurrent expiration: keeping 2 under k, of its four noncurrent versions the
    // two oldest go; under gone, its object goes, which leaves its marker alone, removed in
    // the same pass.
    let keep_two = LifecycleRule { prefix: "k".into(), ..noncurrent_rule(1, Some(2), false) };
    let gone = LifecycleRule { prefix: "gone".into(), ..noncurrent_rule(1, None, true) };
    store.set_bucket_lifecycle("bk", Some(vec![keep_two, gone])).await.unwrap();
    clock.0.store(WRITTEN_MS + 30 * DAY_MS, Ordering::Relaxed);
    let report = pass(&w).await;
    assert_eq!((report.noncurrent_versions_expired, report.delete_markers_removed), (3, 1));
    let (v3, v4, v5) = (written[2], written[3], written[4]);
    assert_eq!(version_ids(&store, "k").await, [v5, v4, v3]);
    assert!(version_ids(&store, "gone").await.is_empty());
    assert_eq!(pass(&w).await.noncurrent_versions_expired, 0, "nothing more to do");
}
