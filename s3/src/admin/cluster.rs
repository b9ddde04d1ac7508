//! `/v1/status`, `/v1/health`, `/v1/workers` and `/metrics`: what the engine offers today.
//!
//! Connectivity is measured, not remembered: every node of the layout other than this one
//! is pinged (bounded by the RPC call timeout), so "connected" means "answered just now".

use std::collections::{BTreeMap, BTreeSet};

use hangar_engine::block::repair::RepairKind;
use hangar_engine::layout::NodeId;
use hangar_engine::rpc::{Request, Response};
use serde_json::{Value, json};

use super::{AdminError, AdminState};
use crate::metrics::TextWriter;

/// The nodes of the current layout, and which of them answered a ping.
struct ClusterView {
    version: u64,
    replication_factor: usize,
    /// Node → zone, capacity; nodes known by address but without a role have zone "".
    nodes: Vec<(NodeId, String, u64)>,
    /// Advertised RPC addresses.
    addrs: BTreeMap<NodeId, String>,
    /// Partitions per node in the newest layout.
    partitions: BTreeMap<NodeId, usize>,
    /// Stored layout versions (more than one: a change is in transition).
    versions_stored: Vec<u64>,
    connected: BTreeSet<NodeId>,
    /// Per partition: how many of its replicas answered.
    replicas_up: Vec<usize>,
}

async fn view(state: &AdminState) -> ClusterView {
    // A node that has not learnt a layout yet (joining) shows version 0 and no nodes.
    let layout = state.node.current_layout();
    let (version, replication_factor) =
        layout.as_ref().map_or((0, 0), |l| (l.version(), l.replication_factor()));
    let history = state.node.layout_history();
    let mut nodes: Vec<(NodeId, String, u64)> = layout.as_ref().map_or_else(Vec::new, |l| {
        l.roles().iter().map(|(id, r)| (*id, r.zone.clone(), r.capacity)).collect()
    });
    let addrs: BTreeMap<NodeId, String> =
        history.addrs().map(|(id, a)| (id, a.to_string())).collect();
    for id in addrs.keys().chain([&state.node.id]) {
        if !nodes.iter().any(|(n, ..)| n == id) {
            nodes.push((*id, String::new(), 0));
        }
    }
    let mut partitions = BTreeMap::new();
    if let Some(l) = &layout {
        for p in 0..=255u8 {
            for n in l.nodes_of(p) {
                *partitions.entry(*n).or_insert(0) += 1;
            }
        }
    }
    let versions_stored = history.versions().iter().map(|l| l.version()).collect();
    let placement: Vec<Vec<NodeId>> = match &layout {
        Some(l) => (0..=255u8).map(|p| l.nodes_of(p).to_vec()).collect(),
        None => Vec::new(),
    };
    let pings = nodes.iter().filter(|(id, ..)| *id != state.node.id).map(|(id, ..)| {
        let (rpc, id) = (state.node.rpc.clone(), *id);
        async move { (id, matches!(rpc.call(id, Request::Ping).await, Ok(Response::Pong))) }
    });
    let mut connected: BTreeSet<NodeId> = futures_join(pings).await;
    connected.insert(state.node.id);
    let replicas_up = placement
        .iter()
        .map(|nodes| nodes.iter().filter(|n| connected.contains(n)).count())
        .collect();
    ClusterView {
        version,
        replication_factor,
        nodes,
        addrs,
        partitions,
        versions_stored,
        connected,
        replicas_up,
    }
}

/// Awaits every ping concurrently (each on its own task) and keeps the nodes that answered.
async fn futures_join<F>(pings: impl Iterator<Item = F>) -> BTreeSet<NodeId>
where
    F: std::future::Future<Output = (NodeId, bool)> + Send + 'static,
{
    let tasks: Vec<_> = pings.map(tokio::spawn).collect();
    let mut up = BTreeSet::new();
    for task in tasks {
        if let Ok((id, true)) = task.await {
            up.insert(id);
        }
    }
    up
}

impl ClusterView {
    /// Nodes with a role in the newest layout.
    fn members(&self) -> usize {
        self.nodes.iter().filter(|(_, zone, _)| !zone.is_empty()).count()
    }

    fn quorum(&self) -> usize {
        self.replication_factor / 2 + 1
    }

    fn partitions_all_ok(&self) -> usize {
        self.replicas_up.iter().filter(|&&n| n >= self.replication_factor).count()
    }

    fn partitions_quorum_ok(&self) -> usize {
        self.replicas_up.iter().filter(|&&n| n >= self.quorum()).count()
    }

    /// Every partition has a quorum of connected replicas; a node without a layout serves
    /// nothing, so it is not healthy.
    fn healthy(&self) -> bool {
        !self.replicas_up.is_empty() && self.partitions_quorum_ok() == self.replicas_up.len()
    }
}

pub async fn status(state: &AdminState) -> Result<Value, AdminError> {
    let v = view(state).await;
    let nodes: Vec<Value> = v
        .nodes
        .iter()
        .map(|(id, zone, capacity)| {
            json!({
                "id": id.to_string(),
                "zone": (!zone.is_empty()).then_some(zone),
                "capacity": (!zone.is_empty()).then_some(capacity),
                "address": v.addrs.get(id),
                "connected": v.connected.contains(id),
                "partitions": v.partitions.get(id).copied().unwrap_or(0),
                "is_self": *id == state.node.id,
            })
        })
        .collect();
    Ok(json!({
        "node_id": state.node.id.to_string(),
        "zone": v.nodes.iter().find(|(id, z, _)| *id == state.node.id && !z.is_empty())
            .map(|(_, z, _)| z.clone()),
        "layout_version": v.version,
        "replication_factor": v.replication_factor,
        "healthy": v.healthy(),
        "partitions": v.replicas_up.len(),
        "partitions_quorum_ok": v.partitions_quorum_ok(),
        "partitions_all_ok": v.partitions_all_ok(),
        "nodes": nodes,
        "versions_stored": v.versions_stored,
        // More than one stored version: writes go to old and new sets until the newest
        // is synced everywhere (see docs/data-model.md, "Layout changes").
        "layout_in_transition": v.versions_stored.len() > 1,
    }))
}

