"""The Dagster code location: ``dagster dev -w workspace.yaml`` loads ``defs``."""

import dagster as dg

from ad_assets.assets.analysis import analysis_assets
from ad_assets.assets.brand_summary import brand_summary_asset
from ad_assets.assets.catalog import brand_catalog, vectors_have_rows
from ad_assets.assets.raw_media import raw_media
from ad_assets.engine.pipeline_plan import plan_for
from ad_assets.jobs import ingest_brand_job
from ad_assets.resource_defs import resources_for
from ad_assets.settings import Settings
from sensors.sqs_sensor import build_sqs_sensor


def build_definitions(settings: Settings) -> dg.Definitions:
    """All definitions wired to ``settings`` (tests pass their own).

    The AI pipeline is planned once here, from the registered methods and
    ``settings.methods``: a method needing an unknown method, or a cycle of
    needs, stops the code location from loading with a ``PipelineError``
    naming them.
    """
    plan = plan_for(settings.methods)
    return dg.Definitions(
        assets=[raw_media, analysis_assets(settings, plan), brand_summary_asset(settings, plan), brand_catalog],
        asset_checks=[vectors_have_rows],
        jobs=[ingest_brand_job],
        sensors=[build_sqs_sensor(settings)],
        resources=resources_for(settings),
    )


defs = build_definitions(Settings.from_env())
