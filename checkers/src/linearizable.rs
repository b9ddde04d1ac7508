//! Linearizability of per-key registers with conditional writes (S3's `If-None-Match: *`
//! and `If-Match: ETAG` on PUT), checked by a WGL search (Wing & Gong, with Lowe's
//! just-in-time linearization and memoisation of *(linearized set, state)*).
//!
//! A history is linearizable iff its operations can be put in one sequential order that
//! respects real time (an operation that completed before another was invoked comes first)
//! and in which every operation does what the register model says it did. Registers are
//! independent (the model is P-compositional), so each key is searched on its own, which
//! keeps the search space to one key's operations.
//!
//! **The model.** The state is the key's value, or absent. Values are unique per write, so
//! a value names the write that left it (and an ETag names a value).
//! * `Read` returns the state.
//! * `Write` (unconditional PUT) sets it; `Delete` sets it to absent.
//! * `CreateIfAbsent` (`If-None-Match: *`) sets it only if it is absent.
//! * `WriteIfMatch { expected }` (`If-Match`) sets it only if it holds `expected`.
//!
//! **Outcomes.** `Ok` — it happened once, between invocation and completion (for a
//! conditional write: the condition held and the write applied). `Refused` — a conditional
//! write answered "precondition failed" (412): the condition was false at some instant of
//! the call, and nothing changed; this is an observation the search must also explain.
//! `Fail` — it certainly had no effect (e.g. 409 ConditionalRequestConflict, connection
//! refused): dropped. `Info` — unknown: it took effect at some instant after invocation
//! (with no upper bound), or never; an `Info` read is dropped.
//!
//! **Why `Info` writes stay cheap.** An unknown operation never has to come before anything
//! (it never completed), so one that would leave the state as it is can always be moved to
//! the end of the order, where it changes nothing anybody saw. The search therefore only
//! linearizes `Info` operations at points where they change the state, and stops as soon as
//! every completed operation is placed. This avoids trying each no-op `Info` at every
//! position (2^k orders of nothing). Two more reductions keep runs with hundreds of unknown
//! writes (a node killed mid-request, a partition's timeouts) tractable:
//! * values that no read returned and no `If-Match` names are indistinguishable to every
//!   operation, so they are one state ("a value no read returned");
//! * unknown operations that do the same thing (same condition, same resulting state) are
//!   interchangeable once invoked, as none of them ever completes: the search only places
//!   the earliest-invoked unplaced one of each such class.
//!
//! **Budget.** The search is exponential in the worst case: a step budget and a deadline
//! turn a search that runs too long into `Unknown` rather than a hang.
//!
//! **What a violation shows.** The search records the furthest point in time any order
//! reached: the operation whose completion no order could pass (the *stuck* operation),
//! the values the register could hold just before it, and the operations still unordered
//! around it — the smallest window a human needs to see why.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::history::show;

/// What a client asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CasKind {
    Read,
    /// Unconditional PUT of a unique value.
    Write {
        value: Vec<u8>,
    },
    /// Unconditional DELETE (the key becomes absent).
    Delete,
    /// PUT with `If-None-Match: *`.
    CreateIfAbsent {
        value: Vec<u8>,
    },
    /// PUT with `If-Match: <ETag of expected>`.
    WriteIfMatch {
        expected: Vec<u8>,
        value: Vec<u8>,
    },
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CasOutcome {
    /// Happened; a read carries what it returned (`None`: absent).
    Ok { read: Option<Vec<u8>> },
    /// A conditional write whose condition was false: answered 412, no effect.
    Refused,
    /// Certainly no effect.
    Fail,
    /// Unknown: may have taken effect at any time after its invocation.
    Info,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CasOp {
    pub client: String,
    pub key: String,
    pub kind: CasKind,
    pub invoke_us: u64,
    pub complete_us: u64,
    pub outcome: CasOutcome,
}

/// How much search one check may spend, over all keys.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Search steps per key (an attempt to place an operation, or a backtrack).
    pub steps_max: u64,
    pub time_max: Duration,
}

impl Default for Budget {
    fn default() -> Self {
        Budget { steps_max: 20_000_000, time_max: Duration::from_secs(30) }
    }
}

