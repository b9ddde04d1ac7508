//! The static website endpoint (`[s3_web] bind_addr`, port 3902 by default): anonymous
//! GET and HEAD of the objects of buckets that have a website configuration (`website.rs`).
//!
//! How a request is answered, as S3's website endpoints do:
//! - The bucket is named by the Host header: `<bucket>.<root_domain>`, or, for a host not
//!   under the root domain, the whole host name (a bucket named after its own domain, the
//!   way S3 serves `www.example.com` through a CNAME). The port is ignored. A bucket alias
//!   (`hangar bucket alias`) stands for its bucket, so `www.example.com` can be an alias.
//! - A bucket without a website configuration is 404 NoSuchWebsiteConfiguration, so an
//!   ordinary bucket is never readable anonymously through this port.
//! - `/` and any path ending in `/` get the index document's suffix appended. A path
//!   without the slash whose key is missing, but whose `path/` + suffix exists, is
//!   redirected (302) to `path/`, so relative links in the index page resolve.
//! - The object is read with the S3 GetObject path (`object::get_object`), so ranges and
//!   `If-Match` / `If-None-Match` behave exactly as on the S3 port; `response-*` query
//!   overrides do not apply (they are a signed-request feature).
//! - A missing key is answered with the error document, with status 404; without one (or
//!   if it is missing too), with a small HTML page. Every error here is HTML, not XML: a
//!   browser shows it to a person.
//! - Redirects (`website_routing`): `RedirectAllRequestsTo` answers every request with 301
//!   to the other host; a routing rule whose condition has no error code is applied before
//!   the object is read, one with an error code when the read fails with that status; an
//!   object stored with `x-amz-website-redirect-location` is answered with 301 to it.
//! - Only GET and HEAD read; OPTIONS is a CORS preflight against the bucket's CORS rules
//!   (as on the S3 port), and a GET or HEAD carrying `Origin` gets the matching rule's
//!   headers. Any other method is 405.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::backend::{ObjectBackend, WebsiteConfig};
use super::encoding::percent_decode;
use super::error::S3Error;
use super::response_body::ResponseBody;
use super::website_routing as routing;
use super::xml::escape;
use super::{S3State, alias, cors, object, vhost, website};

/// What the website endpoint serves from: the S3 state's backend, clock and request ids,
/// and the website's own root domain (`[s3_web] root_domain`).
pub struct WebState {
    pub s3: Arc<S3State>,
    /// Normalised (`vhost::normalise_root_domain`); `None`: every host is a bucket name.
    pub root_domain: Option<String>,
}

impl WebState {
    pub fn new(s3: Arc<S3State>, root_domain: Option<&str>) -> WebState {
        let root_domain = root_domain.map(vhost::normalise_root_domain).filter(|d| !d.is_empty());
        WebState { s3, root_domain }
    }

    /// The bucket a Host header names (see the module doc).
    pub fn bucket_of_host(&self, host: &str) -> Option<String> {
        if let Some(bucket) =
            self.root_domain.as_deref().and_then(|d| vhost::bucket_from_host(host, d))
        {
            return Some(bucket);
        }
        if host.starts_with('[') {
            return None; // an IPv6 literal names no bucket
        }
        let name = host.rsplit_once(':').map_or(host, |(name, _port)| name);
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        (!name.is_empty()).then_some(name)
    }
}

/// Serves the website endpoint on `listener` until the task is dropped.
pub async fn serve_web(listener: Box<dyn hangar_engine::seam::Listener>, state: Arc<WebState>) {
    super::serve_with(listener, move |req| handle(state.clone(), req)).await
}

