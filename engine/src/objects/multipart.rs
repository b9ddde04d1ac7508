//! Multipart uploads: the `mpu` table and the `ObjectStore` operations over it.
//!
//! Why this shape: a multipart upload is an object version being written in pieces, so it
//! *is* a version of the key, `Uploading` from creation until it is completed or aborted,
//! and its upload id is that version's id (hex). Every part's blocks are referenced by that
//! version (`block_ref`) before they are stored, exactly like a simple PUT's, so the
//! collector needs no new rule: while the version is `Uploading` all its blocks are live;
//! once `Complete`, only the blocks of its final body are (a part uploaded twice, or not
//! chosen, is collected); once `Aborted` (or pruned), none are.
//!
//! What the `object` table cannot hold is the upload's progress: the parts received so far.
//! That is the `mpu` table — partition key = bucket name, sort key = object key ‖ 0x00 ‖
//! upload id, so the uploads of a bucket list in key order with one range read. Its entry,
//! `MultipartUpload`, is a CRDT: parts merge by union (each upload of a part has its own
//! id, the newest per part number wins when reading), `finished` by `or`.
//!
//! Order of writes: create writes the `Uploading` version, then the `mpu` entry; a part
//! stores its blocks (refs first), then records the part; complete checks the chosen parts,
//! writes the version `Complete` with the concatenated body, then marks the upload
//! finished; abort writes `Aborted`, then marks it finished. A crash between two steps
//! leaves a state the next call (or a retry) handles: a retried completion answers what the
//! first one wrote, a retried abort succeeds.
//!
//! Finished entries are tombstones (`MpuSchema::tombstone_since_ms`): each carries its
//! finish time (`finished_ms`, a write stamp of the finisher's seam clock, merged as the
//! maximum), and table tombstone collection removes it once every replica holds it and that
//! time is older than `tombstone_delay_ms`. Why forgetting one cannot revive the upload:
//! - every path answers a missing entry `NoSuchUpload` (upload part and part copy, list
//!   parts, complete, abort), as it answers a finished one except for a retried completion
//!   or abort, which within the delay still gets its first answer; listings skip both;
//! - no write recreates a live entry: create uses a fresh id; a finished marker arriving
//!   late recreates only a finished entry (a tombstone again, collected again); a part is
//!   recorded only after a re-read right before its write finds the upload still open, so
//!   a part write is in flight no longer than any table write, which the delay covers;
//! - blocks never depended on this entry: a part's blocks are live only while the upload's
//!   *version* (`object` table) is `Uploading`, and an entry is finished only after that
//!   version was written `Complete` or `Aborted`.
//!
//! Format: `MultipartUpload` is stored in `ENTRY_FORMAT_V2`; entries written before finish
//! times existed (V1) decode with `finished_ms` 0, "finished, time unknown", which is never
//! collected until `stamp_legacy_finishes` (run when the node opens its database) gives it
//! the node's current time (see that function for why that is safe).
//!
//! Known limits: an upload whose version is pruned by a newer completed write of the same
//! key (unversioned bucket) is dead — its blocks are collected and completing it answers
//! `NoSuchUpload`. The block collector aborts uploads left `Uploading` beyond its
//! `upload_timeout_ms` and finishes their entry: those with parts through their blocks,
//! and every upload of the partitions it leads through `abort_stale_uploads` (an upload
//! that never received a part has no block to be found by).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::body::{self, BodyBlock, BodySource, VecSource};
use super::conditional::WriteCondition;
use super::version::{Version, VersionData, VersionId, VersionState};
use super::{ObjectError, ObjectRecord, ObjectStore, StoredObject, record};
use crate::codec::{self, DecodeError};
use crate::crdt::{Bool, Crdt, Max};
use crate::node::Node;
use crate::table::schema::{ENTRY_FORMAT_V1, ENTRY_FORMAT_V2, StoredEntry, decode_entry};
use crate::table::{LocalTable, QuorumError, Store, StoreError, TableSchema, entry_key};

pub struct MpuSchema;
impl TableSchema for MpuSchema {
    const NAME: &'static str = "mpu";
    type Entry = MultipartUpload;
    const COLLECTS_TOMBSTONES: bool = true;

    /// Finished uploads, aged from their finish time (module comment: why forgetting one
    /// cannot revive it). Without this every upload ever made stays forever.
    fn tombstone_since_ms(entry: &MultipartUpload) -> Option<u64> {
        entry.tombstone_since_ms()
    }
}

/// Part numbers S3 allows.
pub const PART_NUMBER_MAX: u32 = 10_000;
/// Every part but the last of a completed upload must be at least this large.
pub const PART_SIZE_BYTES_MIN: u64 = 5 * 1024 * 1024;
/// Entries fetched per range read while listing uploads.
const LIST_BATCH: usize = 1000;

/// What the client supplied when it created the upload; the object gets it on completion.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UploadMeta {
    pub content_type: String,
    pub user_metadata: BTreeMap<String, String>,
}

