//! Who sent this request: SigV4 in the `Authorization` header, or a presigned URL.
//!
//! Order of checks, and why: the credential scope is parsed first so a client signing for
//! the wrong region learns which region to use (AuthorizationHeaderMalformed names it, as
//! S3 does, and SDKs retry with it); then the access key; then the request time (skew of
//! at most 15 minutes for headers, expiry for presigned URLs), so a captured request cannot
//! be replayed forever; the signature last. The payload hash is only *parsed* here: the
//! body is checked against it after it has been read (`PayloadHash::verify`).
//!
//! Every `x-amz-*` header present must be signed, otherwise a man in the middle could add
//! metadata or change a copy source without breaking the signature.

use std::collections::BTreeMap;

use hyper::HeaderMap;
use sha2::{Digest, Sha256};

use super::chunked::ChunkSigning;
use super::error::S3Error;
use super::signing_keys;
use super::sigv4::{self, ALGORITHM, CanonicalInput, UNSIGNED_PAYLOAD};
use super::time::parse_amz_date;

/// `x-amz-content-sha256` values of aws-chunked bodies (ECDSA-signed chunks are not
/// supported: Hangar has no asymmetric keys).
pub const STREAMING_SIGNED: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
pub const STREAMING_SIGNED_TRAILER: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
pub const STREAMING_UNSIGNED_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";

/// How far a signed request's time may be from ours, both ways.
pub const CLOCK_SKEW_MS_MAX: u64 = 15 * 60 * 1000;
/// The longest validity S3 accepts for a presigned URL (7 days).
pub const PRESIGNED_EXPIRES_SECS_MAX: u64 = 7 * 24 * 3600;

/// What `x-amz-content-sha256` says about the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PayloadHash {
    Unsigned,
    Sha256([u8; 32]),
    /// An `aws-chunked` body (`STREAMING-…`): chunk signatures checked with `signing` if
    /// the chunks are signed, trailer lines expected if `trailer`.
    Chunked {
        signing: Option<ChunkSigning>,
        trailer: bool,
    },
}

impl PayloadHash {
    /// Checks a body read whole (request documents); object bodies are checked while they
    /// stream (`request_body`).
    pub fn verify(&self, body: &[u8]) -> Result<(), S3Error> {
        match self {
            PayloadHash::Unsigned => Ok(()),
            PayloadHash::Sha256(expected) if Sha256::digest(body).as_slice() == expected => Ok(()),
            PayloadHash::Sha256(_) => Err(S3Error::ContentSha256Mismatch),
            PayloadHash::Chunked { .. } => Err(S3Error::InvalidRequest {
                reason: "aws-chunked bodies are accepted for object uploads only".into(),
            }),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authenticated {
    pub access_key: String,
    pub payload: PayloadHash,
}

/// The parts of a request that authentication reads.
pub struct RequestView<'a> {
    pub method: &'a str,
    pub raw_path: &'a str,
    /// Decoded, in request order.
    pub query: &'a [(String, String)],
    pub headers: &'a HeaderMap,
}

/// Server-side settings: our region and the known keys (access key id → secret).
pub struct AuthConfig<'a> {
    pub region: &'a str,
    pub keys: &'a BTreeMap<String, String>,
    pub now_ms: u64,
}

pub fn authenticate(req: &RequestView<'_>, cfg: &AuthConfig<'_>) -> Result<Authenticated, S3Error> {
    if let Some(value) = req.headers.get(hyper::header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| malformed_header("not ASCII"))?;
        return match value.split_once(' ') {
            Some((ALGORITHM, rest)) => authenticate_header(req, cfg, rest),
            Some(("AWS", _)) => Err(S3Error::InvalidRequest {
                reason: "Signature Version 2 is not supported; use AWS4-HMAC-SHA256".into(),
            }),
            _ => Err(malformed_header("unsupported algorithm")),
        };
    }
    if req.query.iter().any(|(k, _)| k == "X-Amz-Algorithm") {
        return authenticate_presigned(req, cfg);
    }
    Err(S3Error::AccessDenied { reason: "Anonymous access is not allowed" })
}

fn malformed_header(reason: &str) -> S3Error {
    S3Error::AuthorizationHeaderMalformed { reason: reason.to_string(), expected_region: None }
}

fn malformed_query(reason: &str) -> S3Error {
    S3Error::AuthorizationQueryParametersError { reason: reason.to_string() }
}

/// `AKID/20130524/us-east-1/s3/aws4_request`, split and checked against our region.
struct Credential<'a> {
    access_key: &'a str,
    date: &'a str,
    region: &'a str,
}

