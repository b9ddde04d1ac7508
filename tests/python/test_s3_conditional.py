"""Real-client tests of conditional writes: PutObject and CompleteMultipartUpload with
`If-None-Match: *` (create only) and `If-Match: <etag>` (replace only that version).

Why: clients use these to build locks and compare-and-swap on S3; a server that ignores
the headers silently overwrites data, and one that checks-then-writes lets two racing
creators both succeed. The race test below drives eight clients (against a cluster, spread
over every node) at one key: exactly one may win.

Configuration: the same environment as test_s3_basic.py (see conftest.py); the tests use
their own bucket, HANGAR_TEST_BUCKET + "-cond".
Run: tests/run-s3-tests.sh -k conditional; tests/run-s3-cluster-tests.sh -k conditional
"""

import os
import threading
import time

import pytest
from botocore.exceptions import ClientError

from s3util import abort_uploads, delete_objects, error_code, make_client, own_bucket

BUCKET = os.environ["HANGAR_TEST_BUCKET"] + "-cond"
MIB = 1024 * 1024


def empty_bucket(s3, bucket):
    abort_uploads(s3, bucket)
    delete_objects(s3, bucket)


@pytest.fixture(scope="module")
def s3():
    return make_client()


@pytest.fixture(scope="module")
def bucket(s3):
    yield from own_bucket(s3, BUCKET, empty_bucket)


def status(excinfo):
    return excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"]


def body_of(s3, bucket, key):
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def test_conditional_create_succeeds_on_a_new_key_and_412s_on_an_existing_one(s3, bucket):
    first = s3.put_object(Bucket=bucket, Key="create", Body=b"first", IfNoneMatch="*")
    assert first["ETag"]
    with pytest.raises(ClientError) as err:
        s3.put_object(Bucket=bucket, Key="create", Body=b"second", IfNoneMatch="*")
    assert (error_code(err), status(err)) == ("PreconditionFailed", 412)
    assert body_of(s3, bucket, "create") == b"first", "the refused write changed nothing"
    # A deleted key is free again.
    s3.delete_object(Bucket=bucket, Key="create")
    s3.put_object(Bucket=bucket, Key="create", Body=b"third", IfNoneMatch="*")
    assert body_of(s3, bucket, "create") == b"third"


def test_if_match_replaces_only_the_named_version(s3, bucket):
    with pytest.raises(ClientError) as err:
        s3.put_object(Bucket=bucket, Key="swap", Body=b"x", IfMatch='"0123"')
    assert (error_code(err), status(err)) == ("NoSuchKey", 404), "If-Match without an object"
    v1 = s3.put_object(Bucket=bucket, Key="swap", Body=b"v1")["ETag"]
    v2 = s3.put_object(Bucket=bucket, Key="swap", Body=b"v2", IfMatch=v1)["ETag"]
    with pytest.raises(ClientError) as err:
        s3.put_object(Bucket=bucket, Key="swap", Body=b"stale", IfMatch=v1)
    assert (error_code(err), status(err)) == ("PreconditionFailed", 412)
    s3.put_object(Bucket=bucket, Key="swap", Body=b"v3", IfMatch=v2)
    assert body_of(s3, bucket, "swap") == b"v3"


def test_a_large_refused_body_leaves_the_object_alone(s3, bucket):
    s3.put_object(Bucket=bucket, Key="large", Body=b"small original")
    with pytest.raises(ClientError) as err:
        s3.put_object(Bucket=bucket, Key="large", Body=os.urandom(3 * MIB), IfNoneMatch="*")
    assert error_code(err) == "PreconditionFailed"
    assert body_of(s3, bucket, "large") == b"small original"


def test_unsupported_condition_values_are_refused_with_not_implemented(s3, bucket):
    def add_header(request, **_):
        request.headers["If-None-Match"] = '"abc"'

    s3.meta.events.register_first("before-sign.s3.PutObject", add_header)
    try:
        with pytest.raises(ClientError) as err:
            s3.put_object(Bucket=bucket, Key="odd", Body=b"x")
    finally:
        s3.meta.events.unregister("before-sign.s3.PutObject", add_header)
    assert (error_code(err), status(err)) == ("NotImplemented", 501)
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="odd")


def multipart(s3, bucket, key, data, **condition):
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=data)
    parts = {"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}
    return upload, lambda: s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload, MultipartUpload=parts, **condition
    )


def test_multipart_completion_honours_if_none_match_and_if_match(s3, bucket):
    upload, complete = multipart(s3, bucket, "mpu", b"a" * 1000, IfNoneMatch="*")
    done = complete()
    assert body_of(s3, bucket, "mpu") == b"a" * 1000
    _, again = multipart(s3, bucket, "mpu", b"b" * 1000, IfNoneMatch="*")
    with pytest.raises(ClientError) as err:
        again()
    assert (error_code(err), status(err)) == ("PreconditionFailed", 412)
    assert body_of(s3, bucket, "mpu") == b"a" * 1000
    _, wrong = multipart(s3, bucket, "mpu", b"c" * 1000, IfMatch='"not-the-etag"')
    with pytest.raises(ClientError) as err:
        wrong()
    assert error_code(err) == "PreconditionFailed"
    _, right = multipart(s3, bucket, "mpu", b"d" * 1000, IfMatch=done["ETag"])
    right()
    assert body_of(s3, bucket, "mpu") == b"d" * 1000


def wait_until_writable(client, bucket, key, limit_s=15):
    """Against a cluster, a node learns of the bucket (and the key's permission on it) a
    moment after the node that created it: poll with a deadline until it accepts a write."""
    deadline = time.monotonic() + limit_s
    while True:
        try:
            client.put_object(Bucket=bucket, Key=key, Body=b"probe")
            return
        except ClientError as e:
            if time.monotonic() > deadline or error_code_of(e) not in ("AccessDenied", "NoSuchBucket"):
                raise
            time.sleep(0.1)


def error_code_of(e):
    return e.response["Error"]["Code"]


def test_eight_racing_create_only_writers_have_exactly_one_winner(bucket):
    # One client per thread (boto3 clients are not shared across threads here); against a
    # cluster, make_client hands them out round-robin over the nodes.
    clients = [make_client() for _ in range(8)]
    for i, client in enumerate(clients):
        wait_until_writable(client, bucket, f"probe-{i}")
    start = threading.Barrier(len(clients))
    outcomes = [None] * len(clients)

    def race(i):
        start.wait()
        try:
            clients[i].put_object(Bucket=bucket, Key="race", Body=f"writer {i}".encode(), IfNoneMatch="*")
            outcomes[i] = 200
        except ClientError as e:
            outcomes[i] = (status_code := e.response["ResponseMetadata"]["HTTPStatusCode"])
            assert status_code in (409, 412), e.response["Error"]

    threads = [threading.Thread(target=race, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count(200) == 1, f"exactly one winner: {outcomes}"
    winner = outcomes.index(200)
    for client in clients[:3]:
        assert body_of(client, bucket, "race") == f"writer {winner}".encode()
