"""Backfills after an AI method changes, as an operator runs them.

Why: the promise is that bumping a method's ``version`` makes every brand that
ran it stale in Dagster's eyes, and that ``ad-assets backfill --stale-only``
then re-runs exactly those brands (and only the stale assets), whether or not
a daemon is running. Two brands are ingested for real once (loopback media, the fake AI
provider) on a persistent instance, each test works on a copy of it, and a
method's version is bumped with ``monkeypatch``, as a new release of the
method would.
"""

from __future__ import annotations

import json
import shutil
import time

import dagster as dg
import pytest
from dagster._core.execution.backfill import BulkActionStatus
from dagster._daemon.types import DaemonHeartbeat

from ad_assets.backfill import BACKFILL_TAG, UnknownBrandError, plan_backfill
from ad_assets.cli import main
from ad_assets.definitions import build_definitions
from ad_assets.settings import Settings
from ai_methods.registry import get_method
from tests.support.loopback_http import LoopbackHTTPServer, Static

# Dagster's own backfill code calls its deprecated AssetSelection.sources(); not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Function `AssetSelection.sources` is deprecated:DeprecationWarning")


def _point_env_at(monkeypatch: pytest.MonkeyPatch, root) -> None:
    monkeypatch.setenv("AD_ASSETS_HOME", str(root / "home"))
    monkeypatch.setenv("DAGSTER_HOME", str(root / "dagster"))
    monkeypatch.setenv("AD_ASSETS_AI_PROVIDER", "fake")
    monkeypatch.delenv("AD_ASSETS_STORAGE_URL", raising=False)


@pytest.fixture(scope="module")
def ingested(tmp_path_factory, sample_png, module_database_url):
    """Two brands ingested once through the CLI (loopback media, fake AI provider)."""
    root = tmp_path_factory.mktemp("ingested")
    with pytest.MonkeyPatch.context() as mp, LoopbackHTTPServer() as server:
        _point_env_at(mp, root)
        # The catalog (once wired) commits to the session's PostgreSQL, not to an
        # embedded server inside the directory the tests copy.
        mp.setenv("AD_ASSETS_DATABASE_URL", module_database_url)
        mp.setenv("AD_ASSETS_ALLOW_HOSTS", server.netloc)
        server.route("/a.png", Static(sample_png, "image/png"))
        urls = root / "urls.txt"
        urls.write_text(server.url("/a.png") + "\n")
        for brand in ("acme", "lumen"):
            assert main(["ingest", brand, str(urls), "--json"]) == 0
    return root


@pytest.fixture
def brands(ingested, tmp_path, monkeypatch, capsys, module_database_url):
    """A private copy of the ingested homes (store + Dagster instance); yields the instance."""
    root = tmp_path / "copy"
    shutil.copytree(ingested, root)
    _point_env_at(monkeypatch, root)
    monkeypatch.setenv("AD_ASSETS_DATABASE_URL", module_database_url)
    capsys.readouterr()
    with dg.DagsterInstance.get() as instance:
        yield instance


def _bump(monkeypatch, method: str = "summarize_brand") -> None:
    cls = type(get_method(method))
    monkeypatch.setattr(cls, "version", f"{cls.version}-bumped")


def _plan(instance, **kwargs):
    return plan_backfill(instance, build_definitions(Settings.from_env()), **kwargs)


def _names(keys) -> list[str]:
    return [key.to_user_string() for key in keys]


# Assets downstream of brand_summary (the catalog commit, later cycles) re-run with it.
UPSTREAM_OF_SUMMARY = {"raw_media", "media_analysis", "media_embeddings"}


def test_a_method_version_bump_makes_its_brands_stale(brands, monkeypatch):
    assert _plan(brands, stale_only=True).selected == ()

    _bump(monkeypatch)
    plan = _plan(brands, stale_only=True)

    assert plan.selected == ("acme", "lumen")
    acme = plan.states[0]
    assert acme.status == "stale"
    assert acme.causes == ("brand_summary: has a new code version",)
    assert acme.assets["brand_summary"] == "stale"
    assert {name: acme.assets[name] for name in UPSTREAM_OF_SUMMARY} == dict.fromkeys(UPSTREAM_OF_SUMMARY, "fresh")
    names = _names(plan.asset_keys)
    assert names[0] == "brand_summary" and not UPSTREAM_OF_SUMMARY & set(names), "downloads and analysis are not re-run"