fn parse_credential<'a>(
    value: &'a str,
    presigned: bool,
    region: &str,
) -> Result<Credential<'a>, S3Error> {
    let malformed = |reason: &str| {
        if presigned { malformed_query(reason) } else { malformed_header(reason) }
    };
    let parts: Vec<&str> = value.split('/').collect();
    let [access_key, date, cred_region, service, terminator] = parts[..] else {
        return Err(malformed(
            "the Credential is mal-formed; \
             expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\"",
        ));
    };
    if cred_region != region {
        let reason = format!("the region '{cred_region}' is wrong; expecting '{region}'");
        return Err(if presigned {
            malformed_query(&format!("Error parsing the X-Amz-Credential parameter; {reason}"))
        } else {
            S3Error::AuthorizationHeaderMalformed { reason, expected_region: Some(region.into()) }
        });
    }
    if service != sigv4::SERVICE || terminator != sigv4::TERMINATOR {
        return Err(malformed("the credential scope must name service 's3' and 'aws4_request'"));
    }
    Ok(Credential { access_key, date, region: cred_region })
}

fn secret_for<'a>(cfg: &'a AuthConfig<'_>, access_key: &str) -> Result<&'a str, S3Error> {
    cfg.keys
        .get(access_key)
        .map(String::as_str)
        .ok_or_else(|| S3Error::InvalidAccessKeyId { access_key: access_key.to_string() })
}

/// The fields of `Credential=…, SignedHeaders=…, Signature=…`.
fn parse_header_fields(rest: &str) -> Result<(&str, &str, &str), S3Error> {
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for field in rest.split(',') {
        match field.trim().split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => {
                return Err(malformed_header("unexpected field in the Authorization header"));
            }
        }
    }
    match (credential, signed, signature) {
        (Some(c), Some(h), Some(s)) => Ok((c, h, s)),
        _ => Err(malformed_header("Credential, SignedHeaders and Signature are all required")),
    }
}

fn authenticate_header(
    req: &RequestView<'_>,
    cfg: &AuthConfig<'_>,
    rest: &str,
) -> Result<Authenticated, S3Error> {
    let (credential, signed_headers, signature) = parse_header_fields(rest)?;
    let cred = parse_credential(credential, false, cfg.region)?;
    let secret = secret_for(cfg, cred.access_key)?;
    let amz_date = header_str(req.headers, "x-amz-date").ok_or(S3Error::AccessDenied {
        reason: "AWS authentication requires a valid x-amz-date header",
    })?;
    let request_ms = parse_amz_date(amz_date).ok_or(S3Error::AccessDenied {
        reason: "AWS authentication requires a valid x-amz-date header",
    })?;
    if !amz_date.starts_with(cred.date) || cred.date.len() != 8 {
        return Err(malformed_header("the credential date does not match x-amz-date"));
    }
    if request_ms.abs_diff(cfg.now_ms) > CLOCK_SKEW_MS_MAX {
        return Err(S3Error::RequestTimeTooSkewed);
    }
    let claimed =
        header_str(req.headers, "x-amz-content-sha256").ok_or_else(|| S3Error::InvalidRequest {
            reason: "Missing required header for this request: x-amz-content-sha256".into(),
        })?;
    let mut payload = parse_payload_hash(claimed)?;
    let signed = parse_signed_headers(signed_headers, req.headers, malformed_header)?;
    let input = CanonicalInput {
        method: req.method,
        raw_path: req.raw_path,
        query: req.query,
        headers: req.headers,
        signed_headers: &signed,
        payload_hash: claimed,
    };
    check_signature(&input, &cred, secret, amz_date, signature)?;
    if let PayloadHash::Chunked { signing: Some(chain), .. } = &mut payload {
        // The first chunk's signature chains from this request's.
        *chain = ChunkSigning {
            key: signing_keys::signing_key(secret, cred.date, cred.region),
            amz_date: amz_date.to_string(),
            scope: sigv4::scope(cred.date, cred.region),
            seed_signature: signature.to_string(),
        };
    }
    Ok(Authenticated { access_key: cred.access_key.to_string(), payload })
}

fn authenticate_presigned(
    req: &RequestView<'_>,
    cfg: &AuthConfig<'_>,
) -> Result<Authenticated, S3Error> {
    let param = |name: &str| -> Result<&str, S3Error> {
        req.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).ok_or_else(|| {
            malformed_query(&format!("Query-string authentication requires the {name} parameter"))
        })
    };
    if param("X-Amz-Algorithm")? != ALGORITHM {
        return Err(malformed_query("X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\""));
    }
    let (credential, amz_date, expires) =
        (param("X-Amz-Credential")?, param("X-Amz-Date")?, param("X-Amz-Expires")?);
    let (signed_headers, signature) = (param("X-Amz-SignedHeaders")?, param("X-Amz-Signature")?);
    let cred = parse_credential(credential, true, cfg.region)?;
    let secret = secret_for(cfg, cred.access_key)?;
    let request_ms = parse_amz_date(amz_date)
        .ok_or_else(|| malformed_query("X-Amz-Date must be in the ISO8601 Long Format"))?;
    if !amz_date.starts_with(cred.date) || cred.date.len() != 8 {
        return Err(malformed_query("the credential date does not match X-Amz-Date"));
    }
    check_presigned_window(request_ms, expires, cfg.now_ms)?;
    // A presigned URL signs no body unless the client also sent the hash header.
    let claimed = header_str(req.headers, "x-amz-content-sha256").unwrap_or(UNSIGNED_PAYLOAD);
    let payload = parse_payload_hash(claimed)?;
    if matches!(payload, PayloadHash::Chunked { signing: Some(_), .. }) {
        // Signed chunks chain from a header signature; a URL has none to chain from.
        return Err(S3Error::InvalidRequest {
            reason: "signed aws-chunked payloads need Authorization-header signing".into(),
        });
    }
    let signed = parse_signed_headers(signed_headers, req.headers, malformed_query)?;
    let query: Vec<(String, String)> =
        req.query.iter().filter(|(k, _)| k != "X-Amz-Signature").cloned().collect();
    let input = CanonicalInput {
        method: req.method,
        raw_path: req.raw_path,
        query: &query,
        headers: req.headers,
        signed_headers: &signed,
        payload_hash: claimed,
    };
    check_signature(&input, &cred, secret, amz_date, signature)?;
    Ok(Authenticated { access_key: cred.access_key.to_string(), payload })
}

