//! GetObjectAttributes (`GET ?attributes`, the attributes named in
//! `x-amz-object-attributes`): an object's ETag, checksum, parts, storage class and size in
//! one XML document, without its body.
//!
//! S3's rules followed: the header is required and names at least one of `ETag`,
//! `Checksum`, `ObjectParts`, `StorageClass`, `ObjectSize` (else 400 `InvalidArgument`);
//! only the attributes asked for are returned; the ETag is unquoted; parts are listed only
//! for an object completed from a multipart upload, paged by `x-amz-max-parts` (default and
//! maximum 1000) and `x-amz-part-number-marker`; `Last-Modified` and, where the bucket has
//! versioning, `x-amz-version-id` come as headers. Per-part checksums are not kept, so a
//! part shows its number and size only.

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper::header::{self, HeaderMap};

use super::backend::{ObjectBackend, Versioning};
use super::checksum;
use super::error::S3Error;
use super::object::header_value;
use super::part_numbers::part_sizes;
use super::time::format_http_date;
use super::xml::XmlWriter;

const ATTRIBUTES: [&str; 5] = ["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"];
const MAX_PARTS_DEFAULT: usize = 1000;

/// The attributes asked for, in S3's spelling; an unknown or missing one is refused.
fn requested(headers: &HeaderMap) -> Result<Vec<&'static str>, S3Error> {
    let invalid = |reason: String| S3Error::InvalidArgument { reason };
    let values = headers.get_all("x-amz-object-attributes");
    let mut wanted = Vec::new();
    for value in values {
        let value = value.to_str().map_err(|_| invalid("Invalid attribute name".into()))?;
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let known = ATTRIBUTES.iter().find(|a| a.eq_ignore_ascii_case(name));
            let known = known.ok_or_else(|| invalid(format!("Invalid attribute name: {name}")))?;
            if !wanted.contains(known) {
                wanted.push(*known);
            }
        }
    }
    if wanted.is_empty() {
        let reason = "x-amz-object-attributes must name at least one attribute".to_string();
        return Err(invalid(reason));
    }
    Ok(wanted)
}

fn number_header(headers: &HeaderMap, name: &str) -> Result<Option<usize>, S3Error> {
    let Some(value) = headers.get(name) else { return Ok(None) };
    let parsed = value.to_str().ok().and_then(|v| v.trim().parse::<usize>().ok());
    let reason = format!("{name} must be a non-negative integer");
    parsed.map(Some).ok_or(S3Error::InvalidArgument { reason })
}

pub async fn get_object_attributes(
    backend: &dyn ObjectBackend,
    (bucket, key, version_id): (&str, &str, Option<&str>),
    headers: &HeaderMap,
) -> Result<Response<Full<Bytes>>, S3Error> {
    let wanted = requested(headers)?;
    let max_parts = number_header(headers, "x-amz-max-parts")?
        .unwrap_or(MAX_PARTS_DEFAULT)
        .min(MAX_PARTS_DEFAULT);
    let marker = number_header(headers, "x-amz-part-number-marker")?.unwrap_or(0);
    let (state, info) = tokio::join!(
        backend.get_bucket_versioning(bucket),
        backend.head_object(bucket, key, version_id)
    );
    let info = info.map_err(|e| {
        super::object::read_error(e, (bucket, key, version_id), state.as_ref().ok().copied())
    })?;
    let state = state.map_err(|e| S3Error::from_backend(e, bucket, key))?;

    let mut w = XmlWriter::new("GetObjectAttributesResponse", true);
    for attribute in &wanted {
        match *attribute {
            "ETag" => w.element("ETag", &info.etag),
            "Checksum" => {
                let stored = checksum::stored(&info.user_metadata);
                if !stored.is_empty() {
                    w.open("Checksum");
                    for (name, value) in stored {
                        w.element(&element_of(name), &value);
                    }
                    w.close("Checksum");
                }
            }
            "ObjectParts" => {
                if let Some(sizes) = part_sizes(&info.user_metadata, info.size_bytes) {
                    let after: Vec<(usize, u64)> =
                        (1..).zip(sizes.iter().copied()).skip(marker).collect();
                    let truncated = after.len() > max_parts;
                    let page = &after[..after.len().min(max_parts)];
                    w.open("ObjectParts");
                    w.element("PartsCount", &sizes.len().to_string());
                    w.element("PartNumberMarker", &marker.to_string());
                    if let Some((last, _)) = page.last() {
                        w.element("NextPartNumberMarker", &last.to_string());
                    }
                    w.element("MaxParts", &max_parts.to_string());
                    w.element("IsTruncated", if truncated { "true" } else { "false" });
                    for (number, size) in page {
                        w.open("Part");
                        w.element("PartNumber", &number.to_string());
                        w.element("Size", &size.to_string());
                        w.close("Part");
                    }
                    w.close("ObjectParts");
                }
            }
            "StorageClass" => w.element("StorageClass", "STANDARD"),
            _ => w.element("ObjectSize", &info.size_bytes.to_string()),
        }
    }
    let mut resp = super::xml_response(w.finish("GetObjectAttributesResponse"));
    let out = resp.headers_mut();
    out.insert(header::LAST_MODIFIED, header_value(&format_http_date(info.last_modified_ms))?);
    if version_id.is_some() || state != Versioning::Unversioned {
        out.insert("x-amz-version-id", header_value(&info.version_id)?);
    }
    Ok(resp)
}

/// `x-amz-checksum-crc32` → `ChecksumCRC32`; `x-amz-checksum-type` → `ChecksumType`.
fn element_of(header: &str) -> String {
    let suffix = header.trim_start_matches("x-amz-checksum-");
    match suffix {
        "type" => "ChecksumType".to_string(),
        other => format!("Checksum{}", other.to_ascii_uppercase()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_named_as_s3_names_them() {
        let mut headers = HeaderMap::new();
        headers.insert("x-amz-object-attributes", "ETag, objectsize,ETag".parse().unwrap());
        assert_eq!(requested(&headers).unwrap(), vec!["ETag", "ObjectSize"]);
        headers.insert("x-amz-object-attributes", "ETag,Body".parse().unwrap());
        assert_eq!(requested(&headers).unwrap_err().code(), "InvalidArgument");
        assert_eq!(requested(&HeaderMap::new()).unwrap_err().code(), "InvalidArgument");
        assert_eq!(element_of("x-amz-checksum-crc64nvme"), "ChecksumCRC64NVME");
        assert_eq!(element_of("x-amz-checksum-type"), "ChecksumType");
    }
}
