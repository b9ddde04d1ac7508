#!/usr/bin/env bash
# The Jepsen campaign: every workload × every nemesis (alone, then most together) × RUNS
# seeds. Resumable: each run's directory keeps its verdict line (`result`), and a second
# invocation with the same OUT_DIR skips every run that has one, so a ~7 h campaign can be
# spread over several sessions. Needs root. Usage:
#
#   [RELEASE=1] [NICE=1] [NEMESES="kill pause"] [WORKLOADS=set] [FIRST_SEED=1] \
#   [MODE=consistent] [ZONES=3] [CAS_UNCONDITIONAL=true] [RETRY_CRASHED=1] [BIN=OUT/bin/B] \
#     jepsen/campaign.sh [OUT_DIR] [RUNS] [TIME_LIMIT_S] [NODES]
#   jepsen/campaign.sh --stop OUT_DIR      # ask a running campaign to stop after its run
#   jepsen/campaign.sh --summary OUT_DIR   # rewrite OUT_DIR/summary.txt from the runs
#   (the markdown table of docs/jepsen-results.md: jepsen/campaign-table.sh OUT_DIR)
#
# The full campaign (docs/jepsen.md; ~7 h here), niced, on release binaries:
#   RELEASE=1 NICE=1 nohup jepsen/campaign.sh /work/jepsen-campaign 10 60 5 \
#     >> /work/jepsen-campaign.out 2>&1 &
#
# OUT_DIR (default: jepsen-campaign next to the working tree) should be outside any git
# tree and outside /tmp, so that it survives between sessions. It holds:
#   campaign.conf       the run parameters; a resume with other ones is refused
#   bin/BUILD/          each build's `hangar` and `hangar-jepsen`; BUILD = the commit, or
#                       COMMIT-dirty-DATE with dirty.patch when the crates' sources
#                       (engine s3 jepsen checkers vendor Cargo.*) had uncommitted changes
#                       (START..END-dirty-DATE when HEAD moved during the build)
#   runs/W-N-SEED/      one run: the harness's output (history.jsonl, nemesis.jsonl,
#                       report.html, nodes/nI/node.log), run.log (its stdout and stderr),
#                       result (the verdict line, written last: a run without it never
#                       finished and is run again), error (a harness error, if any)
#   summary.txt         every result line, in campaign order, then the counts
#
# A result line: MODE WORKLOAD NEMESIS seed=N valid: V [OPS (ACKED READS)] commit=BUILD
# date=UTC-START wall_s=S exit=CODE load=LOAD1 limit_s=L nodes=N zones=Z, where V is
# true, false, unknown (the checker could not decide, or teardown left something) or
# crashed (the harness stopped with an error, a panic or a signal: no verdict at all;
# RETRY_CRASHED=1 runs those again, keeping the old directory under retried/).
#
# The binaries are built (and copied into bin/) at the start of each workload that has runs
# left, so later workloads (cas runs last) test the newest commit; if that build fails (the
# shared tree mid-edit), the previous build is used and the log says so. BIN=OUT_DIR/bin/BUILD
# runs an earlier build's binaries instead of building.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
default_out="$(cd .. && pwd)/jepsen-campaign"
all_workloads="register set multipart cas"
all_nemeses="partition one-way bridge zone-split isolate kill pause clock layout partition,bridge,kill,pause,clock,layout"

# Rewrites OUT/summary.txt from every runs/*/result, in campaign order.
write_summary() {
  local out="$1"
  local summary="$out/summary.txt"
  find "$out/runs" -mindepth 2 -maxdepth 2 -name result -print0 2>/dev/null \
    | xargs -0 -r cat \
    | awk -v w="$all_workloads" -v n="$all_nemeses" '
        BEGIN { split(w, ws, " "); for (i in ws) wi[ws[i]] = i
                split(n, ns, " "); for (i in ns) ni[ns[i]] = i }
        { s = $4; sub("seed=", "", s)
          printf "%03d %03d %06d %s\n", ($2 in wi ? wi[$2] : 99), ($3 in ni ? ni[$3] : 99), s, $0 }' \
    | sort -k1,1n -k2,2n -k3,3n | cut -d' ' -f4- > "$summary.tmp"
  {
    cat "$summary.tmp"
    echo "--- $(grep -c 'valid: true' "$summary.tmp") valid, $(grep -c 'valid: false' "$summary.tmp") invalid," \
      "$(grep -c 'valid: unknown' "$summary.tmp") unknown, $(grep -c 'valid: crashed' "$summary.tmp") crashed" \
      "($(wc -l < "$summary.tmp") runs)"
  } > "$summary"
  rm -f "$summary.tmp"
}

