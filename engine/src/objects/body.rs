//! Object bodies: inline in the object entry below a small threshold, otherwise cut into
//! content-addressed blocks stored by the block layer — as the bytes arrive.
//!
//! Why inline: a block costs a replicated file per replica and an extra read round trip;
//! for bodies of a few KiB the entry itself is the cheaper home. Blocks are written before
//! the entry that names them, so a visible object never points at a block that was not
//! stored with a write quorum, and each block's reference (`block_ref`) is written before
//! the block, so the collector (`gc`) never sees a stored block it cannot account for.
//!
//! Why streaming, and the memory bound: a body is read from a `BodySource` chunk by chunk
//! and cut into blocks as it arrives; at most `BLOCK_PUTS_IN_FLIGHT` sealed blocks are
//! being written at once, plus the one being filled, so a PUT of any size holds at most
//! `PUT_BLOCKS_HELD_MAX` blocks (`BodyMemory` measures it; `body_tests.rs` checks it on a
//! body of many blocks). The MD5 (the S3 ETag) and the length are computed on the way.
//! Reading is `body_reader.rs`.
//!
//! Who decides that a body is good: the source. After its last chunk the source's
//! `finish` sees the length and MD5 and may still refuse (a payload signature, checksum or
//! Content-MD5 that does not match); the caller then never makes the version `Complete`,
//! so a refused body is never visible and its blocks are collected.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use super::block_ref::{BlockRef, ref_sort_key};
use super::version::VersionId;
use crate::block::{BlockError, BlockHash, hash_of};
use crate::crdt::Bool;
use crate::node::Node;
use crate::seam::BoxFuture;

/// Bodies up to this size stay in the object entry: one durable commit per PUT, where a
/// block costs an `Uploading` record, a reference, the file and its directory, and the
/// `Complete` record — six fsyncs in series (docs/benchmarks.md, "Small-object PUT
/// latency"). 4 KiB keeps the common small file (and S3 benchmarks' small object) inline;
/// the price is entries of up to 4 KiB more in listings and HEADs, which read them whole.
pub const INLINE_MAX_BYTES: usize = 4 * 1024;
/// Blocks of one body being written at once: keeps several replicas busy in parallel and
/// bounds the memory a PUT holds.
pub const BLOCK_PUTS_IN_FLIGHT: usize = 4;
/// The most blocks' worth of body bytes one PUT (or part upload) holds: the blocks in
/// flight and the one being filled.
pub const PUT_BLOCKS_HELD_MAX: usize = BLOCK_PUTS_IN_FLIGHT + 1;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Body {
    Inline(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The blocks of the body, in order.
    Blocks(Vec<BodyBlock>),
    /// A list of more than `version_blocks::LIST_INLINE_MAX_BLOCKS` blocks, kept in the
    /// `version` table under the version's id (`version_blocks`).
    Listed(ListedBody),
}

impl Body {
    /// Whether the body is stored as blocks (referenced in `block_ref`), listed here or in
    /// the `version` table.
    pub fn in_blocks(&self) -> bool {
        matches!(self, Body::Blocks(_) | Body::Listed(_))
    }
}

/// What an object entry keeps of a block list stored in the `version` table: enough to
/// check that the list read is the one the version was written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ListedBody {
    pub block_count: u32,
    /// blake3 of the list's encoding.
    pub list_hash: [u8; 32],
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BodyBlock {
    pub hash: BlockHash,
    pub size_bytes: u32,
}

/// The object version a body belongs to.
#[derive(Debug, Clone)]
pub struct Owner {
    pub bucket: String,
    pub key: String,
    pub version: VersionId,
}

/// Why a source refused its body (the source keeps the details for its caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyRefused {
    pub reason: String,
}

/// What the store computed over a whole body, handed to `BodySource::finish`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodySummary {
    pub size_bytes: u64,
    pub md5: [u8; 16],
}

/// What a source says about a body it accepts: the ETag to store and metadata to add
/// (e.g. checksums the client sent in a trailer).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BodyEnd {
    pub etag: String,
    pub extra_metadata: BTreeMap<String, String>,
}

/// A body arriving in chunks (an HTTP request body, a test vector).
pub trait BodySource: Send {
    /// The next piece of the body, `None` after the last.
    fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Bytes>, BodyRefused>>;

