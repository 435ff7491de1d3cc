"""Committing a brand to Postgres: one transaction, delete + COPY, ids that FAISS shares.

``commit_brand(conn, catalog)`` is the only writer of a brand's rows. In one
transaction it:

1. takes the brand's advisory lock (two commits of one brand queue; other
   brands do not wait);
2. returns at once, changing nothing, when the committed ``catalog_hash``
   equals the catalog's (re-committing the same data is a no-op, ids and
   version included);
3. bumps the brand's ``index_version``;
4. deletes the brand's rows from every table;
5. reserves one block of ids from the ``catalog_ids`` sequence and COPYs the
   new rows (binary COPY, psycopg 3) with those ids written explicitly, so a
   vector's row id is the id its FAISS index will use;
6. registers, per embedding space, the index file of the new version
   (``vector_indexes``, not yet written);
7. checks every reference with one anti-join per table, then commits.

Any failure rolls the transaction back and raises :class:`CommitError`: the
previously committed rows, version and index files are untouched. Ids come
from a sequence and are never reused, so an id found in any index file maps
to the row committed with it, or to nothing.

No Dagster import; the schema is in ``resources.catalog_schema``.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Iterator

import numpy as np
import psycopg

from resources.brand_catalog import BrandCatalog
from resources.catalog_errors import CatalogError, CommitError
from resources.catalog_schema import ID_LOCK_KEY
from resources.index_keys import brand_index_key

# (column, Postgres type) per table, in COPY order; binary COPY needs the types.
MEDIA_ITEM_COLUMNS = (
    ("id", "int8"), ("brand", "text"), ("sha256", "text"), ("media_type", "text"), ("source_url", "text"),
    ("urls", "text[]"), ("storage_key", "text"), ("storage_uri", "text"), ("mime", "text"), ("bytes", "int8"),
    ("width", "int4"), ("height", "int4"), ("duration_s", "float8"), ("has_audio", "bool"), ("status", "text"),
    ("frames_sampled", "int4"), ("frames_kept", "int4"), ("caption", "text"), ("ocr_text", "text"),
    ("transcript_text", "text"), ("fetched_at", "timestamptz"), ("animated", "bool"), ("frame_count", "int4"),
    ("rotation", "int4"), ("codec", "text"), ("caption_basis", "text"), ("failures", "jsonb"),
)  # fmt: skip
FRAME_COLUMNS = (
    ("id", "int8"), ("brand", "text"), ("media_item_id", "int8"), ("frame_index", "int4"), ("t_s", "float8"),
    ("caption", "text"), ("ocr_text", "text"), ("caption_basis", "text"),
)  # fmt: skip
SEGMENT_COLUMNS = (
    ("id", "int8"), ("brand", "text"), ("media_item_id", "int8"), ("segment_index", "int4"), ("start_s", "float8"),
    ("end_s", "float8"), ("text", "text"), ("words", "jsonb"),
)  # fmt: skip
ANALYSIS_COLUMNS = (
    ("id", "int8"), ("brand", "text"), ("media_item_id", "int8"), ("frame_id", "int8"), ("method", "text"),
    ("version", "text"), ("provider", "text"), ("model", "text"), ("output", "jsonb"), ("cost_usd", "float8"),
    ("cached", "bool"),
)  # fmt: skip
VECTOR_COLUMNS = (
    ("id", "int8"), ("brand", "text"), ("media_item_id", "int8"), ("frame_id", "int8"), ("segment_id", "int8"),
    ("kind", "text"), ("space", "text"), ("dim", "int4"), ("method", "text"), ("provider", "text"),
    ("model", "text"), ("version", "text"), ("t_s", "float8"), ("t_end_s", "float8"), ("text", "text"),
    ("source", "text"),
)  # fmt: skip
# Children first, so a reader of a half-applied delete (none can exist: one transaction) would see no orphan.
BRAND_TABLES = (
    "vectors", "analyses", "transcript_segments", "frames", "media_items", "brand_analyses", "brand_summaries",
    "vector_indexes",
)  # fmt: skip
# (child table, column, parent table): every reference commit_brand writes, checked before commit.
REFERENCES = (
    ("frames", "media_item_id", "media_items"),
    ("transcript_segments", "media_item_id", "media_items"),
    ("analyses", "media_item_id", "media_items"),
    ("analyses", "frame_id", "frames"),
    ("vectors", "media_item_id", "media_items"),
    ("vectors", "frame_id", "frames"),
    ("vectors", "segment_id", "transcript_segments"),
)


@dataclass(frozen=True)
class CommittedSpace:
    """A brand's index of one embedding space, as registered in ``vector_indexes``."""

    brand: str
    space: str
    version: int
    storage_key: str
    dim: int
    vectors: int
    embedders: tuple[dict[str, Any], ...]
    index_kind: str | None
    written: bool


