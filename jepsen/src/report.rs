//! report.html: one self-contained page (inline SVG, no scripts, no external files) with
//! the verdict, the anomaly, the fault intervals and a latency-over-time plot: each
//! operation is a dot at (invocation time, latency), coloured by outcome, on a log scale,
//! with fault intervals shaded behind.

use crate::nemesis::Interval;
use crate::workload::Point;

const WIDTH: f64 = 1000.0;
const HEIGHT: f64 = 360.0;
const MARGIN: f64 = 50.0;

pub struct Summary<'a> {
    pub title: &'a str,
    pub verdict: &'a str,
    pub anomaly: Option<String>,
    pub command: &'a str,
}

pub fn html(summary: &Summary<'_>, points: &[Point], faults: &[Interval]) -> String {
    let count = |o: &str| points.iter().filter(|p| p.outcome == o).count();
    let anomaly = match &summary.anomaly {
        Some(a) => format!("<pre class=bad>{}</pre>", escape(a)),
        None => "<p>none</p>".to_string(),
    };
    let fault_rows: String = faults
        .iter()
        .map(|f| {
            let (a, b) = (f.start_us as f64 / 1e6, f.stop_us as f64 / 1e6);
            format!("<tr><td>{a:.1}</td><td>{b:.1}</td><td>{}</td></tr>", escape(&f.label))
        })
        .collect();
    format!(
        "<!doctype html><html><head><meta charset=utf-8><title>{title}</title><style>\
         body{{font-family:sans-serif;margin:2em}} .bad{{color:#b00}} td{{padding:0 1em}}\
         </style></head><body><h1>{title}</h1>\
         <p><b>valid: {verdict}</b> — {n} operations: {ok} ok, {fail} fail, {info} info</p>\
         <p>replay: <code>{command}</code></p><h2>Anomalies</h2>{anomaly}\
         <h2>Latency over time</h2>{svg}\
         <p>green ok, red fail, orange info (unknown); grey bands: faults.</p>\
         <h2>Faults</h2><table><tr><th>start s</th><th>stop s</th><th>fault</th></tr>\
         {fault_rows}</table></body></html>\n",
        title = escape(summary.title),
        verdict = summary.verdict,
        n = points.len(),
        ok = count("ok"),
        fail = count("fail"),
        info = count("info"),
        command = escape(summary.command),
        svg = svg(points, faults),
    )
}

/// The plot: x = seconds since the start, y = log10 latency from 0.1 ms to 100 s.
fn svg(points: &[Point], faults: &[Interval]) -> String {
    let end_us = points
        .iter()
        .map(|p| p.complete_us)
        .chain(faults.iter().map(|f| f.stop_us))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let x = |us: u64| MARGIN + (us as f64 / end_us) * (WIDTH - 2.0 * MARGIN);
    let (lo, hi) = (2.0_f64, 8.0_f64); // log10 of 100 us .. 100 s
    let y = |lat_us: u64| {
        let l = (lat_us.max(1) as f64).log10().clamp(lo, hi);
        HEIGHT - MARGIN - (l - lo) / (hi - lo) * (HEIGHT - 2.0 * MARGIN)
    };
    let mut out = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{HEIGHT}' \
         style='border:1px solid #ccc'>"
    );
    for f in faults {
        let (a, b) = (x(f.start_us), x(f.stop_us));
        out += &format!(
            "<rect x='{a:.1}' y='{MARGIN}' width='{:.1}' height='{:.1}' fill='#ddd'>\
             <title>{}</title></rect>",
            (b - a).max(1.0),
            HEIGHT - 2.0 * MARGIN,
            escape(&f.label)
        );
    }
    for (exp, name) in [(2, "0.1ms"), (3, "1ms"), (4, "10ms"), (5, "100ms"), (6, "1s"), (7, "10s")]
    {
        let ty = y(10u64.pow(exp));
        out += &format!(
            "<line x1='{MARGIN}' x2='{:.1}' y1='{ty:.1}' y2='{ty:.1}' stroke='#eee'/>\
             <text x='4' y='{:.1}' font-size='10'>{name}</text>",
            WIDTH - MARGIN,
            ty + 3.0
        );
    }
    let secs = (end_us / 1e6).ceil() as u64;
    let tick = (secs / 10).max(1);
    for s in (0..=secs).step_by(tick as usize) {
        let tx = x(s * 1_000_000);
        out += &format!(
            "<text x='{tx:.1}' y='{:.1}' font-size='10' text-anchor='middle'>{s}s</text>",
            HEIGHT - MARGIN + 14.0
        );
    }
    for p in points {
        let colour = match p.outcome {
            "ok" => "#2a2",
            "fail" => "#c22",
            _ => "#e80",
        };
        out += &format!(
            "<circle cx='{:.1}' cy='{:.1}' r='1.8' fill='{colour}'><title>{}</title></circle>",
            x(p.invoke_us),
            y(p.complete_us.saturating_sub(p.invoke_us)),
            escape(&p.label)
        );
    }
    out + "</svg>"
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_shades_faults_plots_every_op_and_escapes_anomalies() {
        let points = vec![
            Point { invoke_us: 0, complete_us: 1_000, outcome: "ok", label: "c0 get r0".into() },
            Point { invoke_us: 5, complete_us: 9, outcome: "info", label: "c1 put r1".into() },
        ];
        let faults = vec![Interval { start_us: 100, stop_us: 800, label: "kill n1".into() }];
        let summary = Summary {
            title: "t",
            verdict: "false",
            anomaly: Some("returned <absent>".into()),
            command: "hangar-jepsen run",
        };
        let page = html(&summary, &points, &faults);
        assert_eq!(page.matches("<circle").count(), 2);
        assert_eq!(page.matches("<rect").count(), 1);
        assert!(page.contains("returned &lt;absent&gt;"));
        assert!(page.contains("valid: false"));
        assert!(!page.contains("<script"), "self-contained, no scripts");
    }
}
