//! The S3 HTTP frontend: hyper 1 HTTP/1.1 server, path- and virtual-host-style
//! addressing, SigV4.
//!
//! A request goes through four steps, each in its own module:
//! 1. `auth` — who signed it (header or presigned URL); anonymous requests are refused.
//!    Authentication comes before routing so unauthenticated callers learn nothing about
//!    which operations or buckets exist. Two exceptions are answered before it, as S3
//!    does: CORS preflights (`OPTIONS`, `cors`), which browsers send without credentials,
//!    and browser form uploads (`POST` multipart/form-data, `post_object`), which carry a
//!    signed policy instead of a signed request.
//! 2. `router` — which operation (a plain `match` on method, path and sub-resource).
//! 3. body — object bodies stream (`request_body` into the backend, `response_body` out
//!    of it, memory bounded whatever the size; `object_bytes_max` caps an upload); every
//!    other body is a small document read whole and checked against the payload hash.
//! 4. `bucket` / `object` / `list` — the operation, over the `ObjectBackend` seam.
//!
//! Every response, errors included, carries `x-amz-request-id`; errors are S3 XML
//! documents (`error.rs`).

pub mod alias;
pub mod auth;
pub mod backend;
pub mod bucket;
pub mod checksum;
pub mod checksum_combine;
pub mod checksum_multipart;
pub mod chunked;
pub mod copy;
pub mod cors;
pub mod delete_objects;
pub mod encoding;
pub mod error;
pub mod lifecycle;
pub mod limits;
pub mod list;
pub mod memory;
pub mod multipart;
pub mod object;
pub mod object_attributes;
pub mod part_numbers;
pub mod post_form;
pub mod post_object;
pub mod post_policy;
pub mod request_body;
pub mod response_body;
pub mod router;
pub mod signing_keys;
pub mod sigv4;
pub mod time;
pub mod versions;
pub mod vhost;
pub mod web;
pub mod website;
pub mod website_routing;
pub mod write_deadline;
pub mod xml;
pub mod xml_tree;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hangar_engine::seam::Listener;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::Semaphore;

pub use backend::{
    BackendError, BoxFuture, BucketInfo, ObjectBackend, ObjectInfo, ObjectMeta, Versioning,
};
pub use error::S3Error;
pub use memory::MemoryBackend;

use crate::access::{self, KeyLookup, StaticKeys};
use crate::metrics::RequestObserver;
use auth::{AuthConfig, RequestView};
use request_body::RequestBody;
use response_body::ResponseBody;
use router::Endpoint;
use write_deadline::WriteDeadline;

