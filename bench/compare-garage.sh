#!/usr/bin/env bash
# Hangar against Garage, one node each on loopback, same machine, same client
# (`hangar-bench`), same durability (fsync of metadata and data on for both: Garage's
# defaults are off, Hangar's on), run one after the other so they never share the CPU.
#
#   bench/compare-garage.sh [GARAGE_BIN] [OUT_DIR]
#
# GARAGE_BIN: a Garage 2.5.0 binary (`cargo install garage --version 2.5.0 --root DIR`
# builds one in about 15 minutes on two cores; it is used as a binary only).
# Prints one table row per (system, workload) and writes every summary as JSON in OUT_DIR.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
GARAGE=${1:-garage}
OUT=${2:-target/compare-garage}
DURATION=${DURATION:-20s}
command -v "$GARAGE" >/dev/null || [ -x "$GARAGE" ] || {
    echo "no Garage binary at $GARAGE (cargo install garage --version 2.5.0)" >&2; exit 2; }
cargo build --release -p hangar-s3 -p hangar-bench
HANGAR=target/release/hangar
BENCH=target/release/hangar-bench
mkdir -p "$OUT"
WORK=$(mktemp -d)
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

wait_port() {
    for _ in $(seq 1 300); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "port $1 did not open" >&2; exit 1
}

# Runs the workloads against the endpoint/credentials in $WORK/creds.env, labelled $1.
workloads() {
    local system=$1 name args
    for spec in \
        "put-1MiB-c8|--mix put=1 --size 1MiB --concurrency 8" \
        "get-1MiB-c8|--mix get=1 --size 1MiB --concurrency 8 --keys 200" \
        "put-4KiB-c16|--mix put=1 --size 4KiB --concurrency 16" \
        "get-4KiB-c16|--mix get=1 --size 4KiB --concurrency 16" \
        "put-4KiB-c1|--mix put=1 --size 4KiB --concurrency 1" \
        "get-4KiB-c1|--mix get=1 --size 4KiB --concurrency 1"; do
        name=${spec%%|*}
        args=${spec#*|}
        # shellcheck disable=SC2086
        "$BENCH" --credentials "$WORK/creds.env" --bucket bench --duration "$DURATION" \
            $args --json >"$OUT/$system-$name.json"
        python3 - "$system" "$name" "$OUT/$system-$name.json" <<'EOF'
import json, sys
rows = [r for r in json.load(open(sys.argv[3]))["rows"] if r["phase"] != "fill"]
for r in rows:
    print(f"{sys.argv[1]:8} {sys.argv[2]:14} {r['op']:6} {r['ops_per_s']:9.1f} ops/s "
          f"{r['mib_per_s']:8.1f} MiB/s  p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  "
          f"errors {r['errors']}")
EOF
    done
}

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

# ---- Hangar -------------------------------------------------------------------------------
"$HANGAR" dev --dir "$WORK/hangar" --s3-port 3950 --rpc-port 3951 --admin-port 3953 \
    >"$WORK/hangar.out" 2>"$WORK/hangar.log" &
PID=$!
wait_port 3950
sleep 1
echo "hangar   idle RSS $(rss_kb "$PID") KiB"
cp "$WORK/hangar/credentials.env" "$WORK/creds.env"
workloads hangar
echo "hangar   loaded RSS $(rss_kb "$PID") KiB"
kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""

# ---- Garage -------------------------------------------------------------------------------
G="$WORK/garage"
mkdir -p "$G"
cat >"$G/garage.toml" <<EOF
metadata_dir = "$G/meta"
data_dir = "$G/data"
db_engine = "lmdb"
metadata_fsync = true
data_fsync = true
replication_factor = 1
rpc_bind_addr = "127.0.0.1:3961"
rpc_public_addr = "127.0.0.1:3961"
rpc_secret = "$(openssl rand -hex 32)"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:3960"

[admin]
api_bind_addr = "127.0.0.1:3963"
admin_token = "$(openssl rand -hex 32)"
EOF
"$GARAGE" -c "$G/garage.toml" server >"$WORK/garage.out" 2>"$WORK/garage.log" &
PID=$!
wait_port 3960
sleep 1
GC=("$GARAGE" -c "$G/garage.toml")
node=$("${GC[@]}" status 2>/dev/null | awk '/127.0.0.1:3961/ {print $1; exit}')
[ -n "$node" ] || { echo "garage status shows no node" >&2; "${GC[@]}" status >&2; exit 1; }
"${GC[@]}" layout assign -z dc1 -c 1G "$node" >/dev/null
"${GC[@]}" layout apply --version 1 >/dev/null
key=$("${GC[@]}" key create bench-key)
id=$(awk '/Key ID/ {print $NF}' <<<"$key")
secret=$(awk '/Secret key/ {print $NF}' <<<"$key")
"${GC[@]}" bucket create bench >/dev/null
"${GC[@]}" bucket allow --read --write --owner bench --key bench-key >/dev/null
printf 'export AWS_ACCESS_KEY_ID=%s\nexport AWS_SECRET_ACCESS_KEY=%s\nexport AWS_REGION=garage\nexport AWS_ENDPOINT_URL=http://127.0.0.1:3960\n' \
    "$id" "$secret" >"$WORK/creds.env"
echo "garage   idle RSS $(rss_kb "$PID") KiB"
workloads garage
echo "garage   loaded RSS $(rss_kb "$PID") KiB"
