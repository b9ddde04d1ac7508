//! The file `--trace-out` writes, and reading it back (for `report` and `research`).
//!
//! JSON lines: first a `{"meta":"run", ...}` line (scenario file and name, seed, commit,
//! nodes and their zones, consistency mode, latency profile), then one line per trace event
//! (`t_us`, `node`, `kind`, `payload`, and a `detail` object for client operations, faults,
//! the verdict and engine events with a text payload: see `trace`), then a
//! `{"meta":"end", ...}` line (trace hash, result, simulated ms). The header and the end
//! line hold nothing that varies between two runs of one seed with one build, so two
//! deterministic runs write identical files (`check-determinism` compares them).

use std::io::Write;

use serde_json::{Value, json};

use crate::history::{Op, OpKind, Outcome};
use crate::run::RunResult;
use crate::scenario::Scenario;

/// The header line of a trace file.
pub fn header_line(path: &str, scenario: &Scenario, seed: u64, commit: &str) -> String {
    let nodes = scenario.all_node_names();
    let zones: serde_json::Map<String, Value> =
        nodes.iter().map(|n| (n.clone(), scenario.zone_of(n).into())).collect();
    let net = &scenario.network;
    let range = |r: &Option<toml::Spanned<Vec<u64>>>| r.as_ref().map(|r| r.get_ref().clone());
    json!({
        "meta": "run",
        "scenario": path,
        "name": scenario.name,
        "description": scenario.description,
        "seed": seed,
        "commit": commit,
        "nodes": nodes,
        "zones": zones,
        "consistency_mode": scenario.cluster.consistency_mode.get_ref(),
        "workload": scenario.workload.kind.get_ref(),
        "workload_ms": scenario.workload.duration_ms,
        "intra_zone_latency_ms": range(&net.intra_zone_latency_ms),
        "inter_zone_latency_ms": range(&net.inter_zone_latency_ms),
        "client_latency_ms": [net.min_latency_ms, net.max_latency_ms],
    })
    .to_string()
}

/// The last line of a trace file.
pub fn end_line(result: &RunResult) -> String {
    let outcome = match &result.violation {
        None => "pass".to_string(),
        Some(v) => format!("fail: {v}"),
    };
    json!({
        "meta": "end",
        "trace": result.trace_hash,
        "result": outcome,
        "sim_ms": result.sim_ms,
        "ops": result.ops,
    })
    .to_string()
}

/// Writes the whole trace file of a run made with `keep_events`.
pub fn write(out: &mut dyn Write, header: &str, result: &RunResult) -> std::io::Result<()> {
    writeln!(out, "{header}")?;
    result.recorder.lock().unwrap().write_jsonl(out)?;
    writeln!(out, "{}", end_line(result))
}

/// One event read back.
#[derive(Debug, Clone)]
pub struct TraceEvent {
    pub time_us: u64,
    pub node: String,
    pub kind: String,
    pub detail: Option<Value>,
}

/// A trace file read back.
#[derive(Debug, Clone, Default)]
pub struct TraceFile {
    /// The header (`Value::Null` if the file had none).
    pub meta: Value,
    pub events: Vec<TraceEvent>,
    /// The end line (`Value::Null` if the run did not finish writing it).
    pub end: Value,
}

/// A client operation read back from its `op` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracedOp {
    pub op: Op,
    /// The node it went through.
    pub via: String,
    /// The condition a conditional PUT carried (`if-match: "…"`, `if-none-match: *`).
    pub condition: Option<String>,
    /// The calls of a write done as a multipart upload (`create n1 200 @…us, part 1 …`).
    pub multipart: Option<String>,
}

impl TraceFile {
    /// Parses a trace file; an error names the line (1-based) and what is wrong.
    pub fn parse(text: &str) -> Result<TraceFile, String> {
        let mut file = TraceFile::default();
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let at = |why: String| format!("line {}: {why}", i + 1);
            let value: Value = serde_json::from_str(line).map_err(|e| at(e.to_string()))?;
            match value.get("meta").and_then(Value::as_str) {
                Some("run") => file.meta = value,
                Some("end") => file.end = value,
                Some(other) => return Err(at(format!("unknown meta line `{other}`"))),
                None => file.events.push(parse_event(&value).map_err(at)?),
            }
        }
        if file.events.is_empty() {
            return Err("no trace events (was it written by `hangar-sim run --trace-out`?)".into());
        }
        Ok(file)
    }

    /// A string field of the header, or "?".
    pub fn meta_str(&self, field: &str) -> String {
        match self.meta.get(field) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => "?".into(),
            Some(other) => other.to_string(),
        }
    }

    /// Every client operation, in the order they completed.
    pub fn ops(&self) -> Vec<TracedOp> {
        let ops = self.events.iter().filter(|e| e.kind == "op");
        ops.filter_map(|e| e.detail.as_ref().and_then(op_of)).collect()
    }

    /// The simulated time the run ended at (µs).
    pub fn end_us(&self) -> u64 {
        let last = self.events.iter().map(|e| e.time_us).max().unwrap_or(0);
        let end = self.end.get("sim_ms").and_then(Value::as_u64).map_or(0, |ms| ms * 1000);
        last.max(end).max(1)
    }
}

