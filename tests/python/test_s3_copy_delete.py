"""Real-client tests of server-side copies (CopyObject, UploadPartCopy), batch deletes
(DeleteObjects) and virtual-host-style addressing.

Why: `aws s3 cp s3://a/x s3://b/y`, rclone's server-side moves, `aws s3 rm --recursive` and
boto3's `delete_objects` are what users run every day, and SDKs check what the server
answers (ETags, XML shapes, the Content-MD5 / checksum of a DeleteObjects body) against what
they computed or sent. Only real clients show that both sides agree.

Configuration: the same environment as test_s3_basic.py (see conftest.py); the tests use
their own buckets, HANGAR_TEST_BUCKET + "-copy" and + "-copy2".
Run: tests/run-s3-tests.sh -k copy_delete
"""

import datetime
import hashlib
import os
import subprocess
import sys

import pytest
from botocore.exceptions import ClientError

from s3util import ENDPOINT, REGION, error_code, make_client, own_bucket

BUCKET = os.environ["HANGAR_TEST_BUCKET"] + "-copy"
OTHER = os.environ["HANGAR_TEST_BUCKET"] + "-copy2"
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def s3():
    return make_client()


def empty_bucket(s3, bucket):
    for upload in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for v in page.get("Versions", []) + page.get("DeleteMarkers", []):
            s3.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])


@pytest.fixture(scope="module")
def bucket(s3):
    yield from own_bucket(s3, BUCKET, empty_bucket)


@pytest.fixture(scope="module")
def other(s3):
    yield from own_bucket(s3, OTHER, empty_bucket)


def md5_etag(data):
    return f'"{hashlib.md5(data).hexdigest()}"'


# ---- CopyObject ------------------------------------------------------------------------------


def test_copy_between_buckets_keeps_a_multi_block_body_and_its_etag(s3, bucket, other):
    data = os.urandom(3 * MIB + 12345)
    put = s3.put_object(
        Bucket=bucket, Key="src/big.bin", Body=data, ContentType="video/mp4",
        Metadata={"owner": "ops"},
    )
    copied = s3.copy_object(
        Bucket=other, Key="dst/big.bin", CopySource={"Bucket": bucket, "Key": "src/big.bin"}
    )
    assert copied["CopyObjectResult"]["ETag"] == put["ETag"] == md5_etag(data)
    got = s3.get_object(Bucket=other, Key="dst/big.bin")
    assert got["Body"].read() == data
    assert got["ContentType"] == "video/mp4"
    assert got["Metadata"] == {"owner": "ops"}
    assert got["ETag"] == put["ETag"]


def test_metadata_directive_copy_and_replace(s3, bucket):
    s3.put_object(
        Bucket=bucket, Key="meta/src", Body=b"hello", ContentType="text/plain",
        Metadata={"a": "1"},
    )
    src = {"Bucket": bucket, "Key": "meta/src"}
    s3.copy_object(Bucket=bucket, Key="meta/copy", CopySource=src, Metadata={"ignored": "x"})
    head = s3.head_object(Bucket=bucket, Key="meta/copy")
    assert (head["ContentType"], head["Metadata"]) == ("text/plain", {"a": "1"})
    s3.copy_object(
        Bucket=bucket, Key="meta/replaced", CopySource=src, MetadataDirective="REPLACE",
        ContentType="application/json", Metadata={"b": "2"},
    )
    head = s3.head_object(Bucket=bucket, Key="meta/replaced")
    assert (head["ContentType"], head["Metadata"]) == ("application/json", {"b": "2"})
    # Onto itself: refused with COPY, allowed with REPLACE (how clients change metadata).
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="meta/src", CopySource=src)
    assert error_code(e) == "InvalidRequest"
    s3.copy_object(
        Bucket=bucket, Key="meta/src", CopySource=src, MetadataDirective="REPLACE",
        Metadata={"c": "3"}, ContentType="text/plain",
    )
    head = s3.head_object(Bucket=bucket, Key="meta/src")
    assert head["Metadata"] == {"c": "3"}
    assert s3.get_object(Bucket=bucket, Key="meta/src")["Body"].read() == b"hello"


