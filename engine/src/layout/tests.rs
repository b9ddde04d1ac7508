//! Layout tests: seeded random clusters checked against independent re-implementations of
//! the guarantees in the module doc, plus worked examples.
//!
//! Replay one seed by narrowing the `for seed in ...` range of the failing test; every
//! assertion message names the seed.

use super::*;
use crate::crdt::assert_crdt_laws;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

const SEEDS: u64 = 200;

fn role(zone: &str, capacity: u64) -> NodeRole {
    NodeRole { zone: zone.to_string(), capacity, tags: Vec::new() }
}

fn below(rng: &mut ChaCha8Rng, n: usize) -> usize {
    (rng.next_u64() % n as u64) as usize
}

/// A cluster of 1–9 nodes over 1–5 zones, capacities 1–10 (scaled), RF 1–5 (≤ nodes).
fn random_cluster(rng: &mut ChaCha8Rng) -> (usize, Vec<(NodeId, NodeRole)>) {
    let node_count = 1 + below(rng, 9);
    let zone_count = 1 + below(rng, 5);
    let scale = [1, 1000, 1 << 40][below(rng, 3)];
    let nodes = (0..node_count)
        .map(|i| {
            // High bits random so NodeId order differs from creation order.
            let id = NodeId((rng.next_u64() << 8) | i as u64);
            let zone = format!("zone-{}", below(rng, zone_count));
            (id, role(&zone, scale * (1 + below(rng, 10) as u64)))
        })
        .collect();
    let rf = 1 + below(rng, node_count.min(REPLICATION_FACTOR_MAX));
    (rf, nodes)
}

fn applied(rf: usize, nodes: &[(NodeId, NodeRole)]) -> ClusterLayout {
    let mut layout = ClusterLayout::new(rf).unwrap();
    for (node, role) in nodes {
        layout.stage_assign(*node, role.clone()).unwrap();
    }
    layout.apply_staged(1).unwrap();
    layout
}

/// Independent check of the hard constraints.
fn assert_hard_constraints(layout: &ClusterLayout, seed: u64) {
    let rf = layout.replication_factor();
    let mut zones: Vec<&str> = layout.roles().values().map(|r| r.zone.as_str()).collect();
    zones.sort_unstable();
    zones.dedup();
    let spread = rf.min(zones.len());
    for p in 0..=Partition::MAX {
        let nodes = layout.nodes_of(p);
        let mut distinct = nodes.to_vec();
        distinct.dedup(); // nodes_of is sorted
        assert_eq!(distinct.len(), rf, "seed {seed}: partition {p} has {nodes:?}");
        let mut used: Vec<&str> = nodes.iter().map(|n| layout.roles()[n].zone.as_str()).collect();
        used.sort_unstable();
        used.dedup();
        assert_eq!(used.len(), spread, "seed {seed}: partition {p} spans {used:?}");
    }
}

/// How close to its ideal share a node's count must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bound {
    /// `floor(ideal) ≤ count ≤ ceil(ideal)`: first layouts, computed from scratch.
    Exact,
    /// `|count − ideal| ≤ max(2, 2% of ideal)`: layouts computed from a previous one.
    Tolerance,
}

/// The stated bounds on every node's partition count.
fn assert_share_bound(layout: &ClusterLayout, bound: Bound, seed: u64) {
    let ideal = layout.ideal_shares();
    assert_eq!(ideal.len(), layout.roles().len(), "seed {seed}");
    for (node, share) in &ideal {
        let count = layout.partitions_of(*node).len() as f64;
        let within = match bound {
            Bound::Exact => share.floor() <= count && count <= share.ceil(),
            Bound::Tolerance => (count - share).abs() <= (share * 0.02).max(2.0) + 1e-9,
        };
        assert!(within, "seed {seed}: node {node} holds {count}, ideal {share}, {bound:?}");
    }
}

