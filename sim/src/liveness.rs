//! The liveness probe, the last step of every run: once the faults are healed, the quiet
//! period is over and the final reads are done, every node of the final layout must serve
//! clients again — coordinate a write and read it back, through the same front door the
//! workload used (the S3 API, or node RPC for the register workload) — within
//! `LIVENESS_BOUND_MS` of simulated time. A node that stays unavailable after every fault
//! is gone (a stuck guard, a lost lease, a worker that never restarted) fails the run as
//! `liveness`, even when every safety checker passes.
//!
//! Each node's probe key is one the node is a replica of where there is one
//! (`liveness-<node>-<i>`), so the probe asks every node both to coordinate and to store;
//! objects are placed by bucket, so with fewer replicas than nodes the S3 workloads' one
//! bucket lives on some nodes only, and the others just coordinate. The probe runs after the
//! replicas were compared and the disks are scanned after it, so its writes change nothing
//! the checkers judge: the keys are outside the workload's keys and the set's prefix, and
//! the bodies small enough to stay inline in the object entry (no block file for
//! `block_refs` to find).

use std::time::Duration;

use bytes::Bytes;
use hangar_engine::layout::NodeId;
use hangar_engine::rpc::{KvRequest, Request, Response, RpcClient};
use hyper::Method;

use crate::s3client::S3Client;
use crate::s3workload::BUCKET;
use crate::workload::now_us;

/// How long after the probe starts every node must have served its write and read.
pub const LIVENESS_BOUND_MS: u64 = 10_000;
/// Pause between attempts on a node that did not serve yet.
const RETRY_MS: u64 = 200;

/// The front door the probe knocks on: the workload's.
pub enum FrontDoor<'a> {
    /// The S3 API of each node (`addr` is the node's S3 address).
    S3(&'a S3Client),
    /// Node RPC, with the node as the coordinator.
    Rpc(&'a RpcClient),
}

/// A node to probe: its name, id and S3 address, and a key it is a replica of.
pub struct ProbeTarget {
    pub name: String,
    pub id: NodeId,
    pub s3_addr: String,
    pub key: String,
}

/// How many candidate keys `probe_key` tries before it settles for one `node` only
/// coordinates: objects are placed by their bucket, so with fewer replicas than nodes the
/// one bucket of the S3 workloads lives on some nodes only.
const PROBE_KEY_CANDIDATES: usize = 1024;

/// The first probe key `node` is a replica of, given where a key lives; if no key can be
/// (an S3 bucket placed on other nodes), a key `node` only coordinates.
pub fn probe_key(node: &str, id: NodeId, replicas_of: impl Fn(&str) -> Vec<NodeId>) -> String {
    (0..PROBE_KEY_CANDIDATES)
        .map(|i| format!("liveness-{node}-{i}"))
        .find(|key| replicas_of(key).contains(&id))
        .unwrap_or_else(|| format!("liveness-{node}"))
}

/// Probes every node in turn until each served or the bound ran out; returns how each node
/// that did not serve last failed, as `(node, why)`.
pub async fn probe(door: FrontDoor<'_>, targets: &[ProbeTarget]) -> Vec<(String, String)> {
    let deadline_us = now_us() + LIVENESS_BOUND_MS * 1000;
    let mut unserved = Vec::new();
    for target in targets {
        let mut last_error;
        loop {
            match serve_once(&door, target).await {
                Ok(()) => break,
                Err(e) => last_error = e,
            }
            if now_us() >= deadline_us {
                unserved.push((target.name.clone(), last_error));
                break;
            }
            tokio::time::sleep(Duration::from_millis(RETRY_MS)).await;
        }
    }
    unserved
}

/// One write and read back of `target`'s probe key, coordinated by `target`.
async fn serve_once(door: &FrontDoor<'_>, target: &ProbeTarget) -> Result<(), String> {
    let key = target.key.clone();
    let value = format!("served by {} at {} us", target.name, now_us()).into_bytes();
    match door {
        FrontDoor::S3(client) => {
            let path = format!("/{BUCKET}/{key}");
            let put = client.request(&target.s3_addr, Method::PUT, &path, value.clone().into());
            match put.await {
                Ok(r) if r.status == 200 => {}
                Ok(r) => return Err(format!("PUT answered {}", r.status)),
                Err(e) => return Err(format!("PUT: {e}")),
            }
            match client.request(&target.s3_addr, Method::GET, &path, Bytes::new()).await {
                Ok(r) if r.status == 200 && r.body[..] == value[..] => Ok(()),
                Ok(r) => Err(format!("GET after the PUT answered {}", r.status)),
                Err(e) => Err(format!("GET: {e}")),
            }
        }
        FrontDoor::Rpc(rpc) => {
            let put = KvRequest::Put { key: key.clone(), value: Some(value.clone()) };
            match rpc.call(target.id, Request::Kv(put)).await {
                Ok(Response::Done) => {}
                other => return Err(format!("put answered {other:?}")),
            }
            match rpc.call(target.id, Request::Kv(KvRequest::Get { key })).await {
                Ok(Response::Value(Some(v))) if v == value => Ok(()),
                other => Err(format!("get after the put answered {other:?}")),
            }
        }
    }
}
