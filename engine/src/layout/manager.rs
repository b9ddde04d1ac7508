//! The node's live layout: its `LayoutHistory`, persisted through the seam, and the replica
//! sets the tables and the block manager use while a layout change is in transition.
//!
//! # The transition protocol (the reasoning; `layout/worker.rs` runs it)
//!
//! Applying staged changes adds version `n` to the history. From then on:
//!
//! 1. **Writes go to every stored version** and need a write quorum *in each* replica set
//!    (`write_sets`, `SetQuorums`). A node learns `n` by gossip; once it has, it waits for
//!    every write it started with replica sets chosen without `n` to finish (the
//!    `write_barrier`: writes hold a shared guard from choosing their sets to their answer)
//!    and reports `ack = n`.
//! 2. **Sync starts once every tracked node acknowledged `n`.** From that moment every new
//!    write reaches a quorum of `n`'s sets, and every write acknowledged before it reached a
//!    quorum of an older set. Each node of `n` then pulls, for every partition it holds in
//!    `n`, the partition's entries from a read quorum of each older version's set (table
//!    anti-entropy; its own replica counts if it was in that set), since a read quorum
//!    meets every write quorum; then a block resync pass fetches every block its
//!    `block_ref` replica names. Only if all of that succeeded does it report `sync = n`.
//!    A node without a role in `n` gains nothing and reports `sync = n` right after `ack`.
//! 3. **Reads move to `n` once every tracked node reports `sync ≥ n`** (`read_version`):
//!    before, they read the old sets, which hold every acknowledged write. Each node reports
//!    `sync_ack = n` when its reads have moved.
//! 4. **Older versions are dropped once every tracked node reports `sync_ack ≥ n`**: until
//!    then some node may still read an old set, so writes must keep reaching it.
//!
//! Invariants: (a) a read quorum of the read version meets the write quorum of every
//! acknowledged write (steps 1–3); (b) a version is only dropped after every node stopped
//! reading from it (step 4); (c) the trackers only grow and are persisted before they are
//! gossiped, so a restart never takes a claim back.
//!
//! Blocks follow the same sets: new blocks go to every version's set with a quorum in each,
//! reads try the read set then every older holder (copies verify by hash, so any holder
//! will do), and garbage collection deletes nothing while more than one version is stored.
//!
//! A tracked node that is down never acknowledges, so the transition waits for it (writes
//! keep reaching old and new sets, reads stay on the old ones). To replace a dead node,
//! the operator removes it and then *skips* it (`skip_dead_node`): its trackers are set to
//! the newest version on its behalf. That is safe only if it never coordinates a write
//! again with an old layout — the operator's promise that it is gone for good.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::OwnedRwLockReadGuard;

use super::history::{LayoutHistory, Tracker};
use super::{ClusterLayout, LayoutDiff, LayoutError, NodeId, NodeRole, Partition};
use crate::seam::Seam;

/// Where the history is persisted, relative to the node's data root.
pub const LAYOUT_HISTORY_PATH: &str = "meta/layout-history";
/// Format byte of the persisted history (then its bincode 2 encoding).
pub const LAYOUT_HISTORY_FORMAT_V1: u8 = 1;

/// Why the layout could not be loaded, saved or changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayoutManagerError {
    /// The persisted history could not be read or decoded.
    Load { path: String, reason: String },
    /// The new history could not be made durable; nothing changed.
    Persist { path: String, reason: String },
    /// The change itself was refused.
    Layout(LayoutError),
    /// No layout is known yet (a node that has not heard from its bootstrap peers).
    NoLayout,
    /// Only a node the newest layout no longer assigns can be skipped.
    StillAssigned { node: NodeId },
}

