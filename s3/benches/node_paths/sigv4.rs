//! SigV4 verification of a realistic signed PUT: the header set the AWS CLI sends for a
//! 4 KiB upload (content type and length, Content-MD5, a user metadata header, the
//! payload's SHA-256), checked by the server's `authenticate` — scope, key, time, then
//! canonical request, string to sign, signing key and HMAC. The payload hash check of the
//! body is measured separately: it is per byte, the rest is per request.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, Throughput};
use hangar_s3::s3api::auth::{AuthConfig, PayloadHash, RequestView, authenticate};
use hangar_s3::s3api::sigv4::{self, CanonicalInput};
use hyper::HeaderMap;
use hyper::header::{HeaderName, HeaderValue};
use sha2::{Digest, Sha256};

const AKID: &str = "GKbench0000000000000000000";
const SECRET: &str = "bench-secret-0123456789abcdef0123456789abcdef0123456789abcdef01";
const REGION: &str = "hangar";
/// 2026-11-26T03:00:00Z, and the server's clock one second later.
const AMZ_DATE: &str = "20261126T030000Z";
const NOW_MS: u64 = 1_795_662_001_000;

/// The headers of a signed PUT of `body` to `/photos/2026/11/img_0042.jpg`.
fn signed_put(body: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: &str| {
        headers.insert(HeaderName::from_static(name), HeaderValue::from_str(value).unwrap());
    };
    set("host", "127.0.0.1:3900");
    set("content-type", "image/jpeg");
    set("content-length", &body.len().to_string());
    set("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg==");
    set("x-amz-meta-camera", "bench-cam");
    set("x-amz-date", AMZ_DATE);
    set("x-amz-content-sha256", &hex::encode(Sha256::digest(body)));
    set("user-agent", "aws-cli/2.15.0 Python/3.11 Linux/6.1 exe/x86_64 command/s3.cp");
    let payload = headers["x-amz-content-sha256"].to_str().unwrap().to_string();
    // Every header but user-agent is signed, as the CLI does.
    let mut signed: Vec<String> =
        headers.keys().map(|k| k.to_string()).filter(|k| k != "user-agent").collect();
    signed.sort();
    let input = CanonicalInput {
        method: "PUT",
        raw_path: PATH,
        query: &[],
        headers: &headers,
        signed_headers: &signed,
        payload_hash: &payload,
    };
    let creq = sigv4::canonical_request(&input).unwrap();
    let day = &AMZ_DATE[..8];
    let sts = sigv4::string_to_sign(AMZ_DATE, &sigv4::scope(day, REGION), &creq);
    let signature = sigv4::signature_hex(&sigv4::signing_key(SECRET, day, REGION), &sts);
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={AKID}/{day}/{REGION}/s3/aws4_request, \
         SignedHeaders={}, Signature={signature}",
        signed.join(";")
    );
    headers.insert(hyper::header::AUTHORIZATION, HeaderValue::from_str(&authorization).unwrap());
    headers
}

const PATH: &str = "/photos/2026/11/img_0042.jpg";

pub fn bench(c: &mut Criterion) {
    let body = vec![0x5au8; 4096];
    let headers = signed_put(&body);
    let keys = BTreeMap::from([(AKID.to_string(), SECRET.to_string())]);
    let cfg = AuthConfig { region: REGION, keys: &keys, now_ms: NOW_MS };
    let view = RequestView { method: "PUT", raw_path: PATH, query: &[], headers: &headers };
    // The benchmark must measure an accepted request, not a fast refusal.
    let accepted = authenticate(&view, &cfg).expect("the benchmark request verifies");

    let mut group = c.benchmark_group("sigv4");
    group.bench_function("verify_put_headers", |b| {
        b.iter(|| authenticate(black_box(&view), black_box(&cfg)).unwrap())
    });
    assert!(matches!(accepted.payload, PayloadHash::Sha256(_)));
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("verify_payload_sha256_4KiB", |b| {
        b.iter(|| accepted.payload.verify(black_box(&body)).unwrap())
    });
    group.finish();
}
