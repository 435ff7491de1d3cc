"""``BrandCatalog``: everything committed for one brand, as plain frozen dataclasses.

It is what the ``brand_catalog`` asset returns and what ``commit_brand`` writes.
Rows refer to each other by natural keys (an item's ``sha256``, a frame's
``frame_index``, a segment's ``segment_index``); database ids are assigned at
commit time. Construction validates the references and computes
``content_hash``, the identity that makes re-committing the same data a no-op.

No psycopg, FAISS or Dagster import here.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

import numpy as np

from resources.catalog_errors import CatalogDataError

# Same rule as ad_assets.brand_requests.validate_brand (resources may not import
# ad_assets): the brand names index files, so it must be a safe path segment.
_BRAND_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MEDIA_TYPES = ("image", "video", "audio")
VECTOR_KINDS = ("image", "text", "transcript")


@dataclass(frozen=True)
class MediaItemRow:
    """One stored media file of the brand (duplicate URLs folded into ``urls``)."""

    sha256: str
    media_type: str
    source_url: str
    storage_key: str
    storage_uri: str
    urls: tuple[str, ...] = ()
    mime: str | None = None
    bytes: int | None = None
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None
    has_audio: bool | None = None
    status: str = "analysed"
    frames_sampled: int = 0
    frames_kept: int = 0
    caption: str | None = None  # images only: a video's captions are per frame
    ocr_text: str | None = None
    transcript_text: str | None = None
    fetched_at: datetime | None = None
    animated: bool | None = None  # an animated image: its frames are analysed like a video's
    frame_count: int | None = None
    rotation: int | None = None  # degrees clockwise the stored picture is turned for display
    codec: str | None = None
    caption_basis: str | None = None  # model, measured or fake (the caption method's ``basis``)
    # The steps that failed: ``{"method", "step", "cause", "detail"}`` each (why the item is ``partial``/``failed``).
    failures: tuple[dict[str, Any], ...] = ()

    @property
    def has_frames(self) -> bool:
        """Whether the item is analysed as frames: a video, or an animated image."""
        return self.media_type == "video" or bool(self.animated)


@dataclass(frozen=True)
class FrameRow:
    """A kept frame of a video or an animated image, at ``t_s`` seconds from the start of its picture."""

    sha256: str
    frame_index: int
    t_s: float
    caption: str | None = None
    ocr_text: str | None = None
    caption_basis: str | None = None


@dataclass(frozen=True)
class SegmentRow:
    """A transcript segment of a video's or an audio file's speech, from ``start_s`` to ``end_s``."""

    sha256: str
    segment_index: int
    start_s: float
    end_s: float
    text: str
    words: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class AnalysisRow:
    """One AI method's output for an item (``frame_index`` set: for that frame of a video)."""

    sha256: str
    method: str
    output: dict[str, Any]
    frame_index: int | None = None
    version: str | None = None
    provider: str | None = None
    model: str | None = None
    cost_usd: float | None = None
    cached: bool | None = None


@dataclass(frozen=True)
class SummaryRow:
    """The brand-level analysis (``brand_summary``)."""

    items: int
    summary: dict[str, Any] | None = None
    summary_error: str | None = None
    duplicate_groups: list[Any] = field(default_factory=list)
    outliers: list[Any] = field(default_factory=list)
    method: str | None = None
    version: str | None = None
    provider: str | None = None
    model: str | None = None
    cost_usd: float | None = None
    # Every other brand-level method's result, in the order they ran: ``{"method", "version", "provider",
    # "model", "output", "error", "cost_usd", "cached"}`` (table ``brand_analyses``).
    cycles: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class VectorRow:
    """One embedding: of an image or frame (``image``), its caption + OCR (``text``), or a transcript segment.

    ``method``/``provider``/``model``/``version`` say how it was made, so a
    search embeds its query the same way; ``space`` names the vector space
    (only vectors of one space are comparable).
    """

    sha256: str
    kind: str
    space: str
    method: str
    vector: np.ndarray = field(repr=False, compare=False)
    provider: str | None = None
    model: str | None = None
    version: str | None = None
    frame_index: int | None = None
    segment_index: int | None = None
    t_s: float | None = None
    t_end_s: float | None = None
    text: str | None = None
    source: str | None = None  # a ``text`` vector of a method's ``search_field``: that method

    @property
    def dim(self) -> int:
        """The vector's dimension."""
        return int(self.vector.shape[0])


