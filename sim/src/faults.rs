//! The fault timeline of a scenario file: the raw `[[faults]]` entries, their validation
//! (each bad field named with its line) and the validated `Fault`s the runner applies.
//! The reference of every kind is docs/simulation.md ("Faults").

use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use crate::scenario::Scenario;

/// One fault on the timeline, as written. Which fields a kind takes is in `Scenario::fault_of`
/// and in docs/simulation.md.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    pub at_ms: u64,
    pub kind: Spanned<String>,
    pub node: Option<Spanned<String>>,
    pub nodes: Option<Spanned<Vec<String>>>,
    pub skew_ms: Option<i64>,
    pub add: Option<Spanned<Vec<String>>>,
    pub remove: Option<Spanned<Vec<String>>>,
    /// `partition_oneway`: messages from these nodes ...
    pub from: Option<Spanned<Vec<String>>>,
    /// ... to these (default: every other node) are dropped.
    pub to: Option<Spanned<Vec<String>>>,
    /// `zone_split`: the two zones cut from each other.
    pub zones: Option<Spanned<Vec<String>>>,
    /// `clock_drift`: how fast `node`'s clock runs, in parts per million off real time.
    pub drift_ppm: Option<Spanned<i64>>,
    /// `packet_loss`: the delay a lost segment costs (its retransmission), default 200 ms.
    pub retransmit_ms: Option<Spanned<u64>>,
    /// `disk_slow`: the time every block read or write takes, on top of its transfer.
    pub latency_ms: Option<Spanned<u64>>,
    /// `disk_slow`: the disk's bandwidth for block I/O; 0 or absent means unlimited.
    pub mib_per_s: Option<Spanned<u64>>,
}

/// A validated fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    Isolate {
        node: String,
    },
    Partition {
        nodes: Vec<String>,
    },
    Heal,
    Crash {
        node: String,
    },
    Restart {
        node: String,
    },
    /// `node` loses power in the middle of its disk writes: after a few more (drawn from
    /// the seed) its disk fails every call, and the runner crashes it at the end of that
    /// step. Writes not yet synced survive torn as `disk.torn_write_bytes` says.
    CrashMidWrite {
        node: String,
    },
    ClockSkew {
        node: String,
        skew_ms: i64,
    },
    CorruptBlock {
        node: String,
    },
    DiskLoss {
        node: String,
    },
    LayoutChange {
        add: Vec<String>,
        remove: Vec<String>,
    },
    /// Messages from `from` to `to` are dropped; the other direction still works.
    PartitionOneway {
        from: Vec<String>,
        to: Vec<String>,
    },
    /// Every node of zone `a` is cut from every node of zone `b` (both ways).
    ZoneSplit {
        a: String,
        b: String,
    },
    /// Messages between `nodes` and the other nodes wait (not dropped) until `Release`.
    Hold {
        nodes: Vec<String>,
    },
    /// Every held message is delivered.
    Release,
    /// `node` stops answering: every message to or from it (clients too) is held.
    Pause {
        node: String,
    },
    /// The held messages of a paused node are delivered.
    Resume {
        node: String,
    },
    /// From now on `node`'s clock runs `drift_ppm` parts per million fast (or slow).
    ClockDrift {
        node: String,
        drift_ppm: i64,
    },
    /// Every link of `nodes` loses segments, which TCP retransmits: up to `retransmit_ms`
    /// more latency, in the tail (see docs/simulation.md on why not turmoil's loss).
    PacketLoss {
        nodes: Vec<String>,
        retransmit_ms: u64,
    },
    /// Every disk call of `node` fails with EIO until `DiskRepair` (or the final heal).
    DiskEio {
        node: String,
    },
    /// `node`'s disk is full: calls that need space fail with ENOSPC until repaired.
    DiskFull {
        node: String,
    },
    /// `node`'s disk answers, slowly: each block read or write takes `latency_ms` plus its
    /// bytes at `mib_per_s` (0: unlimited) of simulated time, until repaired.
    DiskSlow {
        node: String,
        latency_ms: u64,
        mib_per_s: u64,
    },
    DiskRepair {
        node: String,
    },
}

