//! `hangar-sim report`: one run, explained as a single self-contained HTML page (inline
//! SVG and CSS; no script, nothing fetched), from the trace file `--trace-out` wrote.
//!
//! The page has: a header (scenario, seed, commit, trace hash, result); a timeline with a
//! row per node, where faults are shaded (network cuts, crashes, pauses and held messages,
//! clock skew and drift, disk faults) and one-off faults are marked, and a row per client
//! with each operation as a bar from invocation to completion; a latency-over-time plot;
//! and, when a checker failed, the violation with the operations it names highlighted in
//! both. Every text that comes from the trace is escaped. Hovering an element shows its
//! details (SVG `<title>`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::Value;

use crate::history::{OpKind, Outcome};
use crate::tracefile::{TraceFile, TracedOp};

/// Escapes text for HTML and SVG (element content and attribute values).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// How a fault is shaded: one class (and colour) per family of faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultClass {
    /// Isolation, partitions, zone splits, packet loss.
    Network,
    /// Messages held (hold, pause).
    Held,
    /// Process down (crash until restart).
    Crash,
    /// Clock skew or drift in force.
    Clock,
    /// Disk failing (EIO), full or slow.
    Disk,
}

impl FaultClass {
    fn css(self) -> &'static str {
        match self {
            FaultClass::Network => "f-net",
            FaultClass::Held => "f-held",
            FaultClass::Crash => "f-crash",
            FaultClass::Clock => "f-clock",
            FaultClass::Disk => "f-disk",
        }
    }

    fn legend(self) -> &'static str {
        match self {
            FaultClass::Network => "network cut / loss",
            FaultClass::Held => "paused / held",
            FaultClass::Crash => "crashed",
            FaultClass::Clock => "clock skew / drift",
            FaultClass::Disk => "disk EIO / full / slow",
        }
    }

    const ALL: [FaultClass; 5] = [
        FaultClass::Network,
        FaultClass::Held,
        FaultClass::Crash,
        FaultClass::Clock,
        FaultClass::Disk,
    ];
}

/// A fault in force on one node over `[start_us, end_us)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub class: FaultClass,
    pub node: String,
    pub start_us: u64,
    pub end_us: u64,
    pub label: String,
}

/// A one-off fault (block corruption, disk loss, layout change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub node: String,
    pub at_us: u64,
    pub label: String,
}

/// What a fault event starts or ends (`fault` name of its detail).
enum Effect {
    Start(FaultClass, &'static str),
    /// Ends every span of these keys on the fault's nodes (or on every node if it names none).
    End(&'static [&'static str]),
    /// A clock change: ends the node's span of that key, starts one unless the value is 0.
    Set(&'static str, &'static str),
    Instant,
}

fn effect_of(fault: &str) -> Option<Effect> {
    Some(match fault {
        "isolate" | "partition" | "partition_oneway" | "zone_split" | "packet_loss" => {
            Effect::Start(FaultClass::Network, "net")
        }
        "hold" => Effect::Start(FaultClass::Held, "hold"),
        "pause" => Effect::Start(FaultClass::Held, "pause"),
        // A power cut falls on one of the node's next disk writes, within a step or two.
        "crash" | "crash_mid_write" => Effect::Start(FaultClass::Crash, "crash"),
        "disk_eio" | "disk_full" | "disk_slow" => Effect::Start(FaultClass::Disk, "disk"),
        "heal" => Effect::End(&["net", "hold", "pause", "disk"]),
        "release" => Effect::End(&["hold"]),
        "resume" => Effect::End(&["pause"]),
        "restart" => Effect::End(&["crash"]),
        "disk_repair" => Effect::End(&["disk"]),
        "clock_skew" => Effect::Set("skew", "skew_ms"),
        "clock_drift" => Effect::Set("drift", "drift_ppm"),
        "corrupt_block" | "disk_loss" | "layout_change" => Effect::Instant,
        _ => return None,
    })
}

