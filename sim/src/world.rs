//! The simulated world behind the engine's seam: turmoil networking, turmoil's simulated
//! file system, a skewable simulated clock and a trace sink.
//!
//! Crash fencing: turmoil's `crash` drops a host's tasks while its file system still works,
//! so redb's `Drop` would cleanly commit and sync — and "unsynced" data would survive a
//! crash. Each host therefore has a crash epoch; the runner bumps it just before crashing
//! the host, and every disk handle opened in an older epoch fails with EIO from then on,
//! like a machine whose power was cut.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hangar_engine::seam::{
    BoxFuture, BoxStream, Clock, Disk, DynBackend, Listener, Net, TraceSink,
};
use redb::StorageBackend;
use turmoil::fs::shim::std::fs as simfs;

use crate::trace::Recorder;

/// Simulated wall clock at time zero: 2026-01-01T00:00:00Z.
pub const EPOCH_MS: u64 = 1_767_225_600_000;

/// Per-host crash epochs and disk faults, shared by the runner and every disk handle (one
/// lock for both: every disk call checks them).
#[derive(Default)]
pub struct Epochs {
    /// Host -> its crash epoch and disk fault.
    hosts: Mutex<BTreeMap<String, (u64, Option<DiskFault>)>>,
    power_cuts: Mutex<PowerCuts>,
}

/// A disk fault in force on a host until the runner clears it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskFault {
    /// Every call fails with EIO (a dying disk, a yanked cable).
    Eio,
    /// Calls that need space (writes, creates, renames, syncs, growing a file) fail with
    /// ENOSPC; reads, listings and removes still work.
    Full,
    /// Calls succeed, but each block read or write takes `latency_ms` plus its bytes at
    /// `mib_per_s` (0: no bandwidth limit) of simulated time (`Disk::service_time`).
    Slow { latency_ms: u64, mib_per_s: u64 },
}

impl DiskFault {
    /// The simulated time a block I/O of `bytes` takes on a disk with this fault.
    fn service_time(&self, bytes: u64) -> Duration {
        match *self {
            DiskFault::Slow { latency_ms, mib_per_s } => {
                let transfer_us = match mib_per_s {
                    0 => 0,
                    rate => bytes.saturating_mul(1_000_000) / (rate << 20),
                };
                Duration::from_millis(latency_ms) + Duration::from_micros(transfer_us)
            }
            DiskFault::Eio | DiskFault::Full => Duration::ZERO,
        }
    }
}

/// Power cuts armed to fall in the middle of a host's disk writes (`crash_mid_write`).
#[derive(Default)]
struct PowerCuts {
    /// Host -> (disk mutations it has made since arming, the one the power goes out on).
    armed: BTreeMap<String, (u64, u64)>,
    /// Hosts whose power went out since the runner last asked, with the mutation it fell on.
    fallen: Vec<(String, u64)>,
}

impl Epochs {
    pub fn current(&self, host: &str) -> u64 {
        self.state(host).0
    }
    pub fn bump(&self, host: &str) {
        self.hosts.lock().unwrap().entry(host.to_string()).or_default().0 += 1;
    }
    /// Sets (or with `None` clears) the disk fault of `host`.
    pub fn set_fault(&self, host: &str, fault: Option<DiskFault>) {
        self.hosts.lock().unwrap().entry(host.to_string()).or_default().1 = fault;
    }
    fn state(&self, host: &str) -> (u64, Option<DiskFault>) {
        self.hosts.lock().unwrap().get(host).copied().unwrap_or_default()
    }

    /// Arms a power cut on `host`: its next `nth - 1` disk mutations (writes, syncs,
    /// creates, renames) go through — unsynced, as ever until a sync — and the `nth` fails
    /// and fences every handle of the boot, as a crash does. The runner then crashes the
    /// host (`take_power_cuts`), which keeps the unsynced writes torn or loses them.
    pub fn arm_power_cut(&self, host: &str, nth: u64) {
        self.power_cuts.lock().unwrap().armed.insert(host.to_string(), (0, nth.max(1)));
    }

    /// Disarms `host`'s power cut; true if one was armed and had not fallen yet.
    pub fn disarm_power_cut(&self, host: &str) -> bool {
        self.power_cuts.lock().unwrap().armed.remove(host).is_some()
    }

    /// The hosts whose armed power cut fell since the last call, with the mutation it fell on.
    pub fn take_power_cuts(&self) -> Vec<(String, u64)> {
        std::mem::take(&mut self.power_cuts.lock().unwrap().fallen)
    }

