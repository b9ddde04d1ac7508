//! The Merkle trees (`merkle`) and the descent that compares them (`merkle_sync`).
//!
//! What must hold: a tree kept up to date write by write is node for node the tree built
//! from scratch over the same entries (so equal replicas have equal roots, and no stale
//! node survives a delete); and two replicas that differ in k entries exchange exactly
//! those k, in a handful of requests, and end equal.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::merkle::{self, Hash, TREE_TABLE_SUFFIX};
use super::merkle_sync::{SyncPeer, sync_partition};
use super::replicated::serve_local;
use super::schema::{encode_entry, entry_key, partition_of_key};
use super::store::{LocalTable, Store};
use crate::crdt::Lww;
use crate::kv::KvSchema;
use crate::rpc::message::RawEntry;
use crate::rpc::{Response, TableRequest};
use crate::seam::{BoxFuture, open_database};
use crate::testkit::MemDisk;

type Rows = Vec<(Vec<u8>, Vec<u8>)>;

fn fresh() -> (Arc<Database>, Store<KvSchema>) {
    let db = Arc::new(open_database(&MemDisk::default(), "meta/test.redb").expect("open"));
    (db.clone(), Store::<KvSchema>::open(db).expect("open store"))
}

fn rows(db: &Database, name: &str) -> Rows {
    let txn = db.begin_read().unwrap();
    let table = txn.open_table(TableDefinition::<&[u8], &[u8]>::new(name)).unwrap();
    table
        .iter()
        .unwrap()
        .map(|r| r.unwrap())
        .map(|(k, v)| (k.value().to_vec(), v.value().to_vec()))
        .collect()
}

fn tree_name() -> String {
    format!("kv{TREE_TABLE_SUFFIX}")
}

/// The tree `Store::open` builds from scratch for `entries`, written straight into the
/// entry table of a new database (as a database from before the trees would hold them).
fn tree_built_from_scratch(entries: &Rows) -> Rows {
    let db = Arc::new(open_database(&MemDisk::default(), "meta/test.redb").expect("open"));
    let txn = db.begin_write().unwrap();
    {
        let mut table = txn.open_table(TableDefinition::<&[u8], &[u8]>::new("kv")).unwrap();
        for (k, v) in entries {
            table.insert(k.as_slice(), v.as_slice()).unwrap();
        }
    }
    txn.commit().unwrap();
    Store::<KvSchema>::open(db.clone()).expect("open builds the tree");
    rows(&db, &tree_name())
}

fn entry(ts: u64, v: u64) -> Vec<u8> {
    encode_entry(&Lww::new(ts, Some(v.to_le_bytes().to_vec())))
}

/// Keys over a few partitions (two partition keys with many sort keys each, plus spread
/// keys), so that trees get deep in some partitions and stay single leaves in others.
fn key(i: u64) -> Vec<u8> {
    match i % 3 {
        0 => entry_key(b"bucket-a", format!("obj-{i}").as_bytes()),
        1 => entry_key(b"bucket-b", format!("obj-{i}").as_bytes()),
        _ => entry_key(format!("spread-{i}").as_bytes(), b""),
    }
}

fn assert_tree_matches_scratch(db: &Database, store: &Store<KvSchema>, context: &str) {
    store.flush_tree().unwrap();
    let entries = rows(db, "kv");
    assert_eq!(rows(db, &tree_name()), tree_built_from_scratch(&entries), "{context}");
    for p in entries.iter().map(|(k, _)| partition_of_key(k)).collect::<BTreeSet<_>>() {
        let items = entries
            .iter()
            .filter(|(k, _)| partition_of_key(k) == p)
            .map(|(k, v)| (k.clone(), *blake3::hash(v).as_bytes()));
        assert_eq!(store.partition_digest(p).unwrap(), merkle::root_of(items), "{context}");
    }
}

