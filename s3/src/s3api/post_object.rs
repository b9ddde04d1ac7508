//! PostObject: `POST /bucket` with a `multipart/form-data` body (browser form uploads).
//!
//! Such a request carries no `Authorization` header: the form itself is signed. Its
//! `policy` (base64 JSON) is signed with the SigV4 signing key of the date and region in
//! `x-amz-credential`, so authentication and routing happen here rather than in `auth`:
//! 1. the fields before `file` are read (bounded, `post_form`);
//! 2. credential scope, then key, then the policy's signature, then its expiration and
//!    conditions (`post_policy`), then the key's write permission on the bucket;
//! 3. the file part streams into the backend like a PUT body; content-length-range is
//!    counted as it arrives, so an oversized upload is cut off rather than stored.

use std::collections::BTreeMap;

use bytes::Bytes;
use hangar_engine::objects::body::{BodyEnd, BodyRefused, BodySource, BodySummary};
use hangar_engine::seam::BoxFuture;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap};
use hyper::http::request::Parts;
use hyper::{Method, Response, StatusCode};

use super::S3State;
use super::backend::{ObjectMeta, Versioning};
use super::encoding::{base64_decode, uri_encode};
use super::error::S3Error;
use super::object::{DEFAULT_CONTENT_TYPE, header_value};
use super::post_form::{ChunkSource, IncomingSource, MultipartForm, boundary, malformed};
use super::post_policy::{self, Policy};
use super::router::{Endpoint, KEY_BYTES_MAX, parse_path};
use super::sigv4::{self, ALGORITHM};
use super::time::parse_amz_date;
use super::vhost;
use super::xml::XmlWriter;
use crate::access;

const META_PREFIX: &str = "x-amz-meta-";
/// How much of a file refused as too large is still read (and dropped) so the client gets
/// the EntityTooLarge answer rather than a reset connection.
const SKIP_BYTES_MAX: u64 = 64 << 20;

/// A POST without sub-resource whose body is a form: PostObject, not another bucket POST
/// (`?delete` and the multipart operations carry a query).
pub fn is_form_upload(method: &Method, query: &[(String, String)], headers: &HeaderMap) -> bool {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    *method == Method::POST && query.is_empty() && content_type.and_then(boundary).is_some()
}

/// The form's file part as the backend reads it.
struct FileBody<'a, S> {
    form: &'a mut MultipartForm<S>,
    /// Inclusive byte bounds: the policy's content-length-range within the object limit.
    min_bytes: u64,
    max_bytes: u64,
    received_bytes: u64,
    failure: Option<S3Error>,
}

impl<S: ChunkSource> FileBody<'_, S> {
    fn refuse(&mut self, err: S3Error) -> BodyRefused {
        let reason = err.code().to_string();
        self.failure = Some(err);
        BodyRefused { reason }
    }

    async fn next(&mut self) -> Result<Option<Bytes>, S3Error> {
        let data = self.form.next_file_chunk().await?;
        if let Some(data) = &data {
            self.received_bytes += data.len() as u64;
            if self.received_bytes > self.max_bytes {
                return Err(S3Error::EntityTooLarge { size_bytes_max: self.max_bytes });
            }
        }
        Ok(data)
    }
}

impl<S: ChunkSource> BodySource for FileBody<'_, S> {
    fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Bytes>, BodyRefused>> {
        Box::pin(async move { self.next().await.map_err(|e| self.refuse(e)) })
    }

    fn finish(&mut self, summary: &BodySummary) -> Result<BodyEnd, BodyRefused> {
        if summary.size_bytes < self.min_bytes {
            let err = S3Error::Post {
                code: "EntityTooSmall",
                message: format!(
                    "Your proposed upload is smaller than the minimum allowed size \
                     ({} bytes, at least {})",
                    summary.size_bytes, self.min_bytes
                ),
            };
            return Err(self.refuse(err));
        }
        Ok(BodyEnd { etag: hex::encode(summary.md5), ..Default::default() })
    }
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

fn required<'a>(fields: &'a [(String, String)], name: &str) -> Result<&'a str, S3Error> {
    field(fields, name).ok_or_else(|| S3Error::Post {
        code: "InvalidArgument",
        message: format!("Bucket POST must contain a field named '{name}'."),
    })
}

