//! The linearizability checker on hand-written histories (each names the anomaly it is
//! about), on seeded random histories generated from a real sequential model, and against
//! a brute-force search over every order on small histories.

use std::time::{Duration, Instant};

use super::*;

fn op(client: &str, kind: CasKind, t: (u64, u64), outcome: CasOutcome) -> CasOp {
    CasOp {
        client: client.into(),
        key: "k".into(),
        kind,
        invoke_us: t.0,
        complete_us: t.1,
        outcome,
    }
}

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn write(v: &str, t: (u64, u64)) -> CasOp {
    op("w", CasKind::Write { value: b(v) }, t, ok())
}

fn create(v: &str, t: (u64, u64), outcome: CasOutcome) -> CasOp {
    op("c", CasKind::CreateIfAbsent { value: b(v) }, t, outcome)
}

fn if_match(expected: &str, v: &str, t: (u64, u64), outcome: CasOutcome) -> CasOp {
    op("m", CasKind::WriteIfMatch { expected: b(expected), value: b(v) }, t, outcome)
}

fn read(v: Option<&str>, t: (u64, u64)) -> CasOp {
    op("r", CasKind::Read, t, CasOutcome::Ok { read: v.map(b) })
}

fn ok() -> CasOutcome {
    CasOutcome::Ok { read: None }
}

fn verdict(h: &[CasOp]) -> Verdict {
    check(h, Budget::default())
}

fn stuck(h: &[CasOp]) -> Stuck {
    match verdict(h) {
        Verdict::NotLinearizable(s) => s,
        other => panic!("expected a violation, got {other:?}"),
    }
}

#[test]
fn sequential_conditional_writes_are_linearizable() {
    let h = vec![
        read(None, (0, 5)),
        create("1", (10, 20), ok()),
        create("x", (25, 30), CasOutcome::Refused),
        read(Some("1"), (35, 40)),
        if_match("1", "2", (45, 50), ok()),
        if_match("1", "y", (55, 60), CasOutcome::Refused),
        read(Some("2"), (65, 70)),
        op("d", CasKind::Delete, (75, 80), ok()),
        create("3", (85, 90), ok()),
    ];
    assert_eq!(verdict(&h), Verdict::Linearizable);
}

#[test]
fn a_stale_read_is_stuck_at_the_read_with_the_newer_value_as_the_only_state() {
    let h = vec![write("1", (0, 10)), write("2", (20, 30)), read(Some("1"), (40, 50))];
    let s = stuck(&h);
    assert_eq!(s.op, 2, "the read is the operation no order explains");
    assert_eq!(s.states, vec![Some(b("2"))]);
    assert_eq!(s.window, vec![2]);
    let text = explain(&h, &s);
    assert!(text.contains("read [40..50us] ok → 1"), "{text}");
    assert!(text.contains("{2 (from w write 2 [20..30us] ok)}"), "{text}");
    // The same read, concurrent with the second write, may see either value.
    let racing = vec![write("1", (0, 10)), write("2", (20, 45)), read(Some("1"), (40, 50))];
    assert_eq!(verdict(&racing), Verdict::Linearizable);
}

#[test]
fn two_successful_creates_of_one_key_are_a_violation() {
    let sequential = vec![create("1", (0, 10), ok()), create("2", (20, 30), ok())];
    assert_eq!(stuck(&sequential).op, 1);
    // Concurrent, both acknowledged: still only one can find the key absent.
    let concurrent = vec![create("1", (0, 30), ok()), create("2", (5, 25), ok())];
    assert!(matches!(verdict(&concurrent), Verdict::NotLinearizable(_)));
    // With a delete between them, both may succeed.
    let mut deleted = sequential.clone();
    deleted.insert(1, op("d", CasKind::Delete, (12, 18), ok()));
    assert_eq!(verdict(&deleted), Verdict::Linearizable);
}

