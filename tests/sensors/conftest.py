"""Fixtures of the SQS sensor suites: a fresh queue pair on moto and a Dagster instance."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

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


@pytest.fixture(scope="session")
def _shared_instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dg.DagsterInstance]:
    home = tmp_path_factory.mktemp("dagster")
    with dg.instance_for_test(temp_dir=str(home), overrides=QUEUED_COORDINATOR) as inst:
        yield inst


@pytest.fixture
def instance(_shared_instance: dg.DagsterInstance) -> dg.DagsterInstance:
    """A persistent instance whose runs stay queued (nothing executes), empty for each test.

    One instance is wiped between tests: creating a fresh one costs about a
    second of SQLite migrations.
    """
    _shared_instance.wipe()
    return _shared_instance