/// Fault spans per node and one-off marks, from the trace's `fault` events; spans still
/// open at the end of the trace end there.
pub fn fault_spans(trace: &TraceFile) -> (Vec<Span>, Vec<Mark>) {
    let all_nodes = node_names(trace);
    let mut open: BTreeMap<(String, &'static str), (FaultClass, u64, String)> = BTreeMap::new();
    let mut spans = Vec::new();
    let mut marks = Vec::new();
    let mut close = |open: &mut BTreeMap<_, (FaultClass, u64, String)>, node: &str, key, at| {
        if let Some((class, start_us, label)) = open.remove(&(node.to_string(), key)) {
            spans.push(Span { class, node: node.to_string(), start_us, end_us: at, label });
        }
    };
    for e in trace.events.iter().filter(|e| e.kind == "fault") {
        let Some(detail) = &e.detail else { continue };
        let name = detail.get("fault").and_then(Value::as_str).unwrap_or("");
        let desc = detail.get("desc").and_then(Value::as_str).unwrap_or(name).to_string();
        let mut nodes: Vec<String> = (detail.get("nodes").and_then(Value::as_array))
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default();
        // A layout change's added nodes appear in its note; a disk loss restarts its node.
        let label = match detail.get("note").and_then(Value::as_str) {
            Some(note) => format!("{desc}: {note}"),
            None => desc,
        };
        let at = e.time_us;
        match effect_of(name) {
            Some(Effect::Start(class, key)) => {
                for node in nodes {
                    close(&mut open, &node, key, at);
                    open.insert((node, key), (class, at, format!("{label} from {}", ms(at))));
                }
            }
            Some(Effect::End(keys)) => {
                if nodes.is_empty() {
                    nodes = all_nodes.clone();
                }
                for node in &nodes {
                    for key in keys {
                        close(&mut open, node, key, at);
                    }
                }
            }
            Some(Effect::Set(key, field)) => {
                let value = detail.get(field).and_then(Value::as_i64).unwrap_or(0);
                for node in nodes {
                    close(&mut open, &node, key, at);
                    if value != 0 {
                        let label = format!("{label} from {}", ms(at));
                        open.insert((node, key), (FaultClass::Clock, at, label));
                    }
                }
            }
            Some(Effect::Instant) => {
                for node in &nodes {
                    marks.push(Mark { node: node.clone(), at_us: at, label: label.clone() });
                    if name == "disk_loss" {
                        close(&mut open, node, "crash", at);
                    }
                }
            }
            None => {}
        }
    }
    let end = trace.end_us();
    for ((node, key), _) in open.clone() {
        close(&mut open, &node, key, end);
    }
    spans.sort_by(|a, b| (a.start_us, &a.node).cmp(&(b.start_us, &b.node)));
    (spans, marks)
}

/// The nodes of the run: the header's, else every node named by an event.
fn node_names(trace: &TraceFile) -> Vec<String> {
    if let Some(nodes) = trace.meta.get("nodes").and_then(Value::as_array) {
        return nodes.iter().filter_map(Value::as_str).map(str::to_string).collect();
    }
    let named = trace.events.iter().map(|e| &e.node).filter(|n| n.starts_with('n'));
    named.cloned().collect::<BTreeSet<_>>().into_iter().collect()
}

fn ms(us: u64) -> String {
    format!("{:.1} ms", us as f64 / 1000.0)
}

/// The checkers' verdict: `None` for a pass (or no verdict event).
fn violation(trace: &TraceFile) -> Option<(String, String)> {
    let verdict = trace.events.iter().rev().find(|e| e.kind == "verdict")?;
    let detail = verdict.detail.as_ref()?;
    if detail.get("result").and_then(Value::as_str) != Some("fail") {
        return None;
    }
    let text = |f: &str| detail.get(f).and_then(Value::as_str).unwrap_or("").to_string();
    Some((text("checker"), text("details")))
}

/// The operations a violation's details name (indices into `ops`): the read it judged
/// (`read by C at A..Bus`), the write that had replaced the value (`(by C, acknowledged
/// at Tus)`), and the write of the value returned (`returned X ...`), all on `key=K`.
pub fn involved_ops(details: &str, ops: &[TracedOp]) -> BTreeSet<usize> {
    let word_after = |marker: &str| -> Option<&str> {
        let rest = &details[details.find(marker)? + marker.len()..];
        Some(rest.split([' ', ',', ')']).next().unwrap_or(rest))
    };
    let Some(key) = word_after("key=") else { return BTreeSet::new() };
    let read = word_after("read by ").zip(word_after(" at ")).and_then(|(client, times)| {
        let (a, b) = times.trim_end_matches("us").split_once("..")?;
        Some((client, a.parse::<u64>().ok()?, b.parse::<u64>().ok()?))
    });
    let writer = word_after("(by ")
        .zip(word_after("acknowledged at "))
        .and_then(|(c, t)| Some((c, t.trim_end_matches("us").parse::<u64>().ok()?)));
    let returned = word_after("returned ");
    let mut found = BTreeSet::new();
    for (i, t) in ops.iter().enumerate().filter(|(_, t)| t.op.key == key) {
        let op = &t.op;
        let is_read = read.is_some_and(|(c, a, b)| {
            op.client == c && op.invoke_us == a && op.complete_us == b && op.kind == OpKind::Get
        });
        let is_writer = writer.is_some_and(|(c, at)| {
            op.client == c && op.complete_us == at && op.written().is_some()
        });
        let wrote_returned = match (&op.kind, returned) {
            (OpKind::Put { value }, Some(r)) => value.as_slice() == r.as_bytes(),
            _ => false,
        };
        if is_read || is_writer || wrote_returned {
            found.insert(i);
        }
    }
    found
}

/// The page's geometry: the time axis shared by both plots.
struct Axis {
    end_us: u64,
    left: f64,
    width: f64,
}

impl Axis {
    fn x(&self, us: u64) -> f64 {
        self.left + self.width * us.min(self.end_us) as f64 / self.end_us as f64
    }

    /// Ticks every 1, 2 or 5 × 10^k seconds, about ten in all.
    fn ticks(&self, out: &mut String, top: f64, bottom: f64) {
        let span_ms = self.end_us as f64 / 1000.0;
        let raw = span_ms / 10.0;
        let pow = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * pow).find(|s| *s >= raw).unwrap();
        let mut t = 0.0;
        while t <= span_ms {
            let x = self.x((t * 1000.0) as u64);
            let _ = write!(
                out,
                "<line class=\"grid\" x1=\"{x:.1}\" y1=\"{top:.1}\" x2=\"{x:.1}\" y2=\"{bottom:.1}\"/>\
                 <text class=\"tick\" x=\"{x:.1}\" y=\"{:.1}\">{}</text>",
                bottom + 12.0,
                if step >= 1000.0 { format!("{} s", t / 1000.0) } else { format!("{t} ms") },
            );
            t += step;
        }
    }
}

