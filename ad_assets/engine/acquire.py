"""Acquire a brand's media: fetch every URL once, sniff, probe, store by content hash.

One row per URL comes out, whatever happened to it: a bad URL is a row with a
cause, never an exception that stops the brand. A URL already stored by an
earlier run is not downloaded again: its record under ``fetched/`` is reused.

Two guards keep that promise for inputs nobody foresaw. A URL that cannot be
fetched as written (a manifest written before registration checked URLs may
hold one: a lone surrogate, an invalid IDNA host) is a ``failed`` row with
cause ``invalid_url`` before anything hashes or sends it. Anything else raised
while handling one URL (a bug in a probe, a store client, a resolver) is a
``failed`` row with cause ``internal_error`` naming the exception; the other
URLs go on.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ad_assets.engine.media_probe import (
    DEFAULT_MAX_DURATION_S,
    DEFAULT_MAX_PIXELS,
    PROBE_VERSION,
    MediaProbe,
    MediaProbeError,
    SniffedType,
    describe_unsupported,
    probe_media,
    sniff_media_type,
)
from resources.fetch_errors import InvalidURLError
from resources.fetcher import Fetcher, FetchResult
from resources.media_store import MediaStore, StoreError, media_key
from resources.url_rules import parse_fetch_url, printable

FETCHED_PREFIX = "fetched"
STATUSES = ("ok", "duplicate", "unsupported", "failed")
MEDIA_COLUMNS = (
    "url", "status", "cause", "detail", "sha256", "media_type", "mime", "bytes",
    "width", "height", "duration_s", "has_audio", "storage_key", "storage_uri",
    "final_url", "http_status", "attempts", "reused", "fetched_at", "elapsed_ms",
    # What explains the displayed width/height and duration (see MediaProbe).
    "rotation", "mirrored", "sample_aspect_ratio", "animated", "frame_count", "codec", "duration_source",
)  # fmt: skip
# Columns measured by the probe; a stored record from an older probe gets them again.
PROBE_COLUMNS = (
    "media_type", "mime", "width", "height", "duration_s", "has_audio",
    "rotation", "mirrored", "sample_aspect_ratio", "animated", "frame_count", "codec", "duration_source",
)  # fmt: skip

Row = dict[str, Any]
OnRow = Callable[[Row], None]


@dataclass(frozen=True)
class AcquireLimits:
    """Limits on what is accepted as media, beyond the fetcher's byte and time limits."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_duration_s: float = DEFAULT_MAX_DURATION_S


def fetched_record_key(url: str) -> str:
    """Store key of the record that remembers a URL was fetched and stored."""
    digest = hashlib.sha256(url.encode()).hexdigest()
    return f"{FETCHED_PREFIX}/{digest[:2]}/{digest}.json"


def empty_row(url: str) -> Row:
    """A row with every column present and unset (``url`` written so that it encodes as UTF-8)."""
    row: Row = dict.fromkeys(MEDIA_COLUMNS)
    row.update(url=printable(url), bytes=0, reused=False, attempts=0)
    return row


def failed_row(url: str, cause: str, detail: str) -> Row:
    """A ``failed`` row for ``url`` with a stable ``cause`` and one sentence (made storable as UTF-8)."""
    row = empty_row(url)
    row.update(status="failed", cause=cause, detail=printable(detail), fetched_at=_now())
    return row


