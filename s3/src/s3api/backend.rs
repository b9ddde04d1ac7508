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
pub use hangar_engine::objects::body::{BodyEnd, BodyRefused, BodySource, BodySummary};
pub use hangar_engine::objects::bucket_config::{
    CorsRule, Expiration, LifecycleRule, RoutingRule, WebsiteConfig, WebsiteRedirect,
};
pub use hangar_engine::objects::conditional::WriteCondition;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One bucket as listed by ListBuckets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketInfo {
    pub name: String,
    pub created_ms: u64,
}

/// What the client supplies with a PUT, stored verbatim next to the body. (The ETag is
/// the body source's to say, once the body is in: `BodyEnd`.)
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectMeta {
    pub content_type: String,
    /// `x-amz-meta-*` headers, names lowercased and without the prefix.
    pub user_metadata: BTreeMap<String, String>,
}

/// An object's description and its (not yet read) body.
pub type OpenedObject = (ObjectInfo, Box<dyn ObjectBody>);

/// An object's body as a backend hands it out: nothing is read until `next_chunk`.
pub trait ObjectBody: Send {
    /// Narrows the body to bytes `start..end` (exclusive); only before the first read.
    fn select(&mut self, start: u64, end: u64);

    /// The next piece, `None` after the last.
    fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Bytes>, BackendError>>;
}

/// A bucket's versioning state (see `versions.rs` for what the S3 layer makes of it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Versioning {
    /// Never versioned: GetBucketVersioning answers an empty configuration.
    Unversioned,
    /// Every write adds a version, kept until deleted by id.
    Enabled,
    /// Once versioned, now off: new writes replace the current version, history stays.
    Suspended,
}

impl Versioning {
    /// Versions written now are kept until deleted by id.
    pub fn keeps_history(self) -> bool {
        self == Versioning::Enabled
    }
}

/// A stored object's description, as returned by HEAD, GET and listings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    /// The version this is (see `valid_version_id`); every write gets one, versioned
    /// bucket or not: the S3 layer decides when to show it.
    pub version_id: String,
    pub size_bytes: u64,
    /// Unquoted; the HTTP layer adds the quotes S3 clients expect.
    pub etag: String,
    pub last_modified_ms: u64,
    pub content_type: String,
    pub user_metadata: BTreeMap<String, String>,
}

/// What completing a multipart upload writes besides the parts' bytes: the object's ETag
/// and metadata only the completion knows (its checksum, `multipart.rs`), added to the
/// metadata the upload was created with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Completion {
    /// Unquoted.
    pub etag: String,
    pub extra_metadata: BTreeMap<String, String>,
}

/// One part of an unfinished multipart upload (the newest upload of its number).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartInfo {
    pub part_number: u32,
    /// Unquoted, as for objects.
    pub etag: String,
    pub size_bytes: u64,
    pub last_modified_ms: u64,
}

/// One unfinished multipart upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadInfo {
    pub key: String,
    pub upload_id: String,
    pub initiated_ms: u64,
    /// The upload's user metadata (where a declared checksum is kept, `mpu_checksum`).
    pub user_metadata: BTreeMap<String, String>,
}

/// One line of a version listing: an object version or a delete marker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionInfo {
    pub key: String,
    pub version_id: String,
    /// The key's current version.
    pub is_latest: bool,
    /// The object, or `None` for a delete marker.
    pub object: Option<ObjectInfo>,
    pub last_modified_ms: u64,
}

/// What a DELETE did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deleted {
    /// The delete marker written (a plain delete), or the version removed (by id).
    pub version_id: String,
    /// A delete marker was written, or the version removed by id was one.
    pub delete_marker: bool,
}

/// Backends name versions with 32 lowercase hex digits that sort, within a key, in the
/// order the versions were written (the engine's `VersionId::to_hex`). The S3 layer
/// refuses any other `versionId` before asking the backend, and pages version listings by
/// comparing ids.
pub fn valid_version_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Every part but the last of a completed multipart upload must be at least this large.
pub const PART_SIZE_BYTES_MIN: u64 = 5 * 1024 * 1024;

