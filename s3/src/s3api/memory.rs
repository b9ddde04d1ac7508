//! In-memory `ObjectBackend` for tests and the demo server.
//!
//! One mutex over ordered maps: listings come out sorted for free, and every operation is
//! atomic, which is the behaviour the replicated engine must imitate as seen by one client.
//! The lock is never held across an await (each method completes before returning its
//! future), so a std mutex is right here.
//!
//! Versions follow the engine's rule (docs/data-model.md): a write made while versioning is
//! not `Enabled` drops the key's older versions that were not kept as history.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;

use super::WallClock;
use md5::{Digest, Md5};

use super::backend::{
    BackendError, BodyEnd, BodyRefused, BodySource, BodySummary, BoxFuture, BucketInfo, Completion,
    CorsRule, Deleted, LifecycleRule, ObjectBackend, ObjectBody, ObjectInfo, ObjectMeta,
    OpenedObject, PartInfo, UploadInfo, VersionInfo, Versioning, WebsiteConfig, check_parts,
};

struct Bucket {
    created_ms: u64,
    versioning: Versioning,
    /// Each key's versions, oldest first.
    objects: BTreeMap<String, Vec<Version>>,
    /// Multipart uploads by (key, upload id).
    uploads: BTreeMap<(String, String), Upload>,
    /// CORS rules (`cors.rs`); none until PutBucketCors.
    cors: Option<Vec<CorsRule>>,
    /// Website configuration and lifecycle rules; none until set.
    website: Option<WebsiteConfig>,
    lifecycle: Option<Vec<LifecycleRule>>,
}

struct Version {
    version_id: String,
    /// Written while versioning was `Enabled`: only a delete by id removes it.
    kept: bool,
    /// The object and its body, or `None` for a delete marker.
    object: Option<(ObjectInfo, Bytes)>,
    last_modified_ms: u64,
}

impl Bucket {
    /// Makes `version` the key's current one.
    fn push(&mut self, key: &str, version: Version) {
        let versions = self.objects.entry(key.to_string()).or_default();
        if !version.kept {
            versions.retain(|v| v.kept);
        }
        versions.push(version);
    }

    /// The current version, or the one named.
    fn read(
        &self,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<&(ObjectInfo, Bytes), BackendError> {
        let versions = self.objects.get(key).map(Vec::as_slice).unwrap_or_default();
        let found = match version_id {
            None => versions.last().ok_or(BackendError::NoSuchKey)?,
            Some(id) => {
                versions.iter().find(|v| v.version_id == id).ok_or(BackendError::NoSuchVersion)?
            }
        };
        let marker = || BackendError::DeleteMarker { version_id: found.version_id.clone() };
        found.object.as_ref().ok_or_else(marker)
    }

    /// Keys whose current version is an object (not a delete marker).
    fn current_objects(&self) -> impl Iterator<Item = &ObjectInfo> {
        self.objects.values().filter_map(|v| v.last()?.object.as_ref().map(|(info, _)| info))
    }
}

struct Upload {
    meta: ObjectMeta,
    initiated_ms: u64,
    parts: BTreeMap<u32, (PartInfo, Bytes)>,
    /// `Some(object)` once completed, `Some(None)` once aborted (retries answer alike).
    finished: Option<Option<ObjectInfo>>,
}

pub struct MemoryBackend {
    clock: WallClock,
    buckets: Mutex<BTreeMap<String, Bucket>>,
    /// Upload ids are this counter in 32 hex digits, so they sort by creation.
    upload_seq: AtomicU64,
    /// Version ids likewise (`valid_version_id`).
    version_seq: AtomicU64,
}

impl MemoryBackend {
    pub fn new(clock: WallClock) -> MemoryBackend {
        let buckets = Mutex::new(BTreeMap::new());
        let (upload_seq, version_seq) = (AtomicU64::new(0), AtomicU64::new(0));
        MemoryBackend { clock, buckets, upload_seq, version_seq }
    }