/// The largest per-operation latency `disk_slow` may set: a disk slower than this is a
/// dead disk, which `disk_eio` models.
pub const DISK_LATENCY_MS_MAX: u64 = 10_000;

/// The longest retransmission delay `packet_loss` may add.
pub const RETRANSMIT_MS_MAX: u64 = 5_000;

/// The largest clock drift a scenario may set: half as fast or half again as fast as real
/// time (real quartz drifts by tens of ppm; a run of seconds needs far more to matter).
pub const DRIFT_PPM_MAX: i64 = 500_000;

/// The fault kinds, as named in scenario files.
pub const FAULTS: [&str; 22] = [
    "isolate",
    "partition",
    "heal",
    "crash",
    "crash_mid_write",
    "restart",
    "clock_skew",
    "corrupt_block",
    "disk_loss",
    "layout_change",
    "partition_oneway",
    "zone_split",
    "hold",
    "release",
    "pause",
    "resume",
    "clock_drift",
    "packet_loss",
    "disk_eio",
    "disk_full",
    "disk_slow",
    "disk_repair",
];

type FieldError = (Range<usize>, &'static str, String);

/// The arguments a fault kind takes (docs/simulation.md, "Faults"); any other is refused.
fn args_of(kind: &str) -> &'static [&'static str] {
    match kind {
        "heal" | "release" => &[],
        "clock_skew" => &["node", "skew_ms"],
        "clock_drift" => &["node", "drift_ppm"],
        "disk_slow" => &["node", "latency_ms", "mib_per_s"],
        "partition" | "hold" => &["nodes"],
        "packet_loss" => &["nodes", "retransmit_ms"],
        "partition_oneway" => &["from", "to"],
        "zone_split" => &["zones"],
        "layout_change" => &["add", "remove"],
        _ => &["node"],
    }
}

/// The optional arguments a fault spec gives.
fn given_args(spec: &FaultSpec) -> Vec<&'static str> {
    let given = [
        ("node", spec.node.is_some()),
        ("nodes", spec.nodes.is_some()),
        ("skew_ms", spec.skew_ms.is_some()),
        ("add", spec.add.is_some()),
        ("remove", spec.remove.is_some()),
        ("from", spec.from.is_some()),
        ("to", spec.to.is_some()),
        ("zones", spec.zones.is_some()),
        ("drift_ppm", spec.drift_ppm.is_some()),
        ("retransmit_ms", spec.retransmit_ms.is_some()),
        ("latency_ms", spec.latency_ms.is_some()),
        ("mib_per_s", spec.mib_per_s.is_some()),
    ];
    given.into_iter().filter(|(_, is_given)| *is_given).map(|(name, _)| name).collect()
}

impl Scenario {
    /// The validated form of a fault spec.
    pub fn fault_of(&self, spec: &FaultSpec) -> Result<Fault, FieldError> {
        let fault = self.fault_of_kind(spec)?;
        let duration_ms = self.workload.duration_ms;
        if spec.at_ms >= duration_ms {
            let msg = format!(
                "{} is not before workload.duration_ms ({duration_ms}): faults stop when the \
                 workload ends, and the runner heals everything then",
                spec.at_ms
            );
            return Err((spec.kind.span(), "faults.at_ms", msg));
        }
        let takes = args_of(spec.kind.get_ref());
        if let Some(arg) = given_args(spec).into_iter().find(|arg| !takes.contains(arg)) {
            let msg = format!(
                "`{arg}` does nothing for `{}`, which takes {}",
                spec.kind.get_ref(),
                match takes.is_empty() {
                    true => "no argument".to_string(),
                    false => takes.join(", "),
                }
            );
            return Err((spec.kind.span(), "faults.kind", msg));
        }
        Ok(fault)
    }

