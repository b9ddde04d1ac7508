//! One node's replica of one table, in the node's redb database.
//!
//! Entries are stored encoded (`schema::encode_entry`) under their storage key. Every
//! change merges the incoming entry into the stored one inside one write transaction,
//! committed durably before the caller is answered: an acknowledged replica write survives
//! a crash.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::ops::Bound;
use std::sync::{Arc, Mutex};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::schema::{TableSchema, decode_entry, encode_entry, partition_of_key};
use crate::crdt::Crdt;
use crate::rpc::message::{RawEntry, root_digest};
use crate::seam::BoxFuture;

/// A local storage failure; the replica answers it as an error and the quorum logic counts
/// it as a failed replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    Storage { table: &'static str, reason: String },
    BadEntry { table: &'static str, reason: String },
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Storage { table, reason } => write!(f, "table {table}: storage: {reason}"),
            StoreError::BadEntry { table, reason } => {
                write!(f, "table {table}: bad entry: {reason}")
            }
        }
    }
}

/// The untyped face of a local table, used by the RPC handler and anti-entropy, which route
/// by table name.
pub trait LocalTable: Send + Sync {
    fn name(&self) -> &'static str;
    /// Merges encoded entries into the replica; durable when this returns.
    fn merge_raw(&self, entries: &[RawEntry]) -> Result<(), StoreError>;
    /// `merge_raw` for async callers: concurrent writers share one durable commit.
    fn merge_raw_async(&self, entries: Vec<RawEntry>) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move { self.merge_raw(&entries) })
    }
    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Hash of every `(key, entry)` in the partition, in key order.
    fn partition_digest(&self, partition: u8) -> Result<[u8; 32], StoreError> {
        Ok(self.partition_digests(&[partition])?[0])
    }
    /// The digests of several partitions, in the order asked.
    fn partition_digests(&self, partitions: &[u8]) -> Result<Vec<[u8; 32]>, StoreError>;
    /// One hash over the digests of `partitions` (`root_digest` of `partition_digests`):
    /// what anti-entropy compares first, every round, for every peer and table.
    fn root_digest(&self, partitions: &[u8]) -> Result<[u8; 32], StoreError> {
        Ok(root_digest(&self.partition_digests(partitions)?))
    }
    fn partition_entries(&self, partition: u8) -> Result<Vec<RawEntry>, StoreError>;
    /// Up to `limit` entries whose key starts with `prefix` and is greater than `after`
    /// (or all matching when `after` is empty), in key order.
    fn range(&self, prefix: &[u8], after: &[u8], limit: usize)
    -> Result<Vec<RawEntry>, StoreError>;
    /// Whether the table's schema lets tombstones be collected (`tombstone_since_ms`).
    fn collects_tombstones(&self) -> bool {
        false
    }
    /// Up to `limit` tombstones of `partition` that became tombstones before `before_ms`,
    /// in key order, as stored.
    fn tombstones(
        &self,
        _partition: u8,
        _before_ms: u64,
        _limit: usize,
    ) -> Result<Vec<RawEntry>, StoreError> {
        Ok(Vec::new())
    }
    /// Deletes each key whose stored bytes still hash to the given blake3 hash, in one
    /// durable commit; returns how many were deleted.
    fn delete_if_unchanged(&self, items: &[(Vec<u8>, [u8; 32])]) -> Result<usize, StoreError>;
    /// Deletes every entry of `partition` (one this node no longer holds); returns how
    /// many there were.
    fn drop_partition(&self, partition: u8) -> Result<usize, StoreError>;
}

/// Cached partition digests, with a generation bumped by every write so that a digest
/// computed while a write committed is never cached.
///
/// Root digests are cached too, per partition set (one set per peer we share partitions
/// with): hashing 256 partition digests on both sides of every anti-entropy probe was a
/// tenth of a simulated cluster's work while nothing changed. Any write forgets them all.
struct DigestCache {
    generation: u64,
    /// Indexed by partition: a lookup per partition per probe, so no map.
    digests: Box<[Option<[u8; 32]>; 256]>,
    roots: BTreeMap<Vec<u8>, [u8; 32]>,
}

