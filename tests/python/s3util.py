"""What every real-client S3 test module shares: the server's address, a boto3 client set
up the way the tests need it, and the lifecycle of a module's own bucket."""

import itertools
import os

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
_ENDPOINTS = itertools.cycle(
    [e.rstrip("/") for e in os.environ.get("HANGAR_ENDPOINTS", ENDPOINT).split(",") if e]
)

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


def delete_objects(s3, bucket):
    """Deletes every current object of `bucket` (page by page)."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=obj["Key"])


def abort_uploads(s3, bucket):
    """Aborts every multipart upload in progress in `bucket`."""
    for upload in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
