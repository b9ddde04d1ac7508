//! The s3 workload: the register workload's operations, through the real S3 frontend.
//!
//! Every node host serves S3 (`serve_node`: `s3api::serve` over `EngineBackend` over the
//! node's `ObjectStore`, on the seam's simulated TCP, with the node's skewable `SimClock`
//! for SigV4 checks). Clients first create bucket `sim`, then PUT, GET and DELETE objects
//! `k0..k(keys-1)` through randomly chosen nodes with `s3client`. A PUT's body is derived
//! from the run's seed, the client and its sequence number (so every write is unique); the
//! history records it as the hex blake3 of the body, so the register checkers apply
//! unchanged: a GET is recorded as the hex blake3 of the body it returned (a corrupt or
//! mixed-up body is a value nobody wrote), or as absent on 404 NoSuchKey. A share of the
//! PUTs (`multipart_fraction`) are multipart uploads instead, one write each
//! (`s3multipart`).
//!
//! Final per-replica reads (`read_replica`) bypass S3, whose GET is a quorum read: the
//! checker reads the key's entry from one node's local `object` table through the
//! node-to-node RPC (`TableRequest::Read`, which answers from the local replica only) and
//! takes its current version. That version's body is then fetched block by block, from
//! the same node first and from the other nodes if it has no copy (such fetches are
//! counted as `remote_blocks`): blocks are placed and repaired separately from metadata.
//! When the scenario lets resync run during the quiet period, a replica must hold its own
//! verified copy of every block the layout places on it: a block found only elsewhere
//! makes the value `<blocks missing on this replica>`; a block no node has makes it
//! `<missing blocks>`. Either is a value nobody wrote, which `no_lost_writes` reports.
//! A body listed in the `version` table (`cluster.list_inline_max_blocks`) is read from
//! its list, which every node the layout places the list on must hold, live and matching
//! the entry; otherwise the value names what is wrong (`<missing block list>`, or which
//! replica lacks it).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hangar_engine::block::block_partition;
use hangar_engine::layout::{ClusterLayout, NodeId};
use hangar_engine::node::Node;
use hangar_engine::objects::body::{Body, BodyBlock, ListedBody, Owner};
use hangar_engine::objects::version_blocks::{self, VersionBlocks};
use hangar_engine::objects::{ObjectEntry, ObjectStore, VersionData, VersionId, VersionState};
use hangar_engine::rpc::message::BlockRequest;
use hangar_engine::rpc::{RemoteError, Request, Response, TableRequest};
use hangar_engine::seam::BoxFuture;
use hangar_engine::table::entry_key;
use hangar_engine::table::schema::{decode_entry, partition_of_key};
use hangar_s3::backend::EngineBackend;
use hangar_s3::s3api::{S3State, WallClock, serve};
use hyper::Method;
use hyper::header::{HeaderValue, IF_MATCH, IF_NONE_MATCH};
use rand_core::RngCore;

use crate::history::{Op, OpKind, Outcome};
use crate::s3client::{S3Client, S3Creds, S3Response};
use crate::s3multipart::{UploadPlan, put_multipart};
use crate::trace::op_detail_with;
use crate::workload::{ClientCtx, now_us, roll};

/// The S3 API port of every node.
pub const S3_PORT: u16 = 3900;
/// The region the simulated cluster answers for.
pub const REGION: &str = "hangar-sim";
/// The bucket the workload uses.
pub const BUCKET: &str = "sim";
/// The value of a replica whose current version names blocks no node has.
pub const MISSING_BLOCKS: &[u8] = b"<missing blocks>";
/// The value of a replica that must hold its own copies (resync on) but lacks one.
pub const MISSING_OWN_BLOCKS: &[u8] = b"<blocks missing on this replica>";
/// The value of a replica whose current version's block list no node holds.
pub const MISSING_LIST: &str = "<missing block list>";
/// Pause between attempts to create the bucket.
const CREATE_BUCKET_RETRY_MS: u64 = 100;

