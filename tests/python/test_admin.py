"""The admin API, the CLI verbs over it, and /metrics, against a real `hangar dev`.

What matters to an operator: the API refuses callers without the token; a key created
through it works with a real S3 client and can do exactly what it was allowed; bucket info
counts what is stored; the CLI's --json output is machine-readable; the CLI says clearly
when the node is down; /metrics is valid Prometheus text whose counters move with traffic;
`hangar repair` finds a block file deleted or damaged on disk, and brings it back where
another replica has it (a three-node `hangar dev`) or reports it unrecoverable where none
does (the single node).

Environment (set by tests/run-s3-tests.sh on top of the S3 tests' own):
    HANGAR_ADMIN_URL    e.g. http://127.0.0.1:3903
    HANGAR_ADMIN_TOKEN  the dev config's [admin] admin_token
    HANGAR_BIN          the `hangar` binary
    HANGAR_CONFIG       the dev config file (the CLI reads address and token from it)
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from prometheus_client.parser import text_string_to_metric_families

from s3util import CONFIG as S3_CONFIG
from s3util import error_code, make_client

NEEDED = ("HANGAR_ADMIN_URL", "HANGAR_ADMIN_TOKEN", "HANGAR_BIN", "HANGAR_CONFIG")
if any(not os.environ.get(name) for name in NEEDED):
    pytest.skip(
        "admin tests need " + ", ".join(NEEDED) + " (tests/run-s3-tests.sh sets them)",
        allow_module_level=True,
    )

ADMIN = os.environ["HANGAR_ADMIN_URL"].rstrip("/")
TOKEN = os.environ["HANGAR_ADMIN_TOKEN"]
BIN = os.environ["HANGAR_BIN"]
CONFIG = os.environ["HANGAR_CONFIG"]
PREFIX = os.environ["HANGAR_TEST_BUCKET"][:40]


def admin(method, path, body=None, token=TOKEN):
    """One admin call: (HTTP status, parsed JSON body)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(ADMIN + path, data=data, method=method)
    if token is not None:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def ok(method, path, body=None):
    status, value = admin(method, path, body)
    assert status == 200, (method, path, status, value)
    return value


def new_key(name, allow_create_bucket=False):
    key = ok("POST", "/v1/keys", {"name": name, "allow_create_bucket": allow_create_bucket})
    return key, make_client(key["id"], key["secret"])


def cli(*args):
    return subprocess.run(
        [BIN, "-c", CONFIG, *args], capture_output=True, text=True, timeout=60
    )


def test_missing_or_wrong_token_is_refused():
    status, body = admin("GET", "/v1/status", token=None)
    assert status == 401 and body["code"] == "MissingToken"
    status, body = admin("GET", "/v1/keys", token="not-the-token-at-all")
    assert status == 403 and body["code"] == "WrongToken"
    # Refused before routing: a made-up path does not reveal that it does not exist.
    status, _ = admin("GET", "/v1/no-such-thing", token="not-the-token-at-all")
    assert status == 403
    status, body = admin("GET", "/v1/status")
    assert status == 200 and body["nodes"][0]["connected"] is True


def test_a_created_key_round_trips_with_the_aws_sdk():
    key, s3 = new_key("pytest-roundtrip", allow_create_bucket=True)
    bucket = PREFIX + "-rt"
    s3.create_bucket(Bucket=bucket)
    try:
        s3.put_object(Bucket=bucket, Key="hello.txt", Body=b"hello admin")
        assert s3.get_object(Bucket=bucket, Key="hello.txt")["Body"].read() == b"hello admin"
        # Creating the bucket made the key its owner.
        info = ok("GET", "/v1/keys/" + key["id"])
        assert info["buckets"] == [
            {"bucket": bucket, "read": True, "write": True, "owner": True}
        ]
        s3.delete_object(Bucket=bucket, Key="hello.txt")
    finally:
        s3.delete_bucket(Bucket=bucket)
    ok("DELETE", "/v1/keys/" + key["id"])
    with pytest.raises(ClientError) as e:
        s3.list_buckets()
    assert error_code(e) == "InvalidAccessKeyId"


