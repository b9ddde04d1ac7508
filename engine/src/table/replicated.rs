//! Quorum reads and writes over a table's replicas.
//!
//! A write goes to every replica of the key's partition and returns once `write` of them
//! have made it durable; the others keep going in the background. A read asks every
//! replica, merges the first `read` answers, and repairs the replicas among them that
//! answered something older. With `read + write > replication_factor`, every read quorum
//! intersects every write quorum, so a read that starts after a write was acknowledged
//! sees it (or something newer).
//!
//! **Linearizable reads (ABD).** Read-after-write alone lets a read return a write that
//! reached only some replicas (its writer timed out): if that read answered before the
//! value sat on a write quorum, a later read from another quorum could miss it and return
//! something older — a value appearing then vanishing, which no sequential order explains.
//! So when quorums intersect (`read + write > replicas`, i.e. `consistent` mode), a read
//! whose merged value is held by fewer than `write` of the replicas that answered writes it
//! back (to every replica not known to hold it) and answers only once a write quorum has
//! it, as the second phase of an ABD read. Replicas that agree (the common case) cost
//! nothing extra; `degraded` and `dangerous` modes promise no such thing and repair in the
//! background.
//!
//! While a layout change is in transition (`crate::layout::manager`), a write needs its
//! quorum in the replica set of *every* stored layout version, and reads use the read
//! version's set: the old one until the new set has synced.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;

use super::schema::{TableSchema, decode_entry, encode_entry, partition_of_key};
use super::store::{LocalTable, Store};
use super::sync::SyncGate;
use crate::crdt::Crdt;
use crate::layout::NodeId;
use crate::layout::manager::{LayoutManager, SetQuorums};
use crate::rpc::{Request, Response, RpcClient, TableRequest};

/// How many replicas must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quorums {
    pub read: usize,
    pub write: usize,
}

/// The consistency/availability trade-off, as an operator chooses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsistencyMode {
    /// Read and write quorums of a majority: read-after-write holds.
    Consistent,
    /// Reads from any one replica, majority writes: reads may be stale while replicas heal.
    Degraded,
    /// One replica for reads and for writes: writes may be lost with that replica.
    Dangerous,
}

impl ConsistencyMode {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "consistent" => Some(ConsistencyMode::Consistent),
            "degraded" => Some(ConsistencyMode::Degraded),
            "dangerous" => Some(ConsistencyMode::Dangerous),
            _ => None,
        }
    }
}

impl Quorums {
    pub fn for_mode(mode: ConsistencyMode, replication_factor: usize) -> Self {
        let majority = replication_factor / 2 + 1;
        match mode {
            ConsistencyMode::Consistent => Quorums { read: majority, write: majority },
            ConsistencyMode::Degraded => Quorums { read: 1, write: majority },
            ConsistencyMode::Dangerous => Quorums { read: 1, write: 1 },
        }
    }
}

/// How many replicas a read asks: the mode's read quorum, or enough to meet every write
/// quorum (`get_seeing_every_write`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadReach {
    Mode,
    EveryWrite,
}

/// How many of `replicas` replicas a read of `reach` asks under `quorums`.
fn read_quorum(quorums: Quorums, reach: ReadReach, replicas: usize) -> usize {
    let quorum = match reach {
        ReadReach::Mode => quorums.read,
        // Enough to meet every write quorum: one more than the replicas a write may miss.
        ReadReach::EveryWrite => {
            let misses = replicas.saturating_sub(quorums.write.min(replicas));
            quorums.read.max(misses + 1)
        }
    };
    quorum.min(replicas)
}

#[cfg(test)]
mod read_reach_tests {
    use super::*;

