"""The Kubernetes values and the ECS files load as Helm and Dagster load them.

Why: a wrong key in a Helm values file or a launcher config shows only when the
chart is installed or the daemon starts, in production. The values are checked
against the chart's own schema (an offline excerpt, see the fixture's
``$comment``), then rendered into the ``dagster.yaml`` the chart builds (its
``configmap-instance.yaml``) and loaded with Dagster's config machinery: the
K8sRunLauncher's config type, and a real instance for the run queue. For ECS,
the run's image must come from the code location (``DAGSTER_CURRENT_IMAGE``):
without it the EcsRunLauncher cannot launch any run; and the IAM file must
allow every AWS call the launcher and this project make.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import jsonschema
import pytest
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config

REPO_ROOT = Path(__file__).resolve().parents[2]
VALUES = REPO_ROOT / "deploy" / "helm" / "values.yaml"
CHART_SCHEMA = Path(__file__).with_name("fixtures") / "dagster_chart_values.schema.json"
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/ad-assets:0.1.0"


def _values() -> dict[str, Any]:
    return yaml.safe_load(VALUES.read_text())


def _chart_schema() -> dict[str, Any]:
    return json.loads(CHART_SCHEMA.read_text())


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def render_instance_yaml(values: Mapping[str, Any], namespace: str = "ad-assets") -> dict[str, Any]:
    """The ``dagster.yaml`` the chart's configmap-instance.yaml renders from these values (the parts we set)."""
    pg = values["postgresql"]
    pg_config = {
        "postgres_db": {
            "username": pg["postgresqlUsername"],
            "password": {"env": "DAGSTER_PG_PASSWORD"},
            "hostname": pg["postgresqlHost"],
            "db_name": pg["postgresqlDatabase"],
            "port": pg["service"]["port"],
            "params": pg.get("postgresqlParams", {}),
        }
    }
    k8s = values["runLauncher"]["config"]["k8sRunLauncher"]
    launcher: dict[str, Any] = {
        "load_incluster_config": k8s["loadInclusterConfig"],
        "job_namespace": k8s.get("jobNamespace") or namespace,
        "image_pull_policy": k8s["imagePullPolicy"],
        "service_account_name": values["serviceAccount"]["name"],
        "dagster_home": {"env": "DAGSTER_HOME"},
        "instance_config_map": {"env": "DAGSTER_K8S_INSTANCE_CONFIG_MAP"},
        "postgres_password_secret": {"env": "DAGSTER_K8S_PG_PASSWORD_SECRET"},
        "env_config_maps": [{"env": "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP"}] + [c["name"] for c in k8s["envConfigMaps"]],
    }
    if k8s.get("envSecrets"):
        launcher["env_secrets"] = [s["name"] for s in k8s["envSecrets"]]
    for key in ("envVars", "volumeMounts", "volumes", "labels", "resources", "schedulerName", "securityContext", "failPodOnRunFailure"):
        if k8s.get(key):
            launcher[_snake(key)] = k8s[key]
    if k8s.get("runK8sConfig"):
        launcher["run_k8s_config"] = {_snake(k): v for k, v in k8s["runK8sConfig"].items()}
    daemon = values["dagsterDaemon"]
    queued = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    monitoring = daemon["runMonitoring"]
    rendered: dict[str, Any] = {
        "schedule_storage": {"module": "dagster_postgres.schedule_storage", "class": "PostgresScheduleStorage", "config": pg_config},
        "run_storage": {"module": "dagster_postgres.run_storage", "class": "PostgresRunStorage", "config": pg_config},
        "event_log_storage": {"module": "dagster_postgres.event_log", "class": "PostgresEventLogStorage", "config": pg_config},
        "run_launcher": {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": launcher},
        "run_coordinator": {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator"},
        "run_monitoring": {
            "enabled": monitoring["enabled"],
            "start_timeout_seconds": monitoring["startTimeoutSeconds"],
            "cancel_timeout_seconds": monitoring["cancelTimeoutSeconds"],
            "max_resume_run_attempts": monitoring["maxResumeRunAttempts"],
            "poll_interval_seconds": monitoring["pollIntervalSeconds"],
            "free_slots_after_run_end_seconds": monitoring["freeSlotsAfterRunEndSeconds"],
        },
        "run_retries": {"enabled": daemon["runRetries"]["enabled"], "max_retries": daemon["runRetries"]["maxRetries"]},
        "sensors": {"use_threads": daemon["sensors"]["useThreads"], "num_workers": daemon["sensors"]["numWorkers"]},
        "telemetry": {"enabled": values["telemetry"]["enabled"]},
        "retention": {
            "sensor": {"purge_after_days": values["retention"]["sensor"]["purgeAfterDays"]},
            "schedule": {"purge_after_days": values["retention"]["schedule"]["purgeAfterDays"]},
        },
    }
    queue = {_snake(k): v for k, v in queued.items() if v not in (None, [], {})}
    if queue:
        rendered["run_coordinator"]["config"] = queue
    rendered.update(values.get("additionalInstanceConfig") or {})
    return rendered


def test_helm_values_match_the_charts_schema():
    jsonschema.validate(_values(), _chart_schema())


@pytest.mark.parametrize(
    "path, bad",
    [
        (("runLauncher", "config", "k8sRunLauncher", "envSecret"), [{"name": "x"}]),  # typo of envSecrets
        (("runLauncher", "type"), "K8sLauncher"),
        (("dagsterDaemon", "runCoordinator", "config", "queuedRunCoordinator", "maxConcurrentRun"), 5),
        (("dagsterWebserver", "image", "pullPolicy"), "Sometimes"),
    ],
)
def test_the_schema_check_catches_mistakes(path, bad):
    values = _values()
    node = values
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = bad
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(values, _chart_schema())


def test_one_image_everywhere_and_settings_from_secrets():
    values = _values()
    images = {
        f"{d['image']['repository']}:{d['image']['tag']}"
        for d in [values["dagsterWebserver"], values["dagsterDaemon"], *values["dagster-user-deployments"]["deployments"]]
    }
    assert images == {IMAGE}
    # No job_image: the run Jobs take the code location's image, so a new tag needs one change.
    assert "image" not in values["runLauncher"]["config"]["k8sRunLauncher"]
    [deployment] = values["dagster-user-deployments"]["deployments"]
    assert deployment["codeServerArgs"][-1] == "ad_assets.definitions"
    assert deployment["includeConfigInLaunchedRuns"]["enabled"]
    for section in (values["dagsterWebserver"], values["dagsterDaemon"], deployment, values["runLauncher"]["config"]["k8sRunLauncher"]):
        assert {"name": "ad-assets-env"} in section["envSecrets"]
    assert values["postgresql"]["enabled"] is False and values["generatePostgresqlPasswordSecret"] is False
    assert "eks.amazonaws.com/role-arn" in values["serviceAccount"]["annotations"]
    # Non-root, as the image (uid 10001).
    for section in (values["dagsterWebserver"], values["dagsterDaemon"], deployment):
        assert section["podSecurityContext"]["runAsUser"] == 10001


def test_rendered_instance_passes_dagsters_config_types(tmp_path, monkeypatch):
    from dagster_k8s import K8sRunLauncher

    rendered = render_instance_yaml(_values())
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(rendered))
    config, _ = dagster_instance_config(str(tmp_path))  # the instance file's schema
    assert config["run_launcher"]["class"] == "K8sRunLauncher"
    for name, value in {
        "DAGSTER_HOME": "/opt/dagster/dagster_home",
        "DAGSTER_K8S_INSTANCE_CONFIG_MAP": "ad-assets-dagster-instance",
        "DAGSTER_K8S_PG_PASSWORD_SECRET": "ad-assets-dagster-pg",
        "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP": "ad-assets-dagster-pipeline-env",
    }.items():
        monkeypatch.setenv(name, value)
    result = process_config(K8sRunLauncher.config_type(), rendered["run_launcher"]["config"])
    assert result.success, [e.message for e in result.errors or []]
    assert result.value["env_secrets"] == ["ad-assets-env"]
    assert result.value["run_k8s_config"]["job_spec_config"]["backoffLimit"] == 0
    broken = {**rendered["run_launcher"]["config"], "env_secret": ["ad-assets-env"]}
    assert not process_config(K8sRunLauncher.config_type(), broken).success


def test_rendered_instance_queue_loads(tmp_path, monkeypatch, pg_url):
    """The run queue the chart renders, loaded by a real instance (storage on the embedded Postgres)."""
    rendered = render_instance_yaml(_values())
    for key in ("schedule_storage", "run_storage", "event_log_storage", "run_launcher"):
        rendered.pop(key)
    rendered["storage"] = {"postgres": {"postgres_url": {"env": "DAGSTER_PG_URL"}}}
    monkeypatch.setenv("DAGSTER_PG_URL", pg_url)
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(rendered))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        queue = instance.get_concurrency_config().run_queue_config  # what the queue daemon applies
        assert queue.max_concurrent_runs == 50
        assert queue.tag_concurrency_limits == [
            {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
        ]
        assert instance.run_retries_max_retries == 2 and instance.run_monitoring_enabled
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 6


# ECS ---------------------------------------------------------------------------------------------


def _ecs_instance(tmp_path: Path) -> dg.DagsterInstance:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO_ROOT / "deploy" / "dagster.ecs.yaml").read_text())
    return dg.DagsterInstance.from_config(str(home))


