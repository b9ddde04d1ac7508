//! Authentication policy tests. Requests are signed here with the `sigv4` functions, whose
//! own tests pin them to the AWS examples; these tests pin what the server accepts.

use super::*;
use hyper::header::{HeaderName, HeaderValue};

const AKID: &str = "AKIDTEST";
const SECRET: &str = "secret/key+1";
const REGION: &str = "garage-lab";
// 2024-01-02T03:04:05Z
const NOW_MS: u64 = 1_704_164_645_000;
const AMZ_DATE: &str = "20240102T030405Z";
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn keys() -> BTreeMap<String, String> {
    BTreeMap::from([(AKID.to_string(), SECRET.to_string())])
}

struct TestRequest {
    method: &'static str,
    path: &'static str,
    query: Vec<(String, String)>,
    headers: HeaderMap,
}

impl TestRequest {
    fn new(method: &'static str, path: &'static str) -> TestRequest {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("127.0.0.1:9000"));
        TestRequest { method, path, query: Vec::new(), headers }
    }

    fn header(mut self, name: &'static str, value: &str) -> TestRequest {
        let name = HeaderName::from_static(name);
        self.headers.insert(name, HeaderValue::from_str(value).unwrap());
        self
    }

    fn check(&self, now_ms: u64) -> Result<Authenticated, S3Error> {
        let keys = keys();
        let cfg = AuthConfig { region: REGION, keys: &keys, now_ms };
        let view = RequestView {
            method: self.method,
            raw_path: self.path,
            query: &self.query,
            headers: &self.headers,
        };
        authenticate(&view, &cfg)
    }

    fn signature(&self, signed: &[String], payload: &str, region: &str, secret: &str) -> String {
        let input = CanonicalInput {
            method: self.method,
            raw_path: self.path,
            query: &self.query,
            headers: &self.headers,
            signed_headers: signed,
            payload_hash: payload,
        };
        let creq = sigv4::canonical_request(&input).unwrap();
        let sts = sigv4::string_to_sign(AMZ_DATE, &sigv4::scope(&AMZ_DATE[..8], region), &creq);
        sigv4::signature_hex(&sigv4::signing_key(secret, &AMZ_DATE[..8], region), &sts)
    }

    /// Signs with the Authorization header, as an SDK does.
    fn sign_header(self, region: &str, secret: &str) -> TestRequest {
        let req = self.header("x-amz-date", AMZ_DATE);
        let payload = req.headers["x-amz-content-sha256"].to_str().unwrap().to_string();
        let mut signed: Vec<String> = req.headers.keys().map(|k| k.to_string()).collect();
        signed.sort();
        let sig = req.signature(&signed, &payload, region, secret);
        let value = format!(
            "AWS4-HMAC-SHA256 Credential={AKID}/{}/{region}/s3/aws4_request, \
             SignedHeaders={}, Signature={sig}",
            &AMZ_DATE[..8],
            signed.join(";")
        );
        req.header("authorization", &value)
    }

    fn presign(mut self, expires_secs: u64) -> TestRequest {
        let credential = format!("{AKID}/{}/{REGION}/s3/aws4_request", &AMZ_DATE[..8]);
        for (k, v) in [
            ("X-Amz-Algorithm", ALGORITHM.to_string()),
            ("X-Amz-Credential", credential),
            ("X-Amz-Date", AMZ_DATE.to_string()),
            ("X-Amz-Expires", expires_secs.to_string()),
            ("X-Amz-SignedHeaders", "host".to_string()),
        ] {
            self.query.push((k.to_string(), v));
        }
        let sig = self.signature(&["host".to_string()], UNSIGNED_PAYLOAD, REGION, SECRET);
        self.query.push(("X-Amz-Signature".to_string(), sig));
        self
    }
}

fn get_signed() -> TestRequest {
    TestRequest::new("GET", "/bk/some%20key").header("x-amz-content-sha256", EMPTY_SHA256)
}

#[test]
fn header_signature_is_accepted_and_payload_hash_parsed() {
    let auth = get_signed().sign_header(REGION, SECRET).check(NOW_MS).unwrap();
    assert_eq!(auth.access_key, AKID);
    assert!(auth.payload.verify(b"").is_ok());
    assert_eq!(auth.payload.verify(b"x"), Err(S3Error::ContentSha256Mismatch));
}

#[test]
fn wrong_secret_is_signature_mismatch() {
    let err = get_signed().sign_header(REGION, "other").check(NOW_MS).unwrap_err();
    assert_eq!(err, S3Error::SignatureDoesNotMatch);
}

#[test]
fn tampered_header_after_signing_is_refused() {
    let req = get_signed().header("range", "bytes=0-1").sign_header(REGION, SECRET);
    let err = req.header("range", "bytes=0-100").check(NOW_MS).unwrap_err();
    assert_eq!(err, S3Error::SignatureDoesNotMatch);
}

#[test]
fn unsigned_amz_header_is_refused() {
    let req = get_signed().sign_header(REGION, SECRET).header("x-amz-meta-evil", "1");
    let err = req.check(NOW_MS).unwrap_err();
    assert_eq!(err.code(), "AccessDenied");
}

