//! Nemeses: the faults a run injects, on a schedule derived from the seed alone (so a seed
//! names the same faults at the same times on every replay), executed against the cluster
//! and logged to nemesis.jsonl as they happen.
//!
//! The schedule alternates quiet and faulty intervals: `QUIET_S` of calm, then one fault
//! for 5–10 s, then heal. Every fault is healed by the end of the schedule, so the final
//! reads run against a whole cluster (faults the system must survive, then liveness).

use std::io::Write;
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde::Serialize;

use crate::cluster::Cluster;
use crate::netns;

const QUIET_S: u64 = 3;
const FAULT_S_MIN: u64 = 5;
const FAULT_S_SPREAD: u64 = 6;
/// How far the clock nemesis moves a node's wall clock (either way), in seconds.
const CLOCK_SKEW_S_MAX: u64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    Partition,
    Kill,
    Pause,
    Clock,
    Layout,
    OneWay,
    Bridge,
    ZoneSplit,
    Isolate,
}

impl Family {
    pub fn parse_list(text: &str) -> Result<Vec<Family>, String> {
        let mut out = Vec::new();
        for name in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let f = match name {
                "partition" => Family::Partition,
                "kill" => Family::Kill,
                "pause" => Family::Pause,
                "clock" => Family::Clock,
                "layout" => Family::Layout,
                "one-way" => Family::OneWay,
                "bridge" => Family::Bridge,
                "zone-split" => Family::ZoneSplit,
                "isolate" => Family::Isolate,
                "none" => continue,
                other => {
                    return Err(format!(
                        "unknown nemesis {other:?}: choose from partition, one-way, bridge, \
                         zone-split, isolate, kill, pause, clock, layout, none"
                    ));
                }
            };
            if !out.contains(&f) {
                out.push(f);
            }
        }
        Ok(out)
    }
}

/// One fault, with the 0-based node indexes it touches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub enum Fault {
    /// Every group drops traffic from every other group (isolate one: a group of one).
    Partition {
        groups: Vec<Vec<usize>>,
    },
    Kill {
        nodes: Vec<usize>,
    },
    Pause {
        nodes: Vec<usize>,
    },
    Clock {
        node: usize,
        offset_s: i64,
    },
    /// Remove the node from the layout (a new version), then assign it back.
    Layout {
        node: usize,
    },
    /// `deaf` drops every packet from the other nodes; they still hear it (a half-broken
    /// link: its requests go out, the answers never come back).
    OneWay {
        deaf: usize,
    },
    /// Jepsen's bridge: `left` and `right` cannot reach each other, `bridge` reaches both
    /// (so each half sees a majority through it, and no node sees everyone but `bridge`).
    Bridge {
        left: Vec<usize>,
        bridge: usize,
        right: Vec<usize>,
    },
    /// Every node of one layout zone cut from every node of the others.
    ZoneSplit {
        zone: String,
        cut: Vec<usize>,
        rest: Vec<usize>,
    },
    /// One node cut from all the others, both ways.
    Isolate {
        node: usize,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub start_s: u64,
    pub stop_s: u64,
    pub fault: Fault,
}

/// The cluster's shape, as the faults need it: node count and each node's layout zone.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub nodes: usize,
    /// Node `i` is in zone `cluster::zone_of(i, zones)`.
    pub zones: usize,
}

/// The seed's schedule of faults from `families` on a cluster of `shape` within
/// `time_limit_s`.
pub fn schedule(seed: u64, families: &[Family], shape: Shape, time_limit_s: u64) -> Vec<Step> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0x006e_656d_6573_6973);
    let mut steps = Vec::new();
    let mut t = QUIET_S;
    while !families.is_empty() {
        let len = FAULT_S_MIN + rng.next_u64() % FAULT_S_SPREAD;
        if t + len > time_limit_s {
            break;
        }
        let family = families[(rng.next_u64() % families.len() as u64) as usize];
        let fault = pick(&mut rng, family, shape);
        steps.push(Step { start_s: t, stop_s: t + len, fault });
        t += len + QUIET_S;
    }
    steps
}

