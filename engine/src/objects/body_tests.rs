//! Streaming bodies over a three-node `TestCluster` (paused time): a body of many blocks
//! goes in and out through streams while the store never holds more than the stated
//! number of blocks; ranges; bodies the source refuses, or that break off, never become
//! visible and their blocks are collected.
//!
//! Guards against the first version's behaviour, which buffered every body whole (a 5 GiB
//! PUT needed 5 GiB of memory on the coordinator, and so did the GET).

use bytes::Bytes;
use md5::{Digest, Md5};

use super::body::{BodyEnd, BodyRefused, BodySource, BodySummary, PUT_BLOCKS_HELD_MAX};
use super::body_reader::GET_BLOCKS_HELD_MAX;
use super::multipart::UploadMeta;
use super::{ObjectError, ObjectStore};
use crate::node_tests::{TestCluster, blocks_on_each_node, let_gc_run};
use crate::seam::BoxFuture;

/// Small blocks, so that a body of many blocks stays quick to hash and copy.
const BLOCK: usize = 64 * 1024;
const BLOCKS: usize = 200;

/// Byte `i` of the test body: a pattern whose blocks all differ.
fn byte_at(i: u64) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 24) as u8 ^ (i / BLOCK as u64) as u8
}

/// A body of `len` bytes made on the fly in chunks of `chunk` bytes (so the test itself
/// holds no more than a chunk), that stops with an error after `fail_after` bytes if set,
/// and whose `finish` refuses if `refuse` is set.
struct Generated {
    len: u64,
    chunk: usize,
    sent: u64,
    fail_after: Option<u64>,
    refuse: bool,
    finished_with: Option<BodySummary>,
}

impl Generated {
    fn new(len: u64) -> Self {
        Generated {
            len,
            chunk: 10_007,
            sent: 0,
            fail_after: None,
            refuse: false,
            finished_with: None,
        }
    }
}

impl BodySource for Generated {
    fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Bytes>, BodyRefused>> {
        let result = if self.fail_after.is_some_and(|at| self.sent >= at) {
            Err(BodyRefused { reason: "connection reset".into() })
        } else if self.sent == self.len {
            Ok(None)
        } else {
            let n = (self.len - self.sent).min(self.chunk as u64);
            let chunk: Vec<u8> = (self.sent..self.sent + n).map(byte_at).collect();
            self.sent += n;
            Ok(Some(Bytes::from(chunk)))
        };
        Box::pin(async move { result })
    }

