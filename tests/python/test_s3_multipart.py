"""Real-client tests of multipart uploads: boto3 part by part, and the aws CLI's `s3 cp`.

Why: multipart is how every SDK and the CLI upload anything large, and they check what the
server answers against what they computed (the "-N" ETag of a completed upload), so only
real clients show that both sides agree.

Configuration: the same environment as test_s3_basic.py (see conftest.py); the tests use
their own bucket, HANGAR_TEST_BUCKET + "-mpu".
Run: tests/run-s3-tests.sh -k multipart
"""

import base64
import hashlib
import os
import subprocess
import sys
import zlib

import pytest
from botocore.exceptions import ClientError

from s3util import (
    ENDPOINT,
    REGION,
    abort_uploads,
    delete_objects,
    error_code,
    make_client,
    own_bucket,
)

BUCKET = os.environ["HANGAR_TEST_BUCKET"] + "-mpu"
MIB = 1024 * 1024



@pytest.fixture(scope="module")
def s3():
    return make_client()


def empty_bucket(s3, bucket):
    abort_uploads(s3, bucket)
    delete_objects(s3, bucket)


@pytest.fixture(scope="module")
def bucket(s3):
    yield from own_bucket(s3, BUCKET, empty_bucket)


def multipart_etag(parts):
    """The ETag S3 gives a completed upload: MD5 of the binary part MD5s, then "-N"."""
    digests = b"".join(hashlib.md5(p).digest() for p in parts)
    return f'"{hashlib.md5(digests).hexdigest()}-{len(parts)}"'


def test_parts_out_of_order_complete_into_the_object(s3, bucket):
    key = "mpu/three-parts.bin"
    parts = [os.urandom(5 * MIB), os.urandom(5 * MIB), os.urandom(1 * MIB)]
    created = s3.create_multipart_upload(
        Bucket=bucket, Key=key, ContentType="video/mp4", Metadata={"owner": "ops"}
    )
    upload_id = created["UploadId"]
    etags = {}
    for number in (3, 1, 2):
        resp = s3.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=parts[number - 1]
        )
        assert resp["ETag"] == f'"{hashlib.md5(parts[number - 1]).hexdigest()}"'
        etags[number] = resp["ETag"]

    listed = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)["Parts"]
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed] == [
        (n, etags[n], len(parts[n - 1])) for n in (1, 2, 3)
    ]
    uploads = s3.list_multipart_uploads(Bucket=bucket, Prefix="mpu/")["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [(key, upload_id)]

    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etags[n]} for n in (1, 2, 3)]},
    )
    assert done["ETag"] == multipart_etag(parts)
    assert done["ETag"].endswith('-3"')

    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["Body"].read() == b"".join(parts)
    assert got["ETag"] == done["ETag"]
    assert got["ContentType"] == "video/mp4"
    assert got["Metadata"] == {"owner": "ops"}
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket, Prefix="mpu/")


def test_reads_by_part_number(s3, bucket):
    """GET/HEAD ?partNumber=N serve part N of a completed upload (206, its range, the parts
    count), also after a copy; part 1 of a plain object is the whole object; beyond the
    last part is 416 InvalidPartNumber; with a Range header, 400 InvalidRequest."""
    key = "mpu/by-part.bin"
    parts = [os.urandom(5 * MIB), os.urandom(5 * MIB), os.urandom(777)]
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    done = []
    for number, data in enumerate(parts, start=1):
        r = s3.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
        )
        done.append({"PartNumber": number, "ETag": r["ETag"]})
    s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
    )
    total = sum(len(p) for p in parts)
    s3.copy_object(Bucket=bucket, Key=key + ".copy", CopySource={"Bucket": bucket, "Key": key})
    for name in (key, key + ".copy"):
        start = 0
        for number, data in enumerate(parts, start=1):
            got = s3.get_object(Bucket=bucket, Key=name, PartNumber=number)
            assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
            assert got["PartsCount"] == 3
            assert got["ContentRange"] == f"bytes {start}-{start + len(data) - 1}/{total}"
            assert got["Body"].read() == data
            start += len(data)
        head = s3.head_object(Bucket=bucket, Key=name, PartNumber=2)
        assert (head["ContentLength"], head["PartsCount"]) == (5 * MIB, 3)
        with pytest.raises(ClientError) as exc:
            s3.get_object(Bucket=bucket, Key=name, PartNumber=4)
        assert error_code(exc) == "InvalidPartNumber"
    assert "PartsCount" not in s3.head_object(Bucket=bucket, Key=key)

    s3.put_object(Bucket=bucket, Key="mpu/plain.bin", Body=b"plain body")
    whole = s3.get_object(Bucket=bucket, Key="mpu/plain.bin", PartNumber=1)
    assert whole["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert whole["ContentRange"] == "bytes 0-9/10" and "PartsCount" not in whole
    assert whole["Body"].read() == b"plain body"
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="mpu/plain.bin", PartNumber=2)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key=key, PartNumber=1, Range="bytes=0-1")
    assert error_code(exc) == "InvalidRequest"


