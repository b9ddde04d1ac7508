//! The cluster under test: `hangar server` processes, one per network namespace (netns.rs),
//! each with its own directory (config, metadata, data, log) under the run's output
//! directory. The harness owns the processes: it starts, kills (SIGKILL), restarts, pauses
//! (SIGSTOP) and resumes (SIGCONT) them, and `teardown` leaves nothing behind. A crashed
//! harness leaves processes inside `hjep-` namespaces, which the next run's `netns::cleanup`
//! finds and kills before building a new cluster.

use std::fs::{self, OpenOptions};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::netns;

pub const S3_PORT: u16 = 3900;
pub const RPC_PORT: u16 = 3901;
pub const ADMIN_PORT: u16 = 3903;
pub const REGION: &str = "hangar";
/// Test credentials: fixed, so a run's logs can be replayed by hand with the same key.
pub const ACCESS_KEY: &str = "GKhjep0123456789abcdef0";
pub const SECRET_KEY: &str = "hjep-secret-0123456789abcdef0123456789";
const ADMIN_TOKEN: &str = "hjep-admin-token-0123456789abcdef";
const RPC_SECRET: &str = "7a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9";
/// How long a freshly started node may take to accept S3 connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// libfaketime's preload library (Debian package `faketime`).
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub nodes: usize,
    pub hangar_bin: PathBuf,
    /// `consistent` normally; `dangerous` (one replica read and written, R = W = 1) is the
    /// deliberately weakened build the checkers must catch.
    pub consistency_mode: String,
    pub replication_factor: usize,
    /// Start every node under libfaketime so the clock nemesis can skew it.
    pub fake_clock: bool,
    /// Layout zones the nodes are spread over, round-robin (`zone_of`).
    pub zones: usize,
}

/// The layout zone (0-based) of node `i` (0-based) when `zones` zones take the nodes in
/// turn: with 5 nodes and 3 zones, z1 = {n1, n4}, z2 = {n2, n5}, z3 = {n3}.
pub fn zone_of(i: usize, zones: usize) -> usize {
    i % zones.max(1)
}

/// `z1` for zone 0: the name `hangar layout assign --zone` gets.
pub fn zone_name(zone: usize) -> String {
    format!("z{}", zone + 1)
}

pub struct Node {
    pub number: usize,
    pub dir: PathBuf,
    child: Option<Child>,
    paused: bool,
}

impl Node {
    pub fn s3_addr(&self) -> SocketAddr {
        SocketAddr::new(netns::node_ip(self.number).into(), S3_PORT)
    }
    fn config_path(&self) -> PathBuf {
        self.dir.join("hangar.toml")
    }
    fn clock_file(&self) -> PathBuf {
        self.dir.join("faketime.rc")
    }
}

pub struct Cluster {
    opts: ClusterOptions,
    pub nodes: Vec<Node>,
    /// Every node's `<id>@<addr>`, as `hangar node id` printed it.
    ids: Vec<String>,
}

impl Cluster {
    /// Cleans leftovers, builds the network, writes configs, starts every node and waits
    /// until each accepts S3 connections.
    pub fn start(opts: ClusterOptions, out: &Path) -> Result<Cluster, String> {
        if opts.fake_clock && !Path::new(LIBFAKETIME).exists() {
            return Err(format!(
                "the clock nemesis needs libfaketime ({LIBFAKETIME}): apt-get install faketime"
            ));
        }
        netns::cleanup()?;
        let mut cluster = Cluster { opts, nodes: Vec::new(), ids: Vec::new() };
        let built = cluster.build(out);
        if built.is_err() {
            cluster.teardown();
        }
        built.map(|()| cluster)
    }

    fn build(&mut self, out: &Path) -> Result<(), String> {
        netns::create(self.opts.nodes)?;
        for number in 1..=self.opts.nodes {
            let dir = out.join("nodes").join(format!("n{number}"));
            fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let node = Node { number, dir, child: None, paused: false };
            fs::write(node.config_path(), config_text(&self.opts, number))
                .map_err(|e| format!("cannot write config of n{number}: {e}"))?;
            fs::write(node.clock_file(), "+0\n").map_err(|e| format!("clock file: {e}"))?;
            self.nodes.push(node);
        }
        for i in 0..self.nodes.len() {
            self.spawn(i)?;
        }
        for i in 0..self.nodes.len() {
            self.wait_ready(i)?;
        }
        self.ids = self.join_and_layout()?;
        Ok(())
    }

