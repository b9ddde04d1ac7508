//! The operator verbs of `hangar` (`status`, `key …`, `bucket …`, `worker list`, `layout …`,
//! `node …`, `repair …`): each is one admin API call (`client`; `repair --wait` polls), printed as aligned tables for people (`table`) or as the
//! API's JSON with `--json`. The admin address and token come from the node's config file
//! (`-c FILE`), so `hangar -c hangar-dev/hangar.toml status` works against `hangar dev`.

pub mod client;
pub mod layout;
pub mod repair;
pub mod table;

use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{Value, json};

use crate::s3api::time::format_iso8601;
use client::AdminClient;

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Show the cluster: this node, the layout version, every node and whether it answers.
    Status,
    /// Manage access keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Manage buckets and which keys may use them.
    #[command(subcommand)]
    Bucket(BucketCommand),
    /// Show the background workers.
    #[command(subcommand)]
    Worker(WorkerCommand),
    /// Show and change the cluster layout (which nodes store what).
    #[command(subcommand)]
    Layout(layout::LayoutCommand),
    /// This node's identity; connect it to other nodes.
    #[command(subcommand)]
    Node(layout::NodeCommand),
    /// Launch a repair pass on this node: tables (anti-entropy), blocks (resync) or scrub.
    Repair(repair::RepairArgs),
    /// Apply the buckets' lifecycle rules (expiration, old uploads) now.
    #[command(subcommand)]
    Lifecycle(LifecycleCommand),
}

#[derive(Subcommand, Debug)]
pub enum LifecycleCommand {
    /// Run one lifecycle pass on this node now, for the buckets it is the first replica of
    /// (on a cluster, run it on every node); prints what it did.
    Run,
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Create a key with a generated id and secret (the secret is shown once).
    Create {
        /// A name to recognise the key by.
        #[arg(long, default_value = "")]
        name: String,
        /// Allow the key to create buckets.
        #[arg(long)]
        allow_create_bucket: bool,
    },
    /// List live keys.
    List,
    /// Show a key, its settings and its bucket permissions.
    Info {
        id: String,
        /// Also print the secret.
        #[arg(long)]
        show_secret: bool,
    },
    /// Delete a key for good (its id can never be used again).
    Delete { id: String },
    /// Add an existing key (e.g. from another store); importing it again is a no-op.
    Import {
        id: String,
        /// The secret; `-` reads it from the first line of stdin (keeps it out of `ps`).
        secret: String,
        #[arg(long, default_value = "")]
        name: String,
    },
    /// Allow a key to create buckets.
    Allow {
        id: String,
        #[arg(long, required = true)]
        create_bucket: bool,
    },
    /// Stop a key from creating buckets.
    Deny {
        id: String,
        #[arg(long, required = true)]
        create_bucket: bool,
    },
}

#[derive(Args, Debug)]
pub struct GrantArgs {
    pub bucket: String,
    /// The access key id.
    #[arg(long)]
    pub key: String,
    #[arg(long)]
    pub read: bool,
    #[arg(long)]
    pub write: bool,
    #[arg(long)]
    pub owner: bool,
}

