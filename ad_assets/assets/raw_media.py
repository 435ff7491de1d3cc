"""``raw_media``: a brand's URLs fetched once and stored by content hash."""


import asyncio
import hashlib
import time

import dagster as dg
import pandas as pd
from pydantic import Field

from ad_assets.brand_manifest import load_manifest, register_brand
from ad_assets.engine.acquire import MEDIA_COLUMNS, AcquireLimits, Row, acquire_media, summarize_rows
from ad_assets.metadata import table_metadata
from ad_assets.partitions import brands_partitions
from resources.dagster_resources import MediaStoreResource
from resources.downloader import DownloaderResource

RAW_MEDIA_CODE_VERSION = "2"  # 2: sizes, durations and types as a player shows them
MAX_FAILURE_RATE = 0.25
_DTYPES = {
    "bytes": "Int64", "width": "Int64", "height": "Int64", "http_status": "Int64",
    "attempts": "Int64", "duration_s": "Float64", "elapsed_ms": "Float64",
    "has_audio": "boolean", "reused": "boolean",
    "rotation": "Int64", "mirrored": "boolean", "animated": "boolean", "frame_count": "Int64",
}  # fmt: skip
_PREVIEW_COLUMNS = ["url", "status", "cause", "media_type", "bytes", "width", "height", "duration_s", "rotation", "animated"]


class RawMediaConfig(dg.Config):
    """Run configuration for ``raw_media``."""

    urls: list[str] = Field(
        default_factory=list,
        description="URLs to add to this brand's manifest before fetching (as `ad-assets ingest` does).",
    )


def media_frame(rows: list[Row]) -> pd.DataFrame:
    """The ``raw_media`` table with stable columns and nullable dtypes."""
    return pd.DataFrame(rows, columns=list(MEDIA_COLUMNS)).astype(_DTYPES)


def media_data_version(frame: pd.DataFrame) -> dg.DataVersion:
    """A data version that changes when the set of stored files or URL outcomes changes.

    Without it a re-run that stored new files would leave the downstream assets
    looking fresh in the UI.
    """
    digest = hashlib.sha256()
    for url, status, sha in sorted(zip(frame["url"], frame["status"], frame["sha256"].fillna(""))):
        digest.update(f"{url}\t{status}\t{sha}\n".encode())
    return dg.DataVersion(digest.hexdigest()[:16])


class _Progress:
    """Logs every tenth of the way so a person watching the run sees it move."""

    def __init__(self, log, total: int) -> None:
        self.log, self.total, self.done = log, total, 0
        self.counts: dict[str, int] = {}
        self.step = max(1, total // 10)

    def __call__(self, row: Row) -> None:
        self.done += 1
        self.counts[row["status"]] = self.counts.get(row["status"], 0) + 1
        if self.done % self.step == 0 or self.done == self.total:
            self.log.info(f"acquired {self.done}/{self.total} URLs {self.counts}")


@dg.asset(
    partitions_def=brands_partitions,
    group_name="acquire",
    kinds={"python", "s3"},
    code_version=RAW_MEDIA_CODE_VERSION,
    check_specs=[
        dg.AssetCheckSpec(
            "download_failure_rate",
            asset="raw_media",
            description=f"At most {MAX_FAILURE_RATE:.0%} of the brand's URLs failed or were not media.",
        )
    ],
)
def raw_media(
    context: dg.AssetExecutionContext,
    config: RawMediaConfig,
    media_store: MediaStoreResource,
    downloader: DownloaderResource,
):
    """Every URL of the brand's manifest, downloaded once and stored under its sha256.

    One row per URL: ``status`` is ``ok``, ``duplicate`` (same bytes as an
    earlier URL), ``unsupported`` (not an image, video or audio file) or ``failed`` (with
    ``cause`` and ``detail``). URLs stored by an earlier run are not fetched
    again (``reused``). Fan-out is bounded globally and per host.
    """
    brand = context.partition_key
    store = media_store.store()
    if config.urls:
        reg = register_brand(store, brand, config.urls, source="dagster-run-config")
        context.log.info(f"run config added {reg.new_urls} new URLs ({len(reg.rejected)} refused)")
        for rejected in reg.rejected:
            context.log.warning(f"refused URL {rejected.url!r}: {rejected.reason}")
    urls = load_manifest(store, brand)
    if not urls:
        raise dg.Failure(
            f"brand {brand!r} has no URLs: register some with `ad-assets ingest {brand} FILE` "
            "or list them under `urls` in this asset's run config"
        )
    context.log.info(f"acquiring {len(urls)} URLs for brand {brand!r}")

    async def run() -> list[Row]:
        async with downloader.fetcher() as fetcher:
            limits = AcquireLimits(max_pixels=downloader.max_pixels, max_duration_s=downloader.max_duration_s)
            return await acquire_media(
                urls, fetcher=fetcher, store=store, limits=limits, on_row=_Progress(context.log, len(urls))
            )

    started = time.perf_counter()
    rows = asyncio.run(run())
    summary = summarize_rows(rows, time.perf_counter() - started)
    frame = media_frame(rows)
    bad = summary["counts"]["failed"] + summary["counts"]["unsupported"]
    failure_rate = bad / len(rows)
    yield dg.Output(
        frame,
        data_version=media_data_version(frame),
        metadata={
            "urls": summary["urls"],
            **{f"count_{status}": n for status, n in summary["counts"].items()},
            "counts": dg.MetadataValue.json(summary["counts"]),
            "failures_by_cause": dg.MetadataValue.json(summary["failures_by_cause"]),
            "bytes_stored": dg.MetadataValue.int(summary["bytes"]),
            "reused_from_earlier_runs": summary["reused"],
            "urls_per_s": dg.MetadataValue.float(summary["urls_per_s"] or 0.0),
            "elapsed_s": dg.MetadataValue.float(summary["elapsed_s"]),
            "preview": table_metadata(frame[_PREVIEW_COLUMNS].head(25)),
        },
    )
    yield dg.AssetCheckResult(
        check_name="download_failure_rate",
        passed=failure_rate <= MAX_FAILURE_RATE,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "failure_rate": dg.MetadataValue.float(round(failure_rate, 4)),
            "threshold": dg.MetadataValue.float(MAX_FAILURE_RATE),
            "failures_by_cause": dg.MetadataValue.json(summary["failures_by_cause"]),
        },
    )
