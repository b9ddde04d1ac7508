//! `hangar-sim research`: what a latency profile costs, over many seeds.
//!
//! For each scenario, every seed runs in a fresh child process with `--trace-out` (as in a
//! sweep: a fresh process is what a replay gets), and the client operations are read back
//! from the traces. Reported per operation kind (acknowledged operations only; failures
//! and unknown outcomes are counted apart, their "latency" is a timeout): p50/p90/p99/max
//! latency in simulated ms and in RTT units, where the RTT is the mean inter-zone round trip
//! of the profile (`mean_rtt_ms`). And staleness (`staleness`): which acknowledged reads
//! returned a value already replaced by a write acknowledged before the read began, for
//! how long it had been replaced, and by how many acknowledged writes. In `consistent` mode
//! that must be none (read_after_write checks it); in `degraded` mode (reads from one
//! replica) it measures what the mode gives up. Output depends only on the scenarios and
//! seeds: the same seeds give the same table and plot.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::history::{Op, OpKind, Outcome};
use crate::report::escape;
use crate::scenario::Scenario;
use crate::tracefile::TraceFile;

/// The mean round trip between two zones whose one-way delay is turmoil's
/// `min + (max - min) · min(X, 1)`, X exponential of rate 5 (docs/simulation.md, "Latency
/// profiles"): E[min(X, 1)] = (1 - e^-5) / 5.
pub fn mean_rtt_ms(min_ms: u64, max_ms: u64) -> f64 {
    let tail = (1.0 - (-5.0f64).exp()) / 5.0;
    2.0 * (min_ms as f64 + (max_ms - min_ms) as f64 * tail)
}

/// The `p`-th percentile (nearest rank) of sorted values.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Staleness of the acknowledged reads of a history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Staleness {
    /// Acknowledged reads.
    pub reads: usize,
    /// Of which returned a value replaced before the read began.
    pub stale: usize,
    /// Per stale read: for how long (µs) before the read began its value had been replaced
    /// (since the first replacing write was acknowledged).
    pub stale_us: Vec<u64>,
    /// Per stale read: how many writes acknowledged before the read began replaced it.
    pub versions_behind: Vec<u64>,
    /// Reads whose value no write explains (a checker reports those; not counted stale).
    pub unexplained: usize,
}

impl Staleness {
    fn merge(&mut self, other: Staleness) {
        self.reads += other.reads;
        self.stale += other.stale;
        self.stale_us.extend(other.stale_us);
        self.versions_behind.extend(other.versions_behind);
        self.unexplained += other.unexplained;
    }
}

/// Measures staleness with read_after_write's notion of "replaced": a write `w2` replaces
/// `w` if `w2` was invoked after `w` was acknowledged. A read of value `x` starting at `t`
/// is stale if every write that could have left `x` (the put of `x`; for "absent", any
/// delete or the initial state) had been replaced by a write acknowledged before `t`.
/// Writes of unknown outcome may land at any time, so they are never replaced. Among the
/// candidate writes, the least stale one counts.
pub fn staleness(history: &[Op]) -> Staleness {
    let mut writes: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in history.iter().filter(|o| o.written().is_some() && o.outcome != Outcome::Fail) {
        writes.entry(op.key.as_str()).or_default().push(op);
    }
    let mut s = Staleness::default();
    for read in history.iter().filter(|o| o.kind == OpKind::Get) {
        let Outcome::Ok { read: value } = &read.outcome else { continue };
        s.reads += 1;
        let ws = writes.get(read.key.as_str()).map(Vec::as_slice).unwrap_or(&[]);
        let t = read.invoke_us;
        let acked_before: Vec<&&Op> =
            ws.iter().filter(|w| w.is_ok() && w.complete_us < t).collect();
        // Per candidate, when it was acknowledged (None: never, it may land any time).
        let mut candidates: Vec<Option<i128>> = ws
            .iter()
            .filter(|w| w.written() == Some(value.as_deref()) && w.invoke_us < read.complete_us)
            .map(|w| w.is_ok().then_some(w.complete_us as i128))
            .collect();
        if value.is_none() {
            candidates.push(Some(-1)); // the initial state, acknowledged before time began
        }
        if candidates.is_empty() {
            s.unexplained += 1;
            continue;
        }
        // Per candidate: (how long replaced, by how many); None if not replaced.
        let behind = |done: Option<i128>| -> Option<(u64, u64)> {
            let done = done?;
            let replacing: Vec<&&&Op> =
                acked_before.iter().filter(|w2| w2.invoke_us as i128 > done).collect();
            let first = replacing.iter().map(|w2| w2.complete_us).min()?;
            Some((t - first, replacing.len() as u64))
        };
        let judged: Vec<Option<(u64, u64)>> = candidates.into_iter().map(behind).collect();
        if judged.iter().any(Option::is_none) {
            continue;
        }
        let (us, versions) = judged.into_iter().flatten().min().expect("candidates");
        s.stale += 1;
        s.stale_us.push(us);
        s.versions_behind.push(versions);
    }
    s
}