#[test]
fn if_match_on_an_overwritten_value_must_not_succeed() {
    let h = vec![
        create("1", (0, 10), ok()),
        read(Some("1"), (12, 15)),
        write("2", (20, 30)),
        if_match("1", "3", (40, 50), ok()),
    ];
    let s = stuck(&h);
    assert_eq!(s.op, 3);
    assert_eq!(s.states, vec![Some(b("2"))]);
    // Concurrent with the overwrite it may have come first...
    let mut racing = h.clone();
    racing[3] = if_match("1", "3", (25, 50), ok());
    assert_eq!(verdict(&racing), Verdict::Linearizable);
    // ...but then the overwrite came after it, so a later read of 3 is stale.
    racing.push(read(Some("3"), (60, 70)));
    assert!(matches!(verdict(&racing), Verdict::NotLinearizable(_)));
}

#[test]
fn a_refusal_is_an_observation_the_order_must_explain() {
    // 412 for If-None-Match while the key is surely absent: nothing explains it.
    let h = vec![read(None, (0, 5)), create("1", (10, 20), CasOutcome::Refused)];
    assert_eq!(stuck(&h).op, 1);
    // 412 for If-Match while the key surely holds the expected value.
    let h = vec![create("1", (0, 5), ok()), if_match("1", "2", (10, 20), CasOutcome::Refused)];
    assert_eq!(stuck(&h).op, 1);
    // A sure failure (409, connection refused) explains nothing and needs no explaining.
    let h = vec![create("1", (0, 5), ok()), if_match("1", "2", (10, 20), CasOutcome::Fail)];
    assert_eq!(verdict(&h), Verdict::Linearizable);
}

#[test]
fn an_info_write_may_happen_late_or_never_but_not_before_its_invocation() {
    let info = CasOutcome::Info;
    // Seen long after it gave up: it took effect late.
    let late =
        vec![create("1", (0, 10), info.clone()), read(None, (20, 30)), read(Some("1"), (40, 50))];
    assert_eq!(verdict(&late), Verdict::Linearizable);
    // Never seen: it never happened.
    let never = vec![create("1", (0, 10), info.clone()), read(None, (20, 30))];
    assert_eq!(verdict(&never), Verdict::Linearizable);
    // Read before it was invoked: from the future.
    let early = vec![read(Some("1"), (0, 5)), create("1", (10, 20), info.clone())];
    assert!(matches!(verdict(&early), Verdict::NotLinearizable(_)));
    // It must have happened: only it explains the later refusal of a create.
    let needed = vec![write("0", (0, 1)), op("d", CasKind::Delete, (2, 3), ok())]
        .into_iter()
        .chain([
            op("i", CasKind::Write { value: b("1") }, (10, 20), info.clone()),
            create("2", (30, 40), CasOutcome::Refused),
        ])
        .collect::<Vec<_>>();
    assert_eq!(verdict(&needed), Verdict::Linearizable);
    let without: Vec<CasOp> = needed.iter().filter(|o| o.client != "i").cloned().collect();
    assert!(matches!(verdict(&without), Verdict::NotLinearizable(_)));
    // Once it happened it stays: a read of the old value after a read of it is stale.
    let flip = vec![
        create("1", (0, 10), ok()),
        if_match("1", "2", (20, 30), info),
        read(Some("2"), (40, 50)),
        read(Some("1"), (60, 70)),
    ];
    assert_eq!(stuck(&flip).op, 3);
}

#[test]
fn an_order_found_only_by_backtracking_is_found() {
    // Two concurrent writes; the read after both needs "2 then 1", the reverse of the
    // order the search tries first (by invocation).
    let h = vec![write("1", (0, 100)), write("2", (5, 100)), read(Some("1"), (110, 120))];
    assert_eq!(verdict(&h), Verdict::Linearizable);
    let mut both = h.clone();
    both.push(read(Some("2"), (130, 140)));
    assert_eq!(stuck(&both).op, 3);
}

#[test]
fn keys_are_independent() {
    let mut h = vec![create("1", (0, 10), ok())];
    let mut other = create("1", (20, 30), ok());
    other.key = "k2".into();
    h.push(other);
    assert_eq!(verdict(&h), Verdict::Linearizable);
    let mut stale = read(None, (40, 50));
    stale.key = "k2".into();
    h.push(stale);
    assert_eq!(stuck(&h).key, "k2");
}