impl Default for DigestCache {
    fn default() -> Self {
        DigestCache { generation: 0, digests: Box::new([None; 256]), roots: BTreeMap::new() }
    }
}

/// Distinct partition sets whose roots are kept; a node has one set per peer, so this is
/// only reached with far more peers than a cluster has, and then the cache just restarts.
const ROOT_CACHE_MAX_SETS: usize = 64;

pub struct Store<S: TableSchema> {
    db: Arc<Database>,
    /// Digests of unchanged partitions: anti-entropy asks for all of them every round, and
    /// most rounds nothing changed. A write forgets the digests of the partitions it touches.
    digests: Mutex<DigestCache>,
    /// Writers waiting for the next group commit (see `merge_grouped`).
    commits: Mutex<CommitQueue>,
    _schema: PhantomData<S>,
}

/// A writer's entries and where its answer goes.
type CommitJob = (Vec<RawEntry>, tokio::sync::oneshot::Sender<Result<(), StoreError>>);

/// Jobs waiting for a group commit, and whether a leader is committing.
#[derive(Default)]
struct CommitQueue {
    leader_active: bool,
    waiting: Vec<CommitJob>,
}

fn storage<E: std::fmt::Display>(table: &'static str) -> impl Fn(E) -> StoreError {
    move |e| StoreError::Storage { table, reason: e.to_string() }
}

impl<S: TableSchema> Store<S> {
    pub fn open(db: Arc<Database>) -> Result<Self, StoreError> {
        // Create the table up front so that readers never meet a missing table.
        let txn = db.begin_write().map_err(storage(S::NAME))?;
        txn.open_table(Self::definition()).map_err(storage(S::NAME))?;
        txn.commit().map_err(storage(S::NAME))?;
        Ok(Store { db, digests: Mutex::default(), commits: Mutex::default(), _schema: PhantomData })
    }

    fn definition() -> TableDefinition<'static, &'static [u8], &'static [u8]> {
        TableDefinition::new(S::NAME)
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<S::Entry>, StoreError> {
        match self.get_raw(key)? {
            None => Ok(None),
            Some(bytes) => Ok(Some(self.decode(&bytes)?)),
        }
    }

    /// Merges one typed entry; returns the merged result as stored.
    pub fn merge(&self, key: &[u8], entry: &S::Entry) -> Result<(), StoreError> {
        self.merge_raw(&[(key.to_vec(), encode_entry(entry))])
    }

    fn decode(&self, bytes: &[u8]) -> Result<S::Entry, StoreError> {
        decode_entry(bytes)
            .map_err(|e| StoreError::BadEntry { table: S::NAME, reason: e.to_string() })
    }

    fn partition_range(partition: u8) -> (Vec<u8>, Option<Vec<u8>>) {
        let start = vec![partition];
        let end = (partition < u8::MAX).then(|| vec![partition + 1]);
        (start, end)
    }

    /// Decodes and merges one job's entries into `table`; returns whether anything
    /// changed. Decodes everything first, so a bad entry leaves the table untouched.
    fn apply_job(
        &self,
        table: &mut redb::Table<'_, &'static [u8], &'static [u8]>,
        entries: &[RawEntry],
    ) -> Result<bool, StoreError> {
        let incoming: Vec<S::Entry> =
            entries.iter().map(|(_, bytes)| self.decode(bytes)).collect::<Result<_, _>>()?;
        let mut changed = false;
        for ((key, _), incoming) in entries.iter().zip(incoming) {
            let old = table.get(key.as_slice()).map_err(storage(S::NAME))?;
            let old = old.map(|guard| guard.value().to_vec());
            let merged = match &old {
                None => incoming,
                Some(old) => {
                    let mut merged = self.decode(old)?;
                    merged.merge(&incoming);
                    merged
                }
            };
            let merged = encode_entry(&merged);
            if old.as_deref() != Some(merged.as_slice()) {
                table.insert(key.as_slice(), merged.as_slice()).map_err(storage(S::NAME))?;
                changed = true;
            }
        }
        Ok(changed)
    }

