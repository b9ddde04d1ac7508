//! Bucket CORS: PutBucketCors / GetBucketCors / DeleteBucketCors, preflight (`OPTIONS`) and
//! the CORS headers of actual requests.
//!
//! What S3 does, and so what this does:
//! - A configuration holds 1..=100 `CORSRule`s, each with at least one `AllowedOrigin` and
//!   one `AllowedMethod` (GET, PUT, POST, DELETE, HEAD only: anything else is
//!   InvalidRequest). Origins and allowed headers may hold one `*` wildcard each. The body
//!   must come with Content-MD5 or an `x-amz-checksum-*` header, as for DeleteObjects.
//! - A preflight is unauthenticated (browsers send no credentials with it). The first rule
//!   whose origin, method and every requested header match answers it; no such rule, or no
//!   configuration at all, is 403 AccessForbidden.
//! - A signed request carrying `Origin` gets the matching rule's allow/expose headers on its
//!   response, errors included, so a browser script can read what went wrong.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};

use super::backend::{CorsRule, ObjectBackend};
use super::error::S3Error;
use super::xml::{Token, XmlWriter, tokens};

/// S3's limit on rules per configuration.
pub const CORS_RULES_MAX: usize = 100;
/// Methods a rule may allow (S3's list).
const METHODS: [&str; 5] = ["GET", "PUT", "POST", "DELETE", "HEAD"];

fn invalid(reason: String) -> S3Error {
    S3Error::InvalidRequest { reason }
}

/// Parses and validates a `CORSConfiguration` document.
pub fn parse_cors(doc: &[u8]) -> Result<Vec<CorsRule>, S3Error> {
    let doc = std::str::from_utf8(doc).map_err(|_| S3Error::MalformedXML)?;
    let (mut depth, mut text) = (0usize, String::new());
    let (mut rules, mut rule): (Vec<CorsRule>, Option<CorsRule>) = (Vec::new(), None);
    let mut seen_root = false;
    for token in tokens(doc)? {
        match token {
            Token::Open(name) => {
                let ok = match depth {
                    0 => !seen_root && name == "CORSConfiguration",
                    1 => name == "CORSRule",
                    2 => true,
                    _ => false,
                };
                if !ok {
                    return Err(S3Error::MalformedXML);
                }
                if depth == 1 {
                    rule = Some(CorsRule::default());
                }
                (seen_root, depth) = (true, depth + 1);
                text.clear();
            }
            Token::Text(t) if depth != 3 && !t.trim().is_empty() => {
                return Err(S3Error::MalformedXML);
            }
            Token::Text(t) => text.push_str(&t),
            Token::Close(name) => {
                depth = depth.checked_sub(1).ok_or(S3Error::MalformedXML)?;
                match depth {
                    2 => set_field(rule.as_mut().ok_or(S3Error::MalformedXML)?, &name, &text)?,
                    1 => rules.push(rule.take().ok_or(S3Error::MalformedXML)?),
                    _ => {}
                }
                text.clear();
            }
        }
    }
    if depth != 0 || !seen_root {
        return Err(S3Error::MalformedXML);
    }
    validate(&rules)?;
    Ok(rules)
}

fn set_field(rule: &mut CorsRule, name: &str, text: &str) -> Result<(), S3Error> {
    let value = text.trim().to_string();
    match name {
        "AllowedOrigin" => rule.allowed_origins.push(value),
        "AllowedMethod" => rule.allowed_methods.push(value),
        "AllowedHeader" => rule.allowed_headers.push(value),
        "ExposeHeader" => rule.expose_headers.push(value),
        "ID" if rule.id.is_none() => rule.id = Some(value),
        "MaxAgeSeconds" if rule.max_age_seconds.is_none() => {
            rule.max_age_seconds = Some(value.parse().map_err(|_| S3Error::MalformedXML)?);
        }
        _ => return Err(S3Error::MalformedXML),
    }
    Ok(())
}

