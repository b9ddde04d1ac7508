//! The `version` table: the block lists of object versions too long to keep in the object
//! entry.
//!
//! Why a table of its own: the object entry is read whole by every HEAD, every listing page
//! and every round of the key's consensus (its acceptors hold the proposed value). A 5 GiB
//! body at 1 MiB blocks is a list of about 5,000 blocks, some 190 KB; inside the entry it
//! would be copied by each of those. So a list longer than `LIST_INLINE_MAX_BLOCKS` is
//! written here, keyed by the version it belongs to, and the object entry keeps only
//! `Body::Listed` (the list's length and hash). Shorter lists stay in the entry: for an
//! object of a few blocks a second table read per GET would cost more than the bytes it
//! saves. Every object entry is thus a few KiB at most, whatever the object's size.
//!
//! Key: partition key = the version's 32-byte name (`block_ref::ref_sort_key` of bucket,
//! key and version id), so lists spread over the ring; no sort key.
//!
//! Order of writes: a list is written with a write quorum after its blocks and their
//! references, and before any record or consensus value names it; a reader that finds
//! `Body::Listed` in a complete version therefore finds the list (or its tombstone, if the
//! version has been removed since).
//!
//! Deletes cascade: object version → its list → its block references. When the collector
//! (`gc`) finds a reference whose version is gone (pruned, deleted, aborted), it marks the
//! version's list deleted before retiring the reference; the list becomes a tombstone,
//! collected once every replica holds it (`table::tombstones`).
//!
//! Merge: a list is written once per version id, by that version's writer; the merge is a
//! join where `deleted` is the top (a deleted list holds no blocks) and two different live
//! lists — which a correct writer never produces — resolve to the larger.

use serde::{Deserialize, Serialize};

use super::block_ref::ref_sort_key;
use super::body::{Body, BodyBlock, ListedBody, Owner};
use super::version::VersionId;
use super::{ObjectError, ObjectStore};
use crate::codec;
use crate::crdt::{Bool, Crdt};
use crate::table::{TableSchema, entry_key};

/// Block lists longer than this go to the `version` table (about 2.4 KB of list: object
/// entries stay under the size of an inline body, `body::INLINE_MAX_BYTES`, plus metadata).
pub const LIST_INLINE_MAX_BLOCKS: usize = 64;

pub struct VersionBlocksSchema;
impl TableSchema for VersionBlocksSchema {
    const NAME: &'static str = "version";
    type Entry = VersionBlocks;
    const COLLECTS_TOMBSTONES: bool = true;

    /// A deleted list, aged from its version's timestamp: the only write that could revive
    /// it is its writer's own list write, made before the version completed, right after
    /// the version's references — whose tombstones age from the same timestamp. A writer
    /// that late revives both, and the collector's next pass over the version's blocks
    /// deletes the list again before retiring the references.
    fn tombstone_since_ms(entry: &VersionBlocks) -> Option<u64> {
        entry.deleted.get().then_some(entry.version.timestamp)
    }
}

/// The block list of one object version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VersionBlocks {
    pub bucket: String,
    pub key: String,
    pub version: VersionId,
    /// The body's blocks, in order; empty once deleted.
    pub blocks: Vec<BodyBlock>,
    /// Set once the version no longer exists.
    pub deleted: Bool,
}

/// Stored in the first entry format (`table::schema`).
impl crate::table::schema::StoredEntry for VersionBlocks {}

impl Crdt for VersionBlocks {
    fn merge(&mut self, other: &Self) {
        // The identity fields are equal for one table key by construction.
        self.deleted.merge(&other.deleted);
        if self.deleted.get() {
            self.blocks.clear();
        } else if other.blocks > self.blocks {
            self.blocks = other.blocks.clone();
        }
    }
}

/// The table key of `owner`'s list.
pub fn list_key(owner: &Owner) -> Vec<u8> {
    entry_key(&ref_sort_key(&owner.bucket, &owner.key, owner.version), b"")
}

