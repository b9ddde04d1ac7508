//! Micro-benchmarks of the engine's CPU hot paths (issue 8): what every byte of a PUT
//! costs (blake3 names blocks, MD5 makes the ETag), and what every replicated write costs
//! in CPU (decode, CRDT merge, encode of the stored entry).
//!
//! The disk and the network are measured in `s3/benches/node_paths` (real files, real
//! TCP). Run: `cargo bench -p hangar-engine --bench hot_paths -- --warm-up-time 1
//! --measurement-time 3` (docs/benchmarks.md has the figures).

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use hangar_engine::block::hash_of;
use hangar_engine::codec;
use hangar_engine::crdt::{Crdt, LwwMap};
use hangar_engine::objects::body::{self, Body, BodyBlock};
use hangar_engine::objects::{
    ObjectEntry, StoredObject, VersionData, VersionId, VersionState, version::Version,
};
use hangar_engine::table::schema::{decode_entry, encode_entry};

const MIB: usize = 1024 * 1024;

/// Bytes that neither compress nor repeat (a xorshift stream; the content only has to be
/// realistic for the hashes, whose speed does not depend on it).
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Per-byte work of a PUT: the body splitter (`objects/body.rs`) copies each chunk into
/// the block being filled, feeds the ETag's MD5, and names each sealed block by blake3.
fn hashing(c: &mut Criterion) {
    let block = noise(MIB);
    let mut group = c.benchmark_group("hash");
    group.throughput(Throughput::Bytes(MIB as u64));
    group.bench_function("blake3_1MiB_block", |b| b.iter(|| hash_of(black_box(&block))));
    group.bench_function("md5_1MiB_etag", |b| b.iter(|| body::md5_of(black_box(&block))));
    let small = noise(4096);
    group.throughput(Throughput::Bytes(4096));
    group.bench_function("md5_4KiB_etag", |b| b.iter(|| body::md5_of(black_box(&small))));
    group.finish();
}

/// A complete object version as a PUT writes it: a 1-block body, an ETag, a content type
/// and two user metadata entries (what an SDK upload typically carries).
fn stored_version(timestamp: u64) -> (VersionId, Version) {
    let object = StoredObject {
        size_bytes: MIB as u64,
        etag: format!("\"{}\"", "a".repeat(32)),
        last_modified_ms: timestamp,
        content_type: "application/octet-stream".into(),
        user_metadata: BTreeMap::from([
            ("owner".to_string(), "team-storage".to_string()),
            ("source".to_string(), "nightly-backup".to_string()),
        ]),
        body: Body::Blocks(vec![BodyBlock {
            hash: hash_of(&timestamp.to_le_bytes()),
            size_bytes: MIB as u32,
        }]),
    };
    let id = VersionId { timestamp, unique: 7 };
    (id, Version::new(VersionState::Complete(VersionData::Object(object)), true))
}

/// An object entry with `n` kept versions (a versioned bucket's hot key).
fn entry_with_versions(n: u64) -> ObjectEntry {
    let mut entry = ObjectEntry::default();
    for t in 0..n {
        let (id, version) = stored_version(1_700_000_000_000 + t);
        entry.versions.insert(id, version);
    }
    entry
}

/// What a replica does with every incoming object write: decode the stored entry and the
/// incoming one, merge, encode the result (`table/store.rs`, `apply_job`).
fn object_entry(c: &mut Criterion) {
    let mut group = c.benchmark_group("object_entry");
    for versions in [1u64, 100] {
        let stored = encode_entry(&entry_with_versions(versions));
        let (id, version) = stored_version(1_800_000_000_000);
        let incoming = encode_entry(&ObjectEntry::with(id, version));
        group.bench_function(format!("store_merge_{versions}_versions"), |b| {
            b.iter(|| {
                let mut merged: ObjectEntry = decode_entry(black_box(&stored)).unwrap();
                let theirs: ObjectEntry = decode_entry(black_box(&incoming)).unwrap();
                merged.merge(&theirs);
                encode_entry(&merged)
            })
        });
    }
    // The merge alone, without the codec: an overwrite in an unversioned bucket (the old
    // version is pruned) and a new version on top of 100 kept ones.
    for versions in [1u64, 100] {
        let mut base = entry_with_versions(versions);
        if versions == 1 {
            base.versions.values_mut().for_each(|v| v.kept = false);
        }
        let (id, version) = stored_version(1_800_000_000_000);
        let incoming = ObjectEntry::with(id, version);
        group.bench_function(format!("merge_only_{versions}_versions"), |b| {
            b.iter_batched_ref(
                || base.clone(),
                |entry| entry.merge(black_box(&incoming)),
                BatchSize::SmallInput,
            )
        });
    }
    let entry = entry_with_versions(1);
    group.bench_function("codec_encode_1_version", |b| b.iter(|| codec::encode(black_box(&entry))));
    group.finish();
}

/// LWW map merges of the sizes the global tables see: two replicas of a map of `n`
/// string entries, the incoming one newer on every other key and holding 10% new keys.
fn lww_map(c: &mut Criterion) {
    let mut group = c.benchmark_group("lww_map");
    for n in [100usize, 1000] {
        let mut ours = LwwMap::new();
        let mut theirs = LwwMap::new();
        for i in 0..n {
            let key = format!("key/{i:06}");
            ours.insert(key.clone(), 10, format!("value-{i}-ours"));
            let ts = if i % 2 == 0 { 20 } else { 5 };
            theirs.insert(key, ts, format!("value-{i}-theirs"));
        }
        for i in n..n + n / 10 {
            theirs.insert(format!("key/{i:06}"), 20, format!("value-{i}-new"));
        }
        group.throughput(Throughput::Elements(theirs.len() as u64));
        group.bench_function(format!("merge_{n}_entries"), |b| {
            b.iter_batched_ref(
                || ours.clone(),
                |map| map.merge(black_box(&theirs)),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, hashing, object_entry, lww_map);
criterion_main!(benches);