/// Everything measured for one scenario over its seeds.
#[derive(Debug, Default)]
pub struct ScenarioStats {
    pub path: String,
    pub name: String,
    pub mode: String,
    /// The inter-zone one-way latency range, if the profile sets one.
    pub inter_zone_ms: Option<(u64, u64)>,
    pub runs: usize,
    pub failed_runs: Vec<u64>,
    /// Latencies (µs) of acknowledged operations, per kind, sorted.
    pub latency_us: BTreeMap<&'static str, Vec<u64>>,
    /// Operations not acknowledged (failed or unknown), per kind.
    pub not_acked: BTreeMap<&'static str, usize>,
    pub staleness: Staleness,
}

impl ScenarioStats {
    pub fn rtt_ms(&self) -> Option<f64> {
        self.inter_zone_ms.map(|(a, b)| mean_rtt_ms(a, b))
    }

    /// Adds one run's trace.
    pub fn add(&mut self, seed: u64, trace: &TraceFile) {
        self.runs += 1;
        if trace.end.get("result").and_then(Value::as_str) != Some("pass") {
            self.failed_runs.push(seed);
        }
        let history: Vec<Op> = trace.ops().into_iter().map(|t| t.op).collect();
        for op in &history {
            let kind = match op.kind {
                OpKind::Put { .. } => "put",
                OpKind::Get => "get",
                OpKind::Delete => "delete",
            };
            if op.is_ok() {
                let latency = op.complete_us.saturating_sub(op.invoke_us);
                self.latency_us.entry(kind).or_default().push(latency);
            } else {
                *self.not_acked.entry(kind).or_default() += 1;
            }
        }
        self.staleness.merge(staleness(&history));
    }

    fn finish(&mut self) {
        self.latency_us.values_mut().for_each(|v| v.sort_unstable());
        self.staleness.stale_us.sort_unstable();
        self.staleness.versions_behind.sort_unstable();
    }
}

/// The table `research` prints for one scenario.
pub fn table(s: &ScenarioStats, seeds: &RangeInclusive<u64>) -> String {
    let mut out = String::new();
    let failed = if s.failed_runs.is_empty() {
        "all pass".to_string()
    } else {
        format!("failing seeds {:?}", s.failed_runs)
    };
    let _ = writeln!(
        out,
        "== {} ({}), consistency_mode = {}, seeds {}..={}: {} runs, {failed}",
        s.name,
        s.path,
        s.mode,
        seeds.start(),
        seeds.end(),
        s.runs
    );
    let rtt = s.rtt_ms();
    match (s.inter_zone_ms, rtt) {
        (Some((a, b)), Some(rtt)) => {
            let _ = writeln!(
                out,
                "inter-zone one-way latency {a}-{b} ms: RTT = {rtt:.1} ms (mean round trip)"
            );
        }
        _ => out.push_str("no inter-zone latency profile: RTT columns left out\n"),
    }
    let _ = writeln!(
        out,
        "{:<7}{:>7}{:>10}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}",
        "op",
        "acked",
        "not-acked",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "p50 RTT",
        "p90 RTT",
        "p99 RTT",
        "max RTT"
    );
    for kind in ["put", "get", "delete"] {
        let Some(v) = s.latency_us.get(kind) else { continue };
        let q = [50.0, 90.0, 99.0, 100.0].map(|p| percentile(v, p) as f64 / 1000.0);
        let _ = write!(
            out,
            "{kind:<7}{:>7}{:>10}{:>9.1}{:>9.1}{:>9.1}{:>9.1}",
            v.len(),
            s.not_acked.get(kind).copied().unwrap_or(0),
            q[0],
            q[1],
            q[2],
            q[3]
        );
        if let Some(rtt) = rtt {
            let _ = write!(
                out,
                "{:>9.2}{:>9.2}{:>9.2}{:>9.2}",
                q[0] / rtt,
                q[1] / rtt,
                q[2] / rtt,
                q[3] / rtt
            );
        }
        out.push('\n');
    }
    let st = &s.staleness;
    let fraction = 100.0 * st.stale as f64 / st.reads.max(1) as f64;
    let _ = write!(
        out,
        "staleness: {} acknowledged reads, {} stale ({fraction:.2}%)",
        st.reads, st.stale
    );
    if st.stale > 0 {
        let ms = |p| percentile(&st.stale_us, p) as f64 / 1000.0;
        let _ = write!(
            out,
            "; replaced for p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms before the read; \
             versions behind p50 {}, max {}",
            ms(50.0),
            ms(90.0),
            ms(100.0),
            percentile(&st.versions_behind, 50.0),
            percentile(&st.versions_behind, 100.0)
        );
    }
    if st.unexplained > 0 {
        let _ = write!(out, "; {} reads of a value no write explains", st.unexplained);
    }
    out.push('\n');
    out
}