/// Faults a backend reports. All but the last two are answers S3 defines; the last two
/// are operating faults (a quorum not reached, a disk error) that clients may retry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendError {
    NoSuchBucket,
    NoSuchKey,
    /// The version named does not exist (or no longer does).
    NoSuchVersion,
    /// The version read (the current one, or the one named) is a delete marker.
    DeleteMarker {
        version_id: String,
    },
    BucketAlreadyOwnedByYou,
    BucketNotEmpty,
    /// The write would take the bucket over a quota; the message says which and by how much.
    QuotaExceeded {
        message: String,
    },
    /// No unfinished multipart upload has this id under this key.
    NoSuchUpload,
    /// A completion names a part that was not uploaded, or not with that ETag.
    InvalidPart {
        part_number: u32,
    },
    /// A completion's parts are not strictly ascending.
    InvalidPartOrder,
    /// A part other than the last is below the minimum part size.
    EntityTooSmall {
        part_number: u32,
        size_bytes: u64,
    },
    /// The body source refused the body (it knows why); nothing was stored.
    BodyRefused {
        reason: String,
    },
    /// Not enough replicas reachable right now; S3 clients retry a 503.
    Unavailable {
        reason: String,
    },
    Internal {
        reason: String,
    },
    /// A conditional write's condition does not hold.
    PreconditionFailed,
    /// A conditional write lost to concurrent writes of the key; retrying may succeed.
    ConditionalConflict,
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendError::NoSuchBucket => f.write_str("no such bucket"),
            BackendError::NoSuchKey => f.write_str("no such key"),
            BackendError::NoSuchVersion => f.write_str("no such version"),
            BackendError::DeleteMarker { version_id } => write!(f, "delete marker {version_id}"),
            BackendError::BucketAlreadyOwnedByYou => f.write_str("bucket already exists"),
            BackendError::BucketNotEmpty => f.write_str("bucket not empty"),
            BackendError::QuotaExceeded { message } => f.write_str(message),
            BackendError::NoSuchUpload => f.write_str("no such upload"),
            BackendError::InvalidPart { part_number } => write!(f, "invalid part {part_number}"),
            BackendError::InvalidPartOrder => f.write_str("parts not in ascending order"),
            BackendError::EntityTooSmall { part_number, size_bytes } => {
                write!(f, "part {part_number} too small ({size_bytes} bytes)")
            }
            BackendError::BodyRefused { reason } => write!(f, "body refused: {reason}"),
            BackendError::Unavailable { reason } => write!(f, "unavailable: {reason}"),
            BackendError::Internal { reason } => write!(f, "internal: {reason}"),
            BackendError::PreconditionFailed => f.write_str("precondition failed"),
            BackendError::ConditionalConflict => f.write_str("conditional write conflict"),
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

    /// The bucket `name` is an alias of, or `None` (`s3api::alias`). No aliases by default.
    fn alias_target<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, BackendError>> {
        let _ = name;
        Box::pin(async { Ok(None) })
    }

    /// Every alias and the bucket it names, in alias order.
    fn bucket_aliases(&self) -> BoxFuture<'_, Result<Vec<(String, String)>, BackendError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// `BucketNotEmpty` while it holds objects, `NoSuchBucket` if absent.
    fn delete_bucket<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, Result<(), BackendError>>;

    /// Replaces any existing object under `key` with the body read from `body`, once its
    /// `finish` accepted it (the ETag and extra metadata are what `finish` answers). A
    /// refused or broken body stores nothing visible (`BodyRefused`).
    fn put_object<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        meta: ObjectMeta,
        body: &'a mut dyn BodySource,
    ) -> BoxFuture<'a, Result<ObjectInfo, BackendError>>;

    /// As `put_object`, but the object replaces the current one only if `condition` holds
    /// on it (If-None-Match: `*`, If-Match: an ETag): `PreconditionFailed` if not,
    /// `NoSuchKey` for If-Match without a current object, `ConditionalConflict` when
    /// concurrent writes won. Conditional writes of a key are linearizable.
    fn put_object_if<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        meta: ObjectMeta,
        body: &'a mut dyn BodySource,
        condition: &'a WriteCondition,
    ) -> BoxFuture<'a, Result<ObjectInfo, BackendError>>;

    /// The current version, or the one named by `version_id` (a `valid_version_id`).
    /// `NoSuchKey` if absent, `NoSuchVersion` if the named version is, `DeleteMarker` if
    /// the version read is one.
    fn get_object<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        version_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<OpenedObject, BackendError>>;

    /// As `get_object`, without the body.
    fn head_object<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        version_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<ObjectInfo, BackendError>>;

    /// Without `version_id`: writes a delete marker (kept as history if versioning is
    /// `Enabled`). With one: removes that version for good. Idempotent: deleting an absent
    /// key or version succeeds (S3 answers 204 either way).
    fn delete_object<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        version_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Deleted, BackendError>>;

    /// `NoSuchBucket` if absent.
    fn get_bucket_versioning<'a>(
        &'a self,
        bucket: &'a str,
    ) -> BoxFuture<'a, Result<Versioning, BackendError>>;

    /// The bucket's CORS rules (`None`: never set or deleted). `NoSuchBucket` if absent.
    fn get_bucket_cors<'a>(
        &'a self,
        bucket: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<CorsRule>>, BackendError>>;

    /// Replaces (`Some`, already validated by `cors.rs`) or removes (`None`) the rules.
    fn put_bucket_cors<'a>(
        &'a self,
        bucket: &'a str,
        rules: Option<Vec<CorsRule>>,
    ) -> BoxFuture<'a, Result<(), BackendError>>;

    /// Sets `Enabled` or `Suspended` (the S3 layer never asks for `Unversioned`).
    fn put_bucket_versioning<'a>(
        &'a self,
        bucket: &'a str,
        state: Versioning,
    ) -> BoxFuture<'a, Result<(), BackendError>>;

    /// Every version (objects and delete markers) of the keys starting with `prefix` and
    /// strictly greater than `start_after`, by key, newest version first within a key, for
    /// at most `max_keys` keys — all of a key's versions or none.
    fn list_object_versions<'a>(
        &'a self,
        bucket: &'a str,
        prefix: &'a str,
        start_after: &'a str,
        max_keys: usize,
    ) -> BoxFuture<'a, Result<Vec<VersionInfo>, BackendError>>;

    /// At most `max_keys` objects whose key starts with `prefix` and is strictly greater
    /// than `start_after`, sorted by key (byte order of the UTF-8 encoding).
    fn list_objects<'a>(
        &'a self,
        bucket: &'a str,
        prefix: &'a str,
        start_after: &'a str,
        max_keys: usize,
    ) -> BoxFuture<'a, Result<Vec<ObjectInfo>, BackendError>>;

    /// Stores version `source` (bucket, key, exact version id) as a new version of `dest`
    /// with `meta` and the source's body and ETag. `NoSuchVersion` if that version is gone.
    /// By default the body is read and written again; a backend that can share stored data
    /// (the engine: content-addressed blocks) overrides this.
    fn copy_object<'a>(
        &'a self,
        source: (&'a str, &'a str, &'a str),
        dest: (&'a str, &'a str),
        meta: ObjectMeta,
    ) -> BoxFuture<'a, Result<ObjectInfo, BackendError>> {
        Box::pin(super::copy::stream_copy_object(self.as_dyn(), source, dest, meta))
    }

    /// Stores version `source` (or the bytes `range.0..range.1` of it) as part
    /// `part_number` of an open upload; returns the part's ETag (the source's for a whole
    /// object stored by reference, else the hex MD5 of the bytes). By default streamed
    /// through `upload_part`.
    fn upload_part_copy<'a>(
        &'a self,
        upload: (&'a str, &'a str, &'a str),
        part_number: u32,
        source: (&'a str, &'a str, &'a str),
        range: Option<(u64, u64)>,
    ) -> BoxFuture<'a, Result<String, BackendError>> {
        let copy = super::copy::stream_part_copy(self.as_dyn(), upload, part_number, source, range);
        Box::pin(copy)
    }

    /// `self` as a trait object (for the default methods above, which call free functions).
    fn as_dyn(&self) -> &dyn ObjectBackend;

    // ---- multipart uploads (see `multipart.rs` for the S3 side) ----

    /// Starts an upload of `key` and returns its id.
    fn create_multipart_upload<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        meta: ObjectMeta,
    ) -> BoxFuture<'a, Result<String, BackendError>>;

    /// Stores part `part_number` (1..=10000, checked by the caller) from `body`, as
    /// `put_object` does; a number uploaded again replaces the earlier upload. Returns the
    /// part's ETag (from `finish`). `NoSuchUpload` if the upload is not open.
    fn upload_part<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        upload_id: &'a str,
        part_number: u32,
        body: &'a mut dyn BodySource,
    ) -> BoxFuture<'a, Result<String, BackendError>>;

    /// Makes the listed parts, concatenated, the object under `key`, as `completion` says.
    /// `parts` are (part number, unquoted ETag); the rules are `check_parts`'s.
    /// A retry of a completion that succeeded answers the same object.
    fn complete_multipart_upload<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        upload_id: &'a str,
        parts: Vec<(u32, String)>,
        completion: Completion,
    ) -> BoxFuture<'a, Result<ObjectInfo, BackendError>>;

    /// As `complete_multipart_upload`, made current only if `condition` holds (as for
    /// `put_object_if`); a refusal leaves the upload open.
    fn complete_multipart_upload_if<'a>(
        &'a self,
        upload: (&'a str, &'a str, &'a str),
        parts: Vec<(u32, String)>,
        completion: Completion,
        condition: &'a WriteCondition,
    ) -> BoxFuture<'a, Result<ObjectInfo, BackendError>>;

    /// The content type and metadata an upload was created with (finished or not).
    /// `NoSuchUpload` if there is no such upload.
    fn multipart_upload_meta<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        upload_id: &'a str,
    ) -> BoxFuture<'a, Result<ObjectMeta, BackendError>>;

    /// Abandons an upload and frees its parts. Aborting an aborted upload succeeds.
    fn abort_multipart_upload<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        upload_id: &'a str,
    ) -> BoxFuture<'a, Result<(), BackendError>>;

    /// The parts of an open upload, in part order.
    fn list_parts<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        upload_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<PartInfo>, BackendError>>;

    /// At most `max_uploads` open uploads of keys starting with `prefix`, by key, then by
    /// upload id.
    fn list_multipart_uploads<'a>(
        &'a self,
        bucket: &'a str,
        prefix: &'a str,
        max_uploads: usize,
    ) -> BoxFuture<'a, Result<Vec<UploadInfo>, BackendError>>;

    // ---- website and lifecycle settings (`website.rs`, `lifecycle.rs`) ----

    /// The bucket's website configuration (`None`: never set or deleted). `NoSuchBucket`
    /// if absent.
    fn get_bucket_website<'a>(
        &'a self,
        bucket: &'a str,
    ) -> BoxFuture<'a, Result<Option<WebsiteConfig>, BackendError>>;

    /// Replaces (`Some`, validated by `website.rs`) or removes (`None`) it.
    fn put_bucket_website<'a>(
        &'a self,
        bucket: &'a str,
        config: Option<WebsiteConfig>,
    ) -> BoxFuture<'a, Result<(), BackendError>>;

    /// The bucket's lifecycle rules (`None`: never set or deleted). `NoSuchBucket` if absent.
    fn get_bucket_lifecycle<'a>(
        &'a self,
        bucket: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<LifecycleRule>>, BackendError>>;

    /// Replaces (`Some`, validated by `lifecycle.rs`) or removes (`None`) them.
    fn put_bucket_lifecycle<'a>(
        &'a self,
        bucket: &'a str,
        rules: Option<Vec<LifecycleRule>>,
    ) -> BoxFuture<'a, Result<(), BackendError>>;
}

/// The completion rules every backend applies to the client's list of parts against the
/// parts it holds (the newest upload of each number): strictly ascending part numbers,
/// each uploaded with that ETag, all but the last at least `PART_SIZE_BYTES_MIN`.
pub fn check_parts(
    chosen: &[(u32, String)],
    uploaded: &BTreeMap<u32, PartInfo>,
) -> Result<(), BackendError> {
    if chosen.is_empty() || chosen.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(BackendError::InvalidPartOrder);
    }
    for (i, (part_number, etag)) in chosen.iter().enumerate() {
        let part = uploaded.get(part_number).filter(|p| p.etag == *etag);
        let part = part.ok_or(BackendError::InvalidPart { part_number: *part_number })?;
        if i + 1 < chosen.len() && part.size_bytes < PART_SIZE_BYTES_MIN {
            let (part_number, size_bytes) = (*part_number, part.size_bytes);
            return Err(BackendError::EntityTooSmall { part_number, size_bytes });
        }
    }
    Ok(())
}
