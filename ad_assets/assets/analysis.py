"""``media_analysis`` and ``media_embeddings``: the first AI cycle over a brand's items.

Both come out of one op (one event loop per brand run): frame de-duplication
needs the frame embeddings, so computing them apart would decode every video
twice. ``media_embeddings`` still depends on ``media_analysis`` in the graph.
"""

import asyncio
import contextlib
import shutil

import dagster as dg
import pandas as pd
from pydantic import Field

from ad_assets.engine.pipeline_plan import BRAND, ITEM, PICTURE, PipelinePlan, plan_for
from ad_assets.ai_resource import AIMethodsResource, methods_code_version, provider_pool
from ad_assets.engine.analysis_sink import AnalysisSink
from ad_assets.engine.item_analysis import (
    EMBED_IMAGE,
    EMBED_TEXT,
    ENGINE_VERSION,
    AnalysisConfig,
    ItemAnalysis,
    analyse_brand,
)
from ad_assets.metadata import table_metadata
from ad_assets.partitions import brands_partitions
from ad_assets.settings import Settings
from resources.dagster_resources import MediaStoreResource
from resources.parquet_io_manager import StagedParquet


class MediaAnalysisConfig(dg.Config):
    """Run configuration of the first AI cycle."""

    frame_count: int = Field(45, ge=1, le=1000, description="Frames sampled per video, spread evenly over its duration.")
    dedupe_threshold: float = Field(
        0.95, gt=0, le=1, description="A frame is dropped when its embedding's cosine similarity to the last kept frame is at least this"
        " and its picture barely changed (a new message on the same background is kept)."
    )
    items_in_flight: int | None = Field(
        None,
        ge=1,
        description="Items loaded and decoded at once (AI calls are bounded per provider). Default: enough to keep "
        "the providers' calls in flight (twice the largest provider concurrency the methods use, 16 to 256).",
    )
    copies_in_flight: int = Field(
        8,
        ge=1,
        description="Items loading at once (of the items in flight): copying their media from the store and "
        "opening their journals; raise it for a store with a long time to first byte.",
    )
    methods: list[str] | None = Field(
        None,
        description="Narrow this run to these methods (and what they need), e.g. to try one; default: the "
        "configured pipeline (AD_ASSETS_METHODS). Code versions follow the configured pipeline, not this list.",
    )


