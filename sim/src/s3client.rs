//! A minimal S3 client for the simulator: path-style requests over the seam's `Net`
//! (turmoil TCP in a run), hyper 1's `client::conn::http1`, SigV4 in the `Authorization`
//! header with the body sent as `UNSIGNED-PAYLOAD`.
//!
//! Why one connection per request: a partition can wedge an established stream forever.
//! A fresh connection per request, driven inside the request's own future under one
//! deadline, turns every fault into a timeout of that request alone, leaks no task when the
//! deadline fires, and needs no pool. A connect costs one simulated round trip.
//!
//! Signing is Hangar's shared client signer (`hangar_s3::client::sign`, over the server's
//! own SigV4 arithmetic); the tests
//! below run the client's signatures through the server's verifier (`auth::authenticate`),
//! so a disagreement on a canonical form fails here rather than as a run full of 403s.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hangar_engine::seam::{Clock, Net};
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;

/// An access key and the region it signs for (the shared client's type).
pub use hangar_s3::client::{Creds as S3Creds, amz_date};

/// What the server answered.
#[derive(Debug, Clone)]
pub struct S3Response {
    pub status: u16,
    pub body: Bytes,
    /// The `ETag` header, if the answer had one.
    pub etag: Option<String>,
}

impl S3Response {
    /// The `<Code>` of an S3 error document, if the body is one.
    pub fn error_code(&self) -> Option<&str> {
        hangar_s3::client::error_code(&self.body)
    }
}

/// Why no answer came back.
#[derive(Debug)]
pub enum S3ClientError {
    Connect { addr: String, source: std::io::Error },
    Http { addr: String, source: hyper::Error },
    Timeout { addr: String, timeout_ms: u64 },
}

impl std::fmt::Display for S3ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            S3ClientError::Connect { addr, source } => write!(f, "connect {addr}: {source}"),
            S3ClientError::Http { addr, source } => write!(f, "http {addr}: {source}"),
            S3ClientError::Timeout { addr, timeout_ms } => {
                write!(f, "{addr}: no answer within {timeout_ms} ms")
            }
        }
    }
}

impl std::error::Error for S3ClientError {}

pub struct S3Client {
    net: Arc<dyn Net>,
    /// The client's wall clock, for `x-amz-date` (the server allows 15 minutes of skew).
    clock: Arc<dyn Clock>,
    creds: S3Creds,
    timeout_ms: u64,
}

/// Adds the SigV4 headers (`hangar_s3::client::sign`) for a request without a query.
pub fn sign(
    headers: &mut HeaderMap,
    method: &Method,
    raw_path: &str,
    host: &str,
    creds: &S3Creds,
    now_ms: u64,
) {
    hangar_s3::client::sign(headers, method, raw_path, &[], host, creds, now_ms);
}

/// The request URI: the path, then the query (unencoded pairs) in canonical form, which is
/// also the form SigV4 signs.
fn request_uri(raw_path: &str, query: &[(String, String)]) -> String {
    if query.is_empty() {
        return raw_path.to_string();
    }
    format!("{raw_path}?{}", hangar_s3::s3api::sigv4::canonical_query(query))
}

impl S3Client {
    pub fn new(net: Arc<dyn Net>, clock: Arc<dyn Clock>, creds: S3Creds, timeout_ms: u64) -> Self {
        S3Client { net, clock, creds, timeout_ms }
    }

    /// Sends one request to `addr` ("host:port") and reads the whole answer, all within
    /// the client's timeout.
    pub async fn request(
        &self,
        addr: &str,
        method: Method,
        raw_path: &str,
        body: Bytes,
    ) -> Result<S3Response, S3ClientError> {
        self.request_with(addr, method, raw_path, body, None).await
    }

    /// As `request`, without a body and with a query (unencoded name/value pairs), e.g. a
    /// ListObjectsV2 page.
    pub async fn request_query(
        &self,
        addr: &str,
        method: Method,
        raw_path: &str,
        query: &[(String, String)],
    ) -> Result<S3Response, S3ClientError> {
        self.request_query_body(addr, method, raw_path, query, Bytes::new()).await
    }

