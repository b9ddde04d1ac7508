//! Server-side copies over a three-node `TestCluster` (paused time).
//!
//! Guards the one thing a block-referencing copy can get wrong: the copy shares the
//! source's blocks, so deleting the source must not let the collector take blocks the copy
//! still uses. Also checks that a copy writes no block (the data is not re-read or
//! re-written) and that a whole-object part copy assembles into the right object.

use std::collections::BTreeMap;

use super::ObjectError;
use super::multipart::{PART_SIZE_BYTES_MIN, UploadMeta};
use crate::block::BLOCK_SIZE_BYTES_DEFAULT;
use crate::node_tests::{blocks_on_each_node, let_gc_run, meta, object_stores, patterned};

fn copy_meta(content_type: &str) -> UploadMeta {
    let user_metadata = BTreeMap::from([("copied".to_string(), "yes".to_string())]);
    UploadMeta { content_type: content_type.into(), user_metadata }
}

#[tokio::test(start_paused = true)]
async fn a_copy_shares_the_blocks_and_outlives_its_deleted_source_through_gc() {
    let (cluster, s) = object_stores().await;
    s[0].create_bucket("src").await.unwrap();
    s[0].create_bucket("dst").await.unwrap();
    let data = patterned(3 * BLOCK_SIZE_BYTES_DEFAULT + 777);
    let put = s[0].put_object("src", "k", meta("a/b", "etag-src"), data.clone()).await.unwrap();
    let blocks_before = blocks_on_each_node(&cluster);
    assert_eq!(blocks_before, vec![4; 3]);

    let version = put.version_id.to_hex();
    let copy =
        s[1].copy_object(("src", "k", &version), "dst", "c", copy_meta("x/y")).await.unwrap();
    assert_eq!((copy.etag.as_str(), copy.size_bytes), ("etag-src", data.len() as u64));
    assert_eq!(blocks_on_each_node(&cluster), blocks_before, "no block was written");

    s[2].delete_object("src", "k").await.unwrap();
    let_gc_run().await;
    assert_eq!(blocks_on_each_node(&cluster), blocks_before, "the copy keeps every block");
    for store in &s {
        let got = store.get_object("dst", "c").await.unwrap();
        assert!(got.data == data, "the copy reads back whole after the source is gone");
        assert_eq!(got.content_type, "x/y");
        assert_eq!(got.user_metadata.get("copied").map(String::as_str), Some("yes"));
    }

    // And once the copy goes too, the blocks are collected.
    s[0].delete_object("dst", "c").await.unwrap();
    let_gc_run().await;
    assert_eq!(blocks_on_each_node(&cluster), vec![0; 3]);
}

#[tokio::test(start_paused = true)]
async fn inline_copies_carry_their_data_and_missing_sources_are_refused() {
    let (_cluster, s) = object_stores().await;
    s[0].create_bucket("b").await.unwrap();
    let put = s[0].put_object("b", "small", meta("t/t", "e1"), b"tiny".to_vec()).await.unwrap();
    let version = put.version_id.to_hex();
    s[0].copy_object(("b", "small", &version), "b", "small2", copy_meta("t/u")).await.unwrap();
    s[0].delete_object("b", "small").await.unwrap();
    let got = s[1].get_object("b", "small2").await.unwrap();
    assert_eq!((got.data.as_slice(), got.etag.as_str()), (&b"tiny"[..], "e1"));

    // The exact version was asked for: once it is replaced (unversioned bucket), it is gone.
    let gone = s[2].copy_object(("b", "small", &version), "b", "x", copy_meta("t")).await;
    assert_eq!(gone, Err(ObjectError::NoSuchVersion));
    let no_bucket = s[2].copy_object(("b", "small2", &version), "nope", "x", copy_meta("t"));
    assert_eq!(no_bucket.await, Err(ObjectError::NoSuchBucket));
    assert_eq!(s[1].get_object("b", "x").await, Err(ObjectError::NoSuchKey));
}

#[tokio::test(start_paused = true)]
async fn a_whole_object_part_copy_references_the_source_and_survives_its_deletion() {
    let (cluster, s) = object_stores().await;
    s[0].create_bucket("b").await.unwrap();
    let part1 = patterned(PART_SIZE_BYTES_MIN as usize);
    let src = s[0].put_object("b", "src", meta("a/b", "e-src"), part1.clone()).await.unwrap();
    let blocks_before = blocks_on_each_node(&cluster);
    let upload = s[1].create_multipart_upload("b", "mp", UploadMeta::default()).await.unwrap();
    let version = src.version_id.to_hex();
    let etag = s[1].upload_part_copy(("b", "mp", &upload), 1, ("b", "src", &version)).await;
    assert_eq!(etag, Ok(Some("e-src".to_string())));
    assert_eq!(blocks_on_each_node(&cluster), blocks_before, "no block was written");
    let tail = b"the tail".to_vec();
    s[2].upload_part("b", "mp", &upload, 2, tail.clone(), "e2".into()).await.unwrap();
    s[0].delete_object("b", "src").await.unwrap();
    let parts = vec![(1, "e-src".to_string()), (2, "e2".to_string())];
    s[0].complete_multipart_upload("b", "mp", &upload, &parts, "final-2".into()).await.unwrap();
    let_gc_run().await;
    let got = s[2].get_object("b", "mp").await.unwrap();
    let want: Vec<u8> = part1.into_iter().chain(tail).collect();
    assert!(got.data == want, "the assembled object reads back after its source is gone");

    // An inline source cannot be a part by reference: the caller streams it instead.
    let small = s[0].put_object("b", "small", meta("a/b", "e-s"), vec![1, 2, 3]).await.unwrap();
    let upload = s[0].create_multipart_upload("b", "mp2", UploadMeta::default()).await.unwrap();
    let version = small.version_id.to_hex();
    let by_ref = s[0].upload_part_copy(("b", "mp2", &upload), 1, ("b", "small", &version)).await;
    assert_eq!(by_ref, Ok(None));
}

/// How clients change an object's metadata: a copy onto itself. In a bucket without
/// history the new version replaces (prunes) the source version, whose references the
/// collector then retires — the blocks must stay, held by the new version's references.
#[tokio::test(start_paused = true)]
async fn a_copy_onto_itself_keeps_its_blocks_after_the_old_version_is_pruned() {
    let (cluster, s) = object_stores().await;
    s[0].create_bucket("b").await.unwrap();
    let data = patterned(2 * BLOCK_SIZE_BYTES_DEFAULT + 5);
    let put = s[0].put_object("b", "k", meta("a/b", "e"), data.clone()).await.unwrap();
    let version = put.version_id.to_hex();
    let copy = s[1].copy_object(("b", "k", &version), "b", "k", copy_meta("new/type")).await;
    assert!(copy.unwrap().version_id > put.version_id);
    let_gc_run().await;
    assert_eq!(blocks_on_each_node(&cluster), vec![3; 3]);
    let got = s[2].get_object("b", "k").await.unwrap();
    assert!(got.data == data);
    assert_eq!((got.content_type.as_str(), got.etag.as_str()), ("new/type", "e"));
    let old = s[2].get_object_version("b", "k", Some(&version)).await;
    assert_eq!(old, Err(ObjectError::NoSuchVersion), "the old version was replaced");
}
