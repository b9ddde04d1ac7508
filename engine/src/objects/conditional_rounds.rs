//! One CASPaxos round of a key write (`conditional` explains the protocol), the two
//! phases over the key's acceptors, and the quorum rule.
//!
//! Quorums (flexible Paxos), in the replica set of every live layout version, with `W` the
//! table write quorum and `n` the set's size: `Q1 = max(majority, n - W + 1)` and
//! `Q2 = max(majority, W)`. So `Q1` meets every `Q2` (one decision per ballot order) and
//! every table write quorum (the view holds every acknowledged write).
//!
//! Recovery: a proposer may stop between its accept quorum and its table write (a crash).
//! The next round's prepare meets its accept quorum, so it sees the value; it is
//! re-proposed under the new ballot if fewer than `Q2` promisers hold it under its own
//! ballot, then written to the object table before anything else is judged.

use std::collections::BTreeSet;
#[cfg(test)]
use std::sync::atomic::Ordering;

use tokio::sync::mpsc;

use super::body::{self, Body};
use super::conditional::Predicate;
use super::conditional::{KeyWrite, Proposer, RoundEnd};
use super::version::{
    ObjectEntry, Version, VersionData, VersionId, VersionState, decode_cas_value, encode_cas_value,
};
use super::{ObjectError, ObjectStore};
use crate::cas::{Accepted, Ballot, CasReply, CasRequest};
use crate::crdt::Crdt;
use crate::layout::NodeId;
use crate::rpc::{Request, Response};
use crate::table::schema::partition_of_key;

/// The value a round decides: the version to write (`Complete`, or `Deleted` for a delete
/// by version id), or `None`, a fence that decides nothing new (see `fence`). Stored in
/// acceptors: its encoding is persisted (`cas_acceptor` rows).
pub(super) type CasValue = Option<(VersionId, Version)>;

/// Counts successes per replica set.
struct Tally {
    sets: Vec<Vec<NodeId>>,
    ok: BTreeSet<NodeId>,
}

impl Tally {
    fn reached(&self, quorum: impl Fn(usize) -> usize) -> bool {
        !self.sets.is_empty()
            && self
                .sets
                .iter()
                .all(|set| set.iter().filter(|n| self.ok.contains(n)).count() >= quorum(set.len()))
    }
}

enum Phase1 {
    Promised { accepted: Vec<(NodeId, Accepted)>, view: ObjectEntry },
    Rejected { promised: Option<Ballot> },
}

enum Phase2 {
    Chosen,
    /// Every acceptor answered and too few accepted: lost to a higher ballot. Some may
    /// have accepted (`partly`): the value may still be adopted by a later round.
    Refused {
        promised: Option<Ballot>,
        partly: bool,
    },
    /// Some acceptors did not answer: the value may have been chosen, or not.
    Unknown {
        reason: String,
    },
}

