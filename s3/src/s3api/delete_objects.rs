//! DeleteObjects: `POST /bucket?delete` with a `Delete` document of up to 1000 keys.
//!
//! The S3 rules followed (S3 API reference, DeleteObjects):
//! - the body must come with `Content-MD5` or an `x-amz-checksum-*` header, checked
//!   against it; without either S3 answers `400 InvalidRequest` ("Missing required header
//!   for this request: Content-MD5 OR x-amz-checksum-*"), a mismatch is `400 BadDigest`;
//! - at most 1000 `Object`s, at least one, each with a `Key` (else `MalformedXML`);
//! - each key is deleted as a DeleteObject would (a delete marker without a version id, that
//!   version for good with one); deleting a key that does not exist succeeds;
//! - the answer lists every key as `Deleted` or `Error` (with `Quiet`, only the errors),
//!   with `DeleteMarker` / `DeleteMarkerVersionId` where a marker was written or removed.
//!
//! Keys are deleted a bounded number at a time (`DELETES_IN_FLIGHT`): a batch of 1000 quorum
//! writes one after the other would take seconds, all at once would flood the cluster.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper::header::HeaderMap;
use md5::{Digest, Md5};
use tokio::task::JoinSet;

use super::backend::{Deleted, ObjectBackend, Versioning, valid_version_id};
use super::checksum::{self, Hasher};
use super::encoding::base64_decode;
use super::error::S3Error;
use super::router::KEY_BYTES_MAX;
use super::xml::{Token, XmlWriter, tokens};
use super::xml_response;

/// S3 deletes at most this many keys per request.
pub const KEYS_MAX: usize = 1000;
/// Deletes of one request running at once.
const DELETES_IN_FLIGHT: usize = 16;
/// Nesting accepted in a Delete document (it needs 3).
const XML_DEPTH_MAX: usize = 8;

/// One `Object` of the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToDelete {
    pub key: String,
    pub version_id: Option<String>,
}

/// The parsed `Delete` document: the objects, in document order, and `Quiet`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteRequest {
    pub objects: Vec<ToDelete>,
    pub quiet: bool,
}

/// Content-MD5 or an `x-amz-checksum-*` header must vouch for the body.
pub fn check_body_integrity(headers: &HeaderMap, body: &[u8]) -> Result<(), S3Error> {
    if let Some(md5) = headers.get("content-md5") {
        let md5 = md5.to_str().ok().and_then(base64_decode).filter(|d| d.len() == 16);
        let md5 = md5.ok_or(S3Error::InvalidDigest)?;
        if md5 != Md5::digest(body).as_slice() {
            return Err(S3Error::BadDigest);
        }
        return Ok(());
    }
    let Some(checksum::Expected { algorithm, value: Some(value) }) = checksum::expected(headers)?
    else {
        return Err(S3Error::InvalidRequest {
            reason: "Missing required header for this request: Content-MD5 OR x-amz-checksum-*"
                .into(),
        });
    };
    let mut hasher = Hasher::new(algorithm);
    hasher.update(body);
    if hasher.finish() != value {
        return Err(S3Error::BadDigest);
    }
    Ok(())
}

/// Reads a `Delete` document (with `xml::tokens`: no DTD, so no entity expansion).
pub fn parse_delete(doc: &[u8]) -> Result<DeleteRequest, S3Error> {
    let doc = std::str::from_utf8(doc).map_err(|_| S3Error::MalformedXML)?;
    let (mut stack, mut text) = (Vec::<String>::new(), String::new());
    let mut out = DeleteRequest { objects: Vec::new(), quiet: false };
    let mut object: (Option<String>, Option<String>) = (None, None);
    let mut seen_root = false;
    for token in tokens(doc)? {
        match token {
            Token::Open(name) => {
                if stack.is_empty() && (seen_root || name != "Delete") {
                    return Err(S3Error::MalformedXML);
                }
                seen_root = true;
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
                let in_object = stack.len() == 2 && stack[1] == "Object";
                match (in_object, stack.len(), name.as_str()) {
                    // Keys are taken as sent: S3 keys may begin or end with spaces.
                    (true, _, "Key") if object.0.is_none() => object.0 = Some(text.clone()),
                    (true, _, "VersionId") if object.1.is_none() => {
                        object.1 = Some(text.trim().to_string());
                    }
                    (true, _, "Key" | "VersionId") => return Err(S3Error::MalformedXML),
                    (false, 1, "Object") => match std::mem::take(&mut object) {
                        (Some(key), version_id) => {
                            if out.objects.len() == KEYS_MAX {
                                return Err(S3Error::MalformedXML);
                            }
                            out.objects.push(ToDelete { key, version_id });
                        }
                        _ => return Err(S3Error::MalformedXML),
                    },
                    (false, 1, "Quiet") => {
                        out.quiet = match text.trim() {
                            "true" => true,
                            "false" => false,
                            _ => return Err(S3Error::MalformedXML),
                        };
                    }
                    _ => {}
                }
                text.clear();
            }
        }
    }
    if !seen_root || !stack.is_empty() || out.objects.is_empty() {
        return Err(S3Error::MalformedXML);
    }
    Ok(out)
}