@pytest.mark.parametrize("current_image", [IMAGE, None])
def test_ecs_launcher_takes_the_image_from_the_code_location(tmp_path, monkeypatch, pg_url, aws_env, current_image):
    """The code location's DAGSTER_CURRENT_IMAGE reaches the run, which is where the EcsRunLauncher looks."""
    from dagster._core.launcher import LaunchRunContext

    from ad_assets.instance_runs import code_location, create_brand_run

    monkeypatch.setenv("DAGSTER_PG_URL", pg_url)
    if current_image:
        monkeypatch.setenv("DAGSTER_CURRENT_IMAGE", current_image)
    else:
        monkeypatch.delenv("DAGSTER_CURRENT_IMAGE", raising=False)
    with _ecs_instance(tmp_path) as instance, code_location(instance) as context:
        instance.add_dynamic_partitions("brands", ["acme"])
        run = create_brand_run(context, "acme")
        launcher = instance.run_launcher
        image = launcher.get_image_for_run(LaunchRunContext(dagster_run=run, workspace=context.create_request_context()))
        assert image == current_image
        if current_image is None:
            for name in launcher.env_vars:  # what the launcher copies into the run's task
                monkeypatch.setenv(name, "x")
            with pytest.raises(dg.DagsterInvariantViolationError, match="Could not determine image"):
                launcher._run_task_kwargs(run, image, _container_context(run, launcher))


