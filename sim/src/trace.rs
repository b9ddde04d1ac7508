//! The canonical event trace of a run, and its hash.
//!
//! Every event is `(simulated time in µs, node, kind, blake3(payload))`. The trace hash
//! (printed as `trace=`) is blake3 over the encoded events in order: two runs of one seed
//! must produce the same hash, and `check-determinism` compares whole traces to name the
//! first event that differs.

use std::io::Write;

/// One trace event; `payload` is the hex blake3 of the event's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub time_us: u128,
    pub node: String,
    pub kind: String,
    pub payload: String,
}

impl Event {
    pub fn to_json_line(&self) -> String {
        format!(
            "{{\"t_us\":{},\"node\":\"{}\",\"kind\":\"{}\",\"payload\":\"{}\"}}",
            self.time_us, self.node, self.kind, self.payload
        )
    }
}

#[derive(Default)]
pub struct Recorder {
    hasher: blake3::Hasher,
    events: Vec<Event>,
    keep_events: bool,
    count: u64,
}

impl Recorder {
    pub fn new(keep_events: bool) -> Self {
        Recorder { hasher: blake3::Hasher::new(), events: Vec::new(), keep_events, count: 0 }
    }

    /// Records an event at the current simulated time (zero outside a simulation step).
    pub fn record(&mut self, node: &str, kind: &str, payload: &[u8]) {
        let time_us = turmoil::sim_elapsed().map(|d| d.as_micros()).unwrap_or(0);
        self.record_at(time_us, node, kind, payload);
    }

    pub fn record_at(&mut self, time_us: u128, node: &str, kind: &str, payload: &[u8]) {
        let payload = blake3::hash(payload).to_hex().to_string();
        let event = Event { time_us, node: node.into(), kind: kind.into(), payload };
        self.hasher.update(event.to_json_line().as_bytes());
        self.hasher.update(b"\n");
        self.count += 1;
        if self.keep_events {
            self.events.push(event);
        }
    }

    pub fn hash_hex(&self) -> String {
        self.hasher.finalize().to_hex().to_string()
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn write_jsonl(&self, out: &mut dyn Write) -> std::io::Result<()> {
        for e in &self.events {
            writeln!(out, "{}", e.to_json_line())?;
        }
        Ok(())
    }
}
