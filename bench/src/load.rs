//! The load: workers each holding one connection, drawing operations from the mix, until
//! the count or the duration is reached; every answered operation's latency goes into a
//! per-operation histogram.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use hyper::Method;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use hangar_s3::client::{Call, Connection, Creds, error_code};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    Put,
    Get,
    List,
    Delete,
}

impl Op {
    pub const ALL: [Op; 4] = [Op::Put, Op::Get, Op::List, Op::Delete];

    pub fn name(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Get => "get",
            Op::List => "list",
            Op::Delete => "delete",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Relative weights of the operations, e.g. `put=50,get=50`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix {
    pub weights: [u32; 4],
}

impl Mix {
    pub fn parse(text: &str) -> Result<Mix, String> {
        let mut weights = [0u32; 4];
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part.split_once('=').unwrap_or((part, "1"));
            let op = Op::ALL
                .into_iter()
                .find(|op| op.name() == name)
                .ok_or_else(|| format!("`{name}` is not an operation (put, get, list, delete)"))?;
            weights[op.index()] = weight
                .parse()
                .map_err(|_| format!("`{weight}` is not a weight (a whole number) for {name}"))?;
        }
        if weights.iter().all(|&w| w == 0) {
            return Err(format!("`{text}` gives no operation a weight"));
        }
        Ok(Mix { weights })
    }

    pub fn has(&self, op: Op) -> bool {
        self.weights[op.index()] > 0
    }

    fn draw(&self, rng: &mut ChaCha8Rng) -> Op {
        let total: u32 = self.weights.iter().sum();
        let mut pick = (rng.next_u32() % total) as i64;
        for op in Op::ALL {
            pick -= i64::from(self.weights[op.index()]);
            if pick < 0 {
                return op;
            }
        }
        unreachable!("pick is below the total of the weights")
    }
}

/// When a run stops.
#[derive(Debug, Clone, Copy)]
pub enum Limit {
    Count(u64),
    Duration(Duration),
}

#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub addr: String,
    pub creds: Creds,
    pub bucket: String,
    pub mix: Mix,
    /// Object sizes are uniform in this range (bytes).
    pub min_size: usize,
    pub max_size: usize,
    pub keys: usize,
    pub concurrency: usize,
    pub limit: Limit,
    pub seed: u64,
}

/// Latencies (µs) and counts of one operation kind.
pub struct OpStats {
    pub latency_us: Histogram<u64>,
    pub errors: u64,
    pub bytes: u64,
    pub first_error: Option<String>,
}

impl OpStats {
    fn new() -> Self {
        OpStats {
            latency_us: Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds"),
            errors: 0,
            bytes: 0,
            first_error: None,
        }
    }

    fn add(&mut self, other: &OpStats) {
        self.latency_us.add(&other.latency_us).expect("same bounds");
        self.errors += other.errors;
        self.bytes += other.bytes;
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
    }
}

pub struct LoadResult {
    pub elapsed: Duration,
    pub stats: Vec<(Op, OpStats)>,
}

/// Shared progress counters for the progress line.
#[derive(Default)]
pub struct Progress {
    pub ops: AtomicU64,
    pub errors: AtomicU64,
    pub bytes: AtomicU64,
}

pub fn key_name(i: usize) -> String {
    format!("bench/{i:08}")
}

/// Body bytes: one random buffer, sliced (content does not matter to the store, but it
/// must not be trivially compressible or deduplicated: each PUT gets its own offset).
pub fn payload(max_size: usize, seed: u64) -> Bytes {
    let mut data = vec![0u8; max_size + 4096];
    ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut data);
    Bytes::from(data)
}

