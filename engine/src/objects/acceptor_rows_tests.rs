//! The acceptor-row compactor and collector (`acceptor_rows`): rows lose their value once
//! it is in the node's object table, never before; rows are deleted once no other acceptor
//! holds anything they outrank; and the key's later writes still see every decided write.

use std::sync::Arc;

use tokio::sync::oneshot;

use super::acceptor_rows::{CollectionReport, CompactionReport, ROW_GRACE_MS, collect, compact};
use super::conditional::WriteCondition;
use super::conditional_tests::stores;
use super::object_ops::object_key;
use super::version::{Version, VersionData, VersionId, VersionState, encode_cas_value};
use super::{ObjectError, ObjectStore};
use crate::cas::{Ballot, CasReply};
use crate::layout::NodeId;
use crate::node::Node;
use crate::node_tests::{TestCluster, meta};

/// The size of the value in `node`'s acceptor row for `bucket/key` (0 without one).
fn row_value_len(node: &Node, bucket: &str, key: &str) -> usize {
    let state = node.cas.state(&object_key(bucket, key)).expect("acceptor state");
    state.accepted.map_or(0, |(_, value)| value.len())
}

fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// `b/k` was written with ETag `e1`: a create of it is refused, an `If-Match: e1` write
/// through another node succeeds, and every node reads the new body.
async fn conditions_still_see_the_first_write(s: &[Arc<ObjectStore>]) {
    let create = WriteCondition::IfNoneMatch;
    let refused = s[1].put_object_if("b", "k", meta("t", "x"), b"x".to_vec(), &create).await;
    assert_eq!(refused, Err(ObjectError::PreconditionFailed));
    let cond = WriteCondition::IfMatch("e1".into());
    s[2].put_object_if("b", "k", meta("t", "e2"), b"two".to_vec(), &cond).await.unwrap();
    for store in s {
        assert_eq!(store.get_object("b", "k").await.unwrap().data, b"two".to_vec());
    }
}

#[tokio::test(start_paused = true)]
async fn rows_drop_their_value_once_it_is_in_the_table_and_writes_go_on() {
    let (cluster, s) = stores().await;
    s[0].put_object("b", "k", meta("t", "e1"), body(3_000)).await.unwrap();
    for node in &cluster.nodes {
        assert!(row_value_len(node, "b", "k") > 3_000, "the inline body sits in the row");
    }
    for node in &cluster.nodes {
        let report = compact(node, false).expect("compaction");
        assert_eq!(report, CompactionReport { compacted: 1, waiting: 0 });
        assert!(row_value_len(node, "b", "k") < 16, "a fence is left");
        // Nothing is due any more: a second pass has nothing to do.
        assert_eq!(compact(node, false).unwrap(), CompactionReport::default());
    }
    // The key's history is intact for the next writes and reads.
    conditions_still_see_the_first_write(&s).await;
    // A delete's row holds no body, and the deleted object's body is gone from every row.
    s[0].delete_object("b", "k").await.unwrap();
    for node in &cluster.nodes {
        compact(node, false).unwrap();
        assert!(row_value_len(node, "b", "k") < 16);
    }
}

/// n1 proposes a create of `k` and pauses between its accept quorum and its table write;
/// meanwhile every node compacts (`unsafe_skip_check`: without looking at its table) and
/// an If-None-Match create of `k` runs through n2. Returns both results.
async fn compaction_during_a_decided_write(
    unsafe_skip_check: bool,
) -> (TestCluster, Result<(), ObjectError>, Result<(), ObjectError>) {
    let (cluster, s) = stores().await;
    let (reached_tx, reached) = oneshot::channel();
    let (resume, resume_rx) = oneshot::channel();
    *cluster.node(1).cas.test_knobs.after_accept.lock().unwrap() = Some((reached_tx, resume_rx));
    let first: tokio::task::JoinHandle<Result<(), ObjectError>> = {
        let store: Arc<ObjectStore> = s[0].clone();
        tokio::spawn(async move {
            let create = WriteCondition::IfNoneMatch;
            store.put_object_if("b", "k", meta("t", "one"), b"one".to_vec(), &create).await?;
            Ok(())
        })
    };
    reached.await.expect("the first create was accepted");
    for node in &cluster.nodes {
        let report = compact(node, unsafe_skip_check).expect("compaction");
        if !unsafe_skip_check {
            assert_eq!(report.waiting, 1, "not in any table yet: {report:?}");
        }
    }
    let create = WriteCondition::IfNoneMatch;
    let second = s[1].put_object_if("b", "k", meta("t", "two"), b"two".to_vec(), &create).await;
    resume.send(()).unwrap();
    let first = first.await.unwrap();
    (cluster, first, second.map(drop))
}

