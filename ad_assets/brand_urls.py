"""A brand's URL list with each URL's last outcome: what ``ad-assets urls`` shows.

The list is the brand's manifest (``ad_assets.brand_manifest``); the outcome
of each URL is its row in the brand's latest ``raw_media`` Parquet file. A URL
registered after that run has status ``pending``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from ad_assets.brand_manifest import load_manifest
from ad_assets.settings import Settings
from resources.media_store import StoreNotFoundError
from resources.parquet_io_manager import ParquetIOManager
from resources.url_rules import printable

PENDING = "pending"


@dataclass(frozen=True)
class UrlOutcome:
    """One URL of the brand and what its latest ``raw_media`` run said about it."""

    url: str
    status: str  # ok, duplicate, unsupported, failed, or pending (not run since it was registered)
    cause: str | None = None
    detail: str | None = None
    sha256: str | None = None
    fetched_at: str | None = None


def brand_url_outcomes(settings: Settings, brand: str) -> list[UrlOutcome]:
    """Every URL of ``brand``'s manifest, in manifest order, with its last outcome.

    Raises ``InvalidBrandError`` for a bad key; an unknown brand has no URLs (an empty list).
    """
    urls = load_manifest(settings.media_store(), brand)
    io = ParquetIOManager(
        storage_url=settings.storage_url, aws_endpoint_url=settings.aws_endpoint_url, aws_region=settings.aws_region
    )
    try:
        frame = io.read_partition(["raw_media"], brand)
        rows = {row["url"]: row for row in frame.to_dict("records")}
    except StoreNotFoundError:
        rows = {}
    outcomes = []
    for url in urls:
        row = rows.get(printable(url))  # raw_media writes unencodable URLs escaped
        if row is None:
            outcomes.append(UrlOutcome(url=printable(url), status=PENDING))
            continue
        outcomes.append(
            UrlOutcome(
                url=printable(url),
                status=str(row["status"]),
                cause=_text(row.get("cause")),
                detail=_text(row.get("detail")),
                sha256=_text(row.get("sha256")),
                fetched_at=_text(row.get("fetched_at")),
            )
        )
    return outcomes


def _text(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else str(value)


def outcomes_json(brand: str, outcomes: list[UrlOutcome]) -> dict[str, Any]:
    """The ``--json`` document: ``brand``, ``counts`` (status → number), ``urls`` (one object per URL)."""
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    return {"brand": brand, "counts": counts, "urls": [asdict(o) for o in outcomes]}