@dataclass(frozen=True)
class BrandCatalog:
    """All of a brand's rows and vectors, validated; ``content_hash`` identifies the content."""

    brand: str
    media_items: tuple[MediaItemRow, ...]
    frames: tuple[FrameRow, ...] = ()
    segments: tuple[SegmentRow, ...] = ()
    analyses: tuple[AnalysisRow, ...] = ()
    summary: SummaryRow | None = None
    vectors: tuple[VectorRow, ...] = ()
    content_hash: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("media_items", "frames", "segments", "analyses", "vectors"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        self._validate()
        object.__setattr__(self, "content_hash", self._hash())

    # -- summaries ----------------------------------------------------------

    def row_counts(self) -> dict[str, int]:
        """Rows per database table."""
        return {
            "media_items": len(self.media_items),
            "frames": len(self.frames),
            "transcript_segments": len(self.segments),
            "analyses": len(self.analyses),
            "brand_summaries": int(self.summary is not None),
            "brand_analyses": len(self.summary.cycles) if self.summary is not None else 0,
            "vectors": len(self.vectors),
        }

    def vectors_by_space(self) -> dict[str, int]:
        """How many vectors each embedding space holds."""
        return dict(sorted(Counter(v.space for v in self.vectors).items()))

    def space_vectors(self, space: str) -> tuple[list[int], np.ndarray]:
        """Positions (in ``vectors``) and the float32 matrix of the vectors of ``space``."""
        positions = [i for i, v in enumerate(self.vectors) if v.space == space]
        if not positions:
            return [], np.zeros((0, 0), dtype=np.float32)
        matrix = np.stack([np.asarray(self.vectors[i].vector, dtype=np.float32) for i in positions])
        return positions, matrix

    # -- checks -------------------------------------------------------------

    def _fail(self, message: str) -> CatalogDataError:
        return CatalogDataError(f"brand {self.brand!r}: {message}")

    def _validate(self) -> None:
        if not isinstance(self.brand, str) or not _BRAND_RE.fullmatch(self.brand):
            raise CatalogDataError(
                f"invalid brand key {self.brand!r}: use 1-64 lower-case letters, digits, '-' or '_'"
            )
        items = {}
        for item in self.media_items:
            if item.sha256 in items:
                raise self._fail(f"media item {item.sha256[:12]} appears twice")
            if item.media_type not in MEDIA_TYPES:
                raise self._fail(f"media item {item.sha256[:12]} has media_type {item.media_type!r}")
            items[item.sha256] = item
        frames = set()
        for frame in self.frames:
            owner = items.get(frame.sha256)
            if owner is None or not owner.has_frames:
                raise self._fail(
                    f"frame {frame.frame_index} refers to {frame.sha256[:12]}, "
                    "which is not a video or an animated image of the brand"
                )
            if (frame.sha256, frame.frame_index) in frames:
                raise self._fail(f"frame {frame.frame_index} of {frame.sha256[:12]} appears twice")
            frames.add((frame.sha256, frame.frame_index))
        segments = set()
        for seg in self.segments:
            if seg.sha256 not in items or (seg.sha256, seg.segment_index) in segments:
                raise self._fail(f"transcript segment {seg.segment_index} of {seg.sha256[:12]} is unknown or repeated")
            segments.add((seg.sha256, seg.segment_index))
        for row in self.analyses:
            if row.sha256 not in items or (row.frame_index is not None and (row.sha256, row.frame_index) not in frames):
                raise self._fail(f"analysis {row.method} refers to an unknown item or frame ({row.sha256[:12]})")
        self._validate_vectors(items, frames, segments)

    def _validate_vectors(self, items: dict, frames: set, segments: set) -> None:
        dims: dict[str, int] = {}
        for v in self.vectors:
            where = f"{v.kind} vector of {v.sha256[:12]}"
            if v.sha256 not in items:
                raise self._fail(f"{where} refers to an unknown media item")
            if v.kind not in VECTOR_KINDS:
                raise self._fail(f"{where}: kind must be one of {VECTOR_KINDS}")
            if v.frame_index is not None and (v.sha256, v.frame_index) not in frames:
                raise self._fail(f"{where} refers to frame {v.frame_index}, which is not in the catalog")
            if v.kind == "transcript" and (v.segment_index is None or (v.sha256, v.segment_index) not in segments):
                raise self._fail(f"{where} refers to transcript segment {v.segment_index}, which is not in the catalog")
            if not isinstance(v.vector, np.ndarray) or v.vector.ndim != 1 or v.vector.shape[0] == 0:
                raise self._fail(f"{where} is not a non-empty 1-D array")
            if not np.all(np.isfinite(v.vector)):
                raise self._fail(f"{where} has non-finite values")
            if dims.setdefault(v.space, v.dim) != v.dim:
                raise self._fail(f"space {v.space!r} mixes dimensions {dims[v.space]} and {v.dim}: re-run the analysis")

    # -- identity -----------------------------------------------------------

    def _hash(self) -> str:
        digest = hashlib.sha256(self.brand.encode())
        for name in ("media_items", "frames", "segments", "analyses"):
            rows = [_values(row) for row in getattr(self, name)]
            digest.update(_canonical([name, rows]))
        digest.update(_canonical(["summary", _values(self.summary) if self.summary else None]))
        for v in self.vectors:
            digest.update(_canonical(_values(v)))
            digest.update(np.ascontiguousarray(v.vector, dtype=np.float32).tobytes())
        return digest.hexdigest()


# ``cached`` says how a run got a result (from the result cache), not what the brand holds: a re-run
# that took the same outputs from the cache committed again, with a new version and every id renumbered.
_NOT_CONTENT = ("vector", "cached")


def _values(row: Any) -> list[Any]:
    values = []
    for f in fields(row):
        if f.name in _NOT_CONTENT:
            continue
        value = getattr(row, f.name)
        if f.name == "cycles":  # the brand-level results: dicts with the same keys as analysis rows
            value = [{k: v for k, v in cycle.items() if k not in _NOT_CONTENT} for cycle in value]
        values.append(value)
    return values


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, default=_json_default, ensure_ascii=False).encode()
