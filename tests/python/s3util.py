"""What every real-client S3 test module shares: the server's address, a boto3 client set
up the way the tests need it, and the lifecycle of a module's own bucket."""

import itertools
import os
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ["AWS_ENDPOINT_URL"].rstrip("/")
ACCESS_KEY = os.environ["AWS_ACCESS_KEY_ID"]
SECRET_KEY = os.environ["AWS_SECRET_ACCESS_KEY"]
REGION = os.environ["AWS_REGION"]
# Against a cluster (tests/run-s3-cluster-tests.sh), every node's S3 endpoint: each new
# client goes to the next one, so the suite's modules (and the extra clients some tests
# make) are served by different nodes. Alone, the one endpoint above.
_ENDPOINT_LIST = [
    e.rstrip("/") for e in os.environ.get("HANGAR_ENDPOINTS", ENDPOINT).split(",") if e
]
_ENDPOINT_COUNT = len(_ENDPOINT_LIST)
_ENDPOINTS = itertools.cycle(_ENDPOINT_LIST)

# Path-style addressing (the server has no wildcard DNS) and no retries: a retried request
# could hide an error the test is looking for.
CONFIG = Config(
    signature_version="s3v4",
    s3={"addressing_style": "path"},
    retries={"max_attempts": 1, "mode": "standard"},
)


def make_client(access_key=ACCESS_KEY, secret_key=SECRET_KEY, region=REGION):
    return boto3.client(
        "s3",
        endpoint_url=next(_ENDPOINTS),
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=region,
        config=CONFIG,
    )


def error_code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def own_bucket(s3, name, empty):
    """Generator for a module fixture: creates `name` (emptying it with `empty(s3, name)` if
    a run that died left it behind), yields it, then empties and deletes it."""
    try:
        s3.create_bucket(Bucket=name)
    except ClientError as e:
        if e.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
            raise
        empty(s3, name)
    yield name
    empty(s3, name)
    s3.delete_bucket(Bucket=name)


def wait_owned_everywhere(bucket, probe, limit_s=15):
    """Polls until every node lets this key act as owner of a bucket just created: a node
    may answer from a key cache that predates the grant for a few seconds
    (engine/src/keys.rs, AUTH_CACHE_TTL_MS). `probe(client, bucket)` is an idempotent
    owner-only call (e.g. a delete of a setting)."""
    deadline = time.monotonic() + limit_s
    for client in [make_client() for _ in range(_ENDPOINT_COUNT)]:
        while True:
            try:
                probe(client, bucket)
                break
            except ClientError as e:
                if e.response["Error"]["Code"] != "AccessDenied" or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
