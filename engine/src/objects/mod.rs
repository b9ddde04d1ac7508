//! Buckets and objects: the `ObjectStore` the S3 frontend calls.
//!
//! Tables (see docs/data-model.md): `bucket` (every bucket under one partition key, so
//! listing buckets is one range read; an LWW register per bucket, `None` once deleted) and
//! `object` (partition key = bucket name, sort key = object key, so listing a bucket is a
//! range read in key order; each entry holds the key's versions, see `version`).
//!
//! Bodies up to `body::INLINE_MAX_BYTES` live inline in the version; larger ones are cut
//! into content-addressed blocks (see `body`). A large PUT first records its version as
//! `Uploading`, then stores the blocks, then marks the version `Complete`: a crash in the
//! middle never exposes a partial object. Multipart uploads (`multipart`) are versions
//! written the same way, in pieces, with their progress in the `mpu` table.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub mod acceptor_rows;
#[cfg(test)]
mod acceptor_rows_tests;
pub mod alias;
pub mod block_ref;
pub mod body;
pub mod body_reader;
#[cfg(test)]
mod body_tests;
pub mod bucket_config;
#[cfg(test)]
mod ceiling_restart_tests;
pub mod conditional;
#[cfg(test)]
mod conditional_order_tests;
mod conditional_rounds;
#[cfg(test)]
mod conditional_tests;
pub mod copy;
#[cfg(test)]
mod copy_tests;
pub mod gc;
mod key_turns;
pub mod lifecycle;
pub mod multipart;
#[cfg(test)]
mod multipart_tests;
mod object_ops;
#[cfg(test)]
mod solo_tests;
#[cfg(test)]
mod tombstone_tests;
pub use object_ops::VersionListing;
pub mod usage;
pub mod version;
pub mod version_blocks;
#[cfg(test)]
mod version_blocks_tests;

use body::{Body, BodyMemory};
pub use version::{ObjectEntry, VersionData, VersionId, VersionState};

use crate::block::{BLOCK_SIZE_BYTES_DEFAULT, BlockError};
use crate::crdt::Lww;
use crate::node::Node;
use crate::table::{QuorumError, TableSchema, entry_key};

pub struct BucketSchema;
impl TableSchema for BucketSchema {
    const NAME: &'static str = "bucket";
    type Entry = Lww<Option<BucketRecord>>;
}

pub struct ObjectSchema;
impl TableSchema for ObjectSchema {
    const NAME: &'static str = "object";
    type Entry = ObjectEntry;
    const COLLECTS_TOMBSTONES: bool = true;

    /// Deleted keys' entries (`ObjectEntry::tombstone_since_ms`): without collection a
    /// bucket where millions of keys came and went would keep, sync and list past millions
    /// of dead entries forever.
    fn tombstone_since_ms(entry: &ObjectEntry) -> Option<u64> {
        entry.tombstone_since_ms()
    }
}

/// All buckets live under this partition key.
const BUCKETS_PARTITION_KEY: &[u8] = b"buckets";
/// Entries fetched per range read while listing.
const LIST_BATCH: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BucketRecord {
    pub name: String,
    pub created_ms: u64,
    pub versioning: Versioning,
}

/// A bucket's versioning state, as S3 reports it. Only `Enabled` keeps history: new writes
/// under `Suspended` replace the current version as under `Unversioned`; the two differ
/// only in what GetBucketVersioning answers (a bucket once versioned never goes back).
///
/// Persisted layout: bincode encodes a unit variant as its index (varint), so the variants
/// keep this order — `Unversioned` = 0 and `Enabled` = 1 read the bytes of the `bool`
/// (`false`/`true`) this field was before `Suspended` was added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Versioning {
    Unversioned,
    Enabled,
    Suspended,
}

impl Versioning {
    /// Versions written now are kept until deleted by id.
    pub fn keeps_history(self) -> bool {
        self == Versioning::Enabled
    }
}

/// What a client supplies with an object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectMeta {
    pub content_type: String,
    pub user_metadata: BTreeMap<String, String>,
    pub etag: String,
}