    /// Called once after `next_chunk` answered `None`, before the body becomes visible:
    /// the last chance to refuse it.
    fn finish(&mut self, summary: &BodySummary) -> Result<BodyEnd, BodyRefused>;
}

/// A body already in memory, with the ETag to store (tests; small internal writes).
pub struct VecSource {
    data: Option<Vec<u8>>,
    etag: String,
}

impl VecSource {
    pub fn new(data: Vec<u8>, etag: String) -> Self {
        VecSource { data: Some(data), etag }
    }
}

impl BodySource for VecSource {
    fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Bytes>, BodyRefused>> {
        let next = self.data.take().filter(|d| !d.is_empty()).map(Bytes::from);
        Box::pin(async move { Ok(next) })
    }

    fn finish(&mut self, _: &BodySummary) -> Result<BodyEnd, BodyRefused> {
        Ok(BodyEnd { etag: self.etag.clone(), extra_metadata: BTreeMap::new() })
    }
}

/// Body bytes held by one store's PUTs and GETs: now, and the most ever (for tests and
/// metrics; the bounds are `PUT_BLOCKS_HELD_MAX` and `body_reader::GET_BLOCKS_HELD_MAX`
/// blocks per request).
#[derive(Debug, Default)]
pub struct BodyMemory {
    held_bytes: AtomicU64,
    high_water_bytes: AtomicU64,
}

impl BodyMemory {
    pub fn held_bytes(&self) -> u64 {
        self.held_bytes.load(Ordering::Relaxed)
    }

    pub fn high_water_bytes(&self) -> u64 {
        self.high_water_bytes.load(Ordering::Relaxed)
    }

    pub fn reset_high_water(&self) {
        self.high_water_bytes.store(self.held_bytes(), Ordering::Relaxed);
    }

    /// Counts `bytes` as held until the guard is dropped.
    pub fn hold(self: &Arc<Self>, bytes: u64) -> Held {
        let now = self.held_bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.high_water_bytes.fetch_max(now, Ordering::Relaxed);
        Held { memory: self.clone(), bytes }
    }
}

/// Bytes counted in a `BodyMemory` while this lives (a plain counter decrement on drop).
pub struct Held {
    memory: Arc<BodyMemory>,
    bytes: u64,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.memory.held_bytes.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// Reads the start of a body: chunks until more than `INLINE_MAX_BYTES` have arrived or
/// the body ended. Returns those bytes and whether the body ended (then they are all of
/// it). Holds at most `INLINE_MAX_BYTES` plus one chunk.
pub async fn read_head(source: &mut dyn BodySource) -> Result<(Vec<u8>, bool), BodyRefused> {
    let mut head = Vec::new();
    while head.len() <= INLINE_MAX_BYTES {
        match source.next_chunk().await? {
            Some(chunk) => head.extend_from_slice(&chunk),
            None => return Ok((head, true)),
        }
    }
    Ok((head, false))
}

/// Why storing a body failed: the source refused it, or the store failed.
#[derive(Debug)]
pub enum StoreError {
    Refused(BodyRefused),
    Block(BlockError),
}

impl From<BlockError> for StoreError {
    fn from(e: BlockError) -> Self {
        StoreError::Block(e)
    }
}

impl From<BodyRefused> for StoreError {
    fn from(e: BodyRefused) -> Self {
        StoreError::Refused(e)
    }
}

/// A body stored as blocks, with what `finish` was told about it.
#[derive(Debug)]
pub struct StoredBody {
    pub blocks: Vec<BodyBlock>,
    pub summary: BodySummary,
}

/// Stores `head` and then the rest of `source` as blocks of `block_size_bytes`, each
/// referenced by `owner` and acknowledged by a write quorum before this returns (never
/// inline: the caller decided that with `read_head`). Empty bodies give no block.
/// `finish` is *not* called: the caller does it, once it has decided what to do with the
/// blocks.
pub async fn store_stream(
    node: &Arc<Node>,
    memory: &Arc<BodyMemory>,
    owner: &Owner,
    head: Vec<u8>,
    source: &mut dyn BodySource,
    block_size_bytes: usize,
) -> Result<StoredBody, StoreError> {
    assert!(block_size_bytes > 0, "blocks have a size");
    let mut writer = BlockWriter {
        node,
        memory,
        owner,
        block_size_bytes,
        md5: Md5::new(),
        size_bytes: 0,
        blocks: Vec::new(),
        fill: None,
        writes: JoinSet::new(),
    };
    let result = async {
        writer.push(&head).await?;
        drop(head);
        while let Some(chunk) = source.next_chunk().await? {
            writer.push(&chunk).await?;
        }
        writer.seal().await?;
        writer.drain().await?;
        Ok::<(), StoreError>(())
    }
    .await;
    if let Err(e) = result {
        // Stop the writes still running: their blocks are orphans the collector removes.
        writer.writes.abort_all();
        return Err(e);
    }
    let summary = BodySummary { size_bytes: writer.size_bytes, md5: writer.md5.finalize().into() };
    Ok(StoredBody { blocks: writer.blocks, summary })
}

/// Cuts bytes into blocks and writes them, `BLOCK_PUTS_IN_FLIGHT` at most at once.
struct BlockWriter<'a> {
    node: &'a Arc<Node>,
    memory: &'a Arc<BodyMemory>,
    owner: &'a Owner,
    block_size_bytes: usize,
    md5: Md5,
    size_bytes: u64,
    blocks: Vec<BodyBlock>,
    /// The block being filled (allocated when its first byte arrives) and its count.
    fill: Option<(Vec<u8>, Held)>,
    writes: JoinSet<Result<(), BlockError>>,
}

