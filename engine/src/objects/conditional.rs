//! Writes of a key, ordered by the key's consensus (the proposer side of `crate::cas`):
//! conditional writes (`If-None-Match: *`, `If-Match: <etag>`) and, in `consistent` mode,
//! every other write of the key too (PUT, DELETE, copies, multipart completions, lifecycle
//! expirations, deletes of a version by id).
//!
//! Why consensus: checking a condition with a quorum read and then writing is a race — two
//! `If-None-Match: *` PUTs can both see no object and both succeed. And why *every* write:
//! an unconditional DELETE written straight into the last-writer-wins table can land
//! between a conditional write's check and its write; the conditional write's higher
//! version id then wins over the DELETE, although its condition only held before it (the
//! anomaly in docs/jepsen-results.md). Deciding every write of a key through the same
//! rounds (CASPaxos) orders them all, and each condition is judged on exactly the state
//! its place in that order sees. An unconditional write is a round whose predicate always
//! holds: it is never refused, and under contention it retries instead of failing.
//!
//! A round (`conditional_rounds`): prepare at a quorum (promises carry each acceptor's
//! accepted value and its object-table entry: the "view"); finish the last accepted value
//! if a proposer stopped half-way (written to the table before anything relies on it);
//! judge the predicate on the view's current version; stamp the version id above every
//! version in the view (the prepare replaces the quorum read that used to stamp it);
//! accept at a quorum; write the decided version to the object table; only then answer.
//! So decided versions of a key have increasing ids, and "current" (the newest complete
//! version) is always the last decided one.
//!
//! Version ids and bodies: a body in blocks is recorded `Uploading` under a provisional id
//! before its blocks are stored (their `block_ref` entries name that id). If a write of the
//! key decided meanwhile has a newer id, the round re-stamps: it records the new id
//! `Uploading` and references the same blocks under it before proposing it. Ids a write
//! gave up are written `Aborted` once the write's fate is known, so the collector retires
//! their references (the blocks stay referenced by the decided id).
//!
//! Outcomes: decided (answered once in the table); refused (a condition failed: 412, or
//! `NoSuchKey` for `If-Match` on no object; nothing of ours can be decided later — if an
//! earlier round left our value with some acceptors, a no-op is decided over it first);
//! unknown (accepts timed out with some acknowledgements, or rounds ran out while our value
//! may sit with some acceptors: 503, and the value may still be adopted by a later round).
//! A conditional write that lost every round answers 409 `ConditionalConflict`; an
//! unconditional one retries longer, then answers 503.
//!
//! `degraded` and `dangerous` modes (reads from one replica) keep the fast path for
//! unconditional writes: a quorum read to stamp the id, then a table write,
//! last-writer-wins. Conditional writes always use the rounds. See docs/data-model.md,
//! "Writes of a key: consensus".

#[cfg(test)]
use std::sync::atomic::Ordering;
use std::time::Duration;

use rand_core::RngCore;

use super::body::{Body, VecSource};
use super::multipart::UploadMeta;
use super::object_ops::object_key;
use super::version::{ObjectEntry, Version, VersionData, VersionId, VersionState};
use super::{ObjectError, ObjectMeta, ObjectRecord, ObjectStore};
use crate::cas::Ballot;

/// Rounds a conditional write tries before answering `ConditionalConflict`.
const ROUNDS_MAX: u32 = 8;
/// Rounds an unconditional write tries before answering `Unavailable` (it has no 409).
const UNCONDITIONAL_ROUNDS_MAX: u32 = 24;
/// Backoff after a lost round: uniformly random in `[1, 2) × min(BACKOFF_MS × round,
/// BACKOFF_MAX_MS)`.
pub(super) const BACKOFF_MS: u64 = 20;
const BACKOFF_MAX_MS: u64 = 200;

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

/// What a write requires of the key's state at its place in the key's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Predicate<'a> {
    /// An unconditional write: never refused.
    Always,
    /// A client's condition.
    Condition(&'a WriteCondition),
    /// Lifecycle expiration: only while version `id` is still current (else
    /// `PreconditionFailed`, which the worker reads as "not expired any more").
    CurrentIs(VersionId),
}

impl Predicate<'_> {
    pub(super) fn check(&self, view: &ObjectEntry) -> Result<(), ObjectError> {
        match self {
            Predicate::Always => Ok(()),
            Predicate::Condition(condition) => condition.check(view.current()),
            Predicate::CurrentIs(id) => match view.current() {
                Some((current, _)) if current == *id => Ok(()),
                _ => Err(ObjectError::PreconditionFailed),
            },
        }
    }

    fn rounds_max(&self) -> u32 {
        match self {
            Predicate::Always => UNCONDITIONAL_ROUNDS_MAX,
            Predicate::Condition(_) | Predicate::CurrentIs(_) => ROUNDS_MAX,
        }
    }
}

