//! Ideal (fractional) partition counts per node, by two-level water-filling.
//!
//! Why fractional: the ideal is the "fair share" the planner aims at, and a real number is
//! the honest answer (three equal nodes and 256 partitions give 85.33 each). The planner
//! then keeps every node at the floor or ceiling of its ideal.
//!
//! Why two levels: capacity decides each node's weight, but the hard constraints act on
//! zones. Per partition a zone holds between `lo` and `hi` replicas (see [`ZoneBounds`]), so
//! over all partitions a zone holds between `256·lo` and `256·hi`; and a node holds at most
//! one replica per partition, so at most 256 in total. The ideal is the capacity-proportional
//! split that respects those limits, and it is always achievable by some assignment (give
//! every partition the same fractional share; see the module doc of `layout`).

use super::{NodeId, NodeRole, PARTITION_COUNT};
use std::collections::BTreeMap;

/// Per-partition replica bounds for every zone, identical for all zones of a cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ZoneBounds {
    /// Distinct zones each partition must span: `min(replication_factor, zone_count)`.
    pub spread: usize,
    /// Fewest replicas of one partition a zone must hold (1 when every zone is needed).
    pub lo: usize,
    /// Most replicas of one partition a zone may hold, before the zone's node count.
    pub hi: usize,
}

impl ZoneBounds {
    /// Bounds for `zone_count` zones at the given replication factor.
    ///
    /// With at least as many zones as replicas, every replica sits in its own zone (`hi` =
    /// 1). With fewer zones, every zone must be used (`lo` = 1) and the surplus replicas
    /// may pile into one zone, up to `replication_factor - zone_count + 1`.
    pub fn new(replication_factor: usize, zone_count: usize) -> Self {
        let spread = replication_factor.min(zone_count);
        let lo = usize::from(zone_count < replication_factor);
        ZoneBounds { spread, lo, hi: replication_factor - spread + 1 }
    }

    /// Upper bound for a zone with `nodes` nodes: a node holds a partition at most once.
    pub fn hi_for(&self, nodes: usize) -> usize {
        self.hi.min(nodes)
    }
}

/// Groups nodes by zone, zones and nodes in ascending order.
pub(crate) fn zones_of(roles: &BTreeMap<NodeId, NodeRole>) -> BTreeMap<&str, Vec<NodeId>> {
    let mut zones: BTreeMap<&str, Vec<NodeId>> = BTreeMap::new();
    for (node, role) in roles {
        zones.entry(role.zone.as_str()).or_default().push(*node);
    }
    zones
}

/// Ideal partition count for every node; the values sum to `256 · replication_factor`.
///
/// Level one finds a single "partitions per unit of capacity" rate `λ` such that, with each
/// node taking `min(256, λ·capacity)` and each zone's sum clamped into its bounds, the
/// totals add up to `256 · replication_factor`. Level two splits each zone's clamped total
/// among its nodes in proportion to capacity, capping nodes at 256.
///
/// Requires at least `replication_factor` nodes, all with non-zero capacity.
pub(crate) fn ideal_shares(
    roles: &BTreeMap<NodeId, NodeRole>,
    replication_factor: usize,
) -> BTreeMap<NodeId, f64> {
    assert!(roles.len() >= replication_factor, "ideal_shares needs enough nodes");
    let zones = zones_of(roles);
    let bounds = ZoneBounds::new(replication_factor, zones.len());
    let per_node = PARTITION_COUNT as f64;
    let total = per_node * replication_factor as f64;

    let zone_caps: Vec<Vec<f64>> = zones
        .values()
        .map(|nodes| nodes.iter().map(|n| roles[n].capacity as f64).collect())
        .collect();
    let zone_limits: Vec<(f64, f64)> = zones
        .values()
        .map(|nodes| {
            let lo = (bounds.lo * PARTITION_COUNT) as f64;
            let hi = (bounds.hi_for(nodes.len()) * PARTITION_COUNT) as f64;
            (lo, hi)
        })
        .collect();
    let zone_total = |rate: f64, zone: usize| {
        let raw: f64 = zone_caps[zone].iter().map(|c| (rate * c).min(per_node)).sum();
        raw.clamp(zone_limits[zone].0, zone_limits[zone].1)
    };
    let grand_total = |rate: f64| (0..zones.len()).map(|z| zone_total(rate, z)).sum::<f64>();

    // The total is continuous and non-decreasing in the rate; at rate 0 it is at most the
    // target (Σ lo ≤ replication factor) and once every node is capped it is at least the
    // target (Σ hi ≥ replication factor), so bisection finds the rate.
    let min_cap = zone_caps.iter().flatten().copied().fold(f64::INFINITY, f64::min);
    let (mut low, mut high) = (0.0_f64, per_node / min_cap);
    for _ in 0..200 {
        let mid = low + (high - low) / 2.0;
        if mid <= low || mid >= high {
            break;
        }
        if grand_total(mid) < total {
            low = mid;
        } else {
            high = mid;
        }
    }

    let mut shares = BTreeMap::new();
    for (z, nodes) in zones.values().enumerate() {
        let split = water_fill(&zone_caps[z], zone_total(high, z), per_node);
        shares.extend(nodes.iter().copied().zip(split));
    }
    shares
}

/// Splits `total` in proportion to `weights`, no part above `cap`, overflow going to the
/// others in proportion again. Exact: the heaviest parts are capped one by one.
fn water_fill(weights: &[f64], total: f64, cap: f64) -> Vec<f64> {
    let mut order: Vec<usize> = (0..weights.len()).collect();
    // Heaviest first; ties by index so the result does not depend on sort stability.
    order.sort_by(|&a, &b| weights[b].total_cmp(&weights[a]).then(a.cmp(&b)));
    let mut out = vec![0.0; weights.len()];
    let mut remaining = total;
    let mut weight_left: f64 = weights.iter().sum();
    let mut uncapped = order.as_slice();
    while let Some((&heaviest, rest)) = uncapped.split_first() {
        if remaining * weights[heaviest] / weight_left < cap {
            break;
        }
        out[heaviest] = cap;
        remaining -= cap;
        weight_left -= weights[heaviest];
        uncapped = rest;
    }
    for &i in uncapped {
        out[i] = (remaining * weights[i] / weight_left).max(0.0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn water_fill_caps_heavy_parts_and_redistributes() {
        let out = water_fill(&[100.0, 1.0, 1.0], 300.0, 256.0);
        assert_eq!(out, vec![256.0, 22.0, 22.0]);
        let out = water_fill(&[1.0, 3.0], 100.0, 256.0);
        assert_eq!(out, vec![25.0, 75.0]);
    }

    #[test]
    fn zone_bounds_follow_replication_and_zone_count() {
        assert_eq!(ZoneBounds::new(3, 5), ZoneBounds { spread: 3, lo: 0, hi: 1 });
        assert_eq!(ZoneBounds::new(3, 3), ZoneBounds { spread: 3, lo: 0, hi: 1 });
        assert_eq!(ZoneBounds::new(5, 2), ZoneBounds { spread: 2, lo: 1, hi: 4 });
        assert_eq!(ZoneBounds::new(3, 1), ZoneBounds { spread: 1, lo: 1, hi: 3 });
        assert_eq!(ZoneBounds::new(5, 2).hi_for(2), 2);
    }
}
