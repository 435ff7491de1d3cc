"""On a fresh machine the catalog lives in an embedded PostgreSQL that the CLI
and every Dagster process share. These tests run the real server (pgserver):
it starts under a temp dir, answers SQL, is reused by a second call and by a
second process, stops when its last user lets go, and leaves no postgres
process behind; an explicit URL is used untouched."""

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import psycopg
import pytest

from resources.dagster_resources import PostgresResource
from resources.postgres import (
    APPLICATION_NAME,
    DatabaseConnectionError,
    DatabaseError,
    connect,
    resolve_database_url,
    stop_embedded,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
STOP_DEADLINE_S = 10.0


def _postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postmaster.pid").read_text().splitlines()[0])


def _assert_stopped(data_dir: Path, pid: int) -> None:
    # The postmaster is re-parented to PID 1 once pg_ctl exits, and PID 1 may
    # reap it late: an exited process (zombie) counts as stopped.
    deadline = time.monotonic() + STOP_DEADLINE_S
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.02)
    pytest.fail(f"postgres {pid} for {data_dir} is still running {STOP_DEADLINE_S}s after stop")


@pytest.fixture(scope="module")
def embedded_dir(tmp_path_factory: pytest.TempPathFactory):
    """One embedded server for the module, stopped (and checked stopped) at the end."""
    data_dir = tmp_path_factory.mktemp("pg") / "data"
    yield data_dir
    if (data_dir / "postmaster.pid").exists():
        pid = _postmaster_pid(data_dir)
        stop_embedded(data_dir)
        _assert_stopped(data_dir, pid)


def test_embedded_server_starts_and_answers(embedded_dir):
    url = resolve_database_url(None, embedded_dir)

    with connect(url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert conn.execute("SHOW application_name").fetchone() == (APPLICATION_NAME,)
        assert conn.autocommit is False
    assert url.startswith("postgresql://")


def test_second_call_reuses_the_running_server(embedded_dir):
    first = resolve_database_url(None, embedded_dir)
    pid = _postmaster_pid(embedded_dir)

    assert resolve_database_url("", embedded_dir) == first
    assert _postmaster_pid(embedded_dir) == pid


def test_another_process_shares_the_server_and_leaves_it_running(embedded_dir):
    url = resolve_database_url(None, embedded_dir)
    with connect(url) as conn:
        started = conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0]
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from resources.postgres import connect, resolve_database_url
        url = resolve_database_url(None, Path({str(embedded_dir)!r}))
        with connect(url) as conn:
            print(conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0].isoformat())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == started.isoformat()
    with connect(url) as conn:  # the child's exit did not stop our server
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_postgres_resource_uses_the_embedded_server_or_the_given_url(embedded_dir):
    embedded = PostgresResource(data_dir=str(embedded_dir))
    with embedded.connect() as conn:
        conn.execute("CREATE TEMP TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (1)")
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)

    explicit = PostgresResource(database_url="postgresql://u@db.internal:5433/catalog", data_dir="/nonexistent")
    assert explicit.url() == "postgresql://u@db.internal:5433/catalog"


def test_explicit_url_is_passed_through_and_starts_nothing(tmp_path):
    url = "postgresql://reader:s3cret@db.example.com:5432/ads?sslmode=require"
    assert resolve_database_url(url, tmp_path / "pg") == url
    assert not (tmp_path / "pg").exists()


def test_connection_failure_is_typed_and_hides_the_password():
    with pytest.raises(DatabaseConnectionError) as excinfo:
        connect("postgresql://reader:s3cret@127.0.0.1:1/ads")
    message = str(excinfo.value)
    assert "s3cret" not in message and "***" in message and "127.0.0.1" in message
    assert isinstance(excinfo.value, DatabaseError)
    assert isinstance(excinfo.value.__cause__, psycopg.OperationalError)


def test_last_user_stopping_stops_the_server(tmp_path):
    data_dir = tmp_path / "pg"
    url = resolve_database_url(None, data_dir)
    pid = _postmaster_pid(data_dir)
    with connect(url) as conn:
        conn.execute("SELECT 1")

    stop_embedded(data_dir)

    _assert_stopped(data_dir, pid)
    # A later call in the same process brings it back up on the same data.
    with connect(resolve_database_url(None, data_dir)) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    stop_embedded(data_dir)
