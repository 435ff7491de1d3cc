"""Turning a brand's intermediate tables into the ``BrandCatalog`` that is committed.

``raw_media`` gives the stored items (``ok`` rows; ``duplicate`` rows add their
URL to the item with the same bytes), ``media_analysis`` the per-item and
per-frame results and the transcript, ``media_embeddings`` the vectors,
``brand_summary`` the brand-level row. Pure: no Dagster, no database.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from resources.brand_catalog import (
    AnalysisRow,
    BrandCatalog,
    FrameRow,
    MediaItemRow,
    SegmentRow,
    SummaryRow,
    VectorRow,
)
from resources.catalog_errors import CatalogDataError

CATALOG_ROWS_VERSION = "1"  # bump when the rows built from the same inputs change
_TIME_DECIMALS = 3


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def _opt(value: Any, kind: type | None = None) -> Any:
    """A plain Python value, or None for any flavour of missing."""
    if _missing(value):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    return kind(value) if kind is not None else value


def _text(value: Any) -> str | None:
    # PostgreSQL text cannot hold NUL; AI output is external data, so drop it here.
    value = _opt(value)
    return None if value is None else str(value).replace("\x00", "")


def _scrub(value: Any) -> Any:
    """JSON-ready copy of an AI output: no NUL characters, no NaN, numpy scalars as Python numbers."""
    if isinstance(value, dict):
        return {str(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v) for v in value]
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _timestamp(value: Any) -> datetime | None:
    value = _opt(value)
    if value is None or isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def provider_from_space(space: str) -> str | None:
    """The provider a space name implies, when the analysis did not record it.

    ``ai_methods`` names remote spaces ``<provider>:<model>``, local ones
    ``local-…`` and the fake one ``fake-…``.
    """
    if ":" in space:
        return space.split(":", 1)[0]
    for provider in ("local", "fake"):
        if space.startswith(provider + "-"):
            return provider
    return None


class _MethodMeta:
    """How each embedding was made, from the results recorded in ``media_analysis``."""

    def __init__(self) -> None:
        self.by_unit: dict[tuple[str, int | None, str], dict[str, Any]] = {}
        self.by_space: dict[tuple[str, str], dict[str, Any]] = {}

    def add(self, sha256: str, frame_index: int | None, result: dict[str, Any]) -> None:
        meta = {k: result.get(k) for k in ("provider", "model", "version")}
        self.by_unit[(sha256, frame_index, result.get("method"))] = meta
        space = (result.get("output") or {}).get("space")
        if space:
            self.by_space.setdefault((result.get("method"), space), meta)

    def lookup(self, sha256: str, frame_index: int | None, method: str, space: str) -> dict[str, Any]:
        meta = self.by_unit.get((sha256, frame_index, method)) or self.by_space.get((method, space))
        return meta or {"provider": provider_from_space(space), "model": None, "version": None}


def _items(raw_media: pd.DataFrame, analysis: dict[str, dict[str, Any]]) -> list[MediaItemRow]:
    rows = raw_media.to_dict(orient="records")
    extra_urls: dict[str, list[str]] = {}
    for row in rows:
        if row.get("status") == "duplicate" and not _missing(row.get("sha256")):
            extra_urls.setdefault(row["sha256"], []).append(row["url"])
    items = []
    for row in rows:
        if row.get("status") != "ok":
            continue
        sha = row["sha256"]
        found = analysis.get(sha, {})
        transcript = found.get("transcript") if isinstance(found.get("transcript"), dict) else None
        image_unit = next((u for u in found.get("units") or [] if u.get("unit") == "image"), {})
        items.append(
            MediaItemRow(
                sha256=sha,
                media_type=row["media_type"],
                source_url=row["url"],
                urls=(row["url"], *extra_urls.get(sha, [])),
                storage_key=row["storage_key"],
                storage_uri=row["storage_uri"],
                mime=_opt(row.get("mime")),
                bytes=_opt(row.get("bytes"), int),
                width=_opt(row.get("width"), int),
                height=_opt(row.get("height"), int),
                duration_s=_opt(row.get("duration_s"), float),
                has_audio=_opt(row.get("has_audio"), bool),
                status=found.get("status") or "not_analysed",
                frames_sampled=_opt(found.get("frames_sampled"), int) or 0,
                frames_kept=_opt(found.get("frames_kept"), int) or 0,
                caption=_text(image_unit.get("caption")),
                ocr_text=_text(image_unit.get("ocr_text")),
                transcript_text=_text((transcript or {}).get("text")),
                fetched_at=_timestamp(row.get("fetched_at")),
                animated=_opt(row.get("animated"), bool),
                frame_count=_opt(row.get("frame_count"), int),
                rotation=_opt(row.get("rotation"), int),
                codec=_opt(row.get("codec")),
                caption_basis=caption_basis(image_unit),
                failures=tuple(_scrub(f) for f in _opt(found.get("failures")) or () if isinstance(f, dict)),
            )
        )
    return items


def caption_basis(unit: dict[str, Any]) -> str | None:
    """The ``basis`` of a unit's caption (``model``, ``measured``, ``fake``), or None without a caption result."""
    output = ((unit.get("results") or {}).get("caption") or {}).get("output") or {}
    return _opt(output.get("basis"), str)