/// Serves S3 on `node`'s host until the host stops (a crash drops the task); block lists
/// longer than `list_inline_max_blocks` go to the `version` table.
pub async fn serve_node(
    node: Arc<Node>,
    creds: S3Creds,
    list_inline_max_blocks: usize,
) -> Result<(), String> {
    let store = ObjectStore::new(node.clone()).with_list_inline_max_blocks(list_inline_max_blocks);
    let store = Arc::new(store);
    let backend = Arc::new(EngineBackend::new(store));
    let clock = node.seam.clock.clone();
    let wall: WallClock = Arc::new(move || clock.now_ms());
    let keys = BTreeMap::from([(creds.access_key, creds.secret_key)]);
    let state = Arc::new(S3State::new(backend, creds.region, keys, wall));
    let addr = format!("0.0.0.0:{S3_PORT}");
    let listener = node.seam.net.listen(&addr).await.map_err(|e| format!("{addr}: {e}"))?;
    serve(listener, state).await;
    Ok(())
}

/// The body of write `seq` of a client whose seam seed is `rng_seed`: `size` bytes of
/// blake3 output, so distinct writes have distinct bodies and a run replays them exactly.
pub fn body_for(rng_seed: u64, seq: u64, size: usize) -> Vec<u8> {
    let mut hasher = blake3::Hasher::new_derive_key("hangar sim s3 body v1");
    hasher.update(&rng_seed.to_le_bytes());
    hasher.update(&seq.to_le_bytes());
    let mut body = vec![0u8; size];
    hasher.finalize_xof().fill(&mut body);
    body
}

/// How a body appears in the history: its hex blake3.
pub fn value_of(body: &[u8]) -> Vec<u8> {
    blake3::hash(body).to_hex().as_bytes().to_vec()
}

fn object_path(key: &str) -> String {
    format!("/{BUCKET}/{key}")
}

/// Creates the bucket through one node after another until one answers that it exists
/// (created now, or by an earlier attempt whose answer was lost). Gives up at
/// `deadline_us` of simulated time; the workload's operations then fail, visibly.
pub async fn create_bucket(client: &S3Client, nodes: &[String], deadline_us: u64) -> bool {
    for addr in nodes.iter().cycle() {
        if now_us() >= deadline_us {
            return false;
        }
        let path = format!("/{BUCKET}");
        match client.request(addr, Method::PUT, &path, Bytes::new()).await {
            Ok(r) if r.status == 200 => return true,
            Ok(r) if r.error_code() == Some("BucketAlreadyOwnedByYou") => return true,
            Ok(_) | Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(CREATE_BUCKET_RETRY_MS)).await;
    }
    unreachable!("nodes is not empty")
}

/// One s3 workload client; like `workload::run_client`, over S3.
pub async fn run_s3_client(ctx: ClientCtx, client: Arc<S3Client>) -> Result<(), String> {
    let w = &ctx.workload;
    let nodes = &ctx.s3_nodes;
    let (min, max) = (*w.min_object_bytes.get_ref(), *w.max_object_bytes.get_ref());
    let mut rng = ctx.seam.rng("workload");
    let mut seq = 0u64;
    // The ETag this client last saw for each key (its own PUTs, its GETs), for `If-Match`.
    let mut etags: BTreeMap<String, String> = BTreeMap::new();
    let conditional_fraction = *w.conditional_fraction.get_ref();
    let multipart_fraction = *w.multipart_fraction.get_ref();
    while now_us() < w.duration_ms * 1000 {
        let think = rng.next_u64() % (w.max_think_ms + 1);
        tokio::time::sleep(Duration::from_millis(think)).await;
        let key = format!("k{}", rng.next_u64() % w.keys as u64);
        let addr = &nodes[(rng.next_u64() % nodes.len() as u64) as usize];
        let r = roll(&mut rng);
        seq += 1;
        let (kind, method, body) = if r < w.delete_fraction {
            (OpKind::Delete, Method::DELETE, Vec::new())
        } else if r < w.write_fraction {
            let size = min + rng.next_u64() % (max - min + 1);
            let body = body_for(ctx.seam.rng_seed, seq, size as usize);
            (OpKind::Put { value: value_of(&body) }, Method::PUT, body)
        } else {
            (OpKind::Get, Method::GET, Vec::new())
        };
        // Drawn only by scenarios that ask for conditions, so every other scenario keeps
        // the runs its seeds gave before conditions existed.
        let conditional = conditional_fraction > 0.0 && roll(&mut rng) < conditional_fraction;
        // Likewise drawn only by scenarios with uploads; an upload carries no condition.
        let is_put = matches!(kind, OpKind::Put { .. });
        if is_put && multipart_fraction > 0.0 && roll(&mut rng) < multipart_fraction {
            let abort_fraction = *w.multipart_abort_fraction.get_ref();
            let plan = UploadPlan::draw(&mut rng, nodes.len(), max, abort_fraction);
            put_multipart(&ctx, &client, key, seq, plan, &mut etags).await;
            continue;
        }
        let condition = match (&kind, conditional) {
            (OpKind::Put { .. }, true) => Some(match etags.get(&key) {
                Some(etag) => (IF_MATCH, HeaderValue::from_str(etag).expect("an ETag header")),
                None => (IF_NONE_MATCH, HeaderValue::from_static("*")),
            }),
            _ => None,
        };
        let shown = condition.as_ref().map(|(n, v)| format!("{n}: {}", v.to_str().unwrap_or("?")));
        let invoke_us = now_us();
        let path = object_path(&key);
        let answer = client.request_with(addr, method, &path, Bytes::from(body), condition).await;
        let status = answer.as_ref().map_or(0, |a| a.status);
        if let Ok(a) = &answer {
            remember_etag(&mut etags, &key, &kind, a);
        }
        let outcome = outcome_of(&kind, conditional, answer);
        let op =
            Op { client: ctx.name.clone(), key, kind, invoke_us, complete_us: now_us(), outcome };
        let summary = match &shown {
            Some(condition) => format!("{op:?} via {addr} status {status} {condition}"),
            None => format!("{op:?} via {addr} status {status}"),
        };
        let via = addr.split(':').next().unwrap_or(addr);
        let detail = || op_detail_with(&op, via, shown.as_deref());
        ctx.recorder.lock().unwrap().record_detailed(&ctx.name, "op", summary.as_bytes(), detail);
        ctx.history.lock().unwrap().push(op);
    }
    Ok(())
}

