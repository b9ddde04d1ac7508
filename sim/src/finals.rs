//! The final checker client: after quiescence it reads every key from every replica and
//! every partition digest of the workload's table, for `no_lost_writes` and `convergence`;
//! for the set workload it first lists the set through S3 (`set`); last, the liveness
//! probe (`liveness.rs`) asks every node to serve a client again.
//!
//! Every call is retried until the node answers (a node may still be restarting): a run
//! whose final reads do not finish within the budget fails as not live (see `run.rs`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hangar_engine::crdt::Crdt;
use hangar_engine::kv::kv_key;
use hangar_engine::layout::{ClusterLayout, NodeId};
use hangar_engine::objects::body::BodyBlock;
use hangar_engine::objects::{ObjectEntry, VersionId};
use hangar_engine::rpc::{
    KvRequest, RemoteError, Request, Response, RpcClient, RpcConfig, RpcError, TableRequest,
};
use hangar_engine::seam::{BoxFuture, Seam};
use hangar_engine::table::entry_key;

use crate::check::block_refs::NodeBlocks;
use crate::check::set::SetOp;
use crate::liveness::{self, FrontDoor, ProbeTarget};
use crate::run::node_id;
use crate::s3client::S3Client;
use crate::s3workload::{self, BlockSources};
use crate::setworkload;
use crate::trace::Recorder;

/// Pause between attempts of a final read.
const RETRY_MS: u64 = 200;

/// What the final checker client collected.
#[derive(Default)]
pub struct Finals {
    pub done: bool,
    /// `values[replica][key]`: the replica's own value of each key.
    pub values: BTreeMap<String, BTreeMap<String, Option<Vec<u8>>>>,
    pub digests: BTreeMap<u8, BTreeMap<String, [u8; 32]>>,
    /// Failed attempts, newest last (reported if the reads never finish).
    pub errors: Vec<String>,
    /// Blocks the s3 final reads found only on another node than the replica read.
    pub remote_blocks: u64,
    /// s3: each key's `object` entry, merged over every replica.
    pub objects: BTreeMap<String, ObjectEntry>,
    /// s3: the block lists of listed bodies, as every replica of each list holds it.
    pub lists: BTreeMap<VersionId, Vec<BodyBlock>>,
    /// s3: every node's block files, scanned by the runner once the reads are done.
    pub disks: BTreeMap<String, NodeBlocks>,
    /// s3: every live block list each node holds, read from the node's local `version`
    /// table by the runner once the reads are done.
    pub live_lists: Vec<crate::check::block_refs::LiveList>,
    /// set: the listing made after quiescence, which must hold every acknowledged add.
    pub final_list: Option<SetOp>,
    /// The nodes the liveness probe found not serving within its bound, with why.
    pub unserved: Vec<(String, String)>,
}

/// What the final checker needs to know about the run.
pub struct FinalSpec {
    pub names: Vec<String>,
    pub ids: Vec<NodeId>,
    pub addrs: Vec<(NodeId, String)>,
    pub layout: ClusterLayout,
    pub keys: usize,
    pub s3: bool,
    /// s3: a replica must hold its own copy of each block placed on it (resync is on).
    pub require_own_blocks: bool,
    pub seam: Seam,
    pub secret: String,
    /// set: how to make the final listing.
    pub final_list: Option<FinalListSpec>,
    /// The nodes the liveness probe knocks on, and its S3 client if the workload used S3.
    pub probe_targets: Vec<ProbeTarget>,
    pub probe_s3: Option<S3Client>,
}

/// The final listing of the set workload: through S3, like the clients' listings.
pub struct FinalListSpec {
    pub client: S3Client,
    /// The S3 addresses of the final layout's nodes, tried in turn.
    pub addrs: Vec<String>,
    pub max_keys: usize,
    pub recorder: Arc<Mutex<Recorder>>,
}

