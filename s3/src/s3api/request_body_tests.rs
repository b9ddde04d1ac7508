//! `RequestBody` on whole bodies: what it accepts, what it refuses and with which S3 error,
//! and that every end-of-body check runs in `finish` (before anything becomes visible).

use hyper::header::{HeaderName, HeaderValue};
use md5::Md5;

use super::*;
use crate::s3api::encoding::base64_encode;

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(HeaderName::from_static(k), HeaderValue::from_str(v).unwrap());
    }
    h
}

/// Runs the body through as the engine would: every chunk, then `finish`.
async fn run(body: &mut RequestBody) -> Result<(Vec<u8>, BodyEnd), S3Error> {
    let mut data = Vec::new();
    loop {
        match body.next_chunk().await {
            Ok(Some(chunk)) => data.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(_) => return Err(body.failure.take().expect("a refusal says why")),
        }
    }
    let summary = BodySummary { size_bytes: data.len() as u64, md5: Md5::digest(&data).into() };
    match body.finish(&summary) {
        Ok(end) => Ok((data, end)),
        Err(_) => Err(body.failure.take().expect("a refusal says why")),
    }
}

async fn put(data: &'static [u8], h: &HeaderMap, payload: PayloadHash) -> Result<BodyEnd, S3Error> {
    let mut body = RequestBody::from_bytes(Bytes::from_static(data), h, &payload)?;
    run(&mut body).await.map(|(_, end)| end)
}

#[tokio::test]
async fn the_etag_is_the_md5_and_a_verified_checksum_is_kept() {
    let h = headers(&[("x-amz-checksum-crc32", "NhCmhg==")]);
    let end = put(b"hello", &h, PayloadHash::Unsigned).await.unwrap();
    assert_eq!(end.etag, "5d41402abc4b2a76b9719d911017c592");
    let stored: Vec<_> = end.extra_metadata.into_iter().collect();
    assert_eq!(stored, [(" checksum:x-amz-checksum-crc32".to_string(), "NhCmhg==".to_string())]);
}

#[tokio::test]
async fn digests_that_do_not_match_are_refused_at_the_end() {
    let wrong_crc = headers(&[("x-amz-checksum-crc32", "AAAAAA==")]);
    assert_eq!(put(b"hello", &wrong_crc, PayloadHash::Unsigned).await, Err(S3Error::BadDigest));
    let md5 = base64_encode(&Md5::digest(b"other"));
    let wrong_md5 = headers(&[("content-md5", &md5)]);
    assert_eq!(put(b"hello", &wrong_md5, PayloadHash::Unsigned).await, Err(S3Error::BadDigest));
    let right_md5 = headers(&[("content-md5", &base64_encode(&Md5::digest(b"hello")))]);
    assert!(put(b"hello", &right_md5, PayloadHash::Unsigned).await.is_ok());
    let sha = PayloadHash::Sha256(Sha256::digest(b"other").into());
    let none = HeaderMap::new();
    assert_eq!(put(b"hello", &none, sha).await, Err(S3Error::ContentSha256Mismatch));
    let sha = PayloadHash::Sha256(Sha256::digest(b"hello").into());
    assert!(put(b"hello", &none, sha).await.is_ok());
}

#[tokio::test]
async fn malformed_headers_are_refused_before_the_body_is_read() {
    let bad_md5 = headers(&[("content-md5", "short")]);
    let made = RequestBody::new(None, &bad_md5, &PayloadHash::Unsigned, 100);
    assert_eq!(made.err(), Some(S3Error::InvalidDigest));
    let huge = headers(&[("content-length", "101")]);
    let made = RequestBody::new(None, &huge, &PayloadHash::Unsigned, 100);
    assert_eq!(made.err(), Some(S3Error::EntityTooLarge { size_bytes_max: 100 }));
    let chunked = PayloadHash::Chunked { signing: None, trailer: true };
    let no_length = headers(&[("x-amz-trailer", "x-amz-checksum-crc32")]);
    let made = RequestBody::new(None, &no_length, &chunked, 100);
    assert_eq!(made.err(), Some(S3Error::MissingContentLength));
    let trailer_without_chunks = headers(&[("x-amz-trailer", "x-amz-checksum-crc32")]);
    let made = RequestBody::new(None, &trailer_without_chunks, &PayloadHash::Unsigned, 100);
    assert_eq!(made.err().map(|e| e.code()), Some("InvalidRequest"));
}

#[tokio::test]
async fn an_unsigned_trailer_checksum_is_verified() {
    let chunked = PayloadHash::Chunked { signing: None, trailer: true };
    let h = headers(&[
        ("x-amz-trailer", "x-amz-checksum-crc32"),
        ("x-amz-decoded-content-length", "5"),
    ]);
    let good = b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\n\r\n";
    let end = put(good, &h, chunked.clone()).await.unwrap();
    assert_eq!(end.etag, "5d41402abc4b2a76b9719d911017c592");
    let bad = b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n";
    assert_eq!(put(bad, &h, chunked.clone()).await, Err(S3Error::BadDigest));
    let missing = b"5\r\nhello\r\n0\r\n\r\n";
    let err = put(missing, &h, chunked.clone()).await.unwrap_err();
    assert_eq!(err.code(), "InvalidRequest", "an announced trailer that never came");
    let short = b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\n";
    assert_eq!(put(short, &h, chunked).await, Err(S3Error::IncompleteBody));
}

#[tokio::test]
async fn a_body_longer_than_declared_is_refused_as_it_arrives() {
    let chunked = PayloadHash::Chunked { signing: None, trailer: false };
    let h = headers(&[("x-amz-decoded-content-length", "3")]);
    assert_eq!(put(b"5\r\nhello\r\n0\r\n\r\n", &h, chunked).await, Err(S3Error::IncompleteBody));
}