#[test]
fn an_exhausted_budget_is_unknown_not_a_verdict() {
    let h = vec![write("1", (0, 100)), write("2", (5, 100)), read(Some("1"), (110, 120))];
    let tiny = Budget { steps_max: 3, time_max: Duration::from_secs(5) };
    assert!(matches!(check(&h, tiny), Verdict::Unknown { .. }));
}

/// splitmix64: a seeded generator small enough to keep the crate free of dependencies.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A history produced by a real sequential register: operations take effect at
/// linearization points 10 µs apart, and their intervals stretch up to `spread_us` either
/// side, so many overlap. Some writes end `Info` (with or without effect) or `Fail`.
fn generated(seed: u64, ops: usize, keys: u64, spread_us: u64) -> Vec<CasOp> {
    let mut rng = Rng(seed);
    let mut state: Vec<Option<Vec<u8>>> = vec![None; keys as usize];
    let mut written: Vec<Vec<Vec<u8>>> = vec![Vec::new(); keys as usize];
    let mut out = Vec::new();
    for i in 0..ops {
        let k = rng.below(keys) as usize;
        let at = 1_000 + i as u64 * 10;
        let value = format!("v{i}").into_bytes();
        let kind = match rng.below(10) {
            0..4 => CasKind::Read,
            4 => CasKind::Write { value },
            5 => CasKind::Delete,
            6 | 7 => CasKind::CreateIfAbsent { value },
            _ => {
                let seen = &written[k];
                let expected = match (&state[k], rng.below(3)) {
                    (Some(v), 0 | 1) => v.clone(),
                    _ if !seen.is_empty() => seen[rng.below(seen.len() as u64) as usize].clone(),
                    _ => b"never".to_vec(),
                };
                CasKind::WriteIfMatch { expected, value }
            }
        };
        let condition = match &kind {
            CasKind::CreateIfAbsent { .. } => Some(state[k].is_none()),
            CasKind::WriteIfMatch { expected, .. } => Some(state[k].as_ref() == Some(expected)),
            _ => None,
        };
        let fate = rng.below(20);
        let mut outcome = match condition {
            Some(false) => CasOutcome::Refused,
            _ => CasOutcome::Ok { read: None },
        };
        let mut effect = condition != Some(false);
        if kind == CasKind::Read {
            outcome = CasOutcome::Ok { read: state[k].clone() };
            effect = false;
        } else if fate == 0 {
            outcome = CasOutcome::Info;
        } else if fate == 1 {
            outcome = CasOutcome::Info;
            effect = false;
        } else if fate == 2 && condition.is_some() {
            outcome = CasOutcome::Fail;
            effect = false;
        }
        if effect {
            let new = match &kind {
                CasKind::Delete => None,
                CasKind::Write { value }
                | CasKind::CreateIfAbsent { value }
                | CasKind::WriteIfMatch { value, .. } => Some(value.clone()),
                CasKind::Read => unreachable!("reads have no effect"),
            };
            if let Some(v) = &new {
                written[k].push(v.clone());
            }
            state[k] = new;
        }
        out.push(CasOp {
            client: format!("c{}", rng.below(5)),
            key: format!("k{k}"),
            kind,
            invoke_us: at - rng.below(spread_us + 1),
            complete_us: at + rng.below(spread_us + 1),
            outcome,
        });
    }
    out
}

#[test]
fn histories_of_a_real_register_are_always_linearizable() {
    for seed in 0..200 {
        let h = generated(seed, 300, 3, 40);
        assert_eq!(verdict(&h), Verdict::Linearizable, "seed {seed}");
    }
}