/// An object as the `object` table stores it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StoredObject {
    pub size_bytes: u64,
    pub etag: String,
    pub last_modified_ms: u64,
    pub content_type: String,
    pub user_metadata: BTreeMap<String, String>,
    pub body: Body,
}

/// An object as the store hands it out (the key and, for a GET, the body's bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRecord {
    pub key: String,
    pub version_id: VersionId,
    pub size_bytes: u64,
    pub etag: String,
    pub last_modified_ms: u64,
    pub content_type: String,
    pub user_metadata: BTreeMap<String, String>,
    /// The body (empty in listings).
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectError {
    NoSuchBucket,
    NoSuchKey,
    /// A version id that names no version of the key (or is malformed).
    NoSuchVersion,
    BucketAlreadyExists,
    BucketNotEmpty,
    /// No unfinished multipart upload has this id (or it is malformed).
    NoSuchUpload,
    /// A completion names a part that was not uploaded, or not with that ETag.
    InvalidPart {
        part_number: u32,
    },
    /// A completion's parts are not listed in strictly ascending order (or not at all).
    InvalidPartOrder,
    /// A part other than the last of a completion is below the minimum part size.
    EntityTooSmall {
        part_number: u32,
        size_bytes: u64,
    },
    /// Part numbers run from 1 to `multipart::PART_NUMBER_MAX`.
    InvalidPartNumber {
        part_number: u32,
    },
    /// Not enough replicas answered: retry later.
    /// The body's source refused it (a signature, checksum or digest that did not match,
    /// or the client's connection failed): nothing was made visible.
    BodyRefused {
        reason: String,
    },
    Unavailable {
        reason: String,
    },
    Internal {
        reason: String,
    },
    /// A conditional write's condition does not hold (`conditional`).
    PreconditionFailed,
    /// A conditional write lost to concurrent writes of the key: retry it.
    ConditionalConflict,
    /// The write would take the bucket over one of its quotas (`usage`).
    QuotaExceeded {
        quota: usage::Quota,
        limit: u64,
        /// The bucket's usage as counted (objects or bytes), before this write.
        usage: u64,
        /// What this write would add.
        adding: u64,
    },
    /// The name is already `by_bucket`'s own name or one of its aliases (`alias`).
    AliasTaken {
        by_bucket: String,
    },
    /// No such alias of that bucket.
    NoSuchAlias,
    /// The bucket named for an alias is itself an alias of `bucket`.
    AliasOfAlias {
        bucket: String,
    },
}

impl std::fmt::Display for ObjectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ObjectError::NoSuchBucket => write!(f, "no such bucket"),
            ObjectError::NoSuchKey => write!(f, "no such key"),
            ObjectError::NoSuchVersion => write!(f, "no such version"),
            ObjectError::BucketAlreadyExists => write!(f, "bucket already exists"),
            ObjectError::BucketNotEmpty => write!(f, "bucket not empty"),
            ObjectError::NoSuchUpload => write!(f, "no such multipart upload"),
            ObjectError::InvalidPart { part_number } => write!(f, "invalid part {part_number}"),
            ObjectError::InvalidPartOrder => write!(f, "parts not in ascending order"),
            ObjectError::EntityTooSmall { part_number, size_bytes } => {
                write!(f, "part {part_number} is too small ({size_bytes} bytes)")
            }
            ObjectError::InvalidPartNumber { part_number } => {
                write!(f, "invalid part number {part_number}")
            }
            ObjectError::BodyRefused { reason } => write!(f, "body refused: {reason}"),
            ObjectError::Unavailable { reason } => write!(f, "unavailable: {reason}"),
            ObjectError::Internal { reason } => write!(f, "internal error: {reason}"),
            ObjectError::PreconditionFailed => write!(f, "precondition failed"),
            ObjectError::ConditionalConflict => {
                write!(f, "conditional write conflicts with concurrent writes")
            }
            ObjectError::QuotaExceeded { quota, limit, usage, adding } => {
                let what = match quota {
                    usage::Quota::Size => "size quota (bytes)",
                    usage::Quota::Objects => "object count quota",
                };
                let (holds, adds) = (usage, adding);
                write!(f, "bucket {what} {limit} exceeded: holds {holds}, write adds {adds}")
            }
            ObjectError::AliasTaken { by_bucket } => write!(f, "name taken by bucket {by_bucket}"),
            ObjectError::NoSuchAlias => write!(f, "no such alias"),
            ObjectError::AliasOfAlias { bucket } => write!(f, "an alias of bucket {bucket}"),
        }
    }
}

