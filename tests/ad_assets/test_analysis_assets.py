"""``media_analysis``, ``media_embeddings`` and ``brand_summary`` as a user tests
their own assets: an ephemeral instance, a brand partition, ``raw_media``'s
table seeded by a throwaway upstream asset (its media already in a local
store), and the AI methods resource swapped for one on the fake provider that
logs every provider call. The tests assert what the assets report to a person
(metadata, checks, tables) and what they asked of the provider, including
after a method's version is bumped: the brand must show stale in Dagster and a
re-run must pay only for the method that changed.
"""

from collections import Counter

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from dagster._core.definitions.data_version import StaleCauseCategory, StaleStatus

# Dagster has no public stale-status API yet; this is the resolver its UI uses, built the way
# Dagster's own tests build it.
from dagster._utils.test.data_versions import get_stale_status_resolver

from ad_assets.ai_resource import AIMethodsResource
from ad_assets.assets.analysis import analysis_assets
from ad_assets.assets.brand_summary import brand_summary_asset
from ad_assets.assets.raw_media import media_frame
from ad_assets.demo.samples import Scene, encode_image, render_ad_image, render_ad_video
from ad_assets.engine.analysis_tables import ANALYSIS_COLUMNS, EMBEDDING_COLUMNS
from ad_assets.engine.item_analysis import IMAGE_STEPS
from ad_assets.partitions import brands_partitions
from ad_assets.settings import Settings
from ai_methods.builtin.caption import Caption
from ai_methods.calls import MethodRunner
from ai_methods.providers.fake import FakeProvider
from resources.dagster_resources import MediaStoreResource
from resources.media_store import MediaStore
from resources.parquet_io_manager import ParquetIOManager
from tests.ad_assets.ai_call_log import CallLog
from tests.ad_assets.media_rows import store_media

BRAND = "acme"
SEEDED: dict[str, pd.DataFrame] = {}
CALLS = CallLog()
ANALYSIS_KEY, EMBEDDINGS_KEY, SUMMARY_KEY = dg.AssetKey("media_analysis"), dg.AssetKey("media_embeddings"), dg.AssetKey("brand_summary")


@dg.asset(name="raw_media", partitions_def=brands_partitions, code_version="1")
def seeded_raw_media(context: dg.AssetExecutionContext) -> pd.DataFrame:
    """Stands in for acquisition: the brand's ``raw_media`` table, its media already stored."""
    return SEEDED[context.partition_key]


class _Provider(FakeProvider):
    def __init__(self, failing_method: str) -> None:
        super().__init__()
        self.failing_method = failing_method

    async def answer(self, method: str) -> None:
        await super().answer(method)
        if method == self.failing_method:
            raise RuntimeError(f"{method} model crashed")


class FakeAIMethods(AIMethodsResource):
    """The AI methods on the fake provider; every provider call logged in ``CALLS``."""

    failing_method: str = ""

    def runner(self) -> MethodRunner:  # type: ignore[override]
        return MethodRunner(self.settings(), fake=_Provider(self.failing_method), methods=CALLS.methods())


@pytest.fixture
def brand(tmp_path):
    """The brand's media stored; settings, resources and an instance that knows the partition."""
    CALLS.completed.clear()
    store = MediaStore.from_url(str(tmp_path / "store"))
    poster = render_ad_image(["FRESH COFFEE", "SAVE 20%"], accent=(120, 70, 30))
    rows = [
        store_media(store, encode_image(poster, "PNG")),
        store_media(store, encode_image(poster, "JPEG")),  # the same creative re-encoded: a near-duplicate
        store_media(store, encode_image(render_ad_image(["RUN FURTHER"], background=(30, 60, 160)))),
        store_media(store, render_ad_video([Scene(("ONE",), (250, 240, 220), 1.0), Scene(("TWO",), (30, 60, 120), 1.0),
                                            Scene(("THREE",), (200, 40, 40), 1.0)])),  # fmt: skip
    ]
    failed = {**rows[0], "url": "https://cdn.example/gone.png", "status": "failed", "cause": "http_404",
              "sha256": None, "storage_key": None, "media_type": None}  # fmt: skip
    SEEDED[BRAND] = media_frame([*rows, failed])
    env = {"AD_ASSETS_HOME": str(tmp_path / "home"), "AD_ASSETS_STORAGE_URL": str(tmp_path / "store"),
           "AD_ASSETS_AI_PROVIDER": "fake", "AD_ASSETS_AI_PROVIDER_EMBED_IMAGE": "local",
           "AD_ASSETS_METHODS": "builtin"}  # the calls counted here are the builtin pipeline's  # fmt: skip
    settings = Settings.from_env(env)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(brands_partitions.name, [BRAND])
    resources = {
        "media_store": MediaStoreResource(storage_url=settings.storage_url),
        "io_manager": ParquetIOManager(storage_url=settings.storage_url),
        "ai_methods": FakeAIMethods(default_provider="fake", method_providers={"embed_image": "local"},
                                    cache_dir=str(settings.home / "cache")),  # fmt: skip
    }
    yield settings, instance, resources, rows
    SEEDED.clear()


