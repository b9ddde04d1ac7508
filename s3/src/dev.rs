//! `hangar dev`: a single-node server for development, with no configuration to write.
//!
//! Everything lives in one directory: at first start it receives a generated `hangar.toml`
//! (fresh access key, RPC secret and admin token from OS randomness, metadata under `meta/`,
//! data under `data/`, the admin API on 127.0.0.1:3903) and `credentials.env` (shell
//! exports for the aws CLI and SDKs). Later starts reuse both, so data and credentials
//! survive restarts; `hangar server -c DIR/hangar.toml` runs the very same node. Port flags given on a later start are written back into `hangar.toml`.
//!
//! The dev server reads no environment overrides: the files in the directory are the whole
//! truth, which is what makes its printed credentials trustworthy.

use std::fmt::Write as _;
use std::fs::{File, TryLockError};
use std::io::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::config::{Config, ConfigError, DEFAULT_S3_REGION};

pub mod cluster;
use crate::runtime::os_random_hex;

pub const DEFAULT_DIR: &str = "./hangar-dev";
pub const DEFAULT_S3_PORT: u16 = 3900;
pub const DEFAULT_RPC_PORT: u16 = 3901;
pub const DEFAULT_WEB_PORT: u16 = 3902;
pub const DEFAULT_ADMIN_PORT: u16 = 3903;
/// The bucket a dev server always has, so `aws s3 ls s3://hangar` works at once.
pub const DEV_BUCKET: &str = "hangar";
pub const CONFIG_FILE: &str = "hangar.toml";
pub const CREDENTIALS_FILE: &str = "credentials.env";
/// Held (flock) by the dev server owning the directory.
pub const LOCK_FILE: &str = ".lock";

#[derive(Debug)]
pub enum DevError {
    Io {
        path: PathBuf,
        source: io::Error,
    },
    /// Another `hangar dev` runs on this directory.
    Busy {
        dir: PathBuf,
    },
    Config(ConfigError),
}

impl std::fmt::Display for DevError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DevError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            DevError::Busy { dir } => {
                write!(f, "another hangar dev is running on {}", dir.display())
            }
            DevError::Config(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for DevError {}

/// What goes into a generated dev configuration.
struct DevSettings {
    replication_factor: usize,
    s3_port: u16,
    rpc_port: u16,
    admin_port: u16,
    web_port: u16,
    region: String,
    rpc_secret: String,
    admin_token: String,
    /// Access key id → secret.
    keys: Vec<(String, String)>,
}

/// Proof that this process owns a dev directory; released when dropped (or at exit).
pub struct DirLock {
    _file: File,
}

/// Locks `dir` for this process. Taken before any file is written: a second dev server on
/// the same directory must not rewrite the ports and credentials of the running one.
fn lock_dir(dir: &Path) -> Result<DirLock, DevError> {
    let path = dir.join(LOCK_FILE);
    let file = File::create(&path).map_err(|source| io_err(&path, source))?;
    match file.try_lock() {
        Ok(()) => Ok(DirLock { _file: file }),
        Err(TryLockError::WouldBlock) => Err(DevError::Busy { dir: dir.to_path_buf() }),
        Err(TryLockError::Error(source)) => Err(io_err(&path, source)),
    }
}

/// Locks `dir` and loads `dir/hangar.toml`, creating the directory and the file at first
/// start. `ports` are the S3, RPC, admin and website ports asked for; explicit ports that
/// differ from the file's are written back.
pub fn prepare(dir: &Path, ports: [Option<u16>; 4]) -> Result<(Config, DirLock), DevError> {
    prepare_node(dir, ports, Shared { rf: 1, from: None })
}

/// Most nodes `hangar dev --nodes N` runs (one process, loopback ports).
pub const CLUSTER_NODES_MAX: usize = 5;
/// Replication factor of a dev cluster: one copy per node, at most three.
pub const CLUSTER_RF_MAX: usize = 3;

/// Ports of node `i` (from 1) of a dev cluster: S3 3900 + 10·(i−1), RPC +1, admin +3,
/// website +2 (in `prepare`'s order: S3, RPC, admin, website).
pub fn cluster_ports(i: usize) -> [u16; 4] {
    let base = DEFAULT_S3_PORT + 10 * (i as u16 - 1);
    [base, base + 1, base + 3, base + 2]
}

/// Locks and loads (or generates) `dir/node1` … `dir/nodeN` for `hangar dev --nodes N`.
/// Every node shares node 1's RPC secret, access keys and region; each has its own admin
/// token, data and ports (`cluster_ports`).
pub fn prepare_cluster(dir: &Path, nodes: usize) -> Result<Vec<(Config, DirLock)>, DevError> {
    assert!((2..=CLUSTER_NODES_MAX).contains(&nodes), "checked by the caller");
    let rf = nodes.min(CLUSTER_RF_MAX);
    let mut out: Vec<(Config, DirLock)> = Vec::with_capacity(nodes);
    for i in 1..=nodes {
        let ports = cluster_ports(i).map(Some);
        let node_dir = dir.join(format!("node{i}"));
        let shared = Shared { rf, from: out.first().map(|(c, _)| c) };
        out.push(prepare_node(&node_dir, ports, shared)?);
    }
    Ok(out)
}

/// What the nodes of a dev cluster share.
#[derive(Clone, Copy)]
struct Shared<'a> {
    rf: usize,
    /// Node 1's configuration: its RPC secret, keys and region (`None`: generate them).
    from: Option<&'a Config>,
}

