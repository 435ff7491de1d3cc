"""Read-side queries of the committed catalog, for search and reports. No Dagster import."""

from __future__ import annotations

from typing import Any, Iterable

import psycopg

_HIT_COLUMNS = (
    "vector_id", "brand", "kind", "space", "vector_t_s", "vector_t_end_s", "vector_text", "media_id", "sha256",
    "media_type", "source_url", "storage_uri", "item_caption", "item_ocr_text", "frame_index", "frame_t_s",
    "frame_caption", "frame_ocr_text", "segment_index", "segment_start_s", "segment_end_s", "segment_text",
)  # fmt: skip


def vector_rows(conn: psycopg.Connection, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """The rows behind vector ids (with their media item, frame and segment), by id; unknown ids are absent."""
    wanted = sorted({int(i) for i in ids})
    if not wanted:
        return {}
    rows = conn.execute(
        "SELECT v.id, v.brand, v.kind, v.space, v.t_s, v.t_end_s, v.text, m.id, m.sha256, m.media_type,"
        " m.source_url, m.storage_uri, m.caption, m.ocr_text, f.frame_index, f.t_s, f.caption, f.ocr_text,"
        " s.segment_index, s.start_s, s.end_s, s.text"
        " FROM vectors v JOIN media_items m ON m.id = v.media_item_id"
        " LEFT JOIN frames f ON f.id = v.frame_id"
        " LEFT JOIN transcript_segments s ON s.id = v.segment_id"
        " WHERE v.id = ANY(%s)",
        (wanted,),
    ).fetchall()
    return {int(r[0]): dict(zip(_HIT_COLUMNS, r)) for r in rows}
