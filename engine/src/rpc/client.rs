//! The calling side: one connection per peer, requests multiplexed by id.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand_core::RngCore;
use snow::StatelessTransportState;
use tokio::io::{ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::RpcError;
use super::message::{Envelope, PROTOCOL_VERSION, Request, Response};
use super::noise::{self, Opener, Sealer};
use super::stats::{PeerCalls, RpcStats};
use crate::codec;
use crate::layout::NodeId;
use crate::seam::{BoxStream, NodeRng, Seam, monotonic_now};

/// Timeouts and bounds of the calling side.
#[derive(Debug, Clone)]
pub struct RpcConfig {
    pub call_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    pub backoff_min_ms: u64,
    pub backoff_max_ms: u64,
    /// Requests queued for one connection's writer before callers wait.
    pub send_queue_len: usize,
}

impl Default for RpcConfig {
    fn default() -> Self {
        RpcConfig {
            call_timeout_ms: 3_000,
            connect_timeout_ms: 2_000,
            backoff_min_ms: 100,
            backoff_max_ms: 5_000,
            send_queue_len: 256,
        }
    }
}

type Pending = Mutex<BTreeMap<u64, oneshot::Sender<Result<Response, RpcError>>>>;

/// A live connection to one peer.
struct Conn {
    peer: NodeId,
    out: mpsc::Sender<Vec<u8>>,
    pending: Arc<Pending>,
    next_id: AtomicU64,
    alive: Arc<AtomicBool>,
    tasks: Vec<AbortHandle>,
}

impl Conn {
    /// Stops both tasks and fails every call in flight. A wedged stream never wakes its
    /// reader, so aborting is the only way to free it.
    fn kill(&self) {
        self.alive.store(false, Ordering::SeqCst);
        for t in &self.tasks {
            t.abort();
        }
        fail_all(&self.pending, self.peer);
    }
}

fn fail_all(pending: &Pending, peer: NodeId) {
    let drained = std::mem::take(&mut *pending.lock().unwrap());
    for (_, tx) in drained {
        let _ = tx.send(Err(RpcError::ConnectionLost { peer }));
    }
}

#[derive(Default)]
struct PeerState {
    conn: Option<Arc<Conn>>,
    failures: u32,
    retry_at: Option<Instant>,
}

pub struct RpcClient {
    self_id: NodeId,
    seam: Seam,
    psk: [u8; 32],
    config: RpcConfig,
    addrs: Mutex<BTreeMap<NodeId, String>>,
    peers: Mutex<BTreeMap<NodeId, Arc<tokio::sync::Mutex<PeerState>>>>,
    rng: Mutex<NodeRng>,
    stats: RpcStats,
}

impl RpcClient {
    pub fn new(self_id: NodeId, seam: Seam, secret: &str, config: RpcConfig) -> Arc<Self> {
        let rng = Mutex::new(seam.rng("rpc-client"));
        Arc::new(RpcClient {
            self_id,
            seam,
            psk: noise::psk_from_secret(secret),
            config,
            addrs: Mutex::new(BTreeMap::new()),
            peers: Mutex::new(BTreeMap::new()),
            rng,
            stats: RpcStats::default(),
        })
    }

    /// Calls, errors, timeouts and latency per peer since start (for metrics).
    pub fn peer_stats(&self) -> BTreeMap<NodeId, PeerCalls> {
        self.stats.snapshot()
    }

    pub fn config(&self) -> &RpcConfig {
        &self.config
    }

    /// Records (or changes) the address of a peer.
    pub fn set_peer_addr(&self, peer: NodeId, addr: String) {
        self.addrs.lock().unwrap().insert(peer, addr);
    }

    /// Sends `request` to `peer` and waits for its answer, at most `call_timeout_ms`.
    pub async fn call(&self, peer: NodeId, request: Request) -> Result<Response, RpcError> {
        let started = monotonic_now();
        let result = self.call_once(peer, request).await;
        self.stats.record(peer, &result, started.elapsed());
        result
    }

    async fn call_once(&self, peer: NodeId, request: Request) -> Result<Response, RpcError> {
        let timeout_ms = self.config.call_timeout_ms;
        let deadline = monotonic_now() + Duration::from_millis(timeout_ms);
        let conn = match tokio::time::timeout_at(deadline, self.connection(peer)).await {
            Ok(conn) => conn?,
            Err(_) => return Err(RpcError::Timeout { peer, timeout_ms }),
        };
        let id = conn.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        conn.pending.lock().unwrap().insert(id, tx);
        let bytes = codec::encode(&Envelope::Request { id, body: request });
        let sent = tokio::time::timeout_at(deadline, conn.out.send(bytes)).await;
        if !matches!(sent, Ok(Ok(()))) {
            conn.pending.lock().unwrap().remove(&id);
            self.drop_connection(peer, &conn).await;
            return Err(RpcError::ConnectionLost { peer });
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(RpcError::ConnectionLost { peer }),
            Err(_) => {
                conn.pending.lock().unwrap().remove(&id);
                // The stream may be wedged by a partition: start over on the next call.
                self.drop_connection(peer, &conn).await;
                Err(RpcError::Timeout { peer, timeout_ms })
            }
        }
    }

    fn slot(&self, peer: NodeId) -> Arc<tokio::sync::Mutex<PeerState>> {
        self.peers.lock().unwrap().entry(peer).or_default().clone()
    }

    async fn drop_connection(&self, peer: NodeId, conn: &Arc<Conn>) {
        conn.kill();
        let slot = self.slot(peer);
        let mut state = slot.lock().await;
        if state.conn.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
            state.conn = None;
        }
    }

    async fn connection(&self, peer: NodeId) -> Result<Arc<Conn>, RpcError> {
        let slot = self.slot(peer);
        let mut state = slot.lock().await;
        if let Some(conn) = &state.conn {
            if conn.alive.load(Ordering::SeqCst) {
                return Ok(conn.clone());
            }
            state.conn = None;
        }
        if let Some(at) = state.retry_at
            && monotonic_now() < at
        {
            let wait_ms = (at - monotonic_now()).as_millis();
            let reason =
                format!("backing off after {} failures, retry in {wait_ms} ms", state.failures);
            return Err(RpcError::Unreachable { peer, reason });
        }
        match self.open(peer).await {
            Ok(conn) => {
                state.failures = 0;
                state.retry_at = None;
                state.conn = Some(conn.clone());
                Ok(conn)
            }
            Err(reason) => {
                state.failures += 1;
                state.retry_at = Some(monotonic_now() + self.backoff(state.failures));
                Err(RpcError::Unreachable { peer, reason })
            }
        }
    }

    /// Exponential backoff with ±25% jitter, so peers that lost each other do not all
    /// reconnect in lock step.
    fn backoff(&self, failures: u32) -> Duration {
        let exp =
            self.config.backoff_min_ms.saturating_mul(1 << failures.min(16).saturating_sub(1));
        let base = exp.min(self.config.backoff_max_ms);
        let jitter = self.rng.lock().unwrap().next_u64() % (base / 2 + 1);
        Duration::from_millis(base - base / 4 + jitter)
    }

    async fn open(&self, peer: NodeId) -> Result<Arc<Conn>, String> {
        let addr = self.addrs.lock().unwrap().get(&peer).cloned();
        let addr = addr.ok_or_else(|| format!("no address known for node {peer}"))?;
        let connect_timeout = Duration::from_millis(self.config.connect_timeout_ms);
        let setup = async {
            let mut stream = self.seam.net.connect(&addr).await.map_err(|e| e.to_string())?;
            let mut rng =
                self.seam.rng(&format!("handshake-{}", self.rng.lock().unwrap().next_u64()));
            let noise = noise::initiate(&mut stream, &self.psk, &mut rng)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((stream, noise))
        };
        let (stream, noise) = match tokio::time::timeout(connect_timeout, setup).await {
            Ok(r) => r.map_err(|e| format!("connecting to {addr}: {e}"))?,
            Err(_) => return Err(format!("connecting to {addr}: timed out")),
        };
        Ok(self.start_conn(peer, stream, noise))
    }

    fn start_conn(
        &self,
        peer: NodeId,
        stream: BoxStream,
        noise: StatelessTransportState,
    ) -> Arc<Conn> {
        let noise = Arc::new(noise);
        let (rd, wr) = tokio::io::split(stream);
        let (out_tx, out_rx) = mpsc::channel(self.config.send_queue_len);
        let pending: Arc<Pending> = Arc::default();
        let alive = Arc::new(AtomicBool::new(true));
        let hello =
            codec::encode(&Envelope::Hello { protocol: PROTOCOL_VERSION, from: self.self_id });
        out_tx.try_send(hello).expect("fresh queue has room");
        let writer = tokio::spawn(write_loop(wr, noise.clone(), out_rx, alive.clone()));
        let reader = tokio::spawn(read_loop(rd, noise, pending.clone(), alive.clone(), peer));
        let tasks = vec![writer.abort_handle(), reader.abort_handle()];
        Arc::new(Conn { peer, out: out_tx, pending, next_id: AtomicU64::new(1), alive, tasks })
    }
}

