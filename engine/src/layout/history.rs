//! The layout *history*: every layout version still in transition, and how far each node
//! has got in adopting the newest one. This is the gossiped, persisted state of
//! `layout::manager`; the protocol that drives it is described there.
//!
//! Three trackers, each a per-node maximum (`BTreeMap<NodeId, u64>`, merged by max):
//!
//! - `ack[n] = v`: node `n` includes version `v` (and every newer one it knows) in the
//!   replica sets of all its writes, and every write it started without `v` has finished.
//! - `sync[n] = v`: node `n` holds every entry and block of the partitions it is given in
//!   `v`, having pulled them from the older owners *after* every node acknowledged `v`.
//! - `sync_ack[n] = v`: node `n` reads from version `v` (it has seen every node synced).
//!
//! The trackers count over the *tracked* nodes: every node with a role in some stored
//! version. Versions below `min_stored` are dropped for good; a version is dropped once a
//! newer one is read by every tracked node (`sync_ack`), because until then some node may
//! still read from the older replica set and writes must keep reaching it.
//!
//! The merge is a product of CRDTs — a version-keyed union of `ClusterLayout`s (each merged
//! by its own CRDT), per-node maxima, and a maximum `min_stored` — followed by a prune that
//! depends only on the merged state, so it is commutative, associative and idempotent
//! (property-tested in `layout/history_tests.rs`).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{ClusterLayout, NodeId, Partition};

/// A node's advertised RPC address, stamped by the advertiser's clock (highest wins).
pub type StampedAddr = (u64, String);

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayoutHistory {
    /// Distinct versions, ascending, all at least `min_stored`. Empty until the node learns
    /// its first layout (a node started with only bootstrap peers).
    versions: Vec<ClusterLayout>,
    /// Versions below this were dropped and are never taken back from a stale peer.
    min_stored: u64,
    ack: BTreeMap<NodeId, u64>,
    sync: BTreeMap<NodeId, u64>,
    sync_ack: BTreeMap<NodeId, u64>,
    /// Where each node listens for RPC, so a node that joined through one bootstrap peer
    /// learns how to reach everybody.
    addrs: BTreeMap<NodeId, StampedAddr>,
}

/// Which tracker to advance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tracker {
    Ack,
    Sync,
    SyncAck,
}

impl LayoutHistory {
    /// A history holding `layout` if it was applied (version ≥ 1), else nothing.
    pub fn from_layout(layout: &ClusterLayout) -> Self {
        let mut history = LayoutHistory::default();
        if layout.version() > 0 {
            history.versions.push(layout.clone());
        }
        history.prune();
        history
    }

    /// Stored versions, oldest first.
    pub fn versions(&self) -> &[ClusterLayout] {
        &self.versions
    }

    /// The newest version, if any layout is known.
    pub fn current(&self) -> Option<&ClusterLayout> {
        self.versions.last()
    }

    /// Mutable newest version (staging changes).
    pub fn current_mut(&mut self) -> Option<&mut ClusterLayout> {
        self.versions.last_mut()
    }

    /// Adds a newly applied version; it must be newer than every stored one.
    pub fn push(&mut self, layout: ClusterLayout) {
        let newest = self.current().map_or(0, ClusterLayout::version);
        assert!(layout.version() > newest, "pushed layout {} ≤ {newest}", layout.version());
        self.versions.push(layout);
        self.prune();
    }

    /// Nodes with a role in some stored version.
    pub fn tracked_nodes(&self) -> BTreeSet<NodeId> {
        self.versions.iter().flat_map(|l| l.roles().keys().copied()).collect()
    }

    fn tracker(&self, which: Tracker) -> &BTreeMap<NodeId, u64> {
        match which {
            Tracker::Ack => &self.ack,
            Tracker::Sync => &self.sync,
            Tracker::SyncAck => &self.sync_ack,
        }
    }

    /// `node`'s value of a tracker (0 if it never reported).
    pub fn get(&self, which: Tracker, node: NodeId) -> u64 {
        self.tracker(which).get(&node).copied().unwrap_or(0)
    }

    /// Minimum of a tracker over the tracked nodes (0 if none is tracked).
    pub fn min(&self, which: Tracker) -> u64 {
        let nodes = self.tracked_nodes();
        nodes.iter().map(|&n| self.get(which, n)).min().unwrap_or(0)
    }

    /// Raises `node`'s tracker to `version` (never lowers it).
    pub fn advance(&mut self, which: Tracker, node: NodeId, version: u64) {
        let map = match which {
            Tracker::Ack => &mut self.ack,
            Tracker::Sync => &mut self.sync,
            Tracker::SyncAck => &mut self.sync_ack,
        };
        let entry = map.entry(node).or_insert(0);
        *entry = (*entry).max(version);
        self.prune();
    }