    /// As `request`, with a query and a body: the multipart calls (`?uploads`,
    /// `?partNumber=N&uploadId=U` with the part, `?uploadId=U` with the part list). The
    /// query is signed as sent (`request_uri`); the body, as every body here, is not.
    pub async fn request_query_body(
        &self,
        addr: &str,
        method: Method,
        raw_path: &str,
        query: &[(String, String)],
        body: Bytes,
    ) -> Result<S3Response, S3ClientError> {
        let exchange = self.exchange(addr, method, raw_path, query, body, None);
        self.within_timeout(addr, exchange).await
    }

    /// As `request`, with one more header (a condition such as `If-Match`), sent unsigned
    /// as SDKs may: SigV4 covers only the headers it lists.
    pub async fn request_with(
        &self,
        addr: &str,
        method: Method,
        raw_path: &str,
        body: Bytes,
        header: Option<(HeaderName, HeaderValue)>,
    ) -> Result<S3Response, S3ClientError> {
        let exchange = self.exchange(addr, method, raw_path, &[], body, header);
        self.within_timeout(addr, exchange).await
    }

    async fn within_timeout(
        &self,
        addr: &str,
        exchange: impl Future<Output = Result<S3Response, S3ClientError>>,
    ) -> Result<S3Response, S3ClientError> {
        match tokio::time::timeout(Duration::from_millis(self.timeout_ms), exchange).await {
            Ok(result) => result,
            Err(_) => {
                Err(S3ClientError::Timeout { addr: addr.into(), timeout_ms: self.timeout_ms })
            }
        }
    }

    async fn exchange(
        &self,
        addr: &str,
        method: Method,
        raw_path: &str,
        query: &[(String, String)],
        body: Bytes,
        header: Option<(HeaderName, HeaderValue)>,
    ) -> Result<S3Response, S3ClientError> {
        let http = |source| S3ClientError::Http { addr: addr.into(), source };
        let stream = self
            .net
            .connect(addr)
            .await
            .map_err(|source| S3ClientError::Connect { addr: addr.into(), source })?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(http)?;
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = method.clone();
        let uri = request_uri(raw_path, query);
        *request.uri_mut() = uri.parse().expect("client paths and queries are valid URIs");
        let now_ms = self.clock.now_ms();
        let headers = request.headers_mut();
        hangar_s3::client::sign(headers, &method, raw_path, query, addr, &self.creds, now_ms);
        if let Some((name, value)) = header {
            request.headers_mut().insert(name, value);
        }
        // The connection is driven here, not in a spawned task: when the deadline drops
        // this future, the connection goes with it. Dropping `sender` at the end of the
        // exchange lets `conn` finish.
        let exchange = async move {
            let response = sender.send_request(request).await?;
            let status = response.status().as_u16();
            let etag = response.headers().get(hyper::header::ETAG);
            let etag = etag.and_then(|v| v.to_str().ok()).map(str::to_string);
            let body = response.into_body().collect().await?.to_bytes();
            drop(sender);
            Ok::<_, hyper::Error>(S3Response { status, body, etag })
        };
        let (answer, _closed) = tokio::join!(exchange, conn);
        answer.map_err(http)
    }
}

