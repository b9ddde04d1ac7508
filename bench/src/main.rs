//! `hangar-bench`: an S3 load generator for Hangar or any S3 endpoint.
//!
//! ```text
//! hangar-bench --credentials hangar-dev/credentials.env --mix put=1 --size 1MiB \
//!     --concurrency 8 --duration 30s
//! ```
//! Credentials come from flags, else from the `AWS_*` environment (what `hangar dev`
//! prints), else from a file of `export NAME=value` lines (`hangar dev` writes one). When
//! the mix reads or deletes, the keys are written first (a fill phase, reported apart).
//! Exit codes: 0 done (errors are reported, not fatal), 2 bad usage or unreachable endpoint.

mod load;
mod report;
mod units;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use hyper::Method;

use hangar_s3::client::{Call, Connection, Creds, error_code};
use load::{Limit, LoadSpec, Mix, Op, Progress};

#[derive(Parser, Debug)]
#[command(name = "hangar-bench", about = "S3 load generator: ops/s, MiB/s, latency percentiles")]
struct Args {
    /// S3 endpoint (default: $AWS_ENDPOINT_URL, else http://127.0.0.1:3900).
    #[arg(long)]
    endpoint: Option<String>,
    /// A file of `export NAME=value` lines, e.g. hangar-dev/credentials.env.
    #[arg(long)]
    credentials: Option<String>,
    #[arg(long)]
    access_key: Option<String>,
    #[arg(long)]
    secret_key: Option<String>,
    #[arg(long)]
    region: Option<String>,
    /// Bucket to use; created if missing.
    #[arg(long, default_value = "hangar-bench")]
    bucket: String,
    /// Operation weights: put, get, list, delete (e.g. put=50,get=50).
    #[arg(long, default_value = "put=1")]
    mix: String,
    /// Object size or range: 4KiB, 1MiB, 4KiB..1MiB.
    #[arg(long, default_value = "1MiB")]
    size: String,
    /// Distinct keys the load draws from.
    #[arg(long, default_value_t = 1000)]
    keys: usize,
    /// Requests in flight (one connection each).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Run for this long (e.g. 30s, 2m)...
    #[arg(long, conflicts_with = "count")]
    duration: Option<String>,
    /// ...or for this many operations.
    #[arg(long)]
    count: Option<u64>,
    /// Requests in flight during the fill phase (default: --concurrency), e.g. to fill
    /// 100k keys fast and then list them one client at a time.
    #[arg(long)]
    fill_concurrency: Option<usize>,
    /// Skip the fill phase even if the mix reads.
    #[arg(long)]
    no_fill: bool,
    /// Each LIST walks the whole `bench/` prefix page by page (continuation tokens), so its
    /// latency is the time to list every key (e.g. `--keys 100000 --mix list=1`).
    #[arg(long)]
    list_all: bool,
    /// Seed of the operation and key draws.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
}

fn usage(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

/// `export NAME=value` lines (quotes stripped), as `hangar dev` writes them.
fn read_env_file(path: &str) -> Result<Vec<(String, String)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    Ok(text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("export ").or(Some(l.trim())))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches(['"', '\'']).to_string()))
        .collect())
}