/// Why a history is not linearizable, in terms a human can check by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stuck {
    pub key: String,
    /// Index (into the checked history) of the operation no order could place.
    pub op: usize,
    /// Indexes of the operations still unordered when the search got stuck, invoked before
    /// the stuck one completed (the stuck one included), by invocation time.
    pub window: Vec<usize>,
    /// The values the register could hold just before the stuck operation (`None`: absent;
    /// `UNSEEN_TEXT`: some value no read returned).
    pub states: Vec<Option<Vec<u8>>>,
    /// Set when the violation was proven on a window alone (the whole history was too big
    /// to search): from this instant, when no operation was in flight, to the stuck
    /// operation, whatever the key held at the start (`window`: the operations in it).
    pub since_us: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    NotLinearizable(Stuck),
    /// The budget ran out on `key` before an answer.
    Unknown {
        key: String,
        reason: String,
    },
}

/// Checks every key of `history` (keys in order; stops at the first violation).
pub fn check(history: &[CasOp], budget: Budget) -> Verdict {
    let deadline = Instant::now() + budget.time_max;
    let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, op) in history.iter().enumerate() {
        by_key.entry(op.key.as_str()).or_default().push(i);
    }
    let mut unknown = None;
    for (key, indexes) in by_key {
        let mut steps_left = budget.steps_max;
        let mut problem = KeyProblem::new(history, &indexes, true);
        let mut result = problem.search(&mut steps_left, deadline);
        if let Search::Stuck { states, .. } = &result
            && states.contains(&UNSEEN)
        {
            // The report should name real values: search again without merging them (the
            // verdict cannot change; if the budget runs out, the merged report stands).
            let plain = KeyProblem::new(history, &indexes, false);
            let again = plain.search(&mut steps_left, deadline);
            if matches!(again, Search::Stuck { .. }) {
                (problem, result) = (plain, again);
            }
        }
        match result {
            Search::Linearizable => {}
            Search::Stuck { op, unordered, states } => {
                let mut window: Vec<usize> = unordered
                    .into_iter()
                    .map(|o| problem.origin[o])
                    .filter(|&i| history[i].invoke_us <= history[problem.origin[op]].complete_us)
                    .collect();
                window.sort_by_key(|&i| (history[i].invoke_us, i));
                let states = states.iter().map(|&s| problem.value(s)).collect();
                let op = problem.origin[op];
                let stuck = Stuck { key: key.to_string(), op, window, states, since_us: None };
                return Verdict::NotLinearizable(stuck);
            }
            Search::OutOfBudget(mut reason, furthest) => {
                if let Some(op) = furthest {
                    let op = problem.origin[op];
                    let mut steps = budget.steps_max;
                    if let Some(stuck) = window::prove(history, &indexes, op, &mut steps, deadline)
                    {
                        return Verdict::NotLinearizable(stuck);
                    }
                    reason.push_str(&format!("; no order got past {}", describe(&history[op])));
                }
                unknown.get_or_insert((key.to_string(), reason));
            }
        }
    }
    match unknown {
        Some((key, reason)) => Verdict::Unknown { key, reason },
        None => Verdict::Linearizable,
    }
}

/// A violation as text: the stuck operation, the states it could have seen, the window.
pub fn explain(history: &[CasOp], stuck: &Stuck) -> String {
    if let Some(since) = stuck.since_us {
        let mut text = format!(
            "key={} no order of the operations from {since}us (nothing in flight then), \
             whatever the key held, explains {}; the operations of that window ({}):",
            stuck.key,
            describe(&history[stuck.op]),
            stuck.window.len()
        );
        list_ops(&mut text, history, &stuck.window);
        return text;
    }
    let states: Vec<String> = stuck
        .states
        .iter()
        .map(|s| match writer_of(history, &stuck.key, s.as_deref()) {
            Some(w) => format!("{} (from {})", show(s.as_deref()), describe(w)),
            None => show(s.as_deref()),
        })
        .collect();
    let mut text = format!(
        "key={} no order of the operations explains {}; just before it the register could \
         hold only {{{}}}; operations still unordered there ({}):",
        stuck.key,
        describe(&history[stuck.op]),
        states.join(", "),
        stuck.window.len()
    );
    list_ops(&mut text, history, &stuck.window);
    text
}

