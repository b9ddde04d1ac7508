//! Bucket settings kept apart from the `bucket` table: CORS now, website and lifecycle later.
//!
//! Why a table of its own: `bucket` entries are bincode behind a format byte, so a new
//! field in `BucketRecord` would make every stored entry undecodable. Here each setting is
//! one entry, partition key = bucket name, sort key = the setting's name (`cors`), holding
//! `Lww<Option<BucketSetting>>` (`None` = not set / removed). A new kind of setting is a new
//! sort key and a new variant appended to `BucketSetting` (bincode encodes a variant by its
//! index, so appending keeps old bytes readable).
//!
//! Deleting a bucket writes `None` over each of its settings, so a bucket created later
//! under the same name starts with none.

use serde::{Deserialize, Serialize};

use super::{ObjectError, ObjectStore};
use crate::crdt::Lww;
use crate::table::{TableSchema, entry_key};

pub struct BucketConfigSchema;
impl TableSchema for BucketConfigSchema {
    const NAME: &'static str = "bucket_config";
    type Entry = Lww<Option<BucketSetting>>;
}

/// Sort key of a bucket's CORS configuration.
pub const CORS_SETTING: &[u8] = b"cors";
/// Settings one bucket can have at most (each kind once): a bound for the delete scan.
const SETTINGS_PER_BUCKET_MAX: usize = 64;

/// One stored setting. Append new variants at the end only (persisted by index).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum BucketSetting {
    Cors(Vec<CorsRule>),
}

/// One CORS rule, as validated by the S3 layer (which owns its meaning and matching).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CorsRule {
    pub id: Option<String>,
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    pub allowed_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age_seconds: Option<u64>,
}

impl ObjectStore {
    /// The bucket's CORS rules; `None` if it has none. `NoSuchBucket` if absent.
    pub async fn bucket_cors(&self, bucket: &str) -> Result<Option<Vec<CorsRule>>, ObjectError> {
        self.head_bucket(bucket).await?;
        let key = entry_key(bucket.as_bytes(), CORS_SETTING);
        let entry = self.node.bucket_config.get(&key).await?;
        Ok(entry.and_then(|e| e.into_value()).map(|BucketSetting::Cors(rules)| rules))
    }

    /// Replaces (`Some`) or removes (`None`) the bucket's CORS rules.
    pub async fn set_bucket_cors(
        &self,
        bucket: &str,
        rules: Option<Vec<CorsRule>>,
    ) -> Result<(), ObjectError> {
        self.head_bucket(bucket).await?;
        let key = entry_key(bucket.as_bytes(), CORS_SETTING);
        let seen = self.node.bucket_config.get(&key).await?.map_or(0, |e| e.timestamp());
        let entry = Lww::new(self.node.stamp_after(seen), rules.map(BucketSetting::Cors));
        self.node.bucket_config.insert(key, &entry).await?;
        Ok(())
    }

    /// Removes every setting of a bucket being deleted.
    pub(super) async fn clear_bucket_settings(&self, bucket: &str) -> Result<(), ObjectError> {
        let table = &self.node.bucket_config;
        let set = table.get_range(bucket.as_bytes(), b"", b"", SETTINGS_PER_BUCKET_MAX).await?;
        for (setting, entry) in set.into_iter().filter(|(_, e)| e.value().is_some()) {
            let tombstone = Lww::new(self.node.stamp_after(entry.timestamp()), None);
            table.insert(entry_key(bucket.as_bytes(), &setting), &tombstone).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_tests::object_stores;

    fn rule(origin: &str) -> CorsRule {
        let allowed_origins = vec![origin.to_string()];
        CorsRule { allowed_origins, allowed_methods: vec!["GET".into()], ..CorsRule::default() }
    }

    /// A configuration written through one node is read through the others, and a bucket
    /// deleted and created again under its name does not inherit it.
    #[tokio::test(start_paused = true)]
    async fn cors_is_replicated_and_dies_with_its_bucket() {
        let (_cluster, s) = object_stores().await;
        assert_eq!(s[0].bucket_cors("bk").await, Err(ObjectError::NoSuchBucket));
        assert_eq!(s[0].set_bucket_cors("bk", None).await, Err(ObjectError::NoSuchBucket));
        s[0].create_bucket("bk").await.unwrap();
        assert_eq!(s[1].bucket_cors("bk").await, Ok(None));
        s[0].set_bucket_cors("bk", Some(vec![rule("https://a")])).await.unwrap();
        s[1].set_bucket_cors("bk", Some(vec![rule("https://b")])).await.unwrap();
        for store in &s {
            assert_eq!(store.bucket_cors("bk").await, Ok(Some(vec![rule("https://b")])));
        }
        s[2].delete_bucket("bk").await.unwrap();
        s[0].create_bucket("bk").await.unwrap();
        for store in &s {
            assert_eq!(store.bucket_cors("bk").await, Ok(None));
        }
        s[1].set_bucket_cors("bk", Some(vec![rule("*")])).await.unwrap();
        s[2].set_bucket_cors("bk", None).await.unwrap();
        assert_eq!(s[0].bucket_cors("bk").await, Ok(None));
    }
}
