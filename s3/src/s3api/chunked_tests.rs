//! The aws-chunked decoder against the example AWS publishes for chunked uploads ("Example:
//! PUT Object", SigV4 streaming: 66560 bytes of 'a' in chunks of 64 KiB and 1 KiB, bucket
//! `examplebucket`, 2013-05-24), fed in awkward pieces; tampering of every kind.

use super::*;
use crate::s3api::sigv4::{CanonicalInput, canonical_request, scope, signing_key, string_to_sign};
use hyper::HeaderMap;
use hyper::header::{HeaderName, HeaderValue};

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const DATE: &str = "20130524T000000Z";
const SEED: &str = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
const SIG1: &str = "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648";
const SIG2: &str = "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497";
const SIG_LAST: &str = "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9";

fn signing() -> ChunkSigning {
    ChunkSigning {
        key: signing_key(SECRET, "20130524", "us-east-1"),
        amz_date: DATE.into(),
        scope: scope("20130524", "us-east-1"),
        seed_signature: SEED.into(),
    }
}

fn example_body(sigs: [&str; 3]) -> Vec<u8> {
    let mut body = format!("10000;chunk-signature={}\r\n", sigs[0]).into_bytes();
    body.extend(std::iter::repeat_n(b'a', 65536));
    body.extend(format!("\r\n400;chunk-signature={}\r\n", sigs[1]).into_bytes());
    body.extend(std::iter::repeat_n(b'a', 1024));
    body.extend(format!("\r\n0;chunk-signature={}\r\n\r\n", sigs[2]).into_bytes());
    body
}

/// Decodes `body` fed in pieces of `piece` bytes; the data, or the first error.
fn decode(mut decoder: ChunkedDecoder, body: &[u8], piece: usize) -> Result<Vec<u8>, S3Error> {
    let mut out = Vec::new();
    for part in body.chunks(piece) {
        let mut input = Bytes::copy_from_slice(part);
        while let Some(data) = decoder.next(&mut input)? {
            out.extend_from_slice(&data);
        }
    }
    if !decoder.is_done() {
        return Err(S3Error::IncompleteBody);
    }
    Ok(out)
}

#[test]
fn the_seed_signature_of_the_aws_example_is_the_request_signature() {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("content-encoding", "aws-chunked"),
        ("content-length", "66824"),
        ("host", "s3.amazonaws.com"),
        ("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
        ("x-amz-date", DATE),
        ("x-amz-decoded-content-length", "66560"),
        ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
    ] {
        h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
    }
    let signed: Vec<String> = "content-encoding;content-length;host;x-amz-content-sha256;\
         x-amz-date;x-amz-decoded-content-length;x-amz-storage-class"
        .split(';')
        .map(str::to_string)
        .collect();
    let input = CanonicalInput {
        method: "PUT",
        raw_path: "/examplebucket/chunkObject.txt",
        query: &[],
        headers: &h,
        signed_headers: &signed,
        payload_hash: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
    };
    let creq = canonical_request(&input).unwrap();
    let sts = string_to_sign(DATE, &scope("20130524", "us-east-1"), &creq);
    assert_eq!(sigv4::signature_hex(&signing().key, &sts), SEED);
}

#[test]
fn the_aws_example_decodes_whatever_the_pieces() {
    let body = example_body([SIG1, SIG2, SIG_LAST]);
    assert_eq!(body.len(), 66824, "the example's Content-Length");
    for piece in [1, 7, 86, 4096, 65536, body.len()] {
        let out = decode(ChunkedDecoder::new(Some(signing())), &body, piece).unwrap();
        assert!(out.len() == 66560 && out.iter().all(|&b| b == b'a'), "piece {piece}");
    }
}

