//! A Hangar node: its metadata database, its tables, its RPC server, its background workers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand_core::RngCore;
use redb::{Database, ReadableDatabase, TableDefinition};

use crate::block::BlockManager;
use crate::block::repair::{BlockRepair, RepairConfig, RepairKind, RepairProgress};
use crate::crdt::Lww;
use crate::keys::KeySchema;
use crate::kv::{KvSchema, Stamper, kv_key};
use crate::layout::history::LayoutHistory;
use crate::layout::manager::{LayoutManager, LayoutManagerError};
use crate::layout::worker::LayoutWorker;
use crate::layout::{ClusterLayout, LayoutDiff, NodeId, NodeRole};
use crate::objects::alias::AliasSchema;
use crate::objects::block_ref::BlockRefSchema;
use crate::objects::bucket_config::BucketConfigSchema;
use crate::objects::gc::{BlockGc, GcConfig};
use crate::objects::multipart::MpuSchema;
use crate::objects::usage::UsageSchema;
use crate::objects::version_blocks::VersionBlocksSchema;
use crate::objects::{BucketSchema, ObjectSchema};
use crate::rpc::message::LayoutRequest;
use crate::rpc::{
    self, Handler, KvRequest, RemoteError, Request, Response, RpcClient, RpcConfig, TableRequest,
};
use crate::seam::{BoxFuture, Seam, open_database_with_cache};
use crate::storage_health;
use crate::table::replicated::{read_partition, serve_local};
use crate::table::tombstones::TombstoneGc;
use crate::table::{LocalTable, Quorums, Replicated, Store, SyncGate, SyncWorker};

/// Where the node's metadata database lives, relative to its data root.
pub const METADATA_DB_PATH: &str = "meta/hangar.redb";
/// Longest period of the layout worker (gossip and transition steps): it runs with
/// anti-entropy, but never less often than this, so a layout change spreads and completes
/// in seconds even where anti-entropy runs once a minute. A round costs one small RPC per
/// peer while nothing changes.
pub const LAYOUT_INTERVAL_MS_MAX: u64 = 5_000;
/// Retry period of a blank node's full sync while some peer does not answer: short, since
/// the node refuses reads until it succeeds.
pub const BLANK_SYNC_RETRY_MS: u64 = 500;

/// A resync interval this long or longer counts as resync switched off: the blank sync then
/// skips its block pass too.
pub const RESYNC_OFF_INTERVAL_MS: u64 = 24 * 3_600_000;

/// Small per-node facts kept in the metadata database itself, so that they vanish with it.
const NODE_STATE: TableDefinition<&str, u64> = TableDefinition::new("node_state");
/// Present (value 1) once this database finished its first full sync. Its *absence* is the
/// "needs full sync" marker: a database created fresh lacks it, and a crash at any point
/// before the sync completed leaves it lacking (docs/data-model.md, "Blank nodes").
const FULL_SYNC_DONE: &str = "full_sync_done";

#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub id: NodeId,
    pub rpc_bind_addr: String,
    /// The address other nodes reach this one at, gossiped with the layout. `None`:
    /// `rpc_bind_addr`, unless that is a wildcard (0.0.0.0, [::]), which is not advertised.
    pub public_addr: Option<String>,
    /// RPC addresses of peers known at start: every other node, or just one or more
    /// bootstrap peers — the others' addresses are learnt from the layout gossip.
    pub peers: BTreeMap<NodeId, String>,
    /// The initial layout: a full applied layout, or `ClusterLayout::new(rf)` (version 0)
    /// for a node that joins and learns the layout from its peers. A newer layout persisted
    /// by an earlier run wins over it.
    pub layout: ClusterLayout,
    pub rpc_secret: String,
    pub quorums: Quorums,
    pub rpc: RpcConfig,
    /// Period of the anti-entropy worker (jittered by up to a quarter).
    pub sync_interval_ms: u64,
    /// Block garbage collection timings.
    pub gc: GcConfig,
    /// Block resync and scrub timings.
    pub repair: RepairConfig,
    /// The most memory the metadata database keeps of its pages
    /// (`seam::DEFAULT_METADATA_CACHE_BYTES` unless configured).
    pub metadata_cache_bytes: usize,
}

