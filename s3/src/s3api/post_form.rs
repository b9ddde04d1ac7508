//! A streaming `multipart/form-data` reader for PostObject (browser form uploads).
//!
//! The fields before `file` are small and read whole, under `FIELDS_BYTES_MAX` in total (a
//! client cannot make the server buffer an unbounded preamble); the `file` part is then
//! handed out piece by piece as it arrives, so an upload of any size uses bounded memory.
//! Fields after `file` are ignored, as S3 ignores them.
//!
//! Trick: the reader starts with `\r\n` in its buffer, so the first delimiter has the same
//! `\r\n--boundary` shape as every later one (RFC 2046 puts the CRLF before a delimiter
//! into the delimiter).

use bytes::{Buf, Bytes, BytesMut};
use hangar_engine::seam::BoxFuture;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::error::S3Error;
use super::request_body::BODY_IDLE_TIMEOUT_MS;

/// All form fields before `file` together (part headers included), as S3's own limit.
pub const FIELDS_BYTES_MAX: usize = 20 * 1024;
/// RFC 2046: a boundary is 1 to 70 characters.
const BOUNDARY_BYTES_MAX: usize = 70;

/// Where the form's bytes come from: the HTTP body, or pieces given in a test.
pub trait ChunkSource: Send {
    fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Bytes>, S3Error>>;
}

/// The request body; a client silent for `BODY_IDLE_TIMEOUT_MS` is dropped.
pub struct IncomingSource(pub Incoming);

impl ChunkSource for IncomingSource {
    fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Bytes>, S3Error>> {
        Box::pin(async move {
            loop {
                let idle = std::time::Duration::from_millis(BODY_IDLE_TIMEOUT_MS);
                let frame = tokio::time::timeout(idle, self.0.frame());
                match frame.await.map_err(|_| S3Error::RequestTimeout)? {
                    None => return Ok(None),
                    Some(Err(_)) => return Err(S3Error::IncompleteBody),
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            return Ok(Some(data));
                        }
                    }
                }
            }
        })
    }
}

/// Pieces in order (tests, and bodies already in memory).
impl ChunkSource for std::collections::VecDeque<Bytes> {
    fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Bytes>, S3Error>> {
        Box::pin(async move { Ok(self.pop_front()) })
    }
}

/// The fields before `file`, and what the `file` part said about itself.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FormHead {
    /// Names lower-cased (S3 compares form field names case-insensitively), in form order.
    pub fields: Vec<(String, String)>,
    /// The `filename` of the `file` part (what `${filename}` in the key stands for).
    pub file_name: Option<String>,
}

pub fn malformed(reason: &str) -> S3Error {
    S3Error::Post { code: "MalformedPOSTRequest", message: reason.to_string() }
}

/// The boundary of a `multipart/form-data` content type, or `None` if it is not one.
pub fn boundary(content_type: &str) -> Option<Result<String, S3Error>> {
    let mut params = content_type.split(';');
    let kind = params.next()?.trim();
    if !kind.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    let value = params.find_map(|p| {
        let (name, value) = p.split_once('=')?;
        name.trim().eq_ignore_ascii_case("boundary").then(|| value.trim().trim_matches('"'))
    });
    Some(match value {
        Some(b) if !b.is_empty() && b.len() <= BOUNDARY_BYTES_MAX => Ok(b.to_string()),
        _ => Err(malformed("the multipart/form-data content type has no valid boundary")),
    })
}

pub struct MultipartForm<S> {
    source: S,
    /// `\r\n--boundary`.
    delimiter: Vec<u8>,
    buf: BytesMut,
    /// Bytes of the form consumed before the file part.
    head_bytes: usize,
    file_done: bool,
}

fn fields_too_large() -> S3Error {
    S3Error::Post {
        code: "MaxPostPreDataLengthExceeded",
        message: "Your POST request fields preceding the upload file were too large.".into(),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let first = needle[0];
    let last_start = haystack.len().checked_sub(needle.len())?;
    (0..=last_start).find(|&i| haystack[i] == first && haystack[i..].starts_with(needle))
}

/// `name` and `filename` of a part's `Content-Disposition: form-data; ...` header.
fn disposition(headers: &str) -> Result<(String, Option<String>), S3Error> {
    let line = headers
        .split("\r\n")
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.trim().eq_ignore_ascii_case("content-disposition").then_some(value)
        })
        .ok_or_else(|| malformed("a form part has no Content-Disposition"))?;
    let (mut name, mut file_name) = (None, None);
    for param in line.split(';').skip(1) {
        let Some((key, value)) = param.split_once('=') else { continue };
        let value = value.trim().trim_matches('"').to_string();
        match key.trim().to_ascii_lowercase().as_str() {
            "name" => name = Some(value),
            "filename" => file_name = Some(value),
            _ => {}
        }
    }
    let name = name.ok_or_else(|| malformed("a form part has no name"))?;
    Ok((name, file_name))
}

