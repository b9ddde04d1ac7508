//! `LayoutHistory`: CRDT laws over seeded random histories, and the transition rules
//! (which set reads use, which sets writes reach, when an old version is dropped).

use rand_chacha::ChaCha8Rng;
use rand_core::RngCore;

use super::history::{LayoutHistory, Tracker};
use super::{ClusterLayout, NodeId, NodeRole};
use crate::crdt::assert_crdt_laws;

fn role(zone: &str) -> NodeRole {
    NodeRole { zone: zone.into(), capacity: 1, tags: Vec::new() }
}

/// v1: nodes 1–3 (RF 3); v2: node 4 added; v3: node 1 removed.
fn chain() -> Vec<ClusterLayout> {
    let mut layout = ClusterLayout::new(3).unwrap();
    for n in 1..=3 {
        layout.stage_assign(NodeId(n), role(&format!("z{n}"))).unwrap();
    }
    layout.apply_staged(1).unwrap();
    let v1 = layout.clone();
    layout.stage_assign(NodeId(4), role("z1")).unwrap();
    layout.apply_staged(2).unwrap();
    let v2 = layout.clone();
    layout.stage_remove(NodeId(1));
    layout.apply_staged(3).unwrap();
    vec![v1, v2, layout]
}

fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    rng.next_u64() % n
}

#[test]
fn merge_obeys_crdt_laws() {
    let chain = chain();
    let trackers = [Tracker::Ack, Tracker::Sync, Tracker::SyncAck];
    assert_crdt_laws("LayoutHistory", 500, |rng| {
        let mut h = LayoutHistory::from_layout(&chain[0]);
        for layout in &chain[1..1 + below(rng, 3) as usize] {
            h.push(layout.clone());
        }
        let newest = h.current().unwrap().version();
        for _ in 0..below(rng, 12) {
            let which = trackers[below(rng, 3) as usize];
            h.advance(which, NodeId(1 + below(rng, 4)), 1 + below(rng, newest));
        }
        if below(rng, 2) == 0 {
            h.set_addr(NodeId(below(rng, 4)), below(rng, 3), format!("a{}", below(rng, 2)));
        }
        h
    });
}

#[test]
fn reads_stay_on_the_old_set_until_every_node_synced_and_writes_reach_both() {
    let chain = chain();
    let mut h = LayoutHistory::from_layout(&chain[0]);
    h.push(chain[1].clone());
    let moved = (0..=u8::MAX).find(|&p| chain[0].nodes_of(p) != chain[1].nodes_of(p)).unwrap();
    assert_eq!(h.read_nodes(moved), chain[0].nodes_of(moved));
    let sets = h.write_sets(moved);
    assert_eq!(sets, vec![chain[0].nodes_of(moved).to_vec(), chain[1].nodes_of(moved).to_vec()]);
    for n in 1..=4 {
        h.advance(Tracker::Ack, NodeId(n), 2);
    }
    for n in 1..=3 {
        h.advance(Tracker::Sync, NodeId(n), 2);
    }
    assert_eq!(h.read_version().unwrap().version(), 1, "node 4 has not synced yet");
    h.advance(Tracker::Sync, NodeId(4), 2);
    assert_eq!(h.read_nodes(moved), chain[1].nodes_of(moved));
    assert_eq!(h.versions().len(), 2, "no node reported reading v2 yet: v1 stays");
    for n in 1..=3 {
        h.advance(Tracker::SyncAck, NodeId(n), 2);
    }
    assert_eq!(h.versions().len(), 2, "node 4 may still read v1");
    h.advance(Tracker::SyncAck, NodeId(4), 2);
    assert_eq!(h.versions().len(), 1, "every node reads v2: v1 is dropped");
    assert_eq!(h.write_sets(moved), vec![chain[1].nodes_of(moved).to_vec()]);
}

#[test]
fn a_dropped_version_never_comes_back_from_a_stale_peer() {
    let chain = chain();
    let mut stale = LayoutHistory::from_layout(&chain[0]);
    stale.push(chain[1].clone());
    let mut done = stale.clone();
    for which in [Tracker::Ack, Tracker::Sync, Tracker::SyncAck] {
        for n in 1..=4 {
            done.advance(which, NodeId(n), 2);
        }
    }
    assert_eq!(done.versions().len(), 1);
    done.merge(&stale);
    assert_eq!(done.versions().len(), 1);
    stale.merge(&done);
    assert_eq!(stale, done, "the stale peer catches up entirely");
}

#[test]
fn a_history_without_any_layout_learns_everything_from_one_merge() {
    let chain = chain();
    let mut empty = LayoutHistory::from_layout(&ClusterLayout::new(3).unwrap());
    assert!(empty.current().is_none());
    assert!(empty.read_nodes(0).is_empty() && empty.write_sets(0).is_empty());
    let mut full = LayoutHistory::from_layout(&chain[0]);
    full.set_addr(NodeId(1), 5, "n1:3901".into());
    empty.merge(&full);
    assert_eq!(empty, full);
    assert_eq!(empty.addrs().collect::<Vec<_>>(), vec![(NodeId(1), "n1:3901")]);
}