fn list_ops(text: &mut String, history: &[CasOp], ops: &[usize]) {
    const SHOWN_MAX: usize = 12;
    for &i in ops.iter().take(SHOWN_MAX) {
        text.push_str("\n  ");
        text.push_str(&describe(&history[i]));
    }
    if ops.len() > SHOWN_MAX {
        text.push_str(&format!("\n  … and {} more", ops.len() - SHOWN_MAX));
    }
}

/// The operation that wrote `value` to `key` (values are unique per write); none for absent.
fn writer_of<'a>(history: &'a [CasOp], key: &str, value: Option<&[u8]>) -> Option<&'a CasOp> {
    let value = value?;
    history.iter().find(|o| {
        o.key == key
            && match &o.kind {
                CasKind::Write { value: v }
                | CasKind::CreateIfAbsent { value: v }
                | CasKind::WriteIfMatch { value: v, .. } => v == value,
                CasKind::Read | CasKind::Delete => false,
            }
    })
}

/// `c1 if-match(c2-4) write c1-9 [100..250us] refused`.
pub fn describe(op: &CasOp) -> String {
    let v = |b: &[u8]| show(Some(b));
    let what = match &op.kind {
        CasKind::Read => "read".to_string(),
        CasKind::Write { value } => format!("write {}", v(value)),
        CasKind::Delete => "delete".to_string(),
        CasKind::CreateIfAbsent { value } => format!("create-if-absent {}", v(value)),
        CasKind::WriteIfMatch { expected, value } => {
            format!("if-match({}) write {}", v(expected), v(value))
        }
    };
    let outcome = match &op.outcome {
        CasOutcome::Ok { read } if op.kind == CasKind::Read => {
            format!("ok → {}", show(read.as_deref()))
        }
        CasOutcome::Ok { .. } => "ok".to_string(),
        CasOutcome::Refused => "refused (precondition failed)".to_string(),
        CasOutcome::Fail => "fail".to_string(),
        CasOutcome::Info => "info (unknown)".to_string(),
    };
    format!("{} {what} [{}..{}us] {outcome}", op.client, op.invoke_us, op.complete_us)
}

/// Interned value: 0 is "absent", 1 any value nobody observed, others index
/// `KeyProblem::values`.
type State = u32;
const ABSENT: State = 0;
const UNSEEN: State = 1;
/// How `Stuck::states` shows `UNSEEN`.
pub const UNSEEN_TEXT: &[u8] = b"<a value no read returned>";

/// One operation as the search sees it.
#[derive(Debug, Clone, Copy)]
struct Step {
    action: Action,
    /// Unknown outcome: never completes, and is only placed where it changes the state.
    info: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Read(State),
    Set(State),
    /// A conditional write (`expected` is `ABSENT` for If-None-Match: *); `refused`: it
    /// answered 412, so the condition was false.
    Cond {
        expected: State,
        value: State,
        refused: bool,
    },
}

impl Step {
    /// The state after this operation at `state`, or `None` if it cannot happen there (or,
    /// for an `Info` operation, would change nothing).
    fn apply(self, state: State) -> Option<State> {
        let next = match self.action {
            Action::Read(v) => (state == v).then_some(state),
            Action::Set(v) => Some(v),
            Action::Cond { expected, value, refused } => match (state == expected, refused) {
                (true, false) => Some(value),
                (false, true) => Some(state),
                _ => None,
            },
        }?;
        if self.info && next == state { None } else { Some(next) }
    }
}

/// One key's operations, compiled for the search.
struct KeyProblem {
    steps: Vec<Step>,
    /// Each step's index in the checked history.
    origin: Vec<usize>,
    /// Entries sorted by time: (op, is_call).
    entries: Vec<(usize, bool)>,
    /// Each op's return entry (its call entry is found by the scan).
    return_entry: Vec<usize>,
    /// Interned values (index 0 unused: absent).
    values: Vec<Vec<u8>>,
    /// The class of each `Info` step (`NO_CLASS` for the others).
    class_of: Vec<usize>,
    /// Each class's steps, by invocation.
    members: Vec<Vec<usize>>,
}

const NO_CLASS: usize = usize::MAX;

enum Search {
    Linearizable,
    Stuck {
        op: usize,
        unordered: Vec<usize>,
        states: Vec<State>,
    },
    /// Why, and the operation whose completion no order had passed yet.
    OutOfBudget(String, Option<usize>),
}

