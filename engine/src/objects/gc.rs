//! Block garbage collection: a block is deleted from a node once no live object version has
//! referenced it for `delay_ms`.
//!
//! Each node collects its own copies. For every local block it reads the block's references
//! (`block_ref`, stored on the same nodes) with a quorum; a reference whose version is gone
//! (pruned, aborted, deleted, replaced by a delete marker) is marked deleted, and an upload
//! that stayed `Uploading` longer than `upload_timeout_ms` is aborted first (a multipart
//! upload's `mpu` entry is marked finished as well, so that it is collected; multipart
//! uploads without any block are found through the `mpu` partitions this node leads). A
//! block with no live reference is remembered; if it is still unreferenced `delay_ms`
//! later — checked again right before deleting — and was not written here in that time,
//! its file is removed.
//!
//! An upload's age is judged twice, and both must pass `upload_timeout_ms`: by its version
//! id's timestamp against this node's wall clock, and by how long this node has itself
//! watched it `Uploading` (`StaleUploads`, on the monotonic clock). The second keeps a node
//! whose wall clock runs ahead from aborting uploads still in progress: an abort written
//! under a running upload loses to its completion (`Complete` outranks `Aborted`), and the
//! cascade would meanwhile have deleted the version's list — a complete object with no
//! body (the simulator found it: swarm seed 198, a node 87 s ahead).
//!
//! Every read a deletion rests on (a block's references, a version's state) asks enough
//! replicas to see every acknowledged write (`get_seeing_every_write`): in `degraded` and
//! `dangerous` mode a read of one replica may miss a completed version, and the cascade
//! would delete its list and blocks (the simulator found it: swarm seed 1042).
//!
//! A pass remembers the blocks of each complete version it has read (`HeldBlocks`, up to
//! 65,536 hashes), so the thousands of blocks of one large object cost one read of its
//! entry and list, not one each.
//!
//! Why the delay and the re-check: a PUT writes a block's reference before the block, and
//! identical content is stored once, so a new PUT may be re-using a block the collector is
//! about to delete. The fresh reference (or the fresh write, which `BlockManager` notes)
//! keeps the block.
//!
//! Layout changes (`crate::layout::manager`): while more than one layout version is stored,
//! nothing is deleted — a node may be about to be read from for a block under either
//! version. Once a single version remains (every node synced and reads moved), a node
//! deletes the blocks of partitions it no longer holds (unless written here within
//! `delay_ms`: a writer with a newer layout this node has not heard of yet may have just
//! placed it here).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::block_ref::BlockRef;
use super::body::{Body, BodyBlock, Owner};
use super::version::{ObjectEntry, Version, VersionData, VersionId, VersionState};
use crate::block::{BlockHash, block_partition};
use crate::crdt::Bool;
use crate::node::Node;
use crate::seam::monotonic_now;
use crate::table::schema::partition_of_key;
use crate::table::{QuorumError, entry_key};
use tokio::task::JoinSet;

/// References of one block read per pass. Beyond it (identical content stored by more
/// than this many live versions) a block is conservatively kept.
const REFS_PER_BLOCK_MAX: usize = 100_000;