impl ObjectStore {
    /// One round under `ballot`; `RoundEnd::Decided` once our value is decided and in the
    /// table.
    pub(super) async fn round(
        &self,
        write: &KeyWrite<'_>,
        table_key: &[u8],
        ballot: Ballot,
        proposer: &mut Proposer,
    ) -> Result<RoundEnd, ObjectError> {
        let (accepted, mut view) = match self.prepare(table_key, ballot).await? {
            Phase1::Promised { accepted, view } => (accepted, view),
            Phase1::Rejected { promised } => return Ok(RoundEnd::Lost { promised }),
        };
        #[cfg(test)]
        self.node.cas.test_knobs.pause_after_prepare().await;
        if let Some(end) = self.finish_last(write, table_key, ballot, &accepted, &mut view).await? {
            return Ok(end);
        }
        if let Some(id) = proposer.ids.iter().rev().find(|id| decided_ours(write, &view, **id)) {
            // Adopted and decided by another proposer's round (or ours, earlier).
            return Ok(RoundEnd::Decided(*id));
        }
        if proposer.ours_out && may_be_superseded(write, &view, proposer) {
            if let Some(id) = overtaken_by_unconditional(write, &view, proposer) {
                return Ok(RoundEnd::Overtaken(id));
            }
            // Our value may have been adopted, decided and then pruned by a newer decided
            // write — or never decided. Proposing it again could apply it twice, and
            // claiming it decided could place it before a conditional write that relied on
            // the state it would have replaced. Make sure it can never be adopted again;
            // its outcome stays unknown.
            self.fence(table_key, ballot).await?;
            let reason = "the write may have been decided and overwritten since: outcome unknown";
            return Err(ObjectError::Unavailable { reason: reason.into() });
        }
        let nothing_to_remove = write.removes_a_version()
            && write.id.is_some_and(|id| !view.versions.contains_key(&id));
        if let Err(refusal) = write.predicate.check(&view) {
            if proposer.ours_out {
                self.fence(table_key, ballot).await?;
            }
            return Err(refusal);
        }
        if nothing_to_remove {
            // Deleting a version that is not there succeeds (S3: idempotent).
            if proposer.ours_out {
                self.fence(table_key, ballot).await?;
            }
            return Ok(RoundEnd::Decided(write.id.expect("a removal names its version")));
        }
        let id = self.id_for(write, &view, proposer).await?;
        let value = encode_cas_value(&Some((id, write.version.clone())));
        match self.accept(table_key, ballot, value).await? {
            Phase2::Chosen => {}
            Phase2::Refused { promised, partly } => {
                proposer.ours_out |= partly;
                return Ok(RoundEnd::Lost { promised });
            }
            // Some acceptors did not answer: our value may be chosen. Another round finds
            // out (its prepare quorum meets any accept quorum: a chosen value of ours is
            // finished and recognised as ours) instead of answering 503 at once.
            Phase2::Unknown { .. } => {
                proposer.ours_out = true;
                return Ok(RoundEnd::Lost { promised: None });
            }
        }
        #[cfg(test)]
        self.node.cas.test_knobs.pause_after_accept().await;
        #[cfg(test)]
        if self.node.cas.test_knobs.stop_after_accept.load(Ordering::Relaxed) {
            return Err(ObjectError::Unavailable { reason: "test: stopped after accept".into() });
        }
        self.write_decided_version(write.bucket, write.key, id, write.version.clone()).await?;
        Ok(RoundEnd::Decided(id))
    }

    /// Finishes the last accepted value the prepare quorum reported: decides it for sure
    /// under `ballot` if it may not be decided yet, and writes it to the table (merged into
    /// `view`). `Some(end)` when the round cannot go on with our own value.
    async fn finish_last(
        &self,
        write: &KeyWrite<'_>,
        table_key: &[u8],
        ballot: Ballot,
        accepted: &[(NodeId, Accepted)],
        view: &mut ObjectEntry,
    ) -> Result<Option<RoundEnd>, ObjectError> {
        let Some((last_ballot, last_bytes)) = accepted.iter().map(|(_, a)| a).max_by_key(|a| a.0)
        else {
            return Ok(None);
        };
        let voters: BTreeSet<NodeId> =
            accepted.iter().filter(|(_, a)| a.0 == *last_ballot).map(|(n, _)| *n).collect();
        let chosen = self.tally(table_key, voters).reached(|n| self.cas_quorums(n).1);
        if !chosen {
            // Possibly decided by a proposer that stopped half-way: decide it for sure under
            // our ballot before anything relies on it; our own value then needs a new ballot
            // (one value per ballot).
            match self.accept(table_key, ballot, last_bytes.clone()).await? {
                Phase2::Chosen => {}
                Phase2::Refused { promised, .. } => return Ok(Some(RoundEnd::Lost { promised })),
                Phase2::Unknown { reason } => return Err(ObjectError::Unavailable { reason }),
            }
        }
        let decided: CasValue = decode_cas_value(last_bytes)
            .map_err(|e| ObjectError::Internal { reason: e.to_string() })?;
        if let Some((id, version)) = decided {
            self.settle(write, view, id, version).await?;
        }
        Ok((!chosen).then_some(RoundEnd::Again))
    }

    /// The id to propose our value under: the one it is recorded under if that is above
    /// every version in the view, else a new one above them all (a body in blocks is then
    /// recorded `Uploading` under it and its blocks referenced, before any accept).
    async fn id_for(
        &self,
        write: &KeyWrite<'_>,
        view: &ObjectEntry,
        proposer: &mut Proposer,
    ) -> Result<VersionId, ObjectError> {
        let newest = view.newest();
        if let Some(&id) = proposer.ids.last()
            && (write.removes_a_version() || newest.is_none_or(|n| n <= id))
        {
            return Ok(id);
        }
        let timestamp = self.node.stamp_after(newest.map_or(0, |n| n.timestamp));
        let id = VersionId { timestamp, unique: self.node.id.0 };
        if let Some(body) = write.body_in_blocks() {
            // The blocks as recorded under the id the value had so far.
            let (bucket, key) = (write.bucket.to_string(), write.key.to_string());
            let recorded = *proposer.ids.last().expect("a body in blocks is recorded first");
            let from = body::Owner { bucket: bucket.clone(), key: key.clone(), version: recorded };
            let Some(blocks) = self.blocks_of(&from, body).await? else {
                return Err(ObjectError::Unavailable {
                    reason: "the write's block list disappeared before it was decided".into(),
                });
            };
            let uploading = Version::new(VersionState::Uploading, write.version.kept);
            self.write_version(write.bucket, write.key, id, uploading).await?;
            proposer.restamped.push(id);
            let owner = body::Owner { bucket, key, version: id };
            self.reference_blocks(&owner, &blocks).await?;
            if matches!(body, Body::Listed(_)) {
                self.write_list(&owner, blocks).await?;
            }
        }
        proposer.ids.push(id);
        Ok(id)
    }