#[tokio::test(start_paused = true)]
async fn a_value_not_yet_in_the_table_keeps_its_row_so_the_second_create_is_refused() {
    let (cluster, first, second) = compaction_during_a_decided_write(false).await;
    assert_eq!(first, Ok(()));
    assert_eq!(second, Err(ObjectError::PreconditionFailed));
    // Once the first create is in the tables, its rows are compacted.
    for node in &cluster.nodes {
        compact(node, false).unwrap();
        assert!(row_value_len(node, "b", "k") < 16);
    }
}

/// The twin: a compactor that does not check the table drops a decided value before any
/// table has it, and two `If-None-Match` creates of one key both succeed.
#[tokio::test(start_paused = true)]
async fn without_the_table_check_two_creates_of_one_key_both_succeed() {
    let (_cluster, first, second) = compaction_during_a_decided_write(true).await;
    assert_eq!((first, second), (Ok(()), Ok(())), "the anomaly the check prevents");
}

/// Compacts every node's rows, then collects them (no grace), in node order.
async fn compact_and_collect(cluster: &TestCluster) -> Vec<CollectionReport> {
    for node in &cluster.nodes {
        compact(node, false).expect("compaction");
    }
    let mut reports = Vec::new();
    for node in &cluster.nodes {
        reports.push(collect(node, 0, false).await.expect("collection"));
    }
    reports
}

#[tokio::test(start_paused = true)]
async fn rows_are_deleted_once_every_acceptor_moved_past_them_and_writes_go_on() {
    let (cluster, s) = stores().await;
    s[0].put_object("b", "k", meta("t", "e1"), b"one".to_vec()).await.unwrap();
    let key = object_key("b", "k");
    let deleted = CollectionReport { deleted: 1, ..Default::default() };
    assert_eq!(compact_and_collect(&cluster).await, vec![deleted.clone(); 3]);
    for node in &cluster.nodes {
        assert!(!node.cas.has_row(&key).unwrap(), "the row is gone");
        assert!(node.cas.state(&key).unwrap().promised.is_some(), "its promise is the floor");
    }
    // The key's writes and conditions behave as before.
    conditions_still_see_the_first_write(&s).await;
    // The new rows go the same way; nothing is left listed.
    assert_eq!(compact_and_collect(&cluster).await, vec![deleted; 3]);
    let nothing = CollectionReport::default();
    assert_eq!(compact_and_collect(&cluster).await, vec![nothing; 3]);
}

#[tokio::test(start_paused = true)]
async fn a_young_row_is_kept() {
    let (cluster, s) = stores().await;
    s[0].put_object("b", "k", meta("t", "e1"), b"one".to_vec()).await.unwrap();
    let node = cluster.node(1);
    compact(node, false).unwrap();
    let report = collect(node, ROW_GRACE_MS, false).await.unwrap();
    assert_eq!(report, CollectionReport { young: 1, ..Default::default() });
    assert!(node.cas.has_row(&object_key("b", "k")).unwrap());
}

/// n2 holds a stale delete of `k` (accepted under a low ballot, never decided: its proposer
/// reached no one else), then `k` is written through n1 and n3 while n2 is away. n1 and n3
/// compact; n1 collects (without asking its peers when `unsafe_skip_peers`). Then, with n3
/// down, an `If-Match` write of `k` goes through n1: its prepare quorum is n1 and n2.
/// Returns the write's result and what a read then finds.
async fn stale_value_behind_a_collected_row(
    unsafe_skip_peers: bool,
) -> (CollectionReport, Result<(), ObjectError>, Option<Vec<u8>>) {
    stale_value_behind_collected_rows(unsafe_skip_peers, 1).await
}