/// For tests: the real S3 frontend (`serve`, over a memory backend, with one key
/// `GKTEST` / `right`) as host "server" on port 3900 of a turmoil simulation.
#[cfg(test)]
pub(crate) fn serve_memory_frontend(sim: &mut turmoil::Sim<'_>, region: &str) {
    use std::collections::BTreeMap;

    use hangar_engine::seam::Clock;
    use hangar_s3::s3api::{MemoryBackend, S3State, WallClock, serve};

    use crate::world::{SimClock, SimNet};

    let region = region.to_string();
    sim.host("server", move || {
        let region = region.clone();
        async move {
            let clock: Arc<dyn Clock> =
                Arc::new(SimClock { skew_ms: Default::default(), drift: Default::default() });
            let wall: WallClock = Arc::new(move || clock.now_ms());
            let keys = BTreeMap::from([("GKTEST".to_string(), "right".to_string())]);
            let backend = Arc::new(MemoryBackend::new(wall.clone()));
            let state = Arc::new(S3State::new(backend, region, keys, wall));
            serve(SimNet.listen("0.0.0.0:3900").await?, state).await;
            Ok(())
        }
    });
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use hangar_s3::s3api::S3Error;
    use hangar_s3::s3api::auth::{AuthConfig, PayloadHash, RequestView, authenticate};

    use super::*;
    use crate::world::{EPOCH_MS, SimClock, SimNet};

    const REGION: &str = "hangar-sim";
    // 2024-01-02T03:04:05Z
    const NOW_MS: u64 = 1_704_164_645_000;

    fn creds(secret: &str) -> S3Creds {
        S3Creds { access_key: "GKTEST".into(), secret_key: secret.into(), region: REGION.into() }
    }

    fn verify(method: Method, path: &str, headers: &HeaderMap, now_ms: u64) -> Result<(), S3Error> {
        let keys = BTreeMap::from([("GKTEST".to_string(), "right".to_string())]);
        let cfg = AuthConfig { region: REGION, keys: &keys, now_ms };
        let view = RequestView { method: method.as_str(), raw_path: path, query: &[], headers };
        let auth = authenticate(&view, &cfg)?;
        assert_eq!(auth.access_key, "GKTEST");
        assert_eq!(auth.payload, PayloadHash::Unsigned);
        Ok(())
    }

    #[test]
    fn amz_date_is_the_compact_iso_form() {
        assert_eq!(amz_date(NOW_MS), "20240102T030405Z");
        assert_eq!(amz_date(EPOCH_MS), "20260101T000000Z");
    }

    #[test]
    fn signed_requests_pass_the_servers_verifier() {
        for (method, path) in
            [(Method::PUT, "/sim"), (Method::PUT, "/sim/k3"), (Method::GET, "/sim/k0")]
        {
            let mut headers = HeaderMap::new();
            sign(&mut headers, &method, path, "n1:3900", &creds("right"), NOW_MS);
            assert_eq!(verify(method, path, &headers, NOW_MS + 1_000), Ok(()));
        }
    }

    #[test]
    fn wrong_secret_tampering_and_skew_are_refused() {
        let mut headers = HeaderMap::new();
        sign(&mut headers, &Method::DELETE, "/sim/k1", "n2:3900", &creds("wrong"), NOW_MS);
        let refused = verify(Method::DELETE, "/sim/k1", &headers, NOW_MS);
        assert_eq!(refused, Err(S3Error::SignatureDoesNotMatch));

        let mut headers = HeaderMap::new();
        sign(&mut headers, &Method::DELETE, "/sim/k1", "n2:3900", &creds("right"), NOW_MS);
        let other_key = verify(Method::DELETE, "/sim/k2", &headers, NOW_MS);
        assert_eq!(other_key, Err(S3Error::SignatureDoesNotMatch));
        let as_get = verify(Method::GET, "/sim/k1", &headers, NOW_MS);
        assert_eq!(as_get, Err(S3Error::SignatureDoesNotMatch));
        let late = verify(Method::DELETE, "/sim/k1", &headers, NOW_MS + 16 * 60 * 1000);
        assert_eq!(late, Err(S3Error::RequestTimeTooSkewed));
    }

    /// The real frontend (`serve`, over a memory backend) and this client over turmoil TCP.
    #[test]
    fn put_get_delete_through_serve_over_simulated_tcp() {
        let mut sim = turmoil::Builder::new().build();
        crate::s3client::serve_memory_frontend(&mut sim, REGION);
        sim.client("client", async {
            let clock =
                Arc::new(SimClock { skew_ms: Default::default(), drift: Default::default() });
            let client = S3Client::new(Arc::new(SimNet), clock, creds("right"), 5_000);
            let call = |method, path, body: &'static [u8]| {
                client.request("server:3900", method, path, Bytes::from_static(body))
            };
            assert_eq!(call(Method::PUT, "/sim", b"").await?.status, 200);
            assert_eq!(call(Method::PUT, "/sim/k1", b"hello").await?.status, 200);
            let got = call(Method::GET, "/sim/k1", b"").await?;
            assert_eq!((got.status, &got.body[..]), (200, &b"hello"[..]));
            assert_eq!(call(Method::DELETE, "/sim/k1", b"").await?.status, 204);
            let gone = call(Method::GET, "/sim/k1", b"").await?;
            assert_eq!((gone.status, gone.error_code()), (404, Some("NoSuchKey")));
            let wrong = S3Client::new(Arc::new(SimNet), client.clock.clone(), creds("x"), 5_000);
            let refused =
                wrong.request("server:3900", Method::GET, "/sim/k1", Bytes::new()).await?;
            assert_eq!(
                (refused.status, refused.error_code()),
                (403, Some("SignatureDoesNotMatch"))
            );
            Ok(())
        });
        sim.run().unwrap();
    }
}
