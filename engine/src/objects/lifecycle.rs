//! Bucket lifecycle: expiring objects and aborting old multipart uploads by the rules a
//! bucket's owner set (`bucket_config::LifecycleRule`, validated by the S3 layer).
//!
//! One worker per node, one pass per `interval_ms` (a day by default). A pass lists the
//! buckets, and for each bucket whose object partition has this node as its *first*
//! replica in the current layout, applies its rules — so each bucket is processed by one
//! node, not by RF of them (a bucket's objects all live in one partition: the object
//! table's partition key is the bucket name). During a layout change two nodes may both
//! believe they are first for a pass; every step below is safe to repeat.
//!
//! What a rule does, as S3 does:
//! - `Expiration` (Days after the write, or from a Date on) deletes the key's current
//!   version the way DeleteObject without a version id does: a delete marker, kept as
//!   history in a versioned bucket (so older versions stay recoverable), replacing the
//!   object otherwise. Keys whose current version is already a marker are not listed, so a
//!   second pass adds nothing. (S3 rounds "days" up to the next midnight UTC; Hangar counts
//!   whole days from the write.)
//! - `AbortIncompleteMultipartUpload` aborts uploads started more than that many days ago.
//! - `NoncurrentVersionExpiration` removes a noncurrent version (by id, for good) once it
//!   has been noncurrent for `NoncurrentDays` — counted from when its successor was written,
//!   not from its own write — keeping the newest `NewerNoncurrentVersions` noncurrent ones
//!   whatever their age. `Expiration/ExpiredObjectDeleteMarker` removes a delete marker
//!   that is the key's current and only version (`expire_versions` below).
//!
//! Why a conditional delete: a client may write the key between the listing and the
//! delete; the worker deletes only if the current version is still the one it judged
//! expired (`ObjectStore::expire_object`). In `consistent` mode that condition is judged
//! inside the key's consensus, at the delete's place in the order of the key's writes, so
//! a write that lands first is never deleted. (In `degraded` and `dangerous` modes it is a
//! re-read, then the delete: a write landing in between still loses to the marker.)
//!
//! Time comes from the seam's clock only (the worker's `clock`, the node's by default), so
//! the simulation and tests control it.

use std::sync::Arc;
use std::time::Duration;

use super::bucket_config::{Expiration, LifecycleRule};
use super::version::VersionId;
use super::{ObjectError, ObjectStore, VersionListing};
use crate::seam::Clock;
use crate::table::entry_key;
use crate::table::schema::partition_of_key;

pub const DAY_MS: u64 = 24 * 3_600_000;
/// The first pass after a start waits this long (or `interval_ms` if shorter): long enough
/// for the node to learn its layout and finish its first sync.
pub const FIRST_PASS_DELAY_MS: u64 = 5 * 60_000;
/// Objects (and uploads) read per listing call.
const PAGE: usize = 1000;

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LifecycleReport {
    /// Buckets with rules that this node processed.
    pub buckets: usize,
    pub objects_expired: usize,
    pub uploads_aborted: usize,
    /// Noncurrent versions removed (`NoncurrentVersionExpiration`).
    pub noncurrent_versions_expired: usize,
    /// Lone delete markers removed (`ExpiredObjectDeleteMarker`).
    pub delete_markers_removed: usize,
    /// Buckets whose pass stopped on an error (retried at the next pass).
    pub errors: usize,
}

pub struct LifecycleWorker {
    store: Arc<ObjectStore>,
    clock: Arc<dyn Clock>,
    interval_ms: u64,
}

impl LifecycleWorker {
    pub fn new(store: Arc<ObjectStore>, interval_ms: u64) -> Self {
        let clock = store.node.seam.clock.clone();
        LifecycleWorker { store, clock, interval_ms }
    }

    /// Reads time from `clock` instead of the node's (tests advance it by days).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Runs passes forever: the first `FIRST_PASS_DELAY_MS` after start (a node restarted
    /// more often than `interval_ms` must still get to run), then `interval_ms` apart.
    pub async fn run(self) {
        let mut delay_ms = self.interval_ms.min(FIRST_PASS_DELAY_MS);
        loop {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            delay_ms = self.interval_ms;
            let report = self.step().await;
            if report != LifecycleReport::default() {
                self.store.node.seam.trace.event("lifecycle", format!("{report:?}").as_bytes());
            }
        }
    }