/// One upload of one part: its ETag (as the client will quote it back), size and blocks.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PartRecord {
    pub etag: String,
    pub size_bytes: u64,
    pub blocks: Vec<BodyBlock>,
}

/// Names one upload of a part: the part number, then a stamp unique to that upload
/// (stamped above the previous upload of the same number that its writer saw).
pub type PartId = (u32, VersionId);

/// One multipart upload, as one CRDT entry of the `mpu` table.
///
/// Merge, for states `a`, `b` (writers keep every stored state *normal*: a finished upload
/// holds no parts):
/// - `key` and `meta` are written once, at creation, and copied into every later write of
///   the entry; should two ever differ the larger is kept, so the merge stays deterministic;
/// - `finished` is `or`; `finished_ms` (when it was finished, by the finisher's clock; 0
///   while not finished, or when finished before finish times were recorded) the maximum;
/// - `parts` is the union of both maps (one `PartId` is written once, so equal ids carry
///   equal records; the larger is kept otherwise), emptied once `finished`.
///
/// Laws: union, `or` and maximum are commutative, associative and idempotent, and so is
/// keeping the larger of two values. Emptying the parts when finished is applied to the result of a
/// lawful join and depends only on that result (finished is true iff one of the inputs
/// was), so `(a ⊔ b) ⊔ c` and `a ⊔ (b ⊔ c)` both give "finished, no parts" or the plain
/// union; on normal states `a ⊔ a = a`. Property-tested below with seeded generators.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultipartUpload {
    pub key: String,
    pub meta: UploadMeta,
    pub parts: BTreeMap<PartId, PartRecord>,
    pub finished: Bool,
    pub finished_ms: Max<u64>,
}

/// `MultipartUpload` as stored in `ENTRY_FORMAT_V1`, before finish times: kept only to
/// decode such entries (never written).
#[derive(Deserialize)]
struct MultipartUploadV1 {
    key: String,
    meta: UploadMeta,
    parts: BTreeMap<PartId, PartRecord>,
    finished: Bool,
}

impl StoredEntry for MultipartUpload {
    const ENTRY_FORMAT: u8 = ENTRY_FORMAT_V2;

    /// A V1 entry keeps every field; a finished one gets finish time 0, "unknown": it is not
    /// collected until `stamp_legacy_finishes` dates it.
    fn decode_older_format(format: u8, payload: &[u8]) -> Option<Result<Self, DecodeError>> {
        if format != ENTRY_FORMAT_V1 {
            return None;
        }
        let old: Result<MultipartUploadV1, _> = codec::decode("table entry (mpu, V1)", payload);
        Some(old.map(|old| MultipartUpload {
            key: old.key,
            meta: old.meta,
            parts: old.parts,
            finished: old.finished,
            finished_ms: Max::new(0),
        }))
    }
}

impl Crdt for MultipartUpload {
    fn merge(&mut self, other: &Self) {
        if (&other.key, &other.meta) > (&self.key, &self.meta) {
            self.key = other.key.clone();
            self.meta = other.meta.clone();
        }
        self.finished.merge(&other.finished);
        self.finished_ms.merge(&other.finished_ms);
        if self.finished.get() {
            self.parts.clear();
            return;
        }
        for (id, part) in &other.parts {
            match self.parts.get_mut(id) {
                Some(ours) if part > ours => *ours = part.clone(),
                Some(_) => {}
                None => {
                    self.parts.insert(*id, part.clone());
                }
            }
        }
    }
}

impl MultipartUpload {
    pub fn new(key: &str, meta: UploadMeta) -> Self {
        MultipartUpload { key: key.into(), meta, ..Default::default() }
    }

    /// This upload's identity with only `part` in it: what recording a part writes.
    fn with_part(&self, id: PartId, part: PartRecord) -> Self {
        let mut out = MultipartUpload::new(&self.key, self.meta.clone());
        out.parts.insert(id, part);
        out
    }

    /// This upload's identity, finished at `finished_ms` (and so without parts).
    fn finished_marker(&self, finished_ms: u64) -> Self {
        assert!(finished_ms > 0, "finish time 0 means unknown");
        let mut out = MultipartUpload::new(&self.key, self.meta.clone());
        out.finished.set();
        out.finished_ms = Max::new(finished_ms);
        out
    }

    /// When finished at a known time, that time: the entry is a tombstone from then on. An
    /// open upload, or one finished before finish times existed and not yet dated, is kept.
    pub fn tombstone_since_ms(&self) -> Option<u64> {
        let at = *self.finished_ms.get();
        (self.finished.get() && at > 0).then_some(at)
    }

    /// The newest upload of each part number, in part order.
    pub fn current_parts(&self) -> BTreeMap<u32, (VersionId, &PartRecord)> {
        // Ids sort by part number, then stamp: the last one seen per number is the newest.
        self.parts.iter().map(|((n, id), part)| (*n, (*id, part))).collect()
    }

    /// The newest stamp of an upload of part `part_number`, if any.
    fn newest_stamp(&self, part_number: u32) -> Option<u64> {
        let first = VersionId { timestamp: 0, unique: 0 };
        let range =
            (part_number, first)..=(part_number, VersionId { timestamp: u64::MAX, ..first });
        self.parts.range(range).next_back().map(|((_, id), _)| id.timestamp)
    }
}

