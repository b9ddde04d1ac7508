use std::sync::Arc;

use http_body_util::BodyExt;

use hangar_engine::objects::body::VecSource;

use super::*;
use crate::s3api::backend::ObjectMeta;
use crate::s3api::memory::MemoryBackend;

async fn backend_with(keys: &[&str]) -> MemoryBackend {
    let b = MemoryBackend::new(Arc::new(|| 0));
    b.create_bucket("bk").await.unwrap();
    for key in keys {
        let meta = ObjectMeta::default();
        let mut body = VecSource::new(b"v".to_vec(), "e".into());
        b.put_object("bk", key, meta, &mut body).await.unwrap();
    }
    b
}

fn query(prefix: &str, delimiter: &str, start_after: &str, max_keys: usize) -> ListQuery {
    ListQuery {
        prefix: prefix.to_string(),
        delimiter: Some(delimiter.to_string()).filter(|d| !d.is_empty()),
        start_after: start_after.to_string(),
        max_keys,
    }
}

fn keys(listing: &Listing) -> Vec<&str> {
    listing.objects.iter().map(|o| o.key.as_str()).collect()
}

/// All entries of a listing, page by page, resuming after each page's last entry.
async fn all_pages(b: &MemoryBackend, prefix: &str, delim: &str, max_keys: usize) -> Vec<Listing> {
    let mut pages = Vec::new();
    let mut after = String::new();
    loop {
        let page = collect(b, "bk", &query(prefix, delim, &after, max_keys)).await.unwrap();
        let more = page.truncated;
        after = page.last_entry.clone().unwrap_or_default();
        pages.push(page);
        if !more {
            return pages;
        }
        assert!(pages.len() < 100, "pagination does not end");
    }
}

#[tokio::test]
async fn delimiter_rolls_up_common_prefixes() {
    let b = backend_with(&["a/1", "a/2", "b", "c/x/y", "c/z", "d"]).await;
    let top = collect(&b, "bk", &query("", "/", "", 1000)).await.unwrap();
    assert_eq!(keys(&top), ["b", "d"]);
    assert_eq!(top.common_prefixes, ["a/", "c/"]);
    assert!(!top.truncated);
    let inner = collect(&b, "bk", &query("c/", "/", "", 1000)).await.unwrap();
    assert_eq!(keys(&inner), ["c/z"]);
    assert_eq!(inner.common_prefixes, ["c/x/"]);
    let flat = collect(&b, "bk", &query("", "", "", 1000)).await.unwrap();
    assert_eq!(keys(&flat).len(), 6);
    assert!(flat.common_prefixes.is_empty());
}

#[tokio::test]
async fn multi_character_delimiter() {
    let b = backend_with(&["x--1", "x--2", "y", "z-a"]).await;
    let l = collect(&b, "bk", &query("", "--", "", 1000)).await.unwrap();
    assert_eq!(keys(&l), ["y", "z-a"]);
    assert_eq!(l.common_prefixes, ["x--"]);
}

#[tokio::test]
async fn pages_of_one_with_delimiter_visit_each_entry_once() {
    let b = backend_with(&["a/1", "a/2", "b", "c/x/y", "c/z", "d"]).await;
    let pages = all_pages(&b, "", "/", 1).await;
    let entries: Vec<String> = pages.iter().map(|p| p.last_entry.clone().unwrap()).collect();
    assert_eq!(entries, ["a/", "b", "c/", "d"]);
    let truncated: Vec<bool> = pages.iter().map(|p| p.truncated).collect();
    assert_eq!(truncated, [true, true, true, false]);
}

#[tokio::test]
async fn twenty_five_keys_in_pages_of_ten() {
    let names: Vec<String> = (0..25).map(|i| format!("k{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let b = backend_with(&refs).await;
    let pages = all_pages(&b, "k", "", 10).await;
    let sizes: Vec<usize> = pages.iter().map(|p| p.objects.len()).collect();
    assert_eq!(sizes, [10, 10, 5]);
    let listed: Vec<&str> = pages.iter().flat_map(keys).collect();
    assert_eq!(listed, refs);
}

#[tokio::test]
async fn large_rolled_up_directory_is_skipped_once() {
    // More keys under one prefix than a scan batch, plus one that sorts after the jump
    // target: the prefix must still be emitted exactly once.
    let mut names: Vec<String> = (0..2500).map(|i| format!("a/{i:04}")).collect();
    names.push("a/\u{10FFFF}z".to_string());
    names.push("b".to_string());
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let b = backend_with(&refs).await;
    let l = collect(&b, "bk", &query("", "/", "", 1000)).await.unwrap();
    assert_eq!(l.common_prefixes, ["a/"]);
    assert_eq!(keys(&l), ["b"]);
}

#[tokio::test]
async fn max_keys_zero_lists_nothing() {
    let b = backend_with(&["a"]).await;
    let l = collect(&b, "bk", &query("", "", "", 0)).await.unwrap();
    assert!(l.objects.is_empty() && l.last_entry.is_none());
}

async fn body_text(resp: Response<Full<Bytes>>) -> String {
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[tokio::test]
async fn v2_response_encodes_keys_and_paginates_with_token() {
    let b = backend_with(&["a b&c", "z"]).await;
    let q = params(&[("list-type", "2"), ("max-keys", "1"), ("encoding-type", "url")]);
    let text = body_text(list_objects_v2(&b, "bk", &q).await.unwrap()).await;
    assert!(text.contains("<Key>a%20b%26c</Key>"), "{text}");
    assert!(text.contains("<IsTruncated>true</IsTruncated>"), "{text}");
    assert!(text.contains("<KeyCount>1</KeyCount>"), "{text}");
    let token = hex::encode("a b&c");
    assert!(text.contains(&format!("<NextContinuationToken>{token}<")), "{text}");
    let q2 = params(&[("list-type", "2"), ("continuation-token", &token)]);
    let text2 = body_text(list_objects_v2(&b, "bk", &q2).await.unwrap()).await;
    assert!(text2.contains("<Key>z</Key>") && !text2.contains("a b"), "{text2}");
    assert!(text2.contains("<IsTruncated>false</IsTruncated>"), "{text2}");
}

#[tokio::test]
async fn v1_and_v2_reject_bad_arguments() {
    let b = backend_with(&[]).await;
    for q in [
        params(&[("max-keys", "-1")]),
        params(&[("encoding-type", "base64")]),
        params(&[("continuation-token", "zz")]),
    ] {
        let err = list_objects_v2(&b, "bk", &q).await.unwrap_err();
        assert_eq!(err.code(), "InvalidArgument", "{q:?}");
    }
    let err = list_objects_v1(&b, "nope", &[]).await.unwrap_err();
    assert_eq!(err.code(), "NoSuchBucket");
}