    /// Before refusing a write whose value an earlier round left with some acceptors:
    /// decides a no-op under `ballot`, above that value's ballot, so that no later round
    /// can adopt it and make visible a write its client was told had failed.
    async fn fence(&self, table_key: &[u8], ballot: Ballot) -> Result<(), ObjectError> {
        let value = encode_cas_value(&None);
        match self.accept(table_key, ballot, value).await? {
            Phase2::Chosen => Ok(()),
            Phase2::Refused { .. } => Err(ObjectError::Unavailable {
                reason: "a concurrent write of the key overtook ours: outcome unknown".into(),
            }),
            Phase2::Unknown { reason } => Err(ObjectError::Unavailable { reason }),
        }
    }

    /// Writes a decided value to the object table unless the view already has it (its
    /// proposer may have stopped before doing so), and merges it into the view. A value
    /// whose version was aborted meanwhile (by the stale-upload collector) is not revived:
    /// its blocks may already be collected.
    async fn settle(
        &self,
        write: &KeyWrite<'_>,
        view: &mut ObjectEntry,
        id: VersionId,
        version: Version,
    ) -> Result<(), ObjectError> {
        let removal = version.state == VersionState::Deleted;
        if locally_settled(view, id, &version) {
            return Ok(());
        }
        match view.versions.get(&id).map(|v| &v.state) {
            // Removed already (a removal is written only for a version the view had).
            None if removal => return Ok(()),
            // A body in blocks was recorded `Uploading` with a write quorum before it was
            // proposed, and the view meets every write quorum: absent, the version was
            // removed since (aborted by the collector, then collected as a tombstone), and
            // its blocks with it. Reviving it would serve missing blocks.
            None if has_blocks(&version) => return Ok(()),
            // Absent (an inline body, never written; or pruned once a newer version
            // completed), still uploading, or complete and now removed by id.
            _ => {}
        }
        self.write_decided_version(write.bucket, write.key, id, version.clone()).await?;
        view.merge(&ObjectEntry::with(id, version));
        Ok(())
    }

    /// The prepare and accept quorums in a replica set of `n` nodes.
    fn cas_quorums(&self, n: usize) -> (usize, usize) {
        cas_quorums(n, self.node.quorums.write)
    }

    fn tally(&self, table_key: &[u8], ok: BTreeSet<NodeId>) -> Tally {
        Tally { sets: self.phase_sets(table_key), ok }
    }

    /// The key's replica sets, read once per phase: the phase's request kind (`solo`), its
    /// recipients and its tally must come from the same layout. A `*Solo` request sent to
    /// the members of a newer, larger set would have several acceptors commit without
    /// fsync, which is unsafe (`cas::Commit::Volatile`).
    fn phase_sets(&self, table_key: &[u8]) -> Vec<Vec<NodeId>> {
        self.node.layouts.write_sets(partition_of_key(table_key))
    }

    /// Sends `request` to every node of `sets` (ourselves directly).
    fn cas_fan_out(&self, sets: &[Vec<NodeId>], request: CasRequest) -> mpsc::Receiver<Answer> {
        let mut nodes: Vec<NodeId> = sets.iter().flatten().copied().collect();
        nodes.sort();
        nodes.dedup();
        let (tx, rx) = mpsc::channel(nodes.len().max(1));
        for node in nodes {
            let (me, tx, request) = (self.node.clone(), tx.clone(), request.clone());
            tokio::spawn(async move {
                let answer = if node == me.id {
                    me.serve_cas(request).await.map_err(|e| e.to_string())
                } else {
                    match me.rpc.call(node, Request::Cas(request)).await {
                        Ok(Response::Cas(reply)) => Ok(reply),
                        Ok(other) => Err(format!("unexpected answer {other:?}")),
                        Err(e) => Err(e.to_string()),
                    }
                };
                let _ = tx.send((node, answer)).await;
            });
        }
        rx
    }