fn pick(rng: &mut ChaCha20Rng, family: Family, shape: Shape) -> Fault {
    let nodes = shape.nodes;
    let one = (rng.next_u64() % nodes as u64) as usize;
    // A minority: fewer than half the nodes, at least one.
    let minority = |rng: &mut ChaCha20Rng| {
        let mut all: Vec<usize> = (0..nodes).collect();
        shuffle(rng, &mut all);
        all.truncate(((nodes - 1) / 2).max(1));
        all.sort_unstable();
        all
    };
    match family {
        Family::Partition => {
            let cut = if rng.next_u64().is_multiple_of(2) { vec![one] } else { minority(rng) };
            let rest: Vec<usize> = (0..nodes).filter(|n| !cut.contains(n)).collect();
            Fault::Partition { groups: vec![cut, rest] }
        }
        Family::Kill => Fault::Kill { nodes: minority(rng) },
        Family::Pause => Fault::Pause { nodes: vec![one] },
        Family::Clock => {
            let offset = 1 + rng.next_u64() % CLOCK_SKEW_S_MAX;
            let offset_s =
                if rng.next_u64().is_multiple_of(2) { offset as i64 } else { -(offset as i64) };
            Fault::Clock { node: one, offset_s }
        }
        Family::Layout => Fault::Layout { node: one },
        Family::OneWay => Fault::OneWay { deaf: one },
        Family::Bridge => {
            let mut all: Vec<usize> = (0..nodes).collect();
            shuffle(rng, &mut all);
            let (bridge, rest) = all.split_first().expect("a cluster has a node");
            let (left, right) = rest.split_at(rest.len() / 2);
            let (mut left, mut right, bridge) = (left.to_vec(), right.to_vec(), *bridge);
            left.sort_unstable();
            right.sort_unstable();
            Fault::Bridge { left, bridge, right }
        }
        Family::ZoneSplit => {
            let zone = crate::cluster::zone_of(one, shape.zones);
            let (cut, rest) =
                (0..nodes).partition(|&n| crate::cluster::zone_of(n, shape.zones) == zone);
            Fault::ZoneSplit { zone: crate::cluster::zone_name(zone), cut, rest }
        }
        Family::Isolate => Fault::Isolate { node: one },
    }
}

