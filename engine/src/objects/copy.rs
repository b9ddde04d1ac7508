//! Server-side copies (S3 CopyObject and whole-object UploadPartCopy) without moving data.
//!
//! Why referencing works: blocks are content-addressed and immutable, so a copy of a body
//! stored as blocks is the same list of blocks. The copy is a new version whose body is the
//! source's block list; what keeps those blocks alive is a `block_ref` entry per block
//! naming the *new* version, written before that version becomes `Complete` — the order a
//! PUT follows. Deleting the source later retires only the source's references.
//!
//! Why no race with the collector: the source version was read `Complete` (its references
//! live) just before the copy's references are written. The collector deletes a block only
//! after seeing it unreferenced for `GcConfig::delay_ms` *and* re-reading its references
//! right before the delete, so the copy's references (written milliseconds after the read)
//! are seen unless the copy stalls between the two steps for longer than that delay.
//!
//! Order of writes, as for a PUT: the destination version `Uploading`, the references, the
//! version `Complete`. A failure in between writes `Aborted`: nothing partial is visible,
//! and the references of an aborted version are retired by the collector.
//!
//! Inline bodies are copied inline (they live in the entry; nothing to reference).

use std::collections::BTreeSet;

use tokio::task::JoinSet;

use super::ObjectStore;
use super::body::{self, BodyBlock, Owner};
use super::conditional::Predicate;
use super::multipart::{PART_NUMBER_MAX, PartRecord, UploadMeta};
use super::version::{Version, VersionData, VersionId, VersionState};
use super::{ObjectError, ObjectRecord, StoredObject, record};
use crate::block::BlockError;

/// Reference writes of one copy in flight at once.
const REF_WRITES_IN_FLIGHT: usize = 8;

/// The object to copy from: bucket, key and the exact version (hex), so that what the
/// caller checked (preconditions on ETag and date) is what gets copied.
pub type CopySource<'a> = (&'a str, &'a str, &'a str);

impl ObjectStore {
    /// Stores version `source` of an object as a new version of `key` in `bucket`, with the
    /// source's body and ETag and the given content type and metadata. The data is not read
    /// or written: the new version references the source's blocks. `NoSuchVersion` if the
    /// source version is gone (or is a delete marker).
    pub async fn copy_object(
        &self,
        source: CopySource<'_>,
        bucket: &str,
        key: &str,
        meta: UploadMeta,
    ) -> Result<ObjectRecord, ObjectError> {
        let kept = self.head_bucket(bucket).await?.versioning.keeps_history();
        let read = self.stored(source.0, source.1, Some(source.2)).await?;
        let src = &read.1;
        let ordered = self.orders_every_write();
        // A body in blocks is recorded under a provisional id before its references; an
        // inline one, decided by the key's consensus, is stamped in its round.
        let blocks = src.body.in_blocks();
        let provisional = match blocks || !ordered {
            true => Some(self.next_version_id(bucket, key).await?),
            false => None,
        };
        let mut body = src.body.clone();
        if let (true, Some(id)) = (blocks, provisional) {
            let src_blocks = self.source_blocks(source, &read).await?;
            let uploading = Version::new(VersionState::Uploading, kept);
            self.write_version(bucket, key, id, uploading).await?;
            let owner = Owner { bucket: bucket.into(), key: key.into(), version: id };
            let recorded = async {
                self.reference_blocks(&owner, &src_blocks).await?;
                self.body_of_blocks(&owner, src_blocks).await
            }
            .await;
            match recorded {
                Ok(recorded) => body = recorded,
                Err(e) => {
                    let aborted = Version::new(VersionState::Aborted, kept);
                    let _ = self.write_version(bucket, key, id, aborted).await;
                    return Err(e);
                }
            }
        }
        let stored = StoredObject {
            size_bytes: src.size_bytes,
            etag: src.etag.clone(),
            last_modified_ms: self.node.seam.clock.now_ms(),
            content_type: meta.content_type,
            user_metadata: meta.user_metadata,
            body,
        };
        let complete = VersionState::Complete(VersionData::Object(stored.clone()));
        let version = Version::new(complete, kept);
        let id = match provisional {
            // Ordered with every other write of the key (`conditional`).
            _ if ordered => {
                self.commit_put(bucket, key, provisional, version, Predicate::Always).await?
            }
            Some(id) => {
                self.write_version(bucket, key, id, version).await?;
                id
            }
            None => unreachable!("an unordered copy is stamped first"),
        };
        Ok(record(key, id, &stored, Vec::new()))
    }

    /// Makes version `source` of an object, whole, part `part_number` of an open upload, by
    /// referencing its blocks (the part's ETag is the source's). `Ok(None)` if the source
    /// body is inline: parts are made of blocks, so the caller streams it as a normal part.
    pub async fn upload_part_copy(
        &self,
        (bucket, key, upload_id): (&str, &str, &str),
        part_number: u32,
        source: CopySource<'_>,
    ) -> Result<Option<String>, ObjectError> {
        if !(1..=PART_NUMBER_MAX).contains(&part_number) {
            return Err(ObjectError::InvalidPartNumber { part_number });
        }
        let (id, upload) = self.open_upload(bucket, key, upload_id).await?;
        let read = self.stored(source.0, source.1, Some(source.2)).await?;
        let src = &read.1;
        if !src.body.in_blocks() {
            return Ok(None);
        }
        let blocks = self.source_blocks(source, &read).await?;
        let owner = Owner { bucket: bucket.into(), key: key.into(), version: id };
        self.reference_blocks(&owner, &blocks).await?;
        let part = PartRecord { etag: src.etag.clone(), size_bytes: src.size_bytes, blocks };
        self.record_part((bucket, key, id), &upload, part_number, part).await?;
        Ok(Some(src.etag.clone()))
    }

    /// The blocks of the source version `src` of a copy. Its list gone means the version
    /// was removed since it was read: the copy has no source any more.
    async fn source_blocks(
        &self,
        (bucket, key, _): CopySource<'_>,
        &(version, ref src): &(VersionId, StoredObject),
    ) -> Result<Vec<BodyBlock>, ObjectError> {
        let owner = Owner { bucket: bucket.into(), key: key.into(), version };
        self.blocks_of(&owner, &src.body).await?.ok_or(ObjectError::NoSuchVersion)
    }

    /// Writes `owner`'s reference to each distinct block of `blocks` (write quorum each),
    /// a bounded number at once.
    pub(super) async fn reference_blocks(
        &self,
        owner: &Owner,
        blocks: &[BodyBlock],
    ) -> Result<(), BlockError> {
        let distinct: BTreeSet<_> = blocks.iter().map(|b| b.hash).collect();
        let mut writes = JoinSet::new();
        for hash in distinct {
            while writes.len() >= REF_WRITES_IN_FLIGHT {
                join_one(&mut writes).await?;
            }
            let (node, owner) = (self.node.clone(), owner.clone());
            writes.spawn(async move { body::reference(&node, &owner, hash).await });
        }
        while !writes.is_empty() {
            join_one(&mut writes).await?;
        }
        Ok(())
    }
}

async fn join_one(writes: &mut JoinSet<Result<(), BlockError>>) -> Result<(), BlockError> {
    match writes.join_next().await.expect("called with writes pending") {
        Ok(result) => result,
        Err(e) => Err(BlockError::Io { reason: format!("reference write task failed: {e}") }),
    }
}