#[test]
fn a_mutated_read_is_judged_never_unknown_and_mostly_caught() {
    let mut caught = 0;
    let runs = 200;
    for seed in 0..runs {
        let mut h = generated(seed, 300, 3, 40);
        let mut rng = Rng(seed ^ 0xdead);
        let reads: Vec<usize> = (0..h.len())
            .filter(|&i| {
                h[i].kind == CasKind::Read && matches!(h[i].outcome, CasOutcome::Ok { .. })
            })
            .collect();
        let target = reads[rng.below(reads.len() as u64) as usize];
        // Another value of the same key, from a write well before or after the read.
        let candidates: Vec<Option<Vec<u8>>> = h
            .iter()
            .filter(|o| o.key == h[target].key)
            .filter(|o| {
                o.complete_us + 200 < h[target].invoke_us
                    || o.invoke_us > h[target].complete_us + 200
            })
            .filter_map(|o| match &o.kind {
                CasKind::Write { value } | CasKind::CreateIfAbsent { value } => {
                    Some(Some(value.clone()))
                }
                _ => None,
            })
            .collect();
        let CasOutcome::Ok { read } = &h[target].outcome else { unreachable!() };
        let Some(new) = candidates.into_iter().find(|c| c != read) else { continue };
        h[target].outcome = CasOutcome::Ok { read: new };
        match verdict(&h) {
            Verdict::NotLinearizable(_) => caught += 1,
            Verdict::Linearizable => {}
            Verdict::Unknown { reason, .. } => panic!("seed {seed}: unknown ({reason})"),
        }
    }
    assert!(caught * 10 >= runs * 8, "only {caught} of {runs} mutated reads caught");
}

#[test]
fn thousands_of_operations_are_checked_quickly() {
    let h = generated(42, 6_000, 4, 60);
    let start = Instant::now();
    let budget = Budget { steps_max: u64::MAX, time_max: Duration::from_secs(20) };
    assert_eq!(check(&h, budget), Verdict::Linearizable);
    // Debug builds are ~10x slower than release; the bound only catches a blow-up.
    assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
}

/// Every order, by brute force: the definition, with nothing clever.
fn brute_force(h: &[CasOp]) -> bool {
    let ops: Vec<&CasOp> = h
        .iter()
        .filter(|o| o.outcome != CasOutcome::Fail)
        .filter(|o| !(o.kind == CasKind::Read && o.outcome == CasOutcome::Info))
        // Only a conditional write can be refused; anything else "refused" had no effect.
        .filter(|o| {
            let conditional =
                matches!(o.kind, CasKind::CreateIfAbsent { .. } | CasKind::WriteIfMatch { .. });
            o.outcome != CasOutcome::Refused || conditional
        })
        .collect();
    fn go(ops: &[&CasOp], done: &mut Vec<bool>, state: Option<Vec<u8>>) -> bool {
        let finite = |o: &CasOp| o.outcome != CasOutcome::Info;
        if (0..ops.len()).all(|i| done[i] || !finite(ops[i])) {
            return true;
        }
        for i in 0..ops.len() {
            if done[i] {
                continue;
            }
            // Nothing still to place may have completed before this one was invoked.
            let blocked = (0..ops.len()).any(|j| {
                !done[j] && j != i && finite(ops[j]) && ops[j].complete_us < ops[i].invoke_us
            });
            if blocked {
                continue;
            }
            let o = ops[i];
            let holds = match &o.kind {
                CasKind::CreateIfAbsent { .. } => state.is_none(),
                CasKind::WriteIfMatch { expected, .. } => state.as_ref() == Some(expected),
                _ => true,
            };
            let next = match (&o.kind, &o.outcome) {
                (CasKind::Read, CasOutcome::Ok { read }) if *read == state => Some(state.clone()),
                (CasKind::Read, _) => None,
                (_, CasOutcome::Refused) => (!holds).then(|| state.clone()),
                (_, CasOutcome::Ok { .. }) if !holds => None,
                (_, CasOutcome::Info) if !holds => Some(state.clone()),
                (CasKind::Delete, _) => Some(None),
                (CasKind::Write { value }, _)
                | (CasKind::CreateIfAbsent { value }, _)
                | (CasKind::WriteIfMatch { value, .. }, _) => Some(Some(value.clone())),
            };
            if let Some(next) = next {
                done[i] = true;
                if go(ops, done, next) {
                    return true;
                }
                done[i] = false;
            }
        }
        false
    }
    let mut done = vec![false; ops.len()];
    go(&ops, &mut done, None)
}

