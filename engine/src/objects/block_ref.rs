//! The `block_ref` table: which object versions use which block.
//!
//! Partition key = the block's hash, so a block's references live on the very nodes that
//! store the block, and the collector on each node reads them from its own partitions.
//! Sort key = a fixed-size id of the referencing version. A PUT writes the references of
//! a block (with a write quorum) before the block itself: a block is never stored without
//! a reference that the collector can see.

use serde::{Deserialize, Serialize};

use super::version::VersionId;
use crate::block::BlockHash;
use crate::crdt::{Bool, Crdt};
use crate::table::TableSchema;

pub struct BlockRefSchema;
impl TableSchema for BlockRefSchema {
    const NAME: &'static str = "block_ref";
    type Entry = BlockRef;
    const COLLECTS_TOMBSTONES: bool = true;

    /// A deleted reference, aged from its version's timestamp: the write that could revive
    /// it is the PUT's own reference write, stamped then. (A revived reference would only
    /// keep its block until the collector marks it deleted again.)
    fn tombstone_since_ms(entry: &BlockRef) -> Option<u64> {
        entry.deleted.get().then_some(entry.version.timestamp)
    }
}

/// One version's use of one block. Only `deleted` ever changes (false → true).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BlockRef {
    /// The block (the partition key is hashed into the storage key, so it is kept here too:
    /// resync walks a node's references to find the blocks it should hold).
    pub block: BlockHash,
    pub bucket: String,
    pub key: String,
    pub version: VersionId,
    /// Set once the version no longer exists (or no longer holds the block).
    pub deleted: Bool,
}

/// Stored in the first entry format (`table::schema`).
impl crate::table::schema::StoredEntry for BlockRef {}

impl Crdt for BlockRef {
    fn merge(&mut self, other: &Self) {
        // The identity fields are equal for one sort key by construction.
        self.deleted.merge(&other.deleted);
    }
}

/// The sort key of a reference: 16 bytes naming the object key, then the version id.
pub fn ref_sort_key(bucket: &str, key: &str, version: VersionId) -> Vec<u8> {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&(bucket.len() as u64).to_le_bytes());
    hasher.update(bucket.as_bytes());
    hasher.update(key.as_bytes());
    let mut out = hasher.finalize().as_bytes()[..16].to_vec();
    out.extend_from_slice(&version.timestamp.to_be_bytes());
    out.extend_from_slice(&version.unique.to_be_bytes());
    out
}
