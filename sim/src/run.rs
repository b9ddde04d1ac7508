//! Runs one scenario with one seed inside turmoil, then applies the checkers.
//!
//! Phases: (1) the workload runs while the fault timeline plays; (2) at the end of the
//! workload every fault is healed and crashed nodes restart (faults a cluster must survive
//! are always healed before judging it); (3) after `quiesce_ms`, a checker client reads
//! every key from every replica and every partition digest (`finals`), then probes that
//! every node serves again (`liveness`); (4) the checkers judge the history and those
//! final reads (`judge`).
//!
//! A node's process may also stop itself (its metadata database can no longer commit,
//! `hangar_engine::storage_health`): the runner then plays its supervisor, crashing the
//! host and starting it again `SUPERVISOR_RESTART_MS` later.
//!
//! Every node host runs the engine node and, next to it, the real S3 frontend on port
//! 3900 (`s3workload::serve_node`); the register workload talks to the nodes' RPC port,
//! the s3 and set workloads to their S3 port.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use hangar_engine::block::repair::RepairConfig;
use hangar_engine::layout::{ClusterLayout, NodeId, NodeRole};
use hangar_engine::node::{Node, NodeConfig};
use hangar_engine::objects::gc::GcConfig;
use hangar_engine::rpc::RpcConfig;
use hangar_engine::seam::Seam;
use hangar_engine::table::{ConsistencyMode, Quorums};
use tokio::sync::mpsc;

use crate::check::set::{SetOp, SetOutcome};
use crate::check::{self, Violation};
use crate::finals::replicas_of_key;
use crate::finals::{FinalListSpec, FinalSpec, Finals, final_check};
use crate::history::{Op, Outcome};
use crate::hostfs::{self, HostDisks};
use crate::judge::{Histories, checks_final_state, hold_to_expectation, judge};
use crate::liveness::{ProbeTarget, probe_key};
use crate::netfaults::{self, NetFaults};
use crate::s3client::{S3Client, S3Creds};
use crate::s3workload::{self, S3_PORT};
use crate::scenario::{Fault, Scenario};
use crate::setworkload;
use crate::trace::{self, Recorder};
use crate::workload::{ClientCtx, run_client};
use crate::world::{DiskFault, Drift, Epochs, SimClock, SimDisk, SimNet, SimTrace};

const RPC_PORT: u16 = 3901;
const SECRET: &str = "simulated cluster secret";
/// The one S3 access key of a run (its secret is derived from the seed).
const S3_ACCESS_KEY: &str = "GKhangarsim";
/// Simulated time the final checker may take before the run counts as not converging.
pub(crate) const FINAL_CHECK_BUDGET_MS: u64 = 30_000;

pub struct RunResult {
    pub seed: u64,
    pub trace_hash: String,
    pub violation: Option<Violation>,
    pub sim_ms: u64,
    /// Wall-clock duration, measured by the caller outside any simulated runtime (inside
    /// madsim, std time is simulated too).
    pub wall: Duration,
    pub ops: usize,
    /// Operations acknowledged, failed for sure, and of unknown outcome.
    pub outcomes: [usize; 3],
    /// s3 workload: blocks the final reads found only on another node than the replica
    /// they read (the replica missed the block's write and resync did not repair it).
    pub remote_blocks: u64,
    /// What each disk fault did (which block it corrupted, how many files it erased).
    pub fault_notes: Vec<String>,
    /// An unsurvivable scenario's failure, as its `check.expect_failure` required.
    pub expected_failure: Option<Violation>,
    pub recorder: Arc<Mutex<Recorder>>,
}

impl RunResult {
    /// Simulated time per wall-clock time.
    pub fn speedup(&self) -> f64 {
        self.sim_ms as f64 / (self.wall.as_secs_f64() * 1000.0).max(1e-3)
    }
}

/// Stable node id of a node name (ids must not depend on the seed, names do not either).
pub fn node_id(name: &str) -> NodeId {
    let h = blake3::hash(name.as_bytes());
    NodeId(u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap()))
}

/// A power cut (`crash_mid_write`) falls on one of a node's next this many disk mutations:
/// a redb commit makes a handful (pages, then its header, then a sync).
const POWER_CUT_MUTATIONS_MAX: u64 = 8;

fn seed_for(seed: u64, who: &str, boot: u64) -> u64 {
    let mut h = blake3::Hasher::new_derive_key("hangar sim seed v1");
    h.update(&seed.to_le_bytes());
    h.update(who.as_bytes());
    h.update(&boot.to_le_bytes());
    u64::from_le_bytes(h.finalize().as_bytes()[..8].try_into().unwrap())
}

/// The role of the `i`-th node (0-based, members then spares): zones in turn.
fn role_of(s: &Scenario, i: usize) -> NodeRole {
    NodeRole { zone: s.zone_of(&s.all_node_names()[i]), capacity: 1, tags: vec![] }
}

/// The first layout: the `nodes` members.
fn build_layout(s: &Scenario, members: &[String]) -> ClusterLayout {
    let mut layout = ClusterLayout::new(s.cluster.replication_factor).expect("validated RF");
    for (i, name) in members.iter().enumerate() {
        layout.stage_assign(node_id(name), role_of(s, i)).expect("valid role");
    }
    layout.apply_staged(1).expect("first layout applies");
    layout
}

