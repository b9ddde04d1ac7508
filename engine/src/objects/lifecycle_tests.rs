//! The lifecycle worker against a three-node test cluster, with a clock the test moves by
//! whole days: nothing sleeps, and an off-by-one in "days after the write" shows up as an
//! object expired a day early (or late).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::*;
use crate::node_tests::{meta, object_stores};
use crate::objects::Versioning;
use crate::objects::multipart::UploadMeta;
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