/// S3's rules for a configuration's content (the XML shape is `parse_cors`'s).
pub fn validate(rules: &[CorsRule]) -> Result<(), S3Error> {
    if rules.is_empty() {
        return Err(S3Error::MalformedXML);
    }
    if rules.len() > CORS_RULES_MAX {
        return Err(invalid(format!(
            "A CORS configuration may hold at most {CORS_RULES_MAX} rules"
        )));
    }
    for rule in rules {
        if rule.allowed_origins.is_empty() || rule.allowed_methods.is_empty() {
            return Err(S3Error::MalformedXML);
        }
        if let Some(m) = rule.allowed_methods.iter().find(|m| !METHODS.contains(&m.as_str())) {
            let reason = "Found unsupported HTTP method in CORS config. Unsupported method is";
            return Err(invalid(format!("{reason} {m}")));
        }
        for (what, values) in
            [("AllowedOrigin", &rule.allowed_origins), ("AllowedHeader", &rule.allowed_headers)]
        {
            if let Some(v) = values.iter().find(|v| v.matches('*').count() > 1) {
                return Err(invalid(format!(
                    "{what} \"{v}\" can not have more than one wildcard."
                )));
            }
        }
        if rule.id.as_ref().is_some_and(|id| id.len() > 255) {
            return Err(invalid("A rule ID may be at most 255 characters".into()));
        }
    }
    Ok(())
}

/// The GetBucketCors answer.
pub fn render_cors(rules: &[CorsRule]) -> String {
    let mut w = XmlWriter::new("CORSConfiguration", true);
    for rule in rules {
        w.open("CORSRule");
        if let Some(id) = &rule.id {
            w.element("ID", id);
        }
        let lists = [
            ("AllowedOrigin", &rule.allowed_origins),
            ("AllowedMethod", &rule.allowed_methods),
            ("AllowedHeader", &rule.allowed_headers),
            ("ExposeHeader", &rule.expose_headers),
        ];
        for (tag, values) in lists {
            values.iter().for_each(|v| w.element(tag, v));
        }
        if let Some(age) = rule.max_age_seconds {
            w.element("MaxAgeSeconds", &age.to_string());
        }
        w.close("CORSRule");
    }
    w.finish("CORSConfiguration")
}

/// `pattern` (with at most one `*`, standing for any run of characters) matches `value`.
pub fn wildcard_match(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((head, tail)) => {
            value.len() >= head.len() + tail.len()
                && value.starts_with(head)
                && value.ends_with(tail)
        }
    }
}

/// The first rule allowing `origin` with `method` and every one of `headers`. Origins
/// compare exactly (S3 does), header names without regard to case.
pub fn find_rule<'r>(
    rules: &'r [CorsRule],
    origin: &str,
    method: &str,
    headers: &[String],
) -> Option<&'r CorsRule> {
    rules.iter().find(|rule| {
        rule.allowed_origins.iter().any(|o| wildcard_match(o, origin))
            && rule.allowed_methods.iter().any(|m| m == method)
            && headers.iter().all(|h| {
                let h = h.to_ascii_lowercase();
                rule.allowed_headers.iter().any(|a| wildcard_match(&a.to_ascii_lowercase(), &h))
            })
    })
}

fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = status;
    resp
}

fn stored(err: super::BackendError, bucket: &str) -> S3Error {
    S3Error::from_backend(err, bucket, "")
}

pub async fn get_bucket_cors(
    backend: &dyn ObjectBackend,
    bucket: &str,
) -> Result<Response<Full<Bytes>>, S3Error> {
    let rules = backend.get_bucket_cors(bucket).await.map_err(|e| stored(e, bucket))?;
    let rules = rules.ok_or_else(|| S3Error::Cors {
        code: "NoSuchCORSConfiguration",
        message: "The CORS configuration does not exist".into(),
    })?;
    Ok(super::xml_response(render_cors(&rules)))
}

