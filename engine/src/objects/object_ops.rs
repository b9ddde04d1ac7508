//! Object operations of the `ObjectStore`: versioned writes, reads, deletes and listings.

use super::body::{self, Body, BodyRefused, BodySource, BodySummary, VecSource};
use super::body_reader::BodyReader;
use super::conditional::{KeyWrite, Predicate, WriteCondition};
use super::multipart::UploadMeta;
use super::version::{ObjectEntry, Version, VersionData, VersionId, VersionState};
use super::{ObjectError, ObjectMeta, ObjectRecord, ObjectStore, StoredObject, record};
use crate::table::entry_key;

/// Entries fetched per range read while listing.
const LIST_BATCH: usize = 1000;
/// Reads of an object's entry and then its block list before a GET gives up: each retry
/// means the version read was removed meanwhile, which takes a newer write each time.
const LIST_READ_ATTEMPTS: usize = 3;

/// One line of a version listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionListing {
    pub key: String,
    pub version_id: VersionId,
    /// The key's current version.
    pub is_latest: bool,
    /// The object (body empty), or `None` for a delete marker.
    pub object: Option<ObjectRecord>,
    pub last_modified_ms: u64,
}

pub(super) fn object_key(bucket: &str, key: &str) -> Vec<u8> {
    entry_key(bucket.as_bytes(), key.as_bytes())
}

pub(super) fn refused(e: BodyRefused) -> ObjectError {
    ObjectError::BodyRefused { reason: e.reason }
}

fn parse_version(version: &str) -> Result<VersionId, ObjectError> {
    VersionId::from_hex(version).ok_or(ObjectError::NoSuchVersion)
}