def _segments(sha256: str, transcript: dict[str, Any]) -> list[SegmentRow]:
    words = transcript.get("words") or []
    rows = []
    for i, seg in enumerate(transcript.get("segments") or []):
        start, end = float(seg["start"]), float(seg["end"])
        inside = [_scrub(w) for w in words if start - 1e-6 <= float(w.get("start", -1)) <= end + 1e-6]
        rows.append(SegmentRow(sha256, i, start, end, _text(seg.get("text")) or "", inside))
    return rows


def _result_rows(sha256: str, frame_index: int | None, results: Any, meta: _MethodMeta) -> list[AnalysisRow]:
    """One ``AnalysisRow`` per method result of a unit (``frame_index``) or of the whole item (None)."""
    rows = []
    for method, result in sorted((results if isinstance(results, dict) else {}).items()):
        meta.add(sha256, frame_index, result)
        rows.append(
            AnalysisRow(sha256, method, _scrub(result.get("output") or {}), frame_index,
                        _opt(result.get("version"), str), _opt(result.get("provider")), _opt(result.get("model")),
                        _opt(result.get("cost_usd"), float), _opt(result.get("cached"), bool))  # fmt: skip
        )
    return rows


def _analysis_of_item(
    sha256: str, found: dict[str, Any], meta: _MethodMeta
) -> tuple[list[FrameRow], list[SegmentRow], list[AnalysisRow]]:
    frames, analyses = [], []
    for unit in found.get("units") or []:
        frame_index = None if unit.get("unit") != "frame" else int(unit["frame_index"])
        if frame_index is not None:
            frames.append(FrameRow(sha256, frame_index, float(unit.get("t_s") or 0.0),
                                   _text(unit.get("caption")), _text(unit.get("ocr_text")),
                                   caption_basis(unit)))  # fmt: skip
        analyses += _result_rows(sha256, frame_index, unit.get("results"), meta)
    # Item-level methods' results (not the transcript's, below): the whole item, no frame.
    analyses += _result_rows(sha256, None, found.get("item_results"), meta)
    segments = []
    transcript = found.get("transcript")
    if isinstance(transcript, dict):
        segments = _segments(sha256, transcript)
        how = (found.get("methods") or {}).get("transcribe_speech") or {}
        analyses.append(
            AnalysisRow(sha256, "transcribe_speech", _scrub(transcript), None, _opt(how.get("version"), str),
                        _opt(how.get("provider")), _opt(how.get("model")))  # fmt: skip
        )
    return frames, segments, analyses


