"""A URL list may live under any key S3 allows: the pointer names it exactly.

Why: ``urlparse`` reads ``#`` as a fragment and ``?`` as a query, so keys like
``crawls/week#23/x.txt`` were cut short and dead-lettered as NoSuchKey
(cases/README "S3 pointer keys"; the same bug in aws/sagemaker-python-sdk#2229,
apache/airflow#41796, awslabs/genai-idp-terraform#220, aws/aws-sdk-java-v2#4359).
Every member is written to moto on loopback and read back through the reader.
"""

from __future__ import annotations

import boto3
import pytest

from resources.s3_objects import ObjectReadError, S3ObjectReader, split_s3_uri
from tests.support.moto_server import REGION

KEYS = [
    "crawls/week#23/x.txt",  # cases/README
    "/crawls/x.txt",  # leading slash (cases/README)
    "crawls//double/x.txt",
    "//two-leading.txt",
    "path/to/key/email campaign - PO# 123456_REPORT.csv",  # apache/airflow#41796
    "abc#d.pdf",  # aws/sagemaker-python-sdk#2229
    "key#with%20pound",  # aws/aws-sdk-java-v2#4359: %20 is three characters of the key
    "Report_#2.pdf/pages/1/result.json",
    "E&J 0224 INV# ENJ-208-2-2024.pdf",  # awslabs/genai-idp-terraform#220
    "lists/q?x=1&y=2.txt",
    "lists/100%.txt",
    "lists/%2F-not-a-slash.txt",
    "lists/a+b c.txt",
    "lists/ünïcode/ファイル.txt",
    "lists/emoji-😀.txt",
    "lists/trailing-dot.",
    "lists/semi;colon:and=equals.txt",
]


@pytest.mark.parametrize("key", KEYS)
def test_the_key_is_everything_after_the_bucket(key):
    assert split_s3_uri(f"s3://ad-crawls/{key}") == ("ad-crawls", key)


@pytest.mark.parametrize("key", KEYS)
def test_every_key_s3_allows_is_read_exactly(make_bucket, aws_env, key):
    bucket = make_bucket()
    s3 = boto3.client("s3", endpoint_url=aws_env, region_name=REGION)
    body = f"https://cdn.example/{len(key)}.png\n".encode()
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    assert S3ObjectReader(endpoint_url=aws_env, region=REGION)(f"s3://{bucket}/{key}") == body


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("s3://b/" + "k" * 1025, "over S3's 1024"),
        ("s3://b/" + "é" * 513, "over S3's 1024"),
        ("s3://b/bad\ud800.txt", "lone surrogate"),
        ("s3://bucket with space/k.txt", "not an S3 object URI"),
    ],
)
def test_what_s3_cannot_hold_is_refused_with_a_reason(uri, says):
    with pytest.raises(ObjectReadError, match=says):
        split_s3_uri(uri)