/// What a `Body::Listed` says about its list: the count and the hash of its encoding.
pub fn listed_body(blocks: &[BodyBlock]) -> ListedBody {
    let block_count = u32::try_from(blocks.len()).expect("a body has fewer than 2^32 blocks");
    ListedBody { block_count, list_hash: *blake3::hash(&codec::encode(&blocks)).as_bytes() }
}

impl ObjectStore {
    /// The body to record for version `owner`, whose blocks (already stored and referenced
    /// by it) are `blocks`: the list itself when short, else `Body::Listed`, after writing
    /// the list to the `version` table with a write quorum.
    pub(super) async fn body_of_blocks(
        &self,
        owner: &Owner,
        blocks: Vec<BodyBlock>,
    ) -> Result<Body, ObjectError> {
        if blocks.len() <= self.list_inline_max_blocks {
            return Ok(Body::Blocks(blocks));
        }
        let listed = listed_body(&blocks);
        self.write_list(owner, blocks).await?;
        Ok(Body::Listed(listed))
    }

    /// Writes `blocks` as version `owner`'s list (a re-stamped write records its list
    /// under each id it is proposed under).
    pub(super) async fn write_list(
        &self,
        owner: &Owner,
        blocks: Vec<BodyBlock>,
    ) -> Result<(), ObjectError> {
        let list = VersionBlocks {
            bucket: owner.bucket.clone(),
            key: owner.key.clone(),
            version: owner.version,
            blocks,
            deleted: Bool::new(false),
        };
        Ok(self.node.block_lists.insert(list_key(owner), &list).await?)
    }

    /// The blocks of `body`, recorded for version `owner`: none for an inline body, and
    /// `Ok(None)` when a listed body's list is gone (deleted with its version since the
    /// caller read the version: the caller reads the object again).
    pub(super) async fn blocks_of(
        &self,
        owner: &Owner,
        body: &Body,
    ) -> Result<Option<Vec<BodyBlock>>, ObjectError> {
        match body {
            Body::Inline(_) => Ok(Some(Vec::new())),
            Body::Blocks(blocks) => Ok(Some(blocks.clone())),
            Body::Listed(listed) => read_list(&self.node, owner, listed).await,
        }
    }
}

/// Reads version `owner`'s list and checks it against what the object entry says of it.
pub(super) async fn read_list(
    node: &crate::node::Node,
    owner: &Owner,
    listed: &ListedBody,
) -> Result<Option<Vec<BodyBlock>>, ObjectError> {
    let Some(list) = node.block_lists.get(&list_key(owner)).await? else { return Ok(None) };
    if list.deleted.get() {
        return Ok(None);
    }
    if listed_body(&list.blocks) != *listed {
        return Err(ObjectError::Internal {
            reason: format!(
                "the block list of {}/{} version {} does not match its object entry",
                owner.bucket,
                owner.key,
                owner.version.to_hex()
            ),
        });
    }
    Ok(Some(list.blocks))
}

/// Deletes the live lists of this node's replica whose version is gone, in the partitions
/// this node leads (the first of `all_nodes`, as for tombstones). The collector's cascade
/// (a reference whose version is gone) misses one case: a writer slow enough that its
/// version was pruned, and every reference retired, before it wrote its list. Lists are
/// few (bodies of more than 64 blocks), so one quorum read each per pass is cheap. A list
/// whose version is still uploading or complete is kept. Returns how many were deleted.
pub(super) async fn delete_lists_of_gone_versions(
    node: &crate::node::Node,
) -> Result<usize, String> {
    use crate::table::LocalTable;
    let mut deleted = 0;
    let mut after = Vec::new();
    loop {
        // A page at a time: a list is up to ~190 KB, and a node may hold thousands.
        let page = node.block_lists.local.range(b"", &after, LISTS_PER_PAGE);
        let page = page.map_err(|e| e.to_string())?;
        let Some((last, _)) = page.last() else { return Ok(deleted) };
        after = last.clone();
        let full = page.len() == LISTS_PER_PAGE;
        for (table_key, raw) in page {
            deleted += delete_if_gone(node, &table_key, &raw).await?;
        }
        if !full {
            return Ok(deleted);
        }
    }
}

/// Lists read per page by `delete_lists_of_gone_versions`.
const LISTS_PER_PAGE: usize = 64;

