#!/usr/bin/env bash
# Jepsen smoke (about 2.5 minutes): a real 3-node `hangar server` cluster in network namespaces,
# the register, multipart and cas (conditional writes mixed with unconditional PUT/DELETE,
# checked for linearizability) workloads under partitions and SIGKILLs must be valid; then the same cluster
# with R = W = 1 (consistency_mode = "dangerous") under partitions must be caught
# (valid: false) — the harness can fail. After each run nothing hjep- may be left.
# Needs root (ip netns, nftables). Usage: tests/run-jepsen-smoke.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-target/jepsen-smoke}"
seed="${JEPSEN_SEED:-1}"

# shellcheck source=tests/lib/debian.sh
source tests/lib/debian.sh
need_command nft nftables
need_command ip iproute2
cargo build -p hangar-s3 -p hangar-jepsen
jepsen=target/debug/hangar-jepsen

no_leftovers() {
  if ip netns list | grep -q '^hjep-' || ip -o link show | grep -q ': hjep-'; then
    echo "FAIL: hjep- namespaces or links left behind"; ip netns list; exit 1
  fi
  if ps -eo args | grep -v grep | grep -q -- "-c $1/nodes/"; then
    echo "FAIL: hangar processes of $1 left behind"; exit 1
  fi
}

rm -rf "$out"
echo "--- consistent build, partition + kill: must be valid"
"$jepsen" run --workload register --nemesis partition,kill --nodes 3 --time-limit 40 \
  --seed "$seed" --out "$out/consistent"
no_leftovers "$out/consistent"

echo "--- consistent build, multipart uploads under partition + kill: must be valid"
"$jepsen" run --workload multipart --nemesis partition,kill --nodes 3 --time-limit 25 \
  --seed "$seed" --out "$out/multipart"
no_leftovers "$out/multipart"

echo "--- consistent build, conditional and unconditional writes under partition + kill: must be linearizable"
# The default cas mix: unconditional PUT/DELETE racing If-Match / If-None-Match PUTs, all
# ordered by the key's consensus in consistent mode (docs/jepsen-results.md).
"$jepsen" run --workload cas --nemesis partition,kill --nodes 3 \
  --time-limit 20 --seed "$seed" --out "$out/cas"
no_leftovers "$out/cas"

echo "--- weakened build (R = W = 1), partitions: must be caught"
# Each seed isolates a node for several seconds (seed 5: from 3 s to 12 s), long enough for
# a write on one side and a read on the other. Real processes and a real kernel are not
# deterministic, so a run may miss the window: the smoke asks for a catch within three
# seeds, like the simulator's weakened swarm asks for one within 200. Three valid verdicts
# mean the checker (or the harness) has gone blind.
caught=""
for weak_seed in 5 6 7; do
  set +e
  "$jepsen" run --workload register --nemesis partition --nodes 3 --time-limit 15 \
    --seed "$weak_seed" --consistency-mode dangerous --out "$out/weakened-$weak_seed"
  status=$?
  set -e
  no_leftovers "$out/weakened-$weak_seed"
  case "$status" in
    1) caught="$weak_seed"; break ;;
    0) echo "seed $weak_seed: the weakened cluster was not caught this time; next seed" ;;
    *) echo "seed $weak_seed: the harness could not judge the run (exit $status); next seed" ;;
  esac
done
if [ -z "$caught" ]; then
  echo "FAIL: the weakened cluster was not reported invalid for seeds 5, 6, 7"; exit 1
fi
echo "weakened cluster caught at seed $caught"
echo "jepsen smoke passed"
