//! Read-after-write for registers (in the spirit of Garage's "reg2" model).
//!
//! A read that starts after a write was acknowledged must return that write's value or the
//! value of a write that may be newer. Concretely, a read `r` returning `x` is valid iff
//! some write `w` that leaves `x` in the register (the unique put of `x`; for "absent", any
//! delete or the initial state)
//!   1. was invoked before `r` completed (no reading from the future), and
//!   2. is not *superseded* before `r` began: there is no acknowledged write `w2` with
//!      `w2` completed before `r` was invoked and `w` completed before `w2` was invoked.
//!
//! Writes with an unknown outcome (`Info`) may take effect at any time after their
//! invocation, so they are never superseded. The initial state is an acknowledged write
//! that completed before time began.
//!
//! `check_final_state` applies the same rule to replica contents read after the run
//! quiesced: every acknowledged write must survive unless a later one replaced it
//! ("no acknowledged write lost").

use std::collections::BTreeMap;

use crate::Violation;
use crate::history::{Op, Outcome, show};

/// A write as the checker sees it: when it ran, and whether it was acknowledged.
struct Write<'a> {
    op: Option<&'a Op>, // None = the initial (absent) state
    value: Option<&'a [u8]>,
}

impl Write<'_> {
    fn invoke(&self) -> i128 {
        self.op.map_or(i128::MIN, |o| o.invoke_us as i128)
    }
    /// Completion time if acknowledged; `None` if it may still take effect at any time.
    fn acked_at(&self) -> Option<i128> {
        match self.op {
            None => Some(i128::MIN),
            Some(o) if o.is_ok() => Some(o.complete_us as i128),
            Some(_) => None,
        }
    }
}

fn writes_by_key(history: &[Op]) -> BTreeMap<&str, Vec<Write<'_>>> {
    let mut by_key: BTreeMap<&str, Vec<Write<'_>>> = BTreeMap::new();
    for op in history {
        if let Some(value) = op.written() {
            // A failed-for-sure write never took effect; everything else may have.
            if op.outcome != Outcome::Fail {
                by_key.entry(&op.key).or_default().push(Write { op: Some(op), value });
            }
        }
    }
    by_key
}

/// Why a read of `value` over `[invoke, complete]` is invalid, if it is.
fn judge(
    writes: &[Write<'_>],
    value: Option<&[u8]>,
    invoke: i128,
    complete: i128,
) -> Option<String> {
    let initial = Write { op: None, value: None };
    let candidates: Vec<&Write<'_>> =
        writes.iter().chain(std::iter::once(&initial)).filter(|w| w.value == value).collect();
    if candidates.is_empty() {
        return Some(format!("returned {} which no client ever wrote", show(value)));
    }
    let from_past: Vec<&&Write<'_>> = candidates.iter().filter(|w| w.invoke() < complete).collect();
    if from_past.is_empty() {
        return Some(format!("returned {} before it was written", show(value)));
    }
    let superseding = |w: &Write<'_>| {
        let done = w.acked_at()?;
        writes
            .iter()
            .filter(|w2| w2.acked_at().is_some_and(|t| t < invoke) && done < w2.invoke())
            .max_by_key(|w2| w2.acked_at())
    };
    // Report the most recent superseding write: the one the read most clearly missed.
    let mut witness: Option<&Write<'_>> = None;
    for w in &from_past {
        match superseding(w) {
            None => return None,
            Some(w2) => {
                if witness.is_none_or(|best| w2.acked_at() > best.acked_at()) {
                    witness = Some(w2);
                }
            }
        }
    }
    let w2 = witness.expect("from_past is not empty");
    let op = w2.op.expect("the initial state never supersedes");
    Some(format!(
        "returned {} but {} (by {}, acknowledged at {}us) had replaced it before the read began",
        show(value),
        show(w2.value),
        op.client,
        op.complete_us
    ))
}

/// Checks every acknowledged read of the history.
pub fn check_read_after_write(history: &[Op]) -> Result<(), Violation> {
    let writes = writes_by_key(history);
    for op in history.iter().filter(|o| o.written().is_none()) {
        let Outcome::Ok { read } = &op.outcome else {
            continue;
        };
        let ws = writes.get(op.key.as_str()).map(Vec::as_slice).unwrap_or(&[]);
        if let Some(why) = judge(ws, read.as_deref(), op.invoke_us as i128, op.complete_us as i128)
        {
            return Err(Violation {
                checker: "read_after_write",
                details: format!(
                    "key={} read by {} at {}..{}us {why}",
                    op.key, op.client, op.invoke_us, op.complete_us
                ),
            });
        }
    }
    Ok(())
}

