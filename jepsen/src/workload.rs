//! Workloads: concurrent S3 clients, each bound to one node (as Jepsen binds clients), that
//! record every operation with its invocation and completion time in the history.
//!
//! * `register`: PUT (a unique value), DELETE and GET on a few keys; judged by the
//!   read-after-write register checker.
//! * `set`: PUT unique keys under a prefix and LIST the prefix; judged by the set checker.
//! * `cas`: GETs and conditional PUTs (`If-None-Match: *`, `If-Match` on the ETag of the
//!   client's last read) with a few unconditional PUTs and DELETEs, on a few keys; judged
//!   by the linearizability checker (module `cas`).
//! * `multipart`: multipart uploads (a 5 MiB part and a small one, completed) and GETs on
//!   a few keys. The register checker judges it, with a body's blake3 as its value: a read
//!   must return a whole completed upload, never a part or a mix, and after an
//!   acknowledged completion that upload or a newer one. An upload's interval runs from
//!   its CreateMultipartUpload (which stamps its version) to the completion's answer.
//!
//! Outcomes follow what the client can know: an answer the server gave is `ok` or `fail`
//! (a 5xx to a write is `info`: a quorum error may leave the write on some replicas); a
//! request that never left the client is `fail`; one sent without a complete answer, or
//! that timed out, is `info` — it may or may not have happened.

mod cas;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hangar_checkers::history::{Op, OpKind, Outcome};
use hangar_checkers::linearizable::CasOp;
use hangar_checkers::set::{SetOp, SetOpKind, SetOutcome};
use hyper::Method;
use md5::Digest;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use crate::s3::{Answer, Call, CallError, Connection, Creds, xml_elements};

pub const BUCKET: &str = "jepsen";
/// Registers: few keys, so reads often race writes of the same key.
const REGISTER_KEYS: u64 = 3;
const SET_PREFIX: &str = "set/";
/// Keys the multipart workload uploads to (overwritten, so reads race completions).
const MULTIPART_KEYS: u64 = 3;
/// Part 1 is the smallest a part that is not the last may be; part 2 is small.
const MULTIPART_PART1_BYTES: usize = 5 * 1024 * 1024;
const MULTIPART_PART2_BYTES: usize = 1000;
/// A client waits at most this long between two operations (uniform), so a run records a
/// few thousand operations rather than an unreadable flood.
const THINK_MS_MAX: u64 = 20;
const CREATE_BUCKET_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Register,
    Set,
    Multipart,
    Cas,
}

/// A run's history: one checker type per workload.
#[derive(Debug, Clone)]
pub enum History {
    Register(Vec<Op>),
    Set(Vec<SetOp>),
    Cas(Vec<CasOp>),
}

/// One operation as the report plots it.
pub struct Point {
    pub invoke_us: u64,
    pub complete_us: u64,
    /// "ok", "fail" or "info".
    pub outcome: &'static str,
    pub label: String,
}

impl History {
    pub fn len(&self) -> usize {
        match self {
            History::Register(h) => h.len(),
            History::Set(h) => h.len(),
            History::Cas(h) => h.len(),
        }
    }

    /// Acknowledged reads (GETs or LISTs): a history without any judged nothing.
    pub fn ok_reads(&self) -> usize {
        match self {
            History::Register(h) => h.iter().filter(|o| o.kind == OpKind::Get && o.is_ok()).count(),
            History::Set(h) => {
                h.iter().filter(|o| matches!(o.outcome, SetOutcome::Ok { listed: Some(_) })).count()
            }
            History::Cas(h) => cas::ok_reads(h),
        }
    }

    /// `Err`: an anomaly; `Ok(Some(why))`: the checker could not decide (unknown).
    pub fn check(&self) -> Result<Option<String>, hangar_checkers::Violation> {
        match self {
            History::Register(h) => {
                hangar_checkers::register::check_read_after_write(h).map(|()| None)
            }
            History::Set(h) => hangar_checkers::set::check_set(h).map(|()| None),
            History::Cas(h) => cas::check(h),
        }
    }