/// A running node as the runner sees it: weak (a crash drops the node), with the sender
/// of its layout agent.
type NodeHandle = (Weak<Node>, mpsc::UnboundedSender<LayoutCommand>);

/// A layout change the runner asks a node to make (roles by node name).
#[derive(Debug)]
struct LayoutCommand {
    add: Vec<(String, NodeRole)>,
    remove: Vec<String>,
}

/// Runs on a node host: stages and applies each command against the node's newest layout.
/// Why an agent task and not a call from the runner: staging persists the layout history
/// through the node's simulated disk, which only works inside its host.
async fn layout_agent(node: Arc<Node>, mut commands: mpsc::UnboundedReceiver<LayoutCommand>) {
    while let Some(command) = commands.recv().await {
        let outcome = apply_layout_command(&node, &command);
        node.seam.trace.event("layout.change", outcome.as_bytes());
        tracing::info!(node = %node.id, ?command, "layout change: {outcome}");
    }
}

fn apply_layout_command(node: &Node, command: &LayoutCommand) -> String {
    let Some(version) = node.current_layout().map(|l| l.version()) else {
        return "refused: no layout known".into();
    };
    let staged = command.remove.iter().map(|name| node.stage_role(node_id(name), None)).chain(
        command.add.iter().map(|(name, role)| node.stage_role(node_id(name), Some(role.clone()))),
    );
    if let Err(e) = staged.collect::<Result<Vec<()>, _>>() {
        return format!("refused: {e}");
    }
    match node.apply_staged(version + 1) {
        Ok(diff) => format!("applied v{}: {} replicas move", version + 1, diff.moved_replicas),
        Err(e) => format!("refused: {e}"),
    }
}

fn quorums(s: &Scenario) -> Quorums {
    let mode =
        ConsistencyMode::parse(s.cluster.consistency_mode.get_ref()).expect("validated mode");
    let mut q = Quorums::for_mode(mode, s.cluster.replication_factor);
    q.read = s.cluster.read_quorum.unwrap_or(q.read);
    q.write = s.cluster.write_quorum.unwrap_or(q.write);
    q
}

struct World {
    scenario: Scenario,
    seed: u64,
    /// Every node host: the members of the first layout, then the spares.
    names: Vec<String>,
    /// How many of `names` are in the first layout.
    members: usize,
    layout: ClusterLayout,
    /// The running node of each host (gone while it is down) and its layout agent.
    handles: Mutex<BTreeMap<String, NodeHandle>>,
    epochs: Arc<Epochs>,
    skews: BTreeMap<String, Arc<AtomicI64>>,
    drifts: BTreeMap<String, Arc<Drift>>,
    recorder: Arc<Mutex<Recorder>>,
    s3_creds: S3Creds,
    /// Every node's simulated file system, for the faults and scans of `hostfs`.
    disks: HostDisks,
    /// What disk faults did (`RunResult::fault_notes`).
    fault_notes: Mutex<Vec<String>>,
    /// Network faults in force (what `release` and `heal` undo).
    net: Mutex<NetFaults>,
    /// Nodes whose process stopped itself since the runner last looked (a metadata
    /// database that can no longer commit), with why.
    exits: Mutex<Vec<(String, String)>>,
}

impl World {
    fn seam(&self, who: &str, boot: u64) -> Seam {
        let skew = self.skews.get(who).cloned().unwrap_or_default();
        let drift = self.drifts.get(who).cloned().unwrap_or_default();
        Seam {
            clock: Arc::new(SimClock { skew_ms: skew, drift }),
            net: Arc::new(SimNet),
            disk: Arc::new(SimDisk::new(who, self.epochs.clone())),
            trace: Arc::new(SimTrace { node: who.into(), recorder: self.recorder.clone() }),
            rng_seed: seed_for(self.seed, who, boot),
        }
    }

    /// RPC addresses of every node host.
    fn node_addrs(&self) -> Vec<(NodeId, String)> {
        self.names.iter().map(|n| (node_id(n), format!("{n}:{RPC_PORT}"))).collect()
    }

    /// Where clients send requests: the members of the first layout (spares start without
    /// a layout and could not serve them).
    fn member_addrs(&self) -> Vec<(NodeId, String)> {
        self.node_addrs().into_iter().take(self.members).collect()
    }

    fn s3_addrs(&self) -> Vec<String> {
        self.names.iter().take(self.members).map(|n| format!("{n}:{S3_PORT}")).collect()
    }

    fn node(&self, name: &str) -> Option<Arc<Node>> {
        self.handles.lock().unwrap().get(name).and_then(|(node, _)| node.upgrade())
    }

    /// The layout every running node has settled on (a single stored version, the same
    /// everywhere), or `None` while a transition is still going on somewhere.
    fn settled_layout(&self) -> Option<ClusterLayout> {
        let mut settled: Option<ClusterLayout> = None;
        for name in &self.names {
            let history = self.node(name)?.layout_history();
            let [layout] = history.versions() else { return None };
            match &settled {
                Some(s) if s.version() != layout.version() => return None,
                Some(_) => {}
                None => settled = Some(layout.clone()),
            }
        }
        settled
    }