const ROW_PX: f64 = 20.0;
const WIDTH_PX: f64 = 1100.0;

fn op_css(op: &TracedOp) -> &'static str {
    match op.op.outcome {
        Outcome::Ok { .. } => "op-ok",
        Outcome::Fail => "op-fail",
        Outcome::Info => "op-unknown",
    }
}

fn kind_name(kind: &OpKind) -> &'static str {
    match kind {
        OpKind::Put { .. } => "put",
        OpKind::Delete => "delete",
        OpKind::Get => "get",
    }
}

fn op_title(t: &TracedOp) -> String {
    let op = &t.op;
    let value = match (&op.kind, &op.outcome) {
        (OpKind::Put { value }, _) => format!(" {}", String::from_utf8_lossy(value)),
        (OpKind::Get, Outcome::Ok { read }) => {
            format!(" → {}", crate::history::show(read.as_deref()))
        }
        _ => String::new(),
    };
    let outcome = match op.outcome {
        Outcome::Ok { .. } => "ok",
        Outcome::Fail => "failed",
        Outcome::Info => "unknown",
    };
    let condition = t.condition.as_deref().map_or(String::new(), |c| format!(" ({c})"));
    let multipart = t.multipart.as_deref().map_or(String::new(), |c| format!(" [multipart: {c}]"));
    format!(
        "{} {} {}{value}{condition} via {}: {} .. {} ({}, {outcome}){multipart}",
        op.client,
        kind_name(&op.kind),
        op.key,
        t.via,
        ms(op.invoke_us),
        ms(op.complete_us),
        ms(op.complete_us.saturating_sub(op.invoke_us)),
    )
}

