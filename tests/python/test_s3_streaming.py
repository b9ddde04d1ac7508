"""Real-client tests of the streaming body path: large single PUTs, ranges, additional
checksums, signed payloads and aws-chunked uploads (signed chunks, trailers).

Why: bodies stream from the socket into the engine and are only checked at their end
(signature, checksum, Content-MD5), so the server must make an object visible only after
those checks passed. Real clients (boto3 sends checksums by default since 1.36) and raw
requests signed here, byte for byte as the SigV4 streaming description says, show that a
good body is accepted and that every kind of bad one is refused and leaves nothing behind.

Configuration: the environment of conftest.py; the tests use HANGAR_TEST_BUCKET + "-stream".
Run: tests/run-s3-tests.sh -k streaming
"""

import base64
import datetime
import hashlib
import hmac
import http.client
import os
import urllib.parse
import zlib

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from s3util import (
    ACCESS_KEY,
    CONFIG,
    ENDPOINT,
    REGION,
    SECRET_KEY,
    delete_objects,
    error_code,
    make_client,
    own_bucket,
)

BUCKET = os.environ["HANGAR_TEST_BUCKET"] + "-stream"
MIB = 1024 * 1024
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@pytest.fixture(scope="module")
def s3():
    return make_client()


def empty_bucket(s3, bucket):
    delete_objects(s3, bucket)


@pytest.fixture(scope="module")
def bucket(s3):
    yield from own_bucket(s3, BUCKET, empty_bucket)


def absent(s3, bucket, key):
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key=key)
    return exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def crc32_b64(data):
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


class Pattern:
    """A file-like body of `size` bytes made on the fly (the test holds a MiB at a time)."""

    def __init__(self, size, seed):
        self.size, self.pos, self.block = size, 0, hashlib.sha256(seed).digest() * (MIB // 32)

    def read(self, n=-1):
        n = self.size - self.pos if n is None or n < 0 else min(n, self.size - self.pos)
        out = bytearray()
        while len(out) < n:
            at = (self.pos + len(out)) % MIB
            out += self.block[at : at + n - len(out)]
        self.pos += n
        return bytes(out)

    def seek(self, pos, whence=0):
        self.pos = {0: pos, 1: self.pos + pos, 2: self.size + pos}[whence]
        return self.pos

    def tell(self):
        return self.pos


def test_a_150_mib_single_put_streams_in_and_out(s3, bucket):
    size = 150 * MIB + 12345  # above the old 64 MiB buffer cap, not a multiple of a block
    body = Pattern(size, b"big")
    want = hashlib.sha256()
    while chunk := body.read(MIB):
        want.update(chunk)
    body.seek(0)
    s3.put_object(Bucket=bucket, Key="big/one-put.bin", Body=body, ContentLength=size)
    got = s3.get_object(Bucket=bucket, Key="big/one-put.bin")
    assert got["ContentLength"] == size
    have = hashlib.sha256()
    for chunk in got["Body"].iter_chunks(MIB):
        have.update(chunk)
    assert have.hexdigest() == want.hexdigest()
    # A range across a block boundary (blocks are 1 MiB) reads just those bytes.
    start = 3 * MIB - 10
    part = s3.get_object(Bucket=bucket, Key="big/one-put.bin", Range=f"bytes={start}-{start + 19}")
    body.seek(start)
    assert part["Body"].read() == body.read(20)
    assert part["ContentRange"] == f"bytes {start}-{start + 19}/{size}"


@pytest.mark.parametrize("algorithm", ["CRC32", "SHA1", "SHA256"])
def test_checksums_are_verified_stored_and_returned(s3, bucket, algorithm):
    key = f"sum/{algorithm}.bin"
    data = os.urandom(3 * MIB + 7)
    put = s3.put_object(Bucket=bucket, Key=key, Body=data, ChecksumAlgorithm=algorithm)
    want = {
        "CRC32": crc32_b64(data),
        "SHA1": base64.b64encode(hashlib.sha1(data).digest()).decode(),
        "SHA256": base64.b64encode(hashlib.sha256(data).digest()).decode(),
    }[algorithm]
    assert put[f"Checksum{algorithm}"] == want
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert head[f"Checksum{algorithm}"] == want
    got = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert got[f"Checksum{algorithm}"] == want
    assert got["Body"].read() == data
    # Without checksum mode, no checksum header.
    assert f"Checksum{algorithm}" not in s3.head_object(Bucket=bucket, Key=key)


def make_client_with(**config):
    return boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
        config=CONFIG.merge(Config(**config)),
    )


