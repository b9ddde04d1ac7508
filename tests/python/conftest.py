"""Shared pytest setup for the real-client S3 tests.

The test modules read their server's address and credentials from the environment at import
time; without them pytest would fail with a bare KeyError during collection. This stops the
run first with a message saying what is missing and how the suite is meant to be run.
"""

import os

import pytest

REQUIRED = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION",
    "HANGAR_TEST_BUCKET",
)


def pytest_configure(config):
    missing = [name for name in REQUIRED if not os.environ.get(name)]
    if missing:
        pytest.exit(
            "missing environment: "
            + ", ".join(missing)
            + "\nrun tests/run-s3-tests.sh (starts `hangar dev` and sets them), or source "
            "DIR/credentials.env of a running `hangar dev` and set HANGAR_TEST_BUCKET",
            returncode=2,
        )
