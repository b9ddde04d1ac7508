//! The admin HTTP API: JSON over HTTP/1.1 on `[admin] api_bind_addr`, for `hangar` CLI verbs
//! and scripts. Documented in docs/admin-api.openapi.yaml.
//!
//! Every `/v1/…` request must carry `Authorization: Bearer <admin_token>` (compared in
//! constant time, `token`); a missing token is 401, a wrong one 403, and with no token
//! configured the API answers 403 to everything: an admin API that anyone on the network
//! can use to mint keys must never be on by accident. The check comes before routing, so
//! an unauthenticated caller learns nothing about what exists. `/metrics` has its own
//! optional token (`metrics_token`), so a Prometheus server needs no admin rights.
//!
//! Routing is a plain `match` on method and path segments (`respond`); handlers live in
//! `cluster` (status, health, workers, metrics), `keys`, `buckets`, `layout` and `repair`.
//! Errors are `{"code": "...", "message": "..."}` with a matching HTTP status.

pub mod buckets;
pub mod cluster;
pub mod engine_metrics;
pub mod keys;
pub mod layout;
pub mod lifecycle;
pub mod repair;
#[cfg(test)]
mod tests;
pub mod token;

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hangar_engine::block::repair::RepairConfig;
use hangar_engine::keys::KeyStore;
use hangar_engine::layout::ClusterLayout;
use hangar_engine::node::Node;
use hangar_engine::objects::ObjectStore;
use hangar_engine::objects::gc::GcConfig;
use hangar_engine::seam::{Listener, Net};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::metrics::S3Metrics;
use crate::metrics_events::EngineEvents;
use crate::runtime::TokioNet;
use token::TokenError;

/// Admin request bodies are small JSON documents.
pub const BODY_BYTES_MAX: usize = 64 * 1024;
/// A client that has not sent a complete request head by then is disconnected.
const HEADER_READ_TIMEOUT_MS: u64 = 30_000;
/// Open admin connections; further clients wait in the listen backlog. Operators, scripts
/// and one Prometheus need few.
pub const CONNECTIONS_MAX: usize = 64;

/// The background workers' settings, as the server started them (for `/v1/workers`).
#[derive(Debug, Clone, Copy)]
pub struct WorkerSettings {
    pub sync_interval_ms: u64,
    pub gc: GcConfig,
    pub repair: RepairConfig,
}

pub struct AdminState {
    pub node: Arc<Node>,
    pub store: Arc<ObjectStore>,
    pub keys: Arc<KeyStore>,
    pub admin_token: Option<String>,
    pub metrics_token: Option<String>,
    pub s3_metrics: Arc<S3Metrics>,
    pub workers: WorkerSettings,
    /// Counts of the engine's trace events (worker passes, RPCs served).
    pub events: Arc<EngineEvents>,
    /// Changes staged before the cluster's first layout exists (`layout`).
    pub first_layout: Mutex<ClusterLayout>,
    /// Directories whose file systems' free space `/metrics` reports, by role.
    pub disk_dirs: Vec<(&'static str, PathBuf)>,
}

/// An error answer: HTTP status, a stable code for scripts, a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl AdminError {
    fn new(status: StatusCode, code: &'static str, message: String) -> Self {
        AdminError { status, code, message }
    }
    pub fn bad_request(message: String) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidRequest", message)
    }
    pub fn not_found(code: &'static str, message: String) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }
    pub fn conflict(code: &'static str, message: String) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }
    pub fn unavailable(message: String) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", message)
    }
    pub fn internal(message: String) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
    }
}

/// Reads a JSON request body; an empty body reads as `{}`.
pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, AdminError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) { b"{}".as_slice() } else { body };
    serde_json::from_slice(body).map_err(|e| AdminError::bad_request(format!("request body: {e}")))
}