def test_without_a_checksum_none_is_returned(bucket):
    plain = make_client_with(request_checksum_calculation="when_required")
    plain.put_object(Bucket=bucket, Key="sum/none.bin", Body=b"no checksum")
    head = plain.head_object(Bucket=bucket, Key="sum/none.bin", ChecksumMode="ENABLED")
    assert not [k for k in head if k.startswith("Checksum")], head


def test_a_wrong_checksum_is_bad_digest_and_stores_nothing(s3, bucket):
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="sum/wrong.bin", Body=b"hello", ChecksumCRC32="AAAAAA==")
    assert error_code(exc) == "BadDigest"
    assert absent(s3, bucket, "sum/wrong.bin")


def test_a_wrong_content_md5_is_bad_digest_and_stores_nothing(s3, bucket):
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="sum/md5.bin", Body=b"hello", ContentMD5=wrong)
    assert error_code(exc) == "BadDigest"
    assert absent(s3, bucket, "sum/md5.bin")


def force_trailer(context, **_):
    """Makes botocore send its checksum in an aws-chunked trailer
    (STREAMING-UNSIGNED-PAYLOAD-TRAILER), which it otherwise does only over HTTPS."""
    algorithm = context.get("checksum", {}).get("request_algorithm")
    if isinstance(algorithm, dict):
        algorithm["in"] = "trailer"


def test_boto3_aws_chunked_uploads_with_trailer_checksums(bucket):
    client = make_client()
    for operation in ("PutObject", "UploadPart"):
        client.meta.events.register(f"before-call.s3.{operation}", force_trailer)
    data = os.urandom(5 * MIB + 3)
    put = client.put_object(
        Bucket=bucket, Key="chunked/boto3.bin", Body=data, ChecksumAlgorithm="CRC32"
    )
    assert put["ChecksumCRC32"] == crc32_b64(data)
    got = client.get_object(Bucket=bucket, Key="chunked/boto3.bin", ChecksumMode="ENABLED")
    assert got["ChecksumCRC32"] == crc32_b64(data)
    assert got["Body"].read() == data

    key = "chunked/boto3-mpu.bin"
    parts = [os.urandom(5 * MIB), os.urandom(MIB + 1)]
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="CRC32")[
        "UploadId"
    ]
    done = []
    for number, part in enumerate(parts, 1):
        resp = client.upload_part(
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=part,
            ChecksumAlgorithm="CRC32",
        )
        assert resp["ChecksumCRC32"] == crc32_b64(part)
        done.append({"PartNumber": number, "ETag": resp["ETag"], "ChecksumCRC32": resp["ChecksumCRC32"]})
    client.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
    )
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == b"".join(parts)


# ---- raw requests, signed here ---------------------------------------------------------------


def hmac256(key, text):
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


