"""Real-client tests of bucket CORS: boto3's put/get/delete_bucket_cors, raw OPTIONS
preflights as a browser sends them (no signature), and the CORS headers of a signed GET
that carries Origin.

Why: a browser decides from these headers alone whether a web page may read an answer;
a preflight refused or a header missing shows up only in the browser's console. Through
the cluster run each client is another node, so a configuration written through one node
must be read through another.

Configuration: the same environment as test_s3_basic.py (see conftest.py); the tests use
their own bucket, HANGAR_TEST_BUCKET + "-cors".
Run: tests/run-s3-tests.sh -k cors
"""

import os
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from s3util import delete_objects, error_code, make_client, own_bucket

BUCKET = os.environ["HANGAR_TEST_BUCKET"] + "-cors"
SITE = "https://app.example.com"

RULES = [
    {
        "ID": "site",
        "AllowedOrigins": ["https://*.example.com"],
        "AllowedMethods": ["GET", "PUT"],
        "AllowedHeaders": ["content-type", "x-amz-*"],
        "ExposeHeaders": ["ETag", "x-amz-version-id"],
        "MaxAgeSeconds": 600,
    },
    {"AllowedOrigins": ["*"], "AllowedMethods": ["HEAD"]},
]


@pytest.fixture(scope="module")
def s3():
    return make_client()


def empty(s3, bucket):
    delete_objects(s3, bucket)
    s3.delete_bucket_cors(Bucket=bucket)


@pytest.fixture(scope="module")
def bucket(s3):
    yield from own_bucket(s3, BUCKET, empty)


@pytest.fixture
def configured(s3, bucket):
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    yield bucket
    s3.delete_bucket_cors(Bucket=bucket)


def preflight(bucket, key, origin, method, headers=None):
    """An OPTIONS request as a browser sends it, to the next node; (status, headers, body)."""
    url = f"{make_client().meta.endpoint_url}/{bucket}/{key}"
    req = urllib.request.Request(url, method="OPTIONS")
    if origin is not None:
        req.add_header("Origin", origin)
    if method is not None:
        req.add_header("Access-Control-Request-Method", method)
    if headers:
        req.add_header("Access-Control-Request-Headers", headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def test_put_get_delete_round_trip_through_other_nodes(configured):
    got = make_client().get_bucket_cors(Bucket=configured)["CORSRules"]
    assert got == RULES
    make_client().delete_bucket_cors(Bucket=configured)
    with pytest.raises(ClientError) as e:
        make_client().get_bucket_cors(Bucket=configured)
    assert error_code(e) == "NoSuchCORSConfiguration"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_invalid_configurations_are_refused(s3, bucket):
    bad_method = [{"AllowedOrigins": ["*"], "AllowedMethods": ["PATCH"]}]
    with pytest.raises(ClientError) as e:
        s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": bad_method})
    assert error_code(e) == "InvalidRequest"
    too_many = [{"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]}] * 101
    with pytest.raises(ClientError) as e:
        s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": too_many})
    assert error_code(e) == "InvalidRequest"
    with pytest.raises(ClientError) as e:
        s3.get_bucket_cors(Bucket=bucket)
    assert error_code(e) == "NoSuchCORSConfiguration"


def test_missing_bucket(s3):
    with pytest.raises(ClientError) as e:
        s3.get_bucket_cors(Bucket=BUCKET + "-absent")
    assert error_code(e) == "NoSuchBucket"


def test_allowed_preflight(configured):
    status, headers, _ = preflight(configured, "k", SITE, "PUT", "Content-Type, X-Amz-Date")
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == SITE
    assert headers["Access-Control-Allow-Methods"] == "GET, PUT"
    assert headers["Access-Control-Allow-Headers"] == "content-type, x-amz-date"
    assert headers["Access-Control-Expose-Headers"] == "ETag, x-amz-version-id"
    assert headers["Access-Control-Max-Age"] == "600"
    assert "Origin" in headers["Vary"]
    # The second rule: any origin may HEAD.
    status, headers, _ = preflight(configured, "k", "https://elsewhere.org", "HEAD")
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize(
    "origin,method,headers",
    [
        ("https://evil.org", "GET", None),  # origin of no rule
        (SITE, "DELETE", None),  # method of no rule
        (SITE, "GET", "Authorization"),  # header of no rule
    ],
)
def test_refused_preflight(configured, origin, method, headers):
    status, resp_headers, body = preflight(configured, "k", origin, method, headers)
    assert status == 403
    assert b"<Code>AccessForbidden</Code>" in body
    assert "Access-Control-Allow-Origin" not in resp_headers


def test_preflight_without_configuration(bucket):
    status, _, body = preflight(bucket, "k", SITE, "GET")
    assert status == 403
    assert b"<Code>AccessForbidden</Code>" in body


def test_preflight_without_origin(configured):
    status, _, body = preflight(configured, "k", None, "GET")
    assert status == 400


def with_origin(origin):
    def add(request, **_):
        request.headers["Origin"] = origin

    return add


def test_actual_requests_get_cors_headers(configured):
    s3 = make_client()
    s3.put_object(Bucket=configured, Key="page.txt", Body=b"hello")
    s3.meta.events.register("before-sign.s3.*", with_origin(SITE))
    got = s3.get_object(Bucket=configured, Key="page.txt")
    headers = got["ResponseMetadata"]["HTTPHeaders"]
    assert got["Body"].read() == b"hello"
    assert headers["access-control-allow-origin"] == SITE
    assert headers["access-control-expose-headers"] == "ETag, x-amz-version-id"
    assert "Origin" in headers["vary"]
    # Errors too, so the page can read what went wrong.
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=configured, Key="absent")
    assert error_code(e) == "NoSuchKey"
    assert e.value.response["ResponseMetadata"]["HTTPHeaders"]["access-control-allow-origin"] == SITE
    # An origin no rule allows for GET gets no CORS headers.
    other = make_client()
    other.meta.events.register("before-sign.s3.*", with_origin("https://evil.org"))
    got = other.get_object(Bucket=configured, Key="page.txt")
    assert "access-control-allow-origin" not in got["ResponseMetadata"]["HTTPHeaders"]


def test_deleting_the_bucket_forgets_its_configuration(s3):
    name = BUCKET + "-gone"
    s3.create_bucket(Bucket=name)
    s3.put_bucket_cors(Bucket=name, CORSConfiguration={"CORSRules": RULES})
    s3.delete_bucket(Bucket=name)
    make_client().create_bucket(Bucket=name)
    try:
        with pytest.raises(ClientError) as e:
            make_client().get_bucket_cors(Bucket=name)
        assert error_code(e) == "NoSuchCORSConfiguration"
    finally:
        s3.delete_bucket(Bucket=name)