impl ObjectStore {
    pub(super) async fn entry(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<ObjectEntry>, ObjectError> {
        Ok(self.node.objects.get(&object_key(bucket, key)).await?)
    }

    /// A new version id, above every version of the key this node can see with a quorum
    /// read (read and write quorums intersect, so above every acknowledged one).
    pub(super) async fn next_version_id(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<VersionId, ObjectError> {
        let newest = self.entry(bucket, key).await?.and_then(|e| e.newest());
        let timestamp = self.node.stamp_after(newest.map_or(0, |id| id.timestamp));
        Ok(VersionId { timestamp, unique: self.node.id.0 })
    }

    pub(super) async fn write_version(
        &self,
        bucket: &str,
        key: &str,
        id: VersionId,
        version: Version,
    ) -> Result<(), ObjectError> {
        // Every version change passes here: the place to count usage against quotas.
        self.write_counted(bucket, key, id, version).await
    }

    /// Stores a new version of `key` from an in-memory body, with `meta.etag` as its ETag.
    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        meta: ObjectMeta,
        data: Vec<u8>,
    ) -> Result<ObjectRecord, ObjectError> {
        let upload =
            UploadMeta { content_type: meta.content_type, user_metadata: meta.user_metadata };
        self.put_object_stream(bucket, key, upload, &mut VecSource::new(data, meta.etag)).await
    }

    /// Stores a new version of `key` from a body read chunk by chunk, and makes it current
    /// once the source's `finish` accepted it (which gives the ETag). A body above
    /// `INLINE_MAX_BYTES` is recorded `Uploading` first, then streamed into blocks (memory
    /// bound: `body::PUT_BLOCKS_HELD_MAX` blocks); any failure or refusal writes `Aborted`,
    /// so no partial or refused body is ever visible, and the collector frees its blocks.
    pub async fn put_object_stream(
        &self,
        bucket: &str,
        key: &str,
        meta: UploadMeta,
        source: &mut dyn BodySource,
    ) -> Result<ObjectRecord, ObjectError> {
        self.put_object_stream_if(bucket, key, meta, source, None).await
    }

    /// As `put_object_stream`, made current only if `condition` holds (`conditional`):
    /// checked with a quorum read before the body is read, then decided by consensus.
    ///
    /// In `consistent` mode every PUT is decided by the key's consensus (`conditional`),
    /// which stamps its version id; a body in blocks is recorded under a provisional id
    /// first (read with a quorum, above every version seen) and re-stamped only if a write
    /// of the key completed meanwhile with a newer one. Other modes stamp the id from a
    /// quorum read and write the table directly.
    pub async fn put_object_stream_if(
        &self,
        bucket: &str,
        key: &str,
        meta: UploadMeta,
        source: &mut dyn BodySource,
        condition: Option<&WriteCondition>,
    ) -> Result<ObjectRecord, ObjectError> {
        if let Some(condition) = condition {
            self.precheck(bucket, key, condition).await?;
        }
        let ordered = condition.is_some() || self.orders_every_write();
        let kept = self.head_bucket(bucket).await?.versioning.keeps_history();
        let (head, ended) = body::read_head(source).await.map_err(refused)?;
        let inline = ended && head.len() <= body::INLINE_MAX_BYTES;
        // An inline body is recorded nowhere before its round, which stamps its id.
        let provisional = match inline && ordered {
            true => None,
            false => Some(self.next_version_id(bucket, key).await?),
        };
        let (body, summary) = match provisional {
            Some(id) if !inline => {
                self.store_blocks_of(bucket, key, id, kept, head, source).await?
            }
            _ => {
                let md5 = body::md5_of(&head);
                (Body::Inline(head.clone()), BodySummary { size_bytes: head.len() as u64, md5 })
            }
        };
        let end = match source.finish(&summary) {
            Ok(end) => end,
            Err(e) => {
                if let (true, Some(id)) = (body.in_blocks(), provisional) {
                    let aborted = Version::new(VersionState::Aborted, kept);
                    let _ = self.write_version(bucket, key, id, aborted).await;
                }
                return Err(refused(e));
            }
        };
        let mut user_metadata = meta.user_metadata;
        user_metadata.extend(end.extra_metadata);
        let stored = StoredObject {
            size_bytes: summary.size_bytes,
            etag: end.etag,
            last_modified_ms: self.node.seam.clock.now_ms(),
            content_type: meta.content_type,
            user_metadata,
            body,
        };
        let complete = VersionState::Complete(VersionData::Object(stored.clone()));
        let version = Version::new(complete, kept);
        let id = match (ordered, provisional) {
            (true, _) => {
                let predicate = condition.map_or(Predicate::Always, Predicate::Condition);
                self.commit_put(bucket, key, provisional, version, predicate).await?
            }
            (false, Some(id)) => {
                self.write_unordered(bucket, key, id, version).await?;
                id
            }
            (false, None) => unreachable!("an unordered write is stamped before its body"),
        };
        Ok(record(key, id, &stored, Vec::new()))
    }

    /// The fast path of `degraded` and `dangerous` modes: writes the version straight into
    /// the table (last-writer-wins by id). Refused over a quota, a body in blocks goes to
    /// the collector now, not at the upload timeout.
    async fn write_unordered(
        &self,
        bucket: &str,
        key: &str,
        id: VersionId,
        version: Version,
    ) -> Result<(), ObjectError> {
        let kept = version.kept;
        let blocks = matches!(
            &version.state,
            VersionState::Complete(VersionData::Object(s)) if s.body.in_blocks()
        );
        let written = self.write_version(bucket, key, id, version).await;
        if let Err(ObjectError::QuotaExceeded { .. }) = &written
            && blocks
        {
            let aborted = Version::new(VersionState::Aborted, kept);
            let _ = self.write_version(bucket, key, id, aborted).await;
        }
        written
    }

    /// Records version `id` `Uploading`, then streams the body into its blocks; on failure
    /// writes the version `Aborted`.
    async fn store_blocks_of(
        &self,
        bucket: &str,
        key: &str,
        id: VersionId,
        kept: bool,
        head: Vec<u8>,
        source: &mut dyn BodySource,
    ) -> Result<(Body, BodySummary), ObjectError> {
        // Record the upload before its blocks, so a crash leaves a visible trace for
        // cleanup rather than anonymous blocks — and never a partial object.
        self.write_version(bucket, key, id, Version::new(VersionState::Uploading, kept)).await?;
        let owner = body::Owner { bucket: bucket.into(), key: key.into(), version: id };
        let size = self.block_size_bytes;
        let recorded = async {
            let stored =
                body::store_stream(&self.node, &self.memory, &owner, head, source, size).await?;
            let body = self.body_of_blocks(&owner, stored.blocks).await?;
            Ok::<_, ObjectError>((body, stored.summary))
        }
        .await;
        if recorded.is_err() {
            let aborted = Version::new(VersionState::Aborted, kept);
            let _ = self.write_version(bucket, key, id, aborted).await;
        }
        recorded
    }

    /// The stored form of a complete object version (the current one if `version` is
    /// `None`), or why there is none.
    pub(super) async fn stored(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> Result<(VersionId, StoredObject), ObjectError> {
        let wanted = version.map(parse_version).transpose()?;
        let entry = self.entry(bucket, key).await?;
        let found = entry.as_ref().and_then(|e| match wanted {
            None => e.current().map(|(id, data)| (id, Some(data))),
            Some(id) => e.versions.get(&id).map(|v| match &v.state {
                VersionState::Complete(data) => (id, Some(data)),
                _ => (id, None),
            }),
        });
        match found {
            Some((id, Some(VersionData::Object(stored)))) => Ok((id, stored.clone())),
            Some(_) if wanted.is_some() => Err(ObjectError::NoSuchVersion),
            Some(_) => Err(ObjectError::NoSuchKey),
            None => {
                self.head_bucket(bucket).await?;
                Err(if wanted.is_some() {
                    ObjectError::NoSuchVersion
                } else {
                    ObjectError::NoSuchKey
                })
            }
        }
    }

    /// An object with its whole body in memory: the current version, or the one named by
    /// `version` (tests and small objects; the S3 layer streams with `open_object`).
    pub async fn get_object_version(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> Result<ObjectRecord, ObjectError> {
        let (mut record, reader) = self.open_object(bucket, key, version).await?;
        record.data = reader.read_all().await?;
        debug_assert_eq!(record.data.len() as u64, record.size_bytes);
        Ok(record)
    }

    /// An object's metadata and a reader of its body, which fetches nothing until read
    /// (`BodyReader::select` narrows it to a range first).
    pub async fn open_object(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> Result<(ObjectRecord, BodyReader), ObjectError> {
        // A listed body's list is read after the entry: if its version was removed in
        // between (overwritten, and the collector passed), the entry is read again.
        for _ in 0..LIST_READ_ATTEMPTS {
            let (id, stored) = self.stored(bucket, key, version).await?;
            let owner = body::Owner { bucket: bucket.into(), key: key.into(), version: id };
            let Some(blocks) = self.blocks_of(&owner, &stored.body).await? else { continue };
            let reader =
                BodyReader::new(self.node.clone(), self.memory.clone(), &stored.body, blocks);
            return Ok((record(key, id, &stored, Vec::new()), reader));
        }
        Err(ObjectError::Unavailable {
            reason: format!("the block list of {bucket}/{key} kept disappearing: retry"),
        })
    }

    pub async fn get_object(&self, bucket: &str, key: &str) -> Result<ObjectRecord, ObjectError> {
        self.get_object_version(bucket, key, None).await
    }

    /// An object's metadata, without reading its blocks.
    pub async fn head_object_version(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> Result<ObjectRecord, ObjectError> {
        let (id, stored) = self.stored(bucket, key, version).await?;
        Ok(record(key, id, &stored, Vec::new()))
    }

    pub async fn head_object(&self, bucket: &str, key: &str) -> Result<ObjectRecord, ObjectError> {
        self.head_object_version(bucket, key, None).await
    }

    /// The delete marker a read of `key` ran into: the current version if `version` is
    /// `None`, else the named one; `None` if that version is not a delete marker. Lets the
    /// S3 layer say `x-amz-delete-marker` next to its NoSuchKey / MethodNotAllowed.
    pub async fn delete_marker(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> Result<Option<VersionId>, ObjectError> {
        let wanted = version.map(parse_version).transpose()?;
        let Some(entry) = self.entry(bucket, key).await? else { return Ok(None) };
        let found = match wanted {
            None => entry.current(),
            Some(id) => entry.versions.get(&id).and_then(|v| match &v.state {
                VersionState::Complete(data) => Some((id, data)),
                _ => None,
            }),
        };
        Ok(found
            .and_then(|(id, data)| matches!(data, VersionData::DeleteMarker { .. }).then_some(id)))
    }

    /// Deletes `key`: writes a delete marker as its new current version (kept as history
    /// if the bucket is versioned), decided by the key's consensus in `consistent` mode.
    /// Returns the marker's id.
    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<VersionId, ObjectError> {
        self.write_delete_marker(bucket, key, Predicate::Always).await
    }

    /// Lifecycle expiration: deletes `key` as `delete_object` does, but only while version
    /// `current` is still its current version. `Ok(false)` when it no longer is (a write
    /// came after the worker judged it expired).
    pub async fn expire_object(
        &self,
        bucket: &str,
        key: &str,
        current: VersionId,
    ) -> Result<bool, ObjectError> {
        if !self.orders_every_write() {
            // Re-read, then delete: a write landing in between still loses to the marker.
            match self.head_object(bucket, key).await {
                Ok(now) if now.version_id == current => {}
                Ok(_) | Err(ObjectError::NoSuchKey) => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        match self.write_delete_marker(bucket, key, Predicate::CurrentIs(current)).await {
            Ok(_) => Ok(true),
            Err(ObjectError::PreconditionFailed) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn write_delete_marker(
        &self,
        bucket: &str,
        key: &str,
        predicate: Predicate<'_>,
    ) -> Result<VersionId, ObjectError> {
        let kept = self.head_bucket(bucket).await?.versioning.keeps_history();
        let last_modified_ms = self.node.seam.clock.now_ms();
        let marker = VersionState::Complete(VersionData::DeleteMarker { last_modified_ms });
        let version = Version::new(marker, kept);
        if self.orders_every_write() {
            return self.commit_write(KeyWrite { bucket, key, id: None, version, predicate }).await;
        }
        let id = self.next_version_id(bucket, key).await?;
        self.write_version(bucket, key, id, version).await?;
        Ok(id)
    }

    /// Removes one version for good (an object or a delete marker), ordered with the
    /// key's other writes in `consistent` mode (removing the current version changes what
    /// conditions see).
    pub async fn delete_object_version(
        &self,
        bucket: &str,
        key: &str,
        version: &str,
    ) -> Result<(), ObjectError> {
        let id = parse_version(version)?;
        self.head_bucket(bucket).await?;
        let deleted = Version::new(VersionState::Deleted, true);
        if self.orders_every_write() {
            let predicate = Predicate::Always;
            let write = KeyWrite { bucket, key, id: Some(id), version: deleted, predicate };
            return self.commit_write(write).await.map(|_| ());
        }
        let exists = self.entry(bucket, key).await?.is_some_and(|e| e.versions.contains_key(&id));
        if !exists {
            // S3 answers success for a version that is not there: deleting is idempotent.
            return Ok(());
        }
        self.write_version(bucket, key, id, deleted).await
    }

    /// Pages through the entries of a bucket under `prefix` after `start_after`, calling
    /// `visit` until it returns false or the keys run out.
    pub(super) async fn scan(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: &str,
        mut visit: impl FnMut(String, ObjectEntry) -> bool,
    ) -> Result<(), ObjectError> {
        self.head_bucket(bucket).await?;
        let mut after = start_after.as_bytes().to_vec();
        loop {
            let page = self
                .node
                .objects
                .get_range(bucket.as_bytes(), prefix.as_bytes(), &after, LIST_BATCH)
                .await?;
            let done = page.len() < LIST_BATCH;
            after = page.last().map(|(k, _)| k.clone()).unwrap_or_default();
            for (sort_key, entry) in page {
                if !visit(String::from_utf8_lossy(&sort_key).into_owned(), entry) {
                    return Ok(());
                }
            }
            if done {
                return Ok(());
            }
        }
    }

    /// Current objects of `bucket` whose key starts with `prefix` and sorts after
    /// `start_after`, at most `max_keys`, in key order, without their bodies.
    pub async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: &str,
        max_keys: usize,
    ) -> Result<Vec<ObjectRecord>, ObjectError> {
        let mut out = Vec::new();
        if max_keys == 0 {
            return Ok(out);
        }
        self.scan(bucket, prefix, start_after, |key, entry| {
            // Keys whose current version is a delete marker (or none) are not listed.
            if let Some((id, VersionData::Object(stored))) = entry.current() {
                out.push(record(&key, id, stored, Vec::new()));
            }
            out.len() < max_keys
        })
        .await?;
        Ok(out)
    }

    /// Every visible version (objects and delete markers) of keys under `prefix` after
    /// `start_after`, newest first within a key, for at most `max_keys` keys.
    pub async fn list_object_versions(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: &str,
        max_keys: usize,
    ) -> Result<Vec<VersionListing>, ObjectError> {
        let (mut out, mut keys) = (Vec::new(), 0);
        if max_keys == 0 {
            return Ok(out);
        }
        self.scan(bucket, prefix, start_after, |key, entry| {
            let latest = entry.current().map(|(id, _)| id);
            let before = out.len();
            for (id, version) in entry.versions.iter().rev() {
                let VersionState::Complete(data) = &version.state else { continue };
                // A delete in a bucket that keeps no history leaves a marker only so that the
                // delete is ordered against writes; S3 shows no marker there.
                if matches!(data, VersionData::DeleteMarker { .. }) && !version.kept {
                    continue;
                }
                let (object, last_modified_ms) = match data {
                    VersionData::Object(s) => {
                        (Some(record(&key, *id, s, Vec::new())), s.last_modified_ms)
                    }
                    VersionData::DeleteMarker { last_modified_ms } => (None, *last_modified_ms),
                };
                let is_latest = Some(*id) == latest;
                out.push(VersionListing {
                    key: key.clone(),
                    version_id: *id,
                    is_latest,
                    object,
                    last_modified_ms,
                });
            }
            keys += usize::from(out.len() > before);
            keys < max_keys
        })
        .await?;
        Ok(out)
    }
}
