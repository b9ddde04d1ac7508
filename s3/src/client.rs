//! A minimal S3 client for Hangar's own tools (the benchmark, the Jepsen harness, the
//! simulator's workload): path-style requests, SigV4 in the `Authorization` header, bodies
//! sent as `UNSIGNED-PAYLOAD`. The signing arithmetic is the server's own
//! (`s3api::sigv4`), so client and server agree by construction.
//!
//! `Connection` is one keep-alive connection with `TCP_NODELAY`, reopened after any error:
//! a connection per request would measure connect() and, at thousands of requests per
//! second, run out of ports. Callers that must tell "surely did not happen" from "may have
//! happened" get `CallError::NotSent` for an error before the request left the client
//! (connect refused, no route) and `CallError::Unknown` for anything later.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, HOST, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::s3api::sigv4::{self, CanonicalInput, UNSIGNED_PAYLOAD};
use crate::s3api::time::format_iso8601;

/// Access key, secret and region.
#[derive(Debug, Clone)]
pub struct Creds {
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
}

/// What came back.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

/// Why a call has no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The request never left the client: it certainly had no effect.
    NotSent(String),
    /// Sent, but no complete answer: it may or may not have taken effect.
    Unknown(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::NotSent(e) => write!(f, "not sent: {e}"),
            CallError::Unknown(e) => write!(f, "no answer: {e}"),
        }
    }
}

/// One request's parts.
pub struct Call<'a> {
    pub method: Method,
    /// Already percent-encoded path, e.g. `/bucket/key`.
    pub path: &'a str,
    /// Query parameters, unencoded.
    pub query: &'a [(String, String)],
    pub body: Bytes,
}

pub struct Connection {
    /// "host:port".
    addr: String,
    creds: Creds,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Connection {
    pub fn new(addr: String, creds: Creds) -> Self {
        Connection { addr, creds, sender: None }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    async fn connect(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, CallError> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let not_sent = |what: &str, e: &dyn std::fmt::Display| {
                CallError::NotSent(format!("{what} {}: {e}", self.addr))
            };
            let stream =
                TcpStream::connect(&self.addr).await.map_err(|e| not_sent("connect to", &e))?;
            // Small requests must not wait for Nagle + delayed ACK (40 ms stalls).
            stream.set_nodelay(true).map_err(|e| not_sent("TCP_NODELAY on", &e))?;
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| not_sent("HTTP handshake with", &e))?;
            tokio::spawn(conn);
            self.sender = Some(sender);
        }
        Ok(self.sender.as_mut().expect("set just above"))
    }

    /// Sends one request and reads the whole answer.
    pub async fn send(&mut self, call: Call<'_>) -> Result<Answer, CallError> {
        self.send_with_headers(call, &[]).await
    }

    /// `send` with `extra` headers (e.g. `if-match`), sent unsigned: SigV4 signs only the
    /// headers it lists, and the server checks only those.
    pub async fn send_with_headers(
        &mut self,
        call: Call<'_>,
        extra: &[(HeaderName, HeaderValue)],
    ) -> Result<Answer, CallError> {
        let uri = if call.query.is_empty() {
            call.path.to_string()
        } else {
            format!("{}?{}", call.path, sigv4::canonical_query(call.query))
        };
        let mut headers = HeaderMap::new();
        sign(&mut headers, &call.method, call.path, call.query, &self.addr, &self.creds, now_ms());
        for (name, value) in extra {
            headers.insert(name.clone(), value.clone());
        }
        let mut request = Request::new(Full::new(call.body));
        *request.method_mut() = call.method;
        *request.uri_mut() =
            uri.parse().map_err(|e| CallError::NotSent(format!("bad request URI {uri}: {e}")))?;
        *request.headers_mut() = headers;
        let result = async {
            let sender = self.connect().await?;
            sender.ready().await.map_err(|e| CallError::NotSent(format!("connection: {e}")))?;
            let unknown = |e: hyper::Error| CallError::Unknown(format!("request: {e}"));
            let response = sender.send_request(request).await.map_err(unknown)?;
            let status = response.status().as_u16();
            let body = response.into_body().collect().await.map_err(unknown)?.to_bytes();
            Ok(Answer { status, body })
        }
        .await;
        if result.is_err() {
            self.sender = None;
        }
        result
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// `20130524T000000Z` for a wall-clock time in ms.
pub fn amz_date(now_ms: u64) -> String {
    let iso = format_iso8601(now_ms);
    let mut out: String = iso[..19].chars().filter(|c| !matches!(c, '-' | ':')).collect();
    out.push('Z');
    out
}

/// Adds `host`, `x-amz-date`, `x-amz-content-sha256` (UNSIGNED-PAYLOAD) and the SigV4
/// `authorization` header for a request of `method` on `raw_path` (percent-encoded) with
/// `query` (unencoded), sent to `host` at wall-clock time `now_ms`.
pub fn sign(
    headers: &mut HeaderMap,
    method: &Method,
    raw_path: &str,
    query: &[(String, String)],
    host: &str,
    creds: &Creds,
    now_ms: u64,
) {
    let date = amz_date(now_ms);
    let value = |s: &str| HeaderValue::from_str(s).expect("hosts and dates are visible ASCII");
    headers.insert(HOST, value(host));
    headers.insert(HeaderName::from_static("x-amz-date"), value(&date));
    headers.insert(HeaderName::from_static("x-amz-content-sha256"), value(UNSIGNED_PAYLOAD));
    let signed: Vec<String> =
        ["host", "x-amz-content-sha256", "x-amz-date"].iter().map(|s| s.to_string()).collect();
    let input = CanonicalInput {
        method: method.as_str(),
        raw_path,
        query,
        headers,
        signed_headers: &signed,
        payload_hash: UNSIGNED_PAYLOAD,
    };
    let creq = sigv4::canonical_request(&input).expect("client paths have no bad escapes");
    let day = &date[..8];
    let scope = sigv4::scope(day, &creds.region);
    let sts = sigv4::string_to_sign(&date, &scope, &creq);
    let key = crate::s3api::signing_keys::signing_key(&creds.secret_key, day, &creds.region);
    let authorization = format!(
        "{} Credential={}/{scope}, SignedHeaders={}, Signature={}",
        sigv4::ALGORITHM,
        creds.access_key,
        signed.join(";"),
        sigv4::signature_hex(&key, &sts)
    );
    headers.insert(AUTHORIZATION, value(&authorization));
}

/// The `<Code>` of an S3 error document, if the body is one.
pub fn error_code(body: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<Code>")? + "<Code>".len();
    let len = text[start..].find("</Code>")?;
    Some(&text[start..start + len])
}
