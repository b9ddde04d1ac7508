"""Real-client tests of the Hangar S3 frontend: boto3, raw SigV4 over urllib, and the aws CLI v1.

Why real clients: the S3 layer is only correct if the SDKs people use agree with it on every
canonical form (SigV4, XML, ETags, ranges, URL-encoded listings). Unit tests pin our side of
that contract; these tests check the other side.

Configuration (all required):
    AWS_ENDPOINT_URL       e.g. http://127.0.0.1:3900
    AWS_ACCESS_KEY_ID      a key the server knows
    AWS_SECRET_ACCESS_KEY  its secret
    AWS_REGION             the server's region
    HANGAR_TEST_BUCKET     a bucket name these tests may create, fill and delete
Run: python -m pytest tests/python/test_s3_basic.py
"""

import hashlib
import http.client
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from s3util import (
    ACCESS_KEY,
    ENDPOINT,
    REGION,
    SECRET_KEY,
    delete_objects,
    error_code,
    make_client,
)
from s3util import own_bucket

BUCKET = os.environ["HANGAR_TEST_BUCKET"]


def http_status(excinfo):
    return excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"]


def empty_bucket(s3, bucket):
    delete_objects(s3, bucket)


@pytest.fixture(scope="module")
def s3():
    return make_client()


@pytest.fixture(scope="module")
def bucket(s3):
    yield from own_bucket(s3, BUCKET, empty_bucket)


def raw_request(method, path, region=REGION, secret=SECRET_KEY, body=b"", send_body=None):
    """Signs like an SDK, sends with urllib: returns (status, headers, body bytes).

    `send_body` lets a test send different bytes from the ones that were signed.
    """
    url = ENDPOINT + path
    req = AWSRequest(method=method, url=url, data=body)
    req.headers["x-amz-content-sha256"] = hashlib.sha256(body).hexdigest()
    S3SigV4Auth(Credentials(ACCESS_KEY, secret), "s3", region).add_auth(req)
    data = body if send_body is None else send_body
    out = urllib.request.Request(url, data=data or None, method=method, headers=dict(req.headers))
    try:
        with urllib.request.urlopen(out, timeout=10) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


# ---- buckets ----


def test_bucket_is_listed_and_located(s3, bucket):
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert bucket in names
    location = s3.get_bucket_location(Bucket=bucket)["LocationConstraint"]
    assert location in (REGION, None if REGION == "us-east-1" else REGION)
    s3.head_bucket(Bucket=bucket)


def test_create_existing_or_invalid_bucket_is_refused(s3, bucket):
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=bucket)
    assert error_code(exc) == "BucketAlreadyOwnedByYou"
    assert http_status(exc) == 409
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket="Not_A_Valid_Name")
    assert error_code(exc) == "InvalidBucketName"


def test_delete_bucket_not_empty(s3):
    name = BUCKET + "-notempty"
    s3.create_bucket(Bucket=name)
    try:
        s3.put_object(Bucket=name, Key="keep", Body=b"x")
        with pytest.raises(ClientError) as exc:
            s3.delete_bucket(Bucket=name)
        assert error_code(exc) == "BucketNotEmpty"
        assert http_status(exc) == 409
    finally:
        s3.delete_object(Bucket=name, Key="keep")
        s3.delete_bucket(Bucket=name)
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket=name)
    assert http_status(exc) == 404


# ---- objects ----


def test_put_get_head_round_trip(s3, bucket):
    # Over 1 MiB, so botocore sends `Expect: 100-continue` and waits for the server.
    data = os.urandom(2 * 1024 * 1024) + b"tail"
    md5 = hashlib.md5(data).hexdigest()
    put = s3.put_object(
        Bucket=bucket,
        Key="obj/round trip+é.bin",
        Body=data,
        ContentType="application/x-test",
        Metadata={"color": "blue"},
    )
    assert put["ETag"] == f'"{md5}"'
    got = s3.get_object(Bucket=bucket, Key="obj/round trip+é.bin")
    assert got["Body"].read() == data
    assert got["ETag"] == f'"{md5}"'
    assert got["ContentType"] == "application/x-test"
    assert got["Metadata"] == {"color": "blue"}
    head = s3.head_object(Bucket=bucket, Key="obj/round trip+é.bin")
    assert head["ContentLength"] == len(data)
    assert head["ETag"] == f'"{md5}"'
    assert head["Metadata"] == {"color": "blue"}
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]


