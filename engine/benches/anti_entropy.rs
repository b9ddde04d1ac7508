//! What the Merkle trees cost and save (issue 3 item 7, docs/data-model.md "Anti-entropy").
//!
//! - insert: 100k entries of one partition (one bucket) in commits of 1,000, then 10k
//!   single-entry commits on top; each commit records its keys in the to-do list, and the
//!   tree flush that applies the list is timed apart.
//! - sync round: two replicas of a 100k-entry partition, 10 entries newer on one side;
//!   the full-partition exchange (what anti-entropy did before the trees: digest both
//!   sides, ship the whole partition both ways, merge) against the tree descent.
//!
//! redb's `InMemoryBackend` (fsync is free): CPU and redb page work only; on a real disk a
//! commit's fsync adds the same to both. Run:
//! `cargo bench -p hangar-engine --bench anti_entropy`

// Times come from the seam's monotonic clock (`seam::monotonic_now`), as in the engine.

use std::sync::{Arc, Mutex};

use hangar_engine::crdt::Lww;
use hangar_engine::kv::KvSchema;
use hangar_engine::rpc::message::RawEntry;
use hangar_engine::rpc::{Response, TableRequest};
use hangar_engine::seam::{BoxFuture, monotonic_now};
use hangar_engine::table::merkle_sync::{SyncPeer, sync_partition};
use hangar_engine::table::replicated::serve_local;
use hangar_engine::table::schema::encode_entry;
use hangar_engine::table::{LocalTable, Store, entry_key};
use redb::backends::InMemoryBackend;

const ENTRIES: usize = 100_000;
const DIFFERING: usize = 10;
const ROUNDS: usize = 5;

fn database() -> Arc<redb::Database> {
    Arc::new(redb::Builder::new().create_with_backend(InMemoryBackend::new()).unwrap())
}

fn entry(i: usize, ts: u64) -> RawEntry {
    let key = entry_key(b"bench-bucket", format!("object-{i:08}").as_bytes());
    let value = Lww::new(ts, Some(vec![i as u8; 100]));
    (key, encode_entry(&value))
}

fn fill(s: &Store<KvSchema>) {
    for chunk in (0..ENTRIES).collect::<Vec<_>>().chunks(1000) {
        let batch: Vec<RawEntry> = chunk.iter().map(|&i| entry(i, 1_000)).collect();
        s.merge_raw(&batch).unwrap();
    }
}

fn bytes(entries: &[RawEntry]) -> usize {
    entries.iter().map(|(k, v)| k.len() + v.len()).sum()
}

/// The peer in process; counts the bytes of keys, entries and nodes that would travel.
struct LocalPeer<'a> {
    table: &'a dyn LocalTable,
    bytes: Mutex<usize>,
}

impl SyncPeer for LocalPeer<'_> {
    fn call(&self, request: TableRequest) -> BoxFuture<'_, Result<Response, String>> {
        let answer = serve_local(self.table, &request);
        let sent = match &request {
            TableRequest::Update { entries, .. } => bytes(entries),
            TableRequest::FetchEntries { keys, .. } => keys.iter().map(Vec::len).sum(),
            _ => 0,
        };
        let received = match &answer {
            Ok(Response::TreeNodes(nodes)) => nodes.iter().map(Vec::len).sum(),
            Ok(Response::Entries(entries)) => bytes(entries),
            _ => 0,
        };
        *self.bytes.lock().unwrap() += sent + received;
        Box::pin(async move { answer })
    }
}

fn insert_costs() {
    let s = Store::<KvSchema>::open(database()).unwrap();
    let t = monotonic_now();
    fill(&s);
    let batched = t.elapsed();
    let t = monotonic_now();
    s.flush_tree().unwrap();
    let batched_flush = t.elapsed();
    let t = monotonic_now();
    for i in 0..10_000 {
        s.merge_raw(&[entry(ENTRIES + i, 1_000)]).unwrap();
    }
    let single = t.elapsed();
    let t = monotonic_now();
    s.flush_tree().unwrap();
    let single_flush = t.elapsed();
    let us = |d: std::time::Duration, n: usize| d.as_secs_f64() * 1e6 / n as f64;
    println!(
        "insert: batched {:.2} us/entry (+ {:.2} us/entry tree flush), single-entry commit \
         {:.1} us/commit (+ {:.1} us/entry tree flush, 10k at once)",
        us(batched, ENTRIES),
        us(batched_flush, ENTRIES),
        us(single, 10_000),
        us(single_flush, 10_000)
    );
}

fn sync_rounds(merkle: bool) {
    let (da, db) = (database(), database());
    for database in [&da, &db] {
        let store = Store::<KvSchema>::open(database.clone()).unwrap();
        fill(&store);
        // Steady state: the trees cover the fill; a round applies only what changed since.
        store.flush_tree().unwrap();
    }
    let p = entry(0, 0).0[0];
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let (mut total, mut shipped, mut shipped_bytes) = (0.0, 0, 0);
    for round in 0..ROUNDS {
        let b = Store::<KvSchema>::open(db.clone()).unwrap();
        let newer: Vec<RawEntry> =
            (0..DIFFERING).map(|i| entry(i * 997, 2_000 + round as u64)).collect();
        b.merge_raw(&newer).unwrap();
        // Fresh stores: a write since the last round invalidated the digest caches.
        let a = Store::<KvSchema>::open(da.clone()).unwrap();
        let b = Store::<KvSchema>::open(db.clone()).unwrap();
        let t = monotonic_now();
        assert_ne!(a.root_digest(&[p]).unwrap(), b.root_digest(&[p]).unwrap());
        assert_ne!(a.partition_digests(&[p]).unwrap(), b.partition_digests(&[p]).unwrap());
        if merkle {
            let peer = LocalPeer { table: &b, bytes: Mutex::new(0) };
            let done = runtime.block_on(sync_partition(&a, &peer, p)).unwrap();
            shipped = done.entries_pulled + done.entries_pushed;
            shipped_bytes = *peer.bytes.lock().unwrap();
        } else {
            let theirs = b.partition_entries(p).unwrap();
            a.merge_raw(&theirs).unwrap();
            let ours = a.partition_entries(p).unwrap();
            b.merge_raw(&ours).unwrap();
            shipped = theirs.len() + ours.len();
            shipped_bytes = bytes(&theirs) + bytes(&ours);
        }
        total += t.elapsed().as_secs_f64();
        assert_eq!(a.partition_digest(p).unwrap(), b.partition_digest(p).unwrap());
    }
    println!(
        "sync round ({}, {ENTRIES} entries, {DIFFERING} differing): {:.2} ms, {shipped} \
         entries / {shipped_bytes} bytes shipped",
        if merkle { "merkle descent" } else { "full exchange" },
        total * 1e3 / ROUNDS as f64
    );
}

fn main() {
    insert_costs();
    sync_rounds(false);
    sync_rounds(true);
}
