//! Three nodes in the in-memory world (`testkit`), and the `ObjectStore` served over them.
//!
//! `TestCluster` is shared with the table tests (`table/tests.rs`): n1..n3 in zones z1..z3,
//! replication factor 3 (every node holds every partition), consistent quorums (2 of 3),
//! 500 ms RPC timeouts. Tests run on paused tokio time: waiting costs no wall time, and every
//! wait is a bounded loop over a condition (`wait_until`), never a sleep-and-hope.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::layout::{ClusterLayout, NodeId, NodeRole};
use crate::node::{Node, NodeConfig};
use crate::objects::{ObjectError, ObjectMeta, ObjectStore, Versioning};
use crate::rpc::RpcConfig;
use crate::table::{ConsistencyMode, Quorums};
use crate::testkit::{Switchboard, seam};

pub(crate) const NODE_COUNT: u64 = 3;
/// Anti-entropy period of `TestCluster::start`.
pub(crate) const SYNC_INTERVAL_MS: u64 = 1_000;
/// Step of `wait_until`'s polling, in virtual time.
const POLL_STEP_MS: u64 = 50;

pub(crate) struct TestCluster {
    pub board: Arc<Switchboard>,
    /// n1, n2, n3 (then any spare nodes) in that order.
    pub nodes: Vec<Arc<Node>>,
    /// How many of `nodes` are in the first layout (the others are spares).
    pub members: u64,
}

pub(crate) fn node_name(n: u64) -> String {
    format!("n{n}")
}

/// Node `n`'s role in test layouts: zone `z<n>`, capacity 1.
pub(crate) fn test_role(n: u64) -> NodeRole {
    NodeRole { zone: format!("z{n}"), capacity: 1, tags: Vec::new() }
}

pub(crate) fn test_layout(nodes: u64) -> ClusterLayout {
    let mut layout = ClusterLayout::new(NODE_COUNT as usize).expect("RF 3 is valid");
    for n in 1..=nodes {
        layout.stage_assign(NodeId(n), test_role(n)).expect("valid role");
    }
    layout.apply_staged(1).expect("first layout applies");
    layout
}

pub(crate) fn node_config(
    n: u64,
    peers: BTreeMap<NodeId, String>,
    layout: ClusterLayout,
    sync_interval_ms: u64,
) -> NodeConfig {
    NodeConfig {
        id: NodeId(n),
        rpc_bind_addr: node_name(n),
        public_addr: None,
        peers,
        layout,
        rpc_secret: "test-secret".into(),
        quorums: Quorums::for_mode(ConsistencyMode::Consistent, NODE_COUNT as usize),
        rpc: test_rpc_config(),
        sync_interval_ms,
        gc: Default::default(),
        repair: Default::default(),
        metadata_cache_bytes: crate::seam::DEFAULT_METADATA_CACHE_BYTES,
    }
}

fn test_rpc_config() -> RpcConfig {
    RpcConfig {
        call_timeout_ms: 500,
        connect_timeout_ms: 500,
        backoff_min_ms: 100,
        backoff_max_ms: 1_000,
        ..RpcConfig::default()
    }
}

impl TestCluster {
    pub async fn start() -> Self {
        Self::start_with_sync_interval(SYNC_INTERVAL_MS).await
    }

    /// A cluster whose anti-entropy runs every `sync_interval_ms` (a huge value keeps it out
    /// of a test, so that only the mechanism under test can repair a replica).
    pub async fn start_with_sync_interval(sync_interval_ms: u64) -> Self {
        Self::start_with_spares(NODE_COUNT, 0, sync_interval_ms).await
    }

    /// `members` nodes in the first layout (RF 3), each knowing all the others, plus
    /// `spares` nodes started without a layout and with only n1 as bootstrap peer (they
    /// learn the layout and the other addresses by gossip).
    pub async fn start_with_spares(members: u64, spares: u64, sync_interval_ms: u64) -> Self {
        let board = Arc::new(Switchboard::default());
        let layout = test_layout(members);
        let mut nodes = Vec::new();
        for n in 1..=members + spares {
            let (peers, layout) = if n <= members {
                let peers = (1..=members).filter(|&p| p != n);
                (peers.map(|p| (NodeId(p), node_name(p))).collect(), layout.clone())
            } else {
                let empty = ClusterLayout::new(NODE_COUNT as usize).expect("RF 3 is valid");
                (BTreeMap::from([(NodeId(1), node_name(1))]), empty)
            };
            let config = node_config(n, peers, layout, sync_interval_ms);
            let node = Node::start(seam(&board, &node_name(n), n), config).await;
            nodes.push(node.expect("node starts"));
        }
        let cluster = TestCluster { board, nodes, members };
        // Every node starts blank and refuses reads until its first full sync (node.rs).
        wait_until("a fresh cluster finished its blank sync", 5_000, || {
            cluster.nodes[..members as usize].iter().all(|n| !n.is_syncing())
        })
        .await;
        cluster
    }

