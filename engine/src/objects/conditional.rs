//! Conditional writes (`If-None-Match: *`, `If-Match: <etag>`): the proposer side of the
//! per-key consensus in `crate::cas`.
//!
//! Why: checking the condition with a quorum read and then writing is a race — two
//! `If-None-Match: *` PUTs can both see no object and both succeed, and the last-writer-wins
//! object table keeps one of them silently. Here every conditional write on a key is a
//! round of single-decree Paxos repeated per change (CASPaxos): the value of a round is
//! the version that becomes current. A round:
//!
//! 1. Prepare(b) to the key's replicas; wait for a prepare quorum `Q1` of promises, each
//!    with the acceptor's accepted value and its object-table entry (merged: the "view").
//! 2. The highest-ballot accepted value is the last decided (or possibly decided) change.
//!    If `Q2` promisers report it under that very ballot it is chosen; otherwise it is
//!    re-proposed under `b` first, since a proposer may have crashed after some accepts.
//!    Either way it is written to the object table (idempotent) before anything relies on
//!    it, and the round starts over with a new ballot unless that value was our own.
//! 3. The condition is evaluated on the view's current version; a failure is final
//!    (`PreconditionFailed`, 412). So is a current version at or above our version id
//!    (`ConditionalConflict`, 409): ours could not become current.
//! 4. Accept(b, our version) to the replicas; once `Q2` accepted, the version is chosen;
//!    it is written to the object table and only then acknowledged.
//!
//! Quorums (flexible Paxos), in the replica set of every live layout version, with `W` the
//! table write quorum and `n` the set's size: `Q1 = max(majority, n - W + 1)` and
//! `Q2 = max(majority, W)`. So `Q1` meets every `Q2` (one decision per ballot order) and
//! every table write quorum (the view holds every acknowledged write, unconditional ones
//! included).
//!
//! Outcomes that are not known (accepts timed out with some acknowledgements) answer
//! `Unavailable` and leave the version `Uploading`: a later round may still adopt it, and
//! its blocks must stay. The stale-upload collector aborts it after `upload_timeout_ms`;
//! a round that meets an adopted value whose version was aborted meanwhile does not revive
//! it (its blocks may be gone) — see docs/data-model.md, "Conditional writes".

use std::collections::BTreeSet;
#[cfg(test)]
use std::sync::atomic::Ordering;
use std::time::Duration;

use rand_core::RngCore;
use tokio::sync::mpsc;

use super::body::{Body, VecSource};
use super::multipart::UploadMeta;
use super::object_ops::object_key;
use super::version::{ObjectEntry, Version, VersionData, VersionId, VersionState};
use super::{ObjectError, ObjectMeta, ObjectRecord, ObjectStore};
use crate::cas::{Accepted, Ballot, CasReply, CasRequest};
use crate::crdt::Crdt;
use crate::layout::NodeId;
use crate::rpc::{Request, Response};
use crate::table::schema::partition_of_key;

/// Rounds a conditional write tries before answering `ConditionalConflict`.
const ROUNDS_MAX: u32 = 8;
/// Backoff after a lost round: uniformly random in `[1, 2) × BACKOFF_MS × round`.
const BACKOFF_MS: u64 = 20;

/// What a conditional write requires of the key's current version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteCondition {
    /// `If-None-Match: *`: no current object (a delete marker counts as none).
    IfNoneMatch,
    /// `If-Match: <etag>` (unquoted; `*` matches any current object).
    IfMatch(String),
}

impl WriteCondition {
    /// Whether the condition holds on `current` (the key's current version, if any).
    pub fn check(&self, current: Option<(VersionId, &VersionData)>) -> Result<(), ObjectError> {
        self.check_etag(match current {
            Some((_, VersionData::Object(stored))) => Some(stored.etag.as_str()),
            _ => None,
        })
    }

    /// Whether the condition holds on a key whose current object has ETag `current`
    /// (`None`: no object, or a delete marker).
    pub fn check_etag(&self, current: Option<&str>) -> Result<(), ObjectError> {
        match (self, current) {
            (WriteCondition::IfNoneMatch, None) => Ok(()),
            (WriteCondition::IfNoneMatch, Some(_)) => Err(ObjectError::PreconditionFailed),
            // S3 answers NoSuchKey for If-Match on a key without an object.
            (WriteCondition::IfMatch(_), None) => Err(ObjectError::NoSuchKey),
            (WriteCondition::IfMatch(etag), Some(current)) => {
                if etag == "*" || etag == current {
                    Ok(())
                } else {
                    Err(ObjectError::PreconditionFailed)
                }
            }
        }
    }
}