/// The timeline: a row per node (faults), a row per client (operations).
fn timeline_svg(
    out: &mut String,
    axis: &Axis,
    nodes: &[String],
    (spans, marks): (&[Span], &[Mark]),
    ops: &[TracedOp],
    involved: &BTreeSet<usize>,
) {
    let clients: Vec<&str> =
        ops.iter().map(|o| o.op.client.as_str()).collect::<BTreeSet<_>>().into_iter().collect();
    let rows: Vec<&str> = nodes.iter().map(String::as_str).chain(clients.iter().copied()).collect();
    let top = 10.0;
    let bottom = top + ROW_PX * rows.len() as f64;
    let row_y = |name: &str| rows.iter().position(|r| *r == name).map(|i| top + ROW_PX * i as f64);
    let _ = write!(
        out,
        "<svg class=\"timeline\" viewBox=\"0 0 {WIDTH_PX} {:.0}\" width=\"{WIDTH_PX}\" \
         height=\"{:.0}\" xmlns=\"http://www.w3.org/2000/svg\">",
        bottom + 20.0,
        bottom + 20.0
    );
    for (i, row) in rows.iter().enumerate() {
        let y = top + ROW_PX * i as f64;
        let class = if i < nodes.len() { "row-node" } else { "row-client" };
        let _ = write!(
            out,
            "<rect class=\"{class}\" x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{ROW_PX}\"/>\
             <text class=\"label\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            axis.left,
            axis.width,
            axis.left - 6.0,
            y + ROW_PX * 0.7,
            escape(row)
        );
    }
    axis.ticks(out, top, bottom);
    for s in spans {
        let Some(y) = row_y(&s.node) else { continue };
        let (x1, x2) = (axis.x(s.start_us), axis.x(s.end_us));
        let _ = write!(
            out,
            "<rect class=\"fault {}\" x=\"{x1:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\">\
             <title>{} until {}</title></rect>",
            s.class.css(),
            y + 2.0,
            (x2 - x1).max(1.5),
            ROW_PX - 4.0,
            escape(&s.label),
            ms(s.end_us)
        );
    }
    for m in marks {
        let Some(y) = row_y(&m.node) else { continue };
        let x = axis.x(m.at_us);
        let _ = write!(
            out,
            "<path class=\"mark\" d=\"M{x:.1},{:.1} l-5,-8 h10 z\"><title>{} at {}</title></path>",
            y + ROW_PX - 2.0,
            escape(&m.label),
            ms(m.at_us)
        );
    }
    let ordered = (0..ops.len()).filter(|i| !involved.contains(i)).chain(involved.iter().copied());
    for i in ordered {
        let t = &ops[i];
        let Some(y) = row_y(&t.op.client) else { continue };
        let (x1, x2) = (axis.x(t.op.invoke_us), axis.x(t.op.complete_us));
        let extra = if involved.contains(&i) { " involved" } else { "" };
        let _ = write!(
            out,
            "<rect class=\"op {}{extra}\" x=\"{x1:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\">\
             <title>{}</title></rect>",
            op_css(t),
            y + 4.0,
            (x2 - x1).max(1.5),
            ROW_PX - 8.0,
            escape(&op_title(t))
        );
    }
    out.push_str("</svg>\n");
}

/// Latency over time: a point per operation at (invocation, latency), faults as bands.
fn latency_svg(
    out: &mut String,
    axis: &Axis,
    spans: &[Span],
    ops: &[TracedOp],
    involved: &BTreeSet<usize>,
) {
    let (top, height) = (10.0, 260.0);
    let bottom = top + height;
    let max_ms = ops.iter().map(|t| t.op.complete_us.saturating_sub(t.op.invoke_us)).max();
    let max_ms = (max_ms.unwrap_or(0) as f64 / 1000.0 * 1.05).max(1.0);
    let y = |lat_us: u64| bottom - height * (lat_us as f64 / 1000.0) / max_ms;
    let _ = write!(
        out,
        "<svg class=\"latency\" viewBox=\"0 0 {WIDTH_PX} {:.0}\" width=\"{WIDTH_PX}\" \
         height=\"{:.0}\" xmlns=\"http://www.w3.org/2000/svg\">",
        bottom + 20.0,
        bottom + 20.0
    );
    // Fault bands behind the points: one per distinct interval and class.
    let bands: BTreeSet<(u64, u64, FaultClass)> =
        spans.iter().map(|s| (s.start_us, s.end_us, s.class)).collect();
    for (start, end, class) in bands {
        let (x1, x2) = (axis.x(start), axis.x(end));
        let _ = write!(
            out,
            "<rect class=\"band {}\" x=\"{x1:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{height:.1}\"/>",
            class.css(),
            (x2 - x1).max(1.0),
        );
    }
    axis.ticks(out, top, bottom);
    for i in 0..=4 {
        let v = max_ms * i as f64 / 4.0;
        let yy = bottom - height * i as f64 / 4.0;
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{:.1}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\"/>\
             <text class=\"label\" x=\"{:.1}\" y=\"{:.1}\">{v:.0} ms</text>",
            axis.left,
            axis.left + axis.width,
            axis.left - 6.0,
            yy + 4.0
        );
    }
    let ordered = (0..ops.len()).filter(|i| !involved.contains(i)).chain(involved.iter().copied());
    for i in ordered {
        let t = &ops[i];
        let extra = if involved.contains(&i) { " involved" } else { "" };
        let hollow = if t.op.is_ok() { "" } else { " hollow" };
        let _ = write!(
            out,
            "<circle class=\"pt k-{}{hollow}{extra}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"{}\">\
             <title>{}</title></circle>",
            kind_name(&t.op.kind),
            axis.x(t.op.invoke_us),
            y(t.op.complete_us.saturating_sub(t.op.invoke_us)),
            if extra.is_empty() { 2.5 } else { 5.0 },
            escape(&op_title(t))
        );
    }
    out.push_str("</svg>\n");
}

