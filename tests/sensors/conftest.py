"""Fixtures of the SQS sensor suites: a fresh queue pair on moto and a Dagster instance."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from tests.sensors.sensor_support import QUEUED_COORDINATOR, Queues, sqs_client


@pytest.fixture
def queues(aws_env: str) -> Queues:
    """A fresh queue and a fresh dead-letter queue (not linked by a redrive policy)."""
    client = sqs_client(aws_env)
    name = f"brands-{uuid.uuid4().hex[:10]}"
    url = client.create_queue(QueueName=name)["QueueUrl"]
    dlq_url = client.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    return Queues(client, url, dlq_url)


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """A persistent test instance whose runs stay queued (nothing executes)."""
    home = tmp_path / "dagster"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home), overrides=QUEUED_COORDINATOR) as inst:
        yield inst