#[derive(Debug, Clone, Copy)]
pub struct GcConfig {
    /// Time between two passes over the local blocks.
    pub interval_ms: u64,
    /// How long a block must stay unreferenced before it is deleted.
    pub delay_ms: u64,
    /// An upload still `Uploading` after this long is aborted.
    pub upload_timeout_ms: u64,
    /// Time between two passes of table tombstone collection (`table::tombstones`).
    pub tombstone_interval_ms: u64,
    /// How old a tombstone must be before it is collected: longer than any write can be
    /// in flight.
    pub tombstone_delay_ms: u64,
    /// Test-only weakening (the simulator's `unsafe_tombstone_gc_skips_unreachable`): a
    /// tombstone is collected even when a replica did not take it — the bug the rule in
    /// `table::tombstones` exists to prevent.
    pub tombstone_unsafe_skip_unreachable: bool,
    /// How old an acceptor row's promise must be before the row may be deleted
    /// (`acceptor_rows::collect`).
    pub acceptor_row_grace_ms: u64,
    /// Test-only weakening (the simulator's `unsafe_acceptor_rows_skip_peers`): an acceptor
    /// row is deleted without asking the key's other acceptors — the bug the peer check in
    /// `acceptor_rows` exists to prevent.
    pub acceptor_rows_unsafe_skip_peers: bool,
}

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig {
            interval_ms: 60_000,
            delay_ms: 600_000,
            upload_timeout_ms: 24 * 3_600_000,
            tombstone_interval_ms: 3_600_000,
            tombstone_delay_ms: 24 * 3_600_000,
            tombstone_unsafe_skip_unreachable: false,
            acceptor_row_grace_ms: super::acceptor_rows::ROW_GRACE_MS,
            acceptor_rows_unsafe_skip_peers: false,
        }
    }
}

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    pub blocks_seen: usize,
    pub refs_retired: usize,
    pub uploads_aborted: usize,
    pub blocks_deleted: usize,
    /// Blocks deleted because a layout change moved their partition to other nodes.
    pub blocks_moved_away: usize,
    /// Block lists (`version_blocks`) deleted because their version is gone.
    pub lists_deleted: usize,
    /// Acceptor rows whose value, found in the object table, was dropped (`acceptor_rows`).
    pub acceptor_rows_compacted: usize,
    /// Acceptor rows deleted, their promise kept in the floor (`acceptor_rows::collect`).
    pub acceptor_rows_deleted: usize,
    /// Peers caught up with this node's fences (`acceptor_rows::catch_up`).
    pub acceptor_peers_caught_up: usize,
    /// Acceptor rows deleted because a layout change moved their partition to other nodes.
    pub acceptor_rows_moved_away: usize,
    pub errors: usize,
}

pub struct BlockGc {
    node: Arc<Node>,
    config: GcConfig,
    /// Blocks found without a live reference, and since when.
    unreferenced_since: BTreeMap<BlockHash, tokio::time::Instant>,
    /// Uploads met `Uploading`, and since when by this node's own clock.
    stale_uploads: Arc<Mutex<StaleUploads>>,
    /// The settled layout version whose lost partitions' acceptor rows were last deleted.
    rows_moved_away_at: Option<u64>,
}

impl BlockGc {
    pub fn new(node: Arc<Node>, config: GcConfig) -> Self {
        BlockGc {
            node,
            config,
            unreferenced_since: BTreeMap::new(),
            stale_uploads: Arc::default(),
            rows_moved_away_at: None,
        }
    }

    /// Runs passes forever, `interval_ms` apart.
    pub async fn run(mut self) {
        loop {
            tokio::time::sleep(Duration::from_millis(self.config.interval_ms)).await;
            let report = self.step().await;
            let done = report.blocks_deleted + report.blocks_moved_away;
            let rows = report.acceptor_rows_compacted
                + report.acceptor_rows_deleted
                + report.acceptor_rows_moved_away;
            if done + report.refs_retired + report.uploads_aborted + rows > 0 {
                self.node.seam.trace.event("gc", format!("{report:?}").as_bytes());
            }
        }
    }