/// Runs every seed of one scenario in child processes of `exe`, `jobs` at a time, and
/// reads their traces back.
fn measure(
    exe: &Path,
    path: &str,
    seeds: &RangeInclusive<u64>,
    jobs: usize,
) -> Result<ScenarioStats, String> {
    let scenario = Scenario::load(path).map_err(|e| format!("bad scenario: {e}"))?;
    let dir = std::env::temp_dir().join(format!("hangar-sim-research-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let queue: Arc<Mutex<VecDeque<u64>>> = Arc::new(Mutex::new(seeds.clone().collect()));
    let results: Arc<Mutex<BTreeMap<u64, Result<String, String>>>> = Arc::default();
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            let (queue, results, dir) = (queue.clone(), results.clone(), dir.clone());
            scope.spawn(move || {
                while let Some(seed) = queue.lock().unwrap().pop_front() {
                    let trace = run_seed(exe, path, seed, &dir);
                    results.lock().unwrap().insert(seed, trace);
                }
            });
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
    let net = &scenario.network;
    let inter = net.inter_zone_latency_ms.as_ref().map(|r| (r.get_ref()[0], r.get_ref()[1]));
    let mut stats = ScenarioStats {
        path: path.into(),
        name: scenario.name.clone(),
        mode: scenario.cluster.consistency_mode.get_ref().clone(),
        inter_zone_ms: inter,
        ..ScenarioStats::default()
    };
    for (seed, text) in std::mem::take(&mut *results.lock().unwrap()) {
        let trace = TraceFile::parse(&text?).map_err(|e| format!("{path} seed {seed}: {e}"))?;
        stats.add(seed, &trace);
    }
    stats.finish();
    Ok(stats)
}

/// One run with its trace; a violation (exit 1) still gives a trace worth measuring.
fn run_seed(exe: &Path, path: &str, seed: u64, dir: &Path) -> Result<String, String> {
    let file: PathBuf = dir.join(format!("seed-{seed}.jsonl"));
    let out = Command::new(exe)
        .args(["run", path, "--seed", &seed.to_string(), "--trace-out"])
        .arg(&file)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
    if !matches!(out.status.code(), Some(0 | 1)) {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(format!("{path} seed {seed}: exit {:?}: {}", out.status.code(), stderr.trim()));
    }
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()));
    let _ = std::fs::remove_file(&file);
    text
}

/// `hangar-sim research`: prints a table per scenario, writes the plot if asked.
pub fn cmd_research(
    exe: &Path,
    paths: &[String],
    seeds: RangeInclusive<u64>,
    jobs: usize,
    svg: Option<&str>,
) -> Result<ExitCode, String> {
    let mut all = Vec::new();
    for path in paths {
        let stats = measure(exe, path, &seeds, jobs)?;
        print!("{}", table(&stats, &seeds));
        all.push(stats);
    }
    if let Some(file) = svg {
        std::fs::write(file, plot_svg(&all, &seeds))
            .map_err(|e| format!("cannot write {file}: {e}"))?;
        println!("plot: {file}");
    }
    Ok(ExitCode::SUCCESS)
}

