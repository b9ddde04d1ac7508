//! Anti-entropy: replicas of a partition compare digests and exchange what differs, so they
//! converge after a partition heals or a node restarts with missing writes — even for keys
//! nobody reads again (read repair only fixes what is read).
//!
//! Each round, for every peer that shares partitions with us and every table, one RPC
//! compares a root over all shared partitions (equal: done, the common case); otherwise it
//! returns the peer's digest of each shared partition — the root of that partition's Merkle
//! tree (`merkle`). For each partition whose digest differs from ours, a tree descent finds
//! the entries that differ and pulls and pushes only those (`merkle_sync`). Pull + push
//! makes both sides equal after one exchange if nothing else writes meanwhile.
//!
//! **Concurrency.** A round's cost is round trips: at WAN latency (a 100 ms RTT between
//! zones), comparing 9 tables with 4 peers one after the other took 36 round trips — about
//! 4 s before a blank node of an empty new cluster could serve reads. So a peer's tables
//! are compared concurrently, at most `TABLE_SYNCS_IN_FLIGHT_MAX` at once, and so are the
//! descents of one table's differing partitions (`PARTITION_SYNCS_IN_FLIGHT_MAX`): a round
//! costs about one descent's round trips per peer, whatever the number of tables and
//! partitions. Peers stay one after another (`sync_peers` says why). Both run inside the caller's task (`bounded_join`), in a fixed polling
//! order, so a simulated run stays deterministic; the wire protocol is unchanged.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;

use super::merkle_sync::{self, SyncPeer};
use super::store::LocalTable;
use crate::layout::NodeId;
use crate::layout::manager::LayoutManager;
use crate::rpc::{Request, Response, RpcClient, TableRequest};
use crate::seam::BoxFuture;

/// Table comparisons with one peer in flight at once: bounds the requests a round puts on
/// the wire together (each is small until a partition differs).
pub const TABLE_SYNCS_IN_FLIGHT_MAX: usize = 16;

/// Partition descents of one (peer, table) comparison in flight at once; each has at most
/// one request outstanding (`merkle_sync`), so a round has at most
/// `TABLE_SYNCS_IN_FLIGHT_MAX × PARTITION_SYNCS_IN_FLIGHT_MAX` requests in flight.
pub const PARTITION_SYNCS_IN_FLIGHT_MAX: usize = 8;

/// Runs `futures` concurrently inside the calling task, at most `limit` at once (the next
/// starts when one finishes), and returns their outputs in input order. Every wake-up
/// polls the running ones in input order: no task is spawned, nothing is shared between
/// threads, and the order of events depends only on when each future becomes ready.
pub async fn bounded_join<F: Future>(futures: Vec<F>, limit: usize) -> Vec<F::Output> {
    let limit = limit.max(1);
    let total = futures.len();
    let mut waiting = futures.into_iter().enumerate();
    let mut running: Vec<(usize, Pin<Box<F>>)> = Vec::with_capacity(limit.min(total));
    let mut outputs: Vec<Option<F::Output>> = (0..total).map(|_| None).collect();
    let mut finished = 0;
    std::future::poll_fn(|cx| {
        loop {
            while running.len() < limit
                && let Some((i, future)) = waiting.next()
            {
                running.push((i, Box::pin(future)));
            }
            let before = finished;
            let mut i = 0;
            while i < running.len() {
                if let Poll::Ready(output) = running[i].1.as_mut().poll(cx) {
                    outputs[running[i].0] = Some(output);
                    running.remove(i);
                    finished += 1;
                } else {
                    i += 1;
                }
            }
            if finished == total {
                return Poll::Ready(());
            }
            // Something finished: start the next ones and poll them before sleeping.
            if finished == before {
                return Poll::Pending;
            }
        }
    })
    .await;
    outputs.into_iter().map(|o| o.expect("every future finished")).collect()
}

/// A peer reached over RPC.
struct RpcPeer<'a> {
    rpc: &'a RpcClient,
    node: NodeId,
}

