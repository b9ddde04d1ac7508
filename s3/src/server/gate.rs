//! The S3 port of a node the layout does not (yet) name.
//!
//! A fresh node starts with no layout: it cannot place a single object, and its engine
//! would answer every request with a quorum error that tells an operator nothing. So the
//! S3 listener is wrapped: while the newest layout gives this node no role, every
//! connection is answered here with a 503 S3 error naming the command to run, and closed.
//! The check is per connection, so a client's next connection after `layout apply` is
//! served normally; nothing in the S3 layer needs to know about membership.

use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hangar_engine::node::Node;
use hangar_engine::seam::{BoxFuture, BoxStream, Listener};
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};

/// What a client of a node outside the layout reads.
pub const NOT_A_MEMBER: &str =
    "this node is not in the cluster layout yet: run `hangar layout assign`";
/// A refused client that sends no request head is dropped after this long.
const HEADER_READ_TIMEOUT_MS: u64 = 10_000;

pub struct MemberGate {
    inner: Box<dyn Listener>,
    node: Arc<Node>,
}

impl MemberGate {
    pub fn new(inner: Box<dyn Listener>, node: Arc<Node>) -> MemberGate {
        MemberGate { inner, node }
    }
}

/// Whether the newest layout gives `node` a role.
pub fn is_member(node: &Node) -> bool {
    node.current_layout().is_some_and(|l| l.roles().contains_key(&node.id))
}

impl Listener for MemberGate {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxStream, String)>> {
        Box::pin(async move {
            loop {
                let (stream, peer) = self.inner.accept().await?;
                if is_member(&self.node) {
                    return Ok((stream, peer));
                }
                tokio::spawn(refuse(stream));
            }
        })
    }
}

/// Answers every request of one connection with the 503, then closes it.
async fn refuse(stream: BoxStream) {
    let service = service_fn(|_req| async { Ok::<_, Infallible>(not_a_member_response()) });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(HEADER_READ_TIMEOUT_MS))
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service);
    let _ = conn.await;
}

fn not_a_member_response() -> Response<Full<Bytes>> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>ServiceUnavailable</Code>\
         <Message>{NOT_A_MEMBER}</Message></Error>"
    );
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    // S3 clients retry a 503; a member-to-be is seconds away once the layout is applied.
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_an_s3_error_naming_the_command() {
        let resp = not_a_member_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()[header::CONNECTION], "close");
    }
}