const KIND_COLOURS: [(&str, &str); 3] =
    [("put", "#2471a3"), ("get", "#1e8449"), ("delete", "#7d3c98")];
const DASHES: [&str; 4] = ["", "6,3", "2,2", "8,3,2,3"];

/// A plot frame: maps data to pixels, draws axes with labels.
struct Frame {
    left: f64,
    top: f64,
    width: f64,
    height: f64,
    /// The x axis: `Some(x_min)` for a log scale from `x_min`, else linear from 0.
    log_x_min: Option<f64>,
    x_max: f64,
    y_max: f64,
}

/// The smallest 1, 2 or 5 × 10^k at least `x`.
fn nice_ceil(x: f64) -> f64 {
    let pow = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * pow).find(|v| *v >= x * 0.999_999).unwrap()
}

impl Frame {
    /// Where `x` falls along the axis, from 0 to 1 (clamped).
    fn fraction_x(&self, x: f64) -> f64 {
        let f = match self.log_x_min {
            Some(min) => (x.max(min) / min).log10() / (self.x_max / min).log10(),
            None => x / self.x_max,
        };
        f.clamp(0.0, 1.0)
    }

    fn point(&self, x: f64, y: f64) -> (f64, f64) {
        let px = self.left + self.width * self.fraction_x(x);
        (px, self.top + self.height * (1.0 - (y / self.y_max).min(1.0)))
    }

    /// Tick values: decades on a log axis, fifths of the range on a linear one.
    fn x_ticks(&self) -> Vec<f64> {
        match self.log_x_min {
            Some(min) => {
                let decades = (self.x_max / min).log10().round() as i32;
                (0..=decades).map(|d| min * 10f64.powi(d)).collect()
            }
            None => (0..=5).map(|i| self.x_max * i as f64 / 5.0).collect(),
        }
    }

    fn axes(&self, out: &mut String, title: &str, x_label: &str, y_label: &str, y_percent: bool) {
        let (l, t, w, h) = (self.left, self.top, self.width, self.height);
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" class=\"title\">{}</text>\
             <rect x=\"{l:.1}\" y=\"{t:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" class=\"frame\"/>",
            l,
            t - 8.0,
            escape(title)
        );
        for xv in self.x_ticks() {
            let x = l + w * self.fraction_x(xv);
            // Shortest exact form: 0.01, 0.1, 1, 10, 250, 1000.
            let text = format!("{xv:.3}");
            let text = if text.contains('.') {
                text.trim_end_matches('0').trim_end_matches('.')
            } else {
                &text
            };
            let _ = write!(
                out,
                "<line x1=\"{x:.1}\" y1=\"{t:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" class=\"grid\"/>\
                 <text x=\"{x:.1}\" y=\"{:.1}\" class=\"mid\">{text}</text>",
                t + h,
                t + h + 14.0,
            );
        }
        for i in 0..=5 {
            let f = i as f64 / 5.0;
            let y = t + h * (1.0 - f);
            let yv = self.y_max * f;
            let y_text = if y_percent { format!("{:.1}%", 100.0 * yv) } else { format!("{yv:.1}") };
            let _ = write!(
                out,
                "<line x1=\"{l:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" class=\"grid\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" class=\"end\">{y_text}</text>",
                l + w,
                l - 4.0,
                y + 4.0,
            );
        }
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" class=\"mid\">{}</text>\
             <text x=\"{:.1}\" y=\"{:.1}\" class=\"mid\" transform=\"rotate(-90 {:.1} {:.1})\">{}</text>",
            l + w / 2.0,
            t + h + 30.0,
            escape(x_label),
            l - 42.0,
            t + h / 2.0,
            l - 42.0,
            t + h / 2.0,
            escape(y_label)
        );
    }

    /// A polyline through `points` (data units), at most ~500 of them.
    fn line(&self, out: &mut String, points: &[(f64, f64)], colour: &str, dash: &str) {
        let step = points.len().div_ceil(500).max(1);
        let mut d = String::new();
        for (i, (x, y)) in points.iter().enumerate() {
            if i % step == 0 || i + 1 == points.len() {
                let (px, py) = self.point(*x, *y);
                let _ = write!(d, "{}{px:.1},{py:.1}", if d.is_empty() { "M" } else { " L" });
            }
        }
        let _ = write!(
            out,
            "<path d=\"{d}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.8\" \
             stroke-dasharray=\"{dash}\"/>"
        );
    }
}