/// One list of `delete_lists_of_gone_versions`: 1 if it was deleted.
async fn delete_if_gone(
    node: &crate::node::Node,
    table_key: &[u8],
    raw: &[u8],
) -> Result<usize, String> {
    let partition = crate::table::schema::partition_of_key(table_key);
    if node.layouts.all_nodes(partition).first() != Some(&node.id) {
        return Ok(0);
    }
    let list: VersionBlocks = crate::table::schema::decode_entry(raw).map_err(|e| e.to_string())?;
    if list.deleted.get() {
        return Ok(0);
    }
    let object_key = entry_key(list.bucket.as_bytes(), list.key.as_bytes());
    let entry =
        node.objects.get_seeing_every_write(&object_key).await.map_err(|e| e.to_string())?;
    let state = entry.as_ref().and_then(|e| e.versions.get(&list.version)).map(|v| &v.state);
    let alive =
        matches!(state, Some(super::VersionState::Uploading | super::VersionState::Complete(_)));
    if alive {
        return Ok(0);
    }
    let owner = Owner { bucket: list.bucket, key: list.key, version: list.version };
    let deleted = delete_list(node, &owner).await.map_err(|e| e.to_string())?;
    Ok(usize::from(deleted))
}

/// Marks version `owner`'s list deleted, if it has a live one (the collector, once the
/// version is gone).
pub(super) async fn delete_list(
    node: &crate::node::Node,
    owner: &Owner,
) -> Result<bool, crate::table::QuorumError> {
    let key = list_key(owner);
    match node.block_lists.get(&key).await? {
        Some(mut list) if !list.deleted.get() => {
            list.deleted.set();
            list.blocks.clear();
            node.block_lists.insert(key, &list).await?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha8Rng;
    use rand_core::{RngCore, SeedableRng};

    use super::*;

    fn list(rng: &mut ChaCha8Rng) -> VersionBlocks {
        // As written: a live list, or a deleted one holding nothing.
        let deleted = rng.next_u32().is_multiple_of(3);
        let blocks = (0..if deleted { 0 } else { rng.next_u32() % 3 })
            .map(|_| BodyBlock { hash: [(rng.next_u32() % 4) as u8; 32], size_bytes: 7 })
            .collect();
        VersionBlocks {
            bucket: "b".into(),
            key: "k".into(),
            version: VersionId { timestamp: 5, unique: 1 },
            blocks,
            deleted: Bool::new(deleted),
        }
    }

    /// The merge is a CRDT: commutative, associative and idempotent over random lists.
    #[test]
    fn merge_is_a_crdt() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..2000 {
            let (a, b, c) = (list(&mut rng), list(&mut rng), list(&mut rng));
            let merged = |x: &VersionBlocks, y: &VersionBlocks| {
                let mut m = x.clone();
                m.merge(y);
                m
            };
            assert_eq!(merged(&a, &b), merged(&b, &a));
            assert_eq!(merged(&merged(&a, &b), &c), merged(&a, &merged(&b, &c)));
            assert_eq!(merged(&a, &a), a);
            let ab = merged(&a, &b);
            assert_eq!(merged(&ab, &ab), ab);
        }
    }

    /// A deleted list stays deleted and holds nothing, whatever it is merged with.
    #[test]
    fn a_deleted_list_holds_no_blocks() {
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        for _ in 0..500 {
            let (a, b) = (list(&mut rng), list(&mut rng));
            let mut m = a.clone();
            m.merge(&b);
            if a.deleted.get() || b.deleted.get() {
                assert!(m.deleted.get() && m.blocks.is_empty(), "{a:?} + {b:?} = {m:?}");
            }
        }
    }

    #[test]
    fn the_listed_body_names_the_exact_list() {
        let a = vec![BodyBlock { hash: [1; 32], size_bytes: 3 }];
        let b = vec![BodyBlock { hash: [1; 32], size_bytes: 4 }];
        assert_eq!(listed_body(&a), listed_body(&a.clone()));
        assert_ne!(listed_body(&a), listed_body(&b));
        assert_eq!(listed_body(&a).block_count, 1);
    }
}
