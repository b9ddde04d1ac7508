//! The layout worker: gossips the layout history and moves this node through a transition
//! (acknowledge, sync, switch reads), as `layout/manager.rs` describes.
//!
//! One step = acknowledge the newest version if not yet done (after the write barrier),
//! sync if every node acknowledged it, report reads switched if every node synced, then
//! gossip with every known node. Steps that fail are retried the next round: nothing is
//! reported before it holds.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use rand_core::RngCore;

use super::history::{LayoutHistory, Tracker};
use super::manager::sleep_unless_changed;
use super::{ClusterLayout, NodeId, Partition};
use crate::block::repair::{BlockRepair, RepairConfig};
use crate::node::Node;
use crate::rpc::message::LayoutRequest;
use crate::rpc::{Request, Response};
use crate::table::SyncWorker;

/// What one step did, for tests and the trace.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LayoutStepReport {
    pub acked: Option<u64>,
    pub synced: Option<u64>,
    pub reads_moved_to: Option<u64>,
    /// Peers whose history differed from ours (before merging).
    pub peers_differing: usize,
    pub errors: usize,
}

pub struct LayoutWorker {
    node: Arc<Node>,
    /// Peers to gossip with even before the layout names them (the bootstrap peers).
    bootstrap: Vec<NodeId>,
    /// Made with the worker, not when it first runs, so no change is missed in between.
    changes: tokio::sync::watch::Receiver<u64>,
}

impl LayoutWorker {
    pub fn new(node: Arc<Node>, bootstrap: Vec<NodeId>) -> Self {
        let changes = node.layouts.subscribe();
        LayoutWorker { node, bootstrap, changes }
    }

    /// Runs a step every `interval_ms` (jittered by up to a quarter), and at once whenever
    /// the history changed: an applied or learnt layout reaches every peer, and every
    /// transition step follows the previous one, without waiting for the period.
    pub async fn run(mut self, interval_ms: u64) {
        let mut rng = self.node.seam.rng("layout");
        loop {
            let jitter = rng.next_u64() % (interval_ms / 4 + 1);
            // This step's own changes wake the next one: it gossips what this one did.
            let period = Duration::from_millis(interval_ms + jitter);
            sleep_unless_changed(&mut self.changes, period).await;
            let report = self.step().await;
            let progressed = report.acked.or(report.synced).or(report.reads_moved_to);
            if progressed.is_some() {
                self.node.seam.trace.event("layout.step", format!("{report:?}").as_bytes());
            }
        }
    }

    /// One round: ack, sync, switch reads, gossip.
    pub async fn step(&self) -> LayoutStepReport {
        let mut report = LayoutStepReport::default();
        let me = self.node.id;
        let layouts = &self.node.layouts;
        if let Some(newest) = layouts.shared().current().map(|l| l.version())
            && layouts.shared().get(Tracker::Ack, me) < newest
        {
            // Every write that chose its sets before `newest` was known finishes first.
            layouts.write_barrier().await;
            match layouts.advance(Tracker::Ack, newest) {
                Ok(()) => report.acked = Some(newest),
                Err(_) => report.errors += 1,
            }
        }
        let history = layouts.shared();
        if let Some(newest) = history.current()
            && history.get(Tracker::Sync, me) < newest.version()
            && history.min(Tracker::Ack) >= newest.version()
            // A blank node's own replica counts toward the sync below only once its full
            // sync filled it (node.rs, `blank_sync_loop`).
            && !self.node.is_syncing()
        {
            match self.sync(&history, newest).await {
                Ok(()) => match layouts.advance(Tracker::Sync, newest.version()) {
                    Ok(()) => report.synced = Some(newest.version()),
                    Err(_) => report.errors += 1,
                },
                Err(e) => {
                    tracing::debug!(node = %me, "layout sync not done yet: {e}");
                    report.errors += 1;
                }
            }
        }
        let history = layouts.shared();
        if let Some(read) = history.read_version().map(ClusterLayout::version)
            && history.get(Tracker::SyncAck, me) < read
        {
            match layouts.advance(Tracker::SyncAck, read) {
                Ok(()) => report.reads_moved_to = Some(read),
                Err(_) => report.errors += 1,
            }
        }
        self.gossip(&mut report).await;
        report
    }

