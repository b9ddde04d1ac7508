"""Malformed and hostile requests against a real server, over raw sockets.

What must hold for each: an S3 error (XML with the right code) or, where the HTTP layer
answers first, a plain HTTP error — never a crash, never a connection left hanging, and
never a change to stored data. Each test first stores a known object, sends the bad
request aimed at it, then reads the object back unchanged and checks that the server still
serves ordinary requests.

Run: tests/run-s3-tests.sh -k malformed (or through three nodes: run-s3-cluster-tests.sh).
"""

import hashlib
import os
import socket
import time

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from s3util import (
    ACCESS_KEY,
    ENDPOINT,
    REGION,
    SECRET_KEY,
    delete_objects,
    make_client,
    own_bucket,
)

BUCKET = os.environ["HANGAR_TEST_BUCKET"] + "-malformed"
HOST, PORT = ENDPOINT.split("://", 1)[1].rsplit(":", 1)
KEY = "victim"
BODY = b"the original body, which no bad request may change"


def empty_bucket(s3, bucket):
    delete_objects(s3, bucket)


@pytest.fixture(scope="module")
def s3():
    return make_client()


@pytest.fixture(scope="module")
def bucket(s3):
    yield from own_bucket(s3, BUCKET, empty_bucket)


@pytest.fixture
def victim(s3, bucket):
    """A stored object; after the test it must still be exactly what was stored."""
    s3.put_object(Bucket=bucket, Key=KEY, Body=BODY)
    yield KEY
    assert s3.get_object(Bucket=bucket, Key=KEY)["Body"].read() == BODY
    # And the server still answers ordinary requests.
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] >= 1


def signed(method, path, body=b"", headers=None, payload_hash=None):
    """The headers an SDK would send for this request (SigV4 in the Authorization header)."""
    req = AWSRequest(method=method, url=ENDPOINT + path, data=body, headers=headers or {})
    req.headers["x-amz-content-sha256"] = payload_hash or hashlib.sha256(body).hexdigest()
    S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION).add_auth(req)
    return dict(req.headers.items())


def wire(method, path, headers, body=b""):
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{PORT}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def exchange(data, half_close=False, timeout=15):
    """Sends `data` on a fresh connection and reads one response: (status, headers, body).

    Fails the test if the server neither answers nor closes within `timeout` seconds.
    """
    with socket.create_connection((HOST, int(PORT)), timeout=timeout) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        raw = b""
        while b"\r\n\r\n" not in raw:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed without a response (got {raw!r})"
            raw += chunk
        head, _, body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = sock.recv(65536)
            assert chunk, "connection closed in the middle of the response body"
            body += chunk
        return status, headers, body


def s3_error(body):
    assert body.startswith(b"<?xml"), body[:200]
    return body.split(b"<Code>", 1)[1].split(b"</Code>", 1)[0].decode()


def test_garbage_is_a_bad_request(victim):
    status, _, _ = exchange(b"THIS IS NOT HTTP\r\n\r\n")
    assert status == 400


def test_a_header_section_above_8_kib_is_refused(bucket, victim):
    path = f"/{bucket}/{victim}"
    headers = signed("PUT", path, b"replaced", {"x-padding": "p" * 9000})
    headers["Content-Length"] = "8"
    status, _, body = exchange(wire("PUT", path, headers, b"replaced"))
    assert (status, s3_error(body)) == (400, "RequestHeaderSectionTooLarge")
    assert b"at most 8192" in body


def test_more_headers_than_the_http_layer_takes_is_431(bucket, victim):
    headers = signed("GET", f"/{bucket}/{victim}")
    headers.update({f"x-h{i}": "v" for i in range(300)})
    status, headers, _ = exchange(wire("GET", f"/{bucket}/{victim}", headers))
    assert status == 431
    assert headers.get("connection") == "close"


def test_user_metadata_above_2_kib_is_metadata_too_large(bucket, victim):
    path = f"/{bucket}/{victim}"
    headers = signed("PUT", path, b"replaced", {"x-amz-meta-big": "m" * 2100})
    headers["Content-Length"] = "8"
    status, _, body = exchange(wire("PUT", path, headers, b"replaced"))
    assert (status, s3_error(body)) == (400, "MetadataTooLarge")