    #[test]
    fn collectors_read_enough_replicas_to_meet_every_write_quorum() {
        let reads = |mode, replicas| {
            let quorums = Quorums::for_mode(mode, 3);
            (read_quorum(quorums, ReadReach::Mode, replicas), {
                read_quorum(quorums, ReadReach::EveryWrite, replicas)
            })
        };
        assert_eq!(reads(ConsistencyMode::Consistent, 3), (2, 2), "majorities meet already");
        assert_eq!(reads(ConsistencyMode::Degraded, 3), (1, 2), "one replica may miss a write");
        assert_eq!(reads(ConsistencyMode::Dangerous, 3), (1, 3), "two may: ask all three");
        assert_eq!(reads(ConsistencyMode::Dangerous, 1), (1, 1), "never more than there are");
    }
}

/// Not enough replicas answered in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumError {
    pub quorum: usize,
    pub successes: usize,
    pub errors: Vec<String>,
}

impl std::fmt::Display for QuorumError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "quorum {} not reached ({} ok): {}",
            self.quorum,
            self.successes,
            self.errors.join("; ")
        )
    }
}

pub struct Replicated<S: TableSchema> {
    pub local: Arc<Store<S>>,
    self_id: NodeId,
    rpc: Arc<RpcClient>,
    layout: Arc<LayoutManager>,
    quorums: Quorums,
    /// Set while our replica started blank and has not synced: its reads are not ours to
    /// count (see `SyncGate`).
    gate: SyncGate,
    /// Test-only weakening (`unsafe_repair_reads_in_background`): reads never wait for
    /// their value to reach a write quorum.
    background_repair_only: AtomicBool,
}

type Answer = (NodeId, Result<Response, String>);

impl<S: TableSchema> Replicated<S> {
    pub fn new(
        local: Arc<Store<S>>,
        self_id: NodeId,
        rpc: Arc<RpcClient>,
        layout: Arc<LayoutManager>,
        quorums: Quorums,
        gate: SyncGate,
    ) -> Self {
        let background_repair_only = AtomicBool::new(false);
        Replicated { local, self_id, rpc, layout, quorums, gate, background_repair_only }
    }

    /// Test-only weakening (the simulation's `cluster.unsafe_background_read_repair`): a
    /// read that found replicas disagreeing answers at once and repairs in the background,
    /// as before awaited read repair — read-after-write holds, linearizability does not.
    pub fn unsafe_repair_reads_in_background(&self) {
        self.background_repair_only.store(true, Ordering::Relaxed);
    }

    /// Whether a read must see its value on a write quorum before answering: only when read
    /// and write quorums intersect (otherwise no read promises more than a stale value).
    fn awaits_read_repair(&self, replicas: usize) -> bool {
        self.quorums.read + self.quorums.write > replicas
            && !self.background_repair_only.load(Ordering::Relaxed)
    }

    /// The replicas a read of `key` asks (the read version's set).
    fn replicas(&self, key: &[u8]) -> Vec<NodeId> {
        self.layout.read_nodes(partition_of_key(key))
    }

    /// Sends `request` to one replica (ourselves through the local store) on its own task,
    /// so that a slow replica finishes in the background after the quorum returns.
    fn send(&self, node: NodeId, request: TableRequest, tx: &mpsc::Sender<Answer>) {
        if node == self.self_id {
            if let TableRequest::Update { entries, .. } = request {
                // Our own replica's write joins the store's group commit, on its own task
                // like a remote replica's.
                let (local, tx) = (self.local.clone(), tx.clone());
                tokio::spawn(async move {
                    let answer = local.merge_raw_async(entries).await;
                    let answer = answer.map(|()| Response::Done).map_err(|e| e.to_string());
                    let _ = tx.send((node, answer)).await;
                });
                return;
            }
            let refused = read_partition(&request).is_some_and(|p| {
                self.gate.refuses_reads_of(&self.layout, self.self_id, p, self.quorums.write)
            });
            let answer = if refused {
                // Like a remote replica answering `Syncing`: the read asks the next one.
                Err(crate::rpc::RemoteError::Syncing.to_string())
            } else {
                serve_local(self.local.as_ref(), &request)
            };
            let _ = tx.try_send((node, answer));
            return;
        }
        let (rpc, tx) = (self.rpc.clone(), tx.clone());
        tokio::spawn(async move {
            let answer = rpc.call(node, Request::Table(request)).await.map_err(|e| e.to_string());
            let _ = tx.send((node, answer)).await;
        });
    }

