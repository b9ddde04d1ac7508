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
//!
//! Operators launch passes too (`launch`, the admin API's `POST /v1/repair`): a table sync
//! (one anti-entropy round over every table and peer), a resync or a scrub. Every pass,
//! launched or periodic, reports its progress item by item to `Node::repair`
//! (`progress`), which the admin API and `/metrics` read.

pub mod progress;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use super::{BlockError, BlockHash, NO_COPY, block_partition};
use crate::node::Node;
use crate::objects::block_ref::BlockRef;
use crate::table::schema::{decode_entry, partition_of_key};
use crate::table::{LocalTable, SyncReport};
pub use progress::{PassGuard, PassSnapshot, RepairCounts, RepairKind, RepairProgress};

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
    /// Wanted blocks (resync) or corrupt ones (scrub) that every replica answered it has no
    /// copy of (lost, or never written by a failed upload): nothing to fetch.
    pub absent: usize,
    pub errors: usize,
}

/// What a pass found about one block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    Fine,
    /// A missing block fetched from a replica (resync).
    Fetched,
    /// A corrupt copy replaced from a replica (scrub).
    Replaced,
    Unrecoverable,
    Error,
}

impl RepairReport {
    /// Counts one block here and in the pass's progress.
    fn note(&mut self, pass: Option<&PassGuard>, found: Found) {
        let mut counts = RepairCounts { checked: 1, ..Default::default() };
        self.checked += 1;
        match found {
            Found::Fine => {}
            Found::Fetched | Found::Replaced => counts.repaired = 1,
            Found::Unrecoverable => counts.unrecoverable = 1,
            Found::Error => counts.errors = 1,
        }
        self.fetched += usize::from(found == Found::Fetched);
        self.corrupt_replaced += usize::from(found == Found::Replaced);
        self.absent += counts.unrecoverable as usize;
        self.errors += counts.errors as usize;
        if let Some(pass) = pass {
            pass.add(counts);
        }
    }
}

/// Whether every replica answered it has no copy (as opposed to some not answering).
fn no_replica_has_it(e: &BlockError) -> bool {
    matches!(e, BlockError::NotFound { tried, .. } if tried.iter().all(|t| t.ends_with(NO_COPY)))
}

/// A table sync round's report as repair counts (items: partitions of a table).
pub fn table_sync_counts(report: &SyncReport) -> RepairCounts {
    RepairCounts {
        checked: report.partitions_compared as u64,
        repaired: report.partitions_differing as u64,
        unrecoverable: 0,
        errors: report.errors as u64,
    }
}

/// Starts an operator's pass of `kind` on its own task and answers its state at start; if a
/// pass of that kind is running already, answers that one's state as the error.
pub fn launch(
    node: Arc<Node>,
    config: RepairConfig,
    kind: RepairKind,
) -> Result<PassSnapshot, Box<PassSnapshot>> {
    let pass = node.repair.begin(kind, true, node.seam.clock.clone())?;
    let started = node.repair.snapshot(kind);
    tokio::spawn(async move {
        match kind {
            RepairKind::Tables => {
                let report = node.sync_worker().step().await;
                pass.add(table_sync_counts(&report));
            }
            RepairKind::Blocks => {
                BlockRepair::new(node, config).resync_pass(Some(&pass)).await;
            }
            RepairKind::Scrub => {
                BlockRepair::new(node, config).scrub_pass(Some(&pass)).await;
            }
        }
        tracing::info!(kind = kind.name(), "repair pass finished");
        drop(pass);
    });
    Ok(started)
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
    /// A round whose kind of pass an operator is running already is skipped: that pass
    /// does the same work.
    pub async fn run(self) {
        let (resync, scrub) = (self.config.resync_interval_ms, self.config.scrub_interval_ms);
        let mut since_scrub_ms = 0;
        loop {
            tokio::time::sleep(Duration::from_millis(resync)).await;
            if let Ok(pass) = self.begin(RepairKind::Blocks, false) {
                let report = self.resync_pass(Some(&pass)).await;
                self.trace("resync", &report);
            }
            since_scrub_ms += resync;
            if since_scrub_ms >= scrub
                && let Ok(pass) = self.begin(RepairKind::Scrub, false)
            {
                since_scrub_ms = 0;
                let report = self.scrub_pass(Some(&pass)).await;
                self.trace("scrub", &report);
            }
        }
    }

    fn begin(&self, kind: RepairKind, launched: bool) -> Result<PassGuard, Box<PassSnapshot>> {
        self.node.repair.begin(kind, launched, self.node.seam.clock.clone())
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
        self.resync_pass(None).await
    }

    async fn resync_pass(&self, pass: Option<&PassGuard>) -> RepairReport {
        let mut report = RepairReport::default();
        let wanted = match self.wanted() {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(node = %self.node.id, "resync cannot read block_ref: {e}");
                report.note(pass, Found::Error);
                return report;
            }
        };
        if let Some(pass) = pass {
            pass.set_to_check(wanted.len() as u64);
        }
        for hash in wanted {
            let found = match self.node.blocks.local_has(&hash) {
                Ok(true) => Found::Fine,
                Ok(false) => match self.fetch(&hash).await {
                    Ok(()) => Found::Fetched,
                    Err(e) if no_replica_has_it(&e) => Found::Unrecoverable,
                    Err(_) => Found::Error,
                },
                Err(_) => Found::Error,
            };
            report.note(pass, found);
        }
        report
    }

    /// Re-reads every local block, replacing corrupt copies from other replicas.
    pub async fn scrub_step(&self) -> RepairReport {
        self.scrub_pass(None).await
    }

    async fn scrub_pass(&self, pass: Option<&PassGuard>) -> RepairReport {
        let mut report = RepairReport::default();
        let Ok(hashes) = self.node.blocks.local_list() else {
            report.note(pass, Found::Error);
            return report;
        };
        if let Some(pass) = pass {
            pass.set_to_check(hashes.len() as u64);
        }
        for hash in hashes {
            let found = match self.node.blocks.read_local(&hash).await {
                // A corrupt copy is never served, so it goes first: the fetch below must
                // not find it again. With no good copy anywhere the block is lost either way.
                Err(BlockError::Corrupt { .. }) => match self.node.blocks.local_delete(&hash) {
                    Ok(()) => match self.fetch(&hash).await {
                        Ok(()) => Found::Replaced,
                        Err(e) if no_replica_has_it(&e) => Found::Unrecoverable,
                        Err(_) => Found::Error,
                    },
                    Err(_) => Found::Error,
                },
                // Gone since the listing (collected): nothing to check.
                Ok(_) => Found::Fine,
                Err(_) => Found::Error,
            };
            report.note(pass, found);
            tokio::time::sleep(Duration::from_millis(self.config.scrub_pause_ms)).await;
        }
        report
    }

    /// Gets a verified copy from another replica and stores it here.
    async fn fetch(&self, hash: &BlockHash) -> Result<(), BlockError> {
        let data = self.node.blocks.get_block(hash).await?;
        self.node.blocks.write_local(hash, &data).await
    }
}
