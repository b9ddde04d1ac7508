//! One node's acceptor state for every key it has seen a conditional write on, in a local
//! table `cas_acceptor` of the node's metadata database (never replicated, never synced).
//!
//! Persisted layout: key = the object table's entry key; value = `codec` encoding of
//! `StoredState`, an enum whose variant index is the format version (`V1` = 0). Every
//! answer is given after its write transaction committed, so an accept survives a crash
//! of the process (fsynced), and so does every promise, in one of two ways:
//!
//! **The promise ceiling.** A promise must outlive a crash: an acceptor that forgot
//! promising `b` could accept a lower ballot's value while `b`'s proposer, counting its
//! promise, gets another value chosen (`forgetting_the_ceiling_lets_two_values_be_chosen`
//! plays that out). Instead of fsyncing every promise, the acceptor keeps one durable
//! ballot, the *ceiling* `C` (local table `cas_ceiling`), above every promise it has made:
//! a prepare at or below `C` is committed without an fsync, and one above `C` raises `C`
//! to `CEILING_LEASE_MS` past it in the same, fsynced, transaction. On opening, the
//! acceptor counts every key as promised at the stored `C` (`restart_floor`): a promise
//! lost in a crash is honoured anyway, and over-promising is always safe (it is a prepare
//! from a proposer that never comes back). Ballot counters are millisecond stamps, so
//! the ceiling is raised about once per lease under steady writes; the price is that, for
//! up to a lease after a restart, proposers are refused once and outbid `C`. Accepts stay
//! fsynced: an accepted value is what a later prepare quorum must find.
//!
//! Requests are served one at a time per node (`serial`): each is a read-modify-write of
//! one row, and two of them on the same key must not interleave.
//!
//! Rows are deleted once they decide nothing (`objects::acceptor_rows::collect` says when).
//! A deleted row's promise is kept in the acceptor's *promise floor*: a key without a row
//! counts as promised at the floor, which is at least every deleted row's promise, and
//! accepts nothing before a new prepare. Over-promising is always safe (it is a prepare
//! from a proposer that never comes back), so the floor only ever makes the acceptor refuse
//! more; proposers already raise their ballot above a refusal's.

use std::sync::{Arc, Mutex};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{Accepted, Ballot, CasReply};

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("cas_acceptor");
/// Keys whose accepted value changed since the compactor last looked (`compaction_due`),
/// written in the same transaction as the accept; and keys promised with nothing accepted.
const COMPACTION_DUE: TableDefinition<&[u8], ()> = TableDefinition::new("cas_compaction_due");
/// Keys whose row holds a fence (or nothing accepted) since the compactor last looked:
/// candidates for deletion (`deletion_due`), written by `compact`.
const DELETION_DUE: TableDefinition<&[u8], ()> = TableDefinition::new("cas_deletion_due");
/// One row, `FLOOR_KEY`: the promise floor (module docs), a `codec`-encoded `Ballot`.
const FLOOR: TableDefinition<&str, &[u8]> = TableDefinition::new("cas_floor");
const FLOOR_KEY: &str = "floor";
/// One row, `CEILING_KEY`: the promise ceiling (module docs), a `codec`-encoded `Ballot`.
const CEILING: TableDefinition<&str, &[u8]> = TableDefinition::new("cas_ceiling");
const CEILING_KEY: &str = "ceiling";
/// How far above a prepare's ballot counter (milliseconds) a raised ceiling goes: the
/// ceiling is fsynced about once per lease under steady writes, and after a restart
/// proposers are refused for up to a lease. One second keeps both small.
pub const CEILING_LEASE_MS: u64 = 1_000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptorState {
    pub promised: Option<Ballot>,
    #[serde(with = "super::accepted_bytes")]
    pub accepted: Option<Accepted>,
}

/// The row's format; new formats are new variants, added last.
#[derive(Serialize, Deserialize)]
enum StoredState {
    V1(AcceptorState),
}

/// Why an acceptor could not answer (its storage failed: the proposer counts no vote).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptorError {
    pub reason: String,
}

impl std::fmt::Display for AcceptorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cas acceptor storage: {}", self.reason)
    }
}

fn storage<E: std::fmt::Display>(e: E) -> AcceptorError {
    AcceptorError { reason: e.to_string() }
}

pub struct Acceptor {
    db: Arc<Database>,
    /// The ceiling stored when this acceptor was opened: every key counts as promised at
    /// least at it (module docs, "The promise ceiling"). Read through `restart_floor()`.
    restart_floor: Option<Ballot>,
    /// Test-only weakening (`unsafe_forget_the_ceiling`): the restart floor is ignored.
    forget_restart_floor: std::sync::atomic::AtomicBool,
    serial: Mutex<()>,
    /// Requests waiting for the next group commit (`serve`).
    queue: Mutex<Queue>,
    /// Test-only weakenings of this node's *proposers* (`objects::conditional`), kept here
    /// because every proposer reaches its node's acceptor.
    #[cfg(test)]
    pub(crate) test_knobs: ProposerTestKnobs,
}