    /// One JSON object per line, in completion order.
    pub fn to_jsonl(&self) -> String {
        fn lines<T: serde::Serialize>(ops: &[T]) -> String {
            let line = |o: &T| serde_json::to_string(o).expect("history ops serialize") + "\n";
            ops.iter().map(line).collect()
        }
        match self {
            History::Register(h) => lines(h),
            History::Set(h) => lines(h),
            History::Cas(h) => lines(h),
        }
    }

    pub fn points(&self) -> Vec<Point> {
        match self {
            History::Register(h) => h.iter().map(register_point).collect(),
            History::Set(h) => h.iter().map(set_point).collect(),
            History::Cas(h) => h.iter().map(cas::point).collect(),
        }
    }
}

fn register_point(o: &Op) -> Point {
    let outcome = match o.outcome {
        Outcome::Ok { .. } => "ok",
        Outcome::Fail => "fail",
        Outcome::Info => "info",
    };
    let what = match &o.kind {
        OpKind::Put { .. } => "put",
        OpKind::Delete => "delete",
        OpKind::Get => "get",
    };
    let label = format!("{} {what} {}", o.client, o.key);
    Point { invoke_us: o.invoke_us, complete_us: o.complete_us, outcome, label }
}

fn set_point(o: &SetOp) -> Point {
    let outcome = match o.outcome {
        SetOutcome::Ok { .. } => "ok",
        SetOutcome::Fail => "fail",
        SetOutcome::Info => "info",
    };
    let label = match &o.kind {
        SetOpKind::Add { element } => format!("{} add {element}", o.client),
        SetOpKind::List => format!("{} list", o.client),
    };
    Point { invoke_us: o.invoke_us, complete_us: o.complete_us, outcome, label }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub kind: Kind,
    pub clients: usize,
    pub seed: u64,
    pub op_timeout: Duration,
    /// `cas`: mix unconditional PUTs and DELETEs in with the conditional writes.
    pub cas_unconditional: bool,
}

fn creds() -> Creds {
    Creds {
        access_key: crate::cluster::ACCESS_KEY.into(),
        secret_key: crate::cluster::SECRET_KEY.into(),
        region: crate::cluster::REGION.into(),
    }
}

