//! `hangar-sim`: run scenarios under deterministic simulation.
//!
//! Exit codes: 0 pass, 1 a checker found a violation (or runs differed), 2 bad usage or a
//! bad scenario file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hangar_sim::run::{RunOptions, RunResult, run_with};
use hangar_sim::scenario::Scenario;
use hangar_sim::swarm::{self, Weakening};
use hangar_sim::sweep::{self, Outcome, Progress, Verdict};
use hangar_sim::tracefile::{self, TraceFile};
use hangar_sim::{report, research};

/// Where `--save-regression(s)` puts failing runs; tests/sim-acceptance.sh replays them.
const REGRESSIONS_DIR: &str = "scenarios/regressions";
/// Where `swarm` writes the scenarios it generates (under the build directory: throwaway).
const SWARM_DIR: &str = "target/swarm";

#[derive(Parser)]
#[command(name = "hangar-sim", about = "Hangar's deterministic simulator", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one scenario with one seed.
    Run {
        scenario: String,
        #[arg(long)]
        seed: u64,
        /// Write the event trace as JSON lines (docs/simulation.md, "Explaining a run").
        #[arg(long)]
        trace_out: Option<String>,
        /// Write the run's report (one self-contained HTML page) to this file.
        #[arg(long)]
        report: Option<String>,
        /// Deliberately mix OS entropy into the run (proves check-determinism can fail).
        #[arg(long, hide = true)]
        canary: bool,
        /// If the run fails, save the scenario with this seed into scenarios/regressions/
        /// (the test suite replays every file there).
        #[arg(long)]
        save_regression: bool,
    },
    /// Run every scenario of the given files or directories over a range of seeds, each run
    /// in a fresh process, and print a summary table and the replay command of each failure.
    Sweep {
        /// Scenario files, or directories whose *.toml files to run (not their subdirectories).
        #[arg(required = true)]
        paths: Vec<String>,
        /// Seeds: A..B (B excluded), A..=B, or one seed.
        #[arg(long)]
        seeds: String,
        /// Runs at once (default: the number of CPUs).
        #[arg(long)]
        jobs: Option<usize>,
        /// Save every failing run into scenarios/regressions/.
        #[arg(long)]
        save_regressions: bool,
    },
    /// Run scenarios drawn at random from each seed (cluster, network, workload, faults);
    /// the generated files go to target/swarm/ and each is printed with --print.
    Swarm {
        #[arg(long)]
        seeds: String,
        #[arg(long)]
        jobs: Option<usize>,
        /// Print each generated scenario instead of running it.
        #[arg(long)]
        print: bool,
        /// Deliberately weaken every scenario (r1w1: quorums of one) to show the swarm finds it.
        #[arg(long)]
        weaken: Option<String>,
        /// Stop starting runs after the first failure.
        #[arg(long)]
        stop_at_first_failure: bool,
        #[arg(long)]
        save_regressions: bool,
    },
    /// Render a trace written by `run --trace-out` as one self-contained HTML page.
    Report {
        trace: String,
        /// The HTML file to write.
        #[arg(short = 'o', long = "out")]
        out: String,
    },
    /// Latency (in ms and inter-zone round trips) and staleness over many seeds of the
    /// given scenarios, as a table and optionally an SVG plot (docs/simulation.md).
    Research {
        #[arg(required = true)]
        scenarios: Vec<String>,
        #[arg(long)]
        seeds: String,
        #[arg(long)]
        jobs: Option<usize>,
        /// Write the latency CDFs and staleness plot to this SVG file.
        #[arg(long)]
        svg: Option<String>,
    },
    /// Run one seed in two fresh processes and compare their traces event by event.
    CheckDeterminism {
        scenario: String,
        #[arg(long)]
        seed: u64,
        /// Run the canary (a non-deterministic run): the check must then fail.
        #[arg(long, hide = true)]
        canary: bool,
    },
}

