//! Progress of the repair passes a node runs — table sync (anti-entropy), block resync and
//! scrub — whether a periodic worker or an operator (admin API `POST /v1/repair`) started
//! them, for the admin API and `/metrics`.
//!
//! Why one tracker per kind with a "running" flag: an operator's pass and the periodic
//! worker's pass of the same kind would do the same work twice and mix their counts. Only
//! one pass of a kind runs at a time on a node (`RepairProgress::begin`); the periodic
//! worker skips its round while an operator's pass runs, and an operator asking for a
//! second one is told the first is still running.
//!
//! Counts are plain numbers behind a mutex held for a few instructions, never across an
//! await. Totals since start are kept apart from the current pass, so `/metrics` counters
//! only grow.

use std::sync::{Arc, Mutex};

use crate::seam::Clock;

/// A kind of repair pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RepairKind {
    /// A full anti-entropy round: every table with every peer sharing partitions.
    Tables,
    /// A block resync pass: fetch every block this node should hold but lacks.
    Blocks,
    /// A scrub pass: re-read every local block, replace corrupt copies.
    Scrub,
}

impl RepairKind {
    pub const ALL: [RepairKind; 3] = [RepairKind::Tables, RepairKind::Blocks, RepairKind::Scrub];

    /// The name operators use (`hangar repair <name>`, the admin API, metric labels).
    pub fn name(self) -> &'static str {
        match self {
            RepairKind::Tables => "tables",
            RepairKind::Blocks => "blocks",
            RepairKind::Scrub => "scrub",
        }
    }

    pub fn parse(name: &str) -> Option<RepairKind> {
        RepairKind::ALL.into_iter().find(|k| k.name() == name)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What a pass found, item by item. Items are partitions of a table compared with a peer
/// (tables) or blocks (blocks, scrub).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepairCounts {
    pub checked: u64,
    /// Tables: partitions that differed and were exchanged; blocks: fetched; scrub: corrupt
    /// copies replaced.
    pub repaired: u64,
    /// Blocks no replica has a good copy of (lost for good, or never completely written).
    pub unrecoverable: u64,
    /// Items that could not be checked or repaired now (a peer or the disk failed): the
    /// next pass tries again.
    pub errors: u64,
}

impl RepairCounts {
    fn add(&mut self, other: RepairCounts) {
        self.checked += other.checked;
        self.repaired += other.repaired;
        self.unrecoverable += other.unrecoverable;
        self.errors += other.errors;
    }
}

/// One kind's state, as shown to operators.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassSnapshot {
    pub running: bool,
    /// Whether the current (or last) pass was launched by an operator, not a worker.
    pub launched: bool,
    pub started_ms: Option<u64>,
    pub finished_ms: Option<u64>,
    /// Items the current (or last) pass has to check, once known.
    pub to_check: u64,
    /// The current (or last) pass.
    pub pass: RepairCounts,
    /// Every pass since the node started, the current one included.
    pub totals: RepairCounts,
    /// Passes finished since the node started.
    pub passes: u64,
    /// What the last finished pass found.
    pub last_pass: RepairCounts,
}

#[derive(Default)]
pub struct RepairProgress {
    kinds: [Mutex<PassSnapshot>; 3],
}

impl RepairProgress {
    /// Starts a pass of `kind`, or answers the running one's state if there is one.
    pub fn begin(
        self: &Arc<Self>,
        kind: RepairKind,
        launched: bool,
        clock: Arc<dyn Clock>,
    ) -> Result<PassGuard, Box<PassSnapshot>> {
        let mut s = self.kinds[kind.index()].lock().unwrap();
        if s.running {
            return Err(Box::new(s.clone()));
        }
        s.running = true;
        s.launched = launched;
        s.started_ms = Some(clock.now_ms());
        s.finished_ms = None;
        s.to_check = 0;
        s.pass = RepairCounts::default();
        drop(s);
        Ok(PassGuard { progress: self.clone(), kind, clock })
    }

    pub fn snapshot(&self, kind: RepairKind) -> PassSnapshot {
        self.kinds[kind.index()].lock().unwrap().clone()
    }
}

/// The right to run a pass of one kind; counts go through it. Dropping it ends the pass
/// (also when the task running it is cancelled, so a kind is never stuck "running").
pub struct PassGuard {
    progress: Arc<RepairProgress>,
    kind: RepairKind,
    clock: Arc<dyn Clock>,
}

impl PassGuard {
    fn with<T>(&self, f: impl FnOnce(&mut PassSnapshot) -> T) -> T {
        f(&mut self.progress.kinds[self.kind.index()].lock().unwrap())
    }

    pub fn set_to_check(&self, items: u64) {
        self.with(|s| s.to_check = items);
    }

    /// Adds what the pass just found.
    pub fn add(&self, counts: RepairCounts) {
        self.with(|s| {
            s.pass.add(counts);
            s.totals.add(counts);
        });
    }
}

impl Drop for PassGuard {
    fn drop(&mut self) {
        let now_ms = self.clock.now_ms();
        self.with(|s| {
            s.running = false;
            s.finished_ms = Some(now_ms);
            s.passes += 1;
            s.last_pass = s.pass;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FixedClock(u64);
    impl Clock for FixedClock {
        fn now_ms(&self) -> u64 {
            self.0
        }
    }

    #[test]
    fn one_pass_of_a_kind_at_a_time_and_totals_only_grow() {
        let progress = Arc::new(RepairProgress::default());
        let clock: Arc<dyn Clock> = Arc::new(FixedClock(7));
        let Ok(pass) = progress.begin(RepairKind::Blocks, true, clock.clone()) else {
            panic!("nothing runs yet");
        };
        pass.set_to_check(3);
        pass.add(RepairCounts { checked: 2, repaired: 1, ..Default::default() });
        let Err(busy) = progress.begin(RepairKind::Blocks, false, clock.clone()) else {
            panic!("a second blocks pass started while the first runs");
        };
        assert!(busy.running && busy.launched && busy.finished_ms.is_none(), "{busy:?}");
        assert_eq!((busy.to_check, busy.pass.checked), (3, 2));
        // Another kind is independent.
        assert!(progress.begin(RepairKind::Scrub, false, clock.clone()).is_ok());
        drop(pass);
        let done = progress.snapshot(RepairKind::Blocks);
        assert!(!done.running && done.finished_ms == Some(7) && done.passes == 1, "{done:?}");
        assert_eq!(done.last_pass, done.pass);

        let Ok(second) = progress.begin(RepairKind::Blocks, false, clock) else {
            panic!("the first pass ended");
        };
        second.add(RepairCounts { checked: 1, errors: 1, ..Default::default() });
        let s = progress.snapshot(RepairKind::Blocks);
        assert_eq!(s.pass, RepairCounts { checked: 1, errors: 1, ..Default::default() });
        let totals = RepairCounts { checked: 3, repaired: 1, unrecoverable: 0, errors: 1 };
        assert_eq!((s.totals, s.passes, s.to_check, s.launched), (totals, 1, 0, false));
        assert_eq!(s.last_pass.repaired, 1, "the finished pass, until the running one ends");
        assert_eq!(RepairKind::parse("scrub"), Some(RepairKind::Scrub));
        assert_eq!(RepairKind::parse("all"), None);
    }
}
