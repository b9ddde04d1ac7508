//! Metrics in the Prometheus text format (version 0.0.4), from a small registry of our own.
//!
//! Why not the `prometheus-client` crate: we need counters and histograms with one or two
//! labels and a text rendering, about 150 lines; a dependency would add build time on the
//! project's 2-core machines for no behaviour we lack. Families are rendered in name order
//! and series in label order (BTreeMap), so the output is stable and diffable.
//!
//! What is measured where:
//! - S3 requests (`hangar_s3_requests_total`, `..._errors_total`, `..._duration_seconds`,
//!   body bytes) — the `RequestObserver` hook in `s3api::handle`, per operation;
//! - engine state (block faults, layout version, key and bucket counts, RPC calls per
//!   peer from `RpcClient::peer_stats`) — sampled when `/metrics` is scraped
//!   (`admin::cluster::metrics_text`);
//! - block I/O and the progress of table sync, resync and scrub passes — sampled from the
//!   engine's counters at scrape time too (`admin::engine_metrics`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency histogram buckets, in seconds (+Inf is implicit).
pub const LATENCY_BUCKETS_SECONDS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Told about every S3 request once it is answered.
pub trait RequestObserver: Send + Sync {
    /// `operation` is the router's name for it ("Unrouted" when routing or authentication
    /// failed first); `status` the HTTP status sent.
    fn request_done(&self, operation: &'static str, status: u16, elapsed: Duration);
    /// Body bytes received (PUT, UploadPart) or sent (GET).
    fn body_bytes(&self, operation: &'static str, received: u64, sent: u64);
}

#[derive(Default, Clone)]
struct Histogram {
    /// One count per bucket of `LATENCY_BUCKETS_SECONDS`, not cumulative.
    buckets: Vec<u64>,
    count: u64,
    sum_seconds: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; LATENCY_BUCKETS_SECONDS.len()];
        }
        if let Some(i) = LATENCY_BUCKETS_SECONDS.iter().position(|&le| seconds <= le) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum_seconds += seconds;
    }
}

#[derive(Default)]
struct S3Series {
    requests: BTreeMap<&'static str, u64>,
    errors: BTreeMap<(&'static str, u16), u64>,
    latency: BTreeMap<&'static str, Histogram>,
    bytes_received: BTreeMap<&'static str, u64>,
    bytes_sent: BTreeMap<&'static str, u64>,
}

/// The S3 frontend's counters.
#[derive(Default)]
pub struct S3Metrics {
    series: Mutex<S3Series>,
}

impl RequestObserver for S3Metrics {
    fn request_done(&self, operation: &'static str, status: u16, elapsed: Duration) {
        let mut s = self.series.lock().unwrap();
        *s.requests.entry(operation).or_default() += 1;
        if status >= 400 {
            *s.errors.entry((operation, status)).or_default() += 1;
        }
        s.latency.entry(operation).or_default().observe(elapsed.as_secs_f64());
    }

    fn body_bytes(&self, operation: &'static str, received: u64, sent: u64) {
        let mut s = self.series.lock().unwrap();
        if received > 0 {
            *s.bytes_received.entry(operation).or_default() += received;
        }
        if sent > 0 {
            *s.bytes_sent.entry(operation).or_default() += sent;
        }
    }
}

impl S3Metrics {
    /// Appends the S3 families to `out`.
    pub fn render(&self, out: &mut TextWriter) {
        let s = self.series.lock().unwrap();
        out.family("hangar_s3_requests_total", "counter", "S3 requests answered, by operation");
        for (op, n) in &s.requests {
            out.sample("hangar_s3_requests_total", &[("operation", op)], *n as f64);
        }
        out.family(
            "hangar_s3_errors_total",
            "counter",
            "S3 requests answered with an error status, by operation and status",
        );
        for ((op, status), n) in &s.errors {
            let status = status.to_string();
            let labels = [("operation", *op), ("status", status.as_str())];
            out.sample("hangar_s3_errors_total", &labels, *n as f64);
        }
        let name = "hangar_s3_request_duration_seconds";
        out.family(name, "histogram", "Time from request head to response, by operation");
        for (op, h) in &s.latency {
            let buckets: Vec<(f64, u64)> = LATENCY_BUCKETS_SECONDS
                .iter()
                .enumerate()
                .map(|(i, le)| (*le, h.buckets.get(i).copied().unwrap_or(0)))
                .collect();
            out.histogram(name, &[("operation", op)], &buckets, h.count, h.sum_seconds);
        }
        for (name, help, map) in [
            ("hangar_s3_body_bytes_received_total", "Request body bytes", &s.bytes_received),
            ("hangar_s3_body_bytes_sent_total", "Response body bytes", &s.bytes_sent),
        ] {
            out.family(name, "counter", help);
            for (op, n) in map {
                out.sample(name, &[("operation", op)], *n as f64);
            }
        }
    }
}

/// Builds a text-format exposition.
#[derive(Default)]
pub struct TextWriter {
    text: String,
}

impl TextWriter {
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        write_labels(&mut self.text, labels, None);
        let _ = writeln!(self.text, " {}", format_value(value));
    }

    /// A gauge or counter family with one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// One histogram series: `buckets` are (upper bound, observations in that bucket
    /// only); `count` includes the observations above every bound.
    pub fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        buckets: &[(f64, u64)],
        count: u64,
        sum: f64,
    ) {
        let mut cumulative = 0;
        for (le, n) in buckets {
            cumulative += n;
            let _ = write!(self.text, "{name}_bucket");
            write_labels(&mut self.text, labels, Some(&format_value(*le)));
            let _ = writeln!(self.text, " {cumulative}");
        }
        let _ = write!(self.text, "{name}_bucket");
        write_labels(&mut self.text, labels, Some("+Inf"));
        let _ = writeln!(self.text, " {count}");
        self.sample(&format!("{name}_sum"), labels, sum);
        self.sample(&format!("{name}_count"), labels, count as f64);
    }

    pub fn finish(self) -> String {
        self.text
    }
}

