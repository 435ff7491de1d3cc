"""Reading a URL list from S3: what is the object's fault and what is S3's.

Why: the sensor dead-letters a message whose list is missing or too large,
but must keep it queued when S3 itself is unreachable; the reader's error
types are what tells the two apart.
"""

from __future__ import annotations

import socket

import boto3
import pytest

from resources.s3_objects import ObjectReadError, ObjectUnavailableError, S3ObjectReader
from tests.support.moto_server import REGION


@pytest.fixture
def bucket(make_bucket, aws_env):
    name = make_bucket()
    s3 = boto3.client("s3", endpoint_url=aws_env, region_name=REGION)
    s3.put_object(Bucket=name, Key="lists/a.txt", Body=b"https://x.test/a.jpg\n")
    s3.put_object(Bucket=name, Key="lists/big.txt", Body=b"x" * 2048)
    return name


def test_reads_an_object(bucket, aws_env):
    assert S3ObjectReader(endpoint_url=aws_env, region=REGION)(f"s3://{bucket}/lists/a.txt") == b"https://x.test/a.jpg\n"


@pytest.mark.parametrize(
    ("key", "says"), [("lists/missing.txt", "does not exist"), ("lists/big.txt", "more than the 1024")]
)
def test_the_objects_own_problems(bucket, aws_env, key, says):
    reader = S3ObjectReader(endpoint_url=aws_env, region=REGION, max_bytes=1024)
    with pytest.raises(ObjectReadError, match=says) as caught:
        reader(f"s3://{bucket}/{key}")
    assert not isinstance(caught.value, ObjectUnavailableError)


def test_s3_down_is_unavailable(aws_env):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    reader = S3ObjectReader(endpoint_url=f"http://127.0.0.1:{port}", region=REGION)
    with pytest.raises(ObjectUnavailableError, match="cannot be read now"):
        reader("s3://bucket/list.txt")


# "s3://bucket/key?v=1" was listed here until issue 11: "?" is part of an S3 key (see test_s3_keys.py).
@pytest.mark.parametrize("uri", ["https://bucket/key", "s3://bucket", "s3:///key", "s3://bucket/", "s3:/bucket/key"])
def test_malformed_uris(uri):
    with pytest.raises(ObjectReadError, match="not an S3 object URI"):
        S3ObjectReader(client=object())(uri)