    /// Sends a layout change to the first running node that knows a layout.
    fn change_layout(&self, add: &[String], remove: &[String]) -> String {
        let add: Vec<(String, NodeRole)> =
            add.iter().map(|a| (a.clone(), role_of(&self.scenario, self.index_of(a)))).collect();
        let handles = self.handles.lock().unwrap();
        for name in &self.names {
            let Some((node, agent)) = handles.get(name) else { continue };
            if node.upgrade().and_then(|n| n.current_layout()).is_none() {
                continue;
            }
            let command = LayoutCommand { add: add.clone(), remove: remove.to_vec() };
            if agent.send(command).is_ok() {
                return format!("sent to {name}");
            }
        }
        "no running node knows a layout: change dropped".into()
    }

    fn index_of(&self, name: &str) -> usize {
        self.names.iter().position(|n| n == name).expect("validated node name")
    }

    fn final_spec(&self, layout: &ClusterLayout) -> FinalSpec {
        let c = &self.scenario.cluster;
        // The final reads judge the nodes of the final layout (with RF = its size, every
        // one of them holds every key).
        let names: Vec<String> = (self.names.iter())
            .filter(|n| layout.roles().contains_key(&node_id(n)))
            .cloned()
            .collect();
        let seam = self.seam("checker", 0);
        let final_list =
            self.scenario.workload.is_set().then(|| self.final_list_spec(&seam, &names));
        let through_s3 = self.scenario.workload.through_s3();
        let probe_targets = (names.iter())
            .map(|n| ProbeTarget {
                name: n.clone(),
                id: node_id(n),
                s3_addr: format!("{n}:{S3_PORT}"),
                key: probe_key(n, node_id(n), |key| replicas_of_key(layout, through_s3, key)),
            })
            .collect();
        let probe_s3 = self.scenario.workload.through_s3().then(|| {
            let timeout_ms = self.scenario.workload.client_timeout_ms;
            S3Client::new(seam.net.clone(), seam.clock.clone(), self.s3_creds.clone(), timeout_ms)
        });
        FinalSpec {
            probe_targets,
            probe_s3,
            ids: names.iter().map(|n| node_id(n)).collect(),
            addrs: self.node_addrs(),
            layout: layout.clone(),
            keys: self.scenario.workload.keys,
            s3: self.scenario.workload.through_s3(),
            require_own_blocks: c.resync_enabled(self.scenario.check.quiesce_ms),
            final_list,
            seam,
            secret: SECRET.into(),
            names,
        }
    }

    /// The set workload's final listing, through the S3 frontends of `names`.
    fn final_list_spec(&self, seam: &Seam, names: &[String]) -> FinalListSpec {
        let w = &self.scenario.workload;
        let (net, clock) = (seam.net.clone(), seam.clock.clone());
        let client = S3Client::new(net, clock, self.s3_creds.clone(), w.client_timeout_ms);
        FinalListSpec {
            client,
            addrs: names.iter().map(|n| format!("{n}:{S3_PORT}")).collect(),
            max_keys: *w.list_max_keys.get_ref(),
            recorder: self.recorder.clone(),
        }
    }

    fn node_config(&self, name: &str) -> NodeConfig {
        let c = &self.scenario.cluster;
        let member = self.index_of(name) < self.members;
        // Members know each other; a spare knows only n1 and learns the rest by gossip.
        let (peers, layout) = if member {
            let peers = self.member_addrs().into_iter().filter(|(id, _)| *id != node_id(name));
            (peers.collect(), self.layout.clone())
        } else {
            let first = self.node_addrs().into_iter().take(1).collect();
            (first, ClusterLayout::new(c.replication_factor).expect("validated RF"))
        };
        NodeConfig {
            id: node_id(name),
            rpc_bind_addr: format!("0.0.0.0:{RPC_PORT}"),
            public_addr: Some(format!("{name}:{RPC_PORT}")),
            peers,
            layout,
            rpc_secret: SECRET.into(),
            quorums: quorums(&self.scenario),
            rpc: RpcConfig { call_timeout_ms: c.rpc_timeout_ms, ..RpcConfig::default() },
            sync_interval_ms: c.sync_interval_ms,
            gc: GcConfig {
                interval_ms: *c.gc_interval_ms.get_ref(),
                delay_ms: *c.gc_delay_ms.get_ref(),
                upload_timeout_ms: *c.upload_timeout_ms.get_ref(),
                tombstone_interval_ms: *c.tombstone_interval_ms.get_ref(),
                tombstone_delay_ms: *c.tombstone_delay_ms.get_ref(),
                tombstone_unsafe_skip_unreachable: c.unsafe_tombstone_gc_skips_unreachable,
                acceptor_row_grace_ms: *c.acceptor_row_grace_ms.get_ref(),
                acceptor_rows_unsafe_skip_peers: c.unsafe_acceptor_rows_skip_peers,
            },
            repair: RepairConfig {
                resync_interval_ms: *c.resync_interval_ms.get_ref(),
                scrub_interval_ms: *c.scrub_interval_ms.get_ref(),
                ..RepairConfig::default()
            },
            metadata_cache_bytes: hangar_engine::seam::DEFAULT_METADATA_CACHE_BYTES,
        }
    }
}

