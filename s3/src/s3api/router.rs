//! Which S3 operation a request is: path-style addressing (`/bucket/key`) and a plain
//! `match` on method and sub-resource.
//!
//! S3 selects operations by query "sub-resources" (`?acl`, `?uploads`, `?tagging`, …). An
//! unimplemented one must not fall through to the plain operation on the same path (a
//! `PUT ?tagging` is not a PutObject that overwrites the object with an XML document), so
//! every known sub-resource that is not handled answers NotImplemented. `versionId` is the
//! exception on objects: it qualifies GetObject, HeadObject and DeleteObject, and is checked
//! here (`valid_version_id`) so that every handler gets a well-formed id or none.

use hyper::{HeaderMap, Method};

use super::backend::valid_version_id;
use super::copy::{CopySource, parse_copy_source};
use super::encoding::percent_decode;
use super::error::S3Error;

/// S3 allows part numbers 1..=10000.
pub const PART_NUMBER_MAX: u32 = 10_000;

/// S3 limits keys to 1024 bytes of UTF-8.
pub const KEY_BYTES_MAX: usize = 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    ListBuckets,
    CreateBucket {
        bucket: String,
    },
    HeadBucket {
        bucket: String,
    },
    DeleteBucket {
        bucket: String,
    },
    GetBucketLocation {
        bucket: String,
    },
    ListObjectsV2 {
        bucket: String,
    },
    ListObjects {
        bucket: String,
    },
    ListObjectVersions {
        bucket: String,
    },
    GetBucketVersioning {
        bucket: String,
    },
    PutBucketVersioning {
        bucket: String,
    },
    PutObject {
        bucket: String,
        key: String,
    },
    CopyObject {
        bucket: String,
        key: String,
        source: CopySource,
    },
    GetObject {
        bucket: String,
        key: String,
        version_id: Option<String>,
        /// `?partNumber=N`: part N of the object (`part_numbers`).
        part_number: Option<u32>,
    },
    HeadObject {
        bucket: String,
        key: String,
        version_id: Option<String>,
        part_number: Option<u32>,
    },
    GetObjectAttributes {
        bucket: String,
        key: String,
        version_id: Option<String>,
    },
    DeleteObject {
        bucket: String,
        key: String,
        version_id: Option<String>,
    },
    CreateMultipartUpload {
        bucket: String,
        key: String,
    },
    UploadPart {
        bucket: String,
        key: String,
        upload_id: String,
        part_number: u32,
    },
    UploadPartCopy {
        bucket: String,
        key: String,
        upload_id: String,
        part_number: u32,
        source: CopySource,
    },
    CompleteMultipartUpload {
        bucket: String,
        key: String,
        upload_id: String,
    },
    AbortMultipartUpload {
        bucket: String,
        key: String,
        upload_id: String,
    },
    ListParts {
        bucket: String,
        key: String,
        upload_id: String,
    },
    ListMultipartUploads {
        bucket: String,
    },
    DeleteObjects {
        bucket: String,
    },
    GetBucketCors {
        bucket: String,
    },
    PutBucketCors {
        bucket: String,
    },
    DeleteBucketCors {
        bucket: String,
    },
    GetBucketWebsite {
        bucket: String,
    },
    PutBucketWebsite {
        bucket: String,
    },
    DeleteBucketWebsite {
        bucket: String,
    },
    GetBucketLifecycle {
        bucket: String,
    },
    PutBucketLifecycle {
        bucket: String,
    },
    DeleteBucketLifecycle {
        bucket: String,
    },
}

