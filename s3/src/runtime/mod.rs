//! The production side of the engine's seam: tokio TCP (`net`), `std::fs` under one data
//! root (`disk`), the OS wall clock and OS randomness.
//!
//! The simulation implements the same traits over turmoil; everything here is the thin,
//! boring version whose only job is to keep the durability and latency promises the seam's
//! documentation makes (fsync before acknowledging, TCP_NODELAY on every socket).

mod direct_io;
mod disk;
mod net;

#[cfg(test)]
mod disk_tests;

pub use disk::{FsDisk, FsyncPolicy};
pub use net::{TokioListener, TokioNet};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use hangar_engine::seam::{Clock, NoTrace, Seam};
use rand_core::{OsRng, RngCore};

/// Wall time from the operating system.
pub struct OsClock;

impl Clock for OsClock {
    fn now_ms(&self) -> u64 {
        // A clock set before 1970 is an operator problem we cannot fix; reporting the epoch
        // keeps timestamps monotone-ish instead of panicking a serving node.
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
    }
}

/// A seed for the node's random streams. In production nothing needs replaying, so every
/// start draws a fresh one from the OS.
pub fn os_seed() -> u64 {
    OsRng.next_u64()
}

/// `n` random bytes from the OS, hex-encoded (2n characters): keys, secrets, node ids.
pub fn os_random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The seam a production node runs on: its metadata under `metadata_root`, its block files
/// under `data_root`.
pub fn production_seam(
    metadata_root: impl Into<PathBuf>,
    data_root: impl Into<PathBuf>,
    fsync: FsyncPolicy,
) -> Seam {
    Seam {
        clock: Arc::new(OsClock),
        net: Arc::new(TokioNet),
        disk: Arc::new(FsDisk::with_data_root(metadata_root, data_root).with_fsync(fsync)),
        trace: Arc::new(NoTrace),
        rng_seed: os_seed(),
    }
}