def test_copy_source_conditions(s3, bucket):
    put = s3.put_object(Bucket=bucket, Key="cond/src", Body=b"conditional")
    src = {"Bucket": bucket, "Key": "cond/src"}
    past = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
    future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    holds = [
        {"CopySourceIfMatch": put["ETag"]},
        {"CopySourceIfNoneMatch": '"0123"'},
        {"CopySourceIfModifiedSince": past},
        {"CopySourceIfUnmodifiedSince": future},
    ]
    fails = [
        {"CopySourceIfMatch": '"0123"'},
        {"CopySourceIfNoneMatch": put["ETag"]},
        {"CopySourceIfModifiedSince": future},
        {"CopySourceIfUnmodifiedSince": past},
    ]
    for condition in holds:
        s3.copy_object(Bucket=bucket, Key="cond/dst", CopySource=src, **condition)
    for condition in fails:
        with pytest.raises(ClientError) as e:
            s3.copy_object(Bucket=bucket, Key="cond/never", CopySource=src, **condition)
        assert error_code(e) == "PreconditionFailed", condition
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="cond/never")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_copy_outlives_its_deleted_source(s3, bucket):
    data = os.urandom(3 * MIB)
    s3.put_object(Bucket=bucket, Key="gone/src", Body=data)
    s3.copy_object(Bucket=bucket, Key="gone/copy", CopySource={"Bucket": bucket, "Key": "gone/src"})
    s3.delete_object(Bucket=bucket, Key="gone/src")
    assert s3.get_object(Bucket=bucket, Key="gone/copy")["Body"].read() == data
    with pytest.raises(ClientError) as e:
        s3.copy_object(
            Bucket=bucket, Key="gone/again", CopySource={"Bucket": bucket, "Key": "gone/src"}
        )
    assert error_code(e) == "NoSuchKey"


def test_copy_from_a_named_version_with_version_headers(s3, other):
    s3.put_bucket_versioning(Bucket=other, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=other, Key="ver/src", Body=b"first")["VersionId"]
    s3.put_object(Bucket=other, Key="ver/src", Body=b"second")
    copied = s3.copy_object(
        Bucket=other, Key="ver/copy", CopySource={"Bucket": other, "Key": "ver/src", "VersionId": v1}
    )
    assert copied["CopySourceVersionId"] == v1
    assert copied["VersionId"]
    got = s3.get_object(Bucket=other, Key="ver/copy", VersionId=copied["VersionId"])
    assert got["Body"].read() == b"first"


# ---- UploadPartCopy --------------------------------------------------------------------------


def test_upload_part_copy_assembles_ranges_and_whole_objects(s3, bucket):
    data = os.urandom(11 * MIB)
    s3.put_object(Bucket=bucket, Key="upc/src", Body=data)
    src = {"Bucket": bucket, "Key": "upc/src"}
    upload = s3.create_multipart_upload(Bucket=bucket, Key="upc/dst")["UploadId"]
    ranges = [(0, 5 * MIB - 1), (5 * MIB, 10 * MIB - 1), (10 * MIB, len(data) - 1)]
    parts = []
    for n, (first, last) in enumerate(ranges, start=1):
        r = s3.upload_part_copy(
            Bucket=bucket, Key="upc/dst", UploadId=upload, PartNumber=n, CopySource=src,
            CopySourceRange=f"bytes={first}-{last}",
        )
        etag = r["CopyPartResult"]["ETag"]
        assert etag == md5_etag(data[first : last + 1])
        parts.append({"PartNumber": n, "ETag": etag})
    # The whole source as another upload of part 3 would replace it; as part 4 it is
    # uploaded (by reference) and simply not chosen at completion.
    whole = s3.upload_part_copy(
        Bucket=bucket, Key="upc/dst", UploadId=upload, PartNumber=4, CopySource=src
    )
    assert whole["CopyPartResult"]["ETag"] == md5_etag(data)
    s3.complete_multipart_upload(
        Bucket=bucket, Key="upc/dst", UploadId=upload, MultipartUpload={"Parts": parts}
    )
    assert s3.get_object(Bucket=bucket, Key="upc/dst")["Body"].read() == data
    upload = s3.create_multipart_upload(Bucket=bucket, Key="upc/bad")["UploadId"]
    for bad in (f"bytes=0-{len(data)}", "bytes=5-", "bytes=9-3"):
        with pytest.raises(ClientError) as e:
            s3.upload_part_copy(
                Bucket=bucket, Key="upc/bad", UploadId=upload, PartNumber=1, CopySource=src,
                CopySourceRange=bad,
            )
        assert error_code(e) == "InvalidArgument", bad
    s3.abort_multipart_upload(Bucket=bucket, Key="upc/bad", UploadId=upload)