/// Keeps `etags[key]` to what an answer says the key holds now (for the next `If-Match`).
fn remember_etag(
    etags: &mut BTreeMap<String, String>,
    key: &str,
    kind: &OpKind,
    answer: &S3Response,
) {
    match (kind, answer.status, &answer.etag) {
        (OpKind::Get | OpKind::Put { .. }, 200, Some(etag)) => {
            etags.insert(key.to_string(), etag.clone());
        }
        (OpKind::Get, 404, _) | (OpKind::Delete, 200 | 204, _) => {
            etags.remove(key);
        }
        _ => {}
    }
}

/// What the history records for an answer. A conditional PUT refused — its condition did
/// not hold (412), or it lost to a concurrent write of the key (409) — certainly had no
/// effect: `Fail`, so that its value showing up later is a violation.
fn outcome_of<E>(kind: &OpKind, conditional: bool, answer: Result<S3Response, E>) -> Outcome {
    match (kind, answer) {
        (OpKind::Put { .. }, Ok(r)) if conditional && r.status == 412 => Outcome::Fail,
        (OpKind::Put { .. }, Ok(r))
            if conditional && r.error_code() == Some("ConditionalRequestConflict") =>
        {
            Outcome::Fail
        }
        (OpKind::Get, Ok(r)) if r.status == 200 => Outcome::Ok { read: Some(value_of(&r.body)) },
        (OpKind::Get, Ok(r)) if r.status == 404 && r.error_code() == Some("NoSuchKey") => {
            Outcome::Ok { read: None }
        }
        (OpKind::Get, _) => Outcome::Fail,
        (OpKind::Put { .. }, Ok(r)) if r.status == 200 => Outcome::Ok { read: None },
        (OpKind::Delete, Ok(r)) if r.status == 204 || r.status == 200 => Outcome::Ok { read: None },
        // A write that failed may still have reached some replicas.
        (_, _) => Outcome::Info,
    }
}

/// A node-to-node call retried until the node answers, with its answer or its error (the
/// final checker's transport).
pub type CallFn<'a> =
    &'a (dyn Fn(NodeId, Request) -> BoxFuture<'a, Result<Response, RemoteError>> + Sync);

/// What a final read found on one replica.
#[derive(Debug, Default)]
pub struct ReplicaRead {
    /// The key's value: the hex blake3 of its current version's body, or `None` (no
    /// entry, or a delete marker).
    pub value: Option<Vec<u8>>,
    /// The replica's entry, as stored.
    pub entry: Option<ObjectEntry>,
    /// The block lists of the entry's complete versions whose bodies are listed in the
    /// `version` table, as every replica of the list holds it (`read_list`).
    pub lists: BTreeMap<VersionId, Vec<BodyBlock>>,
}

