//! Durable storage: whole files written atomically (blocks, small state files) and the redb
//! storage backend under the metadata database.
//!
//! Paths are relative to the node's data root and use `/` separators. Implementations must
//! make `write_durable` atomic and durable: write a temporary file, fsync it, rename it into
//! place, fsync the directory. Only then may the caller count the write as done.

use std::io;

use std::ops::Bound;

use redb::{BackendError, Builder, Database, StorageBackend};

pub trait Disk: Send + Sync {
    /// Atomically replaces `path` with `data`, durable when this returns `Ok`.
    fn write_durable(&self, path: &str, data: &[u8]) -> io::Result<()>;
    /// `write_durable` of the concatenation of `parts`, for callers whose file is a small
    /// header before a large payload (block files): joining them first would copy the
    /// payload once more. Implementations that can write the parts as they are override it.
    fn write_durable_parts(&self, path: &str, parts: &[&[u8]]) -> io::Result<()> {
        self.write_durable(path, &parts.concat())
    }
    /// Reads a whole file; `ErrorKind::NotFound` when absent.
    fn read(&self, path: &str) -> io::Result<Vec<u8>>;
    /// Removes a file; removing an absent file is not an error.
    fn remove(&self, path: &str) -> io::Result<()>;
    /// Names of the entries (files and directories) directly inside `dir`, sorted; an
    /// absent directory lists as empty.
    fn list(&self, dir: &str) -> io::Result<Vec<String>>;
    fn exists(&self, path: &str) -> io::Result<bool>;
    /// Renames a file and makes the rename durable (fsyncs the directory).
    fn rename_durable(&self, from: &str, to: &str) -> io::Result<()>;
    /// Opens (creating if needed) a file as a redb storage backend.
    fn open_backend(&self, path: &str) -> io::Result<DynBackend>;
    /// How much longer than the call itself a block read or write of `bytes` should take:
    /// zero for a real disk, whose calls take their real time. The simulator's calls are
    /// instant, so its slow-disk fault charges simulated time here, and the block store
    /// waits it out after each block I/O (redb's metadata I/O is synchronous and cannot
    /// wait, so a slow disk in simulation slows block traffic only).
    fn service_time(&self, bytes: u64) -> std::time::Duration {
        let _ = bytes;
        std::time::Duration::ZERO
    }
}

/// A type-erased redb backend, so `Disk` stays object-safe. Every method delegates,
/// including the lock methods that keep two processes off one production database —
/// except `sync_data` on a backend made `without_sync`.
#[derive(Debug)]
pub struct DynBackend {
    inner: Box<dyn StorageBackend>,
    sync: bool,
}

impl DynBackend {
    pub fn new(backend: impl StorageBackend) -> DynBackend {
        DynBackend { inner: Box::new(backend), sync: true }
    }

    /// The same backend with `sync_data` left out (`metadata_fsync = false`): commits
    /// reach the kernel's page cache, not necessarily the disk.
    pub fn without_sync(self) -> DynBackend {
        DynBackend { sync: false, ..self }
    }
}

impl StorageBackend for DynBackend {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        if self.sync { self.inner.sync_data() } else { Ok(()) }
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.inner.write(offset, data)
    }
    fn close(&self) -> io::Result<()> {
        self.inner.close()
    }
    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }
    fn try_lock_shared_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(s, e)
    }
    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }
    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }
    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }
    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}

/// The default of `NodeConfig::metadata_cache_bytes`: the most memory redb keeps of the
/// metadata database's pages. redb's own default is 1 GiB per database, which a node with
/// millions of objects would fill, against Hangar's aim of tens of MB per node. The
/// interior pages of the B-trees, which every lookup touches, are a few MB even for
/// millions of entries; leaves are read once per request and gain little from caching
/// (docs/benchmarks.md, "The metadata cache").
pub const DEFAULT_METADATA_CACHE_BYTES: usize = 32 << 20;

/// Opens the redb database at `path`, creating it safely if it does not exist yet, with
/// redb's page cache at most `DEFAULT_METADATA_CACHE_BYTES`.
pub fn open_database(disk: &dyn Disk, path: &str) -> Result<Database, redb::DatabaseError> {
    open_database_with_cache(disk, path, DEFAULT_METADATA_CACHE_BYTES)
}

/// `open_database` with redb's page cache at most `cache_bytes`.
///
/// A crash during first-time creation can leave a file redb refuses to open (no valid
/// header yet), so a new database is created under a temporary name, closed, and only then
/// renamed into place with a directory sync.
pub fn open_database_with_cache(
    disk: &dyn Disk,
    path: &str,
    cache_bytes: usize,
) -> Result<Database, redb::DatabaseError> {
    if !disk.exists(path)? {
        let tmp = format!("{path}.creating");
        disk.remove(&tmp)?;
        let fresh = Builder::new().create_with_backend(disk.open_backend(&tmp)?)?;
        drop(fresh);
        disk.rename_durable(&tmp, path)?;
    }
    Builder::new().set_cache_size(cache_bytes).create_with_backend(disk.open_backend(path)?)
}