# Everything below runs inside main, which bash parses whole before it starts: editing this
# file while a campaign runs cannot change what that campaign does.
main() {
case "${1:-}" in
  --stop)
    touch "${2:?usage: campaign.sh --stop OUT_DIR}/STOP"
    echo "the campaign in $2 stops after its current run"; exit 0 ;;
  --summary)
    write_summary "${2:?usage: campaign.sh --summary OUT_DIR}"; cat "$2/summary.txt"; exit 0 ;;
esac

out="${1:-$default_out}"
runs="${2:-10}"
limit="${3:-60}"
nodes="${4:-5}"
nemeses="${NEMESES:-$all_nemeses}"
workloads="${WORKLOADS:-$all_workloads}"
# zone-split needs zones with more than one node: 3 zones (z1 = n1 n4, z2 = n2 n5, z3 = n3).
zones="${ZONES:-3}"
first="${FIRST_SEED:-1}"
mode="${MODE:-consistent}"
cas_unconditional="${CAS_UNCONDITIONAL:-true}"
profile=debug; [ "${RELEASE:-0}" = 1 ] && profile=release
niced=(); [ "${NICE:-0}" = 1 ] && niced=(nice -n 19)

case "$out" in
  /tmp/*) echo "campaign.sh: $out is under /tmp; use a directory that survives (default $default_out)" >&2; exit 2 ;;
esac
local probe="$out"
while [ ! -d "$probe" ]; do probe=$(dirname "$probe"); done
if git -C "$probe" rev-parse --git-dir >/dev/null 2>&1; then
  echo "campaign.sh: $out is inside a git tree; use a directory outside it (default $default_out)" >&2
  exit 2
fi
mkdir -p "$out/runs" "$out/bin" || exit 2
out=$(cd "$out" && pwd)
exec 9> "$out/lock"
if ! flock -n 9; then
  echo "campaign.sh: another campaign is running in $out" >&2; exit 2
fi
rm -f "$out/STOP"

# The parameters every run shares; resuming with different ones would mix two campaigns.
conf="mode=$mode limit_s=$limit nodes=$nodes zones=$zones cas_unconditional=$cas_unconditional"
if [ -f "$out/campaign.conf" ] && [ "$(cat "$out/campaign.conf")" != "$conf" ]; then
  echo "campaign.sh: $out holds a campaign with $(cat "$out/campaign.conf"), not $conf" >&2
  exit 2
fi
echo "$conf" > "$out/campaign.conf"

# What the nemeses need (partitions: nft and ip; clock: libfaketime), installed if missing.
for tool in nft:nftables ip:iproute2 faketime:faketime flock:util-linux; do
  if ! command -v "${tool%%:*}" >/dev/null; then
    apt-get install -y "${tool#*:}" >/dev/null || { apt-get update >/dev/null && apt-get install -y "${tool#*:}" >/dev/null; } || exit 2
  fi
done

# Builds the binaries and copies them to bin/BUILD; sets $build and $bin. The sources the
# binaries come from: a change there (uncommitted) makes the build -dirty.
source_paths=(engine s3 jepsen checkers vendor Cargo.toml Cargo.lock)
build_binaries() {
  if [ -n "${BIN:-}" ]; then   # an earlier build of this campaign, as it is: no cargo
    bin=$(cd "$BIN" && pwd) && build=$(basename "$bin") && [ -x "$bin/hangar-jepsen" ] || return 1
    echo "=== build $build (BIN) in $bin"; return 0
  fi
  local flags=(); [ "$profile" = release ] && flags=(--release)
  echo "=== $(date -u +%FT%TZ) cargo build ${flags[*]} -p hangar-s3 -p hangar-jepsen"
  local commit dirty
  commit=$(git rev-parse --short HEAD)
  dirty=$(git status --porcelain -- "${source_paths[@]}")
  # Not niced: one build among the others' (niced, under their load, it took 20 min, not 7).
  if ! cargo build "${flags[@]}" -p hangar-s3 -p hangar-jepsen 9>&-; then
    if [ -n "${bin:-}" ]; then
      echo "=== build failed (shared tree mid-edit?): keeping build $build"; return 0
    fi
    return 1
  fi
  # A commit during the build (others commit to the shared tree) leaves a binary somewhere
  # between the two: name both, and call it dirty.
  local end; end=$(git rev-parse --short HEAD)
  [ "$commit" = "$end" ] || { commit="$commit..$end"; dirty=yes; }
  [ -z "$dirty" ] && dirty=$(git status --porcelain -- "${source_paths[@]}")
  # Two dirty builds of one commit differ: the build's date tells them apart.
  build="$commit${dirty:+-dirty-$(date -u +%Y%m%dT%H%M%S)}"
  local dir="$out/bin/$build"
  mkdir -p "$dir" || return 1
  cp "target/$profile/hangar" "target/$profile/hangar-jepsen" "$dir/" || return 1
  if [ -n "$dirty" ]; then
    git status --porcelain -- "${source_paths[@]}" > "$dir/dirty-status.txt"
    git diff HEAD -- "${source_paths[@]}" > "$dir/dirty.patch"
  fi
  echo "$profile" > "$dir/profile"
  bin="$dir"
  echo "=== build $build ($profile) in $bin"
}

# One run: its verdict line goes to DIR/result only once the harness is done.
current_pid=""
interrupted() {
  echo "=== interrupted: stopping the current run (no result recorded for it)"
  [ -n "$current_pid" ] && kill -TERM "$current_pid" 2>/dev/null && wait "$current_pid"
  # The harness's teardown does not run on a signal: clean what it left.
  "$bin/hangar-jepsen" cleanup
  write_summary "$out"
  exit 130
}
trap interrupted INT TERM

run_one() {
  local workload="$1" nemesis="$2" seed="$3" dir="$4"
  local extra=(); [ "$workload" = cas ] && extra=(--cas-unconditional "$cas_unconditional")
  local started start_s status
  started=$(date -u +%FT%TZ); start_s=$(date +%s)
  mkdir -p "$dir"
  # hangar-jepsen itself waits while another one runs on the machine (its machine lock).
  "${niced[@]}" "$bin/hangar-jepsen" run --workload "$workload" "${extra[@]}" \
    --nemesis "$nemesis" --nodes "$nodes" --time-limit "$limit" --seed "$seed" \
    --zones "$zones" --consistency-mode "$mode" --hangar-bin "$bin/hangar" --out "$dir" 9>&- \
    > "$dir/run.log" 2>&1 &
  current_pid=$!
  wait "$current_pid"; status=$?
  current_pid=""
  local wall=$(( $(date +%s) - start_s ))
  local verdict ops
  verdict=$(grep '^valid:' "$dir/run.log" | tail -1)
  ops=$(grep -o '^[0-9]* operations ([0-9]* acknowledged reads)' "$dir/run.log")
  grep -E '^hangar-jepsen: error:|panicked at' "$dir/run.log" > "$dir/error"
  # A verdict counts only from a harness that got to judge: exit 0, 1, or 2 with a check.
  if [ -s "$dir/error" ] || [ -z "$verdict" ] || [ "$status" -gt 2 ]; then
    verdict="valid: crashed"
  else
    rm -f "$dir/error"
  fi
  local load; load=$(cut -d' ' -f1 /proc/loadavg)
  local line="$mode $workload $nemesis seed=$seed $verdict${ops:+ $ops} commit=$build"
  line+=" date=$started wall_s=$wall exit=$status load=$load limit_s=$limit nodes=$nodes zones=$zones"
  echo "$line" > "$dir/result.tmp" && mv "$dir/result.tmp" "$dir/result"
  echo "$line"
  # A valid run's node data (blocks, metadata) is not evidence of anything: drop it, keep
  # the logs. Runs that are not valid keep everything for the investigation.
  if [ "$verdict" = "valid: true" ]; then
    rm -rf "$dir"/nodes/n*/data "$dir"/nodes/n*/meta
  fi
}

bin=""
build=""
for workload in $workloads; do
  built_for_workload=""
  for nemesis in $nemeses; do
    for seed in $(seq "$first" $((first + runs - 1))); do
      if [ -f "$out/STOP" ]; then
        rm -f "$out/STOP"; write_summary "$out"
        echo "=== $(date -u +%FT%TZ) stopped on request; resume with the same command"; exit 0
      fi
      dir="$out/runs/$workload-${nemesis//,/+}-$seed"
      if [ -f "$dir/result" ]; then
        if [ "${RETRY_CRASHED:-0}" = 1 ] && grep -q 'valid: crashed' "$dir/result"; then
          mkdir -p "$out/retried" && mv "$dir" "$out/retried/$(basename "$dir").$(date -u +%Y%m%dT%H%M%S)"
        else
          continue
        fi
      fi
      rm -rf "$dir"   # a run that never finished: its partial output is no result
      if [ -z "$built_for_workload" ]; then
        build_binaries || { echo "campaign.sh: cannot build the binaries" >&2; exit 2; }
        built_for_workload=yes
      fi
      run_one "$workload" "$nemesis" "$seed" "$dir"
    done
  done
done
write_summary "$out"
tail -1 "$out/summary.txt"
}

main "$@"
exit
