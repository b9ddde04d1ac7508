//! The partition planner: previous assignment + new roles → new assignment.
//!
//! The problem is posed as one min-cost flow (solved in `flow.rs`):
//!
//! ```text
//!         +------------ forced: 1 per zone, if Z < RF -------------+
//!         |                                                        v
//! source -+- RF - forced -> partition p -- zone cap --> cell (p, zone z) -- 1 --> node v
//!                                                                 node v -- tiers --> sink
//! ```
//!
//! - `source → p` and `source → (p, z)` together carry RF units: every partition receives
//!   RF replicas.
//! - `p → (p, z)`, capacity `hi(z)`: at most `hi` replicas of `p` in zone `z`. When every
//!   zone must be used (fewer zones than RF), one unit per zone instead comes straight from
//!   the source (`source → (p, z)`, capacity 1) and `p` supplies only the other `RF − Z`.
//!   A maximum flow saturates every source edge, so every zone gets its replica.
//! - `(p, z) → v`, capacity 1: a node holds a partition at most once. Reward `KEEP_REWARD`
//!   when `v` already held `p`. Within a cell, edges are added in a fixed pseudo-random
//!   order per partition (`preference`).
//! - `v → sink` in five convex tiers around the node's ideal share (see [`ShareRange`]):
//!   outside the tolerance band costs `SHARE_WEIGHT` per unit, inside the band but off
//!   `[floor, ceil]` costs `BAND_COST` per unit, `[floor, ceil]` is free.
//!
//! The weights are strictly tiered, each larger than the most the next one can add up to:
//! tolerance band ≫ kept replicas ≫ closeness to the ideal. So the optimum
//! keeps every node within the band (always possible), then moves the fewest replicas, then
//! gets as close to the ideal as it can without moving more. With no previous assignment
//! nothing is kept, and every node lands in `[floor, ceil]`.
//!
//! Why the edge order: the solver breaks ties between equally good solutions by edge order.
//! In plain NodeId order, nodes' partition sets come out strongly correlated (the first
//! nodes get the same blocks), and a later removal or zone change then needs chains of
//! swaps (seen in tests: 80 extra moves out of 1280). Ordering by a fixed hash of
//! `(partition, node)` makes the sets look independent and keeps later movement close to
//! the unavoidable minimum. A hash *cost* would do the same but multiplies solver phases.

use super::flow::{EdgeRef, FlowGraph};
use super::ideal::{ZoneBounds, zones_of};
use super::{NodeId, NodeRole, PARTITION_COUNT};
use std::collections::BTreeMap;

/// Per-unit cost of a count inside the tolerance band but off `[floor, ceil]`.
const BAND_COST: i64 = 1;
/// Reward for keeping a replica where it is; exceeds the total band cost (a count deviates
/// by at most 2·256·5 units in total).
const KEEP_REWARD: i64 = 1 << 12;
/// Per-unit cost of a count outside the tolerance band; exceeds the total keep reward
/// (at most 256·5 kept replicas).
const SHARE_WEIGHT: i64 = 1 << 24;

/// Tolerance on a node's count around its ideal share: `max(2, 2% of ideal)` partitions.
fn share_tolerance(ideal: f64) -> f64 {
    (ideal * 0.02).max(2.0)
}

/// Integer count ranges around an ideal share, nested: `band.0 ≤ exact.0 ≤ exact.1 ≤ band.1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ShareRange {
    /// `[floor(ideal), ceil(ideal)]`: the free tier.
    exact: (i64, i64),
    /// Counts within [`share_tolerance`] of the ideal: the tier that costs `BAND_COST`.
    band: (i64, i64),
}

impl ShareRange {
    fn new(ideal: f64) -> Self {
        let full = PARTITION_COUNT as f64;
        let count = |x: f64| x.clamp(0.0, full) as i64;
        let tolerance = share_tolerance(ideal);
        ShareRange {
            exact: (count(ideal.floor()), count(ideal.ceil())),
            band: (count((ideal - tolerance).ceil()), count((ideal + tolerance).floor())),
        }
    }

    /// `(capacity, cost)` tiers of the `node → sink` edges; costs non-decreasing (convex).
    fn tiers(&self) -> [(i64, i64); 5] {
        let (low, floor, ceil, high) = (self.band.0, self.exact.0, self.exact.1, self.band.1);
        [
            (low, -SHARE_WEIGHT),
            (floor - low, -BAND_COST),
            (ceil - floor, 0),
            (high - ceil, BAND_COST),
            (PARTITION_COUNT as i64 - high, SHARE_WEIGHT),
        ]
    }
}

/// A hard constraint that an assignment breaks (only ever seen by `assert!` and tests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Violation {
    /// Partition without exactly RF distinct, known nodes.
    WrongReplicas { partition: usize, nodes: Vec<NodeId> },
    /// Partition spanning the wrong number of zones.
    WrongSpread { partition: usize, zones: usize, required: usize },
}

