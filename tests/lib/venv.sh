# Sourced by the test scripts: makes $ROOT/.venv with the pinned Python clients
# (tests/python/requirements.txt) and sets VENV and PY. On a fresh Debian machine,
# `python3 -m venv` needs the python3-venv package: it is installed when missing.
# shellcheck source=tests/lib/debian.sh
source "$ROOT/tests/lib/debian.sh"
VENV=$ROOT/.venv
REQ=$ROOT/tests/python/requirements.txt
if [ ! -x "$VENV/bin/python" ]; then
    if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
        rm -rf "$VENV"
        install_debian_package python3-venv "python3 -m venv fails without it"
        python3 -m venv "$VENV"
    fi
fi
# Reinstall only when the pinned versions change.
STAMP=$VENV/.hangar-requirements.sha256
WANT=$(sha256sum "$REQ" | cut -d' ' -f1)
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ]; then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ"
    echo "$WANT" >"$STAMP"
fi
PY=$VENV/bin/python
# rclone (test_s3_other_clients.py) is Debian's package.
need_command rclone rclone
