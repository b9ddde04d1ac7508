//! Every write of a key is ordered with its conditional writes (`conditional`), over a
//! three-node `TestCluster` (paused time).
//!
//! The bug these guard against (docs/jepsen-results.md, "An anomaly on the consistent
//! build"): an unconditional DELETE written straight into the last-writer-wins table landed
//! between an `If-Match` PUT's prepare (which saw the matching version) and its accept; the
//! conditional write's higher version id then won over the DELETE, so its value became
//! current after a delete that its condition could not have survived. Each race here parks
//! the conditional write right after its prepare, runs the unconditional write to the end,
//! then lets the conditional write finish. With the old path (`unconditional_fast_path`)
//! the anomaly comes back: the `…_on_the_old_path` twins show the tests can fail.

use std::sync::atomic::Ordering;

use super::conditional::WriteCondition;
use super::conditional_tests::stores;
use super::version::{ObjectEntry, VersionState};
use super::{ObjectError, ObjectRecord, Versioning};
use crate::node_tests::meta;

/// The unconditional write raced against the conditional one.
#[derive(Clone, Copy)]
enum Blind {
    Delete,
    Put,
}

/// Writes `e9`, then runs `If-Match: e9 → ten` on n3, parked after its prepare while
/// `blind` runs on n1 to completion; returns the conditional write's result and what a
/// read on n2 serves afterwards. n3's clock is far ahead (its stamps run 1000 above the
/// others'), so a version id stamped by n3 beats n1's whenever the table alone decides.
async fn race(fast_path: bool, blind: Blind) -> (Result<ObjectRecord, ObjectError>, Vec<u8>) {
    let (cluster, s) = stores().await;
    s[0].put_object("b", "k", meta("t", "e9"), b"nine".to_vec()).await.unwrap();
    for node in &cluster.nodes {
        node.cas.test_knobs.unconditional_fast_path.store(fast_path, Ordering::Relaxed);
    }
    for _ in 0..1_000 {
        cluster.node(3).stamp();
    }
    let (reached, resume) = cluster.node(3).cas.test_knobs.park_next_after_prepare();
    let conditional = {
        let store = s[2].clone();
        let cond = WriteCondition::IfMatch("e9".into());
        tokio::spawn(async move {
            store.put_object_if("b", "k", meta("t", "e10"), b"ten".to_vec(), &cond).await
        })
    };
    reached.await.expect("the conditional write prepared");
    match blind {
        Blind::Delete => drop(s[0].delete_object("b", "k").await.unwrap()),
        Blind::Put => drop(s[0].put_object("b", "k", meta("t", "u"), b"u".to_vec()).await.unwrap()),
    }
    resume.send(()).unwrap();
    let conditional = conditional.await.unwrap();
    let read = match s[1].get_object("b", "k").await {
        Ok(object) => object.data,
        Err(ObjectError::NoSuchKey) => Vec::new(),
        Err(e) => panic!("read after the race: {e:?}"),
    };
    (conditional, read)
}

/// Whether the outcome has a valid order. The blind write finished inside the conditional
/// write's call, so either may come first; but the condition needs `e9`, so an `Ok` must
/// come first and be overwritten by the blind write, and the read sees the blind write
/// either way.
fn has_a_valid_order(
    blind: Blind,
    conditional: &Result<ObjectRecord, ObjectError>,
    read: &[u8],
) -> bool {
    let refused =
        matches!(conditional, Err(ObjectError::NoSuchKey | ObjectError::PreconditionFailed));
    let blind_value: &[u8] = match blind {
        Blind::Delete => b"",
        Blind::Put => b"u",
    };
    (conditional.is_ok() || refused) && read == blind_value
}

