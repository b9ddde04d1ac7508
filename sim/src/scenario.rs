//! Scenario files: the cluster, its network, the workload, a timeline of faults and the
//! checkers, in TOML. A bad file is refused with the file, the line and the field.
//! The reference of every key is docs/simulation.md.

use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

pub use crate::faults::{FAULTS, Fault, FaultSpec};
pub use crate::random_faults::RandomFaults;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub cluster: Cluster,
    #[serde(default)]
    pub network: Network,
    #[serde(default)]
    pub disk: DiskProfile,
    pub workload: Workload,
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
    /// Episodes of survivable faults drawn from the seed, on top of `faults`.
    #[serde(default)]
    pub random_faults: Option<RandomFaults>,
    pub check: Check,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    pub nodes: usize,
    /// Nodes started without a role and with only n1 as bootstrap peer, named after the
    /// members (n<nodes+1>, ...): `layout_change` faults add them to the layout.
    #[serde(default)]
    pub spare_nodes: usize,
    /// Test-only weakening: reads move to a new layout version before its replicas synced.
    #[serde(default)]
    pub unsafe_early_read_switch: bool,
    /// Test-only weakening: a node restarted on a blank disk serves table reads at once
    /// instead of refusing them until its first full sync.
    #[serde(default)]
    pub unsafe_blank_node_serves_reads: bool,
    /// Test-only weakening: a quorum read that finds replicas disagreeing answers at once and
    /// repairs them in the background, instead of waiting until its value is on a write
    /// quorum (read-after-write still holds; linearizability does not).
    #[serde(default)]
    pub unsafe_background_read_repair: bool,
    /// Test-only weakening: a restarted acceptor forgets its promise ceiling, so the
    /// promises it made without an fsync and lost in a crash are forgotten.
    #[serde(default)]
    pub unsafe_forget_promise_ceiling: bool,
    pub zones: usize,
    pub replication_factor: usize,
    #[serde(default = "default_mode")]
    pub consistency_mode: Spanned<String>,
    /// Test-only override that may weaken the system (to show the checkers catch it).
    pub read_quorum: Option<usize>,
    pub write_quorum: Option<usize>,
    #[serde(default = "default_sync_interval")]
    pub sync_interval_ms: u64,
    #[serde(default = "default_rpc_timeout")]
    pub rpc_timeout_ms: u64,
    /// Block GC: time between passes, how long a block stays unreferenced before it is
    /// deleted, and the age at which an upload still `Uploading` is aborted.
    #[serde(default = "default_gc_interval")]
    pub gc_interval_ms: Spanned<u64>,
    #[serde(default = "default_gc_delay")]
    pub gc_delay_ms: Spanned<u64>,
    #[serde(default = "default_upload_timeout")]
    pub upload_timeout_ms: Spanned<u64>,
    /// Block repair: time between resync passes, and between scrubs (a scrub runs after
    /// the resync pass that reaches it, so its period is rounded up to resync passes).
    #[serde(default = "default_resync_interval")]
    pub resync_interval_ms: Spanned<u64>,
    #[serde(default = "default_scrub_interval")]
    pub scrub_interval_ms: Spanned<u64>,
    /// Table tombstone collection: time between passes, and the age a tombstone must reach
    /// (default: never within a run, like production's hours).
    #[serde(default = "default_tombstone_timing")]
    pub tombstone_interval_ms: Spanned<u64>,
    #[serde(default = "default_tombstone_timing")]
    pub tombstone_delay_ms: Spanned<u64>,
    /// Test-only weakening: tombstones are collected even when a replica did not take them.
    #[serde(default)]
    pub unsafe_tombstone_gc_skips_unreachable: bool,
    /// How old an acceptor row's promise must be before the row may be deleted (default
    /// 2 s, so that every run deletes rows; production: one minute).
    #[serde(default = "default_acceptor_row_grace")]
    pub acceptor_row_grace_ms: Spanned<u64>,
    /// Test-only weakening: a node restarted after a crash does not serve S3 again (a
    /// service that does not come back after a reboot); its engine node runs as ever.
    #[serde(default)]
    pub unsafe_s3_not_restarted: bool,
    /// Test-only weakening: acceptor rows are deleted without asking the key's other
    /// acceptors.
    #[serde(default)]
    pub unsafe_acceptor_rows_skip_peers: bool,
    /// Block lists longer than this go to the `version` table (default 0 in the simulator,
    /// so that every body in blocks does; production: 64).
    #[serde(default)]
    pub list_inline_max_blocks: usize,
}

/// The longest timing a scenario may set (about a year): "never" within any run.
pub const TIMING_MS_MAX: u64 = 365 * 24 * 3_600_000;

impl Cluster {
    /// Resync can run during the quiet period before the final reads: the final reads then
    /// require every replica's own copy of each block it should hold.
    pub fn resync_enabled(&self, quiesce_ms: u64) -> bool {
        *self.resync_interval_ms.get_ref() < quiesce_ms
    }

    fn validate_timings(&self) -> Result<(), (Range<usize>, &'static str, String)> {
        let timings = [
            ("cluster.gc_interval_ms", &self.gc_interval_ms, 1),
            ("cluster.gc_delay_ms", &self.gc_delay_ms, 0),
            ("cluster.upload_timeout_ms", &self.upload_timeout_ms, 1),
            ("cluster.resync_interval_ms", &self.resync_interval_ms, 1),
            ("cluster.scrub_interval_ms", &self.scrub_interval_ms, 1),
            ("cluster.tombstone_interval_ms", &self.tombstone_interval_ms, 1),
            ("cluster.tombstone_delay_ms", &self.tombstone_delay_ms, 0),
            ("cluster.acceptor_row_grace_ms", &self.acceptor_row_grace_ms, 0),
        ];
        for (field, value, min) in timings {
            if !(min..=TIMING_MS_MAX).contains(value.get_ref()) {
                let msg = format!("{} is not in {min}..={TIMING_MS_MAX}", value.get_ref());
                return Err((value.span(), field, msg));
            }
        }
        Ok(())
    }
}