/// A finish time: this node's next write stamp (its seam clock, kept above every stamp it
/// issued or saw, so never 0, which means "unknown").
fn finish_time_ms(node: &Node) -> u64 {
    node.stamp_after(0)
}

/// The sort key of an upload: the object key, a 0x00 separator, then the 32-hex-digit
/// upload id (fixed length, so the split is unambiguous whatever the key holds).
fn upload_sort_key(key: &str, id: VersionId) -> Vec<u8> {
    let mut out = key.as_bytes().to_vec();
    out.push(0);
    out.extend_from_slice(id.to_hex().as_bytes());
    out
}

pub(super) fn upload_entry_key(bucket: &str, key: &str, id: VersionId) -> Vec<u8> {
    entry_key(bucket.as_bytes(), &upload_sort_key(key, id))
}

/// The upload id at the end of a sort key.
fn upload_id_of(sort_key: &[u8]) -> Option<VersionId> {
    let hex = sort_key.len().checked_sub(32).map(|at| &sort_key[at..])?;
    VersionId::from_hex(std::str::from_utf8(hex).ok()?)
}

/// The body of a completed upload: the chosen parts' blocks, concatenated, and its size.
///
/// `chosen` lists (part number, ETag) strictly ascending (else `InvalidPartOrder`, also for
/// an empty list); each must name the newest upload of that part with that ETag (else
/// `InvalidPart`); all but the last must be at least `PART_SIZE_BYTES_MIN` (else
/// `EntityTooSmall`).
pub fn assemble(
    upload: &MultipartUpload,
    chosen: &[(u32, String)],
) -> Result<(u64, Vec<BodyBlock>), ObjectError> {
    if chosen.is_empty() || chosen.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(ObjectError::InvalidPartOrder);
    }
    let current = upload.current_parts();
    let (mut size_bytes, mut blocks) = (0u64, Vec::new());
    for (i, (part_number, etag)) in chosen.iter().enumerate() {
        let part = current
            .get(part_number)
            .map(|(_, part)| *part)
            .filter(|part| part.etag == *etag)
            .ok_or(ObjectError::InvalidPart { part_number: *part_number })?;
        let last = i + 1 == chosen.len();
        if !last && part.size_bytes < PART_SIZE_BYTES_MIN {
            let (part_number, size_bytes) = (*part_number, part.size_bytes);
            return Err(ObjectError::EntityTooSmall { part_number, size_bytes });
        }
        size_bytes += part.size_bytes;
        blocks.extend(part.blocks.iter().cloned());
    }
    let body_bytes: u64 = blocks.iter().map(|b| u64::from(b.size_bytes)).sum();
    assert_eq!(body_bytes, size_bytes, "a part's blocks disagree with its size");
    Ok((size_bytes, blocks))
}

/// One unfinished upload, as ListMultipartUploads shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadListing {
    pub key: String,
    pub upload_id: String,
    pub initiated_ms: u64,
    /// What the client gave at creation (the S3 layer keeps a declared checksum there).
    pub meta: UploadMeta,
}

/// The newest upload of one part, as ListParts shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartListing {
    pub part_number: u32,
    pub etag: String,
    pub size_bytes: u64,
    pub last_modified_ms: u64,
}

impl ObjectStore {
    /// The upload `upload_id` of `key` (finished or not), with its id.
    async fn upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(VersionId, MultipartUpload), ObjectError> {
        let id = VersionId::from_hex(upload_id).ok_or(ObjectError::NoSuchUpload)?;
        match self.node.mpu.get(&upload_entry_key(bucket, key, id)).await? {
            Some(upload) => Ok((id, upload)),
            None => {
                self.head_bucket(bucket).await?;
                Err(ObjectError::NoSuchUpload)
            }
        }
    }

    /// An upload still accepting parts.
    pub(super) async fn open_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(VersionId, MultipartUpload), ObjectError> {
        let (id, upload) = self.upload(bucket, key, upload_id).await?;
        if upload.finished.get() {
            return Err(ObjectError::NoSuchUpload);
        }
        Ok((id, upload))
    }

    /// `upload`'s identity, finished now (`finish_time_ms`).
    fn finished_now(&self, upload: &MultipartUpload) -> MultipartUpload {
        upload.finished_marker(finish_time_ms(&self.node))
    }

    /// The version an upload is writing, if it still exists.
    async fn upload_version(
        &self,
        bucket: &str,
        key: &str,
        id: VersionId,
    ) -> Result<Option<Version>, ObjectError> {
        Ok(self.entry(bucket, key).await?.and_then(|e| e.versions.get(&id).cloned()))
    }

