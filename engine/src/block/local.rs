//! This node's copies of blocks: one file per block through `seam::Disk`.
//!
//! The layout and durability rules are documented on the module (`block/mod.rs`) and in
//! `docs/architecture.md`; this file is their only implementation.

use std::io;

use super::{BlockError, BlockHash, BlockManager, hash_hex, hash_of};
use crate::rpc::message::BlockRequest;
use crate::rpc::{RemoteError, Response};

/// Directory of every block file, relative to the node's data root.
pub const BLOCKS_DIR: &str = "blocks";
/// First byte of every block file: the format of what follows (v1: the raw payload).
pub const BLOCK_FORMAT_V1: u8 = 1;
/// Bytes before the payload in a v1 block file.
pub const BLOCK_HEADER_BYTES: usize = 1;

/// Where a block lives: `blocks/<hex[0..2]>/<hex[2..4]>/<64 hex>`, lower-case hex of the
/// blake3 hash. Two levels of 256 directories keep every directory small (a node with
/// 2^24 blocks has about 256 files per leaf directory).
pub fn block_path(hash: &BlockHash) -> String {
    let hex = hash_hex(hash);
    format!("{BLOCKS_DIR}/{}/{}/{hex}", &hex[0..2], &hex[2..4])
}

/// The bytes of a block file holding `data`, as the parts the disk writes one after the
/// other: joining them would copy the whole payload once more.
fn file_parts(data: &[u8]) -> [&[u8]; 2] {
    [&[BLOCK_FORMAT_V1], data]
}

/// The payload of a block file if it is a v1 file whose payload hashes to `hash`.
fn decode_file(hash: &BlockHash, mut file: Vec<u8>) -> Option<Vec<u8>> {
    if file.first() != Some(&BLOCK_FORMAT_V1) || hash_of(&file[BLOCK_HEADER_BYTES..]) != *hash {
        return None;
    }
    file.drain(..BLOCK_HEADER_BYTES);
    Some(file)
}

/// Parses 64 lower-case hex digits (a block file's name) back into a hash.
pub fn parse_hash_hex(name: &str) -> Option<BlockHash> {
    let digits = name.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut hash = [0u8; 32];
    for (i, byte) in hash.iter_mut().enumerate() {
        *byte = (nibble(digits[2 * i])? << 4) | nibble(digits[2 * i + 1])?;
    }
    Some(hash)
}

fn io_error(what: &str, path: &str, e: io::Error) -> BlockError {
    BlockError::Io { reason: format!("{what} {path}: {e}") }
}

impl BlockManager {
    /// Stores a block on this node, durably (file and directory entry fsynced) when this
    /// returns `Ok`. Idempotent: a present copy that verifies is left untouched; a corrupt
    /// one is replaced.
    pub fn local_put(&self, hash: &BlockHash, data: &[u8]) -> Result<(), BlockError> {
        let actual = hash_of(data);
        if actual != *hash {
            let (expected_hex, actual_hex) = (hash_hex(hash), hash_hex(&actual));
            return Err(BlockError::HashMismatch { expected_hex, actual_hex });
        }
        self.store_hashed(hash, data)
    }

    /// `local_put` of data this node hashed itself a moment ago (a block it is writing):
    /// hashing a block costs about as much as writing it, so it is not done twice.
    fn store_hashed(&self, hash: &BlockHash, data: &[u8]) -> Result<(), BlockError> {
        debug_assert!(hash_of(data) == *hash, "store_hashed: data does not hash to its name");
        // Noted even when the copy is already here: a new reference to an existing block
        // must keep the collector away from it as much as a fresh write does.
        self.note_put(hash);
        match self.local_get(hash) {
            Ok(Some(_)) => return Ok(()),
            Ok(None) | Err(BlockError::Corrupt { .. }) => {}
            Err(e) => return Err(e),
        }
        let path = block_path(hash);
        let parts = file_parts(data);
        self.seam
            .disk
            .write_durable_parts(&path, &parts)
            .map_err(|e| io_error("writing", &path, e))?;
        self.note_io(0, BLOCK_HEADER_BYTES + data.len());
        Ok(())
    }

