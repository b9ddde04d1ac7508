//! Bucket aliases: more names for one bucket, e.g. to rename a bucket without copying it
//! (alias the new name, move clients, delete nothing).
//!
//! Buckets are keyed by name everywhere (the `bucket` table, the object table's partition
//! key, key grants), so an alias cannot be a second key of the same bucket; it is a name the
//! S3 layer resolves to the bucket's own name before anything else (`resolve_bucket`). Table
//! `bucket_alias`: every alias under one partition key (listing them is one range read),
//! sort key = the alias, holding `Lww<Option<AliasRecord>>` (`None` once removed).
//!
//! Rules: an alias names a bucket, never another alias; a name is a bucket or an alias,
//! never both: creating either over the other is refused (`AliasTaken`). Both checks are
//! quorum reads, so a bucket and an alias of the same name created at the same moment
//! through two nodes can both pass; the alias then wins (resolution reads aliases first)
//! and the operator removes one. Deleting a bucket deletes its aliases.
//!
//! Resolution is on every S3 request, so it is cached (`ALIAS_CACHE_TTL_MS`, names that
//! are not aliases too): an alias created or removed through another node takes effect
//! here within that time; through this node at once.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ObjectError, ObjectStore};
use crate::crdt::Lww;
use crate::table::{TableSchema, entry_key};
use crate::ttl_cache::TtlCache;

pub struct AliasSchema;
impl TableSchema for AliasSchema {
    const NAME: &'static str = "bucket_alias";
    type Entry = Lww<Option<AliasRecord>>;
}

/// All aliases live under this partition key.
const ALIASES_PARTITION_KEY: &[u8] = b"aliases";
/// Entries fetched per range read while listing.
const LIST_BATCH: usize = 1000;
/// How long a resolution is reused: the bound on how late an alias created or removed
/// through another node takes effect here.
pub const ALIAS_CACHE_TTL_MS: u64 = 5_000;
/// Names whose resolution one node remembers at most.
const ALIAS_CACHE_ENTRIES_MAX: usize = 4096;

/// One alias. Persisted: append fields only behind a new record version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AliasRecord {
    /// The bucket's own name.
    pub bucket: String,
    pub created_ms: u64,
}

/// Resolutions cached by an `ObjectStore`: name → the bucket it is an alias of, or `None`.
pub(super) fn resolution_cache() -> TtlCache<String, Option<String>> {
    TtlCache::new(Duration::from_millis(ALIAS_CACHE_TTL_MS), ALIAS_CACHE_ENTRIES_MAX)
}

fn alias_key(alias: &str) -> Vec<u8> {
    entry_key(ALIASES_PARTITION_KEY, alias.as_bytes())
}

impl ObjectStore {
    /// The alias's entry (live or removed), from a read quorum.
    async fn alias_entry(
        &self,
        alias: &str,
    ) -> Result<Option<Lww<Option<AliasRecord>>>, ObjectError> {
        Ok(self.node.bucket_aliases.get(&alias_key(alias)).await?)
    }

    /// The bucket `alias` names, or `None` if it is no alias (cached, see the module doc).
    pub async fn alias_target(&self, alias: &str) -> Result<Option<String>, ObjectError> {
        if let Some(cached) = self.aliases.get(&alias.to_string()) {
            return Ok(cached);
        }
        let generation = self.aliases.generation();
        let target = self.alias_entry(alias).await?.and_then(|e| e.into_value()).map(|r| r.bucket);
        self.aliases.put_if_unchanged(alias.to_string(), target.clone(), generation);
        Ok(target)
    }

    /// The bucket's own name for `name`: the bucket an alias names, or `name` itself.
    pub async fn resolve_bucket(&self, name: &str) -> Result<String, ObjectError> {
        Ok(self.alias_target(name).await?.unwrap_or_else(|| name.to_string()))
    }

    /// Makes `alias` another name of `bucket`. Idempotent for the same bucket.
    pub async fn create_alias(&self, bucket: &str, alias: &str) -> Result<(), ObjectError> {
        if let Some(r) = self.alias_entry(bucket).await?.and_then(|e| e.into_value()) {
            return Err(ObjectError::AliasOfAlias { bucket: r.bucket });
        }
        self.head_bucket(bucket).await?;
        if self.bucket(alias).await?.is_some() {
            return Err(ObjectError::AliasTaken { by_bucket: alias.to_string() });
        }
        let current = self.alias_entry(alias).await?;
        let seen = current.as_ref().map_or(0, |e| e.timestamp());
        match current.and_then(|e| e.into_value()) {
            Some(r) if r.bucket == bucket => return Ok(()),
            Some(r) => return Err(ObjectError::AliasTaken { by_bucket: r.bucket }),
            None => {}
        }
        let record =
            AliasRecord { bucket: bucket.into(), created_ms: self.node.seam.clock.now_ms() };
        let entry = Lww::new(self.node.stamp_after(seen), Some(record));
        let written = self.node.bucket_aliases.insert(alias_key(alias), &entry).await;
        self.aliases.invalidate(&alias.to_string());
        Ok(written?)
    }