def test_get_object_attributes(s3, bucket):
    """GetObjectAttributes answers the attributes asked for: ETag (unquoted), size, storage
    class, the checksum and, for an object made of parts, the parts (paged)."""
    key = "mpu/attributes.bin"
    parts = [os.urandom(5 * MIB), os.urandom(5 * MIB), os.urandom(10)]
    upload_id, done = _upload(s3, bucket, key, parts, "CRC32", "FULL_OBJECT")
    completed = s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
    )
    every = ["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"]
    got = s3.get_object_attributes(Bucket=bucket, Key=key, ObjectAttributes=every)
    assert got["ETag"] == completed["ETag"].strip('"')
    assert got["ObjectSize"] == sum(len(p) for p in parts)
    assert got["StorageClass"] == "STANDARD"
    assert got["Checksum"] == {
        "ChecksumCRC32": completed["ChecksumCRC32"],
        "ChecksumType": "FULL_OBJECT",
    }
    listed = got["ObjectParts"]
    assert (listed["TotalPartsCount"], listed["IsTruncated"]) == (3, False)
    assert [(p["PartNumber"], p["Size"]) for p in listed["Parts"]] == [
        (1, 5 * MIB), (2, 5 * MIB), (3, 10)
    ]
    page = s3.get_object_attributes(
        Bucket=bucket, Key=key, ObjectAttributes=["ObjectParts"], MaxParts=1,
        PartNumberMarker=1,
    )
    assert "ETag" not in page, "only what was asked for"
    assert [p["PartNumber"] for p in page["ObjectParts"]["Parts"]] == [2]
    assert (page["ObjectParts"]["IsTruncated"], page["ObjectParts"]["NextPartNumberMarker"]) == (
        True, 2
    )
    # A plain object has no parts; a missing key is NoSuchKey.
    s3.put_object(Bucket=bucket, Key="mpu/attributes-plain", Body=b"12345")
    plain = s3.get_object_attributes(
        Bucket=bucket, Key="mpu/attributes-plain", ObjectAttributes=["ObjectParts", "ObjectSize"]
    )
    assert plain["ObjectSize"] == 5 and "ObjectParts" not in plain
    with pytest.raises(ClientError) as exc:
        s3.get_object_attributes(Bucket=bucket, Key="mpu/none", ObjectAttributes=["ETag"])
    assert error_code(exc) == "NoSuchKey"


def test_abort_leaves_no_upload_and_no_object(s3, bucket):
    key = "mpu/aborted.bin"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"x" * 1000)
    s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key=key)
    assert error_code(exc) == "NoSuchKey"
    with pytest.raises(ClientError) as exc:
        s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)
    assert error_code(exc) == "NoSuchUpload"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_completion_with_a_wrong_part_etag_is_invalid_part(s3, bucket):
    key = "mpu/wrong-etag.bin"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    try:
        s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"data")
        wrong = '"' + "0" * 32 + '"'
        with pytest.raises(ClientError) as exc:
            s3.complete_multipart_upload(
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": wrong}]},
            )
        assert error_code(exc) == "InvalidPart"
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    finally:
        s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)


def test_small_middle_part_is_entity_too_small(s3, bucket):
    key = "mpu/too-small.bin"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    try:
        etags = [
            s3.upload_part(
                Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=n, Body=b"p" * 100
            )["ETag"]
            for n in (1, 2)
        ]
        with pytest.raises(ClientError) as exc:
            s3.complete_multipart_upload(
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={
                    "Parts": [{"PartNumber": n, "ETag": e} for n, e in zip((1, 2), etags)]
                },
            )
        assert error_code(exc) == "EntityTooSmall"
    finally:
        s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)