/// As `stale_value_behind_a_collected_row`, with `passes` collection passes on n1; returns
/// the last pass's report.
async fn stale_value_behind_collected_rows(
    unsafe_skip_peers: bool,
    passes: usize,
) -> (CollectionReport, Result<(), ObjectError>, Option<Vec<u8>>) {
    let (cluster, s) = stores().await;
    let key = object_key("b", "k");
    let stale_ballot = Ballot { counter: 1, node: NodeId(2), nonce: 0 };
    let far_future = VersionId { timestamp: u64::MAX / 2, unique: 2 };
    let marker = VersionData::DeleteMarker { last_modified_ms: 1 };
    let stale = Version::new(VersionState::Complete(marker), false);
    let stale = encode_cas_value(&Some((far_future, stale)));
    let n2 = cluster.node(2);
    n2.cas.prepare(&key, stale_ballot).unwrap();
    assert_eq!(n2.cas.accept(&key, stale_ballot, stale).unwrap(), CasReply::Accepted);

    cluster.set_down(2, true);
    s[0].put_object("b", "k", meta("t", "e1"), b"one".to_vec()).await.unwrap();
    cluster.set_down(2, false);
    // Past the RPC client's backoff from n2's absence.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    for n in [1, 3] {
        assert_eq!(compact(cluster.node(n), false).unwrap().compacted, 1);
    }
    let mut report = CollectionReport::default();
    for _ in 0..passes {
        report = collect(cluster.node(1), 0, unsafe_skip_peers).await.unwrap();
    }

    cluster.set_down(3, true);
    let cond = WriteCondition::IfMatch("e1".into());
    let write = s[0].put_object_if("b", "k", meta("t", "e2"), b"two".to_vec(), &cond).await;
    let read = s[0].get_object("b", "k").await.ok().map(|object| object.data);
    (report, write.map(drop), read)
}

#[tokio::test(start_paused = true)]
async fn a_row_whose_fence_outranks_a_peers_stale_value_is_kept() {
    let (report, write, read) = stale_value_behind_a_collected_row(false).await;
    let kept = CollectionReport { behind: 1, caught_up: 1, ..Default::default() };
    assert_eq!(report, kept, "n2 promised below: kept, and n2 caught up");
    assert_eq!(write, Ok(()));
    assert_eq!(read, Some(b"two".to_vec()));
}

/// A peer that was away is caught up (its stale value replaced by the fence, its promise
/// raised, the object entry where the fence's proposal is settled merged into its table),
/// so the next pass deletes the row — and the stale value can no longer come back.
#[tokio::test(start_paused = true)]
async fn a_peer_that_was_away_is_caught_up_and_the_row_goes_next_pass() {
    let (report, write, read) = stale_value_behind_collected_rows(false, 2).await;
    assert_eq!(report, CollectionReport { deleted: 1, ..Default::default() });
    assert_eq!(write, Ok(()), "n1 (no row) and n2 (caught up) agree on nothing stale");
    assert_eq!(read, Some(b"two".to_vec()));
}

/// The twin: deleted without asking n2, the fence no longer outranks n2's stale delete,
/// which the next write finishes — an acknowledged object disappears behind a delete no
/// client was ever told had happened.
#[tokio::test(start_paused = true)]
async fn without_asking_the_peers_a_stale_value_comes_back() {
    let (report, write, read) = stale_value_behind_a_collected_row(true).await;
    assert_eq!(report.deleted, 1);
    assert_eq!(write, Err(ObjectError::NoSuchKey), "the anomaly the peer check prevents");
    assert_eq!(read, None);
}

/// A row holding only a promise (its accept never came, or came before its prepare and was
/// refused) is listed and deleted too; the floor keeps its promise.
#[tokio::test(start_paused = true)]
async fn a_row_with_only_a_promise_is_deleted() {
    let (cluster, _s) = stores().await;
    let node = cluster.node(1);
    let key = object_key("b", "promised-only");
    let ballot = Ballot { counter: 5_000, node: NodeId(2), nonce: 0 };
    node.cas.prepare(&key, ballot).unwrap();
    assert_eq!(compact(node, false).unwrap(), CompactionReport { compacted: 0, waiting: 0 });
    let report = collect(node, 0, false).await.unwrap();
    assert_eq!(report, CollectionReport { deleted: 1, ..Default::default() });
    assert!(!node.cas.has_row(&key).unwrap());
    assert_eq!(node.cas.state(&key).unwrap().promised, Some(ballot), "kept in the floor");
}