/// 200 when every partition has a write quorum of connected replicas, else 503.
pub async fn health(state: &AdminState) -> (bool, Value) {
    let v = view(state).await;
    let healthy = v.healthy();
    let body = json!({
        "status": if healthy { "ok" } else { "degraded" },
        "nodes": v.members(),
        "nodes_connected": v.connected.len(),
        "partitions": v.replicas_up.len(),
        "partitions_quorum_ok": v.partitions_quorum_ok(),
        "partitions_all_ok": v.partitions_all_ok(),
    });
    (healthy, body)
}

/// The engine's background workers: their periods (the engine defaults this server starts
/// them with) and their last pass that did something, with its report, learnt from the
/// engine's trace events (`metrics_events`; passes that changed nothing are not reported);
/// for anti-entropy, resync and scrub also the progress of their current or last pass,
/// launched by an operator or not (`repair`).
pub fn workers(state: &AdminState) -> Value {
    let w = &state.workers;
    let list = [
        (
            "anti-entropy",
            "anti-entropy",
            "compares table replicas, exchanges differing partitions",
            Some(w.sync_interval_ms),
        ),
        (
            "block-gc",
            "gc",
            "retires dead block references, deletes unreferenced blocks",
            Some(w.gc.interval_ms),
        ),
        (
            "block-resync",
            "resync",
            "fetches blocks this node should hold but lacks",
            Some(w.repair.resync_interval_ms),
        ),
        (
            "block-scrub",
            "scrub",
            "re-reads every local block, replaces corrupt copies",
            Some(w.repair.scrub_interval_ms),
        ),
        ("layout", "layout.step", "acks, syncs and retires layout versions during a change", None),
    ];
    let workers: Vec<Value> = list
        .iter()
        .map(|(name, event, what, interval_ms)| {
            let seen = state.events.get(event);
            // The repair kind this worker runs passes of, with their progress.
            let pass = RepairKind::ALL.into_iter().find(|&k| super::repair::worker_of(k) == *name);
            let progress =
                pass.map(|k| super::repair::progress_json(k, &state.node.repair.snapshot(k)));
            json!({
                "name": name,
                "what": what,
                "interval_ms": interval_ms,
                "passes_with_work": seen.as_ref().map_or(0, |s| s.count),
                "last_work_ms": seen.as_ref().map(|s| s.last_ms),
                "last_report": seen.and_then(|s| s.last_report),
                "repair": progress,
            })
        })
        .collect();
    json!({ "workers": workers })
}

/// `/metrics`: the S3 counters plus engine state sampled now.
pub async fn metrics_text(state: &AdminState) -> String {
    let mut out = TextWriter::default();
    state.s3_metrics.render(&mut out);
    let v = view(state).await;
    out.single("hangar_layout_version", "gauge", "Version of the current layout", v.version as f64);
    let moving = f64::from(u8::from(v.versions_stored.len() > 1));
    out.single(
        "hangar_layout_in_transition",
        "gauge",
        "1 while a layout change moves data",
        moving,
    );
    let members = v.members() as f64;
    out.single("hangar_cluster_nodes", "gauge", "Nodes in the layout", members);
    let up = v.connected.len() as f64;
    out.single("hangar_cluster_nodes_connected", "gauge", "Nodes that answered a ping", up);
    let all_ok = v.partitions_all_ok() as f64;
    out.single("hangar_partitions_all_ok", "gauge", "Partitions with every replica up", all_ok);
    let quorum_ok = v.partitions_quorum_ok() as f64;
    out.single("hangar_partitions_quorum_ok", "gauge", "Partitions with a quorum up", quorum_ok);
    let healthy = f64::from(u8::from(v.healthy()));
    out.single(
        "hangar_cluster_healthy",
        "gauge",
        "1 when every partition has a quorum up",
        healthy,
    );
    super::engine_metrics::render(&mut out, &super::engine_metrics::EngineSample::of(&state.node));
    crate::metrics::render_rpc(&mut out, &state.node.rpc.peer_stats());
    state.events.render(&mut out);
    crate::metrics_disk::render(&mut out, &state.disk_dirs);
    let blocks = state.node.blocks.stats();
    let corrupt = blocks.corrupt_copies as f64;
    out.single(
        "hangar_block_corrupt_copies_total",
        "counter",
        "Corrupt block copies seen",
        corrupt,
    );
    let missing = blocks.missing_copies as f64;
    out.single(
        "hangar_block_missing_copies_total",
        "counter",
        "Missing block copies seen",
        missing,
    );
    if let Ok(keys) = state.keys.list().await {
        out.single("hangar_access_keys", "gauge", "Live access keys", keys.len() as f64);
    }
    if let Ok(buckets) = state.store.list_buckets().await {
        out.single("hangar_buckets", "gauge", "Buckets", buckets.len() as f64);
    }
    out.finish()
}