const CSS: &str = "body{font:14px sans-serif;margin:20px;color:#222}\
h1{font-size:20px}h2{font-size:16px;margin-top:24px}\
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}\
.pass{color:#080;font-weight:bold}.fail{color:#c00;font-weight:bold}\
.violation{border:2px solid #c00;background:#fee;padding:8px;margin:8px 0}\
svg text{font:11px sans-serif}.label{text-anchor:end}.tick{text-anchor:middle;fill:#555}\
.grid{stroke:#ddd;stroke-width:1}.row-node{fill:#f7f7f7;stroke:#eee}\
.row-client{fill:#fcfcff;stroke:#eee}.fault{opacity:.75}.band{opacity:.15}\
.f-net{fill:#f39c12}.f-held{fill:#8e44ad}.f-crash{fill:#c0392b}.f-clock{fill:#2980b9}\
.f-disk{fill:#7f5b3a}.mark{fill:#000}.op-ok{fill:#27ae60}.op-fail{fill:#999}\
.op-unknown{fill:#e6b800}.op.involved{stroke:#e00;stroke-width:2.5}\
.pt{stroke-width:1.2}.k-put{fill:#2471a3;stroke:#2471a3}.k-get{fill:#1e8449;stroke:#1e8449}\
.k-delete{fill:#7d3c98;stroke:#7d3c98}.hollow{fill:none}\
.pt.involved{stroke:#e00;stroke-width:3}.key{display:inline-block;width:12px;height:12px;\
margin:0 4px 0 12px;vertical-align:middle}tr.involved td{background:#fdd}";

/// Renders the page of one run.
pub fn render(trace: &TraceFile) -> String {
    let ops = trace.ops();
    let nodes = node_names(trace);
    let (spans, marks) = fault_spans(trace);
    let violation = violation(trace);
    let involved = violation.as_ref().map(|(_, d)| involved_ops(d, &ops)).unwrap_or_default();
    let axis = Axis { end_us: trace.end_us(), left: 70.0, width: WIDTH_PX - 90.0 };
    let mut out = String::new();
    let title = format!("{} seed {}", trace.meta_str("name"), trace.meta_str("seed"));
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>hangar-sim: {}</title>\
         <style>{CSS}</style></head><body>\n<h1>hangar-sim run: {}</h1>\n",
        escape(&title),
        escape(&title)
    );
    header_table(&mut out, trace, &ops);
    if let Some((checker, details)) = &violation {
        let _ = writeln!(
            out,
            "<div class=\"violation\" id=\"violation\"><b>Violation ({})</b>: {}</div>",
            escape(checker),
            escape(details)
        );
    }
    out.push_str("<h2>Timeline</h2>\n<div>");
    for class in FaultClass::ALL {
        let _ = write!(out, "<span class=\"key {}\"></span>{}", class.css(), class.legend());
    }
    out.push_str(
        "<span class=\"key op-ok\"></span>op ok<span class=\"key op-fail\"></span>op failed\
         <span class=\"key op-unknown\"></span>op unknown ▼ one-off fault (corruption, disk \
         loss, layout change)</div>\n",
    );
    timeline_svg(&mut out, &axis, &nodes, (&spans, &marks), &ops, &involved);
    out.push_str(
        "<h2>Latency over time</h2>\n<div><span class=\"key k-put\"></span>put\
         <span class=\"key k-get\"></span>get<span class=\"key k-delete\"></span>delete \
         (hollow: failed or unknown; x: invocation, y: latency)</div>\n",
    );
    latency_svg(&mut out, &axis, &spans, &ops, &involved);
    if !involved.is_empty() {
        out.push_str("<h2>Operations the violation names</h2>\n<table>");
        for i in &involved {
            let _ =
                write!(out, "<tr class=\"involved\"><td>{}</td></tr>", escape(&op_title(&ops[*i])));
        }
        out.push_str("</table>\n");
    }
    fault_table(&mut out, trace);
    out.push_str("</body></html>\n");
    out
}