    /// Starts an upload of `key`: records its version as `Uploading`, then the upload.
    /// Returns the upload id.
    pub async fn create_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        meta: UploadMeta,
    ) -> Result<String, ObjectError> {
        let kept = self.head_bucket(bucket).await?.versioning.keeps_history();
        let id = self.next_version_id(bucket, key).await?;
        self.write_version(bucket, key, id, Version::new(VersionState::Uploading, kept)).await?;
        let upload = MultipartUpload::new(key, meta);
        if let Err(e) = self.node.mpu.insert(upload_entry_key(bucket, key, id), &upload).await {
            let aborted = Version::new(VersionState::Aborted, kept);
            let _ = self.write_version(bucket, key, id, aborted).await;
            return Err(e.into());
        }
        Ok(id.to_hex())
    }

    /// Stores part `part_number` (1..=`PART_NUMBER_MAX`) of an upload from memory, with
    /// `etag` as its ETag (see `upload_part_stream`).
    pub async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        data: Vec<u8>,
        etag: String,
    ) -> Result<(), ObjectError> {
        let mut source = VecSource::new(data, etag);
        self.upload_part_stream(bucket, key, upload_id, part_number, &mut source).await.map(|_| ())
    }

    /// Stores part `part_number` (1..=`PART_NUMBER_MAX`) of an upload, streamed into blocks
    /// as it arrives (memory bound: `body::PUT_BLOCKS_HELD_MAX` blocks), and records it
    /// once the source's `finish` accepted it; returns the part's ETag. Uploading a part
    /// number again replaces it: the newest upload of each number is the one completion
    /// uses, and the blocks of the others are collected once the upload ends. A refused
    /// or failed part is not recorded (its blocks go with the upload's other leftovers).
    pub async fn upload_part_stream(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        source: &mut dyn BodySource,
    ) -> Result<String, ObjectError> {
        if !(1..=PART_NUMBER_MAX).contains(&part_number) {
            return Err(ObjectError::InvalidPartNumber { part_number });
        }
        let (id, upload) = self.open_upload(bucket, key, upload_id).await?;
        let seen = upload.newest_stamp(part_number).unwrap_or(0);
        let part_id = VersionId { timestamp: self.node.stamp_after(seen), unique: self.node.id.0 };
        let owner = body::Owner { bucket: bucket.into(), key: key.into(), version: id };
        let size = self.block_size_bytes;
        let stored =
            body::store_stream(&self.node, &self.memory, &owner, Vec::new(), source, size).await?;
        let end = source.finish(&stored.summary).map_err(super::object_ops::refused)?;
        let size_bytes = stored.summary.size_bytes;
        let part = PartRecord { etag: end.etag.clone(), size_bytes, blocks: stored.blocks };
        self.record_part_as((bucket, key, id), &upload, (part_number, part_id), part).await?;
        Ok(end.etag)
    }

    /// Records `part` as the newest upload of `part_number` (its blocks already referenced
    /// by the upload's version and stored).
    pub(super) async fn record_part(
        &self,
        upload_of: (&str, &str, VersionId),
        upload: &MultipartUpload,
        part_number: u32,
        part: PartRecord,
    ) -> Result<(), ObjectError> {
        let seen = upload.newest_stamp(part_number).unwrap_or(0);
        let part_id = VersionId { timestamp: self.node.stamp_after(seen), unique: self.node.id.0 };
        self.record_part_as(upload_of, upload, (part_number, part_id), part).await
    }

    /// Writes the part after reading the upload again: a part takes long to arrive, and an
    /// upload finished meanwhile (or finished and collected) must not get a part entry.
    /// The re-read bounds how long the write can lag behind the upload being open to one
    /// table write's time in flight, which tombstone collection's delay covers: a part
    /// write can never recreate a collected entry as an open upload.
    async fn record_part_as(
        &self,
        (bucket, key, id): (&str, &str, VersionId),
        upload: &MultipartUpload,
        part_id: PartId,
        part: PartRecord,
    ) -> Result<(), ObjectError> {
        let upload_key = upload_entry_key(bucket, key, id);
        match self.node.mpu.get(&upload_key).await? {
            Some(now) if !now.finished.get() => {}
            _ => return Err(ObjectError::NoSuchUpload),
        }
        let entry = upload.with_part(part_id, part);
        Ok(self.node.mpu.insert(upload_key, &entry).await?)
    }

    /// Completes an upload with the listed parts (see `assemble` for the rules): writes its
    /// version `Complete` with the parts' blocks as body and `final_etag`, then marks the
    /// upload finished. A retried completion answers the object the first one wrote.
    pub async fn complete_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
        final_etag: String,
    ) -> Result<ObjectRecord, ObjectError> {
        let upload = (bucket, key, upload_id);
        self.complete_multipart_upload_if(upload, parts, final_etag, None).await
    }

    /// As `complete_multipart_upload`, made current only if `condition` holds
    /// (`conditional`). A refusal leaves the upload open, as S3 does: the client may
    /// complete it again or abort it. The version id is the upload's, stamped at its
    /// creation, or a newer one if a write of the key completed since (`commit_completion`).
    pub async fn complete_multipart_upload_if(
        &self,
        upload: (&str, &str, &str),
        parts: &[(u32, String)],
        final_etag: String,
        condition: Option<&WriteCondition>,
    ) -> Result<ObjectRecord, ObjectError> {
        let completion = (final_etag, BTreeMap::new());
        self.complete_multipart_upload_with(upload, parts, completion, condition).await
    }

    /// As `complete_multipart_upload_if`; the object's metadata is the upload's plus
    /// `extra_metadata` (what only completion knows, e.g. the S3 layer's checksum of the
    /// whole object), and its ETag `final_etag`.
    pub async fn complete_multipart_upload_with(
        &self,
        (bucket, key, upload_id): (&str, &str, &str),
        parts: &[(u32, String)],
        (final_etag, extra_metadata): (String, BTreeMap<String, String>),
        condition: Option<&WriteCondition>,
    ) -> Result<ObjectRecord, ObjectError> {
        let (id, upload) = self.upload(bucket, key, upload_id).await?;
        let upload_key = upload_entry_key(bucket, key, id);
        let version = self.upload_version(bucket, key, id).await?;
        let kept = match version.map(|v| (v.state, v.kept)) {
            Some((VersionState::Uploading, kept)) if !upload.finished.get() => kept,
            Some((VersionState::Complete(VersionData::Object(stored)), _)) => {
                if !upload.finished.get() {
                    self.node.mpu.insert(upload_key, &self.finished_now(&upload)).await?;
                }
                return Ok(record(key, id, &stored, Vec::new()));
            }
            _ => return Err(ObjectError::NoSuchUpload),
        };
        let (size_bytes, blocks) = assemble(&upload, parts)?;
        if let Some(condition) = condition {
            self.precheck(bucket, key, condition).await?;
        }
        let owner = body::Owner { bucket: bucket.into(), key: key.into(), version: id };
        let body = self.body_of_blocks(&owner, blocks).await?;
        let stored = StoredObject {
            size_bytes,
            etag: final_etag,
            last_modified_ms: self.node.seam.clock.now_ms(),
            content_type: upload.meta.content_type.clone(),
            user_metadata: (upload.meta.user_metadata.clone().into_iter())
                .chain(extra_metadata)
                .collect(),
            body,
        };
        let complete = VersionState::Complete(VersionData::Object(stored.clone()));
        let version = Version::new(complete, kept);
        let id = self.commit_completion(bucket, key, id, version, condition).await?;
        self.node.mpu.insert(upload_key, &self.finished_now(&upload)).await?;
        Ok(record(key, id, &stored, Vec::new()))
    }

    /// Abandons an upload: its version becomes `Aborted` (the key keeps its previous
    /// version, and the collector removes the parts' blocks), then the upload is marked
    /// finished. Aborting an aborted upload again succeeds; a completed one is
    /// `NoSuchUpload`.
    pub async fn abort_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), ObjectError> {
        let (id, upload) = self.upload(bucket, key, upload_id).await?;
        let version = self.upload_version(bucket, key, id).await?;
        let kept = version.as_ref().is_some_and(|v| v.kept);
        match version.map(|v| v.state) {
            Some(VersionState::Complete(_) | VersionState::Deleted) => {
                return Err(ObjectError::NoSuchUpload);
            }
            Some(VersionState::Aborted) if upload.finished.get() => return Ok(()),
            // Uploading; aborted by the collector or by a failed earlier abort; or pruned
            // by a newer write (the write below is then pruned again on merge).
            _ => {}
        }
        self.write_version(bucket, key, id, Version::new(VersionState::Aborted, kept)).await?;
        let upload_key = upload_entry_key(bucket, key, id);
        Ok(self.node.mpu.insert(upload_key, &self.finished_now(&upload)).await?)
    }

    /// What the client supplied when it created the upload (finished or not; a retried
    /// completion needs it too).
    pub async fn upload_meta(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<UploadMeta, ObjectError> {
        Ok(self.upload(bucket, key, upload_id).await?.1.meta)
    }

    /// The newest upload of each part of an unfinished upload, in part order.
    pub async fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<PartListing>, ObjectError> {
        let (_, upload) = self.open_upload(bucket, key, upload_id).await?;
        let parts =
            upload.current_parts().into_iter().map(|(part_number, (id, part))| PartListing {
                part_number,
                etag: part.etag.clone(),
                size_bytes: part.size_bytes,
                last_modified_ms: id.timestamp,
            });
        Ok(parts.collect())
    }

    /// Unfinished uploads of keys starting with `prefix`, by key then age, at most
    /// `max_uploads`.
    pub async fn list_multipart_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        max_uploads: usize,
    ) -> Result<Vec<UploadListing>, ObjectError> {
        self.head_bucket(bucket).await?;
        let mut out = Vec::new();
        let mut after = Vec::new();
        while out.len() < max_uploads {
            let page =
                self.node.mpu.get_range(bucket.as_bytes(), prefix.as_bytes(), &after, LIST_BATCH);
            let page = page.await?;
            let done = page.len() < LIST_BATCH;
            after = page.last().map(|(k, _)| k.clone()).unwrap_or_default();
            for (sort_key, upload) in page {
                let Some(id) = upload_id_of(&sort_key) else { continue };
                if !upload.finished.get() && out.len() < max_uploads {
                    let (key, upload_id, meta) = (upload.key, id.to_hex(), upload.meta);
                    out.push(UploadListing { key, upload_id, initiated_ms: id.timestamp, meta });
                }
            }
            if done {
                break;
            }
        }
        Ok(out)
    }
}