/// The value a round decides: the version to make current, or `None`, a fence that
/// decides nothing new (see `fence`).
type CasValue = Option<(VersionId, Version)>;

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

/// How a round ended, when not with our own value decided.
enum RoundEnd {
    /// Someone else's change was decided in this round: start another.
    Again,
    /// Lost to a higher ballot.
    Lost { promised: Option<Ballot> },
}

impl ObjectStore {
    /// Stores `data` as the new version of `key` if `condition` holds (in-memory body;
    /// the S3 layer streams with `put_object_stream_if`).
    pub async fn put_object_if(
        &self,
        bucket: &str,
        key: &str,
        meta: ObjectMeta,
        data: Vec<u8>,
        condition: &WriteCondition,
    ) -> Result<ObjectRecord, ObjectError> {
        let upload =
            UploadMeta { content_type: meta.content_type, user_metadata: meta.user_metadata };
        let mut source = VecSource::new(data, meta.etag);
        self.put_object_stream_if(bucket, key, upload, &mut source, Some(condition)).await
    }

    /// Fails early, before a body is stored, when a quorum read already shows that
    /// `condition` fails — only where that read is a real quorum read (`R + W > n`): a
    /// stale single-replica read could refuse a write the protocol would accept.
    pub(super) async fn precheck(
        &self,
        bucket: &str,
        key: &str,
        condition: &WriteCondition,
    ) -> Result<(), ObjectError> {
        let entry = self.entry(bucket, key).await?;
        let q = self.node.quorums;
        let rf = self.node.layouts.current().map_or(0, |l| l.replication_factor());
        if q.read + q.write > rf {
            condition.check(entry.as_ref().and_then(|e| e.current()))?;
        } else {
            self.head_bucket(bucket).await?;
        }
        Ok(())
    }

    /// `commit_if` for a PUT's version: on a definite refusal the version is written
    /// `Aborted` (if it has blocks, so the collector frees them now).
    pub(super) async fn commit_put_if(
        &self,
        bucket: &str,
        key: &str,
        id: VersionId,
        version: Version,
        blocks: bool,
        condition: &WriteCondition,
    ) -> Result<(), ObjectError> {
        let kept = version.kept;
        let result = self.commit_if(bucket, key, id, version, condition).await;
        let refused = matches!(
            result,
            Err(ObjectError::PreconditionFailed
                | ObjectError::NoSuchKey
                | ObjectError::ConditionalConflict
                | ObjectError::QuotaExceeded { .. })
        );
        if refused && blocks {
            let aborted = Version { state: VersionState::Aborted, kept };
            let _ = self.write_version(bucket, key, id, aborted).await;
        }
        result
    }

    /// The prepare and accept quorums in a replica set of `n` nodes.
    fn cas_quorums(&self, n: usize) -> (usize, usize) {
        cas_quorums(n, self.node.quorums.write)
    }