def _segment_index(segments: dict[str, list[SegmentRow]], row: dict[str, Any]) -> int:
    start, end = round(float(row["t_s"]), _TIME_DECIMALS), round(float(row["t_end_s"]), _TIME_DECIMALS)
    for seg in segments.get(row["sha256"], []):
        if (round(seg.start_s, _TIME_DECIMALS), round(seg.end_s, _TIME_DECIMALS)) == (start, end):
            return seg.segment_index
    raise CatalogDataError(
        f"transcript vector of {row['sha256'][:12]} at {start}-{end} s matches no transcript segment: "
        "media_analysis and media_embeddings come from different runs; re-run the brand"
    )


def _vectors(embeddings: pd.DataFrame, segments: dict[str, list[SegmentRow]], meta: _MethodMeta) -> list[VectorRow]:
    vectors = []
    for row in embeddings.to_dict(orient="records"):
        kind, space, method = row["kind"], row["space"], row["method"]
        frame_index = _opt(row.get("frame_index"), int) if row.get("unit") == "frame" else None
        segment_index = _segment_index(segments, row) if kind == "transcript" else None
        how = meta.lookup(row["sha256"], frame_index, method, space)
        vectors.append(
            VectorRow(
                sha256=row["sha256"], kind=kind, space=space, method=method,
                vector=np.asarray(row["vector"], dtype=np.float32),
                provider=_opt(how.get("provider")), model=_opt(how.get("model")), version=_opt(how.get("version"), str),
                frame_index=frame_index, segment_index=segment_index,
                t_s=_opt(row.get("t_s"), float), t_end_s=_opt(row.get("t_end_s"), float), text=_text(row.get("text")),
                source=_opt(row.get("source"), str),
            )  # fmt: skip
        )
    return vectors


def _summary(brand_summary: pd.DataFrame) -> SummaryRow | None:
    if brand_summary is None or brand_summary.empty:
        return None
    row = brand_summary.to_dict(orient="records")[0]
    method = row.get("method") if isinstance(row.get("method"), dict) else {}
    return SummaryRow(
        items=_opt(row.get("items"), int) or 0,
        summary=_scrub(row["summary"]) if isinstance(row.get("summary"), dict) else None,
        summary_error=_text(row.get("summary_error")),
        duplicate_groups=_scrub(row.get("duplicate_groups") or []),
        outliers=_scrub(row.get("outliers") or []),
        method=_opt(method.get("method")),
        version=_opt(method.get("version"), str),
        provider=_opt(method.get("provider")),
        model=_opt(method.get("model")),
        cost_usd=_opt(method.get("cost_usd"), float),
        cycles=tuple(_scrub(c) for c in _opt(row.get("cycles")) or () if isinstance(c, dict)),
    )


def build_brand_catalog(
    brand: str,
    raw_media: pd.DataFrame,
    media_analysis: pd.DataFrame,
    media_embeddings: pd.DataFrame,
    brand_summary: pd.DataFrame | None,
) -> BrandCatalog:
    """The brand's ``BrandCatalog`` from its four intermediate tables (raises ``CatalogDataError`` if they disagree)."""
    analysis = {row["sha256"]: row for row in media_analysis.to_dict(orient="records")}
    items = _items(raw_media, analysis)
    known = {item.sha256 for item in items}
    frames, segments, analyses = [], {}, []
    meta = _MethodMeta()
    for item in items:
        f, s, a = _analysis_of_item(item.sha256, analysis.get(item.sha256, {}), meta)
        frames += f
        segments[item.sha256] = s
        analyses += a
    stray = set(media_embeddings["sha256"]) - known if len(media_embeddings) else set()
    if stray:
        raise CatalogDataError(
            f"brand {brand!r}: media_embeddings has vectors of {len(stray)} items that raw_media does not hold "
            "(e.g. " + ", ".join(sorted(s[:12] for s in stray)[:3]) + "): re-run the brand"
        )
    return BrandCatalog(
        brand=brand,
        media_items=tuple(items),
        frames=tuple(frames),
        segments=tuple(seg for item in items for seg in segments[item.sha256]),
        analyses=tuple(analyses),
        summary=_summary(brand_summary),
        vectors=tuple(_vectors(media_embeddings, segments, meta)),
    )