impl std::fmt::Display for LayoutManagerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LayoutManagerError::Load { path, reason } => {
                write!(f, "cannot load the layout history {path}: {reason}")
            }
            LayoutManagerError::Persist { path, reason } => {
                write!(f, "cannot persist the layout history {path}: {reason}")
            }
            LayoutManagerError::Layout(e) => write!(f, "{e}"),
            LayoutManagerError::NoLayout => {
                write!(f, "no layout known yet: wait for the bootstrap peers to answer")
            }
            LayoutManagerError::StillAssigned { node } => write!(
                f,
                "node {node} still has a role in the newest layout: remove it first, then skip it"
            ),
        }
    }
}

impl std::error::Error for LayoutManagerError {}

pub struct LayoutManager {
    self_id: NodeId,
    seam: Seam,
    /// Shared, so that readers (every anti-entropy and gossip round) take a reference
    /// instead of copying 256 partitions' assignments per version.
    history: RwLock<Arc<LayoutHistory>>,
    /// `digest()` of the installed history: gossip compares it every round, with every peer.
    digest: RwLock<[u8; 32]>,
    /// Serialises read-modify-persist of the history.
    updating: Mutex<()>,
    /// Writes hold a shared guard from choosing their replica sets until they finish;
    /// taking it exclusively waits for every write that chose its sets before.
    writes: Arc<tokio::sync::RwLock<()>>,
    /// Fault hook (simulation only): reads use the newest version at once, before its
    /// replicas synced — the bug the transition protocol exists to prevent.
    early_read_switch: AtomicBool,
    /// Counts installed changes, so that the layout worker and a blank node's sync wake as
    /// soon as a layout is applied or learnt instead of at their next period: a new cluster
    /// would otherwise refuse writes for up to a gossip period after `layout apply`.
    changes: tokio::sync::watch::Sender<u64>,
}

impl LayoutManager {
    /// Loads the persisted history (if any), merges `initial` into it and persists.
    pub fn open(
        self_id: NodeId,
        seam: Seam,
        initial: &ClusterLayout,
    ) -> Result<Self, LayoutManagerError> {
        let load_err =
            |reason: String| LayoutManagerError::Load { path: LAYOUT_HISTORY_PATH.into(), reason };
        let mut history = match seam.disk.read(LAYOUT_HISTORY_PATH) {
            Ok(bytes) => decode_history(&bytes).map_err(load_err)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => LayoutHistory::default(),
            Err(e) => return Err(load_err(e.to_string())),
        };
        history.merge(&LayoutHistory::from_layout(initial));
        persist(&seam, &history)?;
        Ok(LayoutManager {
            self_id,
            seam,
            digest: RwLock::new(history.digest()),
            history: RwLock::new(Arc::new(history)),
            updating: Mutex::new(()),
            writes: Arc::new(tokio::sync::RwLock::new(())),
            early_read_switch: AtomicBool::new(false),
            changes: tokio::sync::watch::Sender::new(0),
        })
    }

    /// A receiver whose `changed()` completes after every installed change of the history
    /// (see `sleep_unless_changed`).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// A copy of the whole history.
    pub fn snapshot(&self) -> LayoutHistory {
        LayoutHistory::clone(&self.history.read().unwrap())
    }

    /// The installed history, shared (no copy): for readers.
    pub fn shared(&self) -> Arc<LayoutHistory> {
        self.history.read().unwrap().clone()
    }

    /// `LayoutHistory::digest` of the installed history, computed once per change.
    pub fn digest(&self) -> [u8; 32] {
        *self.digest.read().unwrap()
    }

    /// The newest layout, if any is known.
    pub fn current(&self) -> Option<ClusterLayout> {
        self.history.read().unwrap().current().cloned()
    }

    /// Nodes a read of `partition` asks.
    pub fn read_nodes(&self, partition: Partition) -> Vec<NodeId> {
        let history = self.history.read().unwrap();
        if self.early_read_switch.load(Ordering::Relaxed) {
            let newest = history.current().map(|l| l.nodes_of(partition).to_vec());
            return newest.unwrap_or_default();
        }
        history.read_nodes(partition)
    }

