"""The SQS client and its offline twin keep the same contract.

Why both: the sensor's unit tests run on ``InMemoryQueue``; they only mean
something if it behaves like SQS where the sensor relies on it. Each case runs
against ``SqsQueue`` on moto and against ``InMemoryQueue``.
"""

from __future__ import annotations

import json
import socket
import uuid

import pytest

from resources.sqs_queue import InMemoryQueue, QueueUnavailableError, SqsQueue, region_from_queue_url
from tests.sensors.sensor_support import sqs_client
from tests.support.moto_server import REGION


@pytest.fixture(params=["moto", "memory"])
def pair(request):
    """(queue, dead-letter queue) of one implementation."""
    if request.param == "memory":
        dlq = InMemoryQueue("memory://q-dlq")
        return InMemoryQueue("memory://q", dead_letter="memory://q-dlq"), dlq
    endpoint = request.getfixturevalue("aws_env")
    client = sqs_client(endpoint)
    name = f"q-{uuid.uuid4().hex[:10]}"
    dlq_url = client.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    arn = client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = client.create_queue(
        QueueName=name, Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "5"})}
    )["QueueUrl"]
    queue = SqsQueue(url, endpoint_url=endpoint, region=REGION)
    return queue, queue.sibling(dlq_url)


def test_received_messages_are_hidden_and_deleted_by_handle(pair):
    queue, _ = pair
    ids = {queue.send(f"body-{i}") for i in range(12)}

    first = queue.receive(10, visibility_timeout_s=60)
    second = queue.receive(10, visibility_timeout_s=60)

    assert len(first) == 10 and len(second) == 2
    assert {m.message_id for m in first + second} == ids
    assert queue.receive(10) == [], "all in flight"
    outcome = queue.delete([m.receipt_handle for m in first + second])
    assert len(outcome.succeeded) == 12 and not outcome.failed


def test_a_redelivery_keeps_the_message_id_and_counts_receipts(pair):
    queue, _ = pair
    message_id = queue.send("hello")
    [first] = queue.receive(1, visibility_timeout_s=60)
    assert queue.change_visibility([first.receipt_handle], 0).succeeded == (first.receipt_handle,)

    [again] = queue.receive(1, visibility_timeout_s=60)

    assert again.message_id == first.message_id == message_id
    assert again.receipt_handle != first.receipt_handle
    assert (first.receive_count, again.receive_count) == (1, 2)


def test_dead_letters_carry_the_reason_and_the_dlq_is_found_from_the_redrive_policy(pair):
    queue, dlq = pair
    assert queue.dead_letter_queue_url() == dlq.url
    queue.send("not json")
    [message] = queue.receive(1)

    dlq.send_dead_letter(message, code="not_json", reason="message body is not JSON", source_queue_url=queue.url)

    [dead] = dlq.receive(1)
    assert dead.body == "not json"
    assert dead.attributes == {
        "ad_assets.error_code": "not_json",
        "ad_assets.error": "message body is not JSON",
        "ad_assets.source_queue": queue.url,
        "ad_assets.source_message_id": message.message_id,
        "ad_assets.receive_count": "1",
    }


def test_sqs_down_is_queue_unavailable(aws_env):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    queue = SqsQueue(f"http://127.0.0.1:{port}/123456789012/q", endpoint_url=f"http://127.0.0.1:{port}", region=REGION)
    with pytest.raises(QueueUnavailableError, match="Could not connect"):
        queue.receive(10)


def test_a_missing_queue_is_queue_unavailable_naming_it(aws_env):
    url = f"{aws_env}/123456789012/never-created"
    with pytest.raises(QueueUnavailableError, match="never-created"):
        SqsQueue(url, endpoint_url=aws_env, region=REGION).receive(1)


def test_in_memory_outage_switch():
    queue = InMemoryQueue()
    queue.unavailable = "connection refused"
    with pytest.raises(QueueUnavailableError, match="connection refused"):
        queue.receive()


@pytest.mark.parametrize(
    ("url", "region"),
    [("https://sqs.eu-west-1.amazonaws.com/1/q", "eu-west-1"), ("http://127.0.0.1:4566/000/q", None)],
)
def test_region_from_queue_url(url, region):
    assert region_from_queue_url(url) == region

