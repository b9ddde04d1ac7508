//! Multipart uploads over a three-node `TestCluster` (paused time): parts through different
//! coordinators, completion rules, abort, listings, and what the block collector keeps.

use std::collections::BTreeMap;

use super::ObjectError;
use super::multipart::{PART_SIZE_BYTES_MIN, UploadMeta};
use crate::block::BLOCK_SIZE_BYTES_DEFAULT;
use crate::node_tests::{blocks_on_each_node, let_gc_run, object_stores, patterned};

const PART_BYTES: usize = PART_SIZE_BYTES_MIN as usize;

/// A body whose blocks differ from those of any other `salt` (and from each other).
fn body(len: usize, salt: u8) -> Vec<u8> {
    patterned(len).into_iter().map(|b| b.wrapping_add(salt)).collect()
}

fn upload_meta() -> UploadMeta {
    let user_metadata = BTreeMap::from([("owner".to_string(), "ops".to_string())]);
    UploadMeta { content_type: "video/mp4".into(), user_metadata }
}

fn chosen(parts: &[(u32, &str)]) -> Vec<(u32, String)> {
    parts.iter().map(|(n, e)| (*n, e.to_string())).collect()
}

#[tokio::test(start_paused = true)]
async fn parts_uploaded_out_of_order_and_replaced_complete_into_the_right_object() {
    let (cluster, s) = object_stores().await;
    s[0].create_bucket("b").await.unwrap();
    let id = s[0].create_multipart_upload("b", "k", upload_meta()).await.unwrap();
    let (p1, p2_old, p2, p3) =
        (body(PART_BYTES, 1), body(PART_BYTES, 2), body(PART_BYTES, 3), body(100_000, 4));
    // Out of order, through every coordinator, part 2 twice.
    s[1].upload_part("b", "k", &id, 3, p3.clone(), "e3".into()).await.unwrap();
    s[2].upload_part("b", "k", &id, 2, p2_old, "e2-old".into()).await.unwrap();
    s[0].upload_part("b", "k", &id, 1, p1.clone(), "e1".into()).await.unwrap();
    s[1].upload_part("b", "k", &id, 2, p2.clone(), "e2".into()).await.unwrap();
    let per_part = PART_BYTES / BLOCK_SIZE_BYTES_DEFAULT;
    assert_eq!(blocks_on_each_node(&cluster), vec![3 * per_part + 1; 3]);

    let parts = s[2].list_parts("b", "k", &id).await.unwrap();
    let seen: Vec<_> =
        parts.iter().map(|p| (p.part_number, p.etag.as_str(), p.size_bytes)).collect();
    assert_eq!(
        seen,
        [(1, "e1", PART_SIZE_BYTES_MIN), (2, "e2", PART_SIZE_BYTES_MIN), (3, "e3", 100_000)]
    );

    let list = chosen(&[(1, "e1"), (2, "e2"), (3, "e3")]);
    let done = s[2].complete_multipart_upload("b", "k", &id, &list, "md5-3".into()).await.unwrap();
    assert_eq!(done.version_id.to_hex(), id, "the upload id names the object's version");
    let expected: Vec<u8> = [p1, p2, p3].concat();
    assert_eq!(done.size_bytes, expected.len() as u64);
    for store in &s {
        let got = store.get_object("b", "k").await.unwrap();
        assert!(got.data == expected, "the body is the newest upload of each chosen part");
        assert_eq!((got.etag.as_str(), got.content_type.as_str()), ("md5-3", "video/mp4"));
        assert_eq!(got.user_metadata, upload_meta().user_metadata);
    }
    assert!(s[1].list_multipart_uploads("b", "", 100).await.unwrap().is_empty());
    assert_eq!(s[1].list_parts("b", "k", &id).await, Err(ObjectError::NoSuchUpload));
    // A retried completion (the client lost the first answer) gets the same object.
    let again = s[0].complete_multipart_upload("b", "k", &id, &list, "md5-3".into()).await;
    assert_eq!(again.unwrap().version_id, done.version_id);

    let_gc_run().await;
    let kept = 2 * per_part + 1;
    assert_eq!(blocks_on_each_node(&cluster), vec![kept; 3], "the replaced part 2 is collected");
    assert!(s[1].get_object("b", "k").await.unwrap().data == expected);
}

