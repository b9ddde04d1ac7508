"""Real-client tests of bucket versioning: boto3 against GetBucketVersioning,
PutBucketVersioning, versionId on GET/HEAD/DELETE, delete markers and ListObjectVersions.

Why: SDKs parse versioning answers strictly (the VersionId and DeleteMarker response
fields come from headers, list_object_versions splits Version and DeleteMarker elements),
and tools that "undelete" or purge a bucket rely on IsLatest and on deleting by id — only a
real client shows both sides agree.

Configuration: the same environment as test_s3_basic.py (see conftest.py); the tests use
their own bucket, HANGAR_TEST_BUCKET + "-ver".
Run: tests/run-s3-tests.sh -k versioning
"""

import os

import pytest
from botocore.exceptions import ClientError

from s3util import error_code, make_client, own_bucket

BUCKET = os.environ["HANGAR_TEST_BUCKET"] + "-ver"



def http_status(excinfo):
    return excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"]


def response_headers(excinfo):
    return excinfo.value.response["ResponseMetadata"]["HTTPHeaders"]


@pytest.fixture(scope="module")
def s3():
    return make_client()


def purge(s3, bucket):
    """Deletes every version and delete marker, as tools emptying a versioned bucket do."""
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for entry in page.get("Versions", []) + page.get("DeleteMarkers", []):
            s3.delete_object(Bucket=bucket, Key=entry["Key"], VersionId=entry["VersionId"])


@pytest.fixture(scope="module")
def bucket(s3):
    yield from own_bucket(s3, BUCKET, purge)


def versions_of(s3, bucket, key):
    """(kind, version id, is latest) of every version of `key`, newest first."""
    listing = s3.list_object_versions(Bucket=bucket, Prefix=key)
    entries = [("version", v) for v in listing.get("Versions", [])]
    entries += [("marker", m) for m in listing.get("DeleteMarkers", [])]
    entries = [(kind, e) for kind, e in entries if e["Key"] == key]
    entries.sort(key=lambda ke: ke[1]["VersionId"], reverse=True)
    return [(kind, e["VersionId"], e["IsLatest"]) for kind, e in entries]


def test_a_new_bucket_is_unversioned(s3, bucket):
    answer = s3.get_bucket_versioning(Bucket=bucket)
    assert "Status" not in answer
    put = s3.put_object(Bucket=bucket, Key="plain", Body=b"x")
    # Hangar's choice for a bucket never versioned: no version id at all (S3 sends none).
    assert "VersionId" not in put
    assert "VersionId" not in s3.head_object(Bucket=bucket, Key="plain")
    deleted = s3.delete_object(Bucket=bucket, Key="plain")
    assert "DeleteMarker" not in deleted
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="plain")
    assert http_status(exc) == 404
    assert "x-amz-delete-marker" not in response_headers(exc)


def test_versions_delete_markers_and_undelete(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    key = "doc.txt"
    v1 = s3.put_object(Bucket=bucket, Key=key, Body=b"first")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key=key, Body=b"second")["VersionId"]
    assert v1 != v2

    # Each version by id; the current one without.
    for version, body in [(v1, b"first"), (v2, b"second")]:
        got = s3.get_object(Bucket=bucket, Key=key, VersionId=version)
        assert got["Body"].read() == body
        assert got["VersionId"] == version
        assert s3.head_object(Bucket=bucket, Key=key, VersionId=version)["VersionId"] == version
    current = s3.get_object(Bucket=bucket, Key=key)
    assert (current["Body"].read(), current["VersionId"]) == (b"second", v2)

    # A plain delete writes a marker; the key is gone, the marker says so.
    deleted = s3.delete_object(Bucket=bucket, Key=key)
    assert deleted["DeleteMarker"] is True
    marker = deleted["VersionId"]
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key=key)
    assert (error_code(exc), http_status(exc)) == ("NoSuchKey", 404)
    assert response_headers(exc)["x-amz-delete-marker"] == "true"
    assert response_headers(exc)["x-amz-version-id"] == marker
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key=key)
    assert http_status(exc) == 404
    assert response_headers(exc)["x-amz-delete-marker"] == "true"
    # Naming the marker's version: 405, as S3.
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key=key, VersionId=marker)
    assert http_status(exc) == 405
    # Old versions stay readable by id.
    assert s3.get_object(Bucket=bucket, Key=key, VersionId=v1)["Body"].read() == b"first"
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix=key)

    assert versions_of(s3, bucket, key) == [
        ("marker", marker, True),
        ("version", v2, False),
        ("version", v1, False),
    ]
    listing = s3.list_object_versions(Bucket=bucket, Prefix=key)
    sizes = {v["VersionId"]: v["Size"] for v in listing["Versions"]}
    assert sizes == {v1: 5, v2: 6}
    assert all(v["ETag"].startswith('"') for v in listing["Versions"])

    # Deleting the marker by id undeletes: the newest version is current again.
    undeleted = s3.delete_object(Bucket=bucket, Key=key, VersionId=marker)
    assert undeleted["VersionId"] == marker
    assert undeleted.get("DeleteMarker") is True
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"second"

    # Deleting a version by id removes it for good.
    removed = s3.delete_object(Bucket=bucket, Key=key, VersionId=v1)
    assert removed["VersionId"] == v1
    assert "DeleteMarker" not in removed
    assert versions_of(s3, bucket, key) == [("version", v2, True)]
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key=key, VersionId=v1)
    assert (error_code(exc), http_status(exc)) == ("NoSuchVersion", 404)


