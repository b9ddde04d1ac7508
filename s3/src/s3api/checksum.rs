//! S3 additional checksums: `x-amz-checksum-{crc32,crc32c,crc64nvme,sha1,sha256}`.
//!
//! A client names at most one algorithm per upload, with the value either in a header
//! (known before the body) or in an aws-chunked trailer (known after it; announced by
//! `x-amz-trailer`). The body is hashed as it streams; a value that does not match is
//! BadDigest and the object is not created. Values are base64 of the big-endian digest.
//!
//! Where the value is kept: in the object's metadata map under `STORED_PREFIX` + the
//! algorithm's header name. The prefix starts with a space, which no HTTP header name can
//! hold, so a client's `x-amz-meta-*` can never collide with it, and the stored entry
//! format does not change. GET and HEAD return it with `x-amz-checksum-mode: ENABLED`.

use std::collections::BTreeMap;

use hyper::HeaderMap;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::encoding::{base64_decode, base64_encode};
use super::error::S3Error;

/// Metadata names under which checksums are stored (see the module documentation).
pub const STORED_PREFIX: &str = " checksum:";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

const ALL: [Algorithm; 5] =
    [Algorithm::Crc32, Algorithm::Crc32c, Algorithm::Crc64Nvme, Algorithm::Sha1, Algorithm::Sha256];

impl Algorithm {
    /// The header (and trailer) carrying its value.
    pub fn header(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "x-amz-checksum-crc32",
            Algorithm::Crc32c => "x-amz-checksum-crc32c",
            Algorithm::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Algorithm::Sha1 => "x-amz-checksum-sha1",
            Algorithm::Sha256 => "x-amz-checksum-sha256",
        }
    }

    /// As `x-amz-sdk-checksum-algorithm` and `x-amz-checksum-algorithm` name it.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "CRC32",
            Algorithm::Crc32c => "CRC32C",
            Algorithm::Crc64Nvme => "CRC64NVME",
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
        }
    }

    pub fn digest_bytes(self) -> usize {
        match self {
            Algorithm::Crc32 | Algorithm::Crc32c => 4,
            Algorithm::Crc64Nvme => 8,
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
        }
    }

    pub fn from_header(name: &str) -> Option<Algorithm> {
        ALL.into_iter().find(|a| a.header().eq_ignore_ascii_case(name.trim()))
    }

    pub fn from_name(name: &str) -> Option<Algorithm> {
        ALL.into_iter().find(|a| a.name().eq_ignore_ascii_case(name.trim()))
    }

    pub fn stored_name(self) -> String {
        format!("{STORED_PREFIX}{}", self.header())
    }
}

/// A running checksum of one algorithm.
pub enum Hasher {
    Crc32(crc32fast::Hasher),
    Crc32c(u32),
    Crc64Nvme(crc64fast_nvme::Digest),
    Sha1(Sha1),
    Sha256(Sha256),
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Hasher {
        match algorithm {
            Algorithm::Crc32 => Hasher::Crc32(crc32fast::Hasher::new()),
            Algorithm::Crc32c => Hasher::Crc32c(0),
            Algorithm::Crc64Nvme => Hasher::Crc64Nvme(crc64fast_nvme::Digest::new()),
            Algorithm::Sha1 => Hasher::Sha1(Sha1::new()),
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Crc32(h) => h.update(data),
            Hasher::Crc32c(crc) => *crc = crc32c::crc32c_append(*crc, data),
            Hasher::Crc64Nvme(h) => h.write(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            Hasher::Crc32(_) => Algorithm::Crc32,
            Hasher::Crc32c(_) => Algorithm::Crc32c,
            Hasher::Crc64Nvme(_) => Algorithm::Crc64Nvme,
            Hasher::Sha1(_) => Algorithm::Sha1,
            Hasher::Sha256(_) => Algorithm::Sha256,
        }
    }

    /// The value as S3 writes it: base64 of the big-endian digest.
    pub fn finish(self) -> String {
        let bytes = match self {
            Hasher::Crc32(h) => h.finalize().to_be_bytes().to_vec(),
            Hasher::Crc32c(crc) => crc.to_be_bytes().to_vec(),
            Hasher::Crc64Nvme(h) => h.sum64().to_be_bytes().to_vec(),
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
        };
        base64_encode(&bytes)
    }
}

/// What a request says about its checksum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    pub algorithm: Algorithm,
    /// From a header; `None` if it comes in a trailer.
    pub value: Option<String>,
}