#[tokio::test(start_paused = true)]
async fn an_if_match_write_racing_a_delete_never_outlives_it() {
    let (conditional, read) = race(false, Blind::Delete).await;
    assert!(
        has_a_valid_order(Blind::Delete, &conditional, &read),
        "conditional {conditional:?}, then read {:?}",
        String::from_utf8_lossy(&read)
    );
    assert!(
        matches!(conditional, Err(ObjectError::NoSuchKey)),
        "judged after the delete: {conditional:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_if_match_write_racing_a_delete_outlives_it_on_the_old_path() {
    let (conditional, read) = race(true, Blind::Delete).await;
    assert!(conditional.is_ok(), "{conditional:?}");
    assert_eq!(read, b"ten".to_vec(), "the anomaly: the value outlives the delete");
    assert!(!has_a_valid_order(Blind::Delete, &conditional, &read));
}

#[tokio::test(start_paused = true)]
async fn an_if_match_write_racing_an_unconditional_put_never_outlives_it() {
    let (conditional, read) = race(false, Blind::Put).await;
    assert!(
        has_a_valid_order(Blind::Put, &conditional, &read),
        "conditional {conditional:?}, then read {:?}",
        String::from_utf8_lossy(&read)
    );
    assert_eq!(conditional, Err(ObjectError::PreconditionFailed), "judged after the PUT");
}

#[tokio::test(start_paused = true)]
async fn an_if_match_write_racing_an_unconditional_put_outlives_it_on_the_old_path() {
    let (conditional, read) = race(true, Blind::Put).await;
    assert!(!has_a_valid_order(Blind::Put, &conditional, &read), "{conditional:?} {read:?}");
}

/// A body in blocks is recorded under a provisional id before it is streamed. A PUT of the
/// key that completes meanwhile gets a newer id; the slower PUT, decided after it, must
/// still become current (the last decided write wins, whatever the ids said), so its round
/// re-stamps it and references its blocks under the new id.
#[tokio::test(start_paused = true)]
async fn a_large_put_decided_last_is_current_even_if_stamped_first() {
    let (cluster, s) = stores().await;
    let (reached, resume) = cluster.node(3).cas.test_knobs.park_next_after_prepare();
    let large: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    let slow = {
        let (store, body) = (s[2].clone(), large.clone());
        tokio::spawn(async move { store.put_object("b", "k", meta("t", "big"), body).await })
    };
    reached.await.expect("the large PUT prepared");
    let quick = s[0].put_object("b", "k", meta("t", "small"), b"small".to_vec()).await.unwrap();
    resume.send(()).unwrap();
    let slow = slow.await.unwrap().expect("an unconditional PUT is never refused");
    assert!(slow.version_id > quick.version_id, "re-stamped above the write decided first");
    for store in &s {
        let got = store.get_object("b", "k").await.unwrap();
        assert_eq!((got.etag.as_str(), got.data.len()), ("big", large.len()));
        assert_eq!(got.data, large);
    }
    // The provisional id gave way: written `Aborted` (or pruned), never current.
    let entry = s[1].entry("b", "k").await.unwrap().unwrap();
    let stale: Vec<_> = entry
        .versions
        .iter()
        .filter(|(id, v)| **id < quick.version_id && v.state == VersionState::Uploading)
        .collect();
    assert!(stale.is_empty(), "no upload left behind: {entry:?}");
}

/// A proposer that stops between its accept quorum and its table write: the next write
/// of the key finishes the decided value before judging its own condition by it.
#[tokio::test(start_paused = true)]
async fn an_unconditional_write_decided_but_not_written_is_finished_by_the_next_writer() {
    let (cluster, s) = stores().await;
    cluster.node(1).cas.test_knobs.stop_after_accept.store(true, Ordering::Relaxed);
    let first = s[0].put_object("b", "k", meta("t", "e1"), b"first".to_vec()).await;
    assert!(matches!(first, Err(ObjectError::Unavailable { .. })), "outcome unknown: {first:?}");
    assert_eq!(s[1].get_object("b", "k").await, Err(ObjectError::NoSuchKey), "not written yet");
    let create = WriteCondition::IfNoneMatch;
    let second = s[1].put_object_if("b", "k", meta("t", "e2"), b"second".to_vec(), &create);
    assert_eq!(second.await, Err(ObjectError::PreconditionFailed), "the first write was decided");
    for store in &s {
        assert_eq!(store.get_object("b", "k").await.unwrap().data, b"first".to_vec());
    }
}

/// Versioned bucket: an unconditional PUT adds a version, a delete adds a marker, and
/// conditions look at the current version only.
#[tokio::test(start_paused = true)]
async fn in_a_versioned_bucket_conditions_see_the_current_version() {
    let (_cluster, s) = stores().await;
    s[0].set_versioning("b", Versioning::Enabled).await.unwrap();
    s[0].put_object("b", "k", meta("t", "e1"), b"one".to_vec()).await.unwrap();
    s[1].put_object("b", "k", meta("t", "e2"), b"two".to_vec()).await.unwrap();
    let stale = WriteCondition::IfMatch("e1".into());
    let put = |i: usize, etag: &str, cond: WriteCondition| {
        let (store, etag) = (s[i].clone(), etag.to_string());
        async move {
            store.put_object_if("b", "k", meta("t", &etag), etag.clone().into_bytes(), &cond).await
        }
    };
    assert_eq!(put(2, "x", stale).await, Err(ObjectError::PreconditionFailed));
    put(2, "e3", WriteCondition::IfMatch("e2".into())).await.unwrap();
    s[0].delete_object("b", "k").await.unwrap();
    assert_eq!(
        put(1, "x", WriteCondition::IfMatch("e3".into())).await,
        Err(ObjectError::NoSuchKey)
    );
    put(1, "e4", WriteCondition::IfNoneMatch).await.unwrap();
    let versions = s[2].list_object_versions("b", "k", "", 10).await.unwrap();
    assert_eq!(versions.len(), 5, "e1, e2, e3, the marker, e4: {versions:?}");
    assert!(versions[0].is_latest && versions[0].object.as_ref().unwrap().etag == "e4");
    // Removing the current version by id makes the marker current again.
    let e4 = versions[0].version_id.to_hex();
    s[0].delete_object_version("b", "k", &e4).await.unwrap();
    assert_eq!(
        put(2, "x", WriteCondition::IfMatch("e4".into())).await,
        Err(ObjectError::NoSuchKey)
    );
    // Removing a version that is not there succeeds and changes nothing.
    s[1].delete_object_version("b", "k", &e4).await.unwrap();
}

/// Lifecycle expiration deletes only the version it judged expired: once a newer write is
/// current, the expiration is a no-op.
#[tokio::test(start_paused = true)]
async fn an_expiration_of_a_version_no_longer_current_deletes_nothing() {
    let (_cluster, s) = stores().await;
    let old = s[0].put_object("b", "k", meta("t", "e1"), b"one".to_vec()).await.unwrap();
    s[1].put_object("b", "k", meta("t", "e2"), b"two".to_vec()).await.unwrap();
    assert!(!s[2].expire_object("b", "k", old.version_id).await.unwrap());
    let current = s[2].get_object("b", "k").await.unwrap();
    assert_eq!(current.data, b"two".to_vec());
    assert!(s[0].expire_object("b", "k", current.version_id).await.unwrap());
    assert_eq!(s[1].get_object("b", "k").await, Err(ObjectError::NoSuchKey));
}

/// Unconditional writes of one key from every node at once: each is acknowledged (never
/// 409), and every replica serves the same final value, one of theirs.
#[tokio::test(start_paused = true)]
async fn concurrent_unconditional_writes_all_succeed_and_agree() {
    let (_cluster, s) = stores().await;
    let mut tasks = Vec::new();
    for i in 0..9 {
        let store = s[i % 3].clone();
        tasks.push(tokio::spawn(async move {
            let body = format!("w{i}").into_bytes();
            store.put_object("b", "k", meta("t", &format!("e{i}")), body).await
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.push(t.await.unwrap().expect("an unconditional write is never refused"));
    }
    let newest = acked.iter().max_by_key(|r| r.version_id).unwrap();
    for store in &s {
        let got = store.get_object("b", "k").await.unwrap();
        assert_eq!(got.etag, newest.etag, "the last decided write is current everywhere");
    }
}

/// n1's unconditional 64 KiB PUT prepares and parks; n1 is then cut off while `overtaker`
/// runs on n2 to the end (n2's stamps run 1000 ahead, so its version is newer than the one
/// n1 proposes); back in, n1's accept reaches only its own acceptor (n2 and n3 promised
/// the newer ballot), so its value is partly accepted and its next round sees a newer
/// decided version: its own value may have been decided first and overwritten, or never
/// decided. Returns n1's result, what every node then serves, and the key's entry.
async fn overtaken(
    conditional_overtaker: bool,
) -> (Result<ObjectRecord, ObjectError>, Vec<Vec<u8>>, ObjectEntry) {
    let (cluster, s) = stores().await;
    for _ in 0..1_000 {
        cluster.node(2).stamp();
    }
    let (reached, resume) = cluster.node(1).cas.test_knobs.park_next_after_prepare();
    let first = {
        let store = s[0].clone();
        let body = vec![b'a'; 64 * 1024];
        tokio::spawn(async move { store.put_object("b", "k", meta("t", "ea"), body).await })
    };
    reached.await.expect("the first write prepared");
    cluster.set_down(1, true);
    let (etag, body) = (meta("t", "eb"), b"b".to_vec());
    match conditional_overtaker {
        true => s[1].put_object_if("b", "k", etag, body, &WriteCondition::IfNoneMatch).await,
        false => s[1].put_object("b", "k", etag, body).await,
    }
    .expect("the overtaking write");
    cluster.set_down(1, false);
    resume.send(()).unwrap();
    let first = first.await.unwrap();
    let mut served = Vec::new();
    for store in &s {
        served.push(store.get_object("b", "k").await.expect("a read after the race").data);
    }
    (first, served, s[0].entry("b", "k").await.unwrap().unwrap())
}

/// Overtaken by an unconditional write, an unconditional write is acknowledged (ordered
/// just before the one that overtook it) instead of answering 503; nothing of it is
/// served, and its `Uploading` record is aborted.
#[tokio::test(start_paused = true)]
async fn an_unconditional_write_overtaken_by_an_unconditional_one_is_acknowledged() {
    let (first, served, entry) = overtaken(false).await;
    let first = first.expect("acknowledged as ordered before the overtaking write");
    assert_eq!(first.etag, "ea");
    assert!(served.iter().all(|body| body == b"b"), "the overtaking write is current everywhere");
    let ours = entry.versions.get(&first.version_id);
    assert!(
        ours.is_none_or(|v| v.state == VersionState::Aborted),
        "the overtaken version is pruned or aborted: {entry:?}"
    );
}

/// The twin: overtaken by a *conditional* write (`If-None-Match: *`, which judged "no
/// object"), the unconditional write cannot be ordered before it — the condition would have
/// seen it — so its outcome stays unknown: 503.
#[tokio::test(start_paused = true)]
async fn an_unconditional_write_overtaken_by_a_conditional_one_stays_unknown() {
    let (first, served, _) = overtaken(true).await;
    assert!(matches!(first, Err(ObjectError::Unavailable { .. })), "{first:?}");
    assert!(served.iter().all(|body| body == b"b"));
}