fn write_labels(out: &mut String, labels: &[(&str, &str)], le: Option<&str>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let le = le.map(|v| ("le", v));
    for (i, (k, v)) in labels.iter().copied().chain(le).enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{k}=\"{}\"", escape_label(v));
    }
    out.push('}');
}

/// Label values escape backslash, double quote and newline (text format 0.0.4).
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{}", v as i64) } else { format!("{v}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_errors_and_latency_render_as_prometheus_text() {
        let m = S3Metrics::default();
        m.request_done("GetObject", 200, Duration::from_millis(3));
        m.request_done("GetObject", 404, Duration::from_millis(40));
        m.body_bytes("PutObject", 10, 0);
        let mut w = TextWriter::default();
        m.render(&mut w);
        let text = w.finish();
        assert!(text.contains("# TYPE hangar_s3_requests_total counter\n"), "{text}");
        assert!(text.contains("hangar_s3_requests_total{operation=\"GetObject\"} 2\n"));
        assert!(
            text.contains("hangar_s3_errors_total{operation=\"GetObject\",status=\"404\"} 1\n")
        );
        let bucket = "hangar_s3_request_duration_seconds_bucket";
        assert!(text.contains(&format!("{bucket}{{operation=\"GetObject\",le=\"0.005\"}} 1\n")));
        assert!(text.contains(&format!("{bucket}{{operation=\"GetObject\",le=\"0.05\"}} 2\n")));
        assert!(text.contains(&format!("{bucket}{{operation=\"GetObject\",le=\"+Inf\"}} 2\n")));
        assert!(
            text.contains("hangar_s3_request_duration_seconds_count{operation=\"GetObject\"} 2")
        );
        assert!(text.contains("hangar_s3_body_bytes_received_total{operation=\"PutObject\"} 10"));
    }

    #[test]
    fn label_values_are_escaped() {
        let mut w = TextWriter::default();
        w.sample("m", &[("k", "a\"b\\c\nd")], 1.5);
        assert_eq!(w.finish(), "m{k=\"a\\\"b\\\\c\\nd\"} 1.5\n");
    }
}

/// The RPC client's per-peer counters as Prometheus families.
pub fn render_rpc(
    out: &mut TextWriter,
    peers: &std::collections::BTreeMap<
        hangar_engine::layout::NodeId,
        hangar_engine::rpc::stats::PeerCalls,
    >,
) {
    use hangar_engine::rpc::stats::LATENCY_BUCKETS_MS;
    let counters = [
        ("hangar_rpc_calls_total", "RPC calls to a peer"),
        ("hangar_rpc_errors_total", "RPC calls to a peer that got no answer"),
        ("hangar_rpc_timeouts_total", "RPC calls to a peer that timed out"),
    ];
    for (i, (name, help)) in counters.iter().enumerate() {
        out.family(name, "counter", help);
        for (peer, p) in peers {
            let value = [p.calls, p.errors, p.timeouts][i];
            out.sample(name, &[("peer", &peer.to_string())], value as f64);
        }
    }
    let name = "hangar_rpc_duration_seconds";
    out.family(name, "histogram", "RPC call latency to a peer, answer or not");
    for (peer, p) in peers {
        let buckets: Vec<(f64, u64)> = LATENCY_BUCKETS_MS
            .iter()
            .enumerate()
            .map(|(i, ms)| (*ms as f64 / 1000.0, p.latency_buckets.get(i).copied().unwrap_or(0)))
            .collect();
        let sum = p.latency_sum_us as f64 / 1e6;
        out.histogram(name, &[("peer", &peer.to_string())], &buckets, p.calls, sum);
    }
}

#[cfg(test)]
mod rpc_tests {
    use super::*;
    use hangar_engine::layout::NodeId;
    use hangar_engine::rpc::stats::PeerCalls;

    #[test]
    fn rpc_peers_render_with_cumulative_buckets_in_seconds() {
        let mut buckets = vec![0; hangar_engine::rpc::stats::LATENCY_BUCKETS_MS.len() + 1];
        (buckets[0], buckets[2]) = (2, 1);
        *buckets.last_mut().unwrap() = 1;
        let p = PeerCalls {
            calls: 4,
            errors: 1,
            timeouts: 1,
            latency_buckets: buckets,
            latency_sum_us: 9_004_000,
        };
        let peers = [(NodeId(0xab), p)].into_iter().collect();
        let mut w = TextWriter::default();
        render_rpc(&mut w, &peers);
        let text = w.finish();
        let peer = "peer=\"00000000000000ab\"";
        assert!(text.contains(&format!("hangar_rpc_calls_total{{{peer}}} 4\n")), "{text}");
        assert!(text.contains(&format!("hangar_rpc_timeouts_total{{{peer}}} 1\n")));
        let bucket = "hangar_rpc_duration_seconds_bucket";
        assert!(text.contains(&format!("{bucket}{{{peer},le=\"0.001\"}} 2\n")));
        assert!(text.contains(&format!("{bucket}{{{peer},le=\"0.005\"}} 3\n")));
        assert!(text.contains(&format!("{bucket}{{{peer},le=\"+Inf\"}} 4\n")));
        assert!(text.contains(&format!("hangar_rpc_duration_seconds_sum{{{peer}}} 9.004\n")));
    }
}