    /// Through the operator's CLI, as docs/cli.md describes: connect node 1 to every other
    /// node, give each a role (its zone by `zone_of`, equal capacity) and apply layout v1.
    fn join_and_layout(&self) -> Result<Vec<String>, String> {
        let mut ids = Vec::new();
        for i in 0..self.nodes.len() {
            let id = self.cli(i, &["node", "id"])?.trim().to_string();
            if !id.contains('@') {
                return Err(format!("`hangar node id` on n{} printed {id:?}", i + 1));
            }
            ids.push(id);
        }
        for peer in &ids[1..] {
            self.cli_retrying(0, &["node", "connect", peer])?;
        }
        for (i, full) in ids.iter().enumerate() {
            let id = full.split('@').next().expect("checked above");
            let zone = zone_name(zone_of(i, self.opts.zones));
            self.cli_retrying(0, &["layout", "assign", id, "--zone", &zone, "--capacity", "1"])?;
        }
        self.cli(0, &["layout", "apply", "--version", "1"])?;
        Ok(ids)
    }

    fn bare_id(&self, i: usize) -> &str {
        self.ids[i].split('@').next().expect("ids hold an @")
    }

    /// Another node than `i` to run layout commands through (the victim may be leaving).
    fn other_than(&self, i: usize) -> usize {
        (i + 1) % self.nodes.len()
    }

    /// Stages removing node `i` and applies it as the next layout version.
    pub fn layout_remove(&self, i: usize) -> Result<(), String> {
        let via = self.other_than(i);
        self.cli(via, &["layout", "remove", self.bare_id(i)])?;
        self.apply_next(via)
    }

    /// Gives node `i` its role back (its zone, capacity 1) in the next layout version.
    pub fn layout_add(&self, i: usize) -> Result<(), String> {
        let via = self.other_than(i);
        let zone = zone_name(zone_of(i, self.opts.zones));
        self.cli(via, &["layout", "assign", self.bare_id(i), "--zone", &zone, "--capacity", "1"])?;
        self.apply_next(via)
    }

    fn apply_next(&self, via: usize) -> Result<(), String> {
        let shown = self.cli(via, &["--json", "layout", "show"])?;
        let value: serde_json::Value =
            serde_json::from_str(&shown).map_err(|e| format!("layout show --json: {e}"))?;
        let version = value["version"]
            .as_u64()
            .ok_or_else(|| format!("layout show --json has no version: {shown}"))?;
        let next = (version + 1).to_string();
        self.cli(via, &["layout", "apply", "--version", &next]).map(drop)
    }

    /// Runs `hangar -c <node i's config> ARGS` from the root namespace (the admin API
    /// listens on the node's bridge address).
    pub fn cli(&self, i: usize, args: &[&str]) -> Result<String, String> {
        let config = self.nodes[i].config_path();
        let mut full = vec!["-c", config.to_str().expect("output paths are UTF-8")];
        full.extend_from_slice(args);
        let bin = self.opts.hangar_bin.to_str().expect("binary paths are UTF-8");
        netns::run(bin, &full)
    }

