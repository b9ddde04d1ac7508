//! Proving a violation on a window when the whole history is too big to search.
//!
//! Why this is sound. Take the prefix of the history up to the completion of the operation
//! the search could not get past: operations still running then become unknown (a read
//! then says nothing; a write may or may not have happened), and a linearizable history
//! has linearizable prefixes. Pick an instant `T` before that operation at which nothing
//! that completed was in flight: every operation invoked before `T` completed before it,
//! so in any order it comes before every operation invoked after `T`. Whatever the order
//! did before `T` left the key holding *some* value. So if the operations invoked from `T`
//! on (with every unknown write, which may land at any time) cannot be ordered starting
//! from any value the key could hold, the history is not linearizable. Unknown writes
//! the order had already used before `T` only add options to the window, never remove
//! them.

use super::*;

/// Quiescent instants tried, latest first.
const STARTS_MAX: usize = 8;

/// A violation of `key`'s operations `indexes`, proven on a window ending at the completion
/// of `stuck` (an index into `history`), or `None` if no tried window proves one.
pub(super) fn prove(
    history: &[CasOp],
    indexes: &[usize],
    stuck: usize,
    steps_left: &mut u64,
    deadline: Instant,
) -> Option<Stuck> {
    let end = history[stuck].complete_us;
    // Completed operations the model uses (as `KeyProblem::new` keeps them).
    let counts = |o: &CasOp| {
        let unconditional =
            matches!(o.kind, CasKind::Read | CasKind::Write { .. } | CasKind::Delete);
        match o.outcome {
            CasOutcome::Fail | CasOutcome::Info => false,
            CasOutcome::Refused => !unconditional,
            CasOutcome::Ok { .. } => true,
        }
    };
    // The prefix at `end`: completed operations as they are, running writes unknown.
    let mut finite: Vec<usize> = Vec::new();
    let mut unknown: Vec<usize> = Vec::new();
    for &i in indexes {
        let o = &history[i];
        if o.invoke_us > end {
            continue;
        }
        if counts(o) && o.complete_us <= end {
            finite.push(i);
        } else if o.kind != CasKind::Read && o.outcome != CasOutcome::Fail {
            unknown.push(i);
        }
    }
    finite.sort_by_key(|&i| (history[i].invoke_us, i));
    // Instants at which every earlier-invoked operation had completed, latest first.
    let mut starts = Vec::new();
    let mut latest_completion = 0;
    for (n, &i) in finite.iter().enumerate() {
        let t = history[i].invoke_us;
        if (n == 0 || latest_completion < t) && t <= history[stuck].invoke_us {
            starts.push((n, t));
        }
        latest_completion = latest_completion.max(history[i].complete_us);
    }
    for &(first, since) in starts.iter().rev().take(STARTS_MAX) {
        let mut ops: Vec<CasOp> = Vec::new();
        let mut back: Vec<usize> = Vec::new();
        for &i in &finite[first..] {
            ops.push(history[i].clone());
            back.push(i);
        }
        for &i in &unknown {
            let mut o = history[i].clone();
            o.outcome = CasOutcome::Info;
            o.invoke_us = o.invoke_us.max(since);
            ops.push(o);
            back.push(i);
        }
        let all: Vec<usize> = (0..ops.len()).collect();
        let problem = KeyProblem::new(&ops, &all, true);
        let mut proven = true;
        for initial in 0..problem.values.len() as State {
            match problem.search_from(initial, steps_left, deadline) {
                Search::Stuck { .. } => {}
                Search::Linearizable => {
                    proven = false;
                    break;
                }
                Search::OutOfBudget(..) => return None,
            }
        }
        if proven {
            let mut window: Vec<usize> = finite[first..].to_vec();
            window.extend(unknown.iter().filter(|&&i| history[i].invoke_us >= since));
            window.sort_by_key(|&i| (history[i].invoke_us, i));
            let key = history[stuck].key.clone();
            return Some(Stuck {
                key,
                op: stuck,
                window,
                states: Vec::new(),
                since_us: Some(since),
            });
        }
    }
    None
}