impl Endpoint {
    pub fn name(&self) -> &'static str {
        match self {
            Endpoint::ListBuckets => "ListBuckets",
            Endpoint::CreateBucket { .. } => "CreateBucket",
            Endpoint::HeadBucket { .. } => "HeadBucket",
            Endpoint::DeleteBucket { .. } => "DeleteBucket",
            Endpoint::GetBucketLocation { .. } => "GetBucketLocation",
            Endpoint::ListObjectsV2 { .. } => "ListObjectsV2",
            Endpoint::ListObjects { .. } => "ListObjects",
            Endpoint::ListObjectVersions { .. } => "ListObjectVersions",
            Endpoint::GetBucketVersioning { .. } => "GetBucketVersioning",
            Endpoint::PutBucketVersioning { .. } => "PutBucketVersioning",
            Endpoint::PutObject { .. } => "PutObject",
            Endpoint::CopyObject { .. } => "CopyObject",
            Endpoint::GetObject { .. } => "GetObject",
            Endpoint::HeadObject { .. } => "HeadObject",
            Endpoint::GetObjectAttributes { .. } => "GetObjectAttributes",
            Endpoint::DeleteObject { .. } => "DeleteObject",
            Endpoint::CreateMultipartUpload { .. } => "CreateMultipartUpload",
            Endpoint::UploadPart { .. } => "UploadPart",
            Endpoint::UploadPartCopy { .. } => "UploadPartCopy",
            Endpoint::CompleteMultipartUpload { .. } => "CompleteMultipartUpload",
            Endpoint::AbortMultipartUpload { .. } => "AbortMultipartUpload",
            Endpoint::ListParts { .. } => "ListParts",
            Endpoint::ListMultipartUploads { .. } => "ListMultipartUploads",
            Endpoint::DeleteObjects { .. } => "DeleteObjects",
            Endpoint::GetBucketCors { .. } => "GetBucketCors",
            Endpoint::PutBucketCors { .. } => "PutBucketCors",
            Endpoint::DeleteBucketCors { .. } => "DeleteBucketCors",
            Endpoint::GetBucketWebsite { .. } => "GetBucketWebsite",
            Endpoint::PutBucketWebsite { .. } => "PutBucketWebsite",
            Endpoint::DeleteBucketWebsite { .. } => "DeleteBucketWebsite",
            Endpoint::GetBucketLifecycle { .. } => "GetBucketLifecycleConfiguration",
            Endpoint::PutBucketLifecycle { .. } => "PutBucketLifecycleConfiguration",
            Endpoint::DeleteBucketLifecycle { .. } => "DeleteBucketLifecycle",
        }
    }
}

/// Query parameters that select another S3 operation (from the S3 API reference).
const SUBRESOURCES: &[&str] = &[
    "accelerate",
    "acl",
    "analytics",
    "attributes",
    "cors",
    "delete",
    "encryption",
    "intelligent-tiering",
    "inventory",
    "legal-hold",
    "lifecycle",
    "location",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "ownershipControls",
    "partNumber",
    "policy",
    "policyStatus",
    "publicAccessBlock",
    "replication",
    "requestPayment",
    "restore",
    "retention",
    "select",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
];

/// Bucket and key of a path-style request path, percent-decoded. `/` gives neither;
/// `/bk` and `/bk/` give only the bucket.
pub fn parse_path(raw_path: &str) -> Result<(Option<String>, Option<String>), S3Error> {
    let rest = raw_path.strip_prefix('/').ok_or(S3Error::InvalidURI)?;
    let (bucket_raw, key_raw) = rest.split_once('/').unwrap_or((rest, ""));
    let bucket = percent_decode(bucket_raw).ok_or(S3Error::InvalidURI)?;
    let key = percent_decode(key_raw).ok_or(S3Error::InvalidURI)?;
    if key.len() > KEY_BYTES_MAX {
        return Err(S3Error::KeyTooLong { length_bytes: key.len() });
    }
    let bucket = Some(bucket).filter(|b| !b.is_empty());
    let key = Some(key).filter(|k| !k.is_empty());
    match (&bucket, &key) {
        (None, Some(_)) => Err(S3Error::InvalidURI),
        _ => Ok((bucket, key)),
    }
}