def internal_error_row(url: str, exc: BaseException) -> Row:
    """The row of a URL whose handling raised something unforeseen: cause ``internal_error``."""
    return failed_row(
        url,
        "internal_error",
        f"unexpected {type(exc).__name__} while handling this URL: {exc} "
        "(a bug, not the URL's fault: the other URLs went on; please report it)",
    )


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class _Acquirer:
    def __init__(self, fetcher: Fetcher, store: MediaStore, limits: AcquireLimits) -> None:
        self.fetcher = fetcher
        self.store = store
        self.limits = limits
        self._store_locks: dict[str, asyncio.Lock] = {}

    async def acquire(self, url: str) -> Row:
        try:
            # Before hashing: a lone surrogate cannot even be encoded to be hashed.
            parse_fetch_url(url)
        except InvalidURLError as exc:
            return failed_row(url, exc.cause, exc.message)
        reused = await self._reuse(url)
        if reused is not None:
            return reused
        started = time.perf_counter()
        result = await self.fetcher.fetch(url)
        row = empty_row(url)
        row.update(
            final_url=result.final_url,
            http_status=result.http_status,
            attempts=result.attempts,
            fetched_at=_now(),
            bytes=result.bytes,
            sha256=result.sha256,
        )
        try:
            if not result.ok:
                row.update(status="failed", cause=result.cause, detail=result.detail)
            else:
                await self._store(result, row)
        finally:
            if result.path is not None:
                result.path.unlink(missing_ok=True)
        row["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 1)
        return row

    async def _reuse(self, url: str) -> Row | None:
        key = fetched_record_key(url)
        try:
            if not await self.store.exists(key):
                return None
            record = json.loads(await self.store.get_bytes(key))
            if not await self.store.exists(record["storage_key"]):
                return None  # the media went missing: fetch again
        except (StoreError, ValueError, KeyError):
            return None
        if record.get("probe_version") != PROBE_VERSION:
            record = await self._reprobe(key, record)
            if record is None:
                return None
        record.update(reused=True, elapsed_ms=0.0, attempts=0)
        return {column: record.get(column) for column in MEDIA_COLUMNS}

    async def _reprobe(self, record_key: str, record: Row) -> Row | None:
        """Measure stored media again with this probe: from the store, never from its URL.

        A record written by an older probe holds sizes as stored, not as displayed
        (a rotated phone video said 640×360). ``None`` when the stored copy cannot
        be read; then the URL is fetched as if new.
        """
        with tempfile.TemporaryDirectory(prefix="ad-assets-reprobe-") as scratch:
            path = Path(scratch) / "media"
            try:
                await self.store.get_to_file(record["storage_key"], path)
                with path.open("rb") as fh:
                    sniffed = sniff_media_type(fh.read(64))
                if sniffed is None:
                    return None
                probe = await self._measure(path, sniffed)
            except (StoreError, MediaProbeError, OSError):
                return None
        record.update(probe_columns(probe))
        await self._save_record(record_key, record)  # if that fails, the next run measures again
        return record

    async def _measure(self, path: Path, sniffed: SniffedType) -> MediaProbe:
        """``probe_media`` under this run's limits, in a worker thread."""
        return await asyncio.to_thread(
            probe_media, path, sniffed, max_pixels=self.limits.max_pixels, max_duration_s=self.limits.max_duration_s
        )

    async def _save_record(self, key: str, row: Row) -> None:
        """Remember a stored URL's row, with this probe's version; a store failure loses only the record."""
        record = {column: row.get(column) for column in MEDIA_COLUMNS} | {"probe_version": PROBE_VERSION}
        try:
            await self.store.put_bytes(key, json.dumps(record).encode())
        except StoreError:
            pass

    async def _store(self, result: FetchResult, row: Row) -> None:
        sniffed = sniff_media_type(result.head)
        if sniffed is None:
            row.update(
                status="unsupported",
                cause="unsupported_type",
                detail=describe_unsupported(result.head, result.content_type),
            )
            return
        assert result.path is not None and result.sha256 is not None
        try:
            probe = await self._measure(result.path, sniffed)
        except MediaProbeError as exc:
            row.update(status="failed", cause=exc.cause, detail=exc.detail, media_type=sniffed.media_type)
            return
        key = media_key(result.sha256, probe.ext or sniffed.ext)
        try:
            await self._put_once(key, result.path, probe.mime or sniffed.mime)
        except StoreError as exc:
            row.update(status="failed", cause="store_error", detail=str(exc))
            return
        row.update(status="ok", storage_key=key, storage_uri=self.store.uri_for(key), **probe_columns(probe))
        # The media is stored; without the record the next run fetches again, nothing is lost.
        await self._save_record(fetched_record_key(row["url"]), row)

    async def _put_once(self, key: str, path: Path, mime: str) -> None:
        # Two URLs with the same content may finish together: upload once.
        lock = self._store_locks.setdefault(key, asyncio.Lock())
        async with lock:
            if not await self.store.exists(key):
                await self.store.put_file(key, path, content_type=mime)


def probe_columns(probe: MediaProbe) -> Row:
    """The row columns a probe measures (``PROBE_COLUMNS``)."""
    return {column: getattr(probe, column) for column in PROBE_COLUMNS}


def mark_duplicates(rows: list[Row]) -> list[Row]:
    """Rows after the first with the same content become ``duplicate`` of the first."""
    first_url: dict[str, str] = {}
    for row in rows:
        if row["status"] != "ok":
            continue
        sha = row["sha256"]
        if sha in first_url:
            row.update(status="duplicate", detail=f"same content as {first_url[sha]}")
        else:
            first_url[sha] = row["url"]
    return rows


async def acquire_media(
    urls: list[str],
    *,
    fetcher: Fetcher,
    store: MediaStore,
    limits: AcquireLimits = AcquireLimits(),
    on_row: OnRow | None = None,
) -> list[Row]:
    """Fetch and store every URL concurrently (the fetcher bounds the fan-out).

    Returns one row per URL in the order given, with ``status`` one of
    ``ok``, ``duplicate``, ``unsupported``, ``failed``.
    """
    acquirer = _Acquirer(fetcher, store, limits)

    async def one(url: str) -> Row:
        try:
            row = await acquirer.acquire(url)
        except Exception as exc:  # noqa: BLE001 - one URL's unforeseen failure is its row, not the brand's end
            row = internal_error_row(url, exc)
        if on_row is not None:
            try:
                on_row(row)
            except Exception:  # noqa: BLE001 - progress reporting must never cost a URL its row
                pass
        return row

    rows = await asyncio.gather(*(one(url) for url in urls))
    return mark_duplicates(list(rows))


def summarize_rows(rows: list[Row], elapsed_s: float) -> dict[str, Any]:
    """Counts by status, failures by cause, bytes and throughput, for metadata and the CLI."""
    counts = {status: 0 for status in STATUSES}
    causes: dict[str, int] = {}
    stored_bytes = 0
    reused = 0
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
        if row["status"] in ("failed", "unsupported"):
            causes[row["cause"] or "unknown"] = causes.get(row["cause"] or "unknown", 0) + 1
        if row["status"] == "ok":
            stored_bytes += int(row["bytes"] or 0)
            reused += bool(row["reused"])
    return {
        "urls": len(rows),
        "counts": counts,
        "failures_by_cause": dict(sorted(causes.items(), key=lambda kv: -kv[1])),
        "bytes": stored_bytes,
        "reused": reused,
        "elapsed_s": round(elapsed_s, 3),
        "urls_per_s": round(len(rows) / elapsed_s, 2) if elapsed_s > 0 else None,
    }