    /// One pass over this node's blocks.
    pub async fn step(&mut self) -> GcReport {
        let mut report = GcReport::default();
        let Ok(hashes) = self.node.blocks.local_list() else {
            report.errors += 1;
            return report;
        };
        let delay = Duration::from_millis(self.config.delay_ms);
        self.unreferenced_since.retain(|h, _| hashes.binary_search(h).is_ok());
        let layouts = self.node.layouts.shared();
        let settled = layouts.versions().len() == 1;
        let mine = layouts.partitions_of_any(self.node.id);
        let mut to_check = Vec::new();
        for hash in hashes {
            report.blocks_seen += 1;
            if settled
                && !mine.contains(&block_partition(&hash))
                && !self.node.blocks.written_within(&hash, self.config.delay_ms)
            {
                match self.node.blocks.local_delete(&hash) {
                    Ok(()) => report.blocks_moved_away += 1,
                    Err(_) => report.errors += 1,
                }
                continue;
            }
            to_check.push(hash);
        }
        // Uploads without blocks are met through the mpu table instead (`multipart`).
        let now_ms = self.node.seam.clock.now_ms();
        let timeout_ms = self.config.upload_timeout_ms;
        let stale = self.stale_uploads.clone();
        let aborting =
            super::multipart::abort_stale_uploads(&self.node, now_ms, timeout_ms, &stale);
        match aborting.await {
            Ok(n) => report.uploads_aborted += n,
            Err(_) => report.errors += 1,
        }
        match super::acceptor_rows::compact(&self.node, false) {
            Ok(compaction) => report.acceptor_rows_compacted += compaction.compacted,
            Err(_) => report.errors += 1,
        }
        // Once per settled layout version: rows of partitions this node no longer holds.
        let version = layouts.versions().last().map(|l| l.version()).filter(|v| *v > 0);
        if settled && version.is_some() && version != self.rows_moved_away_at {
            let keep = |key: &[u8]| mine.contains(&partition_of_key(key));
            match self.node.cas.delete_rows_unless(keep) {
                Ok(n) => {
                    report.acceptor_rows_moved_away += n;
                    self.rows_moved_away_at = version;
                }
                Err(_) => report.errors += 1,
            }
        }
        let (grace_ms, skip_peers) =
            (self.config.acceptor_row_grace_ms, self.config.acceptor_rows_unsafe_skip_peers);
        match super::acceptor_rows::collect(&self.node, grace_ms, skip_peers).await {
            Ok(collection) => {
                report.acceptor_rows_deleted += collection.deleted;
                report.acceptor_peers_caught_up += collection.caught_up;
            }
            Err(_) => report.errors += 1,
        }
        match super::version_blocks::delete_lists_of_gone_versions(&self.node).await {
            Ok(n) => report.lists_deleted += n,
            Err(_) => report.errors += 1,
        }
        // Each check is a few quorum round trips; one block at a time, a pass over a few
        // hundred blocks on WAN links outlasted a simulated run's quiet period.
        let held = Arc::new(Mutex::new(HeldBlocks::default()));
        let mut pending = to_check.into_iter();
        let mut checks = JoinSet::new();
        loop {
            while checks.len() < REF_CHECKS_IN_FLIGHT {
                let Some(hash) = pending.next() else { break };
                // Unreferenced for the whole delay already: confirm and delete this pass.
                let due = settled
                    && self.unreferenced_since.get(&hash).is_some_and(|since| {
                        monotonic_now().saturating_duration_since(*since) >= delay
                    });
                let (node, config, held) = (self.node.clone(), self.config, held.clone());
                let stale_uploads = self.stale_uploads.clone();
                let checker = RefChecker { node, config, held, stale_uploads };
                checks.spawn(async move { checker.check(hash, due).await });
            }
            let Some(done) = checks.join_next().await else { break };
            let Check { hash, live, delete, counts } = done.expect("reference checks do not panic");
            report.refs_retired += counts.refs_retired;
            report.uploads_aborted += counts.uploads_aborted;
            report.lists_deleted += counts.lists_deleted;
            match live {
                Err(_) => report.errors += 1,
                Ok(live) if live > 0 => {
                    self.unreferenced_since.remove(&hash);
                }
                Ok(_) if !settled => {}
                Ok(_) if delete => {
                    match self.node.blocks.local_delete(&hash) {
                        Ok(()) => report.blocks_deleted += 1,
                        Err(_) => report.errors += 1,
                    }
                    self.unreferenced_since.remove(&hash);
                }
                Ok(_) => {
                    self.unreferenced_since.entry(hash).or_insert_with(monotonic_now);
                }
            }
        }
        self.stale_uploads.lock().expect("no panic while held").end_pass();
        report
    }
}

