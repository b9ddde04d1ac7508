#!/usr/bin/env bash
# The whole test suite, from a fresh machine with the Rust toolchain and Python 3:
#   formatting, clippy (with the engine's bans on direct OS access), unit and integration
#   tests, the simulator's acceptance checks (also inside madsim's deterministic runtime),
#   and real S3 clients (boto3, aws CLI, installed into .venv) against a real `hangar dev`.
set -euo pipefail
cd "$(dirname "$0")/.."
# Each step's start time goes to target/ci-steps, so the last lines of a CI log (often all
# that is kept) say how long each suite took and how fast the simulator ran on that machine.
mkdir -p target
: > target/ci-steps
step() { printf '\n=== %s\n' "$*"; echo "$(date +%s) $*" >> target/ci-steps; }
summary() {
  echo "$(date +%s) end" >> target/ci-steps
  printf '\n=== summary (seconds per step)\n'
  awk 'NR > 1 { printf "%6d  %s\n", $1 - t, name } { t = $1; $1 = ""; name = substr($0, 2) }' target/ci-steps
  grep -h '^smoke: speedup' target/sim-acceptance.log || true
}

step "rustfmt"
cargo fmt --all -- --check

step "clippy (engine bans: engine/clippy.toml)"
cargo clippy --workspace --all-targets -- -D warnings

step "seam: no banned call in engine/ outside the seam"
if grep -rn --include='*.rs' -E 'SystemTime::now|Instant::now\(|thread_rng|std::fs::|tokio::fs|spawn_blocking|std::thread::spawn|OsRng' engine/src \
     | grep -v '^engine/src/seam/' \
     | grep -v -E '^\S+:[0-9]+:\s*//'; then
  echo "banned calls found in engine/ (use the seam)"; exit 1
fi

step "unit and integration tests"
cargo test --workspace

step "release build"
cargo build --release -p hangar-sim -p hangar-s3

step "simulator acceptance"
tests/sim-acceptance.sh target/release/hangar-sim | tee target/sim-acceptance.log

step "simulator inside madsim (RUSTFLAGS=--cfg madsim), determinism"
RUSTFLAGS="--cfg madsim --cfg tokio_unstable" CARGO_TARGET_DIR=target/madsim \
  cargo build --release -p hangar-sim
for seed in 1 2 3; do
  target/madsim/release/hangar-sim check-determinism scenarios/smoke.toml --seed "$seed"
done
target/madsim/release/hangar-sim run scenarios/smoke.toml --seed 4

step "S3 API with real clients"
tests/run-s3-tests.sh

step "S3 API with real clients through a three-node cluster (three config files)"
tests/run-s3-cluster-tests.sh

step "three-node cluster from docs/deploy.md, replacing a node"
tests/run-cluster-tests.sh

step "Jepsen smoke: real 3-node cluster in namespaces, partition + kill; R = W = 1 is caught"
tests/run-jepsen-smoke.sh

summary
printf '\nall test suites passed\n'
