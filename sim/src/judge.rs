//! The verdict of a run: the scenario's checkers over the clients' histories and the final
//! reads, then the liveness probe; and, for a scenario built to be unsurvivable, whether it
//! failed the way it must (`check.expect_failure`).

use std::collections::BTreeMap;

use hangar_engine::block::block_partition;
use hangar_engine::layout::{ClusterLayout, NodeId};

use crate::check::set::SetOp;
use crate::check::{self, Violation};
use crate::finals::Finals;
use crate::history::Op;
use crate::liveness::LIVENESS_BOUND_MS;
use crate::run::{FINAL_CHECK_BUDGET_MS, node_id};
use crate::scenario::Scenario;

/// The checkers that need the final reads (or, for `set`, the final listing).
const FINAL_STATE_CHECKERS: [&str; 4] = ["no_lost_writes", "convergence", "block_refs", "set"];

/// Whether some checker needs the final reads.
pub(crate) fn checks_final_state(scenario: &Scenario) -> bool {
    let checkers = scenario.check.checkers.get_ref();
    checkers.iter().any(|c| FINAL_STATE_CHECKERS.contains(&c.as_str()))
}

/// What the clients recorded: the register and s3 workloads' operations, or the set
/// workload's.
#[derive(Clone, Copy)]
pub(crate) struct Histories<'a> {
    pub register: &'a [Op],
    pub set: &'a [SetOp],
}

pub(crate) fn judge(
    scenario: &Scenario,
    layout: &ClusterLayout,
    histories: Histories<'_>,
    finals: &Finals,
) -> Option<Violation> {
    let history = histories.register;
    let names = scenario.all_node_names();
    let name_of: BTreeMap<NodeId, &String> = names.iter().map(|n| (node_id(n), n)).collect();
    let replicas = |hash: &[u8; 32]| -> Vec<String> {
        let ids = layout.nodes_of(block_partition(hash));
        ids.iter().map(|id| name_of[id].clone()).collect()
    };
    for checker in scenario.check.checkers.get_ref() {
        let result = match checker.as_str() {
            "read_after_write" => check::register::check_read_after_write(history),
            "linearizable" => check::linearizable::check_linearizable(history),
            c if FINAL_STATE_CHECKERS.contains(&c) && !finals.done => Err(Violation {
                checker: "liveness",
                details: format!(
                    "final reads did not complete within {FINAL_CHECK_BUDGET_MS} ms after quiescence: {}",
                    finals.errors.last().cloned().unwrap_or_default()
                ),
            }),
            "no_lost_writes" => check::register::check_final_state(history, &finals.values),
            "convergence" => check::convergence::check_convergence(&finals.digests),
            "set" => {
                check::set::check_set_with_final_list(histories.set, finals.final_list.as_ref())
            }
            "block_refs" => {
                let live = check::block_refs::live_blocks(finals.objects.values(), &finals.lists);
                // Lists on the nodes the final layout places them on (a node a layout
                // change took the partition from keeps its old table entries).
                let placed: Vec<_> = (finals.live_lists.iter())
                    .filter(|l| layout.nodes_of(l.partition).contains(&node_id(&l.node)))
                    .cloned()
                    .collect();
                check::block_refs::check_block_refs(&finals.disks, &live, &replicas)
                    .and_then(|()| check::block_refs::check_lists(&placed, &finals.objects))
            }
            other => unreachable!("checker {other} validated at load"),
        };
        if let Err(v) = result {
            return Some(v);
        }
    }
    // Every run, whatever its checkers: the cluster must serve again once the faults stop.
    if let Some((node, why)) = finals.unserved.first() {
        let details = format!(
            "{node} did not serve a write and a read within {LIVENESS_BOUND_MS} ms of the \
             liveness probe, after quiescence ({} node(s) unserved; last error: {why})",
            finals.unserved.len()
        );
        return Some(Violation { checker: "liveness", details });
    }
    None
}

/// Judges an unsurvivable scenario (`check.expect_failure`) by its expectation: the failure
/// it names is the run passing (returned second, to be shown), and anything else — no
/// failure, or another checker's — is the run failing. Other scenarios are unchanged.
pub(crate) fn hold_to_expectation(
    scenario: &Scenario,
    violation: Option<Violation>,
) -> (Option<Violation>, Option<Violation>) {
    let Some(expected) = &scenario.check.expect_failure else { return (violation, None) };
    let expected = expected.get_ref();
    match violation {
        Some(v) if v.checker == expected => (None, Some(v)),
        Some(v) => (Some(v), None),
        None => {
            let details = format!(
                "the scenario is built to be unsurvivable and `{expected}` should have \
                 reported it, but every check passed"
            );
            (Some(Violation { checker: "expect_failure", details }), None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(expect: Option<&str>) -> Scenario {
        let expect = expect.map_or(String::new(), |e| format!("expect_failure = \"{e}\"\n"));
        let text = format!(
            "name = \"t\"\n[cluster]\nnodes = 3\nzones = 3\nreplication_factor = 3\n\
             [workload]\nclients = 1\nkeys = 1\nduration_ms = 100\n[check]\nquiesce_ms = 10\n\
             checkers = [\"read_after_write\", \"no_lost_writes\"]\n{expect}"
        );
        Scenario::parse("t.toml", &text).unwrap()
    }

    fn lost() -> Option<Violation> {
        Some(Violation { checker: "no_lost_writes", details: "k0 lost".into() })
    }

    #[test]
    fn an_unsurvivable_scenario_passes_only_on_the_failure_it_expects() {
        let unsurvivable = scenario(Some("no_lost_writes"));
        let (verdict, shown) = hold_to_expectation(&unsurvivable, lost());
        assert!(verdict.is_none(), "the expected failure is a pass");
        assert_eq!(shown.unwrap().checker, "no_lost_writes", "and is shown");

        let (verdict, _) = hold_to_expectation(&unsurvivable, None);
        assert_eq!(verdict.unwrap().checker, "expect_failure", "surviving it is a failure");

        let stale = Some(Violation { checker: "read_after_write", details: "stale".into() });
        let (verdict, shown) = hold_to_expectation(&unsurvivable, stale);
        assert_eq!(verdict.unwrap().checker, "read_after_write", "another failure stays one");
        assert!(shown.is_none());

        let (verdict, shown) = hold_to_expectation(&scenario(None), lost());
        assert_eq!(verdict.unwrap().checker, "no_lost_writes", "other scenarios unchanged");
        assert!(shown.is_none());
    }
}