/// The plot: latency CDFs per operation kind and scenario (x in RTT units when every
/// scenario has an inter-zone profile, else ms), and the share of reads staler than x ms.
pub fn plot_svg(all: &[ScenarioStats], seeds: &RangeInclusive<u64>) -> String {
    let in_rtt = all.iter().all(|s| s.rtt_ms().is_some());
    let unit = |s: &ScenarioStats| if in_rtt { s.rtt_ms().unwrap() * 1000.0 } else { 1000.0 };
    // A log axis from a decade under the fastest operation to one over the slowest: the
    // body (round trips) and the tail (timeouts, partitions) both stay readable.
    let values: Vec<f64> = (all.iter())
        .flat_map(|s| s.latency_us.values().flatten().map(|us| *us as f64 / unit(s)))
        .collect();
    let fastest = values.iter().copied().filter(|v| *v > 0.0).fold(f64::INFINITY, f64::min);
    let slowest = values.iter().copied().fold(0.0f64, f64::max);
    let x_min = if fastest.is_finite() { 10f64.powf(fastest.log10().floor()) } else { 0.01 };
    let x_max = 10f64.powf(slowest.max(x_min * 10.0).log10().ceil());
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1000\" height=\"440\" \
         viewBox=\"0 0 1000 440\" font-family=\"sans-serif\" font-size=\"11\">\
         <style>.grid{{stroke:#e5e5e5}}.frame{{fill:none;stroke:#999}}.mid{{text-anchor:middle}}\
         .end{{text-anchor:end}}.title{{font-size:13px;font-weight:bold}}</style>\
         <rect width=\"1000\" height=\"440\" fill=\"white\"/>"
    );
    let latency = Frame {
        left: 60.0,
        top: 40.0,
        width: 480.0,
        height: 280.0,
        log_x_min: Some(x_min),
        x_max,
        y_max: 1.0,
    };
    let x_label = if in_rtt { "latency (RTT units, log scale)" } else { "latency (ms, log scale)" };
    let title =
        format!("Latency CDF, acknowledged operations, seeds {}..={}", seeds.start(), seeds.end());
    latency.axes(&mut out, &title, x_label, "fraction of operations", false);
    let mut legend_y = 372.0;
    for (i, s) in all.iter().enumerate() {
        let dash = DASHES[i % DASHES.len()];
        for (kind, colour) in KIND_COLOURS {
            let Some(v) = s.latency_us.get(kind) else { continue };
            let n = v.len() as f64;
            let points: Vec<(f64, f64)> = (v.iter().enumerate())
                .map(|(j, us)| (*us as f64 / unit(s), (j + 1) as f64 / n))
                .collect();
            latency.line(&mut out, &points, colour, dash);
        }
        let _ = write!(
            out,
            "<line x1=\"60\" y1=\"{:.0}\" x2=\"90\" y2=\"{:.0}\" stroke=\"#333\" stroke-width=\"1.8\" \
             stroke-dasharray=\"{dash}\"/><text x=\"96\" y=\"{:.0}\">{} ({}{})</text>",
            legend_y,
            legend_y,
            legend_y + 4.0,
            escape(&s.name),
            escape(&s.mode),
            s.rtt_ms().map(|r| format!(", RTT {r:.1} ms")).unwrap_or_default()
        );
        legend_y += 16.0;
    }
    for (j, (kind, colour)) in KIND_COLOURS.iter().enumerate() {
        let x = 380.0 + 60.0 * j as f64;
        let _ = write!(
            out,
            "<rect x=\"{x:.0}\" y=\"366\" width=\"12\" height=\"12\" fill=\"{colour}\"/>\
             <text x=\"{:.0}\" y=\"376\">{kind}</text>",
            x + 16.0
        );
    }
    staleness_panel(&mut out, all);
    out.push_str("</svg>\n");
    out
}

