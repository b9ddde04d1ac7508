//! Bucket settings kept apart from the `bucket` table: CORS, website and lifecycle.
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
/// Sort key of a bucket's static website configuration.
pub const WEBSITE_SETTING: &[u8] = b"website";
/// Sort key of a bucket's lifecycle rules.
pub const LIFECYCLE_SETTING: &[u8] = b"lifecycle";
/// Settings one bucket can have at most (each kind once): a bound for the delete scan.
const SETTINGS_PER_BUCKET_MAX: usize = 64;

/// One stored setting. Append new variants at the end only (persisted by index).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum BucketSetting {
    Cors(Vec<CorsRule>),
    Website(WebsiteConfig),
    Lifecycle(Vec<LifecycleRule>),
}

/// A bucket's static website: what the website endpoint serves for a "directory" and for a
/// missing key (validated by the S3 layer).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WebsiteConfig {
    /// Appended to a request for `/` or `dir/` (S3's `IndexDocument/Suffix`).
    pub index_suffix: String,
    /// Served with status 404 for a missing key (S3's `ErrorDocument/Key`).
    pub error_key: Option<String>,
}

/// One lifecycle rule (validated by the S3 layer; applied by `lifecycle`).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LifecycleRule {
    pub id: Option<String>,
    /// `Status` is `Enabled`; a `Disabled` rule is kept and shown but never applied.
    pub enabled: bool,
    /// Applies to keys starting with this (empty: every key).
    pub prefix: String,
    /// And only to objects strictly larger / smaller than these (`ObjectSizeGreaterThan`,
    /// `ObjectSizeLessThan`).
    pub size_greater_than_bytes: Option<u64>,
    pub size_less_than_bytes: Option<u64>,
    pub expiration: Option<Expiration>,
    /// Unfinished multipart uploads are aborted this many days after they started.
    pub abort_incomplete_upload_days: Option<u32>,
}

/// When a rule expires an object's current version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Expiration {
    /// This many days after the object was written.
    Days(u32),
    /// From this instant (ms since the Unix epoch; S3 requires midnight UTC) on.
    AtMs(u64),
}

impl LifecycleRule {
    /// Whether the rule selects an object of `key` and `size_bytes`.
    pub fn selects(&self, key: &str, size_bytes: u64) -> bool {
        self.enabled
            && key.starts_with(&self.prefix)
            && self.size_greater_than_bytes.is_none_or(|min| size_bytes > min)
            && self.size_less_than_bytes.is_none_or(|max| size_bytes < max)
    }
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
    /// One setting of a bucket (`None`: never set or removed). `NoSuchBucket` if absent.
    async fn bucket_setting(
        &self,
        bucket: &str,
        name: &[u8],
    ) -> Result<Option<BucketSetting>, ObjectError> {
        self.head_bucket(bucket).await?;
        let entry = self.node.bucket_config.get(&entry_key(bucket.as_bytes(), name)).await?;
        Ok(entry.and_then(|e| e.into_value()))
    }

    /// Replaces (`Some`) or removes (`None`) one setting of a bucket.
    async fn set_bucket_setting(
        &self,
        bucket: &str,
        name: &[u8],
        setting: Option<BucketSetting>,
    ) -> Result<(), ObjectError> {
        self.head_bucket(bucket).await?;
        let key = entry_key(bucket.as_bytes(), name);
        let seen = self.node.bucket_config.get(&key).await?.map_or(0, |e| e.timestamp());
        let entry = Lww::new(self.node.stamp_after(seen), setting);
        self.node.bucket_config.insert(key, &entry).await?;
        Ok(())
    }

    /// The bucket's CORS rules; `None` if it has none. `NoSuchBucket` if absent.
    pub async fn bucket_cors(&self, bucket: &str) -> Result<Option<Vec<CorsRule>>, ObjectError> {
        match self.bucket_setting(bucket, CORS_SETTING).await? {
            Some(BucketSetting::Cors(rules)) => Ok(Some(rules)),
            _ => Ok(None),
        }
    }

    /// Replaces (`Some`) or removes (`None`) the bucket's CORS rules.
    pub async fn set_bucket_cors(
        &self,
        bucket: &str,
        rules: Option<Vec<CorsRule>>,
    ) -> Result<(), ObjectError> {
        self.set_bucket_setting(bucket, CORS_SETTING, rules.map(BucketSetting::Cors)).await
    }

    /// The bucket's website configuration; `None` if it has none.
    pub async fn bucket_website(&self, bucket: &str) -> Result<Option<WebsiteConfig>, ObjectError> {
        match self.bucket_setting(bucket, WEBSITE_SETTING).await? {
            Some(BucketSetting::Website(config)) => Ok(Some(config)),
            _ => Ok(None),
        }
    }

    /// Replaces (`Some`) or removes (`None`) the bucket's website configuration.
    pub async fn set_bucket_website(
        &self,
        bucket: &str,
        config: Option<WebsiteConfig>,
    ) -> Result<(), ObjectError> {
        let setting = config.map(BucketSetting::Website);
        self.set_bucket_setting(bucket, WEBSITE_SETTING, setting).await
    }

    /// The bucket's lifecycle rules; `None` if it has none.
    pub async fn bucket_lifecycle(
        &self,
        bucket: &str,
    ) -> Result<Option<Vec<LifecycleRule>>, ObjectError> {
        match self.bucket_setting(bucket, LIFECYCLE_SETTING).await? {
            Some(BucketSetting::Lifecycle(rules)) => Ok(Some(rules)),
            _ => Ok(None),
        }
    }

    /// Replaces (`Some`) or removes (`None`) the bucket's lifecycle rules.
    pub async fn set_bucket_lifecycle(
        &self,
        bucket: &str,
        rules: Option<Vec<LifecycleRule>>,
    ) -> Result<(), ObjectError> {
        let setting = rules.map(BucketSetting::Lifecycle);
        self.set_bucket_setting(bucket, LIFECYCLE_SETTING, setting).await
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

    /// Website and lifecycle settings sit next to CORS under their own sort keys: setting
    /// one never shows up as, or replaces, another; deleting the bucket clears them all.
    #[tokio::test(start_paused = true)]
    async fn each_setting_is_kept_apart_and_dies_with_its_bucket() {
        let (_cluster, s) = object_stores().await;
        s[0].create_bucket("bk").await.unwrap();
        let site = WebsiteConfig { index_suffix: "index.html".into(), error_key: None };
        let expire = LifecycleRule {
            enabled: true,
            expiration: Some(Expiration::Days(3)),
            ..LifecycleRule::default()
        };
        s[0].set_bucket_website("bk", Some(site.clone())).await.unwrap();
        s[1].set_bucket_lifecycle("bk", Some(vec![expire.clone()])).await.unwrap();
        assert_eq!(s[2].bucket_cors("bk").await, Ok(None));
        assert_eq!(s[2].bucket_website("bk").await, Ok(Some(site)));
        assert_eq!(s[2].bucket_lifecycle("bk").await, Ok(Some(vec![expire])));
        s[0].set_bucket_website("bk", None).await.unwrap();
        assert_eq!(s[1].bucket_website("bk").await, Ok(None));
        assert!(s[1].bucket_lifecycle("bk").await.unwrap().is_some());
        s[2].delete_bucket("bk").await.unwrap();
        s[0].create_bucket("bk").await.unwrap();
        assert_eq!(s[1].bucket_lifecycle("bk").await, Ok(None));
    }
}
