//! The storage seam under the S3 API.
//!
//! The HTTP layer speaks S3; everything it stores goes through `ObjectBackend`. Two
//! implementations are meant to exist: `MemoryBackend` (tests, the demo server) and the
//! replicated engine. The trait is object-safe (boxed futures) so the server holds an
//! `Arc<dyn ObjectBackend>` and does not become generic over the engine.
//!
//! What belongs here and what does not: S3 protocol details (ETag format, XML, auth,
//! listing with delimiters, ranges) stay in the HTTP layer. The backend stores opaque
//! values and answers ordered key scans; `list_objects` is a plain range scan so that
//! delimiter roll-up and pagination tokens are written once, above the seam.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One bucket as listed by ListBuckets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketInfo {
    pub name: String,
    pub created_ms: u64,
}

/// What the client supplies with a PUT, stored verbatim next to the body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectMeta {
    pub content_type: String,
    /// `x-amz-meta-*` headers, names lowercased and without the prefix.
    pub user_metadata: BTreeMap<String, String>,
    /// Computed by the S3 layer (the hex MD5 of the body for a simple PUT, unquoted). The
    /// backend stores it as an opaque string: multipart ETags will have another shape.
    pub etag: String,
}

/// A stored object's description, as returned by HEAD, GET and listings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size_bytes: u64,
    /// Unquoted; the HTTP layer adds the quotes S3 clients expect.
    pub etag: String,
    pub last_modified_ms: u64,
    pub content_type: String,
    pub user_metadata: BTreeMap<String, String>,
}

/// Faults a backend reports. The first four are answers S3 defines; the last two are
/// operating faults (a quorum not reached, a disk error) that clients may retry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendError {
    NoSuchBucket,
    NoSuchKey,
    BucketAlreadyOwnedByYou,
    BucketNotEmpty,
    /// Not enough replicas reachable right now; S3 clients retry a 503.
    Unavailable {
        reason: String,
    },
    Internal {
        reason: String,
    },
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendError::NoSuchBucket => f.write_str("no such bucket"),
            BackendError::NoSuchKey => f.write_str("no such key"),
            BackendError::BucketAlreadyOwnedByYou => f.write_str("bucket already exists"),
            BackendError::BucketNotEmpty => f.write_str("bucket not empty"),
            BackendError::Unavailable { reason } => write!(f, "unavailable: {reason}"),
            BackendError::Internal { reason } => write!(f, "internal: {reason}"),
        }
    }
}

impl std::error::Error for BackendError {}

/// Object storage as the S3 layer needs it. All methods are safe to retry except
/// `create_bucket` (the second call answers `BucketAlreadyOwnedByYou`).
pub trait ObjectBackend: Send + Sync + 'static {
    fn list_buckets(&self) -> BoxFuture<'_, Result<Vec<BucketInfo>, BackendError>>;

    /// `BucketAlreadyOwnedByYou` if the bucket exists.
    fn create_bucket<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, Result<(), BackendError>>;

    /// `NoSuchBucket` if absent.
    fn head_bucket<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, Result<(), BackendError>>;

    /// `BucketNotEmpty` while it holds objects, `NoSuchBucket` if absent.
    fn delete_bucket<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, Result<(), BackendError>>;

    /// Replaces any existing object under `key`.
    fn put_object<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        meta: ObjectMeta,
        body: Bytes,
    ) -> BoxFuture<'a, Result<ObjectInfo, BackendError>>;

    /// `NoSuchKey` if absent.
    fn get_object<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<(ObjectInfo, Bytes), BackendError>>;

    /// `NoSuchKey` if absent.
    fn head_object<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<ObjectInfo, BackendError>>;

    /// Idempotent: deleting an absent key succeeds (S3 answers 204 either way).
    fn delete_object<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<(), BackendError>>;

    /// At most `max_keys` objects whose key starts with `prefix` and is strictly greater
    /// than `start_after`, sorted by key (byte order of the UTF-8 encoding).
    fn list_objects<'a>(
        &'a self,
        bucket: &'a str,
        prefix: &'a str,
        start_after: &'a str,
        max_keys: usize,
    ) -> BoxFuture<'a, Result<Vec<ObjectInfo>, BackendError>>;
}
