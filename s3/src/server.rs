//! Starting a production node: config → seam → engine node → object store → S3 listener.
//!
//! Startup is split in two (`start_engine`, then `bind_s3`) so that callers can prepare
//! state through the engine (`hangar dev` creates its bucket) before the S3 port answers:
//! a port that accepts connections means the server is ready.
//!
//! The admin API (`bind_admin`) serves the same engine on its own port.
//!
//! A node starts with the layout it persisted, else with none: it contacts its bootstrap
//! peers (or waits for `hangar node connect`), learns the layout by gossip, and serves S3
//! once the layout gives it a role (`gate`: until then S3 answers 503 naming the command
//! to run). The one exception is an upgrade: a metadata database from before live layouts
//! (no persisted layout history) gets the single-node layout it ran with, so it keeps
//! serving its data.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hangar_engine::block::BLOCKS_DIR;
use hangar_engine::keys::{KeyError, KeyStore};
use hangar_engine::layout::{ClusterLayout, LayoutError, NodeId, NodeRole};
use hangar_engine::node::{Node, NodeConfig, NodeError};
use hangar_engine::objects::lifecycle::LifecycleWorker;
use hangar_engine::objects::{ObjectError, ObjectStore};
use hangar_engine::rpc::RpcConfig;
use hangar_engine::seam::{Clock, Disk, Listener, Net};
use hangar_engine::table::Quorums;
use rand_core::{OsRng, RngCore};

use crate::access::EngineKeys;
use crate::admin::{AdminServer, AdminState, WorkerSettings};
use crate::backend::EngineBackend;
use crate::config::{Config, Secret};
use crate::metrics::S3Metrics;
use crate::metrics_events::EngineEvents;
use crate::runtime::{FsyncPolicy, TokioNet, production_seam};
use crate::s3api::web::{WebState, serve_web};
use crate::s3api::{S3State, WallClock, serve};

mod gate;
pub use gate::is_member;

/// The node's identity, relative to the metadata directory.
pub const NODE_ID_PATH: &str = "node_id";
/// Format marker of the node id file: `hangar-node-id-v1 <16 hex digits>\n`.
const NODE_ID_MAGIC: &str = "hangar-node-id-v1";
/// Zone of the single-node layout an upgraded node (and `hangar dev`) gets.
pub const SINGLE_NODE_ZONE: &str = "dc1";
/// Anti-entropy period: a full Merkle comparison per partition with every replica, once a
/// minute (layout changes have their own 5 s worker, and writes reach every replica).
const SYNC_INTERVAL_MS: u64 = 60_000;
/// Pause between attempts to import the config's access keys when the key table's replicas
/// cannot be reached at start — always the case for a node that joins a new cluster, whose
/// layout arrives later: its clients' keys should work within a second of `layout apply`.
/// A failed attempt without a layout costs nothing (no RPC).
const KEY_IMPORT_RETRY_MS: u64 = 1_000;

/// Why a node could not start.
#[derive(Debug)]
pub enum ServerError {
    CreateDir { path: PathBuf, source: io::Error },
    LegacyBlocks { from: PathBuf, to: PathBuf, problem: String },
    NodeId { path: PathBuf, problem: String },
    Layout(LayoutError),
    Node(NodeError),
    Bind { addr: SocketAddr, source: io::Error },
    BindAdmin { addr: SocketAddr, source: io::Error },
    BindWeb { addr: SocketAddr, source: io::Error },
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerError::CreateDir { path, source } => {
                write!(f, "cannot create directory {}: {source}", path.display())
            }
            ServerError::LegacyBlocks { from, to, problem } => write!(
                f,
                "block files of an earlier version are in {} but belong in data_dir, at {}: \
                 {problem}",
                from.display(),
                to.display()
            ),
            ServerError::NodeId { path, problem } => {
                write!(f, "node id file {}: {problem}", path.display())
            }
            ServerError::Layout(e) => write!(f, "cannot build the cluster layout: {e}"),
            ServerError::Node(e) => write!(f, "cannot start the node: {e}"),
            ServerError::Bind { addr, source } => {
                write!(f, "cannot listen for S3 on {addr}: {source}")
            }
            ServerError::BindAdmin { addr, source } => write!(
                f,
                "cannot listen for the admin API on {addr}: {source} (set [admin] api_bind_addr)"
            ),
            ServerError::BindWeb { addr, source } => write!(
                f,
                "cannot listen for the website endpoint on {addr}: {source} (set [s3_web] bind_addr)"
            ),
        }
    }
}