FRAME_CONFIG = dg.RunConfig(ops={"media_analysis": {"config": {"frame_count": 6}}})


def _materialise(settings, instance, resources, assets=None, selection=None, **kwargs) -> dg.ExecuteInProcessResult:
    assets = assets or [seeded_raw_media, analysis_assets(settings), brand_summary_asset(settings)]
    return dg.materialize(assets, partition_key=BRAND, instance=instance, resources=resources, selection=selection,
                          run_config=FRAME_CONFIG, **kwargs)  # fmt: skip


def _stored(resources, asset: str) -> pd.DataFrame:
    """The output as downstream assets load it: media_analysis streams its tables to Parquet, not to memory."""
    return resources["io_manager"].read_partition([asset], BRAND)


def _metadata(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> dict:
    (event,) = [m for m in result.get_asset_materialization_events() if m.asset_key == key]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_brand_is_analysed_embedded_and_summarised(brand):
    settings, instance, resources, rows = brand
    result = _materialise(settings, instance, resources)
    assert result.success
    staged = settings.work_dir / "staged"  # the run's staged tables and their folder went with the run
    assert not staged.exists() or list(staged.iterdir()) == []
    images, video = rows[:3], rows[3]

    analysis: pd.DataFrame = _stored(resources, "media_analysis")
    assert list(analysis.columns) == list(ANALYSIS_COLUMNS)
    assert list(analysis["sha256"]) == [r["sha256"] for r in rows]  # the ok rows only, in order
    assert set(analysis["status"]) == {"analysed"}
    by_sha = analysis.set_index("sha256")
    assert by_sha.loc[video["sha256"], "frames_sampled"] == 6 and by_sha.loc[video["sha256"], "frames_kept"] == 3
    assert by_sha.loc[video["sha256"], "transcript"]["segments"]

    meta = _metadata(result, dg.AssetKey("media_analysis"))
    assert (meta["items"], meta["images"], meta["videos"]) == (4, 3, 1)
    assert (meta["frames_sampled"], meta["frames_kept"]) == (6, 3)
    assert meta["status"] == {"analysed": 4} and meta["failures_by_method"] == {}
    provider_calls = CALLS.by_method()
    units = 3 + 3  # three images, three kept frames
    assert provider_calls == Counter({**{m: units for m in IMAGE_STEPS}, "embed_text": units + 1, "transcribe_speech": 1,
                                      "embed_image": 3 + 6, "summarize_brand": 1})  # fmt: skip
    assert meta["ai_calls"] == sum(provider_calls.values()) - 1  # the summary is brand_summary's call
    assert meta["cache_hits"] == 0 and meta["steps_resumed_from_journal"] == 0
    by_method = {r.data["method"]: r.data for r in meta["ai_calls_by_method"].records}
    assert by_method["caption"]["calls"] == units and by_method["caption"]["failures"] == 0
    assert meta["items_per_s"] > 0 and meta["estimated_cost_usd"] == 0.0

    embeddings: pd.DataFrame = _stored(resources, "media_embeddings")
    assert list(embeddings.columns) == list(EMBEDDING_COLUMNS)
    assert embeddings["kind"].value_counts().to_dict() == {"image": units, "text": units, "transcript": 1}
    assert embeddings.groupby("space")["dim"].unique().map(list).to_dict() == {"local-visual-v1": [512], "fake-v1": [64]}
    assert all(np.linalg.norm(v) == pytest.approx(1.0, abs=1e-4) for v in embeddings["vector"])
    emeta = _metadata(result, dg.AssetKey("media_embeddings"))
    assert emeta["vectors"] == len(embeddings) and emeta["spaces"] == {"local-visual-v1": 512, "fake-v1": 64}
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == "embedding_dimensions_consistent" and check.passed

    summary: pd.DataFrame = result.output_for_node("brand_summary")
    (row,) = summary.to_dict(orient="records")
    assert (row["brand"], row["items"], row["summary_error"]) == (BRAND, 4, None)
    assert row["summary"]["basis"] == "fake" and row["summary"]["item_count"] == 4
    assert row["duplicate_groups"] == [sorted([images[0]["sha256"], images[1]["sha256"]])]
    assert row["method"]["method"] == "summarize_brand"
    smeta = _metadata(result, SUMMARY_KEY)
    assert (smeta["items"], smeta["duplicate_groups"], smeta["outliers"]) == (4, 1, 0)
    assert "Near-duplicate groups:** 1" in smeta["summary"]


def test_a_method_failing_everywhere_shows_in_metadata_and_the_brand_completes(brand):
    settings, instance, resources, _ = brand
    resources["ai_methods"] = FakeAIMethods(default_provider="fake", method_providers={"embed_image": "local"},
                                            cache_dir=str(settings.home / "cache"), failing_method="labels")  # fmt: skip
    result = _materialise(settings, instance, resources)
    assert result.success
    meta = _metadata(result, ANALYSIS_KEY)
    assert meta["failures_by_method"] == {"labels": 6}
    assert meta["status"] == {"partial": 4}
    by_method = {r.data["method"]: r.data for r in meta["ai_calls_by_method"].records}
    assert by_method["labels"]["failures"] == 6 and by_method["caption"]["failures"] == 0
    analysis = _stored(resources, "media_analysis")
    failure = analysis["failures"].iloc[0][0]
    assert (failure["method"], failure["step"], failure["cause"]) == ("labels", "image:labels", "InternalMethodError")
    assert result.output_for_node("brand_summary")["summary"].iloc[0]["basis"] == "fake"


def test_version_bump_makes_the_brand_stale_and_re_calls_only_that_method(brand, monkeypatch):
    settings, instance, resources, _ = brand
    before = [seeded_raw_media, analysis_assets(settings), brand_summary_asset(settings)]
    assert _materialise(settings, instance, resources, before).success
    resolver = get_stale_status_resolver(instance, before)
    assert [resolver.get_status(k, BRAND) for k in (ANALYSIS_KEY, EMBEDDINGS_KEY, SUMMARY_KEY)] == [StaleStatus.FRESH] * 3

    monkeypatch.setattr(Caption, "version", "2")
    after = [seeded_raw_media, analysis_assets(settings), brand_summary_asset(settings)]
    old_versions, new_versions = before[1].code_versions_by_key, after[1].code_versions_by_key
    assert new_versions[ANALYSIS_KEY] != old_versions[ANALYSIS_KEY]  # caption is an analysis method
    assert new_versions[EMBEDDINGS_KEY] == old_versions[EMBEDDINGS_KEY]  # the embedding methods did not change
    assert after[2].code_versions_by_key[SUMMARY_KEY] == before[2].code_versions_by_key[SUMMARY_KEY]

    resolver = get_stale_status_resolver(instance, after)
    assert resolver.get_status(ANALYSIS_KEY, BRAND) == StaleStatus.STALE
    (cause,) = resolver.get_stale_causes(ANALYSIS_KEY, BRAND)
    assert cause.category == StaleCauseCategory.CODE and "code version" in cause.reason
    assert resolver.get_status(dg.AssetKey("raw_media"), BRAND) == StaleStatus.FRESH

    # The backfill of that brand: every analysis step other than caption comes from the journal,
    # the brand summary (same outputs in, same input hash) from the result cache.
    CALLS.completed.clear()
    rerun = _materialise(settings, instance, resources, after, selection=[ANALYSIS_KEY, EMBEDDINGS_KEY, SUMMARY_KEY])
    assert rerun.success
    assert CALLS.by_method() == Counter({"caption": 6})
    meta = _metadata(rerun, ANALYSIS_KEY)
    assert meta["ai_calls"] == 6 and meta["steps_resumed_from_journal"] > 0
    captions = _stored(resources, "media_analysis")["units"].map(
        lambda units: {u["results"]["caption"]["version"] for u in units}
    )
    assert set().union(*captions) == {"2"}
    assert _metadata(rerun, SUMMARY_KEY)["items"] == 4

    resolver = get_stale_status_resolver(instance, after)
    assert [resolver.get_status(k, BRAND) for k in (ANALYSIS_KEY, EMBEDDINGS_KEY, SUMMARY_KEY)] == [StaleStatus.FRESH] * 3


def test_a_run_narrowed_by_its_config_runs_only_those_methods_and_what_they_need(brand):
    settings, instance, resources, _ = brand
    narrowed = dg.RunConfig(ops={"media_analysis": {"config": {"frame_count": 6, "methods": ["caption"]}}})
    assets = [seeded_raw_media, analysis_assets(settings), brand_summary_asset(settings)]
    result = dg.materialize(assets, partition_key=BRAND, instance=instance, resources=resources,
                            selection=[dg.AssetKey("raw_media"), ANALYSIS_KEY, EMBEDDINGS_KEY], run_config=narrowed)  # fmt: skip
    assert result.success
    assert set(CALLS.by_method()) == {"caption", "ocr_text", "embed_image", "embed_text"}
    meta = _metadata(result, ANALYSIS_KEY)
    assert [r.data["method"] for r in meta["pipeline"].records] == ["caption", "embed_image", "ocr_text", "embed_text"]
    warnings = [e.message for e in instance.all_logs(result.run_id) if e.level >= 30]
    assert any("this run is narrowed to ['caption']" in w for w in warnings)