/// Independent check that the ideal shares are a capacity-proportional water-filling: they
/// sum to 256·RF, respect node and zone limits, and wherever a limit does not bind, the
/// share per unit of capacity is the same (and larger than where an upper limit binds).
fn assert_ideal_is_water_filled(layout: &ClusterLayout, seed: u64) {
    let (rf, roles, ideal) = (layout.replication_factor(), layout.roles(), layout.ideal_shares());
    let eps = 1e-6;
    let full = PARTITION_COUNT as f64;
    let total: f64 = ideal.values().sum();
    assert!((total - full * rf as f64).abs() < eps, "seed {seed}: total {total}");
    let mut zones: BTreeMap<&str, Vec<NodeId>> = BTreeMap::new();
    for (node, role) in roles {
        zones.entry(role.zone.as_str()).or_default().push(*node);
    }
    let zone_count = zones.len();
    let (lo, hi) = if zone_count < rf { (1, rf - zone_count + 1) } else { (0, 1) };
    // Free rates (share / capacity of uncapped nodes) of zones whose total is not clamped.
    let mut free_rates = Vec::new();
    for nodes in zones.values() {
        let zone_total: f64 = nodes.iter().map(|n| ideal[n]).sum();
        let (zone_lo, zone_hi) = (full * lo as f64, full * hi.min(nodes.len()) as f64);
        assert!(zone_total > zone_lo - eps && zone_total < zone_hi + eps, "seed {seed}");
        let rate = |n: &NodeId| ideal[n] / roles[n].capacity as f64;
        let uncapped: Vec<f64> =
            nodes.iter().filter(|n| ideal[*n] < full - eps).map(rate).collect();
        for r in &uncapped {
            assert!((r / uncapped[0] - 1.0).abs() < eps, "seed {seed}: unequal rates in zone");
        }
        for n in nodes.iter().filter(|n| ideal[*n] >= full - eps) {
            let wanted = uncapped.first().map_or(f64::INFINITY, |r| r * roles[n].capacity as f64);
            assert!(wanted >= full - eps, "seed {seed}: node {n} capped without cause");
        }
        let clamped = zone_total < zone_lo + eps || zone_total > zone_hi - eps;
        if let (false, Some(r)) = (clamped, uncapped.first()) {
            free_rates.push(*r);
        }
    }
    for r in &free_rates {
        assert!((r / free_rates[0] - 1.0).abs() < eps, "seed {seed}: zones disagree on rate");
    }
}

#[test]
fn random_layouts_meet_constraints_and_share_bound() {
    for seed in 0..SEEDS {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (rf, nodes) = random_cluster(&mut rng);
        let layout = applied(rf, &nodes);
        assert_hard_constraints(&layout, seed);
        assert_share_bound(&layout, Bound::Exact, seed);
        assert_ideal_is_water_filled(&layout, seed);
    }
}

/// Movement slack allowed on top of the unavoidable part: 5% of all replicas.
fn slack(rf: usize) -> usize {
    (PARTITION_COUNT * rf).div_ceil(20)
}

#[test]
fn adding_a_node_moves_about_its_share() {
    for seed in 0..SEEDS {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (rf, nodes) = random_cluster(&mut rng);
        let mut layout = applied(rf, &nodes);
        let new_node = NodeId(u64::MAX - seed);
        let zone = format!("zone-{}", below(&mut rng, 6));
        let capacity = nodes[0].1.capacity * (1 + below(&mut rng, 10) as u64);
        layout.stage_assign(new_node, role(&zone, capacity)).unwrap();
        let diff = layout.apply_staged(2).unwrap();
        assert_hard_constraints(&layout, seed);
        assert_share_bound(&layout, Bound::Tolerance, seed);
        let share = layout.ideal_shares()[&new_node].ceil() as usize;
        assert!(
            diff.moved_replicas <= share + slack(rf),
            "seed {seed}: moved {} for a new share of {share}",
            diff.moved_replicas
        );
    }
}

#[test]
fn removing_a_node_moves_about_what_it_held() {
    for seed in 0..SEEDS {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (rf, mut nodes) = random_cluster(&mut rng);
        nodes.push((NodeId(u64::MAX), role("zone-0", 5))); // keep ≥ RF nodes after removal
        let mut layout = applied(rf, &nodes);
        let (gone, _) = nodes[below(&mut rng, nodes.len())];
        let held = layout.partitions_of(gone).len();
        layout.stage_remove(gone);
        let diff = layout.apply_staged(2).unwrap();
        assert_hard_constraints(&layout, seed);
        assert_share_bound(&layout, Bound::Tolerance, seed);
        assert!(layout.partitions_of(gone).is_empty(), "seed {seed}");
        assert!(
            diff.moved_replicas <= held + slack(rf),
            "seed {seed}: moved {} after removing a node holding {held}",
            diff.moved_replicas
        );
    }
}

#[test]
fn changing_capacities_keeps_constraints_and_bound() {
    for seed in 0..SEEDS / 3 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (rf, nodes) = random_cluster(&mut rng);
        let mut layout = applied(rf, &nodes);
        for (node, old) in &nodes {
            if below(&mut rng, 2) == 0 {
                continue;
            }
            let zone = format!("zone-{}", below(&mut rng, 3));
            let changed = role(&zone, old.capacity * (1 + below(&mut rng, 4) as u64));
            layout.stage_assign(*node, changed).unwrap();
        }
        layout.apply_staged(2).unwrap();
        assert_hard_constraints(&layout, seed);
        assert_share_bound(&layout, Bound::Tolerance, seed);
    }
}