    /// Counts one disk mutation of `host`; true if the power goes out on it (the epoch is
    /// then bumped, so this boot's handles fail from now on).
    fn mutation_cuts_power(&self, host: &str) -> bool {
        let mut cuts = self.power_cuts.lock().unwrap();
        let Some((made, nth)) = cuts.armed.get_mut(host) else { return false };
        *made += 1;
        if made < nth {
            return false;
        }
        let nth = *nth;
        cuts.armed.remove(host);
        cuts.fallen.push((host.to_string(), nth));
        drop(cuts);
        self.bump(host);
        true
    }
}

fn power_cut() -> io::Error {
    io::Error::other("simulated power cut: handle from before a crash")
}

/// What a disk call needs, for the faults: `Fill` may need space.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Use,
    Fill,
}

/// Fails unless this handle's host is still in the epoch it was opened in, and a
/// simulation is running (after the `Sim` is dropped, nothing may touch its disks); then
/// fails as the host's disk fault says (EIO = 5, ENOSPC = 28).
#[derive(Clone)]
struct Fence {
    host: String,
    epoch: u64,
    epochs: Arc<Epochs>,
}

impl Fence {
    fn check(&self) -> io::Result<()> {
        self.check_for(Access::Use)
    }

    fn check_for(&self, access: Access) -> io::Result<()> {
        let (epoch, fault) = self.epochs.state(&self.host);
        if turmoil::sim_elapsed().is_none() || epoch != self.epoch {
            return Err(power_cut());
        }
        match (fault, access) {
            (Some(DiskFault::Eio), _) => Err(io::Error::from_raw_os_error(5)),
            (Some(DiskFault::Full), Access::Fill) => Err(io::Error::from_raw_os_error(28)),
            (_, Access::Fill) if self.epochs.mutation_cuts_power(&self.host) => Err(power_cut()),
            _ => Ok(()),
        }
    }
}

/// Where every node keeps its data on its simulated file system.
pub const DATA_ROOT: &str = "/data";

pub struct SimDisk {
    root: String,
    fence: Fence,
    /// Names this handle's temporary files: two writes of one path (the same block stored
    /// by two concurrent puts) must not share a temporary.
    temporaries: AtomicU64,
    listings: Listings,
}

/// Directory listings this handle has read, kept in step with every change it makes.
///
/// Why: turmoil's `read_dir` scans every file and directory of the host (O(entries) per
/// call), and the block store lists every block directory on each collector and scrub
/// pass, which made listing a third of a run's time. Sound because a handle is its host's
/// only writer under the data root for its boot: a crash fences it, the next boot gets a
/// new handle (an empty cache), and `hostfs` faults rename nothing or run while the node
/// is down. A change that fails half-way forgets its directory (read again next time).
#[derive(Default)]
struct Listings(Mutex<BTreeMap<String, BTreeSet<String>>>);

impl Listings {
    fn get(&self, dir: &str) -> Option<Vec<String>> {
        self.0.lock().unwrap().get(dir).map(|names| names.iter().cloned().collect())
    }
    fn fill(&self, dir: &str, names: &[String]) {
        self.0.lock().unwrap().insert(dir.to_string(), names.iter().cloned().collect());
    }
    fn split(path: &str) -> (&str, &str) {
        (SimDisk::parent(path), path.rsplit_once('/').map_or(path, |(_, name)| name))
    }
    fn added(&self, path: &str) {
        let (dir, name) = Self::split(path);
        if let Some(names) = self.0.lock().unwrap().get_mut(dir) {
            names.insert(name.to_string());
        }
    }
    fn removed(&self, path: &str) {
        let (dir, name) = Self::split(path);
        if let Some(names) = self.0.lock().unwrap().get_mut(dir) {
            names.remove(name);
        }
    }
    fn forget(&self, dir: &str) {
        self.0.lock().unwrap().remove(dir);
    }
}

impl SimDisk {
    pub fn new(host: &str, epochs: Arc<Epochs>) -> Self {
        let epoch = epochs.current(host);
        SimDisk {
            root: DATA_ROOT.into(),
            fence: Fence { host: host.into(), epoch, epochs },
            temporaries: AtomicU64::new(0),
            listings: Listings::default(),
        }
    }

    fn path(&self, rel: &str) -> String {
        format!("{}/{rel}", self.root)
    }

