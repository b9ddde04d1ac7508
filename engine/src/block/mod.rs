//! Blocks: pieces of object bodies (default `BLOCK_SIZE_BYTES_DEFAULT`), content-addressed
//! by blake3 and replicated to the nodes of the ring partition of their hash
//! (`block_partition`: the partition of the block's `block_ref` entries, whose partition key is
//! the block hash — so a block and the references that keep it alive share their nodes).
//!
//! Why content addressing: a block's name is its checksum, so every copy can be verified
//! anywhere without metadata, identical data is stored once per node, and a write is
//! idempotent — retries and concurrent writers of the same block cannot conflict.
//!
//! ## On disk (through `seam::Disk`, paths relative to the node's data root)
//!
//! `blocks/<hex[0..2]>/<hex[2..4]>/<hex>`, `hex` the 64 lower-case hex digits of the hash
//! (`local::block_path`). A file is one format byte, `BLOCK_FORMAT_V1` (= 1), followed by
//! the payload; verification is always blake3 of the payload against the file name. A file
//! with another format byte does not verify (it is treated as corrupt until a migration
//! exists).
//!
//! ## Durability assumptions
//!
//! - `Disk::write_durable` writes a temporary file, fsyncs it, renames it into place and
//!   fsyncs the directory (creating and syncing missing parent directories): once it
//!   returns `Ok`, the block survives a crash. A crash before that leaves no block, or a
//!   temporary that `local_list` skips.
//! - A replica acknowledges a put only after that. `put_block` returns `Ok` once
//!   `write_quorum` replicas acknowledged (or had a valid copy already).
//! - Removals are not fsynced: a deleted block may come back after a crash. Garbage
//!   collection must tolerate that (the block is unreferenced; it is collected again).
//! - Silent corruption (bit rot, torn or misdirected writes) is caught on every read by the
//!   hash check; a corrupt copy is never served. It is logged and counted (`BlockStats`);
//!   scrub replaces it (`repair`). `local_put` over a corrupt copy rewrites it.
//!
//! ## Replication
//!
//! `put_block` sends to every replica at once, one task per peer (the local copy is written
//! inline while they run) and returns at `write_quorum`; the other sends finish in the
//! background. Every send to a peer holds a permit of a node-wide semaphore of
//! `BLOCK_SENDS_IN_FLIGHT_MAX`, so background sends to a slow replica cannot pile up:
//! callers wait for permits instead. `get_block` reads one replica at a time — ourselves
//! first if we are one, then the others in layout order — and stops at the first copy that
//! verifies, so a healthy cluster serves a read with one local read or one RPC.

mod local;
pub mod repair;
#[cfg(test)]
mod tests;

pub use local::{BLOCK_FORMAT_V1, BLOCK_HEADER_BYTES, BLOCKS_DIR, block_path, parse_hash_hex};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{Semaphore, mpsc};

use crate::layout::manager::{LayoutManager, SetQuorums};
use crate::layout::{NodeId, Partition};
use crate::rpc::message::BlockRequest;
use crate::rpc::{Request, Response, RpcClient};
use crate::seam::Seam;

/// A block's name: blake3 of its payload.
pub type BlockHash = [u8; 32];

/// Size object bodies are cut into, unless configured otherwise.
pub const BLOCK_SIZE_BYTES_DEFAULT: usize = 1 << 20;
/// Block sends to peers in flight on one node (bounds background work and memory: each
/// holds a copy of its block).
pub const BLOCK_SENDS_IN_FLIGHT_MAX: usize = 64;

/// blake3 of `data`.
/// The ring partition of a block: that of a table entry whose partition key is the block's
/// hash, so the block lives on the same nodes as its `block_ref` entries.
pub fn block_partition(hash: &BlockHash) -> Partition {
    crate::table::schema::partition_of_key(&crate::table::entry_key(hash, b""))
}

pub fn hash_of(data: &[u8]) -> BlockHash {
    *blake3::hash(data).as_bytes()
}

/// Lower-case hex of a hash (block file names, errors, logs).
pub fn hash_hex(hash: &BlockHash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a block operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockError {
    /// Fewer than `quorum` replicas stored the block.
    Quorum { quorum: usize, successes: usize, errors: Vec<String> },
    /// No replica returned a copy that verifies; `tried` says what each one answered.
    NotFound { hash_hex: String, tried: Vec<String> },
    /// `node`'s copy does not hash to its name.
    Corrupt { hash_hex: String, node: NodeId },
    /// The local disk failed.
    Io { reason: String },
    /// Data offered for a block does not hash to the block's name (a caller bug, or data
    /// damaged on its way here).
    HashMismatch { expected_hex: String, actual_hex: String },
}

impl std::fmt::Display for BlockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlockError::Quorum { quorum, successes, errors } => write!(
                f,
                "block write quorum {quorum} not reached ({successes} ok): {}",
                errors.join("; ")
            ),
            BlockError::NotFound { hash_hex, tried } => {
                write!(f, "block {hash_hex} not found: {}", tried.join("; "))
            }
            BlockError::Corrupt { hash_hex, node } => {
                write!(f, "block {hash_hex} is corrupt on node {node}")
            }
            BlockError::Io { reason } => write!(f, "block storage: {reason}"),
            BlockError::HashMismatch { expected_hex, actual_hex } => {
                write!(f, "data for block {expected_hex} hashes to {actual_hex}")
            }
        }
    }
}