/// See the `tcp_capacity` call in `run_with`.
const TCP_CAPACITY_SEGMENTS: usize = 1 << 16;

/// Runs `scenario` with `seed`. `keep_events` keeps every trace event (for `--trace-out`
/// and the determinism check); otherwise only the hash is computed.
pub fn run(scenario: &Scenario, seed: u64, keep_events: bool) -> RunResult {
    run_with(scenario, seed, RunOptions { keep_events, canary: false })
}

/// How to run, beyond the scenario and seed.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Keep every trace event (for `--trace-out` and the determinism check).
    pub keep_events: bool,
    /// Let real (OS) entropy change what the run does: a deliberately non-deterministic run
    /// that proves `check-determinism` can tell.
    pub canary: bool,
}

pub fn run_with(scenario: &Scenario, seed: u64, options: RunOptions) -> RunResult {
    let keep_events = options.keep_events;
    let names = scenario.all_node_names();
    let members = scenario.cluster.nodes;
    let world = Arc::new(World {
        scenario: scenario.clone(),
        seed,
        layout: build_layout(scenario, &names[..members]),
        members,
        handles: Mutex::default(),
        skews: names.iter().map(|n| (n.clone(), Arc::new(AtomicI64::new(0)))).collect(),
        drifts: names.iter().map(|n| (n.clone(), Arc::default())).collect(),
        names,
        epochs: Arc::new(Epochs::default()),
        recorder: Arc::new(Mutex::new(Recorder::new(keep_events))),
        s3_creds: S3Creds {
            access_key: S3_ACCESS_KEY.into(),
            secret_key: format!("{:016x}", seed_for(seed, "s3 secret key", 0)),
            region: s3workload::REGION.into(),
        },
        disks: HostDisks::default(),
        fault_notes: Mutex::default(),
        net: Mutex::default(),
        exits: Mutex::default(),
    });
    // The canary lets real entropy into what the run does, not into the trace directly:
    // the first client draws its operations, keys and think times from an OS-seeded
    // stream (`canary_boot` below), as a stray `thread_rng()` would.
    let canary_boot = options.canary.then(|| {
        let entropy = std::collections::hash_map::RandomState::new();
        std::hash::BuildHasher::hash_one(&entropy, seed)
    });
    let workload_end = scenario.workload.duration_ms;
    let quiesce_end = workload_end + scenario.check.quiesce_ms;
    let horizon = quiesce_end + FINAL_CHECK_BUDGET_MS;
    let net = &scenario.network;
    let mut sim = turmoil::Builder::new();
    sim.simulation_duration(Duration::from_millis(horizon + 1_000))
        .tick_duration(Duration::from_millis(net.tick_ms))
        .min_message_latency(Duration::from_millis(net.min_latency_ms))
        .max_message_latency(Duration::from_millis(net.max_latency_ms))
        .rng_seed(seed)
        // turmoil panics when a listener's backlog or a socket's buffer holds more than
        // this many segments, where a kernel would drop SYNs or apply flow control. Held
        // links (pause, hold) release bursts of reconnection attempts well above its
        // default of 64; the capacity only matters once exceeded, so traces are unchanged.
        .tcp_capacity(TCP_CAPACITY_SEGMENTS);
    let torn_write_bytes = *scenario.disk.torn_write_bytes.get_ref();
    if torn_write_bytes > 0 {
        // turmoil applies a crashed host's unsynced writes in part, drawing from the
        // world's seeded rng: the tearing replays with the seed.
        sim.fs().block_size(torn_write_bytes);
    }
    let mut sim = sim.build();

    for name in world.names.clone() {
        let world = world.clone();
        let boots = Arc::new(AtomicU64::new(0));
        let host = name.clone();
        sim.host(host.as_str(), move || {
            let boot = boots.fetch_add(1, Ordering::Relaxed);
            let seam = world.seam(&name, boot);
            let config = world.node_config(&name);
            let creds = world.s3_creds.clone();
            let disks_world = world.clone();
            let host = name.clone();
            async move {
                // On the host: see hostfs.rs on why the runner reaches disks this way.
                disks_world.disks.capture(&host);
                let node = match Node::start(seam, config).await {
                    Ok(node) => node,
                    Err(e) => {
                        // A node that cannot start (its disk still full or failing) exits;
                        // its supervisor tries again, as systemd's Restart=on-failure does.
                        let reason = format!("cannot start: {e}");
                        disks_world.exits.lock().unwrap().push((host.clone(), reason));
                        std::future::pending::<()>().await;
                        unreachable!("a pending future never completes")
                    }
                };
                if disks_world.scenario.cluster.unsafe_early_read_switch {
                    node.layouts.weaken_switch_reads_before_sync();
                }
                if disks_world.scenario.cluster.unsafe_blank_node_serves_reads {
                    node.unsafe_serve_reads_while_syncing();
                }
                if disks_world.scenario.cluster.unsafe_background_read_repair {
                    repair_reads_in_background(&node);
                }
                if disks_world.scenario.cluster.unsafe_forget_promise_ceiling {
                    node.cas.unsafe_forget_the_ceiling();
                }
                let (agent, commands) = mpsc::unbounded_channel();
                let handle = (Arc::downgrade(&node), agent);
                disks_world.handles.lock().unwrap().insert(host.clone(), handle);
                tokio::spawn(layout_agent(node.clone(), commands));
                if boot > 0 && disks_world.scenario.cluster.unsafe_s3_not_restarted {
                    // The node's tasks keep running; only its S3 port stays closed.
                    std::future::pending::<()>().await;
                }
                let list_max = disks_world.scenario.cluster.list_inline_max_blocks;
                let stops = node.clone();
                tokio::select! {
                    served = s3workload::serve_node(node, creds, list_max) => served?,
                    reason = stops.storage_failure() => {
                        // The process exits (as `hangar server` does); the runner crashes
                        // the host and its supervisor starts it again (`SUPERVISOR_RESTART_MS`).
                        disks_world.exits.lock().unwrap().push((host.clone(), reason));
                        std::future::pending::<()>().await;
                    }
                }
                Ok(())
            }
        });
    }
    let zone_of = |name: &str| scenario.zone_of(name);
    netfaults::set_latency_profile(&mut sim, &world.names, zone_of, &scenario.network);
    let history: Arc<Mutex<Vec<Op>>> = Arc::default();
    let set_history: Arc<Mutex<Vec<SetOp>>> = Arc::default();
    // All workload clients share one simulated host: every host costs turmoil work on every
    // tick (and every pair of hosts a link), and clients need no address of their own.
    let mut clients = Vec::new();
    for i in 1..=scenario.workload.clients {
        let name = format!("c{i}");
        clients.push(ClientCtx {
            id: node_id(&name),
            seam: world.seam(&name, canary_boot.filter(|_| i == 1).unwrap_or(0)),
            secret: SECRET.into(),
            nodes: world.member_addrs(),
            s3_nodes: world.s3_addrs(),
            workload: scenario.workload.clone(),
            history: history.clone(),
            recorder: world.recorder.clone(),
            name,
        });
    }
    let s3_client = |c: &ClientCtx| {
        let timeout_ms = c.workload.client_timeout_ms;
        S3Client::new(c.seam.net.clone(), c.seam.clock.clone(), world.s3_creds.clone(), timeout_ms)
    };
    let s3 = scenario.workload.through_s3().then(|| {
        let s3_clients: Vec<Arc<S3Client>> =
            clients.iter().map(|c| Arc::new(s3_client(c))).collect();
        (s3_clients, world.s3_addrs(), workload_end * 1000)
    });
    let set_history_of_clients = set_history.clone();
    sim.client(netfaults::CLIENTS_HOST, async move {
        let set_history = set_history_of_clients;
        let tasks: Vec<_> = match s3 {
            None => clients.into_iter().map(|c| tokio::spawn(run_client(c))).collect(),
            Some((s3_clients, addrs, deadline_us)) => {
                // One client creates the bucket before anyone uses it.
                s3workload::create_bucket(&s3_clients[0], &addrs, deadline_us).await;
                let run = |(c, s): (ClientCtx, _)| match c.workload.is_set() {
                    true => tokio::spawn(setworkload::run_set_client(c, s, set_history.clone())),
                    false => tokio::spawn(s3workload::run_s3_client(c, s)),
                };
                clients.into_iter().zip(s3_clients).map(run).collect()
            }
        };
        for task in tasks {
            task.await.map_err(|e| e.to_string())??;
        }
        Ok(())
    });

    let finals: Arc<Mutex<Finals>> = Arc::default();
    let random = scenario.random_faults.as_ref().map_or_else(Vec::new, |random| {
        let members = crate::scenario::node_names(scenario.cluster.nodes);
        random.draw(seed_for(seed, "random faults", 0), &members, workload_end)
    });
    world.fault_notes.lock().unwrap().extend(
        random.iter().map(|(at, fault)| format!("at {at} ms (drawn from the seed) {fault:?}")),
    );
    let mut timeline = scenario.timeline_with(random).into_iter().peekable();
    let mut crashed: Vec<String> = Vec::new();
    // (due at ms, node): nodes that stopped themselves, to be started again by their
    // supervisor.
    let mut supervisor_restarts: Vec<(u64, String)> = Vec::new();
    let mut healed = false;
    let mut checker_started = false;
    // The layout the cluster settled on after the last change (the final reads use it).
    let mut final_layout: Option<ClusterLayout> = None;
    let mut error = None;
    loop {
        let now_ms = sim.elapsed().as_millis() as u64;
        while let Some((at, _)) = timeline.peek() {
            if *at > now_ms || *at >= workload_end {
                break;
            }
            let (_, fault) = timeline.next().unwrap();
            apply_fault(&mut sim, &world, &fault, &mut crashed);
        }
        if !healed && now_ms >= workload_end {
            healed = true;
            // Faults stop: a power cut still waiting for a write falls now, so that the
            // node restarts with the others below.
            for name in &world.names {
                if world.epochs.disarm_power_cut(name) {
                    world.epochs.bump(name);
                    crash_node(&mut sim, name, &mut crashed);
                }
            }
            apply_fault(&mut sim, &world, &Fault::Heal, &mut crashed);
            for node in std::mem::take(&mut crashed) {
                apply_fault(&mut sim, &world, &Fault::Restart { node }, &mut Vec::new());
            }
        }
        if !checker_started && now_ms >= quiesce_end {
            // Layout transitions must complete once faults are healed (liveness); the
            // checker starts when they have, and the budget runs out otherwise.
            if let Some(layout) = world.settled_layout() {
                checker_started = true;
                let spec = world.final_spec(&layout);
                final_layout = Some(layout);
                sim.client("checker", final_check(spec, finals.clone()));
            }
        }
        if finals.lock().unwrap().done {
            if scenario.check.checkers.get_ref().iter().any(|c| c == "block_refs") {
                let mut f = finals.lock().unwrap();
                for name in &world.names {
                    let scanned = world.disks.with_disk(name, hostfs::scan_blocks);
                    f.disks.insert(name.clone(), scanned.unwrap_or_default());
                    if let Some(node) = world.node(name) {
                        f.live_lists.extend(check::block_refs::live_lists(name, &node));
                    }
                }
            }
            break;
        }
        if now_ms >= horizon {
            break;
        }
        let next_event_ms = [
            timeline.peek().map(|(at, _)| *at),
            (!healed).then_some(workload_end),
            (!checker_started).then_some(quiesce_end),
            Some(horizon),
        ];
        let next_event_ms = next_event_ms.into_iter().flatten().filter(|at| *at > now_ms).min();
        let step = Duration::from_millis(step_ms(&sim, net.tick_ms, now_ms, next_event_ms));
        if let Err(e) = sim.step_by(step) {
            error = Some(e.to_string());
            break;
        }
        crash_power_cut_nodes(&mut sim, &world, &mut crashed);
        crash_exited_nodes(&mut sim, &world, &mut crashed, &mut supervisor_restarts);
        restart_supervised_nodes(&mut sim, &world, &mut crashed, &mut supervisor_restarts);
        // Inside madsim's shell, std time follows the simulation's.
        #[cfg(madsim)]
        madsim::time::advance(step);
    }
    let sim_ms = sim.elapsed().as_millis() as u64;
    drop(sim);
    let history = std::mem::take(&mut *history.lock().unwrap());
    let set_history = std::mem::take(&mut *set_history.lock().unwrap());
    let finals = std::mem::take(&mut *finals.lock().unwrap());
    let violation = match (error, &final_layout) {
        (Some(e), _) => Some(Violation { checker: "simulation", details: e }),
        (None, None) if checks_final_state(scenario) => Some(Violation {
            checker: "liveness",
            details: format!(
                "the layout did not settle on one version everywhere within \
                 {FINAL_CHECK_BUDGET_MS} ms after quiescence"
            ),
        }),
        (None, layout) => {
            let histories = Histories { register: &history, set: &set_history };
            judge(scenario, layout.as_ref().unwrap_or(&world.layout), histories, &finals)
        }
    };
    let (violation, expected_failure) = hold_to_expectation(scenario, violation);
    let verdict = violation.as_ref().map_or("pass".to_string(), |v| v.to_string());
    let detail = || Some(trace::verdict_detail(violation.as_ref()));
    let at_us = sim_ms as u128 * 1000;
    let mut recorder = world.recorder.lock().unwrap();
    recorder.record_at_detailed(at_us, "runner", "verdict", verdict.as_bytes(), detail);
    drop(recorder);
    let trace_hash = world.recorder.lock().unwrap().hash_hex();
    RunResult {
        seed,
        trace_hash,
        violation,
        sim_ms,
        wall: Duration::ZERO,
        ops: history.len() + set_history.len(),
        outcomes: outcome_counts(&history, &set_history),
        remote_blocks: finals.remote_blocks,
        fault_notes: std::mem::take(&mut *world.fault_notes.lock().unwrap()),
        expected_failure,
        recorder: world.recorder.clone(),
    }
}

