//! Layout changes on a running cluster (`layout::manager`): a node added, removed or
//! replaced while a client keeps writing registers and multi-block objects, and a change
//! applied while a node is cut off.
//!
//! What they guard against: a read served by a replica set that has not yet received the
//! data it gained (an acknowledged value missing after the change), data left behind on
//! nodes that no longer hold a partition, and a transition that never completes after a
//! partition heals. Every wait is a bounded `wait_until` on virtual time.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::block::{block_partition, hash_of};
use crate::crdt::Lww;
use crate::kv::kv_key;
use crate::layout::NodeId;
use crate::node::Node;
use crate::node_tests::{SYNC_INTERVAL_MS, TestCluster, meta, patterned, test_role, wait_until};
use crate::objects::ObjectStore;
use crate::table::schema::partition_of_key;

/// Small blocks, so a few-KiB object spreads over several partitions.
const BLOCK_BYTES: usize = 1024;
const ROUNDS: u64 = 240;
const KEYS: u64 = 24;
const OBJECTS: u64 = 6;
/// Pause between two writes of the client, in virtual ms.
const THINK_MS: u64 = 25;
/// Bound on a transition (ack, sync, switch, drop) with no fault, in virtual ms.
const TRANSITION_MS: u64 = 60_000;

/// What the client got acknowledged: the last value of every register and object.
#[derive(Default)]
struct Acked {
    registers: BTreeMap<String, u64>,
    objects: BTreeMap<String, Vec<u8>>,
}

fn body(round: u64) -> Vec<u8> {
    // Above the inline limit, so the object is cut into blocks.
    let mut data = patterned(crate::objects::body::INLINE_MAX_BYTES + 2 * BLOCK_BYTES + 700);
    data[..8].copy_from_slice(&round.to_le_bytes());
    data
}

/// Writes registers (and every fourth round an object) through `coordinators` in turn,
/// `ROUNDS` times; every write must be acknowledged.
async fn write_load(coordinators: Vec<Arc<Node>>, acked: Arc<Mutex<Acked>>) {
    let stores: Vec<ObjectStore> =
        coordinators.iter().map(|n| ObjectStore::with_block_size(n.clone(), BLOCK_BYTES)).collect();
    stores[0].create_bucket("b").await.expect("bucket");
    for round in 0..ROUNDS {
        let i = (round as usize) % coordinators.len();
        let key = format!("k{}", round % KEYS);
        // Timestamps from the round: one sequential client, so later is newer.
        let entry = Lww::new(round + 1, Some(round.to_le_bytes().to_vec()));
        coordinators[i].kv.insert(kv_key(&key), &entry).await.unwrap_or_else(|e| {
            panic!("round {round}: register write through node {i} failed: {e}")
        });
        acked.lock().unwrap().registers.insert(key, round);
        // Read-after-write during the transition: a register written rounds ago, through
        // another coordinator, must read as acknowledged.
        let older = format!("k{}", (round + KEYS / 2) % KEYS);
        let reader = &coordinators[(i + 1) % coordinators.len()];
        let expected = acked.lock().unwrap().registers.get(&older).map(|r| r.to_le_bytes());
        let read = reader.kv.get(&kv_key(&older)).await.expect("quorum read");
        let read = read.and_then(|e| e.value().clone());
        assert_eq!(read, expected.map(|v| v.to_vec()), "round {round}: stale read of {older}");
        if round % 4 == 0 {
            let key = format!("o{}", (round / 4) % OBJECTS);
            let data = body(round);
            stores[i].put_object("b", &key, meta("a/b", &key), data.clone()).await.unwrap_or_else(
                |e| panic!("round {round}: object put through node {i} failed: {e}"),
            );
            acked.lock().unwrap().objects.insert(key, data);
        }
        tokio::time::sleep(Duration::from_millis(THINK_MS)).await;
    }
}

/// Whether every node's history holds exactly `version` (the transition is over).
fn settled_on(nodes: &[Arc<Node>], version: u64) -> bool {
    nodes.iter().all(|n| {
        let h = n.layout_history();
        h.versions().len() == 1 && h.current().map(|l| l.version()) == Some(version)
    })
}

/// Runs the load through `coordinators`, applying `change` on n1 after a tenth of it.
async fn change_under_load(
    cluster: &TestCluster,
    coordinators: &[u64],
    change: impl FnOnce(&Node),
) -> Acked {
    let acked = Arc::new(Mutex::new(Acked::default()));
    let nodes = coordinators.iter().map(|&n| cluster.node(n).clone()).collect();
    let load = tokio::spawn(write_load(nodes, acked.clone()));
    tokio::time::sleep(Duration::from_millis(ROUNDS * THINK_MS / 10)).await;
    change(cluster.node(1));
    load.await.expect("the load panicked");
    Arc::try_unwrap(acked).ok().expect("load finished").into_inner().unwrap()
}

