#!/usr/bin/env bash
# Acceptance checks of the deterministic simulator, with the release binary:
#  - scenarios/smoke.toml passes for seeds 1..=50 and prints its speedup;
#  - the same seed gives the same trace in two fresh processes (seeds 1..=20), and those
#    20 seeds give at least 19 distinct traces;
#  - the deliberately weakened scenario (R = W = 1) is caught for some seed in 1..=50;
#  - scenarios/s3-smoke.toml (the real S3 frontend) passes for seeds 1..=10, is deterministic
#    for seeds 1 and 2, and its weakened variant is caught for some seed in 1..=50;
#  - the data-path scenarios (s3-disk-loss, s3-corruption, s3-crash-mid-put) pass for seeds
#    1..=10 with every replica reading its own blocks, and seed 1 of each is deterministic;
#  - their weakened variants are caught by block_refs: no resync after a disk loss (missing
#    blocks), no collection (orphans), no scrub after corruption (a corrupt live copy, or
#    no_lost_writes' own-copy rule) for some seed;
#  - the layout-change scenarios pass (s3: seeds 1..=10, register: 1..=20), seed 1 of each
#    is deterministic, and reads switching before the new replicas synced are caught;
#  - swarm: 40 random scenarios (cluster, network, workload, survivable faults) pass, and
#    a swarm of weakened ones (R = W = 1) is caught within 200 seeds;
#  - every scenario kept in scenarios/regressions/ passes with its recorded seed.
# Usage: tests/sim-acceptance.sh [path/to/hangar-sim]
set -euo pipefail
cd "$(dirname "$0")/.."
SIM=${1:-target/release/hangar-sim}
[ -x "$SIM" ] || { echo "no simulator at $SIM (cargo build --release -p hangar-sim)"; exit 2; }
fail() { echo "FAIL: $*"; exit 1; }

echo "== smoke, seeds 1..50"
speedups=()
for seed in $(seq 1 50); do
  out=$("$SIM" run scenarios/smoke.toml --seed "$seed") || { echo "$out"; fail "smoke seed $seed"; }
  speedups+=("$(sed -n 's/.*speedup=\([0-9]*\).*/\1/p' <<<"$out")")
done
sorted=$(printf '%s\n' "${speedups[@]}" | sort -n)
echo "smoke: 50/50 pass; speedup min=$(head -1 <<<"$sorted") median=$(sed -n 25p <<<"$sorted") max=$(tail -1 <<<"$sorted")"

echo "== determinism across processes, seeds 1..20"
traces=()
for seed in $(seq 1 20); do
  out=$("$SIM" check-determinism scenarios/smoke.toml --seed "$seed") || { echo "$out"; fail "seed $seed is not deterministic"; }
  traces+=("$(sed -n 's/^run 1: trace=//p' <<<"$out")")
done
distinct=$(printf '%s\n' "${traces[@]}" | sort -u | wc -l)
[ "$distinct" -ge 19 ] || fail "only $distinct distinct traces over 20 seeds"
echo "determinism: 20/20 identical across processes, $distinct distinct traces"

echo "== canary: a run that reads OS entropy must be reported as non-deterministic"
set +e; out=$("$SIM" check-determinism scenarios/smoke.toml --seed 1 --canary); code=$?; set -e
[ "$code" -eq 1 ] && grep -q 'traces differ at event' <<<"$out" || { echo "$out"; fail "canary not caught"; }
echo "canary: $(grep -A1 'traces differ' <<<"$out" | head -2 | tr '\n' ' ' | cut -c1-160)"

echo "== weakened quorums (R = W = 1) must be caught"
caught=""
for seed in $(seq 1 50); do
  set +e; out=$("$SIM" run scenarios/weakened/smoke-r1w1.toml --seed "$seed"); code=$?; set -e
  if [ "$code" -eq 1 ] && grep -q '^result: fail: read_after_write' <<<"$out"; then caught=$seed; break; fi
  [ "$code" -eq 0 ] || { echo "$out"; fail "unexpected exit $code for the weakened scenario"; }
done
[ -n "$caught" ] || fail "the read-after-write checker missed R = W = 1 for seeds 1..50"
echo "weakened: caught at seed $caught: $(grep '^result' <<<"$out" | cut -c1-160)"

echo "== s3-smoke (the real S3 frontend over simulated TCP), seeds 1..10"
speedups=()
for seed in $(seq 1 10); do
  out=$("$SIM" run scenarios/s3-smoke.toml --seed "$seed") || { echo "$out"; fail "s3-smoke seed $seed"; }
  speedups+=("$(sed -n 's/.*speedup=\([0-9]*\).*/\1/p' <<<"$out")")
done
sorted=$(printf '%s\n' "${speedups[@]}" | sort -n)
echo "s3-smoke: 10/10 pass; speedup min=$(head -1 <<<"$sorted") median=$(sed -n 5p <<<"$sorted") max=$(tail -1 <<<"$sorted")"
for seed in 1 2; do
  out=$("$SIM" check-determinism scenarios/s3-smoke.toml --seed "$seed") || { echo "$out"; fail "s3-smoke seed $seed is not deterministic"; }
done
echo "s3-smoke: seeds 1, 2 identical across processes"

echo "== weakened quorums behind S3 (R = W = 1) must be caught"
caught=""
for seed in $(seq 1 50); do
  set +e; out=$("$SIM" run scenarios/weakened/s3-smoke-r1w1.toml --seed "$seed"); code=$?; set -e
  if [ "$code" -eq 1 ] && grep -q '^result: fail: read_after_write' <<<"$out"; then caught=$seed; break; fi
  [ "$code" -eq 0 ] || { echo "$out"; fail "unexpected exit $code for the weakened s3 scenario"; }
