"""Queues as AWS users configure them, through the real sensor on moto (loopback):
FIFO queues and FIFO dead-letter queues, SNS topics with raw delivery off, S3
event notifications for URL lists dropped into a bucket, and S3's test event.

Why: each shape broke consumers like ours in public reports — forwarding a bad
FIFO message without ``MessageGroupId`` (MissingParameter, Jimdo/sqs-dead-letter-handling#10,
localstack#6107; cases/README "FIFO queues"), SNS envelopes (vector#8185),
``s3:TestEvent`` (quilt#5162), URL-encoded keys in S3 events (binaryalert#54).
Moto delivers the SNS envelope, the test event and the encoded keys itself.
"""

from __future__ import annotations

import json

import boto3
import pytest

from ad_assets.brand_manifest import load_manifest
from resources.media_store import MediaStore
from tests.sensors.sensor_support import make_settings, quick_sensor, record_like_the_daemon, tick
from tests.support.moto_server import REGION

URL = "https://cdn.example.com/ads/{}.jpg"


def _manifest(settings, brand: str) -> list[str]:
    return load_manifest(MediaStore.from_url(settings.storage_url), brand)


def _fifo(client, name: str, **attributes: str) -> str:
    return client.create_queue(QueueName=f"{name}.fifo", Attributes={"FifoQueue": "true", **attributes})["QueueUrl"]


def _arn(client, url: str) -> str:
    return client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


@pytest.mark.parametrize("dlq_from", ["setting", "redrive-policy"])
def test_fifo_queue_with_a_fifo_dlq_forwards_the_bad_message_and_runs_the_good_one(
    tmp_path, aws_env, queues, instance, dlq_from
):
    client = queues.client
    name = queues.url.rsplit("/", 1)[-1]
    dlq = _fifo(client, f"{name}-dlq")
    redrive = {"RedrivePolicy": json.dumps({"deadLetterTargetArn": _arn(client, dlq), "maxReceiveCount": "5"})}
    source = _fifo(client, name, **(redrive if dlq_from == "redrive-policy" else {}))
    settings = make_settings(tmp_path, aws_env, source, sqs_dlq_url=dlq if dlq_from == "setting" else None)
    sensor = quick_sensor(settings)
    # a bad message, then a good one in the same group (cases/README "FIFO queues")
    client.send_message(QueueUrl=source, MessageBody="{not json", MessageGroupId="crawls", MessageDeduplicationId="bad-1")
    good = {"brand": "acme", "urls": [URL.format(1)], "request_id": "fifo-1"}
    client.send_message(QueueUrl=source, MessageBody=json.dumps(good), MessageGroupId="crawls",
                        MessageDeduplicationId="good-1")  # fmt: skip

    result = tick(sensor, instance, None)

    assert [r.run_key for r in result.run_requests] == ["sqs:acme:req:fifo-1"]
    answer = client.receive_message(QueueUrl=dlq, MessageAttributeNames=["All"],
                                    MessageSystemAttributeNames=["MessageGroupId", "MessageDeduplicationId"])  # fmt: skip
    [dead] = answer["Messages"]
    assert dead["Body"] == "{not json"
    assert dead["Attributes"]["MessageGroupId"] == "crawls", "the group is carried"
    assert dead["Attributes"]["MessageDeduplicationId"] == "bad-1", "the deduplication id is carried"
    assert dead["MessageAttributes"]["ad_assets.error_code"]["StringValue"] == "not_json"
    record_like_the_daemon(instance, result)
    tick(sensor, instance, result.cursor)
    attrs = client.get_queue_attributes(QueueUrl=source, AttributeNames=["All"])["Attributes"]
    assert (attrs["ApproximateNumberOfMessages"], attrs["ApproximateNumberOfMessagesNotVisible"]) == ("0", "0")