    fn fault_of_kind(&self, spec: &FaultSpec) -> Result<Fault, FieldError> {
        match spec.kind.get_ref().as_str() {
            "isolate" => Ok(Fault::Isolate { node: self.node_arg(spec)? }),
            "crash" => Ok(Fault::Crash { node: self.node_arg(spec)? }),
            "crash_mid_write" => Ok(Fault::CrashMidWrite { node: self.node_arg(spec)? }),
            "restart" => Ok(Fault::Restart { node: self.node_arg(spec)? }),
            "corrupt_block" => Ok(Fault::CorruptBlock { node: self.node_arg(spec)? }),
            "disk_loss" => Ok(Fault::DiskLoss { node: self.node_arg(spec)? }),
            "heal" => Ok(Fault::Heal),
            "release" => Ok(Fault::Release),
            "pause" => Ok(Fault::Pause { node: self.node_arg(spec)? }),
            "resume" => Ok(Fault::Resume { node: self.node_arg(spec)? }),
            "disk_eio" => Ok(Fault::DiskEio { node: self.node_arg(spec)? }),
            "disk_full" => Ok(Fault::DiskFull { node: self.node_arg(spec)? }),
            "disk_repair" => Ok(Fault::DiskRepair { node: self.node_arg(spec)? }),
            "disk_slow" => {
                let node = self.node_arg(spec)?;
                let Some(latency) = &spec.latency_ms else {
                    return Err((spec.kind.span(), "faults.latency_ms", "missing".into()));
                };
                if !(1..=DISK_LATENCY_MS_MAX).contains(latency.get_ref()) {
                    let msg = format!("{} is not in 1..={DISK_LATENCY_MS_MAX}", latency.get_ref());
                    return Err((latency.span(), "faults.latency_ms", msg));
                }
                let mib_per_s = spec.mib_per_s.as_ref().map_or(0, |m| *m.get_ref());
                Ok(Fault::DiskSlow { node, latency_ms: *latency.get_ref(), mib_per_s })
            }
            "packet_loss" => {
                let nodes = self.nodes_arg(spec, "nodes")?;
                let retransmit_ms =
                    spec.retransmit_ms.as_ref().map_or(Ok(200), |r| match *r.get_ref() {
                        ms @ 1..=RETRANSMIT_MS_MAX => Ok(ms),
                        ms => {
                            let msg = format!("{ms} is not in 1..={RETRANSMIT_MS_MAX}");
                            Err((r.span(), "faults.retransmit_ms", msg))
                        }
                    })?;
                Ok(Fault::PacketLoss { nodes, retransmit_ms })
            }
            "clock_drift" => {
                let node = self.node_arg(spec)?;
                let Some(ppm) = &spec.drift_ppm else {
                    return Err((spec.kind.span(), "faults.drift_ppm", "missing".into()));
                };
                if ppm.get_ref().abs() > DRIFT_PPM_MAX {
                    let msg =
                        format!("{} is not in -{DRIFT_PPM_MAX}..={DRIFT_PPM_MAX}", ppm.get_ref());
                    return Err((ppm.span(), "faults.drift_ppm", msg));
                }
                Ok(Fault::ClockDrift { node, drift_ppm: *ppm.get_ref() })
            }
            "clock_skew" => {
                let node = self.node_arg(spec)?;
                let skew_ms =
                    spec.skew_ms.ok_or((spec.kind.span(), "faults.skew_ms", "missing".into()))?;
                Ok(Fault::ClockSkew { node, skew_ms })
            }
            "partition" => Ok(Fault::Partition { nodes: self.nodes_arg(spec, "nodes")? }),
            "hold" => Ok(Fault::Hold { nodes: self.nodes_arg(spec, "nodes")? }),
            "partition_oneway" => self.oneway_of(spec),
            "zone_split" => self.zone_split_of(spec),
            "layout_change" => self.layout_change_of(spec),
            other => {
                let msg = format!("unknown fault `{other}` (known: {})", FAULTS.join(", "));
                Err((spec.kind.span(), "faults.kind", msg))
            }
        }
    }