impl KeyProblem {
    /// `merge_unseen`: values nobody observed become the one state `UNSEEN`.
    fn new(history: &[CasOp], indexes: &[usize], merge_unseen: bool) -> KeyProblem {
        // Values nobody can tell apart (never read, never named by an If-Match) are one state.
        let mut observed: BTreeSet<&[u8]> = BTreeSet::new();
        for &i in indexes {
            let op = &history[i];
            match (&op.kind, &op.outcome) {
                (CasKind::Read, CasOutcome::Ok { read: Some(v) }) => observed.insert(v),
                (CasKind::WriteIfMatch { expected, .. }, _) => observed.insert(expected),
                _ => false,
            };
        }
        let mut interned: BTreeMap<Vec<u8>, State> = BTreeMap::new();
        let mut values = vec![Vec::new(), UNSEEN_TEXT.to_vec()];
        let mut intern = |v: &[u8]| -> State {
            if merge_unseen && !observed.contains(v) {
                return UNSEEN;
            }
            if let Some(&s) = interned.get(v) {
                return s;
            }
            values.push(v.to_vec());
            let s = (values.len() - 1) as State;
            interned.insert(v.to_vec(), s);
            s
        };
        let mut steps = Vec::new();
        let mut origin = Vec::new();
        let mut times = Vec::new();
        for &i in indexes {
            let op = &history[i];
            let info = match op.outcome {
                CasOutcome::Fail => continue,
                CasOutcome::Info if op.kind == CasKind::Read => continue,
                CasOutcome::Info => true,
                _ => false,
            };
            let refused = op.outcome == CasOutcome::Refused;
            let action = match (&op.kind, &op.outcome) {
                (CasKind::Read, CasOutcome::Ok { read }) => {
                    Action::Read(read.as_deref().map_or(ABSENT, &mut intern))
                }
                // A refused read or unconditional write is meaningless: it had no effect.
                (CasKind::Read | CasKind::Write { .. } | CasKind::Delete, CasOutcome::Refused) => {
                    continue;
                }
                (CasKind::Read, _) => continue,
                (CasKind::Write { value }, _) => Action::Set(intern(value)),
                (CasKind::Delete, _) => Action::Set(ABSENT),
                (CasKind::CreateIfAbsent { value }, _) => {
                    Action::Cond { expected: ABSENT, value: intern(value), refused }
                }
                (CasKind::WriteIfMatch { expected, value }, _) => {
                    Action::Cond { expected: intern(expected), value: intern(value), refused }
                }
            };
            let complete = if info { u64::MAX } else { op.complete_us.max(op.invoke_us) };
            times.push((op.invoke_us, complete));
            steps.push(Step { action, info });
            origin.push(i);
        }
        // Calls before returns at equal times: operations that touch in time count as
        // concurrent (the lenient reading of a clock with finite resolution).
        let mut entries: Vec<(u64, bool, usize)> = Vec::new();
        for (op, &(invoke, complete)) in times.iter().enumerate() {
            entries.push((invoke, false, op));
            entries.push((complete, true, op));
        }
        entries.sort_unstable();
        let mut return_entry = vec![0; steps.len()];
        for (e, &(_, is_return, op)) in entries.iter().enumerate() {
            if is_return {
                return_entry[op] = e;
            }
        }
        let entries: Vec<(usize, bool)> =
            entries.into_iter().map(|(_, is_return, op)| (op, !is_return)).collect();
        // Unknown operations that do the same thing are interchangeable once invoked (none
        // ever completes): the search only places the earliest unplaced one of each class.
        let mut class_ids: BTreeMap<Action, usize> = BTreeMap::new();
        let mut class_of = vec![NO_CLASS; steps.len()];
        let mut members: Vec<Vec<usize>> = Vec::new();
        for &(op, is_call) in &entries {
            if is_call && steps[op].info {
                let next = class_ids.len();
                let c = *class_ids.entry(steps[op].action).or_insert(next);
                if c == members.len() {
                    members.push(Vec::new());
                }
                members[c].push(op);
                class_of[op] = c;
            }
        }
        KeyProblem { steps, origin, entries, return_entry, values, class_of, members }
    }

    fn value(&self, s: State) -> Option<Vec<u8>> {
        (s != ABSENT).then(|| self.values[s as usize].clone())
    }

    /// The just-in-time search over a doubly linked list of call/return entries.
    fn search(&self, steps_left: &mut u64, deadline: Instant) -> Search {
        self.search_from(ABSENT, steps_left, deadline)
    }

