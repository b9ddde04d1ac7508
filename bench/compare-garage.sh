#!/usr/bin/env bash
# Hangar against Garage on loopback, same machine, same client (`hangar-bench`), same
# durability (fsync of metadata and data on for both: Garage's defaults are off, Hangar's
# on), run one after the other so they never share the CPU.
#
#   [NODES=1|3] [DURATION=20s] [LIST_KEYS=100000] [LIST_ONLY=1] [SYSTEMS="hangar garage"] \
#       [BIN_DIR=DIR] [HOT_KEY=1] [ONLY="put-4KiB-c1 ..."] \
#       bench/compare-garage.sh [GARAGE_BIN] [OUT_DIR]
#
# GARAGE_BIN: a Garage 2.5.0 binary (`cargo install garage --version 2.5.0 --root DIR`
# builds one in about 15 minutes on two cores; it is used as a binary only).
# NODES=1: one node, RF 1 (`hangar dev`). NODES=3: three processes on 127.0.0.1, RF 3, one
# zone each, set up like docs/deploy.md; the client talks to node 1.
# LIST_KEYS: the listing workload fills that many 1-byte objects (at concurrency 32), then
# lists the whole prefix 5 times at concurrency 1 (`--list-all`); 0 skips it.
# HOT_KEY=1 adds `hot-key-c16`: 16 clients doing PUT and DELETE (3:1) of one 4 KiB key,
# which counts the writes that contention on one key makes fail.
# ONLY: run just the workloads named (a space-separated list of the names below).
# Prints one table row per (system, workload), the RSS of every node idle and after the
# runs, and writes every summary as JSON in OUT_DIR (`SYSTEM-NODESn-WORKLOAD.json`).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
GARAGE=${1:-garage}
OUT=${2:-target/compare-garage}
DURATION=${DURATION:-20s}
NODES=${NODES:-1}
LIST_KEYS=${LIST_KEYS:-100000}
SYSTEMS=${SYSTEMS:-hangar garage}
case "$NODES" in 1 | 3) ;; *) echo "NODES must be 1 or 3, not $NODES" >&2; exit 2 ;; esac
if [[ " $SYSTEMS " == *" garage "* ]]; then
    command -v "$GARAGE" >/dev/null || [ -x "$GARAGE" ] || {
        echo "no Garage binary at $GARAGE (cargo install garage --version 2.5.0)" >&2; exit 2; }
fi
# BIN_DIR: take `hangar` and `hangar-bench` from there instead of building them.
if [ -n "${BIN_DIR:-}" ]; then
    HANGAR=$BIN_DIR/hangar
    BENCH=$BIN_DIR/hangar-bench
else
    cargo build --release -p hangar-s3 -p hangar-bench
    HANGAR=$ROOT/target/release/hangar
    BENCH=$ROOT/target/release/hangar-bench