class Signer:
    """SigV4 for one PUT with Authorization-header signing, and the chunk signatures that
    chain from it (the AWS "Transferring Payload in Multiple Chunks" description)."""

    def __init__(self):
        now = datetime.datetime.now(datetime.timezone.utc)
        self.amz_date, self.date = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        self.scope = f"{self.date}/{REGION}/s3/aws4_request"
        key = hmac256(("AWS4" + SECRET_KEY).encode(), self.date)
        for part in (REGION, "s3", "aws4_request"):
            key = hmac256(key, part)
        self.key = key

    def sign(self, text):
        return hmac.new(self.key, text.encode(), hashlib.sha256).hexdigest()

    def headers(self, path, payload_hash, extra):
        host = urllib.parse.urlparse(ENDPOINT).netloc
        headers = {"host": host, "x-amz-content-sha256": payload_hash, "x-amz-date": self.amz_date}
        headers.update({k.lower(): v for k, v in extra.items()})
        names = sorted(headers)
        canonical = "\n".join(
            [
                "PUT",
                urllib.parse.quote(path, safe="/~"),
                "",
                "".join(f"{n}:{headers[n].strip()}\n" for n in names),
                ";".join(names),
                payload_hash,
            ]
        )
        sts = "\n".join(
            [
                "AWS4-HMAC-SHA256",
                self.amz_date,
                self.scope,
                hashlib.sha256(canonical.encode()).hexdigest(),
            ]
        )
        self.seed = self.sign(sts)
        headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{self.scope}, "
            f"SignedHeaders={';'.join(names)}, Signature={self.seed}"
        )
        return headers

    def chunk_signature(self, previous, data):
        return self.sign(
            "\n".join(
                [
                    "AWS4-HMAC-SHA256-PAYLOAD",
                    self.amz_date,
                    self.scope,
                    previous,
                    EMPTY_SHA256,
                    hashlib.sha256(data).hexdigest(),
                ]
            )
        )

    def trailer_signature(self, previous, trailer_lines):
        return self.sign(
            "\n".join(
                [
                    "AWS4-HMAC-SHA256-TRAILER",
                    self.amz_date,
                    self.scope,
                    previous,
                    hashlib.sha256(trailer_lines.encode()).hexdigest(),
                ]
            )
        )