    fn parent(path: &str) -> &str {
        match path.rsplit_once('/') {
            Some(("", _)) | None => "/",
            Some((dir, _)) => dir,
        }
    }

    /// Creates `dir` and its missing ancestors, each made durable: a new directory's entry
    /// lives in its parent, so the parent is synced once the directory exists. (Syncing
    /// only the leaf would leave a crash-surviving file under directories that vanish.)
    fn create_dirs_durable(&self, dir: &str) -> io::Result<()> {
        let mut missing = Vec::new();
        let mut at = dir;
        while at != "/" && !simfs::exists(at) {
            missing.push(at);
            at = Self::parent(at);
        }
        for new in missing.into_iter().rev() {
            let parent = Self::parent(new);
            if let Err(e) = simfs::create_dir(new).and_then(|()| simfs::sync_dir(parent)) {
                self.listings.forget(parent);
                return Err(e);
            }
            self.listings.added(new);
        }
        Ok(())
    }

    /// Writes `data` to a fresh temporary next to `full`, durably, then renames it over
    /// `full` and syncs the directory.
    fn write_then_rename(&self, full: &str, data: &[u8]) -> io::Result<()> {
        let dir = Self::parent(full);
        // Unique per handle, and per boot (a crash may leave a temporary behind).
        let n = self.temporaries.fetch_add(1, Ordering::Relaxed);
        let tmp = format!("{full}.tmp.{}.{n}", self.fence.epoch);
        let mut file = simfs::File::create(&tmp)?;
        file.write_all(data)?;
        file.sync_all()?;
        drop(file);
        self.fence.check_for(Access::Fill)?;
        simfs::rename(&tmp, full)?;
        simfs::sync_dir(dir)
    }
}

impl Disk for SimDisk {
    fn write_durable(&self, path: &str, data: &[u8]) -> io::Result<()> {
        self.fence.check_for(Access::Fill)?;
        let full = self.path(path);
        self.create_dirs_durable(Self::parent(&full))?;
        match self.write_then_rename(&full, data) {
            Ok(()) => {
                self.listings.added(&full);
                Ok(())
            }
            Err(e) => {
                self.listings.forget(Self::parent(&full));
                Err(e)
            }
        }
    }

    fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        self.fence.check()?;
        let mut out = Vec::new();
        simfs::File::open(self.path(path))?.read_to_end(&mut out)?;
        Ok(out)
    }

    fn remove(&self, path: &str) -> io::Result<()> {
        self.fence.check()?;
        let full = self.path(path);
        let result = match simfs::remove_file(&full) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        };
        match &result {
            Ok(()) => self.listings.removed(&full),
            Err(_) => self.listings.forget(Self::parent(&full)),
        }
        result
    }

    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        self.fence.check()?;
        let full = self.path(dir);
        if let Some(names) = self.listings.get(&full) {
            return Ok(names);
        }
        let entries = match simfs::read_dir(&full) {
            // Not cached: the directory may appear later through `create_dirs_durable`,
            // which only adds to listings already cached.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            other => other?,
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into())
            .collect();
        names.sort();
        self.listings.fill(&full, &names);
        Ok(names)
    }

    fn exists(&self, path: &str) -> io::Result<bool> {
        self.fence.check()?;
        Ok(simfs::exists(self.path(path)))
    }

    fn rename_durable(&self, from: &str, to: &str) -> io::Result<()> {
        self.fence.check_for(Access::Fill)?;
        let (from, to) = (self.path(from), self.path(to));
        let result = simfs::rename(&from, &to).and_then(|()| simfs::sync_dir(Self::parent(&to)));
        match &result {
            Ok(()) => {
                self.listings.removed(&from);
                self.listings.added(&to);
            }
            Err(_) => {
                self.listings.forget(Self::parent(&from));
                self.listings.forget(Self::parent(&to));
            }
        }
        result
    }

    fn open_backend(&self, path: &str) -> io::Result<DynBackend> {
        self.fence.check_for(Access::Fill)?;
        let full = self.path(path);
        let dir = Self::parent(&full);
        self.create_dirs_durable(dir)?;
        // Whatever happens next, the directory may have a new entry: read it again.
        self.listings.forget(dir);
        let file = simfs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&full)?;
        // The new file's directory entry must be durable too, or the database can vanish.
        simfs::sync_dir(dir)?;
        Ok(DynBackend::new(SimBackend { file, fence: self.fence.clone() }))
    }

    fn service_time(&self, bytes: u64) -> Duration {
        let (_, fault) = self.fence.epochs.state(&self.fence.host);
        fault.map_or(Duration::ZERO, |f| f.service_time(bytes))
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
        self.fence.check_for(Access::Fill)?;
        self.file.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.fence.check_for(Access::Fill)?;
        self.file.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.fence.check_for(Access::Fill)?;
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

/// Simulated wall clock: simulation time since `EPOCH_MS`, plus this node's skew and the
/// offset its drift has built up, both of which the runner may change at any time (the
/// clock-skew and clock-drift faults).
pub struct SimClock {
    pub skew_ms: Arc<AtomicI64>,
    pub drift: Arc<Drift>,
}

impl Clock for SimClock {
    fn now_ms(&self) -> u64 {
        let elapsed = turmoil::sim_elapsed().map(|d| d.as_millis() as u64).unwrap_or(0);
        let now = EPOCH_MS + elapsed;
        let offset = self.skew_ms.load(Ordering::Relaxed) + self.drift.offset_ms(elapsed);
        now.saturating_add_signed(offset)
    }
}

/// A clock running at a rate off real time: `ppm` parts per million fast (negative: slow)
/// since `since_ms` of simulated time, on top of the offset earlier rates built up. A rate
/// change keeps the clock continuous; a rate above -1 000 000 ppm keeps it monotonic.
/// Written by the runner between steps only, so readers never see a half-made change.
#[derive(Default)]
pub struct Drift {
    ppm: AtomicI64,
    since_ms: AtomicU64,
    built_up_ms: AtomicI64,
}

impl Drift {
    /// The drift's offset at `elapsed_ms` of simulated time.
    pub fn offset_ms(&self, elapsed_ms: u64) -> i64 {
        let ppm = self.ppm.load(Ordering::Relaxed);
        let built_up = self.built_up_ms.load(Ordering::Relaxed);
        if ppm == 0 {
            return built_up;
        }
        let running = elapsed_ms.saturating_sub(self.since_ms.load(Ordering::Relaxed)) as i64;
        built_up + running * ppm / 1_000_000
    }

    /// From `elapsed_ms` on, run at `ppm`.
    pub fn set_rate(&self, elapsed_ms: u64, ppm: i64) {
        let built_up = self.offset_ms(elapsed_ms);
        self.built_up_ms.store(built_up, Ordering::Relaxed);
        self.since_ms.store(elapsed_ms, Ordering::Relaxed);
        self.ppm.store(ppm, Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;

    #[test]
    fn an_armed_power_cut_falls_on_its_nth_mutation_and_fences_the_boot() {
        let epochs = Epochs::default();
        epochs.arm_power_cut("n1", 3);
        let before = epochs.current("n1");
        assert!(!epochs.mutation_cuts_power("n2"), "only the armed host counts");
        assert!(!epochs.mutation_cuts_power("n1"));
        assert!(!epochs.mutation_cuts_power("n1"));
        assert_eq!(epochs.current("n1"), before, "the power is still on");
        assert!(epochs.mutation_cuts_power("n1"), "the third mutation cuts the power");
        assert_eq!(epochs.current("n1"), before + 1, "every handle of the boot is fenced");
        assert_eq!(epochs.take_power_cuts(), vec![("n1".to_string(), 3)]);
        assert!(epochs.take_power_cuts().is_empty(), "each cut is reported once");
        assert!(!epochs.mutation_cuts_power("n1"), "a fallen cut is disarmed");
        epochs.arm_power_cut("n1", 5);
        assert!(epochs.disarm_power_cut("n1"));
        assert!(!epochs.disarm_power_cut("n1"));
    }

    #[test]
    fn a_slow_disk_charges_latency_plus_transfer_and_a_repaired_one_nothing() {
        let epochs = Arc::new(Epochs::default());
        let disk = SimDisk::new("n1", epochs.clone());
        assert_eq!(disk.service_time(1 << 20), Duration::ZERO);
        epochs.set_fault("n1", Some(DiskFault::Slow { latency_ms: 80, mib_per_s: 20 }));
        assert_eq!(disk.service_time(1 << 20), Duration::from_millis(80 + 50));
        assert_eq!(disk.service_time(0), Duration::from_millis(80));
        epochs.set_fault("n1", Some(DiskFault::Slow { latency_ms: 5, mib_per_s: 0 }));
        assert_eq!(disk.service_time(1 << 30), Duration::from_millis(5), "0 MiB/s: no limit");
        epochs.set_fault("n1", Some(DiskFault::Eio));
        assert_eq!(disk.service_time(1 << 20), Duration::ZERO, "a failing disk fails fast");
        epochs.set_fault("n1", None);
        assert_eq!(disk.service_time(1 << 20), Duration::ZERO);
    }

    /// Regression: `write_durable` synced the block's own directory but not the parents it
    /// had just created (`blocks/ab`, `blocks/ab/cd`), so after a power cut the block file
    /// survived under a directory tree that did not: listing `blocks` no longer found it.
    /// It also used one fixed `<path>.tmp` for every write of a path.
    #[test]
    fn a_durable_write_survives_a_crash_with_the_directories_it_created() {
        let epochs = Arc::new(Epochs::default());
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let mut sim = turmoil::Builder::new().build();
        let boots = Arc::new(AtomicU64::new(0));
        let (host_epochs, host_seen) = (epochs.clone(), seen.clone());
        sim.host("n1", move || {
            let boot = boots.fetch_add(1, Ordering::Relaxed);
            let disk = SimDisk::new("n1", host_epochs.clone());
            let seen = host_seen.clone();
            async move {
                if boot == 0 {
                    disk.write_durable("blocks/ab/cd/block", b"one")?;
                    disk.write_durable("blocks/ab/cd/block", b"two")?;
                } else {
                    let mut seen = seen.lock().unwrap();
                    seen.extend(disk.list("blocks")?);
                    seen.extend(disk.list("blocks/ab/cd")?);
                    seen.push(String::from_utf8(disk.read("blocks/ab/cd/block")?).unwrap());
                }
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(())
            }
        });
        for _ in 0..3 {
            sim.step().unwrap();
        }
        epochs.bump("n1");
        sim.crash("n1");
        sim.bounce("n1");
        for _ in 0..3 {
            sim.step().unwrap();
        }
        assert_eq!(*seen.lock().unwrap(), ["ab", "block", "two"]);
    }

    #[test]
    fn a_drifting_clock_runs_at_its_rate_and_stays_continuous_when_it_changes() {
        let drift = Drift::default();
        assert_eq!(drift.offset_ms(5_000), 0);
        drift.set_rate(1_000, 100_000); // 10% fast from 1 s
        assert_eq!(drift.offset_ms(1_000), 0);
        assert_eq!(drift.offset_ms(11_000), 1_000);
        drift.set_rate(11_000, -500_000); // then half speed
        assert_eq!(drift.offset_ms(11_000), 1_000, "no jump at a rate change");
        assert_eq!(drift.offset_ms(13_000), 0);
        assert_eq!(drift.offset_ms(21_000), -4_000);
        // Half speed still moves forward: elapsed + offset grows.
        assert!(21_000 + drift.offset_ms(21_000) > 13_000 + drift.offset_ms(13_000));
        drift.set_rate(21_000, 0);
        assert_eq!(drift.offset_ms(60_000), -4_000, "a stopped drift keeps its offset");
    }

    #[test]
    fn disk_faults_fail_the_calls_they_name_until_repaired() {
        let epochs = Arc::new(Epochs::default());
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let mut sim = turmoil::Builder::new().build();
        let (host_epochs, host_seen) = (epochs.clone(), seen.clone());
        sim.host("n1", move || {
            let disk = SimDisk::new("n1", host_epochs.clone());
            let (epochs, seen) = (host_epochs.clone(), host_seen.clone());
            async move {
                let outcome = |r: io::Result<()>| match r {
                    Ok(()) => "ok".to_string(),
                    Err(e) => e.raw_os_error().map_or(e.to_string(), |c| format!("os {c}")),
                };
                disk.write_durable("a", b"one")?;
                let mut log = Vec::new();
                epochs.set_fault("n1", Some(DiskFault::Full));
                log.push(outcome(disk.write_durable("b", b"two")));
                log.push(outcome(disk.read("a").map(|_| ())));
                log.push(outcome(disk.remove("a")));
                epochs.set_fault("n1", Some(DiskFault::Eio));
                log.push(outcome(disk.read("a").map(|_| ())));
                log.push(outcome(disk.list("").map(|_| ())));
                epochs.set_fault("n1", None);
                log.push(outcome(disk.write_durable("b", b"two")));
                seen.lock().unwrap().extend(log);
                Ok(())
            }
        });
        for _ in 0..3 {
            sim.step().unwrap();
        }
        let want = ["os 28", "ok", "ok", "os 5", "os 5", "ok"];
        assert_eq!(*seen.lock().unwrap(), want);
    }
}