/// Wall-clock milliseconds since the Unix epoch, injected (simulation controls time).
pub type WallClock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Every other request body (CreateBucketConfiguration, VersioningConfiguration,
/// CompleteMultipartUpload) is a small document.
pub const CONTROL_BODY_BYTES_MAX: u64 = 1024 * 1024;
/// Open client connections; further clients wait in the listen backlog.
pub const CONNECTIONS_MAX: usize = 1024;
/// A client that has not sent a complete request head by then is disconnected.
pub const HEADER_READ_TIMEOUT_MS: u64 = 30_000;
/// Back-off after a failed accept (e.g. out of file descriptors) before trying again.
const ACCEPT_RETRY_DELAY_MS: u64 = 100;

pub struct S3State {
    pub backend: Arc<dyn ObjectBackend>,
    /// The one region this cluster answers for; signatures must be scoped to it.
    pub region: String,
    /// Access keys and their permissions (`crate::access`).
    pub keys: Arc<dyn KeyLookup>,
    /// Told about every answered request (metrics); none in tests and the simulator.
    pub observer: Option<Arc<dyn RequestObserver>>,
    pub clock: WallClock,
    /// The largest object one PUT or part may carry (EntityTooLarge above it).
    pub object_bytes_max: u64,
    /// Virtual-host-style addressing: `Host: bucket.<root_domain>` (see `vhost`).
    pub root_domain: Option<String>,
    /// Request ids are `<start second><sequence>`: unique per process, distinct across
    /// restarts, and reproducible in a simulation (no randomness needed).
    request_id_prefix: u32,
    request_seq: AtomicU64,
}

impl S3State {
    pub fn new(
        backend: Arc<dyn ObjectBackend>,
        region: String,
        keys: BTreeMap<String, String>,
        clock: WallClock,
    ) -> S3State {
        let request_id_prefix = (clock() / 1000) as u32;
        let keys: Arc<dyn KeyLookup> = Arc::new(StaticKeys(keys));
        let request_seq = AtomicU64::new(0);
        let object_bytes_max = request_body::OBJECT_BYTES_MAX_DEFAULT;
        S3State {
            backend,
            region,
            keys,
            observer: None,
            clock,
            object_bytes_max,
            root_domain: None,
            request_id_prefix,
            request_seq,
        }
    }

    /// Refuses objects (and parts) larger than `bytes`.
    pub fn with_object_bytes_max(mut self, bytes: u64) -> S3State {
        self.object_bytes_max = bytes;
        self
    }

    /// Serves virtual-host-style requests under `domain` (`[s3_api] root_domain`).
    pub fn with_root_domain(mut self, domain: Option<&str>) -> S3State {
        self.root_domain = domain.map(vhost::normalise_root_domain).filter(|d| !d.is_empty());
        self
    }

    /// Looks keys up in `keys` instead of the fixed map given to `new`.
    pub fn with_keys(mut self, keys: Arc<dyn KeyLookup>) -> S3State {
        self.keys = keys;
        self
    }

    pub fn with_observer(mut self, observer: Arc<dyn RequestObserver>) -> S3State {
        self.observer = Some(observer);
        self
    }

    fn next_request_id(&self) -> String {
        let seq = self.request_seq.fetch_add(1, Ordering::Relaxed);
        format!("{:08X}{seq:08X}", self.request_id_prefix)
    }
}

/// Serves S3 on `listener` until the task is dropped. One task per connection; at most
/// `CONNECTIONS_MAX` at once.
///
/// The listener is the engine seam's, so the same frontend runs over tokio TCP in
/// production and over turmoil's simulated TCP in the simulator. Socket options are the
/// listener's business: the production one (`runtime::TokioListener`) sets TCP_NODELAY on
/// every accepted socket — without it small responses wait for the client's delayed ACK
/// (~40 ms). Every timer here (accept back-off, header read timeout) is `tokio::time`,
/// which the simulation controls.
pub async fn serve(listener: Box<dyn Listener>, state: Arc<S3State>) {
    serve_with(listener, move |req| handle(state.clone(), req)).await
}

/// The connection loop of `serve`, for any request handler (the website endpoint, `web`,
/// shares it): accept back-off, the connection bound, header and write timeouts.
pub(crate) async fn serve_with<H, F>(mut listener: Box<dyn Listener>, handler: H)
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = Result<Response<ResponseBody>, Infallible>> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    loop {
        let permit = slots.clone().acquire_owned().await.expect("the semaphore is never closed");
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(ACCEPT_RETRY_DELAY_MS)).await;
                continue;
            }
        };
        let handler = handler.clone();
        let write_stall = Duration::from_millis(write_deadline::WRITE_STALL_TIMEOUT_MS);
        tokio::spawn(async move {
            let service = service_fn(handler);
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_millis(HEADER_READ_TIMEOUT_MS))
                .serve_connection(TokioIo::new(WriteDeadline::new(stream, write_stall)), service);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop(permit);
        });
    }
}

async fn handle(
    state: Arc<S3State>,
    req: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    let request_id = state.next_request_id();
    let is_head = req.method() == Method::HEAD;
    let resource = req.uri().path().to_string();
    let method = req.method().clone();
    let started = tokio::time::Instant::now();
    let mut facts = RequestFacts { operation: "Unrouted", access_key: None };
    let cors_origin = (method != Method::OPTIONS).then(|| cors_target(&state, &req)).flatten();
    let mut resp = match process(&state, req, &mut facts).await {
        Ok(resp) => resp,
        Err(err) => {
            if err.status().is_server_error() {
                tracing::warn!(%request_id, %method, %resource, ?err, "request failed");
            } else {
                tracing::debug!(%request_id, %method, %resource, code = err.code(), "refused");
            }
            err.to_response(&resource, &request_id, is_head).map(ResponseBody::from)
        }
    };
    if let Some((bucket, origin)) = cors_origin {
        let bucket = alias::bucket_of(state.backend.as_ref(), bucket).await;
        let out = resp.headers_mut();
        cors::decorate(state.backend.as_ref(), &bucket, &origin, method.as_str(), out).await;
    }
    let id = HeaderValue::from_str(&request_id).expect("request ids are hex");
    resp.headers_mut().insert("x-amz-request-id", id);
    let (status, elapsed) = (resp.status().as_u16(), started.elapsed());
    let ms = elapsed.as_millis() as u64;
    let (operation, key) = (facts.operation, facts.access_key.as_deref().unwrap_or("-"));
    tracing::info!(
        target: "hangar::s3::request",
        %request_id, %method, %resource, operation, access_key = key, status, ms
    );
    if let Some(observer) = &state.observer {
        observer.request_done(operation, status, elapsed);
        let sent = hyper::body::Body::size_hint(resp.body()).exact().unwrap_or(0);
        observer.body_bytes(operation, 0, if is_head { 0 } else { sent });
    }
    Ok(resp)
}