fn default_mode() -> Spanned<String> {
    Spanned::new(0..0, "consistent".into())
}
fn default_sync_interval() -> u64 {
    1_000
}
fn default_rpc_timeout() -> u64 {
    1_000
}
// Node timings that suit a run of about 30 s (production defaults are minutes to days).
fn default_tombstone_timing() -> Spanned<u64> {
    Spanned::new(0..0, TIMING_MS_MAX)
}
fn default_acceptor_row_grace() -> Spanned<u64> {
    Spanned::new(0..0, 2_000)
}
fn default_gc_interval() -> Spanned<u64> {
    Spanned::new(0..0, 1_000)
}
fn default_gc_delay() -> Spanned<u64> {
    Spanned::new(0..0, 3_000)
}
fn default_upload_timeout() -> Spanned<u64> {
    Spanned::new(0..0, 10_000)
}
fn default_resync_interval() -> Spanned<u64> {
    Spanned::new(0..0, 1_000)
}
fn default_scrub_interval() -> Spanned<u64> {
    Spanned::new(0..0, 5_000)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Simulated time per step: the resolution of every timer and message delivery.
    #[serde(default = "default_tick")]
    pub tick_ms: u64,
    #[serde(default = "default_min_latency")]
    pub min_latency_ms: u64,
    #[serde(default = "default_max_latency")]
    pub max_latency_ms: u64,
    /// `[min, max]` one-way latency between two nodes of one zone, and of two zones
    /// (links to clients keep `min/max_latency_ms`).
    pub intra_zone_latency_ms: Option<Spanned<Vec<u64>>>,
    pub inter_zone_latency_ms: Option<Spanned<Vec<u64>>>,
}

/// The largest latency a profile may set: ten seconds one way.
pub const LATENCY_MS_MAX: u64 = 10_000;

impl Network {
    /// The `[min, max]` latency of the link between a node of `zone_a` and one of `zone_b`,
    /// if the profile sets one.
    pub fn node_link_latency_ms(&self, zone_a: &str, zone_b: &str) -> Option<(u64, u64)> {
        let range = if zone_a == zone_b {
            &self.intra_zone_latency_ms
        } else {
            &self.inter_zone_latency_ms
        };
        range.as_ref().map(|r| (r.get_ref()[0], r.get_ref()[1]))
    }

    fn validate(&self) -> Result<(), (Range<usize>, &'static str, String)> {
        let nowhere = 0..0;
        if !(1..=100).contains(&self.tick_ms) {
            return Err((nowhere, "network.tick_ms", "must be in 1..=100".into()));
        }
        if self.min_latency_ms > self.max_latency_ms {
            return Err((nowhere, "network.min_latency_ms", "exceeds max_latency_ms".into()));
        }
        let profiles = [
            ("network.intra_zone_latency_ms", &self.intra_zone_latency_ms),
            ("network.inter_zone_latency_ms", &self.inter_zone_latency_ms),
        ];
        for (field, range) in profiles {
            let Some(range) = range else { continue };
            match range.get_ref().as_slice() {
                [min, max] if min <= max && *max <= LATENCY_MS_MAX => {}
                _ => {
                    let msg = format!("must be [min, max] with min <= max <= {LATENCY_MS_MAX}");
                    return Err((range.span(), field, msg));
                }
            }
        }
        Ok(())
    }
}

impl Default for Network {
    fn default() -> Self {
        Network {
            tick_ms: default_tick(),
            min_latency_ms: default_min_latency(),
            max_latency_ms: default_max_latency(),
            intra_zone_latency_ms: None,
            inter_zone_latency_ms: None,
        }
    }
}

fn default_tick() -> u64 {
    1
}
fn default_min_latency() -> u64 {
    1
}
fn default_max_latency() -> u64 {
    10
}

/// How every node's simulated disk behaves when its node crashes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskProfile {
    /// Torn writes: a write not yet synced when its node crashes survives as its first k
    /// blocks of this many bytes (k drawn from the run's seed, from none to all of them), as
    /// a disk that writes sectors in order but loses power half-way does. 0: unsynced
    /// writes are lost whole (every write is atomic).
    #[serde(default = "default_torn_write_bytes")]
    pub torn_write_bytes: Spanned<u64>,
}

/// The torn-write block sizes a profile may set: a sector (512 B) to a large page (64 KiB).
pub const TORN_WRITE_BYTES: std::ops::RangeInclusive<u64> = 512..=65_536;

impl DiskProfile {
    fn validate(&self) -> Result<(), (Range<usize>, &'static str, String)> {
        let bytes = *self.torn_write_bytes.get_ref();
        if bytes != 0 && !(TORN_WRITE_BYTES.contains(&bytes) && bytes.is_power_of_two()) {
            let msg = format!(
                "{bytes} is neither 0 nor a power of two in {}..={}",
                TORN_WRITE_BYTES.start(),
                TORN_WRITE_BYTES.end()
            );
            return Err((self.torn_write_bytes.span(), "disk.torn_write_bytes", msg));
        }
        Ok(())
    }
}