impl std::error::Error for ObjectError {}

impl From<BlockError> for ObjectError {
    fn from(e: BlockError) -> Self {
        match e {
            BlockError::Quorum { .. } | BlockError::NotFound { .. } => {
                ObjectError::Unavailable { reason: e.to_string() }
            }
            _ => ObjectError::Internal { reason: e.to_string() },
        }
    }
}

fn record(key: &str, id: VersionId, stored: &StoredObject, data: Vec<u8>) -> ObjectRecord {
    ObjectRecord {
        key: key.into(),
        version_id: id,
        size_bytes: stored.size_bytes,
        etag: stored.etag.clone(),
        last_modified_ms: stored.last_modified_ms,
        content_type: stored.content_type.clone(),
        user_metadata: stored.user_metadata.clone(),
        data,
    }
}

impl From<body::StoreError> for ObjectError {
    fn from(e: body::StoreError) -> Self {
        match e {
            body::StoreError::Refused(r) => object_ops::refused(r),
            body::StoreError::Block(b) => b.into(),
        }
    }
}

impl From<QuorumError> for ObjectError {
    fn from(e: QuorumError) -> Self {
        ObjectError::Unavailable { reason: e.to_string() }
    }
}

pub struct ObjectStore {
    node: Arc<Node>,
    /// New bodies are cut into blocks of this size.
    block_size_bytes: usize,
    /// Longer block lists go to the `version` table (`version_blocks`).
    list_inline_max_blocks: usize,
    /// Body bytes held by this store's PUTs and GETs (see `body`).
    memory: Arc<BodyMemory>,
    /// Quotas and usage counters of the buckets written through this store (`usage`).
    usage: usage::UsageBook,
    /// Recent alias resolutions (`alias`).
    aliases: crate::ttl_cache::TtlCache<String, Option<String>>,
    /// Writes of one key through this store take its consensus in turns (`key_turns`).
    turns: key_turns::KeyTurns,
}

impl ObjectStore {
    pub fn new(node: Arc<Node>) -> Self {
        Self::with_block_size(node, BLOCK_SIZE_BYTES_DEFAULT)
    }

    /// A store cutting new bodies into blocks of `block_size_bytes` (reads take any size).
    pub fn with_block_size(node: Arc<Node>, block_size_bytes: usize) -> Self {
        assert!(block_size_bytes > 0, "blocks have a size");
        let (memory, usage, aliases) =
            (Arc::default(), Default::default(), alias::resolution_cache());
        let turns = Default::default();
        let list_inline_max_blocks = version_blocks::LIST_INLINE_MAX_BLOCKS;
        ObjectStore {
            node,
            block_size_bytes,
            list_inline_max_blocks,
            memory,
            usage,
            aliases,
            turns,
        }
    }

    /// This store keeps block lists longer than `blocks` in the `version` table (tests and
    /// the simulator lower it, to exercise that table with small objects).
    pub fn with_list_inline_max_blocks(mut self, blocks: usize) -> Self {
        self.list_inline_max_blocks = blocks;
        self
    }

    /// Body bytes held now and at most so far by this store's PUTs and GETs.
    pub fn body_memory(&self) -> &BodyMemory {
        &self.memory
    }

    pub async fn list_buckets(&self) -> Result<Vec<BucketRecord>, ObjectError> {
        let mut out = Vec::new();
        let mut after = Vec::new();
        loop {
            let page =
                self.node.buckets.get_range(BUCKETS_PARTITION_KEY, b"", &after, LIST_BATCH).await?;
            let done = page.len() < LIST_BATCH;
            after = page.last().map(|(k, _)| k.clone()).unwrap_or_default();
            out.extend(page.into_iter().filter_map(|(_, e)| e.into_value()));
            if done {
                return Ok(out);
            }
        }
    }

