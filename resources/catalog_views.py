"""What the search pages show of the committed catalog: one item, one brand. Read-only; no Dagster import.

Every function takes an open connection and returns plain dicts and lists
(JSON-ready apart from datetimes), or None when the thing asked for is not
committed. Texts come back as stored: escaping is the page's job.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

_ITEM_COLUMNS = (
    "id, brand, sha256, media_type, source_url, urls, storage_key, mime, bytes, width, height, duration_s,"
    " has_audio, status, frames_sampled, frames_kept, caption, caption_basis, ocr_text, transcript_text,"
    " fetched_at, animated, frame_count, rotation, codec, failures"
)


def media_by_sha(conn: psycopg.Connection, sha256: str) -> dict[str, Any] | None:
    """The stored file of a content hash (``storage_key``, ``media_type``, ``mime``, ``animated``), or None.

    The same bytes may belong to several brands; they share one stored file.
    """
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT sha256, storage_key, media_type, mime, animated, duration_s FROM media_items"
            " WHERE sha256 = %s ORDER BY id LIMIT 1",
            (sha256,),
        ).fetchone()


def item_detail(conn: psycopg.Connection, media_id: int) -> dict[str, Any] | None:
    """An item with its ``frames``, transcript ``segments`` and every method's ``analyses``, or None.

    Frames are in time order; analyses carry ``method``, ``version``,
    ``provider``, ``model``, ``output`` (the method's JSON, ``basis``
    included where the method reports one), ``cost_usd``, ``cached`` and the
    ``t_s`` of their frame (None for the whole item).
    """
    with conn.cursor(row_factory=dict_row) as cur:
        item = cur.execute(f"SELECT {_ITEM_COLUMNS} FROM media_items WHERE id = %s", (media_id,)).fetchone()
        if item is None:
            return None
        item["frames"] = cur.execute(
            "SELECT frame_index, t_s, caption, caption_basis, ocr_text FROM frames WHERE media_item_id = %s"
            " ORDER BY t_s, frame_index",
            (media_id,),
        ).fetchall()
        item["segments"] = cur.execute(
            "SELECT segment_index, start_s, end_s, text FROM transcript_segments WHERE media_item_id = %s"
            " ORDER BY start_s, segment_index",
            (media_id,),
        ).fetchall()
        item["analyses"] = cur.execute(
            "SELECT a.method, a.version, a.provider, a.model, a.output, a.cost_usd, a.cached, f.t_s"
            " FROM analyses a LEFT JOIN frames f ON f.id = a.frame_id WHERE a.media_item_id = %s"
            " ORDER BY f.t_s NULLS FIRST, a.method",
            (media_id,),
        ).fetchall()
    return item


def brand_overview(conn: psycopg.Connection, brand: str) -> dict[str, Any] | None:
    """A committed brand: ``committed_at``, ``index_version``, ``row_counts``, the ``summary`` row, ``items``
    (id, sha256, media_type, source_url, status, frames_kept; by id), ``counts`` (items by media type and by
    status), ``cycles`` (the other brand-level methods' results, in the order they ran) and ``cost_usd``
    (every analysis, the summary and the cycles), or None when the brand is not committed.
    """
    with conn.cursor(row_factory=dict_row) as cur:
        head = cur.execute(
            "SELECT brand, index_version, committed_at, row_counts FROM brands WHERE brand = %s", (brand,)
        ).fetchone()
        if head is None:
            return None
        head["summary"] = cur.execute(
            "SELECT items, summary, summary_error, duplicate_groups, outliers, method, version, provider, model,"
            " cost_usd FROM brand_summaries WHERE brand = %s",
            (brand,),
        ).fetchone()
        head["cycles"] = cur.execute(
            "SELECT method, version, provider, model, output, error, cost_usd, cached FROM brand_analyses"
            " WHERE brand = %s ORDER BY position",
            (brand,),
        ).fetchall()
        head["items"] = cur.execute(
            "SELECT id, sha256, media_type, source_url, status, frames_kept, duration_s FROM media_items"
            " WHERE brand = %s ORDER BY id",
            (brand,),
        ).fetchall()
        analyses_cost = cur.execute(
            "SELECT coalesce(sum(cost_usd), 0) AS cost, count(*) AS calls FROM analyses WHERE brand = %s", (brand,)
        ).fetchone()
    counts: dict[str, dict[str, int]] = {"media_type": {}, "status": {}}
    for item in head["items"]:
        for key in counts:
            counts[key][item[key]] = counts[key].get(item[key], 0) + 1
    head["counts"] = counts
    summary_cost = float((head["summary"] or {}).get("cost_usd") or 0.0)
    cycles_cost = sum(float(c.get("cost_usd") or 0.0) for c in head["cycles"])
    head["cost_usd"] = round(float(analyses_cost["cost"]) + summary_cost + cycles_cost, 6)
    head["analyses"] = int(analyses_cost["calls"])
    return head