fn shuffle(rng: &mut ChaCha20Rng, v: &mut [usize]) {
    for i in (1..v.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

/// A line of nemesis.jsonl.
#[derive(Serialize)]
struct Event<'a> {
    at_us: u64,
    phase: &'a str,
    /// Human-readable, with 1-based node names (`n1`); the fields below use 0-based indexes.
    label: String,
    #[serde(flatten)]
    fault: &'a Fault,
    /// Set when the harness could not apply or undo the fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// A fault interval as it really happened, for the report.
#[derive(Debug, Clone)]
pub struct Interval {
    pub start_us: u64,
    pub stop_us: u64,
    pub label: String,
}

/// Applies `steps` on time (relative to `t0`) and heals each; returns what happened.
pub fn execute(
    cluster: &mut Cluster,
    steps: &[Step],
    t0: Instant,
    log: &mut impl Write,
) -> Result<Vec<Interval>, String> {
    let mut done = Vec::new();
    for step in steps {
        sleep_until(t0 + Duration::from_secs(step.start_s));
        let start_us = t0.elapsed().as_micros() as u64;
        let applied = apply(cluster, &step.fault);
        write_event(log, start_us, "start", &step.fault, applied.as_ref().err())?;
        sleep_until(t0 + Duration::from_secs(step.stop_s));
        let healed = heal(cluster, &step.fault);
        let stop_us = t0.elapsed().as_micros() as u64;
        write_event(log, stop_us, "stop", &step.fault, healed.as_ref().err())?;
        // A fault that cannot be undone leaves the cluster in an unknown state: stop.
        healed?;
        done.push(Interval { start_us, stop_us, label: label(&step.fault) });
    }
    Ok(done)
}

fn write_event(
    log: &mut impl Write,
    at_us: u64,
    phase: &str,
    fault: &Fault,
    error: Option<&String>,
) -> Result<(), String> {
    let event = Event { at_us, phase, label: label(fault), fault, error: error.cloned() };
    let line = serde_json::to_string(&event).expect("events serialize");
    writeln!(log, "{line}").map_err(|e| format!("nemesis log: {e}"))
}

pub fn label(fault: &Fault) -> String {
    let names = |v: &[usize]| v.iter().map(|i| format!("n{}", i + 1)).collect::<Vec<_>>();
    match fault {
        Fault::Partition { groups } => {
            let gs: Vec<String> = groups.iter().map(|g| names(g).join(" ")).collect();
            format!("partition {}", gs.join(" | "))
        }
        Fault::Kill { nodes } => format!("kill {}", names(nodes).join(" ")),
        Fault::Pause { nodes } => format!("pause {}", names(nodes).join(" ")),
        Fault::Clock { node, offset_s } => format!("clock n{} {offset_s:+}s", node + 1),
        Fault::Layout { node } => format!("layout remove n{} (then assign back)", node + 1),
        Fault::OneWay { deaf } => format!("one-way: n{} hears no one", deaf + 1),
        Fault::Bridge { left, bridge, right } => format!(
            "bridge {} | n{} | {}",
            names(left).join(" "),
            bridge + 1,
            names(right).join(" ")
        ),
        Fault::ZoneSplit { zone, cut, rest } => {
            format!("zone-split {zone} ({}) | {}", names(cut).join(" "), names(rest).join(" "))
        }
        Fault::Isolate { node } => format!("isolate n{}", node + 1),
    }
}

/// The nftables drops a network fault asks for: `(node, peers)` means `node` drops every
/// packet from `peers` (0-based). Empty for faults that are not about the network.
fn drops(fault: &Fault, nodes: usize) -> Vec<(usize, Vec<usize>)> {
    let all_but = |x: usize| (0..nodes).filter(|n| *n != x).collect::<Vec<_>>();
    match fault {
        Fault::Partition { groups } => cut_groups(groups),
        // The bridge node keeps both sides: only left and right drop each other.
        Fault::Bridge { left, right, .. } => cut_groups(&[left.clone(), right.clone()]),
        Fault::ZoneSplit { cut, rest, .. } => cut_groups(&[cut.clone(), rest.clone()]),
        Fault::Isolate { node } => cut_groups(&[vec![*node], all_but(*node)]),
        Fault::OneWay { deaf } => vec![(*deaf, all_but(*deaf))],
        Fault::Kill { .. } | Fault::Pause { .. } | Fault::Clock { .. } | Fault::Layout { .. } => {
            Vec::new()
        }
    }
}

/// Every node of each group drops every node of the other groups (a cut both ways).
fn cut_groups(groups: &[Vec<usize>]) -> Vec<(usize, Vec<usize>)> {
    let mut out = Vec::new();
    for (g, group) in groups.iter().enumerate() {
        let others: Vec<usize> = groups
            .iter()
            .enumerate()
            .filter(|(h, _)| *h != g)
            .flat_map(|(_, o)| o.iter().copied())
            .collect();
        out.extend(group.iter().map(|&node| (node, others.clone())));
    }
    out
}

fn apply(cluster: &mut Cluster, fault: &Fault) -> Result<(), String> {
    match fault {
        Fault::Kill { nodes } => nodes.iter().try_for_each(|n| cluster.kill(*n)),
        Fault::Pause { nodes } => nodes.iter().try_for_each(|n| cluster.pause(*n)),
        Fault::Clock { node, offset_s } => cluster.set_clock(*node, *offset_s),
        Fault::Layout { node } => cluster.layout_remove(*node),
        Fault::Partition { .. }
        | Fault::OneWay { .. }
        | Fault::Bridge { .. }
        | Fault::ZoneSplit { .. }
        | Fault::Isolate { .. } => {
            for (node, peers) in drops(fault, cluster.len()) {
                let peers: Vec<usize> = peers.iter().map(|p| p + 1).collect();
                netns::drop_from(node + 1, &peers)?;
            }
            Ok(())
        }
    }
}

fn heal(cluster: &mut Cluster, fault: &Fault) -> Result<(), String> {
    match fault {
        Fault::Partition { .. }
        | Fault::OneWay { .. }
        | Fault::Bridge { .. }
        | Fault::ZoneSplit { .. }
        | Fault::Isolate { .. } => (1..=cluster.len()).try_for_each(netns::heal),
        Fault::Kill { nodes } => nodes.iter().try_for_each(|n| cluster.restart(*n)),
        Fault::Pause { nodes } => nodes.iter().try_for_each(|n| cluster.resume(*n)),
        Fault::Clock { node, .. } => cluster.set_clock(*node, 0),
        Fault::Layout { node } => cluster.layout_add(*node),
    }
}

fn sleep_until(t: Instant) {
    if let Some(d) = t.checked_duration_since(Instant::now()) {
        std::thread::sleep(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIVE: Shape = Shape { nodes: 5, zones: 5 };

    /// Every fault of `family` the first `seeds` seeds schedule on `shape`.
    fn faults(family: Family, shape: Shape, seeds: u64) -> Vec<Fault> {
        (0..seeds).flat_map(|s| schedule(s, &[family], shape, 120)).map(|s| s.fault).collect()
    }

    /// Who can still reach whom (both ways) under the fault's drops.
    fn connected(fault: &Fault, nodes: usize, a: usize, b: usize) -> bool {
        let d = drops(fault, nodes);
        let drops_from = |x: usize, y: usize| d.iter().any(|(n, p)| *n == x && p.contains(&y));
        !drops_from(a, b) && !drops_from(b, a)
    }

    #[test]
    fn a_seed_names_one_schedule_within_the_time_limit() {
        let all = [Family::Partition, Family::Kill, Family::Pause];
        let a = schedule(7, &all, FIVE, 60);
        assert_eq!(a, schedule(7, &all, FIVE, 60));
        assert_ne!(a, schedule(8, &all, FIVE, 60));
        assert!(a.len() >= 3, "{a:?}");
        for w in a.windows(2) {
            assert!(w[0].stop_s < w[1].start_s, "faults never overlap: {a:?}");
        }
        assert!(a.iter().all(|s| s.stop_s <= 60 && s.start_s >= QUIET_S));
        assert!(schedule(7, &[], FIVE, 60).is_empty());
    }

    #[test]
    fn faults_keep_a_majority_and_name_real_nodes() {
        let all = [
            Family::Partition,
            Family::Kill,
            Family::Pause,
            Family::Clock,
            Family::Layout,
            Family::OneWay,
            Family::Bridge,
            Family::ZoneSplit,
            Family::Isolate,
        ];
        for seed in 0..50 {
            for step in schedule(seed, &all, FIVE, 120) {
                match step.fault {
                    Fault::Partition { groups } => {
                        let mut every: Vec<usize> = groups.concat();
                        every.sort_unstable();
                        assert_eq!(every, vec![0, 1, 2, 3, 4]);
                        assert!(groups[0].len() <= 2);
                    }
                    Fault::Kill { nodes } => assert!(!nodes.is_empty() && nodes.len() <= 2),
                    Fault::Pause { nodes } => assert!(nodes.iter().all(|n| *n < 5)),
                    Fault::Clock { node, offset_s } => assert!(node < 5 && offset_s != 0),
                    Fault::Layout { node } => assert!(node < 5),
                    Fault::OneWay { deaf } => assert!(deaf < 5),
                    Fault::Bridge { left, bridge, right } => {
                        assert!(left.len() == 2 && right.len() == 2 && bridge < 5);
                    }
                    Fault::ZoneSplit { cut, rest, .. } => assert_eq!(cut.len() + rest.len(), 5),
                    Fault::Isolate { node } => assert!(node < 5),
                }
            }
        }
    }

    #[test]
    fn a_bridge_splits_two_halves_that_both_reach_the_bridge_node() {
        for nodes in [3, 5, 7] {
            let shape = Shape { nodes, zones: nodes };
            for fault in faults(Family::Bridge, shape, 30) {
                let Fault::Bridge { left, bridge, right } = &fault else { panic!("{fault:?}") };
                let mut every = [left.clone(), right.clone(), vec![*bridge]].concat();
                every.sort_unstable();
                assert_eq!(every, (0..nodes).collect::<Vec<_>>(), "{fault:?}");
                assert_eq!(left.len(), (nodes - 1) / 2, "{fault:?}");
                for &l in left {
                    assert!(connected(&fault, nodes, l, *bridge), "{fault:?}");
                    assert!(right.iter().all(|&r| !connected(&fault, nodes, l, r)), "{fault:?}");
                    assert!(left.iter().all(|&o| connected(&fault, nodes, l, o)), "{fault:?}");
                }
                assert!(right.iter().all(|&r| connected(&fault, nodes, r, *bridge)));
                // Each half with the bridge is a majority; no one else sees everybody.
                assert!(2 * (left.len() + 1) > nodes && 2 * (right.len() + 1) > nodes);
            }
        }
    }

    #[test]
    fn a_zone_split_cuts_exactly_one_layout_zone_and_every_zone_gets_its_turn() {
        let shape = Shape { nodes: 5, zones: 3 };
        let mut zones_cut = Vec::new();
        for fault in faults(Family::ZoneSplit, shape, 30) {
            let Fault::ZoneSplit { zone, cut, rest } = &fault else { panic!("{fault:?}") };
            let z = crate::cluster::zone_of(cut[0], 3);
            assert_eq!(*zone, crate::cluster::zone_name(z));
            let expected: Vec<usize> =
                (0..5).filter(|&n| crate::cluster::zone_of(n, 3) == z).collect();
            assert_eq!(*cut, expected, "all of the zone and nothing else: {fault:?}");
            for &c in cut {
                assert!(rest.iter().all(|&r| !connected(&fault, 5, c, r)), "{fault:?}");
            }
            zones_cut.push(z);
        }
        zones_cut.sort_unstable();
        zones_cut.dedup();
        assert_eq!(zones_cut, [0, 1, 2]);
        // One zone per node (the default): a zone split isolates one node.
        for fault in faults(Family::ZoneSplit, FIVE, 10) {
            let Fault::ZoneSplit { cut, .. } = &fault else { panic!("{fault:?}") };
            assert_eq!(cut.len(), 1);
        }
    }

    #[test]
    fn isolate_cuts_one_node_from_all_and_leaves_the_rest_whole() {
        for fault in faults(Family::Isolate, FIVE, 20) {
            let Fault::Isolate { node } = fault else { panic!("{fault:?}") };
            for other in (0..5).filter(|&o| o != node) {
                assert!(!connected(&fault, 5, node, other));
                assert!((0..5).filter(|&o| o != node).all(|o| connected(&fault, 5, other, o)));
            }
        }
        // One-way stays one way: the deaf node drops, nobody drops it.
        let one_way = Fault::OneWay { deaf: 2 };
        assert_eq!(drops(&one_way, 3), vec![(2, vec![0, 1])]);
    }

    #[test]
    fn nemesis_names_parse_and_unknown_ones_are_refused() {
        let fs = Family::parse_list("partition,kill,kill").unwrap();
        assert_eq!(fs, vec![Family::Partition, Family::Kill]);
        assert!(Family::parse_list("split").unwrap_err().contains("unknown nemesis"));
        assert!(Family::parse_list("none").unwrap().is_empty());
        let new = Family::parse_list("bridge,zone-split,isolate").unwrap();
        assert_eq!(new, vec![Family::Bridge, Family::ZoneSplit, Family::Isolate]);
    }
}