/// After the transition: every acknowledged value is read back through every node of the
/// final layout, and each of them holds (locally) the entries and blocks of its partitions.
async fn assert_everything_readable_and_placed(cluster: &TestCluster, acked: &Acked) {
    let layout = cluster.node(1).current_layout().expect("a layout");
    let members: Vec<u64> = layout.roles().keys().map(|n| n.0).collect();
    for &m in &members {
        let node = cluster.node(m);
        let store = ObjectStore::with_block_size(node.clone(), BLOCK_BYTES);
        for (key, round) in &acked.registers {
            let value = node.kv.get(&kv_key(key)).await.expect("quorum read");
            let value = value.and_then(|e| e.value().clone());
            assert_eq!(value, Some(round.to_le_bytes().to_vec()), "{key} read through n{m}");
        }
        for (key, data) in &acked.objects {
            let got = store.get_object("b", key).await.unwrap_or_else(|e| panic!("{key}: {e}"));
            assert!(got.data == *data, "object {key} read through n{m} differs");
        }
    }
    // Local copies: anti-entropy and resync fill in what the quorum writes left out.
    wait_until("every replica holds its partitions' entries and blocks", TRANSITION_MS, || {
        members.iter().all(|&m| {
            let (node, id) = (cluster.node(m), NodeId(m));
            let registers = acked.registers.iter().all(|(key, round)| {
                let k = kv_key(key);
                !layout.nodes_of(partition_of_key(&k)).contains(&id)
                    || node.kv.local.get(&k).unwrap().and_then(|e| e.value().clone())
                        == Some(round.to_le_bytes().to_vec())
            });
            let blocks = acked.objects.values().flat_map(|d| d.chunks(BLOCK_BYTES)).all(|c| {
                let hash = hash_of(c);
                !layout.nodes_of(block_partition(&hash)).contains(&id)
                    || node.blocks.local_has(&hash).unwrap()
            });
            registers && blocks
        })
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_node_added_under_load_gets_its_partitions_and_no_acknowledged_write_is_lost() {
    let cluster = TestCluster::start_with_spares(3, 1, SYNC_INTERVAL_MS).await;
    wait_until("the spare learns the layout from its bootstrap peer", 10_000, || {
        cluster.node(4).current_layout().is_some_and(|l| l.version() == 1)
    })
    .await;
    let acked = change_under_load(&cluster, &[1, 2, 3], |n1| {
        n1.stage_role(NodeId(4), Some(test_role(4))).unwrap();
        n1.apply_staged(2).unwrap();
    })
    .await;
    wait_until("the transition to v2 completes", TRANSITION_MS, || settled_on(&cluster.nodes, 2))
        .await;
    let v2 = cluster.node(4).current_layout().unwrap();
    assert!(!v2.partitions_of(NodeId(4)).is_empty(), "n4 was given partitions");
    assert_everything_readable_and_placed(&cluster, &acked).await;
}

#[tokio::test(start_paused = true)]
async fn a_node_removed_under_load_hands_its_partitions_over() {
    let cluster = TestCluster::start_with_spares(4, 0, SYNC_INTERVAL_MS).await;
    let acked = change_under_load(&cluster, &[2, 3, 4], |n1| {
        n1.stage_role(NodeId(1), None).unwrap();
        n1.apply_staged(2).unwrap();
    })
    .await;
    wait_until("the transition to v2 completes", TRANSITION_MS, || settled_on(&cluster.nodes, 2))
        .await;
    assert!(cluster.node(2).current_layout().unwrap().partitions_of(NodeId(1)).is_empty());
    assert_everything_readable_and_placed(&cluster, &acked).await;
    // The removed node's table entries go once the layout settled (its blocks too, by the
    // block collector, after its delay).
    let n1 = cluster.node(1).clone();
    wait_until("n1 dropped the entries of the partitions it gave up", TRANSITION_MS, || {
        acked.registers.keys().all(|key| n1.kv.local.get(&kv_key(key)).unwrap().is_none())
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_node_replaced_under_load_is_replaced_without_losing_data() {
    let cluster = TestCluster::start_with_spares(3, 1, SYNC_INTERVAL_MS).await;
    let acked = change_under_load(&cluster, &[1, 2], |n1| {
        n1.stage_role(NodeId(3), None).unwrap();
        n1.stage_role(NodeId(4), Some(test_role(3))).unwrap();
        n1.apply_staged(2).unwrap();
    })
    .await;
    wait_until("the transition to v2 completes", TRANSITION_MS, || settled_on(&cluster.nodes, 2))
        .await;
    let v2 = cluster.node(1).current_layout().unwrap();
    assert_eq!(v2.partitions_of(NodeId(4)).len(), 256, "n4 took n3's place in every partition");
    // n3 is gone for good: what it held must now be served without it.
    cluster.set_down(3, true);
    assert_everything_readable_and_placed(&cluster, &acked).await;
}

#[tokio::test(start_paused = true)]
async fn a_change_during_a_partition_waits_for_the_cut_off_node_and_completes_after_heal() {
    let cluster = TestCluster::start_with_spares(3, 1, SYNC_INTERVAL_MS).await;
    wait_until("the spare learns the layout", 10_000, || {
        cluster.node(4).current_layout().is_some()
    })
    .await;
    cluster.set_down(3, true);
    let acked = change_under_load(&cluster, &[1, 2], |n1| {
        n1.stage_role(NodeId(4), Some(test_role(4))).unwrap();
        n1.apply_staged(2).unwrap();
    })
    .await;
    // n3 never acknowledged v2: reads must still come from v1, writes reach both.
    tokio::time::sleep(Duration::from_millis(10 * SYNC_INTERVAL_MS)).await;
    let h = cluster.node(1).layout_history();
    assert_eq!(h.versions().len(), 2, "the transition cannot finish without n3");
    assert_eq!(h.read_version().unwrap().version(), 1);
    for (key, round) in &acked.registers {
        let value = cluster.node(2).kv.get(&kv_key(key)).await.unwrap();
        assert_eq!(value.and_then(|e| e.value().clone()), Some(round.to_le_bytes().to_vec()));
    }
    cluster.set_down(3, false);
    wait_until("the transition completes after heal", TRANSITION_MS, || {
        settled_on(&cluster.nodes, 2)
    })
    .await;
    assert_everything_readable_and_placed(&cluster, &acked).await;
}

#[tokio::test(start_paused = true)]
async fn a_restarted_node_keeps_the_layout_it_learnt() {
    use crate::layout::manager::LayoutManager;
    let cluster = TestCluster::start_with_spares(3, 1, SYNC_INTERVAL_MS).await;
    let n1 = cluster.node(1);
    n1.stage_role(NodeId(4), Some(test_role(4))).unwrap();
    n1.apply_staged(2).unwrap();
    wait_until("the transition completes", TRANSITION_MS, || settled_on(&cluster.nodes, 2)).await;
    // Reopen n4's layout from its disk with the empty initial layout it was started with.
    let n4 = cluster.node(4);
    let empty = crate::layout::ClusterLayout::new(3).unwrap();
    let reopened = LayoutManager::open(NodeId(4), n4.seam.clone(), &empty).unwrap();
    assert_eq!(reopened.snapshot(), n4.layout_history());
}

/// The sharpest case for reads: the new replica sets share no node with the old ones, so a
/// read that moved to them before they synced would find nothing.
#[tokio::test(start_paused = true)]
async fn a_cluster_moved_to_three_new_nodes_serves_every_read_throughout() {
    let cluster = TestCluster::start_with_spares(3, 3, SYNC_INTERVAL_MS).await;
    wait_until("the spares learn the layout", 10_000, || {
        (4..=6).all(|n| cluster.node(n).current_layout().is_some())
    })
    .await;
    let acked = change_under_load(&cluster, &[1, 2, 3], |n1| {
        for n in 1..=3 {
            n1.stage_role(NodeId(n), None).unwrap();
            n1.stage_role(NodeId(n + 3), Some(test_role(n))).unwrap();
        }
        n1.apply_staged(2).unwrap();
    })
    .await;
    wait_until("the transition to v2 completes", TRANSITION_MS, || settled_on(&cluster.nodes, 2))
        .await;
    for n in 1..=3 {
        cluster.set_down(n, true);
    }
    assert_everything_readable_and_placed(&cluster, &acked).await;
}

#[tokio::test(start_paused = true)]
async fn a_dead_node_is_replaced_once_the_operator_skips_it() {
    let cluster = TestCluster::start_with_spares(3, 1, SYNC_INTERVAL_MS).await;
    wait_until("the spare learns the layout", 10_000, || {
        cluster.node(4).current_layout().is_some()
    })
    .await;
    cluster.set_down(3, true);
    let n1 = cluster.node(1);
    let err = n1.skip_dead_node(NodeId(3)).unwrap_err();
    assert!(err.to_string().contains("still has a role"), "{err}");
    let acked = change_under_load(&cluster, &[1, 2], |n1| {
        n1.stage_role(NodeId(3), None).unwrap();
        n1.stage_role(NodeId(4), Some(test_role(3))).unwrap();
        n1.apply_staged(2).unwrap();
    })
    .await;
    tokio::time::sleep(Duration::from_millis(10 * SYNC_INTERVAL_MS)).await;
    assert_eq!(n1.layout_history().versions().len(), 2, "waiting for the dead n3");
    n1.skip_dead_node(NodeId(3)).unwrap();
    let alive = [cluster.node(1).clone(), cluster.node(2).clone(), cluster.node(4).clone()];
    wait_until("the transition completes without n3", TRANSITION_MS, || settled_on(&alive, 2))
        .await;
    assert_everything_readable_and_placed(&cluster, &acked).await;
}
