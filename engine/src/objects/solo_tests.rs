//! Keys whose only replica is one node (RF 1, as `hangar dev` runs): the key's consensus
//! steps are committed without an fsync (`cas::Commit::Volatile`) and the table write's
//! durable commit carries them, so a write costs one fsync instead of three — and an
//! acknowledged write still survives a power loss.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::conditional::WriteCondition;
use super::{ObjectError, ObjectStore};
use crate::layout::{ClusterLayout, NodeId};
use crate::node::Node;
use crate::node_tests::{meta, node_config, test_role, wait_until};
use crate::table::{ConsistencyMode, Quorums};
use crate::testkit::{MemDisk, Switchboard, seam_on};

/// One node, RF 1, on `disk`: every key's replica set is this node alone.
async fn solo_node(board: &Arc<Switchboard>, disk: &Arc<MemDisk>, seed: u64) -> Arc<Node> {
    let mut layout = ClusterLayout::new(1).expect("RF 1 is valid");
    layout.stage_assign(NodeId(1), test_role(1)).expect("valid role");
    layout.apply_staged(1).expect("first layout applies");
    let mut config = node_config(1, BTreeMap::new(), layout, 1_000);
    config.quorums = Quorums::for_mode(ConsistencyMode::Consistent, 1);
    let node = Node::start(seam_on(board, "n1", seed, disk.clone()), config).await;
    let node = node.expect("node starts");
    wait_until("the solo node serves", 5_000, || !node.is_syncing()).await;
    node
}

#[tokio::test(start_paused = true)]
async fn a_write_of_a_solo_key_costs_one_fsync() {
    let (board, disk) = (Arc::new(Switchboard::default()), Arc::new(MemDisk::default()));
    let store = ObjectStore::new(solo_node(&board, &disk, 1).await);
    store.create_bucket("b").await.unwrap();
    const WRITES: u64 = 40;
    let before = disk.syncs();
    for i in 0..WRITES {
        let (key, etag) = (format!("k{}", i % 8), format!("e{i}"));
        if i % 2 == 0 {
            store.put_object("b", &key, meta("t", &etag), vec![i as u8; 4_096]).await.unwrap();
        } else {
            let create = WriteCondition::IfNoneMatch;
            let created = store.put_object_if("b", &key, meta("t", &etag), vec![1], &create);
            assert!(matches!(created.await, Ok(_) | Err(ObjectError::PreconditionFailed)));
        }
    }
    // Prepare and accept without fsync; the table write's commit is the only one (a
    // refused create writes nothing). redb also syncs when it grows the file, now and
    // then; three per write (prepare, accept, table) was the cost before.
    let syncs = disk.syncs() - before;
    assert!(
        (WRITES / 2..WRITES + WRITES / 4).contains(&syncs),
        "{syncs} fsyncs for {WRITES} writes"
    );
}

#[tokio::test(start_paused = true)]
async fn an_acknowledged_solo_write_survives_a_power_loss() {
    let (board, disk) = (Arc::new(Switchboard::default()), Arc::new(MemDisk::with_crashes()));
    let store = ObjectStore::new(solo_node(&board, &disk, 1).await);
    store.create_bucket("b").await.unwrap();
    store.put_object("b", "k", meta("t", "e1"), b"one".to_vec()).await.unwrap();
    let create = WriteCondition::IfNoneMatch;
    store.put_object_if("b", "c", meta("t", "c1"), b"created".to_vec(), &create).await.unwrap();
    // Power loss right after the answers: only synced bytes remain. The old process is
    // cut off the network; a new one starts on what the disk kept.
    disk.crash();
    board.kill("n1");
    drop(store);
    let store = ObjectStore::new(solo_node(&board, &disk, 2).await);
    assert_eq!(store.get_object("b", "k").await.unwrap().data, b"one".to_vec());
    assert_eq!(store.get_object("b", "c").await.unwrap().data, b"created".to_vec());
    // The key's consensus state came back consistent with the table.
    let again = store.put_object_if("b", "c", meta("t", "x"), b"x".to_vec(), &create).await;
    assert_eq!(again, Err(ObjectError::PreconditionFailed));
    let cond = WriteCondition::IfMatch("e1".into());
    store.put_object_if("b", "k", meta("t", "e2"), b"two".to_vec(), &cond).await.unwrap();
    assert_eq!(store.get_object("b", "k").await.unwrap().data, b"two".to_vec());
}
