//! Cluster layout: which nodes store which of the 256 partitions.
//!
//! An object's partition is the first byte of its 32-byte hash. The layout maps every
//! partition to `replication_factor` (RF) nodes. Operators *stage* role changes (assign,
//! update, remove) and then *apply* them, which computes a new assignment and bumps the
//! version. Layouts spread by gossip; [`ClusterLayout::merge`] keeps the highest version.
//!
//! # What an assignment guarantees
//!
//! Hard constraints, asserted (in release too) after every computation:
//!
//! - every partition has exactly RF distinct nodes;
//! - those nodes span exactly `min(RF, Z)` zones, where `Z` is the number of zones. So with
//!   `Z ≥ RF` every replica is in its own zone; with fewer zones every zone is used and one
//!   zone holds at most `RF − Z + 1` replicas of a partition.
//!
//! Proportionality: each node gets an *ideal* share, the capacity-proportional split of the
//! `256·RF` replicas after water-filling the limits (a node holds at most 256; a zone holds
//! between `256·lo` and `256·hi`, `lo`/`hi` being the per-partition zone bounds above).
//! [`ClusterLayout::ideal_shares`] returns it. The bounds, both asserted by the tests:
//!
//! - **always**: `|count − ideal| ≤ max(2, 2% of ideal)` for every node (the *band*);
//! - **first layout** (no previous assignment): `floor(ideal) ≤ count ≤ ceil(ideal)`.
//!
//! `[floor, ceil]` is always reachable: giving every partition the same fractional share
//! `ideal/256` of every node satisfies all constraints, and flow polytopes with integer
//! bounds have integer points, so an integral assignment with counts in `[floor, ceil]`
//! exists. The band is wider on purpose: it lets a change leave a node a partition or two
//! off its ideal instead of moving extra data to fix that.
//!
//! Movement: the planner moves the fewest replicas that any assignment meeting the hard
//! constraints and the band needs, starting from the previous assignment, and only then
//! gets counts as close to the ideal as it can without moving more. Replicas move because
//! their node was removed, they break a zone constraint, or their node would leave its
//! band (plus, rarely, the swaps such moves force on other partitions). Tests
//! check: adding a node to equal nodes moves exactly what the new node receives (at most
//! `ceil` of its ideal); on random clusters an added node costs at most its ideal plus 5% of
//! `256·RF`, and a removed node what it held plus 5% of `256·RF`.
//!
//! # Changing the layout of a running cluster
//!
//! `history.rs` keeps the versions still in transition with per-node progress trackers,
//! `manager.rs` persists it and gives the tables their replica sets (and states the
//! transition protocol and its invariants), `worker.rs` gossips it and drives a node
//! through a transition.
//!
//! # How
//!
//! `ideal.rs` computes the shares by two-level water-filling (zones, then nodes inside a
//! zone). `plan.rs` poses the assignment as one min-cost flow: zone limits are capacities
//! (every zone's forced replica comes straight from the source), and costs are tiered:
//! staying in the band ≫ keeping replicas ≫ closeness to the ideal. `flow.rs` solves it
//! exactly, so these are optima, not heuristic results. The computation is a pure function
//! of (previous assignment, roles, RF): no clock, no randomness (ties are broken by a fixed
//! hash of partition and NodeId), and every iteration is over sorted maps or index ranges.

#[cfg(test)]
mod change_tests;
mod flow;
pub mod history;
#[cfg(test)]
mod history_tests;
mod ideal;
pub mod manager;
mod plan;
#[cfg(test)]
mod tests;
pub mod worker;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Bits of the hash that select a partition.
pub const PARTITION_BITS: u32 = 8;
/// Number of partitions; every object hash falls into exactly one.
pub const PARTITION_COUNT: usize = 1 << PARTITION_BITS;
/// Largest supported replication factor.
pub const REPLICATION_FACTOR_MAX: usize = 5;

/// Index of a partition, `0..PARTITION_COUNT`.
pub type Partition = u8;

/// Partition an object hash belongs to: its first byte.
pub fn partition_of(hash: &[u8; 32]) -> Partition {
    hash[0]
}

/// Identity of a storage node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub u64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// What a node contributes: where it is and how much it can store.
///
/// `Ord` exists only so that gossip can pick between conflicting staged roles
/// deterministically; the order means nothing else.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeRole {
    /// Failure domain (datacenter, rack); replicas of a partition prefer distinct zones.
    pub zone: String,
    /// Relative storage capacity, any unit as long as all nodes use the same; must be > 0.
    pub capacity: u64,
    /// Free-form operator labels; the planner ignores them.
    pub tags: Vec<String>,
}

