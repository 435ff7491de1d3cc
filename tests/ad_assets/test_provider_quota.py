"""Requests in flight to one AI provider stay bounded across concurrent runs.

Why: the per-process limit (``AD_ASSETS_AI_CONCURRENCY_<PROVIDER>``) holds in
each run, so N runs at once would put N times that load on the provider and
hit its quota. The AI steps sit in a Dagster pool (``ai-<provider>``); the
instance's pool limit bounds how many of them execute at once across all runs.
Here 4 brand runs are submitted together to an instance whose queue admits all
4, against a loopback OpenAI-compatible provider that holds each request until
one more than the bound is in flight (or a short cap), so whatever the
machine's speed the provider sees the most the system lets through: exactly
pool limit × per-run limit, never more.
"""

from __future__ import annotations

import logging
import threading

import dagster as dg
import pytest
import yaml

from ad_assets.ai_resource import provider_pool
from ad_assets.brand_manifest import register_brand
from ad_assets.demo.samples import encode_image, render_ad_image
from ad_assets.instance import REPO_DAGSTER_YAML, ensure_brand_partition
from ad_assets.instance_runs import code_location, create_brand_run, wait_for_runs
from ad_assets.settings import Settings
from tests.ai_methods.fake_servers import FakeOpenAIServer, ReceivedRequest, Reply
from tests.support.loopback_http import LoopbackHTTPServer, Static

BRANDS = ["north", "south", "east", "west"]
PER_RUN = 2  # AD_ASSETS_AI_CONCURRENCY_OPENAI
HOLD_MAX_S = 1.5  # longest a request is held waiting for others to overlap it


class GatedProvider(FakeOpenAIServer):
    """The OpenAI fake, each answer held until ``target`` requests are in flight (or ``HOLD_MAX_S``).

    Requests that may overlap are held until they do, so the provider sees the
    most the system lets through, whatever the machine's speed; a lone request
    (a run's last call) is answered after ``HOLD_MAX_S``.
    """

    def __init__(self, target: int) -> None:
        super().__init__()
        self.target = target
        self._gate = threading.Condition()
        for path in (r"/v1/chat/completions", r"/v1/embeddings"):
            handler = next(h for _m, pattern, h in self._routes if pattern.pattern == path)
            self.route("POST", path, self._gated(handler))

    def _gated(self, handler):
        def answer(request: ReceivedRequest) -> Reply:
            with self._gate:
                self._gate.notify_all()
                self._gate.wait_for(lambda: self.in_flight >= self.target, timeout=HOLD_MAX_S)
            return handler(request)

        return answer


def _instance_yaml(pool_limit: int) -> str:
    config = yaml.safe_load(REPO_DAGSTER_YAML.read_text())
    config["concurrency"]["runs"]["max_concurrent_runs"] = len(BRANDS)  # the queue admits all runs
    config["concurrency"]["pools"] = {"default_limit": pool_limit, "granularity": "op"}
    return yaml.safe_dump(config)


