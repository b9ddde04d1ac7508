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
///
/// A setting whose shape grows gets a new variant with the new shape: writers write only
/// the newest, readers turn the older into it (`WebsiteDocuments` → `WebsiteConfig` with no
/// redirects, `LifecycleRuleV1` → `LifecycleRule` with no noncurrent-version actions).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum BucketSetting {
    Cors(Vec<CorsRule>),
    /// Written before redirects existed; read only.
    Website(WebsiteDocuments),
    /// Written before noncurrent-version actions existed; read only.
    Lifecycle(Vec<LifecycleRuleV1>),
    WebsiteV2(WebsiteConfig),
    LifecycleV2(Vec<LifecycleRule>),
}

/// The first shape of a website configuration (variant `Website`).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WebsiteDocuments {
    pub index_suffix: String,
    pub error_key: Option<String>,
}

/// A bucket's static website: what the website endpoint serves for a "directory" and for a
/// missing key, and where it redirects (validated by the S3 layer, which owns the meaning).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WebsiteConfig {
    /// Appended to a request for `/` or `dir/` (S3's `IndexDocument/Suffix`); empty when
    /// every request is redirected.
    pub index_suffix: String,
    /// Served with status 404 for a missing key (S3's `ErrorDocument/Key`).
    pub error_key: Option<String>,
    /// Every request goes to this host (S3's `RedirectAllRequestsTo`).
    pub redirect_all: Option<WebsiteRedirect>,
    /// Conditional redirects, first match wins (S3's `RoutingRules`).
    pub routing_rules: Vec<RoutingRule>,
}

/// Where a website redirect goes (S3's `Redirect` / `RedirectAllRequestsTo`): each part
/// left `None` keeps the request's.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WebsiteRedirect {
    pub host_name: Option<String>,
    /// `http` or `https`.
    pub protocol: Option<String>,
    pub replace_key_prefix_with: Option<String>,
    pub replace_key_with: Option<String>,
    /// 3xx; 301 when absent.
    pub http_redirect_code: Option<u16>,
}

/// One routing rule: when the request matches `Condition`, redirect.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RoutingRule {
    pub key_prefix_equals: Option<String>,
    pub http_error_code_returned_equals: Option<u16>,
    pub redirect: WebsiteRedirect,
}

/// The first shape of a lifecycle rule (variant `Lifecycle`): `LifecycleRule` without the
/// noncurrent-version actions.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LifecycleRuleV1 {
    pub id: Option<String>,
    pub enabled: bool,
    pub prefix: String,
    pub size_greater_than_bytes: Option<u64>,
    pub size_less_than_bytes: Option<u64>,
    pub expiration: Option<Expiration>,
    pub abort_incomplete_upload_days: Option<u32>,
}

impl From<LifecycleRuleV1> for LifecycleRule {
    fn from(r: LifecycleRuleV1) -> LifecycleRule {
        LifecycleRule {
            id: r.id,
            enabled: r.enabled,
            prefix: r.prefix,
            size_greater_than_bytes: r.size_greater_than_bytes,
            size_less_than_bytes: r.size_less_than_bytes,
            expiration: r.expiration,
            abort_incomplete_upload_days: r.abort_incomplete_upload_days,
            ..LifecycleRule::default()
        }
    }
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
    /// A noncurrent version is deleted this many days after it became noncurrent (its
    /// successor's time), S3's `NoncurrentVersionExpiration/NoncurrentDays`.
    pub noncurrent_days: Option<u32>,
    /// ... except the newest this many noncurrent versions, which are kept
    /// (`NewerNoncurrentVersions`).
    pub newer_noncurrent_versions: Option<u32>,
    /// A delete marker that is the key's only version left is removed
    /// (`Expiration/ExpiredObjectDeleteMarker`).
    pub expired_object_delete_marker: bool,
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
            Some(BucketSetting::WebsiteV2(config)) => Ok(Some(config)),
            Some(BucketSetting::Website(d)) => Ok(Some(WebsiteConfig {
                index_suffix: d.index_suffix,
                error_key: d.error_key,
                ..WebsiteConfig::default()
            })),
            _ => Ok(None),
        }
    }

    /// Replaces (`Some`) or removes (`None`) the bucket's website configuration.
    pub async fn set_bucket_website(
        &self,
        bucket: &str,
        config: Option<WebsiteConfig>,
    ) -> Result<(), ObjectError> {
        let setting = config.map(BucketSetting::WebsiteV2);
        self.set_bucket_setting(bucket, WEBSITE_SETTING, setting).await
    }

    /// The bucket's lifecycle rules; `None` if it has none.
    pub async fn bucket_lifecycle(
        &self,
        bucket: &str,
    ) -> Result<Option<Vec<LifecycleRule>>, ObjectError> {
        match self.bucket_setting(bucket, LIFECYCLE_SETTING).await? {
            Some(BucketSetting::LifecycleV2(rules)) => Ok(Some(rules)),
            Some(BucketSetting::Lifecycle(rules)) => {
                Ok(Some(rules.into_iter().map(LifecycleRule::from).collect()))
            }
            _ => Ok(None),
        }
    }

    /// Replaces (`Some`) or removes (`None`) the bucket's lifecycle rules.
    pub async fn set_bucket_lifecycle(
        &self,
        bucket: &str,
        rules: Option<Vec<LifecycleRule>>,
    ) -> Result<(), ObjectError> {
        let setting = rules.map(BucketSetting::LifecycleV2);
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

    /// Entries written in the first shapes (before redirects and noncurrent-version
    /// actions) still read, as the new shape with those left out.
    #[tokio::test(start_paused = true)]
    async fn settings_in_their_first_shape_still_read() {
        let (_cluster, s) = object_stores().await;
        s[0].create_bucket("bk").await.unwrap();
        let docs = WebsiteDocuments { index_suffix: "i.html".into(), error_key: Some("e".into()) };
        let rule = LifecycleRuleV1 { enabled: true, prefix: "p/".into(), ..Default::default() };
        let old = [
            (WEBSITE_SETTING, BucketSetting::Website(docs)),
            (LIFECYCLE_SETTING, BucketSetting::Lifecycle(vec![rule])),
        ];
        for (name, setting) in old {
            // Stored as bytes (variant index first) and read back through other nodes.
            s[0].set_bucket_setting("bk", name, Some(setting)).await.unwrap();
        }
        let site = s[1].bucket_website("bk").await.unwrap().unwrap();
        assert_eq!((site.index_suffix.as_str(), site.error_key.as_deref()), ("i.html", Some("e")));
        assert!(site.redirect_all.is_none() && site.routing_rules.is_empty());
        let rules = s[1].bucket_lifecycle("bk").await.unwrap().unwrap();
        assert_eq!((rules[0].prefix.as_str(), rules[0].noncurrent_days), ("p/", None));
    }

    /// Website and lifecycle settings sit next to CORS under their own sort keys: setting
    /// one never shows up as, or replaces, another; deleting the bucket clears them all.
    #[tokio::test(start_paused = true)]
    async fn each_setting_is_kept_apart_and_dies_with_its_bucket() {
        let (_cluster, s) = object_stores().await;
        s[0].create_bucket("bk").await.unwrap();
        let site = WebsiteConfig { index_suffix: "index.html".into(), ..WebsiteConfig::default() };
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