/// The signing key of a form's `x-amz-credential`, checked against the form's date and
/// our region (a wrong region is answered with the one to use, as for other requests).
async fn verify_signature(
    state: &S3State,
    fields: &[(String, String)],
) -> Result<(String, access::KeyGrant), S3Error> {
    let Some(policy) = field(fields, "policy") else {
        return Err(S3Error::AccessDenied { reason: "Anonymous access is not allowed" });
    };
    if required(fields, "x-amz-algorithm")? != ALGORITHM {
        return Err(S3Error::Post {
            code: "InvalidArgument",
            message: format!("x-amz-algorithm must be {ALGORITHM}"),
        });
    }
    let credential = required(fields, "x-amz-credential")?;
    let amz_date = required(fields, "x-amz-date")?;
    let signature = required(fields, "x-amz-signature")?;
    let parts: Vec<&str> = credential.split('/').collect();
    let [key_id, date, region, sigv4::SERVICE, sigv4::TERMINATOR] = parts[..] else {
        return Err(S3Error::Post {
            code: "InvalidArgument",
            message: "x-amz-credential must be <AKID>/YYYYMMDD/REGION/s3/aws4_request".into(),
        });
    };
    if region != state.region {
        let reason = format!("the region '{region}' is wrong; expecting '{}'", state.region);
        let expected_region = Some(state.region.clone());
        return Err(S3Error::AuthorizationHeaderMalformed { reason, expected_region });
    }
    if parse_amz_date(amz_date).is_none() || !amz_date.starts_with(date) {
        return Err(S3Error::Post {
            code: "InvalidArgument",
            message: "x-amz-date must be YYYYMMDD'T'HHMMSS'Z' on the credential's date".into(),
        });
    }
    let grant = state.keys.lookup(key_id).await?;
    let grant =
        grant.ok_or_else(|| S3Error::InvalidAccessKeyId { access_key: key_id.to_string() })?;
    let signing_key = sigv4::signing_key(&grant.secret, date, region);
    if !sigv4::signature_matches(&signing_key, policy, signature) {
        return Err(S3Error::SignatureDoesNotMatch);
    }
    Ok((key_id.to_string(), grant))
}

fn decode_policy(fields: &[(String, String)]) -> Result<Policy, S3Error> {
    let encoded = required(fields, "policy")?;
    let json = base64_decode(encoded).ok_or_else(|| S3Error::Post {
        code: "InvalidPolicyDocument",
        message: "Invalid Policy: the policy is not base64".into(),
    })?;
    post_policy::parse(&json)
}

/// The object key: the `key` field with `${filename}` replaced by the file's name.
fn object_key(fields: &[(String, String)], file_name: &str) -> Result<String, S3Error> {
    let key = required(fields, "key")?.replace("${filename}", file_name);
    if key.is_empty() {
        return Err(S3Error::Post {
            code: "InvalidArgument",
            message: "User key must have a length greater than 0.".into(),
        });
    }
    if key.len() > KEY_BYTES_MAX {
        return Err(S3Error::KeyTooLong { length_bytes: key.len() });
    }
    Ok(key)
}

fn object_meta(fields: &[(String, String)]) -> ObjectMeta {
    let user_metadata: BTreeMap<String, String> = fields
        .iter()
        .filter_map(|(n, v)| Some((n.strip_prefix(META_PREFIX)?.to_string(), v.clone())))
        .collect();
    let content_type = field(fields, "content-type").unwrap_or(DEFAULT_CONTENT_TYPE).to_string();
    ObjectMeta { content_type, user_metadata }
}

/// Handles a request `is_form_upload` accepted; `access_key` is set once authenticated.
pub async fn post_object(
    state: &S3State,
    parts: &Parts,
    body: Incoming,
    access_key: &mut Option<String>,
) -> Result<Response<Full<Bytes>>, S3Error> {
    post_form_upload(state, parts, IncomingSource(body), access_key).await
}

/// `post_object` over any source of the body's bytes (tests give them in pieces).
async fn post_form_upload<S: ChunkSource>(
    state: &S3State,
    parts: &Parts,
    source: S,
    access_key: &mut Option<String>,
) -> Result<Response<Full<Bytes>>, S3Error> {
    let host = parts.headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let host = host.or(parts.uri.authority().map(|a| a.as_str())).unwrap_or("");
    let vhost_bucket = state.root_domain.as_deref().and_then(|d| vhost::bucket_from_host(host, d));
    let route_path = vhost::routing_path(parts.uri.path(), vhost_bucket.as_deref());
    let (bucket, key) = parse_path(&route_path)?;
    let (Some(bucket), None) = (bucket, key) else {
        let operation = "POST of a form anywhere but on a bucket".to_string();
        return Err(S3Error::NotImplemented { operation });
    };
    let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let boundary = content_type.and_then(boundary).unwrap_or_else(|| Err(malformed("no form")))?;
    let mut form = MultipartForm::new(source, &boundary);
    let head = form.read_head().await?;
    let (key_id, grant) = verify_signature(state, &head.fields).await?;
    *access_key = Some(key_id);
    let policy = decode_policy(&head.fields)?;
    let key = object_key(&head.fields, head.file_name.as_deref().unwrap_or(""))?;
    // Conditions see the bucket of the path and the key as it will be stored.
    let mut checked: Vec<(String, String)> =
        head.fields.iter().filter(|(n, _)| n != "key" && n != "bucket").cloned().collect();
    checked.extend([("bucket".to_string(), bucket.clone()), ("key".to_string(), key.clone())]);
    policy.check((state.clock)(), &checked)?;
    let write = Endpoint::PutObject { bucket: bucket.clone(), key: key.clone() };
    access::check(&grant, &write, state.backend.as_ref()).await?;

    let (min_bytes, max_bytes) = policy.length_range().unwrap_or((0, u64::MAX));
    let max_bytes = max_bytes.min(state.object_bytes_max);
    let mut file =
        FileBody { form: &mut form, min_bytes, max_bytes, received_bytes: 0, failure: None };
    let backend = state.backend.as_ref();
    let (versioning, info) = tokio::join!(
        backend.get_bucket_versioning(&bucket),
        backend.put_object(&bucket, &key, object_meta(&head.fields), &mut file)
    );
    if let Some(observer) = &state.observer {
        observer.body_bytes("PostObject", file.received_bytes, 0);
    }
    let refusal = file.failure.take();
    let info = match info {
        Ok(info) => info,
        Err(e) => {
            let err = refusal.unwrap_or_else(|| S3Error::from_backend(e, &bucket, &key));
            if let S3Error::EntityTooLarge { .. } = err {
                form.skip_file(SKIP_BYTES_MAX).await;
            }
            return Err(err);
        }
    };
    let etag = format!("\"{}\"", info.etag);
    let location = format!("http://{host}/{bucket}/{}", uri_encode(&key, false));
    let mut out = HeaderMap::new();
    out.insert(header::ETAG, header_value(&etag)?);
    let versioning = versioning.map_err(|e| S3Error::from_backend(e, &bucket, &key))?;
    if versioning != Versioning::Unversioned {
        out.insert("x-amz-version-id", header_value(&info.version_id)?);
    }
    let (status, body) = answer(&head.fields, (&bucket, &key, &etag), &location, &mut out)?;
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    *resp.headers_mut() = out;
    Ok(resp)
}

