//! Bucket quotas (total size, object count) and the usage counters that enforce them.
//!
//! Table `bucket_usage`, partition key = bucket name, so one range read fetches everything a
//! write needs to know: sort key `quotas` holds the bucket's `Quotas`, and `tally/<node id>`
//! one node's running sum of the usage changes it caused (`Tally`, may be negative). The
//! bucket's usage is the sum of the tallies. Only node N writes `tally/N`, stamped with N's
//! own increasing stamps, so the LWW entry is always N's latest sum.
//!
//! What is counted: every complete object version stored (old versions of a versioned bucket
//! count, delete markers do not), with its size. A version change (`write_version`) to
//! `Complete` or `Deleted` in a bucket with quotas reads the key's entry first; the change's
//! effect is the usage of (entry merged with the new version, pruning included) minus the
//! usage of the entry. A write whose effect would take a quota over its limit is refused
//! (`QuotaExceeded`) before anything is written; one that lowers usage always passes.
//!
//! Why counting only buckets with quotas: the entry read costs a quorum read per write,
//! which buckets without quotas do not pay. Setting quotas recounts the bucket (a scan, an
//! operator action) and makes this node's tally the difference, so counts start right.
//!
//! The approximation, stated: quotas are soft. Each node checks against the other nodes'
//! tallies as read at most `LIMITS_CACHE_TTL_MS` ago plus its own live tally, so writes
//! through several nodes at once can overshoot by what they write in that time; two
//! concurrent writes of one key can each count the version they both replace; a crash
//! between a version write and its tally write loses that change's count. `set_quotas`
//! again (same limits) recounts.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::version::{ObjectEntry, Version, VersionData, VersionId, VersionState};
use super::{ObjectError, ObjectStore};
use crate::crdt::{Crdt, Lww};
use crate::table::{TableSchema, entry_key};
use crate::ttl_cache::TtlCache;

pub struct UsageSchema;
impl TableSchema for UsageSchema {
    const NAME: &'static str = "bucket_usage";
    type Entry = Lww<Option<UsageRecord>>;
}

/// Sort key of a bucket's quotas.
const QUOTAS_SORT_KEY: &[u8] = b"quotas";
/// Sort keys of the per-node tallies start with this.
const TALLY_PREFIX: &str = "tally/";
/// Rows read per bucket at most: the quotas and one tally per node that ever wrote.
const ROWS_PER_BUCKET_MAX: usize = 4096;
/// How long a node reuses a bucket's quotas and the other nodes' tallies: the bound on how
/// late a quota set through another node applies here, and on how stale the other nodes'
/// usage is when a write is checked.
pub const LIMITS_CACHE_TTL_MS: u64 = 2_000;
/// Buckets whose limits one node remembers at most.
const LIMITS_CACHE_ENTRIES_MAX: usize = 4096;

/// One row. Append new variants at the end only (persisted by index).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum UsageRecord {
    Tally(Tally),
    Quotas(Quotas),
}

/// Objects and bytes: a usage, or a change of usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Tally {
    pub objects: i64,
    pub bytes: i64,
}

impl Tally {
    fn plus(self, other: Tally) -> Tally {
        Tally { objects: self.objects + other.objects, bytes: self.bytes + other.bytes }
    }

    fn minus(self, other: Tally) -> Tally {
        Tally { objects: self.objects - other.objects, bytes: self.bytes - other.bytes }
    }

    /// Complete object versions in `entry`, and their bytes.
    fn of(entry: &ObjectEntry) -> Tally {
        let mut tally = Tally::default();
        for version in entry.versions.values() {
            if let VersionState::Complete(VersionData::Object(stored)) = &version.state {
                tally.objects += 1;
                tally.bytes += stored.size_bytes as i64;
            }
        }
        tally
    }
}

/// A bucket's limits; `None` = no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Quotas {
    pub max_size_bytes: Option<u64>,
    pub max_objects: Option<u64>,
}

impl Quotas {
    pub fn is_none(&self) -> bool {
        self.max_size_bytes.is_none() && self.max_objects.is_none()
    }

