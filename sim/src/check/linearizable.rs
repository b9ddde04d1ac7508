//! The linearizability checker on the register workload's history: each operation mapped
//! onto the register model of `hangar_checkers::linearizable` (WGL search per key, with a
//! step budget), which the Jepsen `cas` workload uses too.
//!
//! Stronger than read-after-write: that one only asks a read to see every write
//! acknowledged before it began, so a read may return a write that is still running (or
//! whose writer gave up) and a later read may return the older value again. A linearizable
//! history never shows a value that appeared and then vanished.

use hangar_checkers::linearizable::{self, Budget, CasKind, CasOp, CasOutcome, Verdict};

use super::Violation;
use crate::history::{Op, OpKind, Outcome};

/// Search steps per key. A simulated run's history (a few hundred operations per key)
/// needs far fewer; the wall-clock limit is a backstop far above what the steps take, so
/// the verdict depends on the history alone (a run must replay from its seed).
const STEPS_PER_KEY_MAX: u64 = 5_000_000;
const WALL_LIMIT_S: u64 = 120;

/// The register operation as the model sees it: a put writes its unique value, a delete
/// makes the key absent; a failed read had no effect, an unknown write may have.
pub fn to_cas(op: &Op) -> CasOp {
    let kind = match &op.kind {
        OpKind::Put { value } => CasKind::Write { value: value.clone() },
        OpKind::Delete => CasKind::Delete,
        OpKind::Get => CasKind::Read,
    };
    let outcome = match &op.outcome {
        Outcome::Ok { read } => CasOutcome::Ok { read: read.clone() },
        Outcome::Fail => CasOutcome::Fail,
        Outcome::Info => CasOutcome::Info,
    };
    CasOp {
        client: op.client.clone(),
        key: op.key.clone(),
        kind,
        invoke_us: op.invoke_us,
        complete_us: op.complete_us,
        outcome,
    }
}

/// Passes when the history is linearizable. A search that runs out of budget is a failure
/// too (named as such): a checker that was asked for must decide, or the scenario must be
/// made smaller.
pub fn check_linearizable(history: &[Op]) -> Result<(), Violation> {
    let cas: Vec<CasOp> = history.iter().map(to_cas).collect();
    let budget = Budget {
        steps_max: STEPS_PER_KEY_MAX,
        time_max: std::time::Duration::from_secs(WALL_LIMIT_S),
    };
    match linearizable::check(&cas, budget) {
        Verdict::Linearizable => Ok(()),
        Verdict::NotLinearizable(stuck) => {
            Err(Violation { checker: "linearizable", details: linearizable::explain(&cas, &stuck) })
        }
        Verdict::Unknown { key, reason } => Err(Violation {
            checker: "linearizable",
            details: format!("undecided for key {key} within the budget: {reason}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: &str, kind: OpKind, at: (u64, u64), outcome: Outcome) -> Op {
        let (invoke_us, complete_us) = at;
        Op { client: client.into(), key: "k".into(), kind, invoke_us, complete_us, outcome }
    }

    fn put(v: &str) -> OpKind {
        OpKind::Put { value: v.as_bytes().to_vec() }
    }

    fn read(v: &str) -> Outcome {
        Outcome::Ok { read: Some(v.as_bytes().to_vec()) }
    }

    /// The anomaly awaited read repair prevents: a write whose writer gave up (unknown
    /// outcome) is read, then a later read returns the value before it. Read-after-write
    /// accepts this history; linearizability does not.
    fn appeared_then_vanished() -> Vec<Op> {
        vec![
            op("c1", put("old"), (0, 10), Outcome::Ok { read: None }),
            op("c1", put("new"), (20, 5_000), Outcome::Info),
            op("c2", OpKind::Get, (100, 200), read("new")),
            op("c3", OpKind::Get, (300, 400), read("old")),
        ]
    }

    #[test]
    fn a_value_that_appears_then_vanishes_is_caught() {
        let history = appeared_then_vanished();
        assert!(crate::check::register::check_read_after_write(&history).is_ok());
        let violation = check_linearizable(&history).unwrap_err();
        assert_eq!(violation.checker, "linearizable");
        assert!(violation.details.contains("old"), "{}", violation.details);
    }

    #[test]
    fn the_same_reads_in_the_other_order_pass() {
        let mut history = appeared_then_vanished();
        history[2].outcome = read("old");
        history[3].outcome = read("new");
        assert_eq!(check_linearizable(&history), Ok(()));
        // A failed read says nothing.
        history.push(op("c2", OpKind::Get, (500, 600), Outcome::Fail));
        assert_eq!(check_linearizable(&history), Ok(()));
    }
}
