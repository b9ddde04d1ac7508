//! An in-memory world for the engine's own tests: pipes instead of TCP, shared byte
//! vectors instead of files, a fixed clock. (The simulation's turmoil world lives in
//! hangar-sim; the production world in hangar-s3.)

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};

use redb::StorageBackend;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;

use crate::seam::{BoxFuture, BoxStream, Clock, Disk, DynBackend, Listener, Net, NoTrace, Seam};

type Accepts = mpsc::Sender<(BoxStream, String)>;

/// A switchboard of in-memory listeners, shared by every node of a test.
#[derive(Default)]
pub struct Switchboard {
    listeners: Mutex<BTreeMap<String, Accepts>>,
    /// Nodes currently unreachable ("down"): their connections fail, new ones are refused.
    down: Mutex<BTreeSet<String>>,
    /// Connections opened so far.
    pub connects: AtomicU64,
    /// Bumped when a node's process is replaced (`kill`): connections opened by or to an
    /// earlier incarnation break, as a real restart's would.
    incarnations: Mutex<BTreeMap<String, u64>>,
}

impl Switchboard {
    fn is_down(&self, a: &str, b: &str) -> bool {
        let down = self.down.lock().unwrap();
        down.contains(a) || down.contains(b)
    }

    fn incarnation(&self, addr: &str) -> u64 {
        self.incarnations.lock().unwrap().get(addr).copied().unwrap_or(0)
    }

    /// Breaks every connection of node `addr`'s current process (a crash); the next
    /// process to listen under that name starts with none.
    pub fn kill(&self, addr: &str) {
        *self.incarnations.lock().unwrap().entry(addr.to_string()).or_default() += 1;
    }

    /// Takes a node (by name, which is also its address) off the network or back.
    pub fn set_down(&self, addr: &str, down: bool) {
        let mut set = self.down.lock().unwrap();
        if down {
            set.insert(addr.to_string());
        } else {
            set.remove(addr);
        }
    }
}

pub struct MemNet {
    pub board: Arc<Switchboard>,
    pub name: String,
}

struct MemListener(mpsc::Receiver<(BoxStream, String)>);

impl Listener for MemListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxStream, String)>> {
        Box::pin(async move {
            self.0.recv().await.ok_or_else(|| io::Error::other("switchboard closed"))
        })
    }
}

impl Net for MemNet {
    fn listen(&self, addr: &str) -> BoxFuture<'_, io::Result<Box<dyn Listener>>> {
        let (tx, rx) = mpsc::channel(64);
        self.board.listeners.lock().unwrap().insert(addr.to_string(), tx);
        Box::pin(async move { Ok(Box::new(MemListener(rx)) as Box<dyn Listener>) })
    }

    fn connect(&self, addr: &str) -> BoxFuture<'_, io::Result<BoxStream>> {
        let addr = addr.to_string();
        Box::pin(async move {
            if self.board.is_down(&addr, &self.name) {
                return Err(io::Error::new(io::ErrorKind::ConnectionRefused, "node down"));
            }
            self.board.connects.fetch_add(1, Ordering::Relaxed);
            let accepts = self.board.listeners.lock().unwrap().get(&addr).cloned();
            let accepts =
                accepts.ok_or_else(|| io::Error::from(io::ErrorKind::ConnectionRefused))?;
            let (a, b) = tokio::io::duplex(1 << 16);
            let born = (self.board.incarnation(&addr), self.board.incarnation(&self.name));
            let gate = |inner| Gated {
                inner,
                ends: (addr.clone(), self.name.clone()),
                born,
                board: self.board.clone(),
            };
            let (a, b) = (gate(a), gate(b));
            accepts
                .send((Box::new(b), self.name.clone()))
                .await
                .map_err(|_| io::Error::from(io::ErrorKind::ConnectionRefused))?;
            Ok(Box::new(a) as BoxStream)
        })
    }
}

/// A pipe end that breaks while either of its nodes is down.
struct Gated {
    inner: tokio::io::DuplexStream,
    ends: (String, String),
    /// The two ends' incarnations when the connection opened.
    born: (u64, u64),
    board: Arc<Switchboard>,
}

impl Gated {
    fn check(&self) -> io::Result<()> {
        let now = (self.board.incarnation(&self.ends.0), self.board.incarnation(&self.ends.1));
        if self.board.is_down(&self.ends.0, &self.ends.1) || now != self.born {
            return Err(io::Error::from(io::ErrorKind::BrokenPipe));
        }
        Ok(())
    }
}