#[test]
fn adding_one_node_to_equal_nodes_moves_only_its_share() {
    for n in 1..=8_u64 {
        for rf in 1..=n.min(3) as usize {
            let nodes: Vec<_> = (0..n).map(|i| (NodeId(i), role("dc", 10))).collect();
            let mut layout = applied(rf, &nodes);
            layout.stage_assign(NodeId(n), role("dc", 10)).unwrap();
            let diff = layout.apply_staged(2).unwrap();
            let share = layout.ideal_shares()[&NodeId(n)];
            // Only the new node gains; rounding lets it take the ceiling at most.
            assert!(diff.moved_replicas <= share.ceil() as usize, "n {n}, rf {rf}: {diff:?}");
            assert_eq!(diff.moved_replicas, layout.partitions_of(NodeId(n)).len());
        }
    }
}

#[test]
fn planning_is_deterministic_and_order_independent() {
    for seed in 0..SEEDS / 3 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (rf, nodes) = random_cluster(&mut rng);
        let forward = applied(rf, &nodes);
        let reversed: Vec<_> = nodes.iter().rev().cloned().collect();
        assert_eq!(forward, applied(rf, &reversed), "seed {seed}");
        let (again, _) = forward.clone().preview().unwrap();
        assert_eq!(again, forward.preview().unwrap().0, "seed {seed}");
    }
}

#[test]
fn rebalancing_an_unchanged_layout_moves_nothing() {
    for seed in 0..SEEDS / 3 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (rf, nodes) = random_cluster(&mut rng);
        let mut layout = applied(rf, &nodes);
        let diff = layout.apply_staged(2).unwrap();
        assert_eq!((diff.moved_replicas, diff.moved_partitions), (0, 0), "seed {seed}");
    }
}

#[test]
fn apply_staged_requires_the_next_version() {
    let mut layout = ClusterLayout::new(1).unwrap();
    layout.stage_assign(NodeId(1), role("a", 1)).unwrap();
    let before = layout.clone();
    let err = layout.apply_staged(2).unwrap_err();
    assert_eq!(err, LayoutError::VersionMismatch { expected: 2, current: 0 });
    assert_eq!(layout, before, "a failed apply must change nothing");
    assert!(layout.apply_staged(1).is_ok());
    assert_eq!((layout.version(), layout.staged().len()), (1, 0));
    let err = layout.apply_staged(1).unwrap_err();
    assert_eq!(err, LayoutError::VersionMismatch { expected: 1, current: 1 });
    assert!(err.to_string().contains("next is 2"), "{err}");
}

#[test]
fn preview_leaves_the_layout_unchanged() {
    let mut layout = ClusterLayout::new(2).unwrap();
    layout.stage_assign(NodeId(1), role("a", 1)).unwrap();
    layout.stage_assign(NodeId(2), role("b", 1)).unwrap();
    let before = layout.clone();
    let (next, diff) = layout.preview().unwrap();
    assert_eq!(layout, before);
    assert_eq!((next.version(), diff.moved_replicas, diff.moved_partitions), (1, 512, 256));
    assert_eq!(diff.per_node[&NodeId(1)], (0, 256));
}

#[test]
fn invalid_inputs_are_typed_errors() {
    assert_eq!(
        ClusterLayout::new(0).unwrap_err(),
        LayoutError::BadReplicationFactor { replication_factor: 0 }
    );
    assert!(ClusterLayout::new(6).is_err());
    let mut layout = ClusterLayout::new(3).unwrap();
    let zero = layout.stage_assign(NodeId(7), role("a", 0)).unwrap_err();
    let problem = RoleProblem::ZeroCapacity;
    assert_eq!(zero, LayoutError::BadRole { node: NodeId(7), problem });
    let empty = layout.stage_assign(NodeId(7), role("", 3)).unwrap_err();
    let problem = RoleProblem::EmptyZone;
    assert_eq!(empty, LayoutError::BadRole { node: NodeId(7), problem });
    layout.stage_assign(NodeId(1), role("a", 1)).unwrap();
    layout.stage_assign(NodeId(2), role("a", 1)).unwrap();
    let short = layout.apply_staged(1).unwrap_err();
    assert_eq!(short, LayoutError::NotEnoughNodes { needed: 3, available: 2 });
    layout.revert_staged();
    assert!(layout.staged().is_empty());
}