    /// The bucket's current entry (a live bucket or its tombstone), with its timestamp.
    async fn bucket_entry(
        &self,
        name: &str,
    ) -> Result<Option<Lww<Option<BucketRecord>>>, ObjectError> {
        let key = entry_key(BUCKETS_PARTITION_KEY, name.as_bytes());
        Ok(self.node.buckets.get(&key).await?)
    }

    async fn bucket(&self, name: &str) -> Result<Option<BucketRecord>, ObjectError> {
        Ok(self.bucket_entry(name).await?.and_then(|e| e.into_value()))
    }

    pub async fn head_bucket(&self, name: &str) -> Result<BucketRecord, ObjectError> {
        self.bucket(name).await?.ok_or(ObjectError::NoSuchBucket)
    }

    /// Sets the versioning state for new writes (versions written before keep their mode).
    pub async fn set_versioning(&self, name: &str, state: Versioning) -> Result<(), ObjectError> {
        let current = self.bucket_entry(name).await?;
        let Some((seen, mut record)) = current.and_then(|e| Some((e.timestamp(), e.into_value()?)))
        else {
            return Err(ObjectError::NoSuchBucket);
        };
        record.versioning = state;
        let key = entry_key(BUCKETS_PARTITION_KEY, name.as_bytes());
        self.node.buckets.insert(key, &Lww::new(self.node.stamp_after(seen), Some(record))).await?;
        Ok(())
    }

    pub async fn create_bucket(&self, name: &str) -> Result<(), ObjectError> {
        self.refuse_alias_name(name).await?;
        let current = self.bucket_entry(name).await?;
        if current.as_ref().is_some_and(|e| e.value().is_some()) {
            return Err(ObjectError::BucketAlreadyExists);
        }
        let seen = current.map_or(0, |e| e.timestamp());
        let created_ms = self.node.seam.clock.now_ms();
        let record =
            BucketRecord { name: name.into(), created_ms, versioning: Versioning::Unversioned };
        let key = entry_key(BUCKETS_PARTITION_KEY, name.as_bytes());
        let entry = Lww::new(self.node.stamp_after(seen), Some(record));
        self.node.buckets.insert(key, &entry).await?;
        Ok(())
    }

    pub async fn delete_bucket(&self, name: &str) -> Result<(), ObjectError> {
        let current = self.bucket_entry(name).await?;
        let Some(seen) = current.filter(|e| e.value().is_some()).map(|e| e.timestamp()) else {
            return Err(ObjectError::NoSuchBucket);
        };
        // Like S3: a bucket holding only old versions or delete markers is not empty.
        if !self.list_object_versions(name, "", "", 1).await?.is_empty() {
            return Err(ObjectError::BucketNotEmpty);
        }
        let key = entry_key(BUCKETS_PARTITION_KEY, name.as_bytes());
        self.node.buckets.insert(key, &Lww::new(self.node.stamp_after(seen), None)).await?;
        // After the bucket is gone, so a failure here leaves settings no bucket can show;
        // a bucket created later under this name must not inherit them either.
        self.clear_aliases_of(name).await?;
        self.clear_bucket_quotas(name).await?;
        self.clear_bucket_settings(name).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Guards the persisted layout: `versioning` was a `bool` before `Suspended` existed,
    /// and bucket entries written then must still read as `Unversioned` / `Enabled`.
    #[test]
    fn versioning_reads_the_bool_it_replaced() {
        #[derive(Serialize)]
        struct Before {
            name: String,
            created_ms: u64,
            versioning: bool,
        }
        for (old, new) in [(false, Versioning::Unversioned), (true, Versioning::Enabled)] {
            let bytes =
                crate::codec::encode(&Before { name: "b".into(), created_ms: 7, versioning: old });
            let read: BucketRecord = crate::codec::decode("bucket", &bytes).unwrap();
            assert_eq!(read, BucketRecord { name: "b".into(), created_ms: 7, versioning: new });
            assert_eq!(crate::codec::encode(&read), bytes);
        }
    }
}
