//! Conditional writes over a three-node `TestCluster` (paused time): concurrent creators,
//! If-Match chains, recovery of a decided value whose proposer stopped, leftovers of a
//! lost proposal, a partitioned replica — and the weakening that shows the consensus is
//! what makes the first test pass.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::conditional::WriteCondition;
use super::object_ops::object_key;
use super::version::{Version, VersionData, VersionId, VersionState};
use super::{ObjectError, ObjectStore, StoredObject};
use crate::cas::{Ballot, CasReply};
use crate::layout::NodeId;
use crate::node_tests::{TestCluster, meta};

/// Three object stores over a fresh `TestCluster`, bucket `b` created.
pub(super) async fn stores() -> (TestCluster, Vec<Arc<ObjectStore>>) {
    let cluster = TestCluster::start().await;
    let stores: Vec<Arc<ObjectStore>> =
        cluster.nodes.iter().cloned().map(|n| Arc::new(ObjectStore::new(n))).collect();
    stores[0].create_bucket("b").await.unwrap();
    (cluster, stores)
}

/// `writers` If-None-Match PUTs of one key at once, spread over the three coordinators;
/// returns each writer's result (body `w<i>`, ETag `e<i>`).
async fn race_creators(s: &[Arc<ObjectStore>], writers: usize) -> Vec<Result<String, ObjectError>> {
    let mut tasks = Vec::new();
    for i in 0..writers {
        let store = s[i % s.len()].clone();
        tasks.push(tokio::spawn(async move {
            let body = format!("w{i}").into_bytes();
            let put = store.put_object_if(
                "b",
                "k",
                meta("t", &format!("e{i}")),
                body,
                &WriteCondition::IfNoneMatch,
            );
            put.await.map(|r| r.etag)
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    results
}

#[tokio::test(start_paused = true)]
async fn concurrent_create_only_writers_have_exactly_one_winner_whose_body_is_served() {
    let (_cluster, s) = stores().await;
    let results = race_creators(&s, 6).await;
    let winners: Vec<&String> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "exactly one create-only write wins: {results:?}");
    for r in &results {
        assert!(
            matches!(
                r,
                Ok(_) | Err(ObjectError::PreconditionFailed | ObjectError::ConditionalConflict)
            ),
            "losers are refused, not left unknown: {r:?}"
        );
    }
    let winner = winners[0].trim_start_matches('e').to_string();
    for store in &s {
        let got = store.get_object("b", "k").await.unwrap();
        assert_eq!(got.data, format!("w{winner}").into_bytes(), "reads serve the winner");
    }
}

/// Shows the test above can fail: check-then-write without consensus lets several
/// create-only writers succeed.
#[tokio::test(start_paused = true)]
async fn without_consensus_concurrent_create_only_writers_both_win() {
    let (cluster, s) = stores().await;
    for node in &cluster.nodes {
        node.cas.test_knobs.check_then_write.store(true, Ordering::Relaxed);
    }
    let results = race_creators(&s, 6).await;
    let winners = results.iter().filter(|r| r.is_ok()).count();
    assert!(winners >= 2, "the weakened protocol lets several writers win: {results:?}");
}

#[tokio::test(start_paused = true)]
async fn if_match_chains_advance_one_etag_at_a_time() {
    let (_cluster, s) = stores().await;
    let if_match = |e: &str| WriteCondition::IfMatch(e.into());
    let put = |i: usize, etag: &str, cond: WriteCondition| {
        let store = s[i % 3].clone();
        let etag = etag.to_string();
        async move {
            store.put_object_if("b", "k", meta("t", &etag), etag.clone().into_bytes(), &cond).await
        }
    };
    assert_eq!(put(0, "e1", if_match("e0")).await, Err(ObjectError::NoSuchKey), "no object yet");
    put(1, "e1", WriteCondition::IfNoneMatch).await.unwrap();
    assert_eq!(
        put(2, "x", WriteCondition::IfNoneMatch).await,
        Err(ObjectError::PreconditionFailed)
    );
    put(2, "e2", if_match("e1")).await.unwrap();
    assert_eq!(put(0, "e3", if_match("e1")).await, Err(ObjectError::PreconditionFailed));
    put(0, "e3", if_match("e2")).await.unwrap();
    put(1, "e4", if_match("*")).await.unwrap();
    assert_eq!(s[2].get_object("b", "k").await.unwrap().data, b"e4".to_vec());
    // An unconditional write and a delete are seen by the next conditional write.
    s[0].put_object("b", "k", meta("t", "u5"), b"u5".to_vec()).await.unwrap();
    assert_eq!(put(1, "e6", if_match("e4")).await, Err(ObjectError::PreconditionFailed));
    put(1, "e6", if_match("u5")).await.unwrap();
    s[2].delete_object("b", "k").await.unwrap();
    assert_eq!(put(0, "e7", if_match("e6")).await, Err(ObjectError::NoSuchKey));
    put(0, "e7", WriteCondition::IfNoneMatch).await.unwrap();
    assert_eq!(s[1].get_object("b", "k").await.unwrap().data, b"e7".to_vec());
}

/// A proposer that stops after its accept quorum, before writing the object table: its
/// value is decided, so the next conditional write must adopt it (write it, then judge
/// its own condition against it) rather than decide over it.
#[tokio::test(start_paused = true)]
async fn a_decided_value_whose_proposer_stopped_is_adopted_by_the_next_writer() {
    let (cluster, s) = stores().await;
    cluster.node(1).cas.test_knobs.stop_after_accept.store(true, Ordering::Relaxed);
    let first = s[0].put_object_if(
        "b",
        "k",
        meta("t", "e1"),
        b"first".to_vec(),
        &WriteCondition::IfNoneMatch,
    );
    assert!(matches!(first.await, Err(ObjectError::Unavailable { .. })), "outcome unknown");
    assert_eq!(s[1].get_object("b", "k").await, Err(ObjectError::NoSuchKey), "not written yet");
    let second = s[1].put_object_if(
        "b",
        "k",
        meta("t", "e2"),
        b"second".to_vec(),
        &WriteCondition::IfNoneMatch,
    );
    assert_eq!(second.await, Err(ObjectError::PreconditionFailed), "the first write was decided");
    for store in &s {
        assert_eq!(store.get_object("b", "k").await.unwrap().data, b"first".to_vec());
    }
}

fn version_of(body: &[u8], etag: &str) -> Version {
    let stored = StoredObject {
        size_bytes: body.len() as u64,
        etag: etag.into(),
        last_modified_ms: 0,
        content_type: String::new(),
        user_metadata: Default::default(),
        body: super::body::Body::Inline(body.to_vec()),
    };
    Version::new(VersionState::Complete(VersionData::Object(stored)), false)
}

/// A proposal accepted by one acceptor only (its proposer lost the race) must never come
/// back over a value decided later, neither through anti-entropy (acceptors never write
/// the object table) nor through a later round (its ballot is lower).
#[tokio::test(start_paused = true)]
async fn a_value_accepted_by_one_acceptor_never_overrides_a_later_decided_one() {
    let (cluster, s) = stores().await;
    let key = object_key("b", "k");
    let stale = Ballot { counter: 1, node: NodeId(3), nonce: 0 };
    let leftover =
        Some((VersionId { timestamp: u64::MAX / 2, unique: 3 }, version_of(b"ghost", "eg")));
    let n3 = cluster.node(3);
    assert!(matches!(n3.cas.prepare(&key, stale).unwrap(), CasReply::Promise { .. }));
    let accepted = n3.cas.accept(&key, stale, super::version::encode_cas_value(&leftover)).unwrap();
    assert_eq!(accepted, CasReply::Accepted);

    // n3 away: the decided value lives on n1 and n2 only.
    cluster.set_down(3, true);
    s[0].put_object_if("b", "k", meta("t", "e1"), b"one".to_vec(), &WriteCondition::IfNoneMatch)
        .await
        .unwrap();
    cluster.set_down(3, false);
    // Now n1 away: the next round's prepare quorum is {n2, n3}, one of which holds the
    // leftover, the other the decided value under a higher ballot.
    cluster.set_down(1, true);
    let cond = WriteCondition::IfMatch("e1".into());
    s[2].put_object_if("b", "k", meta("t", "e2"), b"two".to_vec(), &cond).await.unwrap();
    cluster.set_down(1, false);
    for store in &s {
        assert_eq!(store.get_object("b", "k").await.unwrap().data, b"two".to_vec());
    }
    let entry = s[1].entry("b", "k").await.unwrap().unwrap();
    assert!(
        entry.versions.keys().all(|id| id.timestamp != u64::MAX / 2),
        "the leftover never reached the object table"
    );
}

#[tokio::test(start_paused = true)]
async fn conditional_writes_succeed_with_one_replica_partitioned() {
    let (cluster, s) = stores().await;
    cluster.set_down(2, true);
    s[0].put_object_if("b", "k", meta("t", "e1"), b"one".to_vec(), &WriteCondition::IfNoneMatch)
        .await
        .unwrap();
    let again =
        s[2].put_object_if("b", "k", meta("t", "x"), b"x".to_vec(), &WriteCondition::IfNoneMatch);
    assert_eq!(again.await, Err(ObjectError::PreconditionFailed));
    let cond = WriteCondition::IfMatch("e1".into());
    s[2].put_object_if("b", "k", meta("t", "e2"), b"two".to_vec(), &cond).await.unwrap();
    assert_eq!(s[0].get_object("b", "k").await.unwrap().data, b"two".to_vec());
    // Two replicas away: no prepare quorum, a clear 503-class error, nothing written.
    cluster.set_down(3, true);
    let cond = WriteCondition::IfMatch("e2".into());
    let stuck = s[0].put_object_if("b", "k", meta("t", "e3"), b"three".to_vec(), &cond).await;
    assert!(matches!(stuck, Err(ObjectError::Unavailable { .. })), "{stuck:?}");
    cluster.set_down(2, false);
    cluster.set_down(3, false);
    // Past the RPC clients' reconnect backoff (1 s at most in tests): n2's calls to the
    // others failed while it was cut off.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(s[1].get_object("b", "k").await.unwrap().data, b"two".to_vec());
}

#[tokio::test(start_paused = true)]
async fn a_conditional_completion_refused_leaves_the_upload_open_then_succeeds() {
    use super::multipart::UploadMeta;
    let (_cluster, s) = stores().await;
    s[0].put_object("b", "k", meta("t", "e0"), b"zero".to_vec()).await.unwrap();
    let id = s[0].create_multipart_upload("b", "k", UploadMeta::default()).await.unwrap();
    s[1].upload_part("b", "k", &id, 1, b"part".to_vec(), "p1".into()).await.unwrap();
    let parts = [(1, "p1".to_string())];
    let upload = ("b", "k", id.as_str());
    let create = WriteCondition::IfNoneMatch;
    let refused = s[2].complete_multipart_upload_if(upload, &parts, "m1".into(), Some(&create));
    assert_eq!(refused.await, Err(ObjectError::PreconditionFailed));
    assert_eq!(s[0].list_parts("b", "k", &id).await.unwrap().len(), 1, "the upload stays open");
    let wrong = WriteCondition::IfMatch("nope".into());
    let refused = s[1].complete_multipart_upload_if(upload, &parts, "m1".into(), Some(&wrong));
    assert_eq!(refused.await, Err(ObjectError::PreconditionFailed));
    let right = WriteCondition::IfMatch("e0".into());
    let done = s[0].complete_multipart_upload_if(upload, &parts, "m1".into(), Some(&right));
    assert_eq!(done.await.unwrap().etag, "m1");
    assert_eq!(s[2].get_object("b", "k").await.unwrap().data, b"part".to_vec());
}

/// Guards against reviving a decided value whose version the collector aborted and
/// tombstone collection then removed (an unknown outcome left for days): its blocks are
/// gone, so adopting it must not make it current again.
#[tokio::test(start_paused = true)]
async fn a_decided_value_whose_blocked_version_was_collected_is_not_revived() {
    let (cluster, s) = stores().await;
    let key = object_key("b", "k");
    let mut ghost = version_of(b"", "eg");
    if let VersionState::Complete(VersionData::Object(stored)) = &mut ghost.state {
        stored.body = super::body::Body::Blocks(Vec::new());
    }
    let decided = Some((VersionId { timestamp: u64::MAX / 2, unique: 1 }, ghost));
    let ballot = Ballot { counter: 1, node: NodeId(1), nonce: 0 };
    for n in 1..=3 {
        let node = cluster.node(n);
        assert!(matches!(node.cas.prepare(&key, ballot).unwrap(), CasReply::Promise { .. }));
        let value = super::version::encode_cas_value(&decided);
        assert_eq!(node.cas.accept(&key, ballot, value).unwrap(), CasReply::Accepted);
    }
    let put = s[1].put_object_if(
        "b",
        "k",
        meta("t", "e1"),
        b"new".to_vec(),
        &WriteCondition::IfNoneMatch,
    );
    put.await.unwrap();
    assert_eq!(s[2].get_object("b", "k").await.unwrap().data, b"new".to_vec());
}
