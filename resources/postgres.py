"""Where the catalog database is: a configured URL, or an embedded PostgreSQL.

With no ``AD_ASSETS_DATABASE_URL`` the platform runs its own PostgreSQL 16 from
the ``pgserver`` wheel, with its data under ``data_dir`` and a Unix socket
(no TCP port is opened). No Dagster import here; the Dagster wrapper is
``resources.dagster_resources.PostgresResource``.

Lifetime of the embedded server (pgserver 0.1.4, ``cleanup_mode="stop"``):
each process that calls :func:`resolve_database_url` for a directory registers
its pid in ``<data_dir>/.handle_pids.json`` under an inter-process lock; the
first one starts the server, the others reuse it. When a process exits (atexit)
it removes its pid, and the last one stops the server. So the server lives as
long as any CLI, Dagster run or step process is using it, and no server is left
behind after a clean exit. A process killed with SIGKILL never removes its pid,
so the server then stays up until the directory is next used and released by
everyone (as ``cleanup_mode=None`` would do always); that is harmless, and
``stop_embedded`` or ``pg_ctl stop`` ends it.

As root, pgserver runs PostgreSQL as a system user ``pgserver`` (created with
``useradd`` on first use), chowns ``data_dir`` to it and adds o+rx to the
directories above ``data_dir``, because PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import subprocess
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

if TYPE_CHECKING:
    from pgserver import PostgresServer

CONNECT_TIMEOUT_S = 10
APPLICATION_NAME = "ad-assets"

_lock = threading.Lock()


class DatabaseError(Exception):
    """The catalog database could not be reached or started."""


class EmbeddedDatabaseError(DatabaseError):
    """The embedded PostgreSQL (pgserver) could not start."""


class DatabaseConnectionError(DatabaseError):
    """A connection to the database failed; the message shows the URL without its password."""


def _pgserver() -> Any:
    # pgserver asks platformdirs for a runtime dir at import time, which warns
    # when XDG_RUNTIME_DIR is unset (containers, CI): noise for our users.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import pgserver

    return pgserver


def _server(data_dir: Path) -> PostgresServer:
    pgserver = _pgserver()
    data_dir = Path(data_dir).expanduser().resolve()
    try:
        data_dir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EmbeddedDatabaseError(f"cannot create {data_dir.parent} for the embedded PostgreSQL: {exc}") from exc
    with _lock:
        try:
            return pgserver.get_server(data_dir, cleanup_mode="stop")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError, AssertionError) as exc:
            log = data_dir / "log"
            raise EmbeddedDatabaseError(
                f"the embedded PostgreSQL under {data_dir} did not start ({exc}); its log is {log}. "
                "Set AD_ASSETS_DATABASE_URL to use another PostgreSQL instead"
            ) from exc


def embedded_database_url(data_dir: Path) -> str:
    """Start (or reuse) the embedded PostgreSQL under ``data_dir``; return its socket URI."""
    return _server(data_dir).get_uri()


def resolve_database_url(database_url: str | None, data_dir: Path) -> str:
    """Return ``database_url`` if set, else the URI of the embedded server under ``data_dir``.

    The embedded server is started on first use and shared by every process
    that asks for the same ``data_dir``; see the module docstring for when it
    stops. The URI (``postgresql://postgres:@/postgres?host=<socket dir>``) works
    with psycopg 3 and ``psql``.
    """
    if database_url and database_url.strip():
        return database_url
    return embedded_database_url(data_dir)


def stop_embedded(data_dir: Path) -> None:
    """Release this process's use of the embedded server under ``data_dir``.

    The server stops if no other live process registered for it; otherwise it
    keeps running for them. Does nothing if this process never started it.
    """
    pgserver = _pgserver()
    data_dir = Path(data_dir).expanduser().resolve()
    with _lock:
        server = pgserver.PostgresServer._instances.get(data_dir)
        if server is not None:
            server.cleanup()


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and logs)."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "<unparsable database URL>"
    if params.get("password"):
        params["password"] = "***"
    return make_conninfo(**params)


def connect(url: str) -> psycopg.Connection:
    """Open a psycopg 3 connection (autocommit off, bounded connect time, tagged ``ad-assets``)."""
    try:
        return psycopg.connect(
            url,
            autocommit=False,
            connect_timeout=CONNECT_TIMEOUT_S,
            application_name=APPLICATION_NAME,
        )
    except psycopg.Error as exc:
        raise DatabaseConnectionError(
            f"cannot connect to PostgreSQL at {redact_url(url)}: {str(exc).strip()}. "
            "Check AD_ASSETS_DATABASE_URL, or unset it to use the embedded server"
        ) from exc