fn setting(flag: &Option<String>, file: &[(String, String)], name: &str) -> Option<String> {
    flag.clone()
        .or_else(|| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .or_else(|| file.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
}

/// "host:port" of an `http://` endpoint.
fn endpoint_addr(endpoint: &str) -> Result<String, String> {
    if endpoint.starts_with("https://") {
        return Err(format!("{endpoint}: https is not supported by hangar-bench (use http)"));
    }
    let rest = endpoint.strip_prefix("http://").unwrap_or(endpoint);
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() {
        return Err(format!("`{endpoint}` has no host"));
    }
    Ok(if host.contains(':') { host.to_string() } else { format!("{host}:80") })
}

fn main() -> ExitCode {
    let args = Args::parse();
    let file = match args.credentials.as_deref().map(read_env_file).transpose() {
        Ok(f) => f.unwrap_or_default(),
        Err(e) => return usage(e),
    };
    let endpoint = setting(&args.endpoint, &file, "AWS_ENDPOINT_URL")
        .unwrap_or_else(|| "http://127.0.0.1:3900".into());
    let addr = match endpoint_addr(&endpoint) {
        Ok(a) => a,
        Err(e) => return usage(e),
    };
    let (Some(access_key), Some(secret_key)) = (
        setting(&args.access_key, &file, "AWS_ACCESS_KEY_ID"),
        setting(&args.secret_key, &file, "AWS_SECRET_ACCESS_KEY"),
    ) else {
        return usage(
            "no credentials: pass --credentials hangar-dev/credentials.env, or --access-key and \
             --secret-key, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        );
    };
    let region = setting(&args.region, &file, "AWS_REGION").unwrap_or_else(|| "hangar".into());
    let creds = Creds { access_key, secret_key, region };
    let mix = match Mix::parse(&args.mix) {
        Ok(m) => m,
        Err(e) => return usage(format!("--mix: {e}")),
    };
    let (min_size, max_size) = match units::parse_size_range(&args.size) {
        Ok(r) => r,
        Err(e) => return usage(format!("--size: {e}")),
    };
    let limit = match (&args.duration, args.count) {
        (_, Some(n)) => Limit::Count(n),
        (Some(d), None) => match units::parse_duration(d) {
            Ok(d) => Limit::Duration(d),
            Err(e) => return usage(format!("--duration: {e}")),
        },
        (None, None) => Limit::Duration(Duration::from_secs(10)),
    };
    if args.concurrency == 0 || args.keys == 0 {
        return usage("--concurrency and --keys must be at least 1");
    }
    let spec = LoadSpec {
        addr,
        creds,
        bucket: args.bucket.clone(),
        mix,
        min_size,
        max_size,
        keys: args.keys,
        concurrency: args.concurrency,
        limit,
        seed: args.seed,
        list_all: args.list_all,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => return usage(format!("cannot start the async runtime: {e}")),
    };
    let fill_concurrency = args.fill_concurrency.unwrap_or(args.concurrency).max(1);
    runtime.block_on(bench(spec, &endpoint, fill_concurrency, args.no_fill, args.json))
}

async fn bench(
    spec: LoadSpec,
    endpoint: &str,
    fill_concurrency: usize,
    no_fill: bool,
    json: bool,
) -> ExitCode {
    let mut conn = Connection::new(spec.addr.clone(), spec.creds.clone());
    let path = format!("/{}", spec.bucket);
    // A bucket the key may already use is taken as it is: the key need not be allowed to
    // create buckets (a cluster's operator often creates them and grants access).
    let head = Call { method: Method::HEAD, path: &path, query: &[], body: Bytes::new() };
    let exists = match conn.send(head).await {
        Err(e) => return usage(format!("{endpoint}: {e} (is the server running?)")),
        Ok(a) => a.status == 200,
    };
    if !exists {
        let create = Call { method: Method::PUT, path: &path, query: &[], body: Bytes::new() };
        match conn.send(create).await {
            Err(e) => return usage(format!("{endpoint}: {e} (is the server running?)")),
            Ok(a) if a.status == 200 => {}
            Ok(a) => {
                let code = error_code(&a.body).unwrap_or_default();
                if code != "BucketAlreadyOwnedByYou" && code != "BucketAlreadyExists" {
                    return usage(format!(
                        "cannot create bucket {}: HTTP {} {code}",
                        spec.bucket, a.status
                    ));
                }
            }
        }
    }
    let body = load::payload(spec.max_size, spec.seed);
    let mut phases = Vec::new();
    let reads = spec.mix.has(Op::Get) || spec.mix.has(Op::Delete) || spec.mix.has(Op::List);
    if reads && !no_fill {
        let fill = LoadSpec {
            mix: Mix { weights: [1, 0, 0, 0] },
            limit: Limit::Count(spec.keys as u64),
            concurrency: fill_concurrency,
            ..spec.clone()
        };
        // Sequential keys so that every key exists after the fill.
        let result = run_phase("fill", fill, body.clone(), true).await;
        phases.push(("fill", result));
    }
    let result = run_phase("load", spec.clone(), body, false).await;
    phases.push(("load", result));
    let summary = report::Summary::new(endpoint, &spec, &phases);
    if json {
        println!("{}", summary.json());
    } else {
        print!("{}", summary.table());
    }
    ExitCode::SUCCESS
}

async fn run_phase(
    name: &str,
    spec: LoadSpec,
    body: Bytes,
    sequential_keys: bool,
) -> load::LoadResult {
    let progress = Arc::new(Progress::default());
    let spec = Arc::new(spec);
    let started = Instant::now();
    let ticker = {
        let (progress, name) = (progress.clone(), name.to_string());
        tokio::spawn(async move {
            let mut last = 0u64;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let ops = progress.ops.load(Ordering::Relaxed);
                let mib = progress.bytes.load(Ordering::Relaxed) as f64 / (1 << 20) as f64;
                let secs = started.elapsed().as_secs_f64();
                eprintln!(
                    "{name}: {:>6.0} s  {ops:>9} ops  {:>8} ops/s  {:>8.1} MiB/s  {} errors",
                    secs,
                    ops - last,
                    mib / secs,
                    progress.errors.load(Ordering::Relaxed)
                );
                last = ops;
            }
        })
    };
    let result = load::run(spec, body, progress, sequential_keys).await;
    ticker.abort();
    result
}
