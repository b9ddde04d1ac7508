//! Faults and inspections that act on a node's simulated disk directly, from the runner:
//! `corrupt_block`, `disk_loss` and the final disk scan of the `block_refs` checker.
//!
//! Why `FsHandle`: turmoil's fs calls act on "the current host's" file system, and the
//! runner works between simulation steps, where no host is current. Two ways in: a fault
//! agent task on each node host taking commands over a channel, or turmoil's `FsHandle`,
//! captured on the host (every boot of a node calls `HostDisks::capture` first thing) and
//! entered from the runner's thread for one synchronous call. We use the handle: a fault
//! then acts at the exact simulated instant the timeline names (not whenever an agent
//! task is next polled), works on a node that is down (a disk can rot or be replaced while
//! its machine is off), adds no task with events and scheduling of its own to every run,
//! and the final scan sees every node's disk at one instant. While a handle is entered,
//! every fs call on this thread goes to that host's disk, so `with_disk` drops the guard
//! before it returns: it must never be held across `Sim::step`. (The handle gives the
//! shim an OS-seeded rng, consulted only for probabilistic fs faults, which runs leave off,
//! so runs stay deterministic.)

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Mutex;

use hangar_engine::block::{BLOCK_HEADER_BYTES, BLOCKS_DIR, BlockHash, block_path, parse_hash_hex};
use turmoil::fs::FsHandle;
use turmoil::fs::shim::std::fs as simfs;

use crate::check::block_refs::NodeBlocks;
use crate::world::DATA_ROOT;

/// Every node host's file system, captured at its boot.
#[derive(Default)]
pub struct HostDisks(Mutex<BTreeMap<String, FsHandle>>);

impl HostDisks {
    /// Remembers the current host's file system as `host`'s. Call on the host.
    pub fn capture(&self, host: &str) {
        self.0.lock().unwrap().insert(host.to_string(), FsHandle::current());
    }

    /// Runs `f` on `host`'s file system; `None` if the host never booted. Call between
    /// simulation steps only.
    pub fn with_disk<R>(&self, host: &str, f: impl FnOnce() -> R) -> Option<R> {
        let disks = self.0.lock().unwrap();
        let handle = disks.get(host)?;
        let _entered = handle.enter();
        Some(f())
    }
}

fn is_dir(path: &str) -> bool {
    simfs::metadata(path).is_ok_and(|m| m.is_dir())
}

/// Names in `dir`, sorted; empty if it does not exist.
fn names(dir: &str) -> Vec<String> {
    let Ok(entries) = simfs::read_dir(dir) else { return Vec::new() };
    let mut names: Vec<String> =
        entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into()).collect();
    names.sort();
    names
}

/// The block files under the data root: each well-named file in its own directory, with
/// whether its content verifies (format byte, then a payload hashing to the name). Other
/// files (temporaries of interrupted writes, strays) are counted.
pub fn scan_blocks() -> NodeBlocks {
    let mut out = NodeBlocks::default();
    let root = format!("{DATA_ROOT}/{BLOCKS_DIR}");
    for first in names(&root) {
        for second in names(&format!("{root}/{first}")) {
            let leaf = format!("{root}/{first}/{second}");
            for name in names(&leaf) {
                let path = format!("{leaf}/{name}");
                match parse_hash_hex(&name) {
                    Some(hash) if format!("{DATA_ROOT}/{}", block_path(&hash)) == path => {
                        let verifies = simfs::read(&path).is_ok_and(|file| verifies(&hash, &file));
                        out.files.insert(hash, verifies);
                    }
                    _ => out.strays += 1,
                }
            }
        }
    }
    out
}

/// Whether a block file's bytes are a v1 block whose payload hashes to `hash`.
pub fn verifies(hash: &BlockHash, file: &[u8]) -> bool {
    file.first() == Some(&hangar_engine::block::BLOCK_FORMAT_V1)
        && blake3::hash(&file[BLOCK_HEADER_BYTES..]).as_bytes() == hash
}

/// Overwrites one byte of the payload of one block file, chosen by `choice` among the
/// node's block files in hash order, with a different value, durably (bit rot survives a
/// reboot). Returns what it did, for the trace.
pub fn corrupt_block(choice: u64) -> io::Result<String> {
    let hashes: Vec<BlockHash> = scan_blocks().files.into_keys().collect();
    if hashes.is_empty() {
        return Ok("no block files: nothing corrupted".into());
    }
    let hash = hashes[(choice % hashes.len() as u64) as usize];
    let path = format!("{DATA_ROOT}/{}", block_path(&hash));
    let file = simfs::read(&path)?;
    let payload_bytes = file.len().saturating_sub(BLOCK_HEADER_BYTES) as u64;
    let handle = simfs::OpenOptions::new().write(true).open(&path)?;
    let detail = if payload_bytes == 0 {
        // Nothing to flip: a trailing byte makes the payload hash differ.
        handle.write_all_at(&[0], file.len() as u64)?;
        format!("appended a byte to block {}", hangar_engine::block::hash_hex(&hash))
    } else {
        let offset = BLOCK_HEADER_BYTES as u64 + (choice / hashes.len() as u64) % payload_bytes;
        let old = file[offset as usize];
        handle.write_all_at(&[!old], offset)?;
        format!("flipped byte {offset} of block {}", hangar_engine::block::hash_hex(&hash))
    };
    handle.sync_all()?;
    assert!(
        !verifies(&hash, &simfs::read(&path)?),
        "corrupt_block left a copy that still verifies"
    );
    Ok(detail)
}

/// Deletes everything under the data root, durably (a replaced, blank disk). Returns the
/// number of files removed.
pub fn wipe_data_root() -> io::Result<usize> {
    fn wipe_dir(dir: &str) -> io::Result<usize> {
        let mut removed = 0;
        for name in names(dir) {
            let path = format!("{dir}/{name}");
            if is_dir(&path) {
                removed += wipe_dir(&path)?;
                simfs::remove_dir(&path)?;
            } else {
                simfs::remove_file(&path)?;
                removed += 1;
            }
        }
        simfs::sync_dir(dir)?;
        Ok(removed)
    }
    if !is_dir(DATA_ROOT) {
        return Ok(0);
    }
    wipe_dir(DATA_ROOT)
}