/// The longest step the runner takes while no message is in flight (see `step_ms`).
/// A message sent inside such a step is delivered at its end at the earliest, so this bounds
/// the extra delay of the first message after a quiet stretch: no more than the default
/// latency spread (1–10 ms).
const IDLE_STEP_MS: u64 = 10;

/// How far to step: one tick while any message is in flight; otherwise up to
/// `IDLE_STEP_MS` (a whole number of ticks), never past the runner's next event.
///
/// Why: each step costs every host a turn of its runtime whether or not it has work, and
/// most steps of a run are quiet. Timers inside a longer step still fire at their exact
/// instants (each host's paused tokio clock jumps from timer to timer); only delivery
/// waits for the step's end, and a message's latency counts from when it was sent
/// (turmoil's `step_by` and send time: `vendor/turmoil/HANGAR.md`).
fn step_ms(sim: &turmoil::Sim<'_>, tick_ms: u64, now_ms: u64, next_event_ms: Option<u64>) -> u64 {
    let mut in_flight = false;
    sim.links(|links| {
        for mut link in links {
            if link.next().is_some() {
                in_flight = true;
                break;
            }
        }
    });
    if in_flight {
        return tick_ms;
    }
    let room = next_event_ms.map_or(u64::MAX, |at| at - now_ms).min(IDLE_STEP_MS);
    (room / tick_ms).max(1) * tick_ms
}