/// A listed body's list as its replicas hold it after quiescence.
enum ListRead {
    /// Every replica of the list holds it, and it is the list the entry names.
    Held(Vec<BodyBlock>),
    /// Some replica lacks it, holds it deleted, or holds another list.
    NotOnEveryReplica(String),
    /// No replica holds it.
    Missing,
}

/// Where the final reads may find a replica's blocks.
pub struct BlockSources<'a> {
    /// Every node, tried in order for blocks the replica has no copy of.
    pub nodes: &'a [NodeId],
    /// The nodes each block is placed on.
    pub layout: &'a ClusterLayout,
    /// Whether the replica must hold its own copy of every block placed on it.
    pub require_own: bool,
}

/// `key` on `node`'s own replica of the object table, after quiescence.
pub async fn read_replica(
    call: CallFn<'_>,
    node: NodeId,
    sources: &BlockSources<'_>,
    key: &str,
    remote_blocks: &Mutex<u64>,
) -> Result<ReplicaRead, String> {
    let table_key = entry_key(BUCKET.as_bytes(), key.as_bytes());
    let request = Request::Table(TableRequest::Read { table: "object".into(), key: table_key });
    let raw = match call(node, request).await {
        Ok(Response::Entry(raw)) => raw,
        other => return Err(format!("{node}: object table read answered {other:?}")),
    };
    let Some(raw) = raw else { return Ok(ReplicaRead::default()) };
    let entry: ObjectEntry = decode_entry(&raw).map_err(|e| format!("{node}: {e}"))?;
    let mut lists = BTreeMap::new();
    let mut lists_wrong = BTreeMap::new();
    for (id, version) in &entry.versions {
        if let VersionState::Complete(VersionData::Object(stored)) = &version.state
            && let Body::Listed(listed) = &stored.body
        {
            match read_list(call, sources, key, *id, listed).await? {
                ListRead::Held(blocks) => {
                    lists.insert(*id, blocks);
                }
                ListRead::NotOnEveryReplica(why) => {
                    lists_wrong.insert(*id, format!("<block list not on every replica: {why}>"));
                }
                ListRead::Missing => {
                    lists_wrong.insert(*id, MISSING_LIST.to_string());
                }
            }
        }
    }
    let value = match entry.current() {
        Some((id, VersionData::Object(stored))) => Some(match &stored.body {
            Body::Inline(data) => value_of(data),
            Body::Blocks(refs) => read_body(call, node, sources, refs, remote_blocks).await,
            Body::Listed(_) => match (lists.get(&id), lists_wrong.get(&id)) {
                (Some(refs), _) => read_body(call, node, sources, refs, remote_blocks).await,
                (None, wrong) => wrong.map_or(MISSING_LIST, |w| w.as_str()).as_bytes().to_vec(),
            },
        }),
        _ => None,
    };
    Ok(ReplicaRead { value, entry: Some(entry), lists })
}

/// The block list of version `id` of `key`, from every node the layout places it on.
async fn read_list(
    call: CallFn<'_>,
    sources: &BlockSources<'_>,
    key: &str,
    id: VersionId,
    listed: &ListedBody,
) -> Result<ListRead, String> {
    let owner = Owner { bucket: BUCKET.into(), key: key.into(), version: id };
    let list_key = version_blocks::list_key(&owner);
    let mut found = Vec::new();
    let mut problems = Vec::new();
    for &holder in sources.layout.nodes_of(partition_of_key(&list_key)) {
        let request =
            Request::Table(TableRequest::Read { table: "version".into(), key: list_key.clone() });
        let raw = match call(holder, request).await {
            Ok(Response::Entry(raw)) => raw,
            other => return Err(format!("{holder}: version table read answered {other:?}")),
        };
        let Some(raw) = raw else {
            problems.push(format!("absent on {holder}"));
            continue;
        };
        let list: VersionBlocks = decode_entry(&raw).map_err(|e| format!("{holder}: {e}"))?;
        if list.deleted.get() {
            problems.push(format!("deleted on {holder}"));
        } else if version_blocks::listed_body(&list.blocks) != *listed {
            problems.push(format!("another list on {holder}"));
        } else {
            found.push(list.blocks);
        }
    }
    Ok(match (found.pop(), problems.is_empty()) {
        (Some(blocks), true) => ListRead::Held(blocks),
        (Some(_), false) => ListRead::NotOnEveryReplica(problems.join(", ")),
        (None, _) => ListRead::Missing,
    })
}