/// What `process` learnt about a request, for the access log and the metrics.
struct RequestFacts {
    /// The router's name for it; "Unrouted" if refused before routing.
    operation: &'static str,
    /// The key that signed it, once authenticated.
    access_key: Option<String>,
}

async fn process(
    state: &S3State,
    req: Request<Incoming>,
    facts: &mut RequestFacts,
) -> Result<Response<ResponseBody>, S3Error> {
    let (parts, body) = req.into_parts();
    limits::check_headers(&parts.headers)?;
    let raw_path = parts.uri.path();
    let query = encoding::parse_query(parts.uri.query()).ok_or(S3Error::InvalidURI)?;
    // A CORS preflight carries no credentials (browsers never sign it).
    if parts.method == Method::OPTIONS {
        facts.operation = "PreflightCors";
        let bucket = request_bucket(state, &parts.headers, raw_path, parts.uri.authority())?;
        let bucket = bucket.ok_or(S3Error::NotImplemented { operation: "OPTIONS /".into() })?;
        let bucket = alias::bucket_of(state.backend.as_ref(), bucket).await;
        let answer = cors::preflight(state.backend.as_ref(), &bucket, &parts.headers).await;
        return answer.map(|r| r.map(ResponseBody::from));
    }
    // A browser form signs its policy, not the request: it authenticates itself.
    if post_object::is_form_upload(&parts.method, &query, &parts.headers) {
        facts.operation = "PostObject";
        let posted = post_object::post_object(state, &parts, body, &mut facts.access_key).await;
        return posted.map(|r| r.map(ResponseBody::from));
    }
    let view = RequestView {
        method: parts.method.as_str(),
        raw_path,
        query: &query,
        headers: &parts.headers,
    };
    // The claimed key's secret is looked up first; `auth` then checks the signature with it.
    let grant = match access::claimed_key_id(&parts.headers, &query) {
        Some(id) => state.keys.lookup(id).await?.map(|grant| (id.to_string(), grant)),
        None => None,
    };
    let keys: BTreeMap<String, String> =
        grant.iter().map(|(id, g)| (id.clone(), g.secret.clone())).collect();
    let cfg = AuthConfig { region: &state.region, keys: &keys, now_ms: (state.clock)() };
    let auth = auth::authenticate(&view, &cfg)?;
    // `auth` only knew the looked-up key, so it is the one that signed.
    let grant = grant
        .filter(|(id, _)| *id == auth.access_key)
        .map(|(_, g)| g)
        .ok_or_else(|| S3Error::InvalidAccessKeyId { access_key: auth.access_key.clone() })?;
    // Routing sees `/bucket/key` whichever the style; the signature was checked over the
    // path as sent.
    let host = parts.headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let host = host.or(parts.uri.authority().map(|a| a.as_str()));
    let bucket = state.root_domain.as_deref().zip(host);
    let bucket = bucket.and_then(|(domain, host)| vhost::bucket_from_host(host, domain));
    let route_path = vhost::routing_path(raw_path, bucket.as_deref());
    // An alias acts as its bucket from here on (`alias`).
    let (route_path, alias) = alias::resolve_path(state.backend.as_ref(), route_path).await?;
    let mut endpoint = router::route(&parts.method, &route_path, &query, &parts.headers)?;
    alias::check_endpoint(state.backend.as_ref(), &mut endpoint, alias.as_deref()).await?;
    (facts.operation, facts.access_key) = (endpoint.name(), Some(auth.access_key.clone()));
    tracing::debug!(operation = endpoint.name(), access_key = %auth.access_key, "request");
    let grant = access::check_confirmed(
        grant,
        &auth.access_key,
        &endpoint,
        state.backend.as_ref(),
        state.keys.as_ref(),
    )
    .await?;
    if let Endpoint::CopyObject { source, .. } | Endpoint::UploadPartCopy { source, .. } = &endpoint
    {
        // A copy reads its source: the key needs read access there too.
        let (bucket, key) = (source.bucket.clone(), source.key.clone());
        let read = Endpoint::GetObject { bucket, key, version_id: None, part_number: None };
        access::check(&grant, &read, state.backend.as_ref()).await?;
    }
    let backend = state.backend.as_ref();
    let (headers, region) = (&parts.headers, state.region.as_str());
    // Object bodies stream both ways; every other body is a small document read whole.
    match endpoint {
        Endpoint::PutObject { bucket, key } => {
            let max = state.object_bytes_max;
            let mut body = RequestBody::new(Some(body), headers, &auth.payload, max)?;
            let put = object::put_object(backend, &bucket, &key, headers, &mut body).await;
            if let Some(observer) = &state.observer {
                observer.body_bytes("PutObject", body.received_bytes(), 0);
            }
            return put.map(|r| r.map(ResponseBody::from));
        }
        Endpoint::UploadPart { bucket, key, upload_id, part_number } => {
            let max = state.object_bytes_max;
            let mut body = RequestBody::new(Some(body), headers, &auth.payload, max)?;
            let upload = (bucket.as_str(), key.as_str(), upload_id.as_str());
            let part = multipart::upload_part(backend, upload, part_number, &mut body).await;
            if let Some(observer) = &state.observer {
                observer.body_bytes("UploadPart", body.received_bytes(), 0);
            }
            return part.map(|r| r.map(ResponseBody::from));
        }
        Endpoint::GetObject { bucket, key, version_id, part_number } => {
            let target = (bucket.as_str(), key.as_str(), version_id.as_deref());
            let read = object::Read { headers, query: &query, part_number, head: false };
            return object::get_object(backend, target, read).await;
        }
        _ => {}
    }
    let body = read_body(body, &parts.headers, CONTROL_BODY_BYTES_MAX).await?;
    auth.payload.verify(&body)?;
    if let Some(observer) = &state.observer {
        observer.body_bytes(endpoint.name(), body.len() as u64, 0);
    }
    let resp = match endpoint {
        Endpoint::ListBuckets => {
            let visible = |name: &str| grant.perms(name).any();
            bucket::list_buckets(backend, &auth.access_key, &visible).await
        }
        Endpoint::CreateBucket { bucket } => {
            let created = bucket::create_bucket(backend, &bucket, region, &body).await;
            match created {
                Ok(_) => state.keys.bucket_created(&auth.access_key, &bucket).await?,
                Err(S3Error::BucketAlreadyOwnedByYou { .. }) if !grant.perms(&bucket).owner => {
                    return Err(S3Error::AccessDenied {
                        reason: "The bucket exists and this access key does not own it",
                    });
                }
                Err(_) => {}
            }
            created
        }
        Endpoint::HeadBucket { bucket } => bucket::head_bucket(backend, &bucket, region).await,
        Endpoint::DeleteBucket { bucket } => {
            let deleted = bucket::delete_bucket(backend, &bucket).await?;
            state.keys.bucket_deleted(&bucket).await?;
            Ok(deleted)
        }
        Endpoint::GetBucketLocation { bucket } => {
            bucket::get_bucket_location(backend, &bucket, region).await
        }
        Endpoint::ListObjectsV2 { bucket } => list::list_objects_v2(backend, &bucket, &query).await,
        Endpoint::ListObjects { bucket } => list::list_objects_v1(backend, &bucket, &query).await,
        Endpoint::ListObjectVersions { bucket } => {
            versions::list_object_versions(backend, &bucket, &query).await
        }
        Endpoint::GetBucketVersioning { bucket } => {
            versions::get_bucket_versioning(backend, &bucket).await
        }
        Endpoint::PutBucketVersioning { bucket } => {
            versions::put_bucket_versioning(backend, &bucket, &body).await
        }
        Endpoint::HeadObject { bucket, key, version_id, part_number } => {
            let target = (bucket.as_str(), key.as_str(), version_id.as_deref());
            let read = object::Read { headers, query: &query, part_number, head: true };
            return object::get_object(backend, target, read).await;
        }
        Endpoint::DeleteObject { bucket, key, version_id } => {
            object::delete_object(backend, &bucket, &key, version_id.as_deref()).await
        }
        Endpoint::GetObjectAttributes { bucket, key, version_id } => {
            let target = (bucket.as_str(), key.as_str(), version_id.as_deref());
            object_attributes::get_object_attributes(backend, target, headers).await
        }
        Endpoint::CreateMultipartUpload { bucket, key } => {
            multipart::create(backend, &bucket, &key, headers).await
        }
        Endpoint::CompleteMultipartUpload { bucket, key, upload_id } => {
            multipart::complete(backend, (&bucket, &key, &upload_id), headers, &body).await
        }
        Endpoint::AbortMultipartUpload { bucket, key, upload_id } => {
            multipart::abort(backend, (&bucket, &key, &upload_id)).await
        }
        Endpoint::ListParts { bucket, key, upload_id } => {
            multipart::list_parts(backend, (&bucket, &key, &upload_id), &query).await
        }
        Endpoint::ListMultipartUploads { bucket } => {
            multipart::list_uploads(backend, &bucket, &query).await
        }
        Endpoint::DeleteObjects { bucket } => {
            delete_objects::delete_objects(&state.backend, &bucket, headers, &body).await
        }
        Endpoint::GetBucketCors { bucket } => cors::get_bucket_cors(backend, &bucket).await,
        Endpoint::PutBucketCors { bucket } => {
            cors::put_bucket_cors(backend, &bucket, headers, &body).await
        }
        Endpoint::DeleteBucketCors { bucket } => cors::delete_bucket_cors(backend, &bucket).await,
        Endpoint::GetBucketWebsite { bucket } => {
            website::get_bucket_website(backend, &bucket).await
        }
        Endpoint::PutBucketWebsite { bucket } => {
            website::put_bucket_website(backend, &bucket, headers, &body).await
        }
        Endpoint::DeleteBucketWebsite { bucket } => {
            website::delete_bucket_website(backend, &bucket).await
        }
        Endpoint::GetBucketLifecycle { bucket } => {
            lifecycle::get_bucket_lifecycle(backend, &bucket).await
        }
        Endpoint::PutBucketLifecycle { bucket } => {
            lifecycle::put_bucket_lifecycle(backend, &bucket, headers, &body).await
        }
        Endpoint::DeleteBucketLifecycle { bucket } => {
            lifecycle::delete_bucket_lifecycle(backend, &bucket).await
        }
        Endpoint::CopyObject { bucket, key, source } => {
            copy::copy_object(backend, (&bucket, &key), &source, headers).await
        }
        Endpoint::UploadPartCopy { bucket, key, upload_id, part_number, source } => {
            let upload = (bucket.as_str(), key.as_str(), upload_id.as_str());
            copy::upload_part_copy(backend, upload, part_number, &source, headers).await
        }
        Endpoint::PutObject { .. } | Endpoint::UploadPart { .. } | Endpoint::GetObject { .. } => {
            unreachable!("object bodies are served above")
        }
    };
    resp.map(|r| r.map(ResponseBody::from))
}

