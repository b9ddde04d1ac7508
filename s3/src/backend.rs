//! The S3 layer's `ObjectBackend` over the engine's `ObjectStore`.
//!
//! A translation layer only: types are copied field by field and engine errors mapped to
//! the S3 layer's. Two mappings are choices worth stating:
//! - `BucketAlreadyExists` becomes `BucketAlreadyOwnedByYou`: until buckets have owners,
//!   every key may use every bucket, so an existing bucket is always "yours".
//! - `Unavailable` stays `Unavailable` (503), which S3 clients retry; it means a quorum was
//!   not reached, not that the request was wrong.
//! - The engine answers NoSuchKey / NoSuchVersion whether or not a delete marker is in the
//!   way; only after such an answer is the key read again (`delete_marker`) to tell which,
//!   so successful reads cost nothing extra.

use std::sync::Arc;

use bytes::Bytes;
use hangar_engine::objects::body_reader::BodyReader;
use hangar_engine::objects::multipart::UploadMeta;
use hangar_engine::objects::{self, ObjectError, ObjectRecord, ObjectStore, VersionListing};

use crate::s3api::backend::{
    BodySource, CorsRule, Deleted, LifecycleRule, ObjectBody, OpenedObject, PartInfo, UploadInfo,
    VersionInfo, Versioning, WebsiteConfig,
};
use crate::s3api::backend::{Completion, WriteCondition};
use crate::s3api::copy::stream_part_copy;
use crate::s3api::{BackendError, BoxFuture, BucketInfo, ObjectBackend, ObjectInfo, ObjectMeta};

/// The production backend: every S3 operation becomes one `ObjectStore` call.
pub struct EngineBackend {
    store: Arc<ObjectStore>,
}

impl EngineBackend {
    pub fn new(store: Arc<ObjectStore>) -> EngineBackend {
        EngineBackend { store }
    }
}

fn map_err(err: ObjectError) -> BackendError {
    match err {
        ObjectError::NoSuchBucket => BackendError::NoSuchBucket,
        ObjectError::NoSuchKey => BackendError::NoSuchKey,
        ObjectError::NoSuchVersion => BackendError::NoSuchVersion,
        ObjectError::BucketAlreadyExists => BackendError::BucketAlreadyOwnedByYou,
        ObjectError::BucketNotEmpty => BackendError::BucketNotEmpty,
        ObjectError::QuotaExceeded { .. } => {
            BackendError::QuotaExceeded { message: quota_message(&err) }
        }
        // Aliases are managed through the admin API; S3 requests never create one.
        ObjectError::AliasTaken { .. } => BackendError::BucketAlreadyOwnedByYou,
        ObjectError::NoSuchAlias | ObjectError::AliasOfAlias { .. } => {
            BackendError::Internal { reason: err.to_string() }
        }
        ObjectError::NoSuchUpload => BackendError::NoSuchUpload,
        ObjectError::InvalidPart { part_number } => BackendError::InvalidPart { part_number },
        ObjectError::InvalidPartOrder => BackendError::InvalidPartOrder,
        ObjectError::EntityTooSmall { part_number, size_bytes } => {
            BackendError::EntityTooSmall { part_number, size_bytes }
        }
        // The router only passes part numbers S3 allows: reaching this is a bug upstream.
        ObjectError::InvalidPartNumber { part_number } => {
            BackendError::Internal { reason: format!("part number {part_number} passed on") }
        }
        ObjectError::BodyRefused { reason } => BackendError::BodyRefused { reason },
        ObjectError::Unavailable { reason } => BackendError::Unavailable { reason },
        ObjectError::Internal { reason } => BackendError::Internal { reason },
        ObjectError::PreconditionFailed => BackendError::PreconditionFailed,
        ObjectError::ConditionalConflict => BackendError::ConditionalConflict,
    }
}

/// What a client reads when a bucket quota refuses its write.
fn quota_message(err: &ObjectError) -> String {
    let ObjectError::QuotaExceeded { quota, limit, usage, adding } = err else {
        return err.to_string();
    };
    let (what, unit) = match quota {
        objects::usage::Quota::Size => ("size quota", " bytes"),
        objects::usage::Quota::Objects => ("object count quota", " objects"),
    };
    format!(
        "The bucket's {what} of {limit}{unit} would be exceeded: it holds {usage}{unit} and \
         this write adds {adding}{unit}. Delete objects or ask an operator to raise the quota."
    )
}

/// A body read from the engine, a bounded few blocks at a time (`BodyReader`).
struct EngineBody(BodyReader);

impl ObjectBody for EngineBody {
    fn select(&mut self, start: u64, end: u64) {
        self.0.select(start, end);
    }

    fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Bytes>, BackendError>> {
        Box::pin(async move { self.0.next_chunk().await.map_err(map_err) })
    }
}

/// Splits a record into its description and its body.
fn split(record: ObjectRecord) -> (ObjectInfo, Bytes) {
    let info = ObjectInfo {
        key: record.key,
        version_id: record.version_id.to_hex(),
        size_bytes: record.size_bytes,
        etag: record.etag,
        last_modified_ms: record.last_modified_ms,
        content_type: record.content_type,
        user_metadata: record.user_metadata,
    };
    (info, Bytes::from(record.data))
}

fn version_info(line: VersionListing) -> VersionInfo {
    VersionInfo {
        key: line.key,
        version_id: line.version_id.to_hex(),
        is_latest: line.is_latest,
        object: line.object.map(|r| split(r).0),
        last_modified_ms: line.last_modified_ms,
    }
}

impl EngineBackend {
    /// Maps a failed read, telling a delete marker in the way from a missing key/version.
    async fn read_error(
        &self,
        (bucket, key, version_id): (&str, &str, Option<&str>),
        err: ObjectError,
    ) -> BackendError {
        if !matches!(err, ObjectError::NoSuchKey | ObjectError::NoSuchVersion) {
            return map_err(err);
        }
        match self.store.delete_marker(bucket, key, version_id).await {
            Ok(Some(id)) => BackendError::DeleteMarker { version_id: id.to_hex() },
            Ok(None) => map_err(err),
            Err(e) => map_err(e),
        }
    }
}

/// A plain hex MD5 ETag: the part ETag S3 clients expect (and `multipart_etag` reads).
fn is_md5_etag(etag: &str) -> bool {
    etag.len() == 32 && etag.bytes().all(|b| b.is_ascii_hexdigit())
}

impl ObjectBackend for EngineBackend {
    fn as_dyn(&self) -> &dyn ObjectBackend {
        self
    }