/// Operations acknowledged, failed for sure, and of unknown outcome, over both histories.
fn outcome_counts(history: &[Op], set_history: &[SetOp]) -> [usize; 3] {
    let mut counts = [0; 3];
    for outcome in history.iter().map(|o| &o.outcome) {
        counts[match outcome {
            Outcome::Ok { .. } => 0,
            Outcome::Fail => 1,
            Outcome::Info => 2,
        }] += 1;
    }
    for outcome in set_history.iter().map(|o| &o.outcome) {
        counts[match outcome {
            SetOutcome::Ok { .. } => 0,
            SetOutcome::Fail => 1,
            SetOutcome::Info => 2,
        }] += 1;
    }
    counts
}

/// The test-only weakening `cluster.unsafe_background_read_repair`, on every table.
fn repair_reads_in_background(node: &Node) {
    node.kv.unsafe_repair_reads_in_background();
    node.buckets.unsafe_repair_reads_in_background();
    node.bucket_config.unsafe_repair_reads_in_background();
    node.bucket_usage.unsafe_repair_reads_in_background();
    node.bucket_aliases.unsafe_repair_reads_in_background();
    node.objects.unsafe_repair_reads_in_background();
    node.block_refs.unsafe_repair_reads_in_background();
    node.mpu.unsafe_repair_reads_in_background();
    node.keys.unsafe_repair_reads_in_background();
}

