//! PostObject end to end over the memory backend: a form signed as boto3 signs it, sent in
//! small pieces, and the ways it can be refused (nothing stored then).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use hyper::Request;

use super::*;
use crate::s3api::MemoryBackend;
use crate::s3api::backend::ObjectInfo;
use crate::s3api::encoding::base64_encode;
use crate::s3api::time::format_iso8601;

const NOW_MS: u64 = 1_790_000_000_000;
const AKID: &str = "GKpost";
const SECRET: &str = "secret";
const B: &str = "frm-bnd";

fn state() -> S3State {
    let clock: crate::s3api::WallClock = Arc::new(|| NOW_MS);
    let backend = Arc::new(MemoryBackend::new(clock.clone()));
    let keys = BTreeMap::from([(AKID.to_string(), SECRET.to_string())]);
    S3State::new(backend, "garage".into(), keys, clock)
}

fn parts(path: &str) -> Parts {
    let ct = format!("multipart/form-data; boundary={B}");
    let req = Request::post(path).header("host", "h").header("content-type", ct);
    req.body(()).unwrap().into_parts().0
}

/// The fields of a form signed for `region`, expiring `expires_ms` after now.
fn signed(region: &str, expires_ms: i64, conditions: &str) -> Vec<(String, String)> {
    let date = "20260922";
    let policy = format!(
        r#"{{"expiration": "{}", "conditions": [{{"bucket": "bk"}},
            ["starts-with", "$key", "up/"], {{"x-amz-algorithm": "AWS4-HMAC-SHA256"}},
            {{"x-amz-credential": "{AKID}/{date}/{region}/s3/aws4_request"}},
            {{"x-amz-date": "{date}T000000Z"}} {conditions}]}}"#,
        format_iso8601((NOW_MS as i64 + expires_ms) as u64)
    );
    let policy = base64_encode(policy.as_bytes());
    let key = sigv4::signing_key(SECRET, date, region);
    let signature = sigv4::signature_hex(&key, &policy);
    [
        ("key", "up/${filename}".to_string()),
        ("x-amz-algorithm", ALGORITHM.to_string()),
        ("x-amz-credential", format!("{AKID}/{date}/{region}/s3/aws4_request")),
        ("x-amz-date", format!("{date}T000000Z")),
        ("policy", policy),
        ("x-amz-signature", signature),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn body(fields: &[(String, String)], file: &[u8]) -> VecDeque<Bytes> {
    let mut out = Vec::new();
    for (name, value) in fields {
        let part = format!("--{B}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n");
        out.extend_from_slice(part.as_bytes());
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let head = format!(
        "--{B}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.txt\"\r\n\r\n"
    );
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(file);
    out.extend_from_slice(format!("\r\n--{B}--\r\n").as_bytes());
    out.chunks(13).map(Bytes::copy_from_slice).collect()
}

async fn post(
    state: &S3State,
    fields: &[(String, String)],
    file: &[u8],
) -> Result<Response<Full<Bytes>>, S3Error> {
    let mut access_key = None;
    post_form_upload(state, &parts("/bk"), body(fields, file), &mut access_key).await
}

fn run<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(fut)
}

fn stored(state: &S3State) -> Option<ObjectInfo> {
    run(state.backend.head_object("bk", "up/f.txt", None)).ok()
}

fn code(result: Result<Response<Full<Bytes>>, S3Error>) -> &'static str {
    match result {
        Ok(_) => "accepted",
        Err(e) => e.code(),
    }
}

#[test]
fn a_signed_form_is_stored_and_answered_204() {
    let state = state();
    run(state.backend.create_bucket("bk")).unwrap();
    let fields = signed("garage", 60_000, "");
    let resp = run(post(&state, &fields, b"hello form")).unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let info = stored(&state).unwrap();
    assert_eq!(info.size_bytes, 10);
    assert_eq!(resp.headers()[header::ETAG], format!("\"{}\"", info.etag));
}

#[test]
fn signature_scope_expiry_and_size_are_enforced() {
    let state = state();
    run(state.backend.create_bucket("bk")).unwrap();
    let mut tampered = signed("garage", 60_000, "");
    tampered[4].1 = base64_encode(br#"{"expiration": "2099-01-01T00:00:00Z", "conditions": []}"#);
    assert_eq!(code(run(post(&state, &tampered, b"x"))), "SignatureDoesNotMatch");
    let other_region = signed("us-east-1", 60_000, "");
    let err = run(post(&state, &other_region, b"x")).unwrap_err();
    assert!(err.message().contains("expecting 'garage'"), "{}", err.message());
    let expired = signed("garage", -1, "");
    let err = run(post(&state, &expired, b"x")).unwrap_err();
    assert_eq!(err.message(), "Invalid according to Policy: Policy expired.");
    let sized = signed("garage", 60_000, r#", ["content-length-range", 2, 100]"#);
    assert_eq!(code(run(post(&state, &sized, &[b'z'; 101]))), "EntityTooLarge");
    assert_eq!(code(run(post(&state, &sized, b"z"))), "EntityTooSmall");
    let mut unsigned = signed("garage", 60_000, "");
    unsigned.retain(|(n, _)| n != "policy");
    assert_eq!(code(run(post(&state, &unsigned, b"x"))), "AccessDenied");
    assert!(stored(&state).is_none(), "no refused form stores anything");
    assert_eq!(code(run(post(&state, &sized, &[b'z'; 100]))), "accepted");
}

#[test]
fn forms_route_only_as_plain_bucket_posts() {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", "multipart/form-data; boundary=x".parse().unwrap());
    assert!(is_form_upload(&Method::POST, &[], &headers));
    assert!(!is_form_upload(&Method::POST, &[("delete".into(), String::new())], &headers));
    assert!(!is_form_upload(&Method::PUT, &[], &headers));
    headers.insert("content-type", "application/xml".parse().unwrap());
    assert!(!is_form_upload(&Method::POST, &[], &headers));
}