impl AsyncRead for Gated {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Gated {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A file's bytes, shared so that a database reopened on the same path sees them, and
/// (with `MemDisk::with_crashes`) its bytes as of its last `sync_data`.
#[derive(Debug, Default, Clone)]
struct MemFile {
    data: Arc<RwLock<Vec<u8>>>,
    synced: Option<Arc<RwLock<Vec<u8>>>>,
    syncs: Arc<AtomicU64>,
}

impl MemFile {
    fn new(data: Vec<u8>, keep_synced: bool, syncs: &Arc<AtomicU64>) -> MemFile {
        MemFile {
            synced: keep_synced.then(|| Arc::new(RwLock::new(data.clone()))),
            data: Arc::new(RwLock::new(data)),
            syncs: syncs.clone(),
        }
    }
}

impl StorageBackend for MemFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.data.read().unwrap().len() as u64)
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let data = self.data.read().unwrap();
        let start = offset as usize;
        let src = data.get(start..start + out.len()).ok_or(io::ErrorKind::UnexpectedEof)?;
        out.copy_from_slice(src);
        Ok(())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.data.write().unwrap().resize(len as usize, 0);
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        if let Some(synced) = &self.synced {
            *synced.write().unwrap() = self.data.read().unwrap().clone();
        }
        Ok(())
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut file = self.data.write().unwrap();
        let end = offset as usize + data.len();
        if file.len() < end {
            file.resize(end, 0);
        }
        file[offset as usize..end].copy_from_slice(data);
        Ok(())
    }
}

#[derive(Default)]
pub struct MemDisk {
    files: Mutex<BTreeMap<String, MemFile>>,
    /// Keep each file's synced bytes, for `crash` (a copy per sync: only where asked).
    keep_synced: bool,
    /// `sync_data` calls on every file so far.
    syncs: Arc<AtomicU64>,
}

impl MemDisk {
    /// A disk that can `crash`.
    pub fn with_crashes() -> MemDisk {
        MemDisk { keep_synced: true, ..MemDisk::default() }
    }

    /// How many times a database file was synced (fsync) so far.
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// A power loss: every file goes back to its last synced bytes, and whatever still
    /// holds the old files (the crashed process's database) writes into detached copies.
    pub fn crash(&self) {
        assert!(self.keep_synced, "only a disk made with_crashes can crash");
        let mut files = self.files.lock().unwrap();
        for file in files.values_mut() {
            let synced = file.synced.as_ref().expect("kept").read().unwrap().clone();
            *file = MemFile::new(synced, true, &self.syncs);
        }
    }
}

impl Disk for MemDisk {
    fn write_durable(&self, path: &str, data: &[u8]) -> io::Result<()> {
        let file = MemFile::new(data.to_vec(), self.keep_synced, &self.syncs);
        self.files.lock().unwrap().insert(path.into(), file);
        Ok(())
    }
    fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        let files = self.files.lock().unwrap();
        let file = files.get(path).ok_or(io::ErrorKind::NotFound)?;
        Ok(file.data.read().unwrap().clone())
    }
    fn remove(&self, path: &str) -> io::Result<()> {
        self.files.lock().unwrap().remove(path);
        Ok(())
    }
    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        let prefix = format!("{dir}/");
        let files = self.files.lock().unwrap();
        // Files directly inside, and the first component of deeper paths (directories).
        let names: BTreeSet<String> = files
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .map(|rest| rest.split('/').next().unwrap_or(rest).to_string())
            .collect();
        Ok(names.into_iter().collect())
    }
    fn exists(&self, path: &str) -> io::Result<bool> {
        Ok(self.files.lock().unwrap().contains_key(path))
    }
    fn rename_durable(&self, from: &str, to: &str) -> io::Result<()> {
        let mut files = self.files.lock().unwrap();
        let file = files.remove(from).ok_or(io::ErrorKind::NotFound)?;
        files.insert(to.into(), file);
        Ok(())
    }
    fn open_backend(&self, path: &str) -> io::Result<DynBackend> {
        let mut files = self.files.lock().unwrap();
        let new_file = || MemFile::new(Vec::new(), self.keep_synced, &self.syncs);
        let file = files.entry(path.into()).or_insert_with(new_file).clone();
        Ok(DynBackend::new(file))
    }
}

/// A clock that only moves when told to.
#[derive(Default)]
pub struct ManualClock(pub AtomicU64);

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A seam for one test node named `name` on `board`.
pub fn seam(board: &Arc<Switchboard>, name: &str, seed: u64) -> Seam {
    seam_on(board, name, seed, Arc::new(MemDisk::default()))
}

/// `seam` on a given disk (to count its syncs, crash it, or restart a node on it).
pub fn seam_on(board: &Arc<Switchboard>, name: &str, seed: u64, disk: Arc<MemDisk>) -> Seam {
    Seam {
        clock: Arc::new(ManualClock(AtomicU64::new(1_000))),
        net: Arc::new(MemNet { board: board.clone(), name: name.into() }),
        disk,
        trace: Arc::new(NoTrace),
        rng_seed: seed,
    }
}