#[test]
fn tampered_chunks_are_refused() {
    let good = example_body([SIG1, SIG2, SIG_LAST]);
    let mismatch = Err(S3Error::SignatureDoesNotMatch);
    let mut flipped = good.clone();
    flipped[100] = b'b';
    assert_eq!(decode(ChunkedDecoder::new(Some(signing())), &flipped, 999), mismatch);
    // Chunks in the wrong order carry signatures that do not chain.
    let swapped = example_body([SIG2, SIG1, SIG_LAST]);
    assert_eq!(decode(ChunkedDecoder::new(Some(signing())), &swapped, 999), mismatch);
    // A missing signature where one is required.
    let unsigned = b"3\r\nabc\r\n0\r\n\r\n";
    assert_eq!(decode(ChunkedDecoder::new(Some(signing())), unsigned, 5), mismatch);
    // Cut short, or with bytes after the end.
    let cut = &good[..good.len() - 2];
    assert_eq!(
        decode(ChunkedDecoder::new(Some(signing())), cut, 999),
        Err(S3Error::IncompleteBody)
    );
    let mut long = good.clone();
    long.extend_from_slice(b"x");
    assert_eq!(
        decode(ChunkedDecoder::new(Some(signing())), &long, 999).unwrap_err().code(),
        "InvalidRequest"
    );
    // A chunk longer than its declared size.
    let overlong = b"3\r\nabcd\r\n0\r\n\r\n";
    assert_eq!(
        decode(ChunkedDecoder::new(None), overlong, 3).unwrap_err().code(),
        "InvalidRequest"
    );
}

#[test]
fn unsigned_trailers_are_collected() {
    let body = b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\n\r\n";
    for piece in [1, 3, body.len()] {
        let mut d = ChunkedDecoder::new(None);
        let mut out = Vec::new();
        for part in body.chunks(piece) {
            let mut input = Bytes::copy_from_slice(part);
            while let Some(data) = d.next(&mut input).unwrap() {
                out.extend_from_slice(&data);
            }
        }
        assert!(d.is_done());
        assert_eq!(out, b"hello");
        assert_eq!(d.trailers(), [("x-amz-checksum-crc32".to_string(), "NhCmhg==".to_string())]);
    }
}

/// A signed body with a signed trailer, built the way the SigV4 streaming description
/// says: the trailer's string to sign chains from the last chunk's signature.
fn signed_trailer_body(trailer_value: &str, sign_value: &str) -> Vec<u8> {
    let s = signing();
    let chunk_sig = |previous: &str, data: &[u8]| {
        let sts = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{DATE}\n{}\n{previous}\n{EMPTY_SHA256}\n{}",
            s.scope,
            hex::encode(Sha256::digest(data))
        );
        sigv4::signature_hex(&s.key, &sts)
    };
    let first = chunk_sig(SEED, b"hello");
    let last = chunk_sig(&first, b"");
    let canonical = format!("x-amz-checksum-crc32:{sign_value}\n");
    let sts = format!(
        "AWS4-HMAC-SHA256-TRAILER\n{DATE}\n{}\n{last}\n{}",
        s.scope,
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let trailer_sig = sigv4::signature_hex(&s.key, &sts);
    format!(
        "5;chunk-signature={first}\r\nhello\r\n0;chunk-signature={last}\r\n\
         x-amz-checksum-crc32:{trailer_value}\r\nx-amz-trailer-signature:{trailer_sig}\r\n\r\n"
    )
    .into_bytes()
}

#[test]
fn signed_trailers_are_checked() {
    let good = signed_trailer_body("NhCmhg==", "NhCmhg==");
    let mut d = ChunkedDecoder::new(Some(signing()));
    let mut input = Bytes::from(good);
    assert_eq!(d.next(&mut input).unwrap().as_deref(), Some(&b"hello"[..]));
    assert_eq!(d.next(&mut input).unwrap(), None);
    assert!(d.is_done());
    assert_eq!(d.trailers(), [("x-amz-checksum-crc32".to_string(), "NhCmhg==".to_string())]);
    let forged = signed_trailer_body("AAAAAA==", "NhCmhg==");
    assert_eq!(
        decode(ChunkedDecoder::new(Some(signing())), &forged, 10),
        Err(S3Error::SignatureDoesNotMatch),
        "a trailer changed after signing"
    );
}