impl std::error::Error for BlockError {}

/// Faults this node has seen in block copies since it started (for resync and metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockStats {
    /// Copies found corrupt: ours by `local_get`, or a peer's answer that did not verify.
    pub corrupt_copies: u64,
    /// Replicas that had no copy of a block `get_block` asked them for.
    pub missing_copies: u64,
}

/// Bytes of block files this node read from and wrote to its own disk since it started
/// (headers included; for `/metrics`). Kept apart from `BlockStats`, which counts faults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockIo {
    pub bytes_read: u64,
    pub bytes_written: u64,
}

#[derive(Default)]
struct Counters {
    corrupt_copies: AtomicU64,
    missing_copies: AtomicU64,
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
}

/// What `get_block` reports for a replica that answered it has no copy (as opposed to
/// failing to answer): resync tells a block that exists nowhere from one it cannot reach.
pub const NO_COPY: &str = "no copy";

/// One replica's answer to a put.
type Answer = (NodeId, Result<(), String>);

pub struct BlockManager {
    self_id: NodeId,
    seam: Seam,
    rpc: Arc<RpcClient>,
    layout: Arc<LayoutManager>,
    write_quorum: usize,
    sends: Arc<Semaphore>,
    counters: Counters,
    /// When each block was last written here (monotonic ms): the garbage collector spares
    /// recently written blocks, whose references may still be in flight.
    recent_puts: std::sync::Mutex<std::collections::BTreeMap<BlockHash, tokio::time::Instant>>,
}

impl BlockManager {
    pub fn new(
        self_id: NodeId,
        seam: Seam,
        rpc: Arc<RpcClient>,
        layout: Arc<LayoutManager>,
        write_quorum: usize,
    ) -> Self {
        assert!(write_quorum >= 1, "a block write quorum of 0 would acknowledge nothing");
        let sends = Arc::new(Semaphore::new(BLOCK_SENDS_IN_FLIGHT_MAX));
        BlockManager {
            self_id,
            seam,
            rpc,
            layout,
            write_quorum,
            sends,
            counters: Counters::default(),
            recent_puts: Default::default(),
        }
    }

    /// Whether `hash` was written here within the last `window_ms`; forgets older writes.
    pub fn written_within(&self, hash: &BlockHash, window_ms: u64) -> bool {
        let window = std::time::Duration::from_millis(window_ms);
        let now = crate::seam::monotonic_now();
        let mut recent = self.recent_puts.lock().unwrap();
        recent.retain(|_, at| now.saturating_duration_since(*at) < window);
        recent.contains_key(hash)
    }

    fn note_put(&self, hash: &BlockHash) {
        self.recent_puts.lock().unwrap().insert(*hash, crate::seam::monotonic_now());
    }

    /// The nodes that hold `hash`, in layout order: the read version's set, then (during a
    /// layout transition) the other versions' nodes, which may hold it too.
    pub fn replicas(&self, hash: &BlockHash) -> Vec<NodeId> {
        self.layout.all_nodes(block_partition(hash))
    }

    pub fn stats(&self) -> BlockStats {
        BlockStats {
            corrupt_copies: self.counters.corrupt_copies.load(Ordering::Relaxed),
            missing_copies: self.counters.missing_copies.load(Ordering::Relaxed),
        }
    }

    pub fn io(&self) -> BlockIo {
        BlockIo {
            bytes_read: self.counters.bytes_read.load(Ordering::Relaxed),
            bytes_written: self.counters.bytes_written.load(Ordering::Relaxed),
        }
    }

    fn note_io(&self, read: usize, written: usize) {
        self.counters.bytes_read.fetch_add(read as u64, Ordering::Relaxed);
        self.counters.bytes_written.fetch_add(written as u64, Ordering::Relaxed);
    }

    fn note_corrupt(&self, hash: &BlockHash, node: NodeId) {
        self.counters.corrupt_copies.fetch_add(1, Ordering::Relaxed);
        self.seam.trace.event("block.corrupt", &[&hash[..], &node.0.to_le_bytes()].concat());
    }