async fn handle(
    state: Arc<WebState>,
    req: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    let request_id = state.s3.next_request_id();
    let started = tokio::time::Instant::now();
    let (parts, _body) = req.into_parts();
    let method = parts.method.clone();
    let host = parts.headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let host = host.or(parts.uri.authority().map(|a| a.as_str())).unwrap_or("");
    // A bucket alias names its bucket here too: an alias such as `www.example.com` is how
    // a site gets its own domain (`s3api::alias`).
    let backend = state.s3.backend.as_ref();
    let bucket = match state.bucket_of_host(host) {
        Some(name) => Some(alias::bucket_of(backend, name).await),
        None => None,
    };
    let path = parts.uri.path().to_string();
    let answer = match &bucket {
        None => Err(S3Error::NoSuchBucket { bucket: host.to_string() }),
        Some(bucket) => serve_site(&state.s3, bucket, &parts.method, &path, &parts.headers).await,
    };
    let mut resp = answer.unwrap_or_else(|err| {
        let head = method == Method::HEAD;
        html_error(&err, &request_id, head).map(ResponseBody::from)
    });
    let origin = parts.headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    if let (Some(bucket), Some(origin)) = (&bucket, origin)
        && method != Method::OPTIONS
    {
        cors::decorate(backend, bucket, origin, method.as_str(), resp.headers_mut()).await;
    }
    let id = HeaderValue::from_str(&request_id).expect("request ids are hex");
    resp.headers_mut().insert("x-amz-request-id", id);
    let status = resp.status().as_u16();
    if let Some(observer) = &state.s3.observer {
        // One metrics label per kind of website request (`/metrics`, `operation`).
        let operation = match method {
            Method::GET => "WebsiteGet",
            Method::HEAD => "WebsiteHead",
            Method::OPTIONS => "WebsitePreflight",
            _ => "WebsiteRefused",
        };
        observer.request_done(operation, status, started.elapsed());
        let sent = hyper::body::Body::size_hint(resp.body()).exact().unwrap_or(0);
        observer.body_bytes(operation, 0, if method == Method::HEAD { 0 } else { sent });
    }
    let bucket = bucket.as_deref().unwrap_or("-");
    tracing::info!(target: "hangar::web::request", %request_id, %method, bucket, %path, status);
    Ok(resp)
}

/// The answer for `method path` on the site of `bucket`.
async fn serve_site(
    s3: &S3State,
    bucket: &str,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Result<Response<ResponseBody>, S3Error> {
    let backend = s3.backend.as_ref();
    if *method == Method::OPTIONS {
        let answer = cors::preflight(backend, bucket, headers).await?;
        return Ok(answer.map(ResponseBody::from));
    }
    let head = match *method {
        Method::GET => false,
        Method::HEAD => true,
        _ => return Err(method_not_allowed()),
    };
    let config = backend.get_bucket_website(bucket).await;
    let config = config.map_err(|e| S3Error::from_backend(e, bucket, ""))?;
    let config = config.ok_or_else(website::no_such_website)?;
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or(bucket);
    let origin = routing::Origin { host, protocol: "http" };
    if let Some(all) = &config.redirect_all {
        return Ok(redirect_to(routing::redirect_all(all, path, &origin)));
    }
    let raw_key = path.strip_prefix('/').unwrap_or(path);
    let key = percent_decode(raw_key).ok_or(S3Error::InvalidURI)?;
    if let Some(rule) = routing::matching_rule(&config.routing_rules, &key, None) {
        return Ok(redirect_to(routing::apply(rule, &key, &origin)));
    }
    let wanted = index_key(&key, &config);
    let request = object::Read { headers, query: &[], part_number: None, head };
    let read = object::get_object(backend, (bucket, &wanted, None), request).await;
    let status = read.as_ref().err().map(|e| e.status().as_u16());
    if let Some(rule) =
        status.and_then(|s| routing::matching_rule(&config.routing_rules, &key, Some(s)))
    {
        return Ok(redirect_to(routing::apply(rule, &key, &origin)));
    }
    match read {
        Ok(resp) if resp.headers().contains_key(routing::OBJECT_REDIRECT_HEADER) => {
            let location = resp.headers()[routing::OBJECT_REDIRECT_HEADER].to_str().unwrap_or("/");
            Ok(redirect_to(routing::Answer { status: 301, location: location.to_string() }))
        }
        Err(S3Error::NoSuchKey { .. } | S3Error::DeleteMarkerIsCurrent { .. }) => {
            if !key.is_empty() && !key.ends_with('/') {
                let index = format!("{key}/{}", config.index_suffix);
                if backend.head_object(bucket, &index, None).await.is_ok() {
                    return Ok(redirect(&format!("{path}/")));
                }
            }
            error_document(backend, bucket, &wanted, &config, head).await
        }
        answer => answer,
    }
}

/// The key a request path reads: the index document for `""` and `dir/`.
pub fn index_key(key: &str, config: &WebsiteConfig) -> String {
    if key.is_empty() || key.ends_with('/') {
        format!("{key}{}", config.index_suffix)
    } else {
        key.to_string()
    }
}

/// The bucket's error document with status 404, or the HTML NoSuchKey page when it has
/// none (or that is missing too). Read without the request's conditions and range: they
/// were meant for the missing object.
async fn error_document(
    backend: &dyn ObjectBackend,
    bucket: &str,
    missing: &str,
    config: &WebsiteConfig,
    head: bool,
) -> Result<Response<ResponseBody>, S3Error> {
    let not_found = || S3Error::NoSuchKey { key: missing.to_string() };
    let Some(error_key) = &config.error_key else { return Err(not_found()) };
    let plain = HeaderMap::new();
    let request = object::Read { headers: &plain, query: &[], part_number: None, head };
    match object::get_object(backend, (bucket, error_key, None), request).await {
        Ok(mut resp) => {
            *resp.status_mut() = StatusCode::NOT_FOUND;
            Ok(resp)
        }
        Err(S3Error::NoSuchKey { .. } | S3Error::DeleteMarkerIsCurrent { .. }) => Err(not_found()),
        Err(other) => Err(other),
    }
}

fn method_not_allowed() -> S3Error {
    S3Error::Post {
        code: "MethodNotAllowed",
        message: "The website endpoint serves GET and HEAD only".into(),
    }
}

fn html_page(err: &S3Error, status: StatusCode, request_id: &str) -> String {
    let title = format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or(""));
    format!(
        "<html>\n<head><title>{title}</title></head>\n<body>\n<h1>{title}</h1>\n<ul>\n\
         <li>Code: {code}</li>\n<li>Message: {message}</li>\n<li>RequestId: {request_id}</li>\n\
         </ul>\n</body>\n</html>\n",
        title = escape(&title),
        code = escape(err.code()),
        message = escape(&err.message()),
    )
}

