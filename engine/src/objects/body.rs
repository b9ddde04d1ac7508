//! Object bodies: inline in the object entry below a small threshold, otherwise cut into
//! content-addressed blocks stored by the block layer.
//!
//! Why inline: a block costs a replicated file per replica and an extra read round trip;
//! for bodies of a few KiB the entry itself is the cheaper home. Blocks are written before
//! the entry that names them, so a visible object never points at a block that was not
//! stored with a write quorum. (A crash between the two leaves unreferenced blocks; the
//! garbage collector of the data-path work reclaims them.)

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::block::{BlockError, BlockHash, BlockManager, hash_of};

/// Bodies up to this size stay in the object entry.
pub const INLINE_MAX_BYTES: usize = 3 * 1024;
/// Blocks of one body being written at once: bounds the memory a PUT holds beyond its
/// body and keeps several replicas busy in parallel.
pub const BLOCK_PUTS_IN_FLIGHT: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Body {
    Inline(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The blocks of the body, in order.
    Blocks(Vec<BlockRef>),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BlockRef {
    pub hash: BlockHash,
    pub size_bytes: u32,
}

/// Stores `data` as a body: inline if small, else as blocks of `block_size_bytes`, each
/// acknowledged by a write quorum before this returns.
pub async fn store(
    blocks: &Arc<BlockManager>,
    data: Vec<u8>,
    block_size_bytes: usize,
) -> Result<Body, BlockError> {
    if data.len() <= INLINE_MAX_BYTES {
        return Ok(Body::Inline(data));
    }
    let mut refs = Vec::with_capacity(data.len().div_ceil(block_size_bytes));
    let mut writes = JoinSet::new();
    for chunk in data.chunks(block_size_bytes) {
        let hash = hash_of(chunk);
        refs.push(BlockRef { hash, size_bytes: chunk.len() as u32 });
        if writes.len() >= BLOCK_PUTS_IN_FLIGHT {
            finish_one(&mut writes).await?;
        }
        let (blocks, chunk) = (blocks.clone(), chunk.to_vec());
        writes.spawn(async move { blocks.put_block(hash, chunk).await });
    }
    while !writes.is_empty() {
        finish_one(&mut writes).await?;
    }
    Ok(Body::Blocks(refs))
}

async fn finish_one(writes: &mut JoinSet<Result<(), BlockError>>) -> Result<(), BlockError> {
    match writes.join_next().await.expect("called with writes pending") {
        Ok(result) => result,
        Err(e) => Err(BlockError::Io { reason: format!("block write task failed: {e}") }),
    }
}

/// Reads a whole body back, checking every block's size against the entry.
pub async fn load(blocks: &BlockManager, body: &Body) -> Result<Vec<u8>, BlockError> {
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