impl std::error::Error for ServerError {}

/// A started engine node, the object store and key table over it, and the S3 counters
/// its frontends share.
pub struct Engine {
    pub node: Arc<Node>,
    pub store: Arc<ObjectStore>,
    pub keys: Arc<KeyStore>,
    pub s3_metrics: Arc<S3Metrics>,
    pub workers: WorkerSettings,
    pub events: Arc<EngineEvents>,
    /// The configured replication factor: the first layout's (every node must agree).
    pub replication_factor: usize,
}

/// Opens the node's storage and starts its RPC server; the node learns its layout from
/// its peers or from the operator (`hangar server`).
pub async fn start_engine(config: &Config) -> Result<Engine, ServerError> {
    start(config, false).await
}

/// As `start_engine`, for a node that is a cluster on its own (`hangar dev`, tests): at
/// first start its layout holds it alone, in zone "dc1".
pub async fn start_single_node(config: &Config) -> Result<Engine, ServerError> {
    start(config, true).await
}

async fn start(config: &Config, single_node: bool) -> Result<Engine, ServerError> {
    for dir in [&config.metadata_dir, &config.data_dir] {
        std::fs::create_dir_all(dir)
            .map_err(|source| ServerError::CreateDir { path: dir.clone(), source })?;
    }
    move_legacy_blocks(&config.metadata_dir, &config.data_dir)?;
    let fsync = FsyncPolicy { metadata: config.metadata_fsync, data: config.data_fsync };
    if !(fsync.metadata && fsync.data) {
        tracing::warn!(
            metadata_fsync = fsync.metadata,
            data_fsync = fsync.data,
            "fsync is off: a machine crash may lose or tear recently acknowledged writes"
        );
    }
    let mut seam = production_seam(&config.metadata_dir, &config.data_dir, fsync);
    // Worker passes and served RPCs, counted for /metrics and /v1/workers.
    let events = Arc::new(EngineEvents::new(seam.trace.clone(), seam.clock.clone()));
    seam.trace = events.clone();
    // Production runs are not replayed, but a logged seed lets a surprising one be.
    tracing::debug!(rng_seed = seam.rng_seed, "seam ready");
    let id = load_or_create_node_id(seam.disk.as_ref(), &config.metadata_dir)?;
    let rf = config.replication_factor;
    let layout = match single_node {
        true => single_node_layout(id, rf)?,
        false => initial_layout(config, id)?,
    };
    let workers = WorkerSettings {
        sync_interval_ms: SYNC_INTERVAL_MS,
        gc: Default::default(),
        repair: Default::default(),
    };
    let node_config = NodeConfig {
        id,
        rpc_bind_addr: config.rpc_bind_addr.to_string(),
        public_addr: config.rpc_public_addr.clone(),
        peers: config.bootstrap_peers.clone(),
        layout,
        rpc_secret: config.rpc_secret.0.clone(),
        quorums: Quorums::for_mode(config.consistency_mode, rf),
        rpc: RpcConfig::default(),
        sync_interval_ms: workers.sync_interval_ms,
        gc: workers.gc,
        repair: workers.repair,
        metadata_cache_bytes: config.metadata_cache_mib << 20,
    };
    let node = Node::start(seam, node_config).await.map_err(ServerError::Node)?;
    if let Some(layout) = node.current_layout()
        && layout.replication_factor() != rf
    {
        tracing::error!(
            configured = rf,
            layout = layout.replication_factor(),
            "replication_factor differs from the cluster layout's: quorums will be wrong; \
             set the same value on every node"
        );
    }
    let store = Arc::new(ObjectStore::new(node.clone()));
    // Bucket lifecycle rules (expiration, aborting old uploads); each node takes the buckets
    // it is the first replica of.
    let lifecycle_interval_ms = config.lifecycle_interval_secs.saturating_mul(1000);
    tokio::spawn(LifecycleWorker::new(store.clone(), lifecycle_interval_ms).run());
    let keys = Arc::new(KeyStore::new(node.clone()));
    let config_keys = config.s3_api.access_keys.clone();
    if let Err(e) = import_config_keys(&keys, &store, &config_keys).await {
        // A node joining a cluster may not reach the key table's replicas yet; it must
        // still start (and learn the layout), so the import is retried until it lands.
        tracing::warn!(error = %e, "cannot import the config's access keys yet; retrying");
        tokio::spawn(retry_import(keys.clone(), store.clone(), config_keys));
    }
    let s3_metrics = Arc::new(S3Metrics::default());
    Ok(Engine { node, store, keys, s3_metrics, workers, events, replication_factor: rf })
}