fn prepare_node(
    dir: &Path,
    ports: [Option<u16>; 4],
    shared: Shared<'_>,
) -> Result<(Config, DirLock), DevError> {
    std::fs::create_dir_all(dir).map_err(|source| io_err(dir, source))?;
    let lock = lock_dir(dir)?;
    let config = load_or_generate(dir, ports, shared)?;
    Ok((config, lock))
}

fn load_or_generate(
    dir: &Path,
    ports: [Option<u16>; 4],
    shared: Shared<'_>,
) -> Result<Config, DevError> {
    let [s3_port, rpc_port, admin_port, web_port] = ports;
    let path = dir.join(CONFIG_FILE);
    let no_env = |_: &str| None;
    if !path.exists() {
        let settings = DevSettings {
            replication_factor: shared.rf,
            s3_port: s3_port.unwrap_or(DEFAULT_S3_PORT),
            rpc_port: rpc_port.unwrap_or(DEFAULT_RPC_PORT),
            admin_port: admin_port.unwrap_or(DEFAULT_ADMIN_PORT),
            web_port: web_port.unwrap_or(DEFAULT_WEB_PORT),
            region: shared.from.map_or(DEFAULT_S3_REGION.into(), |c| c.s3_api.s3_region.clone()),
            rpc_secret: shared.from.map_or_else(|| os_random_hex(32), |c| c.rpc_secret.0.clone()),
            admin_token: os_random_hex(32),
            // AWS-style shape: "GK" + 24 hex digits, a 64-hex-digit secret.
            keys: match shared.from {
                Some(c) => {
                    c.s3_api.access_keys.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect()
                }
                None => vec![(format!("GK{}", os_random_hex(12)), os_random_hex(32))],
            },
        };
        write_private(&path, &render(&settings))?;
        tracing::info!(path = %path.display(), "generated a dev configuration");
    }
    let config = Config::load(&path, &no_env).map_err(DevError::Config)?;
    let wanted_s3 = s3_port.unwrap_or(config.s3_api.api_bind_addr.port());
    let wanted_rpc = rpc_port.unwrap_or(config.rpc_bind_addr.port());
    let wanted_admin = admin_port.unwrap_or(config.admin.api_bind_addr.port());
    // A directory made before the website endpoint existed gets one now.
    let configured_web = config.s3_web.as_ref().map(|w| w.bind_addr.port());
    let wanted_web = web_port.or(configured_web).unwrap_or(DEFAULT_WEB_PORT);
    // A directory made before the admin API existed gets a token now.
    let admin_token = config.admin.admin_token.as_ref().map(|t| t.0.clone());
    if wanted_s3 == config.s3_api.api_bind_addr.port()
        && wanted_rpc == config.rpc_bind_addr.port()
        && wanted_admin == config.admin.api_bind_addr.port()
        && configured_web == Some(wanted_web)
        && admin_token.is_some()
    {
        return Ok(config);
    }
    let settings = DevSettings {
        replication_factor: config.replication_factor,
        s3_port: wanted_s3,
        rpc_port: wanted_rpc,
        admin_port: wanted_admin,
        web_port: wanted_web,
        region: config.s3_api.s3_region.clone(),
        rpc_secret: config.rpc_secret.0.clone(),
        admin_token: admin_token.unwrap_or_else(|| os_random_hex(32)),
        keys: config.s3_api.access_keys.iter().map(|(k, s)| (k.clone(), s.0.clone())).collect(),
    };
    write_private(&path, &render(&settings))?;
    tracing::info!(path = %path.display(), "rewrote the dev configuration (ports, new sections)");
    Config::load(&path, &no_env).map_err(DevError::Config)
}

