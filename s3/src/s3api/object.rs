//! PutObject, GetObject, HeadObject, DeleteObject.
//!
//! Bodies stream: a PUT's body goes from the request into the backend as it arrives
//! (`request_body`, which checks signatures, checksums and Content-MD5 before the object
//! becomes visible), a GET's comes out of the backend into the response as the client
//! reads it (`response_body`); a range asks the backend for those bytes only. The ETag of a
//! simple PUT is the hex MD5 of the body (`RequestBody::finish` says so: an S3 convention
//! the backend need not know).
//!
//! Version ids are shown as `versions.rs` explains: `x-amz-version-id` once the bucket has
//! been versioned, or when the request named a version. The bucket's versioning state is
//! read next to the operation (`tokio::join!`), so it costs no extra round trip.

use std::collections::BTreeMap;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Response, StatusCode};

use super::backend::{
    BackendError, BoxFuture, ObjectBackend, ObjectBody, ObjectInfo, ObjectMeta, Versioning,
    WriteCondition,
};
use super::checksum;
use super::error::S3Error;
use super::part_numbers::part_range;
use super::request_body::RequestBody;
use super::response_body::{ObjectStream, ResponseBody};
use super::time::format_http_date;

/// S3's content type for objects stored without one.
pub const DEFAULT_CONTENT_TYPE: &str = "binary/octet-stream";
const META_PREFIX: &str = "x-amz-meta-";

/// A parsed `Range: bytes=…` header (one range; S3 ignores multi-range requests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=a-b`, both inclusive.
    FromTo(u64, u64),
    /// `bytes=a-`
    From(u64),
    /// `bytes=-n`: the last n bytes.
    Suffix(u64),
}

/// `None` when the header is not a single well-formed byte range: RFC 9110 says to ignore
/// such a header and send the whole object, which is what S3 does.
pub fn parse_range(value: &str) -> Option<ByteRange> {
    let spec = value.trim().strip_prefix("bytes=")?;
    let (first, last) = spec.trim().split_once('-')?;
    let number = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) { None } else { s.parse().ok() }
    };
    match (first.trim(), last.trim()) {
        ("", n) => number(n).map(ByteRange::Suffix),
        (a, "") => number(a).map(ByteRange::From),
        (a, b) => {
            let (a, b) = (number(a)?, number(b)?);
            (a <= b).then_some(ByteRange::FromTo(a, b))
        }
    }
}

/// The inclusive byte span a range selects in an object of `size` bytes.
pub fn resolve_range(range: ByteRange, size: u64) -> Result<(u64, u64), S3Error> {
    let unsatisfiable = S3Error::InvalidRange { size_bytes: size };
    match range {
        ByteRange::FromTo(a, _) | ByteRange::From(a) if a >= size => Err(unsatisfiable),
        ByteRange::FromTo(a, b) => Ok((a, b.min(size - 1))),
        ByteRange::From(a) => Ok((a, size - 1)),
        ByteRange::Suffix(0) => Err(unsatisfiable),
        ByteRange::Suffix(_) if size == 0 => Err(unsatisfiable),
        ByteRange::Suffix(n) => Ok((size - n.min(size), size - 1)),
    }
}

pub(super) fn header_value(value: &str) -> Result<HeaderValue, S3Error> {
    HeaderValue::from_bytes(value.as_bytes()).map_err(|_| S3Error::InternalError {
        reason: format!("unsendable header value {value:?}"),
    })
}

fn header_string(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// What the client sends with an object (content type, `x-amz-meta-*`).
pub(super) fn client_meta(headers: &HeaderMap) -> ObjectMeta {
    let mut user_metadata = BTreeMap::new();
    for (name, value) in headers {
        if let Some(meta_name) = name.as_str().strip_prefix(META_PREFIX) {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            user_metadata.insert(meta_name.to_string(), value);
        }
    }
    let content_type =
        header_string(headers, "content-type").unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_string());
    ObjectMeta { content_type, user_metadata }
}

/// The S3 error of a failed upload: the body's own refusal if it refused (a signature,
/// checksum or digest that did not match), else the backend's answer.
pub(super) fn upload_error(
    err: BackendError,
    body: &mut RequestBody,
    (bucket, key): (&str, &str),
) -> S3Error {
    body.failure.take().unwrap_or_else(|| S3Error::from_backend(err, bucket, key))
}