/// Earlier builds wrote block files under `metadata_dir/blocks` instead of
/// `data_dir/blocks`. Moves them where they belong (one rename: same file system), or
/// refuses to start with what to do: starting without them would serve reads from the
/// other replicas only and have resync fetch every block again.
fn move_legacy_blocks(metadata_dir: &Path, data_dir: &Path) -> Result<(), ServerError> {
    let (from, to) = (metadata_dir.join(BLOCKS_DIR), data_dir.join(BLOCKS_DIR));
    if from == to || !from.is_dir() {
        return Ok(());
    }
    let refuse =
        |problem: String| ServerError::LegacyBlocks { from: from.clone(), to: to.clone(), problem };
    if to.exists() {
        // An empty directory (a start that created it, nothing written yet) is no conflict.
        if std::fs::remove_dir(&to).is_err() {
            return Err(refuse(format!(
                "{} exists too; move the files of the first into the second (same \
                 sub-directories), remove the first, and start again",
                to.display()
            )));
        }
    }
    std::fs::rename(&from, &to).map_err(|e| {
        refuse(format!("cannot move it ({e}); move it by hand (mv) and start again"))
    })?;
    for dir in [metadata_dir, data_dir] {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| refuse(format!("moved, but cannot sync {}: {e}", dir.display())))?;
    }
    tracing::info!(from = %from.display(), to = %to.display(), "moved block files to data_dir");
    Ok(())
}

