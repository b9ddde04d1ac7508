//! Scenario replays with pinned seeds, in process: the smoke scenario passes, a weakened
//! system is caught, a seed replays its trace exactly, and every regression scenario kept
//! in scenarios/regressions/ passes with its recorded seed.

use std::path::{Path, PathBuf};

use hangar_sim::run::run;
use hangar_sim::scenario::Scenario;

fn scenario(rel: &str) -> Scenario {
    let path = repo().join(rel);
    Scenario::load(path.to_str().unwrap()).unwrap_or_else(|e| panic!("{e}"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

#[test]
fn smoke_passes_for_pinned_seeds() {
    let s = scenario("scenarios/smoke.toml");
    for seed in [1, 7, 42] {
        let result = run(&s, seed, false);
        assert!(result.violation.is_none(), "seed {seed}: {:?}", result.violation);
        assert!(result.ops > 100, "seed {seed}: only {} operations ran", result.ops);
    }
}

#[test]
fn a_seed_replays_its_trace_and_another_seed_does_not() {
    let s = scenario("scenarios/smoke.toml");
    let (a, b, c) = (run(&s, 5, false), run(&s, 5, false), run(&s, 6, false));
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_ne!(a.trace_hash, c.trace_hash);
}

#[test]
fn non_intersecting_quorums_are_caught_by_read_after_write() {
    let s = scenario("scenarios/weakened/smoke-r1w1.toml");
    let caught = (1..=20).find_map(|seed| run(&s, seed, false).violation.map(|v| (seed, v)));
    let (seed, violation) = caught.expect("R = W = 1 must be caught within 20 seeds");
    assert_eq!(violation.checker, "read_after_write", "seed {seed}: {violation}");
}

#[test]
fn regression_scenarios_pass_with_their_seeds() {
    let dir = repo().join("scenarios/regressions");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "toml"));
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let seed = text
            .lines()
            .find_map(|l| l.strip_prefix("# seed = "))
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| panic!("{} has no '# seed = N' line", file.display()));
        let s = Scenario::parse(file.to_str().unwrap(), &text).unwrap_or_else(|e| panic!("{e}"));
        let result = run(&s, seed, false);
        assert!(
            result.violation.is_none(),
            "{} seed {seed}: {:?}",
            file.display(),
            result.violation
        );
    }
}