    /// Refuses a change `delta` to `usage` that raises a measure above its limit.
    fn check(&self, usage: Tally, delta: Tally) -> Result<(), ObjectError> {
        let over = |limit: Option<u64>, now: i64, change: i64| {
            limit.filter(|&max| change > 0 && now + change > max as i64)
        };
        if let Some(limit) = over(self.max_size_bytes, usage.bytes, delta.bytes) {
            let (usage, adding) = (usage.bytes.max(0) as u64, delta.bytes as u64);
            return Err(ObjectError::QuotaExceeded { quota: Quota::Size, limit, usage, adding });
        }
        if let Some(limit) = over(self.max_objects, usage.objects, delta.objects) {
            let (usage, adding) = (usage.objects.max(0) as u64, delta.objects as u64);
            return Err(ObjectError::QuotaExceeded { quota: Quota::Objects, limit, usage, adding });
        }
        Ok(())
    }
}

/// Which quota a write would exceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    Size,
    Objects,
}

/// What a bucket's writes are checked against (cached for `LIMITS_CACHE_TTL_MS`).
#[derive(Debug, Clone, Copy)]
struct Limits {
    quotas: Quotas,
    /// The sum of the other nodes' tallies.
    others: Tally,
}

/// A node's view of bucket usage, kept in its `ObjectStore`.
pub(super) struct UsageBook {
    limits: TtlCache<String, Option<Limits>>,
    /// This node's tallies (its row's value), read from its row on first use per bucket.
    own: Mutex<BTreeMap<String, Tally>>,
}

impl Default for UsageBook {
    fn default() -> Self {
        let ttl = Duration::from_millis(LIMITS_CACHE_TTL_MS);
        UsageBook { limits: TtlCache::new(ttl, LIMITS_CACHE_ENTRIES_MAX), own: Mutex::default() }
    }
}

/// A bucket's quotas and its usage as the counters say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketUsage {
    pub quotas: Quotas,
    pub objects: i64,
    pub size_bytes: i64,
}

impl ObjectStore {
    fn tally_sort_key(&self) -> Vec<u8> {
        format!("{TALLY_PREFIX}{:016x}", self.node.id.0).into_bytes()
    }

    /// The quotas and every node's tally of `bucket`, from a read quorum.
    async fn read_usage_rows(
        &self,
        bucket: &str,
    ) -> Result<(Quotas, Vec<(Vec<u8>, Tally)>), ObjectError> {
        let rows = &self.node.bucket_usage;
        let rows = rows.get_range(bucket.as_bytes(), b"", b"", ROWS_PER_BUCKET_MAX).await?;
        let (mut quotas, mut tallies) = (Quotas::default(), Vec::new());
        for (sort_key, entry) in rows {
            match entry.into_value() {
                Some(UsageRecord::Quotas(q)) if sort_key == QUOTAS_SORT_KEY => quotas = q,
                Some(UsageRecord::Tally(t)) => tallies.push((sort_key, t)),
                _ => {}
            }
        }
        Ok((quotas, tallies))
    }

    /// The bucket's limits, `None` without quotas (cached).
    async fn limits(&self, bucket: &str) -> Result<Option<Limits>, ObjectError> {
        if let Some(cached) = self.usage.limits.get(&bucket.to_string()) {
            return Ok(cached);
        }
        let generation = self.usage.limits.generation();
        let (quotas, tallies) = self.read_usage_rows(bucket).await?;
        let mine = self.tally_sort_key();
        let limits = (!quotas.is_none()).then(|| {
            let others = tallies.iter().filter(|(k, _)| *k != mine).map(|(_, t)| *t);
            Limits { quotas, others: others.fold(Tally::default(), Tally::plus) }
        });
        self.usage.limits.put_if_unchanged(bucket.to_string(), limits, generation);
        Ok(limits)
    }

    /// This node's tally of `bucket`, read from its row the first time.
    async fn own_tally(&self, bucket: &str) -> Result<Tally, ObjectError> {
        if let Some(tally) = self.usage.own.lock().unwrap().get(bucket) {
            return Ok(*tally);
        }
        let key = entry_key(bucket.as_bytes(), &self.tally_sort_key());
        let stored = match self.node.bucket_usage.get(&key).await?.and_then(|e| e.into_value()) {
            Some(UsageRecord::Tally(t)) => t,
            _ => Tally::default(),
        };
        Ok(*self.usage.own.lock().unwrap().entry(bucket.to_string()).or_insert(stored))
    }

