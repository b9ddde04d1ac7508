//! The body of an S3 response: a small document in memory, or an object streamed from the
//! backend chunk by chunk as hyper asks for it (hyper asks for the next chunk only once
//! its write buffer has room, so a slow client slows the reads instead of filling memory).
//!
//! A read that fails mid-body ends the stream with an error; hyper then closes the
//! connection, and the client sees a body shorter than its Content-Length — the only
//! honest signal once the status line has been sent.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, SizeHint};

use super::backend::{BackendError, BoxFuture, ObjectBody};

type Read = BoxFuture<'static, (Box<dyn ObjectBody>, Result<Option<Bytes>, BackendError>)>;

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResponseBody::Full(_) => f.write_str("ResponseBody::Full"),
            ResponseBody::Object(s) => {
                write!(f, "ResponseBody::Object({} bytes)", s.remaining_bytes)
            }
        }
    }
}

pub enum ResponseBody {
    Full(Full<Bytes>),
    Object(ObjectStream),
}

impl From<Full<Bytes>> for ResponseBody {
    fn from(full: Full<Bytes>) -> Self {
        ResponseBody::Full(full)
    }
}

/// An object body of `remaining_bytes` more bytes.
pub struct ObjectStream {
    body: Option<Box<dyn ObjectBody>>,
    reading: Option<Read>,
    remaining_bytes: u64,
}

impl ObjectStream {
    pub fn new(body: Box<dyn ObjectBody>, length_bytes: u64) -> ObjectStream {
        ObjectStream { body: Some(body), reading: None, remaining_bytes: length_bytes }
    }
}

/// Why a streamed body stopped early.
#[derive(Debug)]
pub struct BodyReadError(pub BackendError);

impl std::fmt::Display for BodyReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "object body read failed: {}", self.0)
    }
}

impl std::error::Error for BodyReadError {}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyReadError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyReadError>>> {
        match self.get_mut() {
            ResponseBody::Full(full) => Pin::new(full)
                .poll_frame(cx)
                .map(|f| f.map(|r| r.map_err(|e: Infallible| match e {}))),
            ResponseBody::Object(stream) => stream.poll_next(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Full(full) => full.is_end_stream(),
            ResponseBody::Object(s) => s.body.is_none() && s.reading.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Full(full) => full.size_hint(),
            ResponseBody::Object(s) => SizeHint::with_exact(s.remaining_bytes),
        }
    }
}

impl ObjectStream {
    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyReadError>>> {
        if self.reading.is_none() {
            let Some(mut body) = self.body.take() else { return Poll::Ready(None) };
            self.reading = Some(Box::pin(async move {
                let read = body.next_chunk().await;
                (body, read)
            }));
        }
        let reading = self.reading.as_mut().expect("set above");
        let Poll::Ready((body, read)) = reading.as_mut().poll(cx) else { return Poll::Pending };
        self.reading = None;
        match read {
            Ok(Some(data)) => {
                self.body = Some(body);
                self.remaining_bytes = self.remaining_bytes.saturating_sub(data.len() as u64);
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Ok(None) => Poll::Ready(None),
            Err(e) => Poll::Ready(Some(Err(BodyReadError(e)))),
        }
    }
}