#[derive(Subcommand, Debug)]
pub enum BucketCommand {
    Create {
        name: String,
    },
    List,
    /// Show a bucket: object count, size, and the keys allowed on it.
    Info {
        name: String,
    },
    /// Delete a bucket; it must be empty.
    Delete {
        name: String,
    },
    /// Give a key read, write and/or owner permission on a bucket.
    Allow(GrantArgs),
    /// Take read, write and/or owner permission away from a key.
    Deny(GrantArgs),
    /// Give a bucket another name S3 clients can use (e.g. to rename it without copying).
    Alias {
        bucket: String,
        alias: String,
    },
    /// Remove an alias of a bucket.
    Unalias {
        bucket: String,
        alias: String,
    },
    /// Limit a bucket's total size and/or object count (`none` removes a limit; a limit
    /// not named is unchanged). Writes that would exceed one answer S3 QuotaExceeded.
    SetQuotas {
        name: String,
        /// Bytes, like 500MB, 10GiB, 1T (K/M/G/T are powers of 1000, Ki/Mi/Gi/Ti of 1024),
        /// or `none`.
        #[arg(long)]
        max_size: Option<String>,
        /// A number of objects (old versions count), or `none`.
        #[arg(long)]
        max_objects: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum WorkerCommand {
    List,
}

/// Runs one verb, returning what to print on stdout.
pub async fn run(
    client: &AdminClient,
    command: AdminCommand,
    json_out: bool,
) -> Result<String, String> {
    let (value, out) = match command {
        AdminCommand::Layout(l) => layout::layout(client, l).await?,
        AdminCommand::Node(n) => layout::node(client, n).await?,
        AdminCommand::Repair(r) => repair::repair(client, r).await?,
        other => return run_one(client, other, json_out).await,
    };
    if json_out {
        let mut text = serde_json::to_string_pretty(&value).expect("JSON values serialize");
        text.push('\n');
        return Ok(text);
    }
    Ok(out)
}

/// The verbs that are one admin call each.
async fn run_one(
    client: &AdminClient,
    command: AdminCommand,
    json_out: bool,
) -> Result<String, String> {
    let (method, path, body, show): Call = match command {
        AdminCommand::Status => (Method::GET, "/v1/status".into(), None, show_status),
        AdminCommand::Worker(WorkerCommand::List) => {
            (Method::GET, "/v1/workers".into(), None, show_workers)
        }
        AdminCommand::Lifecycle(LifecycleCommand::Run) => {
            (Method::POST, "/v1/lifecycle/run".into(), None, show_lifecycle_pass)
        }
        AdminCommand::Key(k) => key_request(k)?,
        AdminCommand::Bucket(b) => bucket_request(b)?,
        AdminCommand::Layout(_) | AdminCommand::Node(_) | AdminCommand::Repair(_) => {
            unreachable!("handled by run")
        }
    };
    let value = client.call(method, &path, body).await?;
    if json_out {
        let mut text = serde_json::to_string_pretty(&value).expect("JSON values serialize");
        text.push('\n');
        return Ok(text);
    }
    Ok(show(&value))
}

type Call = (Method, String, Option<Value>, fn(&Value) -> String);

fn key_request(command: KeyCommand) -> Result<Call, String> {
    Ok(match command {
        KeyCommand::Create { name, allow_create_bucket } => {
            let body = json!({ "name": name, "allow_create_bucket": allow_create_bucket });
            (Method::POST, "/v1/keys".into(), Some(body), show_key)
        }
        KeyCommand::List => (Method::GET, "/v1/keys".into(), None, show_keys),
        KeyCommand::Info { id, show_secret } => {
            let query = if show_secret { "?show_secret=true" } else { "" };
            (Method::GET, format!("/v1/keys/{}{query}", segment(&id)?), None, show_key)
        }
        KeyCommand::Delete { id } => {
            (Method::DELETE, format!("/v1/keys/{}", segment(&id)?), None, show_deleted)
        }
        KeyCommand::Import { id, secret, name } => {
            let secret = if secret == "-" { read_stdin_line()? } else { secret };
            let body = json!({ "id": id, "secret": secret, "name": name });
            (Method::POST, "/v1/keys/import".into(), Some(body), show_key)
        }
        KeyCommand::Allow { id, create_bucket } | KeyCommand::Deny { id, create_bucket }
            if !create_bucket =>
        {
            return Err(format!("key {id}: say what to change (--create-bucket)"));
        }
        KeyCommand::Allow { id, .. } => {
            let body = json!({ "create_bucket": true });
            (Method::POST, format!("/v1/keys/{}/allow", segment(&id)?), Some(body), show_key)
        }
        KeyCommand::Deny { id, .. } => {
            let body = json!({ "create_bucket": false });
            (Method::POST, format!("/v1/keys/{}/allow", segment(&id)?), Some(body), show_key)
        }
    })
}

fn bucket_request(command: BucketCommand) -> Result<Call, String> {
    Ok(match command {
        BucketCommand::Create { name } => {
            (Method::POST, "/v1/buckets".into(), Some(json!({ "name": name })), show_bucket)
        }
        BucketCommand::List => (Method::GET, "/v1/buckets".into(), None, show_buckets),
        BucketCommand::Info { name } => {
            (Method::GET, format!("/v1/buckets/{}", segment(&name)?), None, show_bucket)
        }
        BucketCommand::Delete { name } => {
            (Method::DELETE, format!("/v1/buckets/{}", segment(&name)?), None, show_deleted)
        }
        BucketCommand::Allow(g) => grant_request(g, "allow")?,
        BucketCommand::Deny(g) => grant_request(g, "deny")?,
        BucketCommand::Alias { bucket, alias } => {
            let path = format!("/v1/buckets/{}/aliases", segment(&bucket)?);
            (Method::POST, path, Some(json!({ "alias": alias })), show_bucket)
        }
        BucketCommand::Unalias { bucket, alias } => {
            let path = format!("/v1/buckets/{}/aliases/{}", segment(&bucket)?, segment(&alias)?);
            (Method::DELETE, path, None, show_bucket)
        }
        BucketCommand::SetQuotas { name, max_size, max_objects } => {
            if max_size.is_none() && max_objects.is_none() {
                let problem = "name --max-size and/or --max-objects (a value, or none)";
                return Err(format!("bucket set-quotas: {problem}"));
            }
            let mut body = serde_json::Map::new();
            if let Some(size) = max_size {
                body.insert("max_size_bytes".into(), limit(&size, parse_quota_size)?);
            }
            if let Some(count) = max_objects {
                let parse =
                    |s: &str| s.parse::<u64>().map_err(|_| format!("{s:?} is not a number"));
                body.insert("max_objects".into(), limit(&count, parse)?);
            }
            let path = format!("/v1/buckets/{}/quotas", segment(&name)?);
            (Method::POST, path, Some(Value::Object(body)), show_bucket)
        }
    })
}

/// `none` (no limit: JSON null) or a value `parse` accepts.
fn limit(s: &str, parse: impl Fn(&str) -> Result<u64, String>) -> Result<Value, String> {
    if s.eq_ignore_ascii_case("none") { Ok(Value::Null) } else { Ok(json!(parse(s.trim())?)) }
}

/// `10GiB`, `500MB`, `1T`, `4096`: bytes, with decimal (K, M, G, T) or binary (Ki, Mi, Gi,
/// Ti) units and an optional trailing `B`.
fn parse_quota_size(s: &str) -> Result<u64, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let unit = unit.trim().to_ascii_uppercase();
    let unit = unit.strip_suffix('B').unwrap_or(&unit);
    let scale: u64 = match unit {
        "" => 1,
        "K" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "KI" => 1 << 10,
        "MI" => 1 << 20,
        "GI" => 1 << 30,
        "TI" => 1 << 40,
        _ => return Err(format!("{s:?}: expected a size like 500MB, 10GiB or 1T, or none")),
    };
    let n: u64 = digits.parse().map_err(|_| format!("{s:?} is not a size like 10GiB"))?;
    n.checked_mul(scale).ok_or_else(|| format!("{s:?} is too large"))
}

fn grant_request(g: GrantArgs, verb: &str) -> Result<Call, String> {
    if !(g.read || g.write || g.owner) {
        return Err(format!("bucket {verb}: name at least one of --read, --write, --owner"));
    }
    let body = json!({ "key": g.key, "read": g.read, "write": g.write, "owner": g.owner });
    let path = format!("/v1/buckets/{}/{verb}", segment(&g.bucket)?);
    Ok((Method::POST, path, Some(body), show_grant))
}

/// Ids and bucket names go into the path as they are; anything that would change the
/// path's meaning is refused here rather than misrouted there.
fn segment(s: &str) -> Result<&str, String> {
    let ok = !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
    if ok { Ok(s) } else { Err(format!("{s:?} is not a valid key id or bucket name")) }
}

fn read_stdin_line() -> Result<String, String> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).map_err(|e| format!("cannot read stdin: {e}"))?;
    Ok(line.trim().to_string())
}