/// Share of acknowledged reads whose value had been replaced more than x ms before they
/// began (at x = 0: the stale fraction).
fn staleness_panel(out: &mut String, all: &[ScenarioStats]) {
    let max_ms = (all.iter())
        .filter_map(|s| s.staleness.stale_us.last())
        .fold(0.0f64, |m, us| m.max(*us as f64 / 1000.0));
    let max_fraction = (all.iter())
        .map(|s| s.staleness.stale as f64 / s.staleness.reads.max(1) as f64)
        .fold(0.0f64, f64::max);
    let frame = Frame {
        left: 660.0,
        top: 40.0,
        width: 310.0,
        height: 280.0,
        log_x_min: None,
        x_max: nice_ceil(max_ms.max(1.0)),
        y_max: nice_ceil((max_fraction * 1.05).max(0.01)),
    };
    frame.axes(out, "Stale reads", "replaced for more than (ms)", "share of reads", true);
    let mut legend_y = 372.0;
    for (i, s) in all.iter().enumerate() {
        let st = &s.staleness;
        let reads = st.reads.max(1) as f64;
        let mut points = vec![(0.0, st.stale as f64 / reads)];
        for (j, us) in st.stale_us.iter().enumerate() {
            let x = *us as f64 / 1000.0;
            points.push((x, (st.stale - j) as f64 / reads));
            points.push((x, (st.stale - j - 1) as f64 / reads));
        }
        points.push((frame.x_max, 0.0));
        let dash = DASHES[i % DASHES.len()];
        frame.line(out, &points, "#c0392b", dash);
        let _ = write!(
            out,
            "<line x1=\"660\" y1=\"{legend_y:.0}\" x2=\"690\" y2=\"{legend_y:.0}\" stroke=\"#c0392b\" \
             stroke-width=\"1.8\" stroke-dasharray=\"{dash}\"/>\
             <text x=\"696\" y=\"{:.0}\">{} ({}): {} of {} reads stale</text>",
            legend_y + 4.0,
            escape(&s.name),
            escape(&s.mode),
            st.stale,
            st.reads
        );
        legend_y += 16.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: &str, kind: OpKind, (a, b): (u64, u64), outcome: Outcome) -> Op {
        Op { client: client.into(), key: "k".into(), kind, invoke_us: a, complete_us: b, outcome }
    }

    fn put(v: &str, times: (u64, u64)) -> Op {
        op("w", OpKind::Put { value: v.into() }, times, Outcome::Ok { read: None })
    }

    fn get(v: Option<&str>, times: (u64, u64)) -> Op {
        op("r", OpKind::Get, times, Outcome::Ok { read: v.map(|v| v.as_bytes().to_vec()) })
    }

    #[test]
    fn the_mean_rtt_follows_turmoils_distribution() {
        assert!((mean_rtt_ms(30, 150) - 107.68).abs() < 0.01, "{}", mean_rtt_ms(30, 150));
        assert_eq!(mean_rtt_ms(40, 40), 80.0);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!([50.0, 90.0, 99.0, 100.0].map(|p| percentile(&v, p)), [50, 90, 99, 100]);
        assert_eq!(percentile(&[7], 50.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn a_read_of_a_replaced_value_is_stale_by_time_and_versions() {
        let history = [
            put("a", (0, 100)),
            put("b", (200, 300)),
            put("c", (400, 500)),
            // Fresh: "c" is the latest acknowledged value.
            get(Some("c"), (600, 700)),
            // Stale: "a" was replaced by "b" (acknowledged at 300) and "c" (at 500).
            get(Some("a"), (1000, 1100)),
            // Concurrent with "d": either answer is fresh.
            op("w", OpKind::Put { value: "d".into() }, (1200, 1400), Outcome::Ok { read: None }),
            get(Some("c"), (1300, 1350)),
            // Absent before any write: fresh; absent after: stale by all four versions.
            get(None, (0, 50)),
            get(None, (2000, 2100)),
            // A value nobody wrote.
            get(Some("zz"), (2000, 2100)),
        ];
        let s = staleness(&history);
        assert_eq!((s.reads, s.stale, s.unexplained), (6, 2, 1));
        assert_eq!(s.stale_us, vec![700, 1900]);
        assert_eq!(s.versions_behind, vec![2, 4]);
    }

    #[test]
    fn a_write_of_unknown_outcome_is_never_replaced() {
        let unknown = op("w", OpKind::Put { value: "a".into() }, (0, 9_000), Outcome::Info);
        let history = [unknown, put("b", (100, 200)), get(Some("a"), (1000, 1100))];
        assert_eq!(staleness(&history).stale, 0);
    }
}
