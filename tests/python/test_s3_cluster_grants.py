"""Through a cluster (tests/run-s3-cluster-tests.sh): a bucket created through one node is
usable through every other at once.

Why it needs saying: each node reuses access-key reads for authentication for a few
seconds, so a node that looked the key up before the bucket existed holds a grant without
it. Refusals are confirmed with a fresh read (`access::check_confirmed`), so the client
never sees that cache. Skipped when the suite runs against a single node.
"""

import os

import pytest

from s3util import make_client

ENDPOINTS = [e for e in os.environ.get("HANGAR_ENDPOINTS", "").split(",") if e]
BUCKET = os.environ["HANGAR_TEST_BUCKET"] + "-grants"

pytestmark = pytest.mark.skipif(len(ENDPOINTS) < 2, reason="needs HANGAR_ENDPOINTS (a cluster)")


def test_a_bucket_created_through_one_node_is_writable_through_the_others_at_once():
    clients = [make_client() for _ in ENDPOINTS]
    # Every node reads (and caches) the key before the bucket exists.
    for s3 in clients:
        s3.list_buckets()
    clients[0].create_bucket(Bucket=BUCKET)
    try:
        for i, s3 in enumerate(clients[1:], start=1):
            s3.put_object(Bucket=BUCKET, Key=f"from-{i}", Body=b"x")
            assert s3.get_object(Bucket=BUCKET, Key=f"from-{i}")["Body"].read() == b"x"
            s3.put_bucket_versioning(
                Bucket=BUCKET, VersioningConfiguration={"Status": "Suspended"}
            )
    finally:
        for i in range(1, len(clients)):
            clients[0].delete_object(Bucket=BUCKET, Key=f"from-{i}")
        clients[0].delete_bucket(Bucket=BUCKET)