/// One acceptor request: phase 1 or phase 2 of a ballot.
#[derive(Debug, Clone)]
pub enum AcceptorOp {
    Prepare(Ballot),
    Accept(Ballot, Vec<u8>),
}

/// How an acceptor step is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// Survives a crash before the answer: the rule for every key with more than one
    /// acceptor. An accept is fsynced; a promise is fsynced, or committed without an fsync
    /// where the ceiling covers it (module docs, "The promise ceiling").
    Durable,
    /// Not fsynced: only for a key whose every replica set is this node alone (the
    /// proposer's `PrepareSolo`/`AcceptSolo`). The table write that follows the accept is
    /// durable and, being a later commit of the same database, makes these durable too.
    /// A crash before it forgets them: a forgotten promise only makes its own accept
    /// fail (the strict accept rule), and a forgotten accept was never written to the
    /// table, so no client was told it happened. Why not with several acceptors: one that
    /// forgets a promise could then promise and accept a lower ballot, and two values
    /// could be chosen (docs/data-model.md, "One acceptor").
    Volatile,
}

/// A key listed for deletion, and its row (`None`: deleted since).
pub type DueRow = (Vec<u8>, Option<AcceptorState>);

/// A request waiting for a group commit, and where its answer goes.
type Job =
    (Vec<u8>, AcceptorOp, Commit, tokio::sync::oneshot::Sender<Result<CasReply, AcceptorError>>);

/// Requests waiting for a group commit, and whether a leader is committing.
#[derive(Default)]
struct Queue {
    leader_active: bool,
    waiting: Vec<Job>,
}

/// Test-only weakenings of the protocol, to show the tests catch what they guard against.
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct ProposerTestKnobs {
    /// Check the condition with a quorum read, then write: no consensus at all.
    pub check_then_write: std::sync::atomic::AtomicBool,
    /// "Crash" right after the accept quorum: the table write never happens.
    pub stop_after_accept: std::sync::atomic::AtomicBool,
    /// Unconditional writes skip the consensus (the last-writer-wins table write of
    /// `degraded` mode and of builds before every write was ordered).
    pub unconditional_fast_path: std::sync::atomic::AtomicBool,
    /// Back off after a round refused at a restarted acceptor's ceiling, as after losing
    /// to another proposer (the behaviour before such refusals were recognised).
    pub back_off_at_ceilings: std::sync::atomic::AtomicBool,
    /// The next round to finish its prepare phase says so on the first channel, then
    /// waits for the second (a test interleaves another write there).
    pub after_prepare: Mutex<Option<PauseAfterPrepare>>,
    /// The same, between a round's accept quorum and its table write.
    pub after_accept: Mutex<Option<PauseAfterPrepare>>,
}

/// See `ProposerTestKnobs::after_prepare`.
#[cfg(test)]
pub(crate) type PauseAfterPrepare =
    (tokio::sync::oneshot::Sender<()>, tokio::sync::oneshot::Receiver<()>);

#[cfg(test)]
impl ProposerTestKnobs {
    /// Parks the next round of this node's proposers after its prepare quorum: the first
    /// receiver fires once it is parked, and sending on the second lets it go on.
    pub(crate) fn park_next_after_prepare(
        &self,
    ) -> (tokio::sync::oneshot::Receiver<()>, tokio::sync::oneshot::Sender<()>) {
        let (reached_tx, reached) = tokio::sync::oneshot::channel();
        let (resume, resume_rx) = tokio::sync::oneshot::channel();
        *self.after_prepare.lock().unwrap() = Some((reached_tx, resume_rx));
        (reached, resume)
    }

    /// Called by a proposer after its prepare quorum: pauses if a test asked for it.
    pub(crate) async fn pause_after_prepare(&self) {
        let pause = self.after_prepare.lock().unwrap().take();
        Self::pause(pause).await;
    }

    /// Called by a proposer after its accept quorum: pauses if a test asked for it.
    pub(crate) async fn pause_after_accept(&self) {
        let pause = self.after_accept.lock().unwrap().take();
        Self::pause(pause).await;
    }

    async fn pause(pause: Option<PauseAfterPrepare>) {
        if let Some((reached, resume)) = pause {
            let _ = reached.send(());
            let _ = resume.await;
        }
    }
}

impl Acceptor {
    pub fn open(db: Arc<Database>) -> Result<Self, AcceptorError> {
        // Create the table up front so that reads never meet a missing table.
        let txn = db.begin_write().map_err(storage)?;
        txn.open_table(TABLE).map_err(storage)?;
        txn.open_table(COMPACTION_DUE).map_err(storage)?;
        txn.open_table(DELETION_DUE).map_err(storage)?;
        txn.open_table(FLOOR).map_err(storage)?;
        let restart_floor = read_ballot(&txn.open_table(CEILING).map_err(storage)?, CEILING_KEY)?;
        txn.commit().map_err(storage)?;
        Ok(Acceptor {
            db,
            restart_floor,
            forget_restart_floor: Default::default(),
            serial: Mutex::new(()),
            queue: Mutex::new(Queue::default()),
            #[cfg(test)]
            test_knobs: Default::default(),
        })
    }

