//! A connection whose writes may not stall forever.
//!
//! Why: a GET streams its object as the client reads it, holding a few blocks while it
//! waits for room in the socket. A client that stops reading (dead, or hostile) would hold
//! them, and its connection slot, for ever: hyper has no write timeout. This wrapper fails
//! a write (or flush) that has made no progress for `stall` with `TimedOut`, which ends
//! the connection and frees what the response held. Reads are not limited here: a request
//! body has its own idle timeout (`request_body::BODY_IDLE_TIMEOUT_MS`) and the request
//! head hyper's `header_read_timeout`.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// How long a response write may wait for the client to read.
pub const WRITE_STALL_TIMEOUT_MS: u64 = 60_000;

pub struct WriteDeadline<S> {
    inner: S,
    stall: Duration,
    /// Armed while a write or flush is pending; disarmed by any progress.
    timer: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteDeadline<S> {
    pub fn new(inner: S, stall: Duration) -> Self {
        WriteDeadline { inner, stall, timer: None }
    }

    /// `Pending` from the inner stream: pending still, or timed out once stalled too long.
    fn stalled<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let stall = self.stall;
        let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                let msg = format!("the client read nothing for {} ms", stall.as_millis());
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, msg)))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn progressed<T>(
        &mut self,
        result: Poll<io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<T>> {
        match result {
            Poll::Ready(r) => {
                self.timer = None;
                Poll::Ready(r)
            }
            Poll::Pending => self.stalled(cx),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.progressed(result, cx)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let result = Pin::new(&mut this.inner).poll_flush(cx);
        this.progressed(result, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.progressed(result, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_reader_that_stops_reading_times_the_writer_out_and_a_slow_one_does_not() {
        let (ours, mut client) = tokio::io::duplex(1024);
        let mut conn = WriteDeadline::new(ours, Duration::from_millis(WRITE_STALL_TIMEOUT_MS));
        // A slow reader: reads a little every 30 s, so every stall is shorter than the limit.
        let writer = async {
            for _ in 0..8 {
                conn.write_all(&[7u8; 1024]).await?;
            }
            Ok::<_, io::Error>(())
        };
        let reader = async {
            let mut buf = [0u8; 1024];
            for _ in 0..8 {
                tokio::time::sleep(Duration::from_secs(30)).await;
                client.read_exact(&mut buf).await.unwrap();
            }
        };
        let (written, ()) = tokio::join!(writer, reader);
        written.expect("a slow reader is served");
        // Now the client stops reading: the buffer fills, and the write times out.
        let stuck = async {
            let mut written = Ok(());
            while written.is_ok() {
                written = conn.write_all(&[7u8; 1024]).await;
            }
            written
        };
        // Bounded, so that a missing deadline fails the test instead of hanging it.
        let outcome = tokio::time::timeout(Duration::from_secs(600), stuck).await;
        let written = outcome.expect("the stalled write ends by itself");
        assert_eq!(written.unwrap_err().kind(), io::ErrorKind::TimedOut);
        drop(client);
    }
}
