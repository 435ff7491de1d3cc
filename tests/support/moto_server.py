"""A real S3/SQS API on loopback for tests: moto's threaded server, one per session.

Why a server and not ``mock_aws``: obstore talks to S3 from Rust, past any
Python-level patching, and the code under test should see real HTTP (retries,
multipart uploads, 404 bodies) exactly as it would against AWS.

Fixtures (import them into a test module or a conftest):

- ``moto_server``: the endpoint URL (``http://127.0.0.1:PORT``), session-wide.
- ``aws_env``: per test, dummy credentials, region and ``AWS_ENDPOINT_URL`` in
  the environment (so boto3 and obstore both reach moto), with the user's
  ``~/.aws`` files and ``AWS_PROFILE`` hidden; returns the endpoint URL.
- ``make_bucket``: creates a fresh, uniquely named bucket and returns its name.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
}


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """Start moto on a free loopback port for the whole session; yield its URL."""
    # werkzeug logs every request at INFO; failures are what a test reader wants.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(moto_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Point every AWS client in this process at moto with dummy credentials."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    for name, value in DUMMY_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    # A developer's own ~/.aws must not leak into tests (profiles, regions).
    no_files = tmp_path_factory.getbasetemp() / "no-aws-config"
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(no_files / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(no_files / "config"))
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    return moto_server


@pytest.fixture
def make_bucket(aws_env: str) -> Callable[..., str]:
    """Return ``make(name=None) -> name``: creates a bucket on moto."""
    client = boto3.client(
        "s3",
        endpoint_url=aws_env,
        region_name=REGION,
        aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )

    def make(name: str | None = None) -> str:
        bucket = name or f"test-{uuid.uuid4().hex[:16]}"
        client.create_bucket(Bucket=bucket)
        return bucket

    return make