pub fn route(
    method: &Method,
    raw_path: &str,
    query: &[(String, String)],
    headers: &HeaderMap,
) -> Result<Endpoint, S3Error> {
    let (bucket, key) = parse_path(raw_path)?;
    let subresource = query.iter().map(|(k, _)| k.as_str()).find(|k| SUBRESOURCES.contains(k));
    let unsupported = |what: &str| S3Error::NotImplemented { operation: what.to_string() };
    let Some(bucket) = bucket else {
        return match *method {
            Method::GET => Ok(Endpoint::ListBuckets),
            _ => Err(unsupported(&format!("{method} on the service"))),
        };
    };
    let Some(key) = key else {
        return route_bucket(method, bucket, subresource, query);
    };
    if let Some(endpoint) = route_multipart(method, &bucket, &key, query, headers)? {
        return Ok(endpoint);
    }
    if *method == Method::GET && query.iter().any(|(k, _)| k == "attributes") {
        let version_id = parse_version_id(query)?;
        return Ok(Endpoint::GetObjectAttributes { bucket, key, version_id });
    }
    // `partNumber` qualifies a read (GET, HEAD) as `versionId` does any object request.
    let read = matches!(*method, Method::GET | Method::HEAD);
    let qualifies = |k: &str| k == "versionId" || (read && k == "partNumber");
    let other = query.iter().map(|(k, _)| k.as_str());
    if let Some(sub) = other.filter(|k| !qualifies(k)).find(|k| SUBRESOURCES.contains(k)) {
        return Err(unsupported(&format!("{method} ?{sub} on an object")));
    }
    if *method == Method::PUT && query.iter().any(|(k, _)| k == "versionId") {
        return Err(unsupported("PUT ?versionId on an object"));
    }
    let version_id = parse_version_id(query)?;
    let part_number = match query.iter().find(|(k, _)| k == "partNumber") {
        Some((_, v)) => Some(parse_part_number(v).ok_or_else(|| S3Error::InvalidArgument {
            reason: "Part number must be an integer between 1 and 10000, inclusive".into(),
        })?),
        None => None,
    };
    match *method {
        Method::PUT if headers.contains_key("x-amz-copy-source") => {
            Ok(Endpoint::CopyObject { bucket, key, source: copy_source(headers)? })
        }
        Method::PUT => Ok(Endpoint::PutObject { bucket, key }),
        Method::GET => Ok(Endpoint::GetObject { bucket, key, version_id, part_number }),
        Method::HEAD => Ok(Endpoint::HeadObject { bucket, key, version_id, part_number }),
        Method::DELETE => Ok(Endpoint::DeleteObject { bucket, key, version_id }),
        _ => Err(unsupported(&format!("{method} on an object"))),
    }
}

/// The `versionId` parameter, if any. Hangar names versions with 32 hex digits; anything
/// else (S3's `null` included: no Hangar version has that name) is refused as S3 refuses
/// ids it cannot have issued.
fn parse_version_id(query: &[(String, String)]) -> Result<Option<String>, S3Error> {
    let Some((_, id)) = query.iter().find(|(k, _)| k == "versionId") else { return Ok(None) };
    if !valid_version_id(id) {
        return Err(S3Error::InvalidArgument { reason: "Invalid version id specified".into() });
    }
    Ok(Some(id.clone()))
}

fn route_bucket(
    method: &Method,
    bucket: String,
    subresource: Option<&str>,
    query: &[(String, String)],
) -> Result<Endpoint, S3Error> {
    let list_v2 = query.iter().any(|(k, v)| k == "list-type" && v == "2");
    match (method, subresource) {
        (&Method::PUT, None) => Ok(Endpoint::CreateBucket { bucket }),
        (&Method::HEAD, None) => Ok(Endpoint::HeadBucket { bucket }),
        (&Method::DELETE, None) => Ok(Endpoint::DeleteBucket { bucket }),
        (&Method::GET, Some("location")) => Ok(Endpoint::GetBucketLocation { bucket }),
        (&Method::GET, Some("uploads")) => Ok(Endpoint::ListMultipartUploads { bucket }),
        (&Method::GET, Some("versions")) => Ok(Endpoint::ListObjectVersions { bucket }),
        (&Method::GET, Some("versioning")) => Ok(Endpoint::GetBucketVersioning { bucket }),
        (&Method::PUT, Some("versioning")) => Ok(Endpoint::PutBucketVersioning { bucket }),
        (&Method::POST, Some("delete")) => Ok(Endpoint::DeleteObjects { bucket }),
        (&Method::GET, Some("cors")) => Ok(Endpoint::GetBucketCors { bucket }),
        (&Method::PUT, Some("cors")) => Ok(Endpoint::PutBucketCors { bucket }),
        (&Method::DELETE, Some("cors")) => Ok(Endpoint::DeleteBucketCors { bucket }),
        (&Method::GET, Some("website")) => Ok(Endpoint::GetBucketWebsite { bucket }),
        (&Method::PUT, Some("website")) => Ok(Endpoint::PutBucketWebsite { bucket }),
        (&Method::DELETE, Some("website")) => Ok(Endpoint::DeleteBucketWebsite { bucket }),
        (&Method::GET, Some("lifecycle")) => Ok(Endpoint::GetBucketLifecycle { bucket }),
        (&Method::PUT, Some("lifecycle")) => Ok(Endpoint::PutBucketLifecycle { bucket }),
        (&Method::DELETE, Some("lifecycle")) => Ok(Endpoint::DeleteBucketLifecycle { bucket }),
        (&Method::GET, None) if list_v2 => Ok(Endpoint::ListObjectsV2 { bucket }),
        (&Method::GET, None) => Ok(Endpoint::ListObjects { bucket }),
        (_, Some(sub)) => {
            Err(S3Error::NotImplemented { operation: format!("{method} ?{sub} on a bucket") })
        }
        (_, None) => Err(S3Error::NotImplemented { operation: format!("{method} on a bucket") }),
    }
}