/// One write of a key to decide.
pub(super) struct KeyWrite<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    /// The id the version is recorded under so far: for a body in blocks, its `Uploading`
    /// record and block references; for a delete by version id, the version removed.
    /// `None`: nothing recorded yet (stamped in the round).
    pub id: Option<VersionId>,
    /// The state to make current (`Complete`), or `Deleted` (a delete by version id: the
    /// id is fixed, never re-stamped).
    pub version: Version,
    pub predicate: Predicate<'a>,
}

impl KeyWrite<'_> {
    /// The body, if it is stored as blocks (they must be referenced, and a listed body's
    /// list recorded, under a re-stamped id).
    pub(super) fn body_in_blocks(&self) -> Option<&Body> {
        match &self.version.state {
            VersionState::Complete(VersionData::Object(stored)) if stored.body.in_blocks() => {
                Some(&stored.body)
            }
            _ => None,
        }
    }

    pub(super) fn removes_a_version(&self) -> bool {
        self.version.state == VersionState::Deleted
    }
}

/// A proposer's memory across the rounds of one write.
pub(super) struct Proposer {
    /// Every id our value was proposed (or is recorded) under, oldest first; the last is
    /// the one the next round proposes unless it re-stamps.
    pub ids: Vec<VersionId>,
    /// Ids this write recorded `Uploading` itself (re-stamps), to abort once abandoned.
    pub restamped: Vec<VersionId>,
    /// Whether some acceptor may hold one of our values from an earlier round.
    pub ours_out: bool,
}

/// How a round ended, when not with our own value decided.
pub(super) enum RoundEnd {
    /// Our value is decided (under this id) and in the object table.
    Decided(VersionId),
    /// Someone else's change was decided in this round: start another.
    Again,
    /// Lost to a higher ballot.
    Lost { promised: Option<Ballot> },
    /// Our unconditional value, decided or not, was overtaken by a newer unconditional
    /// write: acknowledged as ordered just before it, under this id, which is not current
    /// (`conditional_rounds::overtaken_by_unconditional`).
    Overtaken(VersionId),
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