/// A presigned URL is valid from its X-Amz-Date (less the allowed skew) for X-Amz-Expires
/// seconds, which S3 caps at 7 days.
fn check_presigned_window(request_ms: u64, expires: &str, now_ms: u64) -> Result<(), S3Error> {
    let expires_secs: u64 = expires
        .parse()
        .ok()
        .filter(|s| (1..=PRESIGNED_EXPIRES_SECS_MAX).contains(s))
        .ok_or_else(|| malformed_query("X-Amz-Expires must be between 1 and 604800 seconds"))?;
    if now_ms > request_ms + expires_secs * 1000 {
        return Err(S3Error::AccessDenied { reason: "Request has expired" });
    }
    if request_ms > now_ms + CLOCK_SKEW_MS_MAX {
        return Err(S3Error::AccessDenied { reason: "Request is not valid yet" });
    }
    Ok(())
}

fn check_signature(
    input: &CanonicalInput<'_>,
    cred: &Credential<'_>,
    secret: &str,
    amz_date: &str,
    signature: &str,
) -> Result<(), S3Error> {
    let creq = sigv4::canonical_request(input).ok_or(S3Error::InvalidURI)?;
    let sts = sigv4::string_to_sign(amz_date, &sigv4::scope(cred.date, cred.region), &creq);
    let key = signing_keys::signing_key(secret, cred.date, cred.region);
    if sigv4::signature_matches(&key, &sts, signature) {
        Ok(())
    } else {
        tracing::debug!(canonical_request = %creq, "SigV4 signature mismatch");
        Err(S3Error::SignatureDoesNotMatch)
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn parse_payload_hash(claimed: &str) -> Result<PayloadHash, S3Error> {
    if claimed == UNSIGNED_PAYLOAD {
        return Ok(PayloadHash::Unsigned);
    }
    let placeholder = || {
        // Filled in once the request signature, which the chunks chain from, is checked.
        let empty = String::new();
        let (amz_date, scope, seed_signature) = (empty.clone(), empty.clone(), empty);
        Some(ChunkSigning { key: [0; 32], amz_date, scope, seed_signature })
    };
    match claimed {
        STREAMING_SIGNED => {
            return Ok(PayloadHash::Chunked { signing: placeholder(), trailer: false });
        }
        STREAMING_SIGNED_TRAILER => {
            return Ok(PayloadHash::Chunked { signing: placeholder(), trailer: true });
        }
        STREAMING_UNSIGNED_TRAILER => {
            return Ok(PayloadHash::Chunked { signing: None, trailer: true });
        }
        _ if claimed.starts_with("STREAMING-") => {
            return Err(S3Error::NotImplemented { operation: format!("Payload {claimed}") });
        }
        _ => {}
    }
    let mut hash = [0u8; 32];
    let lower = claimed.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
    match hex::decode_to_slice(claimed, &mut hash) {
        Ok(()) if lower => Ok(PayloadHash::Sha256(hash)),
        _ => Err(S3Error::InvalidArgument {
            reason: "x-amz-content-sha256 must be UNSIGNED-PAYLOAD or a hex SHA-256".into(),
        }),
    }
}

/// The signed header list: lowercase, must include `host` and every `x-amz-*` header
/// actually present in the request.
fn parse_signed_headers(
    list: &str,
    headers: &HeaderMap,
    malformed: fn(&str) -> S3Error,
) -> Result<Vec<String>, S3Error> {
    let signed: Vec<String> = list.split(';').map(str::to_string).collect();
    if signed.iter().any(|h| h.is_empty() || h.bytes().any(|c| c.is_ascii_uppercase())) {
        return Err(malformed("SignedHeaders must be lower-case names separated by ';'"));
    }
    if !signed.iter().any(|h| h == "host") {
        return Err(malformed("the host header must be signed"));
    }
    let unsigned_amz = headers.keys().any(|name| {
        name.as_str().starts_with("x-amz-") && !signed.iter().any(|s| s == name.as_str())
    });
    if unsigned_amz {
        return Err(S3Error::AccessDenied {
            reason: "There were headers present in the request which were not signed",
        });
    }
    Ok(signed)
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