    /// `cli`, retried for a few seconds: a node that just started may not answer yet.
    fn cli_retrying(&self, i: usize, args: &[&str]) -> Result<String, String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.cli(i, args) {
                Ok(out) => return Ok(out),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(300)),
            }
        }
    }

    /// Starts node `i`'s server inside its namespace, appending to its log.
    fn spawn(&mut self, i: usize) -> Result<(), String> {
        let node = &self.nodes[i];
        let log_path = node.dir.join("node.log");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
        let err = log.try_clone().map_err(|e| format!("log: {e}"))?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &netns::netns_name(node.number)])
            .arg(&self.opts.hangar_bin)
            .arg("-c")
            .arg(node.config_path())
            .arg("server")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err));
        if self.opts.fake_clock {
            // The wall clock follows the file (re-read at every call); monotonic time stays
            // real, so timeouts keep working while the node believes another date.
            cmd.env("LD_PRELOAD", LIBFAKETIME)
                .env("FAKETIME_TIMESTAMP_FILE", node.clock_file())
                .env("FAKETIME_NO_CACHE", "1")
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        }
        // `ip netns exec` execs the server in place, so this pid is the server's.
        let child = cmd.spawn().map_err(|e| format!("cannot start n{}: {e}", node.number))?;
        let node = &mut self.nodes[i];
        node.child = Some(child);
        node.paused = false;
        Ok(())
    }

    fn wait_ready(&mut self, i: usize) -> Result<(), String> {
        let addr = self.nodes[i].s3_addr();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            let node = &mut self.nodes[i];
            if let Some(status) = node.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                return Err(format!(
                    "n{} exited ({status}) while starting; see {}",
                    node.number,
                    node.dir.join("node.log").display()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!("n{} does not accept S3 connections at {addr}", node.number));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn signal(&self, i: usize, sig: &str) -> Result<(), String> {
        let Some(child) = &self.nodes[i].child else { return Ok(()) };
        netns::run("kill", &[sig, &child.id().to_string()]).map(drop)
    }

    /// SIGKILL: the process dies without flushing anything it has not synced.
    pub fn kill(&mut self, i: usize) -> Result<(), String> {
        self.signal(i, "-KILL")?;
        if let Some(mut child) = self.nodes[i].child.take() {
            child.wait().map_err(|e| format!("wait for n{}: {e}", i + 1))?;
        }
        Ok(())
    }

    /// Starts a killed node again (a no-op for a running one) and waits until it serves.
    pub fn restart(&mut self, i: usize) -> Result<(), String> {
        if self.nodes[i].child.is_some() {
            return Ok(());
        }
        self.spawn(i)?;
        self.wait_ready(i)
    }

    pub fn pause(&mut self, i: usize) -> Result<(), String> {
        self.signal(i, "-STOP")?;
        self.nodes[i].paused = true;
        Ok(())
    }

    pub fn resume(&mut self, i: usize) -> Result<(), String> {
        if self.nodes[i].paused {
            self.signal(i, "-CONT")?;
            self.nodes[i].paused = false;
        }
        Ok(())
    }

    /// Moves node `i`'s wall clock by `offset_s` seconds from real time (0: back to real).
    pub fn set_clock(&self, i: usize, offset_s: i64) -> Result<(), String> {
        let line = format!("{offset_s:+}\n");
        fs::write(self.nodes[i].clock_file(), line).map_err(|e| format!("clock file: {e}"))
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Stops every process and removes the network. Never fails half-way: it logs what it
    /// could not undo and goes on, then `netns::cleanup` catches anything left.
    pub fn teardown(&mut self) {
        for i in 0..self.nodes.len() {
            let _ = self.resume(i);
            if let Err(e) = self.kill(i) {
                eprintln!("teardown: {e}");
            }
        }
        if let Err(e) = netns::cleanup() {
            eprintln!("teardown: {e}");
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// The TOML configuration of node `number`: everything bound to its namespace's address.
fn config_text(opts: &ClusterOptions, number: usize) -> String {
    let ip = netns::node_ip(number);
    format!(
        "# Written by hangar-jepsen for node n{n}.\n\
         metadata_dir = \"meta\"\n\
         data_dir = \"data\"\n\
         replication_factor = {rf}\n\
         consistency_mode = \"{mode}\"\n\
         rpc_bind_addr = \"{ip}:{RPC_PORT}\"\n\
         rpc_public_addr = \"{ip}:{RPC_PORT}\"\n\
         rpc_secret = \"{RPC_SECRET}\"\n\n\
         [s3_api]\n\
         api_bind_addr = \"{ip}:{S3_PORT}\"\n\
         s3_region = \"{REGION}\"\n\n\
         [[s3_api.access_keys]]\n\
         id = \"{ACCESS_KEY}\"\n\
         secret = \"{SECRET_KEY}\"\n\n\
         [admin]\n\
         api_bind_addr = \"{ip}:{ADMIN_PORT}\"\n\
         admin_token = \"{ADMIN_TOKEN}\"\n",
        n = number,
        rf = opts.replication_factor,
        mode = opts.consistency_mode,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_binds_the_node_address_and_names_the_mode() {
        let opts = ClusterOptions {
            nodes: 1,
            hangar_bin: PathBuf::from("hangar"),
            consistency_mode: "dangerous".into(),
            replication_factor: 1,
            fake_clock: false,
            zones: 1,
        };
        let text = config_text(&opts, 1);
        assert!(text.contains("api_bind_addr = \"10.77.0.11:3900\""), "{text}");
        assert!(text.contains("consistency_mode = \"dangerous\""), "{text}");
    }

    #[test]
    fn zones_take_the_nodes_in_turn() {
        let of = |zones| (0..5).map(|i| zone_name(zone_of(i, zones))).collect::<Vec<_>>();
        assert_eq!(of(3), ["z1", "z2", "z3", "z1", "z2"]);
        assert_eq!(of(5), ["z1", "z2", "z3", "z4", "z5"]);
    }
}
