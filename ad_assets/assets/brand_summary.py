"""``brand_summary``: the second AI cycle, over all of a brand's items at once."""

import asyncio

import dagster as dg
import pandas as pd

from ad_assets.ai_resource import AIMethodsResource, methods_code_version, provider_pool
from ad_assets.engine.brand_set import item_vectors, near_duplicate_groups, outliers, summary_inputs
from ad_assets.partitions import brands_partitions
from ad_assets.settings import Settings
from ai_methods.errors import AIMethodError

SUMMARY_ENGINE_VERSION = "2"  # 2: audio spots counted, through their transcripts
SUMMARY_COLUMNS = ["brand", "items", "summary", "summary_error", "duplicate_groups", "outliers", "method"]


def brand_summary_asset(settings: Settings) -> dg.AssetsDefinition:
    """``brand_summary`` versioned by ``summarize_brand``'s version and provider."""

    @dg.asset(
        partitions_def=brands_partitions,
        group_name="analyse",
        kinds={"python"},
        code_version=methods_code_version(("summarize_brand",), settings.provider_for, SUMMARY_ENGINE_VERSION),
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
        (``summarize_brand``), groups of near-duplicate creatives and outliers (from image vectors)."""
        brand = context.partition_key
        inputs = summary_inputs(media_analysis)
        summary, error, method = None, None, {}
        if inputs:

            async def run():
                async with ai_methods.runner() as runner:
                    return await runner.run("summarize_brand", results=inputs)

            try:
                result = asyncio.run(run())
                summary = result.output
                method = {k: v for k, v in result.as_dict().items() if k in ("method", "version", "provider", "model", "cost_usd", "cached")}
            except AIMethodError as exc:
                error = f"{type(exc).__name__}: {exc}"
                context.log.warning(f"summarize_brand failed for {brand!r}: {error}")
        else:
            error = "no analysed item"
        shas, vectors = item_vectors(media_embeddings)
        groups = near_duplicate_groups(shas, vectors)
        odd = outliers(shas, vectors)
        frame = pd.DataFrame(
            [{"brand": brand, "items": len(inputs), "summary": summary, "summary_error": error,
              "duplicate_groups": groups, "outliers": odd, "method": method}],  # fmt: skip
            columns=SUMMARY_COLUMNS,
        )
        md = [f"**{len(inputs)} items**"]
        if summary:
            md += [f"- **Themes:** {', '.join(summary.get('themes', []))}",
                   f"- **Key messages:** {'; '.join(summary.get('key_messages', []))}",
                   f"- **Calls to action:** {'; '.join(summary.get('calls_to_action', []))}",
                   f"- **Visual style:** {summary.get('visual_style')}",
                   f"- **Tone:** {summary.get('tone')}"]  # fmt: skip
        else:
            md.append(f"- summary unavailable: {error}")
        md.append(f"- **Near-duplicate groups:** {len(groups)}; **outliers:** {len(odd)}")
        return dg.Output(
            frame,
            metadata={
                "items": len(inputs),
                "summary": dg.MetadataValue.md("\n".join(md)),
                "duplicate_groups": len(groups),
                "outliers": len(odd),
                "estimated_cost_usd": dg.MetadataValue.float(float(method.get("cost_usd") or 0.0)),
            },
        )

    return brand_summary
