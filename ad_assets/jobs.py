"""Jobs: one run materialises one brand through every stage."""

import dagster as dg

INGEST_JOB = "ingest_brand"

ingest_brand_job = dg.define_asset_job(
    INGEST_JOB,
    selection=dg.AssetSelection.all(),
    description="Acquire (and, as stages land, analyse and commit) one brand.",
    # One process per brand run: the stages form a chain, so a process per step
    # would only add start-up time (seconds each) and nothing in parallel.
    executor_def=dg.in_process_executor,
)


def console_run_config(log_level: str) -> dict:
    """Run config that sets the console logger's level."""
    return {"loggers": {"console": {"config": {"log_level": log_level}}}}


def step_errors(result: dg.ExecuteInProcessResult) -> list[str]:
    """``"<step>: <message>"`` for each failed step of an in-process run."""
    from ad_assets.instance_runs import step_failures

    return step_failures(result.all_events)
