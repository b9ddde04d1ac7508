"""Real-client tests of bucket lifecycle rules: boto3's put/get/delete of a
LifecycleConfiguration, the refusal of actions Hangar does not perform, and — against the
single `hangar dev` node, whose admin API the runner exposes — a rule applied at once
through `POST /v1/lifecycle/run` instead of the daily pass.

Why: a lifecycle rule deletes data. A rule the server silently ignores (a transition, a tag
filter) leaves a client believing data will go when it stays, or the reverse; so what is
not performed is refused, naming the element, and what is accepted is shown back exactly.
The expiring test checks both sides: the keys under the rule's prefix go, the others stay.

Configuration: the same environment as test_s3_basic.py (see conftest.py); the expiry test
also needs HANGAR_ADMIN_URL and HANGAR_ADMIN_TOKEN (set by tests/run-s3-tests.sh; skipped
through the cluster, where each node covers only the buckets it is first replica of).
Bucket: HANGAR_TEST_BUCKET + "-lifecycle".
Run: tests/run-s3-tests.sh -k lifecycle
"""

import datetime
import json
import os
import subprocess
import urllib.request

import pytest
from botocore.exceptions import ClientError

from s3util import delete_objects, error_code, make_client, own_bucket

BUCKET = os.environ["HANGAR_TEST_BUCKET"] + "-lifecycle"
ADMIN = os.environ.get("HANGAR_ADMIN_URL", "").rstrip("/")
TOKEN = os.environ.get("HANGAR_ADMIN_TOKEN", "")
PAST = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)

RULES = [
    {
        "ID": "logs",
        "Filter": {"Prefix": "logs/"},
        "Status": "Enabled",
        "Expiration": {"Days": 30},
    },
    {
        "ID": "big-videos",
        "Filter": {
            "And": {
                "Prefix": "videos/",
                "ObjectSizeGreaterThan": 1000,
                "ObjectSizeLessThan": 5000000,
            }
        },
        "Status": "Disabled",
        "Expiration": {"Date": PAST},
    },
    {
        "ID": "uploads",
        "Filter": {"Prefix": "tmp/"},
        "Status": "Enabled",
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
    },
]


@pytest.fixture(scope="module")
def s3():
    return make_client()


def empty(s3, bucket):
    delete_objects(s3, bucket)
    s3.delete_bucket_lifecycle(Bucket=bucket)


@pytest.fixture(scope="module")
def bucket(s3):
    yield from own_bucket(s3, BUCKET, empty)


def put_rules(s3, bucket, rules):
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration={"Rules": rules}
    )


