"""Real-client tests of static website hosting: boto3's put/get/delete_bucket_website on the
S3 port, and anonymous HTTP requests to the website port as a browser sends them (the
bucket named by the Host header, no signature).

Why: a website bucket is read by browsers, not SDKs — index documents for directories,
the error document for a missing page, ranges and conditional GETs for media and caches,
and nothing at all for a bucket that never asked to be a website (the website port is
anonymous, so that refusal is what keeps ordinary buckets private). Through the cluster
run, configurations are written through one node and served by the others.

Configuration: the same environment as test_s3_basic.py (see conftest.py), plus
HANGAR_WEB_ENDPOINTS (comma-separated website URLs, set by tests/run-s3-tests.sh and
tests/run-s3-cluster-tests.sh) and HANGAR_WEB_ROOT_DOMAIN (default "localhost").
Buckets: HANGAR_TEST_BUCKET + "-web" and + "-web-plain".
Run: tests/run-s3-tests.sh -k website
"""

import http.client
import itertools
import json
import os
import urllib.parse
import urllib.request

import pytest
from botocore.exceptions import ClientError

from s3util import delete_objects, error_code, make_client, own_bucket

BUCKET = os.environ["HANGAR_TEST_BUCKET"] + "-web"
PLAIN = os.environ["HANGAR_TEST_BUCKET"] + "-web-plain"
ROOT_DOMAIN = os.environ.get("HANGAR_WEB_ROOT_DOMAIN", "localhost").lstrip(".")
WEB = [e for e in os.environ.get("HANGAR_WEB_ENDPOINTS", "").split(",") if e]
_WEB = itertools.cycle(WEB)

pytestmark = pytest.mark.skipif(
    not WEB, reason="HANGAR_WEB_ENDPOINTS is not set (run tests/run-s3-tests.sh -k website)"
)

PAGES = {
    "index.html": (b"<h1>home</h1>", "text/html"),
    "docs/index.html": (b"<h1>docs</h1>", "text/html"),
    "style.css": (b"body { color: #123456; }", "text/css"),
    "errors/404.html": (b"<h1>lost?</h1>", "text/html"),
}


@pytest.fixture(scope="module")
def s3():
    return make_client()


def empty(s3, bucket):
    delete_objects(s3, bucket)
    s3.delete_bucket_website(Bucket=bucket)
    s3.delete_bucket_cors(Bucket=bucket)


@pytest.fixture(scope="module")
def site(s3):
    for bucket in own_bucket(s3, BUCKET, empty):
        for key, (body, content_type) in PAGES.items():
            s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
        s3.put_bucket_website(
            Bucket=bucket,
            WebsiteConfiguration={
                "IndexDocument": {"Suffix": "index.html"},
                "ErrorDocument": {"Key": "errors/404.html"},
            },
        )
        yield bucket


@pytest.fixture(scope="module")
def plain(s3):
    for bucket in own_bucket(s3, PLAIN, empty):
        s3.put_object(Bucket=bucket, Key="index.html", Body=b"private")
        yield bucket


def web(bucket, path, method="GET", headers=None):
    """An anonymous request to the next website endpoint; (status, headers, body).
    Redirects are not followed (a test looks at them)."""
    url = urllib.parse.urlsplit(next(_WEB))
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        all_headers = {"Host": f"{bucket}.{ROOT_DOMAIN}:{url.port}", **(headers or {})}
        conn.request(method, path, headers=all_headers)
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


def test_configuration_round_trips_through_other_nodes(site):
    got = make_client().get_bucket_website(Bucket=site)
    assert got["IndexDocument"] == {"Suffix": "index.html"}
    assert got["ErrorDocument"] == {"Key": "errors/404.html"}


def test_index_documents_serve_the_root_and_directories(site):
    status, headers, body = web(site, "/")
    assert (status, body) == (200, PAGES["index.html"][0])
    assert headers["Content-Type"] == "text/html"
    assert headers["ETag"].strip('"')
    status, _, body = web(site, "/docs/")
    assert (status, body) == (200, PAGES["docs/index.html"][0])
    # A directory named without its slash is redirected, so relative links resolve.
    status, headers, _ = web(site, "/docs")
    assert status == 302
    assert headers["Location"] == "/docs/"


def test_objects_with_ranges_and_conditions(site):
    css = PAGES["style.css"][0]
    status, headers, body = web(site, "/style.css")
    assert (status, body) == (200, css)
    etag = headers["ETag"]
    status, headers, body = web(site, "/style.css", headers={"Range": "bytes=0-3"})
    assert (status, body) == (206, css[:4])
    assert headers["Content-Range"] == f"bytes 0-3/{len(css)}"
    status, _, body = web(site, "/style.css", headers={"If-None-Match": etag})
    assert (status, body) == (304, b"")
    status, _, _ = web(site, "/style.css", headers={"If-Match": '"not-the-etag"'})
    assert status == 412
    status, headers, body = web(site, "/style.css", method="HEAD")
    assert (status, body) == (200, b"")
    assert headers["Content-Length"] == str(len(css))