impl Default for DiskProfile {
    fn default() -> Self {
        DiskProfile { torn_write_bytes: default_torn_write_bytes() }
    }
}

fn default_torn_write_bytes() -> Spanned<u64> {
    Spanned::new(0..0, 0)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    #[serde(default = "default_workload_kind")]
    pub kind: Spanned<String>,
    pub clients: usize,
    /// register and s3 workloads: the keys `k0..k(keys-1)`; the set workload adds fresh
    /// keys and takes none.
    #[serde(default)]
    pub keys: usize,
    pub duration_ms: u64,
    #[serde(default = "default_think")]
    pub max_think_ms: u64,
    #[serde(default = "default_write_fraction")]
    pub write_fraction: f64,
    #[serde(default)]
    pub delete_fraction: f64,
    /// s3 workload only: the fraction of PUTs that carry a condition — `If-Match` with the
    /// ETag the client last saw for the key, or `If-None-Match: *` when it saw none.
    #[serde(default = "default_fraction_zero")]
    pub conditional_fraction: Spanned<f64>,
    /// s3 workload only: the fraction of PUTs done as a multipart upload of 2–3 parts
    /// (`s3multipart`).
    #[serde(default = "default_fraction_zero")]
    pub multipart_fraction: Spanned<f64>,
    /// s3 workload only: the fraction of multipart uploads abandoned after their parts,
    /// half aborted, half left open for the block collector's `upload_timeout_ms`.
    #[serde(default = "default_fraction_zero")]
    pub multipart_abort_fraction: Spanned<f64>,
    #[serde(default = "default_client_timeout")]
    pub client_timeout_ms: u64,
    /// s3 workload only: a PUT's body size is uniform in `min..=max` bytes.
    #[serde(default = "default_min_object")]
    pub min_object_bytes: Spanned<u64>,
    #[serde(default = "default_max_object")]
    pub max_object_bytes: Spanned<u64>,
    /// set workload only: the `max-keys` of each ListObjectsV2 page a listing asks for.
    #[serde(default = "default_list_max_keys")]
    pub list_max_keys: Spanned<usize>,
}

/// The workload kinds: `register` (node RPC), `s3` (the register operations through the
/// S3 frontend) and `set` (adds and listings through the S3 frontend, `setworkload`).
pub const WORKLOADS: [&str; 3] = ["register", "s3", "set"];
/// The largest page S3 lists (`max-keys` above it is cut to it).
pub const LIST_MAX_KEYS_MAX: usize = 1000;
/// The most clients a workload may run (they share one simulated host).
pub const CLIENTS_MAX: usize = 256;
/// The largest s3 workload object: the workload's clients hold each body in memory.
pub const OBJECT_BYTES_MAX: u64 = 64 * 1024 * 1024;

impl Workload {
    pub fn is_s3(&self) -> bool {
        self.kind.get_ref() == "s3"
    }

    pub fn is_set(&self) -> bool {
        self.kind.get_ref() == "set"
    }

    /// Whether the clients talk to the S3 frontend (and the data is in the `object` table).
    pub fn through_s3(&self) -> bool {
        self.is_s3() || self.is_set()
    }

    fn validate(&self) -> Result<(), (Range<usize>, &'static str, String)> {
        if !WORKLOADS.contains(&self.kind.get_ref().as_str()) {
            let msg = format!(
                "`{}` is not a known workload ({})",
                self.kind.get_ref(),
                WORKLOADS.join(", ")
            );
            return Err((self.kind.span(), "workload.kind", msg));
        }
        self.validate_keys()?;
        self.validate_mix()?;
        self.validate_s3_fractions()?;
        let (min, max) = (&self.min_object_bytes, &self.max_object_bytes);
        if !self.is_s3() {
            for (field, size) in
                [("workload.min_object_bytes", min), ("workload.max_object_bytes", max)]
            {
                if size.span() != (0..0) {
                    let msg = "only the s3 workload sizes its objects".to_string();
                    return Err((size.span(), field, msg));
                }
            }
            return Ok(());
        }
        if *max.get_ref() > OBJECT_BYTES_MAX {
            let msg = format!("{} is above {OBJECT_BYTES_MAX}", max.get_ref());
            return Err((max.span(), "workload.max_object_bytes", msg));
        }
        if min.get_ref() > max.get_ref() {
            let msg = format!("{} is above max_object_bytes ({})", min.get_ref(), max.get_ref());
            return Err((min.span(), "workload.min_object_bytes", msg));
        }
        Ok(())
    }

    /// The s3 workload's own fractions: each in 0..=1, and set only for the s3 workload
    /// (elsewhere it would silently do nothing); aborting uploads needs uploads.
    fn validate_s3_fractions(&self) -> Result<(), (Range<usize>, &'static str, String)> {
        let fractions = [
            (
                "workload.conditional_fraction",
                &self.conditional_fraction,
                "sends conditional writes",
            ),
            ("workload.multipart_fraction", &self.multipart_fraction, "does multipart uploads"),
            (
                "workload.multipart_abort_fraction",
                &self.multipart_abort_fraction,
                "abandons uploads",
            ),
        ];
        for (field, value, what) in fractions {
            if !(0.0..=1.0).contains(value.get_ref()) {
                return Err((value.span(), field, format!("{} is not in 0..=1", value.get_ref())));
            }
            if !self.is_s3() && value.span() != (0..0) {
                return Err((value.span(), field, format!("only the s3 workload {what}")));
            }
        }
        let abort = &self.multipart_abort_fraction;
        if *abort.get_ref() > 0.0 && *self.multipart_fraction.get_ref() == 0.0 {
            let msg = "abandons multipart uploads, but multipart_fraction is 0".to_string();
            return Err((abort.span(), "workload.multipart_abort_fraction", msg));
        }
        Ok(())
    }

