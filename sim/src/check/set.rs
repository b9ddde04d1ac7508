//! The set checker (`check_set`) lives in hangar-checkers, shared with the Jepsen harness;
//! re-exported here so simulation code finds it next to the others.

pub use hangar_checkers::set::*;

use super::Violation;

/// `check_set` over the clients' history and the final checker's listing. The final
/// listing began after every add was answered and the faults healed, so `check_set`'s
/// completeness rule makes it the "nothing acknowledged was lost" check of a set.
pub fn check_set_with_final_list(
    history: &[SetOp],
    final_list: Option<&SetOp>,
) -> Result<(), Violation> {
    let all: Vec<SetOp> = history.iter().chain(final_list).cloned().collect();
    check_set(&all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: &str, kind: SetOpKind, t: (u64, u64), outcome: SetOutcome) -> SetOp {
        SetOp { client: client.into(), kind, invoke_us: t.0, complete_us: t.1, outcome }
    }

    fn listing(client: &str, elements: &[&str], t: (u64, u64)) -> SetOp {
        let listed = Some(elements.iter().map(|e| e.to_string()).collect());
        op(client, SetOpKind::List, t, SetOutcome::Ok { listed })
    }

    #[test]
    fn a_final_listing_that_lost_an_acknowledged_add_fails() {
        let add = |e: &str, t| {
            let kind = SetOpKind::Add { element: e.into() };
            op("c1", kind, t, SetOutcome::Ok { listed: None })
        };
        // The clients' own listings all came before the second add: they pass.
        let history = vec![add("set/a", (0, 10)), listing("c2", &["set/a"], (20, 30))];
        let history = [history, vec![add("set/b", (40, 50))]].concat();
        assert_eq!(check_set_with_final_list(&history, None), Ok(()));
        let kept = listing("checker", &["set/a", "set/b"], (100, 110));
        assert_eq!(check_set_with_final_list(&history, Some(&kept)), Ok(()));
        let lost = listing("checker", &["set/a"], (100, 110));
        let err = check_set_with_final_list(&history, Some(&lost)).unwrap_err();
        assert!(err.details.contains("listing by checker") && err.details.contains("misses set/b"));
    }
}