impl SyncPeer for RpcPeer<'_> {
    fn call(&self, request: TableRequest) -> BoxFuture<'_, Result<Response, String>> {
        Box::pin(async move {
            self.rpc.call(self.node, Request::Table(request)).await.map_err(|e| e.to_string())
        })
    }
}

/// What `SyncWorker::sync_with` did with one peer and table.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TableSync {
    pub partitions_differing: usize,
    pub entries_pulled: usize,
    pub entries_pushed: usize,
}

/// What one round did, for tests and the trace.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    pub peers_contacted: usize,
    /// Partitions of a table compared with a peer (the "items" an operator sees).
    pub partitions_compared: usize,
    pub partitions_differing: usize,
    /// Entries received from peers and merged, and entries sent to them.
    pub entries_pulled: usize,
    pub entries_pushed: usize,
    pub errors: usize,
    /// Entries of partitions this node no longer holds, deleted (`drop_given_up`).
    pub entries_dropped: usize,
}

/// Whether this node's replica may be missing acknowledged writes because it started with a
/// blank metadata database (lost or replaced disk, or a brand-new node) and has not finished
/// its first full sync. While set, the node refuses table reads (docs/data-model.md,
/// "Blank nodes"); writes and anti-entropy are served as usual (they are CRDT merges).
#[derive(Debug, Clone, Default)]
pub struct SyncGate(Arc<AtomicBool>);

impl SyncGate {
    pub fn is_syncing(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    pub fn set_syncing(&self, syncing: bool) {
        self.0.store(syncing, Ordering::Release)
    }

    /// Whether our replica must refuse a read of `partition`: while syncing, unless no
    /// stored layout version gives the partition another replica (a single-node set has
    /// nothing to pull, and its blank answer is the truth). A syncing node that knows no
    /// layout yet refuses too: a wiped node learns the layout again by gossip, and until
    /// then its peers' reads and prepares still count on the replica it lost.
    pub fn refuses_reads_of(
        &self,
        layout: &LayoutManager,
        me: NodeId,
        partition: u8,
        write_quorum: usize,
    ) -> bool {
        if !self.is_syncing() {
            return false;
        }
        let sets = layout.write_sets(partition);
        sets.is_empty()
            || sets
                .iter()
                .any(|set| set.contains(&me) && answers_needed(set.len(), write_quorum) > 0)
    }
}

/// How many other replicas of a set of `len` a blank member must pull from: a write
/// acknowledged by `write_quorum` of the set, one of them maybe the blank member's lost
/// copy, sits on at least `write_quorum − 1` of the `len − 1` others, so `len − write_quorum
/// + 1` of them cannot all miss it (capped at all the others).
fn answers_needed(len: usize, write_quorum: usize) -> usize {
    (len + 1).saturating_sub(write_quorum).min(len.saturating_sub(1))
}

/// Partitions we hold, grouped by the peer that holds them too.
type SharedPartitions = BTreeMap<NodeId, Vec<u8>>;

pub struct SyncWorker {
    self_id: NodeId,
    rpc: Arc<RpcClient>,
    layout: Arc<LayoutManager>,
    tables: Vec<Arc<dyn LocalTable>>,
    /// `shared_partitions` for the layout history of the given digest: recomputing it
    /// walks all 256 partitions of every stored version, which was a twentieth of an idle
    /// simulated cluster's work, for an answer that changes only with the layout.
    shared_cache: Mutex<Option<([u8; 32], Arc<SharedPartitions>)>>,
    /// The layout digest whose given-up partitions were last dropped (`drop_given_up`).
    dropped_for: Mutex<Option<[u8; 32]>>,
}

impl SyncWorker {
    pub fn new(
        self_id: NodeId,
        rpc: Arc<RpcClient>,
        layout: Arc<LayoutManager>,
        tables: Vec<Arc<dyn LocalTable>>,
    ) -> SyncWorker {
        let (shared_cache, dropped_for) = (Mutex::new(None), Mutex::new(None));
        SyncWorker { self_id, rpc, layout, tables, shared_cache, dropped_for }
    }

    pub fn tables(&self) -> &[Arc<dyn LocalTable>] {
        &self.tables
    }