    /// Sends `request` to every replica.
    fn fan_out(&self, replicas: &[NodeId], request: TableRequest) -> mpsc::Receiver<Answer> {
        let (tx, rx) = mpsc::channel(replicas.len().max(1));
        for &node in replicas {
            self.send(node, request.clone(), &tx);
        }
        rx
    }

    /// Reads from `quorum` replicas — ourselves first — and from one more replica for each
    /// that fails, so a healthy cluster serves a read with exactly `quorum` requests.
    /// `accept` judges each answer; the read succeeds once `quorum` answers were accepted.
    async fn gather_reads(
        &self,
        replicas: &[NodeId],
        reach: ReadReach,
        request: TableRequest,
        mut accept: impl FnMut(NodeId, Response) -> Result<(), String>,
    ) -> Result<(), QuorumError> {
        let quorum = read_quorum(self.quorums, reach, replicas.len());
        let mut order: Vec<NodeId> = replicas.to_vec();
        order.sort_by_key(|&n| n != self.self_id);
        let (tx, mut rx) = mpsc::channel(order.len().max(1));
        let mut next = 0;
        while next < quorum {
            self.send(order[next], request.clone(), &tx);
            next += 1;
        }
        let (mut successes, mut outstanding, mut errors) = (0, quorum, Vec::new());
        while successes < quorum && outstanding > 0 {
            let (node, answer) = rx.recv().await.expect("we hold a sender");
            outstanding -= 1;
            match answer.and_then(|response| accept(node, response)) {
                Ok(()) => successes += 1,
                Err(e) => {
                    errors.push(format!("{node}: {e}"));
                    if next < order.len() {
                        self.send(order[next], request.clone(), &tx);
                        (next, outstanding) = (next + 1, outstanding + 1);
                    }
                }
            }
        }
        if successes < quorum {
            return Err(QuorumError { quorum, successes, errors });
        }
        Ok(())
    }

    /// Writes `entry` under `key` to a write quorum of replicas (of every stored layout
    /// version's replica set, during a transition).
    pub async fn insert(&self, key: Vec<u8>, entry: &S::Entry) -> Result<(), QuorumError> {
        self.write_quorum(&key, entry, &[]).await
    }

    /// Sends `entry` to every replica of the write sets except `already_hold` (which count
    /// as successes) and waits until a write quorum of every set holds it: an `insert`, and
    /// the second phase of a linearizable read (`already_hold` = the replicas that answered
    /// the merged value).
    async fn write_quorum(
        &self,
        key: &[u8],
        entry: &S::Entry,
        already_hold: &[NodeId],
    ) -> Result<(), QuorumError> {
        // Held until the answer: a layout acknowledgement waits for writes like this one.
        let _guard = self.layout.write_guard().await;
        let mut quorums =
            SetQuorums::new(self.layout.write_sets(partition_of_key(key)), self.quorums.write);
        for &node in already_hold {
            quorums.success(node);
        }
        let replicas = quorums.union();
        let targets: Vec<NodeId> =
            replicas.iter().copied().filter(|n| !already_hold.contains(n)).collect();
        let entries = vec![(key.to_vec(), encode_entry(entry))];
        let request = TableRequest::Update { table: S::NAME.into(), entries };
        let mut answers = self.fan_out(&targets, request);
        let mut errors = Vec::new();
        while !quorums.reached()
            && let Some((node, answer)) = answers.recv().await
        {
            match answer {
                Ok(Response::Done) => quorums.success(node),
                Ok(other) => errors.push(format!("{node}: unexpected answer {other:?}")),
                Err(e) => errors.push(e),
            }
        }
        if quorums.reached() {
            return Ok(());
        }
        if replicas.is_empty() {
            errors.push("no layout is known yet".into());
        }
        let (quorum, successes) = quorums.worst();
        Err(QuorumError { quorum, successes, errors })
    }