def test_a_standard_queue_forwarding_to_a_fifo_dlq_gives_a_group(tmp_path, aws_env, queues, instance):
    dlq = _fifo(queues.client, queues.url.rsplit("/", 1)[-1] + "-dlq2")
    sensor = quick_sensor(make_settings(tmp_path, aws_env, queues.url, sqs_dlq_url=dlq))
    message_id = queues.send("[1, 2]")
    tick(sensor, instance, None)
    [dead] = queues.client.receive_message(QueueUrl=dlq, MessageSystemAttributeNames=["All"])["Messages"]
    assert dead["Attributes"]["MessageGroupId"] == "ad-assets-dead-letters"
    assert dead["Attributes"]["MessageDeduplicationId"] == message_id
    assert queues.counts() == (0, 0)


@pytest.mark.parametrize("mode", ["add", "replace"])
def test_an_sns_topic_with_raw_delivery_off_reaches_the_brand(tmp_path, aws_env, queues, instance, mode):
    sns = boto3.client("sns", endpoint_url=aws_env, region_name=REGION)
    topic = sns.create_topic(Name=f"brands-{mode}")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=_arn(queues.client, queues.url))
    settings = make_settings(tmp_path, aws_env, queues.url, sqs_dlq_url=queues.dlq_url)
    sensor = quick_sensor(settings)
    from ad_assets.brand_manifest import register_brand

    register_brand(MediaStore.from_url(settings.storage_url), "acme", [URL.format("old")])
    sns.publish(TopicArn=topic, Message=json.dumps({"brand": "acme", "urls": [URL.format(1)], "mode": mode}))

    result = tick(sensor, instance, None)

    assert [r.partition_key for r in result.run_requests] == ["acme"]
    expected = [URL.format(1)] if mode == "replace" else [URL.format("old"), URL.format(1)]
    assert _manifest(settings, "acme") == expected
    assert queues.drain(queues.dlq_url) == []


@pytest.fixture
def notifying_bucket(make_bucket, aws_env, queues):
    """A bucket whose ObjectCreated events go to the brand-request queue (S3 sends its test event first)."""
    bucket = make_bucket()
    s3 = boto3.client("s3", endpoint_url=aws_env, region_name=REGION)
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={"QueueConfigurations": [
        {"QueueArn": _arn(queues.client, queues.url), "Events": ["s3:ObjectCreated:*"]}]})  # fmt: skip
    return s3, bucket


@pytest.mark.parametrize("file_name", ["crawl.txt", "week#23 list+final.txt", "ünïcode 100%.txt"])
def test_a_url_list_dropped_in_the_bucket_starts_its_brand(
    tmp_path, aws_env, queues, instance, notifying_bucket, file_name
):
    s3, bucket = notifying_bucket
    settings = make_settings(tmp_path, aws_env, queues.url, sqs_dlq_url=queues.dlq_url, s3_url_list_prefix="url-lists")
    sensor = quick_sensor(settings)
    first = tick(sensor, instance, None)
    assert not first.run_requests and queues.counts() == (0, 0), "the test event is acknowledged, not run"

    s3.put_object(Bucket=bucket, Key=f"url-lists/acme/{file_name}", Body=f"{URL.format(1)}\n{URL.format(2)}\n".encode())
    s3.put_object(Bucket=bucket, Key="elsewhere/acme/notes.txt", Body=b"not a list")
    result = tick(sensor, instance, first.cursor)

    assert [r.partition_key for r in result.run_requests] == ["acme"]
    assert _manifest(settings, "acme") == [URL.format(1), URL.format(2)]
    assert queues.drain(queues.dlq_url) == [], "nothing dead-lettered: other keys are acknowledged quietly"
    record_like_the_daemon(instance, result)
    tick(sensor, instance, result.cursor)
    assert queues.counts() == (0, 0)


def test_s3_events_without_a_watched_prefix_are_dead_lettered_with_the_setting_named(
    tmp_path, aws_env, queues, instance, notifying_bucket
):
    s3, bucket = notifying_bucket
    sensor = quick_sensor(make_settings(tmp_path, aws_env, queues.url, sqs_dlq_url=queues.dlq_url))
    s3.put_object(Bucket=bucket, Key="url-lists/acme/a.txt", Body=URL.format(1).encode())
    tick(sensor, instance, None)
    [dead] = queues.drain(queues.dlq_url)
    assert "AD_ASSETS_S3_URL_LIST_PREFIX" in dead["attributes"]["ad_assets.error"]
