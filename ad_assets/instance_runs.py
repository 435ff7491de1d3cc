"""Runs submitted to the instance through the code location of ``workspace.yaml``.

A run created this way carries its code-location origin, exactly as one
launched from the UI: it shows on the job page and the Overview timeline, the
UI can re-execute it, and it goes through the instance's run coordinator (the
run queue of ``dagster.yaml``: one run per brand, the global cap).

Without a daemon nobody would take a queued run off the queue, so the caller
*drives the queue for its own runs*: it runs passes of Dagster's own
``QueuedRunCoordinatorDaemon`` restricted to the run ids it submitted, which
apply the queue's limits and launch through the instance's run launcher (a
subprocess of the code server by default). Runs queued by others are left to
the daemon. With a daemon alive (``ad-assets dev``, production), the caller
only submits and waits.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
from dagster._core.definitions.selector import JobSubsetSelector
from dagster._core.workspace.context import WorkspaceProcessContext, WorkspaceRequestContext
from dagster._core.workspace.load_target import ModuleTarget, WorkspaceFileTarget
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon

from ad_assets.jobs import INGEST_JOB

WORKSPACE_YAML = Path(__file__).resolve().parents[1] / "workspace.yaml"
DEFINITIONS_MODULE = "ad_assets.definitions"
# The daemon beats every 20 s or so; a minute without one means nobody dequeues.
QUEUE_DAEMON_MAX_AGE_S = 60.0
POLL_INTERVAL_S = 0.5
FINISHED = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)


class RunSubmissionError(RuntimeError):
    """The code location could not be loaded, or the run could not be created; the message says which."""


@dataclass(frozen=True)
class RunOutcome:
    """A finished run as the CLI reports it: status, per-asset metadata, and error lines."""

    run_id: str
    success: bool
    status: str
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


@contextmanager
def code_location(instance: dg.DagsterInstance) -> Iterator[WorkspaceProcessContext]:
    """The workspace of ``workspace.yaml`` (the UI's), its code server started for this block.

    An installed copy without the repository's ``workspace.yaml`` loads the same
    module under the same location name, so origins match either way.
    """
    if WORKSPACE_YAML.exists():
        target = WorkspaceFileTarget(paths=[str(WORKSPACE_YAML)])
    else:
        target = ModuleTarget(
            module_name=DEFINITIONS_MODULE, attribute=None, working_directory=None, location_name=DEFINITIONS_MODULE
        )
    with _stdout_to_stderr():
        # The code server (and the run workers it spawns) inherit fd 1 now: their
        # logs must not mix with the CLI's stdout, which is a contract (``--json``).
        context = WorkspaceProcessContext(instance, target)
    with context:
        yield context


@contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Point file descriptor 1 at stderr for the block (for child processes started in it)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _job_in(workspace: WorkspaceRequestContext, asset_selection: Iterable[dg.AssetKey] | None):
    names = workspace.code_location_names
    if len(names) != 1:
        raise RunSubmissionError(f"workspace.yaml must name exactly one code location, found {list(names)}")
    name = names[0]
    if workspace.has_code_location_error(name):
        raise RunSubmissionError(f"code location {name!r} failed to load: {workspace.get_code_location_error(name)}")
    location = workspace.get_code_location(name)
    (repo,) = location.get_repositories().values()
    selector = JobSubsetSelector(
        location_name=name, repository_name=repo.name, job_name=INGEST_JOB, op_selection=None,
        asset_selection=list(asset_selection) if asset_selection else None,
    )  # fmt: skip
    return location, repo, location.get_job(selector)


def create_brand_run(
    context: WorkspaceProcessContext,
    brand: str,
    *,
    tags: Mapping[str, str] | None = None,
    asset_selection: Iterable[dg.AssetKey] | None = None,
    run_config: Mapping[str, Any] | None = None,
) -> dg.DagsterRun:
    """Create (not start) one brand's ``ingest_brand`` run with its code-location origin.

    What ``dagster job launch`` and the UI's launchpad do: the execution plan
    comes from the code location, the run records ``remote_job_origin`` (the
    UI's re-execution looks the job up by it) and ``job_code_origin`` (how a
    launcher starts it anywhere).
    """
    instance = context.instance
    workspace = context.create_request_context()
    location, repo, remote_job = _job_in(workspace, asset_selection)
    run_config = dict(run_config or {})
    plan = location.get_execution_plan(
        remote_job, run_config, step_keys_to_execute=None, known_state=None, instance=instance
    ).execution_plan_snapshot
    return instance.create_run(
        job_name=remote_job.name,
        run_id=None,
        run_config=run_config,
        resolved_op_selection=None,
        step_keys_to_execute=plan.step_keys_to_execute,
        op_selection=None,
        status=None,
        root_run_id=None,
        parent_run_id=None,
        tags={**remote_job.tags, **(tags or {}), "dagster/partition": brand},
        job_snapshot=remote_job.job_snapshot,
        execution_plan_snapshot=plan,
        parent_job_snapshot=remote_job.parent_job_snapshot,
        remote_job_origin=remote_job.get_remote_origin(),
        job_code_origin=remote_job.get_python_origin(),
        asset_selection=frozenset(asset_selection) if asset_selection else None,
        asset_check_selection=None,
        asset_graph=repo.asset_graph,
    )


class _OwnRunsDequeuer(QueuedRunCoordinatorDaemon):
    """Dagster's queue daemon, taking only the given runs off the queue (the limits are Dagster's)."""

    def __init__(self, run_ids: Iterable[str]) -> None:
        super().__init__(interval_seconds=0)
        self.run_ids = set(run_ids)

    def _get_runs_to_dequeue(self, instance, concurrency_config, fixed_iteration_time):
        return [
            run
            for run in super()._get_runs_to_dequeue(instance, concurrency_config, fixed_iteration_time)
            if run.run_id in self.run_ids
        ]


def queue_daemon_running(instance: dg.DagsterInstance, max_age_s: float = QUEUE_DAEMON_MAX_AGE_S) -> bool:
    """True when the instance's queued-run daemon sent a heartbeat within ``max_age_s`` seconds."""
    beat = instance.get_daemon_heartbeats().get(QueuedRunCoordinatorDaemon.daemon_type())
    return beat is not None and time.time() - beat.timestamp <= max_age_s