    fn note_missing(&self, hash: &BlockHash, node: NodeId) {
        self.counters.missing_copies.fetch_add(1, Ordering::Relaxed);
        self.seam.trace.event("block.missing", &[&hash[..], &node.0.to_le_bytes()].concat());
    }

    /// Stores `data` on the replicas of its partition; `Ok` once `write_quorum` of them
    /// (fewer if the partition has fewer replicas) hold it durably — in the replica set of
    /// every stored layout version, during a transition.
    ///
    /// `hash` must be the hash of `data`: the caller computed it from the data a moment
    /// ago, so it is checked in debug builds only (a block's hash costs about as much CPU as
    /// its write). Were it wrong, every other replica would refuse the block, and the scrub
    /// would find this node's copy corrupt.
    pub async fn put_block(&self, hash: BlockHash, data: Vec<u8>) -> Result<(), BlockError> {
        debug_assert!(
            hash_of(&data) == hash,
            "put_block: data does not hash to {}",
            hash_hex(&hash)
        );
        // Held until the answer: a layout acknowledgement waits for writes like this one.
        let _guard = self.layout.write_guard().await;
        let mut quorums =
            SetQuorums::new(self.layout.write_sets(block_partition(&hash)), self.write_quorum);
        let replicas = quorums.union();
        if replicas.is_empty() {
            let errors = vec!["the layout has no replica for this block".to_string()];
            return Err(BlockError::Quorum { quorum: self.write_quorum, successes: 0, errors });
        }
        let (tx, mut answers) = mpsc::channel::<Answer>(replicas.len());
        for &node in replicas.iter().filter(|&&n| n != self.self_id) {
            // Waiting here, before spawning, is the back-pressure on callers.
            let permit = self.sends.clone().acquire_owned().await.expect("never closed");
            let request = Request::Block(BlockRequest::Put { hash, data: data.clone() });
            let (rpc, tx) = (self.rpc.clone(), tx.clone());
            tokio::spawn(async move {
                let answer = match rpc.call(node, request).await {
                    Ok(Response::Done) => Ok(()),
                    Ok(_) => Err("unexpected answer to a block put".to_string()),
                    Err(e) => Err(e.to_string()),
                };
                drop(permit);
                let _ = tx.send((node, answer)).await;
            });
        }
        if replicas.contains(&self.self_id) {
            let answer = self.write_local_hashed(&hash, &data).await.map_err(|e| e.to_string());
            tx.try_send((self.self_id, answer)).expect("one slot per replica");
        }
        drop(tx);
        let mut errors = Vec::new();
        while let Some((node, answer)) = answers.recv().await {
            match answer {
                Ok(()) => quorums.success(node),
                Err(e) => errors.push(format!("{node}: {e}")),
            }
            if quorums.reached() {
                return Ok(());
            }
        }
        let (quorum, successes) = quorums.worst();
        Err(BlockError::Quorum { quorum, successes, errors })
    }

    /// Reads a block: our own copy first if we are a replica, then each other replica in
    /// layout order, until one returns a copy that verifies. Missing and corrupt copies met
    /// on the way are logged and counted (`stats`) for resync to repair.
    pub async fn get_block(&self, hash: &BlockHash) -> Result<Vec<u8>, BlockError> {
        let mut order = self.replicas(hash);
        order.sort_by_key(|&n| n != self.self_id);
        let mut tried = Vec::new();
        for node in order {
            match self.read_from(node, hash).await {
                Ok(data) => {
                    // Checked once already, by `read_local` or just below in `read_from`.
                    debug_assert!(hash_of(&data) == *hash, "read_from returns verified data only");
                    return Ok(data);
                }
                Err(why) => {
                    tracing::warn!(block = %hash_hex(hash), %node, "block read failed: {why}");
                    tried.push(format!("{node}: {why}"));
                }
            }
        }
        Err(BlockError::NotFound { hash_hex: hash_hex(hash), tried })
    }

    /// One replica's verified copy, or why there is none.
    async fn read_from(&self, node: NodeId, hash: &BlockHash) -> Result<Vec<u8>, String> {
        let copy = if node == self.self_id {
            // `local_get` counts corruption itself.
            self.read_local(hash).await.map_err(|e| e.to_string())?
        } else {
            let request = Request::Block(BlockRequest::Get { hash: *hash });
            match self.rpc.call(node, request).await.map_err(|e| e.to_string())? {
                Response::Block(Some(data)) if hash_of(&data) != *hash => {
                    self.note_corrupt(hash, node);
                    return Err("returned a copy that does not verify".into());
                }
                Response::Block(copy) => copy,
                _ => return Err("unexpected answer to a block get".into()),
            }
        };
        match copy {
            Some(data) => Ok(data),
            None => {
                self.note_missing(hash, node);
                Err(NO_COPY.into())
            }
        }
    }
}
