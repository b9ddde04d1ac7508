//! Buckets and objects: the first version of the `ObjectStore` the S3 frontend calls.
//!
//! Bodies up to `body::INLINE_MAX_BYTES` live inline in the object entry; larger ones are
//! cut into content-addressed blocks (see `body`) written before the entry that names them.
//! Still to come with the data-path work: versions, multipart, block reference counts and
//! garbage collection (an overwritten body's blocks are not reclaimed yet).
//!
//! Tables: `bucket` (every bucket under one partition key, so listing buckets is one range
//! read) and `object` (partition key = bucket name, sort key = object key, so listing a
//! bucket is a range read in key order). Entries are last-writer-wins registers holding
//! `None` once deleted, so a delete is ordered against writes like any other write.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub mod body;

use body::Body;

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
    type Entry = Lww<Option<StoredObject>>;
}

/// All buckets live under this partition key.
const BUCKETS_PARTITION_KEY: &[u8] = b"buckets";
/// Entries fetched per range read while listing.
const LIST_BATCH: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BucketRecord {
    pub name: String,
    pub created_ms: u64,
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
    BucketAlreadyExists,
    BucketNotEmpty,
    /// Not enough replicas answered: retry later.
    Unavailable {
        reason: String,
    },
    Internal {
        reason: String,
    },
}

impl std::fmt::Display for ObjectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ObjectError::NoSuchBucket => write!(f, "no such bucket"),
            ObjectError::NoSuchKey => write!(f, "no such key"),
            ObjectError::BucketAlreadyExists => write!(f, "bucket already exists"),
            ObjectError::BucketNotEmpty => write!(f, "bucket not empty"),
            ObjectError::Unavailable { reason } => write!(f, "unavailable: {reason}"),
            ObjectError::Internal { reason } => write!(f, "internal error: {reason}"),
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

fn record(key: &str, stored: &StoredObject, data: Vec<u8>) -> ObjectRecord {
    ObjectRecord {
        key: key.into(),
        size_bytes: stored.size_bytes,
        etag: stored.etag.clone(),
        last_modified_ms: stored.last_modified_ms,
        content_type: stored.content_type.clone(),
        user_metadata: stored.user_metadata.clone(),
        data,
    }
}

impl From<QuorumError> for ObjectError {
    fn from(e: QuorumError) -> Self {
        ObjectError::Unavailable { reason: e.to_string() }
    }
}

pub struct ObjectStore {
    node: Arc<Node>,
}

impl ObjectStore {
    pub fn new(node: Arc<Node>) -> Self {
        ObjectStore { node }
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

    /// The timestamp of the object version a write would replace (0 if none): every write
    /// is stamped above it (see `Node::stamp_after`).
    async fn object_timestamp(&self, bucket: &str, key: &str) -> Result<u64, ObjectError> {
        let entry = self.node.objects.get(&entry_key(bucket.as_bytes(), key.as_bytes())).await?;
        Ok(entry.map_or(0, |e| e.timestamp()))
    }

    pub async fn head_bucket(&self, name: &str) -> Result<BucketRecord, ObjectError> {
        self.bucket(name).await?.ok_or(ObjectError::NoSuchBucket)
    }

    pub async fn create_bucket(&self, name: &str) -> Result<(), ObjectError> {
        let current = self.bucket_entry(name).await?;
        if current.as_ref().is_some_and(|e| e.value().is_some()) {
            return Err(ObjectError::BucketAlreadyExists);
        }
        let seen = current.map_or(0, |e| e.timestamp());
        let created_ms = self.node.seam.clock.now_ms();
        let record = BucketRecord { name: name.into(), created_ms };
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
        if !self.list_objects(name, "", "", 1).await?.is_empty() {
            return Err(ObjectError::BucketNotEmpty);
        }
        let key = entry_key(BUCKETS_PARTITION_KEY, name.as_bytes());
        self.node.buckets.insert(key, &Lww::new(self.node.stamp_after(seen), None)).await?;
        Ok(())
    }

    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        meta: ObjectMeta,
        data: Vec<u8>,
    ) -> Result<ObjectRecord, ObjectError> {
        self.head_bucket(bucket).await?;
        let seen = self.object_timestamp(bucket, key).await?;
        let size_bytes = data.len() as u64;
        // Blocks first: once the entry is visible, everything it names is stored.
        let body = body::store(&self.node.blocks, data, BLOCK_SIZE_BYTES_DEFAULT).await?;
        let stored = StoredObject {
            size_bytes,
            etag: meta.etag,
            last_modified_ms: self.node.seam.clock.now_ms(),
            content_type: meta.content_type,
            user_metadata: meta.user_metadata,
            body,
        };
        let entry = Lww::new(self.node.stamp_after(seen), Some(stored));
        self.node.objects.insert(entry_key(bucket.as_bytes(), key.as_bytes()), &entry).await?;
        Ok(record(key, entry.value().as_ref().expect("just written"), Vec::new()))
    }

    /// The stored form of a live object, or the reason there is none.
    async fn stored(&self, bucket: &str, key: &str) -> Result<StoredObject, ObjectError> {
        let entry = self.node.objects.get(&entry_key(bucket.as_bytes(), key.as_bytes())).await?;
        match entry.and_then(|e| e.into_value()) {
            Some(stored) => Ok(stored),
            None => {
                self.head_bucket(bucket).await?;
                Err(ObjectError::NoSuchKey)
            }
        }
    }

    /// An object with its body.
    pub async fn get_object(&self, bucket: &str, key: &str) -> Result<ObjectRecord, ObjectError> {
        let stored = self.stored(bucket, key).await?;
        let data = body::load(&self.node.blocks, &stored.body).await?;
        debug_assert_eq!(data.len() as u64, stored.size_bytes);
        Ok(record(key, &stored, data))
    }

    /// An object's metadata, without reading its blocks.
    pub async fn head_object(&self, bucket: &str, key: &str) -> Result<ObjectRecord, ObjectError> {
        let stored = self.stored(bucket, key).await?;
        Ok(record(key, &stored, Vec::new()))
    }

    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<(), ObjectError> {
        self.head_bucket(bucket).await?;
        let seen = self.object_timestamp(bucket, key).await?;
        let entry: Lww<Option<StoredObject>> = Lww::new(self.node.stamp_after(seen), None);
        self.node.objects.insert(entry_key(bucket.as_bytes(), key.as_bytes()), &entry).await?;
        Ok(())
    }

    /// Objects of `bucket` whose key starts with `prefix` and sorts after `start_after`,
    /// at most `max_keys`, in key order, without their bodies.
    pub async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: &str,
        max_keys: usize,
    ) -> Result<Vec<ObjectRecord>, ObjectError> {
        self.head_bucket(bucket).await?;
        let mut out = Vec::new();
        let mut after = start_after.as_bytes().to_vec();
        while out.len() < max_keys {
            let page = self
                .node
                .objects
                .get_range(bucket.as_bytes(), prefix.as_bytes(), &after, LIST_BATCH)
                .await?;
            let done = page.len() < LIST_BATCH;
            after = page.last().map(|(k, _)| k.clone()).unwrap_or_default();
            // Deleted objects leave tombstones that take room in a page but are not listed.
            for (sort_key, entry) in page {
                if let Some(stored) = entry.into_value() {
                    let key = String::from_utf8_lossy(&sort_key);
                    out.push(record(&key, &stored, Vec::new()));
                }
            }
            if done {
                break;
            }
        }
        out.truncate(max_keys);
        Ok(out)
    }
}