async fn one(
    conn: &mut Connection,
    spec: &LoadSpec,
    op: Op,
    key: usize,
    body: Bytes,
) -> Result<u64, String> {
    let path = format!("/{}/{}", spec.bucket, key_name(key));
    let bucket_path = format!("/{}", spec.bucket);
    let list_query = [
        ("list-type".to_string(), "2".to_string()),
        ("max-keys".to_string(), "1000".to_string()),
        ("prefix".to_string(), "bench/".to_string()),
    ];
    let (method, path, query, sent): (Method, &str, &[(String, String)], u64) = match op {
        Op::Put => (Method::PUT, &path, &[], body.len() as u64),
        Op::Get => (Method::GET, &path, &[], 0),
        Op::List => (Method::GET, &bucket_path, &list_query, 0),
        Op::Delete => (Method::DELETE, &path, &[], 0),
    };
    let body = if op == Op::Put { body } else { Bytes::new() };
    let answer = conn.send(Call { method, path, query, body }).await.map_err(|e| e.to_string())?;
    // A GET of a key a DELETE just removed is a fine answer in a mixed load.
    let ok = (200..300).contains(&answer.status) || (op == Op::Get && answer.status == 404);
    if !ok {
        let code = error_code(&answer.body).unwrap_or_default();
        return Err(format!("{} {path}: HTTP {} {code}", op.name(), answer.status));
    }
    Ok(sent + answer.body.len() as u64)
}

/// Runs the load and returns per-operation statistics. With `sequential_keys` the n-th
/// operation uses key n (a fill: every key exists afterwards), else keys are drawn.
pub async fn run(
    spec: Arc<LoadSpec>,
    body: Bytes,
    progress: Arc<Progress>,
    sequential_keys: bool,
) -> LoadResult {
    let started = Instant::now();
    let issued = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for worker in 0..spec.concurrency {
        let (spec, body, progress, issued) =
            (spec.clone(), body.clone(), progress.clone(), issued.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = ChaCha8Rng::seed_from_u64(spec.seed ^ ((worker as u64 + 1) << 32));
            let mut conn = Connection::new(spec.addr.clone(), spec.creds.clone());
            let mut stats: Vec<OpStats> = Op::ALL.iter().map(|_| OpStats::new()).collect();
            loop {
                let n = issued.fetch_add(1, Ordering::Relaxed) as u64;
                let done = match spec.limit {
                    Limit::Count(count) => n >= count,
                    Limit::Duration(d) => started.elapsed() >= d,
                };
                if done {
                    break;
                }
                let op = spec.mix.draw(&mut rng);
                let drawn = (rng.next_u64() % spec.keys as u64) as usize;
                let key = if sequential_keys { n as usize % spec.keys } else { drawn };
                let size = spec.min_size
                    + (rng.next_u64() % (spec.max_size - spec.min_size + 1) as u64) as usize;
                let offset = (rng.next_u64() % 4096) as usize;
                let payload = body.slice(offset..offset + size);
                let t0 = Instant::now();
                let result = one(&mut conn, &spec, op, key, payload).await;
                let s = &mut stats[op.index()];
                match result {
                    Ok(bytes) => {
                        let us = t0.elapsed().as_micros().max(1) as u64;
                        s.latency_us.saturating_record(us);
                        s.bytes += bytes;
                        progress.bytes.fetch_add(bytes, Ordering::Relaxed);
                    }
                    Err(e) => {
                        s.errors += 1;
                        s.first_error.get_or_insert(e);
                        progress.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                progress.ops.fetch_add(1, Ordering::Relaxed);
            }
            stats
        }));
    }
    let mut total: Vec<OpStats> = Op::ALL.iter().map(|_| OpStats::new()).collect();
    for task in tasks {
        let stats = task.await.expect("a benchmark worker panicked");
        for (t, s) in total.iter_mut().zip(&stats) {
            t.add(s);
        }
    }
    let elapsed = started.elapsed();
    let stats = Op::ALL.into_iter().zip(total).filter(|(op, _)| spec.mix.has(*op)).collect();
    LoadResult { elapsed, stats }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_parse_and_draw_in_proportion() {
        let mix = Mix::parse("put=1,get=3").unwrap();
        assert_eq!(mix.weights, [1, 3, 0, 0]);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let gets = (0..4000).filter(|_| mix.draw(&mut rng) == Op::Get).count();
        assert!((2800..3200).contains(&gets), "{gets} gets of 4000");
        assert!(Mix::parse("put=0").unwrap_err().contains("no operation"));
        assert!(Mix::parse("copy=1").unwrap_err().contains("not an operation"));
        assert!(Mix::parse("put=x").unwrap_err().contains("not a weight"));
        assert_eq!(Mix::parse("get").unwrap().weights, [0, 1, 0, 0]);
    }
}
