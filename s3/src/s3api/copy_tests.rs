//! The copy rules that are pure functions: source header, range, conditions, dates.

use std::collections::BTreeMap;

use hyper::header::HeaderMap;

use super::*;

fn info(etag: &str, last_modified_ms: u64) -> ObjectInfo {
    ObjectInfo {
        key: "k".into(),
        version_id: "0".repeat(32),
        size_bytes: 10,
        etag: etag.into(),
        last_modified_ms,
        content_type: "t".into(),
        user_metadata: BTreeMap::new(),
    }
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in pairs {
        h.insert(*name, value.parse().unwrap());
    }
    h
}

#[test]
fn parses_http_dates() {
    assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:10 GMT"), Some(10_000));
    assert_eq!(parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT"), Some(1_445_412_480_000));
    for bad in ["", "21 Oct 2015", "Wed, 21 Foo 2015 07:28:00 GMT", "Wed, 21 Oct 2015 7:28 GMT"] {
        assert_eq!(parse_http_date(bad), None, "{bad}");
    }
}

#[test]
fn copy_conditions_follow_s3_precedence() {
    // Last modified 2015-10-21 07:28:00.
    let src = info("abc", 1_445_412_480_500);
    let (before, after) = ("Wed, 21 Oct 2015 07:27:59 GMT", "Wed, 21 Oct 2015 07:28:01 GMT");
    let ok = |pairs: &[(&'static str, &str)]| check_copy_conditions(&headers(pairs), &src);
    let failed = Err(S3Error::PreconditionFailed);
    assert_eq!(ok(&[]), Ok(()));
    assert_eq!(ok(&[("x-amz-copy-source-if-match", "\"abc\"")]), Ok(()));
    assert_eq!(ok(&[("x-amz-copy-source-if-match", "\"xyz\"")]), failed);
    assert_eq!(ok(&[("x-amz-copy-source-if-none-match", "\"abc\"")]), failed);
    assert_eq!(ok(&[("x-amz-copy-source-if-none-match", "\"xyz\"")]), Ok(()));
    assert_eq!(ok(&[("x-amz-copy-source-if-unmodified-since", before)]), failed);
    assert_eq!(ok(&[("x-amz-copy-source-if-unmodified-since", after)]), Ok(()));
    assert_eq!(ok(&[("x-amz-copy-source-if-modified-since", after)]), failed);
    assert_eq!(ok(&[("x-amz-copy-source-if-modified-since", before)]), Ok(()));
    // A matching ETag overrides a failing date of its pair, as S3 documents.
    let pair =
        [("x-amz-copy-source-if-match", "abc"), ("x-amz-copy-source-if-unmodified-since", before)];
    assert_eq!(ok(&pair), Ok(()));
    let pair = [
        ("x-amz-copy-source-if-none-match", "xyz"),
        ("x-amz-copy-source-if-modified-since", after),
    ];
    assert_eq!(ok(&pair), Ok(()));
}

#[test]
fn copy_ranges_need_both_ends_within_the_source() {
    assert_eq!(parse_copy_range("bytes=0-9", 10), Ok((0, 10)));
    assert_eq!(parse_copy_range("bytes=3-3", 10), Ok((3, 4)));
    for bad in ["bytes=5-", "bytes=-5", "0-9", "bytes=a-b", "bytes=9-3"] {
        assert_eq!(parse_copy_range(bad, 10).unwrap_err().code(), "InvalidArgument", "{bad}");
    }
    assert_eq!(parse_copy_range("bytes=0-10", 10).unwrap_err().code(), "InvalidArgument");
}

#[test]
fn copy_sources_decode_and_validate() {
    let parsed = parse_copy_source("bk/a%20b/c").unwrap();
    assert_eq!((parsed.bucket.as_str(), parsed.key.as_str()), ("bk", "a b/c"));
    assert_eq!(parsed.version_id, None);
    let long = format!("bk/{}", "k".repeat(KEY_BYTES_MAX + 1));
    assert_eq!(parse_copy_source(&long).unwrap_err().code(), "KeyTooLongError");
}
