//! Multipart uploads: CreateMultipartUpload, UploadPart, CompleteMultipartUpload,
//! AbortMultipartUpload, ListParts, ListMultipartUploads.
//!
//! The S3 conventions live here, the storage behind `ObjectBackend`: a part's ETag is the
//! hex MD5 of its bytes (like a simple PUT's); a completed object's ETag is the hex MD5 of
//! the concatenated *binary* MD5s of its parts, then `-` and the part count — clients such
//! as the aws CLI compare it with what they computed. Part bodies stream like PUT bodies,
//! so memory stays bounded per request whatever the part's size.
//!
//! The CompleteMultipartUpload document is client input: it is read with `xml::tokens`
//! (no DTD, so no entity expansion), and anything unexpected answers MalformedXML.

use std::collections::BTreeMap;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderMap};
use hyper::{Response, StatusCode};
use md5::{Digest, Md5};

use super::backend::{Completion, ObjectBackend, PartInfo};
use super::checksum::Algorithm;
use super::checksum_multipart::{self as mpu_checksum, ChosenPart, TaggedPart};
use super::encoding::uri_encode;
use super::error::S3Error;
use super::object::{client_meta, header_value, upload_error};
use super::part_numbers::{self, PARTS_KEY};
use super::request_body::RequestBody;
use super::router::PART_NUMBER_MAX;
use super::time::format_iso8601;
use super::xml::{Token, XmlWriter, tokens};

/// ListParts and ListMultipartUploads answer at most this many entries per page.
pub const LIST_PAGE_MAX: usize = 1000;
/// Open uploads of one bucket considered by one ListMultipartUploads (markers are applied
/// above the backend, over this many).
pub const UPLOADS_SCAN_MAX: usize = 10_000;
/// Nesting accepted in a CompleteMultipartUpload document (it needs 3).
const XML_DEPTH_MAX: usize = 8;

fn empty(status: StatusCode, headers: HeaderMap) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

fn param<'q>(query: &'q [(String, String)], name: &str) -> Option<&'q str> {
    query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// A `max-*` parameter: at most `LIST_PAGE_MAX`, `LIST_PAGE_MAX` if absent.
fn page_size(query: &[(String, String)], name: &str) -> Result<usize, S3Error> {
    match param(query, name) {
        None => Ok(LIST_PAGE_MAX),
        Some(v) => v.parse::<usize>().map(|n| n.min(LIST_PAGE_MAX)).map_err(|_| {
            S3Error::InvalidArgument { reason: format!("{name} must be a non-negative integer") }
        }),
    }
}

pub async fn create(
    backend: &dyn ObjectBackend,
    bucket: &str,
    key: &str,
    headers: &HeaderMap,
) -> Result<Response<Full<Bytes>>, S3Error> {
    let mut meta = client_meta(headers);
    meta.user_metadata.extend(super::website_routing::object_redirect(headers)?);
    let declared = mpu_checksum::declared(headers)?;
    if let Some(d) = declared {
        meta.user_metadata.extend(mpu_checksum::declaration_metadata(d));
    }
    let upload_id = backend
        .create_multipart_upload(bucket, key, meta)
        .await
        .map_err(|e| S3Error::from_backend(e, bucket, key))?;
    let mut w = XmlWriter::new("InitiateMultipartUploadResult", true);
    w.element("Bucket", bucket);
    w.element("Key", key);
    w.element("UploadId", &upload_id);
    let mut resp = super::xml_response(w.finish("InitiateMultipartUploadResult"));
    if let Some(d) = declared {
        let out = resp.headers_mut();
        out.insert("x-amz-checksum-algorithm", header_value(d.algorithm.name())?);
        out.insert("x-amz-checksum-type", header_value(d.kind.name())?);
    }
    Ok(resp)
}

/// Stores a part from the streaming request body; its ETag is the hex MD5 of its bytes
/// (`RequestBody::finish`), and a checksum it was verified with is echoed, and kept with
/// the part's ETag for completion (`checksum_multipart`).
pub async fn upload_part(
    backend: &dyn ObjectBackend,
    (bucket, key, upload_id): (&str, &str, &str),
    part_number: u32,
    body: &mut RequestBody,
) -> Result<Response<Full<Bytes>>, S3Error> {
    // The upload's declared algorithm, which the part's checksum must use. (An upload that
    // cannot be read is `upload_part`'s to answer.)
    let meta = backend.multipart_upload_meta(bucket, key, upload_id).await;
    let declared = meta.ok().and_then(|m| mpu_checksum::declaration_of(&m.user_metadata));
    let mut tagged = TaggedPart { inner: body, declared, failure: None };
    let stored = backend.upload_part(bucket, key, upload_id, part_number, &mut tagged).await;
    let refused = tagged.failure.take();
    let stored_etag =
        stored.map_err(|e| refused.unwrap_or_else(|| upload_error(e, body, (bucket, key))))?;
    let etag = mpu_checksum::split_part_etag(&stored_etag).0;
    let mut out = HeaderMap::new();
    out.insert(header::ETAG, header_value(&format!("\"{etag}\""))?);
    if let Some((algorithm, value)) = body.verified_checksum() {
        out.insert(algorithm.header(), header_value(&value)?);
    }
    Ok(empty(StatusCode::OK, out))
}

