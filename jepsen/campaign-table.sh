#!/usr/bin/env bash
# Renders a campaign's results (jepsen/campaign.sh OUT_DIR) as the markdown of
# docs/jepsen-results.md: the parameters, the builds (commits) the runs used, a table of
# workload × nemesis with valid/total per cell, and every run that was not valid, so the doc
# is generated from the run directories, not typed by hand. Usage:
#   jepsen/campaign-table.sh OUT_DIR > section.md
# A cell `9/10 (1 false)` means 10 runs recorded, 9 valid, 1 reported an anomaly; `—` means
# no run yet. `crashed` runs (the harness gave no verdict) count in the total, not as valid.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:?usage: jepsen/campaign-table.sh OUT_DIR}"
[ -d "$out/runs" ] || { echo "campaign-table.sh: $out/runs does not exist" >&2; exit 2; }
jepsen/campaign.sh --summary "$out" > /dev/null
all_workloads="register set multipart cas"
all_nemeses="partition one-way bridge zone-split isolate kill pause clock layout partition,bridge,kill,pause,clock,layout"

grep -v '^---' "$out/summary.txt" | awk -v w="$all_workloads" -v n="$all_nemeses" \
  -v conf="$(cat "$out/campaign.conf" 2>/dev/null)" -v out="$out" '
function field(name,   i) {
  for (i = 1; i <= NF; i++) if (index($i, name "=") == 1) return substr($i, length(name) + 2)
  return ""
}
{
  verdict = $6; cell = $2 SUBSEP $3
  total[cell]++; count[cell, verdict]++; verdicts[verdict]++; runs++
  b = field("commit"); d = field("date")
  if (!(b in build_runs)) { builds[++nbuilds] = b; build_first[b] = d; build_last[b] = d }
  build_runs[b]++
  if (d < build_first[b]) build_first[b] = d
  if (d > build_last[b]) build_last[b] = d
  if (first == "" || d < first) first = d
  if (d > last) last = d
  wall += field("wall_s")
  if (verdict != "true") bad[++nbad] = $0
}
END {
  nw = split(w, ws, " "); nn = split(n, ns, " ")
  printf "%d runs recorded from %s to %s (%.1f h of runs), in `%s`; parameters: %s.\n\n", \
    runs, first, last, wall / 3600, out, conf
  printf "Builds (commit, `-dirty` = uncommitted changes in the crates'"'"' sources, kept as\n"
  printf "`bin/BUILD/dirty.patch` in the campaign directory):\n\n"
  for (i = 1; i <= nbuilds; i++) {
    b = builds[i]
    printf "- `%s`: %d runs, %s – %s\n", b, build_runs[b], build_first[b], build_last[b]
  }
  printf "\n| workload |"
  for (j = 1; j <= nn; j++) printf " %s |", (ns[j] ~ /,/ ? "combined" : ns[j])
  printf "\n|---|"
  for (j = 1; j <= nn; j++) printf "---|"
  printf "\n"
  for (i = 1; i <= nw; i++) {
    printf "| %s |", ws[i]
    for (j = 1; j <= nn; j++) {
      c = ws[i] SUBSEP ns[j]
      if (!(c in total)) { printf " — |"; continue }
      s = (count[c, "true"] + 0) "/" total[c]
      notes = ""
      split("false unknown crashed", kinds, " ")
      for (k = 1; k <= 3; k++)
        if (count[c, kinds[k]] > 0) notes = notes (notes == "" ? "" : ", ") count[c, kinds[k]] " " kinds[k]
      printf " %s |", s (notes == "" ? "" : " (" notes ")")
    }
    printf "\n"
  }
  for (j = 1; j <= nn; j++) if (ns[j] ~ /,/) printf "\ncombined = `%s`.\n", ns[j]
  printf "\n%d valid, %d invalid, %d unknown, %d crashed.\n", verdicts["true"], \
    verdicts["false"], verdicts["unknown"], verdicts["crashed"]
  if (nbad > 0) {
    printf "\nRuns that were not valid (their directories are `runs/WORKLOAD-NEMESIS-SEED`):\n\n```\n"
    for (i = 1; i <= nbad; i++) print bad[i]
    printf "```\n"
  }
}'
