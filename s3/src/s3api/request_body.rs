//! An object upload's body, from the HTTP request into the backend as it arrives.
//!
//! `RequestBody` is the `BodySource` the engine streams into blocks. On the way it decodes
//! aws-chunked framing (checking chunk signatures), counts bytes against the declared
//! length and the object size limit, and hashes for the checks that can only be made at
//! the end: the signed SHA-256 (`x-amz-content-sha256`), the additional checksum
//! (`x-amz-checksum-*`, from a header or a trailer) and `Content-MD5`. Those run in
//! `finish`, which the engine calls after the last byte and before anything becomes
//! visible: a body that fails them is never stored as an object.
//!
//! The S3 error of a refusal is kept in `failure`, so the handler answers it (the engine
//! only learns that the body was refused).

use bytes::Bytes;
use hangar_engine::objects::body::{BodyEnd, BodyRefused, BodySource, BodySummary};
use hangar_engine::seam::BoxFuture;
use http_body_util::BodyExt;
use hyper::HeaderMap;
use hyper::body::Incoming;
use sha2::{Digest, Sha256};

use super::auth::PayloadHash;
use super::checksum::{self, Algorithm, Hasher};
use super::chunked::ChunkedDecoder;
use super::encoding::base64_decode;
use super::error::S3Error;

/// The default largest object a single PUT may create (S3's limit is 5 TiB for objects,
/// 5 GiB per PUT; Hangar streams, so it takes whole objects in one PUT).
pub const OBJECT_BYTES_MAX_DEFAULT: u64 = 5 << 40;
/// A client that sends no byte of its body for this long is dropped (RequestTimeout), so
/// a dead or stalled uploader does not hold its blocks' memory forever.
pub const BODY_IDLE_TIMEOUT_MS: u64 = 60_000;

pub struct RequestBody {
    /// `None` for a body given whole (tests).
    incoming: Option<Incoming>,
    /// Received bytes not yet decoded.
    pending: Bytes,
    chunked: Option<ChunkedDecoder>,
    /// The signed SHA-256 and its running hash.
    sha256: Option<([u8; 32], Sha256)>,
    checksum: Option<(Algorithm, Option<String>, Hasher)>,
    content_md5: Option<[u8; 16]>,
    /// The body's decoded length as the client declared it.
    declared_bytes: Option<u64>,
    max_bytes: u64,
    received_bytes: u64,
    verified: Option<(Algorithm, String)>,
    /// Why the body was refused, as S3 answers it.
    pub failure: Option<S3Error>,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

fn length(headers: &HeaderMap, name: &str) -> Result<Option<u64>, S3Error> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v.to_str().ok().and_then(|v| v.trim().parse().ok()).map(Some).ok_or_else(|| {
            S3Error::InvalidArgument { reason: format!("{name} must be a number of bytes") }
        }),
    }
}

impl RequestBody {
    /// Checks what the headers say about the body (sizes against `max_bytes`, digests'
    /// formats) before anything is read, so a client waiting on `Expect: 100-continue`
    /// is refused without sending its body.
    pub fn new(
        incoming: Option<Incoming>,
        headers: &HeaderMap,
        payload: &PayloadHash,
        max_bytes: u64,
    ) -> Result<RequestBody, S3Error> {
        let too_large = S3Error::EntityTooLarge { size_bytes_max: max_bytes };
        let (chunked, declared_bytes) = match payload {
            PayloadHash::Chunked { signing, trailer } => {
                let decoded = length(headers, "x-amz-decoded-content-length")?;
                let decoded = decoded.ok_or(S3Error::MissingContentLength)?;
                if headers.contains_key("x-amz-trailer") != *trailer {
                    return Err(S3Error::InvalidRequest {
                        reason: "x-amz-trailer must be sent with, and only with, a \
                                 STREAMING-…-TRAILER payload"
                            .into(),
                    });
                }
                (Some(ChunkedDecoder::new(signing.clone())), Some(decoded))
            }
            _ => {
                if headers.contains_key("x-amz-trailer") {
                    return Err(S3Error::InvalidRequest {
                        reason: "trailers need an aws-chunked (STREAMING-…-TRAILER) payload".into(),
                    });
                }
                (None, length(headers, "content-length")?)
            }
        };
        if declared_bytes.is_some_and(|n| n > max_bytes) {
            return Err(too_large);
        }
        let sha256 = match payload {
            PayloadHash::Sha256(expected) => Some((*expected, Sha256::new())),
            _ => None,
        };
        let checksum =
            checksum::expected(headers)?.map(|e| (e.algorithm, e.value, Hasher::new(e.algorithm)));
        let content_md5 = match header(headers, "content-md5") {
            None => None,
            Some(v) => {
                let md5 = base64_decode(v).and_then(|b| <[u8; 16]>::try_from(b).ok());
                Some(md5.ok_or(S3Error::InvalidDigest)?)
            }
        };
        Ok(RequestBody {
            incoming,
            pending: Bytes::new(),
            chunked,
            sha256,
            checksum,
            content_md5,
            declared_bytes,
            max_bytes,
            received_bytes: 0,
            verified: None,
            failure: None,
        })
    }