def test_overwrite_replaces_body(s3, bucket):
    s3.put_object(Bucket=bucket, Key="obj/overwrite", Body=b"first")
    s3.put_object(Bucket=bucket, Key="obj/overwrite", Body=b"second!")
    got = s3.get_object(Bucket=bucket, Key="obj/overwrite")
    assert got["Body"].read() == b"second!"
    assert got["ETag"] == '"%s"' % hashlib.md5(b"second!").hexdigest()


def test_range_get(s3, bucket):
    data = bytes(range(100))
    s3.put_object(Bucket=bucket, Key="obj/range", Body=data)
    cases = [("bytes=10-19", 10, 19), ("bytes=90-", 90, 99), ("bytes=-5", 95, 99),
             ("bytes=95-500", 95, 99)]
    for header, first, last in cases:
        got = s3.get_object(Bucket=bucket, Key="obj/range", Range=header)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206, header
        assert got["ContentRange"] == f"bytes {first}-{last}/100", header
        assert got["Body"].read() == data[first:last + 1], header
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="obj/range", Range="bytes=100-200")
    assert error_code(exc) == "InvalidRange"
    assert http_status(exc) == 416


def test_response_header_overrides_and_conditions(s3, bucket):
    put = s3.put_object(Bucket=bucket, Key="obj/override", Body=b"{}", ContentType="text/plain")
    got = s3.get_object(
        Bucket=bucket,
        Key="obj/override",
        ResponseContentType="application/json",
        ResponseContentDisposition="attachment; filename=x.json",
    )
    # One Content-Type header, the overriding one (botocore would show "a, b" for two).
    assert got["ContentType"] == "application/json"
    assert got["ContentDisposition"] == "attachment; filename=x.json"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="obj/override", IfMatch='"0000"')
    assert http_status(exc) == 412
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="obj/override", IfNoneMatch=put["ETag"])
    assert http_status(exc) == 304
    matched = s3.get_object(Bucket=bucket, Key="obj/override", IfMatch=put["ETag"])
    assert matched["Body"].read() == b"{}"


def test_get_missing_key(s3, bucket):
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="obj/does-not-exist")
    assert error_code(exc) == "NoSuchKey"
    assert http_status(exc) == 404
    assert exc.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=BUCKET + "-missing", Key="k")
    assert error_code(exc) == "NoSuchBucket"