    fn node_arg(&self, spec: &FaultSpec) -> Result<String, FieldError> {
        let Some(node) = &spec.node else {
            let msg = format!("fault `{}` needs a `node`", spec.kind.get_ref());
            return Err((spec.kind.span(), "faults.node", msg));
        };
        if !self.all_node_names().contains(node.get_ref()) {
            let count = self.all_node_names().len();
            let msg = format!("no node `{}` (nodes are n1..n{count})", node.get_ref());
            return Err((node.span(), "faults.node", msg));
        }
        Ok(node.get_ref().clone())
    }

    /// A required, non-empty list of known node names (`nodes`, `from`).
    fn nodes_arg(&self, spec: &FaultSpec, field: &str) -> Result<Vec<String>, FieldError> {
        let (list, name) = match field {
            "from" => (&spec.from, "faults.from"),
            _ => (&spec.nodes, "faults.nodes"),
        };
        let Some(nodes) = list else {
            let msg = format!("{} needs `{field}` (a list of node names)", spec.kind.get_ref());
            return Err((spec.kind.span(), name, msg));
        };
        self.known_nodes(nodes, name)
    }

    fn known_nodes(
        &self,
        nodes: &Spanned<Vec<String>>,
        field: &'static str,
    ) -> Result<Vec<String>, FieldError> {
        if nodes.get_ref().is_empty() {
            return Err((nodes.span(), field, "is empty".into()));
        }
        let known = self.all_node_names();
        if let Some(bad) = nodes.get_ref().iter().find(|n| !known.contains(n)) {
            return Err((nodes.span(), field, format!("no node `{bad}`")));
        }
        Ok(nodes.get_ref().clone())
    }

    fn oneway_of(&self, spec: &FaultSpec) -> Result<Fault, FieldError> {
        let from = self.nodes_arg(spec, "from")?;
        let to = match &spec.to {
            Some(to) => self.known_nodes(to, "faults.to")?,
            None => self.all_node_names().into_iter().filter(|n| !from.contains(n)).collect(),
        };
        if let Some(both) = to.iter().find(|n| from.contains(n)) {
            let span = spec.to.as_ref().map_or(spec.kind.span(), |t| t.span());
            return Err((span, "faults.to", format!("`{both}` is in both `from` and `to`")));
        }
        if to.is_empty() {
            let msg = "`from` names every node: nothing to cut it from".to_string();
            return Err((spec.kind.span(), "faults.from", msg));
        }
        Ok(Fault::PartitionOneway { from, to })
    }

    fn zone_split_of(&self, spec: &FaultSpec) -> Result<Fault, FieldError> {
        let Some(zones) = &spec.zones else {
            let msg = "zone_split needs `zones` (two zone names)".to_string();
            return Err((spec.kind.span(), "faults.zones", msg));
        };
        let count = self.cluster.zones;
        let known: Vec<String> = (1..=count).map(|z| format!("z{z}")).collect();
        match zones.get_ref().as_slice() {
            [a, b] if a != b && known.contains(a) && known.contains(b) => {
                Ok(Fault::ZoneSplit { a: a.clone(), b: b.clone() })
            }
            _ => {
                let msg = format!("needs two different zones of z1..z{count}");
                Err((zones.span(), "faults.zones", msg))
            }
        }
    }

    /// The zone of a node host: members then spares are spread round-robin over zones.
    pub fn zone_of(&self, name: &str) -> String {
        let index = self.all_node_names().iter().position(|n| n == name).expect("known node");
        format!("z{}", index % self.cluster.zones + 1)
    }

