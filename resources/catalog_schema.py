"""The catalog's Postgres schema, created and migrated by code.

``ensure_schema(conn)`` brings any database to ``SCHEMA_VERSION``: it applies
the migrations the ``schema_version`` table does not list yet, in order, in
one transaction, under an advisory lock (two processes starting at once do not
both migrate). A database newer than this code is refused rather than guessed at.

Why no foreign keys: a brand's rows are written only by ``commit_brand``, in
one transaction that deletes them all and COPYs them again with ids it
reserved itself, then checks every reference with one anti-join per table
before committing. Per-row foreign-key triggers would cost more than the COPY
itself at 100k frames, and would check nothing that anti-join does not.
"""

from __future__ import annotations

import psycopg

from resources.catalog_errors import CatalogSchemaError

SCHEMA_VERSION = 4
# Fixed advisory-lock keys of this schema (any bigint unlikely to clash with other apps).
SCHEMA_LOCK_KEY = 0x61645F6173_01
ID_LOCK_KEY = 0x61645F6173_02

_V1 = """
CREATE SEQUENCE catalog_ids AS bigint;

CREATE TABLE brands (
    brand          text PRIMARY KEY,
    index_version  bigint NOT NULL CHECK (index_version > 0),
    catalog_hash   text NOT NULL,
    committed_at   timestamptz NOT NULL DEFAULT now(),
    row_counts     jsonb NOT NULL
);

CREATE TABLE media_items (
    id              bigint PRIMARY KEY,
    brand           text NOT NULL,
    sha256          text NOT NULL,
    media_type      text NOT NULL CHECK (media_type IN ('image', 'video')),
    source_url      text NOT NULL,
    urls            text[] NOT NULL,
    storage_key     text NOT NULL,
    storage_uri     text NOT NULL,
    mime            text,
    bytes           bigint,
    width           integer,
    height          integer,
    duration_s      double precision,
    has_audio       boolean,
    status          text NOT NULL,
    frames_sampled  integer NOT NULL,
    frames_kept     integer NOT NULL,
    caption         text,
    ocr_text        text,
    transcript_text text,
    fetched_at      timestamptz,
    UNIQUE (brand, sha256)
);

CREATE TABLE frames (
    id             bigint PRIMARY KEY,
    brand          text NOT NULL,
    media_item_id  bigint NOT NULL,
    frame_index    integer NOT NULL,
    t_s            double precision NOT NULL CHECK (t_s >= 0),
    caption        text,
    ocr_text       text
);
CREATE INDEX frames_brand ON frames (brand);

CREATE TABLE transcript_segments (
    id             bigint PRIMARY KEY,
    brand          text NOT NULL,
    media_item_id  bigint NOT NULL,
    segment_index  integer NOT NULL,
    start_s        double precision NOT NULL,
    end_s          double precision NOT NULL,
    text           text NOT NULL,
    words          jsonb
);
CREATE INDEX transcript_segments_brand ON transcript_segments (brand);

CREATE TABLE analyses (
    id             bigint PRIMARY KEY,
    brand          text NOT NULL,
    media_item_id  bigint NOT NULL,
    frame_id       bigint,
    method         text NOT NULL,
    version        text,
    provider       text,
    model          text,
    output         jsonb NOT NULL,
    cost_usd       double precision,
    cached         boolean
);
CREATE INDEX analyses_brand ON analyses (brand);

CREATE TABLE brand_summaries (
    brand             text PRIMARY KEY,
    items             integer NOT NULL,
    summary           jsonb,
    summary_error     text,
    duplicate_groups  jsonb NOT NULL,
    outliers          jsonb NOT NULL,
    method            text,
    version           text,
    provider          text,
    model             text,
    cost_usd          double precision
);

CREATE TABLE vectors (
    id             bigint PRIMARY KEY,
    brand          text NOT NULL,
    media_item_id  bigint NOT NULL,
    frame_id       bigint,
    segment_id     bigint,
    kind           text NOT NULL CHECK (kind IN ('image', 'text', 'transcript')),
    space          text NOT NULL,
    dim            integer NOT NULL CHECK (dim > 0),
    method         text NOT NULL,
    provider       text,
    model          text,
    version        text,
    t_s            double precision,
    t_end_s        double precision,
    text           text
);
CREATE INDEX vectors_brand_space ON vectors (brand, space);

CREATE TABLE vector_indexes (
    brand        text NOT NULL,
    space        text NOT NULL,
    version      bigint NOT NULL,
    storage_key  text NOT NULL,
    dim          integer NOT NULL,
    vectors      integer NOT NULL,
    embedders    jsonb NOT NULL,
    index_kind   text,
    written_at   timestamptz,
    PRIMARY KEY (brand, space)
);

CREATE TABLE global_indexes (
    space           text PRIMARY KEY,
    version         bigint NOT NULL,
    storage_key     text NOT NULL,
    dim             integer NOT NULL,
    vectors         integer NOT NULL,
    index_kind      text NOT NULL,
    brand_versions  jsonb NOT NULL,
    built_at        timestamptz NOT NULL DEFAULT now()
);
"""