@dataclass(frozen=True)
class CommittedBrand:
    """What is committed for a brand: its version, content hash, row counts and indexes."""

    brand: str
    index_version: int
    catalog_hash: str
    committed_at: datetime
    row_counts: dict[str, int]
    spaces: tuple[CommittedSpace, ...] = ()


@dataclass(frozen=True)
class CommitResult:
    """The outcome of ``commit_brand``.

    ``vector_ids[i]`` is the row id (and FAISS id) of ``catalog.vectors[i]``.
    ``changed`` is False when the same content was already committed (nothing
    was written). ``previous`` is the state before this commit.
    """

    brand: str
    version: int
    changed: bool
    row_counts: dict[str, int]
    vectors_by_space: dict[str, int]
    vector_ids: np.ndarray
    index_keys: dict[str, str]
    previous: CommittedBrand | None
    elapsed_s: float = field(default=0.0)


def _brand_lock(conn: psycopg.Connection, brand: str) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"ad_assets.brand:{brand}",))


def committed_brand(conn: psycopg.Connection, brand: str) -> CommittedBrand | None:
    """The brand's committed state, or None when it was never committed."""
    row = conn.execute(
        "SELECT brand, index_version, catalog_hash, committed_at, row_counts FROM brands WHERE brand = %s", (brand,)
    ).fetchone()
    if row is None:
        return None
    return CommittedBrand(*row, spaces=tuple(committed_spaces(conn, brand)))


def committed_brands(conn: psycopg.Connection) -> dict[str, CommittedBrand]:
    """Every committed brand, by key (without their index rows)."""
    rows = conn.execute(
        "SELECT brand, index_version, catalog_hash, committed_at, row_counts FROM brands ORDER BY brand"
    ).fetchall()
    return {r[0]: CommittedBrand(*r) for r in rows}


def committed_spaces(
    conn: psycopg.Connection, brand: str | None = None, *, space: str | None = None
) -> list[CommittedSpace]:
    """``vector_indexes`` rows, for one brand or all, optionally of one space."""
    rows = conn.execute(
        "SELECT brand, space, version, storage_key, dim, vectors, embedders, index_kind, written_at IS NOT NULL"
        " FROM vector_indexes WHERE (%(brand)s::text IS NULL OR brand = %(brand)s)"
        " AND (%(space)s::text IS NULL OR space = %(space)s) ORDER BY brand, space",
        {"brand": brand, "space": space},
    ).fetchall()
    return [
        CommittedSpace(r[0], r[1], int(r[2]), r[3], int(r[4]), int(r[5]), tuple(r[6]), r[7], bool(r[8])) for r in rows
    ]


def _reserve_ids(conn: psycopg.Connection, count: int) -> int:
    """The first of ``count`` consecutive ids taken from ``catalog_ids``.

    A session-level advisory lock (released right away, not at commit) keeps
    another commit's reservation from interleaving, so the block is
    contiguous, without making commits of other brands wait for this one.
    Sequences are not transactional: a rolled-back commit leaves a gap, and an
    id is never handed out twice.
    """
    if count <= 0:
        return 0
    conn.execute("SELECT pg_advisory_lock(%s)", (ID_LOCK_KEY,))
    try:
        first = int(conn.execute("SELECT nextval('catalog_ids')").fetchone()[0])
        if count > 1:
            conn.execute("SELECT setval('catalog_ids', %s)", (first + count - 1,))
    finally:
        # In an aborted transaction the unlock cannot run (and would hide the real error):
        # commit_brand releases the lock once the transaction has rolled back.
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.INERROR:
            conn.execute("SELECT pg_advisory_unlock(%s)", (ID_LOCK_KEY,))
    return first


