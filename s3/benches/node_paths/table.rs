//! Table writes and reads on redb over a real file: the production `FsDisk` backend and
//! the engine's `Store`, so a write is decode + CRDT merge + encode + a durable redb
//! commit (one fdatasync), exactly what a replica does before it acknowledges.
//!
//! Entries are object entries as a PUT writes them (one complete version of a 1-block
//! object); keys are fresh for inserts, so the file grows as it would under a load of
//! new objects.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use hangar_engine::objects::VersionState;
use hangar_engine::objects::body::{Body, BodyBlock};
use hangar_engine::objects::version::Version;
use hangar_engine::objects::{ObjectEntry, ObjectSchema, StoredObject, VersionData, VersionId};
use hangar_engine::rpc::message::RawEntry;
use hangar_engine::seam::open_database;
use hangar_engine::table::schema::encode_entry;
use hangar_engine::table::{LocalTable, Store, entry_key};
use hangar_s3::runtime::{FsDisk, FsyncPolicy};

use crate::ScratchDir;

fn entry(n: u64) -> ObjectEntry {
    let object = StoredObject {
        size_bytes: 1 << 20,
        etag: format!("\"{n:032x}\""),
        last_modified_ms: 1_795_662_000_000 + n,
        content_type: "application/octet-stream".into(),
        user_metadata: Default::default(),
        body: Body::Blocks(vec![BodyBlock {
            hash: *blake3::hash(&n.to_le_bytes()).as_bytes(),
            size_bytes: 1 << 20,
        }]),
    };
    let id = VersionId { timestamp: 1_795_662_000_000 + n, unique: 1 };
    let version = Version::new(VersionState::Complete(VersionData::Object(object)), false);
    ObjectEntry::with(id, version)
}

fn key(n: u64) -> Vec<u8> {
    entry_key(b"bench-bucket", format!("objects/{n:010}").as_bytes())
}

fn raw(n: u64) -> RawEntry {
    (key(n), encode_entry(&entry(n)))
}

/// Writers that share one group commit in `concurrent_16_writers`: the c=16 PUT load.
const WRITERS: u64 = 16;
/// Entries present before the reads and overwrites start.
const PRELOADED: u64 = 10_000;

pub fn bench(c: &mut Criterion) {
    let scratch = ScratchDir::new("table");
    let disk = FsDisk::new(&scratch.0);
    let db = Arc::new(open_database(&disk, "meta/hangar.redb").expect("open the database"));
    let store = Arc::new(Store::<ObjectSchema>::open(db).expect("open the table"));
    // Preload in large transactions (not what is measured).
    for chunk in (0..PRELOADED).collect::<Vec<_>>().chunks(1000) {
        let batch: Vec<RawEntry> = chunk.iter().map(|&n| raw(n)).collect();
        store.merge_raw(&batch).expect("preload");
    }
    let mut next = PRELOADED;

    let mut group = c.benchmark_group("table_redb_file");
    group.bench_function("insert_durable", |b| {
        b.iter(|| {
            next += 1;
            store.merge_raw(&[raw(next)]).unwrap()
        })
    });
    group.bench_function("overwrite_durable", |b| {
        // A newer version of an existing key: merge with the stored entry, prune the old.
        b.iter(|| {
            next += 1;
            let (k, _) = raw(next % PRELOADED);
            store.merge_raw(&[(k, encode_entry(&entry(next)))]).unwrap()
        })
    });
    group.bench_function("read_hit", |b| {
        let mut n = 0u64;
        b.iter(|| {
            n = (n + 7919) % PRELOADED;
            black_box(store.get_raw(&key(n)).unwrap().expect("preloaded"))
        })
    });
    // Time per write when 16 writers arrive together: they share one transaction and one
    // fsync (`Store::merge_grouped`).
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    group.bench_function("insert_16_concurrent_per_write", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters.div_ceil(WRITERS) {
                let writes: Vec<RawEntry> = (0..WRITERS)
                    .map(|_| {
                        next += 1;
                        raw(next)
                    })
                    .collect();
                let store = store.clone();
                let started = Instant::now();
                runtime.block_on(async move {
                    let tasks: Vec<_> = writes
                        .into_iter()
                        .map(|w| {
                            let store = store.clone();
                            tokio::spawn(async move { store.merge_raw_async(vec![w]).await })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap().unwrap();
                    }
                });
                total += started.elapsed();
            }
            // Per write: the batch time spread over its writers.
            total * iters as u32 / (iters.div_ceil(WRITERS) * WRITERS) as u32
        })
    });
    // The same insert with `metadata_fsync = false`: what a commit costs besides the
    // fsync (the floor a faster disk would approach).
    let unsynced = ScratchDir::new("table-nofsync");
    let policy = FsyncPolicy { metadata: false, data: false };
    let disk = FsDisk::new(&unsynced.0).with_fsync(policy);
    let db = Arc::new(open_database(&disk, "meta/hangar.redb").expect("open the database"));
    let unsynced_store = Store::<ObjectSchema>::open(db).expect("open the table");
    group.bench_function("insert_no_fsync", |b| {
        b.iter(|| {
            next += 1;
            unsynced_store.merge_raw(&[raw(next)]).unwrap()
        })
    });
    group.finish();
    drop(runtime);
}
