//! Object bodies: inline in the object entry below a small threshold, otherwise cut into
//! content-addressed blocks stored by the block layer.
//!
//! Why inline: a block costs a replicated file per replica and an extra read round trip;
//! for bodies of a few KiB the entry itself is the cheaper home. Blocks are written before
//! the entry that names them, so a visible object never points at a block that was not
//! stored with a write quorum, and each block's reference (`block_ref`) is written before
//! the block, so the collector (`gc`) never sees a stored block it cannot account for.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use super::block_ref::{BlockRef, ref_sort_key};
use super::version::VersionId;
use crate::block::{BlockError, BlockHash, hash_of};
use crate::crdt::Bool;
use crate::node::Node;

/// Bodies up to this size stay in the object entry.
pub const INLINE_MAX_BYTES: usize = 3 * 1024;
/// Blocks of one body being written at once: bounds the memory a PUT holds beyond its
/// body and keeps several replicas busy in parallel.
pub const BLOCK_PUTS_IN_FLIGHT: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Body {
    Inline(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The blocks of the body, in order.
    Blocks(Vec<BodyBlock>),
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

/// Stores `data` as a body: inline if small, else as blocks of `block_size_bytes`, each
/// referenced by `owner` and acknowledged by a write quorum before this returns.
pub async fn store(
    node: &Arc<Node>,
    owner: &Owner,
    data: Vec<u8>,
    block_size_bytes: usize,
) -> Result<Body, BlockError> {
    if data.len() <= INLINE_MAX_BYTES {
        return Ok(Body::Inline(data));
    }
    Ok(Body::Blocks(store_blocks(node, owner, &data, block_size_bytes).await?))
}

/// Stores `data` as blocks of `block_size_bytes` whatever its size (a multipart part is
/// one piece of a larger body, so it is never inline), each referenced by `owner` and
/// acknowledged by a write quorum before this returns. Empty data gives no block.
pub async fn store_blocks(
    node: &Arc<Node>,
    owner: &Owner,
    data: &[u8],
    block_size_bytes: usize,
) -> Result<Vec<BodyBlock>, BlockError> {
    let mut refs = Vec::with_capacity(data.len().div_ceil(block_size_bytes));
    let mut writes = JoinSet::new();
    for chunk in data.chunks(block_size_bytes) {
        let hash = hash_of(chunk);
        refs.push(BodyBlock { hash, size_bytes: chunk.len() as u32 });
        if writes.len() >= BLOCK_PUTS_IN_FLIGHT {
            finish_one(&mut writes).await?;
        }
        let (node, owner, chunk) = (node.clone(), owner.clone(), chunk.to_vec());
        writes.spawn(async move {
            reference(&node, &owner, hash).await?;
            node.blocks.put_block(hash, chunk).await
        });
    }
    while !writes.is_empty() {
        finish_one(&mut writes).await?;
    }
    Ok(refs)
}

/// Records that `owner` uses block `hash` (before the block is stored).
async fn reference(node: &Node, owner: &Owner, hash: BlockHash) -> Result<(), BlockError> {
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

/// Reads a whole body back, checking every block's size against the entry.
pub async fn load(blocks: &crate::block::BlockManager, body: &Body) -> Result<Vec<u8>, BlockError> {
    let refs = match body {
        Body::Inline(data) => return Ok(data.clone()),
        Body::Blocks(refs) => refs,
    };
    let total: usize = refs.iter().map(|r| r.size_bytes as usize).sum();
    let mut out = Vec::with_capacity(total);
    for r in refs {
        let data = blocks.get_block(&r.hash).await?;
        // The hash was verified by the block layer; a size mismatch means the entry and the
        // block disagree, which a correct writer never produces.
        assert_eq!(data.len(), r.size_bytes as usize, "block size differs from its reference");
        out.extend_from_slice(&data);
    }
    Ok(out)
}

/// The body's size in bytes.
pub fn size_bytes(body: &Body) -> u64 {
    match body {
        Body::Inline(data) => data.len() as u64,
        Body::Blocks(refs) => refs.iter().map(|r| r.size_bytes as u64).sum(),
    }
}