    /// Reads `key` from a read quorum, merging their answers and repairing stale replicas;
    /// when quorums intersect, answers only once the merged value is on a write quorum
    /// (see the module comment).
    pub async fn get(&self, key: &[u8]) -> Result<Option<S::Entry>, QuorumError> {
        self.get_reaching(key, ReadReach::Mode).await
    }

    /// As `get`, from enough replicas to see every acknowledged write whatever the mode:
    /// what the collectors read before deleting anything. In `degraded` and `dangerous`
    /// mode a read of one replica may miss a write a quorum took, and a collector that
    /// trusted it would delete what that write still needs (the simulator found one
    /// deleting the block list of a version completed on the other replicas).
    pub async fn get_seeing_every_write(
        &self,
        key: &[u8],
    ) -> Result<Option<S::Entry>, QuorumError> {
        self.get_reaching(key, ReadReach::EveryWrite).await
    }

    async fn get_reaching(
        &self,
        key: &[u8],
        reach: ReadReach,
    ) -> Result<Option<S::Entry>, QuorumError> {
        let replicas = self.replicas(key);
        let request = TableRequest::Read { table: S::NAME.into(), key: key.to_vec() };
        let mut seen: Vec<(NodeId, Option<S::Entry>)> = Vec::new();
        self.gather_reads(&replicas, reach, request, |node, response| match response {
            Response::Entry(bytes) => {
                let entry =
                    bytes.map(|b| decode_entry(&b)).transpose().map_err(|e| e.to_string())?;
                seen.push((node, entry));
                Ok(())
            }
            other => Err(format!("unexpected answer {other:?}")),
        })
        .await?;
        let merged = seen.iter().filter_map(|(_, e)| e.clone()).reduce(|mut a, b| {
            a.merge(&b);
            a
        });
        let Some(merged) = merged else { return Ok(None) };
        let (current, stale): (Vec<_>, Vec<_>) =
            seen.iter().partition(|(_, e)| e.as_ref() == Some(&merged));
        let current: Vec<NodeId> = current.into_iter().map(|(n, _)| *n).collect();
        let stale: Vec<NodeId> = stale.into_iter().map(|(n, _)| *n).collect();
        if current.len() >= self.quorums.write || !self.awaits_read_repair(replicas.len()) {
            self.repair(key, &merged, &stale);
        } else {
            self.write_quorum(key, &merged, &current).await?;
        }
        Ok(Some(merged))
    }

    /// Reads up to `limit` entries of one partition key whose sort keys start with
    /// `sort_prefix` and come after `sort_after`, from a read quorum, merged per key.
    ///
    /// Each replica returns at most `limit` entries; a replica that returned exactly
    /// `limit` may hold more beyond its last key, so the merged answer stops at the smallest
    /// such last key — past it, some replica's view is unknown.
    pub async fn get_range(
        &self,
        partition_key: &[u8],
        sort_prefix: &[u8],
        sort_after: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, S::Entry)>, QuorumError> {
        self.get_range_reaching(partition_key, sort_prefix, sort_after, limit, ReadReach::Mode)
            .await
    }

    /// As `get_range`, from enough replicas to see every acknowledged write whatever the
    /// mode (`get_seeing_every_write`): the block collector's count of a block's references.
    pub async fn get_range_seeing_every_write(
        &self,
        partition_key: &[u8],
        sort_prefix: &[u8],
        sort_after: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, S::Entry)>, QuorumError> {
        let reach = ReadReach::EveryWrite;
        self.get_range_reaching(partition_key, sort_prefix, sort_after, limit, reach).await
    }

