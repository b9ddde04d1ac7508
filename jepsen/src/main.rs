//! `hangar-jepsen`: Jepsen-style testing of real Hangar clusters — `hangar server`
//! processes in network namespaces, real faults (nftables partitions, SIGKILL, SIGSTOP,
//! libfaketime clocks), S3 clients recording histories, judged by the same checkers as the
//! simulation (hangar-checkers). See docs/jepsen.md.
//!
//! `run` prints `valid: true|false|unknown` and exits 0 only when valid (1: an anomaly,
//! 2: nothing could be judged or the harness failed).

mod cluster;
mod nemesis;
mod netns;
mod report;
mod s3;
mod workload;

use std::fs::{self, File};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};

use crate::cluster::{Cluster, ClusterOptions};
use crate::nemesis::Family;
use crate::workload::{History, Kind, Recorder};

/// After the last fault is healed, the cluster gets this long before the final reads.
const SETTLE: Duration = Duration::from_secs(3);

#[derive(Parser)]
#[command(name = "hangar-jepsen", about = "Jepsen-style tests of real Hangar clusters")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a cluster, run a workload under faults, check the history.
    Run(RunArgs),
    /// Remove every hjep- namespace, rule and process a crashed run left behind.
    Cleanup,
}

#[derive(Clone, Copy, ValueEnum)]
enum WorkloadArg {
    Register,
    Set,
    Multipart,
    Cas,
}

#[derive(clap::Args)]
struct RunArgs {
    #[arg(long, value_enum, default_value = "register")]
    workload: WorkloadArg,
    /// Comma-separated: partition, kill, pause, clock (or none).
    #[arg(long, default_value = "partition,kill,pause")]
    nemesis: String,
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// Seconds of workload under faults (final reads come after).
    #[arg(long, default_value_t = 60)]
    time_limit: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value = "jepsen-out")]
    out: PathBuf,
    /// Concurrent clients, bound to nodes round-robin (default: one per node).
    #[arg(long)]
    clients: Option<usize>,
    /// Milliseconds before an operation is given up as `info`.
    #[arg(long, default_value_t = 3000)]
    op_timeout_ms: u64,
    /// The server binary (default: `hangar` next to this program).
    #[arg(long)]
    hangar_bin: Option<PathBuf>,
    /// `consistent`, or `dangerous` (R = W = 1): the weakened build the checker must catch.
    #[arg(long, default_value = "consistent")]
    consistency_mode: String,
    #[arg(long, default_value_t = 3)]
    replication_factor: usize,
    /// Layout zones, taking the nodes in turn (n1 → z1, n2 → z2, …); default one per node.
    /// The zone-split nemesis cuts one zone from the others.
    #[arg(long)]
    zones: Option<usize>,
    /// `cas`: mix 5 % unconditional PUTs and 5 % DELETEs in with the conditional writes.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    cas_unconditional: bool,
}

/// Only one harness may run on a machine: each run cleans every `hjep-` namespace first,
/// so a second run (a CI smoke started during a campaign) would tear down the first one's
/// cluster mid-workload. `run` and `cleanup` hold this lock (flock, released by the kernel
/// when the process dies, so a killed harness never leaves it held).
const MACHINE_LOCK: &str = "/run/hangar-jepsen.lock";

fn machine_lock() -> Result<File, String> {
    let file = File::create(MACHINE_LOCK).map_err(|e| format!("{MACHINE_LOCK}: {e}"))?;
    if file.try_lock().is_err() {
        eprintln!("hangar-jepsen: another hangar-jepsen holds {MACHINE_LOCK}; waiting for it");
        file.lock().map_err(|e| format!("{MACHINE_LOCK}: {e}"))?;
    }
    Ok(file)
}

fn main() -> ExitCode {
    let command = Cli::parse().command;
    let _lock = match machine_lock() {
        Ok(lock) => lock,
        Err(e) => {
            eprintln!("hangar-jepsen: error: cannot take the machine lock: {e}");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Cleanup => match netns::cleanup() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hangar-jepsen: cleanup: {e}");
                ExitCode::from(2)
            }
        },
        Command::Run(args) => match run(&args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("hangar-jepsen: error: {e}");
                println!("valid: unknown");
                ExitCode::from(2)
            }
        },
    }
}

fn replay_command(a: &RunArgs) -> String {
    let workload = match a.workload {
        WorkloadArg::Register => "register",
        WorkloadArg::Set => "set",
        WorkloadArg::Multipart => "multipart",
        WorkloadArg::Cas => "cas",
    };
    let extra = match a.workload {
        WorkloadArg::Cas => format!(" --cas-unconditional {}", a.cas_unconditional),
        _ => String::new(),
    };
    format!(
        "hangar-jepsen run --workload {workload}{extra} --nemesis {} --nodes {} --time-limit {} \
         --seed {} --clients {} --zones {} --consistency-mode {} --out {}",
        a.nemesis,
        a.nodes,
        a.time_limit,
        a.seed,
        clients(a),
        zones(a),
        a.consistency_mode,
        a.out.display()
    )
}

fn zones(args: &RunArgs) -> usize {
    args.zones.unwrap_or(args.nodes)
}

fn clients(args: &RunArgs) -> usize {
    args.clients.unwrap_or(args.nodes)
}