    /// `open`, weakened for tests (`unsafe_forget_the_ceiling`).
    #[cfg(test)]
    pub(crate) fn open_forgetting_the_ceiling(db: Arc<Database>) -> Result<Self, AcceptorError> {
        let acceptor = Self::open(db)?;
        acceptor.unsafe_forget_the_ceiling();
        Ok(acceptor)
    }

    /// Test-only weakening (the simulator's `cluster.unsafe_forget_promise_ceiling`): this
    /// acceptor no longer counts every key as promised at the ceiling it found on opening,
    /// so a promise lost in a crash is forgotten for good.
    pub fn unsafe_forget_the_ceiling(&self) {
        self.forget_restart_floor.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Every key counts as promised at least at this (module docs, "The promise ceiling").
    fn restart_floor(&self) -> Option<Ballot> {
        match self.forget_restart_floor.load(std::sync::atomic::Ordering::Relaxed) {
            true => None,
            false => self.restart_floor,
        }
    }

    /// The state a key answers from: its row, or for a key without one, promised at the
    /// floor with nothing accepted; either way promised at least at the restart floor.
    /// Prepares, accepts, catch-ups and peeks all answer from this, so a promise lost in a
    /// crash is honoured by every one of them.
    fn answering_state(&self, row: Option<AcceptorState>, floor: Option<Ballot>) -> AcceptorState {
        let mut state = row.unwrap_or(AcceptorState { promised: floor, accepted: None });
        state.promised = state.promised.max(self.restart_floor());
        state
    }

    /// Phase 1: promises `ballot` if it is above every ballot promised so far.
    pub fn prepare(&self, key: &[u8], ballot: Ballot) -> Result<CasReply, AcceptorError> {
        self.apply_one(key, AcceptorOp::Prepare(ballot))
    }

    /// Phase 2: accepts `value` under `ballot` if `ballot` is the last promise made (see
    /// the module docs of `cas` for why not any ballot at or above it), once per ballot.
    pub fn accept(
        &self,
        key: &[u8],
        ballot: Ballot,
        value: Vec<u8>,
    ) -> Result<CasReply, AcceptorError> {
        self.apply_one(key, AcceptorOp::Accept(ballot, value))
    }

    /// One request in a transaction of its own (`serve` without the group commit).
    fn apply_one(&self, key: &[u8], op: AcceptorOp) -> Result<CasReply, AcceptorError> {
        let answers = self.apply_batch(vec![(key.to_vec(), op)], Commit::Durable);
        answers.into_iter().next().expect("one answer per request")
    }

    /// `prepare` or `accept`, with group commit: the first caller to find no commit
    /// running becomes the leader and applies every request queued meanwhile in one write
    /// transaction — one fsync for many keys and proposers — until the queue is empty;
    /// the others wait for their answer. Why: every write of a key passes through two
    /// acceptor steps, and one fsync each would cap a node at a few hundred writes per
    /// second. The leader's work is synchronous (no await), so it is never abandoned
    /// halfway; every answer is sent after the commit that made it durable.
    /// A batch counts as `Durable` if any of its requests does (`Commit`); whether it is
    /// then fsynced is `apply_batch`'s rule.
    pub async fn serve(
        &self,
        key: Vec<u8>,
        op: AcceptorOp,
        commit: Commit,
    ) -> Result<CasReply, AcceptorError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let lead = {
            let mut queue = self.queue.lock().unwrap();
            queue.waiting.push((key, op, commit, tx));
            !std::mem::replace(&mut queue.leader_active, true)
        };
        if lead {
            if commit == Commit::Volatile {
                // No fsync to wait behind: let the requests already runnable join this
                // batch instead of each paying a commit of its own.
                tokio::task::yield_now().await;
            }
            loop {
                let batch = {
                    let mut queue = self.queue.lock().unwrap();
                    if queue.waiting.is_empty() {
                        queue.leader_active = false;
                        break;
                    }
                    std::mem::take(&mut queue.waiting)
                };
                let commit = match batch.iter().any(|job| job.2 == Commit::Durable) {
                    true => Commit::Durable,
                    false => Commit::Volatile,
                };
                let (requests, replies): (Vec<_>, Vec<_>) =
                    batch.into_iter().map(|(key, op, _, tx)| ((key, op), tx)).unzip();
                let answers = self.apply_batch(requests, commit);
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(answer);
                }
            }
        }
        rx.await.unwrap_or_else(|_| Err(AcceptorError { reason: "group commit dropped".into() }))
    }

    /// Applies `requests` in order in one write transaction (a later request on a key sees
    /// the earlier ones), commits once, and returns each answer; if the commit fails, no
    /// request gets a vote. The commit is fsynced if any request needs it: a `Durable`
    /// accept, or a `Durable` prepare above the ceiling, which raises the ceiling here.
    fn apply_batch(
        &self,
        requests: Vec<(Vec<u8>, AcceptorOp)>,
        commit: Commit,
    ) -> Vec<Result<CasReply, AcceptorError>> {
        let _serial = self.serial.lock().unwrap();
        let all_fail = |e: AcceptorError, n: usize| vec![Err(e); n];
        let n = requests.len();
        let mut txn = match self.db.begin_write() {
            Ok(txn) => txn,
            Err(e) => return all_fail(storage(e), n),
        };
        let mut answers = Vec::with_capacity(n);
        let mut fsync = false;
        {
            let opened = txn
                .open_table(TABLE)
                .and_then(|table| txn.open_table(COMPACTION_DUE).map(|due| (table, due)))
                .and_then(|(table, due)| txn.open_table(CEILING).map(|c| (table, due, c)));
            let (mut table, mut due, mut ceilings) = match opened {
                Ok(tables) => tables,
                Err(e) => return all_fail(storage(e), n),
            };
            let floor = txn.open_table(FLOOR).map_err(storage).and_then(|f| read_floor(&f));
            let ceiling = read_ballot(&ceilings, CEILING_KEY);
            let (floor, mut ceiling) = match (floor, ceiling) {
                (Ok(floor), Ok(ceiling)) => (floor, ceiling),
                (Err(e), _) | (_, Err(e)) => return all_fail(e, n),
            };
            let ceiling_before = ceiling;
            for (key, op) in requests {
                let accepts = matches!(op, AcceptorOp::Accept(..));
                let durable_prepare = match op {
                    AcceptorOp::Prepare(ballot) if commit == Commit::Durable => Some(ballot),
                    _ => None,
                };
                let row = read_row(&table, &key);
                let answer = row.and_then(|row| {
                    let has_row = row.is_some();
                    let mut state = self.answering_state(row, floor);
                    // No row: promised at the floor by no one, so no accept before a prepare.
                    if accepts && !has_row {
                        return Ok(CasReply::Rejected { promised: state.promised });
                    }
                    let reply = match step(&mut state, op) {
                        Ok(reply) => reply,
                        Err(refusal) => return Ok(refusal),
                    };
                    // A row with nothing accepted is listed too: its accept may never come (a
                    // proposer that stopped, or an accept that arrived before its prepare),
                    // and it must not stay forever.
                    let listed = accepts || state.accepted.is_none();
                    let bytes = crate::codec::encode(&StoredState::V1(state));
                    table.insert(key.as_slice(), bytes.as_slice()).map_err(storage)?;
                    if listed {
                        due.insert(key.as_slice(), ()).map_err(storage)?;
                    }
                    if let Some(ballot) = durable_prepare
                        && ceiling.is_none_or(|c| ballot > c)
                    {
                        ceiling = Some(ceiling_above(ballot));
                    }
                    fsync |= accepts && commit == Commit::Durable;
                    Ok(reply)
                });
                answers.push(answer);
            }
            if ceiling != ceiling_before {
                if let Err(e) = write_ballot(&mut ceilings, CEILING_KEY, ceiling) {
                    return all_fail(e, n);
                }
                fsync = true;
            }
        }
        if !fsync && let Err(e) = txn.set_durability(redb::Durability::None) {
            return all_fail(storage(e), n);
        }
        match txn.commit() {
            Ok(()) => answers,
            Err(e) => all_fail(storage(e), n),
        }
    }

    /// Up to `limit` keys (after `after`, in key order) whose accepted value changed since
    /// the compactor last looked, with their state.
    pub fn compaction_due(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, AcceptorState)>, AcceptorError> {
        use std::ops::Bound;
        let txn = self.db.begin_read().map_err(storage)?;
        let due = txn.open_table(COMPACTION_DUE).map_err(storage)?;
        let table = txn.open_table(TABLE).map_err(storage)?;
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut out = Vec::new();
        for item in due.range::<&[u8]>((start, Bound::Unbounded)).map_err(storage)?.take(limit) {
            let key = item.map_err(storage)?.0.value().to_vec();
            let state = read_row(&table, &key)?.unwrap_or_default();
            out.push((key, state));
        }
        Ok(out)
    }

    /// For each `(key, judged)`: if the key's accepted value is still `judged` (the one the
    /// compactor looked at), stores `replacement` in its place under the same ballot and
    /// marks the key done; a key accepted anew meanwhile stays due. Not fsynced: a
    /// compaction lost in a crash leaves the full value, which is safe, and the key due
    /// again. Returns how many rows were rewritten.
    pub fn compact(
        &self,
        items: Vec<(Vec<u8>, Option<Accepted>)>,
        replacement: &[u8],
    ) -> Result<usize, AcceptorError> {
        let _serial = self.serial.lock().unwrap();
        let mut txn = self.db.begin_write().map_err(storage)?;
        txn.set_durability(redb::Durability::None).map_err(storage)?;
        let mut rewritten = 0;
        {
            let mut table = txn.open_table(TABLE).map_err(storage)?;
            let mut due = txn.open_table(COMPACTION_DUE).map_err(storage)?;
            let mut deletion_due = txn.open_table(DELETION_DUE).map_err(storage)?;
            for (key, judged) in items {
                let Some(mut state) = read_row(&table, &key)? else {
                    due.remove(key.as_slice()).map_err(storage)?;
                    continue;
                };
                if state.accepted != judged {
                    continue;
                }
                deletion_due.insert(key.as_slice(), ()).map_err(storage)?;
                if let Some((ballot, value)) = &state.accepted
                    && value.as_slice() != replacement
                {
                    state.accepted = Some((*ballot, replacement.to_vec()));
                    let bytes = crate::codec::encode(&StoredState::V1(state));
                    table.insert(key.as_slice(), bytes.as_slice()).map_err(storage)?;
                    rewritten += 1;
                }
                due.remove(key.as_slice()).map_err(storage)?;
            }
        }
        txn.commit().map_err(storage)?;
        Ok(rewritten)
    }

    /// Up to `limit` keys (after `after`, in key order) that `compact` left holding a fence
    /// or nothing accepted, with their row (`None`: deleted since).
    pub fn deletion_due(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<DueRow>, AcceptorError> {
        use std::ops::Bound;
        let txn = self.db.begin_read().map_err(storage)?;
        let due = txn.open_table(DELETION_DUE).map_err(storage)?;
        let table = txn.open_table(TABLE).map_err(storage)?;
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut out = Vec::new();
        for item in due.range::<&[u8]>((start, Bound::Unbounded)).map_err(storage)?.take(limit) {
            let key = item.map_err(storage)?.0.value().to_vec();
            let row = read_row(&table, &key)?;
            out.push((key, row));
        }
        Ok(out)
    }

    /// Catches this acceptor up with rows another acceptor holds as a fence under ballot `A`
    /// (`objects::acceptor_rows`, "A peer that was away"): for each `(key, A)` where this
    /// acceptor has promised at most `A` and accepted nothing at or above it, the row
    /// becomes promised `A` with `fence` accepted under `A` — the state it would be in had
    /// it accepted `A`'s proposal and compacted it (the caller has merged the other
    /// acceptor's object entry, where that proposal is settled, into this node's table
    /// first). Anything else is left alone. fsynced: the other acceptor deletes its row
    /// once it sees this. Returns how many rows were caught up.
    pub fn catch_up(
        &self,
        items: Vec<(Vec<u8>, Ballot)>,
        fence: &[u8],
    ) -> Result<usize, AcceptorError> {
        let _serial = self.serial.lock().unwrap();
        let txn = self.db.begin_write().map_err(storage)?;
        let mut count = 0;
        {
            let floor = read_floor(&txn.open_table(FLOOR).map_err(storage)?)?;
            let mut table = txn.open_table(TABLE).map_err(storage)?;
            let mut due = txn.open_table(DELETION_DUE).map_err(storage)?;
            for (key, ballot) in items {
                let state = self.answering_state(read_row(&table, &key)?, floor);
                let promised_at_most = state.promised.is_none_or(|p| p <= ballot);
                let nothing_at_or_above = state.accepted.as_ref().is_none_or(|(b, _)| *b < ballot);
                if !(promised_at_most && nothing_at_or_above) {
                    continue;
                }
                let caught_up = AcceptorState {
                    promised: Some(ballot),
                    accepted: Some((ballot, fence.to_vec())),
                };
                let bytes = crate::codec::encode(&StoredState::V1(caught_up));
                table.insert(key.as_slice(), bytes.as_slice()).map_err(storage)?;
                due.insert(key.as_slice(), ()).map_err(storage)?;
                count += 1;
            }
        }
        txn.commit().map_err(storage)?;
        Ok(count)
    }

    /// Deletes the row of each `(key, judged)` that still holds exactly `judged` (the state
    /// the collector judged), raising the promise floor to its promise in the same
    /// transaction; a row changed meanwhile is kept, and stays listed. The keys of `forget`
    /// leave the deletion list. Not fsynced: a deletion lost in a crash leaves the row as
    /// it was, which is safe. Returns how many rows were deleted.
    pub fn delete_rows(
        &self,
        deleted: Vec<(Vec<u8>, AcceptorState)>,
        forget: Vec<Vec<u8>>,
    ) -> Result<usize, AcceptorError> {
        let _serial = self.serial.lock().unwrap();
        let mut txn = self.db.begin_write().map_err(storage)?;
        txn.set_durability(redb::Durability::None).map_err(storage)?;
        let mut count = 0;
        {
            let mut floors = txn.open_table(FLOOR).map_err(storage)?;
            let mut floor = read_floor(&floors)?;
            let floor_before = floor;
            let mut table = txn.open_table(TABLE).map_err(storage)?;
            let mut due = txn.open_table(DELETION_DUE).map_err(storage)?;
            for (key, judged) in deleted {
                match read_row(&table, &key)? {
                    Some(row) if row == judged => {
                        table.remove(key.as_slice()).map_err(storage)?;
                        floor = floor.max(judged.promised);
                        count += 1;
                    }
                    // Promised or accepted anew: judged again next pass.
                    Some(_) => continue,
                    None => {}
                }
                due.remove(key.as_slice()).map_err(storage)?;
            }
            for key in forget {
                due.remove(key.as_slice()).map_err(storage)?;
            }
            if floor != floor_before {
                write_floor(&mut floors, floor)?;
            }
        }
        txn.commit().map_err(storage)?;
        Ok(count)
    }

    /// Deletes the row of every key `keep` refuses (and its listings), raising the promise
    /// floor to their promises: for the keys of partitions this node no longer holds, whose
    /// rows nobody asks any more and which, were the node given the partition again, could
    /// hold values its new peers deleted their fences against (`acceptor_rows`). Such a
    /// node then starts as an acceptor that lost its state, which the strict accept rule
    /// covers. Returns how many rows were deleted.
    pub fn delete_rows_unless(&self, keep: impl Fn(&[u8]) -> bool) -> Result<usize, AcceptorError> {
        let _serial = self.serial.lock().unwrap();
        let txn = self.db.begin_write().map_err(storage)?;
        let mut count = 0;
        {
            let mut floors = txn.open_table(FLOOR).map_err(storage)?;
            let mut floor = read_floor(&floors)?;
            let floor_before = floor;
            let mut table = txn.open_table(TABLE).map_err(storage)?;
            let mut gone = Vec::new();
            for item in table.iter().map_err(storage)? {
                let (key, _) = item.map_err(storage)?;
                if !keep(key.value()) {
                    gone.push(key.value().to_vec());
                }
            }
            let mut compaction_due = txn.open_table(COMPACTION_DUE).map_err(storage)?;
            let mut deletion_due = txn.open_table(DELETION_DUE).map_err(storage)?;
            for key in gone {
                if let Some(row) = read_row(&table, &key)? {
                    floor = floor.max(row.promised);
                }
                table.remove(key.as_slice()).map_err(storage)?;
                compaction_due.remove(key.as_slice()).map_err(storage)?;
                deletion_due.remove(key.as_slice()).map_err(storage)?;
                count += 1;
            }
            if floor != floor_before {
                write_floor(&mut floors, floor)?;
            }
        }
        txn.commit().map_err(storage)?;
        Ok(count)
    }

    /// The state each of `keys` answers prepares from: its row, or for a key without one,
    /// promised at the floor with nothing accepted; promised at least at the restart floor.
    pub fn peek(&self, keys: &[Vec<u8>]) -> Result<Vec<AcceptorState>, AcceptorError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(TABLE).map_err(storage)?;
        let floor = read_floor(&txn.open_table(FLOOR).map_err(storage)?)?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.answering_state(read_row(&table, key)?, floor));
        }
        Ok(out)
    }

    /// The promise ceiling as stored now (module docs; tests and diagnostics).
    pub fn ceiling(&self) -> Result<Option<Ballot>, AcceptorError> {
        let txn = self.db.begin_read().map_err(storage)?;
        read_ballot(&txn.open_table(CEILING).map_err(storage)?, CEILING_KEY)
    }

    /// The state `key` answers prepares from (`peek`; tests and diagnostics).
    pub fn state(&self, key: &[u8]) -> Result<AcceptorState, AcceptorError> {
        let mut states = self.peek(&[key.to_vec()])?;
        Ok(states.pop().expect("one state per key"))
    }

    /// Whether `key` has a row of its own (tests and diagnostics).
    pub fn has_row(&self, key: &[u8]) -> Result<bool, AcceptorError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(TABLE).map_err(storage)?;
        Ok(read_row(&table, key)?.is_some())
    }
}