    /// Clients, duration and the operation mix: a run with no client or no time checks
    /// nothing, and fractions outside 0..=1 would silently mean "always" or "never".
    fn validate_mix(&self) -> Result<(), (Range<usize>, &'static str, String)> {
        let nowhere = 0..0;
        if !(1..=CLIENTS_MAX).contains(&self.clients) {
            let msg = format!("{} is not in 1..={CLIENTS_MAX}", self.clients);
            return Err((nowhere, "workload.clients", msg));
        }
        if !(1..=TIMING_MS_MAX).contains(&self.duration_ms) {
            let msg = format!("{} is not in 1..={TIMING_MS_MAX}", self.duration_ms);
            return Err((nowhere, "workload.duration_ms", msg));
        }
        for (field, value) in [
            ("workload.write_fraction", self.write_fraction),
            ("workload.delete_fraction", self.delete_fraction),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err((nowhere, field, format!("{value} is not in 0..=1")));
            }
        }
        if self.delete_fraction > self.write_fraction {
            let msg = format!(
                "{} is above write_fraction ({}): deletes are the part of the writes that \
                 delete",
                self.delete_fraction, self.write_fraction
            );
            return Err((nowhere, "workload.delete_fraction", msg));
        }
        Ok(())
    }

    /// `keys` and `list_max_keys` against the kind: the set workload has no fixed keys
    /// and pages its listings; the others have keys and no listings.
    fn validate_keys(&self) -> Result<(), (Range<usize>, &'static str, String)> {
        let nowhere = 0..0;
        let page = &self.list_max_keys;
        if !self.is_set() {
            if page.span() != nowhere {
                let msg = "only the set workload lists".to_string();
                return Err((page.span(), "workload.list_max_keys", msg));
            }
            if self.keys == 0 {
                return Err((nowhere, "workload.keys", "must be at least 1".into()));
            }
            return Ok(());
        }
        if self.keys != 0 {
            let msg = "the set workload adds fresh keys: leave `keys` out".to_string();
            return Err((nowhere, "workload.keys", msg));
        }
        if self.delete_fraction != 0.0 {
            let msg = "the set workload never deletes: leave `delete_fraction` out".to_string();
            return Err((nowhere, "workload.delete_fraction", msg));
        }
        if !(1..=LIST_MAX_KEYS_MAX).contains(page.get_ref()) {
            let msg = format!("{} is not in 1..={LIST_MAX_KEYS_MAX}", page.get_ref());
            return Err((page.span(), "workload.list_max_keys", msg));
        }
        Ok(())
    }
}

fn default_workload_kind() -> Spanned<String> {
    Spanned::new(0..0, "register".into())
}
fn default_think() -> u64 {
    50
}
fn default_write_fraction() -> f64 {
    0.5
}
fn default_fraction_zero() -> Spanned<f64> {
    Spanned::new(0..0, 0.0)
}
fn default_client_timeout() -> u64 {
    3_000
}
fn default_min_object() -> Spanned<u64> {
    Spanned::new(0..0, 4 * 1024)
}
fn default_max_object() -> Spanned<u64> {
    Spanned::new(0..0, 1024 * 1024)
}
// Small enough that a run's listings take several pages.
fn default_list_max_keys() -> Spanned<usize> {
    Spanned::new(0..0, 100)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    pub quiesce_ms: u64,
    pub checkers: Spanned<Vec<String>>,
    /// A scenario nobody can survive (faults beyond what the replication can absorb) names
    /// the checker that must report it: the run passes only if that checker fails.
    #[serde(default)]
    pub expect_failure: Option<Spanned<String>>,
}

pub const CHECKERS: [&str; 6] =
    ["read_after_write", "no_lost_writes", "convergence", "block_refs", "linearizable", "set"];
/// The checkers that judge the set workload (the register checkers have no history there).
const SET_CHECKERS: [&str; 2] = ["set", "convergence"];
/// A scenario file that cannot be used, with where and why.
#[derive(Debug)]
pub struct ScenarioError {
    pub file: String,
    pub line: usize,
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: field `{}`: {}", self.file, self.line, self.field, self.message)
    }
}

fn line_of(src: &str, offset: usize) -> usize {
    src[..offset.min(src.len())].matches('\n').count() + 1
}

/// The node names of a cluster of `n` nodes: n1, n2, ...
pub fn node_names(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("n{i}")).collect()
}

impl Scenario {
    pub fn load(path: &str) -> Result<Scenario, ScenarioError> {
        let src = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            file: path.into(),
            line: 0,
            field: "-".into(),
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(path, &src)
    }