    /// Makes version `id` (already stored as `version` would need: blocks in place) the
    /// key's current version if `condition` holds, decided by consensus with every other
    /// conditional write on the key. Never writes `id` `Aborted`: the caller does, on
    /// `PreconditionFailed`, `NoSuchKey`, `ConditionalConflict` and `QuotaExceeded`
    /// (nothing was accepted then), never on `Unavailable`.
    pub(super) async fn commit_if(
        &self,
        bucket: &str,
        key: &str,
        id: VersionId,
        version: Version,
        condition: &WriteCondition,
    ) -> Result<(), ObjectError> {
        #[cfg(test)]
        if self.node.cas.test_knobs.check_then_write.load(Ordering::Relaxed) {
            let current = self.entry(bucket, key).await?;
            condition.check(current.as_ref().and_then(|e| e.current()))?;
            return self.write_version(bucket, key, id, version).await;
        }
        // Quotas are checked before the consensus: a decided write is never refused.
        self.check_quotas(bucket, key, id, &version).await?;
        let table_key = object_key(bucket, key);
        let mut rng = self.node.seam.rng(&format!("cas-{}-{}", id.timestamp, id.unique));
        let mut floor: Option<Ballot> = None;
        // Whether some acceptor may hold our value from an earlier round.
        let mut ours_out = false;
        for round in 1..=ROUNDS_MAX {
            let counter = self.node.stamp().max(floor.map_or(0, |b| b.counter + 1));
            let ballot = Ballot { counter, node: self.node.id, nonce: rng.next_u64() };
            let ours = (id, version.clone());
            let target = Target { bucket, key, table_key: &table_key };
            match self.round(&target, ballot, ours, condition, &mut ours_out).await? {
                None => return Ok(()),
                Some(RoundEnd::Again) => continue,
                Some(RoundEnd::Lost { promised }) => {
                    floor = floor.max(promised);
                    let base = BACKOFF_MS * u64::from(round);
                    let wait = base + rng.next_u64() % base;
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                }
            }
        }
        if ours_out {
            // Our value may still be adopted by a later round: not a definite refusal.
            let reason = "conditional write raced others to the last round; outcome unknown";
            return Err(ObjectError::Unavailable { reason: reason.into() });
        }
        Err(ObjectError::ConditionalConflict)
    }

    /// One round under `ballot`: `Ok(None)` once our value is decided and in the table.
    async fn round(
        &self,
        target: &Target<'_>,
        ballot: Ballot,
        ours: (VersionId, Version),
        condition: &WriteCondition,
        ours_out: &mut bool,
    ) -> Result<Option<RoundEnd>, ObjectError> {
        let table_key = target.table_key;
        let (accepted, mut view) = match self.prepare(table_key, ballot).await? {
            Phase1::Promised { accepted, view } => (accepted, view),
            Phase1::Rejected { promised } => return Ok(Some(RoundEnd::Lost { promised })),
        };
        let last = accepted.iter().map(|(_, a)| a).max_by_key(|a| a.0);
        if let Some((last_ballot, last_bytes)) = last {
            let voters: BTreeSet<NodeId> =
                accepted.iter().filter(|(_, a)| a.0 == *last_ballot).map(|(n, _)| *n).collect();
            let chosen = self.tally(table_key, voters).reached(|n| self.cas_quorums(n).1);
            if !chosen {
                // Possibly decided by a proposer that stopped half-way: decide it for sure
                // under our ballot before anything relies on it; our own value then needs
                // a new ballot (one value per ballot).
                let end = match self.accept(table_key, ballot, last_bytes.clone()).await? {
                    Phase2::Chosen => RoundEnd::Again,
                    Phase2::Refused { promised, .. } => RoundEnd::Lost { promised },
                    Phase2::Unknown { reason } => {
                        return Err(ObjectError::Unavailable { reason });
                    }
                };
                if matches!(end, RoundEnd::Lost { .. }) {
                    return Ok(Some(end));
                }
            }
            let decided: CasValue = crate::codec::decode("cas value", last_bytes)
                .map_err(|e| ObjectError::Internal { reason: e.to_string() })?;
            if let Some((id, version)) = decided {
                self.settle(target, &mut view, id, version).await?;
                if id == ours.0 {
                    return Ok(None);
                }
            }
            if !chosen {
                return Ok(Some(RoundEnd::Again));
            }
        }
        let verdict = condition.check(view.current()).and_then(|()| match view.current() {
            Some((current, _)) if current >= ours.0 => Err(ObjectError::ConditionalConflict),
            _ => Ok(()),
        });
        if let Err(refusal) = verdict {
            if *ours_out {
                self.fence(table_key, ballot).await?;
            }
            return Err(refusal);
        }
        let (id, version) = ours;
        let value = crate::codec::encode(&Some((id, version.clone())));
        match self.accept(table_key, ballot, value).await? {
            Phase2::Chosen => {}
            Phase2::Refused { promised, partly } => {
                *ours_out |= partly;
                return Ok(Some(RoundEnd::Lost { promised }));
            }
            Phase2::Unknown { reason } => return Err(ObjectError::Unavailable { reason }),
        }
        #[cfg(test)]
        if self.node.cas.test_knobs.stop_after_accept.load(Ordering::Relaxed) {
            return Err(ObjectError::Unavailable { reason: "test: stopped after accept".into() });
        }
        self.write_decided_version(target.bucket, target.key, id, version).await?;
        Ok(None)
    }