    /// Merges several callers' entries in one write transaction and one durable commit.
    /// Returns one result per job: a job with a bad entry fails alone; a storage failure
    /// fails them all (nothing of the batch is committed).
    fn commit_batch(&self, jobs: &[&[RawEntry]]) -> Vec<Result<(), StoreError>> {
        let fail_all = |e: StoreError| jobs.iter().map(|_| Err(e.clone())).collect();
        let txn = match self.db.begin_write() {
            Ok(txn) => txn,
            Err(e) => return fail_all(storage(S::NAME)(e)),
        };
        let mut results = Vec::with_capacity(jobs.len());
        let mut touched: Vec<u8> = Vec::new();
        {
            let mut table = match txn.open_table(Self::definition()) {
                Ok(t) => t,
                Err(e) => return fail_all(storage(S::NAME)(e)),
            };
            for entries in jobs {
                match self.apply_job(&mut table, entries) {
                    Ok(changed) => {
                        if changed {
                            touched.extend(entries.iter().map(|(key, _)| partition_of_key(key)));
                        }
                        results.push(Ok(()));
                    }
                    Err(e @ StoreError::BadEntry { .. }) => results.push(Err(e)),
                    Err(e) => return fail_all(e),
                }
            }
        }
        if touched.is_empty() {
            let _ = txn.abort();
            return results;
        }
        self.forget_digests(&touched);
        match txn.commit() {
            Ok(()) => results,
            Err(e) => fail_all(storage(S::NAME)(e)),
        }
    }

    /// Called before committing a change to `touched` partitions: a digest computed from
    /// the old contents must not survive the commit (a concurrent reader could otherwise
    /// re-cache it).
    fn forget_digests(&self, touched: &[u8]) {
        let mut cache = self.digests.lock().unwrap();
        cache.generation += 1;
        cache.roots.clear();
        for &partition in touched {
            cache.digests[usize::from(partition)] = None;
        }
    }

    #[cfg(test)]
    pub(crate) fn commit_batch_for_tests(
        &self,
        jobs: &[&[RawEntry]],
    ) -> Vec<Result<(), StoreError>> {
        self.commit_batch(jobs)
    }

