"""Helpers for the SQS sensor suites: real queues on moto, settings, one tick, and a
stand-in for the sensor daemon's bookkeeping.

Why a stand-in: ``build_sensor_context`` evaluates the sensor the way the daemon
does, but nothing then records its ``SensorResult``. ``record_like_the_daemon``
does what ``dagster/_daemon/sensor.py`` does with it (add the missing
partitions, then create one run per run request unless a run of this sensor
already carries its run key), and ``test_sqs_daemon.py`` checks the real
daemon against the same expectations.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import dagster as dg
from dagster._core.storage.tags import PARTITION_NAME_TAG, RUN_KEY_TAG, SENSOR_NAME_TAG
from dagster._core.test_utils import create_run_for_test

from ad_assets.jobs import INGEST_JOB
from ad_assets.settings import Settings
from sensors.sqs_sensor import SENSOR_NAME, build_sqs_sensor, existing_run_keys, intake_config
from tests.support.moto_server import DUMMY_CREDENTIALS, REGION

QUEUED_COORDINATOR = {"run_coordinator": {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator"}}


@dataclass
class Queues:
    """A fresh queue (and dead-letter queue) on moto, with the helpers tests need."""

    client: Any
    url: str
    dlq_url: str
    sent: list[str] = field(default_factory=list)

    def send(self, body: dict | str) -> str:
        """Send one message (a dict is JSON-encoded); returns its message id."""
        text = body if isinstance(body, str) else json.dumps(body)
        message_id = self.client.send_message(QueueUrl=self.url, MessageBody=text)["MessageId"]
        self.sent.append(message_id)
        return message_id

    def send_many(self, bodies: list[dict]) -> None:
        """Send in batches of 10, as a producer would."""
        for start in range(0, len(bodies), 10):
            entries = [{"Id": str(i), "MessageBody": json.dumps(b)} for i, b in enumerate(bodies[start : start + 10])]
            answer = self.client.send_message_batch(QueueUrl=self.url, Entries=entries)
            assert not answer.get("Failed"), answer["Failed"]

    def counts(self, url: str | None = None) -> tuple[int, int]:
        """(visible, in flight) messages of the queue."""
        attrs = self.client.get_queue_attributes(
            QueueUrl=url or self.url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])

    def drain(self, url: str) -> list[dict]:
        """Every message of ``url`` (deleted as read): body and string attributes."""
        out = []
        while True:
            answer = self.client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
            messages = answer.get("Messages", [])
            if not messages:
                return out
            for m in messages:
                attrs = {k: v["StringValue"] for k, v in (m.get("MessageAttributes") or {}).items()}
                out.append({"body": m["Body"], "attributes": attrs})
                self.client.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])

    def expire_in_flight(self, cursor: str | None) -> None:
        """Make the messages a cursor holds visible again, as if their visibility timeout lapsed."""
        doc = json.loads(cursor or '{"pending": []}')
        for entry in doc["pending"]:
            for handle in entry["m"].values():
                self.client.change_message_visibility(QueueUrl=self.url, ReceiptHandle=handle, VisibilityTimeout=0)


def sqs_client(endpoint: str) -> Any:
    """A boto3 SQS client on moto."""
    return boto3.client("sqs", endpoint_url=endpoint, region_name=REGION, **{
        "aws_access_key_id": DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    })  # fmt: skip


def make_settings(tmp_path: Path, endpoint: str | None, queue_url: str | None, **overrides: Any) -> Settings:
    """Settings for a sensor under test: local store under ``tmp_path``, AWS on ``endpoint``."""
    values: dict[str, Any] = {
        "home": tmp_path / "home",
        "storage_url": str(tmp_path / "store"),
        "sqs_queue_url": queue_url,
        "aws_endpoint_url": endpoint,
        "aws_region": REGION,
    }
    values.update(overrides)
    return Settings(**values)


def quick_sensor(settings: Settings, **kwargs: Any) -> dg.SensorDefinition:
    """The sensor with short polls: moto answers every receive in full, so the
    production one-second long poll would only slow the suite down."""
    return build_sqs_sensor(settings, config=dataclasses.replace(intake_config(settings), receive_wait_s=0), **kwargs)


def tick(sensor: dg.SensorDefinition, instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult:
    """Evaluate one tick as the daemon would, through ``build_sensor_context``."""
    with dg.build_sensor_context(instance=instance, cursor=cursor, sensor_name=sensor.name) as context:
        result = sensor(context)
    assert isinstance(result, dg.SensorResult), result
    return result


def record_like_the_daemon(instance: dg.DagsterInstance, result: dg.SensorResult) -> list[dg.DagsterRun]:
    """Apply a tick's result as the sensor daemon does; returns the runs it created."""
    for request in result.dynamic_partitions_requests or []:
        missing = [k for k in request.partition_keys if not instance.has_dynamic_partition(request.partitions_def_name, k)]
        instance.add_dynamic_partitions(request.partitions_def_name, missing)
    created = []
    for request in result.run_requests or []:
        assert instance.has_dynamic_partition("brands", request.partition_key), "partition added before its run"
        if existing_run_keys(instance, [request.run_key]):
            continue  # the daemon drops a run request whose run key already has a run of this sensor
        tags = {**request.tags, RUN_KEY_TAG: request.run_key, SENSOR_NAME_TAG: SENSOR_NAME,
                PARTITION_NAME_TAG: request.partition_key}  # fmt: skip
        created.append(create_run_for_test(instance, job_name=INGEST_JOB, tags=tags))
    return created


def runs_by_brand(instance: dg.DagsterInstance) -> dict[str, int]:
    """How many runs each brand has."""
    counts: dict[str, int] = {}
    for run in instance.get_runs():
        brand = run.tags.get(PARTITION_NAME_TAG, "")
        counts[brand] = counts.get(brand, 0) + 1
    return counts