/// The checksum an upload was verified with, echoed as S3 does.
pub(super) fn checksum_headers(
    out: &mut HeaderMap,
    user_metadata: &BTreeMap<String, String>,
) -> Result<(), S3Error> {
    for (name, value) in checksum::stored(user_metadata) {
        out.insert(name, header_value(&value)?);
    }
    Ok(())
}

pub async fn put_object(
    backend: &dyn ObjectBackend,
    bucket: &str,
    key: &str,
    headers: &HeaderMap,
    body: &mut RequestBody,
) -> Result<Response<Full<Bytes>>, S3Error> {
    let mut meta = client_meta(headers);
    meta.user_metadata.extend(super::website_routing::object_redirect(headers)?);
    let condition = write_condition(headers)?;
    let put = async {
        match &condition {
            None => backend.put_object(bucket, key, meta, body).await,
            Some(condition) => backend.put_object_if(bucket, key, meta, body, condition).await,
        }
    };
    let (state, info) = tokio::join!(backend.get_bucket_versioning(bucket), put);
    let info = info.map_err(|e| upload_error(e, body, (bucket, key)))?;
    let to_s3 = |e| S3Error::from_backend(e, bucket, key);
    let mut out = HeaderMap::new();
    out.insert(header::ETAG, header_value(&format!("\"{}\"", info.etag))?);
    checksum_headers(&mut out, &info.user_metadata)?;
    if state.map_err(to_s3)? != Versioning::Unversioned {
        out.insert("x-amz-version-id", header_value(&info.version_id)?);
    }
    Ok(respond(StatusCode::OK, out, Bytes::new()))
}

/// The condition of a conditional write (PutObject, CompleteMultipartUpload):
/// `If-None-Match: *` or `If-Match: <etag>` (quoted or not; `*` is any object). S3 knows
/// no other If-None-Match value on writes, nor both headers together.
pub(super) fn write_condition(headers: &HeaderMap) -> Result<Option<WriteCondition>, S3Error> {
    let none_match = header_string(headers, "if-none-match");
    let matching = header_string(headers, "if-match");
    let unsupported = |what: &str| S3Error::NotImplemented { operation: what.to_string() };
    match (none_match, matching) {
        (None, None) => Ok(None),
        (Some(v), None) if v.trim() == "*" => Ok(Some(WriteCondition::IfNoneMatch)),
        (Some(_), None) => Err(unsupported("If-None-Match with a value other than * on a write")),
        (None, Some(v)) => Ok(Some(WriteCondition::IfMatch(v.trim().trim_matches('"').into()))),
        (Some(_), Some(_)) => Err(unsupported("If-Match together with If-None-Match on a write")),
    }
}

/// A failed read as S3 answers it: a delete marker in the way is NoSuchKey with
/// `x-amz-delete-marker` (current version) or MethodNotAllowed (named version) — except in
/// a bucket never versioned, where a deleted key is just absent.
pub(super) fn read_error(
    err: BackendError,
    (bucket, key, version_id): (&str, &str, Option<&str>),
    state: Option<Versioning>,
) -> S3Error {
    match err {
        BackendError::DeleteMarker { version_id: marker } if version_id.is_some() => {
            S3Error::VersionIsDeleteMarker { version_id: marker }
        }
        BackendError::DeleteMarker { .. } if state == Some(Versioning::Unversioned) => {
            S3Error::NoSuchKey { key: key.to_string() }
        }
        err => S3Error::from_backend(err, bucket, key),
    }
}

/// `If-Match` / `If-None-Match` against the object's ETag (`*` matches any object).
/// `Ok(true)` means "answer 304 Not Modified".
fn check_preconditions(headers: &HeaderMap, info: &ObjectInfo) -> Result<bool, S3Error> {
    let matches = |value: String| {
        value.split(',').map(str::trim).any(|t| t == "*" || t.trim_matches('"') == info.etag)
    };
    if let Some(v) = header_string(headers, "if-match")
        && !matches(v)
    {
        return Err(S3Error::PreconditionFailed);
    }
    Ok(header_string(headers, "if-none-match").is_some_and(matches))
}

/// `response-content-type` and friends override the stored headers on a signed GET.
const RESPONSE_OVERRIDES: [(&str, header::HeaderName); 6] = [
    ("response-content-type", header::CONTENT_TYPE),
    ("response-content-language", header::CONTENT_LANGUAGE),
    ("response-expires", header::EXPIRES),
    ("response-cache-control", header::CACHE_CONTROL),
    ("response-content-disposition", header::CONTENT_DISPOSITION),
    ("response-content-encoding", header::CONTENT_ENCODING),
];