@pytest.fixture(scope="module")
def aws(tmp_path_factory):
    """The aws CLI, isolated from ~/.aws. Parts of 16 MiB keep each request far below the
    server's body cap, and 4 concurrent requests bound what the server buffers at once."""
    exe = os.path.join(os.path.dirname(sys.executable), "aws")
    home = tmp_path_factory.mktemp("aws-home-mpu")
    config = home / "config"
    config.write_text(
        f"[default]\nregion = {REGION}\ns3 =\n    addressing_style = path\n"
        "    multipart_threshold = 8MB\n    multipart_chunksize = 16MB\n"
        "    max_concurrent_requests = 4\n"
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


def test_cli_copies_100_mib_up_and_down(aws, s3, bucket, tmp_path):
    src, dst = tmp_path / "big.bin", tmp_path / "back.bin"
    with open(src, "wb") as f:
        for _ in range(100):
            f.write(os.urandom(MIB))
    aws("s3", "cp", "--only-show-errors", str(src), f"s3://{bucket}/cli/big.bin")
    head = s3.head_object(Bucket=bucket, Key="cli/big.bin")
    assert head["ContentLength"] == 100 * MIB
    assert head["ETag"].endswith('-7"'), "100 MiB in 16 MiB parts is a 7-part upload"
    aws("s3", "cp", "--only-show-errors", f"s3://{bucket}/cli/big.bin", str(dst))
    with open(src, "rb") as a, open(dst, "rb") as b:
        assert hashlib.sha256(a.read()).digest() == hashlib.sha256(b.read()).digest()


# ---- checksums of completed uploads ----------------------------------------------------
# Why: SDKs verify what they download against the object's checksum, and a demanding user
# asks for FULL_OBJECT CRCs so that a multipart object's checksum equals the one computed
# over the file. Every expected value below is computed here (zlib, hashlib, and the small
# table-free CRC-32C / CRC-64/NVME below), never taken from the server or from botocore.


_CRC_TABLES = {}


def _reflected_crc(data, poly, width):
    """A reflected CRC with all-ones init and final xor (CRC-32C, CRC-64/NVME)."""
    table = _CRC_TABLES.get(poly)
    if table is None:
        table = []
        for byte in range(256):
            crc = byte
            for _ in range(8):
                crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
            table.append(crc)
        _CRC_TABLES[poly] = table
    mask = (1 << width) - 1
    crc = mask
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ mask


def _crc_bytes(algorithm, data):
    if algorithm == "CRC32":
        return zlib.crc32(data).to_bytes(4, "big")
    if algorithm == "CRC32C":
        return _reflected_crc(data, 0x82F63B78, 32).to_bytes(4, "big")
    return _reflected_crc(data, 0x9A6C9329AC4BC9B5, 64).to_bytes(8, "big")


def _b64(raw):
    return base64.b64encode(raw).decode()


def test_reference_crcs_match_the_published_check_values():
    # The CRC catalogue's check values of "123456789": the test's own CRCs are right.
    assert _crc_bytes("CRC32C", b"123456789").hex() == "e3069283"
    assert _crc_bytes("CRC64NVME", b"123456789").hex() == "ae8b14860a799888"


def _upload(s3, bucket, key, parts, algorithm, checksum_type=None):
    extra = {"ChecksumType": checksum_type} if checksum_type else {}
    created = s3.create_multipart_upload(
        Bucket=bucket, Key=key, ChecksumAlgorithm=algorithm, **extra
    )
    if checksum_type:
        assert created["ChecksumType"] == checksum_type
    upload_id = created["UploadId"]
    done = []
    for number, data in enumerate(parts, start=1):
        field = "Checksum" + algorithm
        if algorithm in ("CRC32C", "CRC64NVME"):
            # botocore computes these only with awscrt installed: send our own value.
            checksum = {field: _b64(_crc_bytes(algorithm, data))}
        else:
            checksum = {"ChecksumAlgorithm": algorithm}  # botocore computes it
        resp = s3.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data, **checksum
        )
        done.append({"PartNumber": number, "ETag": resp["ETag"], field: resp[field]})
    return upload_id, done


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "CRC64NVME"])
def test_full_object_checksum_is_the_crc_of_the_whole_object(s3, bucket, algorithm):
    key = f"mpu/full-{algorithm}.bin"
    parts = [os.urandom(5 * MIB + 17), os.urandom(333)]
    whole = b"".join(parts)
    expected = _b64(_crc_bytes(algorithm, whole))
    upload_id, done = _upload(s3, bucket, key, parts, algorithm, "FULL_OBJECT")
    for number, data in enumerate(parts, start=1):
        assert done[number - 1]["Checksum" + algorithm] == _b64(_crc_bytes(algorithm, data))
    listed = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)
    assert (listed["ChecksumAlgorithm"], listed["ChecksumType"]) == (algorithm, "FULL_OBJECT")
    open_uploads = s3.list_multipart_uploads(Bucket=bucket, Prefix=key)["Uploads"]
    ours = [u for u in open_uploads if u["UploadId"] == upload_id]
    assert [(u["ChecksumAlgorithm"], u["ChecksumType"]) for u in ours] == [
        (algorithm, "FULL_OBJECT")
    ]
    assert [p["Checksum" + algorithm] for p in listed["Parts"]] == [
        d["Checksum" + algorithm] for d in done
    ]
    completed = s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
    )
    assert completed["Checksum" + algorithm] == expected
    assert completed["ChecksumType"] == "FULL_OBJECT"
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert head["Checksum" + algorithm] == expected
    assert head["ChecksumType"] == "FULL_OBJECT"
    # botocore checks the body it reads against a full-object checksum it is given.
    got = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert got["Checksum" + algorithm] == expected
    assert got["Body"].read() == whole


