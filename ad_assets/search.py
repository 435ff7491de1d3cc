"""Search the committed catalog by text or by image: ``search(...) -> list[Hit]``.

A query is embedded the way the vectors it is compared with were embedded:
the method, provider and space are read from the committed rows
(``vector_indexes.embedders``), not assumed from today's settings. Then the
FAISS index of that space is searched, the hits' ids are joined to their rows
in the same database snapshot, and filters are applied.

What a query reaches depends on the spaces the brand was indexed in:

- ``local`` provider (offline): text and images live in different spaces.
  A text query (``embed_text``, ``local-lexical-v1``) searches the text
  vectors (each image's or frame's caption + OCR) and the transcript
  segments; an image query (``embed_image``, ``local-visual-v1``) searches
  the image and frame vectors. Lexical means shared words, not synonyms;
  visual means look-alike pictures, not meaning.
- ``bedrock`` (Titan multimodal embeddings): text and images share one space,
  so a text query also reaches image and frame vectors directly.

Spoken words are searchable through the transcript segments: such a hit
carries the segment's text and its start/end seconds.

Words and meaning together: a text query is also run as a Postgres
full-text search over the committed texts (OCR, model captions, transcript
segments; ``resources.catalog_queries.text_matches``). Each unit of an ad (an
image, a kept frame, a transcript segment) collects the evidence of the word
match and of every query vector, and ``ad_assets.search_ranking`` turns it
into one calibrated score in [0, 1]: an exact phrase ranks first, text and
image parts of one query both count, and hits below ``min_score`` (default
``DEFAULT_MIN_SCORE``) are dropped: an empty result is "no good match"
(``SearchHits.no_good_match``, with the best score that missed).

Without ``brand``, each space's cross-brand index is searched: every brand's
own index of the version committed in this query's snapshot, results merged
(``resources.index_shards``), so results never mix an index with rows of
another version.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import psycopg

from ad_assets.search_ranking import DEFAULT_MIN_SCORE, IMAGE, TEXT, UnitEvidence, order_key
from ad_assets.settings import Settings
from ai_methods.calls import MethodRunner
from ai_methods.errors import InvalidInputError
from ai_methods.settings import AISettings
from resources.brand_catalog import MEDIA_TYPES
from resources.catalog_db import CommittedSpace, committed_brands, committed_spaces
from resources.catalog_errors import IndexNotFoundError
from resources.catalog_queries import text_matches, vector_rows
from resources.catalog_schema import schema_version
from resources.index_shards import cross_brand_shards
from resources.media_store import MediaStore
from resources.postgres import connect, resolve_database_url
from resources.vector_index import IndexFiles, search_index

log = logging.getLogger(__name__)

MAX_K = 1000
EMBED_TEXT, EMBED_IMAGE = "embed_text", "embed_image"
# How many candidates to take from an index per wanted hit before filters; doubled until enough survive.
_OVERFETCH = 4


class SearchError(Exception):
    """Base of the search errors; each message says what to do."""


class SearchInputError(SearchError, ValueError):
    """The query is unusable: nothing to search for, a missing image, a bad ``k`` or filter."""


class UnknownBrandError(SearchError, LookupError):
    """The brand asked for has never been committed; the message lists those that were."""


class NothingToSearchError(SearchError, LookupError):
    """Nothing committed can answer this query (no brand committed yet, or no vectors of that kind)."""


class SpaceMismatchError(SearchError):
    """The query embeds into another space than the committed vectors (the model changed since indexing)."""


@dataclass(frozen=True)
class Hit:
    """One matching image, video frame, or transcript segment.

    ``kind`` is the vector that matched: ``image`` (the picture), ``text``
    (its caption + OCR), ``transcript`` (a spoken segment). ``t_s`` is the
    frame's time, or the segment's start (``t_end_s`` its end), for videos.
    ``text`` is the matching text: what was embedded for ``text`` and
    ``transcript`` hits, the OCR text (else a model's caption) for ``image``
    hits; a ``measured`` caption (sizes and colours, see ``caption_basis``)
    is never offered as the matching text.
    ``score`` is the calibrated relevance in [0, 1] (``search_ranking``:
    higher is closer; an exact match of the picture or the words gives 1 or
    close); ``similarity`` is the best raw cosine of the unit's vectors to the
    query (None when only the words matched); ``matched_by`` says how it
    matched (``phrase``, ``words``, ``text-vector``, ``image-vector``).
    """

    brand: str
    media_id: int
    sha256: str
    source_url: str
    storage_uri: str
    media_type: str
    kind: str
    score: float
    t_s: float | None = None
    t_end_s: float | None = None
    frame_index: int | None = None
    text: str | None = None
    text_source: str | None = None
    caption: str | None = None
    ocr_text: str | None = None
    space: str = ""
    vector_id: int = 0
    similarity: float | None = None
    matched_by: list[str] = field(default_factory=list)
    caption_basis: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the CLI's ``--json`` objects; keys are a contract: add, never rename)."""
        out = dataclasses.asdict(self)
        out["score"] = round(self.score, 6)
        return out


@dataclass
class SearchHits(list):
    """The hits, best first (a ``list[Hit]``), and why there are none.

    ``min_score`` is the threshold applied; ``best_missed`` the best score
    below it (None when nothing at all came near). ``no_good_match``: no hit
    passed.
    """

    def __init__(self, hits: list[Hit] = (), min_score: float = DEFAULT_MIN_SCORE,
                 best_missed: float | None = None) -> None:  # fmt: skip
        super().__init__(hits)
        self.min_score = min_score
        self.best_missed = best_missed

    @property
    def no_good_match(self) -> bool:
        """Whether no hit reached ``min_score``."""
        return not self

    def no_good_match_message(self, query: str | None) -> str:
        """One line for people: what was searched and why nothing is shown."""
        what = f"for {query.strip()!r}" if query and query.strip() else "for this image"
        near = f" (best score {self.best_missed:.2f})" if self.best_missed is not None else ""
        return f"no good match {what}: nothing scored {self.min_score:.2f} or more{near}"


@dataclass
class SearchResources:
    """What a search needs: the catalog database, the store holding the indexes, the AI settings.

    Keep one instance to reuse the indexes it has loaded (index files never
    change once written, so the cache is always right).
    """

    database_url: str
    store: MediaStore
    ai_settings: AISettings
    ef_search: int | None = None  # None: each HNSW index's own, set by the catalog IO manager at build
    _files: IndexFiles | None = field(default=None, init=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> "SearchResources":
        """From the platform settings (starts the embedded PostgreSQL when no database URL is set)."""
        ai = settings.ai_settings()
        store = settings.media_store()
        return cls(resolve_database_url(settings.database_url, settings.postgres_dir), store, ai)

    @classmethod
    def from_resources(cls, resources: Mapping[str, Any]) -> "SearchResources":
        """From the Dagster resources of ``resource_defs.resources_for``.

        Uses ``postgres``, ``media_store`` and ``ai_methods``.
        """
        return cls(resources["postgres"].url(), resources["media_store"].store(), resources["ai_methods"].settings())

    @property
    def files(self) -> IndexFiles:
        """The index files of the store (loaded ones stay cached)."""
        if self._files is None:
            self._files = IndexFiles(self.store, ef_search=self.ef_search)
        return self._files


def _resources(source: Settings | SearchResources | Mapping[str, Any]) -> SearchResources:
    if isinstance(source, SearchResources):
        return source
    if isinstance(source, Settings):
        return SearchResources.from_settings(source)
    if isinstance(source, Mapping):
        return SearchResources.from_resources(source)
    raise TypeError(f"search needs Settings, SearchResources or a resources mapping, not {type(source).__name__}")


def check_media_type(media_type: str | None) -> None:
    """Raise ``SearchInputError`` unless ``media_type`` is ``None`` or one of ``MEDIA_TYPES``."""
    if media_type is not None and media_type not in MEDIA_TYPES:
        raise SearchInputError(f"media_type must be one of {', '.join(MEDIA_TYPES)}, got {media_type!r}")


def _check_inputs(
    query: str | None, image: Path | bytes | None, k: int, min_score: float | None, media_type: str | None
) -> bytes | None:
    """Validate the arguments; returns the image's bytes (or None)."""
    if (query is None or not query.strip()) and image is None:
        raise SearchInputError("give a text query, an image (--image PATH), or both")
    if not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise SearchInputError(f"k must be an integer from 1 to {MAX_K}, got {k!r}")
    if min_score is not None and not -1.0 <= float(min_score) <= 1.0:
        raise SearchInputError(f"min_score must be from -1 to 1 (hits score 0 to 1), got {min_score!r}")
    check_media_type(media_type)
    if image is None:
        return None
    if isinstance(image, bytes):
        if not image:
            raise SearchInputError("the query image is empty")
        return image
    path = Path(image)
    if not path.is_file():
        raise SearchInputError(f"image {str(path)!r} does not exist or is not a file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SearchInputError(f"cannot read image {str(path)!r}: {exc.strerror or exc}") from exc
    if not data:
        raise SearchInputError(f"image {str(path)!r} is empty")
    return data


def _embedders(spaces: list[CommittedSpace], method: str) -> dict[str, set[str]]:
    """Provider → the committed spaces ``method`` filled with that provider."""
    found: dict[str, set[str]] = {}
    for entry in spaces:
        for how in entry.embedders:
            if how.get("method") == method and how.get("provider"):
                found.setdefault(how["provider"], set()).add(entry.space)
    return found


async def _embed(
    ai: AISettings, requests: list[tuple[str, str, str, dict[str, Any], set[str]]]
) -> list[tuple[str, str, np.ndarray]]:
    """(query part, space, unit vector) of each (part, method, provider, inputs, committed spaces) request."""
    out = []
    async with MethodRunner(ai) as runner:
        for part, method, provider, inputs, spaces in requests:
            try:
                result = await runner.run(method, provider=provider, **inputs)
            except InvalidInputError as exc:
                raise SearchInputError(f"{method} cannot use this query: {exc}") from exc
            space = result.output["space"]
            if space not in spaces:
                raise SpaceMismatchError(
                    f"{method} on {provider} now embeds into space {space!r}, but the committed vectors are in "
                    f"{', '.join(sorted(spaces))}: its model changed since indexing; re-run the brands (backfill) "
                    "or configure the model they were indexed with"
                )
            vector = np.asarray(result.output["vector"], dtype=np.float32)
            if not np.any(vector):
                raise SearchInputError(f"the query has nothing {method} can embed (no words or no pixels it knows)")
            out.append((part, space, vector))
    return out


def _query_vectors(
    ai: AISettings, spaces: list[CommittedSpace], query: str | None, image: bytes | None
) -> list[tuple[str, str, np.ndarray]]:
    asked = []
    if query is not None and query.strip():
        asked.append((EMBED_TEXT, {"text": query.strip()}, TEXT))
    if image is not None:
        asked.append((EMBED_IMAGE, {"image": image}, IMAGE))
    requests = []
    for method, inputs, what in asked:
        providers = _embedders(spaces, method)
        if not providers:
            raise NothingToSearchError(
                f"nothing committed here can be searched by {what}: no vectors were made with {method}"
            )
        requests += [(what, method, provider, inputs, found) for provider, found in sorted(providers.items())]
    return asyncio.run(_embed(ai, requests))


def _sources(conn: psycopg.Connection, files: IndexFiles, space: str, brand: str | None,
             spaces: list[CommittedSpace]) -> list[tuple[Any, set[str]]]:  # fmt: skip
    """(index, brands whose hits count) pairs covering ``space`` for the brand, or for every brand."""
    entries = [s for s in spaces if s.space == space]
    if brand is not None:
        entry = entries[0]
        if not entry.written:
            raise IndexNotFoundError(
                f"brand {brand!r} version {entry.version} is committed but its {space!r} index is not written yet: "
                "wait for the commit to finish, or re-materialise its brand_catalog"
            )
        return [(files.load(entry.storage_key), {brand})]
    shards = cross_brand_shards(files, entries, space)
    return [(shards, shards.brands)] if shards is not None else []


def _candidates(
    sources: list[tuple[Any, set[str]]], vector: np.ndarray, want: int
) -> dict[int, tuple[float, set[str]]]:
    """Best score per vector id over the sources, with the brands whose hits count for that source."""
    found: dict[int, tuple[float, set[str]]] = {}
    for index, brands in sources:
        scores, ids = search_index(index, vector, want)
        for score, vid in zip(scores.tolist(), ids.tolist()):
            if vid >= 0 and (vid not in found or score > found[vid][0]):
                found[vid] = (score, brands)
    return found


def _hit(row: dict[str, Any], evidence: UnitEvidence) -> Hit:
    kind = row["kind"]
    frame = row["frame_index"] is not None
    caption = row["frame_caption"] if frame else row["item_caption"]
    basis = row["frame_caption_basis"] if frame else row["item_caption_basis"]
    described = caption if basis != "measured" else None  # measurements are no description
    ocr = row["frame_ocr_text"] if frame else row["item_ocr_text"]
    if kind == "transcript":
        text, source, t_s, t_end = row["segment_text"], "transcript", row["segment_start_s"], row["segment_end_s"]
    else:
        t_s, t_end = (row["frame_t_s"] if frame else None), None
        if kind == "text":
            # A method's ``search_field`` names its method; otherwise embed_text's caption + OCR.
            text, source = row["vector_text"], row.get("vector_source") or "caption+ocr"
        else:
            text, source = (ocr, "ocr") if ocr else (described, "caption" if described else None)
    return Hit(
        brand=row["brand"], media_id=int(row["media_id"]), sha256=row["sha256"], source_url=row["source_url"],
        storage_uri=row["storage_uri"], media_type=row["media_type"], kind=kind, score=float(evidence.score),
        t_s=t_s, t_end_s=t_end, frame_index=row["frame_index"], text=text, text_source=source,
        caption=caption, ocr_text=ocr, space=row["space"], vector_id=int(row["vector_id"]),
        similarity=max(evidence.similarity.values()) if evidence.similarity else None,
        matched_by=evidence.matched_by, caption_basis=basis,
    )  # fmt: skip


def _search_space(conn: psycopg.Connection, sources: list[tuple[Any, set[str]]], vector: np.ndarray, k: int,
                  media_type: str | None) -> list[tuple[dict[str, Any], float]]:  # fmt: skip
    """(row, cosine) of the nearest vectors that pass the filters, nearest first."""
    total = sum(index.ntotal for index, _ in sources)
    if total == 0:
        return []
    want = min(total, k * _OVERFETCH)
    while True:
        found = _candidates(sources, vector, want)
        rows = vector_rows(conn, found)
        hits = []
        for vid, (score, brands) in found.items():
            row = rows.get(vid)
            # No row: the id belongs to a version committed over since (ids are never reused).
            if row is None or row["brand"] not in brands:
                continue
            if media_type and row["media_type"] != media_type:
                continue
            hits.append((row, score))
        if len(hits) >= k or want >= total:
            return sorted(hits, key=lambda h: (-h[1], h[0]["vector_id"]))
        want = min(total, want * 2)


def _unit_key(row: dict[str, Any]) -> tuple:
    """What one hit stands for: an image, a kept frame, or a transcript segment of an item."""
    return (row["media_id"], row["frame_index"], row["segment_index"])


class _Units:
    """Evidence per unit, and the row that will stand for it (the one of its strongest part)."""

    def __init__(self) -> None:
        self.evidence: dict[tuple, UnitEvidence] = {}
        self.rows: dict[tuple, dict[str, dict[str, Any]]] = {}

    def get(self, row: dict[str, Any], part: str) -> UnitEvidence:
        key = _unit_key(row)
        self.rows.setdefault(key, {}).setdefault(part, row)
        return self.evidence.setdefault(key, UnitEvidence())

    def hits(self) -> list[tuple[UnitEvidence, Hit]]:
        out = []
        for key, evidence in self.evidence.items():
            rows = self.rows[key]
            text = max(evidence.words, evidence.evidence.get(TEXT, 0.0))
            part = TEXT if TEXT in rows and (IMAGE not in rows or text >= evidence.evidence.get(IMAGE, 0.0)) else IMAGE
            out.append((evidence, _hit(rows[part], evidence)))
        return out


def search(
    source: Settings | SearchResources | Mapping[str, Any],
    query: str | None = None,
    image: Path | bytes | None = None,
    brand: str | None = None,
    k: int = 10,
    min_score: float | None = None,
    media_type: str | None = None,
) -> SearchHits:
    """The ``k`` best hits for a text ``query`` and/or an ``image`` (a file, or its bytes), best first.

    ``source`` is the platform ``Settings``, a ``SearchResources`` (reuse it
    to keep loaded indexes), or the Dagster resources mapping. ``brand``
    limits the search to one brand; ``min_score`` drops hits scoring below it
    (default ``DEFAULT_MIN_SCORE``; 0 keeps every candidate); ``media_type``
    keeps only ``image``, ``video`` or ``audio`` items. Returns ``SearchHits``
    (a list; empty with ``no_good_match`` when nothing passed). Raises
    ``SearchInputError``, ``UnknownBrandError``, ``NothingToSearchError``,
    ``SpaceMismatchError``; catalog, database and AI failures raise their own
    typed errors. Synchronous: call it from a thread when inside an event loop.
    """
    image_bytes = _check_inputs(query, image, k, min_score, media_type)
    res = _resources(source)
    with connect(res.database_url) as conn:
        conn.read_only = True
        # One snapshot for versions, indexes' registry and rows.
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        if schema_version(conn) == 0 or not (brands := committed_brands(conn)):
            raise NothingToSearchError(
                "nothing is committed yet: run `ad-assets ingest BRAND FILE` (or `ad-assets demo`) first"
            )
        if brand is not None and brand not in brands:
            raise UnknownBrandError(
                f"brand {brand!r} has not been committed; committed brands: {', '.join(sorted(brands))}"
            )
        spaces = committed_spaces(conn, brand)
        vectors = _query_vectors(res.ai_settings, spaces, query, image_bytes)
        units = _Units()
        for part, space, vector in vectors:
            sources = _sources(conn, res.files, space, brand, spaces)
            for rank, (row, cosine) in enumerate(_search_space(conn, sources, vector, k, media_type), 1):
                units.get(row, part).add_similarity(part, space, cosine, rank)
        if query is not None and query.strip():
            matches = text_matches(conn, query.strip(), k * _OVERFETCH, brand, media_type)
            rows = vector_rows(conn, (m.vector_id for m in matches))
            for rank, match in enumerate(matches, 1):
                units.get(rows[match.vector_id], TEXT).add_words(match.found, match.wanted, match.phrase, rank)
        conn.rollback()
    floor = DEFAULT_MIN_SCORE if min_score is None else float(min_score)
    ranked = sorted(units.hits(), key=lambda eh: order_key(eh[0], eh[1].vector_id))
    kept = [hit for evidence, hit in ranked if evidence.score >= floor][:k]
    missed = max((evidence.score for evidence, _ in ranked if evidence.score < floor), default=None)
    return SearchHits(kept, floor, None if kept else missed)