#[test]
fn small_random_histories_agree_with_brute_force() {
    let values = ["1", "2", "3"];
    let mut disagreements = Vec::new();
    let mut bad = 0;
    for seed in 0..3_000 {
        let mut rng = Rng(seed);
        let n = 2 + rng.below(6) as usize;
        let h: Vec<CasOp> = (0..n)
            .map(|_| {
                let (v1, v2) = (values[rng.below(3) as usize], values[rng.below(3) as usize]);
                let pick = || v1;
                let kind = match rng.below(5) {
                    0 | 1 => CasKind::Read,
                    2 => CasKind::Write { value: b(pick()) },
                    3 => CasKind::CreateIfAbsent { value: b(pick()) },
                    _ => CasKind::WriteIfMatch { expected: b(v2), value: b(pick()) },
                };
                let outcome = match (rng.below(6), &kind) {
                    (_, CasKind::Read) if rng.below(4) == 0 => CasOutcome::Ok { read: None },
                    (_, CasKind::Read) => {
                        CasOutcome::Ok { read: Some(b(values[rng.below(3) as usize])) }
                    }
                    (0, _) => CasOutcome::Info,
                    (1, _) => CasOutcome::Refused,
                    (2, _) => CasOutcome::Fail,
                    _ => CasOutcome::Ok { read: None },
                };
                let invoke = rng.below(60);
                op("x", kind, (invoke, invoke + rng.below(30)), outcome)
            })
            .collect();
        let expected = brute_force(&h);
        let got = verdict(&h);
        if !expected {
            bad += 1;
        }
        let agrees = match got {
            Verdict::Linearizable => expected,
            Verdict::NotLinearizable(_) => !expected,
            Verdict::Unknown { .. } => false,
        };
        if !agrees {
            disagreements.push((seed, expected, h));
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} disagreements, first: {:?}",
        disagreements.len(),
        disagreements[0]
    );
    assert!(bad > 300 && bad < 2_700, "the generator makes both kinds: {bad} not linearizable");
}

/// Re-checks a history a `cas` run recorded, with a larger budget and the time it took:
/// `HANGAR_CAS_HISTORY=OUT/history.jsonl cargo test --release -p hangar-checkers
/// recorded_cas_history -- --ignored --nocapture`.
#[test]
#[ignore = "reads the history named by HANGAR_CAS_HISTORY"]
fn recorded_cas_history() {
    let path = std::env::var("HANGAR_CAS_HISTORY").expect("set HANGAR_CAS_HISTORY");
    let text = std::fs::read_to_string(&path).expect("a readable history");
    let h: Vec<CasOp> =
        text.lines().map(|l| serde_json::from_str(l).expect("a CasOp per line")).collect();
    let start = Instant::now();
    // HANGAR_CAS_STEPS: another step budget (the default here is 25 times a run's).
    let steps = std::env::var("HANGAR_CAS_STEPS").map_or(500_000_000, |s| s.parse().unwrap());
    let budget = Budget { steps_max: steps, time_max: Duration::from_secs(300) };
    match check(&h, budget) {
        Verdict::NotLinearizable(stuck) => println!("not linearizable: {}", explain(&h, &stuck)),
        other => println!("{other:?}"),
    }
    println!("{} operations checked in {:?}", h.len(), start.elapsed());
}

/// Found by `hangar-jepsen run --workload cas --nemesis bridge,zone-split,isolate,kill,pause
/// --nodes 5 --zones 3 --time-limit 45 --seed 2` (key c0, 44.47–44.54 s): an If-Match PUT
/// and an unconditional DELETE overlap; a read sees the delete, yet a later read sees the
/// If-Match's value, which needed the deleted value to be current. No order explains both.
#[test]
fn a_conditional_write_that_outlives_a_concurrent_delete_is_caught() {
    let h = vec![
        create("c4-1349", (0, 10), ok()),
        read(Some("c4-1349"), (20, 30)),
        if_match("c4-1349", "c3-1706", (4_774, 5_086), ok()),
        op("d", CasKind::Delete, (4_797, 5_054), ok()),
        read(None, (4_859, 5_058)),
        read(Some("c3-1706"), (5_385, 5_403)),
    ];
    assert_eq!(stuck(&h).op, 5);
}