/// The value of a body stored as blocks, read for replica `node` (see the module).
async fn read_body(
    call: CallFn<'_>,
    node: NodeId,
    sources: &BlockSources<'_>,
    refs: &[BodyBlock],
    remote_blocks: &Mutex<u64>,
) -> Vec<u8> {
    let mut body = Vec::new();
    let mut lacks_own = false;
    for r in refs {
        let others = sources.nodes.iter().copied().filter(|&n| n != node);
        let mut found = None;
        for holder in std::iter::once(node).chain(others) {
            let request = Request::Block(BlockRequest::Get { hash: r.hash });
            // An error (e.g. a corrupt copy) counts as no copy on that node.
            if let Ok(Response::Block(Some(data))) = call(holder, request).await
                && *blake3::hash(&data).as_bytes() == r.hash
            {
                if holder != node {
                    *remote_blocks.lock().unwrap() += 1;
                    let placed = sources.layout.nodes_of(block_partition(&r.hash));
                    lacks_own |= sources.require_own && placed.contains(&node);
                }
                found = Some(data);
                break;
            }
        }
        let Some(data) = found else { return MISSING_BLOCKS.to_vec() };
        body.extend_from_slice(&data);
    }
    if lacks_own { MISSING_OWN_BLOCKS.to_vec() } else { value_of(&body) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_unique_per_write_and_reproducible() {
        let a = body_for(7, 1, 4096);
        assert_eq!(a, body_for(7, 1, 4096));
        assert_ne!(a, body_for(7, 2, 4096));
        assert_ne!(a, body_for(8, 1, 4096));
        assert_eq!(value_of(&a).len(), 64);
    }

    #[test]
    fn outcomes_follow_the_register_rules() {
        let resp = |status, body: &'static [u8]| -> Result<S3Response, ()> {
            Ok(S3Response { status, body: Bytes::from_static(body), etag: None })
        };
        let no_such_key = b"<Error><Code>NoSuchKey</Code></Error>";
        let put = OpKind::Put { value: vec![] };
        assert_eq!(
            outcome_of(&OpKind::Get, false, resp(200, b"x")),
            Outcome::Ok { read: Some(value_of(b"x")) }
        );
        assert_eq!(
            outcome_of(&OpKind::Get, false, resp(404, no_such_key)),
            Outcome::Ok { read: None }
        );
        assert_eq!(outcome_of(&OpKind::Get, false, resp(503, b"")), Outcome::Fail);
        assert_eq!(outcome_of(&OpKind::Get, false, Err::<S3Response, ()>(())), Outcome::Fail);
        assert_eq!(outcome_of(&put, false, resp(200, b"")), Outcome::Ok { read: None });
        assert_eq!(outcome_of(&put, false, resp(503, b"")), Outcome::Info);
        assert_eq!(outcome_of(&OpKind::Delete, false, resp(204, b"")), Outcome::Ok { read: None });
        assert_eq!(outcome_of(&OpKind::Delete, false, Err::<S3Response, ()>(())), Outcome::Info);
        // A refused conditional PUT certainly did nothing; a refused plain one may have.
        let conflict = b"<Error><Code>ConditionalRequestConflict</Code></Error>";
        assert_eq!(outcome_of(&put, true, resp(412, b"")), Outcome::Fail);
        assert_eq!(outcome_of(&put, true, resp(409, conflict)), Outcome::Fail);
        assert_eq!(outcome_of(&put, false, resp(409, conflict)), Outcome::Info);
        assert_eq!(outcome_of(&put, true, resp(503, b"")), Outcome::Info);
        assert_eq!(outcome_of(&put, true, resp(200, b"")), Outcome::Ok { read: None });
    }

    #[test]
    fn the_etag_kept_is_the_last_one_seen() {
        let mut etags = BTreeMap::new();
        let seen = |status, etag: Option<&str>| S3Response {
            status,
            body: Bytes::new(),
            etag: etag.map(str::to_string),
        };
        let put = OpKind::Put { value: vec![] };
        remember_etag(&mut etags, "k", &put, &seen(200, Some("\"a\"")));
        remember_etag(&mut etags, "k", &OpKind::Get, &seen(503, None));
        assert_eq!(etags.get("k").map(String::as_str), Some("\"a\""));
        remember_etag(&mut etags, "k", &OpKind::Get, &seen(200, Some("\"b\"")));
        assert_eq!(etags.get("k").map(String::as_str), Some("\"b\""));
        remember_etag(&mut etags, "k", &OpKind::Delete, &seen(204, None));
        assert_eq!(etags.get("k"), None);
    }
}
