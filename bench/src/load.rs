//! The load: workers each holding one connection, drawing operations from the mix, until
//! the count or the duration is reached; every answered operation's latency goes into a
//! per-operation histogram.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hdrhistogram::Histogram;
use hyper::Method;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use hangar_s3::client::{Call, Connection, Creds, error_code};
use hangar_s3::s3api::xml::first_element_text;

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
    /// A LIST walks every page of the prefix (continuation tokens) instead of one page: its
    /// latency is then the time to list the whole bucket.
    pub list_all: bool,
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

/// Body bytes: one random buffer, sliced at a random offset (content does not matter to
/// the store, but it must not be trivially compressible); `unique_body` then makes each
/// PUT's body its own.
pub fn payload(max_size: usize, seed: u64) -> Bytes {
    let mut data = vec![0u8; max_size + 4096];
    ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut data);
    Bytes::from(data)
}

/// Distance between the tags `unique_body` stamps: every block of 64 KiB or more gets one.
pub const TAG_STRIDE_BYTES: usize = 64 * 1024;

/// A PUT's body: `size` bytes of `buffer` from `offset`, with `tag` stamped at the start
/// and every `TAG_STRIDE_BYTES`. Why: a slice alone repeats (4096 offsets, and the same
/// seed draws the same ones in every run), and a content-addressed store keeps one copy of
/// a block it already has — it skips the block write, and small-object figures came out
/// better than a real load's (about a third of the PUTs of an 8 s run at c=16 were repeats).
pub fn unique_body(buffer: &Bytes, offset: usize, size: usize, tag: [u8; 16]) -> Bytes {
    let mut body = buffer[offset..offset + size].to_vec();
    for start in (0..size).step_by(TAG_STRIDE_BYTES) {
        let end = (start + tag.len()).min(size);
        body[start..end].copy_from_slice(&tag[..end - start]);
    }
    Bytes::from(body)
}

/// Distinguishes this run's bodies from every earlier run's against the same store.
fn run_nonce() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

async fn one(
    conn: &mut Connection,
    spec: &LoadSpec,
    op: Op,
    key: usize,
    body: Bytes,
) -> Result<u64, String> {
    let path = format!("/{}/{}", spec.bucket, key_name(key));
    let (method, sent) = match op {
        Op::Put => (Method::PUT, body.len() as u64),
        Op::Get => (Method::GET, 0),
        Op::List => return list(conn, spec).await,
        Op::Delete => (Method::DELETE, 0),
    };
    let answer = conn
        .send(Call { method, path: &path, query: &[], body })
        .await
        .map_err(|e| e.to_string())?;
    // A GET of a key a DELETE just removed is a fine answer in a mixed load.
    let ok = (200..300).contains(&answer.status) || (op == Op::Get && answer.status == 404);
    if !ok {
        let code = error_code(&answer.body).unwrap_or_default();
        return Err(format!("{} {path}: HTTP {} {code}", op.name(), answer.status));
    }
    Ok(sent + answer.body.len() as u64)
}

/// One LIST: the first page of up to 1000 keys under `bench/`, or with `list_all` every
/// page (following `NextContinuationToken`). Returns the bytes received.
async fn list(conn: &mut Connection, spec: &LoadSpec) -> Result<u64, String> {
    let path = format!("/{}", spec.bucket);
    let mut received = 0u64;
    let mut token: Option<String> = None;
    loop {
        let mut query = vec![
            ("list-type".to_string(), "2".to_string()),
            ("max-keys".to_string(), "1000".to_string()),
            ("prefix".to_string(), "bench/".to_string()),
        ];
        if let Some(token) = token.take() {
            query.push(("continuation-token".to_string(), token));
        }
        let call = Call { method: Method::GET, path: &path, query: &query, body: Bytes::new() };
        let answer = conn.send(call).await.map_err(|e| e.to_string())?;
        if !(200..300).contains(&answer.status) {
            let code = error_code(&answer.body).unwrap_or_default();
            return Err(format!("list {path}: HTTP {} {code}", answer.status));
        }
        received += answer.body.len() as u64;
        if !spec.list_all {
            return Ok(received);
        }
        let text = String::from_utf8_lossy(&answer.body);
        match first_element_text(&text, "NextContinuationToken") {
            Some(next) if first_element_text(&text, "IsTruncated").as_deref() == Some("true") => {
                token = Some(next);
            }
            _ => return Ok(received),
        }
    }
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
    let nonce = run_nonce();
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
                let payload = if op == Op::Put {
                    let mut tag = [0u8; 16];
                    tag[..8].copy_from_slice(&nonce.to_le_bytes());
                    tag[8..].copy_from_slice(&n.to_le_bytes());
                    unique_body(&body, offset, size, tag)
                } else {
                    Bytes::new()
                };
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
    fn put_bodies_differ_in_every_block_even_from_the_same_offset() {
        let buffer = payload(3 * TAG_STRIDE_BYTES, 1);
        let size = 2 * TAG_STRIDE_BYTES + 5;
        let a = unique_body(&buffer, 7, size, [1; 16]);
        let b = unique_body(&buffer, 7, size, [2; 16]);
        assert_eq!(a.len(), size);
        for start in (0..size).step_by(TAG_STRIDE_BYTES) {
            let end = (start + TAG_STRIDE_BYTES).min(size);
            assert_ne!(a[start..end], b[start..end], "block at {start} repeats");
        }
        // Only the tags differ from the buffer: the rest is the random slice.
        assert_eq!(a[16..TAG_STRIDE_BYTES], buffer[7 + 16..7 + TAG_STRIDE_BYTES]);
        // A body shorter than a tag gets part of one.
        assert_eq!(&unique_body(&buffer, 0, 3, [9; 16])[..], &[9, 9, 9]);
    }

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
