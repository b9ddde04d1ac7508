#!/usr/bin/env bash
# Real S3 clients against a real `hangar` binary:
#   1. build `hangar`, prepare .venv with the pinned clients (tests/python/requirements.txt);
#   2. start `hangar dev` on a fresh directory and free ports, run tests/python with pytest;
#   3. restart checks: an object written before a stop must be there after a restart, with
#      the same credentials — first `hangar dev` reusing its directory (no port flags: they
#      must come back from DIR/hangar.toml), then `hangar server -c DIR/hangar.toml`.
# Exits non-zero on any failure; the server is stopped on every exit path.
#
# Environment: HANGAR_PROFILE=release builds with --release (default: debug).
# Extra arguments are passed to pytest (e.g. -k presigned).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'run-s3-tests: FAILED: %s\n' "$*" >&2; exit 1; }

# ---- build --------------------------------------------------------------------------------
PROFILE=${HANGAR_PROFILE:-debug}
case "$PROFILE" in
    debug) cargo build -p hangar-s3 -p hangar-bench ;;
    release) cargo build --release -p hangar-s3 -p hangar-bench ;;
    *) die "HANGAR_PROFILE must be debug or release, not $PROFILE" ;;
esac
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/$PROFILE/hangar
[ -x "$BIN" ] || die "no binary at $BIN"

# ---- python clients ---------------------------------------------------------------------
# shellcheck source=tests/lib/venv.sh
source "$ROOT/tests/lib/venv.sh"
AWS=$VENV/bin/aws

# ---- server lifecycle ---------------------------------------------------------------------
WORK=$(mktemp -d)
DIR=$WORK/dev
SERVER_PID=
RUN=0

stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    local pid=$SERVER_PID status=0
    SERVER_PID=
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" || status=$?
    return "$status"
}

cleanup() {
    local status=$?
    stop_server || true
    if [ "$status" -ne 0 ]; then
        for log in "$WORK"/server.*.log; do
            [ -f "$log" ] && { echo "---- $log (last 40 lines)" >&2; tail -n 40 "$log" >&2; }
        done
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# Polls the S3 port (at most 300 tries, 0.1 s apart); fails early if the server died.
wait_for_port() {
    local port=$1 try
    for try in $(seq 1 300); do
        kill -0 "$SERVER_PID" 2>/dev/null || die "server exited during startup"
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    die "S3 port $port did not open within 30 s"
}

# Starts `hangar ARGS...` in the background, logs in $WORK/server.N.log.
start_server() {
    RUN=$((RUN + 1))
    say "starting: hangar $*"
    "$BIN" "$@" >"$WORK/stdout.$RUN" 2>"$WORK/server.$RUN.log" &
    SERVER_PID=$!
    wait_for_port "$S3_PORT"
}

S3_PORT=$(free_port)
RPC_PORT=$(free_port)
while [ "$RPC_PORT" = "$S3_PORT" ]; do RPC_PORT=$(free_port); done
ADMIN_PORT=$(free_port)
while [ "$ADMIN_PORT" = "$S3_PORT" ] || [ "$ADMIN_PORT" = "$RPC_PORT" ]; do ADMIN_PORT=$(free_port); done
WEB_PORT=$(free_port)
while [ "$WEB_PORT" = "$S3_PORT" ] || [ "$WEB_PORT" = "$RPC_PORT" ] || [ "$WEB_PORT" = "$ADMIN_PORT" ]; do
    WEB_PORT=$(free_port)
done

# ---- 1. first start + pytest ----------------------------------------------------------------
start_server dev --dir "$DIR" --s3-port "$S3_PORT" --rpc-port "$RPC_PORT" --admin-port "$ADMIN_PORT" \
    --web-port "$WEB_PORT"
[ -f "$DIR/credentials.env" ] || die "hangar dev wrote no credentials.env"
# shellcheck source=/dev/null
source "$DIR/credentials.env"
[ "$AWS_ENDPOINT_URL" = "http://127.0.0.1:$S3_PORT" ] || die "endpoint is $AWS_ENDPOINT_URL"
# The exports printed on stdout must be the ones in credentials.env (flushed before serving).
grep -q "^export AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID\$" "$WORK/stdout.$RUN" ||
    die "hangar dev did not print the credentials on stdout"
CREDENTIALS_BEFORE=$(cat "$DIR/credentials.env")

export HANGAR_TEST_BUCKET="pytest-$(date +%s)-$RANDOM"
# For test_admin.py: the admin API and the CLI, configured by the dev config file.
export HANGAR_BIN=$BIN HANGAR_CONFIG=$DIR/hangar.toml HANGAR_ADMIN_URL=http://127.0.0.1:$ADMIN_PORT
# For test_s3_website.py: the static website endpoint (`[s3_web]`, Host: <bucket>.localhost).
export HANGAR_WEB_ENDPOINTS=http://127.0.0.1:$WEB_PORT HANGAR_WEB_ROOT_DOMAIN=localhost
# For test_bench.py: the load generator, against this server.
export HANGAR_BENCH_BIN=$TARGET_DIR/$PROFILE/hangar-bench HANGAR_CREDENTIALS=$DIR/credentials.env
HANGAR_ADMIN_TOKEN=$(sed -n 's/^admin_token = "\(.*\)"$/\1/p' "$DIR/hangar.toml")
[ -n "$HANGAR_ADMIN_TOKEN" ] || die "hangar dev wrote no admin_token"
export HANGAR_ADMIN_TOKEN
say "pytest (bucket $HANGAR_TEST_BUCKET)"
"$PY" -m pytest "$ROOT/tests/python" -q "$@"

# ---- 2. restart checks ----------------------------------------------------------------------
# The aws CLI, isolated from ~/.aws, path-style (the server has no wildcard DNS).
export AWS_CONFIG_FILE=$WORK/aws-config AWS_SHARED_CREDENTIALS_FILE=$WORK/aws-credentials
printf '[default]\ns3 =\n    addressing_style = path\n' >"$AWS_CONFIG_FILE"
export AWS_MAX_ATTEMPTS=1

head -c 300000 /dev/urandom >"$WORK/before.bin"
"$AWS" s3 cp --quiet "$WORK/before.bin" "s3://hangar/restart/check.bin" ||
    die "cannot write to the dev bucket"

check_survivor() {
    local what=$1
    rm -f "$WORK/after.bin"
    "$AWS" s3 cp --quiet "s3://hangar/restart/check.bin" "$WORK/after.bin" ||
        die "$what: object written before the restart cannot be read"
    cmp -s "$WORK/before.bin" "$WORK/after.bin" || die "$what: object changed across restart"
    say "$what: object and credentials survived"
}

say "stopping the server (SIGTERM)"
stop_server || die "server did not exit cleanly on SIGTERM"
# No port flags: the ports must come back from DIR/hangar.toml.
start_server dev --dir "$DIR"
[ "$(cat "$DIR/credentials.env")" = "$CREDENTIALS_BEFORE" ] ||
    die "credentials.env changed across a restart"
check_survivor "hangar dev restart"

stop_server || die "server did not exit cleanly on SIGTERM"
start_server server -c "$DIR/hangar.toml"
check_survivor "hangar server -c DIR/hangar.toml"
# The README's promise: every CLI verb works with -c on the dev config (here under `server`).
"$BIN" -c "$DIR/hangar.toml" status >/dev/null || die "hangar -c DIR/hangar.toml status failed"
stop_server || die "server did not exit cleanly on SIGTERM"

say "all S3 checks passed"