fn apply_fault(
    sim: &mut turmoil::Sim<'_>,
    world: &World,
    fault: &Fault,
    crashed: &mut Vec<String>,
) {
    let names = &world.names;
    let at_ms = sim.elapsed().as_millis() as u64;
    let mut detail = String::new();
    let zone_of = |name: &str| world.scenario.zone_of(name);
    let network = &world.scenario.network;
    if world.net.lock().unwrap().apply(sim, names, zone_of, network, fault) {
        if *fault == Fault::Heal {
            for name in names {
                world.epochs.set_fault(name, None);
            }
        }
        // A network fault: nothing more to do.
    } else {
        apply_node_fault(sim, world, fault, crashed, at_ms, &mut detail);
    }
    let mut recorder = world.recorder.lock().unwrap();
    let at = sim.elapsed().as_micros();
    let nodes_of_zone = |zone: &str| -> Vec<String> {
        names.iter().filter(|n| world.scenario.zone_of(n) == zone).cloned().collect()
    };
    let fault_detail = || Some(trace::fault_detail(fault, nodes_of_zone, &detail));
    recorder.record_at_detailed(
        at,
        "runner",
        "fault",
        format!("{fault:?}").as_bytes(),
        fault_detail,
    );
    if !detail.is_empty() {
        recorder.record_at(at, "runner", "fault.detail", detail.as_bytes());
        world.fault_notes.lock().unwrap().push(format!("at {at_ms} ms {fault:?}: {detail}"));
    }
}

/// Crashes `node`, whose disk handles are already fenced, and says what became of its
/// unsynced writes (empty if it had none).
fn crash_node(sim: &mut turmoil::Sim<'_>, node: &str, crashed: &mut Vec<String>) -> String {
    let writes = sim.crash_counting(node);
    crashed.push(node.to_string());
    match writes == turmoil::fs::CrashWrites::default() {
        true => String::new(),
        false => format!(
            "unsynced writes: {} kept whole, {} torn, {} lost",
            writes.kept_whole, writes.torn, writes.lost
        ),
    }
}

/// Records what the runner did on its own (not a timeline entry) in the trace, as a
/// `fault.detail` event, and in the run's printed notes.
fn note_runner_event(sim: &turmoil::Sim<'_>, world: &World, detail: &str) {
    let at = sim.elapsed();
    let mut recorder = world.recorder.lock().unwrap();
    recorder.record_at(at.as_micros(), "runner", "fault.detail", detail.as_bytes());
    world.fault_notes.lock().unwrap().push(format!("at {} ms: {detail}", at.as_millis()));
}

/// Crashes the nodes whose armed power cut (`crash_mid_write`) fell during the last step,
/// recording each like a fault.
fn crash_power_cut_nodes(sim: &mut turmoil::Sim<'_>, world: &World, crashed: &mut Vec<String>) {
    for (node, nth) in world.epochs.take_power_cuts() {
        let writes = crash_node(sim, &node, crashed);
        let mut detail = format!("{node}: power went out on disk mutation {nth}");
        if !writes.is_empty() {
            detail = format!("{detail}; {writes}");
        }
        note_runner_event(sim, world, &detail);
    }
}

