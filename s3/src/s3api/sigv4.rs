//! AWS Signature Version 4: canonical request, string to sign, signing key, signature.
//!
//! Pure functions only; which request is authenticated how (header or query, expiry,
//! clock skew, key lookup) is decided in `auth.rs`. Keeping the arithmetic apart lets the
//! tests below replay the examples AWS publishes for S3 byte for byte: if a client and
//! this server disagree on any of the canonical forms, every request fails, so these
//! tests guard the whole API.
//!
//! The signature comparison is constant-time (`Mac::verify_slice`), so response timing does
//! not reveal how many leading bytes of a forged signature were right.

use hmac::{Hmac, Mac};
use hyper::HeaderMap;
use sha2::{Digest, Sha256};

use super::encoding::{canonical_uri, uri_encode};

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
pub const SERVICE: &str = "s3";
pub const TERMINATOR: &str = "aws4_request";

type HmacSha256 = Hmac<Sha256>;

/// What goes into the canonical request. `query` is decoded and excludes
/// `X-Amz-Signature` (presigned URLs sign everything else in the query).
pub struct CanonicalInput<'a> {
    pub method: &'a str,
    pub raw_path: &'a str,
    pub query: &'a [(String, String)],
    pub headers: &'a HeaderMap,
    /// Lowercase names in the order the client listed them (sorted, per the spec).
    pub signed_headers: &'a [String],
    pub payload_hash: &'a str,
}

/// The canonical request, or `None` if the path has a malformed escape.
pub fn canonical_request(input: &CanonicalInput<'_>) -> Option<String> {
    let mut out = String::with_capacity(512);
    out.push_str(input.method);
    out.push('\n');
    out.push_str(&canonical_uri(input.raw_path)?);
    out.push('\n');
    out.push_str(&canonical_query(input.query));
    out.push('\n');
    for name in input.signed_headers {
        out.push_str(name);
        out.push(':');
        out.push_str(&canonical_header_value(input.headers, name));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&input.signed_headers.join(";"));
    out.push('\n');
    out.push_str(input.payload_hash);
    Some(out)
}

/// Names and values encoded (slash included), then sorted by name, then value.
pub fn canonical_query(query: &[(String, String)]) -> String {
    let mut encoded: Vec<(String, String)> =
        query.iter().map(|(k, v)| (uri_encode(k, true), uri_encode(v, true))).collect();
    encoded.sort();
    let parts: Vec<String> = encoded.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    parts.join("&")
}

/// All values of a header joined by commas, each trimmed with inner runs of spaces folded
/// to one (the spec's `Trimall`). An absent header contributes an empty value, so the
/// signature simply fails to match.
fn canonical_header_value(headers: &HeaderMap, name: &str) -> String {
    let values: Vec<String> = headers
        .get_all(name)
        .iter()
        .map(|v| {
            let text = String::from_utf8_lossy(v.as_bytes());
            text.split_whitespace().collect::<Vec<_>>().join(" ")
        })
        .collect();
    values.join(",")
}

/// `20130524/us-east-1/s3/aws4_request`.
pub fn scope(date: &str, region: &str) -> String {
    format!("{date}/{region}/{SERVICE}/{TERMINATOR}")
}

pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    let hashed = hex::encode(Sha256::digest(canonical_request.as_bytes()));
    format!("{ALGORITHM}\n{amz_date}\n{scope}\n{hashed}")
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The derived key (remembered per (secret, day, region) by `signing_keys`).
pub fn signing_key(secret: &str, date: &str, region: &str) -> [u8; 32] {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, SERVICE.as_bytes());
    hmac(&k_service, TERMINATOR.as_bytes())
}

pub fn signature_hex(signing_key: &[u8; 32], string_to_sign: &str) -> String {
    hex::encode(hmac(signing_key, string_to_sign.as_bytes()))
}

/// Constant-time check of a client's hex signature.
pub fn signature_matches(signing_key: &[u8; 32], string_to_sign: &str, provided: &str) -> bool {
    // Only the canonical lower-case form, as AWS computes and compares it.
    let lower_hex = provided.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
    let Ok(provided) = hex::decode(provided) else {
        return false;
    };
    if !lower_hex {
        return false;
    }
    let mut mac = HmacSha256::new_from_slice(signing_key).expect("HMAC accepts any key");
    mac.update(string_to_sign.as_bytes());
    mac.verify_slice(&provided).is_ok()
}