    pub fn parse(file: &str, src: &str) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario = toml::from_str(src).map_err(|e| {
            let line = e.span().map(|s| line_of(src, s.start)).unwrap_or(0);
            let message = e.message().to_string();
            let field = field_from_message(&message, e.span(), src);
            ScenarioError { file: file.into(), line, field, message }
        })?;
        scenario.validate().map_err(|(span, field, message)| ScenarioError {
            file: file.into(),
            // Fields read without their span are found by name.
            line: match span == (0..0) {
                true => line_of_field(src, field),
                false => line_of(src, span.start),
            },
            field: field.into(),
            message,
        })?;
        Ok(scenario)
    }

    fn validate(&self) -> Result<(), (Range<usize>, &'static str, String)> {
        let c = &self.cluster;
        let nowhere = 0..0;
        if c.nodes == 0 || c.nodes > 32 {
            return Err((nowhere, "cluster.nodes", format!("{} is not in 1..=32", c.nodes)));
        }
        if c.nodes + c.spare_nodes > 32 {
            let msg = format!("nodes + spare_nodes = {} is above 32", c.nodes + c.spare_nodes);
            return Err((nowhere, "cluster.spare_nodes", msg));
        }
        if !(1..=5).contains(&c.replication_factor) || c.replication_factor > c.nodes {
            let msg = format!(
                "{} must be in 1..=5 and at most nodes ({})",
                c.replication_factor, c.nodes
            );
            return Err((nowhere, "cluster.replication_factor", msg));
        }
        if c.zones == 0 || c.zones > c.nodes {
            return Err((nowhere, "cluster.zones", format!("{} must be in 1..=nodes", c.zones)));
        }
        let mode = &c.consistency_mode;
        if hangar_engine::table::ConsistencyMode::parse(mode.get_ref()).is_none() {
            let msg = format!("`{}` is not one of consistent, degraded, dangerous", mode.get_ref());
            return Err((mode.span(), "cluster.consistency_mode", msg));
        }
        for q in [c.read_quorum, c.write_quorum].into_iter().flatten() {
            if q == 0 || q > c.replication_factor {
                let msg = format!("quorum {q} must be in 1..=replication_factor");
                return Err((nowhere, "cluster.read_quorum/write_quorum", msg));
            }
        }
        self.network.validate()?;
        self.disk.validate()?;
        c.validate_timings()?;
        self.workload.validate()?;
        if self.check.checkers.get_ref().is_empty() {
            let msg = "lists no checker: the run would check nothing".to_string();
            return Err((self.check.checkers.span(), "check.checkers", msg));
        }
        for name in self.check.checkers.get_ref() {
            if !CHECKERS.contains(&name.as_str()) {
                let msg = format!("unknown checker `{name}` (known: {})", CHECKERS.join(", "));
                return Err((self.check.checkers.span(), "check.checkers", msg));
            }
            if self.workload.is_set() && !SET_CHECKERS.contains(&name.as_str()) {
                let msg = format!("the set workload is judged by {} only", SET_CHECKERS.join(", "));
                return Err((self.check.checkers.span(), "check.checkers", msg));
            }
            if name == "set" && !self.workload.is_set() {
                let msg = "set needs the set workload".to_string();
                return Err((self.check.checkers.span(), "check.checkers", msg));
            }
            if name == "linearizable" && self.workload.is_s3() {
                let msg = "linearizable needs the register workload".to_string();
                return Err((self.check.checkers.span(), "check.checkers", msg));
            }
            if name == "block_refs" && !self.workload.is_s3() {
                let msg = "block_refs needs the s3 workload (only it stores blocks)".to_string();
                return Err((self.check.checkers.span(), "check.checkers", msg));
            }
        }
        if let Some(expected) = &self.check.expect_failure
            && !self.check.checkers.get_ref().contains(expected.get_ref())
        {
            let msg = format!("`{}` is not one of this scenario's checkers", expected.get_ref());
            return Err((expected.span(), "check.expect_failure", msg));
        }
        for f in &self.faults {
            self.fault_of(f)?;
        }
        if let Some(random) = &self.random_faults {
            random.validate()?;
        }
        Ok(())
    }

    /// Members and spares: n1..n<nodes + spare_nodes>.
    pub fn all_node_names(&self) -> Vec<String> {
        node_names(self.cluster.nodes + self.cluster.spare_nodes)
    }

    /// The timeline, validated and sorted by time (stable for equal times).
    pub fn timeline(&self) -> Vec<(u64, Fault)> {
        self.timeline_with(Vec::new())
    }

    /// The timeline with `random` episodes (`RandomFaults::draw`) merged in, sorted by
    /// time; at equal times the file's own faults come first.
    pub fn timeline_with(&self, random: Vec<(u64, Fault)>) -> Vec<(u64, Fault)> {
        let mut t: Vec<(u64, Fault)> = self
            .faults
            .iter()
            .map(|f| (f.at_ms, self.fault_of(f).expect("validated at load")))
            .chain(random)
            .collect();
        t.sort_by_key(|(at, _)| *at);
        t
    }
}

/// The line of `table.key` (`cluster.read_quorum/write_quorum`: either key) in a
/// scenario's source: the key's own line, else its table's header if the key is left to its
/// default, else 0. Single tables only (`[[faults]]` entries keep their spans).
fn line_of_field(src: &str, field: &str) -> usize {
    let Some((table, keys)) = field.split_once('.') else { return 0 };
    let keys: Vec<&str> = keys.split('/').collect();
    let mut current = "";
    let mut header = 0;
    for (i, line) in src.lines().enumerate() {
        let line = line.trim();
        if line.starts_with('[') {
            current = line.trim_matches(['[', ']']).trim();
            if current == table {
                header = i + 1;
            }
            continue;
        }
        let key = line.split('=').next().unwrap_or("").trim();
        if current == table && line.contains('=') && keys.contains(&key) {
            return i + 1;
        }
    }
    header
}