    /// Deliberately breaks the protocol (for the simulator's weakened scenarios, to show
    /// its checkers catch it): reads move to a new version before its replicas synced.
    pub fn weaken_switch_reads_before_sync(&self) {
        self.early_read_switch.store(true, Ordering::Relaxed);
    }

    /// Replica sets a write of `partition` needs a quorum in.
    pub fn write_sets(&self, partition: Partition) -> Vec<Vec<NodeId>> {
        self.history.read().unwrap().write_sets(partition)
    }

    /// Every node that may hold `partition` now: the read set first.
    pub fn all_nodes(&self, partition: Partition) -> Vec<NodeId> {
        self.history.read().unwrap().all_nodes(partition)
    }

    /// Whether more than one version is stored (a change is in transition).
    pub fn in_transition(&self) -> bool {
        self.history.read().unwrap().versions().len() > 1
    }

    /// Taken by every write before it chooses its replica sets, held until it finishes.
    pub async fn write_guard(&self) -> OwnedRwLockReadGuard<()> {
        self.writes.clone().read_owned().await
    }

    /// Waits until every write that chose its replica sets before this call has finished.
    pub async fn write_barrier(&self) {
        drop(self.writes.write().await);
    }

    /// Applies `change` to a copy of the history; if it changed anything, persists the
    /// copy and only then installs it. Returns whether something changed.
    pub fn update<R>(
        &self,
        change: impl FnOnce(&mut LayoutHistory) -> Result<R, LayoutManagerError>,
    ) -> Result<(R, bool), LayoutManagerError> {
        let _serial = self.updating.lock().unwrap();
        let mut next = self.snapshot();
        let result = change(&mut next)?;
        let changed = next != **self.history.read().unwrap();
        if changed {
            persist(&self.seam, &next)?;
            let version = next.current().map_or(0, ClusterLayout::version);
            self.seam.trace.event("layout.update", &version.to_le_bytes());
            // Digest first: a reader that sees the new history never gets the old digest
            // with it for long, and a stale digest only costs one extra gossip exchange.
            *self.digest.write().unwrap() = next.digest();
            *self.history.write().unwrap() = Arc::new(next);
            self.changes.send_modify(|count| *count += 1);
        }
        Ok((result, changed))
    }

    /// Merges a peer's history; returns whether ours changed.
    pub fn merge(&self, other: &LayoutHistory) -> Result<bool, LayoutManagerError> {
        self.update(|h| {
            h.merge(other);
            Ok(())
        })
        .map(|((), changed)| changed)
    }

    /// Raises this node's `which` tracker to `version`.
    pub fn advance(&self, which: Tracker, version: u64) -> Result<(), LayoutManagerError> {
        let me = self.self_id;
        self.update(|h| {
            h.advance(which, me, version);
            Ok(())
        })
        .map(|_| ())
    }

    /// Stages a role change (`None` removes `node`) on the newest layout.
    pub fn stage_role(
        &self,
        node: NodeId,
        role: Option<NodeRole>,
    ) -> Result<(), LayoutManagerError> {
        self.update(|h| {
            let layout = h.current_mut().ok_or(LayoutManagerError::NoLayout)?;
            match role {
                Some(role) => layout.stage_assign(node, role).map_err(LayoutManagerError::Layout),
                None => {
                    layout.stage_remove(node);
                    Ok(())
                }
            }
        })
        .map(|_| ())
    }

    /// Reports, on behalf of `node` (dead for good and removed from the newest layout), that
    /// it acknowledged, synced and reads the newest version, so the transition can finish.
    pub fn skip_dead_node(&self, node: NodeId) -> Result<(), LayoutManagerError> {
        self.update(|h| {
            let newest = h.current().ok_or(LayoutManagerError::NoLayout)?;
            if newest.roles().contains_key(&node) {
                return Err(LayoutManagerError::StillAssigned { node });
            }
            let version = newest.version();
            for which in [Tracker::Ack, Tracker::Sync, Tracker::SyncAck] {
                h.advance(which, node, version);
            }
            Ok(())
        })
        .map(|_| ())
    }

