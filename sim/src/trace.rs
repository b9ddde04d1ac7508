//! The canonical event trace of a run, and its hash.
//!
//! Every event is `(simulated time in µs, node, kind, blake3(payload))`. The trace hash
//! (printed as `trace=`) is blake3 over the encoded events in order: two runs of one seed
//! must produce the same hash, and `check-determinism` compares whole traces to name the
//! first event that differs.
//!
//! `--trace-out` writes the kept events as JSON lines (`write_jsonl`), each with an optional
//! `detail`: a JSON object saying what happened in readable form (a client operation's
//! times and outcome, a fault and the nodes it hits, the checkers' verdict, an engine
//! event's text). Details are not hashed: the trace hash is the same with or without them,
//! and they are only built when events are kept. `hangar-sim report` and `research` read
//! them (docs/simulation.md, "Explaining a run").

use std::io::Write;

use crate::check::set::{SetOp, SetOpKind, SetOutcome};
use crate::faults::Fault;
use crate::history::{Op, OpKind, Outcome};

/// One trace event; `payload` is the hex blake3 of the event's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub time_us: u128,
    pub node: String,
    pub kind: String,
    pub payload: String,
    /// What happened, as a JSON object (not hashed; only kept events have one).
    pub detail: Option<String>,
}

impl Event {
    pub fn to_json_line(&self) -> String {
        format!(
            "{{\"t_us\":{},\"node\":\"{}\",\"kind\":\"{}\",\"payload\":\"{}\"}}",
            self.time_us, self.node, self.kind, self.payload
        )
    }

    /// The line `--trace-out` writes: the hashed line, plus the detail if there is one.
    pub fn to_trace_line(&self) -> String {
        let line = self.to_json_line();
        match &self.detail {
            None => line,
            Some(detail) => format!("{},\"detail\":{detail}}}", &line[..line.len() - 1]),
        }
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
    /// Records an event; a kept event's detail is the payload's text, if it is text.
    pub fn record(&mut self, node: &str, kind: &str, payload: &[u8]) {
        self.record_detailed(node, kind, payload, || text_detail(payload));
    }

    /// Records an event whose detail (a JSON object, or `None`) `detail` builds, only when
    /// events are kept.
    pub fn record_detailed(
        &mut self,
        node: &str,
        kind: &str,
        payload: &[u8],
        detail: impl FnOnce() -> Option<String>,
    ) {
        let time_us = turmoil::sim_elapsed().map(|d| d.as_micros()).unwrap_or(0);
        self.record_at_detailed(time_us, node, kind, payload, detail);
    }

    pub fn record_at(&mut self, time_us: u128, node: &str, kind: &str, payload: &[u8]) {
        self.record_at_detailed(time_us, node, kind, payload, || text_detail(payload));
    }

    pub fn record_at_detailed(
        &mut self,
        time_us: u128,
        node: &str,
        kind: &str,
        payload: &[u8],
        detail: impl FnOnce() -> Option<String>,
    ) {
        let payload = blake3::hash(payload).to_hex().to_string();
        let detail = if self.keep_events { detail() } else { None };
        let event = Event { time_us, node: node.into(), kind: kind.into(), payload, detail };
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
            writeln!(out, "{}", e.to_trace_line())?;
        }
        Ok(())
    }
}

/// `{"text": ...}` for a payload that is printable text (engine events' reports); `None`
/// for binary payloads (node ids).
fn text_detail(payload: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(payload).ok()?;
    if text.is_empty() || text.chars().any(|c| c.is_control()) {
        return None;
    }
    Some(serde_json::json!({ "text": text }).to_string())
}

/// The detail of a client operation: who, which key, what, when (`invoke_us`, `complete_us`,
/// `latency_us`), how it ended (`ok`, `fail`, `unknown`), the value written or read
/// (`null`: absent) and the node it went through.
pub fn op_detail(op: &Op, via: &str) -> Option<String> {
    op_detail_with(op, via, None)
}

/// `op_detail`, plus the condition a conditional PUT carried (`condition`, e.g.
/// `if-match: "…"`).
pub fn op_detail_with(op: &Op, via: &str, condition: Option<&str>) -> Option<String> {
    let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
    let (name, written) = match &op.kind {
        OpKind::Put { value } => ("put", Some(text(value))),
        OpKind::Delete => ("delete", None),
        OpKind::Get => ("get", None),
    };
    let mut detail = serde_json::json!({
        "client": op.client,
        "key": op.key,
        "op": name,
        "invoke_us": op.invoke_us,
        "complete_us": op.complete_us,
        "latency_us": op.complete_us.saturating_sub(op.invoke_us),
        "via": via,
    });
    let fields = detail.as_object_mut().expect("an object");
    if let Some(value) = written {
        fields.insert("value".into(), value.into());
    }
    let outcome = match &op.outcome {
        Outcome::Ok { read } => {
            if op.kind == OpKind::Get {
                fields.insert("read".into(), read.as_deref().map(text).into());
            }
            "ok"
        }
        Outcome::Fail => "fail",
        Outcome::Info => "unknown",
    };
    fields.insert("outcome".into(), outcome.into());
    if let Some(condition) = condition {
        fields.insert("condition".into(), condition.into());
    }
    Some(detail.to_string())
}