    fn next_version_id(&self) -> String {
        format!("{:032x}", self.version_seq.fetch_add(1, Ordering::Relaxed))
    }

    /// Runs `f` on an upload that is still open.
    fn with_open_upload<T>(
        &self,
        (bucket, key, upload_id): (&str, &str, &str),
        f: impl FnOnce(&mut Upload) -> T,
    ) -> Result<T, BackendError> {
        self.with_bucket(bucket, |b| {
            let id = (key.to_string(), upload_id.to_string());
            let upload = b.uploads.get_mut(&id).filter(|u| u.finished.is_none());
            let upload = upload.ok_or(BackendError::NoSuchUpload)?;
            Ok(f(upload))
        })
    }

    fn complete_sync(
        &self,
        (bucket, key, upload_id): (&str, &str, &str),
        chosen: &[(u32, String)],
        completion: Completion,
        condition: Option<&super::backend::WriteCondition>,
    ) -> Result<ObjectInfo, BackendError> {
        let now_ms = (self.clock)();
        let version_id = self.next_version_id();
        self.with_bucket(bucket, |b| {
            let id = (key.to_string(), upload_id.to_string());
            // Checked under the lock that also completes: linearizable in one process. A
            // retried completion of a finished upload answers as before.
            if let Some(condition) = condition
                && b.uploads.get(&id).is_some_and(|u| u.finished.is_none())
            {
                let current = b.read(key, None).ok().map(|(info, _)| info.etag.as_str());
                condition.check_etag(current).map_err(|e| match e {
                    hangar_engine::objects::ObjectError::NoSuchKey => BackendError::NoSuchKey,
                    _ => BackendError::PreconditionFailed,
                })?;
            }
            let upload = b.uploads.get_mut(&id).ok_or(BackendError::NoSuchUpload)?;
            match &upload.finished {
                Some(Some(info)) => return Ok(info.clone()),
                Some(None) => return Err(BackendError::NoSuchUpload),
                None => {}
            }
            let infos = upload.parts.iter().map(|(n, (info, _))| (*n, info.clone())).collect();
            check_parts(chosen, &infos)?;
            let body: Vec<u8> =
                chosen.iter().flat_map(|(n, _)| upload.parts[n].1.iter().copied()).collect();
            let info = ObjectInfo {
                key: key.to_string(),
                version_id: version_id.clone(),
                size_bytes: body.len() as u64,
                etag: completion.etag,
                last_modified_ms: now_ms,
                content_type: upload.meta.content_type.clone(),
                user_metadata: (upload.meta.user_metadata.clone().into_iter())
                    .chain(completion.extra_metadata)
                    .collect(),
            };
            upload.finished = Some(Some(info.clone()));
            upload.parts.clear();
            let kept = b.versioning.keeps_history();
            let object = Some((info.clone(), Bytes::from(body)));
            b.push(key, Version { version_id, kept, object, last_modified_ms: now_ms });
            Ok(info)
        })
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Bucket>> {
        // A panic while holding the lock is a bug in this file; the maps are still
        // consistent (every mutation is a single insert/remove), so keep serving.
        self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// PutObject, with its condition (if any) checked and the version pushed under the one
    /// lock: trivially linearizable in one process.
    async fn store_object(
        &self,
        bucket: &str,
        key: &str,
        meta: ObjectMeta,
        body: &mut dyn BodySource,
        condition: Option<&super::backend::WriteCondition>,
    ) -> Result<ObjectInfo, BackendError> {
        let (body, end) = drain(body).await?;
        let last_modified_ms = (self.clock)();
        let mut user_metadata = meta.user_metadata;
        user_metadata.extend(end.extra_metadata);
        let info = ObjectInfo {
            key: key.to_string(),
            version_id: self.next_version_id(),
            size_bytes: body.len() as u64,
            etag: end.etag,
            last_modified_ms,
            content_type: meta.content_type,
            user_metadata,
        };
        self.with_bucket(bucket, |b| {
            if let Some(condition) = condition {
                let current = b.read(key, None).ok().map(|(info, _)| info.etag.as_str());
                condition.check_etag(current).map_err(|e| match e {
                    hangar_engine::objects::ObjectError::NoSuchKey => BackendError::NoSuchKey,
                    _ => BackendError::PreconditionFailed,
                })?;
            }
            let (version_id, kept) = (info.version_id.clone(), b.versioning.keeps_history());
            let object = Some((info.clone(), body));
            b.push(key, Version { version_id, kept, object, last_modified_ms });
            Ok(info)
        })
    }

    fn with_bucket<T>(
        &self,
        bucket: &str,
        f: impl FnOnce(&mut Bucket) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        let mut buckets = self.lock();
        let b = buckets.get_mut(bucket).ok_or(BackendError::NoSuchBucket)?;
        f(b)
    }

    fn list_sync(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: &str,
        max_keys: usize,
    ) -> Result<Vec<ObjectInfo>, BackendError> {
        self.with_bucket(bucket, |b| {
            // Start at whichever is later: the prefix itself or just after `start_after`.
            let lower = if start_after >= prefix {
                Bound::Excluded(start_after.to_string())
            } else {
                Bound::Included(prefix.to_string())
            };
            let found: Vec<ObjectInfo> = b
                .objects
                .range((lower, Bound::Unbounded))
                .take_while(|(k, _)| k.starts_with(prefix))
                .filter_map(|(_, versions)| versions.last()?.object.as_ref())
                .take(max_keys)
                .map(|(info, _)| info.clone())
                .collect();
            Ok(found)
        })
    }

    fn list_versions_sync(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: &str,
        max_keys: usize,
    ) -> Result<Vec<VersionInfo>, BackendError> {
        self.with_bucket(bucket, |b| {
            let lower = if start_after >= prefix {
                Bound::Excluded(start_after.to_string())
            } else {
                Bound::Included(prefix.to_string())
            };
            let keys = b.objects.range((lower, Bound::Unbounded));
            let keys = keys.take_while(|(k, _)| k.starts_with(prefix));
            let mut out = Vec::new();
            for (key, versions) in keys.filter(|(_, v)| !v.is_empty()).take(max_keys) {
                for (i, v) in versions.iter().enumerate().rev() {
                    out.push(VersionInfo {
                        key: key.clone(),
                        version_id: v.version_id.clone(),
                        is_latest: i + 1 == versions.len(),
                        object: v.object.as_ref().map(|(info, _)| info.clone()),
                        last_modified_ms: v.last_modified_ms,
                    });
                }
            }
            Ok(out)
        })
    }
}

fn ready<'a, T: Send + 'a>(value: T) -> BoxFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

/// Reads a whole body (this backend keeps bodies whole) and lets its source accept it.
async fn drain(body: &mut dyn BodySource) -> Result<(Bytes, BodyEnd), BackendError> {
    let refused = |e: BodyRefused| BackendError::BodyRefused { reason: e.reason };
    let mut data = Vec::new();
    while let Some(chunk) = body.next_chunk().await.map_err(refused)? {
        data.extend_from_slice(&chunk);
    }
    let summary = BodySummary { size_bytes: data.len() as u64, md5: Md5::digest(&data).into() };
    let end = body.finish(&summary).map_err(refused)?;
    Ok((Bytes::from(data), end))
}

/// A stored body handed out whole (or the selected part of it) in one chunk.
struct BytesBody(Option<Bytes>);

impl ObjectBody for BytesBody {
    fn select(&mut self, start: u64, end: u64) {
        if let Some(data) = &mut self.0 {
            let end = (end as usize).min(data.len());
            *data = data.slice((start as usize).min(end)..end);
        }
    }

    fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Bytes>, BackendError>> {
        ready(Ok(self.0.take().filter(|d| !d.is_empty())))
    }
}

impl ObjectBackend for MemoryBackend {
    fn as_dyn(&self) -> &dyn ObjectBackend {
        self
    }

    fn list_buckets(&self) -> BoxFuture<'_, Result<Vec<BucketInfo>, BackendError>> {
        let list = self
            .lock()
            .iter()
            .map(|(name, b)| BucketInfo { name: name.clone(), created_ms: b.created_ms })
            .collect();
        ready(Ok(list))
    }

    fn create_bucket<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        let now_ms = (self.clock)();
        let mut buckets = self.lock();
        let result = if buckets.contains_key(bucket) {
            Err(BackendError::BucketAlreadyOwnedByYou)
        } else {
            let fresh = Bucket {
                created_ms: now_ms,
                versioning: Versioning::Unversioned,
                objects: BTreeMap::new(),
                uploads: BTreeMap::new(),
                cors: None,
                website: None,
                lifecycle: None,
            };
            buckets.insert(bucket.to_string(), fresh);
            Ok(())
        };
        ready(result)
    }