/// The multipart operations on an object: `POST ?uploads`, and `?uploadId=…` with
/// `PUT` (+ `partNumber`), `POST`, `DELETE` or `GET`. `None` for any other request.
fn route_multipart(
    method: &Method,
    bucket: &str,
    key: &str,
    query: &[(String, String)],
    headers: &HeaderMap,
) -> Result<Option<Endpoint>, S3Error> {
    let param = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let (bucket, key) = (bucket.to_string(), key.to_string());
    if *method == Method::POST && param("uploads").is_some() {
        return Ok(Some(Endpoint::CreateMultipartUpload { bucket, key }));
    }
    let Some(upload_id) = param("uploadId") else { return Ok(None) };
    let endpoint = match *method {
        Method::PUT => {
            let part_number = param("partNumber").as_deref().and_then(parse_part_number).ok_or(
                S3Error::InvalidArgument {
                    reason: "Part number must be an integer between 1 and 10000, inclusive".into(),
                },
            )?;
            if headers.contains_key("x-amz-copy-source") {
                let source = copy_source(headers)?;
                Endpoint::UploadPartCopy { bucket, key, upload_id, part_number, source }
            } else {
                Endpoint::UploadPart { bucket, key, upload_id, part_number }
            }
        }
        Method::POST => Endpoint::CompleteMultipartUpload { bucket, key, upload_id },
        Method::DELETE => Endpoint::AbortMultipartUpload { bucket, key, upload_id },
        Method::GET => Endpoint::ListParts { bucket, key, upload_id },
        _ => return Ok(None),
    };
    Ok(Some(endpoint))
}

/// The source named by `x-amz-copy-source` (checked here, so handlers get a valid one).
fn copy_source(headers: &HeaderMap) -> Result<CopySource, S3Error> {
    let value = headers.get("x-amz-copy-source").map(|v| v.to_str());
    let value = value.and_then(Result::ok).ok_or(S3Error::InvalidArgument {
        reason: "x-amz-copy-source is not a valid header value".into(),
    })?;
    parse_copy_source(value)
}

/// A part number: decimal digits only, 1..=10000.
fn parse_part_number(s: &str) -> Option<u32> {
    if !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let n: u32 = s.parse().ok()?;
    (1..=PART_NUMBER_MAX).contains(&n).then_some(n)
}