    /// By reference: the copy shares the source's blocks (`ObjectStore::copy_object`).
    fn copy_object<'a>(
        &'a self,
        source: (&'a str, &'a str, &'a str),
        (bucket, key): (&'a str, &'a str),
        meta: ObjectMeta,
    ) -> BoxFuture<'a, Result<ObjectInfo, BackendError>> {
        Box::pin(async move {
            let meta =
                UploadMeta { content_type: meta.content_type, user_metadata: meta.user_metadata };
            let record = self.store.copy_object(source, bucket, key, meta).await;
            Ok(split(record.map_err(map_err)?).0)
        })
    }

    /// A whole object whose ETag is a plain MD5 (so a valid part ETag) becomes the part by
    /// reference; a range, an inline body or a multipart source's `…-N` ETag is streamed
    /// (the part's ETag must then be the MD5 of the bytes).
    fn upload_part_copy<'a>(
        &'a self,
        upload: (&'a str, &'a str, &'a str),
        part_number: u32,
        source: (&'a str, &'a str, &'a str),
        range: Option<(u64, u64)>,
    ) -> BoxFuture<'a, Result<String, BackendError>> {
        Box::pin(async move {
            if range.is_none() {
                let head = self.store.head_object_version(source.0, source.1, Some(source.2));
                if is_md5_etag(&head.await.map_err(map_err)?.etag) {
                    let by_ref = self.store.upload_part_copy(upload, part_number, source).await;
                    if let Some(etag) = by_ref.map_err(map_err)? {
                        return Ok(etag);
                    }
                }
            }
            let streamed = stream_part_copy(self, upload, part_number, source, range);
            streamed.await
        })
    }

    fn list_buckets(&self) -> BoxFuture<'_, Result<Vec<BucketInfo>, BackendError>> {
        Box::pin(async move {
            let buckets = self.store.list_buckets().await.map_err(map_err)?;
            let infos = buckets
                .into_iter()
                .map(|b| BucketInfo { name: b.name, created_ms: b.created_ms })
                .collect();
            Ok(infos)
        })
    }

    fn create_bucket<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move { self.store.create_bucket(bucket).await.map_err(map_err) })
    }

    fn head_bucket<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            self.store.head_bucket(bucket).await.map_err(map_err)?;
            Ok(())
        })
    }

    fn alias_target<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, BackendError>> {
        Box::pin(async move { self.store.alias_target(name).await.map_err(map_err) })
    }

    fn bucket_aliases(&self) -> BoxFuture<'_, Result<Vec<(String, String)>, BackendError>> {
        Box::pin(async move {
            let aliases = self.store.list_aliases().await.map_err(map_err)?;
            Ok(aliases.into_iter().map(|(alias, record)| (alias, record.bucket)).collect())
        })
    }

    fn delete_bucket<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move { self.store.delete_bucket(bucket).await.map_err(map_err) })
    }

    fn put_object<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        meta: ObjectMeta,
        body: &'a mut dyn BodySource,
    ) -> BoxFuture<'a, Result<ObjectInfo, BackendError>> {
        Box::pin(async move {
            let meta =
                UploadMeta { content_type: meta.content_type, user_metadata: meta.user_metadata };
            let record = self.store.put_object_stream(bucket, key, meta, body).await;
            Ok(split(record.map_err(map_err)?).0)
        })
    }

    fn put_object_if<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        meta: ObjectMeta,
        body: &'a mut dyn BodySource,
        condition: &'a WriteCondition,
    ) -> BoxFuture<'a, Result<ObjectInfo, BackendError>> {
        Box::pin(async move {
            let meta =
                UploadMeta { content_type: meta.content_type, user_metadata: meta.user_metadata };
            let put = self.store.put_object_stream_if(bucket, key, meta, body, Some(condition));
            Ok(split(put.await.map_err(map_err)?).0)
        })
    }

    fn get_object<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        version_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<OpenedObject, BackendError>> {
        Box::pin(async move {
            match self.store.open_object(bucket, key, version_id).await {
                Ok((record, reader)) => {
                    let body: Box<dyn ObjectBody> = Box::new(EngineBody(reader));
                    Ok((split(record).0, body))
                }
                Err(e) => Err(self.read_error((bucket, key, version_id), e).await),
            }
        })
    }

    fn head_object<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        version_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<ObjectInfo, BackendError>> {
        // Metadata only: the body's blocks are not read.
        Box::pin(async move {
            match self.store.head_object_version(bucket, key, version_id).await {
                Ok(record) => Ok(split(record).0),
                Err(e) => Err(self.read_error((bucket, key, version_id), e).await),
            }
        })
    }

    fn delete_object<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        version_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Deleted, BackendError>> {
        Box::pin(async move {
            let Some(version) = version_id else {
                let id = self.store.delete_object(bucket, key).await.map_err(map_err)?;
                return Ok(Deleted { version_id: id.to_hex(), delete_marker: true });
            };
            // Read first only to say whether it was a marker (S3 tells the client so).
            let marker = self.store.delete_marker(bucket, key, Some(version)).await;
            let delete_marker = marker.map_err(map_err)?.is_some();
            self.store.delete_object_version(bucket, key, version).await.map_err(map_err)?;
            Ok(Deleted { version_id: version.to_string(), delete_marker })
        })
    }

    fn get_bucket_versioning<'a>(
        &'a self,
        bucket: &'a str,
    ) -> BoxFuture<'a, Result<Versioning, BackendError>> {
        Box::pin(async move {
            let record = self.store.head_bucket(bucket).await.map_err(map_err)?;
            Ok(match record.versioning {
                objects::Versioning::Unversioned => Versioning::Unversioned,
                objects::Versioning::Enabled => Versioning::Enabled,
                objects::Versioning::Suspended => Versioning::Suspended,
            })
        })
    }

    fn get_bucket_cors<'a>(
        &'a self,
        bucket: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<CorsRule>>, BackendError>> {
        Box::pin(async move { self.store.bucket_cors(bucket).await.map_err(map_err) })
    }

    fn put_bucket_cors<'a>(
        &'a self,
        bucket: &'a str,
        rules: Option<Vec<CorsRule>>,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move { self.store.set_bucket_cors(bucket, rules).await.map_err(map_err) })
    }

    fn put_bucket_versioning<'a>(
        &'a self,
        bucket: &'a str,
        state: Versioning,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        let state = match state {
            Versioning::Unversioned => objects::Versioning::Unversioned,
            Versioning::Enabled => objects::Versioning::Enabled,
            Versioning::Suspended => objects::Versioning::Suspended,
        };
        Box::pin(async move { self.store.set_versioning(bucket, state).await.map_err(map_err) })
    }

    fn list_object_versions<'a>(
        &'a self,
        bucket: &'a str,
        prefix: &'a str,
        start_after: &'a str,
        max_keys: usize,
    ) -> BoxFuture<'a, Result<Vec<VersionInfo>, BackendError>> {
        Box::pin(async move {
            let lines = self.store.list_object_versions(bucket, prefix, start_after, max_keys);
            Ok(lines.await.map_err(map_err)?.into_iter().map(version_info).collect())
        })
    }

    fn list_objects<'a>(
        &'a self,
        bucket: &'a str,
        prefix: &'a str,
        start_after: &'a str,
        max_keys: usize,
    ) -> BoxFuture<'a, Result<Vec<ObjectInfo>, BackendError>> {
        Box::pin(async move {
            let records = self
                .store
                .list_objects(bucket, prefix, start_after, max_keys)
                .await
                .map_err(map_err)?;
            Ok(records.into_iter().map(|r| split(r).0).collect())
        })
    }

    fn create_multipart_upload<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        meta: ObjectMeta,
    ) -> BoxFuture<'a, Result<String, BackendError>> {
        let meta =
            UploadMeta { content_type: meta.content_type, user_metadata: meta.user_metadata };
        Box::pin(async move {
            self.store.create_multipart_upload(bucket, key, meta).await.map_err(map_err)
        })
    }

    fn upload_part<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        upload_id: &'a str,
        part_number: u32,
        body: &'a mut dyn BodySource,
    ) -> BoxFuture<'a, Result<String, BackendError>> {
        Box::pin(async move {
            let stored = self.store.upload_part_stream(bucket, key, upload_id, part_number, body);
            stored.await.map_err(map_err)
        })
    }

    fn complete_multipart_upload<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        upload_id: &'a str,
        parts: Vec<(u32, String)>,
        completion: Completion,
    ) -> BoxFuture<'a, Result<ObjectInfo, BackendError>> {
        Box::pin(async move {
            let upload = (bucket, key, upload_id);
            let completion = (completion.etag, completion.extra_metadata);
            let done = self.store.complete_multipart_upload_with(upload, &parts, completion, None);
            Ok(split(done.await.map_err(map_err)?).0)
        })
    }

    fn complete_multipart_upload_if<'a>(
        &'a self,
        upload: (&'a str, &'a str, &'a str),
        parts: Vec<(u32, String)>,
        completion: Completion,
        condition: &'a WriteCondition,
    ) -> BoxFuture<'a, Result<ObjectInfo, BackendError>> {
        Box::pin(async move {
            let completion = (completion.etag, completion.extra_metadata);
            let done = self.store.complete_multipart_upload_with(
                upload,
                &parts,
                completion,
                Some(condition),
            );
            Ok(split(done.await.map_err(map_err)?).0)
        })
    }

    fn multipart_upload_meta<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        upload_id: &'a str,
    ) -> BoxFuture<'a, Result<ObjectMeta, BackendError>> {
        Box::pin(async move {
            let meta = self.store.upload_meta(bucket, key, upload_id).await.map_err(map_err)?;
            Ok(ObjectMeta { content_type: meta.content_type, user_metadata: meta.user_metadata })
        })
    }

    fn abort_multipart_upload<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        upload_id: &'a str,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            self.store.abort_multipart_upload(bucket, key, upload_id).await.map_err(map_err)
        })
    }

    fn list_parts<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        upload_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<PartInfo>, BackendError>> {
        Box::pin(async move {
            let parts = self.store.list_parts(bucket, key, upload_id).await.map_err(map_err)?;
            let infos = parts.into_iter().map(|p| PartInfo {
                part_number: p.part_number,
                etag: p.etag,
                size_bytes: p.size_bytes,
                last_modified_ms: p.last_modified_ms,
            });
            Ok(infos.collect())
        })
    }

    fn list_multipart_uploads<'a>(
        &'a self,
        bucket: &'a str,
        prefix: &'a str,
        max_uploads: usize,
    ) -> BoxFuture<'a, Result<Vec<UploadInfo>, BackendError>> {
        Box::pin(async move {
            let uploads = self.store.list_multipart_uploads(bucket, prefix, max_uploads).await;
            let infos = uploads.map_err(map_err)?.into_iter().map(|u| UploadInfo {
                key: u.key,
                upload_id: u.upload_id,
                initiated_ms: u.initiated_ms,
                user_metadata: u.meta.user_metadata,
            });
            Ok(infos.collect())
        })
    }

    fn get_bucket_website<'a>(
        &'a self,
        bucket: &'a str,
    ) -> BoxFuture<'a, Result<Option<WebsiteConfig>, BackendError>> {
        Box::pin(async move { self.store.bucket_website(bucket).await.map_err(map_err) })
    }

    fn put_bucket_website<'a>(
        &'a self,
        bucket: &'a str,
        config: Option<WebsiteConfig>,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(
            async move { self.store.set_bucket_website(bucket, config).await.map_err(map_err) },
        )
    }

    fn get_bucket_lifecycle<'a>(
        &'a self,
        bucket: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<LifecycleRule>>, BackendError>> {
        Box::pin(async move { self.store.bucket_lifecycle(bucket).await.map_err(map_err) })
    }

    fn put_bucket_lifecycle<'a>(
        &'a self,
        bucket: &'a str,
        rules: Option<Vec<LifecycleRule>>,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(
            async move { self.store.set_bucket_lifecycle(bucket, rules).await.map_err(map_err) },
        )
    }
}
