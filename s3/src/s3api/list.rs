//! ListObjects (v1) and ListObjectsV2: delimiter roll-up and pagination over the backend's
//! plain ordered scan.
//!
//! Why it is correct: keys come sorted, so all keys rolling up to one common prefix `P` are
//! contiguous; remembering the last prefix emitted is enough to emit each `P` once. A page
//! resumes strictly after its last entry (a key or a prefix), and a prefix `P` is skipped on
//! the next page because `P <= start_after` — no key after the last entry can roll up to a
//! prefix that sorts at or before it unless it is that same prefix. Both `max-keys` and the
//! scan batch are bounded, and each batch strictly advances the cursor, so a listing ends.

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;

use super::backend::{BackendError, ObjectBackend, ObjectInfo};
use super::encoding::uri_encode;
use super::error::S3Error;
use super::time::format_iso8601;
use super::xml::XmlWriter;

/// S3's default and maximum page size.
pub const LIST_KEYS_MAX: usize = 1000;

/// What to list, after parsing the request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListQuery {
    pub prefix: String,
    /// `None` when absent or empty: S3 treats an empty delimiter as none.
    pub delimiter: Option<String>,
    /// Exclusive lower bound on entries (keys and common prefixes).
    pub start_after: String,
    pub max_keys: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    pub objects: Vec<ObjectInfo>,
    pub common_prefixes: Vec<String>,
    pub truncated: bool,
    /// The last key or prefix returned: where the next page starts after.
    pub last_entry: Option<String>,
}

/// The common prefix `key` rolls up to, if the delimiter occurs after the list prefix.
pub(super) fn rolled_up<'k>(
    key: &'k str,
    prefix: &str,
    delimiter: Option<&str>,
) -> Option<&'k str> {
    let delimiter = delimiter?;
    let tail = &key[prefix.len()..];
    tail.find(delimiter).map(|i| &key[..prefix.len() + i + delimiter.len()])
}

pub async fn collect(
    backend: &dyn ObjectBackend,
    bucket: &str,
    q: &ListQuery,
) -> Result<Listing, BackendError> {
    let mut listing = Listing::default();
    let delimiter = q.delimiter.as_deref();
    let batch_len = (q.max_keys + 1).clamp(1, LIST_KEYS_MAX);
    let mut cursor = q.start_after.clone();
    let mut entries = 0usize;
    loop {
        let batch = backend.list_objects(bucket, &q.prefix, &cursor, batch_len).await?;
        let exhausted = batch.len() < batch_len;
        for obj in batch {
            if !obj.key.starts_with(&q.prefix) || obj.key <= cursor {
                return Err(BackendError::Internal {
                    reason: format!("list_objects broke its contract with key {:?}", obj.key),
                });
            }
            let prefix = rolled_up(&obj.key, &q.prefix, delimiter).map(str::to_string);
            let name = prefix.clone().unwrap_or_else(|| obj.key.clone());
            cursor = obj.key.clone();
            let repeated = prefix.is_some() && listing.common_prefixes.last() == prefix.as_ref();
            if repeated || name <= q.start_after {
                continue;
            }
            if entries == q.max_keys {
                listing.truncated = true;
                return Ok(listing);
            }
            entries += 1;
            match prefix {
                Some(p) => listing.common_prefixes.push(p),
                None => listing.objects.push(obj),
            }
            listing.last_entry = Some(name);
        }
        if exhausted {
            return Ok(listing);
        }
        // Jump over the rest of a rolled-up "directory" instead of scanning every key in
        // it. U+10FFFF sorts after any other character; keys beyond the jump target that
        // still share the prefix are caught by the `repeated` check above.
        if let Some(p) = listing.common_prefixes.last().filter(|p| cursor.starts_with(p.as_str())) {
            let jump = format!("{p}\u{10FFFF}");
            if jump > cursor {
                cursor = jump;
            }
        }
    }
}

/// Request parameters shared by both list versions.
pub(super) struct ListParams {
    pub query: ListQuery,
    pub url_encoding: bool,
}

pub(super) fn param<'q>(query: &'q [(String, String)], name: &str) -> Option<&'q str> {
    query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

pub(super) fn parse_common(
    query: &[(String, String)],
    start_after: String,
) -> Result<ListParams, S3Error> {
    let invalid = |reason: &str| S3Error::InvalidArgument { reason: reason.to_string() };
    let max_keys = match param(query, "max-keys") {
        None => LIST_KEYS_MAX,
        Some(v) => {
            v.parse::<usize>().map_err(|_| invalid("max-keys must be a non-negative integer"))?
        }
    };
    let url_encoding = match param(query, "encoding-type") {
        None => false,
        Some("url") => true,
        Some(_) => return Err(invalid("Invalid Encoding Method specified in Request")),
    };
    let query = ListQuery {
        prefix: param(query, "prefix").unwrap_or("").to_string(),
        delimiter: param(query, "delimiter").filter(|d| !d.is_empty()).map(str::to_string),
        start_after,
        max_keys: max_keys.min(LIST_KEYS_MAX),
    };
    Ok(ListParams { query, url_encoding })
}

