//! Tombstone collection: a deleted entry (a tombstone) is kept so that replicas which still
//! hold the older, live value learn of the delete; once every replica holds the tombstone,
//! nothing older can come back from anywhere, and the tombstone itself can go.
//!
//! Per pass, for each table whose schema opts in (`TableSchema::COLLECTS_TOMBSTONES`) and
//! each partition whose first replica (in `LayoutHistory::all_nodes`: every node of every
//! stored layout version) is this node, with tombstones older than `delay_ms`:
//!
//! 1. push them to every other replica (`Update`, a CRDT merge); all must acknowledge, or
//!    the partition waits for the next pass — a replica that is down, partitioned or new
//!    may hold the live value;
//! 2. ask every other replica, then this one, to delete each key whose stored entry still
//!    hashes to the tombstone's bytes (`DeleteIfUnchanged`).
//!
//! Why this is safe: after step 1, every replica's entry is the merge of its own and the
//! tombstone, so it is the tombstone or something newer. Where it is the tombstone it is
//! deleted; where something newer was written meanwhile it stays, and anti-entropy later
//! brings it to the replicas that deleted — newer than the tombstone, so nothing the
//! delete removed returns. A replica that fails step 2 keeps the tombstone and pushes it
//! back to the others (harmless; a later pass collects it again).
//!
//! What the delay is for: a write older than the tombstone may still be on its way (a
//! retried RPC, a message held by the network). Arriving after the tombstone is gone, it
//! would revive the deleted value. The delay must exceed how long a write can be in
//! flight: 24 hours by default (`GcConfig::tombstone_delay_ms`).
//!
//! Only the partition's first replica runs the collection (collecting needs every replica
//! up anyway, so nothing is lost when it is down), and a node that is still filling a
//! blank replica collects nothing.

use std::sync::Arc;
use std::time::Duration;

use super::store::LocalTable;
use crate::node::Node;
use crate::rpc::message::RawEntry;
use crate::rpc::{Request, Response, TableRequest};

/// Tombstones collected per partition and table in one pass: bounds the RPC sizes.
const TOMBSTONES_PER_BATCH: usize = 1_000;

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TombstoneReport {
    /// Tombstones old enough that every replica was asked to delete.
    pub collected: usize,
    /// Partitions left for a later pass because a replica did not take the tombstones.
    pub partitions_waiting: usize,
}

pub struct TombstoneGc {
    node: Arc<Node>,
    interval_ms: u64,
    delay_ms: u64,
    /// Test-only weakening (`GcConfig::tombstone_unsafe_skip_unreachable`).
    skip_unreachable: bool,
}

impl TombstoneGc {
    pub fn new(node: Arc<Node>, interval_ms: u64, delay_ms: u64) -> TombstoneGc {
        TombstoneGc { node, interval_ms, delay_ms, skip_unreachable: false }
    }

    /// The collector of `node` as configured: `config`'s interval, delay and weakening.
    pub fn from_config(node: Arc<Node>, config: &crate::objects::gc::GcConfig) -> TombstoneGc {
        TombstoneGc {
            node,
            interval_ms: config.tombstone_interval_ms,
            delay_ms: config.tombstone_delay_ms,
            skip_unreachable: config.tombstone_unsafe_skip_unreachable,
        }
    }

    pub async fn run(self) {
        loop {
            tokio::time::sleep(Duration::from_millis(self.interval_ms)).await;
            let report = self.step().await;
            if report != TombstoneReport::default() {
                self.node.seam.trace.event("tombstone-gc", format!("{report:?}").as_bytes());
            }
        }
    }

    /// One pass over the partitions this node leads.
    pub async fn step(&self) -> TombstoneReport {
        let before_ms = self.node.seam.clock.now_ms().saturating_sub(self.delay_ms);
        self.collect_older_than(before_ms).await
    }

    /// One pass collecting the tombstones that became tombstones before `before_ms`.
    pub async fn collect_older_than(&self, before_ms: u64) -> TombstoneReport {
        let mut report = TombstoneReport::default();
        let history = self.node.layouts.shared();
        if history.current().is_none() || self.node.is_syncing() {
            return report;
        }
        let tables: Vec<Arc<dyn LocalTable>> =
            self.node.tables.values().filter(|t| t.collects_tombstones()).cloned().collect();
        for table in tables {
            for partition in 0..=u8::MAX {
                let replicas = history.all_nodes(partition);
                if replicas.first() != Some(&self.node.id) {
                    continue;
                }
                let tombstones = match table.tombstones(partition, before_ms, TOMBSTONES_PER_BATCH)
                {
                    Ok(t) if !t.is_empty() => t,
                    Ok(_) => continue,
                    Err(e) => {
                        tracing::warn!(table = table.name(), partition, "tombstones: {e}");
                        continue;
                    }
                };
                let others: Vec<_> =
                    replicas.iter().copied().filter(|&n| n != self.node.id).collect();
                match self.collect(table.as_ref(), &others, tombstones).await {
                    Some(n) => report.collected += n,
                    None => report.partitions_waiting += 1,
                }
            }
        }
        report
    }

    /// Steps 1 and 2 for one batch; `None` when a replica did not take the tombstones.
    async fn collect(
        &self,
        table: &dyn LocalTable,
        others: &[crate::layout::NodeId],
        tombstones: Vec<RawEntry>,
    ) -> Option<usize> {
        let name = table.name().to_string();
        for &peer in others {
            let push = TableRequest::Update { table: name.clone(), entries: tombstones.clone() };
            match self.node.rpc.call(peer, Request::Table(push)).await {
                Ok(Response::Done) => {}
                _ if self.skip_unreachable => {}
                _ => return None,
            }
        }
        let items: Vec<(Vec<u8>, [u8; 32])> =
            tombstones.iter().map(|(k, v)| (k.clone(), *blake3::hash(v).as_bytes())).collect();
        for &peer in others {
            let delete =
                TableRequest::DeleteIfUnchanged { table: name.clone(), items: items.clone() };
            if let Err(e) = self.node.rpc.call(peer, Request::Table(delete)).await {
                // It keeps the tombstone and anti-entropy pushes it back; a later pass retries.
                tracing::debug!(%peer, table = %name, "tombstone delete: {e}");
            }
        }
        match table.delete_if_unchanged(&items) {
            Ok(_) => Some(items.len()),
            Err(e) => {
                tracing::warn!(table = %name, "tombstone delete: {e}");
                Some(0)
            }
        }
    }
}