    /// Partitions we hold, grouped by the peer that holds them too, in deterministic order.
    /// During a layout transition, "hold" means in any stored version: old and new
    /// replicas of a partition keep exchanging until the old version is dropped.
    fn shared_partitions(&self) -> Arc<SharedPartitions> {
        // Digest and history are read separately; a change in between only means the
        // cached map is recomputed on the next round (the digest then differs again).
        let digest = self.layout.digest();
        if let Some((cached_digest, shared)) = &*self.shared_cache.lock().unwrap()
            && *cached_digest == digest
        {
            return shared.clone();
        }
        let history = self.layout.shared();
        let mut shared = SharedPartitions::new();
        for p in 0..=u8::MAX {
            let nodes = history.all_nodes(p);
            if !nodes.contains(&self.self_id) {
                continue;
            }
            for &n in nodes.iter().filter(|&&n| n != self.self_id) {
                shared.entry(n).or_default().push(p);
            }
        }
        let shared = Arc::new(shared);
        *self.shared_cache.lock().unwrap() = Some((digest, shared.clone()));
        shared
    }

    /// Deletes the table entries of every partition this node no longer holds, once the
    /// layout has settled on a single version (every node synced, reads moved): the new
    /// replicas have everything by then, as the block collector assumes for blocks. Runs
    /// once per layout; returns how many entries went. A write from a node with an older
    /// layout that lands here later stays until the next change (harmless garbage).
    pub fn drop_given_up(&self) -> usize {
        let digest = self.layout.digest();
        if *self.dropped_for.lock().unwrap() == Some(digest) {
            return 0;
        }
        let history = self.layout.shared();
        if history.versions().len() != 1 {
            return 0;
        }
        let mut dropped = 0;
        for p in 0..=u8::MAX {
            if history.all_nodes(p).contains(&self.self_id) {
                continue;
            }
            for table in &self.tables {
                match table.drop_partition(p) {
                    Ok(n) => dropped += n,
                    Err(e) => {
                        // Retried with the next round.
                        tracing::warn!(table = table.name(), partition = p, "drop: {e}");
                        return dropped;
                    }
                }
            }
        }
        *self.dropped_for.lock().unwrap() = Some(digest);
        dropped
    }

    /// One anti-entropy round over every table and every peer (concurrently: see the
    /// module comment).
    pub async fn step(&self) -> SyncReport {
        let mut report =
            SyncReport { entries_dropped: self.drop_given_up(), ..SyncReport::default() };
        let shared = self.shared_partitions();
        report.peers_contacted = shared.len();
        let jobs: Vec<(NodeId, &[u8])> =
            shared.iter().map(|(&peer, parts)| (peer, parts.as_slice())).collect();
        for (peer, table, result) in self.sync_peers(&jobs).await {
            report.partitions_compared += shared[&peer].len();
            match result {
                Ok(done) => {
                    report.partitions_differing += done.partitions_differing;
                    report.entries_pulled += done.entries_pulled;
                    report.entries_pushed += done.entries_pushed;
                }
                Err(e) => {
                    report.errors += 1;
                    tracing::debug!(%peer, table, "anti-entropy: {e}");
                }
            }
        }
        report
    }

    /// Syncs every table with each `(peer, partitions)` of `jobs`: one peer after another,
    /// each peer's tables concurrently (at most `TABLE_SYNCS_IN_FLIGHT_MAX` at once).
    /// Results in job order, then table order.
    ///
    /// Why not every peer at once: what a replica missed, every other replica has; synced
    /// with all peers together it would pull each missing entry from each of them (a blank
    /// node: its whole replica RF − 1 times over), where one after another the later peers
    /// find the partitions already equal.
    pub async fn sync_peers(
        &self,
        jobs: &[(NodeId, &[u8])],
    ) -> Vec<(NodeId, &'static str, Result<TableSync, String>)> {
        let mut results = Vec::new();
        for &(peer, parts) in jobs {
            let tables = self.tables.iter().map(|table| async move {
                let result = self.sync_with(table.as_ref(), peer, parts).await;
                (peer, table.name(), result)
            });
            results.extend(bounded_join(tables.collect(), TABLE_SYNCS_IN_FLIGHT_MAX).await);
        }
        results
    }

