//! `Disk` over `std::fs`: the metadata root (`metadata_dir`) for everything but block files,
//! which live under the data root (`data_dir`) — two directories, so that the metadata can
//! sit on a fast disk and the bulk data on a big one, as docs/configuration.md promises.
//!
//! Durability rules (the seam's contract, made concrete for POSIX file systems):
//! - a file's contents are durable after `fsync` of the file;
//! - a file's *name* (creation, rename) is durable only after `fsync` of its directory, so
//!   every directory this module creates is followed by an fsync of its parent, and every
//!   rename by an fsync of the destination's directory;
//! - removals are not fsynced: a file that reappears after a crash is garbage the engine's
//!   collectors already have to handle, and skipping the sync keeps deletes cheap.
//! - a fsynced block file of `DIRECT_MIN_BYTES` or more is written with `O_DIRECT` where
//!   the file system takes it (`direct_io`): the same bytes, the same syncs, without first
//!   copying the block into the page cache.
//!
//! Paths from the engine are relative, '/'-separated, and must stay under the root; anything
//! else (absolute paths, `..`, empty components) is refused with `InvalidInput`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use hangar_engine::block::BLOCKS_DIR;
use hangar_engine::seam::{Disk, DynBackend};
use redb::backends::FileBackend;

use super::direct_io::{self, Outcome};

/// Fsynced block files at least this large are written with `O_DIRECT` (`direct_io`): the
/// page-cache copy it saves is per byte, and below this the file is too small for it to
/// matter, while a small file read back soon after is better served from the cache.
const DIRECT_MIN_BYTES: usize = 64 * 1024;

/// Marks temporary files of `write_durable`. `list` hides them: a crash between create and
/// rename leaves one behind, and the engine must not mistake it for data.
const TMP_MARKER: &str = ".hangar-tmp-";

/// Production disk: real files under `root`, block files under `data_root`.
pub struct FsDisk {
    root: PathBuf,
    /// Where `blocks/...` paths go; the same as `root` unless set apart.
    data_root: PathBuf,
    /// Distinguishes the temporary files of concurrent writes to the same path.
    tmp_seq: AtomicU64,
    fsync: FsyncPolicy,
    /// Whether large block files still go through `O_DIRECT`: cleared, once and for all,
    /// the first time the data root's file system refuses it.
    direct: AtomicBool,
    /// Tests: treat every `O_DIRECT` write as refused after it has written its file, as a
    /// file system refusing at the first write would leave it.
    #[cfg(test)]
    refuse_direct: bool,
}

/// Which files are fsynced. Both by default; an operator may switch either off
/// (`metadata_fsync`, `data_fsync`) and accept that a machine crash can then lose or tear
/// recently acknowledged writes. A process crash loses nothing either way: every write has
/// reached the kernel before it is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FsyncPolicy {
    pub metadata: bool,
    pub data: bool,
}

impl Default for FsyncPolicy {
    fn default() -> Self {
        FsyncPolicy { metadata: true, data: true }
    }
}

impl FsDisk {
    /// A disk rooted at `root`, block files included. Nothing is touched until the first
    /// write; the root is created (durably) then.
    pub fn new(root: impl Into<PathBuf>) -> FsDisk {
        let root = root.into();
        FsDisk::with_data_root(root.clone(), root)
    }

    /// A disk whose block files (engine paths under `blocks/`) live under `data_root`.
    pub fn with_data_root(root: impl Into<PathBuf>, data_root: impl Into<PathBuf>) -> FsDisk {
        FsDisk {
            root: root.into(),
            data_root: data_root.into(),
            tmp_seq: AtomicU64::new(0),
            fsync: FsyncPolicy::default(),
            direct: AtomicBool::new(true),
            #[cfg(test)]
            refuse_direct: false,
        }
    }

    /// The same disk, never using `O_DIRECT` (tests of the ordinary path).
    #[cfg(test)]
    pub fn without_direct_io(self) -> FsDisk {
        self.direct.store(false, Ordering::Relaxed);
        self
    }

    /// The same disk, on a file system that refuses `O_DIRECT` (see `refuse_direct`).
    #[cfg(test)]
    pub fn refusing_direct_io(self) -> FsDisk {
        FsDisk { refuse_direct: true, ..self }
    }

    /// Whether large block files are still written with `O_DIRECT`.
    #[cfg(test)]
    pub fn uses_direct_io(&self) -> bool {
        self.direct.load(Ordering::Relaxed)
    }

    /// The same disk with `fsync` deciding which files are fsynced.
    pub fn with_fsync(mut self, fsync: FsyncPolicy) -> FsDisk {
        self.fsync = fsync;
        self
    }

    /// Whether files at the engine path `path` are fsynced.
    fn syncs(&self, path: &str) -> bool {
        match is_block_path(path) {
            true => self.fsync.data,
            false => self.fsync.metadata,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The absolute path of an engine path, refusing anything that could leave the root.
    fn resolve(&self, path: &str) -> io::Result<PathBuf> {
        let bad = path.is_empty()
            || path.starts_with('/')
            || path.contains('\\')
            || path.split('/').any(|c| c.is_empty() || c == "." || c == "..");
        if bad {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("disk path {path:?} is not a plain relative path"),
            ));
        }
        Ok(if is_block_path(path) { self.data_root.join(path) } else { self.root.join(path) })
    }