pub(crate) fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

pub(crate) fn yes_no(v: &Value) -> String {
    if v.as_bool() == Some(true) { "yes".into() } else { "no".into() }
}

fn date(v: &Value) -> String {
    v.as_u64().map_or_else(|| "-".into(), format_iso8601)
}

/// `90s`, `10m`, `24h`: the largest unit that divides the duration evenly.
fn duration(ms: u64) -> String {
    match ms {
        0 => "0s".into(),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}

pub(crate) fn rows(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

fn show_status(v: &Value) -> String {
    let mut out = table::fields(&[
        ("node", text(&v["node_id"])),
        ("zone", text(&v["zone"])),
        ("layout version", text(&v["layout_version"])),
        ("replication factor", text(&v["replication_factor"])),
        ("layout change", transition(v)),
        ("health", health(v)),
    ]);
    out.push('\n');
    let nodes: Vec<Vec<String>> = rows(&v["nodes"])
        .iter()
        .map(|n| {
            let mark = if n["is_self"].as_bool() == Some(true) { " (this node)" } else { "" };
            vec![
                format!("{}{mark}", text(&n["id"])),
                text(&n["zone"]),
                text(&n["capacity"]),
                text(&n["address"]),
                yes_no(&n["connected"]),
                text(&n["partitions"]),
            ]
        })
        .collect();
    let headers = ["NODE", "ZONE", "CAPACITY", "ADDRESS", "CONNECTED", "PARTITIONS"];
    out.push_str(&table::render(&headers, &nodes));
    out
}

/// "none", or the versions still stored while a change completes.
fn transition(v: &Value) -> String {
    let versions: Vec<String> = rows(&v["versions_stored"]).iter().map(text).collect();
    if v["layout_in_transition"].as_bool() == Some(true) {
        format!("in progress (versions {} stored)", versions.join(", "))
    } else {
        "none in progress".into()
    }
}

/// "ok" or "degraded", with the partition counts behind it.
fn health(v: &Value) -> String {
    if v["layout_version"].as_u64() == Some(0) {
        return "no layout yet: connect the nodes, then `hangar layout assign` and \
                `layout apply` (docs/deploy.md)"
            .into();
    }
    let word = if v["healthy"].as_bool() == Some(true) { "ok" } else { "degraded" };
    format!(
        "{word} ({} of {} partitions with a quorum, {} with every replica)",
        text(&v["partitions_quorum_ok"]),
        text(&v["partitions"]),
        text(&v["partitions_all_ok"])
    )
}

/// One line per worker; for the repair workers, their current or last pass (launched by
/// `hangar repair` or periodic): state, items checked, repaired, unrecoverable, errors.
fn show_lifecycle_pass(v: &Value) -> String {
    format!(
        "lifecycle pass on node {}: {} buckets with rules, {} objects expired, {} uploads \
         aborted, {} noncurrent versions expired, {} delete markers removed, {} errors\n",
        text(&v["node_id"]),
        text(&v["buckets"]),
        text(&v["objects_expired"]),
        text(&v["uploads_aborted"]),
        text(&v["noncurrent_versions_expired"]),
        text(&v["delete_markers_removed"]),
        text(&v["errors"]),
    )
}

fn show_workers(v: &Value) -> String {
    let workers: Vec<Vec<String>> = rows(&v["workers"])
        .iter()
        .map(|w| {
            let every = w["interval_ms"].as_u64().map_or("-".into(), duration);
            let p = &w["repair"];
            let count = |field: &str| if p.is_null() { "-".into() } else { text(&p[field]) };
            vec![
                text(&w["name"]),
                every,
                repair::pass_state(p),
                count("checked"),
                count("repaired"),
                count("unrecoverable"),
                count("errors"),
                date(&w["last_work_ms"]),
                text(&w["what"]),
            ]
        })
        .collect();
    let headers =
        ["WORKER", "EVERY", "PASS", "CHECKED", "REPAIRED", "LOST", "ERRORS", "LAST WORK", "WHAT"];
    table::render(&headers, &workers)
}

fn show_keys(v: &Value) -> String {
    let keys: Vec<Vec<String>> = rows(&v["keys"])
        .iter()
        .map(|k| vec![text(&k["id"]), text(&k["name"]), date(&k["created_ms"])])
        .collect();
    table::render(&["ID", "NAME", "CREATED"], &keys)
}

fn show_key(v: &Value) -> String {
    let mut pairs = vec![
        ("id", text(&v["id"])),
        ("name", text(&v["name"])),
        ("created", date(&v["created_ms"])),
        ("create buckets", yes_no(&v["allow_create_bucket"])),
    ];
    if v.get("secret").is_some() {
        pairs.push(("secret", text(&v["secret"])));
    }
    let mut out = table::fields(&pairs);
    let grants: Vec<Vec<String>> = rows(&v["buckets"])
        .iter()
        .map(|b| {
            vec![text(&b["bucket"]), yes_no(&b["read"]), yes_no(&b["write"]), yes_no(&b["owner"])]
        })
        .collect();
    if !grants.is_empty() {
        out.push('\n');
        out.push_str(&table::render(&["BUCKET", "READ", "WRITE", "OWNER"], &grants));
    }
    out
}

fn show_buckets(v: &Value) -> String {
    let buckets: Vec<Vec<String>> = rows(&v["buckets"])
        .iter()
        .map(|b| {
            let aliases: Vec<String> = rows(&b["aliases"]).iter().map(text).collect();
            vec![text(&b["name"]), date(&b["created_ms"]), aliases.join(", ")]
        })
        .collect();
    table::render(&["NAME", "CREATED", "ALIASES"], &buckets)
}

fn show_bucket(v: &Value) -> String {
    let mut pairs = vec![
        ("name", text(&v["name"])),
        ("created", date(&v["created_ms"])),
        ("versioning", text(&v["versioning"])),
        ("objects", text(&v["objects"])),
        ("size", format!("{} bytes", text(&v["size_bytes"]))),
    ];
    let aliases: Vec<String> = rows(&v["aliases"]).iter().map(text).collect();
    if !aliases.is_empty() {
        pairs.push(("aliases", aliases.join(", ")));
    }
    let q = &v["quotas"];
    if !q.is_null() {
        let max = |field: &str, unit: &str| match q[field].as_u64() {
            Some(n) => format!("{n}{unit}"),
            None => "none".into(),
        };
        let (objects, bytes) = (text(&q["counted_objects"]), text(&q["counted_size_bytes"]));
        pairs.extend([
            ("max size", max("max_size_bytes", " bytes")),
            ("max objects", max("max_objects", "")),
            ("quota usage", format!("{objects} objects, {bytes} bytes (counted)")),
        ]);
    }
    let mut out = table::fields(&pairs);
    let keys: Vec<Vec<String>> = rows(&v["keys"])
        .iter()
        .map(|k| {
            let (r, w, o) = (yes_no(&k["read"]), yes_no(&k["write"]), yes_no(&k["owner"]));
            vec![text(&k["id"]), text(&k["name"]), r, w, o]
        })
        .collect();
    if !keys.is_empty() {
        out.push('\n');
        out.push_str(&table::render(&["KEY", "NAME", "READ", "WRITE", "OWNER"], &keys));
    }
    out
}

fn show_grant(v: &Value) -> String {
    let row = vec![
        text(&v["key"]),
        text(&v["bucket"]),
        yes_no(&v["read"]),
        yes_no(&v["write"]),
        yes_no(&v["owner"]),
    ];
    table::render(&["KEY", "BUCKET", "READ", "WRITE", "OWNER"], &[row])
}

fn show_deleted(v: &Value) -> String {
    format!("deleted {}\n", text(&v["deleted"]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_prints_the_node_fields_and_an_aligned_node_table() {
        let v = json!({
            "node_id": "00000000000000ab", "zone": "dc1", "layout_version": 3,
            "replication_factor": 1, "healthy": false, "partitions": 256,
            "partitions_quorum_ok": 256, "partitions_all_ok": 0,
            "nodes": [
                {"id": "00000000000000ab", "zone": "dc1", "capacity": 1, "connected": true,
                 "is_self": true, "address": "10.0.0.1:3901", "partitions": 256},
                {"id": "00000000000000cd", "zone": "dc2", "capacity": 10, "connected": false,
                 "is_self": false, "address": null, "partitions": 0}
            ],
            "versions_stored": [2, 3], "layout_in_transition": true
        });
        let text = show_status(&v);
        assert!(text.starts_with("node:               00000000000000ab\n"), "{text}");
        assert!(text.contains("layout version:     3\n"));
        let health = "degraded (256 of 256 partitions with a quorum, 0 with every replica)";
        assert!(text.contains(&format!("health:             {health}\n")), "{text}");
        assert!(
            text.contains("layout change:      in progress (versions 2, 3 stored)\n"),
            "{text}"
        );
        assert!(text.contains(
            "NODE                          ZONE  CAPACITY  ADDRESS        CONNECTED  PARTITIONS\n\
             00000000000000ab (this node)  dc1   1         10.0.0.1:3901  yes        256\n\
             00000000000000cd              dc2   10        -              no         0\n"
        ), "{text}");
    }

    #[test]
    fn grants_need_a_flag_and_paths_take_only_plain_names() {
        let g = GrantArgs {
            bucket: "b".into(),
            key: "GK1".into(),
            read: false,
            write: false,
            owner: false,
        };
        assert!(grant_request(g, "allow").unwrap_err().contains("--read"));
        assert!(segment("../v1/keys").is_err());
        let shown: Vec<String> = [60_000, 86_400_000, 90_000, 1500].map(duration).into();
        assert_eq!(shown, ["1m", "24h", "90s", "1500ms"]);
        assert_eq!(segment("my-bucket.1"), Ok("my-bucket.1"));
    }

    #[test]
    fn quota_sizes_take_decimal_and_binary_units_and_none() {
        assert_eq!(parse_quota_size("10GiB"), Ok(10 << 30));
        assert_eq!(parse_quota_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_quota_size("1t"), Ok(1_000_000_000_000));
        assert_eq!(parse_quota_size("4096"), Ok(4096));
        assert!(parse_quota_size("10 parsecs").unwrap_err().contains("10GiB"));
        assert!(parse_quota_size("99999999999TiB").unwrap_err().contains("too large"));
        assert_eq!(limit("none", parse_quota_size), Ok(Value::Null));
        let none = BucketCommand::SetQuotas { name: "b".into(), max_size: None, max_objects: None };
        assert!(bucket_request(none).unwrap_err().contains("--max-size"));
    }
}