/// Keys and prefixes in a listing, `encoding-type=url` applied when asked (SDKs ask for it
/// so keys with characters XML 1.0 cannot carry survive).
pub(super) fn text(value: &str, url_encoding: bool) -> String {
    if url_encoding { uri_encode(value, false) } else { value.to_string() }
}

fn write_entries(w: &mut XmlWriter, listing: &Listing, url_encoding: bool) {
    for obj in &listing.objects {
        w.open("Contents");
        w.element("Key", &text(&obj.key, url_encoding));
        w.element("LastModified", &format_iso8601(obj.last_modified_ms));
        w.element("ETag", &format!("\"{}\"", obj.etag));
        w.element("Size", &obj.size_bytes.to_string());
        w.element("StorageClass", "STANDARD");
        w.close("Contents");
    }
    for prefix in &listing.common_prefixes {
        w.open("CommonPrefixes");
        w.element("Prefix", &text(prefix, url_encoding));
        w.close("CommonPrefixes");
    }
}

fn write_header(w: &mut XmlWriter, bucket: &str, p: &ListParams, listing: &Listing) {
    w.element("Name", bucket);
    w.element("Prefix", &text(&p.query.prefix, p.url_encoding));
    if let Some(d) = &p.query.delimiter {
        w.element("Delimiter", &text(d, p.url_encoding));
    }
    w.element("MaxKeys", &p.query.max_keys.to_string());
    if p.url_encoding {
        w.element("EncodingType", "url");
    }
    w.element("IsTruncated", if listing.truncated { "true" } else { "false" });
}

/// Continuation tokens are opaque to clients; hex of the resume key keeps them printable
/// and unambiguous without exposing a format anyone should parse.
fn decode_token(token: &str) -> Result<String, S3Error> {
    hex::decode(token).ok().and_then(|b| String::from_utf8(b).ok()).ok_or_else(|| {
        S3Error::InvalidArgument { reason: "The continuation token provided is incorrect".into() }
    })
}

pub async fn list_objects_v2(
    backend: &dyn ObjectBackend,
    bucket: &str,
    query: &[(String, String)],
) -> Result<Response<Full<Bytes>>, S3Error> {
    let token = param(query, "continuation-token");
    let start_after_param = param(query, "start-after").unwrap_or("");
    let resume = match token {
        Some(t) => decode_token(t)?,
        None => start_after_param.to_string(),
    };
    let p = parse_common(query, resume)?;
    let listing = collect(backend, bucket, &p.query)
        .await
        .map_err(|e| S3Error::from_backend(e, bucket, ""))?;
    let mut w = XmlWriter::new("ListBucketResult", true);
    write_header(&mut w, bucket, &p, &listing);
    let count = listing.objects.len() + listing.common_prefixes.len();
    w.element("KeyCount", &count.to_string());
    if let Some(t) = token {
        w.element("ContinuationToken", t);
    }
    if let (true, Some(last)) = (listing.truncated, &listing.last_entry) {
        w.element("NextContinuationToken", &hex::encode(last));
    }
    if !start_after_param.is_empty() {
        w.element("StartAfter", &text(start_after_param, p.url_encoding));
    }
    write_entries(&mut w, &listing, p.url_encoding);
    Ok(super::xml_response(w.finish("ListBucketResult")))
}

pub async fn list_objects_v1(
    backend: &dyn ObjectBackend,
    bucket: &str,
    query: &[(String, String)],
) -> Result<Response<Full<Bytes>>, S3Error> {
    let marker = param(query, "marker").unwrap_or("");
    let p = parse_common(query, marker.to_string())?;
    let listing = collect(backend, bucket, &p.query)
        .await
        .map_err(|e| S3Error::from_backend(e, bucket, ""))?;
    let mut w = XmlWriter::new("ListBucketResult", true);
    write_header(&mut w, bucket, &p, &listing);
    w.element("Marker", &text(marker, p.url_encoding));
    // S3 sends NextMarker only with a delimiter; clients fall back to the last key, which
    // is the same value, so sending it whenever the page is truncated is compatible.
    if let (true, Some(last)) = (listing.truncated, &listing.last_entry) {
        w.element("NextMarker", &text(last, p.url_encoding));
    }
    write_entries(&mut w, &listing, p.url_encoding);
    Ok(super::xml_response(w.finish("ListBucketResult")))
}

#[cfg(test)]
#[path = "list_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "list_model_tests.rs"]
mod model_tests;