/// Seeded random inserts, updates, deletes (tombstone collection's `delete_if_unchanged`)
/// and partition drops: whenever it is read, the stored tree is exactly the tree built
/// from scratch over the stored entries.
#[test]
fn a_tree_updated_write_by_write_equals_the_tree_built_from_scratch() {
    for seed in 1..=8u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (db, store) = fresh();
        for step in 0..60 {
            let context = format!("seed {seed} step {step}");
            match rng.next_u32() % 10 {
                0..=5 => {
                    let batch: Vec<RawEntry> = (0..1 + rng.next_u64() % 40)
                        .map(|_| (key(rng.next_u64() % 300), entry(rng.next_u64() % 50, step)))
                        .collect();
                    store.merge_raw(&batch).unwrap();
                }
                6..=8 => {
                    let stored = rows(&db, "kv");
                    let doomed: Vec<(Vec<u8>, Hash)> = stored
                        .iter()
                        .filter(|_| rng.next_u32() % 3 == 0)
                        .map(|(k, v)| (k.clone(), *blake3::hash(v).as_bytes()))
                        .collect();
                    assert_eq!(store.delete_if_unchanged(&doomed).unwrap(), doomed.len());
                }
                _ => {
                    let p = partition_of_key(&key(rng.next_u64() % 300));
                    store.drop_partition(p).unwrap();
                }
            }
            // Checked (and so flushed) every few steps, so that one flush applies inserts,
            // updates and deletes together.
            if rng.next_u32() % 3 == 0 {
                assert_tree_matches_scratch(&db, &store, &context);
            }
        }
        assert_tree_matches_scratch(&db, &store, &format!("seed {seed} end"));
    }
}

#[test]
fn equal_entries_written_in_any_order_give_equal_roots_and_an_empty_tree_has_none() {
    let entries: Vec<RawEntry> = (0..500).map(|i| (key(i), entry(1, i))).collect();
    let (db_a, a) = fresh();
    let (db_b, b) = fresh();
    a.merge_raw(&entries).unwrap();
    for e in entries.iter().rev() {
        b.merge_raw(std::slice::from_ref(e)).unwrap();
    }
    a.flush_tree().unwrap();
    b.flush_tree().unwrap();
    assert_eq!(rows(&db_a, &tree_name()), rows(&db_b, &tree_name()));
    let all: Vec<u8> = (0..=u8::MAX).collect();
    assert_eq!(a.partition_digests(&all).unwrap(), b.partition_digests(&all).unwrap());
    let doomed: Vec<(Vec<u8>, Hash)> =
        entries.iter().map(|(k, v)| (k.clone(), *blake3::hash(v).as_bytes())).collect();
    a.delete_if_unchanged(&doomed).unwrap();
    a.flush_tree().unwrap();
    assert!(rows(&db_a, &tree_name()).is_empty(), "deleting everything leaves no node");
    assert!(a.partition_digests(&all).unwrap().iter().all(|d| *d == merkle::EMPTY_HASH));
}

/// The other replica, in process: serves requests with `serve_local` and logs them.
struct LocalPeer<'a> {
    table: &'a dyn LocalTable,
    log: Mutex<Vec<TableRequest>>,
}

impl SyncPeer for LocalPeer<'_> {
    fn call(&self, request: TableRequest) -> BoxFuture<'_, Result<Response, String>> {
        let answer = serve_local(self.table, &request);
        self.log.lock().unwrap().push(request);
        Box::pin(async move { answer })
    }
}

impl LocalPeer<'_> {
    /// Keys fetched from the peer and keys sent to it, as logged.
    fn shipped(&self) -> (BTreeSet<Vec<u8>>, BTreeSet<Vec<u8>>) {
        let (mut pulled, mut pushed) = (BTreeSet::new(), BTreeSet::new());
        for request in self.log.lock().unwrap().iter() {
            match request {
                TableRequest::FetchEntries { keys, .. } => pulled.extend(keys.iter().cloned()),
                TableRequest::Update { entries, .. } => {
                    pushed.extend(entries.iter().map(|(k, _)| k.clone()))
                }
                _ => {}
            }
        }
        (pulled, pushed)
    }
}

fn bucket_key(i: u64) -> Vec<u8> {
    entry_key(b"one-big-bucket", format!("object-{i:06}").as_bytes())
}

