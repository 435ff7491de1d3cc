"""Ingest one brand through the local Dagster instance: register, then materialise.

The CLI (``ad-assets ingest``) and the demo call ``ingest_brand``; the run is
recorded on the instance, so it shows in the Dagster UI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from ad_assets.brand_manifest import Registration, register_brand
from ad_assets.definitions import build_definitions
from ad_assets.instance import ensure_brand_partition
from ad_assets.jobs import INGEST_JOB, console_run_config, step_errors
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


def _plain(value: Any) -> Any:
    inner = getattr(value, "value", value)
    if isinstance(inner, (str, int, float, bool, dict, list)) or inner is None:
        return inner
    return None  # tables and paths stay in the UI


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
) -> IngestResult:
    """Register ``urls`` for ``brand`` and materialise the brand's assets on ``instance``.

    ``mode`` is ``add`` (the URLs join the brand's list) or ``replace`` (they
    become it). A person re-running the same command means it again, so the
    request is re-applied when other requests came after it (``reapply``).
    """
    registration = register_brand(
        settings.media_store(), brand, urls, request_id=request_id, source=source, mode=mode, reapply=True
    )
    ensure_brand_partition(instance, brand)
    job = build_definitions(settings).resolve_job_def(INGEST_JOB)
    result = job.execute_in_process(
        partition_key=brand, instance=instance, raise_on_error=False, run_config=console_run_config(log_level)
    )
    metadata: dict[str, dict[str, Any]] = {}
    for event in result.all_events:
        if event.is_step_materialization:
            mat = event.step_materialization_data.materialization
            metadata[mat.asset_key.to_user_string()] = {k: _plain(v) for k, v in mat.metadata.items()}
    return IngestResult(
        brand=brand,
        run_id=result.run_id,
        success=result.success,
        registration=registration,
        metadata=metadata,
        errors=step_errors(result),
    )