/// Marks the upload `id` of `bucket`/`key` finished, if it is a multipart upload not yet
/// finished: what the block collector does after aborting a timed-out upload's version
/// (`gc`), so that the upload is no longer listed, takes no parts, and is collected.
pub(super) async fn finish_aborted_upload(
    node: &Node,
    (bucket, key, id): (&str, &str, VersionId),
) -> Result<(), QuorumError> {
    let upload_key = upload_entry_key(bucket, key, id);
    match node.mpu.get(&upload_key).await? {
        Some(upload) if !upload.finished.get() => {
            node.mpu.insert(upload_key, &upload.finished_marker(finish_time_ms(node))).await
        }
        _ => Ok(()),
    }
}

/// Open uploads of the `mpu` partitions this node leads (first of `all_nodes`, as for
/// tombstone collection) created more than `timeout_ms` ago, and watched open by this node
/// that long (`watch`): each is aborted like
/// AbortMultipartUpload does (its version `Aborted` unless it completed meanwhile, then its
/// entry finished), so that it is no longer listed and is collected. Returns how many.
///
/// Why here and not only through blocks: the block collector meets an upload through the
/// references of its blocks, and an upload that never got a part has none; it would stay
/// open, listed and uncollectable, with its `Uploading` version keeping its `object` entry.
pub(super) async fn abort_stale_uploads(
    node: &Node,
    now_ms: u64,
    timeout_ms: u64,
    watch: &std::sync::Mutex<super::gc::StaleUploads>,
) -> Result<usize, QuorumError> {
    let history = node.layouts.shared();
    if history.current().is_none() || node.is_syncing() {
        return Ok(0);
    }
    let mut aborted = 0;
    for partition in 0..=u8::MAX {
        if history.all_nodes(partition).first() != Some(&node.id) {
            continue;
        }
        let mut after = Vec::new();
        loop {
            let page = match node.mpu.local.range(&[partition], &after, STAMP_BATCH) {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(partition, "stale uploads: {e}");
                    break;
                }
            };
            for (storage_key, bytes) in &page {
                let Ok(upload) = decode_entry::<MultipartUpload>(bytes) else { continue };
                let Some(id) = upload_id_of(&storage_key[32..]) else { continue };
                // Judged by its stamp and by this node's own watch (`gc`, module docs).
                let stale = !upload.finished.get()
                    && watch.lock().expect("no panic while held").is_stale(id, now_ms, timeout_ms);
                if stale {
                    abort_stale(node, storage_key, &upload, id).await?;
                    aborted += 1;
                }
            }
            match page.last() {
                Some((key, _)) if page.len() == STAMP_BATCH => after = key.clone(),
                _ => break,
            }
        }
    }
    Ok(aborted)
}