/// Computes the assignment for `roles` that stays closest to `previous` (see module doc).
///
/// `previous` may be empty (first layout) and may name nodes that no longer exist.
/// Requires `roles.len() >= replication_factor` and an ideal share for every node.
pub(crate) fn plan(
    roles: &BTreeMap<NodeId, NodeRole>,
    replication_factor: usize,
    ideal: &BTreeMap<NodeId, f64>,
    previous: &[Vec<NodeId>],
) -> Vec<Vec<NodeId>> {
    let (mut graph, placements, (source, sink)) =
        build_graph(roles, replication_factor, ideal, previous);
    let placed = graph.min_cost_max_flow(source, sink);
    let wanted = (replication_factor * PARTITION_COUNT) as i64;
    assert_eq!(placed, wanted, "planner left replicas unplaced");
    let mut assignment: Vec<Vec<NodeId>> = vec![Vec::new(); PARTITION_COUNT];
    for (p, node, edge) in placements {
        if graph.flow(edge) == 1 {
            assignment[p].push(node);
        }
    }
    for nodes in &mut assignment {
        nodes.sort_unstable();
    }
    if let Some(violation) = violation(roles, replication_factor, &assignment) {
        panic!("layout planner broke a hard constraint: {violation:?}");
    }
    assignment
}

/// A placement edge: partition, node, and the edge whose flow says "placed".
type Placement = (usize, NodeId, EdgeRef);

/// Builds the flow network of the module doc; returns it with its placement edges and
/// `(source, sink)`.
fn build_graph(
    roles: &BTreeMap<NodeId, NodeRole>,
    replication_factor: usize,
    ideal: &BTreeMap<NodeId, f64>,
    previous: &[Vec<NodeId>],
) -> (FlowGraph, Vec<Placement>, (usize, usize)) {
    let zones = zones_of(roles);
    let bounds = ZoneBounds::new(replication_factor, zones.len());
    let zone_count = zones.len();
    // Vertex numbering follows the picture left to right, as FlowGraph requires.
    let source = 0;
    let partition_vertex = |p: usize| 1 + p;
    let cell_vertex = |p: usize, z: usize| 1 + PARTITION_COUNT + p * zone_count + z;
    let first_node = 1 + PARTITION_COUNT * (1 + zone_count);
    let node_vertex: BTreeMap<NodeId, usize> =
        roles.keys().enumerate().map(|(i, n)| (*n, first_node + i)).collect();
    let sink = first_node + roles.len();
    let mut graph = FlowGraph::new(sink + 1);

    // Units forced into every zone (lower bound `lo`) bypass the partition vertex.
    let forced = bounds.lo as i64;
    let free = (replication_factor - bounds.lo * zone_count) as i64;
    let mut placements = Vec::new();
    for p in 0..PARTITION_COUNT {
        graph.add_edge(source, partition_vertex(p), free, 0);
        let held = previous.get(p).map(Vec::as_slice).unwrap_or_default();
        for (z, nodes) in zones.values().enumerate() {
            let cell = cell_vertex(p, z);
            if forced > 0 {
                graph.add_edge(source, cell, forced, 0);
            }
            let optional = bounds.hi_for(nodes.len()) as i64 - forced;
            if optional > 0 {
                graph.add_edge(partition_vertex(p), cell, optional, 0);
            }
            let mut ordered = nodes.clone();
            ordered.sort_by_key(|node| (preference(p, *node), *node));
            for node in &ordered {
                let cost = if held.contains(node) { -KEEP_REWARD } else { 0 };
                let edge = graph.add_edge(cell, node_vertex[node], 1, cost);
                placements.push((p, *node, edge));
            }
        }
    }
    for (node, &vertex) in &node_vertex {
        for (cap, cost) in ShareRange::new(ideal[node]).tiers() {
            if cap > 0 {
                graph.add_edge(vertex, sink, cap, cost);
            }
        }
    }
    (graph, placements, (source, sink))
}

/// Fixed pseudo-random rank of `node` for `partition` (see module doc): the SplitMix64
/// finaliser of both. Only the order of placement edges depends on it, never a cost.
fn preference(partition: usize, node: NodeId) -> u64 {
    let mut x = node.0 ^ (partition as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// First hard constraint `assignment` breaks, if any: every partition must have exactly RF
/// distinct nodes of `roles`, spanning exactly `min(RF, zone count)` zones.
pub(crate) fn violation(
    roles: &BTreeMap<NodeId, NodeRole>,
    replication_factor: usize,
    assignment: &[Vec<NodeId>],
) -> Option<Violation> {
    let bounds = ZoneBounds::new(replication_factor, zones_of(roles).len());
    for (partition, nodes) in assignment.iter().enumerate() {
        let mut distinct = nodes.clone();
        distinct.sort_unstable();
        distinct.dedup();
        let known = nodes.iter().all(|n| roles.contains_key(n));
        if distinct.len() != replication_factor || nodes.len() != replication_factor || !known {
            let nodes = nodes.clone();
            return Some(Violation::WrongReplicas { partition, nodes });
        }
        let mut zones: Vec<&str> = nodes.iter().map(|n| roles[n].zone.as_str()).collect();
        zones.sort_unstable();
        zones.dedup();
        if zones.len() != bounds.spread {
            let (zones, required) = (zones.len(), bounds.spread);
            return Some(Violation::WrongSpread { partition, zones, required });
        }
    }
    None
}
