#!/usr/bin/env bash
# Acceptance checks of the deterministic simulator, with the release binary:
#  - every scenario in scenarios/ passes for seeds 1..=20 (`hangar-sim sweep`, each run in
#    a fresh process), and smoke for seeds 1..=50; smoke's speedup is measured on ten
#    sequential runs (a sweep runs two at a time, which halves each run's share of CPU);
#  - the same seed gives the same trace in two fresh processes (smoke seeds 1..=20, which
#    give at least 19 distinct traces; seed 1 of every other scenario, 2 of s3-smoke);
#  - a canary run that reads OS entropy is reported as non-deterministic;
#  - every deliberately weakened scenario in scenarios/weakened/ is caught by the checker
#    meant to catch it, for some seed: R = W = 1 (read_after_write), no resync after a disk
#    loss (block_refs: missing), no block collection (block_refs: orphans), no scrub
#    (block_refs: corrupt, or no_lost_writes), reads switching layout before the new
#    replicas synced (read_after_write), tombstones collected without every replica
#    (read_after_write); R = W = 1 under the set workload (set: a listing misses an add);
#    a restarted node whose S3 frontend never comes back (liveness: the final probe);
#  - an expected outcome is the mode's: degraded-stale-reads passes in consistent mode;
#  - a bad scenario file is refused with exit 2, naming the field;
#  - swarm: 100 random scenarios (cluster, network, workload, survivable faults) pass, and
#    a swarm of weakened ones (R = W = 1) is caught within 200 seeds;
#  - a failing seed saved with --save-regression fails again when replayed from the file;
#  - every scenario kept in scenarios/regressions/ passes with its recorded seed.
# Usage: tests/sim-acceptance.sh [path/to/hangar-sim]
set -euo pipefail
cd "$(dirname "$0")/.."
SIM=${1:-target/release/hangar-sim}
[ -x "$SIM" ] || { echo "no simulator at $SIM (cargo build --release -p hangar-sim)"; exit 2; }
fail() { echo "FAIL: $*"; exit 1; }

echo "== every scenario, seeds 1..20"
"$SIM" sweep scenarios/ --seeds 1..=20 --jobs 2 || fail "a scenario failed (its replay line is above)"
echo "== smoke, seeds 21..50"
"$SIM" sweep scenarios/smoke.toml --seeds 21..=50 --jobs 2 || fail "smoke failed (its replay line is above)"

echo "== disk-loss-register (a blank node must not answer reads before its full sync), seeds 21..100"
"$SIM" sweep scenarios/disk-loss-register.toml --seeds 21..=100 --jobs 2 || fail "disk-loss-register failed (its replay line is above)"

echo "== smoke speedup, seeds 1..10 one at a time"
speedups=()
for seed in $(seq 1 10); do
  out=$("$SIM" run scenarios/smoke.toml --seed "$seed") || { echo "$out"; fail "smoke seed $seed"; }
  speedups+=("$(sed -n 's/.*speedup=\([0-9]*\).*/\1/p' <<<"$out")")
done
sorted=$(printf '%s\n' "${speedups[@]}" | sort -n)
echo "smoke: speedup min=$(head -1 <<<"$sorted") median=$(sed -n 5p <<<"$sorted") max=$(tail -1 <<<"$sorted")"

echo "== determinism across processes, smoke seeds 1..20"
traces=()
for seed in $(seq 1 20); do
  out=$("$SIM" check-determinism scenarios/smoke.toml --seed "$seed") || { echo "$out"; fail "seed $seed is not deterministic"; }
  traces+=("$(sed -n 's/^run 1: trace=//p' <<<"$out")")
done
distinct=$(printf '%s\n' "${traces[@]}" | sort -u | wc -l)
[ "$distinct" -ge 19 ] || fail "only $distinct distinct traces over 20 seeds"
echo "determinism: 20/20 identical across processes, $distinct distinct traces"

