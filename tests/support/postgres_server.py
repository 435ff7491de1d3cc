"""A real PostgreSQL for the tests: one embedded server (pgserver) per session, a fresh database per test.

The server is the same embedded PostgreSQL the platform runs on a fresh
machine (``resources.postgres``), started once under a temp directory and
stopped at the end of the session. Each test that asks for ``database_url``
gets its own empty database (``module_database_url``: one per module, for
read-only tests sharing a costly setup), dropped afterwards, so tests never
see each other's rows and may run in any order.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from resources.postgres import resolve_database_url, stop_embedded

# A throwaway server: durability buys nothing here, and fsync on two shared cores costs seconds.
_TEST_SERVER_SETTINGS = ("fsync = off", "synchronous_commit = off", "full_page_writes = off")


def database_url_for(server_url: str, dbname: str) -> str:
    """``server_url`` pointing at database ``dbname`` instead."""
    params = conninfo_to_dict(server_url)
    params["dbname"] = dbname
    return make_conninfo(**params)


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """Create an empty database on the server, yield its URL, drop it afterwards."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield database_url_for(server_url, name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of the session's embedded PostgreSQL (its maintenance database)."""
    # Not under pytest's basetemp: as root, PostgreSQL runs as the ``pgserver`` user
    # and needs o+x on every parent directory, which pytest resets to 0700 on
    # ``pytest-of-<user>`` whenever another session starts.
    root = Path(tempfile.mkdtemp(prefix="ad-assets-pg-"))
    data_dir = root / "data"
    try:
        url = resolve_database_url(None, data_dir)
        with psycopg.connect(url, autocommit=True) as conn:
            for setting in _TEST_SERVER_SETTINGS:
                conn.execute(f"ALTER SYSTEM SET {setting}")  # type: ignore[arg-type]
            conn.execute("SELECT pg_reload_conf()")
        yield url
    finally:
        stop_embedded(data_dir)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def database_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database on the session's server, dropped after the test."""
    with fresh_database(postgres_server) as url:
        yield url


@pytest.fixture(scope="module")
def module_database_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database shared by one test module (for tests that only read it)."""
    with fresh_database(postgres_server) as url:
        yield url
