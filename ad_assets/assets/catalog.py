"""``brand_catalog``: everything known about a brand, committed to Postgres and FAISS.

The asset only assembles the ``BrandCatalog`` from the earlier stages; its IO
manager (``catalog_io_manager``) performs the commit: one Postgres transaction
per brand, then the FAISS indexes. The check ``vectors_have_rows`` then reads
back what was committed.
"""

import warnings

import dagster as dg
import pandas as pd

from ad_assets.engine.catalog_rows import CATALOG_ROWS_VERSION, build_brand_catalog
from ad_assets.partitions import brands_partitions
from resources.brand_catalog import BrandCatalog
from resources.catalog_publish import verify_brand
from resources.dagster_resources import MediaStoreResource, PostgresResource
from resources.vector_index import IndexFiles

CATALOG_IO_MANAGER = "catalog_io_manager"


@dg.asset(
    partitions_def=brands_partitions,
    group_name="commit",
    kinds={"postgres", "python"},
    io_manager_key=CATALOG_IO_MANAGER,
    code_version=CATALOG_ROWS_VERSION,
    automation_condition=dg.AutomationCondition.eager(),
)
def brand_catalog(
    context: dg.AssetExecutionContext,
    raw_media: pd.DataFrame,
    media_analysis: pd.DataFrame,
    media_embeddings: pd.DataFrame,
    brand_summary: pd.DataFrame,
) -> BrandCatalog:
    """The brand as committed: Postgres rows (brands, media_items, frames, transcript_segments,
    analyses, brand_summaries, vectors) replaced in one transaction, then one FAISS index per
    embedding space (and the global ones) whose ids are the ``vectors`` row ids.

    Committing unchanged data again changes nothing. Search it with ``ad-assets search``.
    """
    catalog = build_brand_catalog(context.partition_key, raw_media, media_analysis, media_embeddings, brand_summary)
    counts = catalog.row_counts()
    context.log.info(
        f"brand {catalog.brand!r}: {counts['media_items']} items, {counts['frames']} frames, "
        f"{counts['transcript_segments']} transcript segments, {counts['vectors']} vectors "
        f"in {len(catalog.vectors_by_space())} spaces to commit"
    )
    return catalog


# A partitioned check reports per brand, which is what a person looks for in the UI;
# Dagster 1.13 flags partitions on checks as "preview", a warning every process would print.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.PreviewWarning)

    @dg.asset_check(
        asset=brand_catalog,
        partitions_def=brands_partitions,
        description="Every id in the brand's committed FAISS indexes has its vectors row, and the counts match.",
    )
    def vectors_have_rows(
        context: dg.AssetCheckExecutionContext, postgres: PostgresResource, media_store: MediaStoreResource
    ) -> dg.AssetCheckResult:
        """Reads the committed version's index files and compares their ids with the ``vectors`` rows."""
        with postgres.connect() as conn:
            report = verify_brand(conn, IndexFiles(media_store.store()), context.partition_key)
        return dg.AssetCheckResult(
            passed=report.passed,
            metadata={
                "index_version": dg.MetadataValue.int(report.version or 0),
                "spaces": dg.MetadataValue.json(report.spaces),
                "problems": dg.MetadataValue.json(report.problems),
            },
        )