def test_whole_object_part_copies_complete_into_a_doubled_object(s3, bucket):
    data = os.urandom(5 * MIB)
    s3.put_object(Bucket=bucket, Key="upc2/src", Body=data)
    src = {"Bucket": bucket, "Key": "upc2/src"}
    upload = s3.create_multipart_upload(Bucket=bucket, Key="upc2/dst")["UploadId"]
    parts = []
    for n in (1, 2):
        r = s3.upload_part_copy(
            Bucket=bucket, Key="upc2/dst", UploadId=upload, PartNumber=n, CopySource=src
        )
        parts.append({"PartNumber": n, "ETag": r["CopyPartResult"]["ETag"]})
    s3.delete_object(Bucket=bucket, Key="upc2/src")
    s3.complete_multipart_upload(
        Bucket=bucket, Key="upc2/dst", UploadId=upload, MultipartUpload={"Parts": parts}
    )
    assert s3.get_object(Bucket=bucket, Key="upc2/dst")["Body"].read() == data + data


# ---- the aws CLI -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def aws(tmp_path_factory):
    """The aws CLI, isolated from ~/.aws; an 8 MiB multipart threshold so that a copy of a
    larger object goes through UploadPartCopy with ranges."""
    exe = os.path.join(os.path.dirname(sys.executable), "aws")
    home = tmp_path_factory.mktemp("aws-home-copy")
    config = home / "config"
    config.write_text(
        f"[default]\nregion = {REGION}\ns3 =\n    addressing_style = path\n"
        "    multipart_threshold = 8MB\n    multipart_chunksize = 8MB\n"
    )
    env = dict(os.environ)
    env.update(
        AWS_CONFIG_FILE=str(config),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "credentials"),
        AWS_ENDPOINT_URL=ENDPOINT,
        AWS_DEFAULT_REGION=REGION,
        AWS_MAX_ATTEMPTS="1",
    )

    def run(*args):
        proc = subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"aws {' '.join(args)} failed:\n{proc.stderr}"
        return proc.stdout

    return run


def test_cli_copies_server_side_small_and_multipart(aws, s3, bucket, other):
    small, large = os.urandom(3 * MIB), os.urandom(20 * MIB + 7)
    s3.put_object(Bucket=bucket, Key="cli/small", Body=small)
    s3.put_object(Bucket=bucket, Key="cli/large", Body=large)
    aws("s3", "cp", f"s3://{bucket}/cli/small", f"s3://{other}/cli/small")
    aws("s3", "cp", f"s3://{bucket}/cli/large", f"s3://{other}/cli/large")
    assert s3.get_object(Bucket=other, Key="cli/small")["Body"].read() == small
    assert s3.get_object(Bucket=other, Key="cli/large")["Body"].read() == large


# ---- DeleteObjects ---------------------------------------------------------------------------


def keys_in(s3, bucket, prefix):
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return sorted(o["Key"] for o in listed)