    /// The search with the key holding `initial` at the start.
    fn search_from(&self, initial: State, steps_left: &mut u64, deadline: Instant) -> Search {
        let n = self.steps.len();
        let mut finite_left = self.steps.iter().filter(|s| !s.info).count();
        if finite_left == 0 {
            return Search::Linearizable;
        }
        let mut list = EntryList::new(&self.entries);
        let mut linearized = vec![0u64; n.div_ceil(64)];
        // Placed operations that complete (unknown ones are counted per class instead).
        let mut finite = vec![0u64; n.div_ceil(64)];
        let mut memo = Memo::default();
        // Each placement: its call entry, the state before it, and the pass it was made in.
        let mut stack: Vec<(usize, State, Pass)> = Vec::new();
        let mut pass = Pass::Completing;
        let mut state = initial;
        let mut furthest = Furthest::default();
        let mut cursor = list.first();
        let mut ticks: u64 = 0;
        // Per class, how many of its members are placed (always its first ones).
        let mut placed = vec![0u32; self.members.len()];
        loop {
            ticks += 1;
            if *steps_left == 0 {
                let why = format!("step budget spent after {ticks} steps");
                return Search::OutOfBudget(why, furthest.reached());
            }
            *steps_left -= 1;
            if ticks.is_multiple_of(4096) && Instant::now() > deadline {
                let why = format!("time budget spent after {ticks} steps");
                return Search::OutOfBudget(why, furthest.reached());
            }
            let entry = cursor.expect("a return entry always stops the scan before the end");
            let (op, is_call) = self.entries[entry];
            let class = self.class_of[op];
            if is_call {
                let canonical =
                    class == NO_CLASS || self.members[class][placed[class] as usize] == op;
                if !canonical || self.steps[op].info != (pass == Pass::Unknown) {
                    cursor = list.next(entry);
                    continue;
                }
                if let Some(next) = self.steps[op].apply(state) {
                    self.mark(op, true, &mut finite, &mut placed);
                    if memo.insert(&finite, next, &placed) {
                        set_bit(&mut linearized, op, true);
                        stack.push((entry, state, pass));
                        pass = Pass::Completing;
                        state = next;
                        list.lift(entry, self.return_of(op));
                        if !self.steps[op].info {
                            finite_left -= 1;
                            if finite_left == 0 {
                                return Search::Linearizable;
                            }
                        }
                        cursor = list.first();
                        continue;
                    }
                    self.mark(op, false, &mut finite, &mut placed);
                }
                cursor = list.next(entry);
                continue;
            }
            // The completion of an operation not yet placed. Every completing candidate was
            // tried here: now the unknown ones, from the start of the list again.
            if pass == Pass::Completing {
                pass = Pass::Unknown;
                cursor = list.first();
                continue;
            }
            // Every candidate was tried: this order is a dead end.
            furthest.record(entry, op, state, &linearized);
            let Some((call, before, its_pass)) = stack.pop() else {
                let unordered = (0..n).filter(|&o| !get_bit(&furthest.linearized, o)).collect();
                return Search::Stuck { op: furthest.op, unordered, states: furthest.states };
            };
            let unplaced = self.entries[call].0;
            set_bit(&mut linearized, unplaced, false);
            self.mark(unplaced, false, &mut finite, &mut placed);
            state = before;
            pass = its_pass;
            list.unlift(call, self.return_of(unplaced));
            if !self.steps[unplaced].info {
                finite_left += 1;
            }
            cursor = list.next(call);
        }
    }

    /// Counts `op` as placed (or not) in the memo's terms.
    fn mark(&self, op: usize, on: bool, finite: &mut [u64], placed: &mut [u32]) {
        match self.class_of[op] {
            NO_CLASS => set_bit(finite, op, on),
            c if on => placed[c] += 1,
            c => placed[c] -= 1,
        }
    }

    fn return_of(&self, op: usize) -> usize {
        self.return_entry[op]
    }
}

/// Which candidates a scan of the entry list tries. At each configuration the search tries
/// the operations that complete first, then the unknown ones: an unknown operation is only
/// ever needed to explain something later, so a history with hundreds of them in flight
/// (a node killed under load: every request through it ends `info`) is mostly explained
/// without placing any, where placing them first made the search try their combinations.
/// Every candidate is still tried at every configuration, so the verdict is the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    Completing,
    Unknown,
}