    /// One pass over the buckets this node is the first replica of.
    pub async fn step(&self) -> LifecycleReport {
        let mut report = LifecycleReport::default();
        let now_ms = self.clock.now_ms();
        let Ok(buckets) = self.store.list_buckets().await else {
            report.errors += 1;
            return report;
        };
        for bucket in buckets.iter().filter(|b| self.is_first_replica(&b.name)) {
            let rules = match self.store.bucket_lifecycle(&bucket.name).await {
                Ok(Some(rules)) if rules.iter().any(|r| r.enabled) => rules,
                Ok(_) | Err(ObjectError::NoSuchBucket) => continue,
                Err(_) => {
                    report.errors += 1;
                    continue;
                }
            };
            report.buckets += 1;
            if apply_rules(&self.store, &bucket.name, &rules, now_ms, &mut report).await.is_err() {
                report.errors += 1;
            }
        }
        report
    }

    /// Whether this node is the first replica of `bucket`'s object partition.
    fn is_first_replica(&self, bucket: &str) -> bool {
        let node = &self.store.node;
        let Some(layout) = node.current_layout() else { return false };
        let partition = partition_of_key(&entry_key(bucket.as_bytes(), b""));
        layout.nodes_of(partition).first() == Some(&node.id)
    }
}

/// Applies `rules` to `bucket` as of `now_ms`.
pub async fn apply_rules(
    store: &ObjectStore,
    bucket: &str,
    rules: &[LifecycleRule],
    now_ms: u64,
    report: &mut LifecycleReport,
) -> Result<(), ObjectError> {
    for rule in rules.iter().filter(|r| r.enabled) {
        if let Some(expiration) = rule.expiration {
            report.objects_expired += expire(store, bucket, rule, expiration, now_ms).await?;
        }
        if let Some(days) = rule.abort_incomplete_upload_days {
            report.uploads_aborted += abort_old_uploads(store, bucket, rule, days, now_ms).await?;
        }
        if rule.noncurrent_days.is_some() || rule.expired_object_delete_marker {
            let (versions, markers) = expire_versions(store, bucket, rule, now_ms).await?;
            report.noncurrent_versions_expired += versions;
            report.delete_markers_removed += markers;
        }
    }
    Ok(())
}

/// Whether an object written at `written_ms` is expired at `now_ms`.
pub fn is_expired(expiration: Expiration, written_ms: u64, now_ms: u64) -> bool {
    match expiration {
        Expiration::Days(days) => now_ms >= written_ms.saturating_add(u64::from(days) * DAY_MS),
        Expiration::AtMs(at_ms) => now_ms >= at_ms,
    }
}

async fn expire(
    store: &ObjectStore,
    bucket: &str,
    rule: &LifecycleRule,
    expiration: Expiration,
    now_ms: u64,
) -> Result<usize, ObjectError> {
    let mut expired = 0;
    let mut after = String::new();
    loop {
        let page = store.list_objects(bucket, &rule.prefix, &after, PAGE).await?;
        for object in &page {
            if !rule.selects(&object.key, object.size_bytes)
                || !is_expired(expiration, object.last_modified_ms, now_ms)
            {
                continue;
            }
            // Only if the version judged expired is still the current one (module doc).
            if store.expire_object(bucket, &object.key, object.version_id).await? {
                expired += 1;
            }
        }
        match page.last() {
            Some(last) if page.len() == PAGE => after = last.key.clone(),
            _ => return Ok(expired),
        }
    }
}

async fn abort_old_uploads(
    store: &ObjectStore,
    bucket: &str,
    rule: &LifecycleRule,
    days: u32,
    now_ms: u64,
) -> Result<usize, ObjectError> {
    let mut aborted = 0;
    loop {
        // Aborted uploads leave the listing, so each round sees the next ones.
        let page = store.list_multipart_uploads(bucket, &rule.prefix, PAGE).await?;
        let old = page.iter().filter(|u| {
            u.key.starts_with(&rule.prefix)
                && is_expired(Expiration::Days(days), u.initiated_ms, now_ms)
        });
        let mut this_round = 0;
        for upload in old {
            match store.abort_multipart_upload(bucket, &upload.key, &upload.upload_id).await {
                Ok(()) => this_round += 1,
                Err(ObjectError::NoSuchUpload) => {} // completed meanwhile
                Err(e) => return Err(e),
            }
        }
        aborted += this_round;
        if page.len() < PAGE || this_round == 0 {
            return Ok(aborted);
        }
    }
}