    /// Adds `delta` to this node's tally of `bucket` and writes the new sum to its row.
    async fn add_to_own_tally(&self, bucket: &str, delta: Tally) -> Result<(), ObjectError> {
        self.own_tally(bucket).await?;
        // Value and stamp taken together: of two racing writes, the later sum wins.
        let entry = {
            let mut own = self.usage.own.lock().unwrap();
            let tally = own.entry(bucket.to_string()).or_default();
            *tally = tally.plus(delta);
            Lww::new(self.node.stamp(), Some(UsageRecord::Tally(*tally)))
        };
        let key = entry_key(bucket.as_bytes(), &self.tally_sort_key());
        Ok(self.node.bucket_usage.insert(key, &entry).await?)
    }

    /// The usage change of writing `version` as `id`: `None` when the bucket has no quotas
    /// or the change cannot alter usage. With `enforce`, a change that would take a quota
    /// over its limit is `QuotaExceeded`.
    async fn usage_change(
        &self,
        bucket: &str,
        key: &str,
        id: VersionId,
        version: &Version,
        enforce: bool,
    ) -> Result<Option<Tally>, ObjectError> {
        if !matches!(version.state, VersionState::Complete(_) | VersionState::Deleted) {
            return Ok(None);
        }
        let Some(limits) = self.limits(bucket).await? else {
            return Ok(None);
        };
        let seen = self.entry(bucket, key).await?.unwrap_or_default();
        let mut after = seen.clone();
        after.merge(&ObjectEntry::with(id, version.clone()));
        let delta = Tally::of(&after).minus(Tally::of(&seen));
        if enforce {
            let usage = limits.others.plus(self.own_tally(bucket).await?);
            limits.quotas.check(usage, delta)?;
        }
        Ok(Some(delta))
    }

    /// `QuotaExceeded` if writing `version` as `id` now would take the bucket over a quota:
    /// for writes decided elsewhere (conditional writes check before their consensus, and
    /// write the decided version with `write_decided_version`).
    pub(super) async fn check_quotas(
        &self,
        bucket: &str,
        key: &str,
        id: VersionId,
        version: &Version,
    ) -> Result<(), ObjectError> {
        self.usage_change(bucket, key, id, version, true).await.map(|_| ())
    }

    /// Writes a version change, refused if it would take the bucket over a quota, and
    /// counts it (see the module doc).
    pub(super) async fn write_counted(
        &self,
        bucket: &str,
        key: &str,
        id: VersionId,
        version: Version,
    ) -> Result<(), ObjectError> {
        let delta = self.usage_change(bucket, key, id, &version, true).await?;
        self.write_and_count(bucket, key, id, version, delta).await
    }

    /// Writes a version a consensus already decided: counted, never refused (refusing it
    /// now would leave a decided write that a later round may still make visible).
    pub(super) async fn write_decided_version(
        &self,
        bucket: &str,
        key: &str,
        id: VersionId,
        version: Version,
    ) -> Result<(), ObjectError> {
        let delta = self.usage_change(bucket, key, id, &version, false).await?;
        self.write_and_count(bucket, key, id, version, delta).await
    }

    async fn write_and_count(
        &self,
        bucket: &str,
        key: &str,
        id: VersionId,
        version: Version,
        delta: Option<Tally>,
    ) -> Result<(), ObjectError> {
        let entry = ObjectEntry::with(id, version);
        let table_key = super::object_ops::object_key(bucket, key);
        self.node.objects.insert(table_key, &entry).await?;
        match delta {
            Some(delta) if delta != Tally::default() => self.add_to_own_tally(bucket, delta).await,
            _ => Ok(()),
        }
    }