    /// Applies the staged changes as version `expected_version` (current + 1).
    pub fn apply_staged(&self, expected_version: u64) -> Result<LayoutDiff, LayoutManagerError> {
        self.update(|h| {
            let mut next = h.current().ok_or(LayoutManagerError::NoLayout)?.clone();
            let diff = next.apply_staged(expected_version).map_err(LayoutManagerError::Layout)?;
            if let Some(old) = h.current_mut() {
                old.revert_staged();
            }
            h.push(next);
            Ok(diff)
        })
        .map(|(diff, _)| diff)
    }
}

/// Sleeps `period`, or less if the history changes meanwhile (`changes` from `subscribe`);
/// then counts every change so far as seen, so changes made after this returns — by the
/// caller's own step, say — wake the next call at once.
pub async fn sleep_unless_changed(
    changes: &mut tokio::sync::watch::Receiver<u64>,
    period: Duration,
) {
    // `biased`: tokio picks among ready branches at random otherwise, and a seed must
    // replay bit for bit.
    tokio::select! {
        biased;
        Ok(()) = changes.changed() => {}
        () = tokio::time::sleep(period) => {}
    }
    changes.mark_unchanged();
}

fn persist(seam: &Seam, history: &LayoutHistory) -> Result<(), LayoutManagerError> {
    let mut bytes = vec![LAYOUT_HISTORY_FORMAT_V1];
    bytes.extend(crate::codec::encode(history));
    seam.disk.write_durable(LAYOUT_HISTORY_PATH, &bytes).map_err(|e| LayoutManagerError::Persist {
        path: LAYOUT_HISTORY_PATH.into(),
        reason: e.to_string(),
    })
}

fn decode_history(bytes: &[u8]) -> Result<LayoutHistory, String> {
    match bytes.split_first() {
        Some((&LAYOUT_HISTORY_FORMAT_V1, rest)) => {
            crate::codec::decode("layout history", rest).map_err(|e| e.to_string())
        }
        Some((format, _)) => Err(format!("unknown format byte {format}")),
        None => Err("empty file".into()),
    }
}

/// Counts answers towards a write quorum in each of several replica sets (old and new
/// during a transition): the write is done once every set has its quorum.
pub struct SetQuorums {
    sets: Vec<(Vec<NodeId>, usize)>,
    quorum: usize,
}

impl SetQuorums {
    /// `quorum` per set, capped at each set's size.
    pub fn new(sets: Vec<Vec<NodeId>>, quorum: usize) -> Self {
        SetQuorums { sets: sets.into_iter().map(|s| (s, 0)).collect(), quorum }
    }

    /// Every node of every set, each once, in set order.
    pub fn union(&self) -> Vec<NodeId> {
        let mut nodes = Vec::new();
        for (set, _) in &self.sets {
            for &n in set {
                if !nodes.contains(&n) {
                    nodes.push(n);
                }
            }
        }
        nodes
    }

    /// Counts one success from `node`.
    pub fn success(&mut self, node: NodeId) {
        for (set, count) in &mut self.sets {
            if set.contains(&node) {
                *count += 1;
            }
        }
    }

    /// Whether every set has its quorum (false when there is no set at all).
    pub fn reached(&self) -> bool {
        !self.sets.is_empty()
            && self.sets.iter().all(|(set, count)| *count >= self.quorum.min(set.len()))
    }

    /// `(quorum, successes)` of the set furthest from its quorum, for errors.
    pub fn worst(&self) -> (usize, usize) {
        self.sets
            .iter()
            .map(|(set, count)| (self.quorum.min(set.len()), *count))
            .max_by_key(|(q, c)| q.saturating_sub(*c))
            .unwrap_or((self.quorum, 0))
    }
}
