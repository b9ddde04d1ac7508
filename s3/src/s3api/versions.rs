//! Bucket versioning: GetBucketVersioning, PutBucketVersioning, ListObjectVersions.
//!
//! What the S3 layer shows of versions (a choice; S3 itself differs where noted): every
//! write has a version id, but `x-amz-version-id` is sent on PUT, GET, HEAD and DELETE only
//! once the bucket has been versioned (`Enabled` or `Suspended`), or when the request named
//! a version. A bucket never versioned sends no header, like S3. Writes made while
//! versioning is off show their real id where S3 would say `null` (ListObjectVersions
//! too), and `null` is refused as a `versionId` (InvalidArgument).
//!
//! ListObjectVersions pages over the backend's key-ordered scan like `list.rs` does for
//! objects (same delimiter roll-up, same jump over a rolled-up prefix), with one addition:
//! a page may end inside a key's versions. It then resumes with `key-marker` = that key and
//! `version-id-marker` = the last version shown; the rest of that key's versions are those
//! with a smaller id (ids sort like their versions, see `valid_version_id`), and the scan
//! goes on strictly after the key. Each entry (version, delete marker or common prefix)
//! counts against `max-keys`.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::HeaderMap;
use hyper::{Response, StatusCode};

use super::backend::{BackendError, ObjectBackend, VersionInfo, Versioning, valid_version_id};
use super::error::S3Error;
use super::list::{LIST_KEYS_MAX, ListParams, param, parse_common, rolled_up, text};
use super::time::format_iso8601;
use super::xml::{Token, XmlWriter, tokens};

// ---- GetBucketVersioning / PutBucketVersioning ----

/// The `VersioningConfiguration` document: `Status` is `Enabled` or `Suspended`;
/// `MfaDelete` may be `Disabled` (MFA delete is not implemented). Anything else, or a
/// missing `Status`, is MalformedXML.
pub fn parse_versioning(doc: &[u8]) -> Result<Versioning, S3Error> {
    let doc = std::str::from_utf8(doc).map_err(|_| S3Error::MalformedXML)?;
    let (mut stack, mut text) = (Vec::<String>::new(), String::new());
    let (mut status, mut seen_root) = (None, false);
    for token in tokens(doc)? {
        match token {
            Token::Open(name) => {
                let root_ok = !seen_root && name == "VersioningConfiguration";
                if (stack.is_empty() && !root_ok) || stack.len() > 1 {
                    return Err(S3Error::MalformedXML);
                }
                seen_root = true;
                stack.push(name);
                text.clear();
            }
            Token::Text(t) if stack.len() != 2 && !t.trim().is_empty() => {
                return Err(S3Error::MalformedXML);
            }
            Token::Text(t) => text.push_str(&t),
            Token::Close(name) => {
                if stack.pop().as_deref() != Some(name.as_str()) {
                    return Err(S3Error::MalformedXML);
                }
                match (stack.len(), name.as_str(), text.trim()) {
                    (1, "Status", "Enabled") if status.is_none() => {
                        status = Some(Versioning::Enabled)
                    }
                    (1, "Status", "Suspended") if status.is_none() => {
                        status = Some(Versioning::Suspended)
                    }
                    (1, "MfaDelete", "Disabled") | (0, _, _) => {}
                    (1, "MfaDelete", "Enabled") => {
                        return Err(S3Error::NotImplemented { operation: "MFA delete".into() });
                    }
                    _ => return Err(S3Error::MalformedXML),
                }
                text.clear();
            }
        }
    }
    if !stack.is_empty() {
        return Err(S3Error::MalformedXML);
    }
    status.ok_or(S3Error::MalformedXML)
}

/// The GetBucketVersioning answer: no `Status` for a bucket never versioned.
pub fn render_versioning(state: Versioning) -> String {
    let mut w = XmlWriter::new("VersioningConfiguration", true);
    match state {
        Versioning::Unversioned => {}
        Versioning::Enabled => w.element("Status", "Enabled"),
        Versioning::Suspended => w.element("Status", "Suspended"),
    }
    w.finish("VersioningConfiguration")
}

