//! Many runs at once: every (scenario, seed) pair of a sweep or a swarm, each in a fresh
//! child process of this same binary, a few in parallel, with progress and a summary.
//!
//! Why child processes: a run must replay bit for bit from its seed, and two runs in one
//! process can part after a crash (tokio task ids are a process-wide counter; see
//! sim/tests/replay.rs). A fresh process per run is also what the printed replay command
//! gives, so a failure seen in a sweep is the failure the replay shows.

use std::collections::{BTreeMap, VecDeque};
use std::io::{IsTerminal, Write};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Instant;

/// The commit this binary was built from (`git describe --always --dirty`), for replay lines.
pub const COMMIT: &str = env!("HANGAR_SIM_COMMIT");

/// One run to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub scenario: PathBuf,
    pub seed: u64,
    /// The summary row this run counts in: the scenario file for a sweep, one row for a
    /// whole swarm (each of its seeds has its own generated file).
    pub group: String,
}

/// How a run ended, from the child's exit code and output.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub job: Job,
    pub verdict: Verdict,
    /// The run's `result:` line (or the child's error output when it did not get that far).
    pub summary: String,
    pub speedup: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// A checker found a violation (exit 1).
    Fail,
    /// The run could not be made: bad file, crash of the simulator itself (any other exit).
    Error,
}

/// Parses `A..B` (B excluded), `A..=B` or a single seed `N`.
pub fn parse_seeds(text: &str) -> Result<RangeInclusive<u64>, String> {
    let number = |s: &str| {
        s.trim().parse::<u64>().map_err(|_| format!("`{s}` is not a seed (a non-negative integer)"))
    };
    let range = if let Some((a, b)) = text.split_once("..=") {
        number(a)?..=number(b)?
    } else if let Some((a, b)) = text.split_once("..") {
        let (a, b) = (number(a)?, number(b)?);
        if b == 0 {
            return Err(format!("`{text}` is empty"));
        }
        a..=b - 1
    } else {
        let n = number(text)?;
        n..=n
    };
    if range.is_empty() {
        return Err(format!("`{text}` is an empty range of seeds (write A..B with A < B)"));
    }
    Ok(range)
}

/// The scenario files named by `paths`: a file as is, a directory's `*.toml` files (not its
/// subdirectories, so `scenarios/` leaves out `weakened/` and `regressions/`), sorted.
pub fn scenario_files(paths: &[String]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for path in paths {
        let p = Path::new(path);
        if p.is_dir() {
            let entries = std::fs::read_dir(p).map_err(|e| format!("cannot read {path}: {e}"))?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file() && f.extension().is_some_and(|x| x == "toml"))
                .collect();
            if found.is_empty() {
                return Err(format!("{path} holds no .toml scenario file"));
            }
            found.sort();
            files.extend(found);
        } else if p.is_file() {
            files.push(p.to_path_buf());
        } else {
            return Err(format!("{path}: no such file or directory"));
        }
    }
    Ok(files)
}

/// Every pair of `files` × `seeds`, scenario by scenario.
pub fn jobs(files: &[PathBuf], seeds: RangeInclusive<u64>) -> Vec<Job> {
    files
        .iter()
        .flat_map(|f| {
            let group = f.display().to_string();
            seeds.clone().map(move |seed| Job { scenario: f.clone(), seed, group: group.clone() })
        })
        .collect()
}