    fn layout_change_of(&self, spec: &FaultSpec) -> Result<Fault, FieldError> {
        let known = self.all_node_names();
        let mut lists = Vec::new();
        for (field, list) in [("faults.add", &spec.add), ("faults.remove", &spec.remove)] {
            let names = list.as_ref().map(|l| l.get_ref().clone()).unwrap_or_default();
            if let (Some(list), Some(bad)) = (list, names.iter().find(|n| !known.contains(n))) {
                return Err((list.span(), field, format!("no node `{bad}`")));
            }
            lists.push(names);
        }
        let (add, remove) = (lists[0].clone(), lists[1].clone());
        if add.is_empty() && remove.is_empty() {
            let msg = "layout_change needs `add` or `remove` (lists of node names)".into();
            return Err((spec.kind.span(), "faults.add", msg));
        }
        if let Some(both) = add.iter().find(|n| remove.contains(n)) {
            let msg = format!("`{both}` is both added and removed");
            return Err((spec.kind.span(), "faults.add", msg));
        }
        Ok(Fault::LayoutChange { add, remove })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
name = "t"
[cluster]
nodes = 4
zones = 2
replication_factor = 3
[workload]
clients = 2
keys = 4
duration_ms = 1000
[check]
quiesce_ms = 1000
checkers = ["read_after_write"]
[[faults]]
at_ms = 10
"#;

    fn parse(fault: &str) -> Result<Vec<(u64, Fault)>, crate::scenario::ScenarioError> {
        Scenario::parse("f.toml", &format!("{BASE}{fault}\n")).map(|s| s.timeline())
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn one_way_partitions_default_to_every_other_node_and_refuse_overlaps() {
        let cut = parse("kind = \"partition_oneway\"\nfrom = [\"n1\"]").unwrap();
        let want = Fault::PartitionOneway { from: names(&["n1"]), to: names(&["n2", "n3", "n4"]) };
        assert_eq!(cut, vec![(10, want)]);
        let cut = parse("kind = \"partition_oneway\"\nfrom = [\"n1\"]\nto = [\"n3\"]").unwrap();
        let want = Fault::PartitionOneway { from: names(&["n1"]), to: names(&["n3"]) };
        assert_eq!(cut, vec![(10, want)]);
        let err = parse("kind = \"partition_oneway\"\nfrom = [\"n1\"]\nto = [\"n1\"]").unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (18, "faults.to"), "{err}");
        let err = parse("kind = \"partition_oneway\"\nto = [\"n1\"]").unwrap_err();
        assert_eq!(err.field, "faults.from", "{err}");
        let all = "kind = \"partition_oneway\"\nfrom = [\"n1\", \"n2\", \"n3\", \"n4\"]";
        assert_eq!(parse(all).unwrap_err().field, "faults.from");
    }

    #[test]
    fn zone_splits_name_two_different_known_zones() {
        let split = parse("kind = \"zone_split\"\nzones = [\"z2\", \"z1\"]").unwrap();
        assert_eq!(split, vec![(10, Fault::ZoneSplit { a: "z2".into(), b: "z1".into() })]);
        for bad in ["[\"z1\"]", "[\"z1\", \"z1\"]", "[\"z1\", \"z3\"]"] {
            let err = parse(&format!("kind = \"zone_split\"\nzones = {bad}")).unwrap_err();
            assert_eq!((err.line, err.field.as_str()), (17, "faults.zones"), "{bad}: {err}");
        }
        let s = Scenario::parse("f.toml", &format!("{BASE}kind = \"heal\"\n")).unwrap();
        let zones: Vec<String> = s.all_node_names().iter().map(|n| s.zone_of(n)).collect();
        assert_eq!(zones, ["z1", "z2", "z1", "z2"]);
    }

    #[test]
    fn hold_needs_known_nodes_and_release_takes_none() {
        let hold = parse("kind = \"hold\"\nnodes = [\"n2\"]").unwrap();
        assert_eq!(hold, vec![(10, Fault::Hold { nodes: names(&["n2"]) })]);
        assert_eq!(parse("kind = \"release\"").unwrap(), vec![(10, Fault::Release)]);
        let err = parse("kind = \"hold\"\nnodes = [\"n9\"]").unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (17, "faults.nodes"), "{err}");
        let err = parse("kind = \"hold\"").unwrap_err();
        assert_eq!(err.field, "faults.nodes", "{err}");
    }

