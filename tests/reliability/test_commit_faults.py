"""The Postgres connection dropped in the middle of a brand's commit.

Not an exception raised in our own code (``tests/resources/test_catalog_db.py``
injects those), but the server ending the session: another connection runs
``pg_terminate_backend`` on the committing backend at a chosen moment, as a
failover, an idle-session killer or an operator would. Whatever the moment,
the previously committed rows, version and index files must be intact, no lock
may be left behind, and publishing the same catalog again must finish the job.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest

import resources.catalog_db as catalog_db
import resources.catalog_publish as catalog_publish
from resources.catalog_db import BRAND_TABLES, committed_brand
from resources.catalog_errors import CommitError, IndexWriteError
from resources.catalog_publish import publish_brand, verify_brand
from resources.catalog_schema import ID_LOCK_KEY, ensure_schema
from resources.media_store import MediaStore
from resources.postgres import connect
from resources.vector_index import IndexFiles
from tests.support.catalog_factory import synthetic_catalog

TABLES = ("brands", *BRAND_TABLES)


def snapshot(url: str, brand: str) -> dict[str, list[tuple]]:
    """Every committed row of the brand, read on a fresh connection."""
    with connect(url) as conn:
        query = "SELECT * FROM {} WHERE brand = %s"
        return {t: sorted(conn.execute(query.format(t), (brand,)).fetchall(), key=repr) for t in TABLES}


def terminator(url: str, victim: psycopg.Connection) -> Callable[[], None]:
    """``kill()`` ends ``victim``'s server session from another connection, as an operator would."""
    pid = victim.info.backend_pid

    def kill() -> None:
        with psycopg.connect(url, autocommit=True) as admin:
            assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)

    return kill


def no_lock_left(url: str) -> bool:
    with connect(url) as conn:
        held = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()[0]
        free = conn.execute("SELECT pg_try_advisory_lock(%s)", (ID_LOCK_KEY,)).fetchone()[0]
        return held == 0 and free


@pytest.fixture
def files(tmp_path) -> IndexFiles:
    return IndexFiles(MediaStore.from_url(str(tmp_path / "store")))


@pytest.fixture
def committed(database_url, files):
    """The brand published once (version 1): the state every fault below must leave intact."""
    with connect(database_url) as conn:
        ensure_schema(conn)
        publish_brand(conn, files, synthetic_catalog("acme", frames_per_video=20))
    return snapshot(database_url, "acme"), sorted(files.store.list_keys_sync("indexes"))


NEW = dict(frames_per_video=400, tag="-v2")


def test_backend_killed_mid_copy_leaves_the_previous_commit(database_url, files, committed, monkeypatch, figures):
    before, index_files = committed
    real_write_row = psycopg.Copy.write_row
    rows_sent = []

    with connect(database_url) as conn:
        kill = terminator(database_url, conn)

        def write_row(self, row):
            rows_sent.append(row)
            if len(rows_sent) == 200:  # media_items went through; frames are streaming
                kill()
            return real_write_row(self, row)

        monkeypatch.setattr(psycopg.Copy, "write_row", write_row)
        with pytest.raises(CommitError, match="rolled back"):
            publish_brand(conn, files, synthetic_catalog("acme", **NEW))
        monkeypatch.undo()
        assert conn.closed or conn.broken

    assert snapshot(database_url, "acme") == before
    assert sorted(files.store.list_keys_sync("indexes")) == index_files, "no index file of the aborted version"
    assert no_lock_left(database_url)
    with connect(database_url) as conn:
        result = publish_brand(conn, files, synthetic_catalog("acme", **NEW))
        assert result.commit.changed and result.commit.version == 2
        assert verify_brand(conn, files, "acme").passed
    figures("pg_killed_mid_copy_rows_sent", len(rows_sent), "rows",
            "rows COPYed before the backend was killed; old commit intact")


def test_backend_killed_after_the_copy_before_commit_leaves_the_previous_commit(
    database_url, files, committed, monkeypatch
):
    before, index_files = committed
    real_check = catalog_db._check_references

    with connect(database_url) as conn:
        kill = terminator(database_url, conn)

        def killed_before_commit(conn_, brand):
            kill()
            return real_check(conn_, brand)

        monkeypatch.setattr(catalog_db, "_check_references", killed_before_commit)
        with pytest.raises(CommitError, match="intact"):
            publish_brand(conn, files, synthetic_catalog("acme", **NEW))
        monkeypatch.undo()

    assert snapshot(database_url, "acme") == before
    assert sorted(files.store.list_keys_sync("indexes")) == index_files
    assert no_lock_left(database_url)
    with connect(database_url) as conn:
        assert publish_brand(conn, files, synthetic_catalog("acme", **NEW)).commit.version == 2
        assert verify_brand(conn, files, "acme").passed


def test_backend_killed_after_commit_before_the_index_is_written_is_finished_by_a_rerun(
    database_url, files, committed, monkeypatch
):
    """The one window where Postgres is ahead of FAISS: the rows of version 2 are committed, the
    index file is not written. Readers must see it as "not written", and a re-run writes it
    without committing again."""
    real_commit = catalog_publish.commit_brand

    with connect(database_url) as conn:
        kill = terminator(database_url, conn)

        def commit_then_lose_the_connection(conn_, catalog, **kwargs):
            result = real_commit(conn_, catalog, **kwargs)
            kill()
            return result

        monkeypatch.setattr(catalog_publish, "commit_brand", commit_then_lose_the_connection)
        with pytest.raises(IndexWriteError, match="was committed .* re-run the brand") as lost:
            publish_brand(conn, files, synthetic_catalog("acme", **NEW))
        monkeypatch.undo()
    assert isinstance(lost.value.__cause__, psycopg.Error), repr(lost.value.__cause__)

    with connect(database_url) as conn:
        state = committed_brand(conn, "acme")
        assert state.index_version == 2
        assert not any(space.written for space in state.spaces)
        report = verify_brand(conn, files, "acme")
        assert not report.passed  # the new version's files are missing, and the check says so

        again = publish_brand(conn, files, synthetic_catalog("acme", **NEW))
        assert not again.commit.changed and again.commit.version == 2  # nothing committed twice
        assert set(again.indexes_written) == set(again.commit.index_keys)
        assert verify_brand(conn, files, "acme").passed
    assert no_lock_left(database_url)
