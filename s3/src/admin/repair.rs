//! `/v1/repair`: launch a table sync, a block resync or a scrub pass on this node, and show
//! the progress of each kind of pass (the operator's or the periodic worker's).
//!
//! Passes act on this node only: every node holds different partitions and blocks, so a
//! cluster-wide repair is one launch per node (`hangar -c <node's config> repair …` for
//! each; docs/operations.md). Asking the other nodes over RPC would need a new message in
//! the engine's protocol for something an operator's loop does as well.

use hangar_engine::block::repair::{self, PassSnapshot, RepairCounts, RepairKind};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AdminError, AdminState, parse_body};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LaunchRequest {
    what: Option<String>,
}

/// The worker (as `/v1/workers` names it) whose passes a kind tracks.
pub fn worker_of(kind: RepairKind) -> &'static str {
    match kind {
        RepairKind::Tables => "anti-entropy",
        RepairKind::Blocks => "block-resync",
        RepairKind::Scrub => "block-scrub",
    }
}

fn counts(c: &RepairCounts) -> Value {
    json!({
        "checked": c.checked,
        "repaired": c.repaired,
        "unrecoverable": c.unrecoverable,
        "errors": c.errors,
    })
}

/// One kind's progress: the running (or last) pass, the last finished one, totals.
pub fn progress_json(kind: RepairKind, s: &PassSnapshot) -> Value {
    let state = match (s.running, s.started_ms) {
        (true, _) => "running",
        (false, Some(_)) => "done",
        (false, None) => "never run",
    };
    json!({
        "what": kind.name(),
        "worker": worker_of(kind),
        "state": state,
        "launched_by": s.started_ms.map(|_| if s.launched { "operator" } else { "worker" }),
        "started_ms": s.started_ms,
        "finished_ms": s.finished_ms,
        // 0 until the pass knows (a table sync does not count ahead).
        "to_check": s.to_check,
        "checked": s.pass.checked,
        "repaired": s.pass.repaired,
        "unrecoverable": s.pass.unrecoverable,
        "errors": s.pass.errors,
        "last_pass": counts(&s.last_pass),
        "passes": s.passes,
        "totals": counts(&s.totals),
    })
}

/// `GET /v1/repair`.
pub fn show(state: &AdminState) -> Value {
    let repairs: Vec<Value> =
        RepairKind::ALL.iter().map(|&k| progress_json(k, &state.node.repair.snapshot(k))).collect();
    json!({ "node_id": state.node.id.to_string(), "repairs": repairs })
}

/// `POST /v1/repair` with `{"what": "tables" | "blocks" | "scrub"}`.
pub fn launch(state: &AdminState, body: &[u8]) -> Result<Value, AdminError> {
    let request: LaunchRequest = parse_body(body)?;
    let names = "\"tables\", \"blocks\" or \"scrub\"";
    let Some(what) = request.what else {
        return Err(AdminError::bad_request(format!("say what to repair: \"what\": {names}")));
    };
    let Some(kind) = RepairKind::parse(&what) else {
        return Err(AdminError::bad_request(format!(
            "cannot repair {what:?}: \"what\" is one of {names}"
        )));
    };
    let node = state.node.clone();
    match repair::launch(node, state.workers.repair, kind) {
        Ok(started) => Ok(json!({
            "node_id": state.node.id.to_string(),
            "started": true,
            "repair": progress_json(kind, &started),
        })),
        Err(running) => Err(AdminError::conflict(
            "RepairRunning",
            format!(
                "a {what} pass is already running on this node ({} of {} checked, started by \
                 the {}); follow it with `hangar worker list` and launch again once it is done",
                running.pass.checked,
                running.to_check,
                if running.launched { "operator" } else { "periodic worker" },
            ),
        )),
    }
}
