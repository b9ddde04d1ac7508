//! CopyObject and UploadPartCopy: `PUT` with `x-amz-copy-source`.
//!
//! The order of a copy: read the source's description (HEAD), judge the copy-source
//! conditions and the metadata directive against it, then ask the backend to copy *that
//! exact version* (`ObjectBackend::copy_object`). Naming the version closes the race
//! between checking and copying: a source replaced in between answers NoSuchKey instead of
//! silently copying something the conditions were not checked against.
//!
//! The S3 rules followed (from the S3 API reference):
//! - `x-amz-metadata-directive`: `COPY` (default) keeps the source's content type and user
//!   metadata, `REPLACE` takes them from the request. The stored checksum describes the
//!   bytes, so it is kept either way.
//! - copying an object onto itself with `COPY` and no version named changes nothing, and
//!   S3 refuses it (400 InvalidRequest);
//! - `x-amz-copy-source-if-match` / `-if-none-match` / `-if-unmodified-since` /
//!   `-if-modified-since` answer 412 PreconditionFailed; an ETag condition that holds
//!   overrides the date condition paired with it (RFC 9110's order, as S3 documents);
//! - the copy's ETag is the source's (S3 behaviour for a single-part source).
//! - UploadPartCopy into an upload that declared a checksum algorithm computes the part's
//!   checksum, as S3 does, and answers it in `CopyPartResult`: the part is then streamed
//!   (read and written again) instead of referencing the source's blocks, since the
//!   checksum needs the bytes. Completion treats it like any uploaded part.

use std::collections::BTreeMap;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper::header::HeaderMap;

use super::backend::{
    BackendError, BodyEnd, BodyRefused, BodySource, BodySummary, BoxFuture, ObjectBackend,
    ObjectBody, ObjectInfo, ObjectMeta, Versioning, valid_version_id,
};
use super::checksum::{self, Hasher};
use super::checksum_multipart::{self as mpu_checksum, TaggedPart};
use super::encoding::percent_decode;
use super::error::S3Error;
use super::object::{client_meta, header_value};
use super::router::KEY_BYTES_MAX;
use super::time::{format_iso8601, parse_amz_date};
use super::xml::XmlWriter;

/// What `x-amz-copy-source` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopySource {
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
}

/// Parses `x-amz-copy-source`: `[/]bucket/key[?versionId=id]`, percent-encoded.
pub fn parse_copy_source(value: &str) -> Result<CopySource, S3Error> {
    let malformed = || S3Error::InvalidArgument {
        reason: "Copy Source must mention the source bucket and key: sourcebucket/sourcekey".into(),
    };
    let (path, query) = value.split_once('?').unwrap_or((value, ""));
    let path = path.strip_prefix('/').unwrap_or(path);
    let (bucket, key) = path.split_once('/').ok_or_else(malformed)?;
    let bucket = percent_decode(bucket).ok_or_else(malformed)?;
    let key = percent_decode(key).ok_or_else(malformed)?;
    if bucket.is_empty() || key.is_empty() {
        return Err(malformed());
    }
    if key.len() > KEY_BYTES_MAX {
        return Err(S3Error::KeyTooLong { length_bytes: key.len() });
    }
    let version_id = match query {
        "" => None,
        q => {
            let id = q.strip_prefix("versionId=").ok_or_else(malformed)?;
            if !valid_version_id(id) {
                let reason = "Invalid version id specified".into();
                return Err(S3Error::InvalidArgument { reason });
            }
            Some(id.to_string())
        }
    };
    Ok(CopySource { bucket, key, version_id })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Directive {
    Copy,
    Replace,
}

fn directive(headers: &HeaderMap) -> Result<Directive, S3Error> {
    match headers.get("x-amz-metadata-directive").map(|v| v.as_bytes()) {
        None => Ok(Directive::Copy),
        Some(v) if v.eq_ignore_ascii_case(b"COPY") => Ok(Directive::Copy),
        Some(v) if v.eq_ignore_ascii_case(b"REPLACE") => Ok(Directive::Replace),
        Some(_) => Err(S3Error::InvalidArgument { reason: "Unknown metadata directive.".into() }),
    }
}

/// `Mon, 12 Oct 2009 17:50:30 GMT` (RFC 9110's preferred HTTP-date) in milliseconds.
pub fn parse_http_date(s: &str) -> Option<u64> {
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_weekday, day, month, year, time, "GMT"] = parts.as_slice() else { return None };
    let month = MONTHS.iter().position(|m| m == month)? + 1;
    let hms: String = time.split(':').collect();
    if day.len() != 2 || year.len() != 4 || hms.len() != 6 {
        return None;
    }
    parse_amz_date(&format!("{year}{month:02}{day}T{hms}Z"))
}

