//! Byte-stream networking: listen and connect. Production uses `tokio::net`, the simulation
//! `turmoil::net`, whose partitions can wedge an established stream forever — so every user
//! of a stream must carry its own timeouts.

use std::io;

use tokio::io::{AsyncRead, AsyncWrite};

use super::BoxFuture;

/// A bidirectional byte stream (a TCP connection in both worlds).
pub trait ByteStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> ByteStream for T {}

pub type BoxStream = Box<dyn ByteStream>;

/// A bound listening socket.
pub trait Listener: Send {
    /// Waits for the next connection; returns the stream and the peer's address.
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxStream, String)>>;
}

pub trait Net: Send + Sync {
    /// Binds `addr` ("host:port").
    fn listen(&self, addr: &str) -> BoxFuture<'_, io::Result<Box<dyn Listener>>>;
    /// Opens a stream to `addr` ("host:port"); implementations set TCP_NODELAY.
    fn connect(&self, addr: &str) -> BoxFuture<'_, io::Result<BoxStream>>;
}