/// The configurations already searched: which completing operations are placed and the
/// state, each with the per-class counts of unknown operations placed. Fewer placed
/// dominates: it leaves more of each class, and earlier-invoked ones (classes are placed
/// earliest first), so every order open to the larger counts is open to it too. A
/// configuration dominated by one already searched is not searched again; this also cuts
/// cycles of unknown writes that come back to a state (say, create then delete).
#[derive(Default)]
struct Memo {
    fronts: HashMap<(Vec<u64>, State), Vec<Vec<u32>>>,
}

impl Memo {
    /// Records a configuration; false if it, or one that dominates it, was searched.
    fn insert(&mut self, finite: &[u64], state: State, counts: &[u32]) -> bool {
        let front = self.fronts.entry((finite.to_vec(), state)).or_default();
        let at_most = |a: &[u32], b: &[u32]| a.iter().zip(b).all(|(x, y)| x <= y);
        if front.iter().any(|seen| at_most(seen, counts)) {
            return false;
        }
        front.retain(|seen| !at_most(counts, seen));
        front.push(counts.to_vec());
        true
    }
}

/// Where the search got furthest: the latest completion it could not pass.
#[derive(Default)]
struct Furthest {
    entry: usize,
    op: usize,
    states: Vec<State>,
    linearized: Vec<u64>,
}

impl Furthest {
    const STATES_MAX: usize = 8;

    fn reached(&self) -> Option<usize> {
        (!self.linearized.is_empty()).then_some(self.op)
    }

    fn record(&mut self, entry: usize, op: usize, state: State, linearized: &[u64]) {
        if self.linearized.is_empty() || entry > self.entry {
            *self = Furthest { entry, op, states: vec![state], linearized: linearized.to_vec() };
        } else if entry == self.entry {
            if !self.states.contains(&state) && self.states.len() < Self::STATES_MAX {
                self.states.push(state);
            }
            let count = |b: &[u64]| b.iter().map(|w| w.count_ones()).sum::<u32>();
            if count(linearized) > count(&self.linearized) {
                self.linearized = linearized.to_vec();
            }
        }
    }
}

fn set_bit(bits: &mut [u64], i: usize, on: bool) {
    if on {
        bits[i / 64] |= 1 << (i % 64);
    } else {
        bits[i / 64] &= !(1 << (i % 64));
    }
}

fn get_bit(bits: &[u64], i: usize) -> bool {
    bits[i / 64] & (1 << (i % 64)) != 0
}

/// The entries still in play, as a doubly linked list that can take out a call and its
/// return and put them back in reverse order (dancing links).
struct EntryList {
    next: Vec<usize>,
    prev: Vec<usize>,
}

/// Node 0 is the head sentinel; entry `e` is node `e + 1`; `NIL` ends the list.
const NIL: usize = usize::MAX;

impl EntryList {
    fn new(entries: &[(usize, bool)]) -> EntryList {
        let len = entries.len() + 1;
        let next = (0..len).map(|i| if i + 1 < len { i + 1 } else { NIL }).collect();
        let prev = (0..len).map(|i| if i == 0 { NIL } else { i - 1 }).collect();
        EntryList { next, prev }
    }

    fn first(&self) -> Option<usize> {
        self.after(0)
    }

    fn next(&self, entry: usize) -> Option<usize> {
        self.after(entry + 1)
    }

    fn after(&self, node: usize) -> Option<usize> {
        let n = self.next[node];
        (n != NIL).then(|| n - 1)
    }

    fn unlink(&mut self, node: usize) {
        let (p, n) = (self.prev[node], self.next[node]);
        self.next[p] = n;
        if n != NIL {
            self.prev[n] = p;
        }
    }

    fn relink(&mut self, node: usize) {
        let (p, n) = (self.prev[node], self.next[node]);
        self.next[p] = node;
        if n != NIL {
            self.prev[n] = node;
        }
    }

    fn lift(&mut self, call: usize, ret: usize) {
        self.unlink(call + 1);
        self.unlink(ret + 1);
    }

    fn unlift(&mut self, call: usize, ret: usize) {
        self.relink(ret + 1);
        self.relink(call + 1);
    }
}

mod window;

#[cfg(test)]
#[path = "linearizable_tests.rs"]
mod tests;
