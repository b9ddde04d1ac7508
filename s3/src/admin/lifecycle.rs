//! `POST /v1/lifecycle/run`: one bucket lifecycle pass on this node, now, instead of at the
//! worker's next tick (`lifecycle_interval_secs`, a day by default). For operators who just
//! set a rule and want it applied, and for tests that must not wait a day.
//!
//! The pass is the periodic worker's (`hangar_engine::objects::lifecycle`): it covers the
//! buckets this node is the first replica of, so on a cluster run it on every node to
//! cover every bucket. It answers when the pass is done, with what it did. A pass running
//! at the same time as the periodic one is harmless: each deletion re-reads the key first.

use serde_json::{Value, json};

use super::{AdminError, AdminState};
use hangar_engine::objects::lifecycle::LifecycleWorker;

pub async fn run(state: &AdminState) -> Result<Value, AdminError> {
    // The interval only paces `LifecycleWorker::run`; one `step` ignores it.
    let report = LifecycleWorker::new(state.store.clone(), u64::MAX).step().await;
    Ok(json!({
        "node_id": state.node.id.to_string(),
        "buckets": report.buckets,
        "objects_expired": report.objects_expired,
        "uploads_aborted": report.uploads_aborted,
        "noncurrent_versions_expired": report.noncurrent_versions_expired,
        "delete_markers_removed": report.delete_markers_removed,
        "errors": report.errors,
    }))
}