# Audio-only ads (radio and podcast spots) are items too; frames may belong to an
# animated image; the columns that explain an item's displayed size and duration.
_V2 = """
ALTER TABLE media_items DROP CONSTRAINT media_items_media_type_check;
ALTER TABLE media_items ADD CONSTRAINT media_items_media_type_check CHECK (media_type IN ('image', 'video', 'audio'));
ALTER TABLE media_items ADD COLUMN animated boolean, ADD COLUMN frame_count integer,
    ADD COLUMN rotation integer, ADD COLUMN codec text;
"""

# What a caption is based on (``model``: a vision model looked; ``measured``: built from local
# measurements, never a description), and the words of every embedded text for full-text search:
# English stemming so "sales" finds "SALE"; generated, so every writer fills it the same way.
_V3 = """
ALTER TABLE media_items ADD COLUMN caption_basis text;
ALTER TABLE frames ADD COLUMN caption_basis text;
ALTER TABLE vectors ADD COLUMN text_search tsvector
    GENERATED ALWAYS AS (to_tsvector('english', coalesce(text, ''))) STORED;
CREATE INDEX vectors_text_search ON vectors USING gin (text_search);
"""

# Methods plugged into the pipeline: brand-level methods beside the summary (one row each), the
# method whose ``search_field`` a text vector embeds, and each item's failed steps (why it is partial).
_V4 = """
CREATE TABLE brand_analyses (
    brand     text NOT NULL,
    position  integer NOT NULL,
    method    text NOT NULL,
    version   text,
    provider  text,
    model     text,
    output    jsonb,
    error     text,
    cost_usd  double precision,
    cached    boolean,
    PRIMARY KEY (brand, method)
);
ALTER TABLE vectors ADD COLUMN source text;
ALTER TABLE media_items ADD COLUMN failures jsonb;
"""

#: (version, description, DDL), applied in order; never edit a released entry, append a new one.
MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (1, "catalog tables, vector ids and index versions", _V1),
    (2, "audio items; animated, frame_count, rotation and codec of media items", _V2),
    (3, "caption basis of items and frames; full-text search over embedded texts", _V3),
    (4, "brand-level analyses of plugged methods; the source method of text vectors; items' failed steps", _V4),
)


def ensure_schema(conn: psycopg.Connection) -> int:
    """Create or migrate the catalog schema to ``SCHEMA_VERSION``; returns it.

    Call it outside a transaction: it commits its own. Raises
    :class:`CatalogSchemaError` when the database is newer than this code or a
    migration fails (nothing is half-applied).
    """
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                " version integer PRIMARY KEY, description text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            current = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
            if current > SCHEMA_VERSION:
                raise CatalogSchemaError(
                    f"the catalog database is at schema version {current}, newer than this code "
                    f"({SCHEMA_VERSION}): upgrade ad-assets before using this database"
                )
            for version, description, ddl in MIGRATIONS:
                if version > current:
                    conn.execute(ddl)  # type: ignore[arg-type]  # a constant, several statements
                    conn.execute(
                        "INSERT INTO schema_version (version, description) VALUES (%s, %s)", (version, description)
                    )
    except psycopg.Error as exc:
        raise CatalogSchemaError(f"could not create or migrate the catalog schema: {str(exc).strip()}") from exc
    return SCHEMA_VERSION


def schema_version(conn: psycopg.Connection) -> int:
    """The database's schema version; 0 when the catalog was never created (nothing is changed)."""
    exists = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()[0]
    if not exists:
        return 0
    return int(conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0])
