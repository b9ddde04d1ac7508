//! `/metrics` families read from the engine's own counters at scrape time: block I/O,
//! and the progress of table sync, resync and scrub passes (`Node::repair`).
//!
//! The engine keeps plain numbers behind small read-only accessors (`BlockManager::io`,
//! `RepairProgress::snapshot`); the Prometheus text is written here, so the engine does
//! not depend on any metrics format.

use hangar_engine::block::BlockIo;
use hangar_engine::block::repair::{PassSnapshot, RepairCounts, RepairKind};

use crate::metrics::TextWriter;

/// Everything `render` reads, sampled once.
pub struct EngineSample {
    pub io: BlockIo,
    pub repairs: Vec<(RepairKind, PassSnapshot)>,
}

impl EngineSample {
    pub fn of(node: &hangar_engine::node::Node) -> EngineSample {
        let repairs = RepairKind::ALL.iter().map(|&k| (k, node.repair.snapshot(k))).collect();
        EngineSample { io: node.blocks.io(), repairs }
    }

    fn get(&self, kind: RepairKind) -> Option<&PassSnapshot> {
        self.repairs.iter().find(|(k, _)| *k == kind).map(|(_, s)| s)
    }
}

/// Blocks waiting for resync: those the running pass has not checked yet, plus those the
/// last finished pass could not fetch (lost, or no replica answered), which every pass
/// tries again.
pub fn resync_queue(s: &PassSnapshot) -> u64 {
    let left = if s.running { s.to_check.saturating_sub(s.pass.checked) } else { 0 };
    left + s.last_pass.unrecoverable + s.last_pass.errors
}

/// How far the running scrub pass is (checked / to check); 1 once a pass finished, 0
/// before the first one.
pub fn scrub_ratio(s: &PassSnapshot) -> f64 {
    match (s.running, s.passes) {
        (true, _) if s.to_check > 0 => s.pass.checked as f64 / s.to_check as f64,
        (true, 0) | (false, 0) => 0.0,
        _ => 1.0,
    }
}

pub fn render(out: &mut TextWriter, sample: &EngineSample) {
    let io = sample.io;
    out.single(
        "hangar_block_bytes_read_total",
        "counter",
        "Bytes of block files read from this node's disk",
        io.bytes_read as f64,
    );
    out.single(
        "hangar_block_bytes_written_total",
        "counter",
        "Bytes of block files written to this node's disk",
        io.bytes_written as f64,
    );
    if let Some(resync) = sample.get(RepairKind::Blocks) {
        let help = "Blocks waiting for resync: unchecked in the running pass, or left \
                    missing by the last one";
        out.single("hangar_block_resync_queue_length", "gauge", help, resync_queue(resync) as f64);
    }
    if let Some(scrub) = sample.get(RepairKind::Scrub) {
        let help = "Share of the running scrub pass done (1 once a pass finished)";
        out.single("hangar_block_scrub_progress_ratio", "gauge", help, scrub_ratio(scrub));
    }
    if let Some(tables) = sample.get(RepairKind::Tables) {
        let name = "hangar_table_sync_items_total";
        out.family(name, "counter", "Table partitions compared with a peer, and exchanged");
        out.sample(name, &[("result", "compared")], tables.totals.checked as f64);
        out.sample(name, &[("result", "exchanged")], tables.totals.repaired as f64);
    }
    render_repairs(out, &sample.repairs);
}

/// Picks one figure out of a pass's counts.
type CountOf = fn(&RepairCounts) -> u64;

/// `hangar_repair_*{op}`: every pass, launched by an operator or periodic.
fn render_repairs(out: &mut TextWriter, repairs: &[(RepairKind, PassSnapshot)]) {
    let name = "hangar_repair_running";
    out.family(name, "gauge", "1 while a pass of this kind runs on this node");
    for (kind, s) in repairs {
        out.sample(name, &[("op", kind.name())], f64::from(u8::from(s.running)));
    }
    let name = "hangar_repair_passes_total";
    out.family(name, "counter", "Repair passes finished");
    for (kind, s) in repairs {
        out.sample(name, &[("op", kind.name())], s.passes as f64);
    }
    let counters: [(&str, &str, CountOf); 4] = [
        ("hangar_repair_items_checked_total", "Items repair passes checked", |c| c.checked),
        ("hangar_repair_items_repaired_total", "Items repair passes repaired", |c| c.repaired),
        (
            "hangar_repair_items_unrecoverable_total",
            "Blocks found with no good copy on any replica",
            |c| c.unrecoverable,
        ),
        ("hangar_repair_errors_total", "Items a pass could not check or repair", |c| c.errors),
    ];
    for (name, help, value) in counters {
        out.family(name, "counter", help);
        for (kind, s) in repairs {
            out.sample(name, &[("op", kind.name())], value(&s.totals) as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_and_ratio_follow_the_pass() {
        let mut s = PassSnapshot::default();
        assert_eq!((resync_queue(&s), scrub_ratio(&s)), (0, 0.0), "never run");
        s.running = true;
        s.to_check = 4;
        s.pass.checked = 1;
        s.last_pass.unrecoverable = 2;
        assert_eq!((resync_queue(&s), scrub_ratio(&s)), (3 + 2, 0.25));
        s.running = false;
        s.passes = 1;
        assert_eq!((resync_queue(&s), scrub_ratio(&s)), (2, 1.0));

        let totals = RepairCounts { checked: 9, repaired: 2, unrecoverable: 1, errors: 0 };
        let tables = PassSnapshot { totals, passes: 3, ..Default::default() };
        let sample = EngineSample {
            io: BlockIo { bytes_read: 5, bytes_written: 7 },
            repairs: vec![(RepairKind::Tables, tables), (RepairKind::Blocks, s)],
        };
        let mut w = TextWriter::default();
        render(&mut w, &sample);
        let text = w.finish();
        for line in [
            "hangar_block_bytes_written_total 7\n",
            "hangar_block_resync_queue_length 2\n",
            "hangar_table_sync_items_total{result=\"exchanged\"} 2\n",
            "hangar_repair_passes_total{op=\"tables\"} 3\n",
            "hangar_repair_items_unrecoverable_total{op=\"tables\"} 1\n",
            "hangar_repair_running{op=\"blocks\"} 0\n",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert!(!text.contains("scrub_progress"), "no scrub in the sample, no family");
    }
}
