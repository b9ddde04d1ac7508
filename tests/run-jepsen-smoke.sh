#!/usr/bin/env bash
# Jepsen smoke (about 75 s): a real 3-node `hangar server` cluster in network namespaces,
# the register workload under partitions and SIGKILLs must be valid; then the same cluster
# with R = W = 1 (consistency_mode = "dangerous") under partitions must be caught
# (valid: false) — the harness can fail. After each run nothing hjep- may be left.
# Needs root (ip netns, nftables). Usage: tests/run-jepsen-smoke.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-target/jepsen-smoke}"
seed="${JEPSEN_SEED:-1}"

for tool in nft:nftables ip:iproute2; do
  if ! command -v "${tool%%:*}" >/dev/null; then
    apt-get install -y "${tool#*:}" >/dev/null || { apt-get update >/dev/null && apt-get install -y "${tool#*:}" >/dev/null; }
  fi
done
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

echo "--- weakened build (R = W = 1), partitions: must be caught"
# Seed 5 isolates a node from 3 s to 12 s, long enough for a write on one side and a read on
# the other; a valid verdict here means the checker (or the harness) has gone blind.
set +e
"$jepsen" run --workload register --nemesis partition --nodes 3 --time-limit 15 --seed 5 \
  --consistency-mode dangerous --out "$out/weakened"
status=$?
set -e
no_leftovers "$out/weakened"
if [ "$status" -ne 1 ]; then
  echo "FAIL: the weakened cluster was not reported invalid (exit $status)"; exit 1
fi
echo "jepsen smoke passed"