impl BlockWriter<'_> {
    async fn push(&mut self, mut data: &[u8]) -> Result<(), BlockError> {
        self.md5.update(data);
        self.size_bytes += data.len() as u64;
        while !data.is_empty() {
            let size = self.block_size_bytes;
            let (fill, _) = self.fill.get_or_insert_with(|| {
                // Counted whole: the allocation is the block size from the start.
                (Vec::with_capacity(size), self.memory.hold(size as u64))
            });
            let take = (size - fill.len()).min(data.len());
            fill.extend_from_slice(&data[..take]);
            data = &data[take..];
            if fill.len() == size {
                self.seal().await?;
            }
        }
        Ok(())
    }

    /// Sends the block being filled, if any, once a slot is free.
    async fn seal(&mut self) -> Result<(), BlockError> {
        if self.fill.is_none() {
            return Ok(());
        }
        // Wait before taking the block out, so that a new one is not allocated meanwhile.
        while self.writes.len() >= BLOCK_PUTS_IN_FLIGHT {
            finish_one(&mut self.writes).await?;
        }
        let (block, held) = self.fill.take().expect("checked above");
        let hash = hash_of(&block);
        self.blocks.push(BodyBlock { hash, size_bytes: block.len() as u32 });
        let (node, owner) = (self.node.clone(), self.owner.clone());
        self.writes.spawn(async move {
            reference(&node, &owner, hash).await?;
            let stored = node.blocks.put_block(hash, block).await;
            drop(held);
            stored
        });
        Ok(())
    }

    async fn drain(&mut self) -> Result<(), BlockError> {
        while !self.writes.is_empty() {
            finish_one(&mut self.writes).await?;
        }
        Ok(())
    }
}

/// Records that `owner` uses block `hash` (before the block is stored).
pub(super) async fn reference(
    node: &Node,
    owner: &Owner,
    hash: BlockHash,
) -> Result<(), BlockError> {
    let sort_key = ref_sort_key(&owner.bucket, &owner.key, owner.version);
    let entry = BlockRef {
        block: hash,
        bucket: owner.bucket.clone(),
        key: owner.key.clone(),
        version: owner.version,
        deleted: Bool::new(false),
    };
    let key = crate::table::entry_key(&hash, &sort_key);
    node.block_refs.insert(key, &entry).await.map_err(|e| BlockError::Quorum {
        quorum: e.quorum,
        successes: e.successes,
        errors: e.errors,
    })
}

async fn finish_one(writes: &mut JoinSet<Result<(), BlockError>>) -> Result<(), BlockError> {
    match writes.join_next().await.expect("called with writes pending") {
        Ok(result) => result,
        Err(e) => Err(BlockError::Io { reason: format!("block write task failed: {e}") }),
    }
}

/// The MD5 of an inline body (bodies stored as blocks get theirs while streaming).
pub fn md5_of(data: &[u8]) -> [u8; 16] {
    Md5::digest(data).into()
}
