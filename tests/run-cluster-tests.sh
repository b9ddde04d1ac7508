#!/usr/bin/env bash
# Multi-node acceptance: three `hangar server` processes on loopback, operated with the CLI
# only, following docs/deploy.md literally; then a dead node is replaced
# (tests/python/test_cluster.py says what each test checks).
#
#   tests/run-cluster-tests.sh [pytest args]      HANGAR_PROFILE=release for a release build
#
# Uses the same virtualenv as tests/run-s3-tests.sh (.venv, tests/python/requirements.txt).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
die() { printf 'run-cluster-tests: FAILED: %s\n' "$*" >&2; exit 1; }

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

# The doc's steps call `hangar`, `aws` and `openssl` by name.
# A fresh Debian machine may lack the openssl CLI (venv.sh brought in debian.sh).
need_command openssl openssl
export PATH="$VENV/bin:$PATH"
export HANGAR_CLUSTER_TESTS=1 HANGAR_BIN=$BIN
# --noconftest: the single-node suite's conftest wants a running `hangar dev`.
"$VENV/bin/python" -m pytest "$ROOT/tests/python/test_cluster.py" --noconftest -q -x "$@" \
    || die "cluster tests (set HANGAR_KEEP_CLUSTER=1 to keep the nodes' directories and logs)"
printf 'run-cluster-tests: all passed\n'