def submit_and_wait(
    context: WorkspaceProcessContext,
    run: dg.DagsterRun,
    *,
    on_wait: Callable[[str], None] | None = None,
) -> RunOutcome:
    """Submit ``run`` to the run coordinator and block until it finishes (:func:`wait_for_run`)."""
    context.instance.submit_run(run.run_id, context.create_request_context())
    return wait_for_run(context, run.run_id, on_wait=on_wait)


def wait_for_run(
    context: WorkspaceProcessContext,
    run_id: str,
    *,
    on_wait: Callable[[str], None] | None = None,
) -> RunOutcome:
    """Block until the submitted run ``run_id`` finishes; its outcome from the event log.

    Without a live queue daemon this process dequeues the run itself (see the
    module docstring). ``on_wait(message)`` is told once when the run stays in
    the queue behind its brand's or the global limit.
    """
    [outcome] = wait_for_runs(context, [run_id], on_wait=on_wait)
    return outcome


def wait_for_runs(
    context: WorkspaceProcessContext,
    run_ids: Iterable[str],
    *,
    on_wait: Callable[[str], None] | None = None,
) -> list[RunOutcome]:
    """Block until every submitted run of ``run_ids`` finishes; their outcomes, in that order.

    Several runs submitted together are dequeued together, so they run side by
    side as far as the queue's limits (and the pools of their steps) allow.
    """
    instance = context.instance
    pending = list(dict.fromkeys(run_ids))
    dequeuer = None
    if isinstance(instance.run_coordinator, dg.QueuedRunCoordinator) and not queue_daemon_running(instance):
        dequeuer = _OwnRunsDequeuer(pending)
    told: set[str] = set()
    with dequeuer or _null():
        while True:
            runs = {}
            for run_id in pending:
                current = instance.get_run_by_id(run_id)
                if current is None:
                    raise RunSubmissionError(f"run {run_id} is not on the instance")
                runs[run_id] = current
            if all(run.status in FINISHED for run in runs.values()):
                return [run_outcome(instance, run_id) for run_id in pending]
            if dequeuer is not None and any(run.status == dg.DagsterRunStatus.QUEUED for run in runs.values()):
                dequeue_pass(context, dequeuer)
                for run_id in pending:
                    current = instance.get_run_by_id(run_id)
                    if current.status == dg.DagsterRunStatus.QUEUED and on_wait and run_id not in told:
                        told.add(run_id)
                        on_wait(f"run {run_id} waits in the run queue (its brand is busy or the global cap is reached)")
                    runs[run_id] = current
            for run in runs.values():
                _fail_if_worker_died(instance, run)
            time.sleep(POLL_INTERVAL_S)  # polling a run's status: Dagster has no blocking wait


