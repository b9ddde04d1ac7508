//! The acceptor-row compactor (`acceptor_rows`): rows lose their value once it is in the
//! node's object table, never before, and the key's later writes still see every decided
//! write.

use std::sync::Arc;

use tokio::sync::oneshot;

use super::acceptor_rows::{CompactionReport, compact};
use super::conditional::WriteCondition;
use super::conditional_tests::stores;
use super::object_ops::object_key;
use super::{ObjectError, ObjectStore};
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
    let create = WriteCondition::IfNoneMatch;
    let refused = s[1].put_object_if("b", "k", meta("t", "x"), b"x".to_vec(), &create).await;
    assert_eq!(refused, Err(ObjectError::PreconditionFailed));
    let cond = WriteCondition::IfMatch("e1".into());
    s[2].put_object_if("b", "k", meta("t", "e2"), b"two".to_vec(), &cond).await.unwrap();
    for store in &s {
        assert_eq!(store.get_object("b", "k").await.unwrap().data, b"two".to_vec());
    }
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