def test_delete_objects_three_keys_and_a_missing_one(s3, bucket):
    for key in ("del/a", "del/b", "del/c", "del/keep"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    objects = [{"Key": k} for k in ("del/a", "del/b", "del/c", "del/missing")]
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": objects})
    assert sorted(d["Key"] for d in r["Deleted"]) == ["del/a", "del/b", "del/c", "del/missing"]
    assert "Errors" not in r
    assert keys_in(s3, bucket, "del/") == ["del/keep"]


def test_delete_objects_quiet_lists_only_errors(s3, bucket):
    s3.put_object(Bucket=bucket, Key="quiet/a", Body=b"x")
    objects = [{"Key": "quiet/a"}, {"Key": "quiet/b", "VersionId": "null"}]
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
    assert "Deleted" not in r
    assert [(e["Key"], e["Code"]) for e in r["Errors"]] == [("quiet/b", "NoSuchVersion")]
    assert keys_in(s3, bucket, "quiet/") == []


def test_delete_objects_writes_delete_markers_when_versioned(s3, other):
    s3.put_bucket_versioning(Bucket=other, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=other, Key="dm/a", Body=b"x")["VersionId"]
    r = s3.delete_objects(Bucket=other, Delete={"Objects": [{"Key": "dm/a"}]})
    (deleted,) = r["Deleted"]
    assert deleted["DeleteMarker"] is True and deleted["DeleteMarkerVersionId"]
    # The old version is still there, under its id; removing the marker brings it back.
    marker = deleted["DeleteMarkerVersionId"]
    r = s3.delete_objects(
        Bucket=other, Delete={"Objects": [{"Key": "dm/a", "VersionId": marker}]}
    )
    assert r["Deleted"][0]["VersionId"] == marker and r["Deleted"][0]["DeleteMarker"] is True
    assert s3.get_object(Bucket=other, Key="dm/a")["VersionId"] == v1


def test_delete_objects_without_md5_or_checksum_is_refused(s3, bucket):
    """S3 requires Content-MD5 or an x-amz-checksum-* header; SDKs always send one, so the
    headers are stripped before signing to see the server's answer."""
    client = make_client()

    def strip(request, **kwargs):
        for name in list(request.headers.keys()):
            lower = name.lower()
            if lower == "content-md5" or lower.startswith("x-amz-checksum-") or (
                lower == "x-amz-sdk-checksum-algorithm"
            ):
                del request.headers[name]

    client.meta.events.register("before-sign.s3.DeleteObjects", strip)
    s3.put_object(Bucket=bucket, Key="nomd5/a", Body=b"x")
    with pytest.raises(ClientError) as e:
        client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "nomd5/a"}]})
    assert error_code(e) == "InvalidRequest"
    assert keys_in(s3, bucket, "nomd5/") == ["nomd5/a"]


def test_cli_rm_recursive(aws, s3, bucket):
    keys = [f"rm/{i:04d}" for i in range(25)] + ["rm/sub/x", "rm/sub/y"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    s3.put_object(Bucket=bucket, Key="rmkeep", Body=b"x")
    aws("s3", "rm", "--recursive", f"s3://{bucket}/rm/")
    assert keys_in(s3, bucket, "rm") == ["rmkeep"]


# ---- virtual-host-style addressing -----------------------------------------------------------


@pytest.fixture
def vhost_client(monkeypatch):
    """boto3 in virtual-host style against `localhost` (the dev config's root domain is
    `.localhost`). glibc does not resolve `bucket.localhost` here (RFC 6761 names it loopback,
    systemd-resolved and curl do), so this process resolves `*.localhost` to 127.0.0.1 itself;
    the request still carries `Host: bucket.localhost:PORT`, which is what the server reads
    and what SigV4 signs."""
    import socket
    import urllib.parse

    from botocore.config import Config

    real = socket.getaddrinfo

    def resolve(host, *args, **kwargs):
        if isinstance(host, str) and host.endswith(".localhost"):
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    port = urllib.parse.urlsplit(ENDPOINT).port
    import boto3

    seen_hosts = []
    client = boto3.client(
        "s3",
        endpoint_url=f"http://localhost:{port}",
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        region_name=REGION,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "virtual"},
            retries={"max_attempts": 1, "mode": "standard"},
        ),
    )
    client.meta.events.register(
        "before-send.s3", lambda request, **kw: seen_hosts.append(request.url)
    )
    return client, seen_hosts


def test_virtual_host_style_requests_address_the_bucket(vhost_client, s3, bucket):
    client, seen = vhost_client
    data = os.urandom(2 * MIB)
    client.put_object(Bucket=bucket, Key="vhost/dir/a b.bin", Body=data)
    assert seen[-1].startswith(f"http://{bucket}.localhost:"), seen[-1]
    assert client.get_object(Bucket=bucket, Key="vhost/dir/a b.bin")["Body"].read() == data
    listed = client.list_objects_v2(Bucket=bucket, Prefix="vhost/")["Contents"]
    assert [o["Key"] for o in listed] == ["vhost/dir/a b.bin"]
    client.copy_object(
        Bucket=bucket, Key="vhost/copy", CopySource={"Bucket": bucket, "Key": "vhost/dir/a b.bin"}
    )
    r = client.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": "vhost/dir/a b.bin"}, {"Key": "vhost/copy"}]}
    )
    assert len(r["Deleted"]) == 2
    # Path-style keeps working on the same endpoint.
    assert keys_in(s3, bucket, "vhost/") == []
    with pytest.raises(ClientError) as e:
        client.head_bucket(Bucket=bucket + "-nope")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