def test_missing_keys_get_the_error_document_with_404(site):
    status, headers, body = web(site, "/no/such/page.html")
    assert (status, body) == (404, PAGES["errors/404.html"][0])
    assert headers["Content-Type"] == "text/html"


def test_without_an_error_document_a_missing_key_is_an_html_404(s3, site):
    s3.put_bucket_website(
        Bucket=site, WebsiteConfiguration={"IndexDocument": {"Suffix": "index.html"}}
    )
    try:
        status, headers, body = web(site, "/nope")
        assert status == 404
        assert headers["Content-Type"].startswith("text/html")
        assert b"NoSuchKey" in body
    finally:
        s3.put_bucket_website(
            Bucket=site,
            WebsiteConfiguration={
                "IndexDocument": {"Suffix": "index.html"},
                "ErrorDocument": {"Key": "errors/404.html"},
            },
        )


def test_buckets_without_a_website_configuration_are_not_served(s3, plain):
    status, headers, body = web(plain, "/index.html")
    assert status == 404
    assert b"NoSuchWebsiteConfiguration" in body
    assert b"private" not in body
    with pytest.raises(ClientError) as e:
        s3.get_bucket_website(Bucket=plain)
    assert error_code(e) == "NoSuchWebsiteConfiguration"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    status, _, body = web(PLAIN + "-absent", "/")
    assert status == 404
    assert b"NoSuchBucket" in body


def test_only_reads_are_served(site):
    for method in ["PUT", "POST", "DELETE"]:
        status, headers, _ = web(site, "/index.html", method=method)
        assert status == 405, method
        assert "GET" in headers["Allow"]
    status, _, body = web(site, "/index.html")
    assert (status, body) == (200, PAGES["index.html"][0])


def test_deleting_the_configuration_stops_serving(s3, plain):
    s3.put_bucket_website(
        Bucket=plain, WebsiteConfiguration={"IndexDocument": {"Suffix": "index.html"}}
    )
    status, _, body = web(plain, "/")
    assert (status, body) == (200, b"private")
    make_client().delete_bucket_website(Bucket=plain)
    status, _, body = web(plain, "/")
    assert status == 404 and b"NoSuchWebsiteConfiguration" in body


def test_invalid_configurations_are_refused(s3, plain):
    index = {"IndexDocument": {"Suffix": "index.html"}}
    bad = [
        {"IndexDocument": {"Suffix": "a/index.html"}},
        # RedirectAllRequestsTo excludes everything else.
        {**index, "RedirectAllRequestsTo": {"HostName": "example.com"}},
        # Replacing the whole key and its prefix at once means nothing.
        {**index, "RoutingRules": [{"Redirect": {
            "ReplaceKeyWith": "a.html", "ReplaceKeyPrefixWith": "b/"}}]},
        {**index, "RoutingRules": [{"Redirect": {"HttpRedirectCode": "200"}}]},
        {**index, "RoutingRules": [{
            "Condition": {"HttpErrorCodeReturnedEquals": "302"},
            "Redirect": {"HostName": "example.com"}}]},
    ]
    for config in bad:
        with pytest.raises(ClientError) as e:
            s3.put_bucket_website(Bucket=plain, WebsiteConfiguration=config)
        assert error_code(e) == "InvalidArgument", config
    with pytest.raises(ClientError) as e:
        s3.get_bucket_website(Bucket=plain)
    assert error_code(e) == "NoSuchWebsiteConfiguration"


def test_redirect_all_requests_sends_every_path_to_the_other_host(s3, plain):
    config = {"RedirectAllRequestsTo": {"HostName": "www.example.com", "Protocol": "https"}}
    s3.put_bucket_website(Bucket=plain, WebsiteConfiguration=config)
    try:
        got = make_client().get_bucket_website(Bucket=plain)
        assert got["RedirectAllRequestsTo"] == config["RedirectAllRequestsTo"]
        for path in ["/", "/index.html", "/a/b.html"]:
            status, headers, body = web(plain, path)
            assert (status, body) == (301, b""), path
            assert headers["Location"] == f"https://www.example.com{path}"
    finally:
        s3.delete_bucket_website(Bucket=plain)


RULES = [
    {"Condition": {"KeyPrefixEquals": "docs/old/"},
     "Redirect": {"ReplaceKeyPrefixWith": "docs/"}},
    {"Condition": {"KeyPrefixEquals": "gone"}, "Redirect": {"ReplaceKeyWith": "index.html"}},
    {"Condition": {"HttpErrorCodeReturnedEquals": "404"},
     "Redirect": {"HostName": "fallback.example.com", "ReplaceKeyPrefixWith": "missing/",
                  "HttpRedirectCode": "302", "Protocol": "https"}},
]