#[tokio::test(start_paused = true)]
async fn completion_refuses_wrong_etags_small_middle_parts_and_disorder() {
    let (_cluster, s) = object_stores().await;
    s[0].create_bucket("b").await.unwrap();
    let id = s[0].create_multipart_upload("b", "k", UploadMeta::default()).await.unwrap();
    let (p1, p2) = (body(1_000, 1), body(2_000, 2));
    s[0].upload_part("b", "k", &id, 1, p1, "e1".into()).await.unwrap();
    s[1].upload_part("b", "k", &id, 2, p2.clone(), "e2".into()).await.unwrap();
    let complete = |list: &[(u32, &str)]| {
        let list = chosen(list);
        let store = &s[2];
        let id = id.clone();
        async move { store.complete_multipart_upload("b", "k", &id, &list, "f".into()).await }
    };
    assert_eq!(
        complete(&[(1, "wrong"), (2, "e2")]).await,
        Err(ObjectError::InvalidPart { part_number: 1 })
    );
    assert_eq!(complete(&[(3, "e3")]).await, Err(ObjectError::InvalidPart { part_number: 3 }));
    assert_eq!(
        complete(&[(1, "e1"), (2, "e2")]).await,
        Err(ObjectError::EntityTooSmall { part_number: 1, size_bytes: 1_000 })
    );
    assert_eq!(complete(&[(2, "e2"), (1, "e1")]).await, Err(ObjectError::InvalidPartOrder));
    assert_eq!(complete(&[]).await, Err(ObjectError::InvalidPartOrder));
    // Refused completions leave the upload open; a single (last) part may be small.
    assert_eq!(s[0].list_parts("b", "k", &id).await.unwrap().len(), 2);
    complete(&[(2, "e2")]).await.unwrap();
    assert_eq!(s[0].get_object("b", "k").await.unwrap().data, p2);
}

#[tokio::test(start_paused = true)]
async fn an_aborted_upload_leaves_the_previous_version_and_its_blocks_are_collected() {
    let (cluster, s) = object_stores().await;
    s[0].create_bucket("b").await.unwrap();
    let before = body(BLOCK_SIZE_BYTES_DEFAULT + 10, 9);
    s[0].put_object("b", "k", Default::default(), before.clone()).await.unwrap();
    let id = s[1].create_multipart_upload("b", "k", UploadMeta::default()).await.unwrap();
    s[2].upload_part("b", "k", &id, 1, body(PART_BYTES, 1), "e1".into()).await.unwrap();
    s[0].upload_part("b", "k", &id, 2, body(10, 2), "e2".into()).await.unwrap();
    let per_part = PART_BYTES / BLOCK_SIZE_BYTES_DEFAULT;
    assert_eq!(blocks_on_each_node(&cluster), vec![2 + per_part + 1; 3]);

    s[1].abort_multipart_upload("b", "k", &id).await.unwrap();
    s[2].abort_multipart_upload("b", "k", &id).await.expect("aborting again succeeds");
    for store in &s {
        assert!(store.get_object("b", "k").await.unwrap().data == before);
    }
    assert!(s[0].list_multipart_uploads("b", "", 10).await.unwrap().is_empty());
    let late = s[0].upload_part("b", "k", &id, 3, vec![1], "e3".into()).await;
    assert_eq!(late, Err(ObjectError::NoSuchUpload));
    let list = chosen(&[(1, "e1"), (2, "e2")]);
    let complete = s[0].complete_multipart_upload("b", "k", &id, &list, "f".into()).await;
    assert_eq!(complete, Err(ObjectError::NoSuchUpload));

    let_gc_run().await;
    assert_eq!(blocks_on_each_node(&cluster), vec![2; 3], "only the previous body's blocks");
    assert!(s[2].get_object("b", "k").await.unwrap().data == before);
}

#[tokio::test(start_paused = true)]
async fn unfinished_uploads_are_listed_by_key_and_prefix() {
    let (_cluster, s) = object_stores().await;
    s[0].create_bucket("b").await.unwrap();
    let mut ids = Vec::new();
    for (i, key) in ["b/1", "a/1", "a/2", "a/1", "gone"].into_iter().enumerate() {
        let id = s[i % 3].create_multipart_upload("b", key, UploadMeta::default()).await;
        ids.push((key, id.unwrap()));
    }
    s[0].abort_multipart_upload("b", "gone", &ids[4].1).await.unwrap();
    let listed = |prefix: &'static str, max: usize| {
        let store = &s[1];
        async move {
            let uploads = store.list_multipart_uploads("b", prefix, max).await.unwrap();
            uploads.into_iter().map(|u| (u.key, u.upload_id)).collect::<Vec<_>>()
        }
    };
    let owned = |i: usize| (ids[i].0.to_string(), ids[i].1.clone());
    // By key, then by age (upload ids sort like their creation stamps).
    assert_eq!(listed("", 100).await, [owned(1), owned(3), owned(2), owned(0)]);
    assert_eq!(listed("a/", 100).await, [owned(1), owned(3), owned(2)]);
    assert_eq!(listed("", 1).await, [owned(1)]);

    let missing = s[0].list_multipart_uploads("nope", "", 10).await;
    assert_eq!(missing, Err(ObjectError::NoSuchBucket));
    let bad_id = s[0].upload_part("b", "a/1", "not-an-id", 1, vec![1], "e".into()).await;
    assert_eq!(bad_id, Err(ObjectError::NoSuchUpload));
    let wrong_key = s[0].list_parts("b", "a/2", &ids[1].1).await;
    assert_eq!(wrong_key, Err(ObjectError::NoSuchUpload), "an upload id belongs to its key");
    let zero = s[0].upload_part("b", "a/1", &ids[1].1, 0, vec![1], "e".into()).await;
    assert_eq!(zero, Err(ObjectError::InvalidPartNumber { part_number: 0 }));
}