class _Progress:
    def __init__(self, log, total: int) -> None:
        self.log, self.total, self.done = log, total, 0
        self.step = max(1, total // 10)

    def __call__(self, item: ItemAnalysis) -> None:
        self.done += 1
        if self.done % self.step == 0 or self.done == self.total:
            self.log.info(f"analysed {self.done}/{self.total} items (last: {item.media_type} {item.sha256[:12]}, {item.status})")


def _methods_table(accounting: dict) -> dg.TableMetadataValue:
    rows = [
        {
            "method": name,
            "calls": stats.get("calls", 0),
            "cache_hits": stats.get("cache_hits", 0),
            "provider_calls": stats.get("provider_calls", 0),
            "failures": sum((stats.get("failures") or {}).values()),
            "cost_usd": round(float(stats.get("cost_usd") or 0.0), 6),
        }
        for name, stats in accounting.get("methods", {}).items()
    ]
    return table_metadata(pd.DataFrame(rows, columns=["method", "calls", "cache_hits", "provider_calls", "failures", "cost_usd"]))


def _pipeline_table(plan: PipelinePlan, sink: AnalysisSink) -> dg.TableMetadataValue:
    """The methods this run's pipeline held, where each applied, and how many results each gave."""
    rows = [
        {**row, "results": sink.results_by_method.get(row["method"], 0)}
        for row in plan.describe()
        if row["applies_to"] != BRAND
    ]
    columns = ["method", "version", "applies_to", "needs", "condition", "search_field", "results"]
    return table_metadata(pd.DataFrame(rows, columns=columns))


def analysis_assets(settings: Settings, plan: PipelinePlan | None = None) -> dg.AssetsDefinition:
    """The op producing ``media_analysis`` and ``media_embeddings``, versioned by the picture- and
    item-level methods of ``plan`` (default: ``settings.methods``'): enabling a method makes brands
    stale. Raises ``PipelineError`` (at load) when the methods cannot make a pipeline."""
    plan = plan if plan is not None else plan_for(settings.methods)
    item_methods = plan.names(PICTURE, ITEM)
    embedders = (EMBED_IMAGE, EMBED_TEXT, *(m.name for m in plan.methods if m.search_field and m.applies_to != BRAND))
    analysis_version = methods_code_version(item_methods, settings.provider_for, ENGINE_VERSION)
    embeddings_version = methods_code_version(embedders, settings.provider_for, ENGINE_VERSION)
    eager = dg.AutomationCondition.eager()

    @dg.multi_asset(
        outs={
            "media_analysis": dg.AssetOut(
                group_name="analyse",
                code_version=analysis_version,
                automation_condition=eager,
                kinds={"python"},
                description="Per item: OCR, caption, labels, faces, colours (and every plugged picture- or "
                "item-level method); videos sliced into frames (near-duplicates dropped) and their speech "
                "transcribed. One row per media item.",
            ),
            "media_embeddings": dg.AssetOut(
                group_name="analyse",
                code_version=embeddings_version,
                automation_condition=eager,
                kinds={"python"},
                description="One row per vector: each image or kept frame, its caption + OCR text, each transcript segment.",
            ),
        },
        internal_asset_deps={
            "media_analysis": {dg.AssetKey("raw_media")},
            "media_embeddings": {dg.AssetKey("media_analysis"), dg.AssetKey("raw_media")},
        },
        partitions_def=brands_partitions,
        check_specs=[
            dg.AssetCheckSpec(
                "embedding_dimensions_consistent",
                asset="media_embeddings",
                description="Within each embedding space every vector has the same dimension.",
            )
        ],
        ins={"raw_media": dg.AssetIn()},
        # The provider's quota across all runs (see provider_pool).
        pool=provider_pool(settings.ai_provider),
    )
    def media_analysis(
        context: dg.AssetExecutionContext,
        config: MediaAnalysisConfig,
        raw_media: pd.DataFrame,
        media_store: MediaStoreResource,
        ai_methods: AIMethodsResource,
    ):
        """Run the first AI cycle over the brand's stored items (never downloads from the URLs again)."""
        brand = context.partition_key
        rows = raw_media.to_dict(orient="records")
        ok = [r for r in rows if r.get("status") == "ok"]
        context.log.info(f"analysing {len(ok)} stored items of brand {brand!r}")
        work = settings.work_dir
        cache_dir = work / "runs" / context.run.run_id / "media_cache"
        analysis_config = AnalysisConfig(
            frame_count=config.frame_count, dedupe_threshold=config.dedupe_threshold, items_in_flight=config.items_in_flight,
            copies_in_flight=config.copies_in_flight,
        )

        staged = work / "staged" / context.run.run_id / brand
        sink = AnalysisSink(staged)
        run_plan = plan.narrowed(config.methods)
        context.log.info(f"methods: {', '.join(run_plan.names(PICTURE, ITEM))}")
        if config.methods:
            context.log.warning(
                f"this run is narrowed to {config.methods}: the brand's tables will hold only these methods' results "
                "until a run of the whole pipeline (which takes the others from the journal, without calling them again)"
            )

        async def run():
            async with ai_methods.runner() as runner:
                _, elapsed = await analyse_brand(
                    rows, runner=runner, store=media_store.store(), cache_dir=cache_dir, journal_dir=work / "journals",
                    config=analysis_config, progress=_Progress(context.log, len(ok)), sink=sink, plan=run_plan,
                )  # fmt: skip
                return sink.items, elapsed, runner.accounting()

        try:
            try:
                count, elapsed, accounting = asyncio.run(run())
            finally:
                shutil.rmtree(cache_dir.parent, ignore_errors=True)
                analysis, embeddings = sink.close()
            yield from _outputs(sink, analysis, embeddings, count, elapsed, accounting, run_plan)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
            with contextlib.suppress(OSError):  # the run's folder, once no other brand of the run uses it
                staged.parent.rmdir()

    return media_analysis


def _outputs(sink: AnalysisSink, analysis: StagedParquet, embeddings: StagedParquet, count: int, elapsed: float,
             accounting: dict, plan: PipelinePlan):  # fmt: skip
    """The two outputs (streamed Parquet files) and the dimensions check, with the sink's counts as metadata."""
    total = accounting.get("total", {})
    types = sink.by_media_type
    yield dg.Output(
        analysis,
        output_name="media_analysis",
        metadata={
            "items": count,
            "images": types["image"],
            "videos": types["video"],
            "audio": types["audio"],
            "animated_images": sink.animated_images,
            "frames_sampled": sink.frames_sampled,
            "frames_kept": sink.frames_kept,
            "status": dg.MetadataValue.json(dict(sink.status)),
            "failures_by_method": dg.MetadataValue.json(dict(sink.failures_by_method.most_common())),
            "ai_calls": int(total.get("calls", 0)),
            "cache_hits": int(total.get("cache_hits", 0)),
            "steps_resumed_from_journal": sink.steps_resumed,
            "estimated_cost_usd": dg.MetadataValue.float(round(float(total.get("cost_usd") or 0.0), 6)),
            "ai_calls_by_method": _methods_table(accounting),
            "pipeline": _pipeline_table(plan, sink),
            "elapsed_s": dg.MetadataValue.float(round(elapsed, 3)),
            "items_per_s": dg.MetadataValue.float(round(count / elapsed, 3) if elapsed > 0 else 0.0),
        },
    )
    inconsistent = sink.inconsistent_spaces
    yield dg.Output(
        embeddings,
        output_name="media_embeddings",
        metadata={
            "vectors": embeddings.rows,
            "by_kind": dg.MetadataValue.json(dict(sink.vectors_by_kind)),
            "spaces": dg.MetadataValue.json({space: min(ds) for space, ds in sink.dims_by_space.items()}),
        },
    )
    yield dg.AssetCheckResult(
        check_name="embedding_dimensions_consistent",
        asset_key="media_embeddings",
        passed=not inconsistent,
        metadata={"inconsistent_spaces": dg.MetadataValue.json(inconsistent)},
    )

