"""rclone and s3cmd, two tools people point at any S3 endpoint, against the server.

Each tool copies a small tree (an empty file, a one-byte file, a name with spaces and
non-ASCII, a 300 KiB file and a 12 MiB one sent as a multipart upload), reads it back, syncs
a change (an edit and a deletion), and removes it; what the tool reports is checked against
boto3 and against the bytes on disk. rclone's `check` compares sizes and MD5s (the ETag of a
single PUT; for a multipart upload, the MD5 rclone stores in the object's metadata), and
its server-side copies of a large object go through UploadPartCopy.

rclone comes from Debian's package and s3cmd from the venv (both installed by
tests/run-s3-tests.sh); a missing tool fails the test, it is never skipped.
"""

import hashlib
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest

from s3util import ACCESS_KEY, REGION, SECRET_KEY, delete_objects, make_client, own_bucket

BUCKET = os.environ["HANGAR_TEST_BUCKET"] + "-tools"
MIB = 1024 * 1024
# Small multipart thresholds, so that the 12 MiB file goes up in parts.
RCLONE_PARTS = ["--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M", "--s3-copy-cutoff", "5M"]


@pytest.fixture(scope="module")
def s3():
    return make_client()


@pytest.fixture(scope="module")
def bucket(s3):
    yield from own_bucket(s3, BUCKET, delete_objects)


def make_tree(root: Path) -> dict:
    """Writes the test tree under `root`; returns {relative path: bytes}."""
    rng = random.Random(7)
    files = {
        "empty": b"",
        "a.txt": b"a",
        "name with spaces ü.txt": "héllo wörld\n".encode(),
        "dir/b.bin": rng.randbytes(300 * 1024),
        "dir/sub/c.bin": rng.randbytes(12 * MIB + 123),
    }
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def stored(s3, bucket, prefix) -> dict:
    """{key below prefix: bytes} as boto3 reads them."""
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            out[item["Key"][len(prefix):]] = body
    return out


def run(cmd, env=None):
    """Runs a tool; a failure shows its output."""
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (
        f"{' '.join(cmd)} exited {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    )
    return done.stdout


# ---- rclone ------------------------------------------------------------------------------


def rclone_env(endpoint):
    # Nothing of the AWS SDK's own environment (AWS_CA_BUNDLE, say, which rclone's SDK
    # would load for this plain-HTTP endpoint): the remote below is the whole setup.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        RCLONE_CONFIG="/nonexistent",  # only the remote below, whatever the machine has
        RCLONE_CONFIG_HANGAR_TYPE="s3",
        RCLONE_CONFIG_HANGAR_PROVIDER="Other",
        RCLONE_CONFIG_HANGAR_ACCESS_KEY_ID=ACCESS_KEY,
        RCLONE_CONFIG_HANGAR_SECRET_ACCESS_KEY=SECRET_KEY,
        RCLONE_CONFIG_HANGAR_ENDPOINT=endpoint,
        RCLONE_CONFIG_HANGAR_REGION=REGION,
        RCLONE_CONFIG_HANGAR_FORCE_PATH_STYLE="true",
    )
    return env


@pytest.fixture(scope="module")
def rclone(s3):
    exe = shutil.which("rclone")
    assert exe, "rclone is not installed (tests/run-s3-tests.sh installs Debian's package)"
    env = rclone_env(s3.meta.endpoint_url)

    def call(*args):
        return run([exe, "--retries", "1", "--low-level-retries", "1", *args], env=env)

    return call


