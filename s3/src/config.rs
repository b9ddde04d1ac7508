//! The node's TOML configuration file.
//!
//! Parsing is two-stage: serde reads a `Raw*` mirror of the file (every field `Spanned`, so
//! a bad value can be reported with its line), then `validate` turns it into a `Config` of
//! checked, typed values. Unknown keys are refused (`deny_unknown_fields`): a misspelled
//! option silently falling back to its default is how production outages start.
//!
//! Relative paths (`metadata_dir`, `data_dir`, `rpc_secret_file`) are resolved against the
//! directory of the configuration file, not the working directory, so a config keeps
//! meaning the same thing wherever the server is started from.
//!
//! Environment overrides, applied after the file: `HANGAR_RPC_SECRET` replaces the RPC
//! secret; `HANGAR_ACCESS_KEY_ID` + `HANGAR_SECRET_ACCESS_KEY` add one S3 access key;
//! `HANGAR_ADMIN_TOKEN` replaces the admin API token.
//!
//! Access keys listed here are imported into the replicated key table at every start
//! (idempotent, allowed to create buckets); the table is the truth, managed with
//! `hangar key …`. Every key is documented in docs/configuration.md.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use hangar_engine::layout::{NodeId, REPLICATION_FACTOR_MAX};
use hangar_engine::seam::DEFAULT_METADATA_CACHE_BYTES;
use hangar_engine::table::ConsistencyMode;
use serde::Deserialize;
use toml::Spanned;

pub const DEFAULT_RPC_BIND_ADDR: &str = "0.0.0.0:3901";
pub const DEFAULT_API_BIND_ADDR: &str = "0.0.0.0:3900";
pub const DEFAULT_S3_REGION: &str = "hangar";
pub const DEFAULT_WEB_BIND_ADDR: &str = "0.0.0.0:3902";
/// The lifecycle worker's pass interval unless configured: once a day.
pub const DEFAULT_LIFECYCLE_INTERVAL_SECS: u64 = 24 * 3600;
/// The largest `metadata_cache_mib` accepted (1 TiB): a bigger figure is a typo.
const MAX_METADATA_CACHE_MIB: u64 = 1 << 20;
/// The admin API listens on loopback unless told otherwise: it manages keys.
pub const DEFAULT_ADMIN_BIND_ADDR: &str = "127.0.0.1:3903";
/// Bearer tokens shorter than this are guessable.
const TOKEN_LEN_MIN: usize = 16;
/// The RPC secret is a 32-byte key in hex, as `openssl rand -hex 32` prints it.
pub const RPC_SECRET_HEX_LEN: usize = 64;
/// AWS's own bounds on access key ids.
const ACCESS_KEY_ID_LEN: Range<usize> = 16..129;
/// Secrets shorter than this are guessable; AWS issues 40 characters.
const SECRET_KEY_LEN_MIN: usize = 16;

/// A secret string that never appears in logs or `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The metadata database and the node id live here (the engine's data root).
    pub metadata_dir: PathBuf,
    /// Object data blocks.
    pub data_dir: PathBuf,
    /// Whether metadata commits are fsynced before a write is acknowledged (default true).
    /// Off: an acknowledged write survives a crash of the process but maybe not of the
    /// machine (power loss, kernel panic).
    pub metadata_fsync: bool,
    /// The same for block files under `data_dir` (default true).
    pub data_fsync: bool,
    /// The most memory, in MiB, the metadata database keeps of its pages (default 32).
    pub metadata_cache_mib: usize,
    pub replication_factor: usize,
    pub consistency_mode: ConsistencyMode,
    pub rpc_bind_addr: SocketAddr,
    /// How other nodes reach this one ("host:port"), gossiped with the layout.
    pub rpc_public_addr: Option<String>,
    /// Peers contacted at start to learn the layout: node id → "host:port".
    pub bootstrap_peers: BTreeMap<NodeId, String>,
    pub rpc_secret: Secret,
    pub s3_api: S3ApiConfig,
    pub admin: AdminConfig,
    /// The static website endpoint; `None` (no `[s3_web]` section): not served.
    pub s3_web: Option<S3WebConfig>,
    /// Seconds between two passes of the bucket lifecycle worker.
    pub lifecycle_interval_secs: u64,
}

/// The `[s3_web]` section: the static website endpoint (`s3api::web`).
#[derive(Clone, Debug)]
pub struct S3WebConfig {
    pub bind_addr: SocketAddr,
    /// `Host: bucket.<root_domain>` names `bucket`; another host is itself a bucket name.
    pub root_domain: Option<String>,
}