def _container_context(run, launcher):
    from dagster_aws.ecs.container_context import EcsContainerContext

    return EcsContainerContext.create_for_run(run, launcher)


def _aws_calls(path: Path, clients: Mapping[str, str]) -> set[str]:
    """IAM actions of the boto3 calls in ``path``: ``<client>.<method>(`` (or the method passed on, ``,``) → ``service:Method``."""
    text = path.read_text()
    actions = set()
    for attr, service in clients.items():
        for method in re.findall(rf"\b{attr}\.([a-z_]+)\s*[(,]", text):
            if method in {"meta", "get_paginator"}:
                continue
            actions.add(f"{service}:{''.join(p.capitalize() for p in method.split('_'))}")
        for op in re.findall(rf"\b{attr}\.get_paginator\(\"([a-z_]+)\"", text):
            actions.add(f"{service}:{''.join(p.capitalize() for p in op.split('_'))}")
    return actions


def _allowed(policy: Mapping[str, Any]) -> set[str]:
    allowed = set()
    for statement in policy["Statement"]:
        actions = statement["Action"]
        allowed.update([actions] if isinstance(actions, str) else actions)
    return allowed


def test_ecs_iam_covers_every_call_of_the_launcher_and_the_project():
    import dagster_aws

    iam = json.loads((REPO_ROOT / "deploy" / "ecs.iam.json").read_text())
    aws = Path(dagster_aws.__file__).parent
    launcher_calls = (
        _aws_calls(aws / "ecs" / "launcher.py", {"ecs": "ecs", "logs": "logs"})
        | _aws_calls(aws / "ecs" / "tasks.py", {"ecs": "ecs"})
        | _aws_calls(aws / "ecs" / "utils.py", {"ecs": "ecs"})
        | _aws_calls(aws / "secretsmanager" / "secrets.py", {"secrets_manager": "secretsmanager"})
    )
    # Not boto3 method calls, but needed: tagging at RunTask, the ENI lookup of
    # use_current_ecs_task_config (an ec2 resource), handing roles to run tasks.
    launcher_calls |= {"ecs:TagResource", "ec2:DescribeNetworkInterfaces", "iam:PassRole"}
    assert {"ecs:RunTask", "ecs:RegisterTaskDefinition", "ecs:StopTask"} <= launcher_calls  # the scan works
    assert launcher_calls <= _allowed(iam["daemon"]), launcher_calls - _allowed(iam["daemon"])

    project_calls = set()
    for path in [*REPO_ROOT.glob("resources/*.py"), *REPO_ROOT.glob("ai_methods/providers/*.py")]:
        project_calls |= _aws_calls(path, {"_client": "sqs"} if path.name == "sqs_queue.py" else {})
    project_calls |= _aws_calls(REPO_ROOT / "ai_methods" / "providers" / "bedrock.py", {"runtime": "bedrock", "transcribe": "transcribe"})
    # Converse is authorised by bedrock:InvokeModel; obstore's S3 calls are Get/Put/Delete/List.
    project_calls = {"bedrock:InvokeModel" if a == "bedrock:Converse" else a for a in project_calls}
    project_calls |= {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"}
    assert {"sqs:ReceiveMessage", "transcribe:StartTranscriptionJob", "bedrock:InvokeModel"} <= project_calls
    sqs_batches = {"sqs:DeleteMessageBatch": "sqs:DeleteMessage", "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility"}
    project_calls = {sqs_batches.get(a, a) for a in project_calls}  # IAM authorises batches by the single action
    assert project_calls <= _allowed(iam["tasks"]), project_calls - _allowed(iam["tasks"])


def test_postgres_backed_instance_stores_events(tmp_path, monkeypatch, pg_url):
    """Every event write on Postgres storage sends NOTIFY run_events; under SQLAlchemy 2.1's
    default driver (psycopg 3) that statement is a syntax error, so each run would fail."""
    monkeypatch.setenv("DAGSTER_PG_URL", pg_url)
    home = tmp_path / "pg_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO_ROOT / "deploy" / "dagster.postgres.yaml").read_text())
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key="probe", metadata={"n": 1}))
        assert instance.get_latest_materialization_event(dg.AssetKey("probe")) is not None