echo "== determinism across processes, the other scenarios"
for file in scenarios/*.toml; do
  [ "$file" = scenarios/smoke.toml ] && continue
  out=$("$SIM" check-determinism "$file" --seed 1) || { echo "$out"; fail "$file seed 1 is not deterministic"; }
done
out=$("$SIM" check-determinism scenarios/s3-smoke.toml --seed 2) || { echo "$out"; fail "s3-smoke seed 2 is not deterministic"; }
echo "determinism: seed 1 of every scenario (and s3-smoke seed 2) identical across processes"

echo "== canary: a run that reads OS entropy must be reported as non-deterministic"
set +e; out=$("$SIM" check-determinism scenarios/smoke.toml --seed 1 --canary); code=$?; set -e
[ "$code" -eq 1 ] && grep -q 'traces differ at event' <<<"$out" || { echo "$out"; fail "canary not caught"; }
echo "canary: $(grep -A1 'traces differ' <<<"$out" | head -2 | tr '\n' ' ' | cut -c1-160)"

echo "== weakened systems must be caught"
# must_catch FILE PATTERN SEEDS: some seed must fail with a result line matching PATTERN.
must_catch() {
  local file=$1 pattern=$2 seeds=$3 caught="" out code
  for seed in $(seq 1 "$seeds"); do
    set +e; out=$("$SIM" run "$file" --seed "$seed"); code=$?; set -e
    if [ "$code" -eq 1 ] && grep -Eq "^result: fail: ($pattern)" <<<"$out"; then caught=$seed; break; fi
    [ "$code" -eq 0 ] || { echo "$out"; fail "unexpected exit $code for $file seed $seed"; }
  done
  [ -n "$caught" ] || fail "$file was not caught for seeds 1..$seeds"
  last_caught=$caught
  echo "$(basename "$file"): caught at seed $caught: $(grep '^result' <<<"$out" | cut -c1-150)"
}
must_catch scenarios/weakened/smoke-r1w1.toml 'read_after_write' 50
r1w1_seed=$last_caught
must_catch scenarios/weakened/s3-smoke-r1w1.toml 'read_after_write' 50
must_catch scenarios/weakened/s3-set-r1w1.toml 'set .*misses' 30
must_catch scenarios/weakened/s3-disk-loss-no-resync.toml 'block_refs .*missing' 10
must_catch scenarios/weakened/s3-overwrite-no-gc.toml 'block_refs .*orphan' 10
must_catch scenarios/weakened/s3-multipart-no-gc.toml 'block_refs .*orphan' 5
must_catch scenarios/weakened/s3-corruption-no-scrub.toml 'block_refs .*corrupt|no_lost_writes' 20
must_catch scenarios/weakened/layout-early-read-switch.toml 'read_after_write' 20
must_catch scenarios/weakened/disk-loss-no-sync-guard.toml 'read_after_write|no_lost_writes' 50
must_catch scenarios/weakened/tombstone-gc-skips-unreachable.toml 'read_after_write|no_lost_writes' 30
must_catch scenarios/weakened/linearizable-register-r1w1.toml 'linearizable' 10
must_catch scenarios/weakened/s3-frontend-not-restarted.toml 'liveness .*n2 did not serve' 3

echo "== an expected outcome is the mode's: degraded-stale-reads in consistent mode passes"
twin=$(mktemp --suffix=.toml)
sed 's/^consistency_mode = "degraded"/consistency_mode = "consistent"/; /^expect_failure/d' \
  scenarios/degraded-stale-reads.toml > "$twin"
grep -q '^consistency_mode = "consistent"' "$twin" || fail "could not make the consistent twin"
"$SIM" sweep "$twin" --seeds 1..=5 --jobs 2 >/dev/null || { rm -f "$twin"; fail "the consistent twin of degraded-stale-reads failed"; }
rm -f "$twin"
echo "consistent twin of degraded-stale-reads: seeds 1..5 pass"

echo "== bad scenario files are refused with exit 2"
bad=$(mktemp --suffix=.toml)
sed 's/node = "n1"/node = "n7"/' scenarios/smoke.toml > "$bad"
set +e; out=$("$SIM" run "$bad" --seed 1 2>&1); code=$?; set -e
rm -f "$bad"
[ "$code" -eq 2 ] && grep -q 'field `faults.node`' <<<"$out" || { echo "$out"; fail "bad scenario not refused"; }
echo "bad file: $out"

echo "== swarm: random survivable faults over random clusters, seeds 1..100"
"$SIM" swarm --seeds 1..=100 --jobs 2 || fail "a swarm run failed (its replay line is above)"

echo "== a swarm finds a deliberately weakened system (R = W = 1) within 200 seeds"
set +e; out=$("$SIM" swarm --seeds 1..=200 --weaken r1w1 --stop-at-first-failure --jobs 2 2>&1); code=$?; set -e
[ "$code" -eq 1 ] && grep -q 'result: fail: read_after_write\|result: fail: no_lost_writes' <<<"$out" || { echo "$out"; fail "the swarm missed R = W = 1"; }
echo "weakened swarm: $(grep -m1 'result: fail' <<<"$out" | cut -c1-160)"

# replay_regression FILE: runs a kept regression with the seed recorded in its header.
replay_regression() {
  local seed
  seed=$(sed -n 's/^# seed = \([0-9]*\)$/\1/p' "$1" | head -1)
  "$SIM" run "$1" --seed "${seed:-1}"
}

echo "== a failing seed saved with --save-regression fails again when replayed"
# In a scratch directory: --save-regression writes under ./scenarios/regressions/.
scratch=$(mktemp -d)
sim_abs=$(realpath "$SIM")
weak=$(realpath scenarios/weakened/smoke-r1w1.toml)
set +e; (cd "$scratch" && "$sim_abs" run "$weak" --seed "$r1w1_seed" --save-regression >/dev/null); code=$?; set -e
saved="$scratch/scenarios/regressions/smoke-r1w1-seed$r1w1_seed.toml"
[ "$code" -eq 1 ] && [ -f "$saved" ] || fail "--save-regression did not save $saved (exit $code)"
grep -q "^# seed = $r1w1_seed\$" "$saved" || fail "$saved does not record its seed"
set +e; out=$(replay_regression "$saved"); code=$?; set -e
[ "$code" -eq 1 ] && grep -q '^result: fail: read_after_write' <<<"$out" \
  || { echo "$out"; fail "the saved regression passed when replayed (exit $code)"; }
echo "saved regression: $(sed -n 2p "$saved" | cut -c1-120); replayed: $(grep '^result' <<<"$out" | cut -c1-80)"
rm -rf "$scratch"

echo "== regressions"
shopt -s nullglob
for file in scenarios/regressions/*.toml; do
  replay_regression "$file" >/dev/null || fail "regression $file"
done
echo "sim acceptance: all checks passed"