def test_routing_rules_redirect_by_prefix_and_by_error(s3, site):
    config = {
        "IndexDocument": {"Suffix": "index.html"},
        "ErrorDocument": {"Key": "errors/404.html"},
        "RoutingRules": RULES,
    }
    s3.put_bucket_website(Bucket=site, WebsiteConfiguration=config)
    try:
        assert make_client().get_bucket_website(Bucket=site)["RoutingRules"] == RULES
        # Without a HostName the redirect keeps the host the request named (whichever
        # node's website port it went to).
        here = {f"{site}.{ROOT_DOMAIN}:{urllib.parse.urlsplit(e).port}" for e in WEB}

        def same_site(location, path):
            url = urllib.parse.urlsplit(location)
            return url.scheme == "http" and url.netloc in here and url.path == path

        # A prefix rule applies before the object is read, the matched prefix replaced.
        status, headers, _ = web(site, "/docs/old/page.html")
        assert status == 301 and same_site(headers["Location"], "/docs/page.html"), headers
        status, headers, _ = web(site, "/gone/away.html")
        assert status == 301 and same_site(headers["Location"], "/index.html"), headers
        # The error rule applies only to what would be a 404, instead of the error document.
        status, headers, body = web(site, "/no/such/page.html")
        assert (status, body) == (302, b"")
        assert headers["Location"] == "https://fallback.example.com/missing/no/such/page.html"
        status, _, body = web(site, "/style.css")
        assert (status, body) == (200, PAGES["style.css"][0])
    finally:
        s3.put_bucket_website(
            Bucket=site,
            WebsiteConfiguration={
                "IndexDocument": {"Suffix": "index.html"},
                "ErrorDocument": {"Key": "errors/404.html"},
            },
        )


def test_an_object_redirect_location_is_served_as_301(s3, site):
    s3.put_object(Bucket=site, Key="moved.html", Body=b"old", WebsiteRedirectLocation="/style.css")
    head = make_client().head_object(Bucket=site, Key="moved.html")
    assert head["WebsiteRedirectLocation"] == "/style.css"
    assert "Metadata" not in head or not head["Metadata"]
    status, headers, body = web(site, "/moved.html")
    assert (status, headers["Location"], body) == (301, "/style.css", b"")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=site, Key="bad.html", Body=b"x", WebsiteRedirectLocation="style.css")
    assert error_code(e) == "InvalidArgument"


def test_cors_rules_apply_to_the_website(s3, site):
    s3.put_bucket_cors(
        Bucket=site,
        CORSConfiguration={
            "CORSRules": [{"AllowedOrigins": ["https://app.example.com"], "AllowedMethods": ["GET"]}]
        },
    )
    status, headers, _ = web(site, "/style.css", headers={"Origin": "https://app.example.com"})
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    status, headers, _ = web(site, "/style.css", headers={"Origin": "https://evil.example.org"})
    assert status == 200
    assert "Access-Control-Allow-Origin" not in headers
    preflight = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"}
    status, headers, _ = web(site, "/style.css", method="OPTIONS", headers=preflight)
    assert status == 200
    assert headers["Access-Control-Allow-Methods"] == "GET"


ADMIN = os.environ.get("HANGAR_ADMIN_URL", "").rstrip("/")


@pytest.mark.skipif(not ADMIN, reason="needs the dev node's admin API (tests/run-s3-tests.sh)")
def test_a_bucket_alias_serves_the_site_under_its_own_name(site):
    """How a site gets its own domain: an alias named like the domain (admin API)."""
    alias = "www." + site[-20:].strip("-.") + ".example"
    req = urllib.request.Request(
        f"{ADMIN}/v1/buckets/{site}/aliases",
        data=json.dumps({"alias": alias}).encode(),
        method="POST",
    )
    req.add_header("Authorization", "Bearer " + os.environ["HANGAR_ADMIN_TOKEN"])
    req.add_header("Content-Type", "application/json")
    urllib.request.urlopen(req, timeout=10).close()
    try:
        url = urllib.parse.urlsplit(WEB[0])
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        conn.request("GET", "/", headers={"Host": f"{alias}:{url.port}"})
        resp = conn.getresponse()
        assert (resp.status, resp.read()) == (200, PAGES["index.html"][0])
        conn.close()
    finally:
        req = urllib.request.Request(f"{ADMIN}/v1/buckets/{site}/aliases/{alias}", method="DELETE")
        req.add_header("Authorization", "Bearer " + os.environ["HANGAR_ADMIN_TOKEN"])
        urllib.request.urlopen(req, timeout=10).close()