/// The bucket a request addresses (path- or virtual-host-style), if any.
fn request_bucket(
    state: &S3State,
    headers: &HeaderMap,
    raw_path: &str,
    authority: Option<&hyper::http::uri::Authority>,
) -> Result<Option<String>, S3Error> {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let host = host.or(authority.map(|a| a.as_str()));
    let bucket = state.root_domain.as_deref().zip(host);
    let bucket = bucket.and_then(|(domain, host)| vhost::bucket_from_host(host, domain));
    let route_path = vhost::routing_path(raw_path, bucket.as_deref());
    Ok(router::parse_path(&route_path)?.0)
}

/// For a request carrying `Origin` on a bucket: the bucket and the origin, whose CORS
/// headers its response will get (`cors::decorate`).
fn cors_target(state: &S3State, req: &Request<Incoming>) -> Option<(String, String)> {
    let origin = req.headers().get(header::ORIGIN)?.to_str().ok()?.to_string();
    let (headers, uri) = (req.headers(), req.uri());
    let bucket = request_bucket(state, headers, uri.path(), uri.authority()).ok()??;
    Some((bucket, origin))
}

/// Reads a whole body of at most `limit_bytes`. A declared Content-Length above the limit
/// is refused before reading, so a client waiting on `Expect: 100-continue` sends nothing.
async fn read_body(
    body: Incoming,
    headers: &HeaderMap,
    limit_bytes: u64,
) -> Result<Bytes, S3Error> {
    let too_large = S3Error::EntityTooLarge { size_bytes_max: limit_bytes };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit_bytes) {
        return Err(too_large);
    }
    match Limited::new(body, limit_bytes as usize).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large),
        Err(_) => Err(S3Error::IncompleteBody),
    }
}

/// A 200 response carrying an S3 XML document.
fn xml_response(doc: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(doc)));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    resp
}
