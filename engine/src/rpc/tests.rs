//! RPC over the in-memory world: multiplexing, the secret check, timeouts and reconnects.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::*;
use crate::testkit::{Switchboard, seam};

/// Answers `Get { key }` with the key itself, never answers `Get { "slow" }`.
struct Echo;

impl Handler for Echo {
    fn handle(
        self: Arc<Self>,
        _from: NodeId,
        request: Request,
    ) -> BoxFuture<'static, Result<Response, RemoteError>> {
        Box::pin(async move {
            match request {
                Request::Ping => Ok(Response::Pong),
                Request::Kv(KvRequest::Get { key }) if key == "slow" => {
                    std::future::pending::<()>().await;
                    unreachable!()
                }
                Request::Kv(KvRequest::Get { key }) => {
                    // Answer out of order: later requests overtake earlier ones.
                    let delay = 100 - key.len() as u64 % 100;
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    Ok(Response::Value(Some(key.into_bytes())))
                }
                _ => Err(RemoteError::NotForThisNode),
            }
        })
    }
}

async fn server(board: &Arc<Switchboard>, secret: &str) {
    let s = seam(board, "srv", 1);
    let listener = s.net.listen("srv").await.unwrap();
    tokio::spawn(serve(listener, s, secret.into(), Arc::new(Echo)));
}

fn client(board: &Arc<Switchboard>, secret: &str) -> Arc<RpcClient> {
    let config = RpcConfig { call_timeout_ms: 500, ..RpcConfig::default() };
    let rpc = RpcClient::new(NodeId(1), seam(board, "cli", 2), secret, config);
    rpc.set_peer_addr(NodeId(2), "srv".into());
    rpc
}

#[tokio::test(start_paused = true)]
async fn concurrent_calls_share_one_connection_and_get_their_own_answers() {
    let board = Arc::new(Switchboard::default());
    server(&board, "s3cret").await;
    let rpc = client(&board, "s3cret");
    let calls = (0..50).map(|i| {
        let rpc = rpc.clone();
        tokio::spawn(async move {
            let key = "k".repeat(i + 1);
            let answer =
                rpc.call(NodeId(2), Request::Kv(KvRequest::Get { key: key.clone() })).await;
            (key, answer)
        })
    });
    for call in calls.collect::<Vec<_>>() {
        let (key, answer) = call.await.unwrap();
        assert_eq!(answer, Ok(Response::Value(Some(key.into_bytes()))));
    }
    assert_eq!(board.connects.load(Ordering::Relaxed), 1);
}

#[tokio::test(start_paused = true)]
async fn a_wrong_secret_is_refused_with_a_message_naming_the_secret() {
    let board = Arc::new(Switchboard::default());
    server(&board, "right").await;
    let rpc = client(&board, "wrong");
    match rpc.call(NodeId(2), Request::Ping).await {
        Err(RpcError::Unreachable { reason, .. }) => {
            assert!(reason.contains("rpc_secret"), "{reason}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_call_drops_the_connection_and_the_next_call_reconnects() {
    let board = Arc::new(Switchboard::default());
    server(&board, "s").await;
    let rpc = client(&board, "s");
    let slow = rpc.call(NodeId(2), Request::Kv(KvRequest::Get { key: "slow".into() })).await;
    assert_eq!(slow, Err(RpcError::Timeout { peer: NodeId(2), timeout_ms: 500 }));
    assert_eq!(rpc.call(NodeId(2), Request::Ping).await, Ok(Response::Pong));
    assert_eq!(board.connects.load(Ordering::Relaxed), 2);
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_peer_is_retried_only_after_a_backoff() {
    let board = Arc::new(Switchboard::default());
    server(&board, "s").await;
    board.set_down("srv", true);
    let rpc = client(&board, "s");
    assert!(matches!(rpc.call(NodeId(2), Request::Ping).await, Err(RpcError::Unreachable { .. })));
    board.set_down("srv", false);
    // Within the backoff window the call fails fast without trying.
    match rpc.call(NodeId(2), Request::Ping).await {
        Err(RpcError::Unreachable { reason, .. }) => {
            assert!(reason.contains("backing off"), "{reason}")
        }
        other => panic!("expected backoff, got {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(RpcConfig::default().backoff_max_ms)).await;
    assert_eq!(rpc.call(NodeId(2), Request::Ping).await, Ok(Response::Pong));
}