    fn head_bucket<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        ready(self.with_bucket(bucket, |_| Ok(())))
    }

    fn delete_bucket<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        let mut buckets = self.lock();
        let result = match buckets.get(bucket) {
            None => Err(BackendError::NoSuchBucket),
            // As the engine: only current objects count (delete markers do not).
            Some(b) if b.current_objects().next().is_some() => Err(BackendError::BucketNotEmpty),
            Some(_) => {
                buckets.remove(bucket);
                Ok(())
            }
        };
        ready(result)
    }

    fn put_object<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        meta: ObjectMeta,
        body: &'a mut dyn BodySource,
    ) -> BoxFuture<'a, Result<ObjectInfo, BackendError>> {
        Box::pin(self.store_object(bucket, key, meta, body, None))
    }

    fn put_object_if<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        meta: ObjectMeta,
        body: &'a mut dyn BodySource,
        condition: &'a super::backend::WriteCondition,
    ) -> BoxFuture<'a, Result<ObjectInfo, BackendError>> {
        Box::pin(self.store_object(bucket, key, meta, body, Some(condition)))
    }

    fn get_object<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        version_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<OpenedObject, BackendError>> {
        let read = self.with_bucket(bucket, |b| b.read(key, version_id).cloned());
        ready(
            read.map(|(info, data)| (info, Box::new(BytesBody(Some(data))) as Box<dyn ObjectBody>)),
        )
    }

    fn head_object<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        version_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<ObjectInfo, BackendError>> {
        ready(self.with_bucket(bucket, |b| b.read(key, version_id).map(|(info, _)| info.clone())))
    }

    fn delete_object<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        version_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Deleted, BackendError>> {
        let (new_id, last_modified_ms) = (self.next_version_id(), (self.clock)());
        ready(self.with_bucket(bucket, |b| {
            let Some(id) = version_id else {
                let kept = b.versioning.keeps_history();
                let marker =
                    Version { version_id: new_id.clone(), kept, object: None, last_modified_ms };
                b.push(key, marker);
                return Ok(Deleted { version_id: new_id, delete_marker: true });
            };
            let versions = b.objects.get_mut(key);
            let found = versions.as_ref().and_then(|vs| vs.iter().position(|v| v.version_id == id));
            let mut delete_marker = false;
            if let (Some(versions), Some(i)) = (versions, found) {
                delete_marker = versions.remove(i).object.is_none();
                if versions.is_empty() {
                    b.objects.remove(key);
                }
            }
            Ok(Deleted { version_id: id.to_string(), delete_marker })
        }))
    }

    fn get_bucket_versioning<'a>(
        &'a self,
        bucket: &'a str,
    ) -> BoxFuture<'a, Result<Versioning, BackendError>> {
        ready(self.with_bucket(bucket, |b| Ok(b.versioning)))
    }

    fn get_bucket_cors<'a>(
        &'a self,
        bucket: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<CorsRule>>, BackendError>> {
        ready(self.with_bucket(bucket, |b| Ok(b.cors.clone())))
    }

    fn put_bucket_cors<'a>(
        &'a self,
        bucket: &'a str,
        rules: Option<Vec<CorsRule>>,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        ready(self.with_bucket(bucket, |b| {
            b.cors = rules;
            Ok(())
        }))
    }

    fn get_bucket_website<'a>(
        &'a self,
        bucket: &'a str,
    ) -> BoxFuture<'a, Result<Option<WebsiteConfig>, BackendError>> {
        ready(self.with_bucket(bucket, |b| Ok(b.website.clone())))
    }

    fn put_bucket_website<'a>(
        &'a self,
        bucket: &'a str,
        config: Option<WebsiteConfig>,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        ready(self.with_bucket(bucket, |b| {
            b.website = config;
            Ok(())
        }))
    }

    fn get_bucket_lifecycle<'a>(
        &'a self,
        bucket: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<LifecycleRule>>, BackendError>> {
        ready(self.with_bucket(bucket, |b| Ok(b.lifecycle.clone())))
    }

    fn put_bucket_lifecycle<'a>(
        &'a self,
        bucket: &'a str,
        rules: Option<Vec<LifecycleRule>>,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        ready(self.with_bucket(bucket, |b| {
            b.lifecycle = rules;
            Ok(())
        }))
    }

    fn put_bucket_versioning<'a>(
        &'a self,
        bucket: &'a str,
        state: Versioning,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        ready(self.with_bucket(bucket, |b| {
            b.versioning = state;
            Ok(())
        }))
    }

    fn list_object_versions<'a>(
        &'a self,
        bucket: &'a str,
        prefix: &'a str,
        start_after: &'a str,
        max_keys: usize,
    ) -> BoxFuture<'a, Result<Vec<VersionInfo>, BackendError>> {
        ready(self.list_versions_sync(bucket, prefix, start_after, max_keys))
    }

    fn list_objects<'a>(
        &'a self,
        bucket: &'a str,
        prefix: &'a str,
        start_after: &'a str,
        max_keys: usize,
    ) -> BoxFuture<'a, Result<Vec<ObjectInfo>, BackendError>> {
        ready(self.list_sync(bucket, prefix, start_after, max_keys))
    }

    fn create_multipart_upload<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        meta: ObjectMeta,
    ) -> BoxFuture<'a, Result<String, BackendError>> {
        let initiated_ms = (self.clock)();
        let upload_id = format!("{:032x}", self.upload_seq.fetch_add(1, Ordering::Relaxed));
        ready(self.with_bucket(bucket, |b| {
            let upload = Upload { meta, initiated_ms, parts: BTreeMap::new(), finished: None };
            b.uploads.insert((key.to_string(), upload_id.clone()), upload);
            Ok(upload_id)
        }))
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
            // Refuse early for a closed upload, as the engine does, before reading the body.
            self.with_open_upload((bucket, key, upload_id), |_| ())?;
            let (body, end) = drain(body).await?;
            let last_modified_ms = (self.clock)();
            let size_bytes = body.len() as u64;
            let etag = end.etag;
            let info = PartInfo { part_number, etag: etag.clone(), size_bytes, last_modified_ms };
            self.with_open_upload((bucket, key, upload_id), |u| {
                u.parts.insert(part_number, (info, body));
            })?;
            Ok(etag)
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
        ready(self.complete_sync((bucket, key, upload_id), &parts, completion, None))
    }

    fn complete_multipart_upload_if<'a>(
        &'a self,
        (bucket, key, upload_id): (&'a str, &'a str, &'a str),
        parts: Vec<(u32, String)>,
        completion: Completion,
        condition: &'a super::backend::WriteCondition,
    ) -> BoxFuture<'a, Result<ObjectInfo, BackendError>> {
        let upload = (bucket, key, upload_id);
        ready(self.complete_sync(upload, &parts, completion, Some(condition)))
    }

    fn multipart_upload_meta<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        upload_id: &'a str,
    ) -> BoxFuture<'a, Result<ObjectMeta, BackendError>> {
        ready(self.with_bucket(bucket, |b| {
            let id = (key.to_string(), upload_id.to_string());
            Ok(b.uploads.get(&id).ok_or(BackendError::NoSuchUpload)?.meta.clone())
        }))
    }

    fn abort_multipart_upload<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        upload_id: &'a str,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        ready(self.with_bucket(bucket, |b| {
            let id = (key.to_string(), upload_id.to_string());
            let upload = b.uploads.get_mut(&id).ok_or(BackendError::NoSuchUpload)?;
            match upload.finished {
                Some(Some(_)) => Err(BackendError::NoSuchUpload),
                _ => {
                    upload.finished = Some(None);
                    upload.parts.clear();
                    Ok(())
                }
            }
        }))
    }

    fn list_parts<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        upload_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<PartInfo>, BackendError>> {
        ready(self.with_open_upload((bucket, key, upload_id), |u| {
            u.parts.values().map(|(info, _)| info.clone()).collect()
        }))
    }

    fn list_multipart_uploads<'a>(
        &'a self,
        bucket: &'a str,
        prefix: &'a str,
        max_uploads: usize,
    ) -> BoxFuture<'a, Result<Vec<UploadInfo>, BackendError>> {
        ready(self.with_bucket(bucket, |b| {
            let open = b
                .uploads
                .iter()
                .filter(|((key, _), u)| u.finished.is_none() && key.starts_with(prefix));
            let infos = open.take(max_uploads).map(|((key, upload_id), u)| UploadInfo {
                key: key.clone(),
                upload_id: upload_id.clone(),
                initiated_ms: u.initiated_ms,
                user_metadata: u.meta.user_metadata.clone(),
            });
            Ok(infos.collect())
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use hangar_engine::objects::body::VecSource;

    use super::*;

    fn backend() -> MemoryBackend {
        MemoryBackend::new(Arc::new(|| 1_000))
    }

    fn put(b: &MemoryBackend, key: &str) {
        let meta = ObjectMeta::default();
        let mut body = VecSource::new(b"x".to_vec(), "etag".into());
        poll_now(b.put_object("bk", key, meta, &mut body)).unwrap();
    }

    /// The memory backend's futures are always ready; poll once without a runtime.
    fn poll_now<T>(fut: BoxFuture<'_, T>) -> T {
        let mut fut = fut;
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match fut.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("memory backend future was not ready"),
        }
    }

    #[test]
    fn list_respects_prefix_start_after_and_limit() {
        let b = backend();
        poll_now(b.create_bucket("bk")).unwrap();
        for key in ["a/1", "a/2", "a/3", "b/1", "a"] {
            put(&b, key);
        }
        let keys = |v: Vec<ObjectInfo>| v.into_iter().map(|o| o.key).collect::<Vec<_>>();
        let all = poll_now(b.list_objects("bk", "a/", "", 10)).unwrap();
        assert_eq!(keys(all), ["a/1", "a/2", "a/3"]);
        let after = poll_now(b.list_objects("bk", "a/", "a/1", 1)).unwrap();
        assert_eq!(keys(after), ["a/2"]);
        // A start_after before the prefix must not leak keys outside the prefix.
        let early = poll_now(b.list_objects("bk", "b/", "a/9", 10)).unwrap();
        assert_eq!(keys(early), ["b/1"]);
    }

    #[test]
    fn delete_bucket_refuses_non_empty() {
        let b = backend();
        poll_now(b.create_bucket("bk")).unwrap();
        put(&b, "k");
        assert_eq!(poll_now(b.delete_bucket("bk")), Err(BackendError::BucketNotEmpty));
        poll_now(b.delete_object("bk", "k", None)).unwrap();
        poll_now(b.delete_object("bk", "k", None)).unwrap();
        assert_eq!(poll_now(b.delete_bucket("bk")), Ok(()));
        assert_eq!(poll_now(b.head_bucket("bk")), Err(BackendError::NoSuchBucket));
    }
}
