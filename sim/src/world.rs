//! The simulated world behind the engine's seam: turmoil networking, turmoil's simulated
//! file system, a skewable simulated clock and a trace sink.
//!
//! Crash fencing: turmoil's `crash` drops a host's tasks while its file system still works,
//! so redb's `Drop` would cleanly commit and sync — and "unsynced" data would survive a
//! crash. Each host therefore has a crash epoch; the runner bumps it just before crashing
//! the host, and every disk handle opened in an older epoch fails with EIO from then on,
//! like a machine whose power was cut.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use hangar_engine::seam::{
    BoxFuture, BoxStream, Clock, Disk, DynBackend, Listener, Net, TraceSink,
};
use redb::StorageBackend;
use turmoil::fs::shim::std::fs as simfs;

use crate::trace::Recorder;

/// Simulated wall clock at time zero: 2026-01-01T00:00:00Z.
pub const EPOCH_MS: u64 = 1_767_225_600_000;

/// Per-host crash epochs, shared by the runner and every disk handle.
#[derive(Default)]
pub struct Epochs(Mutex<BTreeMap<String, u64>>);

impl Epochs {
    pub fn current(&self, host: &str) -> u64 {
        *self.0.lock().unwrap().get(host).unwrap_or(&0)
    }
    pub fn bump(&self, host: &str) {
        *self.0.lock().unwrap().entry(host.to_string()).or_insert(0) += 1;
    }
}

fn power_cut() -> io::Error {
    io::Error::other("simulated power cut: handle from before a crash")
}

/// Fails unless this handle's host is still in the epoch it was opened in, and a
/// simulation is running (after the `Sim` is dropped, nothing may touch its disks).
#[derive(Clone)]
struct Fence {
    host: String,
    epoch: u64,
    epochs: Arc<Epochs>,
}

impl Fence {
    fn check(&self) -> io::Result<()> {
        if turmoil::sim_elapsed().is_none() || self.epochs.current(&self.host) != self.epoch {
            return Err(power_cut());
        }
        Ok(())
    }
}

pub struct SimDisk {
    root: String,
    fence: Fence,
}

impl SimDisk {
    pub fn new(host: &str, epochs: Arc<Epochs>) -> Self {
        let epoch = epochs.current(host);
        SimDisk { root: "/data".into(), fence: Fence { host: host.into(), epoch, epochs } }
    }

    fn path(&self, rel: &str) -> String {
        format!("{}/{rel}", self.root)
    }

    fn parent(path: &str) -> &str {
        path.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("/")
    }
}

impl Disk for SimDisk {
    fn write_durable(&self, path: &str, data: &[u8]) -> io::Result<()> {
        self.fence.check()?;
        let full = self.path(path);
        let dir = Self::parent(&full);
        simfs::create_dir_all(dir)?;
        let tmp = format!("{full}.tmp");
        let mut file = simfs::File::create(&tmp)?;
        file.write_all(data)?;
        file.sync_all()?;
        drop(file);
        self.fence.check()?;
        simfs::rename(&tmp, &full)?;
        simfs::sync_dir(dir)
    }

    fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        self.fence.check()?;
        let mut out = Vec::new();
        simfs::File::open(self.path(path))?.read_to_end(&mut out)?;
        Ok(out)
    }

    fn remove(&self, path: &str) -> io::Result<()> {
        self.fence.check()?;
        match simfs::remove_file(self.path(path)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        self.fence.check()?;
        let entries = match simfs::read_dir(self.path(dir)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            other => other?,
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into())
            .collect();
        names.sort();
        Ok(names)
    }

    fn exists(&self, path: &str) -> io::Result<bool> {
        self.fence.check()?;
        Ok(simfs::exists(self.path(path)))
    }

    fn rename_durable(&self, from: &str, to: &str) -> io::Result<()> {
        self.fence.check()?;
        let to = self.path(to);
        simfs::rename(self.path(from), &to)?;
        simfs::sync_dir(Self::parent(&to))
    }

    fn open_backend(&self, path: &str) -> io::Result<DynBackend> {
        self.fence.check()?;
        let full = self.path(path);
        simfs::create_dir_all(Self::parent(&full))?;
        let file = simfs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&full)?;
        // The new file's directory entry must be durable too, or the database can vanish.
        simfs::sync_dir(Self::parent(&full))?;
        Ok(DynBackend(Box::new(SimBackend { file, fence: self.fence.clone() })))
    }
}

/// redb's storage on a simulated file, fenced against crashes.
struct SimBackend {
    file: simfs::File,
    fence: Fence,
}

impl std::fmt::Debug for SimBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SimBackend({}@{})", self.fence.host, self.fence.epoch)
    }
}

impl StorageBackend for SimBackend {
    fn len(&self) -> io::Result<u64> {
        self.fence.check()?;
        Ok(self.file.metadata()?.len())
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.fence.check()?;
        self.file.read_exact_at(out, offset)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.fence.check()?;
        self.file.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.fence.check()?;
        self.file.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.fence.check()?;
        self.file.write_all_at(data, offset)
    }
}

/// turmoil TCP.
pub struct SimNet;

struct SimListener(turmoil::net::TcpListener);

impl Listener for SimListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxStream, String)>> {
        Box::pin(async move {
            let (stream, addr) = self.0.accept().await?;
            Ok((Box::new(stream) as BoxStream, addr.to_string()))
        })
    }
}

impl Net for SimNet {
    fn listen(&self, addr: &str) -> BoxFuture<'_, io::Result<Box<dyn Listener>>> {
        let addr = addr.to_string();
        Box::pin(async move {
            let listener = turmoil::net::TcpListener::bind(addr.as_str()).await?;
            Ok(Box::new(SimListener(listener)) as Box<dyn Listener>)
        })
    }

    fn connect(&self, addr: &str) -> BoxFuture<'_, io::Result<BoxStream>> {
        let addr = addr.to_string();
        Box::pin(async move {
            let stream = turmoil::net::TcpStream::connect(addr.as_str()).await?;
            Ok(Box::new(stream) as BoxStream)
        })
    }
}

/// Simulated wall clock: simulation time since `EPOCH_MS`, plus this node's skew, which the
/// runner may change at any time (a clock-skew fault).
pub struct SimClock {
    pub skew_ms: Arc<AtomicI64>,
}

impl Clock for SimClock {
    fn now_ms(&self) -> u64 {
        let elapsed = turmoil::sim_elapsed().map(|d| d.as_millis() as u64).unwrap_or(0);
        let now = EPOCH_MS + elapsed;
        now.saturating_add_signed(self.skew_ms.load(Ordering::Relaxed))
    }
}

/// Records a node's engine events into the run's canonical trace.
pub struct SimTrace {
    pub node: String,
    pub recorder: Arc<Mutex<Recorder>>,
}

impl TraceSink for SimTrace {
    fn event(&self, kind: &str, payload: &[u8]) {
        self.recorder.lock().unwrap().record(&self.node, kind, payload);
    }
}