    fn finish(&mut self, summary: &BodySummary) -> Result<BodyEnd, BodyRefused> {
        self.finished_with = Some(summary.clone());
        if self.refuse {
            return Err(BodyRefused { reason: "signature mismatch".into() });
        }
        Ok(BodyEnd { etag: hex_of(&summary.md5), ..Default::default() })
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn expected_md5(range: std::ops::Range<u64>) -> [u8; 16] {
    let mut md5 = Md5::new();
    let bytes: Vec<u8> = range.map(byte_at).collect();
    md5.update(&bytes);
    md5.finalize().into()
}

async fn small_block_stores() -> (TestCluster, Vec<ObjectStore>) {
    let cluster = TestCluster::start().await;
    let stores =
        cluster.nodes.iter().map(|n| ObjectStore::with_block_size(n.clone(), BLOCK)).collect();
    (cluster, stores)
}

#[tokio::test(start_paused = true)]
async fn a_body_of_many_blocks_streams_in_and_out_within_the_memory_bound() {
    let (_cluster, s) = small_block_stores().await;
    s[0].create_bucket("b").await.unwrap();
    let len = (BLOCKS * BLOCK + 4321) as u64;
    let mut source = Generated::new(len);
    let put = s[0].put_object_stream("b", "big", UploadMeta::default(), &mut source).await;
    let put = put.expect("the put succeeds");
    let md5 = expected_md5(0..len);
    assert_eq!(source.finished_with, Some(BodySummary { size_bytes: len, md5 }));
    assert_eq!((put.size_bytes, put.etag.as_str()), (len, hex_of(&md5).as_str()));
    let memory = s[0].body_memory();
    let put_bound = (PUT_BLOCKS_HELD_MAX * BLOCK) as u64;
    assert!(memory.high_water_bytes() <= put_bound, "{} > {put_bound}", memory.high_water_bytes());
    // The bound is reached, not avoided by writing one block at a time.
    assert!(memory.high_water_bytes() >= 2 * BLOCK as u64, "blocks were written in parallel");
    assert_eq!(memory.held_bytes(), 0, "nothing held after the put");

    // Read back through another node, chunk by chunk, hashing as we go.
    let (record, mut reader) = s[1].open_object("b", "big", None).await.unwrap();
    assert_eq!(record.size_bytes, len);
    let (mut md5_read, mut read) = (Md5::new(), 0u64);
    while let Some(chunk) = reader.next_chunk().await.unwrap() {
        md5_read.update(&chunk);
        read += chunk.len() as u64;
    }
    assert_eq!((read, <[u8; 16]>::from(md5_read.finalize())), (len, md5));
    drop(reader);
    let memory = s[1].body_memory();
    let get_bound = (GET_BLOCKS_HELD_MAX * BLOCK) as u64;
    assert!(memory.high_water_bytes() <= get_bound, "{} > {get_bound}", memory.high_water_bytes());
    assert!(memory.high_water_bytes() >= 2 * BLOCK as u64, "blocks were read ahead");
    assert_eq!(memory.held_bytes(), 0, "nothing held after the get");
}

#[tokio::test(start_paused = true)]
async fn ranges_read_only_the_blocks_they_need() {
    let (_cluster, s) = small_block_stores().await;
    s[0].create_bucket("b").await.unwrap();
    let len = (10 * BLOCK) as u64;
    s[0].put_object_stream("b", "k", UploadMeta::default(), &mut Generated::new(len))
        .await
        .unwrap();
    // Within one block, across a boundary, the tail, and an end past the body.
    let cases =
        [(5, 17), (BLOCK as u64 - 3, BLOCK as u64 + 9), (len - 100, len), (len - 1, len + 50)];
    for (start, end) in cases {
        let (_, mut reader) = s[2].open_object("b", "k", None).await.unwrap();
        reader.select(start, end);
        s[2].body_memory().reset_high_water();
        let got = reader.read_all().await.unwrap();
        let want: Vec<u8> = (start..end.min(len)).map(byte_at).collect();
        assert!(got == want, "range {start}..{end}");
        let blocks = (end.min(len) - 1) / BLOCK as u64 - start / BLOCK as u64 + 1;
        let held = s[2].body_memory().high_water_bytes();
        assert!(held <= blocks * BLOCK as u64, "range {start}..{end} held {held} bytes");
    }
}

#[tokio::test(start_paused = true)]
async fn a_refused_or_broken_body_is_never_visible_and_its_blocks_are_collected() {
    let (cluster, s) = small_block_stores().await;
    s[0].create_bucket("b").await.unwrap();
    let before = (3 * BLOCK) as u64;
    s[0].put_object_stream("b", "k", UploadMeta::default(), &mut Generated::new(before))
        .await
        .unwrap();
    assert_eq!(blocks_on_each_node(&cluster), vec![3; 3]);

    let mut refused = Generated::new((20 * BLOCK) as u64);
    refused.refuse = true;
    let err = s[1].put_object_stream("b", "k", UploadMeta::default(), &mut refused).await;
    assert!(matches!(err, Err(ObjectError::BodyRefused { .. })), "{err:?}");
    let mut broken = Generated::new((20 * BLOCK) as u64);
    broken.fail_after = Some((7 * BLOCK + 5) as u64);
    let err = s[2].put_object_stream("b", "k", UploadMeta::default(), &mut broken).await;
    assert!(matches!(err, Err(ObjectError::BodyRefused { .. })), "{err:?}");
    assert!(broken.finished_with.is_none(), "a broken body is never offered for acceptance");
    // A refused inline-sized body too.
    let mut small = Generated::new(100);
    small.refuse = true;
    let err = s[0].put_object_stream("b", "small", UploadMeta::default(), &mut small).await;
    assert!(matches!(err, Err(ObjectError::BodyRefused { .. })), "{err:?}");

    for store in &s {
        let got = store.get_object("b", "k").await.unwrap();
        assert_eq!(got.data.len() as u64, before, "the previous version stays current");
        assert_eq!(store.get_object("b", "small").await, Err(ObjectError::NoSuchKey));
    }
    let_gc_run().await;
    assert_eq!(blocks_on_each_node(&cluster), vec![3; 3], "only the previous body's blocks");
}