impl<S: ChunkSource> MultipartForm<S> {
    pub fn new(source: S, boundary: &str) -> MultipartForm<S> {
        let mut buf = BytesMut::with_capacity(8 * 1024);
        buf.extend_from_slice(b"\r\n");
        let delimiter = format!("\r\n--{boundary}").into_bytes();
        MultipartForm { source, delimiter, buf, head_bytes: 0, file_done: false }
    }

    /// Reads one more piece into the buffer; `false` at the end of the body.
    async fn fill(&mut self) -> Result<bool, S3Error> {
        match self.source.next_chunk().await? {
            Some(data) => {
                self.buf.extend_from_slice(&data);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Before the file: more data, unless the fields already exceed their limit.
    async fn fill_head(&mut self) -> Result<(), S3Error> {
        if self.head_bytes + self.buf.len() > FIELDS_BYTES_MAX + self.delimiter.len() + 4 {
            return Err(fields_too_large());
        }
        if !self.fill().await? {
            return Err(malformed("the form ended early"));
        }
        Ok(())
    }

    fn consume(&mut self, n: usize) -> Bytes {
        self.head_bytes += n;
        self.buf.split_to(n).freeze()
    }

    /// Up to the next occurrence of `needle`, which is consumed too.
    async fn take_until(&mut self, needle: &[u8]) -> Result<Bytes, S3Error> {
        loop {
            if let Some(at) = find(&self.buf, needle) {
                let data = self.consume(at);
                self.consume(needle.len());
                if self.head_bytes > FIELDS_BYTES_MAX + self.delimiter.len() + 4 {
                    return Err(fields_too_large());
                }
                return Ok(data);
            }
            self.fill_head().await?;
        }
    }

    /// The fields before `file`; the form is then positioned at the file's first byte.
    /// IncorrectNumberOfFilesInPostRequest if the form ends without a `file` part.
    pub async fn read_head(&mut self) -> Result<FormHead, S3Error> {
        let mut head = FormHead::default();
        let delimiter = self.delimiter.clone();
        // Anything before the first delimiter is preamble, ignored.
        self.take_until(&delimiter).await?;
        loop {
            while self.buf.len() < 2 {
                self.fill_head().await?;
            }
            if self.buf.starts_with(b"--") {
                return Err(S3Error::Post {
                    code: "IncorrectNumberOfFilesInPostRequest",
                    message: "POST requires exactly one file upload per request.".into(),
                });
            }
            let headers = self.take_until(b"\r\n\r\n").await?;
            // The CRLF ending the delimiter line starts `headers`; a part without headers
            // has none (it then fails for want of a Content-Disposition).
            let headers = String::from_utf8_lossy(&headers).into_owned();
            let (name, file_name) = disposition(&headers)?;
            if name.eq_ignore_ascii_case("file") {
                head.file_name = Some(file_name.unwrap_or_default());
                return Ok(head);
            }
            let value = self.take_until(&delimiter).await?;
            let value = String::from_utf8(value.to_vec())
                .map_err(|_| malformed(&format!("the form field '{name}' is not UTF-8")))?;
            head.fields.push((name.to_ascii_lowercase(), value));
        }
    }

    /// Reads and drops the rest of the file, up to `max_bytes`: a client refused mid-upload
    /// (EntityTooLarge) is still sending, and would see a broken pipe instead of the
    /// answer if the connection closed under it. Beyond `max_bytes` it is cut off anyway.
    pub async fn skip_file(&mut self, max_bytes: u64) {
        let mut skipped = 0u64;
        while let Ok(Some(piece)) = self.next_file_chunk().await {
            skipped += piece.len() as u64;
            if skipped > max_bytes {
                return;
            }
        }
    }

    /// The next piece of the file, `None` after its last byte. A body that ends before
    /// the file's closing delimiter is IncompleteBody.
    pub async fn next_file_chunk(&mut self) -> Result<Option<Bytes>, S3Error> {
        loop {
            if self.file_done {
                return Ok(None);
            }
            if let Some(at) = find(&self.buf, &self.delimiter) {
                let data = self.buf.split_to(at).freeze();
                self.buf.advance(self.delimiter.len());
                self.file_done = true;
                if !data.is_empty() {
                    return Ok(Some(data));
                }
                return Ok(None);
            }
            // The tail may be the start of a delimiter split across pieces: keep it.
            let safe = self.buf.len().saturating_sub(self.delimiter.len() - 1);
            if safe > 0 {
                return Ok(Some(self.buf.split_to(safe).freeze()));
            }
            if !self.fill().await? {
                return Err(S3Error::IncompleteBody);
            }
        }
    }
}

#[cfg(test)]
#[path = "post_form_tests.rs"]
mod tests;