fn header_table(out: &mut String, trace: &TraceFile, ops: &[TracedOp]) {
    let result = match trace.end.get("result").and_then(Value::as_str) {
        Some(r) => r.to_string(),
        None => "? (the trace has no end line)".into(),
    };
    let class = if result == "pass" { "pass" } else { "fail" };
    let ok = ops.iter().filter(|t| t.op.is_ok()).count();
    let rows = [
        ("scenario", format!("{} ({})", trace.meta_str("scenario"), trace.meta_str("description"))),
        ("seed", trace.meta_str("seed")),
        ("commit", trace.meta_str("commit")),
        ("trace hash", trace.end.get("trace").and_then(Value::as_str).unwrap_or("?").into()),
        ("consistency", trace.meta_str("consistency_mode")),
        ("simulated time", ms(trace.end_us())),
        ("operations", format!("{} ({ok} acknowledged)", ops.len())),
    ];
    out.push_str("<table>");
    for (name, value) in rows {
        let _ = write!(out, "<tr><th>{name}</th><td>{}</td></tr>", escape(&value));
    }
    let _ = writeln!(
        out,
        "<tr><th>result</th><td class=\"{class}\">{}</td></tr></table>",
        escape(&result)
    );
}

fn fault_table(out: &mut String, trace: &TraceFile) {
    out.push_str("<h2>Faults</h2>\n<table><tr><th>at</th><th>fault</th><th>nodes</th></tr>");
    for e in trace.events.iter().filter(|e| e.kind == "fault") {
        let detail = e.detail.as_ref();
        let text = |f: &str| detail.and_then(|d| d.get(f)).and_then(Value::as_str).unwrap_or("");
        let nodes = detail.and_then(|d| d.get("nodes")).and_then(Value::as_array);
        let nodes: Vec<&str> =
            nodes.map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        let note =
            if text("note").is_empty() { String::new() } else { format!(": {}", text("note")) };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}{}</td><td>{}</td></tr>",
            ms(e.time_us),
            escape(text("desc")),
            escape(&note),
            escape(&nodes.join(", "))
        );
    }
    out.push_str("</table>\n");
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::faults::Fault;
    use crate::history::Op;
    use crate::trace::{fault_detail, op_detail};

    fn event(t_ms: u64, node: &str, kind: &str, detail: String) -> String {
        let detail: Value = serde_json::from_str(&detail).unwrap();
        json!({"t_us": t_ms * 1000, "node": node, "kind": kind, "payload": "00", "detail": detail})
            .to_string()
    }

    fn fault(t_ms: u64, f: Fault) -> String {
        let zone = |z: &str| if z == "z1" { vec!["n1".to_string()] } else { vec![] };
        event(t_ms, "runner", "fault", fault_detail(&f, zone, ""))
    }

    fn op(client: &str, key: &str, kind: OpKind, (a, b): (u64, u64), outcome: Outcome) -> String {
        let op = Op {
            client: client.into(),
            key: key.into(),
            kind,
            invoke_us: a * 1000,
            complete_us: b * 1000,
            outcome,
        };
        event(b, client, "op", op_detail(&op, "n1").unwrap())
    }

    fn put(v: &str) -> OpKind {
        OpKind::Put { value: v.as_bytes().to_vec() }
    }

    fn trace(name: &str, lines: &[String], verdict: Value, end_ms: u64) -> TraceFile {
        let mut text = json!({"meta": "run", "name": name, "seed": 7, "commit": "abc",
            "nodes": ["n1", "n2", "n3"]})
        .to_string();
        for line in lines {
            text.push('\n');
            text.push_str(line);
        }
        text.push('\n');
        text.push_str(&event(end_ms, "runner", "verdict", verdict.to_string()));
        let end = json!({"meta": "end", "trace": "f00d", "result": "pass", "sim_ms": end_ms});
        text.push('\n');
        text.push_str(&end.to_string());
        TraceFile::parse(&text).unwrap()
    }

    fn span(class: FaultClass, node: &str, ms: (u64, u64)) -> (FaultClass, String, u64, u64) {
        (class, node.to_string(), ms.0 * 1000, ms.1 * 1000)
    }

    #[test]
    fn faults_are_shaded_per_node_from_start_to_end() {
        let lines = [
            fault(1000, Fault::Isolate { node: "n2".into() }),
            fault(1500, Fault::ClockSkew { node: "n3".into(), skew_ms: 500 }),
            fault(2000, Fault::Crash { node: "n1".into() }),
            fault(3000, Fault::Heal),
            fault(4000, Fault::Restart { node: "n1".into() }),
            fault(5000, Fault::DiskEio { node: "n2".into() }),
            fault(5500, Fault::ZoneSplit { a: "z1".into(), b: "z9".into() }),
            fault(6000, Fault::DiskRepair { node: "n2".into() }),
            fault(7000, Fault::CorruptBlock { node: "n3".into() }),
            fault(8000, Fault::ClockSkew { node: "n3".into(), skew_ms: 0 }),
        ];
        let t = trace("t", &lines, json!({"result": "pass"}), 10_000);
        let (spans, marks) = fault_spans(&t);
        let got: Vec<_> =
            spans.iter().map(|s| (s.class, s.node.clone(), s.start_us, s.end_us)).collect();
        assert_eq!(
            got,
            vec![
                span(FaultClass::Network, "n2", (1000, 3000)),
                span(FaultClass::Clock, "n3", (1500, 8000)),
                span(FaultClass::Crash, "n1", (2000, 4000)),
                span(FaultClass::Disk, "n2", (5000, 6000)),
                // Never healed: shaded until the end of the run.
                span(FaultClass::Network, "n1", (5500, 10_000)),
            ]
        );
        assert_eq!(marks.len(), 1);
        assert_eq!((marks[0].node.as_str(), marks[0].at_us), ("n3", 7_000_000));
        let page = render(&t);
        for class in ["fault f-net", "fault f-clock", "fault f-crash", "fault f-disk"] {
            assert!(page.contains(&format!("class=\"{class}\"")), "no {class} in the page");
        }
        assert!(page.contains("class=\"mark\""));
        assert!(!page.contains("id=\"violation\""), "a passing run shows no violation");
    }

    #[test]
    fn the_violation_and_its_operations_are_highlighted() {
        let ok = || Outcome::Ok { read: None };
        let lines = [
            op("c1", "k1", put("c1-1"), (0, 1000), ok()),
            op("c1", "k1", put("c1-2"), (2000, 4000), ok()),
            op("c3", "k2", put("c3-1"), (2000, 4000), ok()),
            op("c2", "k1", OpKind::Get, (5000, 6000), Outcome::Ok { read: Some(b"c1-1".to_vec()) }),
            op("c2", "k1", OpKind::Get, (7000, 7500), Outcome::Ok { read: Some(b"c1-2".to_vec()) }),
        ];
        let details = "key=k1 read by c2 at 5000000..6000000us returned c1-1 but c1-2 (by c1, \
                       acknowledged at 4000000us) had replaced it before the read began";
        let verdict = json!({"result": "fail", "checker": "read_after_write", "details": details});
        let t = trace("t", &lines, verdict, 10_000);
        assert_eq!(involved_ops(details, &t.ops()), BTreeSet::from([0, 1, 3]));
        let page = render(&t);
        assert!(
            page.contains(
                "<div class=\"violation\" id=\"violation\"><b>Violation (read_after_write)"
            )
        );
        // Each involved operation is highlighted in the timeline and the latency plot.
        assert_eq!(page.matches("class=\"op op-ok involved\"").count(), 3);
        assert_eq!(page.matches(" involved\" cx=").count(), 3);
        assert_eq!(page.matches("<tr class=\"involved\">").count(), 3);
    }

    #[test]
    fn text_from_the_trace_is_escaped() {
        let evil = "<script>alert('x')</script>&";
        let lines = [op("c1", "k1", put(evil), (0, 1000), Outcome::Info)];
        let verdict = json!({"result": "fail", "checker": "convergence", "details": evil});
        let page = render(&trace(evil, &lines, verdict, 2000));
        assert!(!page.contains("<script"), "unescaped text in the page");
        assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;"));
    }
}