/// Why a role cannot be staged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleProblem {
    /// Capacity 0 would give the node no share; remove the node instead.
    ZeroCapacity,
    /// Zone names drive the spread constraint; an empty one is almost surely a mistake.
    EmptyZone,
}

/// Errors from staging or applying layout changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// The layout would have fewer nodes than replicas per partition.
    NotEnoughNodes { needed: usize, available: usize },
    /// Replication factor outside `1..=REPLICATION_FACTOR_MAX`.
    BadReplicationFactor { replication_factor: usize },
    /// `apply_staged` was asked for a version other than `current + 1`.
    VersionMismatch { expected: u64, current: u64 },
    /// A staged role is invalid.
    BadRole { node: NodeId, problem: RoleProblem },
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayoutError::NotEnoughNodes { needed, available } => {
                write!(f, "layout needs at least {needed} nodes (one per replica), has {available}")
            }
            LayoutError::BadReplicationFactor { replication_factor } => write!(
                f,
                "replication factor {replication_factor} is outside 1..={REPLICATION_FACTOR_MAX}"
            ),
            LayoutError::VersionMismatch { expected, current } => write!(
                f,
                "asked to apply layout version {expected}, but current version is {current} \
                 (next is {})",
                current + 1
            ),
            LayoutError::BadRole { node, problem } => {
                write!(f, "bad role for node {node}: {problem:?}")
            }
        }
    }
}

impl std::error::Error for LayoutError {}

/// What applying staged changes does to the assignment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LayoutDiff {
    /// Partitions whose node set changed.
    pub moved_partitions: usize,
    /// Replicas that must be copied to a node that did not hold them (sum over partitions
    /// of nodes added). This is the data movement the change costs.
    pub moved_replicas: usize,
    /// Partition count per node, `(before, after)`, for every node in either layout.
    pub per_node: BTreeMap<NodeId, (usize, usize)>,
}

/// The replicated cluster layout: applied roles, staged changes and the assignment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterLayout {
    /// 0 until the first layout is applied.
    version: u64,
    /// Replicas per partition, `1..=REPLICATION_FACTOR_MAX`.
    replication_factor: usize,
    /// Roles of the nodes in the applied layout.
    roles: BTreeMap<NodeId, NodeRole>,
    /// Pending changes: `Some` assigns or updates a role, `None` removes the node.
    staged: BTreeMap<NodeId, Option<NodeRole>>,
    /// `PARTITION_COUNT` sorted lists of RF distinct nodes; empty while version is 0.
    assignment: Vec<Vec<NodeId>>,
}

impl ClusterLayout {
    /// An empty layout (version 0) with the given replication factor.
    pub fn new(replication_factor: usize) -> Result<Self, LayoutError> {
        if !(1..=REPLICATION_FACTOR_MAX).contains(&replication_factor) {
            return Err(LayoutError::BadReplicationFactor { replication_factor });
        }
        Ok(ClusterLayout {
            version: 0,
            replication_factor,
            roles: BTreeMap::new(),
            staged: BTreeMap::new(),
            assignment: Vec::new(),
        })
    }

    /// Version of the applied layout; 0 if none was applied yet.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Replicas per partition.
    pub fn replication_factor(&self) -> usize {
        self.replication_factor
    }

    /// Roles in the applied layout, by node.
    pub fn roles(&self) -> &BTreeMap<NodeId, NodeRole> {
        &self.roles
    }

    /// Pending changes, by node (`None` = removal).
    pub fn staged(&self) -> &BTreeMap<NodeId, Option<NodeRole>> {
        &self.staged
    }

    /// Stages assigning (or updating) `node`'s role.
    pub fn stage_assign(&mut self, node: NodeId, role: NodeRole) -> Result<(), LayoutError> {
        let problem = if role.capacity == 0 {
            Some(RoleProblem::ZeroCapacity)
        } else if role.zone.is_empty() {
            Some(RoleProblem::EmptyZone)
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(LayoutError::BadRole { node, problem });
        }
        self.staged.insert(node, Some(role));
        Ok(())
    }

    /// Stages removing `node`; removing a node that is not in the layout is a no-op.
    pub fn stage_remove(&mut self, node: NodeId) {
        self.staged.insert(node, None);
    }

    /// Drops every staged change.
    pub fn revert_staged(&mut self) {
        self.staged.clear();
    }