    /// Whether every write of a key goes through its consensus: in `consistent` mode
    /// (quorum reads, `R + W > n`). Degraded and dangerous modes keep the fast path.
    pub(super) fn orders_every_write(&self) -> bool {
        #[cfg(test)]
        if self.node.cas.test_knobs.unconditional_fast_path.load(Ordering::Relaxed) {
            return false;
        }
        let q = self.node.quorums;
        let rf = self.node.layouts.current().map_or(0, |l| l.replication_factor());
        q.read + q.write > rf
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

    /// Decides a PUT's (or copy's) version through the key's rounds and returns the id it
    /// became current under. `provisional` is the id its blocks were recorded under, if
    /// any; on a definite refusal that id is written `Aborted` (so the collector frees its
    /// blocks now), and on success under another id too.
    pub(super) async fn commit_put(
        &self,
        bucket: &str,
        key: &str,
        provisional: Option<VersionId>,
        version: Version,
        predicate: Predicate<'_>,
    ) -> Result<VersionId, ObjectError> {
        let kept = version.kept;
        let write = KeyWrite { bucket, key, id: provisional, version, predicate };
        let result = self.commit_write(write).await;
        let give_up = match (&result, provisional) {
            (Ok(id), Some(p)) => *id != p,
            (Err(e), Some(_)) => is_definite_refusal(e),
            (_, None) => false,
        };
        if give_up && let Some(p) = provisional {
            let aborted = Version::new(VersionState::Aborted, kept);
            let _ = self.write_version(bucket, key, p, aborted).await;
        }
        result
    }

    /// Makes a multipart upload's version current (`condition`: a conditional completion)
    /// and returns the id it became current under: the upload's own id, unless a write of
    /// the key completed since the upload was created (then a new id referencing the same
    /// blocks). The upload's own record is left to the upload (`abort_multipart_upload`,
    /// or pruning by the completed version).
    pub(super) async fn commit_completion(
        &self,
        bucket: &str,
        key: &str,
        upload_id: VersionId,
        version: Version,
        condition: Option<&WriteCondition>,
    ) -> Result<VersionId, ObjectError> {
        if condition.is_none() && !self.orders_every_write() {
            self.write_version(bucket, key, upload_id, version).await?;
            return Ok(upload_id);
        }
        let predicate = condition.map_or(Predicate::Always, Predicate::Condition);
        self.commit_write(KeyWrite { bucket, key, id: Some(upload_id), version, predicate }).await
    }

    /// Decides `write` through the key's consensus with every other write of the key and
    /// returns the id its version was decided under (or, overtaken, the id it is
    /// acknowledged under: not current). Writes `Aborted` only for ids it recorded itself
    /// (re-stamps), never for `write.id` — the caller owns that record — unless overtaken.
    pub(super) async fn commit_write(
        &self,
        mut write: KeyWrite<'_>,
    ) -> Result<VersionId, ObjectError> {
        // The mark travels with the value (acceptor rows, the object table): a write this
        // one overtakes may rely on it (`RoundEnd::Overtaken`).
        write.version.unconditional =
            write.predicate == Predicate::Always && !write.removes_a_version();
        #[cfg(test)]
        if self.node.cas.test_knobs.check_then_write.load(Ordering::Relaxed) {
            return self.check_then_write(write).await;
        }
        // Quotas are checked before the consensus: a decided write is never refused.
        let quota_id = write.id.unwrap_or(VersionId { timestamp: u64::MAX, unique: 0 });
        self.check_quotas(write.bucket, write.key, quota_id, &write.version).await?;
        let table_key = object_key(write.bucket, write.key);
        let _turn = self.turns.take(&table_key).await;
        let mut rng = self.node.seam.rng(&format!("cas-{}", self.node.stamp()));
        let mut floor: Option<Ballot> = None;
        let mut proposer = Proposer {
            ids: write.id.into_iter().collect(),
            restamped: Vec::new(),
            ours_out: false,
        };
        let rounds_max = write.predicate.rounds_max();
        let (mut result, mut overtaken) = (None, false);
        for round in 1..=rounds_max {
            let counter = self.node.stamp().max(floor.map_or(0, |b| b.counter + 1));
            let ballot = Ballot { counter, node: self.node.id, nonce: rng.next_u64() };
            match self.round(&write, &table_key, ballot, &mut proposer).await {
                Ok(RoundEnd::Decided(id)) => {
                    result = Some(Ok(id));
                    break;
                }
                Ok(RoundEnd::Overtaken(id)) => {
                    (result, overtaken) = (Some(Ok(id)), true);
                    break;
                }
                Ok(RoundEnd::Again) => continue,
                Ok(RoundEnd::Lost { promised }) => {
                    floor = floor.max(promised);
                    // Refused by a restarted acceptor's ceiling, not by another proposer:
                    // there is nobody to make way for, so outbid it at once.
                    let at_ceiling = promised.is_some_and(|p| p.is_ceiling());
                    #[cfg(test)]
                    let at_ceiling = at_ceiling
                        && !self.node.cas.test_knobs.back_off_at_ceilings.load(Ordering::Relaxed);
                    if at_ceiling {
                        continue;
                    }
                    let base = (BACKOFF_MS * u64::from(round)).min(BACKOFF_MAX_MS);
                    let wait = base + rng.next_u64() % base;
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                }
                Err(e) => {
                    result = Some(Err(e));
                    break;
                }
            }
        }
        let result = result.unwrap_or_else(|| {
            Err(if proposer.ours_out || write.predicate == Predicate::Always {
                // Our value may still be adopted by a later round: not a definite refusal
                // (and an unconditional write has no refusal to give).
                let reason = "the key's writes raced ours to the last round; outcome unknown";
                ObjectError::Unavailable { reason: reason.into() }
            } else {
                ObjectError::ConditionalConflict
            })
        });
        self.abort_abandoned(&write, &proposer, &result, overtaken).await;
        result
    }

    /// Writes `Aborted` for the ids this write re-stamped itself and did not end under,
    /// once none of them can be decided any more (decided elsewhere, or definitely refused).
    /// Overtaken, none of its ids is or can become current: all of them, `write.id` too
    /// (it would be pruned wherever the newer version lands; aborted, its blocks are freed
    /// without waiting for that).
    async fn abort_abandoned(
        &self,
        write: &KeyWrite<'_>,
        proposer: &Proposer,
        result: &Result<VersionId, ObjectError>,
        overtaken: bool,
    ) {
        let decided = match result {
            Ok(_) if overtaken => None,
            Ok(id) => Some(*id),
            Err(e) if is_definite_refusal(e) => None,
            Err(_) => return,
        };
        let recorded = write.id.filter(|_| overtaken && !write.removes_a_version());
        let ids = proposer.restamped.iter().chain(recorded.as_ref());
        for id in ids.filter(|id| Some(**id) != decided) {
            let aborted = Version::new(VersionState::Aborted, write.version.kept);
            let _ = self.write_version(write.bucket, write.key, *id, aborted).await;
        }
    }

    /// The weakened protocol of the tests: check with a quorum read, then write.
    #[cfg(test)]
    async fn check_then_write(&self, write: KeyWrite<'_>) -> Result<VersionId, ObjectError> {
        let current = self.entry(write.bucket, write.key).await?.unwrap_or_default();
        write.predicate.check(&current)?;
        let id = match write.id {
            Some(id) => id,
            None => self.next_version_id(write.bucket, write.key).await?,
        };
        self.write_version(write.bucket, write.key, id, write.version).await?;
        Ok(id)
    }
}

/// Refusals after which nothing of the write can be decided later.
pub(super) fn is_definite_refusal(e: &ObjectError) -> bool {
    matches!(
        e,
        ObjectError::PreconditionFailed
            | ObjectError::NoSuchKey
            | ObjectError::ConditionalConflict
            | ObjectError::QuotaExceeded { .. }
    )
}
