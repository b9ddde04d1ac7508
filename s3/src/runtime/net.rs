//! `Net` over tokio TCP.
//!
//! Every socket, accepted or connected, gets TCP_NODELAY: RPC and S3 both send small
//! request/response messages, and with Nagle plus the peer's delayed ACK a round trip can
//! stall for ~40 ms.

use std::io;

use hangar_engine::seam::{BoxFuture, BoxStream, Listener, Net};
use tokio::net::{TcpListener, TcpStream};

/// Production networking: plain `tokio::net`.
pub struct TokioNet;

impl Net for TokioNet {
    fn listen(&self, addr: &str) -> BoxFuture<'_, io::Result<Box<dyn Listener>>> {
        let addr = addr.to_string();
        Box::pin(async move {
            let inner = TcpListener::bind(&addr).await?;
            Ok(Box::new(TokioListener { inner }) as Box<dyn Listener>)
        })
    }

    fn connect(&self, addr: &str) -> BoxFuture<'_, io::Result<BoxStream>> {
        let addr = addr.to_string();
        Box::pin(async move {
            let stream = TcpStream::connect(&addr).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as BoxStream)
        })
    }
}

/// A bound tokio listener.
pub struct TokioListener {
    inner: TcpListener,
}

impl TokioListener {
    /// The bound address (useful after binding port 0).
    pub fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.inner.local_addr()
    }
}

impl Listener for TokioListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxStream, String)>> {
        Box::pin(async move {
            let (stream, peer) = self.inner.accept().await?;
            // A connection we cannot tune is still a working connection; say so and go on.
            if let Err(e) = stream.set_nodelay(true) {
                tracing::warn!(error = %e, %peer, "cannot set TCP_NODELAY on an accepted socket");
            }
            Ok((Box::new(stream) as BoxStream, peer.to_string()))
        })
    }
}
