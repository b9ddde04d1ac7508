//! A cluster restarted as a whole (a power cut at a one-site deployment, or `hangar dev
//! --nodes 3` restarted): every acceptor then counts each key as promised at its old
//! promise ceiling (`cas::acceptor`, "The promise ceiling"), so the first round of a write
//! is refused by all of them. That refusal comes from no competing proposer, so the write
//! outbids the ceilings at once instead of backing off.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::ObjectStore;
use super::conditional::BACKOFF_MS;
use crate::layout::NodeId;
use crate::node::Node;
use crate::node_tests::{SYNC_INTERVAL_MS, meta, node_config, node_name, test_layout, wait_until};
use crate::testkit::{MemDisk, Switchboard, seam_on};

/// Three nodes, RF 3, node `n` on `disks[n - 1]`.
async fn three_nodes(
    board: &Arc<Switchboard>,
    disks: &[Arc<MemDisk>],
    seed: u64,
) -> Vec<Arc<Node>> {
    let layout = test_layout(3);
    let mut nodes = Vec::new();
    for n in 1..=3u64 {
        let peers = (1..=3).filter(|&p| p != n).map(|p| (NodeId(p), node_name(p))).collect();
        let config = node_config(n, peers, layout.clone(), SYNC_INTERVAL_MS);
        let seam = seam_on(board, &node_name(n), seed + n, disks[n as usize - 1].clone());
        nodes.push(Node::start(seam, config).await.expect("node starts"));
    }
    wait_until("the nodes serve", 5_000, || nodes.iter().all(|n| !n.is_syncing())).await;
    nodes
}

/// Virtual milliseconds the first write of a key takes after the whole cluster restarted
/// (each node on its own disk, as it was).
async fn first_write_after_a_restart_ms(back_off_at_ceilings: bool) -> u64 {
    let board = Arc::new(Switchboard::default());
    let disks: Vec<_> = (0..3).map(|_| Arc::new(MemDisk::default())).collect();
    let nodes = three_nodes(&board, &disks, 1).await;
    let store = ObjectStore::new(nodes[0].clone());
    store.create_bucket("b").await.unwrap();
    store.put_object("b", "k", meta("t", "e1"), b"one".to_vec()).await.unwrap();
    for n in 1..=3 {
        board.kill(&node_name(n));
    }
    drop((store, nodes));

    let nodes = three_nodes(&board, &disks, 10).await;
    nodes[0].cas.test_knobs.back_off_at_ceilings.store(back_off_at_ceilings, Ordering::Relaxed);
    let store = ObjectStore::new(nodes[0].clone());
    let started = crate::seam::monotonic_now();
    store.put_object("b", "k", meta("t", "e2"), b"two".to_vec()).await.unwrap();
    let took = started.elapsed().as_millis() as u64;
    assert_eq!(store.get_object("b", "k").await.unwrap().data, b"two".to_vec());
    took
}

#[tokio::test(start_paused = true)]
async fn after_a_whole_cluster_restart_a_write_outbids_the_ceilings_at_once() {
    let took = first_write_after_a_restart_ms(false).await;
    assert!(took < BACKOFF_MS, "the write took {took} virtual ms");
}

/// The twin: backing off from ceilings as from another proposer delays that write by a
/// backoff, which shows the first round really was refused at the ceilings.
#[tokio::test(start_paused = true)]
async fn backing_off_from_the_ceilings_delays_the_first_write() {
    let took = first_write_after_a_restart_ms(true).await;
    assert!(took >= BACKOFF_MS, "the write took {took} virtual ms");
}
