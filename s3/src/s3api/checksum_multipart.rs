//! Checksums of multipart uploads: what CreateMultipartUpload declares, where each part's
//! checksum is kept, and the completed object's checksum.
//!
//! An upload created with `x-amz-checksum-algorithm` gets, on completion, either
//! - a COMPOSITE checksum (SHA1, SHA256, CRC32, CRC32C): the algorithm applied to the
//!   concatenated binary part checksums, written `base64-N` for N parts; or
//! - a FULL_OBJECT checksum (CRC32, CRC32C, CRC64NVME): the CRC of the whole object,
//!   combined from the parts' CRCs and sizes (`checksum_combine`), never by re-reading.
//!
//! Where things are kept, without changing any stored entry's layout:
//! - the declaration, in the upload's metadata under `STORED_PREFIX` + `x-amz-checksum-
//!   algorithm` / `-type` (the object inherits it, so HEAD can say the type);
//! - a part's verified checksum, appended to its stored ETag after `PART_TAG_SEP` (a space:
//!   no MD5 ETag holds one). The S3 layer strips it wherever a part's ETag is shown and
//!   puts it back when completion names the part by its MD5 ETag.

use std::collections::BTreeMap;

use hyper::HeaderMap;

use super::backend::{BodyEnd, BodyRefused, BodySource, BodySummary, BoxFuture, PartInfo};
use super::checksum::{Algorithm, STORED_PREFIX};
use super::checksum_combine::combine_all;
use super::encoding::{base64_decode, base64_encode};
use super::error::S3Error;
use bytes::Bytes;

/// Separates a part's MD5 ETag from its checksum in the stored ETag.
pub const PART_TAG_SEP: char = ' ';

/// COMPOSITE or FULL_OBJECT (`x-amz-checksum-type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Composite,
    FullObject,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Composite => "COMPOSITE",
            Kind::FullObject => "FULL_OBJECT",
        }
    }
}

/// What an upload was created to be checked with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Declared {
    pub algorithm: Algorithm,
    pub kind: Kind,
}

fn algorithm_key() -> String {
    format!("{STORED_PREFIX}x-amz-checksum-algorithm")
}

/// Where the checksum type is stored (also for the completed object).
pub fn type_key() -> String {
    format!("{STORED_PREFIX}x-amz-checksum-type")
}

fn invalid(reason: String) -> S3Error {
    S3Error::InvalidRequest { reason }
}

/// The declaration of a CreateMultipartUpload, as S3 judges it: an unknown algorithm or
/// type, a type without an algorithm, FULL_OBJECT with a SHA, or COMPOSITE with
/// CRC64NVME is InvalidRequest. Without a type, CRC64NVME is FULL_OBJECT, the others
/// COMPOSITE (S3's defaults).
pub fn declared(headers: &HeaderMap) -> Result<Option<Declared>, S3Error> {
    let get = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("").trim().to_string());
    let kind = match get("x-amz-checksum-type") {
        None => None,
        Some(t) if t.eq_ignore_ascii_case("COMPOSITE") => Some(Kind::Composite),
        Some(t) if t.eq_ignore_ascii_case("FULL_OBJECT") => Some(Kind::FullObject),
        Some(t) => return Err(invalid(format!("Value for x-amz-checksum-type is invalid: {t}"))),
    };
    let Some(name) = get("x-amz-checksum-algorithm") else {
        return match kind {
            None => Ok(None),
            Some(_) => Err(invalid(
                "The x-amz-checksum-type header can only be used with the \
                 x-amz-checksum-algorithm header."
                    .into(),
            )),
        };
    };
    let algorithm = Algorithm::from_name(&name)
        .ok_or_else(|| invalid(format!("Checksum algorithm provided is unsupported: {name}")))?;
    let kind = kind.unwrap_or(match algorithm {
        Algorithm::Crc64Nvme => Kind::FullObject,
        _ => Kind::Composite,
    });
    let combinable = !matches!(algorithm, Algorithm::Sha1 | Algorithm::Sha256);
    let allowed = match kind {
        Kind::FullObject => combinable,
        Kind::Composite => algorithm != Algorithm::Crc64Nvme,
    };
    if !allowed {
        return Err(invalid(format!(
            "The {} checksum type cannot be used with the {} checksum algorithm.",
            kind.name(),
            algorithm.name().to_ascii_lowercase()
        )));
    }
    Ok(Some(Declared { algorithm, kind }))
}

