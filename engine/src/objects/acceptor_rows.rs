//! Shrinks acceptor rows once their value is in this node's object table.
//!
//! Every write of a key leaves its value (the version, with an inline body of up to 4 KiB)
//! in the `cas_acceptor` row of each acceptor that accepted it, where it stayed for good:
//! a second copy of every small object's body and metadata, kept even after the object was
//! deleted. An acceptor row needs its value only until the value is in the object table,
//! and this node can tell that for its own replica: once its local entry shows the version
//! (in that state or a later one), or a newer current version that supersedes it, the row's
//! value is replaced by a fence (`None`, "decides nothing") under the same ballot.
//!
//! Why that is safe: a prepare that reaches this acceptor gets its promise *and* its local
//! object entry (`Node::serve_cas`), and the view it builds holds the version either way.
//! Finishing the fence instead of the value then writes nothing — exactly what finishing
//! the value would have done, since `settle` writes nothing for a view that already shows
//! it (`locally_settled` is the same test, on one replica's entry). A prepare that does
//! not reach this acceptor does not see its row at all. What must not happen is a fence in
//! place of a value that is chosen but not yet in this replica's table: a round whose
//! prepare quorum holds only fences and no table entry with the value would decide a write
//! stamped as if the value never existed, while its proposer still answers 200
//! (`acceptor_rows_tests` shows it with a compactor that skips the check).
//!
//! Then the row itself goes (`collect`): a fence under ballot `A` still matters, because a
//! prepare quorum finishes the value of its highest ballot, and the fence outranks any
//! value another acceptor accepted under a lower ballot — a value that was never decided,
//! and whose client may have been told so. Without the fence such a stale value would be
//! finished and written. So a row is deleted only once every other acceptor of the key
//! (every replica set of every live layout version) has promised at least `A`, and holds
//! no value below `A` that is not a fence: no acceptor then holds or can ever accept a
//! value the fence outranks (an acceptor accepts only the ballot it promised last, and
//! promises only rise). The row's promise moves into the acceptor's promise floor
//! (`cas::acceptor`). A row whose promise is younger than `ROW_GRACE_MS` is left alone:
//! its key is being written, and the row would be back at once.
//!
//! A peer that is behind (it was away during the key's last round and never promised `A`)
//! is caught up (`catch_up`): it merges this node's object entry for the key, where `A`'s
//! proposal is settled, then takes promise `A` and the fence under `A` — the state it would
//! have had it accepted that proposal and compacted it — and the next pass deletes the row.
//!
//! What is left: a row with a value waits for compaction; a row whose peer promised past
//! `A` but holds a stale value below it waits until a later write of the key. A row with a promise and nothing accepted is listed by its
//! prepare and needs no peer: it outranks nothing. Rows of partitions the node no longer
//! holds are deleted by the GC pass once per settled layout version
//! (`Acceptor::delete_rows_unless`), so a node re-added later with its old metadata does not
//! bring back stale values its new peers deleted their fences against.

use std::collections::BTreeMap;

use super::conditional_rounds::locally_settled;
use super::version::{decode_cas_value, encode_cas_value};
use crate::cas::{AcceptorState, Ballot, CatchUp, PeekKey, RowSummary};
use crate::layout::NodeId;
use crate::node::Node;
use crate::rpc::{Request, Response};
use crate::table::LocalTable;
use crate::table::schema::partition_of_key;

/// Rows looked at per batch (one read and one write transaction each).
const ROWS_PER_BATCH: usize = 1_000;

/// How old a row's promise must be (ballot counters are stamps in milliseconds) before
/// the row is deleted: longer than a key's writes in a burst are apart.
pub const ROW_GRACE_MS: u64 = 60_000;

/// What one compaction pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CompactionReport {
    /// Rows whose value was replaced by a fence.
    pub compacted: usize,
    /// Rows whose value is not in this node's object table yet (looked at again next pass).
    pub waiting: usize,
}

