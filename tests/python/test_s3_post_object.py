"""Real-client tests of PostObject (browser form uploads): boto3's generate_presigned_post
signs the policy, urllib POSTs the form as a browser would.

Why: a form upload carries no Authorization header; the signed policy is all that stands
between a page's visitors and the bucket. These tests show that what boto3 signs is what
Hangar checks (signature, expiry, key prefix, size range, fixed Content-Type) and that the
three answers browsers rely on (204, 201 with XML, 303 redirect) come back as S3 sends them.

Configuration: the same environment as test_s3_basic.py (see conftest.py); the tests use
their own bucket, HANGAR_TEST_BUCKET + "-post".
Run: tests/run-s3-tests.sh -k post_object
"""

import base64
import hashlib
import json
import os
import urllib.error
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, urlparse

import pytest

from s3util import delete_objects, make_client, own_bucket

BUCKET = os.environ["HANGAR_TEST_BUCKET"] + "-post"
SIZE_MAX = 4 * 1024 * 1024


@pytest.fixture(scope="module")
def s3():
    return make_client()


def empty(s3, bucket):
    delete_objects(s3, bucket)


@pytest.fixture(scope="module")
def bucket(s3):
    yield from own_bucket(s3, BUCKET, empty)


def presign(s3, bucket, fields=None, conditions=None, expires=300):
    """A form for keys under uploads/, 1 byte to 4 MiB, text/plain only."""
    fields = {"Content-Type": "text/plain", **(fields or {})}
    conditions = [
        {"Content-Type": "text/plain"},
        ["content-length-range", 1, SIZE_MAX],
        *[{k: v} for k, v in (fields or {}).items() if k != "Content-Type"],
        *(conditions or []),
    ]
    return s3.generate_presigned_post(
        bucket, "uploads/${filename}", Fields=fields, Conditions=conditions, ExpiresIn=expires
    )


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def post_form(url, fields, file=None, filename="hello.txt"):
    """POSTs `fields` then the `file` part (last, as S3 requires); (status, headers, body)."""
    boundary = "----hangar" + uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
        )
    if file is not None:
        head = (
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        )
        parts.append(head.encode() + file + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    req = urllib.request.Request(url, data=body, method="POST")
    req.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=60) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def error_of(body):
    root = ET.fromstring(body)
    return root.findtext("Code"), root.findtext("Message")


def test_post_object_default_204_then_get_back(s3, bucket):
    form = presign(s3, bucket)
    data = b"hello from a browser form\n"
    status, headers, _ = post_form(form["url"], form["fields"], data, "a b.txt")
    assert status == 204
    assert headers["ETag"] == '"%s"' % hashlib.md5(data).hexdigest()
    got = s3.get_object(Bucket=bucket, Key="uploads/a b.txt")
    assert got["Body"].read() == data
    assert got["ContentType"] == "text/plain"
    assert got["ETag"] == headers["ETag"]


def test_post_object_201_xml_and_3mib_file(s3, bucket):
    form = presign(s3, bucket, fields={"success_action_status": "201"})
    data = os.urandom(3 * 1024 * 1024)
    status, headers, body = post_form(form["url"], form["fields"], data, "big.bin")
    assert status == 201, body
    root = ET.fromstring(body)
    assert root.tag.endswith("PostResponse")
    text = {child.tag.split("}")[-1]: child.text for child in root}
    assert text["Bucket"] == bucket
    assert text["Key"] == "uploads/big.bin"
    assert text["ETag"] == '"%s"' % hashlib.md5(data).hexdigest()
    assert text["Location"].endswith(f"/{bucket}/uploads/big.bin")
    got = s3.get_object(Bucket=bucket, Key="uploads/big.bin")["Body"].read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()


def test_post_object_redirect_303(s3, bucket):
    target = "https://app.example/done?from=form"
    form = presign(s3, bucket, fields={"success_action_redirect": target})
    status, headers, _ = post_form(form["url"], form["fields"], b"redirected", "r.txt")
    assert status == 303
    location = urlparse(headers["Location"])
    assert location.netloc == "app.example" and location.path == "/done"
    query = parse_qs(location.query)
    assert query["from"] == ["form"]
    assert query["bucket"] == [bucket]
    assert query["key"] == ["uploads/r.txt"]
    assert query["etag"] == ['"%s"' % hashlib.md5(b"redirected").hexdigest()]
    assert s3.get_object(Bucket=bucket, Key="uploads/r.txt")["Body"].read() == b"redirected"


def test_post_object_expired_policy(s3, bucket):
    form = presign(s3, bucket, expires=-60)
    status, _, body = post_form(form["url"], form["fields"], b"late", "late.txt")
    assert status == 403
    assert error_of(body) == ("AccessDenied", "Invalid according to Policy: Policy expired.")


def test_post_object_tampered_policy(s3, bucket):
    form = presign(s3, bucket)
    policy = json.loads(base64.b64decode(form["fields"]["policy"]))
    policy["conditions"] = [c for c in policy["conditions"] if "content-length-range" not in c]
    fields = dict(form["fields"], policy=base64.b64encode(json.dumps(policy).encode()).decode())
    status, _, body = post_form(form["url"], fields, b"x" * 10, "t.txt")
    assert status == 403
    assert error_of(body)[0] == "SignatureDoesNotMatch"


def test_post_object_wrong_key_prefix_and_content_type(s3, bucket):
    form = presign(s3, bucket)
    fields = dict(form["fields"], key="elsewhere/${filename}")
    status, _, body = post_form(form["url"], fields, b"data", "p.txt")
    assert status == 403
    code, message = error_of(body)
    assert code == "AccessDenied"
    assert message.startswith("Invalid according to Policy: Policy Condition failed")
    assert "$key" in message
    fields = dict(form["fields"], **{"Content-Type": "text/html"})
    status, _, body = post_form(form["url"], fields, b"<script>", "p.html")
    assert status == 403 and error_of(body)[0] == "AccessDenied"
    # A field the policy does not mention is refused too.
    fields = dict(form["fields"], **{"x-amz-meta-extra": "1"})
    status, _, body = post_form(form["url"], fields, b"data", "p.txt")
    assert status == 403
    assert error_of(body)[1] == "Invalid according to Policy: Extra input fields: x-amz-meta-extra"
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="elsewhere/")
    assert listed["KeyCount"] == 0


def test_post_object_size_range_enforced(s3, bucket):
    form = s3.generate_presigned_post(
        bucket, "small/${filename}", Conditions=[["content-length-range", 2, 1024]]
    )
    for size in (4096, 8 * 1024 * 1024):
        status, _, body = post_form(form["url"], form["fields"], b"y" * size, "big.txt")
        assert status == 400
        assert error_of(body)[0] == "EntityTooLarge"
    status, _, body = post_form(form["url"], form["fields"], b"y", "tiny.txt")
    assert status == 400
    assert error_of(body)[0] == "EntityTooSmall"
    assert s3.list_objects_v2(Bucket=bucket, Prefix="small/")["KeyCount"] == 0


def test_post_object_missing_file_field(s3, bucket):
    form = presign(s3, bucket)
    status, _, body = post_form(form["url"], form["fields"], None)
    assert status == 400
    assert error_of(body)[0] == "IncorrectNumberOfFilesInPostRequest"


def test_post_object_other_bucket_posts_keep_their_meaning(s3, bucket):
    s3.put_object(Bucket=bucket, Key="del/me", Body=b"1")
    out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "del/me"}]})
    assert [d["Key"] for d in out["Deleted"]] == ["del/me"]
