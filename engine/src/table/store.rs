//! One node's replica of one table, in the node's redb database.
//!
//! Entries are stored encoded (`schema::encode_entry`) under their storage key. Every
//! change merges the incoming entry into the stored one inside one write transaction,
//! committed durably before the caller is answered: an acknowledged replica write survives
//! a crash. The same transaction records the changed key in the table's Merkle to-do list;
//! the partition trees (`merkle`) apply the list, in batches, before anything reads them
//! (`Store::flush_tree`). So a crash can leave the tree behind the entries but never
//! disagreeing with them once read, and a write pays one small extra row instead of a tree
//! update (see docs/data-model.md, "Anti-entropy", for the measurements behind this).

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::merkle::{self, Hash};
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
    /// The encoded Merkle tree nodes standing at `paths` of `partition` (`merkle::node_at`;
    /// empty bytes for none), in the order asked.
    fn tree_nodes(&self, partition: u8, paths: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, StoreError>;
    /// Every `(entry key, value hash)` of `partition`'s tree under `path`.
    fn tree_leaves(&self, partition: u8, path: &[u8]) -> Result<Vec<(Vec<u8>, Hash)>, StoreError>;
    /// The stored entries of those of `keys` that exist, in the order asked.
    fn entries_by_key(&self, keys: &[Vec<u8>]) -> Result<Vec<RawEntry>, StoreError>;
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

/// To-do keys applied to the trees per commit of `Store::flush_tree`: bounds the memory and
/// the length of one write transaction.
const TREE_CHANGES_PER_COMMIT: usize = 10_000;

/// Distinct partition sets whose roots are kept; a node has one set per peer, so this is
/// only reached with far more peers than a cluster has, and then the cache just restarts.
const ROOT_CACHE_MAX_SETS: usize = 64;

pub struct Store<S: TableSchema> {
    db: Arc<Database>,
    /// The redb table of the Merkle trees: `S::NAME` + `merkle::TREE_TABLE_SUFFIX`.
    tree_name: String,
    /// The keys changed since the trees were last brought up to date (no values):
    /// `S::NAME` + `merkle::TODO_TABLE_SUFFIX`.
    todo_name: String,
    /// Set after every commit that added to-do rows, cleared by `flush_tree` before it
    /// starts: while false, the trees cover every committed entry.
    tree_stale: AtomicBool,
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
        let tree_name = format!("{}{}", S::NAME, merkle::TREE_TABLE_SUFFIX);
        let todo_name = format!("{}{}", S::NAME, merkle::TODO_TABLE_SUFFIX);
        let store = Store {
            db,
            tree_name,
            todo_name,
            tree_stale: AtomicBool::new(false),
            digests: Mutex::default(),
            commits: Mutex::default(),
            _schema: PhantomData,
        };
        // Create the tables up front so that readers never meet a missing table; a
        // database from before the trees existed gets its trees built once, here.
        let txn = store.db.begin_write().map_err(storage(S::NAME))?;
        {
            let table = txn.open_table(Self::definition()).map_err(storage(S::NAME))?;
            let mut tree = txn.open_table(store.tree_definition()).map_err(storage(S::NAME))?;
            let missing = tree.is_empty().map_err(storage(S::NAME))?
                && !table.is_empty().map_err(storage(S::NAME))?;
            let mut todo = txn.open_table(store.todo_definition()).map_err(storage(S::NAME))?;
            if missing {
                let built = Self::build_trees(&table, &mut tree)?;
                // The trees now cover every entry: nothing is left to apply.
                todo.retain(|_, _| false).map_err(storage(S::NAME))?;
                tracing::info!(table = S::NAME, entries = built, "merkle trees built");
            }
            // Changes a crash left unapplied are applied before the first read.
            store.tree_stale.store(!todo.is_empty().map_err(storage(S::NAME))?, Ordering::Release);
        }
        txn.commit().map_err(storage(S::NAME))?;
        Ok(store)
    }

    fn definition() -> TableDefinition<'static, &'static [u8], &'static [u8]> {
        TableDefinition::new(S::NAME)
    }

    fn tree_definition(&self) -> TableDefinition<'_, &'static [u8], &'static [u8]> {
        TableDefinition::new(&self.tree_name)
    }

    fn todo_definition(&self) -> TableDefinition<'_, &'static [u8], &'static [u8]> {
        TableDefinition::new(&self.todo_name)
    }

    /// Applies the to-do list to the trees, `TREE_CHANGES_PER_COMMIT` keys per commit, each
    /// key's change read from the entry as it is now. Called before every read of a tree;
    /// a no-op while nothing changed. The commits are not made durable by themselves: a
    /// crash before the next durable commit loses them together with the to-do rows they
    /// removed, and the rows are applied again.
    pub fn flush_tree(&self) -> Result<(), StoreError> {
        if !self.tree_stale.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let result = (|| {
            while self.flush_tree_batch()? == TREE_CHANGES_PER_COMMIT {}
            Ok(())
        })();
        if result.is_err() {
            self.tree_stale.store(true, Ordering::Release);
        }
        result
    }

    /// One commit of `flush_tree`; returns how many keys it applied.
    fn flush_tree_batch(&self) -> Result<usize, StoreError> {
        let mut txn = self.db.begin_write().map_err(storage(S::NAME))?;
        txn.set_durability(redb::Durability::None).map_err(storage(S::NAME))?;
        let mut by_partition: BTreeMap<u8, Vec<merkle::Change>> = BTreeMap::new();
        {
            let table = txn.open_table(Self::definition()).map_err(storage(S::NAME))?;
            let mut todo = txn.open_table(self.todo_definition()).map_err(storage(S::NAME))?;
            let mut tree = txn.open_table(self.tree_definition()).map_err(storage(S::NAME))?;
            let mut keys = Vec::new();
            for item in todo.iter().map_err(storage(S::NAME))?.take(TREE_CHANGES_PER_COMMIT) {
                keys.push(item.map_err(storage(S::NAME))?.0.value().to_vec());
            }
            for key in &keys {
                let hash = table
                    .get(key.as_slice())
                    .map_err(storage(S::NAME))?
                    .map(|v| *blake3::hash(v.value()).as_bytes());
                let change = (merkle::item_path(key), key.clone(), hash);
                by_partition.entry(partition_of_key(key)).or_default().push(change);
                todo.remove(key.as_slice()).map_err(storage(S::NAME))?;
            }
            for (&partition, changes) in by_partition.iter_mut() {
                merkle::apply(&mut tree, partition, changes).map_err(storage(S::NAME))?;
            }
        }
        let applied = by_partition.values().map(Vec::len).sum();
        if applied == 0 {
            let _ = txn.abort();
            return Ok(0);
        }
        self.forget_digests(&by_partition.keys().copied().collect::<Vec<_>>());
        txn.commit().map_err(storage(S::NAME))?;
        Ok(applied)
    }

    /// Builds every partition's tree from the entries, one partition in memory at a time;
    /// returns how many entries the trees cover.
    fn build_trees(
        table: &impl ReadableTable<&'static [u8], &'static [u8]>,
        tree: &mut redb::Table<'_, &'static [u8], &'static [u8]>,
    ) -> Result<usize, StoreError> {
        let mut total = 0;
        for partition in 0..=u8::MAX {
            let mut items = Vec::new();
            Self::scan_partition_of(table, partition, |k, v| {
                items.push((k.to_vec(), *blake3::hash(v).as_bytes()))
            })?;
            total += items.len();
            merkle::build_partition(tree, partition, items).map_err(storage(S::NAME))?;
        }
        Ok(total)
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
        todo: &mut redb::Table<'_, &'static [u8], &'static [u8]>,
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
                todo.insert(key.as_slice(), &[][..]).map_err(storage(S::NAME))?;
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
            let opened = txn
                .open_table(Self::definition())
                .and_then(|table| txn.open_table(self.todo_definition()).map(|todo| (table, todo)));
            let (mut table, mut todo) = match opened {
                Ok(tables) => tables,
                Err(e) => return fail_all(storage(S::NAME)(e)),
            };
            for entries in jobs {
                match self.apply_job(&mut table, &mut todo, entries) {
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
            Ok(()) => {
                self.tree_stale.store(true, Ordering::Release);
                results
            }
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

    /// For each of `partitions`, the root hash of its Merkle tree: one lookup each, in one
    /// read transaction.
    fn compute_partition_digests(&self, partitions: &[u8]) -> Result<Vec<[u8; 32]>, StoreError> {
        let txn = self.db.begin_read().map_err(storage(S::NAME))?;
        let tree = txn.open_table(self.tree_definition()).map_err(storage(S::NAME))?;
        partitions
            .iter()
            .map(|&p| merkle::read_node(&tree, p, &[]).map(|root| root.hash()))
            .collect::<Result<_, _>>()
            .map_err(storage(S::NAME))
    }

    fn scan_partition(&self, partition: u8, f: impl FnMut(&[u8], &[u8])) -> Result<(), StoreError> {
        let txn = self.db.begin_read().map_err(storage(S::NAME))?;
        let table = txn.open_table(Self::definition()).map_err(storage(S::NAME))?;
        Self::scan_partition_of(&table, partition, f)
    }

    fn partition_is_empty(&self, partition: u8) -> Result<bool, StoreError> {
        let txn = self.db.begin_read().map_err(storage(S::NAME))?;
        let table = txn.open_table(Self::definition()).map_err(storage(S::NAME))?;
        Ok(Self::partition_entries(&table, partition)?.next().is_none())
    }

    /// The entries of one partition, in key order.
    fn partition_entries<'t>(
        table: &'t impl ReadableTable<&'static [u8], &'static [u8]>,
        partition: u8,
    ) -> Result<redb::Range<'t, &'static [u8], &'static [u8]>, StoreError> {
        let (start, end) = Self::partition_range(partition);
        match &end {
            Some(end) => table.range::<&[u8]>(start.as_slice()..end.as_slice()),
            None => table.range::<&[u8]>(start.as_slice()..),
        }
        .map_err(storage(S::NAME))
    }

    fn scan_partition_of(
        table: &impl ReadableTable<&'static [u8], &'static [u8]>,
        partition: u8,
        mut f: impl FnMut(&[u8], &[u8]),
    ) -> Result<(), StoreError> {
        for item in Self::partition_entries(table, partition)? {
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
        // Pending changes first: applying them forgets the digests they change.
        self.flush_tree()?;
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
        self.flush_tree()?;
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

    fn tree_nodes(&self, partition: u8, paths: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, StoreError> {
        self.flush_tree()?;
        let txn = self.db.begin_read().map_err(storage(S::NAME))?;
        let tree = txn.open_table(self.tree_definition()).map_err(storage(S::NAME))?;
        paths
            .iter()
            .map(|path| merkle::node_at(&tree, partition, path).map(|node| node.encode()))
            .collect::<Result<_, _>>()
            .map_err(storage(S::NAME))
    }

    fn tree_leaves(&self, partition: u8, path: &[u8]) -> Result<Vec<(Vec<u8>, Hash)>, StoreError> {
        self.flush_tree()?;
        let txn = self.db.begin_read().map_err(storage(S::NAME))?;
        let tree = txn.open_table(self.tree_definition()).map_err(storage(S::NAME))?;
        let mut out = Vec::new();
        merkle::leaves_under(&tree, partition, path, |key, hash| out.push((key, hash)))
            .map_err(storage(S::NAME))?;
        Ok(out)
    }

    fn entries_by_key(&self, keys: &[Vec<u8>]) -> Result<Vec<RawEntry>, StoreError> {
        let txn = self.db.begin_read().map_err(storage(S::NAME))?;
        let table = txn.open_table(Self::definition()).map_err(storage(S::NAME))?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(v) = table.get(key.as_slice()).map_err(storage(S::NAME))? {
                out.push((key.clone(), v.value().to_vec()));
            }
        }
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
        // Nearly every call finds nothing: a node re-drops every partition it does not hold
        // whenever its layout history changes. A read transaction says so for a fraction of
        // an aborted write transaction's cost (12% of a simulated 5-node run before).
        if self.partition_is_empty(partition)? {
            return Ok(0);
        }
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
            let count = removed.count();
            let mut tree = txn.open_table(self.tree_definition()).map_err(storage(S::NAME))?;
            merkle::drop_partition(&mut tree, partition).map_err(storage(S::NAME))?;
            count
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
            let mut todo = txn.open_table(self.todo_definition()).map_err(storage(S::NAME))?;
            for (key, hash) in items {
                let unchanged = table
                    .get(key.as_slice())
                    .map_err(storage(S::NAME))?
                    .is_some_and(|v| blake3::hash(v.value()).as_bytes() == hash);
                if unchanged {
                    table.remove(key.as_slice()).map_err(storage(S::NAME))?;
                    todo.insert(key.as_slice(), &[][..]).map_err(storage(S::NAME))?;
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
        self.tree_stale.store(true, Ordering::Release);
        Ok(touched.len())
    }
}