    /// Group commit: the first caller to find no commit running becomes the leader and
    /// commits every job queued meanwhile in one transaction (one fsync for many writers)
    /// until the queue is empty; the others just wait for their answer. The leader's work
    /// is synchronous (no await), so it cannot be abandoned halfway; a waiter that gives up
    /// still has its write applied, like a replica answering after a timeout.
    async fn merge_grouped(&self, entries: Vec<RawEntry>) -> Result<(), StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let lead = {
            let mut queue = self.commits.lock().unwrap();
            queue.waiting.push((entries, tx));
            !std::mem::replace(&mut queue.leader_active, true)
        };
        if lead {
            loop {
                let batch = {
                    let mut queue = self.commits.lock().unwrap();
                    if queue.waiting.is_empty() {
                        queue.leader_active = false;
                        break;
                    }
                    std::mem::take(&mut queue.waiting)
                };
                let jobs: Vec<&[RawEntry]> = batch.iter().map(|(e, _)| e.as_slice()).collect();
                let results = self.commit_batch(&jobs);
                for ((_, reply), result) in batch.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
            }
        }
        rx.await.unwrap_or_else(|_| {
            Err(StoreError::Storage { table: S::NAME, reason: "group commit dropped".into() })
        })
    }

    /// For each of `partitions`, the hash of every `(key, entry)` in it, length-prefixed,
    /// in key order. One read transaction for all of them: a node's first anti-entropy
    /// round computes all 256 of every table, and a transaction per partition was most of
    /// that cost.
    fn compute_partition_digests(&self, partitions: &[u8]) -> Result<Vec<[u8; 32]>, StoreError> {
        let txn = self.db.begin_read().map_err(storage(S::NAME))?;
        let table = txn.open_table(Self::definition()).map_err(storage(S::NAME))?;
        let mut out = Vec::with_capacity(partitions.len());
        for &partition in partitions {
            let mut hasher = blake3::Hasher::new();
            Self::scan_partition_of(&table, partition, |k, v| {
                debug_assert_eq!(partition_of_key(k), partition);
                hasher.update(&(k.len() as u32).to_le_bytes());
                hasher.update(k);
                hasher.update(&(v.len() as u32).to_le_bytes());
                hasher.update(v);
            })?;
            out.push(*hasher.finalize().as_bytes());
        }
        Ok(out)
    }

    fn scan_partition(&self, partition: u8, f: impl FnMut(&[u8], &[u8])) -> Result<(), StoreError> {
        let txn = self.db.begin_read().map_err(storage(S::NAME))?;
        let table = txn.open_table(Self::definition()).map_err(storage(S::NAME))?;
        Self::scan_partition_of(&table, partition, f)
    }

    fn scan_partition_of(
        table: &impl ReadableTable<&'static [u8], &'static [u8]>,
        partition: u8,
        mut f: impl FnMut(&[u8], &[u8]),
    ) -> Result<(), StoreError> {
        let (start, end) = Self::partition_range(partition);
        let range = match &end {
            Some(end) => table.range::<&[u8]>(start.as_slice()..end.as_slice()),
            None => table.range::<&[u8]>(start.as_slice()..),
        }
        .map_err(storage(S::NAME))?;
        for item in range {
            let (k, v) = item.map_err(storage(S::NAME))?;
            f(k.value(), v.value());
        }
        Ok(())
    }
}