/// The metadata entries that record a declaration on the upload.
pub fn declaration_metadata(d: Declared) -> [(String, String); 2] {
    [(algorithm_key(), d.algorithm.name().into()), (type_key(), d.kind.name().into())]
}

/// The declaration recorded in an upload's metadata, if any.
pub fn declaration_of(user_metadata: &BTreeMap<String, String>) -> Option<Declared> {
    let algorithm = Algorithm::from_name(user_metadata.get(&algorithm_key())?)?;
    let kind = match user_metadata.get(&type_key())?.as_str() {
        "FULL_OBJECT" => Kind::FullObject,
        _ => Kind::Composite,
    };
    Some(Declared { algorithm, kind })
}

// ---- a part's checksum, kept with its ETag ----

/// A stored part ETag split into the MD5 ETag clients see and the checksum it was
/// verified with (if any).
pub fn split_part_etag(stored: &str) -> (&str, Option<(Algorithm, &str)>) {
    match stored.split_once(PART_TAG_SEP) {
        None => (stored, None),
        Some((etag, tag)) => {
            let checksum = tag
                .split_once('=')
                .and_then(|(name, value)| Some((Algorithm::from_header(name)?, value)));
            (etag, checksum)
        }
    }
}

/// A part's body source that appends the verified checksum to the ETag the backend
/// stores (see the module documentation); everything else is the inner source's. A part
/// verified with another algorithm than its upload declared is refused before it is
/// recorded (S3's "Checksum Type mismatch"), the error kept in `failure`.
pub struct TaggedPart<'b> {
    pub inner: &'b mut dyn BodySource,
    pub declared: Option<Declared>,
    pub failure: Option<S3Error>,
}

impl BodySource for TaggedPart<'_> {
    fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Bytes>, BodyRefused>> {
        self.inner.next_chunk()
    }

    fn finish(&mut self, summary: &BodySummary) -> Result<BodyEnd, BodyRefused> {
        let mut end = self.inner.finish(summary)?;
        let checksum = std::mem::take(&mut end.extra_metadata).into_iter().find_map(|(k, v)| {
            let header = k.strip_prefix(STORED_PREFIX)?;
            Algorithm::from_header(header).map(|a| (a, v))
        });
        if let (Some(d), Some((algorithm, _))) = (self.declared, &checksum)
            && d.algorithm != *algorithm
        {
            let name = |a: Algorithm| a.name().to_ascii_lowercase();
            let reason = format!(
                "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum \
                 Type: {}",
                name(d.algorithm),
                name(*algorithm)
            );
            self.failure = Some(invalid(reason.clone()));
            return Err(BodyRefused { reason });
        }
        if let Some((algorithm, value)) = checksum {
            end.etag = format!("{}{PART_TAG_SEP}{}={value}", end.etag, algorithm.header());
        }
        Ok(end)
    }
}

// ---- completion ----

/// One `Part` of a CompleteMultipartUpload document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChosenPart {
    pub part_number: u32,
    /// Unquoted, lowercase.
    pub etag: String,
    /// `ChecksumCRC32` etc., as given.
    pub checksums: Vec<(Algorithm, String)>,
}

/// The parts to complete with, their stored ETags put back, and the object's checksum
/// (metadata name, value) when the upload declared one.
pub struct Resolved {
    pub parts: Vec<(u32, String)>,
    pub checksum: Option<(String, String)>,
    /// The chosen parts' sizes, in order, when every one matched a stored part (otherwise
    /// the backend refuses the completion: InvalidPart).
    pub sizes: Option<Vec<u64>>,
}