def test_delete_object_is_idempotent(s3, bucket):
    s3.put_object(Bucket=bucket, Key="obj/delete-me", Body=b"bye")
    resp = s3.delete_object(Bucket=bucket, Key="obj/delete-me")
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="obj/delete-me")
    assert http_status(exc) == 404
    again = s3.delete_object(Bucket=bucket, Key="obj/delete-me")
    assert again["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_unsupported_operation_is_not_implemented(s3, bucket):
    with pytest.raises(ClientError) as exc:
        s3.put_object_tagging(
            Bucket=bucket, Key="obj/x", Tagging={"TagSet": [{"Key": "a", "Value": "b"}]}
        )
    assert error_code(exc) == "NotImplemented"
    assert http_status(exc) == 501


# ---- listings ----


@pytest.fixture(scope="module")
def listed(s3, bucket):
    """25 keys directly under list/ and two in list/sub/."""
    keys = [f"list/k{i:02d}" for i in range(25)] + ["list/sub/a", "list/sub/b"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    return keys


def test_list_v2_pages_with_delimiter(s3, bucket, listed):
    pages, token = [], None
    while True:
        kwargs = {"Bucket": bucket, "Prefix": "list/", "Delimiter": "/", "MaxKeys": 10}
        if token:
            kwargs["ContinuationToken"] = token
        page = s3.list_objects_v2(**kwargs)
        pages.append(page)
        assert len(pages) <= 5, "pagination does not end"
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    keys = [o["Key"] for p in pages for o in p.get("Contents", [])]
    prefixes = [c["Prefix"] for p in pages for c in p.get("CommonPrefixes", [])]
    assert keys == listed[:25]
    assert prefixes == ["list/sub/"]
    assert [p["KeyCount"] for p in pages] == [10, 10, 6]
    assert [p["IsTruncated"] for p in pages] == [True, True, False]


def test_list_v2_paginator_without_delimiter(s3, bucket, listed):
    paginator = s3.get_paginator("list_objects_v2")
    pages = list(
        paginator.paginate(Bucket=bucket, Prefix="list/", PaginationConfig={"PageSize": 10})
    )
    assert [len(p["Contents"]) for p in pages] == [10, 10, 7]
    assert [o["Key"] for p in pages for o in p["Contents"]] == sorted(listed)
    sizes = {o["Key"]: o["Size"] for p in pages for o in p["Contents"]}
    assert sizes["list/sub/a"] == len(b"list/sub/a")


def test_list_v2_start_after_and_prefix(s3, bucket, listed):
    page = s3.list_objects_v2(Bucket=bucket, Prefix="list/k", StartAfter="list/k20")
    assert [o["Key"] for o in page["Contents"]] == [f"list/k{i}" for i in range(21, 25)]
    empty = s3.list_objects_v2(Bucket=bucket, Prefix="list/nothing")
    assert empty["KeyCount"] == 0 and "Contents" not in empty


def test_list_v1_marker(s3, bucket, listed):
    first = s3.list_objects(Bucket=bucket, Prefix="list/", MaxKeys=10)
    assert first["IsTruncated"] is True
    assert len(first["Contents"]) == 10
    second = s3.list_objects(Bucket=bucket, Prefix="list/", Marker=first["Contents"][-1]["Key"])
    assert [o["Key"] for o in second["Contents"]] == sorted(listed)[10:]
    assert second["IsTruncated"] is False
    rolled = s3.list_objects(Bucket=bucket, Prefix="list/", Delimiter="/")
    assert [c["Prefix"] for c in rolled["CommonPrefixes"]] == ["list/sub/"]
    assert len(rolled["Contents"]) == 25


# ---- authentication ----


def test_wrong_secret_is_signature_mismatch(bucket):
    bad = make_client(secret_key=SECRET_KEY + "x")
    with pytest.raises(ClientError) as exc:
        bad.list_objects_v2(Bucket=bucket)
    assert error_code(exc) == "SignatureDoesNotMatch"
    assert http_status(exc) == 403


def test_unknown_access_key(bucket):
    bad = make_client(access_key="AKIDUNKNOWN000000000")
    with pytest.raises(ClientError) as exc:
        bad.head_bucket(Bucket=bucket)
    assert http_status(exc) == 403
    with pytest.raises(ClientError) as exc:
        bad.list_objects_v2(Bucket=bucket)
    assert error_code(exc) == "InvalidAccessKeyId"


def test_wrong_region_names_the_right_one(bucket):
    other = "eu-central-1" if REGION != "eu-central-1" else "us-west-2"
    status, headers, body = raw_request("GET", f"/{bucket}?list-type=2", region=other)
    assert status == 400
    assert b"<Code>AuthorizationHeaderMalformed</Code>" in body
    assert f"<Region>{REGION}</Region>".encode() in body
    assert headers["x-amz-request-id"]


def test_body_must_match_signed_hash(bucket):
    status, _, body = raw_request(
        "PUT", f"/{bucket}/obj/tampered", body=b"signed", send_body=b"forged"
    )
    assert status == 400
    assert b"XAmzContentSHA256Mismatch" in body
    ok_status, _, _ = raw_request("PUT", f"/{bucket}/obj/tampered", body=b"signed")
    assert ok_status == 200


def test_oversized_put_is_refused_before_upload(bucket):
    # Objects are capped (5 TiB by default, like S3); the declared length alone must be
    # enough to refuse, without the client sending a byte of the body.
    path = f"/{bucket}/obj/huge"
    req = AWSRequest(method="PUT", url=ENDPOINT + path, data=b"")
    S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION).add_auth(req)
    host = ENDPOINT.split("://", 1)[1]
    conn = http.client.HTTPConnection(host, timeout=10)
    conn.putrequest("PUT", path, skip_accept_encoding=True)
    for name, value in req.headers.items():
        conn.putheader(name, value)
    conn.putheader("Content-Length", str((5 << 40) + 1))
    conn.putheader("Expect", "100-continue")
    conn.endheaders()
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    assert resp.status == 400
    assert b"<Code>EntityTooLarge</Code>" in body


def test_anonymous_request_is_refused(bucket):
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(f"{ENDPOINT}/{bucket}?list-type=2", timeout=10)
    assert exc.value.code == 403
    assert b"<Code>AccessDenied</Code>" in exc.value.read()


def test_presigned_get(s3, bucket):
    s3.put_object(Bucket=bucket, Key="obj/presigned", Body=b"shared secretly")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "obj/presigned"}, ExpiresIn=300
    )
    assert "X-Amz-Signature=" in url
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200
        assert resp.read() == b"shared secretly"
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(url.replace("obj/presigned", "obj/other"), timeout=10)
    assert exc.value.code == 403