/// Why a node could not start.
#[derive(Debug)]
pub enum NodeError {
    Database { path: String, reason: String },
    Bind { addr: String, reason: String },
    Layout(LayoutManagerError),
}

impl std::fmt::Display for NodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeError::Database { path, reason } => {
                write!(f, "cannot open metadata database {path}: {reason}")
            }
            NodeError::Bind { addr, reason } => write!(f, "cannot listen on {addr}: {reason}"),
            NodeError::Layout(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for NodeError {}

pub struct Node {
    pub id: NodeId,
    pub seam: Seam,
    pub rpc: Arc<RpcClient>,
    /// The layout history and the replica sets it gives (see `layout::manager`).
    pub layouts: Arc<LayoutManager>,
    pub quorums: Quorums,
    pub kv: Replicated<KvSchema>,
    pub buckets: Replicated<BucketSchema>,
    /// Per-bucket settings such as CORS (`objects::bucket_config`).
    pub bucket_config: Replicated<BucketConfigSchema>,
    /// Bucket quotas and per-node usage tallies (`objects::usage`).
    pub bucket_usage: Replicated<UsageSchema>,
    /// Other names of buckets (`objects::alias`).
    pub bucket_aliases: Replicated<AliasSchema>,
    pub objects: Replicated<ObjectSchema>,
    pub block_refs: Replicated<BlockRefSchema>,
    /// Block lists too long for the object entry (`objects::version_blocks`).
    pub block_lists: Replicated<VersionBlocksSchema>,
    pub mpu: Replicated<MpuSchema>,
    /// Access keys and their bucket permissions (`keys`).
    pub keys: Replicated<KeySchema>,
    pub blocks: Arc<BlockManager>,
    /// Progress of table sync, resync and scrub passes (`block::repair::progress`).
    pub repair: Arc<RepairProgress>,
    /// This node's acceptor for conditional writes (`cas`), local state only.
    pub cas: crate::cas::Acceptor,
    pub(crate) tables: BTreeMap<&'static str, Arc<dyn LocalTable>>,
    stamper: Stamper,
    /// Set while this node's replica started blank and has not finished its full sync.
    sync_gate: SyncGate,
    /// Test-only weakening switched on (`unsafe_serve_reads_while_syncing`).
    sync_guard_off: AtomicBool,
    db: Arc<Database>,
    /// Set once the metadata database can no longer commit (`storage_health`).
    storage_failed: tokio::sync::watch::Receiver<Option<String>>,
}

impl Node {
    /// Opens the node's storage, starts its RPC server and its anti-entropy worker.
    pub async fn start(seam: Seam, config: NodeConfig) -> Result<Arc<Node>, NodeError> {
        let db_err = |e: &dyn std::fmt::Display| NodeError::Database {
            path: METADATA_DB_PATH.into(),
            reason: e.to_string(),
        };
        let db = open_database_with_cache(
            seam.disk.as_ref(),
            METADATA_DB_PATH,
            config.metadata_cache_bytes,
        )
        .map_err(|e| db_err(&e))?;
        let db = Arc::new(db);
        let (failed, storage_failed) = tokio::sync::watch::channel(None);
        let sync_gate = SyncGate::default();
        sync_gate.set_syncing(!full_sync_done(&db).map_err(|e| db_err(&e))?);
        let kv_store = Arc::new(Store::<KvSchema>::open(db.clone()).map_err(|e| db_err(&e))?);
        let bucket_store =
            Arc::new(Store::<BucketSchema>::open(db.clone()).map_err(|e| db_err(&e))?);
        let object_store =
            Arc::new(Store::<ObjectSchema>::open(db.clone()).map_err(|e| db_err(&e))?);
        let config_store =
            Arc::new(Store::<BucketConfigSchema>::open(db.clone()).map_err(|e| db_err(&e))?);
        let usage_store = Arc::new(Store::<UsageSchema>::open(db.clone()).map_err(|e| db_err(&e))?);
        let alias_store = Arc::new(Store::<AliasSchema>::open(db.clone()).map_err(|e| db_err(&e))?);
        let ref_store =
            Arc::new(Store::<BlockRefSchema>::open(db.clone()).map_err(|e| db_err(&e))?);
        let list_store =
            Arc::new(Store::<VersionBlocksSchema>::open(db.clone()).map_err(|e| db_err(&e))?);
        let mpu_store = Arc::new(Store::<MpuSchema>::open(db.clone()).map_err(|e| db_err(&e))?);
        // The mpu table's upgrade step: finished uploads from before finish times get one.
        crate::objects::multipart::stamp_legacy_finishes(&mpu_store, seam.clock.now_ms())
            .map_err(|e| db_err(&e))?;
        let key_store = Arc::new(Store::<KeySchema>::open(db.clone()).map_err(|e| db_err(&e))?);
        let cas = crate::cas::Acceptor::open(db.clone()).map_err(|e| db_err(&e))?;
        let rpc = RpcClient::new(config.id, seam.clone(), &config.rpc_secret, config.rpc.clone());
        for (peer, addr) in &config.peers {
            rpc.set_peer_addr(*peer, addr.clone());
        }
        let layout = LayoutManager::open(config.id, seam.clone(), &config.layout)
            .map_err(NodeError::Layout)?;
        let layout = Arc::new(layout);
        if let Some(addr) = advertised_addr(&config) {
            let stamp = seam.clock.now_ms();
            layout
                .update(|h| {
                    h.set_addr(config.id, stamp, addr);
                    Ok(())
                })
                .map_err(NodeError::Layout)?;
        }
        let (id, q, g) = (config.id, config.quorums, sync_gate.clone());
        let kv = Replicated::new(kv_store.clone(), id, rpc.clone(), layout.clone(), q, g.clone());
        let buckets =
            Replicated::new(bucket_store.clone(), id, rpc.clone(), layout.clone(), q, g.clone());
        let objects =
            Replicated::new(object_store.clone(), id, rpc.clone(), layout.clone(), q, g.clone());
        let bucket_config =
            Replicated::new(config_store.clone(), id, rpc.clone(), layout.clone(), q, g.clone());
        let bucket_usage =
            Replicated::new(usage_store.clone(), id, rpc.clone(), layout.clone(), q, g.clone());
        let bucket_aliases =
            Replicated::new(alias_store.clone(), id, rpc.clone(), layout.clone(), q, g.clone());
        let block_refs =
            Replicated::new(ref_store.clone(), id, rpc.clone(), layout.clone(), q, g.clone());
        let block_lists =
            Replicated::new(list_store.clone(), id, rpc.clone(), layout.clone(), q, g.clone());
        let mpu = Replicated::new(mpu_store.clone(), id, rpc.clone(), layout.clone(), q, g.clone());
        let keys = Replicated::new(key_store.clone(), id, rpc.clone(), layout.clone(), q, g);
        let mut tables: BTreeMap<&'static str, Arc<dyn LocalTable>> = BTreeMap::new();
        tables.insert(kv_store.name(), kv_store);
        tables.insert(bucket_store.name(), bucket_store);
        tables.insert(object_store.name(), object_store);
        tables.insert(config_store.name(), config_store);
        tables.insert(usage_store.name(), usage_store);
        tables.insert(alias_store.name(), alias_store);
        tables.insert(ref_store.name(), ref_store);
        tables.insert(list_store.name(), list_store);
        tables.insert(mpu_store.name(), mpu_store);
        tables.insert(key_store.name(), key_store);
        let blocks = Arc::new(BlockManager::new(
            config.id,
            seam.clone(),
            rpc.clone(),
            layout.clone(),
            config.quorums.write,
        ));
        let stamper = Stamper::new();
        let node = Arc::new(Node {
            id: config.id,
            seam,
            rpc,
            layouts: layout,
            quorums: config.quorums,
            kv,
            buckets,
            bucket_config,
            bucket_usage,
            bucket_aliases,
            objects,
            block_refs,
            block_lists,
            mpu,
            keys,
            blocks,
            repair: Default::default(),
            cas,
            tables,
            stamper,
            sync_gate,
            sync_guard_off: AtomicBool::new(false),
            db: db.clone(),
            storage_failed,
        });

        let listener = node.seam.net.listen(&config.rpc_bind_addr).await.map_err(|e| {
            NodeError::Bind { addr: config.rpc_bind_addr.clone(), reason: e.to_string() }
        })?;
        let handler: Arc<dyn Handler> = node.clone();
        tokio::spawn(rpc::serve(listener, node.seam.clone(), config.rpc_secret.clone(), handler));
        tokio::spawn(node.clone().anti_entropy_loop(config.sync_interval_ms));
        if node.is_syncing() {
            let layout_changes = node.layouts.subscribe();
            tokio::spawn(node.clone().blank_sync_loop(config.repair, layout_changes));
        }
        let bootstrap = config.peers.keys().copied().collect();
        let layout_interval_ms = config.sync_interval_ms.min(LAYOUT_INTERVAL_MS_MAX);
        tokio::spawn(LayoutWorker::new(node.clone(), bootstrap).run(layout_interval_ms));
        tokio::spawn(BlockGc::new(node.clone(), config.gc).run());
        tokio::spawn(TombstoneGc::from_config(node.clone(), &config.gc).run());
        tokio::spawn(BlockRepair::new(node.clone(), config.repair).run());
        tokio::spawn(storage_health::watch_metadata_db(db, failed));
        tracing::info!(node = %node.id, addr = %config.rpc_bind_addr, "node started");
        Ok(node)
    }

    /// Resolves, with why, once the metadata database can no longer commit: the node must
    /// then be stopped and started again (`storage_health`). Pending while it can.
    pub async fn storage_failure(&self) -> String {
        let mut failed = self.storage_failed.clone();
        loop {
            if let Some(reason) = failed.borrow_and_update().clone() {
                return reason;
            }
            if failed.changed().await.is_err() {
                // The watcher is gone (the runtime is stopping): nothing more to say.
                std::future::pending::<()>().await;
            }
        }
    }

    /// An anti-entropy worker over every table of this node.
    pub fn sync_worker(&self) -> SyncWorker {
        SyncWorker::new(
            self.id,
            self.rpc.clone(),
            self.layouts.clone(),
            self.tables.values().cloned().collect(),
        )
    }

    async fn anti_entropy_loop(self: Arc<Self>, interval_ms: u64) {
        let worker = self.sync_worker();
        let mut rng = self.seam.rng("anti-entropy");
        loop {
            let jitter = rng.next_u64() % (interval_ms / 4 + 1);
            tokio::time::sleep(Duration::from_millis(interval_ms + jitter)).await;
            // An operator's table sync running now does this round's work.
            let Ok(pass) = self.repair.begin(RepairKind::Tables, false, self.seam.clock.clone())
            else {
                continue;
            };
            let report = worker.step().await;
            pass.add(crate::block::repair::table_sync_counts(&report));
            drop(pass);
            if report.partitions_differing > 0 {
                let summary = format!("{report:?}");
                self.seam.trace.event("anti-entropy", summary.as_bytes());
            }
        }
    }

    /// A blank node's way back to serving reads: full sync passes right away and every
    /// `BLANK_SYNC_RETRY_MS` until one covers every partition (`SyncWorker::full_sync_pass`),
    /// then a block resync pass, then the persisted marker, then reads.
    async fn blank_sync_loop(
        self: Arc<Self>,
        repair: RepairConfig,
        mut layout_changes: tokio::sync::watch::Receiver<u64>,
    ) {
        let worker = SyncWorker::new(
            self.id,
            self.rpc.clone(),
            self.layouts.clone(),
            self.tables.values().cloned().collect(),
        );
        let mut answered = BTreeSet::new();
        loop {
            if self.sync_guard_off.load(Ordering::Relaxed) {
                // The weakened node behaves as before the guard: anti-entropy alone refills it.
                return;
            }
            match self.blank_sync_step(&worker, &mut answered, repair).await {
                Ok(()) => break,
                Err(e) => tracing::debug!(node = %self.id, "blank node not synced yet: {e}"),
            }
            // A layout learnt (by a node of a new cluster, right after `layout apply`) is
            // worth a try at once: until then the node refuses the cluster's writes.
            let retry = Duration::from_millis(BLANK_SYNC_RETRY_MS);
            crate::layout::manager::sleep_unless_changed(&mut layout_changes, retry).await;
        }
        self.sync_gate.set_syncing(false);
        self.seam.trace.event("blank-sync-done", &self.id.0.to_le_bytes());
        tracing::info!(node = %self.id, "blank node synced; serving reads");
    }

    async fn blank_sync_step(
        self: &Arc<Self>,
        worker: &SyncWorker,
        answered: &mut BTreeSet<NodeId>,
        repair: RepairConfig,
    ) -> Result<(), String> {
        // Without a layout (a wiped node learns it again by gossip) nothing says which
        // partitions we hold, so nothing can be declared synced yet.
        if self.layouts.current().is_none() {
            return Err("no layout known yet".into());
        }
        worker.full_sync_pass(self.quorums.write, answered).await?;
        // The resync worker's first pass, brought forward — unless resync is switched off
        // (the weakened simulation scenarios show what that loses). Reads do not wait for
        // blocks: a block read falls back to the other replicas and checks the hash.
        if repair.resync_interval_ms < RESYNC_OFF_INTERVAL_MS {
            let resync = BlockRepair::new(self.clone(), repair).resync_step().await;
            if resync.errors > 0 {
                return Err(format!("block resync: {resync:?}"));
            }
        }
        mark_full_sync_done(&self.db).map_err(|e| format!("cannot persist the marker: {e}"))
    }

    /// Whether this node started blank and still refuses table reads.
    pub fn is_syncing(&self) -> bool {
        self.sync_gate.is_syncing()
    }

    /// Test-only weakening (the simulation's `cluster.unsafe_blank_node_serves_reads`): a
    /// blank node serves reads at once and is refilled by periodic anti-entropy only, as
    /// before the sync gate — the bug the gate exists to prevent. Call it right after
    /// `start`, before the first await.
    pub fn unsafe_serve_reads_while_syncing(&self) {
        self.sync_guard_off.store(true, Ordering::Relaxed);
        self.sync_gate.set_syncing(false);
    }

    /// The newest layout this node knows (`None` until it learnt one).
    pub fn current_layout(&self) -> Option<ClusterLayout> {
        self.layouts.current()
    }

    /// The stored layout versions and the transition trackers.
    pub fn layout_history(&self) -> LayoutHistory {
        self.layouts.snapshot()
    }

    /// Stages a role change on the newest layout (`None` removes `node`); gossip spreads it.
    pub fn stage_role(
        &self,
        node: NodeId,
        role: Option<NodeRole>,
    ) -> Result<(), LayoutManagerError> {
        self.layouts.stage_role(node, role)
    }

    /// Applies the staged changes as version `expected_version` (the current one plus one)
    /// and starts the transition to it.
    pub fn apply_staged(&self, expected_version: u64) -> Result<LayoutDiff, LayoutManagerError> {
        self.layouts.apply_staged(expected_version)
    }

    /// Lets a layout transition finish without `node`, which is dead for good and already
    /// removed from the newest layout (see `layout::manager`).
    pub fn skip_dead_node(&self, node: NodeId) -> Result<(), LayoutManagerError> {
        self.layouts.skip_dead_node(node)
    }

    /// Serves a peer's layout gossip.
    fn serve_layout(&self, request: LayoutRequest) -> Result<Response, RemoteError> {
        let storage = |e: LayoutManagerError| RemoteError::Storage { reason: e.to_string() };
        match request {
            LayoutRequest::Gossip { digest } => Ok(Response::Layout(
                (self.layouts.digest() != digest).then(|| Box::new(self.layouts.snapshot())),
            )),
            LayoutRequest::Push { history } => {
                if self.layouts.merge(&history).map_err(storage)? {
                    self.learn_peer_addrs();
                }
                Ok(Response::Done)
            }
        }
    }

    /// Points the RPC client at every address the layout gossip advertises, so that a
    /// write to a node that just joined does not wait for the next gossip round.
    pub(crate) fn learn_peer_addrs(&self) {
        // `shared`, not `snapshot`: this runs every layout round, and copying the whole
        // history for it was a measurable share of an idle cluster's work.
        for (peer, addr) in self.layouts.shared().addrs() {
            if peer != self.id {
                self.rpc.set_peer_addr(peer, addr.to_string());
            }
        }
    }

    /// A timestamp for a new write coordinated by this node: never below the wall clock,
    /// never below one this node already handed out.
    pub fn stamp(&self) -> u64 {
        self.stamper.next(self.seam.clock.as_ref())
    }

    /// A timestamp for a write that replaces a version stamped `seen`: above both.
    ///
    /// Writers read the current version with a quorum first; since read and write quorums
    /// intersect, `seen` is at least every acknowledged write's timestamp, so a client's
    /// sequential writes stay ordered whatever the coordinators' clocks say.
    pub fn stamp_after(&self, seen: u64) -> u64 {
        self.stamper.next_after(self.seam.clock.as_ref(), seen)
    }

    /// Answers as an acceptor for conditional writes (`cas`). A promise carries this
    /// replica's object-table entry for the key, so the prepare quorum doubles as a read
    /// quorum. A blank replica still syncing refuses, as it refuses reads: its entry may
    /// hide an acknowledged write.
    pub async fn serve_cas(
        &self,
        request: crate::cas::CasRequest,
    ) -> Result<crate::cas::CasReply, RemoteError> {
        use crate::cas::{AcceptorOp, CasReply};
        let partition = crate::table::schema::partition_of_key(request.key());
        if self.sync_gate.refuses_reads_of(&self.layouts, self.id, partition, self.quorums.write) {
            return Err(RemoteError::Syncing);
        }
        let storage = |reason: String| RemoteError::Storage { reason };
        let (key, op, commit) = request.into_parts();
        let reply = match op {
            AcceptorOp::Prepare(_) => {
                let served = self.cas.serve(key.clone(), op, commit).await;
                let reply = served.map_err(|e| storage(e.to_string()))?;
                match reply {
                    CasReply::Promise { accepted, .. } => {
                        let objects =
                            &self.tables[<ObjectSchema as crate::table::TableSchema>::NAME];
                        let entry = objects.get_raw(&key).map_err(|e| storage(e.to_string()))?;
                        CasReply::Promise { accepted, entry }
                    }
                    other => other,
                }
            }
            AcceptorOp::Accept(..) => {
                let served = self.cas.serve(key, op, commit).await;
                served.map_err(|e| storage(e.to_string()))?
            }
        };
        Ok(reply)
    }

    /// Coordinates a client's register operation.
    async fn serve_kv(&self, request: KvRequest) -> Result<Response, RemoteError> {
        let quorum_err = |e: crate::table::QuorumError| RemoteError::Quorum {
            needed: e.quorum,
            successes: e.successes,
            errors: e.errors,
        };
        match request {
            KvRequest::Put { key, value } => {
                let current = self.kv.get(&kv_key(&key)).await.map_err(quorum_err)?;
                let seen = current.map_or(0, |e| e.timestamp());
                let entry = Lww::new(self.stamp_after(seen), value);
                self.kv.insert(kv_key(&key), &entry).await.map_err(quorum_err)?;
                Ok(Response::Done)
            }
            KvRequest::Get { key } => {
                let entry = self.kv.get(&kv_key(&key)).await.map_err(quorum_err)?;
                Ok(Response::Value(entry.and_then(|e| e.value().clone())))
            }
            KvRequest::GetLocal { key } => {
                let entry = self
                    .kv
                    .local
                    .get(&kv_key(&key))
                    .map_err(|e| RemoteError::Storage { reason: e.to_string() })?;
                Ok(Response::Value(entry.and_then(|e| e.value().clone())))
            }
        }
    }
}

impl Handler for Node {
    fn handle(
        self: Arc<Self>,
        from: NodeId,
        request: Request,
    ) -> BoxFuture<'static, Result<Response, RemoteError>> {
        Box::pin(async move {
            let kind = match &request {
                Request::Ping => "rpc.ping",
                Request::Table(_) => "rpc.table",
                Request::Kv(_) => "rpc.kv",
                Request::Block(_) => "rpc.block",
                Request::Layout(_) => "rpc.layout",
                Request::Cas(_) => "rpc.cas",
                Request::CasPeek(_) => "rpc.cas_peek",
                Request::CasCatchUp(_) => "rpc.cas_catch_up",
            };
            self.seam.trace.event(kind, &from.0.to_le_bytes());
            match request {
                Request::Ping => Ok(Response::Pong),
                Request::Kv(kv) => self.serve_kv(kv).await,
                Request::Block(b) => self.blocks.serve(b).await,
                Request::Layout(l) => self.serve_layout(l),
                Request::Cas(c) => self.serve_cas(c).await.map(Response::Cas),
                Request::CasPeek(keys) => {
                    let keys: Vec<Vec<u8>> = keys.into_iter().map(|k| k.0).collect();
                    let summaries = crate::objects::acceptor_rows::summaries(&self, &keys);
                    let storage = |reason: String| RemoteError::Storage { reason };
                    summaries.map(Response::CasPeek).map_err(storage)
                }
                Request::CasCatchUp(items) => {
                    let caught = crate::objects::acceptor_rows::catch_up(&self, items).await;
                    let storage = |reason: String| RemoteError::Storage { reason };
                    caught.map(|_| Response::Done).map_err(storage)
                }
                Request::Table(t) => {
                    let Some(table) = self.tables.get(t.table()).cloned() else {
                        return Err(RemoteError::UnknownTable { table: t.table().into() });
                    };
                    let storage = |reason: String| RemoteError::Storage { reason };
                    let refused = read_partition(&t).is_some_and(|p| {
                        let (layout, w) = (self.layouts.as_ref(), self.quorums.write);
                        self.sync_gate.refuses_reads_of(layout, self.id, p, w)
                    });
                    if refused {
                        return Err(RemoteError::Syncing);
                    }
                    match t {
                        // Replica writes from many coordinators share one durable commit.
                        TableRequest::Update { entries, .. } => table
                            .merge_raw_async(entries)
                            .await
                            .map(|()| Response::Done)
                            .map_err(|e| storage(e.to_string())),
                        t => serve_local(table.as_ref(), &t).map_err(storage),
                    }
                }
            }
        })
    }
}