def _copy(cur: psycopg.Cursor, table: str, columns: tuple[tuple[str, str], ...], rows: Iterable[tuple]) -> None:
    names = ", ".join(name for name, _ in columns)
    with cur.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types([kind for _, kind in columns])
        for row in rows:
            copy.write_row(row)


class _Ids:
    """Row ids by natural key, handed out in catalog order from one reserved block.

    Items, frames, segments, analyses and vectors get consecutive ranges, so a
    row's id is its range's first id plus its position: no lookup is needed
    to write a table's own ids, only to resolve references.
    """

    def __init__(self, catalog: BrandCatalog, first: int) -> None:
        self.catalog = catalog
        self.items_first = first
        self.frames_first = self.items_first + len(catalog.media_items)
        self.segments_first = self.frames_first + len(catalog.frames)
        self.analyses_first = self.segments_first + len(catalog.segments)
        vectors_first = self.analyses_first + len(catalog.analyses)
        self.vectors = np.arange(vectors_first, vectors_first + len(catalog.vectors), dtype=np.int64)
        self.items = {item.sha256: first + i for i, item in enumerate(catalog.media_items)}

    @functools.cached_property
    def frames(self) -> dict[tuple[str, int], int]:
        """Frame id by (sha256, frame_index); built on first use (only references need it)."""
        return {(f.sha256, f.frame_index): self.frames_first + i for i, f in enumerate(self.catalog.frames)}

    @functools.cached_property
    def segments(self) -> dict[tuple[str, int], int]:
        """Segment id by (sha256, segment_index); built on first use."""
        return {(s.sha256, s.segment_index): self.segments_first + i for i, s in enumerate(self.catalog.segments)}


def total_ids(catalog: BrandCatalog) -> int:
    """How many row ids a commit of ``catalog`` reserves."""
    return len(catalog.media_items) + len(catalog.frames) + len(catalog.segments) + len(catalog.analyses) + len(
        catalog.vectors
    )


def _media_rows(catalog: BrandCatalog, ids: _Ids) -> Iterator[tuple]:
    b = catalog.brand
    for i, m in enumerate(catalog.media_items, ids.items_first):
        yield (
            i, b, m.sha256, m.media_type, m.source_url, list(m.urls or (m.source_url,)),
            m.storage_key, m.storage_uri, m.mime, m.bytes, m.width, m.height, m.duration_s, m.has_audio, m.status,
            m.frames_sampled, m.frames_kept, m.caption, m.ocr_text, m.transcript_text, m.fetched_at,
            m.animated, m.frame_count, m.rotation, m.codec, m.caption_basis, list(m.failures) or None,
        )  # fmt: skip


def _frame_rows(catalog: BrandCatalog, ids: _Ids) -> Iterator[tuple]:
    b, items = catalog.brand, ids.items
    for i, f in enumerate(catalog.frames, ids.frames_first):
        yield (i, b, items[f.sha256], f.frame_index, f.t_s, f.caption, f.ocr_text, f.caption_basis)


def _segment_rows(catalog: BrandCatalog, ids: _Ids) -> Iterator[tuple]:
    b = catalog.brand
    for i, s in enumerate(catalog.segments, ids.segments_first):
        yield (i, b, ids.items[s.sha256], s.segment_index, s.start_s, s.end_s, s.text, s.words)


def _analysis_rows(catalog: BrandCatalog, ids: _Ids) -> Iterator[tuple]:
    b = catalog.brand
    for offset, a in enumerate(catalog.analyses):
        frame_id = None if a.frame_index is None else ids.frames[(a.sha256, a.frame_index)]
        yield (ids.analyses_first + offset, b, ids.items[a.sha256], frame_id, a.method, a.version, a.provider,
               a.model, a.output, a.cost_usd, a.cached)  # fmt: skip