/// The `[admin]` section: the admin HTTP API and `/metrics`.
#[derive(Clone, Debug)]
pub struct AdminConfig {
    pub api_bind_addr: SocketAddr,
    /// Bearer token of the admin API; without one, only `/metrics` is served.
    pub admin_token: Option<Secret>,
    /// Bearer token of `/metrics`; without one, `/metrics` is open.
    pub metrics_token: Option<Secret>,
}

#[derive(Clone, Debug)]
pub struct S3ApiConfig {
    pub api_bind_addr: SocketAddr,
    pub s3_region: String,
    /// Virtual-host-style addressing: a request to `Host: bucket.<root_domain>` addresses
    /// `bucket` (a leading `.` is allowed, as Garage writes it); other hosts are path-style.
    pub root_domain: Option<String>,
    /// Access key id → secret key.
    pub access_keys: BTreeMap<String, Secret>,
}

/// Why a configuration was refused.
#[derive(Debug)]
pub enum ConfigError {
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not TOML, an unknown key or a value of the wrong type; toml's message names the
    /// line, column and key.
    Syntax {
        path: PathBuf,
        message: String,
    },
    /// A well-typed value that makes no sense. `origin` is "file:line" or "environment".
    Invalid {
        origin: String,
        key: String,
        problem: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, source } => {
                write!(f, "cannot read config file {}: {source}", path.display())
            }
            ConfigError::Syntax { path, message } => {
                write!(f, "config file {}: {}", path.display(), message.trim_end())
            }
            ConfigError::Invalid { origin, key, problem } => {
                write!(f, "{origin}: invalid `{key}`: {problem}")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    metadata_dir: Spanned<String>,
    data_dir: Spanned<String>,
    metadata_fsync: Option<bool>,
    data_fsync: Option<bool>,
    metadata_cache_mib: Option<Spanned<i64>>,
    replication_factor: Option<Spanned<i64>>,
    consistency_mode: Option<Spanned<String>>,
    rpc_bind_addr: Option<Spanned<String>>,
    rpc_public_addr: Option<Spanned<String>>,
    bootstrap_peers: Option<Vec<Spanned<String>>>,
    rpc_secret: Option<Spanned<String>>,
    rpc_secret_file: Option<Spanned<String>>,
    #[serde(default)]
    s3_api: RawS3Api,
    #[serde(default)]
    admin: RawAdmin,
    s3_web: Option<RawS3Web>,
    lifecycle_interval_secs: Option<Spanned<i64>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawS3Web {
    bind_addr: Option<Spanned<String>>,
    root_domain: Option<Spanned<String>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    api_bind_addr: Option<Spanned<String>>,
    admin_token: Option<Spanned<String>>,
    metrics_token: Option<Spanned<String>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawS3Api {
    api_bind_addr: Option<Spanned<String>>,
    s3_region: Option<Spanned<String>>,
    root_domain: Option<Spanned<String>>,
    #[serde(default)]
    access_keys: Vec<RawAccessKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccessKey {
    id: Spanned<String>,
    secret: Spanned<String>,
}

/// Where a value came from, to word errors.
struct Source<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Source<'_> {
    fn invalid(&self, key: &str, span: Option<Range<usize>>, problem: String) -> ConfigError {
        let origin = match span {
            Some(span) => {
                let line = self.text[..span.start.min(self.text.len())].matches('\n').count();
                format!("{}:{}", self.path.display(), line + 1)
            }
            None => self.path.display().to_string(),
        };
        ConfigError::Invalid { origin, key: key.to_string(), problem }
    }

    /// Resolves a path relative to the config file's directory.
    fn path_of(&self, value: &str) -> PathBuf {
        let base = self.path.parent().unwrap_or(Path::new("."));
        base.join(value)
    }
}

fn env_invalid(key: &str, problem: String) -> ConfigError {
    ConfigError::Invalid { origin: "environment".into(), key: key.into(), problem }
}

impl Config {
    /// Reads and validates `path`, then applies overrides from `env` (`std::env::var` in
    /// production, a map in tests).
    pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Config::parse(&text, path, env)
    }

    /// Validates `text`, the contents of the file at `path`.
    pub fn parse(
        text: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let src = Source { path, text };
        let mut config = validate(raw, &src)?;
        apply_env(&mut config, env)?;
        if config.rpc_secret.0.is_empty() {
            let problem = "no RPC secret: set rpc_secret, rpc_secret_file or HANGAR_RPC_SECRET \
                           (generate one with `openssl rand -hex 32`)";
            return Err(src.invalid("rpc_secret", None, problem.into()));
        }
        Ok(config)
    }
}

fn validate(raw: RawConfig, src: &Source) -> Result<Config, ConfigError> {
    let metadata_dir = dir(src, "metadata_dir", &raw.metadata_dir)?;
    let data_dir = dir(src, "data_dir", &raw.data_dir)?;
    let rf_max = REPLICATION_FACTOR_MAX as u64;
    let replication_factor = whole_number(
        src,
        "replication_factor",
        &raw.replication_factor,
        1,
        1..=rf_max,
        &format!("a replication factor in 1..={REPLICATION_FACTOR_MAX}"),
    )? as usize;
    let consistency_mode = match &raw.consistency_mode {
        None => ConsistencyMode::Consistent,
        Some(mode) => ConsistencyMode::parse(mode.get_ref()).ok_or_else(|| {
            let problem = format!(
                "{:?}: expected \"consistent\", \"degraded\" or \"dangerous\"",
                mode.get_ref()
            );
            src.invalid("consistency_mode", Some(mode.span()), problem)
        })?,
    };
    let rpc_bind_addr =
        socket_addr(src, "rpc_bind_addr", &raw.rpc_bind_addr, DEFAULT_RPC_BIND_ADDR)?;
    let rpc_public_addr = match &raw.rpc_public_addr {
        None => None,
        Some(addr) => Some(host_port(src, "rpc_public_addr", addr)?),
    };
    let mut bootstrap_peers = BTreeMap::new();
    for peer in raw.bootstrap_peers.iter().flatten() {
        let (id, addr) = parse_peer(peer.get_ref())
            .map_err(|problem| src.invalid("bootstrap_peers", Some(peer.span()), problem))?;
        bootstrap_peers.insert(id, addr);
    }
    let rpc_secret = rpc_secret(src, &raw)?;
    let s3_api = validate_s3_api(src, &raw.s3_api)?;
    let admin = validate_admin(src, &raw.admin)?;
    let s3_web = match &raw.s3_web {
        None => None,
        Some(web) => Some(S3WebConfig {
            bind_addr: socket_addr(src, "s3_web.bind_addr", &web.bind_addr, DEFAULT_WEB_BIND_ADDR)?,
            root_domain: root_domain(src, "s3_web.root_domain", &web.root_domain)?,
        }),
    };
    let lifecycle_interval_secs = whole_number(
        src,
        "lifecycle_interval_secs",
        &raw.lifecycle_interval_secs,
        DEFAULT_LIFECYCLE_INTERVAL_SECS,
        1..=u64::MAX,
        "a number of seconds ≥ 1",
    )?;
    let metadata_cache_mib = whole_number(
        src,
        "metadata_cache_mib",
        &raw.metadata_cache_mib,
        (DEFAULT_METADATA_CACHE_BYTES >> 20) as u64,
        1..=MAX_METADATA_CACHE_MIB,
        &format!("a number of MiB from 1 to {MAX_METADATA_CACHE_MIB}"),
    )? as usize;
    Ok(Config {
        metadata_dir,
        data_dir,
        metadata_fsync: raw.metadata_fsync.unwrap_or(true),
        data_fsync: raw.data_fsync.unwrap_or(true),
        metadata_cache_mib,
        replication_factor,
        consistency_mode,
        rpc_bind_addr,
        rpc_public_addr,
        bootstrap_peers,
        rpc_secret,
        s3_api,
        admin,
        s3_web,
        lifecycle_interval_secs,
    })
}

/// A whole-number field: `default` when absent, else its value if within `range`, else an
/// error saying "VALUE is not WHAT" at the value.
fn whole_number(
    src: &Source,
    field: &str,
    raw: &Option<Spanned<i64>>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
    what: &str,
) -> Result<u64, ConfigError> {
    let Some(value) = raw else { return Ok(default) };
    match u64::try_from(*value.get_ref()) {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => {
            let problem = format!("{} is not {what}", value.get_ref());
            Err(src.invalid(field, Some(value.span()), problem))
        }
    }
}

fn validate_admin(src: &Source, raw: &RawAdmin) -> Result<AdminConfig, ConfigError> {
    let api_bind_addr =
        socket_addr(src, "admin.api_bind_addr", &raw.api_bind_addr, DEFAULT_ADMIN_BIND_ADDR)?;
    let token = |key: &str, value: &Option<Spanned<String>>| match value {
        None => Ok(None),
        Some(v) => match token_problem(v.get_ref()) {
            Some(problem) => Err(src.invalid(key, Some(v.span()), problem)),
            None => Ok(Some(Secret(v.get_ref().clone()))),
        },
    };
    Ok(AdminConfig {
        api_bind_addr,
        admin_token: token("admin.admin_token", &raw.admin_token)?,
        metrics_token: token("admin.metrics_token", &raw.metrics_token)?,
    })
}

fn token_problem(token: &str) -> Option<String> {
    let ok = token.len() >= TOKEN_LEN_MIN && token.bytes().all(|b| b.is_ascii_graphic());
    (!ok).then(|| {
        format!(
            "must be at least {TOKEN_LEN_MIN} printable ASCII characters, no spaces (e.g. from \
             `openssl rand -hex 32`)"
        )
    })
}

fn validate_s3_api(src: &Source, raw: &RawS3Api) -> Result<S3ApiConfig, ConfigError> {
    let api_bind_addr =
        socket_addr(src, "s3_api.api_bind_addr", &raw.api_bind_addr, DEFAULT_API_BIND_ADDR)?;
    let s3_region = match &raw.s3_region {
        None => DEFAULT_S3_REGION.to_string(),
        Some(region) => {
            let r = region.get_ref();
            let ok = !r.is_empty()
                && r.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !ok {
                let problem = format!("{r:?}: use lowercase letters, digits and '-'");
                return Err(src.invalid("s3_api.s3_region", Some(region.span()), problem));
            }
            r.clone()
        }
    };
    let root_domain = root_domain(src, "s3_api.root_domain", &raw.root_domain)?;
    let mut access_keys = BTreeMap::new();
    for key in &raw.access_keys {
        let (id, secret) = (key.id.get_ref(), key.secret.get_ref());
        let span = Some(key.id.span());
        if let Some(problem) = access_key_problem(id) {
            return Err(src.invalid("s3_api.access_keys.id", span, problem));
        }
        if let Some(problem) = secret_key_problem(secret) {
            let span = Some(key.secret.span());
            return Err(src.invalid("s3_api.access_keys.secret", span, problem));
        }
        if access_keys.insert(id.clone(), Secret(secret.clone())).is_some() {
            let problem = format!("{id:?} is listed twice");
            return Err(src.invalid("s3_api.access_keys.id", span, problem));
        }
    }
    Ok(S3ApiConfig { api_bind_addr, s3_region, root_domain, access_keys })
}

/// A root domain for virtual-host-style names (a leading `.` is allowed).
fn root_domain(
    src: &Source,
    key: &str,
    value: &Option<Spanned<String>>,
) -> Result<Option<String>, ConfigError> {
    let Some(domain) = value else { return Ok(None) };
    let d = domain.get_ref().strip_prefix('.').unwrap_or(domain.get_ref());
    let label_ok =
        |l: &str| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !d.split('.').all(label_ok) {
        let problem = format!("{d:?}: a DNS name such as \".s3.example.com\"");
        return Err(src.invalid(key, Some(domain.span()), problem));
    }
    Ok(Some(domain.get_ref().clone()))
}

fn dir(src: &Source, key: &str, value: &Spanned<String>) -> Result<PathBuf, ConfigError> {
    if value.get_ref().trim().is_empty() {
        return Err(src.invalid(key, Some(value.span()), "must not be empty".into()));
    }
    Ok(src.path_of(value.get_ref()))
}

fn socket_addr(
    src: &Source,
    key: &str,
    value: &Option<Spanned<String>>,
    default: &str,
) -> Result<SocketAddr, ConfigError> {
    let Some(value) = value else {
        return Ok(default.parse().expect("defaults are valid addresses"));
    };
    value.get_ref().parse().map_err(|_| {
        let problem = format!("{:?} is not an IP:port address", value.get_ref());
        src.invalid(key, Some(value.span()), problem)
    })
}

/// Parses `<node id>@<host>:<port>`, the form `hangar node id` prints (a node id is 16 hex
/// digits; RPC connections are addressed by id, so an address alone is not enough).
pub fn parse_peer(text: &str) -> Result<(NodeId, String), String> {
    let expected = "expected <node id>@<host>:<port>, as `hangar node id` prints it";
    let Some((id, addr)) = text.split_once('@') else {
        return Err(format!("{text:?}: {expected}"));
    };
    let id = (id.len() == 16)
        .then(|| u64::from_str_radix(id, 16).ok())
        .flatten()
        .filter(|&n| n != 0)
        .ok_or_else(|| format!("{text:?}: {id:?} is not a node id (16 hex digits); {expected}"))?;
    let port_ok = addr
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !port_ok {
        return Err(format!("{text:?}: {addr:?} is not host:port; {expected}"));
    }
    Ok((NodeId(id), addr.to_string()))
}

fn host_port(src: &Source, key: &str, value: &Spanned<String>) -> Result<String, ConfigError> {
    let v = value.get_ref();
    let port_ok = v
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !port_ok {
        let problem = format!("{v:?} is not a host:port address");
        return Err(src.invalid(key, Some(value.span()), problem));
    }
    Ok(v.clone())
}

fn rpc_secret(src: &Source, raw: &RawConfig) -> Result<Secret, ConfigError> {
    let (secret, key, span) = match (&raw.rpc_secret, &raw.rpc_secret_file) {
        (Some(_), Some(file)) => {
            let problem = "set either rpc_secret or rpc_secret_file, not both".to_string();
            return Err(src.invalid("rpc_secret_file", Some(file.span()), problem));
        }
        (Some(secret), None) => (secret.get_ref().clone(), "rpc_secret", Some(secret.span())),
        (None, Some(file)) => {
            let path = src.path_of(file.get_ref());
            let text = std::fs::read_to_string(&path).map_err(|e| {
                let problem = format!("cannot read {}: {e}", path.display());
                src.invalid("rpc_secret_file", Some(file.span()), problem)
            })?;
            (text.trim().to_string(), "rpc_secret_file", Some(file.span()))
        }
        // HANGAR_RPC_SECRET may still supply it; `Config::parse` checks one was given.
        (None, None) => return Ok(Secret(String::new())),
    };
    match rpc_secret_problem(&secret) {
        Some(problem) => Err(src.invalid(key, span, problem)),
        None => Ok(Secret(secret)),
    }
}

fn apply_env(config: &mut Config, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
    if let Some(secret) = env("HANGAR_RPC_SECRET") {
        if let Some(problem) = rpc_secret_problem(&secret) {
            return Err(env_invalid("HANGAR_RPC_SECRET", problem));
        }
        config.rpc_secret = Secret(secret);
    }
    if let Some(token) = env("HANGAR_ADMIN_TOKEN") {
        if let Some(problem) = token_problem(&token) {
            return Err(env_invalid("HANGAR_ADMIN_TOKEN", problem));
        }
        config.admin.admin_token = Some(Secret(token));
    }
    match (env("HANGAR_ACCESS_KEY_ID"), env("HANGAR_SECRET_ACCESS_KEY")) {
        (None, None) => {}
        (Some(id), Some(secret)) => {
            if let Some(problem) = access_key_problem(&id) {
                return Err(env_invalid("HANGAR_ACCESS_KEY_ID", problem));
            }
            if let Some(problem) = secret_key_problem(&secret) {
                return Err(env_invalid("HANGAR_SECRET_ACCESS_KEY", problem));
            }
            config.s3_api.access_keys.insert(id, Secret(secret));
        }
        (Some(_), None) | (None, Some(_)) => {
            let problem = "set both HANGAR_ACCESS_KEY_ID and HANGAR_SECRET_ACCESS_KEY, or neither";
            return Err(env_invalid("HANGAR_ACCESS_KEY_ID", problem.into()));
        }
    }
    Ok(())
}

fn rpc_secret_problem(secret: &str) -> Option<String> {
    let ok = secret.len() == RPC_SECRET_HEX_LEN && secret.bytes().all(|b| b.is_ascii_hexdigit());
    (!ok).then(|| {
        format!(
            "must be {RPC_SECRET_HEX_LEN} hex characters (32 bytes), e.g. from \
             `openssl rand -hex 32`"
        )
    })
}

fn access_key_problem(id: &str) -> Option<String> {
    let ok = ACCESS_KEY_ID_LEN.contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric());
    (!ok).then(|| format!("{id:?}: use 16 to 128 ASCII letters and digits"))
}

fn secret_key_problem(secret: &str) -> Option<String> {
    let ok = secret.len() >= SECRET_KEY_LEN_MIN && secret.bytes().all(|b| b.is_ascii_graphic());
    (!ok).then(|| {
        format!("must be at least {SECRET_KEY_LEN_MIN} printable ASCII characters, no spaces")
    })
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
