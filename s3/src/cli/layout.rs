//! `hangar layout …` and `hangar node …`: the cluster layout and the node's identity.

use clap::Subcommand;
use hyper::Method;
use serde_json::{Value, json};

use super::client::AdminClient;
use super::{rows, table, text};

#[derive(Subcommand, Debug)]
pub enum LayoutCommand {
    /// Show the current layout, the staged changes and the partitions they would move.
    Show,
    /// Stage giving a node a role (or changing its role).
    Assign {
        /// Node id, or a unique prefix of it (`hangar node id` on that node prints it).
        node: String,
        /// Failure domain (site, datacenter); replicas prefer distinct zones.
        #[arg(short, long)]
        zone: String,
        /// Storage to use, e.g. 500G, 2T or a plain number (only ratios between nodes count).
        #[arg(long, value_parser = parse_capacity)]
        capacity: u64,
        /// Free-form label (repeatable).
        #[arg(short, long = "tag")]
        tags: Vec<String>,
    },
    /// Stage removing a node from the layout.
    Remove { node: String },
    /// Apply the staged changes as the next layout version.
    Apply {
        /// The version to create: the current one plus one (`layout show` prints it).
        #[arg(long)]
        version: u64,
    },
    /// Drop the staged changes.
    Revert,
    /// Let a layout change finish without a removed node that is gone for good.
    SkipDead { node: String },
}

#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// Print this node's `<id>@<rpc_public_addr>` (what `node connect` and
    /// `bootstrap_peers` take).
    Id,
    /// Connect this node to another one and exchange layouts with it.
    Connect {
        /// `<id>@<host>:<port>`, as `hangar node id` prints it on that node.
        peer: String,
    },
}

/// "500G" → 500·10⁹; a plain number stays as it is. Decimal units, as disks are sold.
pub fn parse_capacity(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, ""),
    };
    let scale: u64 = match unit.to_ascii_uppercase().trim_end_matches('B') {
        "" => 1,
        "K" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "P" => 1_000_000_000_000_000,
        _ => return Err(format!("{s:?}: expected a number with an optional K, M, G, T or P")),
    };
    let n: u64 = digits.parse().map_err(|_| format!("{s:?} is not a capacity like 500G"))?;
    match n.checked_mul(scale) {
        Some(0) => Err("capacity must be above 0 (remove the node instead)".into()),
        Some(bytes) => Ok(bytes),
        None => Err(format!("{s:?} is too large")),
    }
}

/// Runs a layout verb; returns the JSON answer and its rendering.
pub async fn layout(
    client: &AdminClient,
    command: LayoutCommand,
) -> Result<(Value, String), String> {
    let (method, path, body) = match command {
        LayoutCommand::Show => {
            let value = client.call(Method::GET, "/v1/layout", None).await?;
            let mut out = show_layout(&value);
            if !rows(&value["staged"]).is_empty() {
                match client.call(Method::GET, "/v1/layout/preview", None).await {
                    Ok(preview) => out.push_str(&show_preview(&preview)),
                    Err(e) => out.push_str(&format!("\nthe staged changes cannot apply: {e}\n")),
                }
            }
            return Ok((value, out));
        }
        LayoutCommand::Assign { node, zone, capacity, tags } => {
            let body = json!({ "node": node, "zone": zone, "capacity": capacity, "tags": tags });
            (Method::POST, "/v1/layout/assign", body)
        }
        LayoutCommand::Remove { node } => {
            (Method::POST, "/v1/layout/remove", json!({ "node": node }))
        }
        LayoutCommand::Revert => (Method::POST, "/v1/layout/revert", json!({})),
        LayoutCommand::SkipDead { node } => {
            (Method::POST, "/v1/layout/skip-dead", json!({ "node": node }))
        }
        LayoutCommand::Apply { version } => {
            let value = client
                .call(Method::POST, "/v1/layout/apply", Some(json!({ "version": version })))
                .await?;
            let mut out = format!("applied layout version {version}\n{}", show_preview(&value));
            if value["serving"] == json!(false) {
                // Only the first layout waits; it timed out (a node down or unreachable).
                out.push_str(
                    "\nnot every node serves yet (some are unreachable or still syncing): \
                     check `hangar status` before writing\n",
                );
            }
            return Ok((value, out));
        }
    };
    let value = client.call(method, path, Some(body)).await?;
    let out = show_layout(&value);
    Ok((value, out))
}

