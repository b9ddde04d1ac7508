//! `hangar repair tables|blocks|scrub [--yes] [--wait]`: launch a repair pass on the node
//! of the config file (`POST /v1/repair`), and with `--wait` follow it to the end
//! (`GET /v1/repair`). Progress of every pass is also in `hangar worker list`.
//!
//! `--yes` is required: a pass reads the whole table replica or every block on the node,
//! which an operator should start knowingly (and on each node: passes are per node).

use std::time::Duration;

use clap::{Args, ValueEnum};
use hyper::Method;
use serde_json::{Value, json};

use super::client::AdminClient;
use super::{table, text};

/// How often `--wait` asks for progress.
const WAIT_POLL_MS: u64 = 500;

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepairWhat {
    /// Anti-entropy with every peer, over every table (metadata).
    Tables,
    /// Resync: fetch every block this node should hold but lacks.
    Blocks,
    /// Scrub: re-read every local block, replace corrupt copies.
    Scrub,
}

impl RepairWhat {
    fn name(self) -> &'static str {
        match self {
            RepairWhat::Tables => "tables",
            RepairWhat::Blocks => "blocks",
            RepairWhat::Scrub => "scrub",
        }
    }

    fn cost(self) -> &'static str {
        match self {
            RepairWhat::Tables => "compares every table partition with every peer holding it",
            RepairWhat::Blocks => "checks every block reference of this node's partitions",
            RepairWhat::Scrub => "re-reads and hashes every block file of this node",
        }
    }
}

#[derive(Args, Debug)]
pub struct RepairArgs {
    pub what: RepairWhat,
    /// Start it (required: a pass reads everything of its kind on the node).
    #[arg(long)]
    pub yes: bool,
    /// Wait until the pass is done and print what it found.
    #[arg(long)]
    pub wait: bool,
}

/// Launches the pass (and waits for it with `--wait`); returns the JSON and the text.
pub async fn repair(client: &AdminClient, args: RepairArgs) -> Result<(Value, String), String> {
    let what = args.what.name();
    if !args.yes {
        return Err(format!(
            "repair {what} {} on this node, in the background; run `hangar repair {what} \
             --yes` to start it (and the same on every node to repair the whole cluster)",
            args.what.cost()
        ));
    }
    let started = client.call(Method::POST, "/v1/repair", Some(json!({ "what": what }))).await?;
    if !args.wait {
        let text = format!(
            "started repair {what} on node {}; follow it with `hangar worker list` \
             (or run it with --wait)\n",
            text(&started["node_id"])
        );
        return Ok((started, text));
    }
    let since = started["repair"]["started_ms"].clone();
    loop {
        tokio::time::sleep(Duration::from_millis(WAIT_POLL_MS)).await;
        let all = client.call(Method::GET, "/v1/repair", None).await?;
        let Some(p) = super::rows(&all["repairs"]).iter().find(|r| r["what"] == what) else {
            return Err(format!("the node's answer has no {what} progress: {all}"));
        };
        // Ours is over once its kind is idle, or a later pass (the periodic one) started.
        let ours_running = p["state"] == "running" && p["started_ms"] == since;
        if !ours_running {
            let found = if p["started_ms"] == since { p.clone() } else { p["last_pass"].clone() };
            return Ok((p.clone(), show_finished(what, &found)));
        }
    }
}

fn show_finished(what: &str, found: &Value) -> String {
    table::fields(&[
        ("repair", format!("{what}: done")),
        ("checked", text(&found["checked"])),
        ("repaired", text(&found["repaired"])),
        ("unrecoverable", text(&found["unrecoverable"])),
        ("errors", text(&found["errors"])),
    ])
}

/// The STATE column of `worker list`: "running 12/40", "done", "never run" or "-".
pub fn pass_state(progress: &Value) -> String {
    match progress["state"].as_str() {
        Some("running") => match progress["to_check"].as_u64() {
            Some(total) if total > 0 => format!("running {}/{total}", text(&progress["checked"])),
            _ => format!("running {}", text(&progress["checked"])),
        },
        Some(state) => state.to_string(),
        None => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_and_results_read_plainly() {
        let running = json!({"state": "running", "to_check": 40, "checked": 12});
        assert_eq!(pass_state(&running), "running 12/40");
        let unknown_total = json!({"state": "running", "to_check": 0, "checked": 3});
        assert_eq!(pass_state(&unknown_total), "running 3");
        assert_eq!(pass_state(&json!({"state": "done"})), "done");
        assert_eq!(pass_state(&Value::Null), "-");
        let found = json!({"checked": 2, "repaired": 0, "unrecoverable": 1, "errors": 0});
        let text = show_finished("blocks", &found);
        assert!(text.starts_with("repair:        blocks: done\n"), "{text}");
        assert!(text.contains("unrecoverable: 1\n"), "{text}");
    }
}
