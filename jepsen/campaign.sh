#!/usr/bin/env bash
# The Jepsen campaign: every workload × every nemesis (alone, then all together) × RUNS
# seeds, against the current build. Prints one line per run and a summary; keeps every
# run's directory. Needs root. Usage:
#   [NEMESES="kill pause"] [WORKLOADS=set] [FIRST_SEED=1] [MODE=consistent] [ZONES=3] \
#     jepsen/campaign.sh [OUT_DIR] [RUNS] [TIME_LIMIT_S] [NODES]
# e.g. jepsen/campaign.sh target/jepsen-campaign 10 60 5   (the full campaign, ~7 h here:
# 4 workloads × 10 nemesis sets × 10 seeds × ~65 s)
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-target/jepsen-campaign}"
runs="${2:-10}"
limit="${3:-60}"
nodes="${4:-5}"
nemeses="${NEMESES:-partition one-way bridge zone-split isolate kill pause clock layout partition,bridge,kill,pause,clock,layout}"
workloads="${WORKLOADS:-register set multipart cas}"
# zone-split needs zones with more than one node: 3 zones (z1 = n1 n4, z2 = n2 n5, z3 = n3).
zones="${ZONES:-3}"
first="${FIRST_SEED:-1}"
mode="${MODE:-consistent}"
# What the nemeses need (partitions: nft and ip; clock: libfaketime), installed if missing.
for tool in nft:nftables ip:iproute2 faketime:faketime; do
  if ! command -v "${tool%%:*}" >/dev/null; then
    apt-get install -y "${tool#*:}" >/dev/null || { apt-get update >/dev/null && apt-get install -y "${tool#*:}" >/dev/null; } || exit 2
  fi
done
cargo build -p hangar-s3 -p hangar-jepsen || exit 2
mkdir -p "$out"
summary="$out/summary.txt"
: > "$summary"
for workload in $workloads; do
  for nemesis in $nemeses; do
    for seed in $(seq "$first" $((first + runs - 1))); do
      dir="$out/$workload-${nemesis//,/+}-$seed"
      target/debug/hangar-jepsen run --workload "$workload" --nemesis "$nemesis" \
        --nodes "$nodes" --time-limit "$limit" --seed "$seed" --zones "$zones" --consistency-mode "$mode" --out "$dir" > "$dir.log" 2>&1
      verdict=$(grep '^valid:' "$dir.log" | tail -1)
      ops=$(grep -o '^[0-9]* operations ([0-9]* acknowledged reads)' "$dir.log")
      echo "$mode $workload $nemesis seed=$seed ${verdict:-valid: unknown} $ops" | tee -a "$summary"
    done
  done
done
echo "--- $(grep -c 'valid: true' "$summary") valid, $(grep -c 'valid: false' "$summary") invalid, $(grep -c 'valid: unknown' "$summary") unknown"