#[test]
fn wrong_region_names_the_expected_one() {
    let err = get_signed().sign_header("us-west-2", SECRET).check(NOW_MS).unwrap_err();
    let S3Error::AuthorizationHeaderMalformed { expected_region, reason } = err else {
        panic!("unexpected {err:?}");
    };
    assert_eq!(expected_region.as_deref(), Some(REGION));
    assert!(reason.contains("us-west-2"), "{reason}");
}

#[test]
fn unknown_key_and_anonymous_are_refused() {
    let req = get_signed().sign_header(REGION, SECRET);
    let mut keys_other = BTreeMap::new();
    keys_other.insert("OTHER".to_string(), SECRET.to_string());
    let cfg = AuthConfig { region: REGION, keys: &keys_other, now_ms: NOW_MS };
    let view = RequestView { method: "GET", raw_path: req.path, query: &[], headers: &req.headers };
    let err = authenticate(&view, &cfg).unwrap_err();
    assert_eq!(err, S3Error::InvalidAccessKeyId { access_key: AKID.to_string() });
    let anon = TestRequest::new("GET", "/bk/k").check(NOW_MS).unwrap_err();
    assert_eq!(anon.code(), "AccessDenied");
}

#[test]
fn skewed_clock_is_refused_both_ways() {
    let req = get_signed().sign_header(REGION, SECRET);
    assert!(req.check(NOW_MS + CLOCK_SKEW_MS_MAX).is_ok());
    assert_eq!(req.check(NOW_MS + CLOCK_SKEW_MS_MAX + 1), Err(S3Error::RequestTimeTooSkewed));
    assert_eq!(req.check(NOW_MS - CLOCK_SKEW_MS_MAX - 1), Err(S3Error::RequestTimeTooSkewed));
}

#[test]
fn streaming_payloads_chain_from_the_request_signature() {
    let req = TestRequest::new("PUT", "/bk/k")
        .header("x-amz-content-sha256", STREAMING_SIGNED_TRAILER)
        .sign_header(REGION, SECRET);
    let PayloadHash::Chunked { signing: Some(chain), trailer: true } =
        req.check(NOW_MS).unwrap().payload
    else {
        panic!("a signed chunked payload with a trailer");
    };
    let date = &AMZ_DATE[..8];
    assert_eq!(chain.key, sigv4::signing_key(SECRET, date, REGION));
    assert_eq!((chain.amz_date.as_str(), chain.scope), (AMZ_DATE, sigv4::scope(date, REGION)));
    let authorization = req.headers["authorization"].to_str().unwrap();
    assert!(authorization.ends_with(&format!("Signature={}", chain.seed_signature)));

    let unsigned = TestRequest::new("PUT", "/bk/k")
        .header("x-amz-content-sha256", STREAMING_UNSIGNED_TRAILER)
        .sign_header(REGION, SECRET);
    let payload = unsigned.check(NOW_MS).unwrap().payload;
    assert_eq!(payload, PayloadHash::Chunked { signing: None, trailer: true });
    let ecdsa = TestRequest::new("PUT", "/bk/k")
        .header("x-amz-content-sha256", "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD")
        .sign_header(REGION, SECRET);
    assert_eq!(ecdsa.check(NOW_MS).unwrap_err().code(), "NotImplemented");
}

#[test]
fn presigned_url_works_until_it_expires() {
    let req = TestRequest::new("GET", "/bk/k").presign(60);
    let auth = req.check(NOW_MS + 60_000).unwrap();
    assert_eq!(auth.payload, PayloadHash::Unsigned);
    let expired = req.check(NOW_MS + 60_001).unwrap_err();
    assert_eq!(expired, S3Error::AccessDenied { reason: "Request has expired" });
}

#[test]
fn presigned_url_with_changed_path_or_expiry_is_refused() {
    let mut req = TestRequest::new("GET", "/bk/k").presign(60);
    req.path = "/bk/other";
    assert_eq!(req.check(NOW_MS).unwrap_err(), S3Error::SignatureDoesNotMatch);
    let mut req = TestRequest::new("GET", "/bk/k").presign(60);
    req.query[3].1 = "3600".to_string();
    assert_eq!(req.check(NOW_MS).unwrap_err(), S3Error::SignatureDoesNotMatch);
}

#[test]
fn presigned_url_expiry_must_be_in_range() {
    let req = TestRequest::new("GET", "/bk/k").presign(PRESIGNED_EXPIRES_SECS_MAX + 1);
    assert_eq!(req.check(NOW_MS).unwrap_err().code(), "AuthorizationQueryParametersError");
}

#[test]
fn presigned_url_from_the_future_is_refused() {
    let req = TestRequest::new("GET", "/bk/k").presign(60);
    let early = req.check(NOW_MS - CLOCK_SKEW_MS_MAX - 1).unwrap_err();
    assert_eq!(early, S3Error::AccessDenied { reason: "Request is not valid yet" });
    assert!(req.check(NOW_MS - CLOCK_SKEW_MS_MAX).is_ok());
}
