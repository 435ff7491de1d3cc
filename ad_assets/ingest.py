"""Ingest one brand through the local Dagster instance: register, then run it.

The CLI (``ad-assets ingest``) and the demo call ``ingest_brand``; the run is a
first-class run of the code location (job page, timeline, re-execution, the run
queue), awaited here.
"""

from __future__ import annotations

import sys
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
from dagster._core.workspace.context import WorkspaceProcessContext

from ad_assets.brand_manifest import Registration, register_brand
from ad_assets.instance import ensure_brand_partition
from ad_assets.instance_runs import code_location, create_brand_run, submit_and_wait
from ad_assets.jobs import console_run_config
from ad_assets.settings import Settings


@dataclass
class IngestResult:
    """What an ingest did: the registration, the run, and the per-stage metadata."""

    brand: str
    run_id: str | None
    success: bool
    registration: Registration
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        """URL outcomes by status, from ``raw_media``."""
        return dict(self.metadata.get("raw_media", {}).get("counts", {}))

    def as_json(self) -> dict[str, Any]:
        """The ``--json`` document (keys are a contract: add, never rename)."""
        raw = self.metadata.get("raw_media", {})
        return {
            "brand": self.brand,
            "run_id": self.run_id,
            "success": self.success,
            "counts": self.counts,
            "urls": raw.get("urls"),
            "new_urls": self.registration.new_urls,
            "mode": self.registration.mode,
            "removed_urls": self.registration.removed_urls,
            "rejected": [{"url": r.url, "reason": r.reason} for r in self.registration.rejected],
            "failures_by_cause": raw.get("failures_by_cause", {}),
            "bytes_stored": raw.get("bytes_stored"),
            "elapsed_s": raw.get("elapsed_s"),
            "stages": self.metadata,
            "errors": self.errors,
        }


def ingest_brand(
    settings: Settings,
    instance: dg.DagsterInstance,
    brand: str,
    urls: list[str],
    *,
    source: str = "cli",
    request_id: str | None = None,
    log_level: str = "INFO",
    mode: str = "add",
    context: WorkspaceProcessContext | None = None,
) -> IngestResult:
    """Register ``urls`` for ``brand`` and run the brand's assets as a first-class run on ``instance``.

    ``mode`` is ``add`` (the URLs join the brand's list) or ``replace`` (they
    become it). A person re-running the same command means it again, so the
    request is re-applied when other requests came after it (``reapply``).
    The run is submitted through the code location of ``workspace.yaml`` and
    the run queue, and awaited (``ad_assets.instance_runs``); it executes with
    the settings of this process's environment, as any launched run does.
    ``context`` is an open :func:`code_location` to reuse (the demo ingests
    several brands through one code server); without it one is opened here.
    """
    registration = register_brand(
        settings.media_store(), brand, urls, request_id=request_id, source=source, mode=mode, reapply=True
    )
    ensure_brand_partition(instance, brand)
    with code_location(instance) if context is None else nullcontext(context) as workspace:
        run = create_brand_run(
            workspace, brand, tags={"ad_assets/source": source}, run_config=console_run_config(log_level)
        )
        outcome = submit_and_wait(workspace, run, on_wait=lambda message: print(message, file=sys.stderr))
    return IngestResult(
        brand=brand,
        run_id=outcome.run_id,
        success=outcome.success,
        registration=registration,
        metadata=outcome.metadata,
        errors=outcome.errors,
    )
