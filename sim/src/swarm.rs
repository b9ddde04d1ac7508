//! Swarm testing: a scenario drawn at random from a seed — cluster size, network, workload
//! and a timeline of faults — so that many seeds explore combinations nobody wrote down.
//!
//! The generator writes scenario *text* and the normal loader parses it, so a swarm
//! scenario is validated like a hand-written one and can be saved as a regression file
//! as is. Only faults the system must survive are drawn: episodes do not overlap, so at
//! most one node is cut off, crashed or skewed-and-cut-off at a time and every partition
//! keeps a quorum of replicas reachable. A whole-disk loss (power cut, blank data root,
//! restart) is an episode too: the blank node refuses reads until its full sync, which
//! needs every other replica of its partitions, so the episode keeps the cluster to itself
//! for `DISK_LOSS_RECOVERY_MS` — long enough to sync even at WAN latency — since a second
//! fault on a peer before then could take the only other copy of a write (a double fault
//! nobody can survive). Replacing a member by a spare node (a layout change) gets the same
//! quiet time, for the spare's sync. A failing disk (EIO or full) is repaired and its node
//! rebooted at the end of its episode; a slow disk is repaired. A crash is a plain one (between
//! two steps) or a power cut that falls in the middle of the node's disk writes, whose
//! unsynced writes survive torn at 512-byte sectors.

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use std::fmt::Write;

/// A deliberate weakening of every generated scenario, to show a swarm finds the bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weakening {
    /// Read and write quorums of one replica: stale reads and lost writes become possible.
    QuorumOfOne,
}

impl Weakening {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "r1w1" => Ok(Weakening::QuorumOfOne),
            _ => Err(format!("`{s}` is not a known weakening (r1w1)")),
        }
    }
}

/// Seeds the draw of the consistency mode (a stream apart from the scenario's).
const DEGRADED_STREAM: u64 = 0x4445_4752_4144_4544;

/// How long after a `disk_loss` the next episode waits, at least: the blank node's full
/// sync (six tables from every peer, a block pass) takes a few seconds at WAN latency.
const DISK_LOSS_RECOVERY_MS: (u64, u64) = (6_000, 9_000);

struct Draw(ChaCha20Rng);

impl Draw {
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.0.next_u64() % (hi - lo + 1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.range(1, 100) <= percent
    }
    fn node(&mut self, nodes: u64) -> String {
        format!("n{}", self.range(1, nodes))
    }
}

