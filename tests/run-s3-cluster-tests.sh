#!/usr/bin/env bash
# The real-client S3 suite (tests/python/test_s3_*.py) through a three-node cluster started
# from three config files (issue #4's acceptance):
#   1. `hangar dev --nodes 3` once, to write DIR/node{1,2,3}/hangar.toml and set up the
#      layout (RF 3, three zones), the key and the bucket — then it is stopped;
#   2. three `hangar -c DIR/nodeI/hangar.toml server` processes;
#   3. pytest, every new S3 client going to the next node (HANGAR_ENDPOINTS, s3util.py), and
#      website requests too (HANGAR_WEB_ENDPOINTS, test_s3_website.py);
#   4. a whole-cluster crash (every node SIGKILLed and restarted at once): acknowledged
#      objects come back and conditional writes still hold.
#
#   tests/run-s3-cluster-tests.sh [pytest args]     HANGAR_PROFILE=release for a release build
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
say() { printf '== %s\n' "$*" >&2; }
die() { printf 'run-s3-cluster-tests: FAILED: %s\n' "$*" >&2; exit 1; }

PROFILE=${HANGAR_PROFILE:-debug}
case "$PROFILE" in
    debug) cargo build -p hangar-s3 ;;
    release) cargo build --release -p hangar-s3 ;;
    *) die "HANGAR_PROFILE must be debug or release, not $PROFILE" ;;
esac
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/$PROFILE/hangar
[ -x "$BIN" ] || die "no binary at $BIN"

# shellcheck source=tests/lib/venv.sh
source "$ROOT/tests/lib/venv.sh"
export PATH="$VENV/bin:$PATH"

