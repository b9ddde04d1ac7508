//! Per-peer call counters of the RPC client, read by the node's `/metrics`.
//!
//! Read-only for everything but `RpcClient::call`: they never influence what is sent, so
//! they cannot perturb a simulation. Latency is measured on the seam's monotonic clock
//! (tokio's, simulated under turmoil).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use super::RpcError;
use crate::layout::NodeId;

/// Upper bounds of the latency buckets, in milliseconds (+Inf is implicit).
pub const LATENCY_BUCKETS_MS: &[u64] = &[1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000];

/// One peer's calls since this node started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerCalls {
    pub calls: u64,
    /// Calls that did not get an answer, timeouts included.
    pub errors: u64,
    pub timeouts: u64,
    /// Calls per latency bucket (not cumulative), one more than `LATENCY_BUCKETS_MS` for +Inf.
    pub latency_buckets: Vec<u64>,
    pub latency_sum_us: u64,
}

#[derive(Default)]
pub struct RpcStats {
    peers: Mutex<BTreeMap<NodeId, PeerCalls>>,
}

impl RpcStats {
    pub(super) fn record<T>(&self, peer: NodeId, result: &Result<T, RpcError>, took: Duration) {
        let mut peers = self.peers.lock().unwrap();
        let p = peers.entry(peer).or_default();
        if p.latency_buckets.is_empty() {
            p.latency_buckets = vec![0; LATENCY_BUCKETS_MS.len() + 1];
        }
        p.calls += 1;
        // A remote error is an answer: the call itself worked.
        if let Err(e) = result
            && !matches!(e, RpcError::Remote { .. })
        {
            p.errors += 1;
            p.timeouts += u64::from(matches!(e, RpcError::Timeout { .. }));
        }
        let us = took.as_micros() as u64;
        let bucket = LATENCY_BUCKETS_MS.iter().position(|&le_ms| us <= le_ms * 1000);
        p.latency_buckets[bucket.unwrap_or(LATENCY_BUCKETS_MS.len())] += 1;
        p.latency_sum_us += took.as_micros() as u64;
    }

    /// Every peer called so far, in id order.
    pub fn snapshot(&self) -> BTreeMap<NodeId, PeerCalls> {
        self.peers.lock().unwrap().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_errors_timeouts_and_latency_are_counted_per_peer() {
        let stats = RpcStats::default();
        let (a, b) = (NodeId(1), NodeId(2));
        stats.record(a, &Ok::<(), RpcError>(()), Duration::from_micros(1500));
        stats.record(
            a,
            &Err::<(), _>(RpcError::Timeout { peer: a, timeout_ms: 3 }),
            Duration::from_secs(9),
        );
        let remote = RpcError::Remote {
            peer: b,
            error: crate::rpc::RemoteError::Storage { reason: "x".into() },
        };
        stats.record(b, &Err::<(), _>(remote), Duration::ZERO);
        let snap = stats.snapshot();
        assert_eq!((snap[&a].calls, snap[&a].errors, snap[&a].timeouts), (2, 1, 1));
        assert_eq!(snap[&a].latency_buckets[1], 1, "1.5 ms lands in the 2 ms bucket");
        assert_eq!(
            snap[&a].latency_buckets[LATENCY_BUCKETS_MS.len()],
            1,
            "9 s is above every bound"
        );
        assert_eq!(snap[&a].latency_sum_us, 9_001_500);
        assert_eq!((snap[&b].calls, snap[&b].errors), (1, 0), "a remote error is an answer");
    }
}