def test_permissions_are_enforced_until_allowed():
    key, s3 = new_key("pytest-perms")
    bucket = PREFIX + "-perm"
    ok("POST", "/v1/buckets", {"name": bucket})
    try:
        assert s3.list_buckets()["Buckets"] == [], "a key sees only buckets it may use"
        with pytest.raises(ClientError) as e:
            s3.create_bucket(Bucket=PREFIX + "-never")
        assert error_code(e) == "AccessDenied"
        with pytest.raises(ClientError) as e:
            s3.list_objects_v2(Bucket=bucket)
        assert error_code(e) == "AccessDenied"
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket=bucket, Key="k", Body=b"x")
        assert error_code(e) == "AccessDenied"

        ok("POST", f"/v1/buckets/{bucket}/allow", {"key": key["id"], "read": True})
        assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [bucket]
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket=bucket, Key="k", Body=b"x")
        assert error_code(e) == "AccessDenied"

        ok("POST", f"/v1/buckets/{bucket}/allow", {"key": key["id"], "write": True})
        s3.put_object(Bucket=bucket, Key="k", Body=b"x")
        with pytest.raises(ClientError) as e:
            s3.delete_bucket(Bucket=bucket)
        assert error_code(e) == "AccessDenied", "deleting a bucket needs owner"

        ok("POST", f"/v1/buckets/{bucket}/deny", {"key": key["id"], "read": True})
        with pytest.raises(ClientError) as e:
            s3.get_object(Bucket=bucket, Key="k")
        assert error_code(e) == "AccessDenied"
        s3.delete_object(Bucket=bucket, Key="k")
    finally:
        ok("DELETE", "/v1/buckets/" + bucket)
        ok("DELETE", "/v1/keys/" + key["id"])


def test_bucket_info_counts_objects_and_bytes():
    key, s3 = new_key("pytest-count", allow_create_bucket=True)
    bucket = PREFIX + "-count"
    s3.create_bucket(Bucket=bucket)
    sizes = {"a": 10, "b/c": 5000, "d": 0}
    try:
        for name, size in sizes.items():
            s3.put_object(Bucket=bucket, Key=name, Body=b"z" * size)
        info = ok("GET", "/v1/buckets/" + bucket)
        assert info["objects"] == 3 and info["size_bytes"] == sum(sizes.values())
        assert info["keys"][0]["id"] == key["id"] and info["keys"][0]["owner"] is True
        status, body = admin("DELETE", "/v1/buckets/" + bucket)
        assert status == 409 and body["code"] == "BucketNotEmpty"
        for name in sizes:
            s3.delete_object(Bucket=bucket, Key=name)
        assert ok("GET", "/v1/buckets/" + bucket)["objects"] == 0
    finally:
        s3.delete_bucket(Bucket=bucket)
        ok("DELETE", "/v1/keys/" + key["id"])


def quota_refusal(call):
    """Runs an S3 call a quota must refuse; answers the error message."""
    with pytest.raises(ClientError) as e:
        call()
    assert error_code(e) == "QuotaExceeded", e.value.response
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    return e.value.response["Error"]["Message"]