/// Blocks whose references one pass checks at once (each check is its own task).
const REF_CHECKS_IN_FLIGHT: usize = 16;

/// What checking one block found.
struct Check {
    hash: BlockHash,
    /// Live references (retiring the dead ones on the way).
    live: Result<usize, QuorumError>,
    /// Due, still unreferenced on the re-check and not written meanwhile: delete it.
    delete: bool,
    counts: GcReport,
}

/// The reference checks of one block, on their own task.
struct RefChecker {
    node: Arc<Node>,
    config: GcConfig,
    /// What complete versions met earlier in this pass hold.
    held: Arc<Mutex<HeldBlocks>>,
    stale_uploads: Arc<Mutex<StaleUploads>>,
}

/// Uploads this node has met `Uploading`, with when it first did (monotonic clock) and the
/// pass it last did: an upload is stale only once both its stamp and this watch are older
/// than the timeout (module docs). Uploads not met in a pass are forgotten at its end, so
/// the map holds only uploads still in progress.
#[derive(Default)]
pub(super) struct StaleUploads {
    seen: BTreeMap<VersionId, (tokio::time::Instant, u64)>,
    pass: u64,
}

impl StaleUploads {
    /// Whether upload `id`, met `Uploading` now, has been so for `timeout_ms` by its stamp
    /// (against `now_ms`, this node's wall clock) and by this node's watch.
    pub(super) fn is_stale(&mut self, id: VersionId, now_ms: u64, timeout_ms: u64) -> bool {
        let pass = self.pass;
        let seen = self.seen.entry(id).or_insert((monotonic_now(), pass));
        seen.1 = pass;
        let watched = monotonic_now().saturating_duration_since(seen.0);
        now_ms.saturating_sub(id.timestamp) >= timeout_ms
            && watched >= Duration::from_millis(timeout_ms)
    }

    /// Forgets the uploads not met since the last call (completed, aborted or gone).
    fn end_pass(&mut self) {
        let pass = self.pass;
        self.seen.retain(|_, (_, last)| *last == pass);
        self.pass += 1;
    }
}

/// Block hashes a pass caps `HeldBlocks` at (32 bytes each: 2 MiB), so that a node with
/// many large objects does not hold all their lists at once.
const HELD_BLOCKS_MAX: usize = 65_536;

/// The blocks of the complete versions one pass has read, so that the other blocks of a
/// large object cost no more reads of its entry and list: a pass meets a 5 GiB object
/// 5,000 times, in hash order. Only complete versions are kept — a complete body never
/// changes, and one removed during the pass is at worst kept one pass longer. Emptied when
/// full.
#[derive(Default)]
struct HeldBlocks {
    /// (bucket, key, version) → the version's blocks, sorted.
    versions: BTreeMap<(String, String, VersionId), Arc<Vec<BlockHash>>>,
    hashes: usize,
}

impl HeldBlocks {
    fn get(&self, r: &BlockRef) -> Option<Arc<Vec<BlockHash>>> {
        self.versions.get(&(r.bucket.clone(), r.key.clone(), r.version)).cloned()
    }

    fn insert(&mut self, r: &BlockRef, blocks: &[BodyBlock]) -> Arc<Vec<BlockHash>> {
        let mut hashes: Vec<BlockHash> = blocks.iter().map(|b| b.hash).collect();
        hashes.sort_unstable();
        hashes.dedup();
        let hashes = Arc::new(hashes);
        if self.hashes + hashes.len() > HELD_BLOCKS_MAX {
            self.versions.clear();
            self.hashes = 0;
        }
        if hashes.len() <= HELD_BLOCKS_MAX {
            self.hashes += hashes.len();
            self.versions.insert((r.bucket.clone(), r.key.clone(), r.version), hashes.clone());
        }
        hashes
    }
}

