"""The sensor under Dagster's real sensor daemon, as ``ad-assets dev`` runs it.

Why: the other suites record tick results with a stand-in for the daemon; this
one lets the daemon's own iteration evaluate the sensor from a code location,
add the partitions, create the (queued) runs and save the cursor, and checks
that a queue of messages ends as one run per request and an empty queue.
"""

from __future__ import annotations

import logging
import os
import textwrap
import time

import dagster as dg
import pytest
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.storage.tags import PARTITION_NAME_TAG, RUN_KEY_TAG
from dagster._core.test_utils import InProcessTestWorkspaceLoadTarget, create_test_daemon_workspace_context, freeze_time
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._daemon.sensor import execute_sensor_iteration

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# What a deployment's code location does: build everything from the environment.
CODE_LOCATION = textwrap.dedent(
    """
    from ad_assets.definitions import build_definitions
    from ad_assets.settings import Settings

    defs = build_definitions(Settings.from_env())
    """
)


@pytest.fixture
def daemon(tmp_path, monkeypatch, aws_env, queues, instance):
    """``tick()`` runs one iteration of the real sensor daemon, 40 s after the previous one."""
    monkeypatch.setenv("AD_ASSETS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AD_ASSETS_SQS_QUEUE_URL", queues.url)
    monkeypatch.setenv("AD_ASSETS_SQS_DLQ_URL", queues.dlq_url)
    monkeypatch.delenv("AD_ASSETS_STORAGE_URL", raising=False)
    code = tmp_path / "code_location.py"
    code.write_text(CODE_LOCATION)
    origin = InProcessCodeLocationOrigin(LoadableTargetOrigin(python_file=str(code), attribute="defs", working_directory=REPO_ROOT))
    clock = {"now": time.time()}
    with create_test_daemon_workspace_context(InProcessTestWorkspaceLoadTarget(origin), instance) as workspace:

        def tick() -> None:
            # The daemon spaces ticks by the sensor's minimum interval (30 s):
            # move its clock forward instead of waiting.
            clock["now"] += 40
            with freeze_time(clock["now"]):
                list(execute_sensor_iteration(workspace, logging.getLogger("test.daemon"), None, None))

        yield tick


def test_messages_become_queued_runs_and_leave_the_queue(daemon, queues, instance):
    queues.send({"brand": "acme", "urls": ["https://cdn.example.com/a.jpg"], "request_id": "r-1"})
    queues.send({"brand": "acme", "urls": ["https://cdn.example.com/a.jpg"], "request_id": "r-1"})  # a resend
    queues.send({"brand": "lumen", "urls": ["https://cdn.example.com/b.jpg"]})
    queues.send("garbage")

    daemon()

    runs = instance.get_runs()
    assert sorted((r.tags[PARTITION_NAME_TAG], r.status) for r in runs) == [
        ("acme", dg.DagsterRunStatus.QUEUED), ("lumen", dg.DagsterRunStatus.QUEUED),
    ]  # fmt: skip
    assert {r.tags[RUN_KEY_TAG] for r in runs if r.tags[PARTITION_NAME_TAG] == "acme"} == {"sqs:acme:req:r-1"}
    assert sorted(instance.get_dynamic_partitions("brands")) == ["acme", "lumen"]
    assert queues.counts() == (0, 3), "requests stay in flight until their runs are confirmed"
    assert [d["attributes"]["ad_assets.error_code"] for d in queues.drain(queues.dlq_url)] == ["not_json"]

    daemon()

    assert queues.counts() == (0, 0)
    assert len(instance.get_runs()) == 2, "confirming asks for nothing new"
