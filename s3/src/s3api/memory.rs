//! In-memory `ObjectBackend` for tests and the demo server.
//!
//! One mutex over ordered maps: listings come out sorted for free, and every operation is
//! atomic, which is the behaviour the replicated engine must imitate as seen by one client.
//! The lock is never held across an await (each method completes before returning its
//! future), so a std mutex is right here.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;

use super::WallClock;
use super::backend::{
    BackendError, BoxFuture, BucketInfo, ObjectBackend, ObjectInfo, ObjectMeta, PartInfo,
    UploadInfo, check_parts,
};

struct Bucket {
    created_ms: u64,
    objects: BTreeMap<String, (ObjectInfo, Bytes)>,
    /// Multipart uploads by (key, upload id).
    uploads: BTreeMap<(String, String), Upload>,
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
}

impl MemoryBackend {
    pub fn new(clock: WallClock) -> MemoryBackend {
        MemoryBackend { clock, buckets: Mutex::new(BTreeMap::new()), upload_seq: AtomicU64::new(0) }
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
        etag: String,
    ) -> Result<ObjectInfo, BackendError> {
        let now_ms = (self.clock)();
        self.with_bucket(bucket, |b| {
            let id = (key.to_string(), upload_id.to_string());
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
                size_bytes: body.len() as u64,
                etag,
                last_modified_ms: now_ms,
                content_type: upload.meta.content_type.clone(),
                user_metadata: upload.meta.user_metadata.clone(),
            };
            upload.finished = Some(Some(info.clone()));
            upload.parts.clear();
            b.objects.insert(key.to_string(), (info.clone(), Bytes::from(body)));
            Ok(info)
        })
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Bucket>> {
        // A panic while holding the lock is a bug in this file; the maps are still
        // consistent (every mutation is a single insert/remove), so keep serving.
        self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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
                .take(max_keys)
                .map(|(_, (info, _))| info.clone())
                .collect();
            Ok(found)
        })
    }
}

fn ready<'a, T: Send + 'a>(value: T) -> BoxFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

impl ObjectBackend for MemoryBackend {
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
            let fresh =
                Bucket { created_ms: now_ms, objects: BTreeMap::new(), uploads: BTreeMap::new() };
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
            Some(b) if !b.objects.is_empty() => Err(BackendError::BucketNotEmpty),
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
        body: Bytes,
    ) -> BoxFuture<'a, Result<ObjectInfo, BackendError>> {
        let info = ObjectInfo {
            key: key.to_string(),
            size_bytes: body.len() as u64,
            etag: meta.etag,
            last_modified_ms: (self.clock)(),
            content_type: meta.content_type,
            user_metadata: meta.user_metadata,
        };
        ready(self.with_bucket(bucket, |b| {
            b.objects.insert(key.to_string(), (info.clone(), body));
            Ok(info)
        }))
    }

    fn get_object<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<(ObjectInfo, Bytes), BackendError>> {
        ready(
            self.with_bucket(bucket, |b| {
                b.objects.get(key).cloned().ok_or(BackendError::NoSuchKey)
            }),
        )
    }

    fn head_object<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<ObjectInfo, BackendError>> {
        ready(self.with_bucket(bucket, |b| {
            b.objects.get(key).map(|(info, _)| info.clone()).ok_or(BackendError::NoSuchKey)
        }))
    }

    fn delete_object<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        ready(self.with_bucket(bucket, |b| {
            b.objects.remove(key);
            Ok(())
        }))
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
        etag: String,
        body: Bytes,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        let last_modified_ms = (self.clock)();
        let size_bytes = body.len() as u64;
        let info = PartInfo { part_number, etag, size_bytes, last_modified_ms };
        ready(self.with_open_upload((bucket, key, upload_id), |u| {
            u.parts.insert(part_number, (info, body));
        }))
    }

    fn complete_multipart_upload<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        upload_id: &'a str,
        parts: Vec<(u32, String)>,
        etag: String,
    ) -> BoxFuture<'a, Result<ObjectInfo, BackendError>> {
        ready(self.complete_sync((bucket, key, upload_id), &parts, etag))
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
            });
            Ok(infos.collect())
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn backend() -> MemoryBackend {
        MemoryBackend::new(Arc::new(|| 1_000))
    }

    fn put(b: &MemoryBackend, key: &str) {
        let meta = ObjectMeta::default();
        let fut = b.put_object("bk", key, meta, Bytes::from_static(b"x"));
        poll_now(fut).unwrap();
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
        poll_now(b.delete_object("bk", "k")).unwrap();
        poll_now(b.delete_object("bk", "k")).unwrap();
        assert_eq!(poll_now(b.delete_bucket("bk")), Ok(()));
        assert_eq!(poll_now(b.head_bucket("bk")), Err(BackendError::NoSuchBucket));
    }
}