def test_rclone_copy_check_sync_and_purge(s3, bucket, rclone, tmp_path):
    src = tmp_path / "src"
    files = make_tree(src)
    remote = f"hangar:{bucket}/rclone"
    rclone("copy", str(src), remote, *RCLONE_PARTS)
    assert stored(s3, bucket, "rclone/") == files
    # Sizes and MD5s, object by object (the multipart one by the MD5 rclone stored).
    rclone("check", str(src), remote)
    listed = rclone("lsf", "-R", "--files-only", remote).split("\n")
    assert sorted(x for x in listed if x) == sorted(files)
    assert rclone("cat", f"{remote}/name with spaces ü.txt").encode() == files[
        "name with spaces ü.txt"
    ]

    # An edit and a deletion, then sync: the remote follows, and check agrees.
    (src / "a.txt").unlink()
    (src / "dir/b.bin").write_bytes(b"edited")
    del files["a.txt"]
    files["dir/b.bin"] = b"edited"
    rclone("sync", str(src), remote, *RCLONE_PARTS)
    rclone("check", str(src), remote)
    assert stored(s3, bucket, "rclone/") == files

    # Server-side copy of the large object: above the copy cut-off, rclone copies it in
    # parts (UploadPartCopy), then the copy is checked like the rest.
    rclone("copyto", f"{remote}/dir/sub/c.bin", f"{remote}-copy/c.bin", *RCLONE_PARTS)
    copied = s3.get_object(Bucket=bucket, Key="rclone-copy/c.bin")["Body"].read()
    assert hashlib.md5(copied).digest() == hashlib.md5(files["dir/sub/c.bin"]).digest()

    rclone("purge", remote)
    rclone("purge", f"{remote}-copy")
    assert stored(s3, bucket, "rclone") == {}


# ---- s3cmd -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3cmd(s3, tmp_path_factory):
    exe = Path(sys.executable).parent / "s3cmd"
    assert exe.exists(), "s3cmd is not in the venv (tests/python/requirements.txt)"
    host = urlparse(s3.meta.endpoint_url).netloc
    cfg = tmp_path_factory.mktemp("s3cmd") / "s3cfg"
    # Path-style addressing: host_bucket without %(bucket)s.
    cfg.write_text(
        "[default]\n"
        f"access_key = {ACCESS_KEY}\n"
        f"secret_key = {SECRET_KEY}\n"
        f"host_base = {host}\n"
        f"host_bucket = {host}\n"
        f"bucket_location = {REGION}\n"
        "use_https = False\n"
        "signature_v2 = False\n"
    )

    def call(*args):
        return run([sys.executable, str(exe), "-c", str(cfg), "--no-progress", *args])

    return call


def test_s3cmd_put_get_sync_and_delete(s3, bucket, s3cmd, tmp_path):
    src = tmp_path / "src"
    files = make_tree(src)
    big = src / "dir/sub/c.bin"
    # A multipart PUT (5 MiB parts) and a GET of it.
    s3cmd("put", "--multipart-chunk-size-mb=5", str(big), f"s3://{bucket}/s3cmd/big")
    out = tmp_path / "big.out"
    s3cmd("get", f"s3://{bucket}/s3cmd/big", str(out))
    assert out.read_bytes() == files["dir/sub/c.bin"]
    head = s3.head_object(Bucket=bucket, Key="s3cmd/big")
    assert head["ContentLength"] == len(files["dir/sub/c.bin"])
    assert head["ETag"].strip('"').endswith("-3"), "three 5 MiB parts"

    # The tree with sync, then an edit and a deletion with --delete-removed.
    s3cmd("sync", "--multipart-chunk-size-mb=5", f"{src}/", f"s3://{bucket}/s3cmd/tree/")
    assert stored(s3, bucket, "s3cmd/tree/") == files
    listing = s3cmd("ls", "--recursive", f"s3://{bucket}/s3cmd/tree/")
    assert len([line for line in listing.splitlines() if line.strip()]) == len(files)
    (src / "a.txt").unlink()
    (src / "dir/b.bin").write_bytes(b"edited")
    del files["a.txt"]
    files["dir/b.bin"] = b"edited"
    s3cmd("sync", "--delete-removed", f"{src}/", f"s3://{bucket}/s3cmd/tree/")
    assert stored(s3, bucket, "s3cmd/tree/") == files

    # A copy on the server, then everything removed.
    s3cmd("cp", f"s3://{bucket}/s3cmd/big", f"s3://{bucket}/s3cmd/big-copy")
    copied = s3.get_object(Bucket=bucket, Key="s3cmd/big-copy")["Body"].read()
    assert copied == files["dir/sub/c.bin"]
    s3cmd("del", "--recursive", "--force", f"s3://{bucket}/s3cmd/")
    assert stored(s3, bucket, "s3cmd/") == {}


def test_s3cmd_makes_and_removes_a_bucket(s3cmd, s3):
    name = BUCKET + "-mb"
    s3cmd("mb", f"s3://{name}")
    buckets = s3cmd("ls")
    assert f"s3://{name}" in buckets
    s3cmd("rb", f"s3://{name}")
    assert f"s3://{name}" not in s3cmd("ls")