def send(path, headers, body):
    url = urllib.parse.urlparse(ENDPOINT)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    try:
        conn.request("PUT", path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


def code_of(text):
    return text.split("<Code>")[1].split("</Code>")[0] if "<Code>" in text else None


def chunked_body(signer, pieces, tamper=None, trailer=None):
    """aws-chunked framing of `pieces`, signed if `signer`; `tamper` = index of a chunk whose
    signature is replaced; `trailer` = a checksum trailer line (signed if `signer`)."""
    out, previous = b"", signer.seed if signer else None
    for i, data in enumerate([*pieces, b""]):
        ext = ""
        if signer:
            sig = signer.chunk_signature(previous, data)
            previous = sig
            if i == tamper:
                sig = "0" * 64
            ext = f";chunk-signature={sig}"
        out += f"{len(data):x}{ext}\r\n".encode() + data
        if data:
            out += b"\r\n"
    if trailer:
        out += f"{trailer}\r\n".encode()
        if signer:
            out += f"x-amz-trailer-signature:{signer.trailer_signature(previous, trailer + chr(10))}\r\n".encode()
    return out + b"\r\n"


def chunked_put(bucket, key, pieces, signed=True, tamper=None, trailer=None):
    signer = Signer()
    payload = {
        (True, False): "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        (True, True): "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        (False, True): "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    }[(signed, trailer is not None)]
    extra = {
        "content-encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(sum(len(p) for p in pieces)),
    }
    if trailer:
        extra["x-amz-trailer"] = trailer.split(":")[0]
    path = f"/{bucket}/{key}"
    headers = signer.headers(path, payload, extra)
    body = chunked_body(signer if signed else None, pieces, tamper, trailer)
    headers["content-length"] = str(len(body))
    return send(path, headers, body)


PIECES = [os.urandom(64 * 1024), os.urandom(64 * 1024), os.urandom(1000)]


def test_signed_chunks_are_accepted(s3, bucket):
    status, text = chunked_put(bucket, "chunked/signed.bin", PIECES)
    assert status == 200, text
    assert s3.get_object(Bucket=bucket, Key="chunked/signed.bin")["Body"].read() == b"".join(PIECES)


def test_a_bad_chunk_signature_is_refused_and_stores_nothing(s3, bucket):
    status, text = chunked_put(bucket, "chunked/bad-sig.bin", PIECES, tamper=1)
    assert (status, code_of(text)) == (403, "SignatureDoesNotMatch"), text
    assert absent(s3, bucket, "chunked/bad-sig.bin")


def test_signed_trailer_with_its_checksum(s3, bucket):
    data = b"".join(PIECES)
    trailer = f"x-amz-checksum-crc32:{crc32_b64(data)}"
    status, text = chunked_put(bucket, "chunked/trailer.bin", PIECES, trailer=trailer)
    assert status == 200, text
    head = s3.head_object(Bucket=bucket, Key="chunked/trailer.bin", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == crc32_b64(data)


def test_unsigned_trailer_checksum_is_verified(s3, bucket):
    data = b"".join(PIECES)
    good = f"x-amz-checksum-crc32:{crc32_b64(data)}"
    status, text = chunked_put(bucket, "chunked/unsigned.bin", PIECES, signed=False, trailer=good)
    assert status == 200, text
    assert s3.get_object(Bucket=bucket, Key="chunked/unsigned.bin")["Body"].read() == data
    bad = "x-amz-checksum-crc32:AAAAAA=="
    status, text = chunked_put(bucket, "chunked/unsigned-bad.bin", PIECES, signed=False, trailer=bad)
    assert (status, code_of(text)) == (400, "BadDigest"), text
    assert absent(s3, bucket, "chunked/unsigned-bad.bin")


def reflected_crc(data, poly, bits):
    """A reflected CRC with all-ones init and final xor (CRC-32C, CRC-64/NVME), bit by bit:
    slow, but independent of the server's table-driven crates."""
    mask = (1 << bits) - 1
    crc = mask
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (poly if crc & 1 else 0)
    return base64.b64encode((crc ^ mask).to_bytes(bits // 8, "big")).decode()


def test_crc32c_and_crc64nvme_headers_are_verified(s3, bucket):
    assert reflected_crc(b"123456789", 0x82F63B78, 32) == base64.b64encode(
        bytes.fromhex("e3069283")
    ).decode(), "the CRC-32C check value"
    data = os.urandom(3000)
    for name, poly, bits in [("crc32c", 0x82F63B78, 32), ("crc64nvme", 0x9A6C9329AC4BC9B5, 64)]:
        value = reflected_crc(data, poly, bits)
        for claimed, key in [(value, f"sum/{name}.bin"), (reflected_crc(b"x", poly, bits), f"sum/{name}-bad.bin")]:
            signer = Signer()
            path = f"/{bucket}/{key}"
            headers = signer.headers(path, "UNSIGNED-PAYLOAD", {f"x-amz-checksum-{name}": claimed})
            headers["content-length"] = str(len(data))
            status, text = send(path, headers, data)
            if claimed == value:
                assert status == 200, text
                head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
                field = {"crc32c": "ChecksumCRC32C", "crc64nvme": "ChecksumCRC64NVME"}[name]
                assert head[field] == value
            else:
                assert (status, code_of(text)) == (400, "BadDigest"), text
                assert absent(s3, bucket, key)


def test_a_wrong_signed_payload_hash_is_refused_and_stores_nothing(s3, bucket):
    signer = Signer()
    body = os.urandom(200 * 1024)
    wrong = hashlib.sha256(b"something else").hexdigest()
    path = f"/{bucket}/signed/wrong-sha.bin"
    headers = signer.headers(path, wrong, {})
    headers["content-length"] = str(len(body))
    status, text = send(path, headers, body)
    assert (status, code_of(text)) == (400, "XAmzContentSHA256Mismatch"), text
    assert absent(s3, bucket, "signed/wrong-sha.bin")