/// The checksum a request asks for, from its headers: a value header, or an announced
/// trailer. More than one algorithm, a trailer that is not a checksum, or a malformed
/// value is InvalidRequest.
pub fn expected(headers: &HeaderMap) -> Result<Option<Expected>, S3Error> {
    let invalid = |reason: String| S3Error::InvalidRequest { reason };
    let mut found: Vec<Expected> = Vec::new();
    for algorithm in ALL {
        if let Some(v) = headers.get(algorithm.header()) {
            let value = v.to_str().map_err(|_| invalid("checksum is not ASCII".into()))?;
            check_format(algorithm, value)?;
            found.push(Expected { algorithm, value: Some(value.trim().to_string()) });
        }
    }
    if let Some(trailer) = headers.get("x-amz-trailer") {
        let name = trailer.to_str().unwrap_or_default();
        let algorithm = Algorithm::from_header(name)
            .ok_or_else(|| invalid(format!("unsupported trailer {name:?}")))?;
        found.push(Expected { algorithm, value: None });
    }
    if found.len() > 1 {
        return Err(invalid("Expecting a single x-amz-checksum- header".into()));
    }
    let declared = headers.get("x-amz-sdk-checksum-algorithm").and_then(|v| v.to_str().ok());
    if let (Some(name), Some(e)) = (declared, found.first())
        && Algorithm::from_name(name) != Some(e.algorithm)
    {
        return Err(invalid(format!(
            "Value for x-amz-sdk-checksum-algorithm header is invalid: {name} \
             does not match the checksum sent"
        )));
    }
    Ok(found.pop())
}

/// A value must be base64 of a digest of the algorithm's size.
pub fn check_format(algorithm: Algorithm, value: &str) -> Result<(), S3Error> {
    match base64_decode(value.trim()) {
        Some(bytes) if bytes.len() == algorithm.digest_bytes() => Ok(()),
        _ => Err(S3Error::InvalidRequest {
            reason: format!("Value for {} header is invalid.", algorithm.header()),
        }),
    }
}

/// The stored checksums of an object, as response headers (name, value), then its
/// `x-amz-checksum-type`: COMPOSITE or FULL_OBJECT as a multipart upload declared it
/// (`checksum_multipart`), FULL_OBJECT for a checksum of a single upload.
pub fn stored(user_metadata: &BTreeMap<String, String>) -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String)> = ALL
        .into_iter()
        .filter_map(|a| user_metadata.get(&a.stored_name()).map(|v| (a.header(), v.clone())))
        .collect();
    if !out.is_empty() {
        let declared = user_metadata.get(&super::checksum_multipart::type_key());
        let kind = declared.map_or("FULL_OBJECT", |k| k.as_str());
        out.push(("x-amz-checksum-type", kind.to_string()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(algorithm: Algorithm, data: &[u8]) -> String {
        let mut h = Hasher::new(algorithm);
        // In two pieces: the streaming update must equal the one-shot digest.
        let (a, b) = data.split_at(data.len() / 2);
        h.update(a);
        h.update(b);
        h.finish()
    }

    /// Check values of the standard test input "123456789" (CRC catalogue: CRC-32/ISO-HDLC
    /// cbf43926, CRC-32/ISCSI e3069283, CRC-64/NVME ae8b14860a799888), and the SHA digests
    /// of "hello" as `sha1sum`/`sha256sum` give them.
    #[test]
    fn digests_match_the_published_check_values() {
        let b64 = |hex_digest: &str| base64_encode(&hex::decode(hex_digest).unwrap());
        assert_eq!(of(Algorithm::Crc32, b"123456789"), b64("cbf43926"));
        assert_eq!(of(Algorithm::Crc32c, b"123456789"), b64("e3069283"));
        assert_eq!(of(Algorithm::Crc64Nvme, b"123456789"), b64("ae8b14860a799888"));
        assert_eq!(of(Algorithm::Sha1, b"hello"), b64("aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"));
        assert_eq!(
            of(Algorithm::Sha256, b"hello"),
            b64("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
        );
    }

    #[test]
    fn requests_name_one_well_formed_checksum() {
        let mut h = HeaderMap::new();
        assert_eq!(expected(&h), Ok(None));
        h.insert("x-amz-checksum-crc32", "y/Q5Jg==".parse().unwrap());
        let e = expected(&h).unwrap().unwrap();
        assert_eq!((e.algorithm, e.value.as_deref()), (Algorithm::Crc32, Some("y/Q5Jg==")));
        h.insert("x-amz-trailer", "x-amz-checksum-crc32c".parse().unwrap());
        assert_eq!(expected(&h).unwrap_err().code(), "InvalidRequest", "two checksums");
        h.remove("x-amz-checksum-crc32");
        let e = expected(&h).unwrap().unwrap();
        assert_eq!((e.algorithm, e.value), (Algorithm::Crc32c, None));
        h.insert("x-amz-sdk-checksum-algorithm", "CRC32".parse().unwrap());
        assert_eq!(expected(&h).unwrap_err().code(), "InvalidRequest", "mismatched algorithm");
        let mut bad = HeaderMap::new();
        bad.insert("x-amz-checksum-sha256", "AAAA".parse().unwrap());
        assert_eq!(expected(&bad).unwrap_err().code(), "InvalidRequest", "wrong length");
    }
}