def test_an_analysis_bump_reruns_the_op_and_what_follows(brands, monkeypatch):
    _bump(monkeypatch, "embed_text")
    plan = _plan(brands, stale_only=True)
    names = _names(plan.asset_keys)
    assert names[:3] == ["media_analysis", "media_embeddings", "brand_summary"] and "raw_media" not in names


def test_backfill_without_a_daemon_runs_the_stale_brands_here(brands, monkeypatch, capsys):
    _bump(monkeypatch)

    assert main(["backfill", "--stale-only", "--json"]) == 0

    out = capsys.readouterr()
    doc = json.loads(out.out)
    assert doc["mode"] == "in-process" and doc["selected"] == ["acme", "lumen"]
    assert [r["success"] for r in doc["runs"]] == [True, True]
    assert "[1/2] acme: ok" in out.err and "[2/2] lumen: ok" in out.err
    run = brands.get_run_by_id(doc["runs"][0]["run_id"])
    assert run.tags[BACKFILL_TAG] and run.tags["dagster/partition"] == "acme"
    assert run.remote_job_origin is not None, "re-executable from the UI"
    assert dg.AssetKey("brand_summary") in run.asset_selection
    assert not UPSTREAM_OF_SUMMARY & set(_names(run.asset_selection))
    assert _plan(brands, stale_only=True).selected == (), "fresh again"


def test_backfill_submits_a_dagster_backfill_when_asked(brands, capsys):
    assert main(["backfill", "--brand", "lumen", "--mode", "submit", "--json"]) == 0

    doc = json.loads(capsys.readouterr().out)
    backfill = brands.get_backfill(doc["backfill_id"])
    assert backfill.status == BulkActionStatus.REQUESTED
    assert backfill.asset_backfill_data.target_subset.partitions_subsets_by_asset_key[dg.AssetKey("raw_media")].get_partition_keys() == {"lumen"}
    assert backfill.tags[BACKFILL_TAG] == doc["backfill_id"]
    assert doc["runs"] == []


def test_auto_mode_submits_when_the_backfill_daemon_is_alive(brands, capsys):
    brands.add_daemon_heartbeat(DaemonHeartbeat(timestamp=time.time(), daemon_type="BACKFILL", daemon_id="test", errors=[]))

    assert main(["backfill", "--json"]) == 0

    doc = json.loads(capsys.readouterr().out)
    assert doc["mode"] == "submit" and doc["selected"] == ["acme", "lumen"]
    assert brands.get_backfill(doc["backfill_id"]) is not None


def test_missing_brands_are_selected_only_when_asked(brands, capsys):
    brands.add_dynamic_partitions("brands", ["newbie"])

    assert main(["backfill", "--stale-only", "--dry-run", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["selected"] == []
    assert main(["backfill", "--stale-only", "--include-missing", "--dry-run", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["selected"] == ["newbie"] and doc["mode"] is None and doc["runs"] == []
    assert {b["brand"]: b["status"] for b in doc["brands"]} == {"acme": "fresh", "lumen": "fresh", "newbie": "missing"}


def test_a_dry_run_shows_the_table(brands, monkeypatch, capsys):
    _bump(monkeypatch)
    assert main(["backfill", "--stale-only", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "brands: 2 (2 stale)" in out
    assert "* acme   stale    brand_summary: has a new code version" in out
    assert "selected: 2 brand(s) (*), assets: brand_summary" in out  # (then anything downstream of it)
    assert len(brands.get_runs()) == 2, "nothing ran"


def test_an_unknown_brand_is_a_usage_error(brands, capsys):
    assert main(["backfill", "--brand", "nope"]) == 2
    assert "unknown brand(s) 'nope'" in capsys.readouterr().err
    with pytest.raises(UnknownBrandError):
        _plan(brands, brands=["nope"])