/// The copy-source conditions against the source; `PreconditionFailed` if one fails.
pub fn check_copy_conditions(headers: &HeaderMap, info: &ObjectInfo) -> Result<(), S3Error> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let etag_matches = |list: &str| {
        list.split(',').map(str::trim).any(|t| t == "*" || t.trim_matches('"') == info.etag)
    };
    // Whole seconds: HTTP dates have no finer resolution.
    let modified_s = info.last_modified_ms / 1000;
    // S3 ignores a date it cannot parse, as HTTP says to.
    let date = |name: &str| get(name).and_then(parse_http_date).map(|ms| ms / 1000);
    let if_match = get("x-amz-copy-source-if-match");
    let if_none_match = get("x-amz-copy-source-if-none-match");
    if let Some(list) = if_match {
        if !etag_matches(list) {
            return Err(S3Error::PreconditionFailed);
        }
    } else if let Some(since) = date("x-amz-copy-source-if-unmodified-since")
        && modified_s > since
    {
        return Err(S3Error::PreconditionFailed);
    }
    if let Some(list) = if_none_match {
        if etag_matches(list) {
            return Err(S3Error::PreconditionFailed);
        }
    } else if let Some(since) = date("x-amz-copy-source-if-modified-since")
        && modified_s <= since
    {
        return Err(S3Error::PreconditionFailed);
    }
    Ok(())
}

/// A read of the source failed: as S3 answers it for a copy. A delete marker in the way is
/// NoSuchKey, or InvalidRequest when the request named it by version id; a version that
/// vanished between the HEAD and the copy (replaced meanwhile) is NoSuchKey unless named.
fn source_error(err: BackendError, source: &CopySource) -> S3Error {
    match err {
        BackendError::DeleteMarker { .. } if source.version_id.is_some() => {
            S3Error::InvalidRequest {
                reason: "The source of a copy request may not specifically refer to a delete \
                         marker by version id."
                    .into(),
            }
        }
        BackendError::DeleteMarker { .. } => S3Error::NoSuchKey { key: source.key.clone() },
        BackendError::NoSuchVersion if source.version_id.is_none() => {
            S3Error::NoSuchKey { key: source.key.clone() }
        }
        err => S3Error::from_backend(err, &source.bucket, &source.key),
    }
}

/// The source's description and whether its bucket has been versioned (which decides
/// whether `x-amz-copy-source-version-id` is shown).
async fn read_source(
    backend: &dyn ObjectBackend,
    source: &CopySource,
    headers: &HeaderMap,
) -> Result<(ObjectInfo, bool), S3Error> {
    let (bucket, key) = (source.bucket.as_str(), source.key.as_str());
    let (state, info) = tokio::join!(
        backend.get_bucket_versioning(bucket),
        backend.head_object(bucket, key, source.version_id.as_deref())
    );
    let info = info.map_err(|e| source_error(e, source))?;
    let state = state.map_err(|e| source_error(e, source))?;
    check_copy_conditions(headers, &info)?;
    Ok((info, source.version_id.is_some() || state != Versioning::Unversioned))
}