def dequeue_pass(context: WorkspaceProcessContext, dequeuer: QueuedRunCoordinatorDaemon) -> None:
    """One pass of the queue daemon: launch what the queue's limits allow."""
    for _ in dequeuer.run_iteration(context):
        pass


@contextmanager
def _null():
    yield None


def _fail_if_worker_died(instance: dg.DagsterInstance, run: dg.DagsterRun) -> None:
    """What run monitoring does in the daemon: a started run whose worker is gone is failed, not awaited forever."""
    from dagster._core.launcher import WorkerStatus

    launcher = instance.run_launcher
    if run.status != dg.DagsterRunStatus.STARTED or not launcher.supports_check_run_worker_health:
        return
    health = launcher.check_run_worker_health(run)
    if health.status in (WorkerStatus.FAILED, WorkerStatus.NOT_FOUND):
        latest = instance.get_run_by_id(run.run_id)
        if latest is not None and latest.status not in FINISHED:
            instance.report_run_failed(latest, f"run worker gone: {health.msg or health.status.value}")


def _plain(value: Any) -> Any:
    inner = getattr(value, "value", value)
    if isinstance(inner, (str, int, float, bool, dict, list)) or inner is None:
        return inner
    return None  # tables and paths stay in the UI


def materialization_metadata(events: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """``{asset key: {metadata key: plain value}}`` of the materialisations among ``events`` (DagsterEvents)."""
    metadata: dict[str, dict[str, Any]] = {}
    for event in events:
        if event.is_step_materialization:
            mat = event.step_materialization_data.materialization
            metadata[mat.asset_key.to_user_string()] = {k: _plain(v) for k, v in mat.metadata.items()}
    return metadata


def step_failures(events: Iterable[Any]) -> list[str]:
    """``"<step>: <message>"`` for each failed step among ``events`` (DagsterEvents)."""
    return [
        f"{event.step_key}: {event.step_failure_data.error.message.strip()}"
        for event in events
        if event.is_step_failure and event.step_failure_data.error is not None
    ]


def run_outcome(instance: dg.DagsterInstance, run_id: str) -> RunOutcome:
    """A finished run's status, materialisation metadata and errors, read back from the event log."""
    run = instance.get_run_by_id(run_id)
    events = [entry.dagster_event for entry in instance.all_logs(run_id) if entry.dagster_event is not None]
    errors = step_failures(events)
    if run.status != dg.DagsterRunStatus.SUCCESS and not errors:
        # The run failed outside any step (the code location, the launcher, a killed worker): say why.
        errors = [f"run: {event.message}" for event in events if event.is_run_failure and event.message]
        errors = errors or [f"run: ended {run.status.value}"]
    return RunOutcome(
        run_id=run_id,
        success=run.status == dg.DagsterRunStatus.SUCCESS,
        status=run.status.value,
        metadata=materialization_metadata(events),
        errors=errors,
    )