/// What became of one key.
type Outcome = Result<Deleted, S3Error>;

async fn delete_one(backend: &dyn ObjectBackend, bucket: &str, item: &ToDelete) -> Outcome {
    if item.key.is_empty() || item.key.len() > KEY_BYTES_MAX {
        return Err(S3Error::KeyTooLong { length_bytes: item.key.len() });
    }
    if let Some(id) = &item.version_id
        && !valid_version_id(id)
    {
        // Hangar issues no such id, so there is nothing under it to delete: S3 says so.
        return Err(S3Error::NoSuchVersion { key: item.key.clone() });
    }
    let deleted = backend.delete_object(bucket, &item.key, item.version_id.as_deref()).await;
    deleted.map_err(|e| S3Error::from_backend(e, bucket, &item.key))
}

pub async fn delete_objects(
    backend: &Arc<dyn ObjectBackend>,
    bucket: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response<Full<Bytes>>, S3Error> {
    check_body_integrity(headers, body)?;
    let request = parse_delete(body)?;
    let versioning = backend.get_bucket_versioning(bucket).await;
    let versioning = versioning.map_err(|e| S3Error::from_backend(e, bucket, ""))?;
    let mut outcomes: Vec<Option<Outcome>> = vec![None; request.objects.len()];
    let mut running = JoinSet::new();
    for (i, item) in request.objects.iter().enumerate() {
        while running.len() >= DELETES_IN_FLIGHT {
            let (at, outcome) = joined(running.join_next().await)?;
            outcomes[at] = Some(outcome);
        }
        let (backend, bucket, item) = (backend.clone(), bucket.to_string(), item.clone());
        running.spawn(async move { (i, delete_one(backend.as_ref(), &bucket, &item).await) });
    }
    while let Some(done) = running.join_next().await {
        let (at, outcome) = joined(Some(done))?;
        outcomes[at] = Some(outcome);
    }
    let mut w = XmlWriter::new("DeleteResult", true);
    for (item, outcome) in request.objects.iter().zip(outcomes) {
        let outcome = outcome.expect("every delete was joined");
        write_outcome(&mut w, item, outcome, versioning, request.quiet);
    }
    Ok(xml_response(w.finish("DeleteResult")))
}

fn joined(
    done: Option<Result<(usize, Outcome), tokio::task::JoinError>>,
) -> Result<(usize, Outcome), S3Error> {
    match done {
        Some(Ok(pair)) => Ok(pair),
        Some(Err(e)) => Err(S3Error::InternalError { reason: format!("delete task failed: {e}") }),
        None => Err(S3Error::InternalError { reason: "no delete task to join".into() }),
    }
}

fn write_outcome(
    w: &mut XmlWriter,
    item: &ToDelete,
    outcome: Outcome,
    versioning: Versioning,
    quiet: bool,
) {
    match outcome {
        Ok(_) if quiet => {}
        Ok(deleted) => {
            w.open("Deleted");
            w.element("Key", &item.key);
            match &item.version_id {
                Some(id) => {
                    w.element("VersionId", id);
                    if deleted.delete_marker {
                        w.element("DeleteMarker", "true");
                        w.element("DeleteMarkerVersionId", id);
                    }
                }
                // A marker is announced once the bucket has been versioned (as DeleteObject
                // announces it in its headers).
                None if versioning != Versioning::Unversioned => {
                    w.element("DeleteMarker", "true");
                    w.element("DeleteMarkerVersionId", &deleted.version_id);
                }
                None => {}
            }
            w.close("Deleted");
        }
        Err(err) => {
            w.open("Error");
            w.element("Key", &item.key);
            if let Some(id) = &item.version_id {
                w.element("VersionId", id);
            }
            w.element("Code", err.code());
            w.element("Message", &err.message());
            w.close("Error");
        }
    }
}

#[cfg(test)]
#[path = "delete_objects_tests.rs"]
mod tests;