/// Reads every key from every replica and every partition digest into `finals`.
pub async fn final_check(spec: FinalSpec, finals: Arc<Mutex<Finals>>) -> turmoil::Result {
    let rpc =
        RpcClient::new(node_id("checker"), spec.seam.clone(), &spec.secret, RpcConfig::default());
    for (id, addr) in &spec.addrs {
        rpc.set_peer_addr(*id, addr.clone());
    }
    let call = |node: NodeId, request: Request| -> BoxFuture<'_, Result<Response, RemoteError>> {
        Box::pin(call_retrying(&rpc, node, request, &finals))
    };
    if let Some(list) = &spec.final_list {
        let op = setworkload::final_list(&list.client, &list.addrs, list.max_keys, &list.recorder);
        finals.lock().unwrap().final_list = Some(op.await);
    }
    let table = if spec.s3 { "object" } else { "kv" };
    let keys: Vec<String> = (0..spec.keys).map(|k| format!("k{k}")).collect();
    let remote_blocks = Mutex::new(0);
    let sources = BlockSources {
        nodes: &spec.ids,
        layout: &spec.layout,
        require_own: spec.require_own_blocks,
    };
    for (name, &id) in spec.names.iter().zip(&spec.ids) {
        let partitions: Vec<u8> =
            (0..=u8::MAX).filter(|&p| spec.layout.nodes_of(p).contains(&id)).collect();
        let request = Request::Table(TableRequest::Digests {
            table: table.into(),
            partitions: partitions.clone(),
            root: None,
        });
        let digests = loop {
            match call(id, request.clone()).await {
                Ok(Response::Digests(d)) => break d,
                other => note(&finals, format!("{name}: digests answered {other:?}")).await,
            }
        };
        {
            let mut f = finals.lock().unwrap();
            for (p, d) in partitions.into_iter().zip(digests) {
                f.digests.entry(p).or_default().insert(name.clone(), d);
            }
        }
        for key in &keys {
            // Only the key's replicas must hold it: with more nodes than the replication
            // factor, the others rightly answer that they have nothing.
            if !replicas_of(&spec, key).contains(&id) {
                continue;
            }
            let value = loop {
                let read = if spec.s3 {
                    let read = s3workload::read_replica(&call, id, &sources, key, &remote_blocks);
                    read.await.map(|r| {
                        let mut f = finals.lock().unwrap();
                        if let Some(entry) = r.entry {
                            let merged = f.objects.entry(key.clone()).or_default();
                            merged.merge(&entry);
                        }
                        f.lists.extend(r.lists);
                        r.value
                    })
                } else {
                    let request = Request::Kv(KvRequest::GetLocal { key: key.clone() });
                    match call(id, request).await {
                        Ok(Response::Value(v)) => Ok(v),
                        other => Err(format!("{name}: local read answered {other:?}")),
                    }
                };
                match read {
                    Ok(v) => break v,
                    Err(e) => note(&finals, e).await,
                }
            };
            finals
                .lock()
                .unwrap()
                .values
                .entry(name.clone())
                .or_default()
                .insert(key.clone(), value);
        }
    }
    // Last, so that its writes change nothing the checkers judge (`liveness`).
    let door = match &spec.probe_s3 {
        Some(client) => FrontDoor::S3(client),
        None => FrontDoor::Rpc(&rpc),
    };
    let unserved = liveness::probe(door, &spec.probe_targets).await;
    let mut f = finals.lock().unwrap();
    f.remote_blocks = *remote_blocks.lock().unwrap();
    f.unserved = unserved;
    f.done = true;
    Ok(())
}

/// The nodes the final layout places `key` on (its table entry's partition).
fn replicas_of(spec: &FinalSpec, key: &str) -> Vec<NodeId> {
    replicas_of_key(&spec.layout, spec.s3, key)
}

/// The nodes `layout` places a workload key on: an object of the bucket if the workload
/// goes through S3, else a register key.
pub fn replicas_of_key(layout: &ClusterLayout, s3: bool, key: &str) -> Vec<NodeId> {
    let table_key =
        if s3 { entry_key(s3workload::BUCKET.as_bytes(), key.as_bytes()) } else { kv_key(key) };
    // A storage key starts with the hash of its partition key; the first byte is the partition.
    layout.nodes_of(table_key[0]).to_vec()
}

/// Records a failed attempt and waits before the next.
async fn note(finals: &Mutex<Finals>, error: String) {
    finals.lock().unwrap().errors.push(error);
    tokio::time::sleep(Duration::from_millis(RETRY_MS)).await;
}

/// Calls `node` until it answers; an error the node itself reports is an answer.
async fn call_retrying(
    rpc: &RpcClient,
    node: NodeId,
    request: Request,
    finals: &Mutex<Finals>,
) -> Result<Response, RemoteError> {
    loop {
        match rpc.call(node, request.clone()).await {
            Ok(response) => return Ok(response),
            Err(RpcError::Remote { error, .. }) => return Err(error),
            Err(e) => note(finals, e.to_string()).await,
        }
    }
}