def test_four_runs_stay_within_the_providers_pool(tmp_path, monkeypatch, module_database_url):
    pool_limit = 2
    bound = pool_limit * PER_RUN
    # Held until one more than the bound is in flight: only a broken pool gets there.
    with GatedProvider(target=bound + 1) as provider, LoopbackHTTPServer() as media:
        for brand in BRANDS:
            for i in range(2):
                png = encode_image(render_ad_image([f"{brand.upper()} SALE {i}"], accent=(40 * i, 90, 160)))
                media.route(f"/{brand}/{i}.png", Static(png, "image/png"))
        dagster_home = tmp_path / "dagster"
        dagster_home.mkdir()
        (dagster_home / "dagster.yaml").write_text(_instance_yaml(pool_limit))
        env = {
            "AD_ASSETS_HOME": str(tmp_path / "home"),
            "DAGSTER_HOME": str(dagster_home),
            "AD_ASSETS_DATABASE_URL": module_database_url,
            "AD_ASSETS_ALLOW_HOSTS": media.netloc,
            "AD_ASSETS_AI_PROVIDER": "openai",
            "AD_ASSETS_OPENAI_BASE_URL": provider.base_url,
            "OPENAI_API_KEY": "test-key",
            "AD_ASSETS_AI_CONCURRENCY_OPENAI": str(PER_RUN),
            "AD_ASSETS_AI_CACHE": "off",  # every run pays: the load is what is measured
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("AD_ASSETS_STORAGE_URL", raising=False)
        settings = Settings.from_env()
        assert provider_pool(settings.ai_provider) == "ai-openai"
        with dg.DagsterInstance.get() as instance, code_location(instance) as context:
            runs = []
            for brand in BRANDS:
                register_brand(settings.media_store(), brand, [media.url(f"/{brand}/{i}.png") for i in range(2)], source="test")
                ensure_brand_partition(instance, brand)
                runs.append(create_brand_run(context, brand))
            for run in runs:
                instance.submit_run(run.run_id, context.create_request_context())
            outcomes = wait_for_runs(context, [run.run_id for run in runs])
            assert all(o.success for o in outcomes), [o.errors for o in outcomes]
            assert instance.get_concurrency_config().pool_config.default_pool_limit == pool_limit
    assert provider.max_in_flight <= bound, f"{provider.max_in_flight} requests in flight, pool allows {bound}"
    # The bound is reached, so runs did overlap up to it: the pool, not chance, held the line.
    assert provider.max_in_flight == bound
    assert len(provider.requests) >= 2 * len(BRANDS)


@pytest.mark.parametrize("config_file", ["dagster.yaml", "deploy/dagster.postgres.yaml", "deploy/dagster.ecs.yaml"])
def test_a_dead_runs_pool_slot_is_freed(tmp_path, monkeypatch, pg_url, config_file):
    """A run killed while its AI step holds the pool's slot (OOM, Spot reclaim, SIGKILL)
    never frees it itself; with a limit of 1 every later run would wait forever. Run
    monitoring frees it ``free_slots_after_run_end_seconds`` after the run ended."""
    import datetime
    import types

    from dagster._core.test_utils import create_run_for_test
    from dagster._daemon.monitoring import concurrency as slots_daemon
    from dagster._time import get_current_datetime

    monkeypatch.setenv("DAGSTER_PG_URL", pg_url)
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO_DAGSTER_YAML.parent / config_file).read_text())
    pool = provider_pool("bedrock")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        storage = instance.event_log_storage
        after = instance.run_monitoring_settings["free_slots_after_run_end_seconds"]
        for run_id in storage.get_concurrency_run_ids():  # the module's Postgres is shared by the cases
            storage.free_concurrency_slots_for_run(run_id)
        storage.set_concurrency_slots(pool, 1)
        dead = create_run_for_test(instance, job_name="ingest_brand", status=dg.DagsterRunStatus.STARTED)
        waiting = create_run_for_test(instance, job_name="ingest_brand", status=dg.DagsterRunStatus.STARTED)
        assert storage.claim_concurrency_slot(pool, dead.run_id, "media_analysis").is_assigned
        assert not storage.claim_concurrency_slot(pool, waiting.run_id, "media_analysis").is_assigned
        instance.report_run_failed(instance.get_run_by_id(dead.run_id), "run worker gone: killed")

        def monitoring_pass(seconds_later: float) -> None:
            later = get_current_datetime() + datetime.timedelta(seconds=seconds_later)
            monkeypatch.setattr(slots_daemon, "get_current_datetime", lambda: later)
            context = types.SimpleNamespace(instance=instance)
            for _ in slots_daemon.execute_concurrency_slots_iteration(context, logging.getLogger("test")):
                pass

        monitoring_pass(after / 2)
        assert storage.get_concurrency_info(pool).active_slot_count == 1  # not yet: the run just ended
        monitoring_pass(after + 1)
        assert storage.get_concurrency_info(pool).active_slot_count == 0
        storage.free_concurrency_slot_for_step(waiting.run_id, "media_analysis")  # drop its pending claim
        assert storage.claim_concurrency_slot(pool, waiting.run_id, "media_analysis").is_assigned