fn parse_event(value: &Value) -> Result<TraceEvent, String> {
    let field = |name: &str| value.get(name).ok_or_else(|| format!("no field `{name}`"));
    let time_us = field("t_us")?.as_u64().ok_or("`t_us` is not a number")?;
    let text = |name: &str| -> Result<String, String> {
        Ok(field(name)?.as_str().ok_or(format!("`{name}` is not a string"))?.to_string())
    };
    Ok(TraceEvent {
        time_us,
        node: text("node")?,
        kind: text("kind")?,
        detail: value.get("detail").cloned(),
    })
}

/// The operation an `op` event's detail describes (see `trace::op_detail`).
fn op_of(detail: &Value) -> Option<TracedOp> {
    let text = |name: &str| detail.get(name).and_then(Value::as_str).map(str::to_string);
    let number = |name: &str| detail.get(name).and_then(Value::as_u64);
    let kind = match text("op")?.as_str() {
        "put" => OpKind::Put { value: text("value")?.into_bytes() },
        "delete" => OpKind::Delete,
        "get" => OpKind::Get,
        _ => return None,
    };
    let outcome = match text("outcome")?.as_str() {
        "ok" => Outcome::Ok { read: text("read").map(String::into_bytes) },
        "fail" => Outcome::Fail,
        "unknown" => Outcome::Info,
        _ => return None,
    };
    let op = Op {
        client: text("client")?,
        key: text("key")?,
        kind,
        invoke_us: number("invoke_us")?,
        complete_us: number("complete_us")?,
        outcome,
    };
    let via = text("via").unwrap_or_default();
    Some(TracedOp { op, via, condition: text("condition"), multipart: text("multipart") })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::op_detail;

    #[test]
    fn an_op_survives_the_round_trip_through_its_detail() {
        let ops = [
            Op {
                client: "c1".into(),
                key: "k2".into(),
                kind: OpKind::Put { value: b"c1-3".to_vec() },
                invoke_us: 10,
                complete_us: 250,
                outcome: Outcome::Ok { read: None },
            },
            Op {
                client: "c2".into(),
                key: "k2".into(),
                kind: OpKind::Get,
                invoke_us: 300,
                complete_us: 420,
                outcome: Outcome::Ok { read: Some(b"c1-3".to_vec()) },
            },
            Op {
                client: "c2".into(),
                key: "k1".into(),
                kind: OpKind::Get,
                invoke_us: 300,
                complete_us: 420,
                outcome: Outcome::Ok { read: None },
            },
            Op {
                client: "c3".into(),
                key: "k1".into(),
                kind: OpKind::Delete,
                invoke_us: 5,
                complete_us: 6_000_000,
                outcome: Outcome::Info,
            },
        ];
        for op in ops {
            let detail: Value = serde_json::from_str(&op_detail(&op, "n3").unwrap()).unwrap();
            let traced = TracedOp { op, via: "n3".into(), condition: None, multipart: None };
            assert_eq!(op_of(&detail), Some(traced));
        }
        // A conditional PUT keeps its condition.
        let op = Op {
            client: "c4".into(),
            key: "k0".into(),
            kind: OpKind::Put { value: b"c4-9".to_vec() },
            invoke_us: 7,
            complete_us: 90,
            outcome: Outcome::Fail,
        };
        let condition = "if-match: \"e1\"";
        let detail = crate::trace::op_detail_with(&op, "n2", Some(condition)).unwrap();
        let detail: Value = serde_json::from_str(&detail).unwrap();
        let traced =
            TracedOp { op, via: "n2".into(), condition: Some(condition.into()), multipart: None };
        assert_eq!(op_of(&detail), Some(traced.clone()));
        // A multipart upload keeps its calls and the nodes they went through.
        let calls = "create n1 200 @7us, part 1 n3 200 @40us, abort n2 204 @90us";
        let detail = crate::trace::multipart_op_detail(&traced.op, "n1,n3,n2", calls).unwrap();
        let detail: Value = serde_json::from_str(&detail).unwrap();
        let multipart = Some(calls.to_string());
        let traced = TracedOp { via: "n1,n3,n2".into(), condition: None, multipart, ..traced };
        assert_eq!(op_of(&detail), Some(traced));
    }

    #[test]
    fn a_bad_line_is_named() {
        let text = "{\"meta\":\"run\"}\n{\"t_us\":1,\"node\":\"n1\"}\n";
        assert_eq!(TraceFile::parse(text).unwrap_err(), "line 2: no field `kind`");
        assert!(TraceFile::parse("{\"meta\":\"run\"}\n").unwrap_err().contains("no trace events"));
    }
}