def test_suspended_versioning_is_reported(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"
    # History written while enabled survives suspension.
    key = "suspended.txt"
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    kept = s3.put_object(Bucket=bucket, Key=key, Body=b"kept")["VersionId"]
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    s3.put_object(Bucket=bucket, Key=key, Body=b"one")
    latest = s3.put_object(Bucket=bucket, Key=key, Body=b"two")["VersionId"]
    # Suspended: the second unversioned write replaced the first; the kept one stays.
    assert versions_of(s3, bucket, key) == [("version", latest, True), ("version", kept, False)]
    assert s3.get_object(Bucket=bucket, Key=key, VersionId=kept)["Body"].read() == b"kept"


def test_bad_version_ids_and_documents_are_refused(s3, bucket):
    s3.put_object(Bucket=bucket, Key="some", Body=b"x")
    for bad in ["not-a-version", "null", "0" * 31]:
        with pytest.raises(ClientError) as exc:
            s3.get_object(Bucket=bucket, Key="some", VersionId=bad)
        assert (error_code(exc), http_status(exc)) == ("InvalidArgument", 400), bad
        with pytest.raises(ClientError) as exc:
            s3.delete_object(Bucket=bucket, Key="some", VersionId=bad)
        assert error_code(exc) == "InvalidArgument", bad
    unknown = "0000000000000001" + "0" * 16
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="some", VersionId=unknown)
    assert (error_code(exc), http_status(exc)) == ("NoSuchVersion", 404)
    # Deleting a version that is not there succeeds, as in S3.
    s3.delete_object(Bucket=bucket, Key="some", VersionId=unknown)
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Sometimes"})
    assert (error_code(exc), http_status(exc)) == ("MalformedXML", 400)


def test_list_object_versions_pages_and_rolls_up(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for key in ["pg/a", "pg/a", "pg/a", "pg/b", "pg/dir/x", "pg/dir/y"]:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    s3.delete_object(Bucket=bucket, Key="pg/b")
    top = s3.list_object_versions(Bucket=bucket, Prefix="pg/", Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["pg/dir/"]
    assert len(top["Versions"]) == 4 and len(top["DeleteMarkers"]) == 1
    # Pages of two entries, resumed by key and version id markers, add up to one listing.
    full = s3.list_object_versions(Bucket=bucket, Prefix="pg/")
    want = sorted(v["VersionId"] for v in full["Versions"] + full["DeleteMarkers"])
    seen, pages = [], 0
    paginator = s3.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket, Prefix="pg/", PaginationConfig={"PageSize": 2}):
        pages += 1
        entries = page.get("Versions", []) + page.get("DeleteMarkers", [])
        assert len(entries) <= 2
        seen += [e["VersionId"] for e in entries]
    assert sorted(seen) == want and len(seen) == len(want) == 7
    assert pages == 4