/// The scenario text for `seed`. The stream of draws is separate from the run's own (the
/// run seeds its world from the seed and the scenario), so changing the generator never
/// changes what a saved scenario file does.
pub fn generate(seed: u64, weakening: Option<Weakening>) -> String {
    let mut d = Draw(ChaCha20Rng::seed_from_u64(seed ^ 0x5357_4152_4d00_0000));
    let nodes = d.range(3, 5);
    let zones = nodes.min(3);
    let s3 = d.chance(50);
    let wan = d.chance(30);
    let (min_latency, max_latency) = if wan { (5, d.range(20, 80)) } else { (1, d.range(2, 10)) };
    let duration = d.range(12, 25) * 1000;
    let clients = d.range(2, 4);
    let keys = d.range(3, 12);
    let write_fraction = d.range(3, 7) as f64 / 10.0;
    // A spare node lets one episode replace a member (a layout change under load).
    let mut spare = d.chance(40).then(|| format!("n{}", nodes + 1));
    let mut faults = Vec::new();
    let mut notes = Vec::new();
    let mut t = d.range(500, 2500);
    while t + 1500 < duration {
        let node = d.node(nodes);
        let length = d.range(1000, 5000);
        // 12 (corrupt a block) needs blocks, so the s3 workload; 14 needs an unused spare.
        let choices: Vec<u64> =
            (0..=14).filter(|&c| (c != 12 || s3) && (c != 14 || spare.is_some())).collect();
        let choice = choices[d.range(0, choices.len() as u64 - 1) as usize];
        match choice {
            0 => {
                faults.push(fault(t, "isolate", Some(&node), None));
                faults.push(fault(t + length, "heal", None, None));
                notes.push(format!("isolate {node} {t}..{}", t + length));
            }
            1 => {
                let other = d.node(nodes);
                let cut = if other != node && nodes >= 5 {
                    format!("[\"{node}\", \"{other}\"]")
                } else {
                    format!("[\"{node}\"]")
                };
                faults.push(fault(t, "partition", None, Some(&cut)));
                faults.push(fault(t + length, "heal", None, None));
                notes.push(format!("partition {cut} {t}..{}", t + length));
            }
            2 => {
                faults.push(fault(t, "crash", Some(&node), None));
                faults.push(fault(t + length, "restart", Some(&node), None));
                notes.push(format!("crash {node} {t}..{}", t + length));
            }
            3 => {
                // The power goes out in the middle of the node's disk writes (torn writes).
                faults.push(fault(t, "crash_mid_write", Some(&node), None));
                faults.push(fault(t + length, "restart", Some(&node), None));
                notes.push(format!("power cut mid-write on {node} {t}..{}", t + length));
            }
            4 => {
                let skew = d.range(1, 120) as i64 * 1000 * if d.chance(50) { 1 } else { -1 };
                let mut f = fault(t, "clock_skew", Some(&node), None);
                writeln!(f, "skew_ms = {skew}").unwrap();
                faults.push(f);
                notes.push(format!("skew {node} {skew} ms at {t}"));
            }
            5 => {
                faults.push(fault(t, "disk_loss", Some(&node), None));
                notes.push(format!("disk loss on {node} at {t}"));
            }
            6 => {
                // The node hears the others but cannot be heard (or answer) by them.
                let mut f = fault(t, "partition_oneway", None, None);
                writeln!(f, "from = [\"{node}\"]").unwrap();
                faults.push(f);
                faults.push(fault(t + length, "heal", None, None));
                notes.push(format!("one-way cut from {node} {t}..{}", t + length));
            }
            7 => {
                // Two of the three zones: every replica set keeps a majority (its third
                // zone reaches both sides).
                let a = d.range(1, 3);
                let b = a % 3 + 1;
                let mut f = fault(t, "zone_split", None, None);
                writeln!(f, "zones = [\"z{a}\", \"z{b}\"]").unwrap();
                faults.push(f);
                faults.push(fault(t + length, "heal", None, None));
                notes.push(format!("zone split z{a} / z{b} {t}..{}", t + length));
            }
            8 => {
                faults.push(fault(t, "hold", None, Some(&format!("[\"{node}\"]"))));
                faults.push(fault(t + length, "release", None, None));
                notes.push(format!("hold {node}'s messages {t}..{}", t + length));
            }
            9 => {
                faults.push(fault(t, "pause", Some(&node), None));
                faults.push(fault(t + length, "resume", Some(&node), None));
                notes.push(format!("pause {node} {t}..{}", t + length));
            }
            10 => {
                // Up to 20% fast or slow: seconds of drift within a run.
                let ppm = d.range(1, 200) as i64 * 1000 * if d.chance(50) { 1 } else { -1 };
                let mut f = fault(t, "clock_drift", Some(&node), None);
                writeln!(f, "drift_ppm = {ppm}").unwrap();
                faults.push(f);
                notes.push(format!("drift {node} {ppm} ppm from {t}"));
            }
            11 => {
                let mut f = fault(t, "packet_loss", None, Some(&format!("[\"{node}\"]")));
                writeln!(f, "retransmit_ms = {}", d.range(50, 400)).unwrap();
                faults.push(f);
                faults.push(fault(t + length, "heal", None, None));
                notes.push(format!("packet loss on {node}'s links {t}..{}", t + length));
            }
            12 => {
                faults.push(fault(t, "corrupt_block", Some(&node), None));
                notes.push(format!("corrupt a block of {node} at {t}"));
            }
            13 => {
                // A failing disk: EIO or full for a while, then (as an operator would)
                // repaired and the node rebooted — a database that saw an I/O error stays
                // out of service until reopened. Or a slow disk that still answers.
                match d.range(0, 2) {
                    0 | 1 => {
                        let kind = if d.chance(50) { "disk_eio" } else { "disk_full" };
                        faults.push(fault(t, kind, Some(&node), None));
                        faults.push(fault(t + length, "disk_repair", Some(&node), None));
                        faults.push(fault(t + length, "crash", Some(&node), None));
                        faults.push(fault(t + length + 500, "restart", Some(&node), None));
                        notes.push(format!("{kind} on {node} {t}..{}, then reboot", t + length));
                    }
                    _ => {
                        let latency_ms = d.range(10, 300);
                        let mib_per_s = d.range(0, 100);
                        let mut f = fault(t, "disk_slow", Some(&node), None);
                        writeln!(f, "latency_ms = {latency_ms}\nmib_per_s = {mib_per_s}").unwrap();
                        faults.push(f);
                        faults.push(fault(t + length, "disk_repair", Some(&node), None));
                        let speed = format!("{latency_ms} ms + {mib_per_s} MiB/s");
                        notes.push(format!("slow disk on {node} ({speed}) {t}..{}", t + length));
                    }
                }
            }
            _ => {
                // Replace a member by the spare: writes go to both replica sets until the
                // new one has synced, while the workload runs.
                let new = spare.take().expect("choice 14 needs a spare");
                let mut f = fault(t, "layout_change", None, None);
                writeln!(f, "add = [\"{new}\"]\nremove = [\"{node}\"]").unwrap();
                faults.push(f);
                notes.push(format!("replace {node} by {new} at {t}"));
            }
        }
        let busy = match choice {
            5 | 14 => d.range(DISK_LOSS_RECOVERY_MS.0, DISK_LOSS_RECOVERY_MS.1),
            13 => length + 500,
            4 | 10 | 12 => 0,
            _ => length,
        };
        t += busy + d.range(500, 3000);
    }

    let mut s = String::new();
    writeln!(s, "# Generated by `hangar-sim swarm` from seed {seed}.").unwrap();
    for note in &notes {
        writeln!(s, "# fault: {note}").unwrap();
    }
    writeln!(s, "name = \"swarm-{seed}\"").unwrap();
    let kind = if s3 { "s3" } else { "register" };
    let net = if wan { "wan" } else { "lan" };
    // Drawn from a stream of its own, so that adding it changed no other draw.
    let degraded = Draw(ChaCha20Rng::seed_from_u64(seed ^ DEGRADED_STREAM)).chance(20);
    let mode = if degraded { "degraded" } else { "consistent" };
    writeln!(s, "description = \"swarm: {nodes} nodes, {kind} workload, {net} latency, {mode}\"")
        .unwrap();
    writeln!(s, "\n[cluster]\nnodes = {nodes}\nzones = {zones}\nreplication_factor = 3").unwrap();
    if faults.iter().any(|f| f.contains("layout_change")) {
        writeln!(s, "spare_nodes = 1").unwrap();
    }
    writeln!(s, "consistency_mode = \"{mode}\"").unwrap();
    if weakening == Some(Weakening::QuorumOfOne) {
        writeln!(s, "# Deliberately weakened (--weaken r1w1).\nread_quorum = 1\nwrite_quorum = 1")
            .unwrap();
    }
    let rpc_timeout = if wan { 2000 } else { 1000 };
    writeln!(s, "sync_interval_ms = 1000\nrpc_timeout_ms = {rpc_timeout}").unwrap();
    writeln!(s, "\n[network]\ntick_ms = 2\nmin_latency_ms = {min_latency}").unwrap();
    writeln!(s, "max_latency_ms = {max_latency}").unwrap();
    if wan {
        // Zones far apart, nodes of one zone close (clients keep the range above).
        writeln!(s, "intra_zone_latency_ms = [1, 5]").unwrap();
        // 30-150 ms between zones at most (the drawn client range, doubled); clients
        // keep the range above.
        writeln!(s, "inter_zone_latency_ms = [30, {}]", 2 * max_latency - 10).unwrap();
    }
    if faults.iter().any(|f| f.contains("crash_mid_write")) {
        // Unsynced writes survive a power cut torn at 512-byte sectors.
        writeln!(s, "\n[disk]\ntorn_write_bytes = 512").unwrap();
    }
    writeln!(s, "\n[workload]\nkind = \"{kind}\"\nclients = {clients}\nkeys = {keys}").unwrap();
    if s3 {
        let max_object =
            [16 * 1024, 256 * 1024, 1024 * 1024, 3 * 1024 * 1024][d.range(0, 3) as usize];
        writeln!(s, "min_object_bytes = 1024\nmax_object_bytes = {max_object}").unwrap();
    }
    writeln!(s, "duration_ms = {duration}\nmax_think_ms = {}", d.range(20, 200)).unwrap();
    writeln!(s, "write_fraction = {write_fraction}\ndelete_fraction = 0.05").unwrap();
    let client_timeout = if wan { 6000 } else { 3000 };
    writeln!(s, "client_timeout_ms = {client_timeout}").unwrap();
    // An episode's end (a heal, a restart) may fall after the workload: the runner heals
    // and restarts everything then, and a scenario may not name a fault it would not apply.
    for f in faults.iter().filter(|f| at_ms_of(f) < duration) {
        write!(s, "\n[[faults]]\n{f}").unwrap();
    }
    // Degraded mode promises less, and only what it keeps is checked: reads need one
    // replica, so stale reads are allowed (no read_after_write); unconditional writes are
    // last-writer-wins by timestamp, so with a skewed or drifting clock a later write can
    // lose to an earlier one stamped by a faster clock (no no_lost_writes then either).
    let clock_faults = faults.iter().any(|f| f.contains("clock_skew") || f.contains("clock_drift"));
    let mut checkers = Vec::new();
    if !degraded {
        checkers.push("read_after_write");
    }
    if !(degraded && clock_faults) {
        checkers.push("no_lost_writes");
    }
    checkers.push("convergence");
    if s3 {
        checkers.push("block_refs");
    }
    let checkers = format!("{checkers:?}");
    writeln!(s, "\n[check]\nquiesce_ms = 20000\ncheckers = {checkers}").unwrap();
    s
}