    async fn prepare(&self, table_key: &[u8], ballot: Ballot) -> Result<Phase1, ObjectError> {
        let sets = self.phase_sets(table_key);
        let key = table_key.to_vec();
        let request = match solo(&sets) {
            true => CasRequest::PrepareSolo { key, ballot },
            false => CasRequest::Prepare { key, ballot },
        };
        let mut answers = self.cas_fan_out(&sets, request);
        let mut tally = Tally { sets, ok: BTreeSet::new() };
        let (mut accepted, mut view) = (Vec::new(), ObjectEntry::default());
        let (mut promised, mut errors) = (None, Vec::new());
        while !tally.reached(|n| self.cas_quorums(n).0)
            && let Some((node, answer)) = answers.recv().await
        {
            match answer {
                Ok(CasReply::Promise { accepted: a, entry }) => {
                    if let Some(bytes) = entry {
                        let entry: ObjectEntry = crate::table::schema::decode_entry(&bytes)
                            .map_err(|e| ObjectError::Internal { reason: e.to_string() })?;
                        view.merge(&entry);
                    }
                    accepted.extend(a.map(|a| (node, a)));
                    tally.ok.insert(node);
                }
                Ok(CasReply::Rejected { promised: p }) => promised = promised.max(p),
                Ok(CasReply::Accepted) => errors.push(format!("{node}: accepted a prepare")),
                Err(e) => errors.push(format!("{node}: {e}")),
            }
        }
        if tally.reached(|n| self.cas_quorums(n).0) {
            return Ok(Phase1::Promised { accepted, view });
        }
        if promised.is_some() {
            return Ok(Phase1::Rejected { promised });
        }
        let reason = format!("no prepare quorum for a write of the key: {}", errors.join("; "));
        Err(ObjectError::Unavailable { reason })
    }

    async fn accept(
        &self,
        table_key: &[u8],
        ballot: Ballot,
        value: Vec<u8>,
    ) -> Result<Phase2, ObjectError> {
        let sets = self.phase_sets(table_key);
        let key = table_key.to_vec();
        let request = match solo(&sets) {
            true => CasRequest::AcceptSolo { key, ballot, value },
            false => CasRequest::Accept { key, ballot, value },
        };
        let mut answers = self.cas_fan_out(&sets, request);
        let mut tally = Tally { sets, ok: BTreeSet::new() };
        let (mut promised, mut errors, mut unknown, mut partly) = (None, Vec::new(), false, false);
        while !tally.reached(|n| self.cas_quorums(n).1)
            && let Some((node, answer)) = answers.recv().await
        {
            match answer {
                Ok(CasReply::Accepted) => {
                    tally.ok.insert(node);
                    partly = true;
                }
                Ok(CasReply::Rejected { promised: p }) => promised = promised.max(p),
                Ok(CasReply::Promise { .. }) => errors.push(format!("{node}: promised an accept")),
                // A timeout or a lost connection: the acceptor may have accepted.
                Err(e) => {
                    unknown = true;
                    errors.push(format!("{node}: {e}"));
                }
            }
        }
        if tally.reached(|n| self.cas_quorums(n).1) {
            return Ok(Phase2::Chosen);
        }
        if !unknown {
            return Ok(Phase2::Refused { promised, partly });
        }
        let reason = format!(
            "write outcome unknown ({} accepts of the key's consensus): {}",
            tally.ok.len(),
            errors.join("; ")
        );
        Ok(Phase2::Unknown { reason })
    }
}

/// Whether the key's only acceptor, in every stored layout version, is one node: its steps
/// then need no fsync of their own (`cas::Commit::Volatile`), and a write of the key costs
/// one durable commit (its table write) instead of three.
fn solo(sets: &[Vec<NodeId>]) -> bool {
    matches!(sets, [set] if set.len() == 1)
}

/// Whether `entry` already shows decided value `(id, version)`, so that writing it changes
/// nothing: the version is there in that state or a later one (an aborted one is not
/// revived: a completion; nothing visible is left to remove: a removal), or, for anything
/// but a removal, a newer version is current (it was pruned or superseded). What `settle`
/// checks on a view before writing, and what the acceptor-row compactor checks on this
/// node's own entry before dropping a value (`acceptor_rows`).
pub(super) fn locally_settled(entry: &ObjectEntry, id: VersionId, version: &Version) -> bool {
    let removal = version.state == VersionState::Deleted;
    match entry.versions.get(&id).map(|v| &v.state) {
        Some(VersionState::Aborted) => return true,
        Some(have) if *have >= version.state => return true,
        _ => {}
    }
    !removal && entry.current().is_some_and(|(current, _)| current > id)
}