    /// Before refusing a write whose value an earlier round left with some acceptors:
    /// decides a no-op under `ballot`, above that value's ballot, so that no later round
    /// can adopt it and make visible a write its client was told had failed.
    async fn fence(&self, table_key: &[u8], ballot: Ballot) -> Result<(), ObjectError> {
        let value = crate::codec::encode(&None::<(VersionId, Version)>);
        match self.accept(table_key, ballot, value).await? {
            Phase2::Chosen => Ok(()),
            Phase2::Refused { .. } => Err(ObjectError::Unavailable {
                reason: "a concurrent conditional write overtook ours: outcome unknown".into(),
            }),
            Phase2::Unknown { reason } => Err(ObjectError::Unavailable { reason }),
        }
    }

    /// Writes a decided value to the object table unless the view already has it
    /// complete (its proposer may have stopped before doing so), and merges it into the
    /// view. A value whose version was aborted meanwhile (by the stale-upload collector) is not
    /// revived: its blocks may already be collected.
    async fn settle(
        &self,
        target: &Target<'_>,
        view: &mut ObjectEntry,
        id: VersionId,
        version: Version,
    ) -> Result<(), ObjectError> {
        match view.versions.get(&id).map(|v| &v.state) {
            Some(VersionState::Complete(_) | VersionState::Deleted | VersionState::Aborted) => {
                return Ok(());
            }
            // A body in blocks was recorded `Uploading` with a write quorum before its
            // blocks were stored, and the view meets every write quorum: absent, the
            // version was removed since (aborted by the collector, then collected as a
            // tombstone), and its blocks with it. Reviving it would serve missing blocks.
            None if has_blocks(&version) => return Ok(()),
            // Absent (an inline body, never written; or pruned once a newer version
            // completed) or still uploading.
            None | Some(VersionState::Uploading) => {}
        }
        if view.current().is_some_and(|(current, _)| current > id) {
            // Pruned or superseded: writing it again would change nothing visible.
            return Ok(());
        }
        self.write_decided_version(target.bucket, target.key, id, version.clone()).await?;
        view.merge(&ObjectEntry::with(id, version));
        Ok(())
    }

    fn tally(&self, table_key: &[u8], ok: BTreeSet<NodeId>) -> Tally {
        Tally { sets: self.node.layouts.write_sets(partition_of_key(table_key)), ok }
    }

    /// Sends `request` to every replica of the key (ourselves directly).
    fn cas_fan_out(&self, table_key: &[u8], request: CasRequest) -> mpsc::Receiver<Answer> {
        let sets = self.node.layouts.write_sets(partition_of_key(table_key));
        let mut nodes: Vec<NodeId> = sets.into_iter().flatten().collect();
        nodes.sort();
        nodes.dedup();
        let (tx, rx) = mpsc::channel(nodes.len().max(1));
        for node in nodes {
            let (me, tx, request) = (self.node.clone(), tx.clone(), request.clone());
            tokio::spawn(async move {
                let answer = if node == me.id {
                    me.serve_cas(request).map_err(|e| e.to_string())
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
        let request = CasRequest::Prepare { key: table_key.to_vec(), ballot };
        let mut answers = self.cas_fan_out(table_key, request);
        let mut tally = self.tally(table_key, BTreeSet::new());
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
        let reason = format!("no prepare quorum for a conditional write: {}", errors.join("; "));
        Err(ObjectError::Unavailable { reason })
    }

    async fn accept(
        &self,
        table_key: &[u8],
        ballot: Ballot,
        value: Vec<u8>,
    ) -> Result<Phase2, ObjectError> {
        let request = CasRequest::Accept { key: table_key.to_vec(), ballot, value };
        let mut answers = self.cas_fan_out(table_key, request);
        let mut tally = self.tally(table_key, BTreeSet::new());
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
            "conditional write outcome unknown ({} accepts): {}",
            tally.ok.len(),
            errors.join("; ")
        );
        Ok(Phase2::Unknown { reason })
    }
}

fn has_blocks(version: &Version) -> bool {
    matches!(&version.state, VersionState::Complete(VersionData::Object(s)) if matches!(s.body, Body::Blocks(_)))
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

/// The key a conditional write is about.
struct Target<'a> {
    bucket: &'a str,
    key: &'a str,
    table_key: &'a [u8],
}

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