/// Checks what each replica holds once the run is over: `finals` maps a replica name to
/// its value for every key. Reading at the end, nothing acknowledged may be missing.
pub fn check_final_state(
    history: &[Op],
    finals: &BTreeMap<String, BTreeMap<String, Option<Vec<u8>>>>,
) -> Result<(), Violation> {
    let writes = writes_by_key(history);
    let end = history.iter().map(|o| o.complete_us as i128).max().unwrap_or(0) + 1;
    for (replica, values) in finals {
        for (key, value) in values {
            let ws = writes.get(key.as_str()).map(Vec::as_slice).unwrap_or(&[]);
            if let Some(why) = judge(ws, value.as_deref(), end, end) {
                return Err(Violation {
                    checker: "no_lost_writes",
                    details: format!("key={key} on replica {replica} after quiescence {why}"),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::OpKind;

    fn put(client: &str, v: &str, t: (u64, u64), ok: bool) -> Op {
        let outcome = if ok { Outcome::Ok { read: None } } else { Outcome::Info };
        let kind = OpKind::Put { value: v.as_bytes().to_vec() };
        Op {
            client: client.into(),
            key: "k".into(),
            kind,
            invoke_us: t.0,
            complete_us: t.1,
            outcome,
        }
    }

    fn del(t: (u64, u64)) -> Op {
        let outcome = Outcome::Ok { read: None };
        Op {
            client: "d".into(),
            key: "k".into(),
            kind: OpKind::Delete,
            invoke_us: t.0,
            complete_us: t.1,
            outcome,
        }
    }

    fn get(v: Option<&str>, t: (u64, u64)) -> Op {
        let outcome = Outcome::Ok { read: v.map(|s| s.as_bytes().to_vec()) };
        Op {
            client: "r".into(),
            key: "k".into(),
            kind: OpKind::Get,
            invoke_us: t.0,
            complete_us: t.1,
            outcome,
        }
    }

    #[test]
    fn reading_the_latest_acknowledged_write_passes() {
        let h = vec![
            put("a", "1", (0, 10), true),
            put("a", "2", (20, 30), true),
            get(Some("2"), (40, 50)),
        ];
        assert!(check_read_after_write(&h).is_ok());
    }

    #[test]
    fn stale_read_after_acknowledged_write_fails() {
        let h = vec![
            put("a", "1", (0, 10), true),
            put("b", "2", (20, 30), true),
            get(Some("1"), (40, 50)),
        ];
        let err = check_read_after_write(&h).unwrap_err();
        assert!(err.details.contains("had replaced it"), "{err}");
    }

    #[test]
    fn concurrent_writes_may_be_read_in_either_order() {
        let h = vec![
            put("a", "1", (0, 30), true),
            put("b", "2", (10, 20), true),
            get(Some("1"), (40, 50)),
        ];
        assert!(check_read_after_write(&h).is_ok());
    }

    #[test]
    fn an_unacknowledged_write_may_appear_late() {
        let h = vec![
            put("a", "1", (0, 5), false),
            put("b", "2", (20, 30), true),
            get(Some("1"), (40, 50)),
        ];
        assert!(check_read_after_write(&h).is_ok());
    }

    #[test]
    fn absent_after_acknowledged_write_fails_but_after_delete_passes() {
        let lost = vec![put("a", "1", (0, 10), true), get(None, (20, 30))];
        assert!(check_read_after_write(&lost).is_err());
        let deleted = vec![put("a", "1", (0, 10), true), del((12, 15)), get(None, (20, 30))];
        assert!(check_read_after_write(&deleted).is_ok());
    }

    #[test]
    fn reading_a_value_never_written_or_from_the_future_fails() {
        assert!(check_read_after_write(&[get(Some("x"), (0, 1))]).is_err());
        let future = vec![get(Some("1"), (0, 5)), put("a", "1", (10, 20), true)];
        assert!(check_read_after_write(&future).is_err());
    }

    #[test]
    fn final_state_missing_an_acknowledged_write_is_a_lost_write() {
        let h = vec![put("a", "1", (0, 10), true), put("a", "2", (20, 30), true)];
        let replica = |v: Option<&str>| {
            let mut m = BTreeMap::new();
            m.insert("k".to_string(), v.map(|s| s.as_bytes().to_vec()));
            m
        };
        let mut finals = BTreeMap::new();
        finals.insert("n1".to_string(), replica(Some("2")));
        assert!(check_final_state(&h, &finals).is_ok());
        finals.insert("n2".to_string(), replica(Some("1")));
        let err = check_final_state(&h, &finals).unwrap_err();
        assert!(err.details.contains("replica n2"), "{err}");
        finals.insert("n2".to_string(), replica(None));
        assert!(check_final_state(&h, &finals).is_err());
    }
}