#[test]
fn capacities_one_to_four_split_proportionally() {
    let nodes: Vec<_> = (1..=4).map(|i| (NodeId(i), role(&format!("z{i}"), i))).collect();
    let layout = applied(1, &nodes);
    let counts: Vec<usize> = (1..=4).map(|i| layout.partitions_of(NodeId(i)).len()).collect();
    // Ideal 25.6, 51.2, 76.8, 102.4.
    assert_eq!(counts.iter().sum::<usize>(), 256);
    for (count, ideal) in counts.iter().zip([25.6, 51.2, 76.8, 102.4]) {
        assert!((*count as f64 - ideal).abs() < 1.0, "{counts:?}");
    }
}

#[test]
fn fewer_zones_than_replicas_uses_every_zone() {
    // RF 3 over 2 zones: zone "small" must hold one replica of every partition even though
    // its capacity alone would earn it far less.
    let nodes = [
        (NodeId(1), role("big", 100)),
        (NodeId(2), role("big", 100)),
        (NodeId(3), role("big", 100)),
        (NodeId(4), role("small", 1)),
    ];
    let layout = applied(3, &nodes);
    assert_hard_constraints(&layout, 0);
    assert_share_bound(&layout, Bound::Exact, 0);
    assert_eq!(layout.partitions_of(NodeId(4)).len(), 256);
    assert_eq!(layout.ideal_shares()[&NodeId(1)], 512.0 / 3.0);
}

#[test]
fn small_helpers() {
    let mut hash = [0_u8; 32];
    hash[0] = 0xab;
    hash[1] = 0xff;
    assert_eq!(partition_of(&hash), 0xab);
    assert_eq!(NodeId(0xbeef).to_string(), "000000000000beef");
    let layout = ClusterLayout::new(2).unwrap();
    assert!(layout.nodes_of(3).is_empty() && layout.ideal_shares().is_empty());
    assert_eq!(PARTITION_COUNT, 1 << PARTITION_BITS);
}

/// A few distinct applied layouts (versions 0–2, differing roles) to draw merge states from.
fn layout_pool() -> Vec<ClusterLayout> {
    let mut pool = vec![ClusterLayout::new(2).unwrap()];
    for variant in 0..4_u64 {
        let mut layout = ClusterLayout::new(2).unwrap();
        for i in 0..3 {
            let zone = format!("z{}", (i + variant) % 2);
            layout.stage_assign(NodeId(i), role(&zone, 1 + variant)).unwrap();
        }
        layout.apply_staged(1).unwrap();
        if variant % 2 == 1 {
            layout.stage_assign(NodeId(9), role("z0", 1)).unwrap();
            layout.apply_staged(2).unwrap();
        }
        pool.push(layout);
    }
    pool
}

#[test]
fn merge_obeys_crdt_laws() {
    let pool = layout_pool();
    assert_crdt_laws("ClusterLayout", 300, |rng| {
        let mut layout = pool[below(rng, pool.len())].clone();
        for _ in 0..below(rng, 4) {
            let node = NodeId(below(rng, 3) as u64);
            match below(rng, 3) {
                0 => layout.stage_remove(node),
                _ => layout.stage_assign(node, role("z0", 1 + below(rng, 2) as u64)).unwrap(),
            }
        }
        layout
    });
}

#[test]
fn merge_takes_the_higher_version_whole() {
    let pool = layout_pool();
    let (mut old, new) = (pool[1].clone(), pool[2].clone());
    old.stage_remove(NodeId(0));
    old.merge(&new);
    assert_eq!(old, new, "a newer layout replaces staged changes of an older one");
}

#[test]
fn larger_cluster_stays_within_bounds() {
    // 40 nodes over 5 zones, RF 3: well past the random tests' sizes, as a production-like
    // sanity check (and a guard on planner running time).
    let nodes: Vec<_> =
        (0..40_u64).map(|i| (NodeId(i * 7919), role(&format!("dc{}", i % 5), 1 + i % 7))).collect();
    let mut layout = applied(3, &nodes);
    assert_hard_constraints(&layout, 0);
    assert_share_bound(&layout, Bound::Exact, 0);
    layout.stage_remove(NodeId(0));
    layout.stage_assign(NodeId(1), role("dc4", 20)).unwrap();
    layout.apply_staged(2).unwrap();
    assert_hard_constraints(&layout, 0);
    assert_share_bound(&layout, Bound::Tolerance, 0);
}