def test_a_quota_refuses_the_write_that_crosses_it_and_admits_after_deletes():
    key, s3 = new_key("pytest-quota", allow_create_bucket=True)
    bucket = PREFIX + "-quota"
    s3.create_bucket(Bucket=bucket)
    try:
        s3.put_object(Bucket=bucket, Key="before", Body=b"a" * 1000)
        run = cli("bucket", "set-quotas", bucket, "--max-size", "3000", "--max-objects", "3")
        assert run.returncode == 0, run.stderr
        assert "max objects:" in run.stdout and "1 objects, 1000 bytes" in run.stdout
        s3.put_object(Bucket=bucket, Key="two", Body=b"b" * 1000)

        message = quota_refusal(
            lambda: s3.put_object(Bucket=bucket, Key="big", Body=b"c" * 1001)
        )
        assert "size quota of 3000 bytes" in message and "holds 2000 bytes" in message
        s3.put_object(Bucket=bucket, Key="three", Body=b"d" * 10)
        source = {"Bucket": bucket, "Key": "three"}
        message = quota_refusal(
            lambda: s3.copy_object(CopySource=source, Bucket=bucket, Key="four")
        )
        assert "object count quota of 3 objects" in message
        upload = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
        part = s3.upload_part(
            Bucket=bucket, Key="mp", UploadId=upload, PartNumber=1, Body=b"e" * 10
        )
        parts = {"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}
        quota_refusal(
            lambda: s3.complete_multipart_upload(
                Bucket=bucket, Key="mp", UploadId=upload, MultipartUpload=parts
            )
        )
        with pytest.raises(ClientError):
            s3.head_object(Bucket=bucket, Key="four")

        # Deletes make room again; the refused upload can be completed then.
        s3.delete_object(Bucket=bucket, Key="two")
        s3.copy_object(CopySource=source, Bucket=bucket, Key="four")
        s3.delete_object(Bucket=bucket, Key="four")
        s3.complete_multipart_upload(
            Bucket=bucket, Key="mp", UploadId=upload, MultipartUpload=parts
        )
        info = ok("GET", "/v1/buckets/" + bucket)
        assert info["objects"] == 3 and info["size_bytes"] == 1020
        counted = (info["quotas"]["counted_objects"], info["quotas"]["counted_size_bytes"])
        assert counted == (3, 1020), "the counters agree with the listing"

        # `none` lifts a limit; a limit not named stays.
        run = cli("--json", "bucket", "set-quotas", bucket, "--max-objects", "none")
        assert run.returncode == 0, run.stderr
        quotas = json.loads(run.stdout)["quotas"]
        assert quotas["max_objects"] is None and quotas["max_size_bytes"] == 3000
        s3.put_object(Bucket=bucket, Key="five", Body=b"f")
        quota_refusal(lambda: s3.put_object(Bucket=bucket, Key="six", Body=b"g" * 2000))
        status, body = admin("POST", f"/v1/buckets/{bucket}/quotas", {"max_size_bytes": -1})
        assert status == 400 and "max_size_bytes" in body["message"]
        ok("POST", f"/v1/buckets/{bucket}/quotas", {"max_size_bytes": None})
        assert ok("GET", "/v1/buckets/" + bucket)["quotas"] is None
        s3.put_object(Bucket=bucket, Key="six", Body=b"g" * 2000)
    finally:
        for name in ("before", "two", "three", "four", "five", "six", "mp"):
            s3.delete_object(Bucket=bucket, Key=name)
        s3.delete_bucket(Bucket=bucket)
        ok("DELETE", "/v1/keys/" + key["id"])


def test_an_alias_names_its_bucket_for_s3_clients_until_removed():
    key, s3 = new_key("pytest-alias", allow_create_bucket=True)
    bucket, alias = PREFIX + "-named", PREFIX + "-alias"
    s3.create_bucket(Bucket=bucket)
    try:
        run = cli("bucket", "alias", bucket, alias)
        assert run.returncode == 0, run.stderr
        assert "aliases:" in run.stdout and alias in run.stdout
        s3.put_object(Bucket=alias, Key="k", Body=b"through the alias")
        assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"through the alias"
        assert [o["Key"] for o in s3.list_objects_v2(Bucket=alias)["Contents"]] == ["k"]
        s3.copy_object(CopySource={"Bucket": alias, "Key": "k"}, Bucket=alias, Key="copy")
        assert s3.head_object(Bucket=bucket, Key="copy")["ContentLength"] == 17
        names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
        assert bucket in names and alias in names, "an alias is listed as a usable name"

        # A name is a bucket or an alias, never both.
        status, body = admin("POST", "/v1/buckets", {"name": alias})
        assert status == 409 and body["code"] == "BucketAlreadyExists", body
        assert bucket in body["message"]
        run = cli("bucket", "alias", "hangar", alias)
        assert run.returncode != 0 and f"unalias {bucket} {alias}" in run.stderr, run.stderr
        status, body = admin("POST", f"/v1/buckets/{bucket}/aliases", {"alias": "hangar"})
        assert status == 409 and "is a bucket" in body["message"], body

        with pytest.raises(ClientError) as e:
            s3.delete_bucket(Bucket=alias)
        assert error_code(e) == "InvalidRequest"
        assert "delete the bucket by its own name" in e.value.response["Error"]["Message"]

        run = cli("bucket", "unalias", bucket, alias)
        assert run.returncode == 0, run.stderr
        with pytest.raises(ClientError) as e:
            s3.get_object(Bucket=alias, Key="k")
        assert error_code(e) == "NoSuchBucket"
        status, body = admin("DELETE", f"/v1/buckets/{bucket}/aliases/{alias}")
        assert status == 404 and body["code"] == "NoSuchAlias", body

        # Deleting the bucket removes its aliases, freeing the names.
        ok("POST", f"/v1/buckets/{bucket}/aliases", {"alias": alias})
        for name in ("k", "copy"):
            s3.delete_object(Bucket=bucket, Key=name)
        s3.delete_bucket(Bucket=bucket)
        listed = ok("GET", "/v1/buckets")["buckets"]
        assert all(alias not in b["aliases"] for b in listed), listed
        s3.create_bucket(Bucket=alias)
        s3.delete_bucket(Bucket=alias)
    finally:
        admin("DELETE", f"/v1/buckets/{bucket}/aliases/{alias}")
        for name in ("k", "copy"):
            try:  # the objects may already be gone
                s3.delete_object(Bucket=bucket, Key=name)
            except ClientError:
                pass
        admin("DELETE", "/v1/buckets/" + bucket)
        ok("DELETE", "/v1/keys/" + key["id"])


def test_cli_json_output_parses_and_tables_align():
    run = cli("--json", "key", "list")
    assert run.returncode == 0, run.stderr
    ids = [k["id"] for k in json.loads(run.stdout)["keys"]]
    assert os.environ["AWS_ACCESS_KEY_ID"] in ids
    run = cli("--json", "status")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["layout_version"] >= 1
    run = cli("bucket", "info", "hangar")
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[0].startswith("name:")
    run = cli("worker", "list")
    assert run.returncode == 0 and run.stdout.startswith("WORKER"), run.stderr


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_says_what_to_do_when_the_node_is_down(tmp_path):
    port = free_port()
    config = tmp_path / "down.toml"
    config.write_text(
        'metadata_dir = "meta"\ndata_dir = "data"\n'
        f'rpc_secret = "{"ab" * 32}"\n'
        f'[admin]\napi_bind_addr = "127.0.0.1:{port}"\nadmin_token = "{"t" * 32}"\n'
    )
    run = subprocess.run(
        [BIN, "-c", str(config), "status"], capture_output=True, text=True, timeout=60
    )
    assert run.returncode != 0
    err = run.stderr
    assert f"cannot reach the admin API at http://127.0.0.1:{port}: connection refused" in err
    assert "is `hangar server` running?" in err and str(config) in err, err


def test_cli_names_the_token_setting_when_refused(tmp_path):
    port = ADMIN.rsplit(":", 1)[1]
    config = tmp_path / "wrong-token.toml"
    config.write_text(
        'metadata_dir = "meta"\ndata_dir = "data"\n'
        f'rpc_secret = "{"ab" * 32}"\n'
        f'[admin]\napi_bind_addr = "127.0.0.1:{port}"\nadmin_token = "{"w" * 32}"\n'
    )
    # HANGAR_ADMIN_TOKEN would override the file's token.
    env = {k: v for k, v in os.environ.items() if k != "HANGAR_ADMIN_TOKEN"}
    run = subprocess.run(
        [BIN, "-c", str(config), "key", "list"], capture_output=True, text=True, timeout=60, env=env
    )
    assert run.returncode != 0
    assert "refused the request (WrongToken" in run.stderr, run.stderr
    assert f"check [admin] admin_token in {config}" in run.stderr, run.stderr


# Every family issue #5 asks for (point 3), as the Prometheus parser names them (counters
# without `_total`): S3 requests, errors, latency and bytes per operation; RPC calls, errors,
# timeouts, latency per peer; block bytes read/written, resync queue, scrub progress; table
# sync items and repair passes; disk free; cluster health.
FAMILIES = {
    "hangar_s3_requests", "hangar_s3_errors", "hangar_s3_request_duration_seconds",
    "hangar_s3_body_bytes_received", "hangar_s3_body_bytes_sent",
    "hangar_rpc_calls", "hangar_rpc_errors", "hangar_rpc_timeouts",
    "hangar_rpc_duration_seconds",
    "hangar_block_bytes_read", "hangar_block_bytes_written",
    "hangar_block_resync_queue_length", "hangar_block_scrub_progress_ratio",
    "hangar_block_corrupt_copies", "hangar_block_missing_copies",
    "hangar_table_sync_items", "hangar_repair_running", "hangar_repair_passes",
    "hangar_repair_items_checked", "hangar_repair_items_repaired",
    "hangar_repair_items_unrecoverable", "hangar_repair_errors",
    "hangar_disk_free_bytes", "hangar_disk_total_bytes",
    "hangar_cluster_healthy", "hangar_cluster_nodes", "hangar_cluster_nodes_connected",
    "hangar_partitions_quorum_ok", "hangar_partitions_all_ok",
    "hangar_layout_version", "hangar_layout_in_transition", "hangar_engine_events",
}


def scrape(admin_url=ADMIN):
    """/metrics parsed: ({(sample name, sorted labels): value}, {family names})."""
    with urllib.request.urlopen(admin_url + "/metrics", timeout=30) as resp:
        text = resp.read().decode()
    samples, families = {}, set()
    for family in text_string_to_metric_families(text):
        families.add(family.name)
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            samples[key] = s.value
    return samples, families


def total(samples, name, **labels):
    """Sum of `name` over the series whose labels include `labels` (e.g. every peer)."""
    want = set(labels.items())
    return sum(v for (n, l), v in samples.items() if n == name and want <= set(l))


def test_metrics_parse_and_move_with_traffic():
    s3 = make_client()
    op = (("operation", "ListObjectsV2"),)
    before, _ = scrape()
    for _ in range(3):
        s3.list_objects_v2(Bucket="hangar", MaxKeys=1)
    key = "metrics/" + str(time.time())
    # Above the 4 KiB inline limit: the body is a block, written and read on disk.
    s3.put_object(Bucket="hangar", Key=key, Body=b"m" * 5000)
    assert len(s3.get_object(Bucket="hangar", Key=key)["Body"].read()) == 5000
    s3.delete_object(Bucket="hangar", Key=key)
    with pytest.raises(ClientError):
        s3.get_object(Bucket="hangar", Key="no/such/key/" + str(time.time()))
    repair(CONFIG, "scrub")
    repair(CONFIG, "tables")
    after, families = scrape()
    assert FAMILIES <= families, FAMILIES - families
    requests = "hangar_s3_requests_total"
    assert after[(requests, op)] - before.get((requests, op), 0) >= 3
    count = "hangar_s3_request_duration_seconds_count"
    assert after[(count, op)] - before.get((count, op), 0) >= 3
    inf = ("hangar_s3_request_duration_seconds_bucket", (("le", "+Inf"), ("operation", "ListObjectsV2")))
    assert after[inf] == after[(count, op)]
    errors = ("hangar_s3_errors_total", (("operation", "GetObject"), ("status", "404")))
    assert after[errors] - before.get(errors, 0) >= 1
    received = ("hangar_s3_body_bytes_received_total", (("operation", "PutObject"),))
    assert after[received] - before.get(received, 0) >= 1000
    sent = ("hangar_s3_body_bytes_sent_total", (("operation", "GetObject"),))
    assert after[sent] - before.get(sent, 0) >= 1000
    assert after[("hangar_layout_version", ())] >= 1
    assert after[("hangar_cluster_nodes_connected", ())] >= 1
    assert after[("hangar_cluster_healthy", ())] == 1
    assert total(after, "hangar_disk_free_bytes", dir="data") > 0
    # Block I/O and the repair passes moved; a single node has no peers to call or sync
    # with (the three-node test below checks those families move).
    for name, labels in [
        ("hangar_block_bytes_written_total", {}),
        ("hangar_block_bytes_read_total", {}),
        ("hangar_repair_items_checked_total", {"op": "scrub"}),
        ("hangar_repair_passes_total", {"op": "scrub"}),
        ("hangar_repair_passes_total", {"op": "tables"}),
    ]:
        assert total(after, name, **labels) > total(before, name, **labels), (name, labels)
    assert after[("hangar_block_scrub_progress_ratio", ())] == 1


def block_files(root):
    """Every block file under a node directory (blocks/<2 hex>/<2 hex>/<64 hex>)."""
    return {p for p in Path(root).rglob("blocks/*/*/*") if len(p.name) == 64}


def repair(config, what):
    """`hangar repair WHAT --yes --wait` on the node of `config`: its progress as JSON."""
    # The token comes from `config` (HANGAR_ADMIN_TOKEN is the single-node server's).
    env = {k: v for k, v in os.environ.items() if k != "HANGAR_ADMIN_TOKEN"}
    run = subprocess.run(
        [BIN, "-c", str(config), "--json", "repair", what, "--yes", "--wait"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert run.returncode == 0, run.stderr
    progress = json.loads(run.stdout)
    assert progress["what"] == what and progress["state"] == "done", progress
    return progress


def test_repair_reports_blocks_a_single_node_cannot_recover():
    s3 = make_client()
    root = Path(CONFIG).parent
    before = block_files(root)
    keys = [f"repair/{time.time()}/{i}" for i in range(2)]
    for key in keys:
        s3.put_object(Bucket="hangar", Key=key, Body=os.urandom(5000))
    lost, rotten = sorted(block_files(root) - before)
    try:
        lost.unlink()
        rotten.write_bytes(b"\x01bit rot")
        run = cli("repair", "blocks")
        assert run.returncode != 0 and "hangar repair blocks --yes" in run.stderr, run.stderr

        resync = repair(CONFIG, "blocks")
        # The rotten file exists (resync only looks for missing files); the lost one has no
        # other replica to come from.
        assert (resync["unrecoverable"], resync["repaired"], resync["errors"]) == (1, 0, 0)
        assert resync["launched_by"] == "operator" and resync["checked"] >= 2
        assert resync["finished_ms"] >= resync["started_ms"]
        assert not lost.exists()

        scrub = repair(CONFIG, "scrub")
        assert (scrub["unrecoverable"], scrub["repaired"], scrub["errors"]) == (1, 0, 0), scrub
        assert not rotten.exists(), "a copy that fails its hash is never kept or served"
        workers = json.loads(cli("--json", "worker", "list").stdout)["workers"]
        shown = {w["name"]: w["repair"] for w in workers}
        assert shown["block-scrub"]["state"] == "done" and shown["block-scrub"]["unrecoverable"] == 1
        table = cli("worker", "list").stdout
        assert "PASS" in table.splitlines()[0] and "LOST" in table.splitlines()[0], table
        # The data is gone: an error status (the first block is read before the status
        # line is sent; each of these objects is one block), never other bytes.
        for key in keys:
            with pytest.raises(ClientError) as err:
                s3.get_object(Bucket="hangar", Key=key)["Body"].read()
            assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] >= 500, err.value
    finally:
        for key in keys:
            s3.delete_object(Bucket="hangar", Key=key)


DEV_PORTS = [p for i in range(3) for p in (3900 + 10 * i, 3901 + 10 * i, 3902 + 10 * i, 3903 + 10 * i)]


@pytest.fixture(scope="module")
def dev_cluster():
    """`hangar dev --nodes 3` in a temporary directory: (directory, a boto3 client of node 1).
    Skipped when its fixed ports are busy."""
    for port in DEV_PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                pytest.skip(f"port {port} is busy (hangar dev --nodes uses 3900..3923)")
    work = Path(tempfile.mkdtemp(prefix="hangar-repair-"))
    log = open(work / "dev.log", "wb")
    proc = subprocess.Popen(
        [BIN, "dev", "--nodes", "3", "--dir", str(work / "d")],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        lines = []
        deadline = time.time() + 60
        while not any(line.startswith("# node3:") for line in lines):
            assert time.time() < deadline and proc.poll() is None, (work / "dev.log").read_text()
            lines.append(proc.stdout.readline())
        exports = {}
        for line in lines:
            if line.startswith("export "):
                name, value = line[len("export ") :].strip().split("=", 1)
                exports[name] = value
        s3 = boto3.client(
            "s3",
            endpoint_url=exports["AWS_ENDPOINT_URL"],
            aws_access_key_id=exports["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=exports["AWS_SECRET_ACCESS_KEY"],
            region_name=exports["AWS_REGION"],
            config=S3_CONFIG,
        )
        yield work / "d", s3
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


def test_repair_brings_back_a_deleted_and_a_corrupted_block_from_peers(dev_cluster):
    root, s3 = dev_cluster
    node2, node3 = root / "node2", root / "node3"
    before2, before3 = block_files(node2), block_files(node3)
    body = os.urandom(5000)
    s3.put_object(Bucket="hangar", Key="repair/one", Body=body)
    # RF 3: every node holds every block; the third copy may still be on its way.
    deadline = time.time() + 30
    while not (block_files(node2) - before2 and block_files(node3) - before3):
        assert time.time() < deadline, "the block did not reach nodes 2 and 3"
        time.sleep(0.2)
    (lost,) = block_files(node2) - before2
    (rotten,) = block_files(node3) - before3
    good = lost.read_bytes()
    lost.unlink()
    rotten.write_bytes(b"\x01bit rot")

    resync = repair(node2 / "hangar.toml", "blocks")
    assert (resync["repaired"], resync["unrecoverable"], resync["errors"]) == (1, 0, 0), resync
    assert lost.read_bytes() == good, "resync fetched the block back from a peer"
    scrub = repair(node3 / "hangar.toml", "scrub")
    assert (scrub["repaired"], scrub["unrecoverable"], scrub["errors"]) == (1, 0, 0), scrub
    assert rotten.read_bytes() == good, "scrub replaced the corrupt copy"
    tables = repair(node3 / "hangar.toml", "tables")
    # Every table's 256 partitions compared with each of the two peers.
    assert tables["checked"] >= 2 * 256 and tables["errors"] == 0, tables


def test_every_metric_family_moves_on_a_three_node_cluster(dev_cluster):
    root, s3 = dev_cluster
    node1 = "http://127.0.0.1:3903"  # hangar dev --nodes: node 1's admin port, no metrics token
    before, _ = scrape(node1)
    for i in range(3):
        body = os.urandom(200_000)
        s3.put_object(Bucket="hangar", Key=f"metrics/{i}", Body=body)
        assert s3.get_object(Bucket="hangar", Key=f"metrics/{i}")["Body"].read() == body
    with pytest.raises(ClientError):
        s3.get_object(Bucket="hangar", Key="metrics/none")
    config1 = root / "node1" / "hangar.toml"
    repair(config1, "tables")
    repair(config1, "blocks")
    repair(config1, "scrub")
    # Node 2's table sync asks node 1 for digests: RPCs node 1 serves.
    repair(root / "node2" / "hangar.toml", "tables")
    after, families = scrape(node1)
    assert FAMILIES <= families, FAMILIES - families
    moved = [
        ("hangar_s3_requests_total", {"operation": "PutObject"}),
        ("hangar_s3_errors_total", {"operation": "GetObject", "status": "404"}),
        ("hangar_s3_request_duration_seconds_count", {"operation": "GetObject"}),
        ("hangar_s3_body_bytes_received_total", {}),
        ("hangar_s3_body_bytes_sent_total", {}),
        ("hangar_rpc_calls_total", {}),
        ("hangar_rpc_duration_seconds_count", {}),
        ("hangar_block_bytes_written_total", {}),
        ("hangar_block_bytes_read_total", {}),
        ("hangar_table_sync_items_total", {"result": "compared"}),
        ("hangar_repair_items_checked_total", {"op": "blocks"}),
        ("hangar_repair_items_checked_total", {"op": "scrub"}),
        ("hangar_repair_passes_total", {"op": "tables"}),
        ("hangar_engine_events_total", {"kind": "rpc.table"}),
    ]
    for name, labels in moved:
        assert total(after, name, **labels) > total(before, name, **labels), (name, labels)
    # Two peers, each with its own series.
    peers = {dict(l)["peer"] for (n, l) in after if n == "hangar_rpc_calls_total"}
    assert len(peers) == 2, peers
    assert after[("hangar_cluster_nodes_connected", ())] == 3
    assert after[("hangar_cluster_healthy", ())] == 1
    assert after[("hangar_partitions_all_ok", ())] == 256
    assert after[("hangar_block_scrub_progress_ratio", ())] == 1
    assert after[("hangar_block_resync_queue_length", ())] == 0