#[test]
fn a_window_from_a_quiet_instant_proves_a_late_violation_on_its_own() {
    let mut h = generated(7, 400, 1, 40);
    let end = h.iter().map(|o| o.complete_us).max().unwrap();
    let mut late = |mut o: CasOp| {
        o.key = "k0".into();
        h.push(o);
        h.len() - 1
    };
    late(write("x1", (end + 100, end + 110)));
    late(write("x2", (end + 120, end + 130)));
    let stale = late(read(Some("x1"), (end + 140, end + 150)));
    let indexes: Vec<usize> = (0..h.len()).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut steps = 1_000_000;
    let s = window::prove(&h, &indexes, stale, &mut steps, deadline).expect("proven");
    // The smallest window: x2 then the read, whatever the key held before x2.
    assert_eq!(s.since_us, Some(end + 120), "the latest quiet instant that proves it");
    assert_eq!(s.window, vec![stale - 1, stale]);
    assert!(explain(&h, &s).contains("whatever the key held"));
}

#[test]
fn a_window_never_proves_a_violation_in_a_linearizable_history() {
    for seed in 0..100 {
        let h = generated(seed, 200, 1, 40);
        let indexes: Vec<usize> = (0..h.len()).collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        for probe in (0..h.len()).step_by(17) {
            if !matches!(h[probe].outcome, CasOutcome::Ok { .. } | CasOutcome::Refused) {
                continue;
            }
            let mut steps = 1_000_000;
            let proof = window::prove(&h, &indexes, probe, &mut steps, deadline);
            assert!(proof.is_none(), "seed {seed} probe {probe}: {proof:?}");
        }
    }
}

/// The shape of Jepsen's cas × kill seed 6 (2026-11-27): a value written and read, then a
/// node killed, so hundreds of writes of every kind through it end `info` — unconditional
/// writes, deletes, creates, `If-Match` on values other clients hold — among refusals that
/// complete, and only then a read that still sees the value, and a write that replaces it. No unknown write need be
/// placed; the search tries the operations that complete first, so it finds that at once
/// instead of trying the unknown writes' combinations until the budget runs out.
#[test]
fn hundreds_of_unknown_writes_in_flight_are_not_tried_before_they_are_needed() {
    let info = || CasOutcome::Info;
    let mut h = vec![write("a", (0, 10)), read(Some("a"), (20, 30))];
    for i in 0..400u64 {
        let t = (100 + i * 10, 105 + i * 10);
        let unique = format!("u{i}");
        h.push(match i % 6 {
            0 => op("x", CasKind::Write { value: b(&unique) }, t, info()),
            1 => op("x", CasKind::Delete, t, info()),
            2 => create(&unique, t, info()),
            3 => if_match("a", &unique, t, info()),
            4 => if_match("held-by-c3", &unique, t, info()),
            _ => if_match("held-by-c2", &unique, t, info()),
        });
        // Between them, refusals that complete: the key is there, and not what the other
        // clients expect.
        let t = (t.0 + 6, t.1 + 3);
        h.push(match i % 3 {
            0 => create(&format!("r{i}"), t, CasOutcome::Refused),
            1 => if_match("held-by-c3", &format!("r{i}"), t, CasOutcome::Refused),
            _ => if_match("held-by-c2", &format!("r{i}"), t, CasOutcome::Refused),
        });
    }
    h.push(read(Some("a"), (5_000, 5_010)));
    h.push(if_match("a", "b", (5_020, 5_030), ok()));
    h.push(read(Some("b"), (5_040, 5_050)));
    let small = Budget { steps_max: 100_000, time_max: Duration::from_secs(30) };
    assert_eq!(check(&h, small), Verdict::Linearizable);
    // The same history with the last read seeing a value nobody wrote is still caught.
    let last = h.len() - 1;
    h[last] = read(Some("never-written"), (5_040, 5_050));
    assert!(matches!(check(&h, Budget::default()), Verdict::NotLinearizable(_)));
}