/// What `success_action_redirect` / `success_action_status` ask for: a 303 to the
/// redirect with bucket, key and ETag in its query; else 200, 201 with a PostResponse
/// document, or 204 (the default, and S3's answer to any other status asked).
fn answer(
    fields: &[(String, String)],
    (bucket, key, etag): (&str, &str, &str),
    location: &str,
    out: &mut HeaderMap,
) -> Result<(StatusCode, Bytes), S3Error> {
    let redirect = field(fields, "success_action_redirect").or(field(fields, "redirect"));
    if let Some(url) = redirect.filter(|u| u.starts_with("http://") || u.starts_with("https://")) {
        let sep = if url.contains('?') { '&' } else { '?' };
        let (b, k, e) = (uri_encode(bucket, true), uri_encode(key, true), uri_encode(etag, true));
        let target = format!("{url}{sep}bucket={b}&key={k}&etag={e}");
        out.insert(header::LOCATION, header_value(&target)?);
        return Ok((StatusCode::SEE_OTHER, Bytes::new()));
    }
    out.insert(header::LOCATION, header_value(location)?);
    match field(fields, "success_action_status") {
        Some("200") => Ok((StatusCode::OK, Bytes::new())),
        Some("201") => {
            let mut w = XmlWriter::new("PostResponse", false);
            w.element("Location", location);
            w.element("Bucket", bucket);
            w.element("Key", key);
            w.element("ETag", etag);
            out.insert(header::CONTENT_TYPE, header_value("application/xml")?);
            Ok((StatusCode::CREATED, Bytes::from(w.finish("PostResponse"))))
        }
        _ => Ok((StatusCode::NO_CONTENT, Bytes::new())),
    }
}

#[cfg(test)]
#[path = "post_object_tests.rs"]
mod end_to_end;

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn answers_follow_the_success_fields() {
        let target = ("bk", "a b", "\"e\"");
        let mut out = HeaderMap::new();
        let (status, body) = answer(&[], target, "http://h/bk/a%20b", &mut out).unwrap();
        assert_eq!((status, body.len()), (StatusCode::NO_CONTENT, 0));
        let created = fields(&[("success_action_status", "201")]);
        let (status, body) = answer(&created, target, "http://h/bk/a%20b", &mut out).unwrap();
        assert_eq!(status, StatusCode::CREATED);
        let doc = String::from_utf8(body.to_vec()).unwrap();
        assert!(doc.contains("<Key>a b</Key>") && doc.contains("<ETag>&quot;e&quot;</ETag>"));
        let redirect = fields(&[("success_action_redirect", "http://app/done?x=1")]);
        let (status, _) = answer(&redirect, target, "", &mut out).unwrap();
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(out[header::LOCATION], "http://app/done?x=1&bucket=bk&key=a%20b&etag=%22e%22");
    }

    #[test]
    fn key_and_metadata_come_from_the_form() {
        let form = fields(&[("key", "up/${filename}"), ("x-amz-meta-who", "me")]);
        assert_eq!(object_key(&form, "cat.png").unwrap(), "up/cat.png");
        assert_eq!(object_key(&[], "x").unwrap_err().code(), "InvalidArgument");
        let meta = object_meta(&form);
        assert_eq!(meta.content_type, DEFAULT_CONTENT_TYPE);
        assert_eq!(meta.user_metadata["who"], "me");
    }
}