@pytest.mark.parametrize("algorithm", ["CRC32", "SHA256"])
def test_upload_part_copy_into_a_checksummed_upload_computes_the_part_checksum(
    s3, bucket, algorithm
):
    """UploadPartCopy into an upload that declared an algorithm answers the copied part's
    checksum (S3 does); the upload then completes with it, COMPOSITE or FULL_OBJECT."""
    source = os.urandom(6 * MIB + 5)
    s3.put_object(Bucket=bucket, Key="mpu/copy-source.bin", Body=source)
    kind = "FULL_OBJECT" if algorithm == "CRC32" else "COMPOSITE"
    key = f"mpu/copied-{algorithm}.bin"
    upload_id = s3.create_multipart_upload(
        Bucket=bucket, Key=key, ChecksumAlgorithm=algorithm, ChecksumType=kind
    )["UploadId"]
    field = "Checksum" + algorithm

    def checksum(data):
        if algorithm == "SHA256":
            return _b64(hashlib.sha256(data).digest())
        return _b64(_crc_bytes(algorithm, data))

    first = source[: 5 * MIB]
    copied = s3.upload_part_copy(
        Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1,
        CopySource={"Bucket": bucket, "Key": "mpu/copy-source.bin"},
        CopySourceRange=f"bytes=0-{5 * MIB - 1}",
    )["CopyPartResult"]
    assert copied[field] == checksum(first)
    assert copied["ETag"].strip('"') == hashlib.md5(first).hexdigest()
    tail = b"tail"
    sent = s3.upload_part(
        Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=2, Body=tail,
        **{field: checksum(tail)},
    )
    listed = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)["Parts"]
    assert [p[field] for p in listed] == [checksum(first), checksum(tail)]
    parts = [
        {"PartNumber": 1, "ETag": copied["ETag"], field: copied[field]},
        {"PartNumber": 2, "ETag": sent["ETag"], field: sent[field]},
    ]
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
    )
    if kind == "FULL_OBJECT":
        assert done[field] == checksum(first + tail)
    else:
        joined = base64.b64decode(checksum(first)) + base64.b64decode(checksum(tail))
        assert done[field] == f"{_b64(hashlib.sha256(joined).digest())}-2"
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == first + tail


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "SHA1", "SHA256"])
def test_composite_checksum_hashes_the_part_checksums(s3, bucket, algorithm):
    key = f"mpu/composite-{algorithm}.bin"
    parts = [os.urandom(5 * MIB), os.urandom(1234)]
    if algorithm.startswith("SHA"):
        digest = lambda d: hashlib.new(algorithm.lower(), d).digest()  # noqa: E731
    else:
        digest = lambda d: _crc_bytes(algorithm, d)  # noqa: E731
    expected = _b64(digest(b"".join(digest(p) for p in parts))) + f"-{len(parts)}"
    upload_id, done = _upload(s3, bucket, key, parts, algorithm)
    completed = s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
    )
    assert completed["Checksum" + algorithm] == expected
    assert completed["ChecksumType"] == "COMPOSITE"
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert (head["Checksum" + algorithm], head["ChecksumType"]) == (expected, "COMPOSITE")
    listed = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert listed["Body"].read() == b"".join(parts)