async fn write_loop(
    mut wr: WriteHalf<BoxStream>,
    noise: Arc<StatelessTransportState>,
    mut queue: mpsc::Receiver<Vec<u8>>,
    alive: Arc<AtomicBool>,
) {
    let mut sealer = Sealer::new();
    while let Some(msg) = queue.recv().await {
        if sealer.send(&mut wr, &noise, &msg).await.is_err() {
            break;
        }
    }
    alive.store(false, Ordering::SeqCst);
}

async fn read_loop(
    mut rd: ReadHalf<BoxStream>,
    noise: Arc<StatelessTransportState>,
    pending: Arc<Pending>,
    alive: Arc<AtomicBool>,
    peer: NodeId,
) {
    let mut opener = Opener::new();
    while let Ok(bytes) = opener.recv(&mut rd, &noise).await {
        let Ok(Envelope::Response { id, body }) = codec::decode("rpc envelope", &bytes) else {
            tracing::warn!(%peer, "unexpected message on a client connection; closing it");
            break;
        };
        let result = body.map_err(|error| RpcError::Remote { peer, error });
        if let Some(tx) = pending.lock().unwrap().remove(&id) {
            let _ = tx.send(result);
        }
    }
    alive.store(false, Ordering::SeqCst);
    fail_all(&pending, peer);
}