    /// The absolute directory of a listing: "" (or ".") means the root itself.
    fn resolve_dir(&self, dir: &str) -> io::Result<PathBuf> {
        match dir.trim_end_matches('/') {
            "" | "." => Ok(self.root.clone()),
            d => self.resolve(d),
        }
    }
}

/// Whether an engine path names a block file (or a directory of them).
fn is_block_path(path: &str) -> bool {
    path.split('/').next() == Some(BLOCKS_DIR)
}

/// The parent directory of a resolved path (always exists: resolved paths are below root).
fn parent(path: &Path) -> &Path {
    path.parent().expect("a resolved path lies below the root")
}

/// Makes the directory entries inside `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` and its missing ancestors, syncing each new directory's parent so that
/// the new names survive a crash.
fn ensure_dir(dir: &Path, sync: bool) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let up = dir.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(up) = up {
        ensure_dir(up, sync)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        // Another writer created it first; its creator syncs the parent.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) => return Err(e),
    }
    if sync { sync_dir(up.unwrap_or(Path::new("."))) } else { Ok(()) }
}

fn write_and_sync(path: &Path, parts: &[&[u8]], sync: bool) -> io::Result<()> {
    let mut file = File::create(path)?;
    for part in parts {
        file.write_all(part)?;
    }
    if sync { file.sync_all() } else { Ok(()) }
}

impl FsDisk {
    /// Writes the temporary file of `write_durable_parts`: with `O_DIRECT` when it is a
    /// large, fsynced block file and the file system takes it, else through the page cache.
    fn write_temporary(
        &self,
        tmp: &Path,
        parts: &[&[u8]],
        sync: bool,
        block: bool,
    ) -> io::Result<()> {
        let len: usize = parts.iter().map(|part| part.len()).sum();
        if sync && block && len >= DIRECT_MIN_BYTES && self.direct.load(Ordering::Relaxed) {
            let outcome = direct_io::write_direct(tmp, parts)?;
            #[cfg(test)]
            let outcome = if self.refuse_direct { Outcome::Refused } else { outcome };
            match outcome {
                Outcome::Written => return Ok(()),
                Outcome::Refused => {
                    if self.direct.swap(false, Ordering::Relaxed) {
                        tracing::info!(
                            data_dir = %self.data_root.display(),
                            "the file system refuses O_DIRECT; block files go through the page cache"
                        );
                    }
                }
            }
        }
        write_and_sync(tmp, parts, sync)
    }
}

impl Disk for FsDisk {
    fn write_durable(&self, path: &str, data: &[u8]) -> io::Result<()> {
        self.write_durable_parts(path, &[data])
    }

    fn write_durable_parts(&self, path: &str, parts: &[&[u8]]) -> io::Result<()> {
        let full = self.resolve(path)?;
        let sync = self.syncs(path);
        let dir = parent(&full);
        ensure_dir(dir, sync)?;
        let name = full.file_name().expect("resolved paths end in a name");
        let seq = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        let mut tmp_name = name.to_os_string();
        tmp_name.push(format!("{TMP_MARKER}{}-{seq}", std::process::id()));
        let tmp = dir.join(tmp_name);
        let result = self
            .write_temporary(&tmp, parts, sync, is_block_path(path))
            .and_then(|()| fs::rename(&tmp, &full))
            .and_then(|()| if sync { sync_dir(dir) } else { Ok(()) });
        if result.is_err() {
            // Best effort: the error we report is the write's, not the cleanup's.
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        fs::read(self.resolve(path)?)
    }

    fn remove(&self, path: &str) -> io::Result<()> {
        match fs::remove_file(self.resolve(path)?) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        let entries = match fs::read_dir(self.resolve_dir(dir)?) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            other => other?,
        };
        let mut names = Vec::new();
        for entry in entries {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if !name.contains(TMP_MARKER) {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    fn exists(&self, path: &str) -> io::Result<bool> {
        fs::exists(self.resolve(path)?)
    }

    fn rename_durable(&self, from: &str, to: &str) -> io::Result<()> {
        let sync = self.syncs(to);
        let (from, to) = (self.resolve(from)?, self.resolve(to)?);
        fs::rename(&from, &to)?;
        if !sync {
            return Ok(());
        }
        sync_dir(parent(&to))?;
        // Across directories the source's entry must disappear durably too, or a crash
        // could leave the file under both names.
        if parent(&from) != parent(&to) {
            sync_dir(parent(&from))?;
        }
        Ok(())
    }

    fn open_backend(&self, path: &str) -> io::Result<DynBackend> {
        let full = self.resolve(path)?;
        let sync = self.syncs(path);
        ensure_dir(parent(&full), sync)?;
        let file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&full)?;
        let backend = FileBackend::new(file).map_err(io::Error::other)?;
        if !sync {
            return Ok(DynBackend::new(backend).without_sync());
        }
        // If the file was just created, its name must be durable before redb trusts it.
        sync_dir(parent(&full))?;
        Ok(DynBackend::new(backend))
    }
}