def test_rules_round_trip_through_other_nodes(s3, bucket):
    put_rules(s3, bucket, RULES)
    got = make_client().get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert got == RULES
    make_client().delete_bucket_lifecycle(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        make_client().get_bucket_lifecycle_configuration(Bucket=bucket)
    assert error_code(e) == "NoSuchLifecycleConfiguration"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


@pytest.mark.parametrize(
    "action,element",
    [
        ({"Transitions": [{"Days": 30, "StorageClass": "GLACIER"}]}, "Transition"),
        (
            {"NoncurrentVersionTransitions": [{"NoncurrentDays": 3, "StorageClass": "GLACIER"}]},
            "NoncurrentVersionTransition",
        ),
    ],
)
def test_actions_not_performed_are_refused_naming_them(s3, bucket, action, element):
    rule = {"ID": "r", "Filter": {"Prefix": ""}, "Status": "Enabled", **action}
    with pytest.raises(ClientError) as e:
        put_rules(s3, bucket, [rule])
    assert error_code(e) == "NotImplemented"
    assert element in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert error_code(e) == "NoSuchLifecycleConfiguration", "nothing was stored"


VERSION_RULES = [
    {
        "ID": "history",
        "Filter": {"Prefix": "docs/"},
        "Status": "Enabled",
        "NoncurrentVersionExpiration": {"NoncurrentDays": 30, "NewerNoncurrentVersions": 3},
    },
    {
        "ID": "markers",
        "Filter": {},
        "Status": "Enabled",
        "Expiration": {"ExpiredObjectDeleteMarker": True},
    },
]


def test_version_rules_round_trip_through_other_nodes(s3, bucket):
    put_rules(s3, bucket, VERSION_RULES)
    got = make_client().get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert got == VERSION_RULES
    s3.delete_bucket_lifecycle(Bucket=bucket)


def test_invalid_version_rules_are_refused(s3, bucket):
    base = {"ID": "r", "Filter": {}, "Status": "Enabled"}
    for action in [
        {"NoncurrentVersionExpiration": {"NoncurrentDays": 0}},
        {"NoncurrentVersionExpiration": {"NoncurrentDays": 1, "NewerNoncurrentVersions": 101}},
        # S3 refuses ExpiredObjectDeleteMarker next to Days or Date.
        {"Expiration": {"Days": 1, "ExpiredObjectDeleteMarker": True}},
    ]:
        with pytest.raises(ClientError) as e:
            put_rules(s3, bucket, [{**base, **action}])
        assert error_code(e) == "InvalidArgument", action
    with pytest.raises(ClientError) as e:
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert error_code(e) == "NoSuchLifecycleConfiguration", "nothing was stored"


def test_invalid_rules_are_refused(s3, bucket):
    zero = {"ID": "r", "Filter": {}, "Status": "Enabled", "Expiration": {"Days": 0}}
    with pytest.raises(ClientError) as e:
        put_rules(s3, bucket, [zero])
    assert error_code(e) == "InvalidArgument"
    no_action = {"ID": "r", "Filter": {}, "Status": "Enabled"}
    with pytest.raises(ClientError) as e:
        put_rules(s3, bucket, [no_action])
    assert error_code(e) == "InvalidArgument"
    same_id = {"ID": "r", "Filter": {}, "Status": "Enabled", "Expiration": {"Days": 1}}
    with pytest.raises(ClientError) as e:
        put_rules(s3, bucket, [same_id, same_id])
    assert error_code(e) == "InvalidArgument"
    with pytest.raises(ClientError) as e:
        put_rules(s3, BUCKET + "-absent", [same_id])
    assert error_code(e) == "NoSuchBucket"


def run_lifecycle_pass():
    req = urllib.request.Request(ADMIN + "/v1/lifecycle/run", data=b"", method="POST")
    req.add_header("Authorization", "Bearer " + TOKEN)
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


@pytest.mark.skipif(
    not ADMIN or "HANGAR_ENDPOINTS" in os.environ,
    reason="needs the single dev node's admin API (tests/run-s3-tests.sh)",
)
def test_an_expired_rule_deletes_under_its_prefix_only(s3, bucket):
    for key in ["old/a", "old/b", "keep/c"]:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    # From a date in the past on: every object under old/ is expired now.
    rule = {"ID": "old", "Filter": {"Prefix": "old/"}, "Status": "Enabled",
            "Expiration": {"Date": PAST}}
    put_rules(s3, bucket, [rule])
    report = run_lifecycle_pass()
    assert report["objects_expired"] >= 2 and report["errors"] == 0, report
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["keep/c"]
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="old/a")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    # The same pass through the CLI (`hangar -c FILE lifecycle run`).
    if os.environ.get("HANGAR_BIN") and os.environ.get("HANGAR_CONFIG"):
        s3.put_object(Bucket=bucket, Key="old/d", Body=b"x")
        cli = [os.environ["HANGAR_BIN"], "-c", os.environ["HANGAR_CONFIG"], "lifecycle", "run"]
        out = subprocess.run(cli, capture_output=True, text=True, timeout=60, check=True).stdout
        assert "1 objects expired" in out, out
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
        assert keys == ["keep/c"]
    s3.delete_bucket_lifecycle(Bucket=bucket)


def empty_versions(s3, bucket):
    listed = s3.list_object_versions(Bucket=bucket)
    for v in listed.get("Versions", []) + listed.get("DeleteMarkers", []):
        s3.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
    s3.delete_bucket_lifecycle(Bucket=bucket)


@pytest.fixture(scope="module")
def versioned(s3):
    yield from own_bucket(s3, BUCKET + "-versions", empty_versions)


@pytest.mark.skipif(
    not ADMIN or "HANGAR_ENDPOINTS" in os.environ,
    reason="needs the single dev node's admin API (tests/run-s3-tests.sh)",
)
def test_expired_delete_markers_are_removed_and_history_kept(s3, versioned):
    """A delete marker that is a key's only version is removed by a pass at once (S3's
    ExpiredObjectDeleteMarker); a marker over an older version stays, and so does that
    version, whose noncurrent days (30) have not passed. Noncurrent expiration by age is
    tested on a manual clock in engine/src/objects/lifecycle_tests.rs."""
    bucket = versioned
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    lone = s3.put_object(Bucket=bucket, Key="lone", Body=b"x")["VersionId"]
    s3.delete_object(Bucket=bucket, Key="lone")
    s3.delete_object(Bucket=bucket, Key="lone", VersionId=lone)
    kept = s3.put_object(Bucket=bucket, Key="docs/kept", Body=b"y")["VersionId"]
    s3.delete_object(Bucket=bucket, Key="docs/kept")
    put_rules(s3, bucket, VERSION_RULES)
    report = run_lifecycle_pass()
    assert report["errors"] == 0, report
    assert report["delete_markers_removed"] == 1, report
    assert report["noncurrent_versions_expired"] == 0, report
    listed = s3.list_object_versions(Bucket=bucket)
    markers = [(m["Key"], m["IsLatest"]) for m in listed.get("DeleteMarkers", [])]
    versions = [(v["Key"], v["VersionId"]) for v in listed.get("Versions", [])]
    assert markers == [("docs/kept", True)]
    assert versions == [("docs/kept", kept)]