/// One pass over the rows accepted since the last pass. `unsafe_skip_check` is the test
/// weakening: fence every value without looking at the object table.
pub fn compact(node: &Node, unsafe_skip_check: bool) -> Result<CompactionReport, String> {
    let fence = encode_cas_value(&None);
    let mut report = CompactionReport::default();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let due = node.cas.compaction_due(after.as_deref(), ROWS_PER_BATCH);
        let due = due.map_err(|e| e.to_string())?;
        let batch_len = due.len();
        let mut items = Vec::with_capacity(batch_len);
        for (key, state) in due {
            after = Some(key.clone());
            let settled = match &state.accepted {
                None => true,
                Some(_) if unsafe_skip_check => true,
                Some((_, bytes)) => match decode_cas_value(bytes) {
                    Ok(None) => true,
                    Ok(Some((id, version))) => {
                        let entry = node.objects.local.get(&key).map_err(|e| e.to_string())?;
                        entry.is_some_and(|entry| locally_settled(&entry, id, &version))
                    }
                    // Not a value this build wrote: leave it as it is.
                    Err(_) => false,
                },
            };
            if settled {
                items.push((key, state.accepted));
            } else {
                report.waiting += 1;
                tracing::debug!(key = %String::from_utf8_lossy(&key), ?state.promised,
                    "acceptor row keeps its value: not in this node's object table yet");
            }
        }
        report.compacted += node.cas.compact(items, &fence).map_err(|e| e.to_string())?;
        if batch_len < ROWS_PER_BATCH {
            return Ok(report);
        }
    }
}

/// What one collection pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CollectionReport {
    /// Rows deleted.
    pub deleted: usize,
    /// Rows kept for now: their promise is younger than the grace.
    pub young: usize,
    /// Rows kept for now: a peer has not promised past them, or holds a value they outrank.
    pub behind: usize,
    /// Rows kept for now: a peer did not answer.
    pub unanswered: usize,
    /// Peers caught up with a row this pass (`catch_up`): the row goes next pass.
    pub caught_up: usize,
}

/// One pass over the rows `compact` left holding a fence: deletes those no prepare quorum
/// needs any more (module docs) once their promise is `grace_ms` old (0: at once).
/// `unsafe_skip_peers` is the test weakening: delete without asking the other acceptors.
pub async fn collect(
    node: &Node,
    grace_ms: u64,
    unsafe_skip_peers: bool,
) -> Result<CollectionReport, String> {
    let mut report = CollectionReport::default();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let due = node.cas.deletion_due(after.as_deref(), ROWS_PER_BATCH);
        let due = due.map_err(|e| e.to_string())?;
        let batch_len = due.len();
        let cutoff = node.seam.clock.now_ms().saturating_sub(grace_ms);
        let (mut candidates, mut forget) = (Vec::new(), Vec::new());
        for (key, row) in due {
            after = Some(key.clone());
            let Some(state) = row else {
                forget.push(key);
                continue;
            };
            if state.accepted.as_ref().is_some_and(|(_, value)| !is_fence(value)) {
                // Accepted anew: compaction lists it again once the value is settled.
                forget.push(key);
            } else if grace_ms > 0 && state.promised.is_some_and(|p| p.counter > cutoff) {
                report.young += 1;
            } else {
                candidates.push((key, state));
            }
        }
        let deletable = match unsafe_skip_peers {
            true => candidates,
            false => {
                let peers = peer_summaries(node, &candidates).await;
                let mut deletable = Vec::new();
                let mut behind: BTreeMap<NodeId, Vec<CatchUp>> = BTreeMap::new();
                for (key, state) in candidates {
                    let answers = peers.get(&key).map_or(&[][..], |all| all.as_slice());
                    if answers.iter().any(|(_, a)| a.is_none()) {
                        report.unanswered += 1;
                    } else if answers
                        .iter()
                        .all(|(_, a)| a.as_ref().is_some_and(|peer| row_is_redundant(&state, peer)))
                    {
                        deletable.push((key, state));
                    } else {
                        report.behind += 1;
                        tracing::debug!(key = %String::from_utf8_lossy(&key), ?state, ?answers,
                            "acceptor row kept: a peer has not moved past it");
                        let Some((fence_ballot, _)) = state.accepted else { continue };
                        let entry = node.objects.local.get_raw(&key).map_err(|e| e.to_string())?;
                        for (peer, answer) in answers {
                            let Some(summary) = answer else { continue };
                            if can_catch_up(summary, fence_ballot) {
                                let (key, entry) = (key.clone(), entry.clone());
                                let item = CatchUp { key, ballot: fence_ballot, entry };
                                behind.entry(*peer).or_default().push(item);
                            }
                        }
                    }
                }
                for (peer, items) in behind {
                    let n = items.len();
                    if let Ok(Response::Done) =
                        node.rpc.call(peer, Request::CasCatchUp(items)).await
                    {
                        report.caught_up += n;
                    }
                }
                deletable
            }
        };
        report.deleted += node.cas.delete_rows(deletable, forget).map_err(|e| e.to_string())?;
        if batch_len < ROWS_PER_BATCH {
            if report != CollectionReport::default() {
                tracing::debug!(?report, "acceptor rows collected");
            }
            return Ok(report);
        }
    }
}

