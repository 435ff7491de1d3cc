"""Read-side queries of the committed catalog, for search and reports. No Dagster import."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import psycopg

_HIT_COLUMNS = (
    "vector_id", "brand", "kind", "space", "vector_t_s", "vector_t_end_s", "vector_text", "media_id", "sha256",
    "media_type", "source_url", "storage_uri", "item_caption", "item_ocr_text", "frame_index", "frame_t_s",
    "frame_caption", "frame_ocr_text", "segment_index", "segment_start_s", "segment_end_s", "segment_text",
    "item_caption_basis", "frame_caption_basis", "vector_source",
)  # fmt: skip


def vector_rows(conn: psycopg.Connection, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """The rows behind vector ids (with their media item, frame and segment), by id; unknown ids are absent."""
    wanted = sorted({int(i) for i in ids})
    if not wanted:
        return {}
    rows = conn.execute(
        "SELECT v.id, v.brand, v.kind, v.space, v.t_s, v.t_end_s, v.text, m.id, m.sha256, m.media_type,"
        " m.source_url, m.storage_uri, m.caption, m.ocr_text, f.frame_index, f.t_s, f.caption, f.ocr_text,"
        " s.segment_index, s.start_s, s.end_s, s.text, m.caption_basis, f.caption_basis, v.source"
        " FROM vectors v JOIN media_items m ON m.id = v.media_item_id"
        " LEFT JOIN frames f ON f.id = v.frame_id"
        " LEFT JOIN transcript_segments s ON s.id = v.segment_id"
        " WHERE v.id = ANY(%s)",
        (wanted,),
    ).fetchall()
    return {int(r[0]): dict(zip(_HIT_COLUMNS, r)) for r in rows}


@dataclass(frozen=True)
class TextMatch:
    """A committed text (OCR + model caption of an image or frame, or a transcript segment) holding query words.

    ``found`` of the query's ``wanted`` stemmed words occur in it; ``phrase``:
    the words occur in the query's order, side by side (Postgres
    ``phraseto_tsquery``); ``rank`` is ``ts_rank_cd`` (cover density).
    """

    vector_id: int
    found: int
    wanted: int
    phrase: bool
    rank: float


def query_lexemes(conn: psycopg.Connection, query: str) -> list[str]:
    """The stemmed, stop-word-free words Postgres indexes ``query`` as (English configuration)."""
    row = conn.execute("SELECT tsvector_to_array(to_tsvector('english', %s))", (query,)).fetchone()
    return list(row[0] or [])


def text_matches(
    conn: psycopg.Connection, query: str, limit: int, brand: str | None = None, media_type: str | None = None
) -> list[TextMatch]:
    """Full-text search of the committed texts (``vectors.text_search``, GIN-indexed): best ``limit`` matches.

    Any one query word is enough to match; the order is phrase matches first,
    then the share of query words found, then ``ts_rank_cd``. Only current
    rows exist (a re-commit replaces them), so no version check is needed.
    """
    lexemes = query_lexemes(conn, query)
    if not lexemes:
        return []
    rows = conn.execute(
        "WITH q AS (SELECT (SELECT string_agg(quote_literal(l), ' | ') FROM unnest(%(lex)s::text[]) l)::tsquery AS any,"
        " phraseto_tsquery('english', %(query)s) AS phrase)"
        " SELECT v.id,"
        " cardinality(ARRAY(SELECT unnest(tsvector_to_array(v.text_search)) INTERSECT SELECT unnest(%(lex)s::text[]))),"
        " v.text_search @@ q.phrase, ts_rank_cd(v.text_search, q.any)"
        " FROM q, vectors v JOIN media_items m ON m.id = v.media_item_id"
        " WHERE v.text_search @@ q.any"
        " AND (%(brand)s::text IS NULL OR v.brand = %(brand)s)"
        " AND (%(media_type)s::text IS NULL OR m.media_type = %(media_type)s)"
        " ORDER BY 3 DESC, 2 DESC, 4 DESC, v.id LIMIT %(limit)s",
        {"lex": lexemes, "query": query, "brand": brand, "media_type": media_type, "limit": limit},
    ).fetchall()
    return [TextMatch(int(r[0]), int(r[1]), len(lexemes), bool(r[2]), float(r[3])) for r in rows]