/// S3's rules for new bucket names (DNS-compatible): 3–63 characters of lower-case
/// letters, digits, `.` and `-`, starting and ending with a letter or digit, no `..`,
/// and not shaped like an IPv4 address.
pub fn valid_bucket_name(name: &str) -> bool {
    let b = name.as_bytes();
    let charset =
        b.iter().all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-');
    let edge = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let ip_like = name.split('.').count() == 4 && name.split('.').all(|p| p.parse::<u8>().is_ok());
    (3..=63).contains(&b.len())
        && charset
        && edge(b[0])
        && edge(b[b.len() - 1])
        && !name.contains("..")
        && !ip_like
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn r(method: Method, path: &str, query: &[(&str, &str)]) -> Result<Endpoint, S3Error> {
        route(&method, path, &q(query), &HeaderMap::new())
    }

    #[test]
    fn routes_buckets_objects_and_listings() {
        let bk = || "bk".to_string();
        assert_eq!(r(Method::GET, "/", &[]), Ok(Endpoint::ListBuckets));
        assert_eq!(r(Method::PUT, "/bk", &[]), Ok(Endpoint::CreateBucket { bucket: bk() }));
        assert_eq!(
            r(Method::GET, "/bk/", &[("list-type", "2")]),
            Ok(Endpoint::ListObjectsV2 { bucket: bk() })
        );
        assert_eq!(
            r(Method::GET, "/bk", &[("prefix", "a")]),
            Ok(Endpoint::ListObjects { bucket: bk() })
        );
        assert_eq!(
            r(Method::GET, "/bk", &[("location", "")]),
            Ok(Endpoint::GetBucketLocation { bucket: bk() })
        );
        let key = "dir/a b+c".to_string();
        assert_eq!(
            r(Method::GET, "/bk/dir/a%20b+c", &[]),
            Ok(Endpoint::GetObject { bucket: bk(), key, version_id: None, part_number: None })
        );
        // `partNumber` qualifies a read; on a PUT without `uploadId` it is not a PutObject.
        let key = "k".to_string();
        assert_eq!(
            r(Method::HEAD, "/bk/k", &[("partNumber", "2")]),
            Ok(Endpoint::HeadObject { bucket: bk(), key, version_id: None, part_number: Some(2) })
        );
        let bad = r(Method::GET, "/bk/k", &[("partNumber", "0")]).unwrap_err();
        assert_eq!(bad.code(), "InvalidArgument");
        let put = r(Method::PUT, "/bk/k", &[("partNumber", "1")]).unwrap_err();
        assert_eq!(put.code(), "NotImplemented");
    }

    #[test]
    fn routes_versioning_and_version_ids() {
        let bk = || "bk".to_string();
        let cases = [
            (Method::GET, "versions", Endpoint::ListObjectVersions { bucket: bk() }),
            (Method::GET, "versioning", Endpoint::GetBucketVersioning { bucket: bk() }),
            (Method::PUT, "versioning", Endpoint::PutBucketVersioning { bucket: bk() }),
        ];
        let delete = (Method::POST, "delete", Endpoint::DeleteObjects { bucket: bk() });
        let cors = [
            (Method::GET, "cors", Endpoint::GetBucketCors { bucket: bk() }),
            (Method::PUT, "cors", Endpoint::PutBucketCors { bucket: bk() }),
            (Method::DELETE, "cors", Endpoint::DeleteBucketCors { bucket: bk() }),
            (Method::GET, "website", Endpoint::GetBucketWebsite { bucket: bk() }),
            (Method::PUT, "website", Endpoint::PutBucketWebsite { bucket: bk() }),
            (Method::DELETE, "website", Endpoint::DeleteBucketWebsite { bucket: bk() }),
            (Method::GET, "lifecycle", Endpoint::GetBucketLifecycle { bucket: bk() }),
            (Method::PUT, "lifecycle", Endpoint::PutBucketLifecycle { bucket: bk() }),
            (Method::DELETE, "lifecycle", Endpoint::DeleteBucketLifecycle { bucket: bk() }),
        ];
        for (method, sub, endpoint) in cases.into_iter().chain([delete]).chain(cors) {
            assert_eq!(r(method, "/bk", &[(sub, "")]), Ok(endpoint));
        }
        let id = "0000018f00000000000000000000000a";
        let version_id = Some(id.to_string());
        let (bucket, key) = (bk(), "k".to_string());
        assert_eq!(
            r(Method::DELETE, "/bk/k", &[("versionId", id)]),
            Ok(Endpoint::DeleteObject { bucket, key, version_id })
        );
        for bad in ["", "null", "xyz", &id.to_uppercase(), &id[1..]] {
            let err = r(Method::GET, "/bk/k", &[("versionId", bad)]).unwrap_err();
            assert_eq!(
                err,
                S3Error::InvalidArgument { reason: "Invalid version id specified".into() }
            );
        }
        // Another sub-resource next to versionId is still not a plain GetObject.
        let err = r(Method::GET, "/bk/k", &[("versionId", id), ("tagging", "")]).unwrap_err();
        assert_eq!(err.code(), "NotImplemented");
    }

    #[test]
    fn unknown_subresources_are_not_implemented() {
        for (method, path, sub) in [
            (Method::PUT, "/bk/k", "tagging"),
            (Method::POST, "/bk", "versioning"),
            (Method::PUT, "/bk/k", "versionId"),
            (Method::PUT, "/bk/k", "uploads"),
            (Method::PUT, "/bk", "acl"),
        ] {
            let err = r(method, path, &[(sub, "")]).unwrap_err();
            assert_eq!(err.code(), "NotImplemented", "{path}?{sub}");
        }
    }

    #[test]
    fn routes_copies_with_their_decoded_source() {
        let mut headers = HeaderMap::new();
        let id = "0000018f00000000000000000000000a";
        let value = format!("/src%20bk/dir/a%2Bb?versionId={id}");
        headers.insert("x-amz-copy-source", value.parse().unwrap());
        let source = CopySource {
            bucket: "src bk".into(),
            key: "dir/a+b".into(),
            version_id: Some(id.into()),
        };
        let (bucket, key) = ("bk".to_string(), "dst".to_string());
        assert_eq!(
            route(&Method::PUT, "/bk/dst", &[], &headers),
            Ok(Endpoint::CopyObject {
                bucket: bucket.clone(),
                key: key.clone(),
                source: source.clone()
            })
        );
        let query = q(&[("partNumber", "3"), ("uploadId", "U1")]);
        let upload_id = "U1".to_string();
        assert_eq!(
            route(&Method::PUT, "/bk/dst", &query, &headers),
            Ok(Endpoint::UploadPartCopy { bucket, key, upload_id, part_number: 3, source })
        );
        for bad in ["nokey", "/bk/", "bk/k?versionId=nope", "bk/k?other=1", "/%zz/k"] {
            headers.insert("x-amz-copy-source", bad.parse().unwrap());
            let err = route(&Method::PUT, "/bk/dst", &[], &headers).unwrap_err();
            assert_eq!(err.code(), "InvalidArgument", "{bad}");
        }
    }

    #[test]
    fn routes_multipart_operations() {
        let (b, k, u) = ("bk".to_string(), "k".to_string(), "U1".to_string());
        assert_eq!(
            r(Method::POST, "/bk/k", &[("uploads", "")]),
            Ok(Endpoint::CreateMultipartUpload { bucket: b.clone(), key: k.clone() })
        );
        let part = r(Method::PUT, "/bk/k", &[("partNumber", "7"), ("uploadId", "U1")]);
        let upload_id = u.clone();
        assert_eq!(
            part,
            Ok(Endpoint::UploadPart {
                bucket: b.clone(),
                key: k.clone(),
                upload_id,
                part_number: 7
            })
        );
        let ops = [
            (
                Method::POST,
                Endpoint::CompleteMultipartUpload {
                    bucket: b.clone(),
                    key: k.clone(),
                    upload_id: u.clone(),
                },
            ),
            (
                Method::DELETE,
                Endpoint::AbortMultipartUpload {
                    bucket: b.clone(),
                    key: k.clone(),
                    upload_id: u.clone(),
                },
            ),
            (Method::GET, Endpoint::ListParts { bucket: b.clone(), key: k.clone(), upload_id: u }),
        ];
        for (method, endpoint) in ops {
            assert_eq!(r(method, "/bk/k", &[("uploadId", "U1")]), Ok(endpoint));
        }
        assert_eq!(
            r(Method::GET, "/bk", &[("uploads", "")]),
            Ok(Endpoint::ListMultipartUploads { bucket: b })
        );
        for bad in ["0", "10001", "x", "", "+1", "-1"] {
            let err = r(Method::PUT, "/bk/k", &[("uploadId", "U1"), ("partNumber", bad)]);
            assert_eq!(err.unwrap_err().code(), "InvalidArgument", "partNumber={bad}");
        }
    }

    #[test]
    fn path_decoding_and_limits() {
        assert_eq!(parse_path("/bk/a%2Fb"), Ok((Some("bk".into()), Some("a/b".into()))));
        assert_eq!(parse_path("/bk/%zz"), Err(S3Error::InvalidURI));
        let long = format!("/bk/{}", "k".repeat(KEY_BYTES_MAX + 1));
        assert_eq!(parse_path(&long), Err(S3Error::KeyTooLong { length_bytes: KEY_BYTES_MAX + 1 }));
    }

    #[test]
    fn bucket_name_rules() {
        for good in ["abc", "my-bucket.v2", "a1b", &"a".repeat(63)] {
            assert!(valid_bucket_name(good), "{good}");
        }
        for bad in ["ab", "Abc", "-abc", "abc-", "a..b", "192.168.1.1", "a_b", &"a".repeat(64)] {
            assert!(!valid_bucket_name(bad), "{bad}");
        }
    }
}