    async fn get_range_reaching(
        &self,
        partition_key: &[u8],
        sort_prefix: &[u8],
        sort_after: &[u8],
        limit: usize,
        reach: ReadReach,
    ) -> Result<Vec<(Vec<u8>, S::Entry)>, QuorumError> {
        let prefix = super::schema::entry_key(partition_key, sort_prefix);
        let after = if sort_after.is_empty() {
            Vec::new()
        } else {
            super::schema::entry_key(partition_key, sort_after)
        };
        let replicas = self.replicas(&prefix);
        let request = TableRequest::Range {
            table: S::NAME.into(),
            prefix: prefix.clone(),
            after,
            limit: limit as u32,
        };
        let mut merged: BTreeMap<Vec<u8>, S::Entry> = BTreeMap::new();
        let mut cutoff: Option<Vec<u8>> = None;
        self.gather_reads(&replicas, reach, request, |_, response| {
            let Response::Entries(raw) = response else {
                return Err(format!("unexpected answer {response:?}"));
            };
            // Decode the whole page before merging any of it: a bad page counts as a failure.
            let mut page = Vec::with_capacity(raw.len());
            for (key, bytes) in raw {
                page.push((key, decode_entry::<S::Entry>(&bytes).map_err(|e| e.to_string())?));
            }
            if page.len() >= limit
                && let Some((last, _)) = page.last()
                && cutoff.as_ref().is_none_or(|c| last < c)
            {
                cutoff = Some(last.clone());
            }
            for (key, entry) in page {
                merged.entry(key).and_modify(|m| m.merge(&entry)).or_insert(entry);
            }
            Ok(())
        })
        .await?;
        let sort_start = prefix.len() - sort_prefix.len();
        Ok(merged
            .into_iter()
            .filter(|(k, _)| cutoff.as_ref().is_none_or(|c| k <= c))
            .take(limit)
            .map(|(k, e)| (k[sort_start..].to_vec(), e))
            .collect())
    }

    /// Read repair: pushes the merged entry to the replicas that answered something older.
    fn repair(&self, key: &[u8], merged: &S::Entry, stale: &[NodeId]) {
        if stale.is_empty() {
            return;
        }
        let entries = vec![(key.to_vec(), encode_entry(merged))];
        // Our own copy is repaired before the read returns, so that this node's next
        // local read already sees what it just served.
        if stale.contains(&self.self_id) {
            let _ = self.local.merge_raw(&entries);
        }
        let others: Vec<NodeId> = stale.iter().copied().filter(|&n| n != self.self_id).collect();
        let request = TableRequest::Update { table: S::NAME.into(), entries };
        // Answers are not awaited: repair is best effort, anti-entropy is the backstop.
        drop(self.fan_out(&others, request));
    }
}

/// The partition a table read (`Read`, `Range`) is about; `None` for other requests.
pub fn read_partition(request: &TableRequest) -> Option<u8> {
    match request {
        TableRequest::Read { key, .. } => Some(partition_of_key(key)),
        TableRequest::Range { prefix, .. } => Some(partition_of_key(prefix)),
        _ => None,
    }
}

/// Serves a table request against a local replica (the RPC handler and the local shortcut
/// of `fan_out` share this).
pub fn serve_local(table: &dyn LocalTable, request: &TableRequest) -> Result<Response, String> {
    let result = match request {
        TableRequest::Update { entries, .. } => table.merge_raw(entries).map(|()| Response::Done),
        TableRequest::Read { key, .. } => table.get_raw(key).map(Response::Entry),
        TableRequest::Digests { partitions, root, .. } => match table.root_digest(partitions) {
            Ok(ours) if *root == Some(ours) => Ok(Response::InSync),
            Ok(_) => table.partition_digests(partitions).map(Response::Digests),
            Err(e) => Err(e),
        },
        TableRequest::PartitionEntries { partition, .. } => {
            table.partition_entries(*partition).map(Response::Entries)
        }
        TableRequest::Range { prefix, after, limit, .. } => {
            table.range(prefix, after, *limit as usize).map(Response::Entries)
        }
        TableRequest::DeleteIfUnchanged { items, .. } => {
            table.delete_if_unchanged(items).map(|_| Response::Done)
        }
        TableRequest::TreeNodes { partition, paths, .. } => {
            table.tree_nodes(*partition, paths).map(Response::TreeNodes)
        }
        TableRequest::FetchEntries { keys, .. } => {
            table.entries_by_key(keys).map(Response::Entries)
        }
    };
    result.map_err(|e| e.to_string())
}
