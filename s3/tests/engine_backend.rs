//! The S3 layer's backend over a real single-node engine on real files: the error mapping
//! the HTTP layer relies on, and data that outlives a full stop of the runtime (what a
//! process restart does to the node: every task dropped, the database closed and reopened).

use std::path::{Path, PathBuf};

use bytes::Bytes;
use hangar_engine::objects::body::VecSource;
use hangar_s3::backend::EngineBackend;
use hangar_s3::config::Config;
use hangar_s3::s3api::backend::ObjectBody;
use hangar_s3::s3api::{BackendError, ObjectBackend, ObjectInfo, ObjectMeta, Versioning};
use hangar_s3::server::start_single_node;

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config(dir: &Path) -> Config {
    let text = format!(
        "metadata_dir = \"meta\"\ndata_dir = \"data\"\nrpc_bind_addr = \"127.0.0.1:0\"\n\
         rpc_secret = \"{}\"\n[[s3_api.access_keys]]\nid = \"GK0123456789abcdef\"\n\
         secret = \"0123456789abcdef0123\"\n",
        "ab".repeat(32)
    );
    Config::parse(&text, &dir.join("hangar.toml"), &|_| None).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap()
}

fn meta() -> ObjectMeta {
    ObjectMeta {
        content_type: "text/plain".into(),
        user_metadata: [("colour".to_string(), "blue".to_string())].into(),
    }
}

/// Stores `data` with the ETag `etag` (the body source names the ETag).
async fn put(backend: &EngineBackend, key: (&str, &str), data: &[u8], etag: &str) -> ObjectInfo {
    let mut body = VecSource::new(data.to_vec(), etag.into());
    backend.put_object(key.0, key.1, meta(), &mut body).await.unwrap()
}

async fn read_all(mut body: Box<dyn ObjectBody>) -> Bytes {
    let mut out = Vec::new();
    while let Some(chunk) = body.next_chunk().await.unwrap() {
        out.extend_from_slice(&chunk);
    }
    Bytes::from(out)
}

#[test]
fn engine_backend_maps_errors_and_keeps_data_across_restart() {
    let dir = TempDir(std::env::temp_dir().join(format!("hangar-eb-{}", std::process::id())));
    let config = config(&dir.0);
    runtime().block_on(async {
        let engine = start_single_node(&config).await.unwrap();
        let backend = EngineBackend::new(engine.store.clone());
        backend.create_bucket("b").await.unwrap();
        let again = backend.create_bucket("b").await;
        assert_eq!(again, Err(BackendError::BucketAlreadyOwnedByYou));
        assert_eq!(backend.head_bucket("nope").await, Err(BackendError::NoSuchBucket));
        let info = put(&backend, ("b", "k1"), b"hello", "e1").await;
        assert_eq!((info.size_bytes, info.etag.as_str()), (5, "e1"));
        put(&backend, ("b", "k2"), b"", "e2").await;
        assert_eq!(backend.head_object("b", "k0", None).await, Err(BackendError::NoSuchKey));
        // Deleting an absent key succeeds: S3 answers 204 either way.
        backend.delete_object("b", "k0", None).await.unwrap();
        assert_eq!(backend.delete_bucket("b").await, Err(BackendError::BucketNotEmpty));
        let listed = backend.list_objects("b", "k", "k1", 10).await.unwrap();
        assert_eq!(listed.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(), ["k2"]);
        versions_and_delete_markers(&backend).await;
    });
    // A new runtime is a restart: the first one's tasks, and with them the node and its
    // database, are gone.
    runtime().block_on(async {
        let engine = start_single_node(&config).await.unwrap();
        let backend = EngineBackend::new(engine.store.clone());
        let (info, body) = backend.get_object("b", "k1", None).await.unwrap();
        assert_eq!(read_all(body).await, Bytes::from_static(b"hello"));
        assert_eq!(info.content_type, "text/plain");
        assert_eq!(info.user_metadata.get("colour").map(String::as_str), Some("blue"));
        let buckets = backend.list_buckets().await.unwrap();
        assert_eq!(buckets.iter().map(|b| b.name.as_str()).collect::<Vec<_>>(), ["b", "v"]);
        assert_eq!(backend.get_bucket_versioning("v").await, Ok(Versioning::Suspended));
    });
}

/// The engine reports a delete marker as NoSuchKey / NoSuchVersion; the backend must tell
/// the S3 layer it was a marker (for `x-amz-delete-marker`), and which one.
async fn versions_and_delete_markers(backend: &EngineBackend) {
    backend.create_bucket("v").await.unwrap();
    assert_eq!(backend.get_bucket_versioning("v").await, Ok(Versioning::Unversioned));
    backend.put_bucket_versioning("v", Versioning::Enabled).await.unwrap();
    let one = put(backend, ("v", "k"), b"1", "e1").await;
    let two = put(backend, ("v", "k"), b"2", "e2").await;
    assert!(one.version_id < two.version_id);
    let (info, body) = backend.get_object("v", "k", Some(&one.version_id)).await.unwrap();
    let body = read_all(body).await;
    assert_eq!((info.version_id, body), (one.version_id.clone(), Bytes::from_static(b"1")));
    let marker = backend.delete_object("v", "k", None).await.unwrap();
    assert!(marker.delete_marker);
    let deleted = Err(BackendError::DeleteMarker { version_id: marker.version_id.clone() });
    assert_eq!(backend.head_object("v", "k", None).await, deleted);
    assert_eq!(backend.head_object("v", "k", Some(&marker.version_id)).await, deleted);
    let missing = backend.head_object("v", "k", Some("0000000000000001000000000000000a")).await;
    assert_eq!(missing, Err(BackendError::NoSuchVersion));
    let listed = backend.list_object_versions("v", "", "", 10).await.unwrap();
    let latest: Vec<_> = listed.iter().map(|v| (v.object.is_some(), v.is_latest)).collect();
    assert_eq!(latest, [(false, true), (true, false), (true, false)]);
    // Removing the marker by id brings the newest version back.
    let removed = backend.delete_object("v", "k", Some(&marker.version_id)).await.unwrap();
    assert!(removed.delete_marker);
    assert_eq!(backend.head_object("v", "k", None).await.unwrap().version_id, two.version_id);
    backend.put_bucket_versioning("v", Versioning::Suspended).await.unwrap();
}
