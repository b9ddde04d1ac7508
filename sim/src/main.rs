//! `hangar-sim`: run scenarios under deterministic simulation.
//!
//! Exit codes: 0 pass, 1 a checker found a violation (or runs differed), 2 bad usage or a
//! bad scenario file.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hangar_sim::run::{RunOptions, RunResult, run_with};
use hangar_sim::scenario::Scenario;

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
        /// Write the event trace as JSON lines.
        #[arg(long)]
        trace_out: Option<String>,
        /// Deliberately mix OS entropy into the run (proves check-determinism can fail).
        #[arg(long, hide = true)]
        canary: bool,
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
        Command::Run { scenario, seed, trace_out, canary } => {
            let options = RunOptions { keep_events: trace_out.is_some(), canary };
            cmd_run(&scenario, seed, trace_out.as_deref(), options)
        }
        Command::CheckDeterminism { scenario, seed, canary } => {
            cmd_check_determinism(&scenario, seed, canary)
        }
    };
    outcome.unwrap_or_else(|code| code)
}

fn cmd_run(
    path: &str,
    seed: u64,
    trace_out: Option<&str>,
    options: RunOptions,
) -> Result<ExitCode, ExitCode> {
    let scenario = load(path)?;
    println!("seed={seed}");
    let result = run_in_shell(&scenario, seed, options);
    println!("trace={}", result.trace_hash);
    if let Some(file) = trace_out {
        let mut out = std::fs::File::create(file).map_err(|e| {
            eprintln!("error: cannot write {file}: {e}");
            ExitCode::from(2)
        })?;
        result.recorder.lock().unwrap().write_jsonl(&mut out).map_err(|e| {
            eprintln!("error: cannot write {file}: {e}");
            ExitCode::from(2)
        })?;
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
            println!("result: pass");
            Ok(ExitCode::SUCCESS)
        }
        Some(v) => {
            println!("result: fail: {v}");
            println!("replay: hangar-sim run {path} --seed {seed}");
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