/// The detail of a write done as a multipart upload: `op_detail`'s, with `via` the nodes
/// its calls went through and `multipart` the calls themselves (`s3multipart`).
pub fn multipart_op_detail(op: &Op, via: &str, calls: &str) -> Option<String> {
    let mut detail: serde_json::Value = serde_json::from_str(&op_detail(op, via)?).ok()?;
    detail.as_object_mut()?.insert("multipart".into(), calls.into());
    Some(detail.to_string())
}

/// The detail of a set workload operation: like `op_detail`, with `op` `add` (`key`: the
/// element) or `list` (`key`: the prefix; `listed`: how many elements an acknowledged
/// listing returned), and `note` (the status of an add, the pages of a listing, or why a
/// listing failed).
pub fn set_op_detail(op: &SetOp, via: &str, note: &str) -> Option<String> {
    let (name, key) = match &op.kind {
        SetOpKind::Add { element } => ("add", element.as_str()),
        SetOpKind::List => ("list", crate::setworkload::SET_PREFIX),
    };
    let outcome = match &op.outcome {
        SetOutcome::Ok { .. } => "ok",
        SetOutcome::Fail => "fail",
        SetOutcome::Info => "unknown",
    };
    let mut detail = serde_json::json!({
        "client": op.client,
        "key": key,
        "op": name,
        "invoke_us": op.invoke_us,
        "complete_us": op.complete_us,
        "latency_us": op.complete_us.saturating_sub(op.invoke_us),
        "via": via,
        "outcome": outcome,
        "note": note,
    });
    if let SetOutcome::Ok { listed: Some(listed) } = &op.outcome {
        detail.as_object_mut().expect("an object").insert("listed".into(), listed.len().into());
    }
    Some(detail.to_string())
}

/// The detail of a fault: its scenario-file name (`fault`), the nodes it acts on (`nodes`;
/// empty for `heal` and `release`, which end faults), its value (`skew_ms`, `drift_ppm`)
/// and what it did (`note`, for disk faults and layout changes).
pub fn fault_detail(
    fault: &Fault,
    nodes_of_zone: impl Fn(&str) -> Vec<String>,
    note: &str,
) -> String {
    let one = |n: &String| vec![n.clone()];
    let (name, nodes, value): (&str, Vec<String>, Option<(&str, i64)>) = match fault {
        Fault::Isolate { node } => ("isolate", one(node), None),
        Fault::Partition { nodes } => ("partition", nodes.clone(), None),
        Fault::Heal => ("heal", vec![], None),
        Fault::Crash { node } => ("crash", one(node), None),
        Fault::CrashMidWrite { node } => ("crash_mid_write", one(node), None),
        Fault::Restart { node } => ("restart", one(node), None),
        Fault::ClockSkew { node, skew_ms } => {
            ("clock_skew", one(node), Some(("skew_ms", *skew_ms)))
        }
        Fault::CorruptBlock { node } => ("corrupt_block", one(node), None),
        Fault::DiskLoss { node } => ("disk_loss", one(node), None),
        Fault::LayoutChange { add, remove } => {
            ("layout_change", add.iter().chain(remove).cloned().collect(), None)
        }
        Fault::PartitionOneway { from, to } => {
            ("partition_oneway", from.iter().chain(to).cloned().collect(), None)
        }
        Fault::ZoneSplit { a, b } => {
            ("zone_split", [nodes_of_zone(a), nodes_of_zone(b)].concat(), None)
        }
        Fault::Hold { nodes } => ("hold", nodes.clone(), None),
        Fault::Release => ("release", vec![], None),
        Fault::Pause { node } => ("pause", one(node), None),
        Fault::Resume { node } => ("resume", one(node), None),
        Fault::ClockDrift { node, drift_ppm } => {
            ("clock_drift", one(node), Some(("drift_ppm", *drift_ppm)))
        }
        Fault::PacketLoss { nodes, .. } => ("packet_loss", nodes.clone(), None),
        Fault::DiskEio { node } => ("disk_eio", one(node), None),
        Fault::DiskFull { node } => ("disk_full", one(node), None),
        Fault::DiskSlow { node, latency_ms, .. } => {
            ("disk_slow", one(node), Some(("latency_ms", *latency_ms as i64)))
        }
        Fault::DiskRepair { node } => ("disk_repair", one(node), None),
    };
    let mut detail =
        serde_json::json!({ "fault": name, "nodes": nodes, "desc": format!("{fault:?}") });
    let fields = detail.as_object_mut().expect("an object");
    if let Some((key, v)) = value {
        fields.insert(key.into(), v.into());
    }
    if !note.is_empty() {
        fields.insert("note".into(), note.into());
    }
    detail.to_string()
}

/// The detail of the checkers' verdict: `pass`, or `fail` with the checker and its details.
pub fn verdict_detail(violation: Option<&crate::check::Violation>) -> String {
    match violation {
        None => serde_json::json!({ "result": "pass" }).to_string(),
        Some(v) => serde_json::json!({
            "result": "fail",
            "checker": v.checker,
            "details": v.details,
        })
        .to_string(),
    }
}