/// Creates the workload's bucket, retrying while nodes start up. Each attempt goes to the
/// next node: with R = W = 1 one node may not yet see the key's create-bucket permission
/// (403) that another already does.
pub async fn create_bucket(addrs: &[SocketAddr]) -> Result<(), String> {
    let mut conns: Vec<Connection> =
        addrs.iter().map(|a| Connection::new(a.to_string(), creds())).collect();
    let deadline = Instant::now() + CREATE_BUCKET_TIMEOUT;
    let path = format!("/{BUCKET}");
    for attempt in 0.. {
        let conn = &mut conns[attempt % addrs.len()];
        let call = Call { method: Method::PUT, path: &path, query: &[], body: Bytes::new() };
        let last = match conn.send(call).await {
            // 409: it exists already (BucketAlreadyOwnedByYou), e.g. from a retried attempt.
            Ok(a) if a.status == 200 || a.status == 409 => return Ok(()),
            Ok(a) => format!("status {}: {}", a.status, String::from_utf8_lossy(&a.body)),
            Err(e) => format!("{e:?}"),
        };
        if Instant::now() > deadline {
            let addr = conn.addr();
            return Err(format!("cannot create bucket {BUCKET} (last through {addr}): {last}"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    unreachable!("the loop returns")
}

/// Waits until `addr` serves the workload's bucket (a node answers 503 until the layout
/// gives it a role, and a restarted node until it caught up).
pub async fn wait_serving(addr: SocketAddr) -> Result<(), String> {
    let mut conn = Connection::new(addr.to_string(), creds());
    let deadline = Instant::now() + CREATE_BUCKET_TIMEOUT;
    let path = format!("/{BUCKET}");
    loop {
        let call = Call { method: Method::HEAD, path: &path, query: &[], body: Bytes::new() };
        let last = match conn.send(call).await {
            Ok(a) if a.status == 200 => return Ok(()),
            Ok(a) => format!("status {}", a.status),
            Err(e) => format!("{e:?}"),
        };
        if Instant::now() > deadline {
            return Err(format!("{addr} does not serve bucket {BUCKET}: {last}"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The shared recording of one run: clients append as operations complete.
#[derive(Clone)]
pub struct Recorder {
    t0: Instant,
    history: Arc<Mutex<History>>,
}

impl Recorder {
    pub fn new(kind: Kind, t0: Instant) -> Self {
        let history = match kind {
            Kind::Register | Kind::Multipart => History::Register(Vec::new()),
            Kind::Set => History::Set(Vec::new()),
            Kind::Cas => History::Cas(Vec::new()),
        };
        Recorder { t0, history: Arc::new(Mutex::new(history)) }
    }

    pub fn now_us(&self) -> u64 {
        self.t0.elapsed().as_micros() as u64
    }

    pub fn take(&self) -> History {
        self.history.lock().expect("no client panics while holding it").clone()
    }
}

/// Runs `opts.clients` clients against `addrs` until `until`, then (if `final_reads`)
/// returns without more operations. Call again with `final_pass = true` after the
/// nemesis healed: every client then reads every key (or lists) once.
pub async fn run_clients(
    opts: &Options,
    addrs: &[SocketAddr],
    rec: &Recorder,
    until: Instant,
    final_pass: bool,
) {
    let mut tasks = Vec::new();
    for id in 0..opts.clients {
        let addr = addrs[id % addrs.len()];
        let mut client = Client {
            name: format!("c{id}"),
            conn: Connection::new(addr.to_string(), creds()),
            rng: ChaCha20Rng::seed_from_u64(opts.seed ^ ((id as u64 + 1) << 32)),
            rec: rec.clone(),
            timeout: opts.op_timeout,
            seq: 0,
            last_read: BTreeMap::new(),
            cas_unconditional: opts.cas_unconditional,
        };
        let kind = opts.kind;
        tasks.push(tokio::spawn(async move {
            if final_pass {
                client.final_reads(kind).await;
                return;
            }
            while Instant::now() < until {
                client.step(kind).await;
                let think = client.rng.next_u64() % (THINK_MS_MAX + 1);
                tokio::time::sleep(Duration::from_millis(think)).await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("clients do not panic");
    }
}

struct Client {
    name: String,
    conn: Connection,
    rng: ChaCha20Rng,
    rec: Recorder,
    timeout: Duration,
    seq: u64,
    /// `cas`: what this client last read of each key (the value its If-Match names).
    last_read: BTreeMap<String, Option<Vec<u8>>>,
    /// `cas`: whether unconditional PUTs and DELETEs are part of the mix.
    cas_unconditional: bool,
}

/// What a call came to, before it is mapped onto an outcome.
enum Reply {
    Answer(Answer),
    NotSent,
    Unknown,
}

impl Client {
    async fn call(&mut self, method: Method, path: &str, query: &[(String, String)]) -> Reply {
        let body = if method == Method::PUT {
            Bytes::from(format!("{}-{}", self.name, self.seq))
        } else {
            Bytes::new()
        };
        self.call_with(method, path, query, body).await
    }

    async fn call_with(
        &mut self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Bytes,
    ) -> Reply {
        self.call_with_headers(method, path, query, body, &[]).await
    }

    async fn call_with_headers(
        &mut self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Bytes,
        headers: &[(hyper::header::HeaderName, hyper::header::HeaderValue)],
    ) -> Reply {
        let call = Call { method, path, query, body };
        let send = self.conn.send_with_headers(call, headers);
        match tokio::time::timeout(self.timeout, send).await {
            Ok(Ok(a)) => Reply::Answer(a),
            Ok(Err(CallError::NotSent(_))) => Reply::NotSent,
            Ok(Err(CallError::Unknown(_))) | Err(_) => {
                // A timed-out request may still be on the wire: never reuse its connection.
                self.conn = Connection::new(self.conn_addr(), creds());
                Reply::Unknown
            }
        }
    }

    fn conn_addr(&self) -> String {
        self.conn.addr().to_string()
    }

    async fn step(&mut self, kind: Kind) {
        self.seq += 1;
        let roll = self.rng.next_u64() % 100;
        match kind {
            Kind::Register => {
                let key = format!("r{}", self.rng.next_u64() % REGISTER_KEYS);
                let op = match roll {
                    0..40 => OpKind::Put { value: format!("{}-{}", self.name, self.seq).into() },
                    40..50 => OpKind::Delete,
                    _ => OpKind::Get,
                };
                self.register_op(key, op).await;
            }
            Kind::Set if roll < 80 => {
                let element = format!("{SET_PREFIX}{}-{}", self.name, self.seq);
                self.set_add(element).await;
            }
            Kind::Set => self.set_list().await,
            Kind::Multipart => {
                let key = format!("m{}", self.rng.next_u64() % MULTIPART_KEYS);
                match roll {
                    0..35 => self.multipart_put(key).await,
                    _ => self.multipart_get(key).await,
                }
            }
            Kind::Cas => self.cas_step(roll).await,
        }
    }

    async fn final_reads(&mut self, kind: Kind) {
        match kind {
            Kind::Register => {
                for k in 0..REGISTER_KEYS {
                    self.register_op(format!("r{k}"), OpKind::Get).await;
                }
            }
            Kind::Set => self.set_list().await,
            Kind::Multipart => {
                for k in 0..MULTIPART_KEYS {
                    self.multipart_get(format!("m{k}")).await;
                }
            }
            Kind::Cas => self.cas_final_reads().await,
        }
    }

    /// Create, upload two parts, complete; recorded as a register write of the body's hash.
    async fn multipart_put(&mut self, key: String) {
        let invoke_us = self.rec.now_us();
        let mut part1 = vec![0u8; MULTIPART_PART1_BYTES];
        self.rng.fill_bytes(&mut part1);
        let part2 = format!("{}-{} ", self.name, self.seq).repeat(MULTIPART_PART2_BYTES / 8);
        let mut whole = blake3::Hasher::new();
        whole.update(&part1);
        whole.update(part2.as_bytes());
        let value = whole.finalize().to_hex().as_bytes().to_vec();
        let outcome = self.multipart_upload(&key, [Bytes::from(part1), Bytes::from(part2)]).await;
        self.record_register(key, OpKind::Put { value }, invoke_us, outcome);
    }

    async fn multipart_upload(&mut self, key: &str, parts: [Bytes; 2]) -> Outcome {
        let path = format!("/{BUCKET}/{key}");
        let query = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        // Nothing is visible before the completion: any failure before it is a failure.
        let create = query(&[("uploads", "")]);
        let upload_id = match self.call_with(Method::POST, &path, &create, Bytes::new()).await {
            Reply::Answer(a) if a.status == 200 => match xml_elements(&a.body, "UploadId").pop() {
                Some(id) => id,
                None => return Outcome::Fail,
            },
            _ => return Outcome::Fail,
        };
        let mut etags = Vec::new();
        for (i, body) in parts.into_iter().enumerate() {
            let number = (i + 1).to_string();
            etags.push(format!("\"{}\"", hex::encode(md5::Md5::digest(&body))));
            let q = query(&[("partNumber", &number), ("uploadId", &upload_id)]);
            match self.call_with(Method::PUT, &path, &q, body).await {
                Reply::Answer(a) if a.status == 200 => {}
                _ => return Outcome::Fail,
            }
        }
        let parts_xml: String = etags
            .iter()
            .enumerate()
            .map(|(i, e)| {
                format!("<Part><PartNumber>{}</PartNumber><ETag>{e}</ETag></Part>", i + 1)
            })
            .collect();
        let body = format!("<CompleteMultipartUpload>{parts_xml}</CompleteMultipartUpload>");
        let q = query(&[("uploadId", &upload_id)]);
        let reply = self.call_with(Method::POST, &path, &q, Bytes::from(body)).await;
        match reply {
            // S3 may answer a completion 200 with an error document: not a success.
            Reply::Answer(a) if a.status == 200 && xml_elements(&a.body, "Code").is_empty() => {
                Outcome::Ok { read: None }
            }
            Reply::Answer(a) if a.status < 500 && a.status != 200 => Outcome::Fail,
            Reply::NotSent => Outcome::Fail,
            Reply::Answer(_) | Reply::Unknown => Outcome::Info,
        }
    }

    /// GET, recorded as a register read of the body's blake3 (hex).
    async fn multipart_get(&mut self, key: String) {
        let invoke_us = self.rec.now_us();
        let reply = self.call(Method::GET, &format!("/{BUCKET}/{key}"), &[]).await;
        let outcome = match register_outcome(&OpKind::Get, reply) {
            Outcome::Ok { read: Some(body) } => {
                Outcome::Ok { read: Some(blake3::hash(&body).to_hex().as_bytes().to_vec()) }
            }
            other => other,
        };
        self.record_register(key, OpKind::Get, invoke_us, outcome);
    }

    fn record_register(&mut self, key: String, kind: OpKind, invoke_us: u64, outcome: Outcome) {
        let op = Op {
            client: self.name.clone(),
            key,
            kind,
            invoke_us,
            complete_us: self.rec.now_us(),
            outcome,
        };
        if let History::Register(h) = &mut *self.rec.history.lock().expect("not poisoned") {
            h.push(op);
        }
    }

    async fn register_op(&mut self, key: String, kind: OpKind) {
        let invoke_us = self.rec.now_us();
        let path = format!("/{BUCKET}/{key}");
        let method = match kind {
            OpKind::Put { .. } => Method::PUT,
            OpKind::Delete => Method::DELETE,
            OpKind::Get => Method::GET,
        };
        let reply = self.call(method, &path, &[]).await;
        let outcome = register_outcome(&kind, reply);
        self.record_register(key, kind, invoke_us, outcome);
    }

    async fn set_add(&mut self, element: String) {
        let invoke_us = self.rec.now_us();
        let path = format!("/{BUCKET}/{element}");
        let outcome = match self.call(Method::PUT, &path, &[]).await {
            Reply::Answer(a) if a.status == 200 => SetOutcome::Ok { listed: None },
            Reply::Answer(a) if a.status < 500 => SetOutcome::Fail,
            Reply::NotSent => SetOutcome::Fail,
            Reply::Answer(_) | Reply::Unknown => SetOutcome::Info,
        };
        self.record_set(SetOpKind::Add { element }, invoke_us, outcome);
    }

    /// ListObjectsV2 over every page; any page that fails fails the listing.
    async fn set_list(&mut self) {
        let invoke_us = self.rec.now_us();
        let path = format!("/{BUCKET}");
        let mut listed = Vec::new();
        let mut token: Option<String> = None;
        let outcome = loop {
            let mut query = vec![
                ("list-type".to_string(), "2".to_string()),
                ("prefix".to_string(), SET_PREFIX.to_string()),
            ];
            if let Some(t) = &token {
                query.push(("continuation-token".to_string(), t.clone()));
            }
            match self.call(Method::GET, &path, &query).await {
                Reply::Answer(a) if a.status == 200 => {
                    listed.extend(xml_elements(&a.body, "Key"));
                    token = xml_elements(&a.body, "NextContinuationToken").pop();
                    let truncated =
                        xml_elements(&a.body, "IsTruncated").first() == Some(&"true".to_string());
                    if !truncated || token.is_none() {
                        break SetOutcome::Ok { listed: Some(std::mem::take(&mut listed)) };
                    }
                }
                Reply::Unknown => break SetOutcome::Info,
                Reply::Answer(_) | Reply::NotSent => break SetOutcome::Fail,
            }
        };
        self.record_set(SetOpKind::List, invoke_us, outcome);
    }

    fn record_set(&mut self, kind: SetOpKind, invoke_us: u64, outcome: SetOutcome) {
        let op = SetOp {
            client: self.name.clone(),
            kind,
            invoke_us,
            complete_us: self.rec.now_us(),
            outcome,
        };
        if let History::Set(h) = &mut *self.rec.history.lock().expect("not poisoned") {
            h.push(op);
        }
    }
}

/// Maps an S3 reply onto what the register checker may assume happened.
fn register_outcome(kind: &OpKind, reply: Reply) -> Outcome {
    let no_such_key =
        |a: &Answer| xml_elements(&a.body, "Code").first().map(String::as_str) == Some("NoSuchKey");
    match (kind, reply) {
        (OpKind::Get, Reply::Answer(a)) if a.status == 200 => {
            Outcome::Ok { read: Some(a.body.to_vec()) }
        }
        (OpKind::Get, Reply::Answer(a)) if a.status == 404 && no_such_key(&a) => {
            Outcome::Ok { read: None }
        }
        // A timed-out read had no effect, but the brief of a history is "unknown".
        (OpKind::Get, Reply::Unknown) => Outcome::Info,
        (OpKind::Get, _) => Outcome::Fail,
        (OpKind::Put { .. }, Reply::Answer(a)) if a.status == 200 => Outcome::Ok { read: None },
        (OpKind::Delete, Reply::Answer(a)) if a.status == 204 || a.status == 200 => {
            Outcome::Ok { read: None }
        }
        // Refused by the server (4xx) or never sent: certainly no effect.
        (_, Reply::Answer(a)) if a.status < 500 => Outcome::Fail,
        (_, Reply::NotSent) => Outcome::Fail,
        // A 5xx (e.g. no write quorum) may still have reached some replicas.
        (_, Reply::Answer(_) | Reply::Unknown) => Outcome::Info,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &'static [u8]) -> Reply {
        Reply::Answer(Answer { status, body: Bytes::from_static(body) })
    }

    #[test]
    fn outcomes_say_only_what_the_client_can_know() {
        let put = OpKind::Put { value: b"v".to_vec() };
        assert_eq!(register_outcome(&put, answer(200, b"")), Outcome::Ok { read: None });
        assert_eq!(register_outcome(&put, answer(503, b"")), Outcome::Info);
        assert_eq!(register_outcome(&put, answer(403, b"")), Outcome::Fail);
        assert_eq!(register_outcome(&put, Reply::NotSent), Outcome::Fail);
        assert_eq!(register_outcome(&put, Reply::Unknown), Outcome::Info);
        let get = OpKind::Get;
        let read = register_outcome(&get, answer(200, b"c1-2"));
        assert_eq!(read, Outcome::Ok { read: Some(b"c1-2".to_vec()) });
        let absent = answer(404, b"<Error><Code>NoSuchKey</Code></Error>");
        assert_eq!(register_outcome(&get, absent), Outcome::Ok { read: None });
        let no_bucket = answer(404, b"<Error><Code>NoSuchBucket</Code></Error>");
        assert_eq!(register_outcome(&get, no_bucket), Outcome::Fail);
        assert_eq!(register_outcome(&OpKind::Delete, answer(204, b"")), Outcome::Ok { read: None });
    }
}
