"""The Dagster instance files load as Dagster loads them, and say what we promise.

Why: a typo in ``dagster.yaml`` only shows when the daemon starts, in
production. Each file is copied into a fresh ``DAGSTER_HOME`` and loaded with
``DagsterInstance.from_config``; the Postgres ones against a real (embedded)
PostgreSQL, and the ECS one builds its real ``EcsRunLauncher`` (boto3 clients
only: nothing is sent to AWS). The tests then assert the run queue (one run per
brand, a global cap), run retries, run monitoring and tick retention.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.scheduler.instigation import TickStatus

REPO_ROOT = Path(__file__).resolve().parents[2]


def _load(tmp_path: Path, source: Path) -> dg.DagsterInstance:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(source, home / "dagster.yaml")
    return dg.DagsterInstance.from_config(str(home))


def _assert_queue(instance: dg.DagsterInstance, cap: int, pool_limit: int | None = None) -> None:
    # Provider quotas: the AI steps' pools (ai-<provider>), op by op.
    pools = instance.get_concurrency_config().pool_config
    assert pools.default_pool_limit == pool_limit and pools.pool_granularity.value == "op"
    coordinator = instance.run_coordinator
    assert isinstance(coordinator, dg.QueuedRunCoordinator)
    # What the queue daemon applies (the coordinator's own config is empty once pools are set).
    queue = instance.get_concurrency_config().run_queue_config
    assert queue.max_concurrent_runs == cap
    [limit] = queue.tag_concurrency_limits
    assert limit == {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}


def _assert_recovery(instance: dg.DagsterInstance) -> None:
    assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
    assert instance.run_monitoring_enabled
    assert instance.run_monitoring_start_timeout_seconds >= 300
    sensor_retention = instance.get_tick_retention_settings(InstigatorType.SENSOR)
    assert sensor_retention[TickStatus.SKIPPED] == 7


def test_local_dagster_yaml(tmp_path):
    with _load(tmp_path, REPO_ROOT / "dagster.yaml") as instance:
        _assert_queue(instance, cap=4)
        _assert_recovery(instance)
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"


def test_postgres_dagster_yaml(tmp_path, monkeypatch, pg_url):
    monkeypatch.setenv("DAGSTER_PG_URL", pg_url)
    with _load(tmp_path, REPO_ROOT / "deploy" / "dagster.postgres.yaml") as instance:
        _assert_queue(instance, cap=16, pool_limit=4)
        _assert_recovery(instance)
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        # Really on Postgres: a partition written is read back.
        instance.add_dynamic_partitions("brands", ["acme"])
        assert instance.get_dynamic_partitions("brands") == ["acme"]


def test_ecs_production_example(tmp_path, monkeypatch, pg_url, aws_env):
    from dagster_aws.ecs import EcsRunLauncher

    monkeypatch.setenv("DAGSTER_PG_URL", pg_url)
    with _load(tmp_path, REPO_ROOT / "deploy" / "dagster.ecs.yaml") as instance:
        _assert_queue(instance, cap=50, pool_limit=6)
        _assert_recovery(instance)
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        launcher = instance.run_launcher
        assert isinstance(launcher, EcsRunLauncher)
        assert launcher.use_current_ecs_task_config
        assert launcher.run_resources == {"cpu": "2048", "memory": "8192", "ephemeral_storage": 50}
        assert "AD_ASSETS_STORAGE_URL" in launcher.env_vars
        assert [s["capacityProvider"] for s in launcher.run_task_kwargs["capacityProviderStrategy"]] == ["FARGATE_SPOT", "FARGATE"]
        assert launcher.supports_check_run_worker_health, "run monitoring can see a dead task"
        assert instance.run_monitoring_settings["max_runtime_seconds"] == 43200


def test_a_broken_file_fails_loudly(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text((REPO_ROOT / "dagster.yaml").read_text().replace("max_retries: 2", "max_retries: two"))
    with pytest.raises(dg.DagsterInvalidConfigError, match="max_retries"):
        _load(tmp_path, broken)