/// A redirect of a routing rule or an object (`website_routing`), with an empty body.
fn redirect_to(answer: routing::Answer) -> Response<ResponseBody> {
    let mut resp = redirect(&answer.location);
    *resp.status_mut() =
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::MOVED_PERMANENTLY);
    resp
}

fn redirect(location: &str) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::from(Full::new(Bytes::new())));
    *resp.status_mut() = StatusCode::FOUND;
    if let Ok(value) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, value);
    }
    resp
}

/// An error as a small HTML page (what S3's website endpoints send a browser).
pub fn html_error(err: &S3Error, request_id: &str, head: bool) -> Response<Full<Bytes>> {
    let status = match err {
        S3Error::Post { code: "MethodNotAllowed", .. } => StatusCode::METHOD_NOT_ALLOWED,
        other => other.status(),
    };
    let body = if head { Bytes::new() } else { Bytes::from(html_page(err, status, request_id)) };
    let mut builder =
        Response::builder().status(status).header(header::CONTENT_TYPE, "text/html; charset=utf-8");
    if status == StatusCode::METHOD_NOT_ALLOWED {
        builder = builder.header(header::ALLOW, "GET, HEAD, OPTIONS");
    }
    if let S3Error::InvalidRange { size_bytes } = err {
        builder = builder.header(header::CONTENT_RANGE, format!("bytes */{size_bytes}"));
    }
    builder.body(Full::new(body)).expect("static error response headers are valid")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3api::MemoryBackend;

    fn state(root: Option<&str>) -> WebState {
        let backend = Arc::new(MemoryBackend::new(Arc::new(|| 0)));
        let s3 = S3State::new(backend, "r".into(), Default::default(), Arc::new(|| 0));
        WebState::new(Arc::new(s3), root)
    }

    #[test]
    fn hosts_name_buckets_under_the_root_domain_or_whole() {
        let web = state(Some(".web.example.com"));
        assert_eq!(web.bucket_of_host("site.web.example.com:3902"), Some("site".into()));
        assert_eq!(web.bucket_of_host("www.example.org"), Some("www.example.org".into()));
        assert_eq!(web.bucket_of_host("[::1]:3902"), None);
        assert_eq!(
            state(None).bucket_of_host("Blog.Example.COM."),
            Some("blog.example.com".into())
        );
    }

    #[test]
    fn directories_get_the_index_document() {
        let config = WebsiteConfig { index_suffix: "index.html".into(), ..Default::default() };
        assert_eq!(index_key("", &config), "index.html");
        assert_eq!(index_key("docs/", &config), "docs/index.html");
        assert_eq!(index_key("docs/a.css", &config), "docs/a.css");
    }

    #[test]
    fn errors_are_html_pages_that_escape_what_they_quote() {
        let err = S3Error::NoSuchKey { key: "<script>".into() };
        let resp = html_error(&err, "R1", false);
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
        let page = html_page(&err, StatusCode::NOT_FOUND, "R1");
        assert!(page.contains("404 Not Found") && page.contains("Code: NoSuchKey"), "{page}");
        assert!(page.contains("&lt;script&gt;") && !page.contains("<script>"), "{page}");
        let resp = html_error(&method_not_allowed(), "R1", true);
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(resp.headers()[header::ALLOW], "GET, HEAD, OPTIONS");
    }
}