/// Runs one job in a child process of `exe`.
fn run_one(exe: &Path, job: &Job, extra_args: &[String]) -> Outcome {
    let output = Command::new(exe)
        .arg("run")
        .arg(&job.scenario)
        .arg("--seed")
        .arg(job.seed.to_string())
        .args(extra_args)
        .output();
    let output = match output {
        Ok(o) => o,
        Err(e) => {
            let summary = format!("cannot start {}: {e}", exe.display());
            return Outcome { job: job.clone(), verdict: Verdict::Error, summary, speedup: None };
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let verdict = match output.status.code() {
        Some(0) => Verdict::Pass,
        Some(1) => Verdict::Fail,
        _ => Verdict::Error,
    };
    let result_line = stdout.lines().find(|l| l.starts_with("result:")).map(str::to_string);
    let summary = match (verdict, result_line) {
        (Verdict::Error, _) | (_, None) => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
            format!("exit {:?}: {last}", output.status.code())
        }
        (_, Some(line)) => line,
    };
    let speedup = stdout
        .split_whitespace()
        .find_map(|w| w.strip_prefix("speedup="))
        .and_then(|s| s.parse::<u64>().ok());
    Outcome { job: job.clone(), verdict, summary, speedup }
}

/// Runs `jobs` on `parallel` worker threads, calling `on_done` (on this thread) as each
/// finishes; returns the outcomes in job order. `stop_at_first_failure` lets running jobs
/// finish but starts no new one after a failure.
pub fn run_jobs(
    exe: &Path,
    jobs: Vec<Job>,
    parallel: usize,
    extra_args: &[String],
    stop_at_first_failure: bool,
    mut on_done: impl FnMut(&Outcome, usize, usize),
) -> Vec<Outcome> {
    let total = jobs.len();
    let queue: Arc<Mutex<VecDeque<(usize, Job)>>> =
        Arc::new(Mutex::new(jobs.into_iter().enumerate().collect()));
    let (tx, rx) = mpsc::channel::<(usize, Outcome)>();
    let mut workers = Vec::new();
    for _ in 0..parallel.max(1) {
        let (queue, tx, exe) = (queue.clone(), tx.clone(), exe.to_path_buf());
        let extra_args = extra_args.to_vec();
        workers.push(std::thread::spawn(move || {
            loop {
                let next = queue.lock().unwrap().pop_front();
                let Some((index, job)) = next else { break };
                if tx.send((index, run_one(&exe, &job, &extra_args))).is_err() {
                    break;
                }
            }
        }));
    }
    drop(tx);
    let mut outcomes: BTreeMap<usize, Outcome> = BTreeMap::new();
    for (index, outcome) in rx {
        if stop_at_first_failure && outcome.verdict != Verdict::Pass {
            queue.lock().unwrap().clear();
        }
        on_done(&outcome, outcomes.len() + 1, total);
        outcomes.insert(index, outcome);
    }
    for w in workers {
        w.join().expect("a sweep worker panicked");
    }
    outcomes.into_values().collect()
}

/// Progress on stderr: a bar redrawn in place on a terminal, a line every tenth otherwise
/// (CI logs stay short).
pub struct Progress {
    started: Instant,
    tty: bool,
    failures: usize,
    last_tenth: usize,
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress {
    pub fn new() -> Self {
        Progress {
            started: Instant::now(),
            tty: std::io::stderr().is_terminal(),
            failures: 0,
            last_tenth: 0,
        }
    }

    pub fn update(&mut self, outcome: &Outcome, done: usize, total: usize) {
        if outcome.verdict != Verdict::Pass {
            self.failures += 1;
            let line = replay_line(&outcome.job);
            let msg = format!(
                "FAIL {} seed {}: {}\n  {line}",
                name(&outcome.job),
                outcome.job.seed,
                outcome.summary
            );
            if self.tty {
                eprint!("\r\x1b[2K");
            }
            eprintln!("{msg}");
        }
        let elapsed = self.started.elapsed().as_secs_f64();
        let eta = elapsed / done as f64 * (total - done) as f64;
        let status = format!(
            "{done}/{total} runs, {} failed, {elapsed:.0} s elapsed, ~{eta:.0} s left",
            self.failures
        );
        if self.tty {
            let width = 30;
            let filled = width * done / total.max(1);
            let bar = format!("{}{}", "#".repeat(filled), ".".repeat(width - filled));
            eprint!("\r\x1b[2K[{bar}] {status}");
            if done == total {
                eprintln!();
            }
            let _ = std::io::stderr().flush();
        } else {
            let tenth = done * 10 / total.max(1);
            if tenth > self.last_tenth || done == total {
                self.last_tenth = tenth;
                eprintln!("{status}");
            }
        }
    }
}

fn name(job: &Job) -> String {
    job.scenario.display().to_string()
}

/// The command that replays `job`, with the commit it was seen on.
pub fn replay_line(job: &Job) -> String {
    let line =
        format!("replay: hangar-sim run {} --seed {}   # commit {COMMIT}", name(job), job.seed);
    // A swarm scenario is a file under the build directory: say how to make it again.
    match job.group.strip_prefix("swarm") {
        Some(weak) => {
            let weaken = if weak.is_empty() { "" } else { " --weaken r1w1" };
            format!("{line}\n  (the file: hangar-sim swarm --seeds {}{weaken} --print)", job.seed)
        }
        None => line,
    }
}

/// One line per scenario: runs, passes, failures, speedup spread, failing seeds.
pub fn summary_table(outcomes: &[Outcome]) -> String {
    struct Row {
        runs: usize,
        passed: usize,
        failed: Vec<u64>,
        errors: Vec<u64>,
        speedups: Vec<u64>,
    }
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    for o in outcomes {
        let row = rows.entry(o.job.group.clone()).or_insert(Row {
            runs: 0,
            passed: 0,
            failed: Vec::new(),
            errors: Vec::new(),
            speedups: Vec::new(),
        });
        row.runs += 1;
        match o.verdict {
            Verdict::Pass => row.passed += 1,
            Verdict::Fail => row.failed.push(o.job.seed),
            Verdict::Error => row.errors.push(o.job.seed),
        }
        row.speedups.extend(o.speedup);
    }
    let seeds = |s: &[u64]| {
        let shown: Vec<String> = s.iter().take(8).map(u64::to_string).collect();
        let more = if s.len() > 8 { format!(" (+{})", s.len() - 8) } else { String::new() };
        if s.is_empty() { "-".to_string() } else { format!("{}{more}", shown.join(",")) }
    };
    let mut lines = vec![[
        "scenario".to_string(),
        "runs".into(),
        "pass".into(),
        "fail".into(),
        "error".into(),
        "speedup min/median/max".into(),
        "failing seeds".into(),
    ]];
    for (scenario, mut row) in rows {
        row.speedups.sort_unstable();
        let spread = match row.speedups.len() {
            0 => "-".to_string(),
            n => format!("{}/{}/{}", row.speedups[0], row.speedups[n / 2], row.speedups[n - 1]),
        };
        let mut bad = row.failed.clone();
        bad.extend(&row.errors);
        bad.sort_unstable();
        lines.push([
            scenario,
            row.runs.to_string(),
            row.passed.to_string(),
            row.failed.len().to_string(),
            row.errors.len().to_string(),
            spread,
            seeds(&bad),
        ]);
    }
    let widths: Vec<usize> =
        (0..7).map(|c| lines.iter().map(|l| l[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for line in &lines {
        let cells: Vec<String> =
            line.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Saves a failing run as a regression: the scenario text under a header that records the
/// seed (`# seed = N`, which tests/sim-acceptance.sh reads), the failure and the commit.
/// Returns the file written. The suite replays every file in `dir`, so a saved failure
/// keeps the build red until the bug is fixed.
pub fn save_regression(
    dir: &Path,
    scenario: &Path,
    seed: u64,
    failure: &str,
) -> Result<PathBuf, String> {
    let text = std::fs::read_to_string(scenario)
        .map_err(|e| format!("cannot read {}: {e}", scenario.display()))?;
    let stem = scenario.file_stem().and_then(|s| s.to_str()).unwrap_or("scenario");
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let file = dir.join(format!("{stem}-seed{seed}.toml"));
    let failure = failure.replace('\n', " ");
    let header = format!(
        "# Regression saved by hangar-sim from {} at commit {COMMIT}.\n\
         # It failed with: {failure}\n\
         # The test suite replays it with this seed; it must pass once the bug is fixed.\n\
         # seed = {seed}\n\n",
        scenario.display()
    );
    std::fs::write(&file, header + &text)
        .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_parse_as_ranges() {
        assert_eq!(parse_seeds("1..5").unwrap(), 1..=4);
        assert_eq!(parse_seeds("1..=5").unwrap(), 1..=5);
        assert_eq!(parse_seeds("7").unwrap(), 7..=7);
        assert!(parse_seeds("5..5").unwrap_err().contains("empty"));
        assert!(parse_seeds("x..3").unwrap_err().contains("not a seed"));
        assert!(parse_seeds("3..0").unwrap_err().contains("empty"));
    }

    fn outcome(scenario: &str, seed: u64, verdict: Verdict, speedup: u64) -> Outcome {
        Outcome {
            job: Job { scenario: scenario.into(), seed, group: scenario.into() },
            verdict,
            summary: String::new(),
            speedup: Some(speedup),
        }
    }

    #[test]
    fn summary_counts_each_scenario_and_names_failing_seeds() {
        let table = summary_table(&[
            outcome("a.toml", 1, Verdict::Pass, 100),
            outcome("a.toml", 2, Verdict::Fail, 300),
            outcome("a.toml", 3, Verdict::Pass, 200),
            outcome("b.toml", 1, Verdict::Error, 50),
        ]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        let a: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(a, ["a.toml", "3", "2", "1", "0", "100/200/300", "2"]);
        let b: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(b, ["b.toml", "1", "0", "0", "1", "50/50/50", "1"]);
    }

    #[test]
    fn a_saved_regression_records_its_seed_and_keeps_the_scenario() {
        let dir = std::env::temp_dir().join(format!("hangar-sweep-test-{}", std::process::id()));
        let src = dir.join("src.toml");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&src, "name = \"x\"\n").unwrap();
        let saved = save_regression(&dir.join("reg"), &src, 42, "read_after_write: stale").unwrap();
        let text = std::fs::read_to_string(&saved).unwrap();
        assert!(saved.ends_with("reg/src-seed42.toml"), "{}", saved.display());
        assert!(text.lines().any(|l| l == "# seed = 42"), "{text}");
        assert!(text.ends_with("name = \"x\"\n"), "{text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
