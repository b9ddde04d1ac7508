//! Inter-node RPC over the seam's byte streams.
//!
//! One outgoing connection per peer carries every request this node sends it, multiplexed
//! by request id; the peer answers on the same connection. (Each direction of a node pair
//! has its own connection: this keeps connection ownership trivial — the caller owns it —
//! at the price of one extra socket per pair.) Streams are encrypted and authenticated with
//! the cluster secret (`noise`). Every call has a timeout, because a network partition can
//! wedge a stream forever; a call that times out tears its connection down, and connects
//! are retried with exponential backoff and jitter.

mod client;
pub mod message;
pub mod noise;
mod server;
pub mod stats;

pub use client::{RpcClient, RpcConfig};
pub use message::{Envelope, KvRequest, RemoteError, Request, Response, TableRequest};
pub use server::serve;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use crate::layout::NodeId;
use crate::seam::BoxFuture;

/// Serves requests arriving from peers.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        self: Arc<Self>,
        from: NodeId,
        request: Request,
    ) -> BoxFuture<'static, Result<Response, RemoteError>>;
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpcError {
    /// No address is known for the peer.
    UnknownPeer { peer: NodeId },
    /// The peer could not be reached, or we are backing off after failures.
    Unreachable { peer: NodeId, reason: String },
    /// No answer within the deadline; the request may or may not have been applied.
    Timeout { peer: NodeId, timeout_ms: u64 },
    /// The connection broke while the call was in flight.
    ConnectionLost { peer: NodeId },
    /// The peer answered with an error.
    Remote { peer: NodeId, error: RemoteError },
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RpcError::UnknownPeer { peer } => write!(f, "no address known for node {peer}"),
            RpcError::Unreachable { peer, reason } => {
                write!(f, "node {peer} unreachable: {reason}")
            }
            RpcError::Timeout { peer, timeout_ms } => {
                write!(f, "node {peer} did not answer within {timeout_ms} ms")
            }
            RpcError::ConnectionLost { peer } => write!(f, "connection to node {peer} lost"),
            RpcError::Remote { peer, error } => write!(f, "node {peer}: {error}"),
        }
    }
}

impl std::error::Error for RpcError {}