/// Imports `[[s3_api.access_keys]]` into the key table. Idempotent: a key already there
/// is left alone (grants and settings changed since stay), so a key first imported gets
/// `allow_create_bucket` once. The table is the truth: a config key that was deleted, or
/// whose id the table holds with another secret, is skipped with a warning.
///
/// Upgrade: before the key table, every config key could use every bucket. When the table
/// has never held a key, the keys imported get read, write and owner on every existing
/// bucket, so an upgraded node keeps serving what it served. (A fresh cluster has no
/// bucket yet; later imports grant nothing.)
async fn import_config_keys(
    keys: &KeyStore,
    store: &ObjectStore,
    config_keys: &BTreeMap<String, Secret>,
) -> Result<(), KeyError> {
    let upgrading = !config_keys.is_empty() && keys.never_written().await?;
    let unavailable = |e: ObjectError| KeyError::Unavailable { reason: e.to_string() };
    let existing =
        if upgrading { store.list_buckets().await.map_err(unavailable)? } else { Vec::new() };
    let existing: Vec<String> = existing.into_iter().map(|b| b.name).collect();
    for (id, secret) in config_keys {
        // The grants go in the same write as the key: a node whose import wrote the key
        // but failed before granting would, on retry, find the key and never grant it.
        match keys.import_granting(id, &secret.0, "from config", true, &existing).await {
            Ok((_, false)) => {}
            Ok((_, true)) => {
                let buckets = existing.len();
                tracing::info!(key = %id, buckets, "imported an access key from the config");
            }
            Err(e @ (KeyError::Deleted { .. } | KeyError::AlreadyExists { .. })) => {
                tracing::warn!(key = %id, "config access key skipped: {e}");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Imports the config's access keys now (`hangar dev --nodes`, once its layout exists).
pub async fn import_keys(engine: &Engine, config: &Config) -> Result<(), KeyError> {
    import_config_keys(&engine.keys, &engine.store, &config.s3_api.access_keys).await
}

async fn retry_import(
    keys: Arc<KeyStore>,
    store: Arc<ObjectStore>,
    config_keys: BTreeMap<String, Secret>,
) {
    loop {
        tokio::time::sleep(Duration::from_millis(KEY_IMPORT_RETRY_MS)).await;
        match import_config_keys(&keys, &store, &config_keys).await {
            Ok(()) => return tracing::info!("imported the config's access keys"),
            Err(e) => tracing::debug!(error = %e, "config access keys: import failed again"),
        }
    }
}

/// Binds the admin API of `config` over `engine`.
pub async fn bind_admin(engine: &Engine, config: &Config) -> Result<AdminServer, ServerError> {
    let addr = config.admin.api_bind_addr;
    let state = Arc::new(AdminState {
        node: engine.node.clone(),
        store: engine.store.clone(),
        keys: engine.keys.clone(),
        admin_token: config.admin.admin_token.as_ref().map(|t| t.0.clone()),
        metrics_token: config.admin.metrics_token.as_ref().map(|t| t.0.clone()),
        s3_metrics: engine.s3_metrics.clone(),
        workers: engine.workers,
        events: engine.events.clone(),
        first_layout: std::sync::Mutex::new(
            ClusterLayout::new(engine.replication_factor).map_err(ServerError::Layout)?,
        ),
        disk_dirs: vec![
            ("data", config.data_dir.clone()),
            ("metadata", config.metadata_dir.clone()),
        ],
    });
    if state.admin_token.is_none() {
        tracing::warn!("no [admin] admin_token: the admin API refuses every request");
    }
    AdminServer::bind(addr, state).await.map_err(|source| ServerError::BindAdmin { addr, source })
}

/// The layout a node starts with before merging what it persisted: none (version 0, to be
/// learnt or assigned), except for a database from before live layouts (see the module doc).
fn initial_layout(config: &Config, id: NodeId) -> Result<ClusterLayout, ServerError> {
    use hangar_engine::layout::manager::LAYOUT_HISTORY_PATH;
    use hangar_engine::node::METADATA_DB_PATH;
    let root = &config.metadata_dir;
    let upgrading =
        root.join(METADATA_DB_PATH).exists() && !root.join(LAYOUT_HISTORY_PATH).exists();
    if upgrading {
        tracing::info!("metadata from before live layouts: keeping the single-node layout");
        return single_node_layout(id, 1);
    }
    ClusterLayout::new(config.replication_factor).map_err(ServerError::Layout)
}

/// This node alone, in zone "dc1" (an upgraded node, and `hangar dev`).
pub fn single_node_layout(id: NodeId, rf: usize) -> Result<ClusterLayout, ServerError> {
    let mut layout = ClusterLayout::new(rf).map_err(ServerError::Layout)?;
    let role = NodeRole { zone: SINGLE_NODE_ZONE.into(), capacity: 1, tags: Vec::new() };
    layout.stage_assign(id, role).map_err(ServerError::Layout)?;
    layout.apply_staged(1).map_err(ServerError::Layout)?;
    Ok(layout)
}

/// Reads the node id, or draws one from the OS at first start. The id must survive
/// restarts: it names this node's replicas in the layout.
fn load_or_create_node_id(disk: &dyn Disk, metadata_dir: &Path) -> Result<NodeId, ServerError> {
    let id_err =
        |problem: String| ServerError::NodeId { path: metadata_dir.join(NODE_ID_PATH), problem };
    match disk.read(NODE_ID_PATH) {
        Ok(bytes) => parse_node_id(&bytes)
            .ok_or_else(|| id_err(format!("expected \"{NODE_ID_MAGIC} <16 hex digits>\""))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // Zero is left unused so that an all-zero id always means "uninitialised".
            let id = NodeId(OsRng.next_u64().max(1));
            let text = format!("{NODE_ID_MAGIC} {id}\n");
            disk.write_durable(NODE_ID_PATH, text.as_bytes())
                .map_err(|e| id_err(format!("cannot write: {e}")))?;
            tracing::info!(node = %id, "created a new node id");
            Ok(id)
        }
        Err(e) => Err(id_err(format!("cannot read: {e}"))),
    }
}

fn parse_node_id(bytes: &[u8]) -> Option<NodeId> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (magic, hex) = text.trim_end().split_once(' ')?;
    if magic != NODE_ID_MAGIC || hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok().filter(|&id| id != 0).map(NodeId)
}

/// A bound S3 listener, ready to serve.
pub struct S3Server {
    listener: Box<dyn Listener>,
    addr: SocketAddr,
    state: Arc<S3State>,
}

/// Binds the S3 API port of `config` over `engine`'s object store, through the seam's
/// networking (`TokioNet`, which sets TCP_NODELAY on every accepted socket): the S3
/// frontend only sees the seam's `Listener`, so the simulator can serve it over turmoil.
pub async fn bind_s3(engine: &Engine, config: &Config) -> Result<S3Server, ServerError> {
    let addr = config.s3_api.api_bind_addr;
    let listener = TokioNet
        .listen(&addr.to_string())
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    let state = Arc::new(s3_state(engine, config));
    // Until the layout gives this node a role, S3 requests get a 503 saying so.
    let listener = gate::MemberGate::new(listener, engine.node.clone());
    Ok(S3Server { listener: Box::new(listener), addr, state })
}

/// The S3 frontend's state over `engine`'s object store.
fn s3_state(engine: &Engine, config: &Config) -> S3State {
    let clock = engine.node.seam.clock.clone();
    let wall: WallClock = Arc::new(move || Clock::now_ms(clock.as_ref()));
    let backend = Arc::new(EngineBackend::new(engine.store.clone()));
    let region = config.s3_api.s3_region.clone();
    S3State::new(backend, region, Default::default(), wall)
        .with_keys(Arc::new(EngineKeys(engine.keys.clone())))
        .with_root_domain(config.s3_api.root_domain.as_deref())
        .with_observer(engine.s3_metrics.clone())
}

/// A bound static website listener (`[s3_web]`), ready to serve.
pub struct WebServer {
    listener: Box<dyn Listener>,
    addr: SocketAddr,
    state: Arc<WebState>,
}

/// Binds the website endpoint of `config` over `engine`, if it has an `[s3_web]` section.
pub async fn bind_web(engine: &Engine, config: &Config) -> Result<Option<WebServer>, ServerError> {
    let Some(web) = &config.s3_web else { return Ok(None) };
    let addr = web.bind_addr;
    let listener = TokioNet
        .listen(&addr.to_string())
        .await
        .map_err(|source| ServerError::BindWeb { addr, source })?;
    let s3 = Arc::new(s3_state(engine, config));
    let state = Arc::new(WebState::new(s3, web.root_domain.as_deref()));
    let listener = gate::MemberGate::new(listener, engine.node.clone());
    Ok(Some(WebServer { listener: Box::new(listener), addr, state }))
}

impl WebServer {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until the runtime stops (spawn it next to the S3 server).
    pub async fn serve(self) {
        tracing::info!(addr = %self.addr, "website endpoint listening");
        serve_web(self.listener, self.state).await
    }
}

impl S3Server {
    /// The configured bind address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until Ctrl-C or SIGTERM. Requests in flight are cut off when the runtime
    /// stops; that is safe because every metadata write is a redb transaction that either
    /// committed or did not.
    pub async fn run_until_shutdown(self) -> io::Result<()> {
        tracing::info!(addr = %self.addr, "S3 API listening");
        tokio::select! {
            () = serve(self.listener, self.state) => {}
            signal = shutdown_signal() => {
                tracing::info!(signal = signal?, "shutting down");
            }
        }
        Ok(())
    }
}

/// Resolves on the first Ctrl-C (SIGINT) or SIGTERM, naming it.
async fn shutdown_signal() -> io::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => Ok("SIGTERM"),
        _ = int.recv() => Ok("SIGINT"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hangar_engine::keys::BucketPerms;
    use hangar_engine::objects::ObjectMeta;

    #[test]
    fn node_id_file_round_trips_and_rejects_garbage() {
        let id = NodeId(0x0123_4567_89ab_cdef);
        let text = format!("{NODE_ID_MAGIC} {id}\n");
        assert_eq!(parse_node_id(text.as_bytes()), Some(id));
        assert_eq!(parse_node_id(b"0123456789abcdef\n"), None);
        assert_eq!(parse_node_id(b"hangar-node-id-v1 0000000000000000\n"), None);
        assert_eq!(parse_node_id(b"hangar-node-id-v2 0123456789abcdef\n"), None);
    }

    /// An upgraded node had buckets that every config key could use; its first import into
    /// the (empty) key table keeps it that way. Later imports grant nothing.
    #[tokio::test]
    async fn the_first_import_grants_config_keys_the_buckets_that_exist() {
        let dir = std::env::temp_dir().join(format!("hangar-import-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let text = format!(
            "metadata_dir = \"meta\"\ndata_dir = \"data\"\nrpc_bind_addr = \"127.0.0.1:0\"\n\
             rpc_secret = \"{}\"\n",
            "ab".repeat(32)
        );
        let config = Config::parse(&text, &dir.join("hangar.toml"), &|_| None).unwrap();
        let engine = start_single_node(&config).await.unwrap();
        engine.store.create_bucket("old").await.unwrap();
        let secret = || Secret("upgrade-secret-0000001".into());
        let first: BTreeMap<String, Secret> = [("GKupgrade00000000001".into(), secret())].into();
        import_config_keys(&engine.keys, &engine.store, &first).await.unwrap();
        let key = engine.keys.get_live("GKupgrade00000000001").await.unwrap();
        assert_eq!(key.perms("old"), BucketPerms::ALL);
        assert!(key.allow_create_bucket);
        let later: BTreeMap<String, Secret> = [("GKupgrade00000000002".into(), secret())].into();
        import_config_keys(&engine.keys, &engine.store, &later).await.unwrap();
        let key = engine.keys.get_live("GKupgrade00000000002").await.unwrap();
        assert_eq!(key.perms("old"), BucketPerms::NONE, "only the upgrade grants buckets");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hangar-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn count_files(dir: &Path) -> usize {
        let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
        entries
            .map(|e| e.unwrap().path())
            .map(|p| if p.is_dir() { count_files(&p) } else { 1 })
            .sum()
    }

    /// docs/configuration.md: `data_dir` holds the object data blocks, `metadata_dir` the
    /// database. A block landing on the metadata disk would fill the small fast disk.
    #[tokio::test]
    async fn block_files_go_to_data_dir_and_metadata_to_metadata_dir() {
        let dir = scratch("data-dir");
        let text = format!(
            "metadata_dir = \"meta\"\ndata_dir = \"data\"\nrpc_bind_addr = \"127.0.0.1:0\"\n\
             rpc_secret = \"{}\"\n",
            "ab".repeat(32)
        );
        let config = Config::parse(&text, &dir.join("hangar.toml"), &|_| None).unwrap();
        let engine = start_single_node(&config).await.unwrap();
        engine.store.create_bucket("b").await.unwrap();
        let meta = ObjectMeta { etag: "e".into(), ..Default::default() };
        let body = vec![7u8; 64 * 1024];
        engine.store.put_object("b", "k", meta, body).await.unwrap();
        assert!(count_files(&dir.join("data").join(BLOCKS_DIR)) >= 1);
        assert!(!dir.join("meta").join(BLOCKS_DIR).exists());
        assert!(count_files(&dir.join("meta")) >= 1, "the database stays in metadata_dir");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn block_files_of_earlier_builds_move_from_metadata_dir_to_data_dir() {
        let dir = scratch("legacy-blocks");
        let (meta, data) = (dir.join("meta"), dir.join("data"));
        let legacy = meta.join(BLOCKS_DIR).join("ab").join("cd");
        std::fs::create_dir_all(&legacy).unwrap();
        std::fs::write(legacy.join("abcd"), b"block").unwrap();
        // A start that found nothing to move yet may have created an empty data/blocks.
        std::fs::create_dir_all(data.join(BLOCKS_DIR)).unwrap();
        move_legacy_blocks(&meta, &data).unwrap();
        assert_eq!(std::fs::read(data.join("blocks/ab/cd/abcd")).unwrap(), b"block");
        assert!(!meta.join(BLOCKS_DIR).exists());
        // Idempotent: nothing left to move.
        move_legacy_blocks(&meta, &data).unwrap();
        // Both holding blocks: refuse, saying what to do, and touch nothing.
        std::fs::create_dir_all(&legacy).unwrap();
        std::fs::write(legacy.join("ef01"), b"other").unwrap();
        let err = move_legacy_blocks(&meta, &data).unwrap_err().to_string();
        assert!(err.contains("move the files"), "{err}");
        assert!(legacy.join("ef01").is_file() && data.join("blocks/ab/cd/abcd").is_file());
        // One directory for both: nothing to move.
        move_legacy_blocks(&meta, &meta).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn single_node_layout_places_every_partition_here() {
        let layout = single_node_layout(NodeId(7), 1).unwrap();
        assert_eq!(layout.version(), 1);
        assert_eq!(layout.nodes_of(0), &[NodeId(7)]);
        assert_eq!(layout.nodes_of(255), &[NodeId(7)]);
    }
}
