"""Runs started by the CLI are first-class runs of the code location.

Why: a run executed in process has no code-location origin, so the UI's
"Re-execute" fails, the job page and timeline do not list it, and it skips
the run queue. Here the CLI ingests a brand for real (loopback media, the fake
AI provider, no daemon), then the run is re-executed exactly as the UI's
button does it (GraphQL ``launchPipelineReexecution`` against the workspace of
``workspace.yaml``), and the queue's one-run-per-brand limit is shown to hold
for the CLI's own dequeuing.
"""

from __future__ import annotations

import contextlib
import io
import json

import dagster as dg
import pytest
from dagster._core.storage.tags import REPOSITORY_LABEL_TAG
from dagster_graphql.test.utils import execute_dagster_graphql

from ad_assets.cli import main
from ad_assets.instance_runs import (
    DEFINITIONS_MODULE,
    _OwnRunsDequeuer,
    code_location,
    create_brand_run,
    dequeue_pass,
    wait_for_run,
)
from tests.support.loopback_http import LoopbackHTTPServer, Static

REEXECUTE = """
mutation Reexecute($reexecutionParams: ReexecutionParams) {
  launchPipelineReexecution(reexecutionParams: $reexecutionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message stack }
  }
}
"""


@pytest.fixture(scope="module")
def ingested(tmp_path_factory, sample_png, module_database_url):
    """One brand ingested through ``ad-assets ingest --json`` with no daemon; yields (instance, CLI JSON)."""
    root = tmp_path_factory.mktemp("first-class")
    with pytest.MonkeyPatch.context() as mp, LoopbackHTTPServer() as server:
        mp.setenv("AD_ASSETS_HOME", str(root / "home"))
        mp.setenv("DAGSTER_HOME", str(root / "dagster"))
        mp.setenv("AD_ASSETS_AI_PROVIDER", "fake")
        mp.setenv("AD_ASSETS_DATABASE_URL", module_database_url)
        mp.setenv("AD_ASSETS_ALLOW_HOSTS", server.netloc)
        mp.delenv("AD_ASSETS_STORAGE_URL", raising=False)
        server.route("/a.png", Static(sample_png, "image/png"))
        urls = root / "urls.txt"
        urls.write_text(server.url("/a.png") + "\n")
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["ingest", "acme", str(urls), "--json"]) == 0
        with dg.DagsterInstance.get() as instance:
            yield instance, json.loads(out.getvalue())


def test_a_cli_run_has_the_code_location_origin(ingested):
    instance, doc = ingested
    assert doc["success"] and doc["counts"]["ok"] == 1, doc
    run = instance.get_run_by_id(doc["run_id"])
    assert run.remote_job_origin is not None and run.remote_job_origin.location_name == DEFINITIONS_MODULE
    assert run.job_code_origin is not None
    # The job page and the timeline filter runs on the job name and this stored tag (repository@location).
    label = f"__repository__@{DEFINITIONS_MODULE}"
    listed = instance.get_run_ids(dg.RunsFilter(job_name="ingest_brand", tags={REPOSITORY_LABEL_TAG: label}))
    assert doc["run_id"] in listed
    assert run.tags["dagster/partition"] == "acme" and run.tags["ad_assets/source"] == "cli"


def test_the_ui_re_executes_a_cli_run(ingested):
    instance, doc = ingested
    with code_location(instance) as context:
        result = execute_dagster_graphql(
            context.create_request_context(),
            REEXECUTE,
            variables={"reexecutionParams": {"parentRunId": doc["run_id"], "strategy": "ALL_STEPS"}},
        )
        launched = result.data["launchPipelineReexecution"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        child_id = launched["run"]["runId"]
        outcome = wait_for_run(context, child_id)
    assert outcome.success, outcome.errors
    child = instance.get_run_by_id(child_id)
    assert child.parent_run_id == doc["run_id"] and child.root_run_id == doc["run_id"]
    assert child.tags["dagster/partition"] == "acme"
    assert outcome.metadata["raw_media"]["counts"]["ok"] == 1


def test_a_cli_run_waits_while_its_brand_is_busy(ingested):
    instance, _ = ingested
    with code_location(instance) as context:
        # A run of the same brand in progress (as another machine's would be).
        busy = create_brand_run(context, "acme")
        instance.handle_run_event(busy.run_id, _run_event(busy, dg.DagsterEventType.RUN_START))
        ours = create_brand_run(context, "acme")
        instance.submit_run(ours.run_id, context.create_request_context())
        with _OwnRunsDequeuer([ours.run_id]) as dequeuer:
            dequeue_pass(context, dequeuer)
            assert instance.get_run_by_id(ours.run_id).status == dg.DagsterRunStatus.QUEUED, "one run per brand"
            instance.report_run_canceled(instance.get_run_by_id(busy.run_id))
            dequeue_pass(context, dequeuer)
            assert instance.get_run_by_id(ours.run_id).status != dg.DagsterRunStatus.QUEUED, "launched once free"
        assert wait_for_run(context, ours.run_id).success


def _run_event(run, event_type):
    return dg.DagsterEvent(event_type_value=event_type.value, job_name=run.job_name, message="started elsewhere")