/// Names the field a TOML/serde error is about: the key in the message if it names one,
/// else the key at the start of the error's line.
fn field_from_message(message: &str, span: Option<Range<usize>>, src: &str) -> String {
    // Only these messages quote a key; the others quote the bad value or character.
    let names_a_key = ["unknown field", "missing field", "duplicate key", "duplicate field"]
        .iter()
        .any(|m| message.starts_with(m));
    if names_a_key
        && let Some(start) = message.find('`')
        && let Some(len) = message[start + 1..].find('`')
    {
        return message[start + 1..start + 1 + len].to_string();
    }
    let Some(span) = span else { return "-".into() };
    let line_start = src[..span.start.min(src.len())].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line = &src[line_start..];
    line.split(['=', '\n']).next().unwrap_or("-").trim().trim_matches(['[', ']']).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "t"
[cluster]
nodes = 3
zones = 3
replication_factor = 3
[workload]
clients = 2
keys = 4
duration_ms = 1000
[[faults]]
at_ms = 10
kind = "crash"
node = "n2"
[check]
quiesce_ms = 1000
checkers = ["read_after_write"]
"#;

    #[test]
    fn good_file_parses() {
        let s = Scenario::parse("good.toml", GOOD).unwrap();
        assert_eq!(s.timeline(), vec![(10, Fault::Crash { node: "n2".into() })]);
    }

    #[test]
    fn unknown_node_is_reported_with_line_and_field() {
        let bad = GOOD.replace("node = \"n2\"", "node = \"n9\"");
        let err = Scenario::parse("bad.toml", &bad).unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (14, "faults.node"), "{err}");
        assert!(err.message.contains("n9"), "{err}");
    }

    #[test]
    fn unknown_key_is_reported_with_line_and_field() {
        let bad = GOOD.replace("keys = 4", "keys = 4\nkeyz = 5");
        let err = Scenario::parse("bad.toml", &bad).unwrap_err();
        assert_eq!(err.line, 10, "{err}");
        assert_eq!(err.field, "keyz", "{err}");
    }

    #[test]
    fn s3_workload_parses_with_default_and_explicit_sizes() {
        let s3 = GOOD.replace("clients = 2", "kind = \"s3\"\nclients = 2");
        let s = Scenario::parse("s3.toml", &s3).unwrap();
        assert!(s.workload.is_s3());
        assert_eq!(*s.workload.min_object_bytes.get_ref(), 4096);
        assert_eq!(*s.workload.max_object_bytes.get_ref(), 1 << 20);
        let sized = s3.replace("keys = 4", "keys = 4\nmin_object_bytes = 0\nmax_object_bytes = 10");
        let s = Scenario::parse("s3.toml", &sized).unwrap();
        assert_eq!(
            (*s.workload.min_object_bytes.get_ref(), *s.workload.max_object_bytes.get_ref()),
            (0, 10)
        );
    }

    #[test]
    fn bad_workload_kinds_and_sizes_are_reported_with_line_and_field() {
        let unknown = GOOD.replace("clients = 2", "kind = \"s4\"\nclients = 2");
        let err = Scenario::parse("bad.toml", &unknown).unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (8, "workload.kind"), "{err}");
        assert!(err.message.contains("register, s3"), "{err}");

        let s3 = GOOD.replace("clients = 2", "kind = \"s3\"\nclients = 2");
        let inverted =
            s3.replace("keys = 4", "keys = 4\nmin_object_bytes = 11\nmax_object_bytes = 10");
        let err = Scenario::parse("bad.toml", &inverted).unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (11, "workload.min_object_bytes"), "{err}");
        let huge = s3.replace("keys = 4", "keys = 4\nmax_object_bytes = 1000000000");
        let err = Scenario::parse("bad.toml", &huge).unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (11, "workload.max_object_bytes"), "{err}");

        let register = GOOD.replace("keys = 4", "keys = 4\nmax_object_bytes = 10");
        let err = Scenario::parse("bad.toml", &register).unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (10, "workload.max_object_bytes"), "{err}");
    }

    #[test]
    fn multipart_fractions_default_to_zero_and_are_s3_only() {
        let s3 = GOOD.replace("clients = 2", "kind = \"s3\"\nclients = 2");
        let s = Scenario::parse("s3.toml", &s3).unwrap();
        let w = &s.workload;
        assert_eq!(
            (*w.multipart_fraction.get_ref(), *w.multipart_abort_fraction.get_ref()),
            (0.0, 0.0)
        );
        let both = "keys = 4\nmultipart_fraction = 0.3\nmultipart_abort_fraction = 0.2";
        let s = Scenario::parse("s3.toml", &s3.replace("keys = 4", both)).unwrap();
        let w = &s.workload;
        assert_eq!(
            (*w.multipart_fraction.get_ref(), *w.multipart_abort_fraction.get_ref()),
            (0.3, 0.2)
        );

        for (text, line, field) in [
            ("multipart_fraction = 1.5", 11, "workload.multipart_fraction"),
            ("multipart_fraction = -0.1", 11, "workload.multipart_fraction"),
            (
                "multipart_fraction = 0.3\nmultipart_abort_fraction = 2.0",
                12,
                "workload.multipart_abort_fraction",
            ),
            ("multipart_abort_fraction = 0.2", 11, "workload.multipart_abort_fraction"),
        ] {
            let bad = s3.replace("keys = 4", &format!("keys = 4\n{text}"));
            let err = Scenario::parse("bad.toml", &bad).unwrap_err();
            assert_eq!((err.line, err.field.as_str()), (line, field), "{text}: {err}");
        }
        let register = GOOD.replace("keys = 4", "keys = 4\nmultipart_fraction = 0.3");
        let err = Scenario::parse("bad.toml", &register).unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (10, "workload.multipart_fraction"), "{err}");
        assert!(err.message.contains("only the s3 workload"), "{err}");
    }

    #[test]
    fn set_workload_parses_without_keys_and_pages_its_listings() {
        let set = GOOD
            .replace("clients = 2\nkeys = 4", "kind = \"set\"\nclients = 2")
            .replace("[\"read_after_write\"]", "[\"set\", \"convergence\"]");
        let s = Scenario::parse("set.toml", &set).unwrap();
        assert!(s.workload.is_set() && s.workload.through_s3() && !s.workload.is_s3());
        assert_eq!((s.workload.keys, *s.workload.list_max_keys.get_ref()), (0, 100));
        let paged = set.replace("clients = 2", "clients = 2\nlist_max_keys = 7");
        let s = Scenario::parse("set.toml", &paged).unwrap();
        assert_eq!(*s.workload.list_max_keys.get_ref(), 7);

        for (bad, line, field) in [
            ("list_max_keys = 0", 10, "workload.list_max_keys"),
            ("list_max_keys = 1001", 10, "workload.list_max_keys"),
            ("keys = 4", 10, "workload.keys"),
            ("delete_fraction = 0.1", 10, "workload.delete_fraction"),
            ("max_object_bytes = 10", 10, "workload.max_object_bytes"),
        ] {
            let text = set.replace("clients = 2", &format!("clients = 2\n{bad}"));
            let err = Scenario::parse("bad.toml", &text).unwrap_err();
            assert_eq!((err.line, err.field.as_str()), (line, field), "{bad}: {err}");
        }
        let s3 = GOOD.replace("clients = 2", "kind = \"s3\"\nclients = 2\nlist_max_keys = 5");
        let err = Scenario::parse("bad.toml", &s3).unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (10, "workload.list_max_keys"), "{err}");
        let keyless = GOOD.replace("keys = 4\n", "");
        let err = Scenario::parse("bad.toml", &keyless).unwrap_err();
        assert_eq!(err.field, "workload.keys", "{err}");
    }

    #[test]
    fn the_set_checker_and_the_set_workload_go_together() {
        let set_checked = GOOD.replace("[\"read_after_write\"]", "[\"set\"]");
        let err = Scenario::parse("bad.toml", &set_checked).unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (17, "check.checkers"), "{err}");
        assert!(err.message.contains("set needs the set workload"), "{err}");
        let set = GOOD.replace("clients = 2\nkeys = 4", "kind = \"set\"\nclients = 2");
        let err = Scenario::parse("bad.toml", &set).unwrap_err();
        assert!(err.message.contains("judged by set, convergence only"), "{err}");
    }

    #[test]
    fn node_timings_have_defaults_and_are_validated_with_line_and_field() {
        let s = Scenario::parse("good.toml", GOOD).unwrap();
        let c = &s.cluster;
        let timings = [
            *c.gc_interval_ms.get_ref(),
            *c.gc_delay_ms.get_ref(),
            *c.upload_timeout_ms.get_ref(),
            *c.resync_interval_ms.get_ref(),
            *c.scrub_interval_ms.get_ref(),
        ];
        assert_eq!(timings, [1_000, 3_000, 10_000, 1_000, 5_000]);
        assert!(c.resync_enabled(s.check.quiesce_ms + 1));
        let set = GOOD.replace(
            "replication_factor = 3",
            "replication_factor = 3\ngc_delay_ms = 0\nresync_interval_ms = 1000000000",
        );
        let s = Scenario::parse("set.toml", &set).unwrap();
        assert_eq!(*s.cluster.gc_delay_ms.get_ref(), 0);
        assert!(!s.cluster.resync_enabled(s.check.quiesce_ms), "a resync after the run");
        for (key, line) in [("gc_interval_ms = 0", 7), ("scrub_interval_ms = 100000000000000", 7)] {
            let bad =
                GOOD.replace("replication_factor = 3", &format!("replication_factor = 3\n{key}"));
            let err = Scenario::parse("bad.toml", &bad).unwrap_err();
            let field = format!("cluster.{}", key.split(' ').next().unwrap());
            assert_eq!((err.line, err.field.as_str()), (line, field.as_str()), "{err}");
        }
    }

    #[test]
    fn disk_faults_parse_and_block_refs_needs_the_s3_workload() {
        let faults = GOOD.replace("kind = \"crash\"", "kind = \"corrupt_block\"");
        let s = Scenario::parse("f.toml", &faults).unwrap();
        assert_eq!(s.timeline(), vec![(10, Fault::CorruptBlock { node: "n2".into() })]);
        let faults = GOOD.replace("kind = \"crash\"", "kind = \"disk_loss\"");
        let s = Scenario::parse("f.toml", &faults).unwrap();
        assert_eq!(s.timeline(), vec![(10, Fault::DiskLoss { node: "n2".into() })]);
        let nodeless = faults.replace("node = \"n2\"\n", "");
        let err = Scenario::parse("bad.toml", &nodeless).unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (13, "faults.node"), "{err}");

        let checked = GOOD.replace("[\"read_after_write\"]", "[\"block_refs\"]");
        let err = Scenario::parse("bad.toml", &checked).unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (17, "check.checkers"), "{err}");
        let s3 = checked.replace("clients = 2", "kind = \"s3\"\nclients = 2");
        assert!(Scenario::parse("s3.toml", &s3).is_ok());
    }

    #[test]
    fn layout_changes_parse_and_name_only_known_nodes() {
        let change = GOOD
            .replace("replication_factor = 3", "replication_factor = 3\nspare_nodes = 2")
            .replace(
                "kind = \"crash\"\nnode = \"n2\"",
                "kind = \"layout_change\"\nadd = [\"n5\"]\nremove = [\"n1\"]",
            );
        let s = Scenario::parse("c.toml", &change).unwrap();
        let want = Fault::LayoutChange { add: vec!["n5".into()], remove: vec!["n1".into()] };
        assert_eq!(s.timeline(), vec![(10, want)]);
        let unknown = change.replace("[\"n5\"]", "[\"n6\"]");
        let err = Scenario::parse("bad.toml", &unknown).unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (15, "faults.add"), "{err}");
        let empty = change.replace("add = [\"n5\"]\nremove = [\"n1\"]\n", "");
        let err = Scenario::parse("bad.toml", &empty).unwrap_err();
        assert_eq!(err.field, "faults.add", "{err}");
    }

    #[test]
    fn latency_profiles_parse_and_bad_ranges_name_their_field() {
        let wan = GOOD.replace(
            "[workload]",
            "[network]\nintra_zone_latency_ms = [1, 5]\ninter_zone_latency_ms = [30, 150]\n[workload]",
        );
        let s = Scenario::parse("wan.toml", &wan).unwrap();
        assert_eq!(s.network.node_link_latency_ms("z1", "z1"), Some((1, 5)));
        assert_eq!(s.network.node_link_latency_ms("z1", "z2"), Some((30, 150)));
        let plain = Scenario::parse("good.toml", GOOD).unwrap();
        assert_eq!(plain.network.node_link_latency_ms("z1", "z2"), None);
        for bad in ["[150, 30]", "[1]", "[1, 20000]"] {
            let text = wan.replace("[30, 150]", bad);
            let err = Scenario::parse("bad.toml", &text).unwrap_err();
            assert_eq!(
                (err.line, err.field.as_str()),
                (9, "network.inter_zone_latency_ms"),
                "{err}"
            );
        }
    }

    #[test]
    fn torn_writes_take_a_power_of_two_sector_size_or_none() {
        let plain = Scenario::parse("good.toml", GOOD).unwrap();
        assert_eq!(*plain.disk.torn_write_bytes.get_ref(), 0, "writes are atomic by default");
        let with = |bytes: &str| {
            let text = GOOD
                .replace("[workload]", &format!("[disk]\ntorn_write_bytes = {bytes}\n[workload]"));
            Scenario::parse("disk.toml", &text)
        };
        assert_eq!(*with("512").unwrap().disk.torn_write_bytes.get_ref(), 512);
        for bad in ["100", "3000", "131072"] {
            let err = with(bad).unwrap_err();
            assert_eq!((err.line, err.field.as_str()), (8, "disk.torn_write_bytes"), "{err}");
        }
    }

    #[test]
    fn an_expected_failure_must_name_one_of_the_checkers() {
        let expecting = |name: &str| {
            let check = format!("checkers = [\"read_after_write\"]\nexpect_failure = \"{name}\"");
            Scenario::parse("x.toml", &GOOD.replace("checkers = [\"read_after_write\"]", &check))
        };
        let s = expecting("read_after_write").unwrap();
        assert_eq!(s.check.expect_failure.unwrap().get_ref(), "read_after_write");
        let err = expecting("no_lost_writes").unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (18, "check.expect_failure"), "{err}");
    }

    #[test]
    fn out_of_range_fields_are_refused_on_their_own_line() {
        let cases = [
            ("nodes = 3", "nodes = 0", 4, "cluster.nodes"),
            ("zones = 3", "zones = 4", 5, "cluster.zones"),
            ("replication_factor = 3", "replication_factor = 9", 6, "cluster.replication_factor"),
            ("clients = 2", "clients = 0", 8, "workload.clients"),
            ("duration_ms = 1000", "duration_ms = 0", 10, "workload.duration_ms"),
            ("keys = 4", "keys = 0", 9, "workload.keys"),
            ("keys = 4", "keys = 4\nwrite_fraction = 1.5", 10, "workload.write_fraction"),
            ("keys = 4", "keys = 4\ndelete_fraction = -1.0", 10, "workload.delete_fraction"),
            ("keys = 4", "keys = 4\ndelete_fraction = 0.6", 10, "workload.delete_fraction"),
            ("checkers = [\"read_after_write\"]", "checkers = []", 17, "check.checkers"),
        ];
        for (from, to, line, field) in cases {
            let err = Scenario::parse("bad.toml", &GOOD.replace(from, to)).unwrap_err();
            assert_eq!((err.line, err.field.as_str()), (line, field), "{to}: {err}");
        }
    }

    #[test]
    fn a_fault_after_the_workload_or_with_an_argument_its_kind_ignores_is_refused() {
        let late = GOOD.replace("at_ms = 10", "at_ms = 1000");
        let err = Scenario::parse("bad.toml", &late).unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (13, "faults.at_ms"), "{err}");
        let ignored = GOOD.replace("node = \"n2\"", "node = \"n2\"\nskew_ms = 5");
        let err = Scenario::parse("bad.toml", &ignored).unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (13, "faults.kind"), "{err}");
        assert!(err.message.contains("`skew_ms` does nothing for `crash`"), "{err}");
    }

    #[test]
    fn a_bad_value_names_its_key_not_the_value() {
        let err =
            Scenario::parse("bad.toml", &GOOD.replace("at_ms = 10", "at_ms = -5")).unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (12, "at_ms"), "{err}");
    }

    #[test]
    fn wrong_type_is_reported() {
        let bad = GOOD.replace("clients = 2", "clients = \"two\"");
        let err = Scenario::parse("bad.toml", &bad).unwrap_err();
        assert_eq!(err.line, 8, "{err}");
        assert_eq!(err.field, "clients", "{err}");
    }
}