def test_wrong_part_checksum_in_the_completion_is_invalid_part(s3, bucket):
    key = "mpu/wrong-part-checksum.bin"
    parts = [os.urandom(5 * MIB), b"tail"]
    upload_id, done = _upload(s3, bucket, key, parts, "SHA256")
    done[1]["ChecksumSHA256"] = _b64(hashlib.sha256(b"not the tail").digest())
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
        )
    assert error_code(e) == "InvalidPart"
    # COMPOSITE needs every part's checksum: S3 answers InvalidRequest without one.
    del done[1]["ChecksumSHA256"]
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
        )
    assert error_code(e) == "InvalidRequest"
    # The upload is still open and completes with the right checksums.
    done[1]["ChecksumSHA256"] = _b64(hashlib.sha256(b"tail").digest())
    s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
    )
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"".join(parts)


def test_wrong_full_object_checksum_is_bad_digest(s3, bucket):
    key = "mpu/wrong-full-checksum.bin"
    parts = [os.urandom(5 * MIB), b"tail"]
    upload_id, done = _upload(s3, bucket, key, parts, "CRC32", "FULL_OBJECT")
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done},
            ChecksumCRC32=_b64(zlib.crc32(b"something else").to_bytes(4, "big")),
            ChecksumType="FULL_OBJECT",
        )
    assert error_code(e) == "BadDigest"
    right = _b64(zlib.crc32(b"".join(parts)).to_bytes(4, "big"))
    done_resp = s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done},
        ChecksumCRC32=right, ChecksumType="FULL_OBJECT",
    )
    assert done_resp["ChecksumCRC32"] == right


def test_invalid_checksum_declarations_are_refused(s3, bucket):
    for algorithm, checksum_type in [("SHA256", "FULL_OBJECT"), ("CRC64NVME", "COMPOSITE")]:
        with pytest.raises(ClientError) as e:
            s3.create_multipart_upload(
                Bucket=bucket, Key="mpu/refused", ChecksumAlgorithm=algorithm,
                ChecksumType=checksum_type,
            )
        assert error_code(e) == "InvalidRequest"


def test_cli_multipart_upload_with_a_sha256_checksum(aws, s3, bucket, tmp_path):
    """The aws CLI's `--checksum-algorithm`: a COMPOSITE SHA256 upload whose completion
    sends each part's checksum (s3transfer, as SDKs do), in 16 MiB parts."""
    src = tmp_path / "sha.bin"
    parts = [os.urandom(16 * MIB), os.urandom(3 * MIB)]
    src.write_bytes(b"".join(parts))
    key = "cli/sha256.bin"
    aws("s3", "cp", "--only-show-errors", "--checksum-algorithm", "SHA256", str(src),
        f"s3://{bucket}/{key}")
    joined = b"".join(hashlib.sha256(p).digest() for p in parts)
    expected = _b64(hashlib.sha256(joined).digest()) + "-2"
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert (head["ChecksumSHA256"], head["ChecksumType"]) == (expected, "COMPOSITE")


def test_a_part_checksummed_with_another_algorithm_is_refused(s3, bucket):
    key = "mpu/mismatch.bin"
    upload_id = s3.create_multipart_upload(
        Bucket=bucket, Key=key, ChecksumAlgorithm="SHA256"
    )["UploadId"]
    try:
        with pytest.raises(ClientError) as e:
            s3.upload_part(
                Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"data",
                ChecksumAlgorithm="CRC32",
            )
        assert error_code(e) == "InvalidRequest"
        assert "mismatch" in e.value.response["Error"]["Message"]
        listed = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)
        assert listed.get("Parts", []) == [], "the refused part was not recorded"
    finally:
        s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