    /// Pulls every partition this node holds in `newest` from a read quorum of each older
    /// version's replica set, then fetches the blocks those partitions reference.
    async fn sync(&self, history: &LayoutHistory, newest: &ClusterLayout) -> Result<(), String> {
        let me = self.node.id;
        let mine: Vec<Partition> = newest.partitions_of(me);
        // Nothing to gain without a role, or without an older version to gain it from (the
        // first layout of a cluster).
        if mine.is_empty() || history.versions().len() < 2 {
            return Ok(());
        }
        // (older version, partition) → replicas that still need to answer, and how many.
        let read_quorum = self.node.quorums.read;
        let mut needs: Vec<(u64, Partition, Vec<NodeId>, usize)> = Vec::new();
        let mut by_peer: BTreeMap<NodeId, BTreeSet<Partition>> = BTreeMap::new();
        for old in history.versions().iter().filter(|l| l.version() < newest.version()) {
            for &p in &mine {
                let set = old.nodes_of(p);
                let quorum = read_quorum.min(set.len());
                let have = usize::from(set.contains(&me));
                let others: Vec<NodeId> = set.iter().copied().filter(|&n| n != me).collect();
                for &n in &others {
                    by_peer.entry(n).or_default().insert(p);
                }
                needs.push((old.version(), p, others, quorum.saturating_sub(have)));
            }
        }
        let worker = SyncWorker::new(
            me,
            self.node.rpc.clone(),
            self.node.layouts.clone(),
            self.node.tables.values().cloned().collect(),
        );
        let mut answered: BTreeSet<NodeId> = BTreeSet::new();
        let mut errors = Vec::new();
        for (peer, parts) in by_peer {
            let parts: Vec<Partition> = parts.into_iter().collect();
            let mut ok = true;
            for table in worker.tables() {
                if let Err(e) = worker.sync_with(table.as_ref(), peer, &parts).await {
                    errors.push(format!("{peer}/{}: {e}", table.name()));
                    ok = false;
                    break;
                }
            }
            if ok {
                answered.insert(peer);
            }
        }
        for (version, p, others, needed) in &needs {
            let got = others.iter().filter(|n| answered.contains(n)).count();
            if got < *needed {
                return Err(format!(
                    "partition {p} of version {version}: {got} of {needed} old replicas \
                     answered ({})",
                    errors.join("; ")
                ));
            }
        }
        let blocks = BlockRepair::new(self.node.clone(), RepairConfig::default());
        let resync = blocks.resync_step().await;
        if resync.errors > 0 {
            return Err(format!("block resync: {resync:?}"));
        }
        Ok(())
    }

    /// Exchanges histories with every known node (and the bootstrap peers).
    async fn gossip(&self, report: &mut LayoutStepReport) {
        let me = self.node.id;
        self.node.learn_peer_addrs();
        let history = self.node.layouts.shared();
        let mut peers: BTreeSet<NodeId> = history.tracked_nodes();
        peers.extend(history.addrs().map(|(n, _)| n));
        peers.extend(self.bootstrap.iter().copied());
        peers.remove(&me);
        for peer in peers {
            let digest = self.node.layouts.digest();
            let request = Request::Layout(LayoutRequest::Gossip { digest });
            let theirs = match self.node.rpc.call(peer, request).await {
                Ok(Response::Layout(None)) => continue,
                Ok(Response::Layout(Some(theirs))) => theirs,
                Ok(_) | Err(_) => {
                    report.errors += 1;
                    continue;
                }
            };
            report.peers_differing += 1;
            match self.node.layouts.merge(&theirs) {
                Ok(true) => self.node.learn_peer_addrs(),
                Ok(false) => {}
                Err(_) => {
                    report.errors += 1;
                    continue;
                }
            }
            if self.node.layouts.digest() != theirs.digest() {
                let ours = self.node.layouts.snapshot();
                let push = Request::Layout(LayoutRequest::Push { history: Box::new(ours) });
                if self.node.rpc.call(peer, push).await.is_err() {
                    report.errors += 1;
                }
            }
        }
    }
}
