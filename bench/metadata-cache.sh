#!/usr/bin/env bash
# A `hangar dev` server's RSS with a given `metadata_cache_mib`, after filling KEYS one-byte
# objects and listing them all five times, then after 8 s of 4 KiB GETs at c=16
# (docs/benchmarks.md, "The metadata cache").
#
#   [KEYS=100000] bench/metadata-cache.sh MIB [BIN_DIR]
#
# BIN_DIR holds `hangar` and `hangar-bench` (default: builds them, target/release).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MIB=${1:?usage: bench/metadata-cache.sh MIB [BIN_DIR]}
BIN=${2:-}
KEYS=${KEYS:-100000}
if [ -z "$BIN" ]; then
    (cd "$ROOT" && cargo build --release -p hangar-s3 -p hangar-bench)
    BIN=$ROOT/target/release
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/metadata-cache.XXXXXX")
PORT=$((20000 + RANDOM % 20000))
SERVER=""
trap '[ -n "$SERVER" ] && kill $SERVER 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT
start() {
    : >"$WORK/out"
    "$BIN/hangar" dev --dir "$WORK/dev" --s3-port "$PORT" --rpc-port $((PORT + 1)) \
        --admin-port $((PORT + 2)) --web-port $((PORT + 3)) >"$WORK/out" 2>"$WORK/err" &
    SERVER=$!
    for _ in $(seq 100); do grep -q "ready" "$WORK/out" 2>/dev/null && return 0; sleep 0.1; done
    echo "hangar dev did not start:" >&2; cat "$WORK/err" >&2; exit 1
}
rss() { awk '/VmRSS/ {printf "%.1f MB", $2 / 1024}' "/proc/$SERVER/status"; }
bench() {
    "$BIN/hangar-bench" --endpoint "http://127.0.0.1:$PORT" \
        --credentials "$WORK/dev/credentials.env" "$@" 2>/dev/null | tail -n 1
}
# The first start writes hangar.toml; the setting goes in before the second.
start
kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
sed -i "1i metadata_cache_mib = $MIB" "$WORK/dev/hangar.toml"
start
echo "metadata_cache_mib = $MIB; RSS idle: $(rss)"
bench --mix list=1 --list-all --size 1 --keys "$KEYS" --fill-concurrency 32 --concurrency 1 --count 5
echo "RSS after the fill and listings: $(rss); metadata: $(du -sh "$WORK/dev/meta" | cut -f1)"
bench --bucket small --mix get=1 --size 4KiB --keys 2000 --concurrency 16 --duration 8s
echo "RSS after the GETs: $(rss)"