    /// The layout that applying the staged changes would produce, and what it would move.
    /// `self` is unchanged.
    pub fn preview(&self) -> Result<(ClusterLayout, LayoutDiff), LayoutError> {
        let mut roles = self.roles.clone();
        for (node, change) in &self.staged {
            match change {
                Some(role) => roles.insert(*node, role.clone()),
                None => roles.remove(node),
            };
        }
        if roles.len() < self.replication_factor {
            return Err(LayoutError::NotEnoughNodes {
                needed: self.replication_factor,
                available: roles.len(),
            });
        }
        let ideal = ideal::ideal_shares(&roles, self.replication_factor);
        let assignment = plan::plan(&roles, self.replication_factor, &ideal, &self.assignment);
        let next = ClusterLayout {
            version: self.version + 1,
            replication_factor: self.replication_factor,
            roles,
            staged: BTreeMap::new(),
            assignment,
        };
        let diff = diff(&self.assignment, &next.assignment);
        Ok((next, diff))
    }

    /// Applies the staged changes as version `expected_version`, which must be exactly one
    /// more than the current version (so two operators cannot both apply "the next one"
    /// unknowingly). On error nothing changes.
    pub fn apply_staged(&mut self, expected_version: u64) -> Result<LayoutDiff, LayoutError> {
        if expected_version != self.version + 1 {
            return Err(LayoutError::VersionMismatch {
                expected: expected_version,
                current: self.version,
            });
        }
        let (next, diff) = self.preview()?;
        debug_assert_eq!(next.version, expected_version);
        *self = next;
        Ok(diff)
    }

    /// Nodes storing `partition`, sorted; empty while no layout is applied.
    pub fn nodes_of(&self, partition: Partition) -> &[NodeId] {
        self.assignment.get(usize::from(partition)).map(Vec::as_slice).unwrap_or_default()
    }

    /// Partitions stored by `node`, ascending.
    pub fn partitions_of(&self, node: NodeId) -> Vec<Partition> {
        (0..=Partition::MAX).filter(|&p| self.nodes_of(p).contains(&node)).collect()
    }

    /// Ideal (fractional) partition count of every applied node; actual counts stay within
    /// `max(2, 2%)` of it (see the module doc). Empty while no layout is applied.
    pub fn ideal_shares(&self) -> BTreeMap<NodeId, f64> {
        if self.version == 0 {
            return BTreeMap::new();
        }
        ideal::ideal_shares(&self.roles, self.replication_factor)
    }

    /// Gossip merge: the higher version wins entirely.
    ///
    /// At equal versions (normally identical layouts; different only if two operators
    /// applied conflicting changes at once) the applied part with the larger
    /// `(replication_factor, roles, assignment)` wins, and the staged maps are merged per
    /// node keeping the larger entry (`None < Some`, then `NodeRole`'s order). This is a
    /// lexicographic product of a version chain with a per-key max, hence commutative,
    /// associative and idempotent.
    pub fn merge(&mut self, other: &ClusterLayout) {
        if other.version > self.version {
            *self = other.clone();
            return;
        }
        if other.version < self.version {
            return;
        }
        let ours = (self.replication_factor, &self.roles, &self.assignment);
        let theirs = (other.replication_factor, &other.roles, &other.assignment);
        if theirs > ours {
            self.replication_factor = other.replication_factor;
            self.roles = other.roles.clone();
            self.assignment = other.assignment.clone();
        }
        for (node, change) in &other.staged {
            let entry = self.staged.entry(*node).or_insert_with(|| change.clone());
            if change > entry {
                *entry = change.clone();
            }
        }
    }
}

impl crate::crdt::Crdt for ClusterLayout {
    fn merge(&mut self, other: &Self) {
        ClusterLayout::merge(self, other);
    }
}

/// Movement between two assignments (either may be empty, meaning "no layout").
fn diff(before: &[Vec<NodeId>], after: &[Vec<NodeId>]) -> LayoutDiff {
    let mut out = LayoutDiff::default();
    for p in 0..PARTITION_COUNT {
        let old = before.get(p).map(Vec::as_slice).unwrap_or_default();
        let new = after.get(p).map(Vec::as_slice).unwrap_or_default();
        let added = new.iter().filter(|n| !old.contains(n)).count();
        let removed = old.iter().filter(|n| !new.contains(n)).count();
        out.moved_replicas += added;
        out.moved_partitions += usize::from(added + removed > 0);
        for node in old {
            out.per_node.entry(*node).or_default().0 += 1;
        }
        for node in new {
            out.per_node.entry(*node).or_default().1 += 1;
        }
    }
    out
}
