//! The CLI's HTTP client for the admin API: one request per connection, JSON in and out,
//! and errors that say what to do next.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::config::Config;
use crate::dev::endpoint_url;

/// How long the CLI waits to connect, then for an answer.
const CONNECT_TIMEOUT_MS: u64 = 5_000;
const ANSWER_TIMEOUT_MS: u64 = 60_000;

/// Where the admin API is and how to authenticate, from the node's config file.
pub struct AdminClient {
    addr: SocketAddr,
    url: String,
    token: Option<String>,
    config_path: PathBuf,
}

impl AdminClient {
    pub fn from_config(config: &Config, config_path: &Path) -> AdminClient {
        let bind = config.admin.api_bind_addr;
        let url = endpoint_url(bind);
        // A wildcard bind is reached on loopback, like `endpoint_url` says.
        let addr = url.trim_start_matches("http://").parse().unwrap_or(bind);
        AdminClient {
            addr,
            url,
            token: config.admin.admin_token.as_ref().map(|t| t.0.clone()),
            config_path: config_path.to_path_buf(),
        }
    }

    /// Sends one request; a non-2xx answer becomes an error message naming the fix.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let cfg = self.config_path.display();
        let Some(token) = &self.token else {
            return Err(format!(
                "no admin token: set [admin] admin_token in {cfg} (or HANGAR_ADMIN_TOKEN)"
            ));
        };
        let (status, text) = self.exchange(method, path, token, body).await?;
        let value: Value = serde_json::from_str(&text).map_err(|e| {
            format!(
                "the admin API at {} answered {status} with something that is not JSON: {e}",
                self.url
            )
        })?;
        if status.is_success() {
            return Ok(value);
        }
        let code = value["code"].as_str().unwrap_or("Error");
        let message = value["message"].as_str().unwrap_or("");
        Err(match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => format!(
                "the admin API at {} refused the request ({code}: {message}); check [admin] \
                 admin_token in {cfg} against the server's",
                self.url
            ),
            _ => format!("{code}: {message}"),
        })
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, String), String> {
        let unreachable = |reason: String| {
            format!(
                "cannot reach the admin API at {}: {reason} — is `hangar server` running? \
                 check [admin] api_bind_addr in {}",
                self.url,
                self.config_path.display()
            )
        };
        let connect = tokio::net::TcpStream::connect(self.addr);
        let stream = tokio::time::timeout(Duration::from_millis(CONNECT_TIMEOUT_MS), connect)
            .await
            .map_err(|_| unreachable("no answer to the connection attempt".into()))?
            .map_err(|e| unreachable(io_reason(&e)))?;
        let _ = stream.set_nodelay(true);
        let (mut sender, conn) =
            http1::handshake(TokioIo::new(stream)).await.map_err(|e| unreachable(e.to_string()))?;
        tokio::spawn(conn);
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string())
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        let answer = async {
            let resp =
                sender.send_request(request).await.map_err(|e| unreachable(e.to_string()))?;
            let status = resp.status();
            let bytes = resp.into_body().collect().await.map_err(|e| unreachable(e.to_string()))?;
            Ok((status, String::from_utf8_lossy(&bytes.to_bytes()).into_owned()))
        };
        tokio::time::timeout(Duration::from_millis(ANSWER_TIMEOUT_MS), answer)
            .await
            .map_err(|_| unreachable(format!("no answer within {ANSWER_TIMEOUT_MS} ms")))?
    }
}

/// "connection refused" rather than "Connection refused (os error 111)".
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        _ => e.to_string(),
    }
}