pub async fn complete(
    backend: &dyn ObjectBackend,
    (bucket, key, upload_id): (&str, &str, &str),
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response<Full<Bytes>>, S3Error> {
    let condition = super::object::write_condition(headers)?;
    let chosen = parse_complete_parts(body)?;
    let md5_parts: Vec<(u32, String)> =
        chosen.iter().map(|p| (p.part_number, p.etag.clone())).collect();
    let etag = multipart_etag(&md5_parts)?;
    let s3_error = |e| S3Error::from_backend(e, bucket, key);
    let meta = backend.multipart_upload_meta(bucket, key, upload_id).await.map_err(s3_error)?;
    let declared = mpu_checksum::declaration_of(&meta.user_metadata);
    // A finished upload has no parts to list: a retried completion answers what the first
    // one wrote, whatever it names.
    let stored = match backend.list_parts(bucket, key, upload_id).await {
        Ok(stored) => Some(stored),
        Err(super::BackendError::NoSuchUpload) => None,
        Err(e) => return Err(s3_error(e)),
    };
    let (parts, checksum, sizes) = match &stored {
        Some(stored) => {
            let resolved = mpu_checksum::resolve(&chosen, stored, declared, headers)?;
            (resolved.parts, resolved.checksum, resolved.sizes)
        }
        None => (md5_parts, None, None),
    };
    let mut extra_metadata: BTreeMap<String, String> = checksum.into_iter().collect();
    // The parts' sizes, for reads by part number and GetObjectAttributes.
    if let Some(sizes) = sizes {
        extra_metadata.insert(PARTS_KEY.to_string(), part_numbers::encode(&sizes));
    }
    let completion = Completion { etag, extra_metadata };
    let done = match &condition {
        None => backend.complete_multipart_upload(bucket, key, upload_id, parts, completion).await,
        Some(condition) => {
            let upload = (bucket, key, upload_id);
            backend.complete_multipart_upload_if(upload, parts, completion, condition).await
        }
    };
    let info = done.map_err(s3_error)?;
    let mut w = XmlWriter::new("CompleteMultipartUploadResult", true);
    w.element("Location", &format!("/{bucket}/{}", uri_encode(key, false)));
    w.element("Bucket", bucket);
    w.element("Key", key);
    w.element("ETag", &format!("\"{}\"", info.etag));
    for (name, value) in mpu_checksum::result_elements(&info.user_metadata) {
        w.element(&name, &value);
    }
    Ok(super::xml_response(w.finish("CompleteMultipartUploadResult")))
}

pub async fn abort(
    backend: &dyn ObjectBackend,
    (bucket, key, upload_id): (&str, &str, &str),
) -> Result<Response<Full<Bytes>>, S3Error> {
    backend
        .abort_multipart_upload(bucket, key, upload_id)
        .await
        .map_err(|e| S3Error::from_backend(e, bucket, key))?;
    Ok(empty(StatusCode::NO_CONTENT, HeaderMap::new()))
}

pub async fn list_parts(
    backend: &dyn ObjectBackend,
    (bucket, key, upload_id): (&str, &str, &str),
    query: &[(String, String)],
) -> Result<Response<Full<Bytes>>, S3Error> {
    let max_parts = page_size(query, "max-parts")?;
    let marker = match param(query, "part-number-marker") {
        None => 0,
        Some(v) => v.parse::<u32>().map_err(|_| S3Error::InvalidArgument {
            reason: "part-number-marker must be a part number".into(),
        })?,
    };
    let parts = backend
        .list_parts(bucket, key, upload_id)
        .await
        .map_err(|e| S3Error::from_backend(e, bucket, key))?;
    let mut after: Vec<&PartInfo> = parts.iter().filter(|p| p.part_number > marker).collect();
    let truncated = after.len() > max_parts;
    after.truncate(max_parts);
    let mut w = XmlWriter::new("ListPartsResult", true);
    w.element("Bucket", bucket);
    w.element("Key", key);
    w.element("UploadId", upload_id);
    w.element("PartNumberMarker", &marker.to_string());
    if let Some(last) = after.last() {
        w.element("NextPartNumberMarker", &last.part_number.to_string());
    }
    w.element("MaxParts", &max_parts.to_string());
    w.element("IsTruncated", if truncated { "true" } else { "false" });
    w.element("StorageClass", "STANDARD");
    let meta = backend.multipart_upload_meta(bucket, key, upload_id).await;
    let meta = meta.map_err(|e| S3Error::from_backend(e, bucket, key))?;
    if let Some(d) = mpu_checksum::declaration_of(&meta.user_metadata) {
        w.element("ChecksumAlgorithm", d.algorithm.name());
        w.element("ChecksumType", d.kind.name());
    }
    for p in after {
        w.open("Part");
        w.element("PartNumber", &p.part_number.to_string());
        w.element("LastModified", &format_iso8601(p.last_modified_ms));
        let (etag, checksum) = mpu_checksum::split_part_etag(&p.etag);
        w.element("ETag", &format!("\"{etag}\""));
        if let Some((algorithm, value)) = checksum {
            w.element(&format!("Checksum{}", algorithm.name()), value);
        }
        w.element("Size", &p.size_bytes.to_string());
        w.close("Part");
    }
    Ok(super::xml_response(w.finish("ListPartsResult")))
}

pub async fn list_uploads(
    backend: &dyn ObjectBackend,
    bucket: &str,
    query: &[(String, String)],
) -> Result<Response<Full<Bytes>>, S3Error> {
    let max_uploads = page_size(query, "max-uploads")?;
    let url_encoding = match param(query, "encoding-type") {
        None => false,
        Some("url") => true,
        Some(_) => {
            let reason = "Invalid Encoding Method specified in Request".to_string();
            return Err(S3Error::InvalidArgument { reason });
        }
    };
    let text = |v: &str| if url_encoding { uri_encode(v, false) } else { v.to_string() };
    let prefix = param(query, "prefix").unwrap_or("");
    let key_marker = param(query, "key-marker").unwrap_or("");
    let id_marker = param(query, "upload-id-marker").unwrap_or("");
    let uploads = backend
        .list_multipart_uploads(bucket, prefix, UPLOADS_SCAN_MAX)
        .await
        .map_err(|e| S3Error::from_backend(e, bucket, ""))?;
    // S3: after the key marker; with an upload-id marker, also the later uploads of the
    // marker key itself.
    let mut page: Vec<_> = uploads
        .iter()
        .filter(|u| {
            key_marker.is_empty()
                || u.key.as_str() > key_marker
                || (u.key == key_marker
                    && !id_marker.is_empty()
                    && u.upload_id.as_str() > id_marker)
        })
        .take(max_uploads + 1)
        .collect();
    let truncated = page.len() > max_uploads;
    page.truncate(max_uploads);
    let mut w = XmlWriter::new("ListMultipartUploadsResult", true);
    w.element("Bucket", bucket);
    w.element("KeyMarker", &text(key_marker));
    w.element("UploadIdMarker", id_marker);
    if let Some(last) = page.last().filter(|_| truncated) {
        w.element("NextKeyMarker", &text(&last.key));
        w.element("NextUploadIdMarker", &last.upload_id);
    }
    w.element("Prefix", &text(prefix));
    if url_encoding {
        w.element("EncodingType", "url");
    }
    w.element("MaxUploads", &max_uploads.to_string());
    w.element("IsTruncated", if truncated { "true" } else { "false" });
    for u in page {
        w.open("Upload");
        w.element("Key", &text(&u.key));
        w.element("UploadId", &u.upload_id);
        w.element("StorageClass", "STANDARD");
        w.element("Initiated", &format_iso8601(u.initiated_ms));
        if let Some(d) = mpu_checksum::declaration_of(&u.user_metadata) {
            w.element("ChecksumAlgorithm", d.algorithm.name());
            w.element("ChecksumType", d.kind.name());
        }
        w.close("Upload");
    }
    Ok(super::xml_response(w.finish("ListMultipartUploadsResult")))
}

/// The ETag of a completed upload: hex MD5 of the parts' binary MD5s, then `-N`. A part
/// ETag that is not an MD5 cannot name a part this server stored: `InvalidPart`.
pub fn multipart_etag(parts: &[(u32, String)]) -> Result<String, S3Error> {
    let mut md5 = Md5::new();
    for (part_number, etag) in parts {
        let binary = hex::decode(etag).ok().filter(|b| b.len() == 16);
        let binary = binary.ok_or(S3Error::InvalidPart { part_number: *part_number })?;
        md5.update(binary);
    }
    Ok(format!("{}-{}", hex::encode(md5.finalize()), parts.len()))
}

// ---- the CompleteMultipartUpload document ----

/// `(part number, unquoted lowercase ETag)` of each `Part`, in document order (see
/// `parse_complete_parts`).
pub fn parse_complete(doc: &[u8]) -> Result<Vec<(u32, String)>, S3Error> {
    let parts = parse_complete_parts(doc)?;
    Ok(parts.into_iter().map(|p| (p.part_number, p.etag)).collect())
}

/// Each `Part` of the document in order: its number, unquoted lowercase ETag and the
/// checksums given (`ChecksumCRC32`, …; checked in `checksum_multipart::resolve`). Order
/// and existence are the backend's to judge (InvalidPartOrder, InvalidPart); an empty list
/// or a part missing its number or ETag is MalformedXML, as in S3, and so is a checksum
/// given twice; empty or unknown elements are ignored.
pub fn parse_complete_parts(doc: &[u8]) -> Result<Vec<ChosenPart>, S3Error> {
    let doc = std::str::from_utf8(doc).map_err(|_| S3Error::MalformedXML)?;
    let (mut stack, mut text) = (Vec::<String>::new(), String::new());
    let mut parts = Vec::new();
    let mut part: (Option<u32>, Option<String>) = (None, None);
    let mut checksums: Vec<(Algorithm, String)> = Vec::new();
    let mut seen_root = false;
    for token in tokens(doc)? {
        match token {
            Token::Open(name) => {
                if stack.is_empty() && (seen_root || name != "CompleteMultipartUpload") {
                    return Err(S3Error::MalformedXML);
                }
                seen_root = true;
                if stack.len() == 1 && name == "Part" {
                    part = (None, None);
                    checksums.clear();
                }
                stack.push(name);
                if stack.len() > XML_DEPTH_MAX {
                    return Err(S3Error::MalformedXML);
                }
                text.clear();
            }
            Token::Text(t) if stack.is_empty() && !t.trim().is_empty() => {
                return Err(S3Error::MalformedXML);
            }
            Token::Text(t) => text.push_str(&t),
            Token::Close(name) => {
                if stack.pop().as_deref() != Some(name.as_str()) {
                    return Err(S3Error::MalformedXML);
                }
                let in_part = stack.len() == 2 && stack[1] == "Part";
                match (in_part, stack.len(), name.as_str()) {
                    (true, _, "PartNumber") if part.0.is_none() => {
                        part.0 = Some(parse_number(text.trim())?);
                    }
                    (true, _, "ETag") if part.1.is_none() => {
                        part.1 = Some(text.trim().trim_matches('"').to_ascii_lowercase());
                    }
                    (true, _, "PartNumber" | "ETag") => return Err(S3Error::MalformedXML),
                    (true, _, element) if !text.trim().is_empty() => {
                        if let Some(algorithm) = checksum_element(element) {
                            if checksums.iter().any(|(a, _)| *a == algorithm) {
                                return Err(S3Error::MalformedXML);
                            }
                            checksums.push((algorithm, text.trim().to_string()));
                        }
                    }
                    (false, 1, "Part") => match std::mem::take(&mut part) {
                        (Some(part_number), Some(etag)) => {
                            let checksums = std::mem::take(&mut checksums);
                            parts.push(ChosenPart { part_number, etag, checksums });
                        }
                        _ => return Err(S3Error::MalformedXML),
                    },
                    _ => {}
                }
                text.clear();
            }
        }
    }
    if !seen_root || !stack.is_empty() || parts.is_empty() || parts.len() > PART_NUMBER_MAX as usize
    {
        return Err(S3Error::MalformedXML);
    }
    Ok(parts)
}

/// The algorithm of a `Checksum…` element of a part (`ChecksumCRC32`, `ChecksumSHA256`…).
fn checksum_element(element: &str) -> Option<Algorithm> {
    Algorithm::from_name(element.strip_prefix("Checksum")?)
}

fn parse_number(s: &str) -> Result<u32, S3Error> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return Err(S3Error::MalformedXML);
    }
    // Out-of-range numbers name no part: the backend answers InvalidPart for them.
    Ok(s.parse::<u32>().unwrap_or(u32::MAX))
}

#[cfg(test)]
#[path = "multipart_tests.rs"]
mod tests;
