//! Block repair: *resync* fetches blocks this node should hold but does not (a lost disk, a
//! write that reached only a quorum, a node that was down), *scrub* re-reads every local
//! block and replaces copies that no longer match their hash (silent corruption).
//!
//! What a node should hold is known locally: a block lives on the nodes of its
//! `block_partition`, which is where its `block_ref` entries live too, so a node walks its
//! own replica of `block_ref` and checks each live reference's block. Anti-entropy brings
//! that replica up to date first (after a disk loss the table comes back before the blocks).
//!
//! During a layout transition a node holds the partitions it has in any stored version:
//! the ones it keeps serving and the ones it gains (the layout worker runs a resync pass
//! before it reports a new version synced).
//!
//! Scrub reads everything, so it is paced: a pause after each block (`scrub_pause_ms`)
//! keeps it from competing with clients (the "tranquility" setting).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use super::{BlockError, BlockHash, NO_COPY, block_partition};
use crate::node::Node;
use crate::objects::block_ref::BlockRef;
use crate::table::LocalTable;
use crate::table::schema::{decode_entry, partition_of_key};

#[derive(Debug, Clone, Copy)]
pub struct RepairConfig {
    pub resync_interval_ms: u64,
    pub scrub_interval_ms: u64,
    pub scrub_pause_ms: u64,
}

impl Default for RepairConfig {
    fn default() -> Self {
        RepairConfig {
            resync_interval_ms: 60_000,
            scrub_interval_ms: 24 * 3_600_000,
            scrub_pause_ms: 10,
        }
    }
}

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RepairReport {
    pub checked: usize,
    pub fetched: usize,
    pub corrupt_replaced: usize,
    /// Wanted blocks that every replica answered it has no copy of (lost, or never
    /// written by a failed upload): nothing to fetch, and not a reason to retry.
    pub absent: usize,
    pub errors: usize,
}

pub struct BlockRepair {
    node: Arc<Node>,
    config: RepairConfig,
}

impl BlockRepair {
    pub fn new(node: Arc<Node>, config: RepairConfig) -> Self {
        BlockRepair { node, config }
    }

    /// Runs resync passes every `resync_interval_ms` and a scrub every `scrub_interval_ms`.
    pub async fn run(self) {
        let (resync, scrub) = (self.config.resync_interval_ms, self.config.scrub_interval_ms);
        let mut since_scrub_ms = 0;
        loop {
            tokio::time::sleep(Duration::from_millis(resync)).await;
            let report = self.resync_step().await;
            self.trace("resync", &report);
            since_scrub_ms += resync;
            if since_scrub_ms >= scrub {
                since_scrub_ms = 0;
                let report = self.scrub_step().await;
                self.trace("scrub", &report);
            }
        }
    }

    fn trace(&self, kind: &str, report: &RepairReport) {
        if report.fetched + report.corrupt_replaced > 0 {
            self.node.seam.trace.event(kind, format!("{report:?}").as_bytes());
        }
    }

    /// The blocks this node should hold: those of live references in its partitions.
    fn wanted(&self) -> Result<Vec<BlockHash>, String> {
        let store = &self.node.block_refs.local;
        let mine: BTreeSet<u8> = self.node.layouts.shared().partitions_of_any(self.node.id);
        // One scan of the local replica (one read transaction), not one per partition: this
        // runs every resync interval, usually to find nothing missing.
        let mut wanted = Vec::new();
        for (key, raw) in store.range(b"", b"", usize::MAX).map_err(|e| e.to_string())? {
            if !mine.contains(&partition_of_key(&key)) {
                continue;
            }
            let r: BlockRef = decode_entry(&raw).map_err(|e| e.to_string())?;
            if !r.deleted.get() && block_partition(&r.block) == partition_of_key(&key) {
                wanted.push(r.block);
            }
        }
        wanted.sort_unstable();
        wanted.dedup();
        Ok(wanted)
    }

    /// Fetches every wanted block that is missing here.
    pub async fn resync_step(&self) -> RepairReport {
        let mut report = RepairReport::default();
        let wanted = match self.wanted() {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(node = %self.node.id, "resync cannot read block_ref: {e}");
                report.errors += 1;
                return report;
            }
        };
        for hash in wanted {
            report.checked += 1;
            match self.node.blocks.local_has(&hash) {
                Ok(true) => {}
                Ok(false) => match self.fetch(&hash).await {
                    Ok(()) => report.fetched += 1,
                    Err(BlockError::NotFound { tried, .. })
                        if tried.iter().all(|t| t.ends_with(NO_COPY)) =>
                    {
                        report.absent += 1
                    }
                    Err(_) => report.errors += 1,
                },
                Err(_) => report.errors += 1,
            }
        }
        report
    }

    /// Re-reads every local block, replacing corrupt copies from other replicas.
    pub async fn scrub_step(&self) -> RepairReport {
        let mut report = RepairReport::default();
        let Ok(hashes) = self.node.blocks.local_list() else {
            report.errors += 1;
            return report;
        };
        for hash in hashes {
            report.checked += 1;
            if let Err(BlockError::Corrupt { .. }) = self.node.blocks.local_get(&hash) {
                // Drop the bad copy first: the fetch below must not find it again.
                let replaced = match self.node.blocks.local_delete(&hash) {
                    Ok(()) => self.fetch(&hash).await.is_ok(),
                    Err(_) => false,
                };
                if replaced {
                    report.corrupt_replaced += 1;
                } else {
                    report.errors += 1;
                }
            }
            tokio::time::sleep(Duration::from_millis(self.config.scrub_pause_ms)).await;
        }
        report
    }

    /// Gets a verified copy from another replica and stores it here.
    async fn fetch(&self, hash: &BlockHash) -> Result<(), BlockError> {
        let data = self.node.blocks.get_block(hash).await?;
        self.node.blocks.local_put(hash, &data)
    }
}