/// How long after a node's process stops itself its supervisor starts it again (systemd's
/// `RestartSec` in docs/deploy.md is 5 s; shorter here, for runs of seconds).
const SUPERVISOR_RESTART_MS: u64 = 1_000;

/// Crashes the nodes whose process stopped itself during the last step (a process that
/// exits keeps what the kernel cached, a crash does not: the harsher of the two), and
/// schedules their supervisor's restart.
fn crash_exited_nodes(
    sim: &mut turmoil::Sim<'_>,
    world: &World,
    crashed: &mut Vec<String>,
    restarts: &mut Vec<(u64, String)>,
) {
    let exits = std::mem::take(&mut *world.exits.lock().unwrap());
    for (node, reason) in exits {
        if crashed.contains(&node) {
            continue;
        }
        world.epochs.disarm_power_cut(&node);
        world.epochs.bump(&node);
        crash_node(sim, &node, crashed);
        let due = sim.elapsed().as_millis() as u64 + SUPERVISOR_RESTART_MS;
        restarts.push((due, node.clone()));
        let detail =
            format!("{node} stopped itself ({reason}); its supervisor restarts it at {due} ms");
        note_runner_event(sim, world, &detail);
    }
}

/// Starts again the stopped nodes whose supervisor's delay is over (unless a fault or the
/// final heal restarted them first).
fn restart_supervised_nodes(
    sim: &mut turmoil::Sim<'_>,
    world: &World,
    crashed: &mut Vec<String>,
    restarts: &mut Vec<(u64, String)>,
) {
    let now_ms = sim.elapsed().as_millis() as u64;
    let (due, later): (Vec<_>, Vec<_>) = restarts.drain(..).partition(|(at, _)| *at <= now_ms);
    *restarts = later;
    for (_, node) in due {
        if crashed.contains(&node) {
            apply_fault(sim, world, &Fault::Restart { node }, crashed);
        }
    }
}

/// Faults on one node's process, clock or disk (network faults are `NetFaults`').
fn apply_node_fault(
    sim: &mut turmoil::Sim<'_>,
    world: &World,
    fault: &Fault,
    crashed: &mut Vec<String>,
    at_ms: u64,
    detail: &mut String,
) {
    match fault {
        Fault::Crash { node } => {
            world.epochs.disarm_power_cut(node);
            if !crashed.contains(node) {
                // Fence the old disk handles first: see world.rs on crash fencing.
                world.epochs.bump(node);
                *detail = crash_node(sim, node, crashed);
            }
        }
        Fault::CrashMidWrite { node } => {
            if !crashed.contains(node) {
                let nth = 1 + seed_for(world.seed, &format!("power cut at {at_ms}"), 0)
                    % POWER_CUT_MUTATIONS_MAX;
                world.epochs.arm_power_cut(node, nth);
                *detail = format!("power goes out on its disk mutation {nth} from now");
            }
        }
        Fault::Restart { node } => {
            // A power cut still waiting for a write falls now: a node restarts from a crash.
            if world.epochs.disarm_power_cut(node) {
                world.epochs.bump(node);
                crash_node(sim, node, crashed);
            }
            crashed.retain(|n| n != node);
            sim.bounce(node.as_str());
        }
        Fault::ClockSkew { node, skew_ms } => {
            world.skews[node].store(*skew_ms, Ordering::Relaxed);
        }
        Fault::DiskEio { node } => world.epochs.set_fault(node, Some(DiskFault::Eio)),
        Fault::DiskFull { node } => world.epochs.set_fault(node, Some(DiskFault::Full)),
        Fault::DiskSlow { node, latency_ms, mib_per_s } => {
            let slow = DiskFault::Slow { latency_ms: *latency_ms, mib_per_s: *mib_per_s };
            world.epochs.set_fault(node, Some(slow));
        }
        Fault::DiskRepair { node } => world.epochs.set_fault(node, None),
        Fault::ClockDrift { node, drift_ppm } => world.drifts[node].set_rate(at_ms, *drift_ppm),
        Fault::CorruptBlock { node } => {
            let choice = seed_for(world.seed, &format!("corrupt_block {node}"), at_ms);
            *detail = match world.disks.with_disk(node, || hostfs::corrupt_block(choice)) {
                None => "the node never booted: nothing corrupted".into(),
                Some(Ok(detail)) => detail,
                Some(Err(e)) => panic!("corrupt_block on {node}: simulated fs failed: {e}"),
            };
        }
        Fault::DiskLoss { node } => {
            // A power cut, then a blank disk in its place: same node id, same layout role.
            if !crashed.contains(node) {
                world.epochs.bump(node);
                sim.crash(node.as_str());
            }
            crashed.retain(|n| n != node);
            *detail = match world.disks.with_disk(node, hostfs::wipe_data_root) {
                None => "the node never booted: nothing to erase".into(),
                Some(Ok(files)) => format!("erased {files} files"),
                Some(Err(e)) => panic!("disk_loss on {node}: simulated fs failed: {e}"),
            };
            sim.bounce(node.as_str());
        }
        Fault::LayoutChange { add, remove } => *detail = world.change_layout(add, remove),
        other => unreachable!("{other:?} is a network fault"),
    }
}
