//! The promise ceiling (`acceptor`, module docs): which steps are fsynced, what a restart
//! honours, and — with the ceiling forgotten on restart — the two chosen values it
//! prevents.

use std::sync::Arc;

use super::acceptor::{CEILING_LEASE_MS, ceiling_above};
use super::{Acceptor, AcceptorState, Ballot, CasReply};
use crate::layout::NodeId;
use crate::seam::open_database;
use crate::testkit::MemDisk;

fn ballot(counter: u64, node: u64) -> Ballot {
    Ballot { counter, node: NodeId(node), nonce: 0 }
}

fn open_on(disk: &MemDisk) -> Acceptor {
    Acceptor::open(Arc::new(open_database(disk, "meta/db").unwrap())).unwrap()
}

#[test]
fn only_accepts_and_promises_above_the_ceiling_are_fsynced() {
    let disk = MemDisk::default();
    let a = open_on(&disk);
    let before = disk.syncs();
    a.prepare(b"k", ballot(10_000, 1)).unwrap();
    assert!(disk.syncs() > before, "the first promise raises the ceiling, fsynced");
    assert_eq!(a.ceiling().unwrap(), Some(ceiling_above(ballot(10_000, 1))));
    assert_eq!(a.ceiling().unwrap().unwrap().counter, 10_000 + CEILING_LEASE_MS);
    // The database's first commits grow its file (a sync of their own): get past them.
    for i in 0..20 {
        a.prepare(format!("warm-up {i}").as_bytes(), ballot(10_000, 1)).unwrap();
    }

    let before = disk.syncs();
    a.prepare(b"k", ballot(10_500, 2)).unwrap();
    // The ceiling's own counter, from any node, is still below it.
    a.prepare(b"other", ballot(10_000 + CEILING_LEASE_MS, 3)).unwrap();
    assert_eq!(disk.syncs(), before, "promises at or below the ceiling are not fsynced");
    a.prepare(b"k", ballot(10_400, 1)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(disk.syncs(), before, "nor are refusals");

    a.accept(b"k", ballot(10_500, 2), b"v".to_vec()).unwrap();
    assert!(disk.syncs() > before, "an accept is fsynced");

    let before = disk.syncs();
    a.prepare(b"k", ballot(10_001 + CEILING_LEASE_MS, 1)).unwrap();
    assert!(disk.syncs() > before, "a promise above the ceiling raises it, fsynced");
    assert_eq!(a.ceiling().unwrap(), Some(ceiling_above(ballot(10_001 + CEILING_LEASE_MS, 1))));
}

#[test]
fn a_promise_lost_in_a_crash_is_still_honoured() {
    let disk = MemDisk::with_crashes();
    {
        let a = open_on(&disk);
        a.prepare(b"k", ballot(10_000, 1)).unwrap();
        // Below the ceiling: not fsynced, and lost in the crash below.
        a.prepare(b"k", ballot(10_400, 2)).unwrap();
        a.prepare(b"fresh", ballot(10_600, 2)).unwrap();
        disk.crash();
    }
    let a = open_on(&disk);
    let ceiling = ceiling_above(ballot(10_000, 1));
    let refused = CasReply::Rejected { promised: Some(ceiling) };
    assert_eq!(
        a.accept(b"k", ballot(10_400, 2), b"late".to_vec()).unwrap(),
        refused,
        "the forgotten promise still bars its own ballot's late accept"
    );
    assert_eq!(a.accept(b"k", ballot(10_000, 1), b"old".to_vec()).unwrap(), refused);
    assert_eq!(a.prepare(b"fresh", ballot(10_600, 3)).unwrap(), refused);
    assert_eq!(
        a.state(b"never-seen").unwrap(),
        AcceptorState { promised: Some(ceiling), accepted: None }
    );

    // A proposer refused once outbids the ceiling, and goes on as before.
    let above = ballot(ceiling.counter + 1, 2);
    assert_eq!(a.prepare(b"k", above).unwrap(), CasReply::Promise { accepted: None, entry: None });
    assert_eq!(a.accept(b"k", above, b"v".to_vec()).unwrap(), CasReply::Accepted);
    assert!(a.ceiling().unwrap() > Some(ceiling), "raised past the new promise");
}

/// Three acceptors A (which crashes), B and C; P1 proposes `v1` under `b1`, P2 `v2` under
/// `b2 > b1`. A's promise of `b2` is below its ceiling, so not fsynced, and the crash
/// loses it. Returns the values chosen (accepted by two acceptors under one ballot).
fn two_proposers_around_a_crash(forget_the_ceiling: bool) -> Vec<&'static [u8]> {
    let disk_a = MemDisk::with_crashes();
    let (disk_b, disk_c) = (MemDisk::default(), MemDisk::default());
    let (b, c) = (open_on(&disk_b), open_on(&disk_c));
    let (b1, b2) = (ballot(10_000, 1), ballot(10_400, 2));
    {
        let a = open_on(&disk_a);
        // P1's prepare quorum: A and B.
        assert!(matches!(a.prepare(b"k", b1).unwrap(), CasReply::Promise { .. }));
        assert!(matches!(b.prepare(b"k", b1).unwrap(), CasReply::Promise { .. }));
        // P2's prepare quorum: A and C; nothing accepted anywhere, so P2 proposes v2.
        assert!(matches!(a.prepare(b"k", b2).unwrap(), CasReply::Promise { accepted: None, .. }));
        assert!(matches!(c.prepare(b"k", b2).unwrap(), CasReply::Promise { accepted: None, .. }));
        disk_a.crash();
    }
    let db = Arc::new(open_database(&disk_a, "meta/db").unwrap());
    let a = match forget_the_ceiling {
        false => Acceptor::open(db).unwrap(),
        true => Acceptor::open_forgetting_the_ceiling(db).unwrap(),
    };
    // P1's accepts reach A and B.
    let p1 = [&a, &b].map(|x| x.accept(b"k", b1, b"v1".to_vec()).unwrap());
    // P2's late prepare reaches B, then its accepts reach B and C.
    assert!(matches!(b.prepare(b"k", b2).unwrap(), CasReply::Promise { .. }));
    let p2 = [&b, &c].map(|x| x.accept(b"k", b2, b"v2".to_vec()).unwrap());
    let mut chosen = Vec::new();
    for (value, answers) in [(&b"v1"[..], p1), (b"v2", p2)] {
        if answers.iter().all(|r| *r == CasReply::Accepted) {
            chosen.push(value);
        }
    }
    chosen
}

