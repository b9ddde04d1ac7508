"""hangar-bench against the running server: it does the operations it reports, reports
their failures truthfully, and refuses bad usage with a message that says what to fix."""

import json
import os
import subprocess

import pytest

from s3util import make_client

BENCH = os.environ.get("HANGAR_BENCH_BIN", "")
CREDENTIALS = os.environ.get("HANGAR_CREDENTIALS", "")

pytestmark = pytest.mark.skipif(
    not (BENCH and CREDENTIALS), reason="HANGAR_BENCH_BIN and HANGAR_CREDENTIALS not set"
)


def bench(*args, check=True):
    out = subprocess.run(
        [BENCH, "--credentials", CREDENTIALS, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check:
        assert out.returncode == 0, out.stderr
    return out


def rows(summary):
    return {(r["phase"], r["op"]): r for r in summary["rows"]}


def test_a_put_get_mix_writes_what_it_reports_and_reads_it_back():
    bucket = "bench-pytest-mix"
    out = bench(
        "--bucket", bucket, "--mix", "put=1,get=1", "--size", "5KiB", "--keys", "20",
        "--concurrency", "4", "--count", "200", "--json",
    )
    summary = json.loads(out.stdout)
    r = rows(summary)
    fill, put, get = r[("fill", "put")], r[("load", "put")], r[("load", "get")]
    assert fill["ops"] == 20 and fill["errors"] == 0
    assert put["errors"] == 0 and get["errors"] == 0
    assert put["ops"] + get["ops"] == 200
    assert 0 < get["p50_ms"] <= get["p99_ms"] <= get["max_ms"]
    # Every key of the fill exists, with the size asked for.
    s3 = make_client()
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="bench/")["Contents"]
    assert len(listed) == 20
    assert {o["Size"] for o in listed} == {5 * 1024}
    # Bytes moved: the GETs read 5 KiB each.
    assert get["mib_per_s"] > 0


def test_refused_credentials_stop_the_run_with_the_reason():
    # A wrong secret: every request is refused, and the summary says so and why.
    out = bench(
        "--secret-key", "0" * 40, "--bucket", "bench-pytest-denied", "--count", "5", check=False
    )
    assert out.returncode == 2
    assert "SignatureDoesNotMatch" in out.stderr or "AccessDenied" in out.stderr, out.stderr


def test_bad_usage_says_what_to_fix():
    out = bench("--size", "4XB", check=False)
    assert out.returncode == 2 and "size unit" in out.stderr
    out = bench("--mix", "copy=1", check=False)
    assert out.returncode == 2 and "not an operation" in out.stderr
