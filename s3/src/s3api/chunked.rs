//! The `aws-chunked` content encoding, decoded incrementally as the body arrives.
//!
//! ```text
//! body    = *chunk last-chunk *trailer CRLF
//! chunk   = hex-size [";chunk-signature=" sig] CRLF data CRLF
//! last    = "0" [";chunk-signature=" sig] CRLF
//! trailer = name ":" value CRLF          (e.g. x-amz-checksum-crc32, x-amz-trailer-signature)
//! ```
//!
//! Signed variants (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]`) chain the signatures:
//! chunk n is signed over the signature of chunk n-1 (the seed is the request's own
//! signature) and the SHA-256 of its data, so chunks cannot be dropped, reordered or
//! altered; the trailer is signed over the last chunk's signature and the trailer lines.
//! A chunk's data is handed on before its signature is checked (the check needs all of
//! it); that is safe because nothing becomes visible before the whole body was accepted
//! (`engine::objects::body`), and a bad signature fails the upload.

use bytes::{Buf, Bytes};
use sha2::{Digest, Sha256};

use super::error::S3Error;
use super::sigv4;

const CHUNK_ALGORITHM: &str = "AWS4-HMAC-SHA256-PAYLOAD";
const TRAILER_ALGORITHM: &str = "AWS4-HMAC-SHA256-TRAILER";
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// A chunk header or trailer line longer than this is malformed (real ones are < 200).
const LINE_BYTES_MAX: usize = 4096;
/// Trailer lines accepted (a checksum and its signature in practice).
const TRAILERS_MAX: usize = 8;

/// What signed chunks are checked with: the request's signing key and scope, and the
/// signature the first chunk chains from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkSigning {
    pub key: [u8; 32],
    pub amz_date: String,
    pub scope: String,
    pub seed_signature: String,
}

#[derive(Debug)]
enum State {
    /// Reading a chunk header line.
    Header,
    /// Passing on the data of a chunk: bytes left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one.
    Trailer,
    Done,
}

pub struct ChunkedDecoder {
    state: State,
    line: Vec<u8>,
    signing: Option<ChunkSigning>,
    /// The signature the next chunk chains from.
    previous: String,
    /// The current chunk's claimed signature and the hash of its data so far.
    claimed: Option<String>,
    data_hash: Sha256,
    trailers: Vec<(String, String)>,
}

fn malformed(reason: &str) -> S3Error {
    S3Error::InvalidRequest { reason: format!("malformed aws-chunked body: {reason}") }
}

impl ChunkedDecoder {
    pub fn new(signing: Option<ChunkSigning>) -> ChunkedDecoder {
        let previous = signing.as_ref().map(|s| s.seed_signature.clone()).unwrap_or_default();
        ChunkedDecoder {
            state: State::Header,
            line: Vec::new(),
            signing,
            previous,
            claimed: None,
            data_hash: Sha256::new(),
            trailers: Vec::new(),
        }
    }

    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Trailer lines (lowercase name, value), signature line excluded; complete once done.
    pub fn trailers(&self) -> &[(String, String)] {
        &self.trailers
    }

    /// Consumes `input` until it yields decoded data (a zero-copy slice of `input`) or
    /// runs out (`None`: feed more). Bytes after the end of the body are an error.
    pub fn next(&mut self, input: &mut Bytes) -> Result<Option<Bytes>, S3Error> {
        while !input.is_empty() {
            match self.state {
                State::Data(left) => {
                    let n = (input.len() as u64).min(left) as usize;
                    let data = input.split_to(n);
                    self.data_hash.update(&data);
                    self.state = if left == n as u64 {
                        State::DataEnd
                    } else {
                        State::Data(left - n as u64)
                    };
                    return Ok(Some(data));
                }
                State::Done => return Err(malformed("data after the end")),
                _ => {
                    let Some(line) = self.take_line(input)? else { continue };
                    self.on_line(&line)?;
                }
            }
        }
        Ok(None)
    }