def _vector_rows(catalog: BrandCatalog, ids: _Ids) -> Iterator[tuple]:
    b = catalog.brand
    for vid, v in zip(ids.vectors.tolist(), catalog.vectors):
        frame_id = None if v.frame_index is None else ids.frames[(v.sha256, v.frame_index)]
        segment_id = None if v.segment_index is None else ids.segments[(v.sha256, v.segment_index)]
        yield (vid, b, ids.items[v.sha256], frame_id, segment_id, v.kind, v.space, v.dim, v.method, v.provider,
               v.model, v.version, v.t_s, v.t_end_s, v.text, v.source)  # fmt: skip


def embedders_by_space(catalog: BrandCatalog) -> dict[str, list[dict[str, Any]]]:
    """Per space, how its vectors were made: method, provider, model, version and the kinds they embed."""
    found: dict[str, dict[tuple, set[str]]] = {}
    for v in catalog.vectors:
        found.setdefault(v.space, {}).setdefault((v.method, v.provider, v.model, v.version), set()).add(v.kind)
    return {
        space: [
            {"method": m, "provider": p, "model": mo, "version": ve, "kinds": sorted(kinds)}
            for (m, p, mo, ve), kinds in sorted(entries.items(), key=lambda e: tuple(str(x) for x in e[0]))
        ]
        for space, entries in sorted(found.items())
    }


def _check_references(conn: psycopg.Connection, brand: str) -> None:
    checks = " UNION ALL ".join(
        f"SELECT '{child}.{column}', count(*) FROM {child} c WHERE c.brand = %(brand)s AND c.{column} IS NOT NULL"
        f" AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE p.id = c.{column} AND p.brand = %(brand)s)"
        for child, column, parent in REFERENCES
    )
    broken = {name: n for name, n in conn.execute(checks, {"brand": brand}).fetchall() if n}  # type: ignore[arg-type]
    if broken:
        raise CommitError(
            f"brand {brand!r}: rows refer to missing rows {broken}; nothing was committed (a bug: report it)"
        )


def _write_rows(conn: psycopg.Connection, catalog: BrandCatalog, version: int) -> _Ids:
    brand = catalog.brand
    with conn.cursor() as cur:
        for table in BRAND_TABLES:
            cur.execute(f"DELETE FROM {table} WHERE brand = %s", (brand,))  # type: ignore[arg-type]
        ids = _Ids(catalog, _reserve_ids(conn, total_ids(catalog)))
        _copy(cur, "media_items", MEDIA_ITEM_COLUMNS, _media_rows(catalog, ids))
        if catalog.frames:
            _copy(cur, "frames", FRAME_COLUMNS, _frame_rows(catalog, ids))
        if catalog.segments:
            _copy(cur, "transcript_segments", SEGMENT_COLUMNS, _segment_rows(catalog, ids))
        if catalog.analyses:
            _copy(cur, "analyses", ANALYSIS_COLUMNS, _analysis_rows(catalog, ids))
        if catalog.vectors:
            _copy(cur, "vectors", VECTOR_COLUMNS, _vector_rows(catalog, ids))
        s = catalog.summary
        if s is not None:
            cur.execute(
                "INSERT INTO brand_summaries (brand, items, summary, summary_error, duplicate_groups, outliers,"
                " method, version, provider, model, cost_usd) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (brand, s.items, _jsonb(s.summary), s.summary_error, _jsonb(s.duplicate_groups), _jsonb(s.outliers),
                 s.method, s.version, s.provider, s.model, s.cost_usd),  # fmt: skip
            )
            for position, c in enumerate(s.cycles):
                cur.execute(
                    "INSERT INTO brand_analyses (brand, position, method, version, provider, model, output, error,"
                    " cost_usd, cached) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (brand, position, c.get("method"), c.get("version"), c.get("provider"), c.get("model"),
                     _jsonb(c.get("output")), c.get("error"), c.get("cost_usd"), c.get("cached")),  # fmt: skip
                )
        spaces = catalog.vectors_by_space()
        dims = {v.space: v.dim for v in catalog.vectors}
        for space, embedders in embedders_by_space(catalog).items():
            cur.execute(
                "INSERT INTO vector_indexes (brand, space, version, storage_key, dim, vectors, embedders)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (brand, space, version, brand_index_key(space, brand, version), dims[space], spaces[space],
                 _jsonb(embedders)),  # fmt: skip
            )
    _check_references(conn, brand)
    return ids