    /// This node's copy of a block, verified against its hash; `None` if there is none.
    /// A copy that does not verify is counted and reported as `Corrupt`.
    pub fn local_get(&self, hash: &BlockHash) -> Result<Option<Vec<u8>>, BlockError> {
        let path = block_path(hash);
        let file = match self.seam.disk.read(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("reading", &path, e)),
        };
        let file_bytes = file.len();
        self.note_io(file_bytes, 0);
        match decode_file(hash, file) {
            Some(data) => Ok(Some(data)),
            None => {
                self.note_corrupt(hash, self.self_id);
                tracing::warn!(block = %hash_hex(hash), file_bytes, "local block copy is corrupt");
                Err(BlockError::Corrupt { hash_hex: hash_hex(hash), node: self.self_id })
            }
        }
    }

    /// Whether this node has a file for the block (not verified: scrub does that).
    pub fn local_has(&self, hash: &BlockHash) -> Result<bool, BlockError> {
        let path = block_path(hash);
        self.seam.disk.exists(&path).map_err(|e| io_error("checking", &path, e))
    }

    /// Removes this node's copy; removing an absent block is not an error. The removal is
    /// not fsynced (see the module documentation).
    pub fn local_delete(&self, hash: &BlockHash) -> Result<(), BlockError> {
        let path = block_path(hash);
        self.seam.disk.remove(&path).map_err(|e| io_error("removing", &path, e))
    }

    /// Every block this node has a file for, sorted by hash.
    ///
    /// `Disk::list` promises file names only (the in-memory test disk lists no
    /// subdirectories), so this lists each of the 65 536 leaf directories rather than
    /// walking the tree. Names that are not 64 lower-case hex digits (temporaries of an
    /// interrupted write, strays) are skipped, as are files in the wrong directory.
    pub fn local_list(&self) -> Result<Vec<BlockHash>, BlockError> {
        let list = |dir: &str| self.seam.disk.list(dir).map_err(|e| io_error("listing", dir, e));
        let is_level = |name: &String| name.len() == 2 && u8::from_str_radix(name, 16).is_ok();
        let mut hashes = Vec::new();
        for first in list(BLOCKS_DIR)?.into_iter().filter(is_level) {
            let dir = format!("{BLOCKS_DIR}/{first}");
            for second in list(&dir)?.into_iter().filter(is_level) {
                let leaf = format!("{dir}/{second}");
                let parsed = list(&leaf)?.into_iter().filter_map(|name| parse_hash_hex(&name));
                // Only files in their own directory count: a stray copy elsewhere is not one.
                hashes
                    .extend(parsed.filter(|h| block_path(h) == format!("{leaf}/{}", hash_hex(h))));
            }
        }
        hashes.sort_unstable();
        Ok(hashes)
    }

    /// `local_put`, then the disk's extra service time (see `Disk::service_time`): what
    /// every block write on a request's path calls, so a slow disk slows what it should.
    pub async fn write_local(&self, hash: &BlockHash, data: &[u8]) -> Result<(), BlockError> {
        let stored = self.local_put(hash, data);
        self.wait_service_time(data.len()).await;
        stored
    }

    /// `write_local` of a block this node has just hashed itself (`put_block`'s own copy).
    pub(super) async fn write_local_hashed(
        &self,
        hash: &BlockHash,
        data: &[u8],
    ) -> Result<(), BlockError> {
        let stored = self.store_hashed(hash, data);
        self.wait_service_time(data.len()).await;
        stored
    }

    /// `local_get`, then the disk's extra service time for the bytes read.
    pub async fn read_local(&self, hash: &BlockHash) -> Result<Option<Vec<u8>>, BlockError> {
        let copy = self.local_get(hash);
        let bytes = match &copy {
            Ok(Some(data)) => data.len(),
            _ => 0,
        };
        self.wait_service_time(bytes).await;
        copy
    }

    async fn wait_service_time(&self, bytes: usize) {
        let extra = self.seam.disk.service_time(bytes as u64);
        if !extra.is_zero() {
            tokio::time::sleep(extra).await;
        }
    }

    /// Serves a peer's block request against this node's copies (the RPC handler).
    pub async fn serve(&self, request: BlockRequest) -> Result<Response, RemoteError> {
        let result = match request {
            BlockRequest::Put { hash, data } => {
                self.write_local(&hash, &data).await.map(|()| Response::Done)
            }
            BlockRequest::Get { hash } => self.read_local(&hash).await.map(Response::Block),
        };
        result.map_err(|e| match e {
            BlockError::HashMismatch { .. } => RemoteError::BadEntry { reason: e.to_string() },
            _ => RemoteError::Storage { reason: e.to_string() },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_file_is_its_format_byte_then_its_payload() {
        let data = b"payload".to_vec();
        let hash = hash_of(&data);
        let file = file_parts(&data).concat();
        assert_eq!(file[0], BLOCK_FORMAT_V1);
        assert_eq!(&file[BLOCK_HEADER_BYTES..], data.as_slice());
        assert_eq!(decode_file(&hash, file.clone()), Some(data));
        let mut flipped = file.clone();
        flipped[3] ^= 1;
        assert_eq!(decode_file(&hash, flipped), None, "a flipped payload bit");
        let mut future = file;
        future[0] = 2;
        assert_eq!(decode_file(&hash, future), None, "an unknown format version");
        assert_eq!(decode_file(&hash, Vec::new()), None, "an empty file");
    }

    #[test]
    fn hash_hex_round_trips_and_refuses_other_names() {
        let hash = hash_of(b"x");
        assert_eq!(parse_hash_hex(&hash_hex(&hash)), Some(hash));
        assert_eq!(parse_hash_hex(&hash_hex(&hash).to_uppercase()), None);
        assert_eq!(parse_hash_hex(&format!("{}.tmp", hash_hex(&hash))), None);
        assert_eq!(parse_hash_hex("ab"), None);
    }
}