    /// Node `n` (a member) loses its disk: its old incarnation is cut off the network and a
    /// new one starts on an empty disk under the same name, with the cluster's first layout.
    /// Returns once it listens; it is then blank and syncing.
    pub async fn restart_blank(&mut self, n: u64, sync_interval_ms: u64) {
        self.restart_blank_with_layout(n, sync_interval_ms, test_layout(self.members)).await;
    }

    /// `restart_blank`, the new incarnation starting with `layout`: an unapplied (version 0)
    /// layout is a wiped node that has not learnt the layout by gossip yet, as in a real
    /// deployment, where the layout lives in the metadata directory and not in the config.
    pub async fn restart_blank_with_layout(
        &mut self,
        n: u64,
        sync_interval_ms: u64,
        layout: ClusterLayout,
    ) {
        // Every connection to the old incarnation breaks, so peers reconnect to the new
        // listener (which replaces the old one on the switchboard).
        self.board.kill(&node_name(n));
        let members = self.members;
        let peers = (1..=members).filter(|&p| p != n).map(|p| (NodeId(p), node_name(p)));
        let config = node_config(n, peers.collect(), layout, sync_interval_ms);
        // A different seed than the first incarnation: a new process.
        let node = Node::start(seam(&self.board, &node_name(n), n + 1_000), config).await;
        self.nodes[n as usize - 1] = node.expect("node restarts");
        // A peer learns that its connection broke from its next call (it fails, as calls
        // to a crashed process do); spend that call on a ping so the test's own calls
        // reach the new incarnation.
        for p in (1..=members).filter(|&p| p != n) {
            let ping = self.node(p).rpc.call(NodeId(n), crate::rpc::Request::Ping).await;
            drop(ping);
        }
    }

    /// Node `n` (1-based, as in its name).
    pub fn node(&self, n: u64) -> &Arc<Node> {
        &self.nodes[n as usize - 1]
    }

    pub fn set_down(&self, n: u64, down: bool) {
        self.board.set_down(&node_name(n), down);
    }
}

/// Polls `condition` every `POLL_STEP_MS` of virtual time; panics naming `what` if it does
/// not hold within `limit_ms`.
pub(crate) async fn wait_until(what: &str, limit_ms: u64, mut condition: impl FnMut() -> bool) {
    let mut waited_ms = 0;
    while !condition() {
        assert!(waited_ms < limit_ms, "{what}: still false after {limit_ms} virtual ms");
        tokio::time::sleep(Duration::from_millis(POLL_STEP_MS)).await;
        waited_ms += POLL_STEP_MS;
    }
}

pub(crate) fn meta(content_type: &str, etag: &str) -> ObjectMeta {
    ObjectMeta {
        content_type: content_type.into(),
        user_metadata: BTreeMap::from([("owner".to_string(), "ops".to_string())]),
        etag: etag.into(),
    }
}

/// One `ObjectStore` per node, so each call can pick its coordinator.
pub(crate) async fn object_stores() -> (TestCluster, Vec<ObjectStore>) {
    stores_of(TestCluster::start().await)
}

/// For tests that wait many virtual minutes: anti-entropy once a minute instead of once a
/// second keeps them fast, and they do not rely on it.
async fn object_stores_quiet() -> (TestCluster, Vec<ObjectStore>) {
    stores_of(TestCluster::start_with_sync_interval(60_000).await)
}

fn stores_of(cluster: TestCluster) -> (TestCluster, Vec<ObjectStore>) {
    let stores = cluster.nodes.iter().cloned().map(ObjectStore::new).collect();
    (cluster, stores)
}

async fn put(store: &ObjectStore, bucket: &str, key: &str) {
    let data = format!("body of {key}").into_bytes();
    store
        .put_object(bucket, key, meta("text/plain", key), data)
        .await
        .unwrap_or_else(|e| panic!("put {bucket}/{key}: {e}"));
}

fn keys(records: &[crate::objects::ObjectRecord]) -> Vec<&str> {
    records.iter().map(|r| r.key.as_str()).collect()
}

#[tokio::test(start_paused = true)]
async fn creating_a_bucket_twice_fails_even_through_another_node() {
    let (_cluster, s) = object_stores().await;
    s[0].create_bucket("photos").await.unwrap();
    assert_eq!(s[0].create_bucket("photos").await, Err(ObjectError::BucketAlreadyExists));
    assert_eq!(s[2].create_bucket("photos").await, Err(ObjectError::BucketAlreadyExists));
    assert_eq!(s[1].head_bucket("photos").await.unwrap().name, "photos");
}

#[tokio::test(start_paused = true)]
async fn an_object_put_through_one_node_is_read_with_its_metadata_through_another() {
    let (_cluster, s) = object_stores().await;
    s[0].create_bucket("b").await.unwrap();
    let body = b"hello, hangar".to_vec();
    let put = s[0].put_object("b", "dir/greeting.txt", meta("text/plain", "e1"), body.clone());
    let put = put.await.unwrap();
    assert!(put.data.is_empty(), "put answers without the body");
    assert_eq!(put.size_bytes, body.len() as u64);

    let got = s[1].get_object("b", "dir/greeting.txt").await.unwrap();
    assert_eq!(got.data, body);
    assert_eq!(got.size_bytes, body.len() as u64);
    assert_eq!((got.content_type.as_str(), got.etag.as_str()), ("text/plain", "e1"));
    assert_eq!(got.user_metadata.get("owner").map(String::as_str), Some("ops"));
    assert_eq!(got.key, "dir/greeting.txt");
}