    /// A body given whole (the memory backend's tests, request documents).
    pub fn from_bytes(
        data: Bytes,
        headers: &HeaderMap,
        payload: &PayloadHash,
    ) -> Result<RequestBody, S3Error> {
        let mut body = RequestBody::new(None, headers, payload, OBJECT_BYTES_MAX_DEFAULT)?;
        body.declared_bytes = body.declared_bytes.or(Some(data.len() as u64));
        body.pending = data;
        Ok(body)
    }

    fn refuse(&mut self, err: S3Error) -> BodyRefused {
        let reason = err.code().to_string();
        self.failure = Some(err);
        BodyRefused { reason }
    }

    /// Counts and hashes decoded bytes on their way to the engine.
    fn accept(&mut self, data: Bytes) -> Result<Option<Bytes>, S3Error> {
        self.received_bytes += data.len() as u64;
        if self.received_bytes > self.max_bytes {
            return Err(S3Error::EntityTooLarge { size_bytes_max: self.max_bytes });
        }
        if self.declared_bytes.is_some_and(|n| self.received_bytes > n) {
            return Err(S3Error::IncompleteBody);
        }
        if let Some((_, hash)) = &mut self.sha256 {
            hash.update(&data);
        }
        if let Some((_, _, hasher)) = &mut self.checksum {
            hasher.update(&data);
        }
        Ok(Some(data))
    }

    async fn next_decoded(&mut self) -> Result<Option<Bytes>, S3Error> {
        loop {
            if !self.pending.is_empty() {
                match &mut self.chunked {
                    None => {
                        let data = std::mem::take(&mut self.pending);
                        return self.accept(data);
                    }
                    Some(decoder) => {
                        if let Some(data) = decoder.next(&mut self.pending)? {
                            return self.accept(data);
                        }
                        continue;
                    }
                }
            }
            let Some(incoming) = &mut self.incoming else { return self.end() };
            let idle = std::time::Duration::from_millis(BODY_IDLE_TIMEOUT_MS);
            let frame = tokio::time::timeout(idle, incoming.frame());
            match frame.await.map_err(|_| S3Error::RequestTimeout)? {
                None => return self.end(),
                Some(Err(_)) => return Err(S3Error::IncompleteBody),
                // HTTP trailers (not aws-chunked ones) carry nothing S3 reads.
                Some(Ok(frame)) => self.pending = frame.into_data().unwrap_or_default(),
            }
        }
    }

    fn end(&mut self) -> Result<Option<Bytes>, S3Error> {
        let framing_done = self.chunked.as_ref().is_none_or(ChunkedDecoder::is_done);
        let length_ok = self.declared_bytes.is_none_or(|n| n == self.received_bytes);
        if !framing_done || !length_ok {
            return Err(S3Error::IncompleteBody);
        }
        Ok(None)
    }

    /// Decoded body bytes received so far.
    pub fn received_bytes(&self) -> u64 {
        self.received_bytes
    }

    /// The checksum the body was verified with, once accepted.
    pub fn verified_checksum(&self) -> Option<(Algorithm, String)> {
        self.verified.clone()
    }

    /// The end-of-body checks (see the module documentation); the checksum to store.
    fn check(&mut self, summary: &BodySummary) -> Result<BodyEnd, S3Error> {
        debug_assert_eq!(summary.size_bytes, self.received_bytes);
        if let Some((expected, hash)) = self.sha256.take()
            && hash.finalize().as_slice() != expected
        {
            return Err(S3Error::ContentSha256Mismatch);
        }
        if self.content_md5.is_some_and(|md5| md5 != summary.md5) {
            return Err(S3Error::BadDigest);
        }
        let mut end = BodyEnd { etag: hex::encode(summary.md5), ..Default::default() };
        if let Some((algorithm, value, hasher)) = self.checksum.take() {
            let trailer = || {
                let trailers = self.chunked.as_ref().map(ChunkedDecoder::trailers).unwrap_or(&[]);
                trailers.iter().find(|(n, _)| n == algorithm.header()).map(|(_, v)| v.clone())
            };
            let claimed = value.or_else(trailer).ok_or_else(|| S3Error::InvalidRequest {
                reason: format!("the {} trailer announced was not sent", algorithm.header()),
            })?;
            checksum::check_format(algorithm, &claimed)?;
            let computed = hasher.finish();
            if computed != claimed {
                return Err(S3Error::BadDigest);
            }
            end.extra_metadata.insert(algorithm.stored_name(), computed.clone());
            self.verified = Some((algorithm, computed));
        }
        Ok(end)
    }
}

impl BodySource for RequestBody {
    fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Bytes>, BodyRefused>> {
        Box::pin(async move { self.next_decoded().await.map_err(|e| self.refuse(e)) })
    }

    fn finish(&mut self, summary: &BodySummary) -> Result<BodyEnd, BodyRefused> {
        self.check(summary).map_err(|e| self.refuse(e))
    }
}

#[cfg(test)]
#[path = "request_body_tests.rs"]
mod tests;