#[cfg(test)]
mod tests {
    //! The expected values are the ones published in the AWS S3 documentation
    //! ("Signature Calculations for the Authorization Header" and "Authenticating Requests:
    //! Using Query Parameters"), all for bucket `examplebucket` on 2013-05-24.
    use super::*;
    use hyper::header::{HeaderName, HeaderValue};

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const DATE: &str = "20130524T000000Z";
    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            let name = HeaderName::from_bytes(k.as_bytes()).unwrap();
            map.append(name, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    fn names(list: &str) -> Vec<String> {
        list.split(';').map(str::to_string).collect()
    }

    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn sign(input: &CanonicalInput<'_>) -> (String, String) {
        let creq = canonical_request(input).unwrap();
        let sts = string_to_sign(DATE, &scope("20130524", "us-east-1"), &creq);
        let key = signing_key(SECRET, "20130524", "us-east-1");
        let sig = signature_hex(&key, &sts);
        assert!(signature_matches(&key, &sts, &sig));
        (creq, sig)
    }

    #[test]
    fn aws_example_get_object_with_range() {
        let h = headers(&[
            ("host", "examplebucket.s3.amazonaws.com"),
            ("range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", DATE),
        ]);
        let signed = names("host;range;x-amz-content-sha256;x-amz-date");
        let input = CanonicalInput {
            method: "GET",
            raw_path: "/test.txt",
            query: &[],
            headers: &h,
            signed_headers: &signed,
            payload_hash: EMPTY_SHA256,
        };
        let (creq, sig) = sign(&input);
        let expected_creq = format!(
            "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n\
             x-amz-content-sha256:{EMPTY_SHA256}\nx-amz-date:{DATE}\n\n\
             host;range;x-amz-content-sha256;x-amz-date\n{EMPTY_SHA256}"
        );
        assert_eq!(creq, expected_creq);
        let sts = string_to_sign(DATE, &scope("20130524", "us-east-1"), &creq);
        assert!(sts.ends_with("7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"));
        assert_eq!(sig, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    }

    #[test]
    fn aws_example_put_object_with_escaped_key() {
        let body_sha = hex::encode(Sha256::digest(b"Welcome to Amazon S3."));
        let h = headers(&[
            ("date", "Fri, 24 May 2013 00:00:00 GMT"),
            ("host", "examplebucket.s3.amazonaws.com"),
            ("x-amz-content-sha256", &body_sha),
            ("x-amz-date", DATE),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ]);
        let signed = names("date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class");
        let input = CanonicalInput {
            method: "PUT",
            raw_path: "/test$file.text",
            query: &[],
            headers: &h,
            signed_headers: &signed,
            payload_hash: &body_sha,
        };
        let (_, sig) = sign(&input);
        assert_eq!(sig, "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
    }

    #[test]
    fn aws_example_valueless_and_list_queries() {
        let h = headers(&[
            ("host", "examplebucket.s3.amazonaws.com"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", DATE),
        ]);
        let signed = names("host;x-amz-content-sha256;x-amz-date");
        let cases = [
            (
                query(&[("lifecycle", "")]),
                "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
            ),
            (
                query(&[("prefix", "J"), ("max-keys", "2")]),
                "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
            ),
        ];
        for (q, expected) in cases {
            let input = CanonicalInput {
                method: "GET",
                raw_path: "/",
                query: &q,
                headers: &h,
                signed_headers: &signed,
                payload_hash: EMPTY_SHA256,
            };
            assert_eq!(sign(&input).1, expected);
        }
    }

    #[test]
    fn aws_example_presigned_get() {
        let h = headers(&[("host", "examplebucket.s3.amazonaws.com")]);
        let q = query(&[
            ("X-Amz-Algorithm", ALGORITHM),
            ("X-Amz-Credential", "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request"),
            ("X-Amz-Date", DATE),
            ("X-Amz-Expires", "86400"),
            ("X-Amz-SignedHeaders", "host"),
        ]);
        let signed = names("host");
        let input = CanonicalInput {
            method: "GET",
            raw_path: "/test.txt",
            query: &q,
            headers: &h,
            signed_headers: &signed,
            payload_hash: UNSIGNED_PAYLOAD,
        };
        let (creq, sig) = sign(&input);
        assert!(creq.contains(
            "X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
        ));
        assert_eq!(sig, "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
    }

    #[test]
    fn header_values_are_trimmed_and_joined() {
        let h = headers(&[("x-amz-meta-a", "  one   two  "), ("x-amz-meta-a", "three")]);
        assert_eq!(canonical_header_value(&h, "x-amz-meta-a"), "one two,three");
    }

    #[test]
    fn signature_check_rejects_near_misses() {
        let key = signing_key(SECRET, "20130524", "us-east-1");
        let sig = signature_hex(&key, "payload");
        let mut wrong = sig.clone().into_bytes();
        wrong[63] = if wrong[63] == b'0' { b'1' } else { b'0' };
        assert!(!signature_matches(&key, "payload", std::str::from_utf8(&wrong).unwrap()));
        assert!(!signature_matches(&key, "payload", &sig[..62]));
        assert!(!signature_matches(&key, "payload", "not hex"));
        assert!(!signature_matches(&key, "payload", &sig.to_uppercase()));
    }
}