WORK=$(mktemp -d)
DIR=$WORK/cluster
PIDS=()
cleanup() {
    local status=$?
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ "$status" -ne 0 ]; then
        for log in "$WORK"/*.log; do
            [ -f "$log" ] && { echo "---- $log (last 30 lines)" >&2; tail -n 30 "$log" >&2; }
        done
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The S3 endpoint of node I, from its config file (`[s3_api] api_bind_addr`).
endpoint() {
    local addr
    addr=$(sed -n '/^\[s3_api\]/,/^\[/s/^api_bind_addr = "\(.*\)"$/\1/p' "$DIR/node$1/hangar.toml")
    [ -n "$addr" ] || die "no [s3_api] api_bind_addr in $DIR/node$1/hangar.toml"
    echo "http://$addr"
}

# The website endpoint of node I (`[s3_web] bind_addr`).
web_endpoint() {
    local addr
    addr=$(sed -n '/^\[s3_web\]/,/^\[/s/^bind_addr = "\(.*\)"$/\1/p' "$DIR/node$1/hangar.toml")
    [ -n "$addr" ] || die "no [s3_web] bind_addr in $DIR/node$1/hangar.toml"
    echo "http://$addr"
}

# Waits (at most 60 s) until every endpoint lists the bucket with the test key: each node
# then has its role, the key and the bucket.
wait_serving() {
    "$PY" - "$@" <<'EOF' || die "the cluster did not serve the bucket through every node in 60 s"
import os, sys, time
import boto3
from botocore.config import Config
deadline = time.time() + 60
for url in sys.argv[1:]:
    s3 = boto3.client("s3", endpoint_url=url, config=Config(retries={"max_attempts": 1}))
    while True:
        try:
            s3.head_bucket(Bucket="hangar")
            break
        except Exception as e:
            if time.time() > deadline:
                sys.exit(f"{url}: {e}")
            time.sleep(0.2)
EOF
}

say "hangar dev --nodes 3: configs, layout, key and bucket"
"$BIN" dev --nodes 3 --dir "$DIR" >"$WORK/dev.out" 2>"$WORK/dev.log" &
PIDS+=($!)
for _ in $(seq 1 300); do
    [ -f "$DIR/credentials.env" ] && [ -f "$DIR/node3/hangar.toml" ] && break
    kill -0 "${PIDS[0]}" 2>/dev/null || die "hangar dev --nodes 3 exited during startup"
    sleep 0.1
done
# shellcheck source=/dev/null
source "$DIR/credentials.env"
ENDPOINTS=("$(endpoint 1)" "$(endpoint 2)" "$(endpoint 3)")
wait_serving "${ENDPOINTS[@]}"
kill "${PIDS[0]}"
wait "${PIDS[0]}" 2>/dev/null || true
PIDS=()

say "three hangar server processes, one config file each"
for i in 1 2 3; do
    "$BIN" -c "$DIR/node$i/hangar.toml" server >"$WORK/node$i.out" 2>"$WORK/node$i.log" &
    PIDS+=($!)
done
wait_serving "${ENDPOINTS[@]}"

export HANGAR_ENDPOINTS
HANGAR_ENDPOINTS=$(IFS=,; echo "${ENDPOINTS[*]}")
WEB_ENDPOINTS=("$(web_endpoint 1)" "$(web_endpoint 2)" "$(web_endpoint 3)")
export HANGAR_WEB_ENDPOINTS HANGAR_WEB_ROOT_DOMAIN=localhost
HANGAR_WEB_ENDPOINTS=$(IFS=,; echo "${WEB_ENDPOINTS[*]}")
export HANGAR_TEST_BUCKET="pytest-cluster-$(date +%s)-$RANDOM"
say "pytest through ${HANGAR_ENDPOINTS}"
"$PY" -m pytest "$ROOT"/tests/python/test_s3_*.py -q "$@" || die "S3 suite through the cluster"
for i in 1 2 3; do
    kill -0 "${PIDS[$((i - 1))]}" 2>/dev/null || die "node $i died during the suite"
done

# A power cut of the whole cluster, as near as processes get: every node SIGKILLed at
# once, then restarted at once. Every acknowledged write must come back, and the keys'
# consensus must still refuse what it refused before: each restarted acceptor counts
# every key as promised at its promise ceiling (docs/data-model.md, "The promise
# ceiling"), so a write within a second of the crash is refused once and outbids it.
crash_phase() { # before|after
    "$PY" - "$1" "$HANGAR_TEST_BUCKET-crash" "${ENDPOINTS[@]}" <<'EOF'
import sys
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
phase, bucket, urls = sys.argv[1], sys.argv[2], sys.argv[3:]
clients = [boto3.client("s3", endpoint_url=u, config=Config(retries={"max_attempts": 1}))
           for u in urls]
keys = [f"crash/k{i}" for i in range(30)]

def status(call):
    try:
        call()
        return 200
    except ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"]

if phase == "before":
    clients[0].create_bucket(Bucket=bucket)
    for i, key in enumerate(keys):
        clients[i % 3].put_object(Bucket=bucket, Key=key, Body=f"v{i}".encode())
    clients[0].put_object(Bucket=bucket, Key="crash/created", Body=b"c", IfNoneMatch="*")
    sys.exit(0)
for i, key in enumerate(keys):
    got = clients[(i + 1) % 3].get_object(Bucket=bucket, Key=key)["Body"].read()
    assert got == f"v{i}".encode(), f"{key}: acknowledged v{i} before the crash, read {got!r}"
again = status(lambda: clients[1].put_object(
    Bucket=bucket, Key="crash/created", Body=b"again", IfNoneMatch="*"))
assert again == 412, f"If-None-Match on a key created before the crash answered {again}"
etag = clients[2].head_object(Bucket=bucket, Key=keys[0])["ETag"]
clients[0].put_object(Bucket=bucket, Key=keys[0], Body=b"swapped", IfMatch=etag)
stale = status(lambda: clients[1].put_object(
    Bucket=bucket, Key=keys[0], Body=b"stale", IfMatch=etag))
assert stale == 412, f"If-Match with a replaced ETag answered {stale}"
got = clients[2].get_object(Bucket=bucket, Key=keys[0])["Body"].read()
assert got == b"swapped", got
print(f"after the crash: {len(keys)} acknowledged objects read back, conditions hold")
EOF
}
say "whole-cluster crash: SIGKILL every node, restart them at once"
crash_phase before || die "writes before the crash"
for pid in "${PIDS[@]}"; do kill -9 "$pid"; done
for pid in "${PIDS[@]}"; do { wait "$pid"; } 2>/dev/null || true; done
PIDS=()
for i in 1 2 3; do
    "$BIN" -c "$DIR/node$i/hangar.toml" server >>"$WORK/node$i.out" 2>>"$WORK/node$i.log" &
    PIDS+=($!)
done
wait_serving "${ENDPOINTS[@]}"
crash_phase after || die "after the whole-cluster crash"
printf 'run-s3-cluster-tests: all passed\n'