    /// Moves bytes into `self.line` up to a CRLF; the complete line, without it, if found.
    fn take_line(&mut self, input: &mut Bytes) -> Result<Option<String>, S3Error> {
        let end = input.iter().position(|&b| b == b'\n');
        let take = end.map_or(input.len(), |i| i + 1);
        if self.line.len() + take > LINE_BYTES_MAX {
            return Err(malformed("line too long"));
        }
        self.line.extend_from_slice(&input[..take]);
        input.advance(take);
        if end.is_none() {
            return Ok(None);
        }
        let line = std::mem::take(&mut self.line);
        let line = line.strip_suffix(b"\r\n").ok_or_else(|| malformed("line not ended by CRLF"))?;
        String::from_utf8(line.to_vec()).map(Some).map_err(|_| malformed("line not UTF-8"))
    }

    fn on_line(&mut self, line: &str) -> Result<(), S3Error> {
        match self.state {
            State::Header => self.on_header(line),
            State::DataEnd if line.is_empty() => {
                self.check_chunk_signature()?;
                self.state = State::Header;
                Ok(())
            }
            State::DataEnd => Err(malformed("chunk longer than its size")),
            State::Trailer if line.is_empty() => {
                self.check_trailer_signature()?;
                self.state = State::Done;
                Ok(())
            }
            State::Trailer => {
                let (name, value) = line.split_once(':').ok_or_else(|| malformed("bad trailer"))?;
                if self.trailers.len() >= TRAILERS_MAX {
                    return Err(malformed("too many trailers"));
                }
                let name = name.trim().to_ascii_lowercase();
                self.trailers.push((name, value.trim().to_string()));
                Ok(())
            }
            State::Data(_) | State::Done => unreachable!("lines are read in header states only"),
        }
    }

    fn on_header(&mut self, line: &str) -> Result<(), S3Error> {
        let (size, extension) = line.split_once(';').unwrap_or((line, ""));
        let size = size.trim();
        if size.is_empty() || size.len() > 16 {
            return Err(malformed("bad chunk size"));
        }
        let size = u64::from_str_radix(size, 16).map_err(|_| malformed("bad chunk size"))?;
        self.claimed = match extension.trim().strip_prefix("chunk-signature=") {
            Some(sig) => Some(sig.to_string()),
            None if extension.trim().is_empty() => None,
            None => return Err(malformed("unknown chunk extension")),
        };
        if self.signing.is_some() && self.claimed.is_none() {
            return Err(S3Error::SignatureDoesNotMatch);
        }
        self.data_hash = Sha256::new();
        if size == 0 {
            self.check_chunk_signature()?;
            self.state = State::Trailer;
        } else {
            self.state = State::Data(size);
        }
        Ok(())
    }

    /// The chunk just read must carry the signature chained from the previous one.
    fn check_chunk_signature(&mut self) -> Result<(), S3Error> {
        let Some(signing) = &self.signing else { return Ok(()) };
        let claimed = self.claimed.take().ok_or(S3Error::SignatureDoesNotMatch)?;
        let data_hash = hex::encode(std::mem::take(&mut self.data_hash).finalize());
        let sts = format!(
            "{CHUNK_ALGORITHM}\n{}\n{}\n{}\n{EMPTY_SHA256}\n{data_hash}",
            signing.amz_date, signing.scope, self.previous
        );
        if !sigv4::signature_matches(&signing.key, &sts, &claimed) {
            return Err(S3Error::SignatureDoesNotMatch);
        }
        self.previous = claimed;
        Ok(())
    }

    /// With signed chunks, trailers must end with `x-amz-trailer-signature` over them.
    fn check_trailer_signature(&mut self) -> Result<(), S3Error> {
        let signature = self.trailers.iter().position(|(n, _)| n == "x-amz-trailer-signature");
        let claimed = signature.map(|i| self.trailers.remove(i).1);
        let Some(signing) = &self.signing else { return Ok(()) };
        if self.trailers.is_empty() && claimed.is_none() {
            return Ok(());
        }
        let claimed = claimed.ok_or(S3Error::SignatureDoesNotMatch)?;
        let canonical: String = self.trailers.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
        let sts = format!(
            "{TRAILER_ALGORITHM}\n{}\n{}\n{}\n{}",
            signing.amz_date,
            signing.scope,
            self.previous,
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        if !sigv4::signature_matches(&signing.key, &sts, &claimed) {
            return Err(S3Error::SignatureDoesNotMatch);
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "chunked_tests.rs"]
mod tests;