fn render(s: &DevSettings) -> String {
    let mut out = String::new();
    out.push_str(
        "# Generated by `hangar dev`; `hangar server -c` on this file runs the same node.\n\
         # Relative paths are relative to this file's directory.\n\
         # Zones and capacities live in the cluster layout (`hangar layout show`).\n",
    );
    out.push_str("metadata_dir = \"meta\"\ndata_dir = \"data\"\n");
    let _ = writeln!(out, "replication_factor = {}", s.replication_factor);
    out.push_str("consistency_mode = \"consistent\"\n");
    let _ = writeln!(out, "rpc_bind_addr = \"127.0.0.1:{}\"", s.rpc_port);
    let _ = writeln!(out, "rpc_secret = \"{}\"\n", s.rpc_secret);
    out.push_str("[s3_api]\n");
    let _ = writeln!(out, "api_bind_addr = \"127.0.0.1:{}\"", s.s3_port);
    let _ = writeln!(out, "s3_region = \"{}\"", s.region);
    // Virtual-host-style addressing for clients that use it: `bucket.localhost` is
    // loopback where *.localhost resolves (RFC 6761: systemd-resolved, curl, browsers).
    out.push_str("root_domain = \".localhost\"\n");
    for (id, secret) in &s.keys {
        let _ = write!(out, "\n[[s3_api.access_keys]]\nid = \"{id}\"\nsecret = \"{secret}\"\n");
    }
    out.push_str(
        "\n# Static websites of buckets with a website configuration, anonymously:\n\
         # http://<bucket>.localhost:<port>/ (aws s3 website s3://<bucket> --index-document \
         index.html)\n[s3_web]\n",
    );
    let _ = writeln!(out, "bind_addr = \"127.0.0.1:{}\"", s.web_port);
    out.push_str("root_domain = \".localhost\"\n");
    out.push_str("\n# The admin API: `hangar -c <this file> status`, `key list`, ...\n[admin]\n");
    let _ = writeln!(out, "api_bind_addr = \"127.0.0.1:{}\"", s.admin_port);
    let _ = writeln!(out, "admin_token = \"{}\"", s.admin_token);
    out
}

/// The URL clients should use for an S3 bind address: a wildcard bind is reached locally.
pub fn endpoint_url(bind: SocketAddr) -> String {
    let ip = match bind.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, bind.port()))
}

/// Shell lines exporting the first access key of `config` for the aws CLI and SDKs.
pub fn credential_exports(config: &Config) -> String {
    let (id, secret) = config
        .s3_api
        .access_keys
        .iter()
        .next()
        .expect("a validated config has at least one access key");
    let region = &config.s3_api.s3_region;
    format!(
        "export AWS_ACCESS_KEY_ID={id}\nexport AWS_SECRET_ACCESS_KEY={}\n\
         export AWS_REGION={region}\nexport AWS_DEFAULT_REGION={region}\n\
         export AWS_ENDPOINT_URL={}\n",
        secret.0,
        endpoint_url(config.s3_api.api_bind_addr)
    )
}