pub async fn copy_object(
    backend: &dyn ObjectBackend,
    (bucket, key): (&str, &str),
    source: &CopySource,
    headers: &HeaderMap,
) -> Result<Response<Full<Bytes>>, S3Error> {
    let (src, show_source_version) = read_source(backend, source, headers).await?;
    let directive = directive(headers)?;
    let onto_itself = source.bucket == bucket && source.key == key && source.version_id.is_none();
    if onto_itself && directive == Directive::Copy {
        return Err(S3Error::InvalidRequest {
            reason: "This copy request is illegal because it is trying to copy an object to \
                     itself without changing the object's metadata, storage class, website \
                     redirect location or encryption attributes."
                .into(),
        });
    }
    let meta = match directive {
        Directive::Copy => ObjectMeta {
            content_type: src.content_type.clone(),
            user_metadata: src.user_metadata.clone(),
        },
        Directive::Replace => {
            let mut meta = client_meta(headers);
            meta.user_metadata.extend(stored_checksums(&src.user_metadata));
            meta
        }
    };
    let from = (source.bucket.as_str(), source.key.as_str(), src.version_id.as_str());
    let (state, copied) = tokio::join!(
        backend.get_bucket_versioning(bucket),
        backend.copy_object(from, (bucket, key), meta)
    );
    let copied = copied.map_err(|e| match e {
        // The source's bucket was just read: a missing bucket now is the destination.
        BackendError::NoSuchBucket => S3Error::NoSuchBucket { bucket: bucket.to_string() },
        e => source_error(e, source),
    })?;
    let mut w = XmlWriter::new("CopyObjectResult", true);
    w.element("LastModified", &format_iso8601(copied.last_modified_ms));
    w.element("ETag", &format!("\"{}\"", copied.etag));
    let mut resp = super::xml_response(w.finish("CopyObjectResult"));
    let out = resp.headers_mut();
    if show_source_version {
        out.insert("x-amz-copy-source-version-id", header_value(&src.version_id)?);
    }
    if state.map_err(|e| S3Error::from_backend(e, bucket, key))? != Versioning::Unversioned {
        out.insert("x-amz-version-id", header_value(&copied.version_id)?);
    }
    Ok(resp)
}

/// The checksum entries and part sizes of stored metadata (kept by a REPLACE: they describe
/// the bytes).
fn stored_checksums(meta: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let describes_bytes =
        |n: &str| n.starts_with(checksum::STORED_PREFIX) || n == super::part_numbers::PARTS_KEY;
    let checksums = meta.iter().filter(|(n, _)| describes_bytes(n));
    checksums.map(|(n, v)| (n.clone(), v.clone())).collect()
}

/// `x-amz-copy-source-range: bytes=first-last` (both required, inclusive) as the
/// exclusive span `first..last+1`, checked against the source's size.
pub fn parse_copy_range(value: &str, size_bytes: u64) -> Result<(u64, u64), S3Error> {
    let malformed = || S3Error::InvalidArgument {
        reason: "The x-amz-copy-source-range value must be of the form bytes=first-last where \
                 first and last are the zero-based offsets of the first and last bytes to copy"
            .into(),
    };
    let spec = value.trim().strip_prefix("bytes=").ok_or_else(malformed)?;
    let (first, last) = spec.split_once('-').ok_or_else(malformed)?;
    let number = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())).then(|| s.parse().ok())?
    };
    let (first, last) = (number(first).ok_or_else(malformed)?, number(last).ok_or_else(malformed)?);
    if first > last || last >= size_bytes {
        return Err(S3Error::InvalidArgument {
            reason: format!("Range specified is not valid for source object of size: {size_bytes}"),
        });
    }
    Ok((first, last + 1))
}

pub async fn upload_part_copy(
    backend: &dyn ObjectBackend,
    (bucket, key, upload_id): (&str, &str, &str),
    part_number: u32,
    source: &CopySource,
    headers: &HeaderMap,
) -> Result<Response<Full<Bytes>>, S3Error> {
    let (src, show_source_version) = read_source(backend, source, headers).await?;
    let range = headers.get("x-amz-copy-source-range").map(|v| {
        let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
        parse_copy_range(&value, src.size_bytes)
    });
    let range = range.transpose()?;
    let from = (source.bucket.as_str(), source.key.as_str(), src.version_id.as_str());
    let upload = (bucket, key, upload_id);
    // A declared checksum needs the bytes (an upload that cannot be read is the copy's to
    // answer, below).
    let meta = backend.multipart_upload_meta(bucket, key, upload_id).await;
    let declared = meta.ok().and_then(|m| mpu_checksum::declaration_of(&m.user_metadata));
    let (stored, refused) = match declared {
        None => (backend.upload_part_copy(upload, part_number, from, range).await, None),
        Some(d) => {
            let hasher = Some(Hasher::new(d.algorithm));
            let copied = part_copy_body(backend, from, range, hasher).await;
            let mut copied = copied.map_err(|e| source_error(e, source))?;
            let mut tagged = TaggedPart { inner: &mut copied, declared, failure: None };
            let stored = backend.upload_part(bucket, key, upload_id, part_number, &mut tagged);
            (stored.await, tagged.failure.take())
        }
    };
    let stored = stored.map_err(|e| match (e, refused) {
        (_, Some(refused)) => refused,
        (BackendError::NoSuchUpload, None) => S3Error::NoSuchUpload,
        (BackendError::NoSuchBucket, None) => S3Error::NoSuchBucket { bucket: bucket.to_string() },
        (e, None) => source_error(e, source),
    })?;
    let (etag, part_checksum) = mpu_checksum::split_part_etag(&stored);
    let mut w = XmlWriter::new("CopyPartResult", true);
    w.element("LastModified", &format_iso8601(src.last_modified_ms));
    w.element("ETag", &format!("\"{etag}\""));
    if let Some((algorithm, value)) = part_checksum {
        w.element(&format!("Checksum{}", algorithm.name()), value);
    }
    let mut resp = super::xml_response(w.finish("CopyPartResult"));
    if show_source_version {
        let value = header_value(&src.version_id)?;
        resp.headers_mut().insert("x-amz-copy-source-version-id", value);
    }
    Ok(resp)
}