/// Matches the client's parts with the stored ones: a part whose MD5 ETag matches gets its
/// stored ETag back (a mismatch is left for the backend's InvalidPart); a checksum given in
/// the document must equal the part's (else InvalidPart, as S3); a COMPOSITE upload needs
/// every part's checksum in the document (InvalidRequest). With a declaration, every part
/// must have been uploaded with its algorithm, and the object's checksum is computed; one
/// sent in a header must equal it (BadDigest).
pub fn resolve(
    chosen: &[ChosenPart],
    stored: &[PartInfo],
    declared: Option<Declared>,
    headers: &HeaderMap,
) -> Result<Resolved, S3Error> {
    let by_number: BTreeMap<u32, &PartInfo> = stored.iter().map(|p| (p.part_number, p)).collect();
    let mut parts = Vec::with_capacity(chosen.len());
    let mut digests: Vec<(Vec<u8>, u64)> = Vec::with_capacity(chosen.len());
    let mut sizes = Vec::with_capacity(chosen.len());
    for part in chosen {
        let n = part.part_number;
        let found = by_number.get(&n).map(|p| (split_part_etag(&p.etag), p.size_bytes));
        let Some(((_, checksum), size)) = found.filter(|((etag, _), _)| *etag == part.etag) else {
            parts.push((n, part.etag.clone()));
            continue;
        };
        parts.push((n, by_number[&n].etag.clone()));
        sizes.push(size);
        for (algorithm, value) in &part.checksums {
            if checksum != Some((*algorithm, value.as_str())) {
                return Err(S3Error::InvalidPart { part_number: n });
            }
        }
        let Some(d) = declared else { continue };
        let name = d.algorithm.name().to_ascii_lowercase();
        if d.kind == Kind::Composite && !part.checksums.iter().any(|(a, _)| *a == d.algorithm) {
            return Err(invalid(format!(
                "The upload was created using a {name} checksum. The complete request must \
                 include the checksum for each part. It was missing for part {n} in the request."
            )));
        }
        let digest =
            checksum.filter(|(a, _)| *a == d.algorithm).and_then(|(_, v)| base64_decode(v));
        let digest = digest.ok_or_else(|| {
            invalid(format!(
                "Part {n} was not uploaded with a {name} checksum, as the upload needs."
            ))
        })?;
        digests.push((digest, size));
    }
    let checksum = match declared {
        Some(d) if digests.len() == chosen.len() => {
            let value = object_checksum(d, &digests);
            check_claimed(d, &value, headers)?;
            Some((d.algorithm.stored_name(), value))
        }
        _ => None,
    };
    let sizes = (sizes.len() == chosen.len()).then_some(sizes);
    Ok(Resolved { parts, checksum, sizes })
}

/// The completed object's checksum from its parts' (digest, size), in order.
fn object_checksum(d: Declared, parts: &[(Vec<u8>, u64)]) -> String {
    match d.kind {
        Kind::Composite => {
            let joined: Vec<u8> = parts.iter().flat_map(|(digest, _)| digest.clone()).collect();
            let mut hasher = super::checksum::Hasher::new(d.algorithm);
            hasher.update(&joined);
            format!("{}-{}", hasher.finish(), parts.len())
        }
        Kind::FullObject => {
            let crcs: Vec<(u64, u64)> = parts
                .iter()
                .map(|(digest, size)| {
                    (digest.iter().fold(0, |a, b| (a << 8) | u64::from(*b)), *size)
                })
                .collect();
            let crc =
                combine_all(d.algorithm, &crcs).expect("FULL_OBJECT is declared for CRCs only");
            let width_bytes = d.algorithm.digest_bytes();
            base64_encode(&crc.to_be_bytes()[8 - width_bytes..])
        }
    }
}

/// A checksum of the whole object sent with CompleteMultipartUpload must be the one
/// computed (a COMPOSITE one may leave out its `-N`); another algorithm is InvalidRequest.
fn check_claimed(d: Declared, computed: &str, headers: &HeaderMap) -> Result<(), S3Error> {
    for (name, value) in headers {
        let Some(algorithm) = Algorithm::from_header(name.as_str()) else { continue };
        if algorithm != d.algorithm {
            return Err(invalid(format!(
                "The upload was created using the {} checksum algorithm, not {}.",
                d.algorithm.name(),
                algorithm.name()
            )));
        }
        let claimed = value.to_str().unwrap_or("").trim();
        let bare = computed.split('-').next().unwrap_or(computed);
        if claimed != computed && claimed != bare {
            return Err(S3Error::BadDigest);
        }
    }
    Ok(())
}

/// The object's checksum, as the CompleteMultipartUpload result names it
/// (`ChecksumCRC32`, …) with its type, from the object's metadata.
pub fn result_elements(user_metadata: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (header, value) in super::checksum::stored(user_metadata) {
        match Algorithm::from_header(header) {
            Some(a) => out.push((format!("Checksum{}", a.name()), value)),
            None => out.push(("ChecksumType".into(), value)),
        }
    }
    out
}

#[cfg(test)]
#[path = "checksum_multipart_tests.rs"]
mod tests;