/// The `at_ms` a fault's text (from `fault`) starts with.
fn at_ms_of(fault: &str) -> u64 {
    let first = fault.lines().next().unwrap_or_default();
    first.trim_start_matches("at_ms = ").parse().expect("fault text starts with at_ms")
}

/// One line saying what a generated scenario drew: its description and its episodes.
pub fn summary(scenario_text: &str) -> String {
    let description = (scenario_text.lines())
        .find_map(|l| l.strip_prefix("description = \"swarm: "))
        .map_or("", |d| d.trim_end_matches('"'));
    let episodes: Vec<&str> =
        scenario_text.lines().filter_map(|l| l.strip_prefix("# fault: ")).collect();
    format!("{description}; {}", episodes.join(", "))
}

fn fault(at: u64, kind: &str, node: Option<&str>, nodes: Option<&str>) -> String {
    let mut f = format!("at_ms = {at}\nkind = \"{kind}\"\n");
    if let Some(node) = node {
        writeln!(f, "node = \"{node}\"").unwrap();
    }
    if let Some(nodes) = nodes {
        writeln!(f, "nodes = {nodes}").unwrap();
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{FAULTS, Scenario};

    #[test]
    fn every_generated_scenario_loads_and_a_seed_always_gives_the_same_one() {
        let mut kinds = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let text = generate(seed, None);
            let scenario = Scenario::parse(&format!("swarm-{seed}"), &text)
                .unwrap_or_else(|e| panic!("seed {seed}: {e}\n{text}"));
            assert_eq!(text, generate(seed, None));
            for f in &scenario.faults {
                kinds.insert(f.kind.get_ref().clone());
            }
        }
        // Over 200 seeds every fault kind shows up.
        for kind in FAULTS {
            assert!(kinds.contains(kind), "no {kind} in 200 seeds: {kinds:?}");
        }
        assert_ne!(generate(1, None), generate(2, None));
    }

    #[test]
    fn a_weakened_swarm_scenario_sets_quorums_of_one() {
        let text = generate(7, Some(Weakening::QuorumOfOne));
        let scenario = Scenario::parse("weak", &text).unwrap();
        assert_eq!(scenario.cluster.read_quorum, Some(1));
        assert_eq!(scenario.cluster.write_quorum, Some(1));
        assert!(
            Scenario::parse("plain", &generate(7, None)).unwrap().cluster.read_quorum.is_none()
        );
    }
}
