//! The admin router over a real single-node engine (production seam, temporary directory):
//! tokens are enforced before anything else, and each endpoint does what the CLI relies on.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Method, Response, StatusCode};
use serde_json::{Value, json};

use hangar_engine::layout::ClusterLayout;

use super::{AdminState, respond};
use crate::config::Config;
use crate::server::{Engine, is_member, start_engine, start_single_node};

const TOKEN: &str = "admin-token-for-tests-0001";
const METRICS_TOKEN: &str = "metrics-token-for-tests-01";

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn engine(name: &str) -> (TempDir, Engine, Config) {
    engine_as(name, true).await
}

/// `single_node`: `hangar dev`'s start (the node alone in the layout); else `hangar
/// server`'s (no layout until the operator applies one).
async fn engine_as(name: &str, single_node: bool) -> (TempDir, Engine, Config) {
    let dir = std::env::temp_dir().join(format!("hangar-admin-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let text = format!(
        "metadata_dir = \"meta\"\ndata_dir = \"data\"\nrpc_bind_addr = \"127.0.0.1:0\"\n\
         rpc_secret = \"{}\"\n[[s3_api.access_keys]]\nid = \"GKconfig000000000001\"\n\
         secret = \"config-secret-000000001\"\n",
        "ab".repeat(32)
    );
    let config = Config::parse(&text, &dir.join("hangar.toml"), &|_| None).unwrap();
    let engine = match single_node {
        true => start_single_node(&config).await.unwrap(),
        false => start_engine(&config).await.unwrap(),
    };
    (TempDir(dir), engine, config)
}

fn state(engine: &Engine, token: Option<&str>, metrics_token: Option<&str>) -> AdminState {
    AdminState {
        node: engine.node.clone(),
        store: engine.store.clone(),
        keys: engine.keys.clone(),
        admin_token: token.map(str::to_string),
        metrics_token: metrics_token.map(str::to_string),
        s3_metrics: engine.s3_metrics.clone(),
        workers: engine.workers,
        events: engine.events.clone(),
        first_layout: std::sync::Mutex::new(ClusterLayout::new(1).unwrap()),
        disk_dirs: vec![("data", std::env::temp_dir())],
    }
}

async fn call(
    state: &AdminState,
    method: Method,
    path_and_query: &str,
    auth: Option<&str>,
    body: Value,
) -> (StatusCode, Value) {
    let (status, text) = call_text(state, method, path_and_query, auth, body).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn call_text(
    state: &AdminState,
    method: Method,
    path_and_query: &str,
    auth: Option<&str>,
    body: Value,
) -> (StatusCode, String) {
    let mut headers = HeaderMap::new();
    if let Some(token) = auth {
        headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let body = if body.is_null() { Vec::new() } else { body.to_string().into_bytes() };
    let resp: Response<Full<Bytes>> = respond(state, &method, path, query, &headers, &body).await;
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn tokens_are_checked_before_anything_else() {
    let (_dir, engine, _) = engine("tokens").await;
    let st = state(&engine, Some(TOKEN), Some(METRICS_TOKEN));
    let (status, body) = call(&st, Method::GET, "/v1/status", None, Value::Null).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "MissingToken");
    let (status, body) = call(&st, Method::GET, "/v1/status", Some("nope"), Value::Null).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::FORBIDDEN, Some("WrongToken")));
    // Unknown paths are refused the same way: nothing is learnt without the token.
    let (status, _) = call(&st, Method::GET, "/v1/nothing", Some("nope"), Value::Null).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(&st, Method::GET, "/v1/nothing", Some(TOKEN), Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // /metrics takes its own token, not the admin one.
    let (status, _) = call_text(&st, Method::GET, "/metrics", Some(TOKEN), Value::Null).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, text) =
        call_text(&st, Method::GET, "/metrics", Some(METRICS_TOKEN), Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("# TYPE hangar_layout_version gauge\nhangar_layout_version 1\n"));
    assert!(text.contains("\nhangar_layout_in_transition 0\n"), "{text}");
    assert!(text.contains("\nhangar_cluster_nodes 1\n"), "{text}");
    assert!(text.contains("hangar_access_keys 1\n"), "{text}");
    assert!(text.contains("hangar_disk_free_bytes{dir=\"data\""), "{text}");
    // Without an admin token configured, the API is off.
    let off = state(&engine, None, None);
    let (status, body) = call(&off, Method::GET, "/v1/status", Some(TOKEN), Value::Null).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::FORBIDDEN, Some("Disabled")));
    let (status, _) = call_text(&off, Method::GET, "/metrics", None, Value::Null).await;
    assert_eq!(status, StatusCode::OK, "without a metrics_token, /metrics is open");
}