fn load(path: &str) -> Result<Scenario, ExitCode> {
    Scenario::load(path).map_err(|e| {
        eprintln!("error: bad scenario: {e}");
        ExitCode::from(2)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Run { scenario, seed, trace_out, report, canary, save_regression } => {
            let keep_events = trace_out.is_some() || report.is_some();
            let options = RunOptions { keep_events, canary };
            let outputs = RunOutputs { trace: trace_out, report };
            cmd_run(&scenario, seed, outputs, options, save_regression)
        }
        Command::Report { trace, out } => cmd_report(&trace, &out),
        Command::Research { scenarios, seeds, jobs, svg } => {
            let seeds = sweep::parse_seeds(&seeds).map_err(usage_error);
            seeds.and_then(|seeds| {
                let exe = std::env::current_exe()
                    .map_err(|e| usage_error(format!("cannot find this program's path: {e}")))?;
                let jobs = default_jobs(jobs);
                research::cmd_research(&exe, &scenarios, seeds, jobs, svg.as_deref())
                    .map_err(usage_error)
            })
        }
        Command::Sweep { paths, seeds, jobs, save_regressions } => {
            cmd_sweep(&paths, &seeds, jobs, save_regressions)
        }
        Command::Swarm { seeds, jobs, print, weaken, stop_at_first_failure, save_regressions } => {
            let options = SwarmOptions { print, weaken, stop_at_first_failure, save_regressions };
            cmd_swarm(&seeds, jobs, options)
        }
        Command::CheckDeterminism { scenario, seed, canary } => {
            cmd_check_determinism(&scenario, seed, canary)
        }
    };
    outcome.unwrap_or_else(|code| code)
}

/// Files `run` writes besides its output: the trace, the HTML report.
struct RunOutputs {
    trace: Option<String>,
    report: Option<String>,
}

fn cmd_run(
    path: &str,
    seed: u64,
    outputs: RunOutputs,
    options: RunOptions,
    save_regression: bool,
) -> Result<ExitCode, ExitCode> {
    let scenario = load(path)?;
    println!("seed={seed}");
    let result = run_in_shell(&scenario, seed, options);
    println!("trace={}", result.trace_hash);
    if options.keep_events {
        let mut text = Vec::new();
        let header = tracefile::header_line(path, &scenario, seed, sweep::COMMIT);
        tracefile::write(&mut text, &header, &result).expect("writing to memory");
        let cannot_write =
            |file: &str, e: std::io::Error| usage_error(format!("cannot write {file}: {e}"));
        if let Some(file) = &outputs.trace {
            std::fs::write(file, &text).map_err(|e| cannot_write(file, e))?;
        }
        if let Some(file) = &outputs.report {
            let trace = TraceFile::parse(&String::from_utf8_lossy(&text)).map_err(usage_error)?;
            std::fs::write(file, report::render(&trace)).map_err(|e| cannot_write(file, e))?;
            println!("report: {file}");
        }
    }
    for note in &result.fault_notes {
        println!("fault: {note}");
    }
    let [ok, failed, unknown] = result.outcomes;
    println!(
        "ops={} events={} sim_ms={} wall_ms={} speedup={:.0} ok={ok} failed={failed} \
         unknown={unknown} remote_blocks={}",
        result.ops,
        result.recorder.lock().unwrap().count(),
        result.sim_ms,
        result.wall.as_millis(),
        result.speedup(),
        result.remote_blocks,
    );
    match &result.violation {
        None => {
            match &result.expected_failure {
                Some(v) => println!("result: pass (failed as expected: {v})"),
                None => println!("result: pass"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(v) => {
            println!("result: fail: {v}");
            println!("replay: hangar-sim run {path} --seed {seed}   # commit {}", sweep::COMMIT);
            if save_regression {
                let saved = sweep::save_regression(
                    Path::new(REGRESSIONS_DIR),
                    Path::new(path),
                    seed,
                    &v.to_string(),
                );
                match saved {
                    Ok(file) => println!("saved: {}", file.display()),
                    Err(e) => eprintln!("error: cannot save the regression: {e}"),
                }
            }
            Ok(ExitCode::from(1))
        }
    }
}

/// Runs the simulation; under `--cfg madsim` inside madsim's deterministic runtime, so that
/// std time, OS randomness and `HashMap` seeds that slip past the seam are seeded too.
#[cfg(not(madsim))]
fn run_in_shell(scenario: &Scenario, seed: u64, options: RunOptions) -> RunResult {
    let started = std::time::Instant::now();
    let mut result = run_with(scenario, seed, options);
    result.wall = started.elapsed();
    result
}

#[cfg(madsim)]
fn run_in_shell(scenario: &Scenario, seed: u64, options: RunOptions) -> RunResult {
    let started = std::time::Instant::now();
    let rt = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    let scenario = scenario.clone();
    let mut result = rt.block_on(async move { run_with(&scenario, seed, options) });
    result.wall = started.elapsed();
    result
}

fn cmd_report(trace: &str, out: &str) -> Result<ExitCode, ExitCode> {
    let text = std::fs::read_to_string(trace)
        .map_err(|e| usage_error(format!("cannot read {trace}: {e}")))?;
    let parsed = TraceFile::parse(&text).map_err(|e| usage_error(format!("{trace}: {e}")))?;
    std::fs::write(out, report::render(&parsed))
        .map_err(|e| usage_error(format!("cannot write {out}: {e}")))?;
    println!("report: {out}");
    Ok(ExitCode::SUCCESS)
}

fn cmd_check_determinism(path: &str, seed: u64, canary: bool) -> Result<ExitCode, ExitCode> {
    load(path)?;
    let exe = std::env::current_exe().map_err(|e| {
        eprintln!("error: cannot find own executable: {e}");
        ExitCode::from(2)
    })?;
    let dir = std::env::temp_dir();
    let mut traces = Vec::new();
    for attempt in 1..=2 {
        let file =
            dir.join(format!("hangar-sim-det-{}-{seed}-{attempt}.jsonl", std::process::id()));
        let out = std::process::Command::new(&exe)
            .args(["run", path, "--seed", &seed.to_string()])
            .args(canary.then_some("--canary"))
            .arg("--trace-out")
            .arg(&file)
            .output()
            .map_err(|e| {
                eprintln!("error: cannot run {}: {e}", exe.display());
                ExitCode::from(2)
            })?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let hash = stdout.lines().find_map(|l| l.strip_prefix("trace=")).unwrap_or("?").to_string();
        let events = std::fs::read_to_string(&file).unwrap_or_default();
        let _ = std::fs::remove_file(&file);
        println!("run {attempt}: trace={hash}");
        traces.push((hash, events));
    }
    let (a, b) = (&traces[0], &traces[1]);
    if a.0 == b.0 && a.1 == b.1 {
        println!("result: deterministic ({} events)", a.1.lines().count());
        return Ok(ExitCode::SUCCESS);
    }
    let first = a.1.lines().zip(b.1.lines()).enumerate().find(|(_, (x, y))| x != y);
    match first {
        Some((i, (x, y))) => {
            println!("result: fail: traces differ at event {i}:\n  run 1: {x}\n  run 2: {y}")
        }
        None => println!(
            "result: fail: traces differ in length ({} vs {} events)",
            a.1.lines().count(),
            b.1.lines().count()
        ),
    }
    Ok(ExitCode::from(1))
}

fn usage_error(message: String) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

fn default_jobs(jobs: Option<usize>) -> usize {
    jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Runs the jobs, prints the summary, saves failures when asked; exit 1 on any failure.
fn sweep_and_report(
    jobs: Vec<sweep::Job>,
    parallel: usize,
    stop_at_first_failure: bool,
    save_regressions: bool,
) -> Result<(ExitCode, Vec<Outcome>), ExitCode> {
    let exe = std::env::current_exe()
        .map_err(|e| usage_error(format!("cannot find this program's path: {e}")))?;
    let mut progress = Progress::new();
    let outcomes = sweep::run_jobs(&exe, jobs, parallel, &[], stop_at_first_failure, |o, n, t| {
        progress.update(o, n, t)
    });
    print!("{}", sweep::summary_table(&outcomes));
    let failures: Vec<&Outcome> = outcomes.iter().filter(|o| o.verdict != Verdict::Pass).collect();
    for o in &failures {
        println!("{} seed {}: {}", o.job.scenario.display(), o.job.seed, o.summary);
        println!("  {}", sweep::replay_line(&o.job));
        if save_regressions && o.verdict == Verdict::Fail {
            let saved = sweep::save_regression(
                Path::new(REGRESSIONS_DIR),
                &o.job.scenario,
                o.job.seed,
                &o.summary,
            );
            match saved {
                Ok(file) => println!("  saved: {}", file.display()),
                Err(e) => eprintln!("error: cannot save the regression: {e}"),
            }
        }
    }
    println!("result: {} runs, {} failed", outcomes.len(), failures.len());
    let code = if failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) };
    Ok((code, outcomes))
}

fn cmd_sweep(
    paths: &[String],
    seeds: &str,
    jobs: Option<usize>,
    save_regressions: bool,
) -> Result<ExitCode, ExitCode> {
    let seeds = sweep::parse_seeds(seeds).map_err(usage_error)?;
    let files = sweep::scenario_files(paths).map_err(usage_error)?;
    // Refuse a bad file up front, with its line, rather than once per seed.
    for file in &files {
        load(&file.to_string_lossy())?;
    }
    let runs = sweep::jobs(&files, seeds);
    Ok(sweep_and_report(runs, default_jobs(jobs), false, save_regressions)?.0)
}

struct SwarmOptions {
    print: bool,
    weaken: Option<String>,
    stop_at_first_failure: bool,
    save_regressions: bool,
}

fn cmd_swarm(
    seeds: &str,
    jobs: Option<usize>,
    options: SwarmOptions,
) -> Result<ExitCode, ExitCode> {
    let seeds = sweep::parse_seeds(seeds).map_err(usage_error)?;
    let weakening =
        options.weaken.as_deref().map(Weakening::parse).transpose().map_err(usage_error)?;
    if options.print {
        for seed in seeds {
            println!("{}", swarm::generate(seed, weakening));
        }
        return Ok(ExitCode::SUCCESS);
    }
    std::fs::create_dir_all(SWARM_DIR)
        .map_err(|e| usage_error(format!("cannot create {SWARM_DIR}: {e}")))?;
    let suffix = if weakening.is_some() { "-weak" } else { "" };
    let mut runs = Vec::new();
    for seed in seeds {
        let file = PathBuf::from(format!("{SWARM_DIR}/swarm-{seed}{suffix}.toml"));
        let text = swarm::generate(seed, weakening);
        println!("swarm {seed}: {}", swarm::summary(&text));
        std::fs::write(&file, text)
            .map_err(|e| usage_error(format!("cannot write {}: {e}", file.display())))?;
        runs.push(sweep::Job { scenario: file, seed, group: format!("swarm{suffix}") });
    }
    let (code, _) = sweep_and_report(
        runs,
        default_jobs(jobs),
        options.stop_at_first_failure,
        options.save_regressions,
    )?;
    Ok(code)
}