/// A body whose first chunk was already read; it hands that one out first.
struct Prefetched {
    first: Option<Bytes>,
    rest: Box<dyn ObjectBody>,
}

impl ObjectBody for Prefetched {
    fn select(&mut self, _start: u64, _end: u64) {
        unreachable!("the range was selected before the first read")
    }

    fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Bytes>, BackendError>> {
        Box::pin(async move {
            match self.first.take() {
                Some(chunk) => Ok(Some(chunk)),
                None => self.rest.next_chunk().await,
            }
        })
    }
}

/// What a GET or HEAD asks for besides the object.
pub struct Read<'a> {
    pub headers: &'a HeaderMap,
    pub query: &'a [(String, String)],
    /// `?partNumber=N` (`part_numbers`).
    pub part_number: Option<u32>,
    pub head: bool,
}

/// GET and HEAD share everything but the body. The body is not read here: it streams
/// from the backend as the client reads the response.
pub async fn get_object(
    backend: &dyn ObjectBackend,
    (bucket, key, version_id): (&str, &str, Option<&str>),
    Read { headers, query, part_number, head }: Read<'_>,
) -> Result<Response<ResponseBody>, S3Error> {
    if part_number.is_some() && headers.contains_key(header::RANGE) {
        let reason = "Cannot specify both Range header and partNumber query parameter".into();
        return Err(S3Error::InvalidRequest { reason });
    }
    let read = async {
        if head {
            Ok((backend.head_object(bucket, key, version_id).await?, None))
        } else {
            let (info, body) = backend.get_object(bucket, key, version_id).await?;
            Ok((info, Some(body)))
        }
    };
    let (state, read) = tokio::join!(backend.get_bucket_versioning(bucket), read);
    let (info, body) =
        read.map_err(|e| read_error(e, (bucket, key, version_id), state.as_ref().ok().copied()))?;
    let state = state.map_err(|e| S3Error::from_backend(e, bucket, key))?;
    let mut out = HeaderMap::new();
    if version_id.is_some() || state != Versioning::Unversioned {
        out.insert("x-amz-version-id", header_value(&info.version_id)?);
    }
    out.insert(header::ETAG, header_value(&format!("\"{}\"", info.etag))?);
    let last_modified = format_http_date(info.last_modified_ms);
    out.insert(header::LAST_MODIFIED, header_value(&last_modified)?);
    out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if check_preconditions(headers, &info)? {
        return Ok(respond(StatusCode::NOT_MODIFIED, out, Bytes::new()).map(ResponseBody::from));
    }
    out.insert(header::CONTENT_TYPE, header_value(&info.content_type)?);
    // Checksums and the website redirect are stored among the metadata under names no
    // header can have (a leading space).
    let user_metadata = info.user_metadata.iter().filter(|(n, _)| !n.starts_with(' '));
    for (name, value) in user_metadata {
        let name = HeaderName::from_bytes(format!("{META_PREFIX}{name}").as_bytes())
            .map_err(|_| S3Error::InternalError { reason: format!("bad metadata {name:?}") })?;
        out.insert(name, header_value(value)?);
    }
    if let Some(location) = super::website_routing::object_redirect_of(&info.user_metadata) {
        out.insert(super::website_routing::OBJECT_REDIRECT_HEADER, header_value(location)?);
    }
    // `insert`, not `append`: an override replaces the stored value.
    for (param, name) in RESPONSE_OVERRIDES {
        if let Some((_, v)) = query.iter().find(|(k, _)| k == param) {
            out.insert(name, header_value(v)?);
        }
    }
    let range = header_string(headers, "range").and_then(|r| parse_range(&r));
    let part = part_number.map(|n| part_range(&info.user_metadata, info.size_bytes, n));
    let (status, start, end) = match (range, part.transpose()?) {
        (_, Some(part)) => {
            if let Some(count) = part.parts_count {
                out.insert("x-amz-mp-parts-count", HeaderValue::from(count));
            }
            if part.end == part.start {
                // An empty object: no byte range to name.
                (StatusCode::OK, 0, 0)
            } else {
                let content_range =
                    format!("bytes {}-{}/{}", part.start, part.end - 1, info.size_bytes);
                out.insert(header::CONTENT_RANGE, header_value(&content_range)?);
                (StatusCode::PARTIAL_CONTENT, part.start, part.end)
            }
        }
        (None, None) => (StatusCode::OK, 0, info.size_bytes),
        (Some(r), None) => {
            let (a, b) = resolve_range(r, info.size_bytes)?;
            let content_range = format!("bytes {a}-{b}/{}", info.size_bytes);
            out.insert(header::CONTENT_RANGE, header_value(&content_range)?);
            (StatusCode::PARTIAL_CONTENT, a, b + 1)
        }
    };
    let checksum_mode = header_string(headers, "x-amz-checksum-mode");
    let whole = range.is_none() && part_number.is_none();
    if checksum_mode.is_some_and(|m| m.eq_ignore_ascii_case("ENABLED")) && whole {
        // A checksum covers the whole object: S3 sends none with a range.
        checksum_headers(&mut out, &info.user_metadata)?;
    }
    // HEAD announces the length GET would send, without the bytes.
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    let body = match body {
        None => ResponseBody::from(Full::new(Bytes::new())),
        Some(mut body) => {
            body.select(start, end);
            // The first chunk is read before the status line goes out: an object none of
            // whose replicas can serve its first block gets an error status, not a 200
            // cut short (a failure later in the body can only end the stream early).
            let first = match end > start {
                true => {
                    body.next_chunk().await.map_err(|e| S3Error::from_backend(e, bucket, key))?
                }
                false => None,
            };
            let body = Box::new(Prefetched { first, rest: body });
            ResponseBody::Object(ObjectStream::new(body, end - start))
        }
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = out;
    Ok(resp)
}

fn respond(status: StatusCode, headers: HeaderMap, body: Bytes) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

/// Without a version id: writes a delete marker, announced (with its id) once the bucket
/// has been versioned. With one: removes that version, saying whether it was a marker.
pub async fn delete_object(
    backend: &dyn ObjectBackend,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> Result<Response<Full<Bytes>>, S3Error> {
    let (state, deleted) = tokio::join!(
        backend.get_bucket_versioning(bucket),
        backend.delete_object(bucket, key, version_id)
    );
    let to_s3 = |e| S3Error::from_backend(e, bucket, key);
    let deleted = deleted.map_err(to_s3)?;
    let mut out = HeaderMap::new();
    if version_id.is_some() || state.map_err(to_s3)? != Versioning::Unversioned {
        out.insert("x-amz-version-id", header_value(&deleted.version_id)?);
        if deleted.delete_marker {
            out.insert("x-amz-delete-marker", HeaderValue::from_static("true"));
        }
    }
    Ok(respond(StatusCode::NO_CONTENT, out, Bytes::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_range_forms() {
        assert_eq!(parse_range("bytes=0-9"), Some(ByteRange::FromTo(0, 9)));
        assert_eq!(parse_range("bytes=5-"), Some(ByteRange::From(5)));
        assert_eq!(parse_range("bytes=-3"), Some(ByteRange::Suffix(3)));
    }

    #[test]
    fn malformed_ranges_are_ignored() {
        for bad in ["bytes=9-1", "bytes=a-b", "bytes=-", "items=0-1", "bytes=0-1,3-4", "bytes=+1-2"]
        {
            assert_eq!(parse_range(bad), None, "{bad}");
        }
    }

    #[test]
    fn resolves_against_object_size() {
        assert_eq!(resolve_range(ByteRange::FromTo(2, 100), 10), Ok((2, 9)));
        assert_eq!(resolve_range(ByteRange::From(9), 10), Ok((9, 9)));
        assert_eq!(resolve_range(ByteRange::Suffix(3), 10), Ok((7, 9)));
        assert_eq!(resolve_range(ByteRange::Suffix(30), 10), Ok((0, 9)));
    }

    #[test]
    fn unsatisfiable_ranges_are_invalid_range() {
        let err = Err(S3Error::InvalidRange { size_bytes: 10 });
        assert_eq!(resolve_range(ByteRange::From(10), 10), err);
        assert_eq!(resolve_range(ByteRange::FromTo(10, 12), 10), err);
        assert_eq!(resolve_range(ByteRange::Suffix(0), 10), err);
        let empty = Err(S3Error::InvalidRange { size_bytes: 0 });
        assert_eq!(resolve_range(ByteRange::Suffix(1), 0), empty);
    }
}