/// Runs a node verb.
pub async fn node(client: &AdminClient, command: NodeCommand) -> Result<(Value, String), String> {
    match command {
        NodeCommand::Id => {
            let value = client.call(Method::GET, "/v1/node", None).await?;
            match value["peer"].as_str() {
                Some(peer) => Ok((value.clone(), format!("{peer}\n"))),
                None => Err(format!(
                    "node {} advertises no RPC address: set rpc_public_addr (host:port) in its \
                     config, or bind rpc_bind_addr to a specific address",
                    text(&value["id"])
                )),
            }
        }
        NodeCommand::Connect { peer } => {
            let body = json!({ "peer": peer });
            let value = client.call(Method::POST, "/v1/node/connect", Some(body)).await?;
            let out =
                format!("connected to {} at {}\n", text(&value["connected"]), text(&value["addr"]));
            Ok((value, out))
        }
    }
}

pub fn show_layout(v: &Value) -> String {
    let mut out = table::fields(&[
        ("layout version", text(&v["version"])),
        ("replication factor", text(&v["replication_factor"])),
        ("in transition", super::yes_no(&v["in_transition"])),
    ]);
    out.push('\n');
    let roles: Vec<Vec<String>> = rows(&v["roles"])
        .iter()
        .map(|r| {
            vec![
                text(&r["id"]),
                text(&r["zone"]),
                text(&r["capacity"]),
                text(&r["partitions"]),
                tags(&r["tags"]),
            ]
        })
        .collect();
    out.push_str(&table::render(&["NODE", "ZONE", "CAPACITY", "PARTITIONS", "TAGS"], &roles));
    let staged: Vec<Vec<String>> = rows(&v["staged"])
        .iter()
        .map(|s| match s["role"].is_null() {
            true => vec![text(&s["id"]), "remove".into(), "-".into(), "-".into()],
            false => {
                let r = &s["role"];
                vec![text(&s["id"]), "assign".into(), text(&r["zone"]), text(&r["capacity"])]
            }
        })
        .collect();
    if staged.is_empty() {
        out.push_str("\nno staged changes\n");
    } else {
        out.push_str("\nstaged changes:\n");
        out.push_str(&table::render(&["NODE", "CHANGE", "ZONE", "CAPACITY"], &staged));
        let next = v["version"].as_u64().map_or(0, |n| n + 1);
        out.push_str(&format!("apply them with: hangar layout apply --version {next}\n"));
    }
    out
}

fn tags(v: &Value) -> String {
    let list: Vec<String> = rows(v).iter().map(text).collect();
    if list.is_empty() { "-".into() } else { list.join(",") }
}

pub fn show_preview(v: &Value) -> String {
    let mut out = format!(
        "\nversion {}: {} partitions move, {} replicas to copy\n",
        text(&v["version"]),
        text(&v["moved_partitions"]),
        text(&v["moved_replicas"])
    );
    let nodes: Vec<Vec<String>> = rows(&v["nodes"])
        .iter()
        .map(|n| vec![text(&n["id"]), text(&n["partitions_before"]), text(&n["partitions_after"])])
        .collect();
    out.push_str(&table::render(&["NODE", "PARTITIONS BEFORE", "AFTER"], &nodes));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacities_take_decimal_units_and_refuse_zero_and_junk() {
        assert_eq!(parse_capacity("500G"), Ok(500_000_000_000));
        assert_eq!(parse_capacity("2TB"), Ok(2_000_000_000_000));
        assert_eq!(parse_capacity("7"), Ok(7));
        assert!(parse_capacity("0G").unwrap_err().contains("remove"));
        assert!(parse_capacity("12X").is_err());
        assert!(parse_capacity("G").is_err());
    }

    #[test]
    fn the_layout_table_lists_roles_and_says_how_to_apply_staged_changes() {
        let v = json!({
            "version": 1, "replication_factor": 3, "in_transition": false,
            "roles": [{"id": "00000000000000ab", "zone": "dc1", "capacity": 10, "tags": [],
                       "partitions": 256}],
            "staged": [{"id": "00000000000000cd", "role": null}]
        });
        let out = show_layout(&v);
        assert!(out.contains("00000000000000ab  dc1   10        256         -\n"), "{out}");
        assert!(out.contains("00000000000000cd  remove  -     -\n"), "{out}");
        assert!(out.contains("hangar layout apply --version 2\n"), "{out}");
    }
}