    /// Records where `node` listens (an older stamp than the stored one is ignored).
    pub fn set_addr(&mut self, node: NodeId, stamp: u64, addr: String) {
        let new = (stamp, addr);
        match self.addrs.get(&node) {
            Some(old) if *old >= new => {}
            _ => {
                self.addrs.insert(node, new);
            }
        }
        self.prune();
    }

    /// Advertised RPC addresses.
    pub fn addrs(&self) -> impl Iterator<Item = (NodeId, &str)> {
        self.addrs.iter().map(|(n, (_, a))| (*n, a.as_str()))
    }

    /// The version reads use: the newest one every tracked node has synced, or the oldest
    /// stored one while none is.
    pub fn read_version(&self) -> Option<&ClusterLayout> {
        let synced = self.min(Tracker::Sync);
        self.versions.iter().rev().find(|l| l.version() <= synced).or(self.versions.first())
    }

    /// Nodes a read of `partition` asks.
    pub fn read_nodes(&self, partition: Partition) -> Vec<NodeId> {
        self.read_version().map(|l| l.nodes_of(partition).to_vec()).unwrap_or_default()
    }

    /// Replica sets a write of `partition` must reach a quorum in: one per stored version,
    /// identical sets once.
    pub fn write_sets(&self, partition: Partition) -> Vec<Vec<NodeId>> {
        let mut sets: Vec<Vec<NodeId>> = Vec::new();
        for layout in &self.versions {
            let set = layout.nodes_of(partition).to_vec();
            if !sets.contains(&set) {
                sets.push(set);
            }
        }
        sets
    }

    /// Every node that holds `partition` in some stored version: the read set first, then
    /// the others in version order (where a block may still be found).
    pub fn all_nodes(&self, partition: Partition) -> Vec<NodeId> {
        let mut nodes = self.read_nodes(partition);
        for layout in &self.versions {
            for &n in layout.nodes_of(partition) {
                if !nodes.contains(&n) {
                    nodes.push(n);
                }
            }
        }
        nodes
    }

    /// Partitions `node` holds in some stored version.
    pub fn partitions_of_any(&self, node: NodeId) -> BTreeSet<Partition> {
        self.versions.iter().flat_map(|l| l.partitions_of(node)).collect()
    }

    /// Gossip merge (see the module doc for why it is a CRDT).
    pub fn merge(&mut self, other: &LayoutHistory) {
        self.min_stored = self.min_stored.max(other.min_stored);
        for theirs in &other.versions {
            match self.versions.binary_search_by_key(&theirs.version(), ClusterLayout::version) {
                Ok(i) => self.versions[i].merge(theirs),
                Err(i) => self.versions.insert(i, theirs.clone()),
            }
        }
        for which in [Tracker::Ack, Tracker::Sync, Tracker::SyncAck] {
            for (&node, &v) in other.tracker(which) {
                let map = match which {
                    Tracker::Ack => &mut self.ack,
                    Tracker::Sync => &mut self.sync,
                    Tracker::SyncAck => &mut self.sync_ack,
                };
                let entry = map.entry(node).or_insert(0);
                *entry = (*entry).max(v);
            }
        }
        for (&node, (stamp, addr)) in &other.addrs {
            self.set_addr(node, *stamp, addr.clone());
        }
        self.prune();
    }

    /// Drops the versions every tracked node has stopped reading from, keeping the newest.
    fn prune(&mut self) {
        let read_everywhere = self.min(Tracker::SyncAck);
        if let Some(v) =
            self.versions.iter().rev().map(ClusterLayout::version).find(|&v| v <= read_everywhere)
        {
            self.min_stored = self.min_stored.max(v);
        }
        let newest = self.current().map_or(0, ClusterLayout::version);
        let keep_from = self.min_stored.min(newest);
        self.versions.retain(|l| l.version() >= keep_from);
        // Canonical form: `min_stored` is at least the oldest stored version, so that two
        // histories holding the same versions compare equal however they got there.
        if let Some(oldest) = self.versions.first() {
            self.min_stored = self.min_stored.max(oldest.version());
        }
    }

    /// A hash of the whole history: equal digests, nothing to exchange.
    pub fn digest(&self) -> [u8; 32] {
        *blake3::hash(&crate::codec::encode(self)).as_bytes()
    }
}

impl crate::crdt::Crdt for LayoutHistory {
    fn merge(&mut self, other: &Self) {
        LayoutHistory::merge(self, other);
    }
}
