//! What the engine's workers did, learnt from the seam's trace events.
//!
//! The engine reports its notable events (a GC pass that deleted something, a resync that
//! fetched blocks, anti-entropy that found differing partitions, every RPC it served, a
//! corrupt or missing block copy) to `Seam::trace`, which the simulation hashes into its
//! trace and production used to discard. The production node now keeps, per event kind, a
//! count and the last occurrence (with the report text of worker passes), for `/metrics`
//! (`hangar_engine_events_total{kind}`) and `/v1/workers` — without any new hook in the
//! engine. Workers report only passes that did something, so "last activity" is the last
//! pass that changed anything, not the last pass.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use hangar_engine::seam::{Clock, TraceSink};

use crate::metrics::TextWriter;

/// Event kinds whose payload is a worker's report as text (kept for `/v1/workers`).
const REPORT_KINDS: &[&str] = &["anti-entropy", "gc", "resync", "scrub", "layout.step"];
/// Reports are kept up to this length.
const REPORT_CHARS_MAX: usize = 300;

/// One event kind's history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KindStats {
    pub count: u64,
    pub last_ms: u64,
    pub last_report: Option<String>,
}

/// A `TraceSink` that counts events, then passes them on.
pub struct EngineEvents {
    inner: Arc<dyn TraceSink>,
    clock: Arc<dyn Clock>,
    kinds: Mutex<BTreeMap<String, KindStats>>,
}

impl EngineEvents {
    pub fn new(inner: Arc<dyn TraceSink>, clock: Arc<dyn Clock>) -> EngineEvents {
        EngineEvents { inner, clock, kinds: Mutex::new(BTreeMap::new()) }
    }

    pub fn get(&self, kind: &str) -> Option<KindStats> {
        self.kinds.lock().unwrap().get(kind).cloned()
    }

    /// `hangar_engine_events_total{kind}`.
    pub fn render(&self, out: &mut TextWriter) {
        let name = "hangar_engine_events_total";
        out.family(name, "counter", "Engine events: RPCs served, worker passes that did work");
        for (kind, stats) in self.kinds.lock().unwrap().iter() {
            out.sample(name, &[("kind", kind)], stats.count as f64);
        }
    }
}

impl TraceSink for EngineEvents {
    fn event(&self, kind: &str, payload: &[u8]) {
        self.inner.event(kind, payload);
        let now_ms = self.clock.now_ms();
        let mut kinds = self.kinds.lock().unwrap();
        // Most events are of kinds already seen: allocate the key only the first time.
        if !kinds.contains_key(kind) {
            kinds.insert(kind.to_string(), KindStats::default());
        }
        let stats = kinds.get_mut(kind).expect("inserted above");
        stats.count += 1;
        stats.last_ms = now_ms;
        if REPORT_KINDS.contains(&kind) {
            let text = String::from_utf8_lossy(payload);
            stats.last_report = Some(text.chars().take(REPORT_CHARS_MAX).collect());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hangar_engine::seam::NoTrace;

    struct FixedClock(u64);
    impl Clock for FixedClock {
        fn now_ms(&self) -> u64 {
            self.0
        }
    }

    #[test]
    fn events_are_counted_and_worker_reports_kept() {
        let events = EngineEvents::new(Arc::new(NoTrace), Arc::new(FixedClock(42)));
        events.event("rpc.table", &[1, 2, 3]);
        events.event("rpc.table", &[4]);
        events.event("gc", b"GcReport { blocks_deleted: 2 }");
        let rpc = events.get("rpc.table").unwrap();
        assert_eq!((rpc.count, rpc.last_ms, rpc.last_report), (2, 42, None));
        let gc = events.get("gc").unwrap();
        assert_eq!(gc.last_report.as_deref(), Some("GcReport { blocks_deleted: 2 }"));
        assert_eq!(events.get("scrub"), None);
        let mut w = TextWriter::default();
        events.render(&mut w);
        let text = w.finish();
        assert!(text.contains("hangar_engine_events_total{kind=\"gc\"} 1\n"), "{text}");
        assert!(text.contains("hangar_engine_events_total{kind=\"rpc.table\"} 2\n"));
    }
}
