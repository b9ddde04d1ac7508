//! A replicated register table: string keys, byte values, last-writer-wins.
//!
//! It is the simplest useful client of the table layer, and what the simulation's register
//! workload and checkers drive. A deleted key is a register holding `None`, so a delete is
//! ordered against writes like any other write.

use std::sync::Mutex;

use crate::crdt::Lww;
use crate::seam::Clock;
use crate::table::TableSchema;

pub struct KvSchema;

impl TableSchema for KvSchema {
    const NAME: &'static str = "kv";
    type Entry = Lww<Option<Vec<u8>>>;
    const COLLECTS_TOMBSTONES: bool = true;

    /// A deleted register is a `None` stamped at the delete.
    fn tombstone_since_ms(entry: &Self::Entry) -> Option<u64> {
        entry.value().is_none().then(|| entry.timestamp())
    }
}

pub fn kv_key(key: &str) -> Vec<u8> {
    crate::table::entry_key(key.as_bytes(), b"")
}

/// Hands out write timestamps that never go backwards on this node, even if its wall clock
/// does (NTP steps, simulated skew changes): `max(now, last + 1)`, and — through
/// `next_after` — above the version being replaced, so that a write which follows another
/// (possibly coordinated by a node whose clock runs ahead) is never ordered before it.
pub struct Stamper {
    last: Mutex<u64>,
}

impl Stamper {
    pub fn new() -> Self {
        Stamper { last: Mutex::new(0) }
    }

    pub fn next(&self, clock: &dyn Clock) -> u64 {
        self.next_after(clock, 0)
    }

    /// A timestamp above `seen` (the timestamp of the version the write replaces).
    pub fn next_after(&self, clock: &dyn Clock, seen: u64) -> u64 {
        let mut last = self.last.lock().unwrap();
        *last = clock.now_ms().max(*last + 1).max(seen + 1);
        *last
    }
}

impl Default for Stamper {
    fn default() -> Self {
        Self::new()
    }
}