fn write_floor(
    floors: &mut redb::Table<'_, &'static str, &'static [u8]>,
    floor: Option<Ballot>,
) -> Result<(), AcceptorError> {
    write_ballot(floors, FLOOR_KEY, floor)
}

/// The promise floor (module docs), `None` before any row was deleted.
fn read_floor(
    floors: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Option<Ballot>, AcceptorError> {
    read_ballot(floors, FLOOR_KEY)
}

/// Stores the ballot `name` (the floor or the ceiling); `None` leaves the row as it is.
fn write_ballot(
    table: &mut redb::Table<'_, &'static str, &'static [u8]>,
    name: &str,
    ballot: Option<Ballot>,
) -> Result<(), AcceptorError> {
    if let Some(ballot) = ballot {
        let bytes = crate::codec::encode(&ballot);
        table.insert(name, bytes.as_slice()).map_err(storage)?;
    }
    Ok(())
}

/// The ballot stored as `name`, `None` if it was never written.
fn read_ballot(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    name: &str,
) -> Result<Option<Ballot>, AcceptorError> {
    let Some(bytes) = table.get(name).map_err(storage)? else {
        return Ok(None);
    };
    crate::codec::decode::<Ballot>("cas promise floor or ceiling", bytes.value())
        .map(Some)
        .map_err(storage)
}

/// The ceiling raised for a prepare of `ballot`: `CEILING_LEASE_MS` past its counter, and
/// above every ballot of that counter (no proposer's node id or nonce is the maximum of
/// both, so no proposer's ballot ever equals it).
pub(super) fn ceiling_above(ballot: Ballot) -> Ballot {
    Ballot {
        counter: ballot.counter.saturating_add(CEILING_LEASE_MS),
        node: Ballot::CEILING_NODE,
        nonce: u64::MAX,
    }
}

/// The acceptor rules (module docs of `cas`): `Ok(reply)` changes `state`, `Err(reply)`
/// leaves it as it was.
fn step(state: &mut AcceptorState, op: AcceptorOp) -> Result<CasReply, CasReply> {
    match op {
        AcceptorOp::Prepare(ballot) => {
            if state.promised.is_some_and(|p| p >= ballot) {
                return Err(CasReply::Rejected { promised: state.promised });
            }
            state.promised = Some(ballot);
            Ok(CasReply::Promise { accepted: state.accepted.clone(), entry: None })
        }
        AcceptorOp::Accept(ballot, value) => {
            let same_ballot = state.accepted.as_ref().map(|(b, v)| (*b == ballot, v == &value));
            match same_ballot {
                // A retransmission of the accept we already took.
                Some((true, true)) => return Ok(CasReply::Accepted),
                Some((true, false)) => return Err(CasReply::Rejected { promised: state.promised }),
                _ => {}
            }
            if state.promised != Some(ballot) {
                return Err(CasReply::Rejected { promised: state.promised });
            }
            state.accepted = Some((ballot, value));
            Ok(CasReply::Accepted)
        }
    }
}

/// The row of `key`, if it has one.
fn read_row(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    key: &[u8],
) -> Result<Option<AcceptorState>, AcceptorError> {
    let Some(bytes) = table.get(key).map_err(storage)? else {
        return Ok(None);
    };
    match crate::codec::decode::<StoredState>("cas acceptor state", bytes.value()) {
        Ok(StoredState::V1(state)) => Ok(Some(state)),
        Err(e) => Err(storage(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::NodeId;
    use crate::seam::open_database;
    use crate::testkit::MemDisk;

    fn ballot(counter: u64) -> Ballot {
        Ballot { counter, node: NodeId(1), nonce: 0 }
    }

    fn acceptor() -> Acceptor {
        let disk = MemDisk::default();
        Acceptor::open(Arc::new(open_database(&disk, "meta/db").unwrap())).unwrap()
    }

    #[test]
    fn promises_only_rise_and_accepts_need_the_last_promise() {
        let a = acceptor();
        let promise = a.prepare(b"k", ballot(5)).unwrap();
        assert_eq!(promise, CasReply::Promise { accepted: None, entry: None });
        let refused = CasReply::Rejected { promised: Some(ballot(5)) };
        assert_eq!(a.prepare(b"k", ballot(4)).unwrap(), refused, "a lower ballot is refused");
        assert_eq!(a.prepare(b"k", ballot(5)).unwrap(), refused, "the same ballot too");
        assert_eq!(a.accept(b"k", ballot(4), b"x".to_vec()).unwrap(), refused);
        assert_eq!(a.accept(b"k", ballot(5), b"v".to_vec()).unwrap(), CasReply::Accepted);
        assert_eq!(a.accept(b"k", ballot(5), b"v".to_vec()).unwrap(), CasReply::Accepted);
        assert_eq!(a.accept(b"k", ballot(5), b"w".to_vec()).unwrap(), refused, "one value");
        let next = a.prepare(b"k", ballot(6)).unwrap();
        let accepted = Some((ballot(5), b"v".to_vec()));
        assert_eq!(next, CasReply::Promise { accepted, entry: None });
        // Other keys are independent.
        assert_eq!(
            a.accept(b"other", ballot(9), b"v".to_vec()).unwrap(),
            CasReply::Rejected { promised: None },
            "no accept without a promise"
        );
    }

    /// Guards the amnesia rule: an acceptor that forgot its promise (lost disk) must not
    /// accept an older proposal it cannot know it promised to ignore.
    #[test]
    fn a_blank_acceptor_accepts_nothing_it_did_not_promise_since() {
        let a = acceptor();
        assert_eq!(
            a.accept(b"k", ballot(1), b"old".to_vec()).unwrap(),
            CasReply::Rejected { promised: None }
        );
        a.prepare(b"k", ballot(3)).unwrap();
        assert_eq!(
            a.accept(b"k", ballot(2), b"old".to_vec()).unwrap(),
            CasReply::Rejected { promised: Some(ballot(3)) },
            "below the last promise"
        );
    }

    #[test]
    fn state_survives_reopening_the_database() {
        let disk = MemDisk::default();
        {
            let a = Acceptor::open(Arc::new(open_database(&disk, "meta/db").unwrap())).unwrap();
            a.prepare(b"k", ballot(2)).unwrap();
            a.accept(b"k", ballot(2), b"v".to_vec()).unwrap();
        }
        let a = Acceptor::open(Arc::new(open_database(&disk, "meta/db").unwrap())).unwrap();
        let state = a.state(b"k").unwrap();
        // Promised at the ceiling, which is above the promise (`ceiling_tests`).
        assert_eq!(state.promised, Some(super::ceiling_above(ballot(2))));
        assert_eq!(state.accepted, Some((ballot(2), b"v".to_vec())));
    }

    /// A deleted row's promise survives in the floor: lower ballots are refused for every
    /// key without a row, a key without a row accepts nothing before a prepare, and the
    /// floor survives reopening the database.
    #[test]
    fn a_deleted_rows_promise_holds_for_every_key_without_a_row() {
        let disk = MemDisk::default();
        let fence = b"fence".to_vec();
        {
            let a = Acceptor::open(Arc::new(open_database(&disk, "meta/db").unwrap())).unwrap();
            a.prepare(b"k", ballot(7)).unwrap();
            a.accept(b"k", ballot(7), fence.clone()).unwrap();
            let judged = a.state(b"k").unwrap();
            // A row changed since it was judged is kept.
            let stale = AcceptorState { promised: Some(ballot(6)), ..judged.clone() };
            assert_eq!(a.delete_rows(vec![(b"k".to_vec(), stale)], vec![]).unwrap(), 0);
            assert!(a.has_row(b"k").unwrap());
            assert_eq!(a.delete_rows(vec![(b"k".to_vec(), judged)], vec![]).unwrap(), 1);
            assert!(!a.has_row(b"k").unwrap());
        }
        // Without the ceiling, which would hide the floor behind a higher promise.
        let db = Arc::new(open_database(&disk, "meta/db").unwrap());
        let a = Acceptor::open_forgetting_the_ceiling(db).unwrap();
        let floor = CasReply::Rejected { promised: Some(ballot(7)) };
        for key in [&b"k"[..], b"never-seen"] {
            assert_eq!(a.prepare(key, ballot(7)).unwrap(), floor, "at the floor");
            assert_eq!(a.accept(key, ballot(7), fence.clone()).unwrap(), floor, "no promise");
            assert_eq!(a.state(key).unwrap().promised, Some(ballot(7)));
        }
        let promise = CasReply::Promise { accepted: None, entry: None };
        assert_eq!(a.prepare(b"k", ballot(8)).unwrap(), promise, "above the floor");
        assert_eq!(a.accept(b"k", ballot(8), b"v".to_vec()).unwrap(), CasReply::Accepted);
        // The key has a row of its own again, and answers from it.
        assert_eq!(
            a.prepare(b"k", ballot(9)).unwrap(),
            CasReply::Promise { accepted: Some((ballot(8), b"v".to_vec())), entry: None }
        );
    }

    /// Rows of keys this node no longer holds go, values and all; their promises stay in
    /// the floor, and the kept rows are untouched.
    #[test]
    fn rows_of_lost_keys_are_deleted_and_their_promises_kept() {
        let a = acceptor();
        for (key, counter) in [(&b"lost-1"[..], 4), (b"lost-2", 9), (b"kept", 12)] {
            a.prepare(key, ballot(counter)).unwrap();
            a.accept(key, ballot(counter), b"value".to_vec()).unwrap();
        }
        assert_eq!(a.delete_rows_unless(|key| key == b"kept").unwrap(), 2);
        assert!(!a.has_row(b"lost-1").unwrap() && !a.has_row(b"lost-2").unwrap());
        let kept = a.state(b"kept").unwrap();
        assert_eq!(kept.accepted, Some((ballot(12), b"value".to_vec())));
        let floor = CasReply::Rejected { promised: Some(ballot(9)) };
        assert_eq!(a.prepare(b"lost-1", ballot(9)).unwrap(), floor);
        assert_eq!(a.compaction_due(None, 10).unwrap().len(), 1, "only the kept key is listed");
    }

    /// Catching up: a row behind the fence's ballot takes the fence and the promise; a row
    /// that promised more, or accepted at or above the ballot, is left alone; a key with no
    /// row gets one; every caught-up row is listed for deletion.
    #[test]
    fn catching_up_only_ever_raises_a_row_to_the_fence() {
        let a = acceptor();
        a.prepare(b"stale", ballot(3)).unwrap();
        a.accept(b"stale", ballot(3), b"old".to_vec()).unwrap();
        a.prepare(b"ahead", ballot(9)).unwrap();
        a.prepare(b"same", ballot(5)).unwrap();
        a.accept(b"same", ballot(5), b"v".to_vec()).unwrap();
        let items = ["stale", "ahead", "same", "none"].map(|k| (k.as_bytes().to_vec(), ballot(5)));
        assert_eq!(a.catch_up(items.to_vec(), b"fence").unwrap(), 2);
        let fenced = AcceptorState {
            promised: Some(ballot(5)),
            accepted: Some((ballot(5), b"fence".to_vec())),
        };
        assert_eq!(a.state(b"stale").unwrap(), fenced);
        assert_eq!(a.state(b"none").unwrap(), fenced);
        assert_eq!(a.state(b"ahead").unwrap().promised, Some(ballot(9)), "untouched");
        assert_eq!(a.state(b"same").unwrap().accepted, Some((ballot(5), b"v".to_vec())));
        let listed: Vec<Vec<u8>> =
            a.deletion_due(None, 10).unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(listed, vec![b"none".to_vec(), b"stale".to_vec()]);
    }
}