/// Whether the view shows our value decided under `id`: the version there in the state we
/// propose (an adopted value of ours, written by whichever round decided it).
fn decided_ours(write: &KeyWrite<'_>, view: &ObjectEntry, id: VersionId) -> bool {
    if write.removes_a_version() {
        // A removal is ours once the version is removed, whoever removed it.
        return view.versions.get(&id).is_some_and(|v| v.state == VersionState::Deleted);
    }
    view.versions.get(&id).is_some_and(|v| v.state == write.version.state)
}

/// Whether our value, not in the view, may still have been decided earlier: a newer
/// version completed (or was removed) since, which prunes an unkept older one. A kept
/// version is never pruned, so its absence means it was never decided.
fn may_be_superseded(write: &KeyWrite<'_>, view: &ObjectEntry, proposer: &Proposer) -> bool {
    if write.removes_a_version() || write.version.kept {
        return false;
    }
    let point = view.versions.iter().rev().find_map(|(id, v)| {
        matches!(v.state, VersionState::Complete(_) | VersionState::Deleted).then_some(*id)
    });
    let last = proposer.ids.last();
    point.is_some_and(|point| last.is_some_and(|id| point > *id))
}

/// Overtaken by an unconditional write: whether our write, whose value may have been
/// decided and overwritten since or never decided at all, can be acknowledged anyway —
/// and under which id. It can when our write is unconditional, unversioned and not a
/// removal, and the newest decided version of the view (the pruning point), newer than
/// every id of ours, was decided by an unconditional write too:
/// - if our value was decided, it was (at its place in the order), then overwritten;
/// - if it was not, it takes the place just before that newer write: a place inside our
///   call (that write was stamped above a view taken after our call began, so it was
///   decided after), at which nothing observed the key in between, and the newer write
///   leaves the same state whatever came just before it, having no condition to judge.
///   So every read and every condition keeps the answer it got;
/// - a later round may still adopt our value (no fence is needed): it then decides it
///   under our id, older than the pruning point, so it is never current (`settle` skips
///   it) and is pruned wherever it lands. Our `Uploading` records are pruned the same way.
///
/// A conditional newer write, or a first-format entry (mark unknown), keeps the 503: our
/// write placed before it would change what its condition saw.
fn overtaken_by_unconditional(
    write: &KeyWrite<'_>,
    view: &ObjectEntry,
    proposer: &Proposer,
) -> Option<VersionId> {
    let ours_is_unconditional =
        write.predicate == Predicate::Always && !write.version.kept && !write.removes_a_version();
    let last = *proposer.ids.last()?;
    let (point, newest_decided) = view
        .versions
        .iter()
        .rev()
        .find(|(_, v)| matches!(v.state, VersionState::Complete(_) | VersionState::Deleted))?;
    let overtaker_is_unconditional =
        matches!(newest_decided.state, VersionState::Complete(_)) && newest_decided.unconditional;
    (ours_is_unconditional && overtaker_is_unconditional && *point > last).then_some(last)
}

fn has_blocks(version: &Version) -> bool {
    matches!(&version.state, VersionState::Complete(VersionData::Object(s)) if s.body.in_blocks())
}

/// The prepare and accept quorums in a replica set of `n` nodes whose table writes need
/// `w` (see the module docs): every prepare quorum meets every accept quorum and every
/// table write quorum.
fn cas_quorums(n: usize, w: usize) -> (usize, usize) {
    let w = w.min(n);
    let majority = n / 2 + 1;
    (majority.max(n - w + 1), majority.max(w))
}

type Answer = (NodeId, Result<CasReply, String>);

#[cfg(test)]
mod tests {
    use super::cas_quorums;

    /// The two intersections the protocol rests on, for every set size and write quorum a
    /// layout and a consistency mode can give.
    #[test]
    fn prepare_quorums_meet_accept_and_write_quorums() {
        for n in 1..=7 {
            for w in 1..=n {
                let (q1, q2) = cas_quorums(n, w);
                assert!(q1 <= n && q2 <= n, "reachable: n {n} w {w}");
                assert!(q1 + q2 > n, "Q1 meets Q2: n {n} w {w}");
                assert!(q1 + w > n, "Q1 meets every table write quorum: n {n} w {w}");
            }
        }
        assert_eq!(cas_quorums(3, 2), (2, 2), "consistent and degraded, RF 3");
        assert_eq!(cas_quorums(3, 1), (3, 2), "dangerous, RF 3: every replica prepares");
    }
}
