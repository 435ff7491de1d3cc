"""Jobs: one run materialises one brand through every stage."""

import dagster as dg

INGEST_JOB = "ingest_brand"

ingest_brand_job = dg.define_asset_job(
    INGEST_JOB,
    selection=dg.AssetSelection.all(),
    description="Acquire (and, as stages land, analyse and commit) one brand.",
)


def console_run_config(log_level: str) -> dict:
    """Run config that sets the console logger's level."""
    return {"loggers": {"console": {"config": {"log_level": log_level}}}}


def step_errors(result: dg.ExecuteInProcessResult) -> list[str]:
    """``"<step>: <message>"`` for each failed step of an in-process run."""
    return [
        f"{event.step_key}: {event.step_failure_data.error.message.strip()}"
        for event in result.all_events
        if event.is_step_failure and event.step_failure_data.error is not None
    ]