fn hangar_bin(args: &RunArgs) -> Result<PathBuf, String> {
    let bin = match &args.hangar_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()
            .map_err(|e| format!("cannot find this program's path: {e}"))?
            .with_file_name("hangar"),
    };
    if !bin.exists() {
        return Err(format!(
            "no server binary at {} (build it: cargo build -p hangar-s3, or pass --hangar-bin)",
            bin.display()
        ));
    }
    Ok(bin)
}

fn run(args: &RunArgs) -> Result<ExitCode, String> {
    let families = Family::parse_list(&args.nemesis)?;
    if args.nodes == 0 || clients(args) == 0 || args.time_limit == 0 || zones(args) == 0 {
        return Err("--nodes, --clients, --zones and --time-limit must be at least 1".into());
    }
    let kind = match args.workload {
        WorkloadArg::Register => Kind::Register,
        WorkloadArg::Set => Kind::Set,
        WorkloadArg::Multipart => Kind::Multipart,
        WorkloadArg::Cas => Kind::Cas,
    };
    let command = replay_command(args);
    println!("seed {} — replay: {command}", args.seed);
    fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let shape = nemesis::Shape { nodes: args.nodes, zones: zones(args) };
    let steps = nemesis::schedule(args.seed, &families, shape, args.time_limit);
    for s in &steps {
        println!("  fault {:>3}s..{:>3}s {}", s.start_s, s.stop_s, nemesis::label(&s.fault));
    }
    let opts = ClusterOptions {
        nodes: args.nodes,
        hangar_bin: hangar_bin(args)?,
        consistency_mode: args.consistency_mode.clone(),
        replication_factor: args.replication_factor.min(args.nodes),
        fake_clock: families.contains(&Family::Clock),
        zones: zones(args),
    };
    let mut cluster = Cluster::start(opts, &args.out)?;
    let addrs: Vec<_> = cluster.nodes.iter().map(|n| n.s3_addr()).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    runtime.block_on(workload::create_bucket(&addrs))?;
    for addr in &addrs {
        runtime.block_on(workload::wait_serving(*addr))?;
    }
    let wopts = workload::Options {
        kind,
        clients: clients(args),
        seed: args.seed,
        op_timeout: Duration::from_millis(args.op_timeout_ms),
        cas_unconditional: args.cas_unconditional,
    };
    let t0 = Instant::now();
    let rec = Recorder::new(kind, t0);
    let until = t0 + Duration::from_secs(args.time_limit);
    let nemesis_path = args.out.join("nemesis.jsonl");
    let mut nemesis_log =
        File::create(&nemesis_path).map_err(|e| format!("{}: {e}", nemesis_path.display()))?;
    let faults = std::thread::scope(|scope| {
        let nemesis = scope.spawn(|| nemesis::execute(&mut cluster, &steps, t0, &mut nemesis_log));
        runtime.block_on(workload::run_clients(&wopts, &addrs, &rec, until, false));
        nemesis.join().expect("the nemesis thread does not panic")
    });
    let faults = match faults {
        Ok(f) => f,
        Err(e) => {
            drop(cluster);
            return Err(format!("nemesis: {e}"));
        }
    };
    std::thread::sleep(SETTLE);
    runtime.block_on(workload::run_clients(&wopts, &addrs, &rec, Instant::now(), true));
    drop(cluster);
    let left = netns::leftovers()?;
    let history = rec.take();
    finish(args, &command, &history, &faults, &left)
}

/// Writes the history and the report, prints the verdict, and picks the exit code.
fn finish(
    args: &RunArgs,
    command: &str,
    history: &History,
    faults: &[nemesis::Interval],
    left: &[String],
) -> Result<ExitCode, String> {
    let hist_path = args.out.join("history.jsonl");
    fs::write(&hist_path, history.to_jsonl())
        .map_err(|e| format!("{}: {e}", hist_path.display()))?;
    let checked = history.check();
    let (verdict, anomaly) = match checked {
        Err(v) => ("false", Some(v.to_string())),
        Ok(Some(undecided)) => ("unknown", Some(undecided)),
        Ok(None) if history.ok_reads() == 0 => {
            ("unknown", Some("no read was acknowledged: nothing to judge".to_string()))
        }
        Ok(None) => ("true", None),
    };
    let (verdict, anomaly) = if left.is_empty() {
        (verdict, anomaly)
    } else {
        let msg = format!("teardown left behind: {}", left.join(", "));
        ("unknown", Some(anomaly.map_or(msg.clone(), |a| format!("{a}\n{msg}"))))
    };
    let summary = report::Summary { title: "hangar-jepsen", verdict, anomaly, command };
    let page = report::html(&summary, &history.points(), faults);
    let report_path = args.out.join("report.html");
    fs::write(&report_path, page).map_err(|e| format!("{}: {e}", report_path.display()))?;
    println!(
        "{} operations ({} acknowledged reads), {} faults; history, nemesis log, node logs \
         and report.html in {}",
        history.len(),
        history.ok_reads(),
        faults.len(),
        args.out.display()
    );
    if let Some(a) = &summary.anomaly {
        println!("anomaly: {a}");
    }
    println!("valid: {verdict}");
    Ok(match verdict {
        "true" => ExitCode::SUCCESS,
        "false" => ExitCode::from(1),
        _ => ExitCode::from(2),
    })
}