fn json_response(status: StatusCode, value: &Value) -> Response<Full<Bytes>> {
    let mut text = serde_json::to_string_pretty(value).expect("JSON values serialize");
    text.push('\n');
    let mut resp = Response::new(Full::new(Bytes::from(text)));
    *resp.status_mut() = status;
    let json = HeaderValue::from_static("application/json");
    resp.headers_mut().insert(header::CONTENT_TYPE, json);
    resp
}

fn error_response(e: &AdminError) -> Response<Full<Bytes>> {
    json_response(e.status, &json!({ "code": e.code, "message": e.message }))
}

fn token_error(e: TokenError, what: &str) -> Response<Full<Bytes>> {
    let (status, code, message) = match e {
        TokenError::Missing => (
            StatusCode::UNAUTHORIZED,
            "MissingToken",
            format!("send `Authorization: Bearer <{what}>`"),
        ),
        TokenError::Wrong => (StatusCode::FORBIDDEN, "WrongToken", format!("wrong {what}")),
    };
    let mut resp = error_response(&AdminError::new(status, code, message));
    if e == TokenError::Missing {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    resp
}

/// Answers one admin request (the body already read).
pub async fn respond(
    state: &AdminState,
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Response<Full<Bytes>> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    if segments == ["metrics"] {
        if let Some(expected) = &state.metrics_token
            && let Err(e) = token::check(headers, expected)
        {
            return token_error(e, "metrics_token");
        }
        if method != Method::GET {
            return error_response(&method_not_allowed(method, path));
        }
        let mut resp = Response::new(Full::new(Bytes::from(cluster::metrics_text(state).await)));
        let kind = HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
        resp.headers_mut().insert(header::CONTENT_TYPE, kind);
        return resp;
    }
    let Some(expected) = &state.admin_token else {
        let message = "the admin API is disabled: set [admin] admin_token".to_string();
        return error_response(&AdminError::new(StatusCode::FORBIDDEN, "Disabled", message));
    };
    if let Err(e) = token::check(headers, expected) {
        return token_error(e, "admin_token");
    }
    if segments == ["v1", "health"] && method == Method::GET {
        let (healthy, body) = cluster::health(state).await;
        let status = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
        return json_response(status, &body);
    }
    let show_secret = query.is_some_and(|q| q.split('&').any(|p| p == "show_secret=true"));
    match route(state, method, &segments, body, show_secret).await {
        Ok(value) => json_response(StatusCode::OK, &value),
        Err(e) => error_response(&e),
    }
}

fn method_not_allowed(method: &Method, path: &str) -> AdminError {
    let message = format!("{method} is not allowed on {path}");
    AdminError::new(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", message)
}

async fn route(
    state: &AdminState,
    method: &Method,
    segments: &[&str],
    body: &[u8],
    show_secret: bool,
) -> Result<Value, AdminError> {
    let (get, post, delete) = (Method::GET, Method::POST, Method::DELETE);
    match (method, segments) {
        (m, ["v1", "status"]) if *m == get => cluster::status(state).await,
        (m, ["v1", "workers"]) if *m == get => Ok(cluster::workers(state)),
        (m, ["v1", "repair"]) if *m == get => Ok(repair::show(state)),
        (m, ["v1", "repair"]) if *m == post => repair::launch(state, body),
        (m, ["v1", "keys"]) if *m == get => keys::list(state).await,
        (m, ["v1", "keys"]) if *m == post => keys::create(state, body).await,
        (m, ["v1", "keys", "import"]) if *m == post => keys::import(state, body).await,
        (m, ["v1", "keys", id]) if *m == get => keys::info(state, id, show_secret).await,
        (m, ["v1", "keys", id]) if *m == delete => keys::delete(state, id).await,
        (m, ["v1", "keys", id, "allow"]) if *m == post => keys::allow(state, id, body).await,
        (m, ["v1", "buckets"]) if *m == get => buckets::list(state).await,
        (m, ["v1", "buckets"]) if *m == post => buckets::create(state, body).await,
        (m, ["v1", "buckets", name]) if *m == get => buckets::info(state, name).await,
        (m, ["v1", "buckets", name]) if *m == delete => buckets::delete(state, name).await,
        (m, ["v1", "buckets", name, "allow"]) if *m == post => {
            buckets::set_grant(state, name, body, true).await
        }
        (m, ["v1", "buckets", name, "deny"]) if *m == post => {
            buckets::set_grant(state, name, body, false).await
        }
        (m, ["v1", "buckets", name, "quotas"]) if *m == post => {
            buckets::set_quotas(state, name, body).await
        }
        (m, ["v1", "buckets", name, "aliases"]) if *m == post => {
            buckets::create_alias(state, name, body).await
        }
        (m, ["v1", "buckets", name, "aliases", alias]) if *m == delete => {
            buckets::delete_alias(state, name, alias).await
        }
        (m, ["v1", "layout"]) if *m == get => Ok(layout::show(state)),
        (m, ["v1", "layout", "preview"]) if *m == get => layout::preview(state),
        (m, ["v1", "layout", "assign"]) if *m == post => layout::assign(state, body),
        (m, ["v1", "layout", "remove"]) if *m == post => layout::remove(state, body),
        (m, ["v1", "layout", "apply"]) if *m == post => layout::apply(state, body).await,
        (m, ["v1", "layout", "revert"]) if *m == post => layout::revert(state),
        (m, ["v1", "layout", "skip-dead"]) if *m == post => layout::skip_dead(state, body),
        (m, ["v1", "lifecycle", "run"]) if *m == post => lifecycle::run(state).await,
        (m, ["v1", "node"]) if *m == get => Ok(layout::node_info(state)),
        (m, ["v1", "node", "connect"]) if *m == post => layout::connect(state, body).await,
        (
            _,
            [
                "v1",
                "status" | "workers" | "repair" | "keys" | "buckets" | "health" | "layout" | "node"
                | "lifecycle",
                ..,
            ],
        ) => Err(method_not_allowed(method, &format!("/{}", segments.join("/")))),
        _ => Err(AdminError::not_found(
            "NoSuchEndpoint",
            format!("no endpoint /{}; see docs/admin-api.openapi.yaml", segments.join("/")),
        )),
    }
}

async fn handle(
    state: Arc<AdminState>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, BODY_BYTES_MAX).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            let message = format!("request bodies are at most {BODY_BYTES_MAX} bytes");
            return Ok(error_response(&AdminError::bad_request(message)));
        }
    };
    let (method, path, query) = (&parts.method, parts.uri.path(), parts.uri.query());
    let resp = respond(&state, method, path, query, &parts.headers, &body).await;
    let status = resp.status().as_u16();
    tracing::info!(target: "hangar::admin::request", %method, path, status);
    Ok(resp)
}

/// A bound admin listener.
pub struct AdminServer {
    listener: Box<dyn Listener>,
    pub addr: SocketAddr,
    state: Arc<AdminState>,
}

impl AdminServer {
    pub async fn bind(addr: SocketAddr, state: Arc<AdminState>) -> io::Result<AdminServer> {
        let listener = TokioNet.listen(&addr.to_string()).await?;
        Ok(AdminServer { listener, addr, state })
    }

    /// Serves until the task is dropped; one task per connection.
    pub async fn serve(mut self) {
        tracing::info!(addr = %self.addr, "admin API listening");
        let slots = Arc::new(tokio::sync::Semaphore::new(CONNECTIONS_MAX));
        loop {
            let permit = slots.clone().acquire_owned().await.expect("never closed");
            let (stream, peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let state = self.state.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| handle(state.clone(), req));
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_millis(HEADER_READ_TIMEOUT_MS))
                    .serve_connection(TokioIo::new(stream), service);
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, %peer, "admin connection ended with an error");
                }
                drop(permit);
            });
        }
    }
}