def _jsonb(value: Any) -> Any:
    from psycopg.types.json import Jsonb

    return None if value is None else Jsonb(value)


def _unchanged(conn: psycopg.Connection, catalog: BrandCatalog, previous: CommittedBrand) -> CommitResult | None:
    rows = conn.execute("SELECT id FROM vectors WHERE brand = %s ORDER BY id", (catalog.brand,)).fetchall()
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    # Vector ids were handed out in catalog order from one block, so id order is catalog order.
    if len(ids) != len(catalog.vectors):
        return None
    return CommitResult(
        brand=catalog.brand,
        version=previous.index_version,
        changed=False,
        row_counts=dict(previous.row_counts),
        vectors_by_space=catalog.vectors_by_space(),
        vector_ids=ids,
        index_keys={s.space: s.storage_key for s in previous.spaces},
        previous=previous,
    )


def commit_brand(conn: psycopg.Connection, catalog: BrandCatalog, *, force: bool = False) -> CommitResult:
    """Replace the brand's committed rows with ``catalog`` in one transaction (see the module docstring).

    ``conn`` must be idle (no transaction open) on a database whose schema is
    current (``ensure_schema``). With ``force`` the rows are rewritten (new
    ids, new version) even when the content is unchanged. Raises
    :class:`CommitError` after rolling back.
    """
    started = time.perf_counter()
    brand = catalog.brand
    try:
        with conn.transaction():
            _brand_lock(conn, brand)
            previous = committed_brand(conn, brand)
            if previous is not None and previous.catalog_hash == catalog.content_hash and not force:
                unchanged = _unchanged(conn, catalog, previous)
                if unchanged is not None:
                    return unchanged
            counts = catalog.row_counts()
            version = int(
                conn.execute(
                    "INSERT INTO brands (brand, index_version, catalog_hash, committed_at, row_counts)"
                    " VALUES (%s, 1, %s, now(), %s) ON CONFLICT (brand) DO UPDATE SET"
                    " index_version = brands.index_version + 1, catalog_hash = EXCLUDED.catalog_hash,"
                    " committed_at = EXCLUDED.committed_at, row_counts = EXCLUDED.row_counts"
                    " RETURNING index_version",
                    (brand, catalog.content_hash, _jsonb(counts)),
                ).fetchone()[0]
            )
            ids = _write_rows(conn, catalog, version)
    except CatalogError:
        _release_id_lock(conn)
        raise
    except Exception as exc:
        _release_id_lock(conn)
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CommitError(
            f"committing brand {brand!r} failed and was rolled back; the previously committed rows and indexes "
            f"are intact ({type(exc).__name__}: {detail})"
        ) from exc
    by_space = catalog.vectors_by_space()
    return CommitResult(
        brand=brand,
        version=version,
        changed=True,
        row_counts=counts,
        vectors_by_space=by_space,
        vector_ids=ids.vectors,
        index_keys={space: brand_index_key(space, brand, version) for space in by_space},
        previous=previous,
        elapsed_s=time.perf_counter() - started,
    )


def _release_id_lock(conn: psycopg.Connection) -> None:
    # If the failure struck between taking and releasing the id lock, the
    # aborted transaction could not release it; do it now that it rolled back.
    # (This connection is commit_brand's: it holds no other session lock.)
    if conn.closed or conn.broken:
        return
    try:
        conn.execute("SELECT pg_advisory_unlock_all()")
        conn.rollback()
    except psycopg.Error:
        pass


def mark_index_written(conn: psycopg.Connection, brand: str, space: str, version: int, index_kind: str) -> bool:
    """Record that the brand's index of ``space`` at ``version`` is in the store.

    Returns False (and changes nothing) when a newer commit replaced that
    version meanwhile: its own publisher writes its own file.
    """
    with conn.transaction():
        cur = conn.execute(
            "UPDATE vector_indexes SET written_at = now(), index_kind = %s"
            " WHERE brand = %s AND space = %s AND version = %s",
            (index_kind, brand, space, version),
        )
        return cur.rowcount == 1