def test_a_body_cut_short_is_incomplete_and_stores_nothing(bucket, victim):
    path = f"/{bucket}/{victim}"
    headers = signed("PUT", path, payload_hash="UNSIGNED-PAYLOAD")
    headers["Content-Length"] = str(1 << 20)
    status, _, body = exchange(wire("PUT", path, headers, b"x" * 1000), half_close=True)
    assert (status, s3_error(body)) == (400, "IncompleteBody")


def test_a_body_longer_than_declared_stores_nothing(bucket, victim):
    path = f"/{bucket}/{victim}"
    headers = signed("PUT", path, b"replaced")
    headers["Content-Length"] = "4"
    # The server reads 4 bytes of body; the rest is garbage where the next request would
    # start. The signed hash covers 8 bytes, so the 4 received cannot be stored.
    status, _, body = exchange(wire("PUT", path, headers, b"replaced"))
    assert (status, s3_error(body)) == (400, "XAmzContentSHA256Mismatch")


@pytest.mark.parametrize(
    "query, xml",
    [
        ("versioning", b"not xml at all"),
        ("versioning", b"<VersioningConfiguration><Status>Sideways</Status></Versioning"),
        ("delete", b"<Delete><Object><Key>victim</Key></Object>"),
    ],
)
def test_bad_xml_is_malformed_xml(bucket, victim, query, xml):
    method = "POST" if query == "delete" else "PUT"
    path = f"/{bucket}?{query}"
    extra = {"Content-MD5": __import__("base64").b64encode(hashlib.md5(xml).digest()).decode()}
    headers = signed(method, path, xml, extra)
    headers["Content-Length"] = str(len(xml))
    status, _, body = exchange(wire(method, path, headers, xml))
    assert (status, s3_error(body)) == (400, "MalformedXML")


def test_bad_xml_completing_an_upload_leaves_the_upload_usable(s3, bucket):
    key = "mpu-after-bad-xml"
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=b"p1")
    path = f"/{bucket}/{key}?uploadId={upload}"
    xml = b"<CompleteMultipartUpload><Part><PartNumber>1</Part"
    headers = signed("POST", path, xml)
    headers["Content-Length"] = str(len(xml))
    status, _, body = exchange(wire("POST", path, headers, xml))
    assert (status, s3_error(body)) == (400, "MalformedXML")
    parts = [{"PartNumber": 1, "ETag": part["ETag"]}]
    s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
    )
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"p1"


def test_invalid_bucket_name_and_key_too_long(bucket, victim):
    status, _, body = exchange(wire("PUT", "/Not_A_Bucket", signed("PUT", "/Not_A_Bucket")))
    assert (status, s3_error(body)) == (400, "InvalidBucketName")
    path = f"/{bucket}/" + "k" * 1025
    headers = signed("PUT", path, b"x")
    headers["Content-Length"] = "1"
    status, _, body = exchange(wire("PUT", path, headers, b"x"))
    assert (status, s3_error(body)) == (400, "KeyTooLongError")


def test_stalled_clients_do_not_hold_up_others(s3, bucket, victim):
    # Clients that connect and stop — half a request line, headers without their end, a
    # body that never comes — each hold a connection until the server's timeouts; they
    # must not delay anyone else meanwhile.
    path = f"/{bucket}/{victim}"
    stalled = []
    try:
        for i in range(40):
            sock = socket.create_connection((HOST, int(PORT)), timeout=10)
            if i % 3 == 0:
                sock.sendall(b"GET /" + bucket.encode())
            elif i % 3 == 1:
                sock.sendall(wire("GET", path, signed("GET", path))[:-2])
            else:
                headers = signed("PUT", path, payload_hash="UNSIGNED-PAYLOAD")
                headers["Content-Length"] = "1000"
                sock.sendall(wire("PUT", path, headers, b"half"))
            stalled.append(sock)
        started = time.monotonic()
        for _ in range(10):
            assert s3.get_object(Bucket=bucket, Key=victim)["Body"].read() == BODY
        # Ten small GETs on loopback take milliseconds; a server serialising behind the
        # stalled connections would take the header or body timeout (30 s, 60 s).
        assert time.monotonic() - started < 10
    finally:
        for sock in stalled:
            sock.close()