impl RefChecker {
    async fn check(self, hash: BlockHash, due: bool) -> Check {
        let mut counts = GcReport::default();
        let live = self.live_refs(&hash, &mut counts).await;
        // Checked again right before deleting: a PUT re-using the block writes its
        // reference (or the block itself) first.
        let delete = due
            && matches!(live, Ok(0))
            && !self.node.blocks.written_within(&hash, self.config.delay_ms)
            && matches!(self.live_refs(&hash, &mut counts).await, Ok(0));
        Check { hash, live, delete, counts }
    }

    /// Counts the live references of a block, retiring those whose version is gone.
    async fn live_refs(
        &self,
        hash: &BlockHash,
        report: &mut GcReport,
    ) -> Result<usize, QuorumError> {
        let refs =
            self.node.block_refs.get_range_seeing_every_write(hash, b"", b"", REFS_PER_BLOCK_MAX);
        let refs = refs.await?;
        let mut live = usize::from(refs.len() >= REFS_PER_BLOCK_MAX);
        for (sort_key, r) in refs {
            if r.deleted.get() {
                continue;
            }
            match self.version_holds(hash, &r, report).await? {
                Holding::Yes => {
                    live += 1;
                    continue;
                }
                Holding::NotThisBlock => {}
                // The cascade: the version's list goes before the reference that leads
                // here, so no reference outlives a list that could still name its block.
                Holding::VersionGone => {
                    let owner =
                        Owner { bucket: r.bucket.clone(), key: r.key.clone(), version: r.version };
                    if super::version_blocks::delete_list(&self.node, &owner).await? {
                        report.lists_deleted += 1;
                    }
                }
            }
            let mut retired = r.clone();
            retired.deleted = Bool::new(true);
            self.node.block_refs.insert(entry_key(hash, &sort_key), &retired).await?;
            report.refs_retired += 1;
        }
        Ok(live)
    }

    /// Whether the version a reference names still holds the block.
    async fn version_holds(
        &self,
        hash: &BlockHash,
        r: &BlockRef,
        report: &mut GcReport,
    ) -> Result<Holding, QuorumError> {
        let held = |blocks: &[BlockHash]| match blocks.binary_search(hash) {
            Ok(_) => Holding::Yes,
            Err(_) => Holding::NotThisBlock,
        };
        let cached = self.held.lock().expect("no panic while held").get(r);
        if let Some(blocks) = cached {
            return Ok(held(&blocks));
        }
        let key = entry_key(r.bucket.as_bytes(), r.key.as_bytes());
        let entry = self.node.objects.get_seeing_every_write(&key).await?.unwrap_or_default();
        let Some(version) = entry.versions.get(&r.version) else {
            return Ok(Holding::VersionGone);
        };
        let remember =
            |blocks: &[BodyBlock]| self.held.lock().expect("no panic while held").insert(r, blocks);
        match &version.state {
            // A completed version holds exactly its body's blocks: a block referenced while
            // uploading but absent from the final body (a re-uploaded multipart part) is not
            // held by it.
            VersionState::Complete(VersionData::Object(stored)) => Ok(match &stored.body {
                Body::Blocks(blocks) => held(&remember(blocks)),
                Body::Listed(listed) => {
                    let owner =
                        Owner { bucket: r.bucket.clone(), key: r.key.clone(), version: r.version };
                    match super::version_blocks::read_list(&self.node, &owner, listed).await {
                        Ok(Some(blocks)) => held(&remember(&blocks)),
                        // A complete version whose list cannot be read (or does not match):
                        // nothing is retired on evidence that unsure.
                        Ok(None) | Err(_) => Holding::Yes,
                    }
                }
                Body::Inline(_) => Holding::NotThisBlock,
            }),
            VersionState::Uploading => {
                let (now_ms, timeout_ms) =
                    (self.node.seam.clock.now_ms(), self.config.upload_timeout_ms);
                let stale = (self.stale_uploads.lock().expect("no panic while held"))
                    .is_stale(r.version, now_ms, timeout_ms);
                if !stale {
                    return Ok(Holding::Yes);
                }
                let aborted = Version::new(VersionState::Aborted, version.kept);
                self.node.objects.insert(key, &ObjectEntry::with(r.version, aborted)).await?;
                // A multipart upload's entry is finished too: not listed, no more parts, and
                // collected as a tombstone like any finished upload.
                let upload = (r.bucket.as_str(), r.key.as_str(), r.version);
                super::multipart::finish_aborted_upload(&self.node, upload).await?;
                report.uploads_aborted += 1;
                Ok(Holding::VersionGone)
            }
            _ => Ok(Holding::VersionGone),
        }
    }
}

