//! Explaining runs, end to end through the binary: a weakened scenario's failing run,
//! written with `--trace-out` and rendered by `report`, shows its violation and the
//! operations it names; `research` gives the same table and plot for the same seeds.
//!
//! Why: a report that silently dropped the violation (or a trace that lost the operations'
//! details) would explain nothing exactly when it matters.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn sim(args: &[&str]) -> Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    Command::new(env!("CARGO_BIN_EXE_hangar-sim"))
        .current_dir(root)
        .args(args)
        .output()
        .expect("hangar-sim runs")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hangar-sim-explain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn a_failing_weakened_run_renders_with_its_violation() {
    let trace = scratch("r1w1.jsonl");
    let trace_arg = trace.to_str().unwrap();
    // R = W = 1: read_after_write catches it within a few seeds (tests/sim-acceptance.sh).
    let failing = (1..=30).find(|seed| {
        let seed = seed.to_string();
        let args = ["run", "scenarios/weakened/smoke-r1w1.toml", "--seed", &seed];
        let out = sim(&[&args[..], &["--trace-out", trace_arg]].concat());
        assert!(matches!(out.status.code(), Some(0 | 1)), "{out:?}");
        out.status.code() == Some(1)
    });
    let seed = failing.expect("smoke-r1w1 fails for some seed of 1..=30");
    let text = std::fs::read_to_string(&trace).unwrap();
    let first = text.lines().next().unwrap();
    assert!(first.contains("\"meta\":\"run\"") && first.contains(&format!("\"seed\":{seed}")));
    assert!(text.lines().last().unwrap().contains("\"result\":\"fail: read_after_write"));
    assert!(text.contains("\"kind\":\"op\"") && text.contains("\"latency_us\":"));
    assert!(text.contains("\"kind\":\"fault\"") && text.contains("\"fault\":\"crash\""));
    assert!(text.contains("\"kind\":\"verdict\"") && text.contains("\"result\":\"fail\""));

    let page = scratch("r1w1.html");
    let out = sim(&["report", trace_arg, "-o", page.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("id=\"violation\"><b>Violation (read_after_write)"));
    // The read the checker judged, at least, is highlighted in the timeline and the plot.
    assert!(html.contains("class=\"op op-ok involved\""), "no highlighted operation");
    assert!(html.contains(" involved\" cx="), "no highlighted point");
    assert!(html.contains("class=\"fault f-crash\""), "the crash is not shaded");
    // Self-contained: no script, nothing loaded from elsewhere.
    assert!(!html.contains("<script") && !html.contains("src=") && !html.contains("href="));
}

#[test]
fn research_gives_the_same_table_and_plot_for_the_same_seeds() {
    let svg = scratch("research.svg");
    let args = ["research", "scenarios/wan-degraded.toml", "--seeds", "1..=2", "--jobs", "2"];
    let run = || {
        let out = sim(&[&args[..], &["--svg", svg.to_str().unwrap()]].concat());
        assert!(out.status.success(), "{out:?}");
        (String::from_utf8(out.stdout).unwrap(), std::fs::read_to_string(&svg).unwrap())
    };
    let (table, plot) = run();
    assert!(table.contains("RTT = 107.7 ms"), "{table}");
    for row in ["\nput ", "\nget ", "staleness: "] {
        assert!(table.contains(row), "no `{row}` in:\n{table}");
    }
    assert!(plot.starts_with("<svg") && plot.contains("Latency CDF"));
    assert_eq!(run(), (table, plot), "same seeds, different output");
}