/// The address this node advertises to its peers, if it has a usable one.
fn advertised_addr(config: &NodeConfig) -> Option<String> {
    if let Some(addr) = &config.public_addr {
        return Some(addr.clone());
    }
    let wildcard = ["0.0.0.0:", "[::]:"].iter().any(|w| config.rpc_bind_addr.starts_with(w));
    (!wildcard).then(|| config.rpc_bind_addr.clone())
}

/// Whether `db` finished its first full sync (see `FULL_SYNC_DONE`).
fn full_sync_done(db: &Database) -> Result<bool, String> {
    let tx = db.begin_read().map_err(|e| e.to_string())?;
    let table = match tx.open_table(NODE_STATE) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(false),
        Err(e) => return Err(e.to_string()),
    };
    Ok(table.get(FULL_SYNC_DONE).map_err(|e| e.to_string())?.is_some())
}

/// Durably records that `db` finished its first full sync.
fn mark_full_sync_done(db: &Database) -> Result<(), String> {
    let tx = db.begin_write().map_err(|e| e.to_string())?;
    {
        let mut table = tx.open_table(NODE_STATE).map_err(|e| e.to_string())?;
        table.insert(FULL_SYNC_DONE, 1).map_err(|e| e.to_string())?;
    }
    tx.commit().map_err(|e| e.to_string())
}