/// Two replicas of a 5,000-entry partition differ in 10 entries of four kinds; one
/// exchange finds exactly those, pulls exactly the ones where the peer's is newer or
/// missing here, pushes exactly the ones where ours is, and leaves both equal.
#[tokio::test]
async fn two_replicas_differing_in_k_entries_exchange_exactly_those() {
    let (_, a) = fresh();
    let (_, b) = fresh();
    let common: Vec<RawEntry> = (0..5_000).map(|i| (bucket_key(i), entry(1, i))).collect();
    a.merge_raw(&common).unwrap();
    b.merge_raw(&common).unwrap();
    let only_a = [bucket_key(100_001), bucket_key(100_002)];
    let only_b = [bucket_key(100_003), bucket_key(100_004), bucket_key(100_005)];
    let newer_on_b = [bucket_key(7), bucket_key(1_234), bucket_key(4_999)];
    let changed_on_both = [bucket_key(2_000), bucket_key(3_000)];
    for k in &only_a {
        a.merge_raw(&[(k.clone(), entry(5, 0))]).unwrap();
    }
    for k in only_b.iter().chain(&newer_on_b) {
        b.merge_raw(&[(k.clone(), entry(5, 0))]).unwrap();
    }
    for (i, k) in changed_on_both.iter().enumerate() {
        // Equal timestamps, different values: the merge keeps the larger value on both.
        a.merge_raw(&[(k.clone(), entry(9, 10 + i as u64))]).unwrap();
        b.merge_raw(&[(k.clone(), entry(9, 20 + i as u64))]).unwrap();
    }
    let p = partition_of_key(&bucket_key(0));
    assert_ne!(a.partition_digest(p).unwrap(), b.partition_digest(p).unwrap());

    let peer = LocalPeer { table: &b, log: Mutex::new(Vec::new()) };
    let done = sync_partition(&a, &peer, p).await.unwrap();

    assert_eq!(a.partition_digest(p).unwrap(), b.partition_digest(p).unwrap(), "converged");
    assert_eq!(a.partition_entries(p).unwrap(), b.partition_entries(p).unwrap());
    let (pulled, pushed) = peer.shipped();
    let set = |keys: &[&[Vec<u8>]]| keys.concat().into_iter().collect::<BTreeSet<_>>();
    assert_eq!(pulled, set(&[&only_b, &newer_on_b, &changed_on_both]), "pulled");
    // A changed-on-both key is pushed only where the merge kept ours (the larger value is
    // b's here, so nothing of those goes back).
    assert_eq!(pushed, set(&[&only_a]), "pushed");
    assert_eq!((done.entries_pulled, done.entries_pushed), (8, 2));
    // 5,000 entries are 4 levels of 16-ary nodes: a request per level or so.
    assert!(done.tree_requests <= 6, "{done:?}");
    assert!(done.nodes_fetched <= 10 * 5, "{done:?}");
}

/// One side empty (a blank replica): everything is pulled, in bounded requests, and the
/// other way round everything is pushed.
#[tokio::test]
async fn an_empty_replica_pulls_everything_and_pushes_everything_back_to_an_empty_peer() {
    let (_, full) = fresh();
    let (_, blank) = fresh();
    let entries: Vec<RawEntry> = (0..3_000).map(|i| (bucket_key(i), entry(1, i))).collect();
    full.merge_raw(&entries).unwrap();
    let p = partition_of_key(&bucket_key(0));

    let peer = LocalPeer { table: &full, log: Mutex::new(Vec::new()) };
    let done = sync_partition(&blank, &peer, p).await.unwrap();
    assert_eq!((done.entries_pulled, done.entries_pushed), (3_000, 0));
    assert_eq!(blank.partition_digest(p).unwrap(), full.partition_digest(p).unwrap());

    let (_, empty) = fresh();
    let peer = LocalPeer { table: &empty, log: Mutex::new(Vec::new()) };
    let done = sync_partition(&full, &peer, p).await.unwrap();
    assert_eq!((done.entries_pulled, done.entries_pushed, done.tree_requests), (0, 3_000, 1));
    assert_eq!(empty.partition_digest(p).unwrap(), full.partition_digest(p).unwrap());
}

/// The to-do list is committed with the entries, the tree later: a node that stops (or
/// crashes) between a write and the next tree read must apply the change after it opens
/// the database again, before it serves a digest.
#[test]
fn changes_not_yet_in_the_tree_are_applied_after_a_reopen() {
    let (db, store) = fresh();
    let first: Vec<RawEntry> = (0..100).map(|i| (key(i), entry(1, i))).collect();
    store.merge_raw(&first).unwrap();
    store.flush_tree().unwrap();
    store.merge_raw(&[(key(7), entry(2, 7)), (key(1_000), entry(1, 1_000))]).unwrap();
    let doomed = (key(8), *blake3::hash(&entry(1, 8)).as_bytes());
    assert_eq!(store.delete_if_unchanged(&[doomed]).unwrap(), 1);
    drop(store);

    let store = Store::<KvSchema>::open(db.clone()).unwrap();
    let entries = rows(&db, "kv");
    for p in [key(7), key(8), key(1_000)].iter().map(|k| partition_of_key(k)) {
        let items = entries
            .iter()
            .filter(|(k, _)| partition_of_key(k) == p)
            .map(|(k, v)| (k.clone(), *blake3::hash(v).as_bytes()));
        assert_eq!(store.partition_digest(p).unwrap(), merkle::root_of(items), "partition {p}");
    }
    assert_tree_matches_scratch(&db, &store, "after reopen");
}
