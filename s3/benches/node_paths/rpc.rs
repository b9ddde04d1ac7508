//! One RPC round trip over loopback TCP with the production seam: Noise-encrypted frames,
//! the multiplexing client, the serving task. Three messages: a ping (pure overhead), a
//! table read answered with a 300-byte entry (the metadata path), and a 4 KiB block put
//! (a small object's body to a replica; the handler does not store it).

use std::sync::Arc;
use std::time::Instant;

use criterion::Criterion;
use hangar_engine::layout::NodeId;
use hangar_engine::rpc::message::BlockRequest;
use hangar_engine::rpc::{
    Handler, RemoteError, Request, Response, RpcClient, RpcConfig, TableRequest, serve,
};
use hangar_engine::seam::BoxFuture;
use hangar_s3::runtime::{FsyncPolicy, production_seam};

use crate::ScratchDir;

const SECRET: &str = "bench-rpc-secret";
const SERVER: NodeId = NodeId(2);

/// Answers at once, so the benchmark measures the transport.
struct Answer;

impl Handler for Answer {
    fn handle(
        self: Arc<Self>,
        _from: NodeId,
        request: Request,
    ) -> BoxFuture<'static, Result<Response, RemoteError>> {
        Box::pin(async move {
            match request {
                Request::Ping => Ok(Response::Pong),
                Request::Table(TableRequest::Read { .. }) => {
                    Ok(Response::Entry(Some(vec![7; 300])))
                }
                Request::Block(BlockRequest::Put { .. }) => Ok(Response::Done),
                _ => Err(RemoteError::NotForThisNode),
            }
        })
    }
}

fn free_loopback_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a probe socket");
    probe.local_addr().unwrap().port()
}

pub fn bench(c: &mut Criterion) {
    let scratch = ScratchDir::new("rpc");
    // Two workers, like `hangar` on this two-core machine.
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let addr = format!("127.0.0.1:{}", free_loopback_port());
    let client_dir = scratch.0.join("client");
    let client = runtime.block_on(async {
        let dir = scratch.0.join("server");
        let seam = production_seam(&dir, &dir, FsyncPolicy::default());
        let listener = seam.net.listen(&addr).await.expect("listen on loopback");
        tokio::spawn(serve(listener, seam, SECRET.into(), Arc::new(Answer)));
        let client = RpcClient::new(
            NodeId(1),
            production_seam(&client_dir, &client_dir, FsyncPolicy::default()),
            SECRET,
            RpcConfig::default(),
        );
        client.set_peer_addr(SERVER, addr.clone());
        // Connect and handshake once, outside the measurement.
        client.call(SERVER, Request::Ping).await.expect("first call");
        client
    });

    let table_read =
        Request::Table(TableRequest::Read { table: "object".into(), key: vec![3; 48] });
    let block_put = Request::Block(BlockRequest::Put { hash: [9; 32], data: vec![1; 4096] });
    let mut group = c.benchmark_group("rpc_loopback");
    for (name, request, expected) in [
        ("ping", Request::Ping, Response::Pong),
        ("table_read_300B", table_read, Response::Entry(Some(vec![7; 300]))),
        ("block_put_4KiB", block_put, Response::Done),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let (client, request, expected) =
                    (client.clone(), request.clone(), expected.clone());
                runtime.block_on(async move {
                    let started = Instant::now();
                    for _ in 0..iters {
                        let answer = client.call(SERVER, request.clone()).await;
                        assert_eq!(answer.as_ref(), Ok(&expected));
                    }
                    started.elapsed()
                })
            })
        });
    }
    group.finish();
    drop(runtime);
}
