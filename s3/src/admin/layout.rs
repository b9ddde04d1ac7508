//! `/v1/layout…` and `/v1/node…`: the cluster layout as the operator changes it.
//!
//! Changes are staged on the newest layout (gossiped with it), previewed, then applied with
//! the version they create (current + 1, so two operators cannot both apply "the next one"
//! unknowingly; a mismatch is a 409 naming the right version).
//!
//! Before the cluster's first layout there is no layout to stage on (the engine's history
//! holds applied versions only), so this node keeps the first changes in memory
//! (`AdminState::first_layout`) and `apply` turns them into version 1, which gossip then
//! spreads. Consequence: stage and apply the first layout through one node.

use std::collections::BTreeSet;
use std::time::Duration;

use hangar_engine::layout::history::LayoutHistory;
use hangar_engine::layout::manager::LayoutManagerError;
use hangar_engine::layout::{ClusterLayout, LayoutDiff, LayoutError, NodeId, NodeRole};
use hangar_engine::node::Node;
use hangar_engine::rpc::message::LayoutRequest;
use hangar_engine::rpc::{Request, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AdminError, AdminState, parse_body};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignBody {
    node: String,
    zone: String,
    capacity: u64,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeBody {
    node: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApplyBody {
    version: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectBody {
    peer: String,
}

/// The layout changes are staged on: the newest applied one, or the first-layout draft.
fn staging_view(state: &AdminState) -> ClusterLayout {
    match state.node.current_layout() {
        Some(layout) => layout,
        None => state.first_layout.lock().unwrap().clone(),
    }
}

/// `GET /v1/layout`.
pub fn show(state: &AdminState) -> Value {
    let history = state.node.layout_history();
    let layout = staging_view(state);
    let roles: Vec<Value> = layout
        .roles()
        .iter()
        .map(|(id, role)| {
            json!({
                "id": id.to_string(),
                "zone": role.zone,
                "capacity": role.capacity,
                "tags": role.tags,
                "partitions": layout.partitions_of(*id).len(),
            })
        })
        .collect();
    json!({
        "version": layout.version(),
        "replication_factor": layout.replication_factor(),
        "roles": roles,
        "staged": staged_json(&layout),
        "versions_stored": history.versions().iter().map(|l| l.version()).collect::<Vec<_>>(),
        "in_transition": history.versions().len() > 1,
    })
}

fn staged_json(layout: &ClusterLayout) -> Vec<Value> {
    let role = |r: &NodeRole| json!({ "zone": r.zone, "capacity": r.capacity, "tags": r.tags });
    layout
        .staged()
        .iter()
        .map(|(id, change)| json!({ "id": id.to_string(), "role": change.as_ref().map(role) }))
        .collect()
}

/// `POST /v1/layout/assign`.
pub fn assign(state: &AdminState, body: &[u8]) -> Result<Value, AdminError> {
    let b: AssignBody = parse_body(body)?;
    let node = resolve_node(state, &b.node)?;
    let role = NodeRole { zone: b.zone, capacity: b.capacity, tags: b.tags };
    stage(state, node, Some(role))?;
    Ok(show(state))
}

/// `POST /v1/layout/remove`.
pub fn remove(state: &AdminState, body: &[u8]) -> Result<Value, AdminError> {
    let b: NodeBody = parse_body(body)?;
    let node = resolve_node(state, &b.node)?;
    stage(state, node, None)?;
    Ok(show(state))
}

fn stage(state: &AdminState, node: NodeId, role: Option<NodeRole>) -> Result<(), AdminError> {
    if state.node.current_layout().is_some() {
        return state.node.stage_role(node, role).map_err(manager_error);
    }
    let mut first = state.first_layout.lock().unwrap();
    match role {
        Some(role) => first.stage_assign(node, role).map_err(layout_error),
        None => {
            first.stage_remove(node);
            Ok(())
        }
    }
}

/// `GET /v1/layout/preview`.
pub fn preview(state: &AdminState) -> Result<Value, AdminError> {
    let layout = staging_view(state);
    if layout.staged().is_empty() {
        return Err(AdminError::conflict(
            "NothingStaged",
            "no staged changes: stage some with `hangar layout assign` or `layout remove`".into(),
        ));
    }
    let (next, diff) = layout.preview().map_err(layout_error)?;
    Ok(diff_json(next.version(), &diff))
}

fn diff_json(version: u64, diff: &LayoutDiff) -> Value {
    let nodes: Vec<Value> = diff
        .per_node
        .iter()
        .map(|(id, (before, after))| {
            json!({ "id": id.to_string(), "partitions_before": before, "partitions_after": after })
        })
        .collect();
    json!({
        "version": version,
        "moved_partitions": diff.moved_partitions,
        "moved_replicas": diff.moved_replicas,
        "nodes": nodes,
    })
}

/// How long applying the first layout waits for the new cluster to serve.
const FIRST_LAYOUT_SERVING_WAIT: Duration = Duration::from_secs(30);

/// `POST /v1/layout/apply`. The first layout answers once the new cluster serves (below),
/// so that the operator's next command — `key create`, `bucket create`, a client's first
/// PUT — is not refused by nodes still learning the layout or finishing their first sync.
pub async fn apply(state: &AdminState, body: &[u8]) -> Result<Value, AdminError> {
    let b: ApplyBody = parse_body(body)?;
    if state.node.current_layout().is_some() {
        let diff = state.node.apply_staged(b.version).map_err(manager_error)?;
        return Ok(diff_json(b.version, &diff));
    }
    let diff = apply_first(state, b.version)?;
    let mut out = diff_json(b.version, &diff);
    out["serving"] = json!(wait_serving(&state.node, FIRST_LAYOUT_SERVING_WAIT).await);
    Ok(out)
}

/// Waits (at most `limit`) until a quorum read succeeds in every distinct replica set of the
/// newest layout: a quorum of each is then serving, not refusing reads while it learns the
/// layout or syncs its blank replica (docs/data-model.md, "Blank nodes"). Returns whether
/// that happened in time. The reads are of a key of the register table no client uses.
async fn wait_serving(node: &Node, limit: Duration) -> bool {
    let Some(layout) = node.current_layout() else { return false };
    let mut probes: Vec<Vec<u8>> = Vec::new();
    let mut sets_seen: BTreeSet<Vec<NodeId>> = BTreeSet::new();
    for partition in 0..=u8::MAX {
        if sets_seen.insert(layout.nodes_of(partition).to_vec()) {
            // Storage keys start with a 32-byte hash whose first byte is the partition.
            let mut key = vec![partition; 32];
            key.extend_from_slice(b"hangar-admin-serving-probe");
            probes.push(key);
        }
    }
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let mut serving = true;
        for probe in &probes {
            if node.kv.get(probe).await.is_err() {
                serving = false;
                break;
            }
        }
        if serving {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Turns the first-layout draft into version 1 of the cluster's history.
fn apply_first(state: &AdminState, version: u64) -> Result<LayoutDiff, AdminError> {
    let mut first = state.first_layout.lock().unwrap();
    let mut next = first.clone();
    let diff = next.apply_staged(version).map_err(layout_error)?;
    install_first_layout(&state.node, &next).map_err(manager_error)?;
    first.revert_staged();
    Ok(diff)
}

/// Installs an applied first layout (version 1) into the node's history; gossip spreads it.
pub fn install_first_layout(node: &Node, layout: &ClusterLayout) -> Result<(), LayoutManagerError> {
    node.layouts.merge(&LayoutHistory::from_layout(layout)).map(|_| ())
}

/// `POST /v1/layout/revert`: drops the staged changes on this node. (Staged changes already
/// gossiped to other nodes come back with the next gossip round from them.)
pub fn revert(state: &AdminState) -> Result<Value, AdminError> {
    if state.node.current_layout().is_some() {
        let revert = |h: &mut LayoutHistory| {
            if let Some(layout) = h.current_mut() {
                layout.revert_staged();
            }
            Ok(())
        };
        state.node.layouts.update(revert).map_err(manager_error)?;
    } else {
        state.first_layout.lock().unwrap().revert_staged();
    }
    Ok(show(state))
}

/// `POST /v1/layout/skip-dead`: lets a transition finish without a removed, dead node.
pub fn skip_dead(state: &AdminState, body: &[u8]) -> Result<Value, AdminError> {
    let b: NodeBody = parse_body(body)?;
    let node = resolve_node(state, &b.node)?;
    state.node.skip_dead_node(node).map_err(manager_error)?;
    Ok(show(state))
}

/// `GET /v1/node`: this node's id and the address it advertises.
pub fn node_info(state: &AdminState) -> Value {
    let me = state.node.id;
    let history = state.node.layout_history();
    let addr = history.addrs().find(|(id, _)| *id == me).map(|(_, a)| a.to_string());
    json!({
        "id": me.to_string(),
        "rpc_public_addr": addr,
        "peer": addr.as_ref().map(|a| format!("{me}@{a}")),
    })
}

/// `POST /v1/node/connect`: learns a peer's address and exchanges layouts with it now.
pub async fn connect(state: &AdminState, body: &[u8]) -> Result<Value, AdminError> {
    let b: ConnectBody = parse_body(body)?;
    let (peer, addr) = crate::config::parse_peer(&b.peer).map_err(AdminError::bad_request)?;
    let node = &state.node;
    if peer == node.id {
        return Err(AdminError::bad_request(format!("{peer} is this node")));
    }
    node.rpc.set_peer_addr(peer, addr.clone());
    let digest = node.layout_history().digest();
    let theirs = match node.rpc.call(peer, Request::Layout(LayoutRequest::Gossip { digest })).await
    {
        Ok(Response::Layout(theirs)) => theirs,
        Ok(other) => return Err(AdminError::internal(format!("unexpected answer {other:?}"))),
        Err(e) => {
            return Err(AdminError::unavailable(format!(
                "cannot reach node {peer} at {addr}: {e}; check that it runs, that its \
                 rpc_public_addr is {addr} and that both nodes have the same rpc_secret"
            )));
        }
    };
    if let Some(theirs) = theirs {
        node.layouts.merge(&theirs).map_err(manager_error)?;
    }
    // Remember the address (the peer's own advertisement, stamped later, wins) so that the
    // layout worker keeps gossiping with it; then push ours so it learns this node now.
    let remember = |h: &mut LayoutHistory| {
        h.set_addr(peer, 0, addr.clone());
        Ok(())
    };
    node.layouts.update(remember).map_err(manager_error)?;
    let history = Box::new(node.layout_history());
    let pushed = node.rpc.call(peer, Request::Layout(LayoutRequest::Push { history })).await;
    if let Err(e) = pushed {
        return Err(AdminError::unavailable(format!("node {peer} at {addr}: {e}")));
    }
    Ok(json!({ "connected": peer.to_string(), "addr": addr }))
}

/// A node named by its full id, `<id>@<addr>`, or a unique prefix of the id, among the nodes
/// this one knows.
fn resolve_node(state: &AdminState, name: &str) -> Result<NodeId, AdminError> {
    let history = state.node.layout_history();
    let mut known: BTreeSet<NodeId> = history.tracked_nodes();
    known.extend(history.addrs().map(|(id, _)| id));
    known.insert(state.node.id);
    let draft = state.first_layout.lock().unwrap();
    known.extend(draft.staged().keys().copied());
    if let Some(layout) = history.current() {
        known.extend(layout.staged().keys().copied());
    }
    // `hangar node id` prints `<id>@<addr>`; that whole line names the node too.
    let name = name.split_once('@').map_or(name, |(id, _)| id).to_ascii_lowercase();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AdminError::bad_request(format!(
            "{name:?} is not a node id (hex digits; `hangar status` lists them)"
        )));
    }
    let matches: Vec<NodeId> =
        known.iter().copied().filter(|id| id.to_string().starts_with(&name)).collect();
    match matches.as_slice() {
        [one] => Ok(*one),
        // A full id names a node this one has not heard of yet (it may join later).
        [] if name.len() == 16 && u64::from_str_radix(&name, 16).is_ok_and(|n| n != 0) => {
            Ok(NodeId(u64::from_str_radix(&name, 16).unwrap_or(0)))
        }
        [] => Err(AdminError::not_found(
            "NoSuchNode",
            format!(
                "no known node id starts with {name}: connect it first (`hangar node connect \
                 <id>@<host>:<port>`) or give the full 16-digit id"
            ),
        )),
        _ => Err(AdminError::bad_request(format!(
            "{name} matches {} nodes; give more digits",
            matches.len()
        ))),
    }
}

fn layout_error(e: LayoutError) -> AdminError {
    match e {
        LayoutError::VersionMismatch { expected, current } => AdminError::conflict(
            "LayoutVersionMismatch",
            format!(
                "cannot apply version {expected}: the current layout is version {current}; \
                 check `hangar layout show`, then `hangar layout apply --version {}`",
                current + 1
            ),
        ),
        LayoutError::NotEnoughNodes { needed, available } => AdminError::bad_request(format!(
            "the layout would have {available} nodes, fewer than the replication factor \
             {needed}: assign more nodes with `hangar layout assign`"
        )),
        other => AdminError::bad_request(other.to_string()),
    }
}

fn manager_error(e: LayoutManagerError) -> AdminError {
    match e {
        LayoutManagerError::Layout(e) => layout_error(e),
        e @ LayoutManagerError::StillAssigned { .. } => {
            AdminError::conflict("StillAssigned", e.to_string())
        }
        e @ LayoutManagerError::NoLayout => AdminError::conflict("NoLayout", e.to_string()),
        e => AdminError::internal(e.to_string()),
    }
}