    /// Removes `alias`, which must name `bucket` (so a typo cannot remove another's alias).
    pub async fn delete_alias(&self, bucket: &str, alias: &str) -> Result<(), ObjectError> {
        let current = self.alias_entry(alias).await?;
        let Some(seen) = current.filter(|e| e.value().as_ref().is_some_and(|r| r.bucket == bucket))
        else {
            return Err(ObjectError::NoSuchAlias);
        };
        let tombstone = Lww::new(self.node.stamp_after(seen.timestamp()), None);
        let written = self.node.bucket_aliases.insert(alias_key(alias), &tombstone).await;
        self.aliases.invalidate(&alias.to_string());
        Ok(written?)
    }

    /// Every alias and the bucket it names, in alias order.
    pub async fn list_aliases(&self) -> Result<Vec<(String, AliasRecord)>, ObjectError> {
        let mut out = Vec::new();
        let mut after = Vec::new();
        loop {
            let table = &self.node.bucket_aliases;
            let page = table.get_range(ALIASES_PARTITION_KEY, b"", &after, LIST_BATCH).await?;
            let done = page.len() < LIST_BATCH;
            after = page.last().map(|(k, _)| k.clone()).unwrap_or_default();
            for (alias, entry) in page {
                if let Some(record) = entry.into_value() {
                    out.push((String::from_utf8_lossy(&alias).into_owned(), record));
                }
            }
            if done {
                return Ok(out);
            }
        }
    }

    /// The aliases of `bucket`, in order.
    pub async fn aliases_of(&self, bucket: &str) -> Result<Vec<String>, ObjectError> {
        let all = self.list_aliases().await?;
        Ok(all.into_iter().filter(|(_, r)| r.bucket == bucket).map(|(a, _)| a).collect())
    }

    /// Removes the aliases of a bucket being deleted.
    pub(super) async fn clear_aliases_of(&self, bucket: &str) -> Result<(), ObjectError> {
        for alias in self.aliases_of(bucket).await? {
            self.delete_alias(bucket, &alias).await?;
        }
        Ok(())
    }

    /// `AliasTaken` if `name` is a live alias (a bucket may not be created under it).
    pub(super) async fn refuse_alias_name(&self, name: &str) -> Result<(), ObjectError> {
        match self.alias_entry(name).await?.and_then(|e| e.into_value()) {
            Some(r) => Err(ObjectError::AliasTaken { by_bucket: r.bucket }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_tests::{meta, object_stores};

    /// An alias made through one node names its bucket through the others; names stay
    /// unique across buckets and aliases; the bucket's deletion takes its aliases along.
    #[tokio::test(start_paused = true)]
    async fn aliases_resolve_everywhere_stay_unique_and_die_with_their_bucket() {
        let (_cluster, s) = object_stores().await;
        s[0].create_bucket("old-name").await.unwrap();
        s[0].create_bucket("other").await.unwrap();
        assert_eq!(s[1].resolve_bucket("new-name").await.unwrap(), "new-name");
        s[0].create_alias("old-name", "new-name").await.unwrap();
        s[0].create_alias("old-name", "new-name").await.unwrap(); // idempotent
        tokio::time::sleep(Duration::from_millis(ALIAS_CACHE_TTL_MS)).await;
        assert_eq!(s[1].resolve_bucket("new-name").await.unwrap(), "old-name");
        assert_eq!(s[2].resolve_bucket("old-name").await.unwrap(), "old-name");
        assert_eq!(s[2].aliases_of("old-name").await.unwrap(), vec!["new-name".to_string()]);

        let taken = |by: &str| Err(ObjectError::AliasTaken { by_bucket: by.into() });
        assert_eq!(s[1].create_alias("other", "new-name").await, taken("old-name"));
        assert_eq!(s[1].create_alias("old-name", "other").await, taken("other"));
        assert_eq!(s[2].create_bucket("new-name").await, taken("old-name"));
        let of_alias = s[1].create_alias("new-name", "third").await;
        assert_eq!(of_alias, Err(ObjectError::AliasOfAlias { bucket: "old-name".into() }));
        assert_eq!(s[1].create_alias("gone", "x-alias").await, Err(ObjectError::NoSuchBucket));
        assert_eq!(s[1].delete_alias("other", "new-name").await, Err(ObjectError::NoSuchAlias));

        s[1].put_object("old-name", "k", meta("text/plain", "e"), b"v".to_vec()).await.unwrap();
        s[1].delete_object("old-name", "k").await.unwrap();
        let versions = s[1].list_object_versions("old-name", "", "", 10).await.unwrap();
        for v in versions {
            s[1].delete_object_version("old-name", "k", &v.version_id.to_hex()).await.unwrap();
        }
        s[2].delete_bucket("old-name").await.unwrap();
        assert!(s[0].list_aliases().await.unwrap().is_empty());
        s[2].create_bucket("new-name").await.unwrap();
        tokio::time::sleep(Duration::from_millis(ALIAS_CACHE_TTL_MS)).await;
        assert_eq!(s[0].resolve_bucket("new-name").await.unwrap(), "new-name");
        // Removal through this node shows at once here.
        s[0].create_alias("other", "third").await.unwrap();
        assert_eq!(s[0].resolve_bucket("third").await.unwrap(), "other");
        s[0].delete_alias("other", "third").await.unwrap();
        assert_eq!(s[0].resolve_bucket("third").await.unwrap(), "third");
    }
}
