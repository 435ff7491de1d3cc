"""Jobs: one run materialises one brand through every stage."""

import dagster as dg

INGEST_JOB = "ingest_brand"

ingest_brand_job = dg.define_asset_job(
    INGEST_JOB,
    selection=dg.AssetSelection.all(),
    description="Acquire (and, as stages land, analyse and commit) one brand.",
)
