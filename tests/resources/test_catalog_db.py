"""The commit is where a brand's results become durable: a half-applied commit,
a second copy of a brand's rows, or an id handed out twice would corrupt every
later search. So ``commit_brand`` runs here against a real PostgreSQL
(pgserver), with faults injected in the middle of the COPY, rejected by the
server mid-stream, and after the COPY, and each time the previously committed
state must come back byte for byte."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import psycopg
import pytest

from resources.brand_catalog import BrandCatalog, FrameRow, VectorRow
from resources.catalog_db import BRAND_TABLES, commit_brand, committed_brand, total_ids
from resources.catalog_errors import CatalogDataError, CatalogSchemaError, CommitError
from resources.catalog_schema import ID_LOCK_KEY, SCHEMA_VERSION, ensure_schema, schema_version
from resources.postgres import connect
from tests.support.catalog_factory import LEXICAL, VISUAL, sha_of, synthetic_catalog

TABLES = ("brands", *BRAND_TABLES)


def snapshot(conn: psycopg.Connection, brand: str) -> dict[str, list[tuple]]:
    """Every row of the brand, every table, in a stable order."""
    state = {}
    for table in TABLES:
        rows = conn.execute(f"SELECT * FROM {table} WHERE brand = %s", (brand,)).fetchall()  # type: ignore[arg-type]
        state[table] = sorted(rows, key=repr)
    conn.rollback()
    return state


def counts(conn: psycopg.Connection, brand: str) -> dict[str, int]:
    query = "SELECT count(*) FROM {} WHERE brand = %s"
    found = {t: conn.execute(query.format(t), (brand,)).fetchone()[0] for t in TABLES}  # type: ignore[arg-type]
    conn.rollback()
    return found


def test_schema_is_created_once_and_its_version_recorded(database_url):
    with connect(database_url) as c:
        assert schema_version(c) == 0
        assert ensure_schema(c) == SCHEMA_VERSION
        assert ensure_schema(c) == SCHEMA_VERSION  # a second run applies nothing
        rows = c.execute("SELECT version FROM schema_version").fetchall()
        tables = {r[0] for r in c.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert rows == [(v,) for v in range(1, SCHEMA_VERSION + 1)]  # each migration once, in order
    assert set(TABLES) | {"schema_version", "global_indexes"} <= tables


def test_a_version_1_catalog_migrates_keeping_its_rows_and_then_takes_audio_and_animations(database_url):
    """Databases created before audio items and animated images existed are migrated in place."""
    from dataclasses import replace

    from resources.catalog_schema import MIGRATIONS

    with connect(database_url) as c:
        with c.transaction():  # build a version-1 database as the earlier release did
            c.execute("CREATE TABLE schema_version (version integer PRIMARY KEY, description text NOT NULL,"
                      " applied_at timestamptz NOT NULL DEFAULT now())")  # fmt: skip
            c.execute(MIGRATIONS[0][2])
            c.execute("INSERT INTO schema_version (version, description) VALUES (1, 'v1')")
        c.execute("INSERT INTO media_items (id, brand, sha256, media_type, source_url, urls, storage_key, storage_uri,"
                  " status, frames_sampled, frames_kept) VALUES (nextval('catalog_ids'), 'old', 'aa', 'image', 'u', '{u}',"
                  " 'k', 'k', 'analysed', 0, 0)")  # fmt: skip
        c.commit()
        assert ensure_schema(c) == SCHEMA_VERSION
        assert c.execute("SELECT media_type, animated FROM media_items WHERE brand = 'old'").fetchall() == [("image", None)]
        c.rollback()

        catalog = synthetic_catalog("sounds", images=1, videos=1)
        video = next(m for m in catalog.media_items if m.media_type == "video")
        image = next(m for m in catalog.media_items if m.media_type == "image")
        items = tuple(
            replace(video, media_type="audio", width=None, height=None, codec="aac") if m is video
            else replace(m, animated=True, frame_count=3, codec="gif") if m is image
            else m
            for m in catalog.media_items
        )  # fmt: skip
        # The video's frames now belong to the animated image; the audio item keeps its transcript segments.
        frames = tuple(replace(f, sha256=image.sha256) for f in catalog.frames)
        vectors = tuple(replace(v, sha256=image.sha256) if v.frame_index is not None else v for v in catalog.vectors)
        analyses = tuple(replace(a, sha256=image.sha256) if a.frame_index is not None else a for a in catalog.analyses)
        commit_brand(c, replace(catalog, media_items=items, frames=frames, vectors=vectors, analyses=analyses))
        got = c.execute("SELECT media_type, animated, frame_count, codec FROM media_items WHERE brand = 'sounds'"
                        " ORDER BY media_type").fetchall()  # fmt: skip
        assert got == [("audio", None, None, "aac"), ("image", True, 3, "gif")]
        assert c.execute("SELECT count(*) FROM transcript_segments WHERE brand = 'sounds'").fetchone()[0] == 2
        assert c.execute("SELECT count(*) FROM frames WHERE brand = 'sounds'").fetchone()[0] == 3


def test_frames_of_a_still_image_are_refused():
    from dataclasses import replace

    catalog = synthetic_catalog("stills", images=1, videos=1)
    image = next(m for m in catalog.media_items if m.media_type == "image")
    frames = tuple(replace(f, sha256=image.sha256) for f in catalog.frames)
    with pytest.raises(CatalogDataError, match="not a video or an animated image"):
        replace(catalog, frames=frames)


def test_a_database_newer_than_the_code_is_refused(conn):
    conn.execute("INSERT INTO schema_version (version, description) VALUES (%s, 'from the future')", (SCHEMA_VERSION + 1,))
    conn.commit()
    with pytest.raises(CatalogSchemaError, match="newer than this code"):
        ensure_schema(conn)


def test_commit_writes_every_table_with_references_resolved(conn):
    catalog = synthetic_catalog("acme", images=2, videos=1, frames_per_video=3, segments_per_video=2)

    result = commit_brand(conn, catalog)

    assert result.changed and result.version == 1
    assert counts(conn, "acme") == {"brands": 1, "vectors": 12, "analyses": 6, "transcript_segments": 2, "frames": 3,
                                    "media_items": 3, "brand_summaries": 1, "brand_analyses": 0, "vector_indexes": 2}  # fmt: skip
    frame = conn.execute(
        "SELECT m.sha256, f.t_s, f.ocr_text FROM vectors v JOIN frames f ON f.id = v.frame_id"
        " JOIN media_items m ON m.id = v.media_item_id WHERE v.kind = 'image' AND f.frame_index = 20"
    ).fetchone()
    assert frame == (sha_of("acme", "video0"), 2.0, "WORDS 2")
    segment = conn.execute(
        "SELECT s.start_s, s.end_s, s.text, v.t_end_s FROM vectors v JOIN transcript_segments s ON s.id = v.segment_id"
        " WHERE s.segment_index = 1"
    ).fetchone()
    assert segment == (1.5, 3.0, "segment 1", 3.0)
    indexes = conn.execute("SELECT space, version, vectors, storage_key FROM vector_indexes ORDER BY space").fetchall()
    assert indexes == [(LEXICAL, 1, 7, "indexes/test-lexical-v1/brands/acme.1.faiss"),
                       (VISUAL, 1, 5, "indexes/test-visual-v1/brands/acme.1.faiss")]  # fmt: skip


def test_vector_ids_are_one_block_in_catalog_order(conn):
    catalog = synthetic_catalog("acme")

    result = commit_brand(conn, catalog)

    rows = conn.execute("SELECT id, kind, coalesce(text, '') FROM vectors ORDER BY id").fetchall()
    assert [r[0] for r in rows] == result.vector_ids.tolist()
    assert [(r[1], r[2]) for r in rows] == [(v.kind, v.text or "") for v in catalog.vectors]
    all_ids = [r[0] for t in ("media_items", "frames", "transcript_segments", "analyses", "vectors")
               for r in conn.execute(f"SELECT id FROM {t}")]  # type: ignore[arg-type]  # fmt: skip
    assert sorted(all_ids) == list(range(min(all_ids), min(all_ids) + total_ids(catalog)))


def test_recommitting_the_same_catalog_changes_nothing(conn):
    catalog = synthetic_catalog("acme")
    first = commit_brand(conn, catalog)
    before = snapshot(conn, "acme")

    again = commit_brand(conn, synthetic_catalog("acme"))

    assert not again.changed and again.version == first.version == 1
    assert again.vector_ids.tolist() == first.vector_ids.tolist()
    assert snapshot(conn, "acme") == before


def test_a_rerun_whose_results_came_from_the_cache_changes_nothing(conn):
    """The first re-run of a brand took its brand-level results from the result cache (``cached`` True)
    and committed again: a new version and every id renumbered, though nothing had changed."""
    catalog = synthetic_catalog("acme")
    cycle = {"method": "offer_mix", "version": "1", "provider": "fake", "model": "m", "output": {"items": 3},
             "error": None, "cost_usd": 0.0, "cached": False}  # fmt: skip
    fresh = dataclasses.replace(catalog, summary=dataclasses.replace(catalog.summary, cycles=(cycle,)))
    first = commit_brand(conn, fresh)
    before = snapshot(conn, "acme")

    from_cache = dataclasses.replace(
        fresh,
        analyses=tuple(dataclasses.replace(a, cached=True) for a in fresh.analyses),
        summary=dataclasses.replace(fresh.summary, cycles=({**cycle, "cached": True},)),
    )
    again = commit_brand(conn, from_cache)

    assert not again.changed and again.version == first.version == 1
    assert snapshot(conn, "acme") == before
    changed = dataclasses.replace(from_cache, summary=dataclasses.replace(
        fresh.summary, cycles=({**cycle, "output": {"items": 4}},)))  # fmt: skip
    assert commit_brand(conn, changed).changed  # an output that differs still commits


def test_a_forced_recommit_replaces_the_rows_with_new_ids_and_version(conn):
    catalog = synthetic_catalog("acme")
    first = commit_brand(conn, catalog)

    forced = commit_brand(conn, catalog, force=True)

    assert forced.changed and forced.version == 2
    assert set(forced.vector_ids.tolist()).isdisjoint(first.vector_ids.tolist())  # ids are never reused
    assert counts(conn, "acme")["vectors"] == len(catalog.vectors)


def test_a_changed_catalog_replaces_that_brand_only(conn):
    commit_brand(conn, synthetic_catalog("acme", images=3))
    commit_brand(conn, synthetic_catalog("other", images=1))
    other = snapshot(conn, "other")

    result = commit_brand(conn, synthetic_catalog("acme", images=1, videos=0, tag="-v2"))

    assert result.changed and result.version == 2
    assert counts(conn, "acme")["media_items"] == 1
    assert conn.execute("SELECT ocr_text FROM media_items WHERE brand = 'acme'").fetchall() == [("SALE 0-v2",)]
    assert snapshot(conn, "other") == other


def test_a_failure_injected_mid_copy_leaves_the_old_rows(conn, monkeypatch):
    commit_brand(conn, synthetic_catalog("acme", frames_per_video=20))
    before = snapshot(conn, "acme")
    new = synthetic_catalog("acme", frames_per_video=300, tag="-new")
    real_write_row = psycopg.Copy.write_row
    written = []

    def write_row_then_fail(self, row):
        written.append(row)
        if len(written) == 150:  # media_items (3 rows) went through; frames are streaming
            raise ConnectionResetError("injected: network dropped mid-COPY")
        return real_write_row(self, row)

    monkeypatch.setattr(psycopg.Copy, "write_row", write_row_then_fail)
    with pytest.raises(CommitError, match="rolled back.*intact.*injected"):
        commit_brand(conn, new)
    monkeypatch.undo()

    assert len(written) == 150
    assert snapshot(conn, "acme") == before
    assert commit_brand(conn, new).version == 2  # the connection and the id lock are usable again


def test_a_row_the_server_rejects_mid_copy_rolls_everything_back(conn):
    commit_brand(conn, synthetic_catalog("acme"))
    before = snapshot(conn, "acme")
    good = synthetic_catalog("acme", frames_per_video=200, tag="-new")
    sha = sha_of("acme", "video0")
    bad_frames = list(good.frames)
    bad_frames[120] = FrameRow(sha, bad_frames[120].frame_index, -1.0)  # violates CHECK (t_s >= 0)
    bad = BrandCatalog("acme", good.media_items, tuple(bad_frames), good.segments, good.analyses, good.summary,
                       good.vectors)  # fmt: skip

    with pytest.raises(CommitError, match="frames_t_s_check"):
        commit_brand(conn, bad)

    assert snapshot(conn, "acme") == before


def test_a_failure_after_the_copy_rolls_back_too(conn, monkeypatch):
    import resources.catalog_db as catalog_db

    commit_brand(conn, synthetic_catalog("acme"))
    before = snapshot(conn, "acme")

    def broken_check(conn, brand):
        raise RuntimeError("injected: failure after every row was copied")

    monkeypatch.setattr(catalog_db, "_check_references", broken_check)
    with pytest.raises(CommitError, match="after every row was copied"):
        commit_brand(conn, synthetic_catalog("acme", tag="-new"))

    assert snapshot(conn, "acme") == before
    assert committed_brand(conn, "acme").index_version == 1


def test_a_server_error_while_reserving_ids_releases_the_id_lock(conn, database_url):
    commit_brand(conn, synthetic_catalog("acme"))
    last = conn.execute("SELECT last_value FROM catalog_ids").fetchone()[0]
    conn.execute(f"ALTER SEQUENCE catalog_ids MAXVALUE {last}")  # the next nextval() fails in the server
    conn.commit()

    with pytest.raises(CommitError, match="maximum value"):
        commit_brand(conn, synthetic_catalog("other"))

    with connect(database_url) as other:
        assert other.execute("SELECT pg_try_advisory_lock(%s)", (ID_LOCK_KEY,)).fetchone() == (True,)
    assert committed_brand(conn, "other") is None


def test_concurrent_commits_of_two_brands_get_disjoint_id_blocks(database_url):
    catalogs = [synthetic_catalog(f"brand{i}", frames_per_video=400, seed=i) for i in range(2)]
    results, errors = {}, []
    barrier = threading.Barrier(2)

    def run(catalog):
        try:
            with connect(database_url) as c:
                ensure_schema(c)
                barrier.wait()
                results[catalog.brand] = commit_brand(c, catalog)
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in catalogs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert not errors
    blocks = [set(r.vector_ids.tolist()) for r in results.values()]
    assert blocks[0].isdisjoint(blocks[1])
    for r in results.values():
        ids = r.vector_ids
        assert (np.diff(ids) == 1).all()


def _vector(sha: str, kind: str = "image", space: str = VISUAL, dim: int = 4, **kw) -> VectorRow:
    return VectorRow(sha, kind, space, "embed_image", np.ones(dim, dtype=np.float32), **kw)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: {"brand": "Not A Key"}, "invalid brand key"),
        (lambda c: {"media_items": c.media_items + c.media_items[:1]}, "appears twice"),
        (lambda c: {"frames": c.frames + (FrameRow(sha_of("acme", "image0"), 5, 1.0),)}, "not a video"),
        (lambda c: {"vectors": c.vectors + (_vector(sha_of("acme", "nope")),)}, "unknown media item"),
        (lambda c: {"vectors": c.vectors + (_vector(sha_of("acme", "image0"), dim=3),)}, "mixes dimensions"),
        (lambda c: {"vectors": c.vectors + (_vector(sha_of("acme", "video0"), "transcript", LEXICAL, 4,
                                                    segment_index=9),)}, "segment 9"),  # fmt: skip
    ],
    ids=["bad-brand", "duplicate-item", "frame-of-an-image", "dangling-vector", "mixed-dims", "unknown-segment"],
)
def test_an_inconsistent_catalog_is_refused_before_any_database_work(change, message):
    catalog = synthetic_catalog("acme", dim=4)
    fields = {
        "brand": catalog.brand, "media_items": catalog.media_items, "frames": catalog.frames,
        "segments": catalog.segments, "analyses": catalog.analyses, "summary": catalog.summary,
        "vectors": catalog.vectors,
    }  # fmt: skip
    with pytest.raises(CatalogDataError, match=message):
        BrandCatalog(**(fields | change(catalog)))