#[tokio::test(start_paused = true)]
async fn objects_are_not_found_in_a_missing_bucket_or_under_a_missing_key() {
    let (_cluster, s) = object_stores().await;
    assert_eq!(s[0].get_object("nope", "k").await, Err(ObjectError::NoSuchBucket));
    let put = s[0].put_object("nope", "k", ObjectMeta::default(), vec![1]).await;
    assert_eq!(put, Err(ObjectError::NoSuchBucket));
    s[0].create_bucket("b").await.unwrap();
    assert_eq!(s[1].get_object("b", "k").await, Err(ObjectError::NoSuchKey));
}

#[tokio::test(start_paused = true)]
async fn listing_honours_prefix_start_after_and_max_keys_in_key_order() {
    let (_cluster, s) = object_stores().await;
    s[0].create_bucket("b").await.unwrap();
    // Written out of order, through different coordinators.
    for (i, key) in ["b/2", "a/1", "b/1", "c", "a/2", "b/3"].into_iter().enumerate() {
        put(&s[i % 3], "b", key).await;
    }
    let all = s[1].list_objects("b", "", "", 100).await.unwrap();
    assert_eq!(keys(&all), ["a/1", "a/2", "b/1", "b/2", "b/3", "c"]);
    assert!(all.iter().all(|r| r.data.is_empty()), "listings carry no bodies");
    assert!(all.iter().all(|r| r.size_bytes > 0), "but they keep the sizes");

    let under_b = s[2].list_objects("b", "b/", "", 100).await.unwrap();
    assert_eq!(keys(&under_b), ["b/1", "b/2", "b/3"]);
    let after = s[0].list_objects("b", "b/", "b/1", 100).await.unwrap();
    assert_eq!(keys(&after), ["b/2", "b/3"]);
    let first_two = s[0].list_objects("b", "", "a/1", 2).await.unwrap();
    assert_eq!(keys(&first_two), ["a/2", "b/1"]);
    assert!(s[0].list_objects("b", "d", "", 100).await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_deleted_object_is_gone_from_gets_and_listings() {
    let (_cluster, s) = object_stores().await;
    s[0].create_bucket("b").await.unwrap();
    put(&s[0], "b", "keep").await;
    put(&s[0], "b", "drop").await;
    s[0].delete_object("b", "drop").await.unwrap();
    for store in &s {
        assert_eq!(store.get_object("b", "drop").await, Err(ObjectError::NoSuchKey));
    }
    assert_eq!(keys(&s[1].list_objects("b", "", "", 10).await.unwrap()), ["keep"]);
    // The tombstone takes the first slot of the range read; the listing still fills up.
    assert_eq!(keys(&s[1].list_objects("b", "", "", 1).await.unwrap()), ["keep"]);
}

#[tokio::test(start_paused = true)]
async fn a_bucket_can_be_deleted_only_once_it_is_empty() {
    let (_cluster, s) = object_stores().await;
    s[0].create_bucket("b").await.unwrap();
    put(&s[0], "b", "only").await;
    assert_eq!(s[1].delete_bucket("b").await, Err(ObjectError::BucketNotEmpty));
    assert!(s[1].head_bucket("b").await.is_ok(), "a refused delete leaves the bucket");

    s[0].delete_object("b", "only").await.unwrap();
    s[0].delete_bucket("b").await.unwrap();
    assert_eq!(s[2].head_bucket("b").await, Err(ObjectError::NoSuchBucket));
    assert_eq!(s[2].delete_bucket("b").await, Err(ObjectError::NoSuchBucket));
    assert!(s[1].list_buckets().await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn list_buckets_returns_live_buckets_in_name_order() {
    let (_cluster, s) = object_stores().await;
    for (i, name) in ["zeta", "alpha", "mid", "gone"].into_iter().enumerate() {
        s[i % 3].create_bucket(name).await.unwrap();
    }
    s[0].delete_bucket("gone").await.unwrap();
    for store in &s {
        let names: Vec<String> =
            store.list_buckets().await.unwrap().into_iter().map(|b| b.name).collect();
        assert_eq!(names, ["alpha", "mid", "zeta"]);
    }
}

// Regression: a coordinator used to stamp a write with its own clock only, ignoring the
// timestamp of the entry the write replaces. A write through a node whose stamps lag (clock
// skew, or as here every clock frozen at 1000 ms: n1's stamps run 1000, 1001, 1002 while
// n2's first is 1000) was acknowledged and then lost the last-writer-wins merge against the
// older operation it followed. Writers now read first and stamp above what they saw.

#[tokio::test(start_paused = true)]
async fn an_object_put_through_another_node_after_a_delete_is_visible() {
    let (_cluster, s) = object_stores().await;
    s[0].create_bucket("b").await.unwrap(); // n1 stamps 1000
    put(&s[0], "b", "k").await; // 1001
    s[0].delete_object("b", "k").await.unwrap(); // 1002
    put(&s[1], "b", "k").await; // n2 stamps 1000: acknowledged, then outranked by the delete
    assert!(s[1].get_object("b", "k").await.is_ok(), "the acknowledged put is lost");
}

#[tokio::test(start_paused = true)]
async fn a_bucket_recreated_through_another_node_after_a_delete_exists() {
    let (_cluster, s) = object_stores().await;
    s[0].create_bucket("b").await.unwrap(); // n1 stamps 1000
    s[0].delete_bucket("b").await.unwrap(); // 1001
    s[1].create_bucket("b").await.unwrap(); // n2 stamps 1000, though it read the 1001 tombstone
    assert!(s[1].head_bucket("b").await.is_ok(), "the acknowledged create is lost");
}

/// A body of `len` bytes that does not repeat within a block, so its blocks differ.
pub(crate) fn patterned(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u64).wrapping_mul(2_654_435_761).to_le_bytes()[3]).collect()
}

#[tokio::test(start_paused = true)]
async fn a_large_object_is_stored_as_replicated_blocks_and_read_back_whole() {
    let (cluster, s) = object_stores().await;
    s[0].create_bucket("b").await.unwrap();
    let data = patterned(2 * crate::block::BLOCK_SIZE_BYTES_DEFAULT + 12_345);
    s[0].put_object("b", "big", meta("application/octet-stream", "big"), data.clone())
        .await
        .unwrap();
    for (i, node) in cluster.nodes.iter().enumerate() {
        assert_eq!(node.blocks.local_list().unwrap().len(), 3, "node {i} holds every block");
        assert_eq!(s[i].get_object("b", "big").await.unwrap().data, data, "read via node {i}");
        let head = s[i].head_object("b", "big").await.unwrap();
        assert_eq!((head.size_bytes, head.data.len()), (data.len() as u64, 0));
    }
}

#[tokio::test(start_paused = true)]
async fn a_small_object_stays_inline_and_stores_no_block() {
    let (cluster, s) = object_stores().await;
    s[0].create_bucket("b").await.unwrap();
    let data = patterned(crate::objects::body::INLINE_MAX_BYTES);
    s[0].put_object("b", "small", meta("text/plain", "small"), data.clone()).await.unwrap();
    assert_eq!(s[1].get_object("b", "small").await.unwrap().data, data);
    assert!(cluster.nodes.iter().all(|n| n.blocks.local_list().unwrap().is_empty()));
}

#[tokio::test(start_paused = true)]
async fn a_large_put_without_a_block_quorum_fails_and_leaves_no_visible_object() {
    let (cluster, s) = object_stores().await;
    s[0].create_bucket("b").await.unwrap();
    cluster.set_down(2, true);
    cluster.set_down(3, true);
    let data = patterned(crate::objects::body::INLINE_MAX_BYTES + 1);
    let err = s[0].put_object("b", "k", meta("text/plain", "k"), data).await.unwrap_err();
    assert!(matches!(err, ObjectError::Unavailable { .. }), "{err:?}");
    cluster.set_down(2, false);
    cluster.set_down(3, false);
    // Past every reconnect backoff, so the read below reaches the other nodes.
    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    assert_eq!(s[1].get_object("b", "k").await.unwrap_err(), ObjectError::NoSuchKey);
}

#[tokio::test(start_paused = true)]
async fn a_versioned_bucket_keeps_every_version_and_delete_markers() {
    let (_cluster, s) = object_stores().await;
    s[0].create_bucket("v").await.unwrap();
    s[0].set_versioning("v", Versioning::Enabled).await.unwrap();
    let one = s[0].put_object("v", "k", meta("text/plain", "1"), b"one".to_vec()).await.unwrap();
    let two = s[1].put_object("v", "k", meta("text/plain", "2"), b"two".to_vec()).await.unwrap();
    assert_eq!(s[2].get_object("v", "k").await.unwrap().data, b"two");
    let old = s[2].get_object_version("v", "k", Some(&one.version_id.to_hex())).await.unwrap();
    assert_eq!(old.data, b"one");

    let marker = s[0].delete_object("v", "k").await.unwrap();
    assert_eq!(s[1].get_object("v", "k").await.unwrap_err(), ObjectError::NoSuchKey);
    let listing = s[1].list_object_versions("v", "", "", 10).await.unwrap();
    let ids: Vec<_> =
        listing.iter().map(|l| (l.version_id, l.is_latest, l.object.is_some())).collect();
    assert_eq!(
        ids,
        vec![(marker, true, false), (two.version_id, false, true), (one.version_id, false, true)]
    );

    // Removing the marker by id brings the previous version back.
    s[2].delete_object_version("v", "k", &marker.to_hex()).await.unwrap();
    assert_eq!(s[0].get_object("v", "k").await.unwrap().data, b"two");
}

#[tokio::test(start_paused = true)]
async fn an_unversioned_bucket_keeps_only_the_current_version() {
    let (_cluster, s) = object_stores().await;
    s[0].create_bucket("b").await.unwrap();
    let one = s[0].put_object("b", "k", meta("text/plain", "1"), b"one".to_vec()).await.unwrap();
    s[1].put_object("b", "k", meta("text/plain", "2"), b"two".to_vec()).await.unwrap();
    let old = s[2].get_object_version("b", "k", Some(&one.version_id.to_hex())).await;
    assert_eq!(old.unwrap_err(), ObjectError::NoSuchVersion);
    assert_eq!(s[2].list_object_versions("b", "", "", 10).await.unwrap().len(), 1);
    let bad = s[2].get_object_version("b", "k", Some("not-a-version")).await;
    assert_eq!(bad.unwrap_err(), ObjectError::NoSuchVersion);
}

#[tokio::test(start_paused = true)]
async fn a_failed_large_overwrite_leaves_the_previous_version_current() {
    let (cluster, s) = object_stores().await;
    s[0].create_bucket("b").await.unwrap();
    s[0].put_object("b", "k", meta("text/plain", "1"), b"before".to_vec()).await.unwrap();
    // Two replicas down: the PUT reaches no quorum at any step.
    cluster.set_down(2, true);
    cluster.set_down(3, true);
    let big = patterned(crate::objects::body::INLINE_MAX_BYTES * 4);
    assert!(s[0].put_object("b", "k", meta("text/plain", "2"), big).await.is_err());
    cluster.set_down(2, false);
    cluster.set_down(3, false);
    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    assert_eq!(s[1].get_object("b", "k").await.unwrap().data, b"before");
}

#[tokio::test(start_paused = true)]
async fn an_upload_in_progress_is_never_served() {
    use crate::objects::version::{ObjectEntry, Version, VersionId, VersionState};
    let (cluster, s) = object_stores().await;
    s[0].create_bucket("b").await.unwrap();
    let done = s[0].put_object("b", "k", meta("text/plain", "1"), b"done".to_vec()).await.unwrap();
    // What a writer that crashed after recording its upload leaves behind.
    let newer = VersionId { timestamp: done.version_id.timestamp + 1_000, unique: 9 };
    let upload = ObjectEntry::with(newer, Version::new(VersionState::Uploading, false));
    let key = crate::table::entry_key(b"b", b"k");
    cluster.node(1).objects.insert(key, &upload).await.unwrap();
    assert_eq!(s[1].get_object("b", "k").await.unwrap().data, b"done");
    assert_eq!(s[2].list_objects("b", "", "", 10).await.unwrap()[0].version_id, done.version_id);
}

/// Longer than the collector's default delay plus a pass or two, in virtual time.
pub(crate) async fn let_gc_run() {
    tokio::time::sleep(std::time::Duration::from_secs(15 * 60)).await;
}

pub(crate) fn blocks_on_each_node(cluster: &TestCluster) -> Vec<usize> {
    cluster.nodes.iter().map(|n| n.blocks.local_list().unwrap().len()).collect()
}

#[tokio::test(start_paused = true)]
async fn an_overwritten_body_s_blocks_are_collected_and_the_new_ones_kept() {
    let (cluster, s) = object_stores_quiet().await;
    s[0].create_bucket("b").await.unwrap();
    let old = patterned(2 * crate::block::BLOCK_SIZE_BYTES_DEFAULT);
    let new: Vec<u8> =
        patterned(crate::block::BLOCK_SIZE_BYTES_DEFAULT + 10).into_iter().rev().collect();
    s[0].put_object("b", "k", meta("a/b", "k"), old).await.unwrap();
    s[1].put_object("b", "k", meta("a/b", "k"), new.clone()).await.unwrap();
    assert_eq!(blocks_on_each_node(&cluster), vec![4, 4, 4]);
    let_gc_run().await;
    assert_eq!(blocks_on_each_node(&cluster), vec![2, 2, 2], "the old body's 2 blocks are gone");
    assert_eq!(s[2].get_object("b", "k").await.unwrap().data, new);
}

/// Every `block_ref` entry this node holds, deleted or not.
fn local_block_refs(node: &Node) -> Vec<crate::objects::block_ref::BlockRef> {
    let table = &node.tables["block_ref"];
    let entries = (0..=u8::MAX).flat_map(|p| table.partition_entries(p).unwrap());
    entries.map(|(_, v)| crate::table::schema::decode_entry(&v).unwrap()).collect()
}

/// The references an overwrite retired are tombstones; once every replica holds them they
/// are collected, and the live object keeps its own references and its data.
#[tokio::test(start_paused = true)]
async fn retired_block_references_are_collected_and_live_ones_kept() {
    let (cluster, s) = object_stores_quiet().await;
    s[0].create_bucket("b").await.unwrap();
    let size = 2 * crate::block::BLOCK_SIZE_BYTES_DEFAULT;
    let new: Vec<u8> = patterned(size).into_iter().rev().collect();
    s[0].put_object("b", "k", meta("a/b", "k"), patterned(size)).await.unwrap();
    s[1].put_object("b", "k", meta("a/b", "k"), new.clone()).await.unwrap();
    let_gc_run().await;
    let refs = local_block_refs(cluster.node(1));
    assert_eq!(refs.len(), 4, "two retired references and two live ones: {refs:?}");
    assert_eq!(refs.iter().filter(|r| r.deleted.get()).count(), 2);

    for node in &cluster.nodes {
        let gc = crate::table::tombstones::TombstoneGc::new(node.clone(), 1, 0);
        gc.collect_older_than(u64::MAX).await;
    }
    for node in &cluster.nodes {
        let refs = local_block_refs(node);
        assert_eq!(refs.len(), 2, "n{}: {refs:?}", node.id.0);
        assert!(refs.iter().all(|r| !r.deleted.get()), "only the live references stay");
    }
    let_gc_run().await;
    assert_eq!(blocks_on_each_node(&cluster), vec![2, 2, 2]);
    assert_eq!(s[2].get_object("b", "k").await.unwrap().data, new);
}

#[tokio::test(start_paused = true)]
async fn shared_blocks_live_until_their_last_object_is_deleted() {
    let (cluster, s) = object_stores_quiet().await;
    s[0].create_bucket("b").await.unwrap();
    let body = patterned(crate::block::BLOCK_SIZE_BYTES_DEFAULT + 7);
    s[0].put_object("b", "one", meta("a/b", "1"), body.clone()).await.unwrap();
    s[1].put_object("b", "two", meta("a/b", "2"), body.clone()).await.unwrap();
    assert_eq!(blocks_on_each_node(&cluster), vec![2, 2, 2], "identical blocks stored once");
    s[2].delete_object("b", "one").await.unwrap();
    let_gc_run().await;
    assert_eq!(blocks_on_each_node(&cluster), vec![2, 2, 2], "still used by `two`");
    assert_eq!(s[0].get_object("b", "two").await.unwrap().data, body);
    s[0].delete_object("b", "two").await.unwrap();
    let_gc_run().await;
    assert_eq!(blocks_on_each_node(&cluster), vec![0, 0, 0], "no orphan block files");
}

#[tokio::test(start_paused = true)]
async fn versions_kept_by_versioning_keep_their_blocks() {
    let (cluster, s) = object_stores_quiet().await;
    s[0].create_bucket("v").await.unwrap();
    s[0].set_versioning("v", Versioning::Enabled).await.unwrap();
    let old = patterned(crate::block::BLOCK_SIZE_BYTES_DEFAULT + 1);
    let first = s[0].put_object("v", "k", meta("a/b", "k"), old.clone()).await.unwrap();
    s[0].put_object("v", "k", meta("a/b", "k"), b"small now".to_vec()).await.unwrap();
    let_gc_run().await;
    let back = s[1].get_object_version("v", "k", Some(&first.version_id.to_hex())).await.unwrap();
    assert_eq!(back.data, old);
    s[1].delete_object_version("v", "k", &first.version_id.to_hex()).await.unwrap();
    let_gc_run().await;
    assert_eq!(blocks_on_each_node(&cluster), vec![0, 0, 0]);
}

#[tokio::test(start_paused = true)]
async fn resync_refetches_the_blocks_of_a_node_that_lost_them() {
    use crate::block::repair::{BlockRepair, RepairConfig};
    let (cluster, s) = object_stores_quiet().await;
    s[0].create_bucket("b").await.unwrap();
    let data = patterned(2 * crate::block::BLOCK_SIZE_BYTES_DEFAULT + 5);
    s[0].put_object("b", "k", meta("a/b", "k"), data.clone()).await.unwrap();
    let n3 = cluster.node(3);
    // A replaced, empty block store on n3.
    for hash in n3.blocks.local_list().unwrap() {
        n3.blocks.local_delete(&hash).unwrap();
    }
    let report = BlockRepair::new(n3.clone(), RepairConfig::default()).resync_step().await;
    assert_eq!((report.fetched, report.errors), (3, 0), "{report:?}");
    assert_eq!(blocks_on_each_node(&cluster), vec![3, 3, 3]);
    cluster.set_down(1, true);
    cluster.set_down(2, true);
    for hash in n3.blocks.local_list().unwrap() {
        assert!(n3.blocks.local_get(&hash).unwrap().is_some(), "n3 holds a verified copy");
    }
}

#[tokio::test(start_paused = true)]
async fn scrub_replaces_a_silently_corrupted_copy() {
    use crate::block::repair::{BlockRepair, RepairConfig};
    use crate::block::{BlockError, block_path};
    let (cluster, s) = object_stores_quiet().await;
    s[0].create_bucket("b").await.unwrap();
    let data = patterned(crate::block::BLOCK_SIZE_BYTES_DEFAULT + 5);
    s[0].put_object("b", "k", meta("a/b", "k"), data).await.unwrap();
    let n2 = cluster.node(2);
    let victim = n2.blocks.local_list().unwrap()[0];
    n2.seam.disk.write_durable(&block_path(&victim), b"\x01bit rot").unwrap();
    assert!(matches!(n2.blocks.local_get(&victim), Err(BlockError::Corrupt { .. })));
    let report = BlockRepair::new(n2.clone(), RepairConfig::default()).scrub_step().await;
    assert_eq!((report.checked, report.corrupt_replaced, report.errors), (2, 1, 0), "{report:?}");
    assert!(n2.blocks.local_get(&victim).unwrap().is_some());
}

#[tokio::test(start_paused = true)]
async fn a_bucket_with_only_old_versions_is_not_empty_and_unversioned_deletes_leave_no_marker() {
    use crate::objects::Versioning;
    let (_cluster, s) = object_stores().await;
    s[0].create_bucket("v").await.unwrap();
    s[0].set_versioning("v", Versioning::Enabled).await.unwrap();
    s[0].put_object("v", "k", meta("text/plain", "1"), b"one".to_vec()).await.unwrap();
    s[0].delete_object("v", "k").await.unwrap();
    assert!(s[1].list_objects("v", "", "", 10).await.unwrap().is_empty());
    assert_eq!(s[1].delete_bucket("v").await.unwrap_err(), ObjectError::BucketNotEmpty);

    s[0].create_bucket("u").await.unwrap();
    s[0].put_object("u", "k", meta("text/plain", "1"), b"one".to_vec()).await.unwrap();
    s[0].delete_object("u", "k").await.unwrap();
    assert!(s[1].list_object_versions("u", "", "", 10).await.unwrap().is_empty());
    s[1].delete_bucket("u").await.unwrap();
}

// Regression (issue 3): a node that lost its disk came back with an empty database and at
// once answered table reads with "I have nothing". A write acknowledged by {n1, n2} while
// n3 was down, then n1's disk lost: a read coordinated by n3 asks n3 (stale) and n1
// (blank) and returned the old value — read-after-write broken, and read repair would
// have spread it. A blank node now refuses reads (`RemoteError::Syncing`) until a full
// sync from enough replicas, so the read asks n2 instead.
mod blank_node {
    use super::*;
    use crate::crdt::Lww;
    use crate::kv::kv_key;

    /// Long enough that periodic anti-entropy never runs in these tests: only the
    /// mechanisms under test (blank sync, read quorums) can move data.
    const NO_ANTI_ENTROPY_MS: u64 = 3_600_000;

    async fn put(node: &Node, key: &str, value: &[u8]) {
        let entry = Lww::new(node.stamp(), Some(value.to_vec()));
        node.kv.insert(kv_key(key), &entry).await.expect("write quorum");
    }

    async fn get(node: &Node, key: &str) -> Result<Option<Vec<u8>>, crate::table::QuorumError> {
        Ok(node.kv.get(&kv_key(key)).await?.and_then(|e| e.value().clone()))
    }

    /// n3 misses `new` (acknowledged by n1, n2), then n1 loses its disk and restarts while
    /// n2 is unreachable, so a read quorum is exactly {n1 (blank), n3 (stale)}.
    async fn stale_n3_and_blank_n1() -> TestCluster {
        stale_n3_and_blank_n1_starting_with(test_layout(NODE_COUNT)).await
    }

    /// `stale_n3_and_blank_n1`, n1's new incarnation starting with `layout`.
    async fn stale_n3_and_blank_n1_starting_with(layout: ClusterLayout) -> TestCluster {
        let mut cluster = TestCluster::start_with_sync_interval(NO_ANTI_ENTROPY_MS).await;
        put(cluster.node(1), "k", b"old").await;
        cluster.set_down(3, true);
        put(cluster.node(1), "k", b"new").await;
        // Past every RPC timeout: the write's background attempt at n3 has given up.
        tokio::time::sleep(Duration::from_secs(5)).await;
        cluster.set_down(3, false);
        cluster.set_down(2, true);
        cluster.restart_blank_with_layout(1, NO_ANTI_ENTROPY_MS, layout).await;
        cluster
    }

    #[tokio::test(start_paused = true)]
    async fn without_the_guard_a_blank_node_and_a_stale_one_lose_an_acknowledged_write() {
        let cluster = stale_n3_and_blank_n1().await;
        cluster.node(1).unsafe_serve_reads_while_syncing();
        let read = get(cluster.node(3), "k").await.expect("read quorum");
        assert_eq!(read.as_deref(), Some(&b"old"[..]), "the bug this guard prevents");
    }

    #[tokio::test(start_paused = true)]
    async fn a_blank_node_refuses_reads_until_synced_so_the_acknowledged_write_is_read() {
        let cluster = stale_n3_and_blank_n1().await;
        assert!(cluster.node(1).is_syncing(), "n1 could not reach n2 yet");
        let err = get(cluster.node(3), "k").await.expect_err("n1 refuses, n2 is down");
        assert!(err.errors.iter().any(|e| e.contains("syncing")), "{err}");
        // Its own coordinator reads skip its local copy too.
        let err = get(cluster.node(1), "k").await.expect_err("only n3 counts");
        assert!(err.errors.iter().any(|e| e.contains("syncing")), "{err}");
        cluster.set_down(2, false);
        // Past the RPC client's reconnect backoff towards n2.
        tokio::time::sleep(Duration::from_secs(2)).await;
        for n in [1, 3] {
            let read = get(cluster.node(n), "k").await.expect("read quorum with n2");
            assert_eq!(read.as_deref(), Some(&b"new"[..]));
        }
        wait_until("n1 leaves syncing", 5_000, || !cluster.node(1).is_syncing()).await;
        let local = cluster.node(1).kv.local.get(&kv_key("k")).expect("local read");
        assert_eq!(local.and_then(|e| e.value().clone()).as_deref(), Some(&b"new"[..]));
    }

    // Regression: a wiped node that had not learnt the layout yet saw no replica set for
    // any partition, so it answered reads (and prepares) with its empty database for up to
    // a gossip period after restarting.
    #[tokio::test(start_paused = true)]
    async fn a_blank_node_that_knows_no_layout_yet_refuses_reads_too() {
        let no_layout = ClusterLayout::new(NODE_COUNT as usize).expect("RF 3 is valid");
        let cluster = stale_n3_and_blank_n1_starting_with(no_layout).await;
        assert!(cluster.node(1).current_layout().is_none(), "no gossip round yet");
        let err = get(cluster.node(3), "k").await.expect_err("n1 refuses, n2 is down");
        assert!(err.errors.iter().any(|e| e.contains("syncing")), "{err}");
        cluster.set_down(2, false);
        wait_until("n1 learns the layout and syncs", 15_000, || {
            cluster.node(1).current_layout().is_some() && !cluster.node(1).is_syncing()
        })
        .await;
        let read = get(cluster.node(1), "k").await.expect("read quorum");
        assert_eq!(read.as_deref(), Some(&b"new"[..]));
    }

    // A new cluster, as docs/deploy.md starts one: every node blank and without a layout,
    // so each refuses reads and prepares until it learnt the layout and synced. The applied
    // layout wakes the layout worker and the blank syncs at once. Before, they waited for
    // their period (5 s here), and a client that began right after `layout apply` had its
    // writes refused with 503s meanwhile.
    #[tokio::test(start_paused = true)]
    async fn a_new_cluster_serves_writes_right_after_its_layout_is_applied() {
        let board = Arc::new(Switchboard::default());
        let mut nodes = Vec::new();
        for n in 1..=NODE_COUNT {
            let peers = (1..=NODE_COUNT).filter(|&p| p != n).map(|p| (NodeId(p), node_name(p)));
            let no_layout = ClusterLayout::new(NODE_COUNT as usize).expect("RF 3 is valid");
            let config = node_config(n, peers.collect(), no_layout, NO_ANTI_ENTROPY_MS);
            nodes.push(Node::start(seam(&board, &node_name(n), n), config).await.expect("starts"));
        }
        let first = crate::layout::history::LayoutHistory::from_layout(&test_layout(NODE_COUNT));
        nodes[0].layouts.merge(&first).expect("installs the first layout");
        wait_until("every node learnt the layout and synced", 1_000, || {
            nodes.iter().all(|n| n.current_layout().is_some() && !n.is_syncing())
        })
        .await;
        put(&nodes[1], "k", b"v").await;
        for node in &nodes {
            let read = get(node, "k").await.expect("read quorum");
            assert_eq!(read.as_deref(), Some(&b"v"[..]));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_fresh_cluster_is_readable_within_seconds() {
        // `start` waits (bounded: 5 virtual s) until no member is syncing.
        let cluster = TestCluster::start().await;
        put(cluster.node(1), "k", b"v").await;
        for n in 1..=3 {
            let read = get(cluster.node(n), "k").await.expect("read quorum");
            assert_eq!(read.as_deref(), Some(&b"v"[..]));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_blank_node_with_a_peer_down_stays_syncing_and_never_serves_a_stale_read() {
        let mut cluster = TestCluster::start_with_sync_interval(NO_ANTI_ENTROPY_MS).await;
        put(cluster.node(1), "k", b"v").await;
        cluster.set_down(3, true);
        cluster.restart_blank(1, NO_ANTI_ENTROPY_MS).await;
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(cluster.node(1).is_syncing(), "n3 never answered, so n1 cannot be sure");
        // With n1 refusing and n3 down only n2 answers: the read fails rather than trust n1.
        let err = get(cluster.node(1), "k").await.expect_err("one replica of three answers");
        assert_eq!(err.successes, 1, "{err}");
        // Writes still work (n1, n2) and the value stays readable through n2 once n3 is back.
        put(cluster.node(2), "k", b"w").await;
        cluster.set_down(3, false);
        wait_until("n1 leaves syncing", 5_000, || !cluster.node(1).is_syncing()).await;
        for n in 1..=3 {
            let read = get(cluster.node(n), "k").await.expect("read quorum");
            assert_eq!(read.as_deref(), Some(&b"w"[..]));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_synced_marker_survives_a_restart_and_a_blank_disk_has_none() {
        let cluster = TestCluster::start_with_sync_interval(NO_ANTI_ENTROPY_MS).await;
        // Same disk, new incarnation: the marker is in the database, so no sync is needed.
        let node = cluster.node(2);
        let config = node_config(2, BTreeMap::new(), test_layout(3), NO_ANTI_ENTROPY_MS);
        cluster.set_down(2, true);
        let again = Node::start(node.seam.clone(), config).await.expect("restarts");
        assert!(!again.is_syncing());
    }
}
