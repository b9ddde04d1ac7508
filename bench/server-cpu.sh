#!/usr/bin/env bash
# The CPU a `hangar dev` server spends per MiB stored: a fresh server, COUNT PUTs of SIZE at
# concurrency C (after 50 unmeasured ones that create the bucket), and the server's user and
# system CPU time over exactly those PUTs, from /proc/PID/stat. CPU time per MiB moves far
# less with the machine's load than throughput does, so it is how docs/benchmarks.md
# compares two builds of the data path.
#
#   bench/server-cpu.sh [BIN_DIR] [COUNT] [SIZE] [C]
#
# BIN_DIR holds `hangar` and `hangar-bench` (default: builds them, target/release).
# Prints the client's summary line, then: user ms, system ms, and CPU ms per MiB.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${1:-}
COUNT=${2:-1000}
SIZE=${3:-1MiB}
C=${4:-8}
if [ -z "$BIN" ]; then
    (cd "$ROOT" && cargo build --release -p hangar-s3 -p hangar-bench)
    BIN=$ROOT/target/release
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/server-cpu.XXXXXX")
PORT=$((20000 + RANDOM % 20000))
"$BIN/hangar" dev --dir "$WORK/dev" --s3-port "$PORT" --rpc-port $((PORT + 1)) \
    --admin-port $((PORT + 2)) --web-port $((PORT + 3)) >"$WORK/out" 2>"$WORK/err" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do grep -q "ready" "$WORK/out" 2>/dev/null && break; sleep 0.1; done
grep -q "ready" "$WORK/out" || { echo "hangar dev did not start:" >&2; cat "$WORK/err" >&2; exit 1; }
bench() {
    "$BIN/hangar-bench" --endpoint "http://127.0.0.1:$PORT" --credentials "$WORK/dev/credentials.env" \
        --mix put=1 --size "$SIZE" --concurrency "$C" "$@"
}
bench --count 50 --seed 1 >/dev/null
# Fields 14 and 15 of /proc/PID/stat: user and system time in clock ticks.
ticks() { awk '{print $14, $15}' "/proc/$SERVER/stat"; }
read -r user0 sys0 < <(ticks)
bench --count "$COUNT" --seed 2 2>/dev/null | tail -n 1
read -r user1 sys1 < <(ticks)
python3 - "$user0" "$sys0" "$user1" "$sys1" "$(getconf CLK_TCK)" "$COUNT" "$SIZE" <<'EOF'
import sys
u0, s0, u1, s1, hz, count = map(int, sys.argv[1:7])
size = sys.argv[7]
units = {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024}
mib = count * next(float(size[: -len(u)]) * f for u, f in units.items() if size.endswith(u))
user, system = (u1 - u0) * 1000 / hz, (s1 - s0) * 1000 / hz
print(f"server CPU: user {user:.0f} ms, system {system:.0f} ms, "
      f"{(user + system) / mib:.2f} ms per MiB over {mib:.0f} MiB")
EOF