    /// The bucket's quotas and counted usage; `None` when it has no quotas (its usage is
    /// not counted: list it to know).
    pub async fn bucket_usage(&self, bucket: &str) -> Result<Option<BucketUsage>, ObjectError> {
        self.head_bucket(bucket).await?;
        let (quotas, tallies) = self.read_usage_rows(bucket).await?;
        if quotas.is_none() {
            return Ok(None);
        }
        let sum = tallies.into_iter().map(|(_, t)| t).fold(Tally::default(), Tally::plus);
        Ok(Some(BucketUsage { quotas, objects: sum.objects, size_bytes: sum.bytes }))
    }

    /// Sets (or, with `Quotas::default()`, removes) the bucket's quotas, and recounts its
    /// usage so the counters start right: this node's tally becomes the scanned usage
    /// minus the other nodes' tallies.
    pub async fn set_bucket_quotas(&self, bucket: &str, quotas: Quotas) -> Result<(), ObjectError> {
        self.head_bucket(bucket).await?;
        let key = entry_key(bucket.as_bytes(), QUOTAS_SORT_KEY);
        let seen = self.node.bucket_usage.get(&key).await?.map_or(0, |e| e.timestamp());
        let record = (!quotas.is_none()).then_some(UsageRecord::Quotas(quotas));
        self.node.bucket_usage.insert(key, &Lww::new(self.node.stamp_after(seen), record)).await?;
        self.usage.limits.invalidate(&bucket.to_string());
        if quotas.is_none() {
            return Ok(());
        }
        let mut scanned = Tally::default();
        self.scan(bucket, "", "", |_, entry| {
            scanned = scanned.plus(Tally::of(&entry));
            true
        })
        .await?;
        let (_, tallies) = self.read_usage_rows(bucket).await?;
        let mine = self.tally_sort_key();
        let others = tallies.iter().filter(|(k, _)| *k != mine).map(|(_, t)| *t);
        let others = others.fold(Tally::default(), Tally::plus);
        let current = self.own_tally(bucket).await?;
        self.add_to_own_tally(bucket, scanned.minus(others).minus(current)).await
    }