def test_expired_presigned_get_is_refused(s3, bucket):
    s3.put_object(Bucket=bucket, Key="obj/expiring", Body=b"soon gone")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "obj/expiring"}, ExpiresIn=1
    )
    time.sleep(2.1)
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(url, timeout=10)
    assert exc.value.code == 403
    body = exc.value.read()
    assert b"<Code>AccessDenied</Code>" in body
    assert b"Request has expired" in body


def test_presigned_put_stores_the_body_and_its_signed_headers(s3, bucket):
    """A presigned PUT (what a browser or curl given the URL sends): the body is stored,
    with the content type that was signed; a different signed header value, or an expired
    URL, is refused and stores nothing."""
    params = {"Bucket": bucket, "Key": "obj/uploaded", "ContentType": "text/plain"}
    url = s3.generate_presigned_url("put_object", Params=params, ExpiresIn=300)
    assert "X-Amz-Signature=" in url

    def put(target, content_type):
        req = urllib.request.Request(
            target, data=b"sent by url", method="PUT", headers={"Content-Type": content_type}
        )
        return urllib.request.urlopen(req, timeout=10)

    with pytest.raises(urllib.error.HTTPError) as exc:
        put(url, "application/octet-stream")  # not the signed content type
    assert exc.value.code == 403
    assert b"<Code>SignatureDoesNotMatch</Code>" in exc.value.read()
    with pytest.raises(ClientError) as missing:
        s3.head_object(Bucket=bucket, Key="obj/uploaded")
    assert missing.value.response["Error"]["Code"] == "404", "a refused PUT stores nothing"

    with put(url, "text/plain") as resp:
        assert resp.status == 200
    got = s3.get_object(Bucket=bucket, Key="obj/uploaded")
    assert got["Body"].read() == b"sent by url"
    assert got["ContentType"] == "text/plain"

    params["Key"] = "obj/uploaded-late"
    late = s3.generate_presigned_url("put_object", Params=params, ExpiresIn=1)
    time.sleep(2.1)
    with pytest.raises(urllib.error.HTTPError) as exc:
        put(late, "text/plain")
    assert exc.value.code == 403
    assert b"Request has expired" in exc.value.read()
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="obj/uploaded-late")


# ---- the aws CLI v1 ----


@pytest.fixture(scope="module")
def aws(tmp_path_factory):
    """Runs the `aws` executable installed next to this Python, isolated from ~/.aws."""
    exe = os.path.join(os.path.dirname(sys.executable), "aws")
    home = tmp_path_factory.mktemp("aws-home")
    config = home / "config"
    config.write_text(f"[default]\nregion = {REGION}\ns3 =\n    addressing_style = path\n")
    env = dict(os.environ)
    env.update(
        AWS_CONFIG_FILE=str(config),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "credentials"),
        AWS_ENDPOINT_URL=ENDPOINT,
        AWS_DEFAULT_REGION=REGION,
        AWS_MAX_ATTEMPTS="1",
    )

    def run(*args):
        proc = subprocess.run(
            [exe, *args], env=env, capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, f"aws {' '.join(args)} failed:\n{proc.stderr}"
        return proc.stdout

    return run


def test_cli_cp_ls_head_round_trip(aws, bucket, tmp_path):
    data = os.urandom(200_000)
    src = tmp_path / "upload.bin"
    src.write_bytes(data)
    aws("s3", "cp", str(src), f"s3://{bucket}/cli/upload.bin")
    listing = aws("s3", "ls", f"s3://{bucket}/cli/")
    line = next(l for l in listing.splitlines() if l.endswith("upload.bin"))
    assert str(len(data)) in line.split()
    head = json.loads(aws("s3api", "head-object", "--bucket", bucket, "--key", "cli/upload.bin"))
    assert head["ContentLength"] == len(data)
    assert head["ETag"] == '"%s"' % hashlib.md5(data).hexdigest()
    dst = tmp_path / "download.bin"
    aws("s3", "cp", f"s3://{bucket}/cli/upload.bin", str(dst))
    assert dst.read_bytes() == data


def test_cli_ls_lists_buckets_and_prefixes(aws, bucket, s3):
    s3.put_object(Bucket=bucket, Key="cli-dir/nested/file", Body=b"x")
    buckets = aws("s3", "ls").split()
    assert bucket in buckets
    top = aws("s3", "ls", f"s3://{bucket}/")
    assert "PRE cli-dir/" in top