#[tokio::test]
async fn status_health_and_workers_describe_the_single_node() {
    let (_dir, engine, _) = engine("status").await;
    let st = state(&engine, Some(TOKEN), None);
    let (status, body) = call(&st, Method::GET, "/v1/status", Some(TOKEN), Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["node_id"], engine.node.id.to_string());
    assert_eq!(body["layout_version"], 1);
    assert_eq!(body["nodes"][0]["connected"], true);
    assert_eq!(body["nodes"][0]["zone"], "dc1");
    assert_eq!(
        (body["healthy"].as_bool(), body["partitions_all_ok"].as_u64()),
        (Some(true), Some(256))
    );
    let (status, body) = call(&st, Method::GET, "/v1/health", Some(TOKEN), Value::Null).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("ok")));
    assert_eq!(body["partitions_quorum_ok"], 256);
    let (_, body) = call(&st, Method::GET, "/v1/workers", Some(TOKEN), Value::Null).await;
    let names: Vec<&str> =
        body["workers"].as_array().unwrap().iter().map(|w| w["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["anti-entropy", "block-gc", "block-resync", "block-scrub", "layout"]);
    assert!(body["workers"][1]["last_work_ms"].is_null(), "no GC pass did work yet");
    // The engine reports worker passes through its seam's trace sink, which is the recorder.
    let sink = Arc::as_ptr(&engine.node.seam.trace) as *const ();
    assert_eq!(sink, Arc::as_ptr(&engine.events) as *const ());
    engine.node.seam.trace.event("gc", b"GcReport { blocks_deleted: 3 }");
    let (_, body) = call(&st, Method::GET, "/v1/workers", Some(TOKEN), Value::Null).await;
    let gc = &body["workers"][1];
    assert_eq!((gc["name"].as_str(), gc["passes_with_work"].as_u64()), (Some("block-gc"), Some(1)));
    assert_eq!(gc["last_report"], "GcReport { blocks_deleted: 3 }");
    assert!(gc["last_work_ms"].as_u64().is_some());
    let (status, _) = call(&st, Method::POST, "/v1/layout/apply", Some(TOKEN), json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the version to create is required");
}

/// The first layout of a cluster is staged on a node that has none, applied as version 1;
/// applying a version other than current + 1 is a 409 naming the right one.
#[tokio::test]
async fn a_first_layout_is_staged_previewed_applied_and_versions_are_checked() {
    let (_dir, engine, _) = engine("layout").await;
    let st = state(&engine, Some(TOKEN), None);
    let me = engine.node.id.to_string();
    let (status, body) = call(&st, Method::GET, "/v1/layout", Some(TOKEN), Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (body["version"].as_u64(), body["roles"][0]["partitions"].as_u64()),
        (Some(1), Some(256))
    );
    let other = "00000000000000ab";
    let assign = json!({ "node": other, "zone": "dc2", "capacity": 100 });
    let (status, body) = call(&st, Method::POST, "/v1/layout/assign", Some(TOKEN), assign).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["staged"][0]["id"], other);
    let prefix = json!({ "node": &me[..6] });
    let (status, _) = call(&st, Method::POST, "/v1/layout/remove", Some(TOKEN), prefix).await;
    assert_eq!(status, StatusCode::OK, "a unique prefix names a node");
    let (status, body) =
        call(&st, Method::GET, "/v1/layout/preview", Some(TOKEN), Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["moved_partitions"].as_u64(), Some(256));
    let stale = json!({ "version": 1 });
    let (status, body) = call(&st, Method::POST, "/v1/layout/apply", Some(TOKEN), stale).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body["message"].as_str().unwrap().contains("--version 2"), "{body}");
    let (status, body) =
        call(&st, Method::POST, "/v1/layout/revert", Some(TOKEN), Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["staged"].as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn keys_are_created_listed_allowed_and_deleted() {
    let (_dir, engine, _) = engine("keys").await;
    let st = Arc::new(state(&engine, Some(TOKEN), None));
    let auth = Some(TOKEN);
    // The config's key was imported at start, allowed to create buckets.
    let (_, info) =
        call(&st, Method::GET, "/v1/keys/GKconfig000000000001", auth, Value::Null).await;
    assert_eq!(info["allow_create_bucket"], true);
    assert!(info.get("secret").is_none(), "secrets only on request");
    let (status, key) = call(&st, Method::POST, "/v1/keys", auth, json!({"name": "ci"})).await;
    assert_eq!(status, StatusCode::OK);
    let id = key["id"].as_str().unwrap().to_string();
    assert_eq!(key["secret"].as_str().unwrap().len(), 64);
    assert_eq!(key["allow_create_bucket"], false);
    let (_, list) = call(&st, Method::GET, "/v1/keys", auth, Value::Null).await;
    assert_eq!(list["keys"].as_array().unwrap().len(), 2);
    assert!(list["keys"][0].get("secret").is_none());
    let path = format!("/v1/keys/{id}/allow");
    let (_, allowed) = call(&st, Method::POST, &path, auth, json!({"create_bucket": true})).await;
    assert_eq!(allowed["allow_create_bucket"], true);
    let (status, e) = call(&st, Method::POST, &path, auth, json!({"create": true})).await;
    assert_eq!((status, e["code"].as_str()), (StatusCode::BAD_REQUEST, Some("InvalidRequest")));
    let info_path = format!("/v1/keys/{id}?show_secret=true");
    let (_, info) = call(&st, Method::GET, &info_path, auth, Value::Null).await;
    assert_eq!(info["secret"], key["secret"]);
    let import = json!({"id": "GKimported0000000001", "secret": "imported-secret-0000001"});
    let (status, _) = call(&st, Method::POST, "/v1/keys/import", auth, import.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(&st, Method::POST, "/v1/keys/import", auth, import).await;
    assert_eq!(status, StatusCode::OK, "importing the same key again is idempotent");
    let (status, _) = call(&st, Method::DELETE, &format!("/v1/keys/{id}"), auth, Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    let (status, e) = call(&st, Method::GET, &format!("/v1/keys/{id}"), auth, Value::Null).await;
    assert_eq!((status, e["code"].as_str()), (StatusCode::NOT_FOUND, Some("NoSuchKey")));
}

#[tokio::test]
async fn buckets_count_objects_grant_keys_and_delete_only_when_empty() {
    let (_dir, engine, _) = engine("buckets").await;
    let st = state(&engine, Some(TOKEN), None);
    let auth = Some(TOKEN);
    let (status, b) = call(&st, Method::POST, "/v1/buckets", auth, json!({"name": "docs"})).await;
    assert_eq!((status, b["objects"].as_u64()), (StatusCode::OK, Some(0)));
    let (status, e) = call(&st, Method::POST, "/v1/buckets", auth, json!({"name": "Bad_"})).await;
    assert_eq!((status, e["code"].as_str()), (StatusCode::BAD_REQUEST, Some("InvalidRequest")));
    let meta = hangar_engine::objects::ObjectMeta::default();
    engine.store.put_object("docs", "a", meta.clone(), vec![7u8; 100]).await.unwrap();
    engine.store.put_object("docs", "b", meta, vec![7u8; 5000]).await.unwrap();
    let (_, info) = call(&st, Method::GET, "/v1/buckets/docs", auth, Value::Null).await;
    assert_eq!((info["objects"].as_u64(), info["size_bytes"].as_u64()), (Some(2), Some(5100)));
    let key = "GKconfig000000000001";
    let grant = json!({"key": key, "read": true, "write": true});
    let (_, g) = call(&st, Method::POST, "/v1/buckets/docs/allow", auth, grant).await;
    assert_eq!((g["read"].as_bool(), g["owner"].as_bool()), (Some(true), Some(false)));
    let deny = json!({"key": key, "write": true});
    let (_, g) = call(&st, Method::POST, "/v1/buckets/docs/deny", auth, deny).await;
    assert_eq!((g["read"].as_bool(), g["write"].as_bool()), (Some(true), Some(false)));
    let (_, info) = call(&st, Method::GET, "/v1/buckets/docs", auth, Value::Null).await;
    assert_eq!(info["keys"][0]["id"], key);
    let (status, e) = call(&st, Method::DELETE, "/v1/buckets/docs", auth, Value::Null).await;
    assert_eq!((status, e["code"].as_str()), (StatusCode::CONFLICT, Some("BucketNotEmpty")));
    engine.store.delete_object("docs", "a").await.unwrap();
    engine.store.delete_object("docs", "b").await.unwrap();
    let (status, _) = call(&st, Method::DELETE, "/v1/buckets/docs", auth, Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    // Grants go with the bucket: a new bucket of that name starts with none.
    assert!(!engine.keys.get_live(key).await.unwrap().perms("docs").any());
    let (status, _) = call(&st, Method::GET, "/v1/buckets/docs", auth, Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A fresh `hangar server` node has no layout: it is not healthy, not a member (its S3 port
/// refuses), and its first layout is staged here and applied as version 1, after which it
/// serves. Connecting to itself is refused with a reason.
#[tokio::test]
async fn a_fresh_node_waits_for_its_first_layout() {
    let (_dir, engine, _) = engine_as("fresh", false).await;
    let st = state(&engine, Some(TOKEN), None);
    assert!(!is_member(&engine.node));
    let (status, body) = call(&st, Method::GET, "/v1/status", Some(TOKEN), Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (body["layout_version"].as_u64(), body["healthy"].as_bool()),
        (Some(0), Some(false))
    );
    assert_eq!(body["nodes"][0]["is_self"], true, "a node always lists itself");
    let (status, _) = call(&st, Method::GET, "/v1/health", Some(TOKEN), Value::Null).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let me = engine.node.id.to_string();
    let itself = json!({ "peer": format!("{me}@127.0.0.1:1") });
    let (status, _) = call(&st, Method::POST, "/v1/node/connect", Some(TOKEN), itself).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let assign = json!({ "node": me, "zone": "dc1", "capacity": 1 });
    let (status, body) = call(&st, Method::POST, "/v1/layout/assign", Some(TOKEN), assign).await;
    assert_eq!((status, body["version"].as_u64()), (StatusCode::OK, Some(0)), "{body}");
    assert!(!is_member(&engine.node), "staged is not applied");
    let apply = json!({ "version": 1 });
    let (status, body) = call(&st, Method::POST, "/v1/layout/apply", Some(TOKEN), apply).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(is_member(&engine.node));
    assert_eq!(engine.node.current_layout().unwrap().version(), 1);
    engine.store.create_bucket("after-apply").await.unwrap();
}

/// Polls `GET /v1/repair` until the pass of `what` is done; returns its progress.
async fn repair_done(st: &AdminState, what: &str) -> Value {
    for _ in 0..500 {
        let (_, body) = call(st, Method::GET, "/v1/repair", Some(TOKEN), Value::Null).await;
        let p = body["repairs"].as_array().unwrap().iter().find(|r| r["what"] == what).unwrap();
        if p["state"] == "done" {
            return p.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the {what} pass did not finish in 10 s");
}

/// A single node cannot fetch a lost block from anyone: resync and scrub must say so
/// (unrecoverable), not report success or loop on an error.
#[tokio::test]
async fn repair_passes_report_a_lost_and_a_corrupt_block_of_a_single_node() {
    use hangar_engine::block::block_path;
    let (_dir, engine, _) = engine("repair").await;
    let st = state(&engine, Some(TOKEN), None);
    let auth = Some(TOKEN);
    engine.store.create_bucket("r").await.unwrap();
    let meta = hangar_engine::objects::ObjectMeta::default();
    engine.store.put_object("r", "a", meta.clone(), vec![1u8; 5000]).await.unwrap();
    engine.store.put_object("r", "b", meta, vec![2u8; 5000]).await.unwrap();
    let blocks = engine.node.blocks.local_list().unwrap();
    assert_eq!(blocks.len(), 2);
    engine.node.blocks.local_delete(&blocks[0]).unwrap();
    engine.node.seam.disk.write_durable(&block_path(&blocks[1]), b"\x01bit rot").unwrap();

    let (status, e) = call(&st, Method::POST, "/v1/repair", auth, json!({"what": "all"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(e["message"].as_str().unwrap().contains("\"tables\", \"blocks\" or \"scrub\""));
    let (status, started) =
        call(&st, Method::POST, "/v1/repair", auth, json!({"what": "blocks"})).await;
    assert_eq!((status, started["repair"]["state"].as_str()), (StatusCode::OK, Some("running")));
    // Launched without yielding: the first pass is still running (current-thread runtime).
    let (status, e) = call(&st, Method::POST, "/v1/repair", auth, json!({"what": "blocks"})).await;
    assert_eq!((status, e["code"].as_str()), (StatusCode::CONFLICT, Some("RepairRunning")));
    let resync = repair_done(&st, "blocks").await;
    assert_eq!(resync["launched_by"], "operator");
    let found = (&resync["checked"], &resync["repaired"], &resync["unrecoverable"]);
    assert_eq!(found, (&json!(2), &json!(0), &json!(1)), "{resync}");

    call(&st, Method::POST, "/v1/repair", auth, json!({"what": "scrub"})).await;
    let scrub = repair_done(&st, "scrub").await;
    let found = (&scrub["checked"], &scrub["unrecoverable"], &scrub["errors"]);
    assert_eq!(found, (&json!(1), &json!(1), &json!(0)), "{scrub}");
    assert!(scrub["finished_ms"].as_u64() >= scrub["started_ms"].as_u64());

    // A table sync of a node with no peers compares nothing, and says it finished.
    call(&st, Method::POST, "/v1/repair", auth, json!({"what": "tables"})).await;
    assert_eq!(repair_done(&st, "tables").await["errors"], 0);
    let (_, workers) = call(&st, Method::GET, "/v1/workers", auth, Value::Null).await;
    let scrub_worker = &workers["workers"][3];
    assert_eq!(scrub_worker["repair"]["unrecoverable"], 1, "{scrub_worker}");

    // The same findings in /metrics: the lost block waits for a resync that cannot fetch it.
    let (_, text) = call_text(&st, Method::GET, "/metrics", None, Value::Null).await;
    for line in [
        "hangar_block_resync_queue_length 1\n",
        "hangar_block_scrub_progress_ratio 1\n",
        "hangar_repair_items_unrecoverable_total{op=\"scrub\"} 1\n",
        "hangar_cluster_healthy 1\n",
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
    let value = |name: &str| -> u64 {
        let line =
            text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')));
        line.unwrap_or_else(|| panic!("no {name} in\n{text}")).parse().unwrap()
    };
    assert!(value("hangar_block_bytes_written_total") >= 2 * 5000);
    assert!(value("hangar_block_bytes_read_total") > 0, "scrub read the rotten file");
    // Ours, and maybe a periodic round since.
    assert!(value("hangar_repair_passes_total{op=\"tables\"}") >= 1);
}