/// What a reference's version does with the block.
enum Holding {
    /// Holds it (complete with it in its body, or still uploading).
    Yes,
    /// Exists but does not hold it (a part re-uploaded before completion).
    NotThisBlock,
    /// Removed: pruned, deleted by id, aborted, or a delete marker.
    VersionGone,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_upload_is_stale_only_once_this_node_watched_it_for_the_timeout_too() {
        let timeout_ms = 10_000;
        let mut watch = StaleUploads::default();
        let upload = VersionId { timestamp: 1_000, unique: 7 };
        // This node's clock runs 87 s ahead: by its stamp the upload is long stale, but
        // it was only just met.
        assert!(!watch.is_stale(upload, 88_000, timeout_ms));
        tokio::time::advance(Duration::from_millis(timeout_ms - 1)).await;
        assert!(!watch.is_stale(upload, 97_999, timeout_ms), "watched 1 ms too short");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(watch.is_stale(upload, 98_000, timeout_ms));

        // Watched long enough but young by its stamp (a writer whose clock runs ahead):
        // kept too.
        let young = VersionId { timestamp: 120_000, unique: 8 };
        assert!(!watch.is_stale(young, 98_000, timeout_ms));
        tokio::time::advance(Duration::from_millis(timeout_ms)).await;
        assert!(!watch.is_stale(young, 108_000, timeout_ms));

        // An upload not met in a pass is forgotten: met again, its watch starts over.
        watch.end_pass();
        watch.end_pass();
        assert!(!watch.is_stale(upload, 118_000, timeout_ms), "forgotten, then met anew");
    }

    fn reference(version: u64) -> BlockRef {
        BlockRef {
            block: [0; 32],
            bucket: "b".into(),
            key: "k".into(),
            version: VersionId { timestamp: version, unique: 1 },
            deleted: Bool::new(false),
        }
    }

    fn blocks(n: usize, salt: u8) -> Vec<BodyBlock> {
        let block = |i: usize| {
            let mut hash = [salt; 32];
            hash[..8].copy_from_slice(&(i as u64).to_be_bytes());
            BodyBlock { hash, size_bytes: 1 }
        };
        (0..n).map(block).collect()
    }

    /// The pass's memory of held blocks answers what it was told, and stays within its cap:
    /// full, it starts over; a list above the cap is answered but not kept.
    #[test]
    fn held_blocks_stay_within_their_cap() {
        let mut held = HeldBlocks::default();
        let first = blocks(HELD_BLOCKS_MAX / 2, 1);
        let kept = held.insert(&reference(1), &first);
        assert_eq!(kept.len(), first.len());
        assert!(kept.binary_search(&first[7].hash).is_ok());
        assert_eq!(held.get(&reference(1)).map(|b| b.len()), Some(first.len()));
        held.insert(&reference(2), &blocks(HELD_BLOCKS_MAX / 2, 2));
        assert_eq!(held.hashes, HELD_BLOCKS_MAX);
        held.insert(&reference(3), &blocks(1, 3));
        assert!(held.get(&reference(1)).is_none(), "full: started over");
        assert_eq!(held.hashes, 1);
        let huge = held.insert(&reference(4), &blocks(HELD_BLOCKS_MAX + 1, 4));
        assert_eq!(huge.len(), HELD_BLOCKS_MAX + 1, "answered");
        assert!(held.get(&reference(4)).is_none(), "but not kept");
        assert!(held.hashes <= HELD_BLOCKS_MAX);
    }
}