pub async fn get_bucket_versioning(
    backend: &dyn ObjectBackend,
    bucket: &str,
) -> Result<Response<Full<Bytes>>, S3Error> {
    let state = backend.get_bucket_versioning(bucket).await;
    let state = state.map_err(|e| S3Error::from_backend(e, bucket, ""))?;
    Ok(super::xml_response(render_versioning(state)))
}

pub async fn put_bucket_versioning(
    backend: &dyn ObjectBackend,
    bucket: &str,
    body: &[u8],
) -> Result<Response<Full<Bytes>>, S3Error> {
    let state = parse_versioning(body)?;
    let stored = backend.put_bucket_versioning(bucket, state).await;
    stored.map_err(|e| S3Error::from_backend(e, bucket, ""))?;
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::OK;
    *resp.headers_mut() = HeaderMap::new();
    Ok(resp)
}

// ---- ListObjectVersions ----

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionQuery {
    pub prefix: String,
    pub delimiter: Option<String>,
    /// Keys up to this one were listed (all its versions, unless `version_id_marker`).
    pub key_marker: String,
    /// The last version of `key_marker` listed.
    pub version_id_marker: Option<String>,
    pub max_keys: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionPage {
    /// Object versions and delete markers, by key, newest first within a key.
    pub versions: Vec<VersionInfo>,
    pub common_prefixes: Vec<String>,
    pub truncated: bool,
    /// Where the next page starts (only when truncated).
    pub next_key_marker: Option<String>,
    pub next_version_id_marker: Option<String>,
}

/// Fills one page; `push_*` answer false once it is full (and then mark it truncated).
struct Pager {
    max_keys: usize,
    page: VersionPage,
}

impl Pager {
    fn has_room(&mut self) -> bool {
        let full = self.page.versions.len() + self.page.common_prefixes.len() == self.max_keys;
        self.page.truncated |= full;
        !full
    }

    fn push_version(&mut self, v: VersionInfo) -> bool {
        if !self.has_room() {
            return false;
        }
        self.page.next_key_marker = Some(v.key.clone());
        self.page.next_version_id_marker = Some(v.version_id.clone());
        self.page.versions.push(v);
        true
    }

    fn push_prefix(&mut self, prefix: &str) -> bool {
        if !self.has_room() {
            return false;
        }
        self.page.next_key_marker = Some(prefix.to_string());
        self.page.next_version_id_marker = None;
        self.page.common_prefixes.push(prefix.to_string());
        true
    }

    fn finish(mut self) -> VersionPage {
        if !self.page.truncated {
            self.page.next_key_marker = None;
            self.page.next_version_id_marker = None;
        }
        self.page
    }
}

pub async fn collect_versions(
    backend: &dyn ObjectBackend,
    bucket: &str,
    q: &VersionQuery,
) -> Result<VersionPage, BackendError> {
    let mut pager = Pager { max_keys: q.max_keys, page: VersionPage::default() };
    // The rest of the key the previous page ended in.
    if let Some(marker) = &q.version_id_marker
        && q.key_marker.starts_with(&q.prefix)
    {
        let batch = backend.list_object_versions(bucket, &q.key_marker, "", 1).await?;
        let rest = batch.into_iter().filter(|v| v.key == q.key_marker && v.version_id < *marker);
        for v in rest {
            if !pager.push_version(v) {
                return Ok(pager.finish());
            }
        }
    }
    let delimiter = q.delimiter.as_deref();
    let batch_keys = (q.max_keys + 1).clamp(1, LIST_KEYS_MAX);
    let mut cursor = q.key_marker.clone();
    loop {
        let batch = backend.list_object_versions(bucket, &q.prefix, &cursor, batch_keys).await?;
        let (mut keys, mut last_key) = (0usize, None::<String>);
        for v in batch {
            if !v.key.starts_with(&q.prefix) || v.key <= cursor {
                return Err(BackendError::Internal {
                    reason: format!("list_object_versions broke its contract with {:?}", v.key),
                });
            }
            if last_key.as_deref() != Some(v.key.as_str()) {
                keys += 1;
                last_key = Some(v.key.clone());
            }
            let pushed = match rolled_up(&v.key, &q.prefix, delimiter) {
                Some(p) if pager.page.common_prefixes.last().is_some_and(|last| last == p) => true,
                Some(p) if *p <= *q.key_marker => true,
                Some(p) => pager.push_prefix(p),
                None => pager.push_version(v),
            };
            if !pushed {
                return Ok(pager.finish());
            }
        }
        let Some(last_key) = last_key.filter(|_| keys == batch_keys) else {
            return Ok(pager.finish());
        };
        cursor = last_key;
        // Jump over the rest of a rolled-up "directory", as `list::collect` does.
        if let Some(p) = pager.page.common_prefixes.last().filter(|p| cursor.starts_with(*p)) {
            let jump = format!("{p}\u{10FFFF}");
            if jump > cursor {
                cursor = jump;
            }
        }
    }
}

fn parse_query(query: &[(String, String)]) -> Result<(VersionQuery, bool), S3Error> {
    let invalid = |reason: &str| S3Error::InvalidArgument { reason: reason.to_string() };
    let key_marker = param(query, "key-marker").unwrap_or("").to_string();
    let ListParams { query: list, url_encoding } = parse_common(query, key_marker.clone())?;
    let version_id_marker = param(query, "version-id-marker").filter(|m| !m.is_empty());
    if let Some(marker) = version_id_marker {
        if key_marker.is_empty() {
            return Err(invalid("A version-id marker cannot be specified without a key marker."));
        }
        if !valid_version_id(marker) {
            return Err(invalid("Invalid version id specified"));
        }
    }
    let q = VersionQuery {
        prefix: list.prefix,
        delimiter: list.delimiter,
        key_marker,
        version_id_marker: version_id_marker.map(str::to_string),
        max_keys: list.max_keys,
    };
    Ok((q, url_encoding))
}

pub fn render_versions(bucket: &str, q: &VersionQuery, page: &VersionPage, url: bool) -> String {
    let mut w = XmlWriter::new("ListVersionsResult", true);
    w.element("Name", bucket);
    w.element("Prefix", &text(&q.prefix, url));
    w.element("KeyMarker", &text(&q.key_marker, url));
    w.element("VersionIdMarker", q.version_id_marker.as_deref().unwrap_or(""));
    if let Some(next) = &page.next_key_marker {
        w.element("NextKeyMarker", &text(next, url));
    }
    if let Some(next) = &page.next_version_id_marker {
        w.element("NextVersionIdMarker", next);
    }
    w.element("MaxKeys", &q.max_keys.to_string());
    if let Some(d) = &q.delimiter {
        w.element("Delimiter", &text(d, url));
    }
    if url {
        w.element("EncodingType", "url");
    }
    w.element("IsTruncated", if page.truncated { "true" } else { "false" });
    for v in &page.versions {
        let tag = if v.object.is_some() { "Version" } else { "DeleteMarker" };
        w.open(tag);
        w.element("Key", &text(&v.key, url));
        w.element("VersionId", &v.version_id);
        w.element("IsLatest", if v.is_latest { "true" } else { "false" });
        w.element("LastModified", &format_iso8601(v.last_modified_ms));
        if let Some(object) = &v.object {
            w.element("ETag", &format!("\"{}\"", object.etag));
            w.element("Size", &object.size_bytes.to_string());
            w.element("StorageClass", "STANDARD");
        }
        w.close(tag);
    }
    for prefix in &page.common_prefixes {
        w.open("CommonPrefixes");
        w.element("Prefix", &text(prefix, url));
        w.close("CommonPrefixes");
    }
    w.finish("ListVersionsResult")
}

pub async fn list_object_versions(
    backend: &dyn ObjectBackend,
    bucket: &str,
    query: &[(String, String)],
) -> Result<Response<Full<Bytes>>, S3Error> {
    let (q, url_encoding) = parse_query(query)?;
    let page = collect_versions(backend, bucket, &q)
        .await
        .map_err(|e| S3Error::from_backend(e, bucket, ""))?;
    Ok(super::xml_response(render_versions(bucket, &q, &page, url_encoding)))
}

#[cfg(test)]
#[path = "versions_tests.rs"]
mod tests;