// ---- copying by streaming, for backends that cannot share data ----

/// What a streamed copy's `finish` answers as the ETag.
enum EtagOf {
    /// The source's (a whole-object copy keeps it).
    Source(String),
    /// The hex MD5 of the bytes copied (a part cut from a range is new content).
    Bytes,
}

/// A source object's body read as the body of a new write.
struct CopiedBody {
    body: Box<dyn ObjectBody>,
    etag: EtagOf,
    /// A checksum computed over the bytes copied, kept in the write's metadata as a
    /// verified request checksum would be (`checksum::STORED_PREFIX`).
    checksum: Option<Hasher>,
}

impl BodySource for CopiedBody {
    fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Bytes>, BodyRefused>> {
        Box::pin(async move {
            let chunk = self.body.next_chunk().await;
            let chunk = chunk.map_err(|e| BodyRefused { reason: e.to_string() })?;
            if let (Some(hasher), Some(bytes)) = (&mut self.checksum, &chunk) {
                hasher.update(bytes);
            }
            Ok(chunk)
        })
    }

    fn finish(&mut self, summary: &BodySummary) -> Result<BodyEnd, BodyRefused> {
        let etag = match &self.etag {
            EtagOf::Source(etag) => etag.clone(),
            EtagOf::Bytes => hex::encode(summary.md5),
        };
        let mut extra_metadata = BTreeMap::new();
        if let Some(hasher) = self.checksum.take() {
            extra_metadata.insert(hasher.algorithm().stored_name(), hasher.finish());
        }
        Ok(BodyEnd { etag, extra_metadata })
    }
}

/// `ObjectBackend::copy_object` by reading the source and writing it again.
pub async fn stream_copy_object(
    backend: &dyn ObjectBackend,
    (src_bucket, src_key, version_id): (&str, &str, &str),
    (bucket, key): (&str, &str),
    meta: ObjectMeta,
) -> Result<ObjectInfo, BackendError> {
    let (info, body) = backend.get_object(src_bucket, src_key, Some(version_id)).await?;
    let mut source = CopiedBody { body, etag: EtagOf::Source(info.etag), checksum: None };
    backend.put_object(bucket, key, meta, &mut source).await
}

/// `ObjectBackend::upload_part_copy` by reading the source (or its range) and uploading it
/// as a part: memory stays within the part upload's bound.
pub async fn stream_part_copy(
    backend: &dyn ObjectBackend,
    (bucket, key, upload_id): (&str, &str, &str),
    part_number: u32,
    source: (&str, &str, &str),
    range: Option<(u64, u64)>,
) -> Result<String, BackendError> {
    let mut source = part_copy_body(backend, source, range, None).await?;
    backend.upload_part(bucket, key, upload_id, part_number, &mut source).await
}

/// Version `source` of an object (or its bytes `range.0..range.1`) read as the body of a
/// part: its ETag the MD5 of those bytes, and `checksum`, if given, computed over them.
async fn part_copy_body(
    backend: &dyn ObjectBackend,
    (src_bucket, src_key, version_id): (&str, &str, &str),
    range: Option<(u64, u64)>,
    checksum: Option<Hasher>,
) -> Result<CopiedBody, BackendError> {
    let (_, mut body) = backend.get_object(src_bucket, src_key, Some(version_id)).await?;
    if let Some((start, end)) = range {
        body.select(start, end);
    }
    Ok(CopiedBody { body, etag: EtagOf::Bytes, checksum })
}

#[cfg(test)]
#[path = "copy_tests.rs"]
mod tests;
