"""``brand_summary``: the brand-level cycles, over all of a brand's items at once.

``summarize_brand`` fills the summary columns; every other brand-level method
of the pipeline (a plugged "cycle") runs beside it, in the plan's order, and
lands in ``cycles`` (and the catalog's ``brand_analyses``).
"""

import asyncio

import dagster as dg
import pandas as pd

from ad_assets.ai_resource import AIMethodsResource, methods_code_version, provider_pool
from ad_assets.engine.brand_cycles import CycleResult, analysis_records, brand_items, run_cycles
from ad_assets.engine.brand_set import item_vectors, near_duplicate_groups, outliers
from ad_assets.engine.pipeline_plan import BRAND, PipelinePlan, plan_for
from ad_assets.metadata import table_metadata
from ad_assets.partitions import brands_partitions
from ad_assets.settings import Settings

SUMMARY_ENGINE_VERSION = "3"  # 2: audio spots counted, through their transcripts; 3: planned brand-level cycles
SUMMARY_METHOD = "summarize_brand"
SUMMARY_COLUMNS = ["brand", "items", "summary", "summary_error", "duplicate_groups", "outliers", "method", "cycles"]
_SUMMARY_FIELDS = ("method", "version", "provider", "model", "cost_usd", "cached")


def brand_summary_asset(settings: Settings, plan: PipelinePlan | None = None) -> dg.AssetsDefinition:
    """``brand_summary`` versioned by the brand-level methods of ``plan`` (default: ``settings.methods``'),
    their versions and providers. Raises ``PipelineError`` when the methods cannot make a pipeline."""
    plan = plan if plan is not None else plan_for(settings.methods)

    @dg.asset(
        partitions_def=brands_partitions,
        group_name="analyse",
        kinds={"python"},
        code_version=methods_code_version(plan.names(BRAND), settings.provider_for, SUMMARY_ENGINE_VERSION),
        automation_condition=dg.AutomationCondition.eager(),
        pool=provider_pool(settings.ai_provider),
    )
    def brand_summary(
        context: dg.AssetExecutionContext,
        media_analysis: pd.DataFrame,
        media_embeddings: pd.DataFrame,
        ai_methods: AIMethodsResource,
    ) -> dg.Output[pd.DataFrame]:
        """The brand as a whole: themes, key messages, calls to action, visual style and tone
        (``summarize_brand``), every other brand-level method of the pipeline in order, groups of
        near-duplicate creatives and outliers (from image vectors)."""
        brand = context.partition_key
        rows = analysis_records(media_analysis)  # once: the count and every cycle read them

        async def run():
            async with ai_methods.runner() as runner:
                return await run_cycles(plan, runner, brand, rows)

        cycles = asyncio.run(run()) if plan.at(BRAND) else []
        for cycle in cycles:
            if cycle.error:
                context.log.warning(f"{cycle.method} for {brand!r}: {cycle.error}")
        summary_cycle = next((c for c in cycles if c.method == SUMMARY_METHOD), None)
        others = [c for c in cycles if c.method != SUMMARY_METHOD]
        summary, error, method = _summary_columns(summary_cycle)
        items = len(brand_items(rows, ()))
        shas, vectors = item_vectors(media_embeddings)
        groups = near_duplicate_groups(shas, vectors)
        odd = outliers(shas, vectors)
        frame = pd.DataFrame(
            [{"brand": brand, "items": items, "summary": summary, "summary_error": error,
              "duplicate_groups": groups, "outliers": odd, "method": method,
              "cycles": [c.record() for c in others]}],  # fmt: skip
            columns=SUMMARY_COLUMNS,
        )
        md = [f"**{items} items**"]
        if summary:
            md += [f"- **Themes:** {', '.join(summary.get('themes', []))}",
                   f"- **Key messages:** {'; '.join(summary.get('key_messages', []))}",
                   f"- **Calls to action:** {'; '.join(summary.get('calls_to_action', []))}",
                   f"- **Visual style:** {summary.get('visual_style')}",
                   f"- **Tone:** {summary.get('tone')}"]  # fmt: skip
        else:
            md.append(f"- summary unavailable: {error}")
        md.append(f"- **Near-duplicate groups:** {len(groups)}; **outliers:** {len(odd)}")
        md += [_cycle_line(c) for c in others]
        cost = sum(float((c.result or {}).get("cost_usd") or 0.0) for c in cycles)
        return dg.Output(
            frame,
            metadata={
                "items": items,
                "summary": dg.MetadataValue.md("\n".join(md)),
                "duplicate_groups": len(groups),
                "outliers": len(odd),
                "brand_methods": _cycles_table(cycles),
                "estimated_cost_usd": dg.MetadataValue.float(round(cost, 6)),
            },
        )

    return brand_summary


def _summary_columns(cycle: CycleResult | None) -> tuple[dict | None, str | None, dict]:
    if cycle is None:
        return None, f"{SUMMARY_METHOD} is not in the pipeline (AD_ASSETS_METHODS)", {}
    if cycle.result is None:
        return None, cycle.error, {}
    return cycle.output, None, {k: cycle.result.get(k) for k in _SUMMARY_FIELDS}


def _cycle_line(cycle: CycleResult) -> str:
    if cycle.error:
        return f"- **{cycle.method}:** {cycle.error}"
    shown = ", ".join(f"{k}: {v}" for k, v in (cycle.output or {}).items() if not isinstance(v, (dict, list)))
    return f"- **{cycle.method}:** {shown or 'see the catalog'}"


def _cycles_table(cycles: list[CycleResult]) -> dg.TableMetadataValue:
    rows = [
        {
            "method": c.method,
            "status": "ok" if c.result else (c.error or "")[:120],
            "provider": (c.result or {}).get("provider") or "",
            "version": (c.result or {}).get("version") or "",
            "cached": bool((c.result or {}).get("cached")),
            "cost_usd": round(float((c.result or {}).get("cost_usd") or 0.0), 6),
        }
        for c in cycles
    ]
    return table_metadata(pd.DataFrame(rows, columns=["method", "status", "provider", "version", "cached", "cost_usd"]))