/// Aborts one stale upload, stored under `storage_key` (`blake3(bucket) ‖ sort key`: its
/// object's storage key is the same hash followed by the object key).
async fn abort_stale(
    node: &Node,
    storage_key: &[u8],
    upload: &MultipartUpload,
    id: VersionId,
) -> Result<(), QuorumError> {
    let mut object_key = storage_key[..32].to_vec();
    object_key.extend_from_slice(upload.key.as_bytes());
    let entry = node.objects.get_seeing_every_write(&object_key).await?.unwrap_or_default();
    if let Some(version) = entry.versions.get(&id).filter(|v| v.state == VersionState::Uploading) {
        let aborted = Version::new(VersionState::Aborted, version.kept);
        node.objects.insert(object_key, &super::ObjectEntry::with(id, aborted)).await?;
    }
    let finished = upload.finished_marker(finish_time_ms(node));
    node.mpu.insert(storage_key.to_vec(), &finished).await
}

/// Entries read per batch by `stamp_legacy_finishes`.
const STAMP_BATCH: usize = 1000;

/// The upgrade step of the `mpu` table, run when a node opens its database: every entry of
/// this replica that is finished without a finish time (written in `ENTRY_FORMAT_V1`, or
/// merged from one) is dated `now_ms` and rewritten; returns how many.
///
/// Why "now" is safe: such an entry finished before this node started, so its real finish
/// time is earlier (up to clock skew, which the 24-hour tombstone delay dwarfs as it does
/// for every table); aging it from later only delays its collection. Replicas date it
/// differently; the merge keeps the latest, so it is collected only when every replica's
/// date is old enough. Dating writes nothing but the time: it revives nothing.
pub fn stamp_legacy_finishes(store: &Store<MpuSchema>, now_ms: u64) -> Result<usize, StoreError> {
    let (mut stamped, mut after) = (0, Vec::new());
    loop {
        let page = store.range(&[], &after, STAMP_BATCH)?;
        for (key, bytes) in &page {
            let entry: MultipartUpload = decode_entry(bytes).map_err(|e| StoreError::BadEntry {
                table: MpuSchema::NAME,
                reason: e.to_string(),
            })?;
            if entry.finished.get() && *entry.finished_ms.get() == 0 {
                store.merge(key, &entry.finished_marker(now_ms.max(1)))?;
                stamped += 1;
            }
        }
        match page.last() {
            Some((key, _)) if page.len() == STAMP_BATCH => after = key.clone(),
            _ => return Ok(stamped),
        }
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha8Rng;
    use rand_core::RngCore;

    use super::*;
    use crate::crdt::assert_crdt_laws;

    fn small(rng: &mut ChaCha8Rng, below: u32) -> u32 {
        rng.next_u32() % below
    }

    /// A random normal state built the way writers build them: an upload identity (from a
    /// small domain, so that rare conflicting identities are exercised too), a few parts
    /// with colliding numbers and stamps, sometimes finished.
    fn upload(rng: &mut ChaCha8Rng) -> MultipartUpload {
        let meta = UploadMeta { content_type: format!("t{}", small(rng, 2)), ..Default::default() };
        let mut u = MultipartUpload::new("k", meta);
        for _ in 0..small(rng, 4) {
            let id = VersionId { timestamp: u64::from(small(rng, 3)), unique: 1 };
            let number = 1 + small(rng, 3);
            // One PartId is written once: derive its record from the id.
            let etag = format!("e{number}-{}", id.timestamp);
            let part = PartRecord { etag, size_bytes: u64::from(number), blocks: Vec::new() };
            u.merge(&u.with_part((number, id), part));
        }
        if small(rng, 4) == 0 {
            // Colliding finish times, and the "unknown" 0 of an entry decoded from V1.
            let mut finished = u.finished_marker(1 + u64::from(small(rng, 3)));
            if small(rng, 3) == 0 {
                finished.finished_ms = Max::new(0);
            }
            u.merge(&finished);
        }
        u
    }

    #[test]
    fn merge_is_commutative_associative_and_idempotent() {
        assert_crdt_laws("MultipartUpload", 2000, upload);
    }

    #[test]
    fn finishing_drops_the_parts_whatever_arrives_later() {
        let mut u = MultipartUpload::new("k", UploadMeta::default());
        let id = VersionId { timestamp: 5, unique: 1 };
        let part = PartRecord { etag: "e".into(), size_bytes: 1, blocks: Vec::new() };
        let late = u.with_part((1, id), part);
        u.merge(&u.finished_marker(7));
        u.merge(&late);
        assert!(u.finished.get() && u.parts.is_empty());
        assert_eq!(u.tombstone_since_ms(), Some(7));
        u.merge(&u.finished_marker(9));
        u.merge(&u.finished_marker(8));
        assert_eq!(u.tombstone_since_ms(), Some(9), "aged from the latest finish");
    }

    #[test]
    fn only_uploads_finished_at_a_known_time_are_tombstones() {
        let open = MultipartUpload::new("k", UploadMeta::default());
        assert_eq!(open.tombstone_since_ms(), None);
        let mut legacy = open.finished_marker(5);
        legacy.finished_ms = Max::new(0);
        assert_eq!(legacy.tombstone_since_ms(), None, "finished, time unknown: kept");
        assert_eq!(open.finished_marker(5).tombstone_since_ms(), Some(5));
    }

    /// `MultipartUpload` as it was stored before finish times (format 1): a copy of the old
    /// type, so that the bytes below are what old nodes really wrote.
    #[derive(Serialize)]
    struct OldUpload {
        key: String,
        meta: UploadMeta,
        parts: BTreeMap<PartId, PartRecord>,
        finished: Bool,
    }

    fn old_bytes(old: &OldUpload) -> Vec<u8> {
        let mut bytes = vec![ENTRY_FORMAT_V1];
        bytes.extend_from_slice(&codec::encode(old));
        bytes
    }

    #[test]
    fn entries_in_the_first_format_decode_with_an_unknown_finish_time() {
        let meta = UploadMeta { content_type: "a/b".into(), user_metadata: BTreeMap::new() };
        let mut parts = BTreeMap::new();
        parts.insert((2, stamp(9)), part("e2", 10));
        let open =
            OldUpload { key: "k".into(), meta: meta.clone(), parts, finished: Bool::new(false) };
        let got: MultipartUpload = decode_entry(&old_bytes(&open)).expect("V1 decodes");
        assert_eq!((got.key.as_str(), &got.meta, &got.parts), ("k", &meta, &open.parts));
        assert!(!got.finished.get() && *got.finished_ms.get() == 0);

        let done = OldUpload { parts: BTreeMap::new(), finished: Bool::new(true), ..open };
        let got: MultipartUpload = decode_entry(&old_bytes(&done)).expect("V1 decodes");
        assert!(got.finished.get() && got.parts.is_empty());
        assert_eq!(got.tombstone_since_ms(), None, "not collectable before it is dated");

        // Written back in the new format, and read again unchanged.
        let bytes = crate::table::schema::encode_entry(&got);
        assert_eq!(bytes[0], ENTRY_FORMAT_V2);
        assert_eq!(decode_entry::<MultipartUpload>(&bytes).unwrap(), got);
        let mut unknown = bytes.clone();
        unknown[0] = 9;
        assert!(decode_entry::<MultipartUpload>(&unknown).is_err(), "an unknown format");
    }

    #[test]
    fn opening_dates_legacy_finished_entries_and_nothing_else() {
        let disk = crate::testkit::MemDisk::default();
        let db = crate::seam::open_database(&disk, "meta/test.redb").expect("open");
        let store = Store::<MpuSchema>::open(std::sync::Arc::new(db)).unwrap();
        let done = OldUpload {
            key: "done".into(),
            meta: UploadMeta::default(),
            parts: BTreeMap::new(),
            finished: Bool::new(true),
        };
        let open = OldUpload {
            key: "open".into(),
            meta: UploadMeta::default(),
            parts: BTreeMap::new(),
            finished: Bool::new(false),
        };
        let dated = MultipartUpload::new("dated", UploadMeta::default()).finished_marker(3);
        let keys: Vec<Vec<u8>> =
            ["done", "open", "dated"].iter().map(|k| upload_entry_key("b", k, stamp(1))).collect();
        let raw = [
            (keys[0].clone(), old_bytes(&done)),
            (keys[1].clone(), old_bytes(&open)),
            (keys[2].clone(), crate::table::schema::encode_entry(&dated)),
        ];
        store.merge_raw(&raw).unwrap();
        assert_eq!(stamp_legacy_finishes(&store, 500).unwrap(), 1);
        let got = |i: usize| store.get(&keys[i]).unwrap().unwrap();
        assert_eq!(got(0).tombstone_since_ms(), Some(500), "dated at the upgrade");
        assert_eq!(got(1).tombstone_since_ms(), None, "an open upload stays open");
        assert!(!got(1).finished.get());
        assert_eq!(got(2).tombstone_since_ms(), Some(3), "a known finish time is kept");
        assert_eq!(stamp_legacy_finishes(&store, 900).unwrap(), 0, "dated once");
    }

    /// A part of one (pretend) block of its size.
    fn part(etag: &str, size_bytes: u64) -> PartRecord {
        let hash = crate::block::hash_of(etag.as_bytes());
        let blocks = vec![BodyBlock { hash, size_bytes: size_bytes as u32 }];
        PartRecord { etag: etag.into(), size_bytes, blocks }
    }

    fn stamp(timestamp: u64) -> VersionId {
        VersionId { timestamp, unique: 1 }
    }

    #[test]
    fn assemble_takes_the_newest_upload_of_each_part_and_checks_the_rules() {
        let mut u = MultipartUpload::new("k", UploadMeta::default());
        let big = PART_SIZE_BYTES_MIN;
        for (number, at, etag, size) in
            [(2, 1, "old2", big), (1, 2, "one", big), (2, 3, "two", big), (3, 4, "small", 1)]
        {
            u.merge(&u.with_part((number, stamp(at)), part(etag, size)));
        }
        let list = |items: &[(u32, &str)]| -> Vec<(u32, String)> {
            items.iter().map(|(n, e)| (*n, e.to_string())).collect()
        };
        let (size_bytes, blocks) =
            assemble(&u, &list(&[(1, "one"), (2, "two"), (3, "small")])).expect("a valid choice");
        assert_eq!(size_bytes, 2 * big + 1);
        let expected: Vec<BodyBlock> = ["one", "two", "small"]
            .iter()
            .map(|e| u.parts.values().find(|p| p.etag == *e))
            .map(|p| p.unwrap().blocks[0].clone())
            .collect();
        assert_eq!(blocks, expected, "blocks in part order, newest upload of part 2");
        assert_eq!(
            assemble(&u, &list(&[(1, "one"), (2, "old2")])),
            Err(ObjectError::InvalidPart { part_number: 2 }),
            "a superseded upload of a part is not a valid choice"
        );
        assert_eq!(
            assemble(&u, &list(&[(2, "two"), (1, "one")])),
            Err(ObjectError::InvalidPartOrder)
        );
        assert_eq!(assemble(&u, &[]), Err(ObjectError::InvalidPartOrder));
        assert_eq!(
            assemble(&u, &list(&[(3, "small"), (4, "none")])),
            Err(ObjectError::EntityTooSmall { part_number: 3, size_bytes: 1 })
        );
        assert_eq!(
            assemble(&u, &list(&[(1, "one"), (7, "none")])),
            Err(ObjectError::InvalidPart { part_number: 7 })
        );
    }

    #[test]
    fn upload_ids_are_read_back_from_sort_keys() {
        let id = VersionId { timestamp: 42, unique: 3 };
        assert_eq!(upload_id_of(&upload_sort_key("a\0b", id)), Some(id));
        assert_eq!(upload_id_of(b"short"), None);
    }
}
