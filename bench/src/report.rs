//! The summary: per phase and operation, ops/s, MiB/s and latency percentiles, as an
//! aligned table for people or JSON for scripts and plots.

use serde::Serialize;

use crate::load::{LoadResult, LoadSpec};

#[derive(Serialize)]
pub struct Summary {
    endpoint: String,
    concurrency: usize,
    min_size_bytes: usize,
    max_size_bytes: usize,
    keys: usize,
    rows: Vec<Row>,
}

#[derive(Serialize)]
struct Row {
    phase: String,
    op: String,
    ops: u64,
    errors: u64,
    seconds: f64,
    ops_per_s: f64,
    mib_per_s: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    first_error: Option<String>,
}

impl Summary {
    pub fn new(endpoint: &str, spec: &LoadSpec, phases: &[(&str, LoadResult)]) -> Summary {
        let mut rows = Vec::new();
        for (phase, result) in phases {
            let secs = result.elapsed.as_secs_f64().max(1e-9);
            for (op, s) in &result.stats {
                let h = &s.latency_us;
                let ms = |us: u64| us as f64 / 1000.0;
                rows.push(Row {
                    phase: phase.to_string(),
                    op: op.name().to_string(),
                    ops: h.len(),
                    errors: s.errors,
                    seconds: secs,
                    ops_per_s: h.len() as f64 / secs,
                    mib_per_s: s.bytes as f64 / (1 << 20) as f64 / secs,
                    p50_ms: ms(h.value_at_quantile(0.50)),
                    p90_ms: ms(h.value_at_quantile(0.90)),
                    p99_ms: ms(h.value_at_quantile(0.99)),
                    max_ms: ms(h.max()),
                    first_error: s.first_error.clone(),
                });
            }
        }
        Summary {
            endpoint: endpoint.to_string(),
            concurrency: spec.concurrency,
            min_size_bytes: spec.min_size,
            max_size_bytes: spec.max_size,
            keys: spec.keys,
            rows,
        }
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the summary serializes")
    }

    pub fn table(&self) -> String {
        let mut lines = vec![
            format!(
                "endpoint {}  concurrency {}  size {}..{} B  keys {}",
                self.endpoint,
                self.concurrency,
                self.min_size_bytes,
                self.max_size_bytes,
                self.keys
            ),
            String::new(),
        ];
        let header = [
            "phase", "op", "ops", "errors", "ops/s", "MiB/s", "p50 ms", "p90 ms", "p99 ms",
            "max ms",
        ];
        let mut cells: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
        for r in &self.rows {
            cells.push(vec![
                r.phase.clone(),
                r.op.clone(),
                r.ops.to_string(),
                r.errors.to_string(),
                format!("{:.1}", r.ops_per_s),
                format!("{:.2}", r.mib_per_s),
                format!("{:.2}", r.p50_ms),
                format!("{:.2}", r.p90_ms),
                format!("{:.2}", r.p99_ms),
                format!("{:.2}", r.max_ms),
            ]);
        }
        let widths: Vec<usize> = (0..header.len())
            .map(|c| cells.iter().map(|row| row[c].len()).max().unwrap_or(0))
            .collect();
        for row in &cells {
            let line: Vec<String> = row
                .iter()
                .zip(&widths)
                .enumerate()
                // Names left-aligned, numbers right-aligned.
                .map(
                    |(i, (cell, w))| {
                        if i < 2 { format!("{cell:<w$}") } else { format!("{cell:>w$}") }
                    },
                )
                .collect();
            lines.push(line.join("  "));
        }
        for r in self.rows.iter().filter(|r| r.errors > 0) {
            let first = r.first_error.as_deref().unwrap_or("?");
            lines.push(format!("{} {}: {} errors, first: {first}", r.phase, r.op, r.errors));
        }
        lines.join("\n") + "\n"
    }
}
