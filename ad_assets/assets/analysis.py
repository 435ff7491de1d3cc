"""``media_analysis`` and ``media_embeddings``: the first AI cycle over a brand's items.

Both come out of one op (one event loop per brand run): frame de-duplication
needs the frame embeddings, so computing them apart would decode every video
twice. ``media_embeddings`` still depends on ``media_analysis`` in the graph.
"""

import asyncio
import shutil

import dagster as dg
import pandas as pd
from pydantic import Field

from ad_assets.ai_resource import AIMethodsResource, methods_code_version, provider_pool
from ad_assets.engine.analysis_tables import ANALYSIS_COLUMNS, EMBEDDING_COLUMNS, analysis_rows, embedding_rows
from ad_assets.engine.item_analysis import (
    ANALYSIS_METHODS,
    EMBEDDING_METHODS,
    ENGINE_VERSION,
    AnalysisConfig,
    ItemAnalysis,
    analyse_brand,
    failures_by_method,
)
from ad_assets.metadata import table_metadata
from ad_assets.partitions import brands_partitions
from ad_assets.settings import Settings
from resources.dagster_resources import MediaStoreResource


class MediaAnalysisConfig(dg.Config):
    """Run configuration of the first AI cycle."""

    frame_count: int = Field(45, ge=1, le=1000, description="Frames sampled per video, spread evenly over its duration.")
    dedupe_threshold: float = Field(
        0.95, gt=0, le=1, description="A frame is dropped when its embedding's cosine similarity to the last kept frame is at least this."
    )
    items_in_flight: int = Field(16, ge=1, description="Items loaded and decoded at once (AI calls are bounded per provider).")


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


def analysis_assets(settings: Settings) -> dg.AssetsDefinition:
    """The op producing ``media_analysis`` and ``media_embeddings``, versioned by its methods."""
    analysis_version = methods_code_version(ANALYSIS_METHODS, settings.provider_for, ENGINE_VERSION)
    embeddings_version = methods_code_version(EMBEDDING_METHODS, settings.provider_for, ENGINE_VERSION)
    eager = dg.AutomationCondition.eager()

    @dg.multi_asset(
        outs={
            "media_analysis": dg.AssetOut(
                group_name="analyse",
                code_version=analysis_version,
                automation_condition=eager,
                kinds={"python"},
                description="Per item: OCR, caption, labels, faces, colours; videos sliced into frames "
                "(near-duplicates dropped) and their speech transcribed. One row per media item.",
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
            frame_count=config.frame_count, dedupe_threshold=config.dedupe_threshold, items_in_flight=config.items_in_flight
        )

        async def run():
            async with ai_methods.runner() as runner:
                items, elapsed = await analyse_brand(
                    rows, runner=runner, store=media_store.store(), cache_dir=cache_dir,
                    journal_dir=work / "journals", config=analysis_config, progress=_Progress(context.log, len(ok)),
                )  # fmt: skip
                return items, elapsed, runner.accounting()

        try:
            items, elapsed, accounting = asyncio.run(run())
        finally:
            shutil.rmtree(cache_dir.parent, ignore_errors=True)
        analysis = pd.DataFrame(analysis_rows(items), columns=list(ANALYSIS_COLUMNS))
        embeddings = pd.DataFrame(embedding_rows(items), columns=list(EMBEDDING_COLUMNS))
        total = accounting.get("total", {})
        statuses = analysis["status"].value_counts().to_dict() if len(analysis) else {}
        yield dg.Output(
            analysis,
            output_name="media_analysis",
            metadata={
                "items": len(items),
                "images": sum(i.media_type == "image" for i in items),
                "videos": sum(i.media_type == "video" for i in items),
                "audio": sum(i.media_type == "audio" for i in items),
                "animated_images": sum(i.media_type == "image" and i.frames_sampled > 0 for i in items),
                "frames_sampled": sum(i.frames_sampled for i in items),
                "frames_kept": sum(i.frames_kept for i in items),
                "status": dg.MetadataValue.json({k: int(v) for k, v in statuses.items()}),
                "failures_by_method": dg.MetadataValue.json(failures_by_method(items)),
                "ai_calls": int(total.get("calls", 0)),
                "cache_hits": int(total.get("cache_hits", 0)),
                "steps_resumed_from_journal": sum(i.steps_resumed for i in items),
                "estimated_cost_usd": dg.MetadataValue.float(round(float(total.get("cost_usd") or 0.0), 6)),
                "ai_calls_by_method": _methods_table(accounting),
                "elapsed_s": dg.MetadataValue.float(round(elapsed, 3)),
                "items_per_s": dg.MetadataValue.float(round(len(items) / elapsed, 3) if elapsed > 0 else 0.0),
            },
        )
        dims = embeddings.groupby("space")["dim"].unique().to_dict() if len(embeddings) else {}
        inconsistent = {space: sorted(int(d) for d in ds) for space, ds in dims.items() if len(ds) > 1}
        yield dg.Output(
            embeddings,
            output_name="media_embeddings",
            metadata={
                "vectors": len(embeddings),
                "by_kind": dg.MetadataValue.json(embeddings["kind"].value_counts().to_dict() if len(embeddings) else {}),
                "spaces": dg.MetadataValue.json({space: int(ds[0]) for space, ds in dims.items()}),
            },
        )
        yield dg.AssetCheckResult(
            check_name="embedding_dimensions_consistent",
            asset_key="media_embeddings",
            passed=not inconsistent,
            metadata={"inconsistent_spaces": dg.MetadataValue.json(inconsistent)},
        )

    return media_analysis