impl<S: TableSchema> LocalTable for Store<S> {
    fn name(&self) -> &'static str {
        S::NAME
    }

    fn merge_raw(&self, entries: &[RawEntry]) -> Result<(), StoreError> {
        self.commit_batch(&[entries]).pop().expect("one result per job")
    }

    fn merge_raw_async(&self, entries: Vec<RawEntry>) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.merge_grouped(entries))
    }

    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(storage(S::NAME))?;
        let table = txn.open_table(Self::definition()).map_err(storage(S::NAME))?;
        let value = table.get(key).map_err(storage(S::NAME))?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    fn partition_digests(&self, partitions: &[u8]) -> Result<Vec<[u8; 32]>, StoreError> {
        // One pass under the lock for what is cached; the misses are computed outside it.
        let (mut out, generation) = {
            let cache = self.digests.lock().unwrap();
            let out: Vec<Option<[u8; 32]>> =
                partitions.iter().map(|&p| cache.digests[usize::from(p)]).collect();
            (out, cache.generation)
        };
        let missing: Vec<u8> =
            out.iter().zip(partitions).filter(|(d, _)| d.is_none()).map(|(_, &p)| p).collect();
        let computed: Vec<(u8, [u8; 32])> = if missing.is_empty() {
            Vec::new()
        } else {
            missing.iter().copied().zip(self.compute_partition_digests(&missing)?).collect()
        };
        let mut fresh = computed.iter();
        for slot in out.iter_mut().filter(|d| d.is_none()) {
            *slot = fresh.next().map(|&(_, digest)| digest);
        }
        if !computed.is_empty() {
            let mut cache = self.digests.lock().unwrap();
            if cache.generation == generation {
                for (partition, digest) in computed {
                    cache.digests[usize::from(partition)] = Some(digest);
                }
            }
        }
        Ok(out.into_iter().map(|d| d.expect("every slot was filled above")).collect())
    }

    fn root_digest(&self, partitions: &[u8]) -> Result<[u8; 32], StoreError> {
        let generation = {
            let cache = self.digests.lock().unwrap();
            if let Some(root) = cache.roots.get(partitions) {
                return Ok(*root);
            }
            cache.generation
        };
        let root = root_digest(&self.partition_digests(partitions)?);
        let mut cache = self.digests.lock().unwrap();
        if cache.generation == generation {
            if cache.roots.len() >= ROOT_CACHE_MAX_SETS {
                cache.roots.clear();
            }
            cache.roots.insert(partitions.to_vec(), root);
        }
        Ok(root)
    }

    fn range(
        &self,
        prefix: &[u8],
        after: &[u8],
        limit: usize,
    ) -> Result<Vec<RawEntry>, StoreError> {
        let txn = self.db.begin_read().map_err(storage(S::NAME))?;
        let table = txn.open_table(Self::definition()).map_err(storage(S::NAME))?;
        let start = if after > prefix { after } else { prefix };
        let iter = table.range::<&[u8]>(start..).map_err(storage(S::NAME))?;
        let mut out = Vec::new();
        for item in iter {
            let (k, v) = item.map_err(storage(S::NAME))?;
            let key = k.value();
            if !key.starts_with(prefix) || out.len() >= limit {
                break;
            }
            if key != after {
                out.push((key.to_vec(), v.value().to_vec()));
            }
        }
        Ok(out)
    }

    fn partition_entries(&self, partition: u8) -> Result<Vec<RawEntry>, StoreError> {
        let mut out = Vec::new();
        self.scan_partition(partition, |k, v| out.push((k.to_vec(), v.to_vec())))?;
        Ok(out)
    }

    fn collects_tombstones(&self) -> bool {
        S::COLLECTS_TOMBSTONES
    }

    fn tombstones(
        &self,
        partition: u8,
        before_ms: u64,
        limit: usize,
    ) -> Result<Vec<RawEntry>, StoreError> {
        let mut out = Vec::new();
        if !S::COLLECTS_TOMBSTONES {
            return Ok(out);
        }
        let mut bad = None;
        self.scan_partition(partition, |k, v| {
            if out.len() >= limit || bad.is_some() {
                return;
            }
            match self.decode(v) {
                Ok(entry) => {
                    if S::tombstone_since_ms(&entry).is_some_and(|since| since < before_ms) {
                        out.push((k.to_vec(), v.to_vec()));
                    }
                }
                Err(e) => bad = Some(e),
            }
        })?;
        match bad {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    fn drop_partition(&self, partition: u8) -> Result<usize, StoreError> {
        let (start, end) = Self::partition_range(partition);
        let txn = self.db.begin_write().map_err(storage(S::NAME))?;
        let dropped = {
            let mut table = txn.open_table(Self::definition()).map_err(storage(S::NAME))?;
            let upper = match &end {
                Some(end) => Bound::Excluded(end.as_slice()),
                None => Bound::Unbounded,
            };
            let range = (Bound::Included(start.as_slice()), upper);
            let removed =
                table.extract_from_if::<&[u8], _>(range, |_, _| true).map_err(storage(S::NAME))?;
            removed.count()
        };
        if dropped == 0 {
            let _ = txn.abort();
            return Ok(0);
        }
        self.forget_digests(&[partition]);
        txn.commit().map_err(storage(S::NAME))?;
        Ok(dropped)
    }

    fn delete_if_unchanged(&self, items: &[(Vec<u8>, [u8; 32])]) -> Result<usize, StoreError> {
        let txn = self.db.begin_write().map_err(storage(S::NAME))?;
        let mut touched = Vec::new();
        {
            let mut table = txn.open_table(Self::definition()).map_err(storage(S::NAME))?;
            for (key, hash) in items {
                let unchanged = table
                    .get(key.as_slice())
                    .map_err(storage(S::NAME))?
                    .is_some_and(|v| blake3::hash(v.value()).as_bytes() == hash);
                if unchanged {
                    table.remove(key.as_slice()).map_err(storage(S::NAME))?;
                    touched.push(partition_of_key(key));
                }
            }
        }
        if touched.is_empty() {
            let _ = txn.abort();
            return Ok(0);
        }
        self.forget_digests(&touched);
        txn.commit().map_err(storage(S::NAME))?;
        Ok(touched.len())
    }
}