    /// Removes a deleted bucket's quotas (its tallies stay: they sum to its usage, zero
    /// once empty, and a bucket created again under the name goes on from them).
    pub(super) async fn clear_bucket_quotas(&self, bucket: &str) -> Result<(), ObjectError> {
        let key = entry_key(bucket.as_bytes(), QUOTAS_SORT_KEY);
        match self.node.bucket_usage.get(&key).await? {
            Some(entry) if entry.value().is_some() => {
                let tombstone = Lww::new(self.node.stamp_after(entry.timestamp()), None);
                self.node.bucket_usage.insert(key, &tombstone).await?;
                self.usage.limits.invalidate(&bucket.to_string());
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_tests::{meta, object_stores};

    async fn put(store: &ObjectStore, key: &str, size: usize) -> Result<(), ObjectError> {
        let data = vec![b'q'; size];
        store.put_object("q", key, meta("application/octet-stream", "e"), data).await.map(|_| ())
    }

    fn quotas(max_size_bytes: Option<u64>, max_objects: Option<u64>) -> Quotas {
        Quotas { max_size_bytes, max_objects }
    }

    /// A quota refuses the write that would cross it, through any node, and admits writes
    /// again once deletes made room; usage counted from objects stored before the quota.
    #[tokio::test(start_paused = true)]
    async fn a_quota_refuses_the_write_that_crosses_it_and_admits_after_deletes() {
        let (_cluster, s) = object_stores().await;
        s[0].create_bucket("q").await.unwrap();
        assert_eq!(s[0].bucket_usage("q").await, Ok(None), "not counted without quotas");
        put(&s[0], "a", 10).await.unwrap();
        put(&s[0], "b", 10).await.unwrap();
        s[1].set_bucket_quotas("q", quotas(Some(100), Some(3))).await.unwrap();
        let usage = s[2].bucket_usage("q").await.unwrap().unwrap();
        assert_eq!((usage.objects, usage.size_bytes), (2, 20), "recounted when set");

        put(&s[1], "c", 10).await.unwrap();
        let refused = put(&s[1], "d", 1).await;
        let expected =
            ObjectError::QuotaExceeded { quota: Quota::Objects, limit: 3, usage: 3, adding: 1 };
        assert_eq!(refused, Err(expected));
        assert_eq!(s[1].head_object("q", "d").await.map(|_| ()), Err(ObjectError::NoSuchKey));
        // Replacing an object adds no object; only its growth counts against the size.
        put(&s[1], "c", 70).await.unwrap();
        let refused = put(&s[1], "a", 21).await;
        let expected =
            ObjectError::QuotaExceeded { quota: Quota::Size, limit: 100, usage: 90, adding: 11 };
        assert_eq!(refused, Err(expected));

        // Deletes through another node make room, seen once its tally is read again.
        s[2].delete_object("q", "b").await.unwrap();
        tokio::time::sleep(Duration::from_millis(LIMITS_CACHE_TTL_MS)).await;
        put(&s[1], "d", 10).await.unwrap();
        let usage = s[0].bucket_usage("q").await.unwrap().unwrap();
        assert_eq!((usage.objects, usage.size_bytes), (3, 90));

        // Removing the quotas lifts them at once on the node that removed them.
        s[1].set_bucket_quotas("q", Quotas::default()).await.unwrap();
        put(&s[1], "e", 500).await.unwrap();
        assert_eq!(s[1].bucket_usage("q").await, Ok(None));
    }

    /// A conditional PUT is held to quotas like any other write (checked before its
    /// consensus, so a decided write is never refused after): over a quota it is refused
    /// and nothing becomes visible; within, it is counted.
    #[tokio::test(start_paused = true)]
    async fn conditional_writes_are_checked_before_their_consensus() {
        use crate::objects::body::VecSource;
        use crate::objects::conditional::WriteCondition;
        use crate::objects::multipart::UploadMeta;
        let (_cluster, s) = object_stores().await;
        s[0].create_bucket("q").await.unwrap();
        s[0].set_bucket_quotas("q", quotas(Some(15), None)).await.unwrap();
        let put_if_absent = |key: &'static str, size: usize| {
            let store = &s[1];
            async move {
                let mut body = VecSource::new(vec![b'c'; size], "e".into());
                let (meta, absent) = (UploadMeta::default(), WriteCondition::IfNoneMatch);
                store.put_object_stream_if("q", key, meta, &mut body, Some(&absent)).await
            }
        };
        put_if_absent("a", 10).await.unwrap();
        let refused = put_if_absent("b", 6).await.map(|_| ());
        let expected =
            ObjectError::QuotaExceeded { quota: Quota::Size, limit: 15, usage: 10, adding: 6 };
        assert_eq!(refused, Err(expected));
        assert_eq!(s[2].head_object("q", "b").await.map(|_| ()), Err(ObjectError::NoSuchKey));
        put_if_absent("b", 5).await.unwrap();
        let usage = s[0].bucket_usage("q").await.unwrap().unwrap();
        assert_eq!((usage.objects, usage.size_bytes), (2, 15));
    }

    /// In a versioned bucket old versions take room until deleted by id.
    #[tokio::test(start_paused = true)]
    async fn old_versions_count_until_deleted_by_id() {
        let (_cluster, s) = object_stores().await;
        s[0].create_bucket("q").await.unwrap();
        s[0].set_versioning("q", crate::objects::Versioning::Enabled).await.unwrap();
        s[0].set_bucket_quotas("q", quotas(Some(25), None)).await.unwrap();
        put(&s[0], "k", 10).await.unwrap();
        put(&s[0], "k", 10).await.unwrap();
        assert!(matches!(put(&s[0], "k", 10).await, Err(ObjectError::QuotaExceeded { .. })));
        let first = s[0].list_object_versions("q", "", "", 10).await.unwrap();
        let oldest = first.iter().map(|v| v.version_id).min().unwrap();
        s[0].delete_object_version("q", "k", &oldest.to_hex()).await.unwrap();
        put(&s[0], "k", 10).await.unwrap();
        let usage = s[0].bucket_usage("q").await.unwrap().unwrap();
        assert_eq!((usage.objects, usage.size_bytes), (2, 20));
    }
}
