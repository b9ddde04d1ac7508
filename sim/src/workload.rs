//! The register workload: clients issue puts, deletes and gets on a small key space through
//! randomly chosen coordinator nodes, and record every operation in the history. (The s3
//! workload, `s3workload`, does the same through the S3 frontend.)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hangar_engine::layout::NodeId;
use hangar_engine::rpc::{KvRequest, Request, Response, RpcClient, RpcConfig};
use hangar_engine::seam::Seam;
use rand_core::RngCore;

use crate::history::{Op, OpKind, Outcome};
use crate::scenario::Workload;
use crate::trace::{Recorder, op_detail};

/// Everything one simulated client needs.
pub struct ClientCtx {
    pub name: String,
    pub id: NodeId,
    pub seam: Seam,
    pub secret: String,
    /// The nodes it may use as coordinators, with their RPC addresses.
    pub nodes: Vec<(NodeId, String)>,
    /// The same nodes' S3 addresses (the s3 workload).
    pub s3_nodes: Vec<String>,
    pub workload: Workload,
    pub history: Arc<Mutex<Vec<Op>>>,
    pub recorder: Arc<Mutex<Recorder>>,
}

pub fn now_us() -> u64 {
    turmoil::sim_elapsed().map(|d| d.as_micros() as u64).unwrap_or(0)
}

pub fn roll(rng: &mut impl RngCore) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

pub async fn run_client(ctx: ClientCtx) -> Result<(), String> {
    let w = &ctx.workload;
    let config = RpcConfig { call_timeout_ms: w.client_timeout_ms, ..RpcConfig::default() };
    let rpc = RpcClient::new(ctx.id, ctx.seam.clone(), &ctx.secret, config);
    for (id, addr) in &ctx.nodes {
        rpc.set_peer_addr(*id, addr.clone());
    }
    let mut rng = ctx.seam.rng("workload");
    let mut seq = 0u64;
    while now_us() < w.duration_ms * 1000 {
        let think = rng.next_u64() % (w.max_think_ms + 1);
        tokio::time::sleep(Duration::from_millis(think)).await;
        let key = format!("k{}", rng.next_u64() % w.keys as u64);
        let (node, addr) = &ctx.nodes[(rng.next_u64() % ctx.nodes.len() as u64) as usize];
        let node = *node;
        let r = roll(&mut rng);
        seq += 1;
        let kind = if r < w.delete_fraction {
            OpKind::Delete
        } else if r < w.write_fraction {
            OpKind::Put { value: format!("{}-{seq}", ctx.name).into_bytes() }
        } else {
            OpKind::Get
        };
        let request = match &kind {
            OpKind::Put { value } => {
                KvRequest::Put { key: key.clone(), value: Some(value.clone()) }
            }
            OpKind::Delete => KvRequest::Put { key: key.clone(), value: None },
            OpKind::Get => KvRequest::Get { key: key.clone() },
        };
        let invoke_us = now_us();
        let answer = rpc.call(node, Request::Kv(request)).await;
        let outcome = match (&kind, answer) {
            (OpKind::Get, Ok(Response::Value(v))) => Outcome::Ok { read: v },
            (OpKind::Get, _) => Outcome::Fail,
            (_, Ok(Response::Done)) => Outcome::Ok { read: None },
            // A write that failed may still have reached some replicas.
            (_, _) => Outcome::Info,
        };
        let op =
            Op { client: ctx.name.clone(), key, kind, invoke_us, complete_us: now_us(), outcome };
        let summary = format!("{op:?} via {node}");
        let via = addr.split(':').next().unwrap_or(addr);
        let detail = || op_detail(&op, via);
        ctx.recorder.lock().unwrap().record_detailed(&ctx.name, "op", summary.as_bytes(), detail);
        ctx.history.lock().unwrap().push(op);
    }
    Ok(())
}