    /// Compares `parts` of `table` with `peer` and exchanges (pull, then push) the entries
    /// that differ in every partition whose tree root differs, up to
    /// `PARTITION_SYNCS_IN_FLIGHT_MAX` partitions at once.
    pub async fn sync_with(
        &self,
        table: &dyn LocalTable,
        peer: NodeId,
        parts: &[u8],
    ) -> Result<TableSync, String> {
        let name = table.name().to_string();
        let root = table.root_digest(parts).map_err(|e| e.to_string())?;
        let request = TableRequest::Digests {
            table: name.clone(),
            partitions: parts.to_vec(),
            root: Some(root),
        };
        let theirs = match self.rpc.call(peer, Request::Table(request)).await {
            Ok(Response::InSync) => return Ok(TableSync::default()),
            Ok(Response::Digests(d)) if d.len() == parts.len() => d,
            Ok(other) => return Err(format!("unexpected answer {other:?}")),
            Err(e) => return Err(e.to_string()),
        };
        let ours = table.partition_digests(parts).map_err(|e| e.to_string())?;
        let remote = RpcPeer { rpc: &self.rpc, node: peer };
        let differing: Vec<u8> = (parts.iter().zip(theirs).zip(ours))
            .filter(|((_, their_digest), ours)| ours != their_digest)
            .map(|((&partition, _), _)| partition)
            .collect();
        let descents = differing.iter().map(|&p| merkle_sync::sync_partition(table, &remote, p));
        let mut done = TableSync { partitions_differing: differing.len(), ..TableSync::default() };
        let mut first_error = None;
        for exchanged in bounded_join(descents.collect(), PARTITION_SYNCS_IN_FLIGHT_MAX).await {
            match exchanged {
                Ok(exchanged) => {
                    done.entries_pulled += exchanged.entries_pulled;
                    done.entries_pushed += exchanged.entries_pushed;
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(done),
        }
    }

    /// One pass of a blank node's full sync: exchanges every table with every peer not yet
    /// in `answered` (a peer joins it once all its tables exchanged without error), then
    /// checks coverage. Succeeds once, for every partition this node holds in any stored
    /// layout version, at least `len − write_quorum + 1` other replicas of that version's set
    /// answered: a write acknowledged by `write_quorum` replicas (one of them maybe our lost
    /// copy) sits on at least `write_quorum − 1` of the `len − 1` others, so that many
    /// answers cannot all miss it. `answered` carries over between passes: a pull made
    /// after the restart already holds every write acknowledged before it.
    pub async fn full_sync_pass(
        &self,
        write_quorum: usize,
        answered: &mut BTreeSet<NodeId>,
    ) -> Result<(), String> {
        let shared = self.shared_partitions();
        let jobs: Vec<(NodeId, &[u8])> = (shared.iter())
            .filter(|(peer, _)| !answered.contains(peer))
            .map(|(&peer, parts)| (peer, parts.as_slice()))
            .collect();
        // A peer joins `answered` once every table exchanged with it without error.
        let mut failed: BTreeSet<NodeId> = BTreeSet::new();
        let mut errors = Vec::new();
        for (peer, table, result) in self.sync_peers(&jobs).await {
            if let Err(e) = result {
                errors.push(format!("{peer}/{table}: {e}"));
                failed.insert(peer);
            }
        }
        answered.extend(jobs.iter().map(|(peer, _)| *peer).filter(|p| !failed.contains(p)));
        for p in 0..=u8::MAX {
            for set in self.layout.write_sets(p) {
                if !set.contains(&self.self_id) {
                    continue;
                }
                let needed = answers_needed(set.len(), write_quorum);
                let got = set.iter().filter(|n| answered.contains(n)).count();
                if got < needed {
                    return Err(format!(
                        "partition {p}: {got} of {needed} other replicas answered ({})",
                        errors.join("; ")
                    ));
                }
            }
        }
        Ok(())
    }
}