/// Whether a peer in the state `peer` makes this acceptor's row `mine` redundant: it has
/// promised at least the row's accepted ballot and holds no value below it other than a
/// fence. A row with nothing accepted only holds a promise, which the floor keeps.
fn row_is_redundant(mine: &AcceptorState, peer: &RowSummary) -> bool {
    let Some((fence_ballot, _)) = &mine.accepted else {
        return true;
    };
    let promised_enough = peer.promised.is_some_and(|p| p >= *fence_ballot);
    let nothing_below = match peer.accepted {
        None => true,
        Some((ballot, is_fence)) => is_fence || ballot >= *fence_ballot,
    };
    promised_enough && nothing_below
}

/// Whether a peer in the state `peer` can be caught up with a fence under `ballot`
/// (`Acceptor::catch_up`): it promised at most that ballot and accepted nothing at or
/// above it. A peer that promised more is raised by the key's next write instead.
fn can_catch_up(peer: &RowSummary, ballot: Ballot) -> bool {
    peer.promised.is_none_or(|p| p <= ballot)
        && peer.accepted.is_none_or(|(accepted, _)| accepted < ballot)
}

/// This node's side of a `CasCatchUp`: merges each caller's object entry into the local
/// object table (durably), then catches the acceptor up. Returns how many rows changed.
pub async fn catch_up(node: &Node, items: Vec<CatchUp>) -> Result<usize, String> {
    let entries: Vec<(Vec<u8>, Vec<u8>)> =
        items.iter().filter_map(|i| Some((i.key.clone(), i.entry.clone()?))).collect();
    if !entries.is_empty() {
        node.objects.local.merge_raw_async(entries).await.map_err(|e| e.to_string())?;
    }
    let fence = encode_cas_value(&None);
    let keys = items.into_iter().map(|i| (i.key, i.ballot)).collect();
    node.cas.catch_up(keys, &fence).map_err(|e| e.to_string())
}

/// For each candidate key, what each of its other acceptors holds (`None` for one that did
/// not answer); one `CasPeek` per peer.
async fn peer_summaries(
    node: &Node,
    candidates: &[(Vec<u8>, AcceptorState)],
) -> BTreeMap<Vec<u8>, Vec<(NodeId, Option<RowSummary>)>> {
    let mut asks: BTreeMap<NodeId, Vec<Vec<u8>>> = BTreeMap::new();
    let mut out: BTreeMap<Vec<u8>, Vec<(NodeId, Option<RowSummary>)>> = BTreeMap::new();
    for (key, _) in candidates {
        let mut peers: Vec<NodeId> =
            node.layouts.write_sets(partition_of_key(key)).into_iter().flatten().collect();
        peers.sort();
        peers.dedup();
        out.insert(key.clone(), Vec::new());
        for peer in peers.into_iter().filter(|p| *p != node.id) {
            asks.entry(peer).or_default().push(key.clone());
        }
    }
    // One call per peer, in turn: a key has two or three other acceptors.
    for (peer, keys) in asks {
        let request = Request::CasPeek(keys.iter().cloned().map(PeekKey).collect());
        let answer = match node.rpc.call(peer, request).await {
            Ok(Response::CasPeek(summaries)) if summaries.len() == keys.len() => Some(summaries),
            _ => None,
        };
        let answers =
            answer.map_or_else(|| vec![None; keys.len()], |s| s.into_iter().map(Some).collect());
        for (key, summary) in keys.into_iter().zip(answers) {
            out.entry(key).or_default().push((peer, summary));
        }
    }
    out
}

/// This node's answer to a `CasPeek`: a summary of its acceptor state for each key.
pub fn summaries(node: &Node, keys: &[Vec<u8>]) -> Result<Vec<RowSummary>, String> {
    let states = node.cas.peek(keys).map_err(|e| e.to_string())?;
    let summary = |state: AcceptorState| RowSummary {
        promised: state.promised,
        accepted: state.accepted.map(|(ballot, value)| (ballot, is_fence(&value))),
    };
    Ok(states.into_iter().map(summary).collect())
}

/// Whether an accepted value is a fence, in any of the formats it was written in.
fn is_fence(value: &[u8]) -> bool {
    matches!(decode_cas_value(value), Ok(None))
}