done
[ -n "$caught" ] || fail "the read-after-write checker missed R = W = 1 behind S3 for seeds 1..50"
echo "weakened s3: caught at seed $caught: $(grep '^result' <<<"$out" | cut -c1-160)"

echo "== data path: s3-disk-loss, s3-corruption, s3-crash-mid-put, seeds 1..10 each"
for name in s3-disk-loss s3-corruption s3-crash-mid-put; do
  speedups=()
  for seed in $(seq 1 10); do
    out=$("$SIM" run "scenarios/$name.toml" --seed "$seed") || { echo "$out"; fail "$name seed $seed"; }
    grep -q 'remote_blocks=0' <<<"$out" || { echo "$out"; fail "$name seed $seed read blocks from other nodes"; }
    speedups+=("$(sed -n 's/.*speedup=\([0-9]*\).*/\1/p' <<<"$out")")
  done
  sorted=$(printf '%s\n' "${speedups[@]}" | sort -n)
  echo "$name: 10/10 pass; speedup min=$(head -1 <<<"$sorted") median=$(sed -n 5p <<<"$sorted") max=$(tail -1 <<<"$sorted")"
  out=$("$SIM" check-determinism "scenarios/$name.toml" --seed 1) || { echo "$out"; fail "$name seed 1 is not deterministic"; }
done
echo "data path: seed 1 of each identical across processes"

echo "== weakened block repair and collection must be caught by block_refs"
# must_catch FILE PATTERN SEEDS: some seed must fail with a result line matching PATTERN.
must_catch() {
  local file=$1 pattern=$2 seeds=$3 caught="" out code
  for seed in $(seq 1 "$seeds"); do
    set +e; out=$("$SIM" run "$file" --seed "$seed"); code=$?; set -e
    if [ "$code" -eq 1 ] && grep -Eq "^result: fail: ($pattern)" <<<"$out"; then caught=$seed; break; fi
    [ "$code" -eq 0 ] || { echo "$out"; fail "unexpected exit $code for $file seed $seed"; }
  done
  [ -n "$caught" ] || fail "$file was not caught for seeds 1..$seeds"
  echo "$(basename "$file"): caught at seed $caught: $(grep '^result' <<<"$out" | cut -c1-150)"
}
must_catch scenarios/weakened/s3-disk-loss-no-resync.toml 'block_refs .*missing' 10
must_catch scenarios/weakened/s3-overwrite-no-gc.toml 'block_refs .*orphan' 10
must_catch scenarios/weakened/s3-corruption-no-scrub.toml 'block_refs .*corrupt|no_lost_writes' 20

echo "== bad scenario files are refused with exit 2"
bad=$(mktemp --suffix=.toml)
sed 's/node = "n1"/node = "n7"/' scenarios/smoke.toml > "$bad"
set +e; out=$("$SIM" run "$bad" --seed 1 2>&1); code=$?; set -e
rm -f "$bad"
[ "$code" -eq 2 ] && grep -q 'field `faults.node`' <<<"$out" || { echo "$out"; fail "bad scenario not refused"; }
echo "bad file: $out"

echo "== clock skew (two minutes each way), seeds 1..10"
for seed in $(seq 1 10); do
  out=$("$SIM" run scenarios/clock-skew.toml --seed "$seed") || { echo "$out"; fail "clock-skew seed $seed"; }
done
echo "clock-skew: 10/10 pass"

echo "== layout changes: layout-change (s3) seeds 1..10, layout-change-register seeds 1..20"
for seed in $(seq 1 10); do
  out=$("$SIM" run scenarios/layout-change.toml --seed "$seed") || { echo "$out"; fail "layout-change seed $seed"; }
  grep -q 'remote_blocks=0' <<<"$out" || { echo "$out"; fail "layout-change seed $seed read blocks from other nodes"; }
done
for seed in $(seq 1 20); do
  out=$("$SIM" run scenarios/layout-change-register.toml --seed "$seed") || { echo "$out"; fail "layout-change-register seed $seed"; }
done
for name in layout-change layout-change-register; do
  out=$("$SIM" check-determinism "scenarios/$name.toml" --seed 1) || { echo "$out"; fail "$name seed 1 is not deterministic"; }
done
echo "layout changes: all pass, seed 1 of each identical across processes"
must_catch scenarios/weakened/layout-early-read-switch.toml 'read_after_write' 20

echo "== swarm: random survivable faults over random clusters, seeds 1..40"
"$SIM" swarm --seeds 1..=40 --jobs 2 || fail "a swarm run failed (its replay line is above)"

echo "== a swarm finds a deliberately weakened system (R = W = 1) within 200 seeds"
set +e; out=$("$SIM" swarm --seeds 1..=200 --weaken r1w1 --stop-at-first-failure --jobs 2 2>&1); code=$?; set -e
[ "$code" -eq 1 ] && grep -q 'result: fail: read_after_write\|result: fail: no_lost_writes' <<<"$out" || { echo "$out"; fail "the swarm missed R = W = 1"; }
echo "weakened swarm: $(grep -m1 'result: fail' <<<"$out" | cut -c1-160)"

echo "== regressions"
shopt -s nullglob
for file in scenarios/regressions/*.toml; do
  seed=$(sed -n 's/^# seed = \([0-9]*\)$/\1/p' "$file" | head -1)
  "$SIM" run "$file" --seed "${seed:-1}" >/dev/null || fail "regression $file (seed ${seed:-1})"
done
echo "sim acceptance: all checks passed"