/// The comment line `hangar dev` prints about its website endpoint (not an export: the
/// export lines are what scripts parse).
pub fn website_hint(bind: SocketAddr, config: &Config) -> String {
    let domain = config.s3_web.as_ref().and_then(|w| w.root_domain.as_deref());
    let domain = domain.map(|d| d.trim_start_matches('.')).unwrap_or("localhost");
    format!(
        "# websites: http://<bucket>.{domain}:{port}/ (a bucket with a website configuration; \
         {url} with Host: <bucket>.{domain})\n",
        port = bind.port(),
        url = endpoint_url(bind),
    )
}

/// Writes `dir/credentials.env` (refreshed at every start: ports may have changed).
pub fn write_credentials(dir: &Path, config: &Config) -> Result<(), DevError> {
    write_private(&dir.join(CREDENTIALS_FILE), &credential_exports(config))
}

/// Atomically replaces `path` with `text`, readable by the owner only: both dev files hold
/// secrets.
fn write_private(path: &Path, text: &str) -> Result<(), DevError> {
    let tmp = path.with_extension("tmp");
    let result = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    result.map_err(|source| io_err(path, source))
}

fn io_err(path: &Path, source: io::Error) -> DevError {
    DevError::Io { path: path.to_path_buf(), source }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempDir(PathBuf);

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn temp_dir(name: &str) -> TempDir {
        TempDir(std::env::temp_dir().join(format!("hangar-dev-{}-{name}", std::process::id())))
    }

    #[test]
    fn first_start_generates_and_restart_reuses() {
        let dir = temp_dir("reuse");
        let (first, lock) = prepare(&dir.0, [Some(4900), None, None, Some(4904)]).unwrap();
        let busy = prepare(&dir.0, [Some(4999), None, None, None]);
        assert!(matches!(busy, Err(DevError::Busy { .. })));
        drop(lock);
        assert_eq!(first.s3_api.api_bind_addr.to_string(), "127.0.0.1:4900");
        assert_eq!(first.rpc_bind_addr.port(), DEFAULT_RPC_PORT);
        let (id, secret) = first.s3_api.access_keys.iter().next().unwrap();
        assert!(id.starts_with("GK") && id.len() == 26, "{id}");
        assert_eq!(secret.0.len(), 64);
        assert_eq!(first.metadata_dir, dir.0.join("meta"));
        assert_eq!(first.admin.api_bind_addr.to_string(), "127.0.0.1:3903");
        let token = first.admin.admin_token.clone().expect("dev configs carry an admin token");
        assert_eq!(token.0.len(), 64);
        let web = first.s3_web.as_ref().expect("dev configs serve websites");
        assert_eq!(web.bind_addr.to_string(), "127.0.0.1:4904");
        let (again, _) = prepare(&dir.0, [None, None, None, None]).unwrap();
        assert_eq!(again.s3_web.map(|w| w.bind_addr.port()), Some(4904));
        assert_eq!(again.admin.admin_token, Some(token.clone()));
        assert_eq!(again.s3_api.access_keys, first.s3_api.access_keys);
        assert_eq!(again.rpc_secret, first.rpc_secret);
        assert_eq!(again.s3_api.api_bind_addr.port(), 4900);
        let (moved, _) = prepare(&dir.0, [Some(4901), Some(4902), Some(4903), None]).unwrap();
        assert_eq!(moved.admin.api_bind_addr.port(), 4903);
        assert_eq!(moved.admin.admin_token, Some(token));
        assert_eq!(moved.s3_api.access_keys, first.s3_api.access_keys);
        assert_eq!(moved.rpc_bind_addr.port(), 4902);
        write_credentials(&dir.0, &moved).unwrap();
        let env = std::fs::read_to_string(dir.0.join(CREDENTIALS_FILE)).unwrap();
        assert!(env.contains(&format!("export AWS_ACCESS_KEY_ID={id}\n")));
        assert!(env.contains("export AWS_ENDPOINT_URL=http://127.0.0.1:4901\n"));
        assert!(env.contains("export AWS_REGION=hangar\n"));
    }

    /// A directory made before the admin API existed has no [admin] section; the next start
    /// must give it one (with a token) and keep its keys, so `hangar -c … status` works.
    #[test]
    fn a_config_without_an_admin_section_gets_one() {
        let dir = temp_dir("no-admin");
        std::fs::create_dir_all(&dir.0).unwrap();
        let old = format!(
            "metadata_dir = \"meta\"\ndata_dir = \"data\"\nrpc_secret = \"{}\"\n\
             [s3_api]\napi_bind_addr = \"127.0.0.1:4910\"\n\
             [[s3_api.access_keys]]\nid = \"GK0123456789abcdef\"\n\
             secret = \"0123456789abcdef0123\"\n",
            "cd".repeat(32)
        );
        std::fs::write(dir.0.join(CONFIG_FILE), old).unwrap();
        let (config, _lock) = prepare(&dir.0, [None, None, None, None]).unwrap();
        assert_eq!(config.admin.api_bind_addr.port(), DEFAULT_ADMIN_PORT);
        let web = config.s3_web.expect("an old directory gets the website endpoint");
        assert_eq!(web.bind_addr.port(), DEFAULT_WEB_PORT);
        assert_eq!(config.admin.admin_token.map(|t| t.0.len()), Some(64));
        assert!(config.s3_api.access_keys.contains_key("GK0123456789abcdef"));
        assert_eq!(config.s3_api.api_bind_addr.port(), 4910);
    }

    /// The nodes of `hangar dev --nodes 3` must share the RPC secret (or they cannot talk)
    /// and the access key (the exports work on every node), and differ in ports and admin
    /// tokens; a restart reuses every file.
    #[test]
    fn a_dev_cluster_shares_its_secret_and_key_and_spreads_its_ports() {
        let dir = temp_dir("cluster");
        let nodes = prepare_cluster(&dir.0, 3).unwrap();
        let configs: Vec<&Config> = nodes.iter().map(|(c, _)| c).collect();
        for (i, c) in configs.iter().enumerate() {
            assert_eq!(c.replication_factor, 3);
            assert_eq!(c.rpc_secret, configs[0].rpc_secret);
            assert_eq!(c.s3_api.access_keys, configs[0].s3_api.access_keys);
            let ports = [c.s3_api.api_bind_addr.port(), c.rpc_bind_addr.port()];
            assert_eq!(ports, [3900 + 10 * i as u16, 3901 + 10 * i as u16]);
            assert_eq!(c.admin.api_bind_addr.port(), 3903 + 10 * i as u16);
            let web = c.s3_web.as_ref().map(|w| w.bind_addr.port());
            assert_eq!(web, Some(3902 + 10 * i as u16));
            assert_eq!(c.metadata_dir, dir.0.join(format!("node{}", i + 1)).join("meta"));
        }
        assert_ne!(configs[0].admin.admin_token, configs[1].admin.admin_token);
        let tokens: Vec<_> = configs.iter().map(|c| c.admin.admin_token.clone()).collect();
        assert!(matches!(prepare_cluster(&dir.0, 3), Err(DevError::Busy { .. })));
        drop(nodes);
        let again = prepare_cluster(&dir.0, 3).unwrap();
        let again: Vec<_> = again.iter().map(|(c, _)| c.admin.admin_token.clone()).collect();
        assert_eq!(again, tokens);
    }

    #[test]
    fn wildcard_binds_are_reached_on_loopback() {
        assert_eq!(endpoint_url("0.0.0.0:3900".parse().unwrap()), "http://127.0.0.1:3900");
        assert_eq!(endpoint_url("[::]:3900".parse().unwrap()), "http://[::1]:3900");
        assert_eq!(endpoint_url("10.1.2.3:80".parse().unwrap()), "http://10.1.2.3:80");
    }
}