pub async fn put_bucket_cors(
    backend: &dyn ObjectBackend,
    bucket: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response<Full<Bytes>>, S3Error> {
    super::delete_objects::check_body_integrity(headers, body)?;
    let rules = parse_cors(body)?;
    backend.put_bucket_cors(bucket, Some(rules)).await.map_err(|e| stored(e, bucket))?;
    Ok(empty(StatusCode::OK))
}

pub async fn delete_bucket_cors(
    backend: &dyn ObjectBackend,
    bucket: &str,
) -> Result<Response<Full<Bytes>>, S3Error> {
    backend.put_bucket_cors(bucket, None).await.map_err(|e| stored(e, bucket))?;
    Ok(empty(StatusCode::NO_CONTENT))
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn forbidden(message: &str) -> S3Error {
    S3Error::Cors { code: "AccessForbidden", message: message.into() }
}

/// Answers `OPTIONS` on a bucket or object (no signature: see the module comment).
pub async fn preflight(
    backend: &dyn ObjectBackend,
    bucket: &str,
    headers: &HeaderMap,
) -> Result<Response<Full<Bytes>>, S3Error> {
    let bad = |m: &str| S3Error::Cors { code: "BadRequest", message: m.into() };
    let origin = header_str(headers, "origin")
        .ok_or_else(|| bad("Insufficient information. Origin request header needed."))?;
    let method = header_str(headers, "access-control-request-method").ok_or_else(|| {
        bad("Invalid Access-Control-Request-Method: the preflight names no method.")
    })?;
    let requested: Vec<String> = header_str(headers, "access-control-request-headers")
        .map(|v| v.split(',').map(|h| h.trim().to_string()).filter(|h| !h.is_empty()).collect())
        .unwrap_or_default();
    let rules = backend.get_bucket_cors(bucket).await.map_err(|e| stored(e, bucket))?;
    let rules =
        rules.ok_or_else(|| forbidden("CORSResponse: CORS is not enabled for this bucket."))?;
    let rule = find_rule(&rules, origin, method, &requested).ok_or_else(|| {
        forbidden("CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.")
    })?;
    let mut resp = empty(StatusCode::OK);
    let out = resp.headers_mut();
    allow_headers(out, rule, origin);
    set(out, "access-control-allow-methods", &rule.allowed_methods.join(", "));
    if !requested.is_empty() {
        let lower: Vec<String> = requested.iter().map(|h| h.to_ascii_lowercase()).collect();
        set(out, "access-control-allow-headers", &lower.join(", "));
    }
    if let Some(age) = rule.max_age_seconds {
        set(out, "access-control-max-age", &age.to_string());
    }
    let vary = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method";
    set(out, "vary", vary);
    Ok(resp)
}

fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    // Values come from validated rules and request headers that were valid strings; one
    // that is not a valid header value (a control character in a rule) is left out.
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

/// The headers a matching rule puts on any response: allowed origin, exposed headers.
fn allow_headers(out: &mut HeaderMap, rule: &CorsRule, origin: &str) {
    if rule.allowed_origins.iter().any(|o| o == "*") {
        set(out, "access-control-allow-origin", "*");
    } else {
        set(out, "access-control-allow-origin", origin);
        set(out, "access-control-allow-credentials", "true");
    }
    if !rule.expose_headers.is_empty() {
        set(out, "access-control-expose-headers", &rule.expose_headers.join(", "));
    }
}

/// Adds CORS headers to the response of an actual (non-preflight) request on `bucket` that
/// carried `origin`, if a rule allows it. A failed lookup adds nothing: the answer itself
/// must not change because CORS could not be read.
pub async fn decorate(
    backend: &dyn ObjectBackend,
    bucket: &str,
    origin: &str,
    method: &str,
    out: &mut HeaderMap,
) {
    let Ok(Some(rules)) = backend.get_bucket_cors(bucket).await else { return };
    if let Some(rule) = find_rule(&rules, origin, method, &[]) {
        allow_headers(out, rule, origin);
        out.append(hyper::header::VARY, HeaderValue::from_static("Origin"));
    }
}

#[cfg(test)]
#[path = "cors_tests.rs"]
mod tests;