#[test]
fn after_a_crash_one_value_is_chosen() {
    assert_eq!(two_proposers_around_a_crash(false), vec![&b"v2"[..]]);
}

/// The twin: an acceptor that forgets its ceiling on restart lets both values be chosen,
/// which is what counting every key as promised at the ceiling prevents.
#[test]
fn forgetting_the_ceiling_lets_two_values_be_chosen() {
    assert_eq!(two_proposers_around_a_crash(true), vec![&b"v1"[..], b"v2"]);
}

/// After a restart, the acceptor's answers to the row collector count the ceiling too:
/// `CasPeek` reports every key promised at it, and a catch-up to a fence under a lower
/// ballot is refused (this acceptor may have promised anything up to the ceiling).
#[test]
fn after_a_restart_peeks_and_catch_ups_count_the_ceiling() {
    let disk = MemDisk::default();
    {
        let a = open_on(&disk);
        a.prepare(b"k", ballot(10_000, 1)).unwrap();
        a.accept(b"k", ballot(10_000, 1), b"old".to_vec()).unwrap();
    }
    let a = open_on(&disk);
    let ceiling = ceiling_above(ballot(10_000, 1));
    let states = a.peek(&[b"k".to_vec(), b"none".to_vec()]).unwrap();
    assert_eq!(states[0].promised, Some(ceiling));
    assert_eq!(states[0].accepted, Some((ballot(10_000, 1), b"old".to_vec())), "kept");
    assert_eq!(states[1], AcceptorState { promised: Some(ceiling), accepted: None });

    let below = ballot(10_500, 2);
    let items = vec![(b"k".to_vec(), below), (b"none".to_vec(), below)];
    assert_eq!(a.catch_up(items, b"fence").unwrap(), 0, "below the ceiling: left alone");
    let above = ballot(ceiling.counter + 1, 2);
    assert_eq!(a.catch_up(vec![(b"k".to_vec(), above)], b"fence").unwrap(), 1);
    assert_eq!(a.state(b"k").unwrap().accepted, Some((above, b"fence".to_vec())));
}