    #[test]
    fn pause_resume_and_clock_drift_parse_with_bounds() {
        assert_eq!(
            parse("kind = \"pause\"\nnode = \"n2\"").unwrap(),
            vec![(10, Fault::Pause { node: "n2".into() })]
        );
        assert_eq!(
            parse("kind = \"resume\"\nnode = \"n2\"").unwrap(),
            vec![(10, Fault::Resume { node: "n2".into() })]
        );
        assert_eq!(parse("kind = \"pause\"").unwrap_err().field, "faults.node");
        let drift = parse("kind = \"clock_drift\"\nnode = \"n1\"\ndrift_ppm = -100000").unwrap();
        assert_eq!(drift, vec![(10, Fault::ClockDrift { node: "n1".into(), drift_ppm: -100_000 })]);
        let err = parse("kind = \"clock_drift\"\nnode = \"n1\"\ndrift_ppm = 600000").unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (18, "faults.drift_ppm"), "{err}");
        let err = parse("kind = \"clock_drift\"\nnode = \"n1\"").unwrap_err();
        assert_eq!(err.field, "faults.drift_ppm", "{err}");
    }

    #[test]
    fn packet_loss_and_disk_faults_parse() {
        let loss = parse("kind = \"packet_loss\"\nnodes = [\"n1\"]").unwrap();
        let want = Fault::PacketLoss { nodes: names(&["n1"]), retransmit_ms: 200 };
        assert_eq!(loss, vec![(10, want)]);
        let slow = parse("kind = \"packet_loss\"\nnodes = [\"n1\"]\nretransmit_ms = 50").unwrap();
        assert_eq!(
            slow,
            vec![(10, Fault::PacketLoss { nodes: names(&["n1"]), retransmit_ms: 50 })]
        );
        let err = parse("kind = \"packet_loss\"\nnodes = [\"n1\"]\nretransmit_ms = 0").unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (18, "faults.retransmit_ms"), "{err}");
        for (kind, want) in [
            ("disk_eio", Fault::DiskEio { node: "n3".into() }),
            ("disk_full", Fault::DiskFull { node: "n3".into() }),
            ("disk_repair", Fault::DiskRepair { node: "n3".into() }),
        ] {
            assert_eq!(
                parse(&format!("kind = \"{kind}\"\nnode = \"n3\"")).unwrap(),
                vec![(10, want)]
            );
            assert_eq!(parse(&format!("kind = \"{kind}\"")).unwrap_err().field, "faults.node");
        }
    }

    #[test]
    fn disk_slow_needs_a_latency_in_bounds() {
        let slow = parse("kind = \"disk_slow\"\nnode = \"n2\"\nlatency_ms = 80\nmib_per_s = 20");
        let want = Fault::DiskSlow { node: "n2".into(), latency_ms: 80, mib_per_s: 20 };
        assert_eq!(slow.unwrap(), vec![(10, want)]);
        let unlimited = parse("kind = \"disk_slow\"\nnode = \"n2\"\nlatency_ms = 5").unwrap();
        let want = Fault::DiskSlow { node: "n2".into(), latency_ms: 5, mib_per_s: 0 };
        assert_eq!(unlimited, vec![(10, want)]);
        let err = parse("kind = \"disk_slow\"\nnode = \"n2\"").unwrap_err();
        assert_eq!(err.field, "faults.latency_ms", "{err}");
        let err = parse("kind = \"disk_slow\"\nnode = \"n2\"\nlatency_ms = 0").unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (18, "faults.latency_ms"), "{err}");
    }
}