// ---- noncurrent versions and expired delete markers ----

/// Applies a rule's `NoncurrentVersionExpiration` and `ExpiredObjectDeleteMarker` to the
/// keys under its prefix; returns (versions removed, markers removed). Removal goes through
/// `delete_object_version`, which only ever removes the version named: a noncurrent
/// version stays noncurrent whatever is written meanwhile, so repeating a pass, or a write
/// landing between the listing and the removal, never removes a current version.
async fn expire_versions(
    store: &ObjectStore,
    bucket: &str,
    rule: &LifecycleRule,
    now_ms: u64,
) -> Result<(usize, usize), ObjectError> {
    let (mut versions_removed, mut markers_removed) = (0, 0);
    let mut after = String::new();
    loop {
        let page = store.list_object_versions(bucket, &rule.prefix, &after, PAGE).await?;
        let keys = versions_by_key(&page);
        for versions in &keys {
            let key = &versions[0].key;
            let doomed = doomed_noncurrent(rule, versions, now_ms);
            for id in &doomed {
                store.delete_object_version(bucket, key, &id.to_hex()).await?;
                versions_removed += 1;
            }
            if rule.expired_object_delete_marker && is_lone_marker(rule, versions, &doomed) {
                store.delete_object_version(bucket, key, &versions[0].version_id.to_hex()).await?;
                markers_removed += 1;
            }
        }
        match keys.last() {
            Some(last) if keys.len() == PAGE => after = last[0].key.clone(),
            _ => return Ok((versions_removed, markers_removed)),
        }
    }
}

/// A version listing (newest first within a key) cut into one slice per key.
fn versions_by_key(page: &[VersionListing]) -> Vec<&[VersionListing]> {
    page.chunk_by(|a, b| a.key == b.key).collect()
}

/// Whether a rule covers a version: an object by the rule's prefix and sizes; a delete
/// marker (no size) by its prefix, and only if the rule has no size filter.
fn covers(rule: &LifecycleRule, v: &VersionListing) -> bool {
    match &v.object {
        Some(object) => rule.selects(&v.key, object.size_bytes),
        None => {
            rule.enabled
                && v.key.starts_with(&rule.prefix)
                && rule.size_greater_than_bytes.is_none()
                && rule.size_less_than_bytes.is_none()
        }
    }
}

/// The noncurrent versions of one key (`versions` newest first) that `rule` removes at
/// `now_ms`. Version i became noncurrent when version i-1 was written: that version's
/// `last_modified_ms`, never earlier than its version stamp (S3 counts noncurrent days from
/// the successor's creation, not from the version's own). The newest
/// `newer_noncurrent_versions` noncurrent versions are kept whatever their age.
pub fn doomed_noncurrent(
    rule: &LifecycleRule,
    versions: &[VersionListing],
    now_ms: u64,
) -> Vec<VersionId> {
    let Some(days) = rule.noncurrent_days else { return Vec::new() };
    let keep = rule.newer_noncurrent_versions.unwrap_or(0) as usize;
    // No current version listed (a suspended bucket's hidden marker): when the newest
    // listed one became noncurrent is unknown, so nothing is judged.
    let Some(current) = versions.iter().position(|v| v.is_latest) else { return Vec::new() };
    let noncurrent = versions.windows(2).enumerate().skip(current);
    let mut doomed = Vec::new();
    for (rank, (_, pair)) in noncurrent.enumerate() {
        let (successor, version) = (&pair[0], &pair[1]);
        let since_ms = successor.last_modified_ms.max(successor.version_id.timestamp);
        if rank >= keep
            && covers(rule, version)
            && is_expired(Expiration::Days(days), since_ms, now_ms)
        {
            doomed.push(version.version_id);
        }
    }
    doomed
}

/// Whether the key's current version is a delete marker the rule covers and every other
/// version is gone or about to be (`doomed`): S3's "expired object delete marker".
fn is_lone_marker(rule: &LifecycleRule, versions: &[VersionListing], doomed: &[VersionId]) -> bool {
    let Some(top) = versions.first() else { return false };
    top.is_latest
        && top.object.is_none()
        && covers(rule, top)
        && versions[1..].iter().all(|v| doomed.contains(&v.version_id))
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;