fi
mkdir -p "$OUT"
WORK=$(mktemp -d)
PIDS=()
stop_all() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
}
# KEEP_LOGS=DIR: copy the servers' logs there before the working directory goes.
cleanup() { stop_all; [ -n "${KEEP_LOGS:-}" ] && cp "$WORK"/*.log "$KEEP_LOGS"/; rm -rf "$WORK"; }
trap cleanup EXIT

wait_port() {
    for _ in $(seq 1 300); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "port $1 did not open" >&2; exit 1
}

# Retries a one-object PUT through $WORK/creds.env until it succeeds (60 s at most): the
# cluster then has its layout, key and bucket everywhere the request needs them.
wait_serving() {
    for _ in $(seq 1 120); do
        if "$BENCH" --credentials "$WORK/creds.env" --bucket bench --mix put=1 --size 1KiB \
            --concurrency 1 --count 1 --json >"$WORK/probe.json" 2>"$WORK/probe.err" &&
            python3 -c 'import json,sys; sys.exit(any(r["errors"] for r in json.load(open(sys.argv[1]))["rows"]))' \
                "$WORK/probe.json" 2>/dev/null; then
            return 0
        fi
        sleep 0.5
    done
    echo "the $1 cluster did not accept a PUT within 60 s:" >&2
    cat "$WORK/probe.err" "$WORK/probe.json" >&2
    tail -n 5 "$WORK"/*1.log >&2
    exit 1
}

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
rss_all() { local pid out=""; for pid in "${PIDS[@]}"; do out+="$(rss_kb "$pid") "; done; echo "$out"; }

# The workloads, as `name|hangar-bench arguments`; each has its own bucket.
workload_specs() {
    local specs=(
        "put-1MiB-c8|--mix put=1 --size 1MiB --concurrency 8 --duration $DURATION"
        "get-1MiB-c8|--mix get=1 --size 1MiB --concurrency 8 --keys 200 --duration $DURATION"
        "put-4KiB-c16|--mix put=1 --size 4KiB --concurrency 16 --duration $DURATION"
        "get-4KiB-c16|--mix get=1 --size 4KiB --concurrency 16 --duration $DURATION"
        "put-4KiB-c1|--mix put=1 --size 4KiB --concurrency 1 --duration $DURATION"
        "get-4KiB-c1|--mix get=1 --size 4KiB --concurrency 1 --duration $DURATION")
    # LIST_ONLY=1: only the listing workload (its fill of LIST_KEYS keys is the long part).
    [ "${LIST_ONLY:-0}" = 1 ] && specs=()
    if [ "$LIST_KEYS" -gt 0 ]; then
        specs+=("list-${LIST_KEYS}keys|--mix list=1 --list-all --size 1 --keys $LIST_KEYS --fill-concurrency 32 --concurrency 1 --count 5")
    fi
    if [ "${HOT_KEY:-0}" = 1 ]; then
        specs+=("hot-key-c16|--mix put=3,delete=1 --size 4KiB --keys 1 --concurrency 16 --no-fill --duration $DURATION")
    fi
    if [ -n "${ONLY:-}" ]; then
        local only=() spec
        for spec in "${specs[@]}"; do
            [[ " $ONLY " == *" ${spec%%|*} "* ]] && only+=("$spec")
        done
        [ ${#only[@]} -gt 0 ] || { echo "ONLY names no workload: $ONLY" >&2; exit 2; }
        specs=("${only[@]}")
    fi
    if [ ${#specs[@]} -gt 0 ]; then printf '%s\n' "${specs[@]}"; fi
}

workload_specs >/dev/null # a bad ONLY stops here, before any server starts

# The buckets the cluster needs: `bench` (the probe's), then one per workload.
bucket_names() {
    echo bench
    workload_specs | while IFS= read -r spec; do echo "bench-${spec%%|*}" | tr '[:upper:]' '[:lower:]'; done
}

# Runs the workloads against the endpoint/credentials in $WORK/creds.env, labelled $1.
workloads() {
    local system=$1 name args spec
    while IFS= read -r spec; do
        name=${spec%%|*}
        args=${spec#*|}
        # Each workload has its own bucket, so the listing sees only its own keys.
        # shellcheck disable=SC2086
        "$BENCH" --credentials "$WORK/creds.env" --bucket "bench-${name,,}" $args --json \
            >"$OUT/$system-nodes$NODES-$name.json" </dev/null
        python3 - "$system" "$name" "$OUT/$system-nodes$NODES-$name.json" <<'EOF'
import json, sys
rows = [r for r in json.load(open(sys.argv[3]))["rows"] if r["phase"] != "fill"]
for r in rows:
    print(f"{sys.argv[1]:8} {sys.argv[2]:16} {r['op']:6} {r['ops_per_s']:9.1f} ops/s "
          f"{r['mib_per_s']:8.1f} MiB/s  p50 {r['p50_ms']:8.2f} ms  p99 {r['p99_ms']:8.2f} ms  "
          f"errors {r['errors']}")
EOF
    done < <(workload_specs)
}

# ---- Hangar -------------------------------------------------------------------------------
hangar_one() {
    "$HANGAR" dev --dir "$WORK/hangar" --s3-port 4900 --rpc-port 4901 --admin-port 4903 \
        --web-port 4902 >"$WORK/hangar.out" 2>"$WORK/hangar.log" &
    PIDS+=($!)
    wait_port 4900
    cp "$WORK/hangar/credentials.env" "$WORK/creds.env"
}

# Three `hangar server` processes set up as docs/deploy.md says (loopback ports 49i0..).
hangar_three() {
    local i dir secret=$WORK/hangar-secret ids=()
    openssl rand -hex 32 >"$secret"
    for i in 1 2 3; do
        dir=$WORK/hangar$i
        mkdir -p "$dir"
        cat >"$dir/hangar.toml" <<EOF
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
replication_factor = 3
consistency_mode = "consistent"
rpc_bind_addr = "127.0.0.1:49${i}1"
rpc_public_addr = "127.0.0.1:49${i}1"
rpc_secret_file = "$secret"

[s3_api]
api_bind_addr = "127.0.0.1:49${i}0"
s3_region = "hangar"

[admin]
api_bind_addr = "127.0.0.1:49${i}3"
admin_token = "$(openssl rand -hex 32)"
EOF
        "$HANGAR" server -c "$dir/hangar.toml" >"$WORK/hangar$i.out" 2>"$WORK/hangar$i.log" &
        PIDS+=($!)
    done
    local H=("$HANGAR" -c "$WORK/hangar1/hangar.toml")
    for i in 1 2 3; do
        wait_port "49${i}3"
        ids+=("$("$HANGAR" -c "$WORK/hangar$i/hangar.toml" node id)")
    done
    "${H[@]}" node connect "${ids[1]}" >/dev/null
    "${H[@]}" node connect "${ids[2]}" >/dev/null
    for i in 1 2 3; do
        "${H[@]}" layout assign "${ids[$((i - 1))]%%@*}" --zone "site$i" --capacity 1T >/dev/null
    done
    "${H[@]}" layout apply --version 1 >/dev/null
    local key id secret_key
    key=$("${H[@]}" key create --name bench)
    id=$(awk '/^id/ {print $NF}' <<<"$key")
    secret_key=$(awk '/^secret/ {print $NF}' <<<"$key")
    [ -n "$id" ] && [ -n "$secret_key" ] || { echo "cannot read the key from: $key" >&2; exit 1; }
    printf 'export AWS_ACCESS_KEY_ID=%s\nexport AWS_SECRET_ACCESS_KEY=%s\nexport AWS_REGION=hangar\nexport AWS_ENDPOINT_URL=http://127.0.0.1:4910\n' \
        "$id" "$secret_key" >"$WORK/creds.env"
    for b in $(bucket_names); do
        "${H[@]}" bucket create "$b" >/dev/null
        "${H[@]}" bucket allow "$b" --key "$id" --read --write --owner >/dev/null
    done
}

# ---- Garage -------------------------------------------------------------------------------
garage_config() { # $1 = dir, $2 = node index, $3 = replication factor, $4 = secret
    cat >"$1/garage.toml" <<EOF
metadata_dir = "$1/meta"
data_dir = "$1/data"
db_engine = "lmdb"
metadata_fsync = true
data_fsync = true
replication_factor = $3
rpc_bind_addr = "127.0.0.1:59${2}1"
rpc_public_addr = "127.0.0.1:59${2}1"
rpc_secret = "$4"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:59${2}0"

[admin]
api_bind_addr = "127.0.0.1:59${2}3"
admin_token = "$(openssl rand -hex 32)"
EOF
}

garage_up() { # $1 = nodes
    local n=$1 i dir secret ids=() rf=1
    [ "$n" = 3 ] && rf=3
    secret=$(openssl rand -hex 32)
    for i in $(seq 1 "$n"); do
        dir=$WORK/garage$i
        mkdir -p "$dir"
        garage_config "$dir" "$i" "$rf" "$secret"
        "$GARAGE" -c "$dir/garage.toml" server >"$WORK/garage$i.out" 2>"$WORK/garage$i.log" &
        PIDS+=($!)
    done
    for i in $(seq 1 "$n"); do wait_port "59${i}0"; done
    local G=("$GARAGE" -c "$WORK/garage1/garage.toml")
    for i in $(seq 1 "$n"); do
        ids+=("$("$GARAGE" -c "$WORK/garage$i/garage.toml" node id -q 2>/dev/null)")
    done
    for i in $(seq 2 "$n"); do "${G[@]}" node connect "${ids[$((i - 1))]}" >/dev/null; done
    for i in $(seq 1 "$n"); do
        "${G[@]}" layout assign -z "dc$i" -c 1G "${ids[$((i - 1))]%%@*}" >/dev/null
    done
    "${G[@]}" layout apply --version 1 >/dev/null
    local key id secret_key
    key=$("${G[@]}" key create bench-key)
    id=$(awk '/Key ID/ {print $NF}' <<<"$key")
    secret_key=$(awk '/Secret key/ {print $NF}' <<<"$key")
    for b in $(bucket_names); do
        "${G[@]}" bucket create "$b" >/dev/null
        "${G[@]}" bucket allow --read --write --owner "$b" --key bench-key >/dev/null
    done
    printf 'export AWS_ACCESS_KEY_ID=%s\nexport AWS_SECRET_ACCESS_KEY=%s\nexport AWS_REGION=garage\nexport AWS_ENDPOINT_URL=http://127.0.0.1:5910\n' \
        "$id" "$secret_key" >"$WORK/creds.env"
}

for system in $SYSTEMS; do
    case "$system:$NODES" in
        hangar:1) hangar_one ;;
        hangar:3) hangar_three ;;
        garage:*) garage_up "$NODES" ;;
        *) echo "unknown system $system" >&2; exit 2 ;;
    esac
    wait_serving "$system"
    sleep 1
    echo "$system idle RSS KiB per node: $(rss_all)"
    workloads "$system"
    echo "$system loaded RSS KiB per node: $(rss_all)"
    stop_all
done
python3 "$ROOT/bench/plot-compare.py" "$OUT" "$NODES" "$OUT/compare-nodes$NODES.svg"
echo "plot: $OUT/compare-nodes$NODES.svg"
