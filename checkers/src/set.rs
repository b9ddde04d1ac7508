//! Set/list completeness: the model of the "set" workload, where clients add unique
//! elements (objects under a prefix) and list the prefix.
//!
//! A listing `l` that returned the set `S` over `[invoke, complete]` is valid iff
//!   1. *complete*: every add acknowledged before `l` was invoked is in `S` (an add that
//!      finished first must be visible to every listing that began after it), and
//!   2. *no phantom*: every element of `S` was added by an add that was not a sure failure
//!      and was invoked before `l` completed (nothing appears that nobody wrote, or that was
//!      written only later).
//!
//! Adds with an unknown outcome (`Info`) may show up, or not, in any later listing. Adds are
//! never removed in this workload, so nothing may disappear either: rule 1 covers that, as
//! every listing must contain every add acknowledged before it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::Violation;

/// What a set-workload client asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetOpKind {
    /// Add one unique element.
    Add { element: String },
    /// List every element.
    List,
}

/// How a set operation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetOutcome {
    /// Acknowledged; a listing carries what it returned.
    Ok { listed: Option<Vec<String>> },
    /// Definitely had no effect.
    Fail,
    /// Unknown: it may or may not have taken effect, at any time after its invocation.
    Info,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetOp {
    pub client: String,
    pub kind: SetOpKind,
    pub invoke_us: u64,
    pub complete_us: u64,
    pub outcome: SetOutcome,
}

/// Checks every acknowledged listing of the history; reports the first broken one.
pub fn check_set(history: &[SetOp]) -> Result<(), Violation> {
    // element → (invoked at, acknowledged at) of the add that wrote it (elements are unique).
    let mut adds: BTreeMap<&str, (u64, Option<u64>)> = BTreeMap::new();
    for op in history {
        if let SetOpKind::Add { element } = &op.kind {
            let acked = match op.outcome {
                SetOutcome::Ok { .. } => Some(op.complete_us),
                SetOutcome::Fail => continue,
                SetOutcome::Info => None,
            };
            if adds.insert(element, (op.invoke_us, acked)).is_some() {
                return Err(violation(format!("element {element} was added twice")));
            }
        }
    }
    for op in history {
        let SetOutcome::Ok { listed: Some(listed) } = &op.outcome else {
            continue;
        };
        let seen: BTreeSet<&str> = listed.iter().map(String::as_str).collect();
        let at = format!("listing by {} at {}..{}us", op.client, op.invoke_us, op.complete_us);
        for element in &seen {
            match adds.get(element) {
                None => return Err(violation(format!("{at} returned phantom {element}"))),
                Some((invoked, _)) if *invoked >= op.complete_us => {
                    return Err(violation(format!(
                        "{at} returned {element}, added only at {invoked}us"
                    )));
                }
                Some(_) => {}
            }
        }
        let lost = adds
            .iter()
            .find(|(e, (_, acked))| acked.is_some_and(|t| t < op.invoke_us) && !seen.contains(*e));
        if let Some((element, (_, acked))) = lost {
            let acked = acked.expect("only acknowledged adds are lost");
            return Err(violation(format!(
                "{at} misses {element}, acknowledged at {acked}us ({} of {} elements listed)",
                seen.len(),
                adds.len()
            )));
        }
    }
    Ok(())
}

fn violation(details: String) -> Violation {
    Violation { checker: "set", details }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(e: &str, t: (u64, u64), outcome: SetOutcome) -> SetOp {
        let kind = SetOpKind::Add { element: e.into() };
        SetOp { client: "a".into(), kind, invoke_us: t.0, complete_us: t.1, outcome }
    }

    fn ok() -> SetOutcome {
        SetOutcome::Ok { listed: None }
    }

    fn list(es: &[&str], t: (u64, u64)) -> SetOp {
        let listed = Some(es.iter().map(|s| s.to_string()).collect());
        let outcome = SetOutcome::Ok { listed };
        SetOp {
            client: "l".into(),
            kind: SetOpKind::List,
            invoke_us: t.0,
            complete_us: t.1,
            outcome,
        }
    }

    #[test]
    fn listings_that_hold_every_earlier_acknowledged_add_pass() {
        let h = vec![
            add("a", (0, 10), ok()),
            list(&["a"], (20, 30)),
            add("b", (25, 40), ok()),
            // Concurrent with b's add: may or may not see it.
            list(&["a"], (35, 45)),
            list(&["a", "b"], (36, 46)),
            list(&["a", "b"], (50, 60)),
        ];
        assert_eq!(check_set(&h), Ok(()));
    }

    #[test]
    fn a_listing_missing_an_acknowledged_add_is_a_lost_element() {
        let h = vec![add("a", (0, 10), ok()), add("b", (5, 15), ok()), list(&["b"], (20, 30))];
        let err = check_set(&h).unwrap_err();
        assert!(err.details.contains("misses a"), "{err}");
    }

    #[test]
    fn an_element_that_disappears_later_is_lost() {
        let h = vec![add("a", (0, 10), ok()), list(&["a"], (20, 30)), list(&[], (40, 50))];
        assert!(check_set(&h).is_err());
    }

    #[test]
    fn phantoms_and_elements_from_the_future_fail() {
        let phantom = vec![add("a", (0, 10), ok()), list(&["a", "zz"], (20, 30))];
        let err = check_set(&phantom).unwrap_err();
        assert!(err.details.contains("phantom zz"), "{err}");
        let future = vec![list(&["a"], (0, 5)), add("a", (10, 20), ok())];
        assert!(check_set(&future).unwrap_err().details.contains("added only at"));
        let failed = vec![add("a", (0, 10), SetOutcome::Fail), list(&["a"], (20, 30))];
        assert!(check_set(&failed).unwrap_err().details.contains("phantom a"));
    }

    #[test]
    fn unknown_adds_may_appear_or_not() {
        let h =
            vec![add("a", (0, 10), SetOutcome::Info), list(&[], (20, 30)), list(&["a"], (40, 50))];
        assert_eq!(check_set(&h), Ok(()));
    }

    #[test]
    fn history_lines_round_trip_through_json() {
        let op = list(&["a"], (1, 2));
        let line = serde_json::to_string(&op).unwrap();
        assert_eq!(serde_json::from_str::<SetOp>(&line).unwrap(), op);
    }
}
