//! The answering side: accept connections, check the secret, serve requests concurrently.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};

use super::Handler;
use super::message::{Envelope, PROTOCOL_VERSION};
use super::noise::{self, Opener, Sealer};
use crate::codec;
use crate::seam::{BoxStream, Listener, Seam};

/// Requests one connection may have in flight before we stop reading from it.
const IN_FLIGHT_PER_CONNECTION: usize = 64;
const HANDSHAKE_TIMEOUT_MS: u64 = 5_000;
/// A connection that brings no request for this long is closed. Clients drop connections
/// on timeouts, and under a partition their close never arrives: this frees our side.
const IDLE_TIMEOUT_MS: u64 = 60_000;
/// How long queued answers may take to drain when a connection ends.
const DRAIN_TIMEOUT_MS: u64 = 5_000;

/// Accepts connections forever, serving each on its own task.
pub async fn serve(
    mut listener: Box<dyn Listener>,
    seam: Seam,
    secret: String,
    handler: Arc<dyn Handler>,
) {
    let psk = noise::psk_from_secret(&secret);
    let counter = Arc::new(AtomicU64::new(0));
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "rpc accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let n = counter.fetch_add(1, Ordering::Relaxed);
        let mut rng = seam.rng(&format!("rpc-accept-{n}"));
        let handler = handler.clone();
        tokio::spawn(async move {
            let mut stream = stream;
            let hs = noise::respond(&mut stream, &psk, &mut rng);
            match tokio::time::timeout(Duration::from_millis(HANDSHAKE_TIMEOUT_MS), hs).await {
                Ok(Ok(noise)) => serve_connection(stream, noise, handler).await,
                Ok(Err(e)) => tracing::warn!(peer_addr = %addr, "refused rpc connection: {e}"),
                Err(_) => tracing::warn!(peer_addr = %addr, "rpc handshake timed out"),
            }
        });
    }
}

async fn serve_connection(
    stream: BoxStream,
    noise: snow::StatelessTransportState,
    handler: Arc<dyn Handler>,
) {
    let noise = Arc::new(noise);
    let (mut rd, mut wr) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(IN_FLIGHT_PER_CONNECTION);
    let writer_noise = noise.clone();
    let writer = tokio::spawn(async move {
        let mut sealer = Sealer::new();
        while let Some(msg) = rx.recv().await {
            if sealer.send(&mut wr, &writer_noise, &msg).await.is_err() {
                break;
            }
        }
    });
    let mut opener = Opener::new();
    let from = match opener.recv(&mut rd, &noise).await.map(|b| codec::decode("hello", &b)) {
        Ok(Ok(Envelope::Hello { protocol, from })) if protocol == PROTOCOL_VERSION => from,
        Ok(Ok(Envelope::Hello { protocol, from })) => {
            tracing::warn!(%from, protocol, ours = PROTOCOL_VERSION, "peer speaks another protocol");
            writer.abort();
            return;
        }
        _ => {
            writer.abort();
            return;
        }
    };
    let permits = Arc::new(Semaphore::new(IN_FLIGHT_PER_CONNECTION));
    let idle = Duration::from_millis(IDLE_TIMEOUT_MS);
    while let Ok(Ok(bytes)) = tokio::time::timeout(idle, opener.recv(&mut rd, &noise)).await {
        let Ok(Envelope::Request { id, body }) = codec::decode::<Envelope>("rpc envelope", &bytes)
        else {
            tracing::warn!(%from, "malformed rpc message; closing the connection");
            break;
        };
        let permit = permits.clone().acquire_owned().await.expect("semaphore never closed");
        let handler = handler.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let body = handler.handle(from, body).await;
            let _ = tx.send(codec::encode(&Envelope::Response { id, body })).await;
            drop(permit);
        });
    }
    drop(tx);
    // Let queued answers drain (the writer ends when every sender is gone), but a wedged
    // stream must not keep the task alive forever.
    let abort = writer.abort_handle();
    if tokio::time::timeout(Duration::from_millis(DRAIN_TIMEOUT_MS), writer).await.is_err() {
        abort.abort();
    }
}
