"""The durable result cache: one SQLite file per host, or one PostgreSQL table shared by every machine.

Keyed by (method, version, provider, model, input hash), so bumping a method's
version or changing a model is a miss, and a re-run re-calls only what changed.
SQLite (the default): WAL mode lets many readers and one writer work at once
across the host's processes. PostgreSQL (``AD_ASSETS_AI_CACHE_URL``): every
machine reads what any machine paid for, so a brand resumed elsewhere pays no
call twice. Writes are single-row upserts either way, so two processes
computing the same key both succeed. A cache that cannot be read or written is
a miss or a skipped write (logged and counted), never a failed call.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ai_methods.usage import Usage

log = logging.getLogger(__name__)

# (column, SQLite type, PostgreSQL type); the first five are the key.
_COLUMNS = (
    ("method", "TEXT", "TEXT"),
    ("version", "TEXT", "TEXT"),
    ("provider", "TEXT", "TEXT"),
    ("model", "TEXT", "TEXT"),
    ("input_hash", "TEXT", "TEXT"),
    ("output", "TEXT", "TEXT"),
    ("usage", "TEXT", "TEXT"),
    ("cost_usd", "REAL", "DOUBLE PRECISION"),
    ("result_model", "TEXT", "TEXT"),
    ("created_at", "REAL", "DOUBLE PRECISION"),
)
_KEY_COLUMNS = ", ".join(name for name, _, _ in _COLUMNS[:5])


def _schema(table: str, dialect: int, suffix: str = "") -> str:
    columns = ",\n".join(f"    {column[0]} {column[dialect]} NOT NULL" for column in _COLUMNS)
    return f"CREATE TABLE IF NOT EXISTS {table} (\n{columns},\n    PRIMARY KEY ({_KEY_COLUMNS})\n){suffix}"


_SCHEMA = _schema("results", 1, " WITHOUT ROWID")
_PG_SCHEMA = _schema("ai_results", 2)


@dataclass(frozen=True)
class CacheKey:
    method: str
    version: str
    provider: str
    model: str
    input_hash: str


@dataclass(frozen=True)
class CachedResult:
    """What a miss stored: the validated output and what computing it consumed."""

    output: dict[str, Any]
    usage: Usage
    cost_usd: float
    model: str
    created_at: float


class _Counters:
    """Hit/miss/error counters of one process's lookups."""

    hits: int
    misses: int
    errors: int

    def stats(self) -> dict[str, Any]:
        """Counters of this process's lookups, for metadata."""
        total = self.hits + self.misses
        return {
            "hits": self.hits,
            "misses": self.misses,
            "errors": self.errors,
            "hit_rate": round(self.hits / total, 4) if total else None,
        }


def _payload(key: CacheKey, output: dict[str, Any], usage: Usage, cost_usd: float, model: str) -> tuple:
    return (
        key.method,
        key.version,
        key.provider,
        key.model,
        key.input_hash,
        json.dumps(output, separators=(",", ":"), ensure_ascii=False),
        json.dumps(usage.as_dict()),
        cost_usd,
        model,
        time.time(),
    )


def _result(row: tuple) -> CachedResult:
    output, usage, cost, model, created = row
    return CachedResult(json.loads(output), Usage(**json.loads(usage)), cost, model, created)


class ResultCache(_Counters):
    """SQLite-backed cache with hit/miss counters. Safe across threads and processes."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode is durable against process crashes; a power cut may lose the last commits (recomputed).
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._conn.execute(_SCHEMA)
        self.hits = 0
        self.misses = 0
        self.errors = 0

    def get(self, key: CacheKey) -> CachedResult | None:
        """The stored result for ``key``, or ``None``. A cache that cannot be read is a miss, not a failure."""
        with self._lock:
            try:
                row = self._conn.execute(
                    "SELECT output, usage, cost_usd, result_model, created_at FROM results"
                    " WHERE method=? AND version=? AND provider=? AND model=? AND input_hash=?",
                    (key.method, key.version, key.provider, key.model, key.input_hash),
                ).fetchone()
            except sqlite3.Error as exc:
                self.errors += 1
                log.warning("AI result cache %s unreadable, treating as a miss: %s", self.path, exc)
                row = None
            if row is None:
                self.misses += 1
                return None
            self.hits += 1
        return _result(row)

    def put(self, key: CacheKey, output: dict[str, Any], usage: Usage, cost_usd: float, model: str) -> None:
        """Store a computed result; a failed write is logged and counted, never raised."""
        payload = _payload(key, output, usage, cost_usd, model)
        with self._lock:
            try:
                self._conn.execute("INSERT OR REPLACE INTO results VALUES (?,?,?,?,?,?,?,?,?,?)", payload)
            except sqlite3.Error as exc:  # e.g. disk full or locked too long: the result is still returned
                self.errors += 1
                log.warning("AI result cache %s not written (%s); the result will be recomputed next time", self.path, exc)

    def count(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT count(*) FROM results").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._conn.close()


_PG_KEY = "method=%s AND version=%s AND provider=%s AND model=%s AND input_hash=%s"


class PostgresResultCache(_Counters):
    """The cache as the table ``ai_results`` of a PostgreSQL database every machine reaches.

    Same keys, semantics and counters as :class:`ResultCache`. One autocommit
    connection per process, used under a lock (calls are single-row, ~1 ms on
    a LAN); a dropped connection is reopened on the next lookup. ``url`` is a
    libpq URL (``postgresql://user:pass@host:5432/db``).
    """

    def __init__(self, url: str, *, connect_timeout_s: float = 10.0) -> None:
        self.url = url
        self.where = _redacted(url)
        self._timeout = connect_timeout_s
        self._lock = threading.Lock()
        self._conn: Any = None
        self.hits = 0
        self.misses = 0
        self.errors = 0
        with self._lock:
            self._connection().execute(_PG_SCHEMA)  # a wrong URL fails here, loudly, before any call is paid

    def _connection(self) -> Any:
        import psycopg

        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=max(1, int(self._timeout)))
        return self._conn

    def _failed(self, what: str, exc: Exception) -> None:
        self.errors += 1
        log.warning("AI result cache %s %s: %s", self.where, what, exc)
        if self._conn is not None and (self._conn.closed or self._conn.broken):
            self._conn = None

    def get(self, key: CacheKey) -> CachedResult | None:
        """The stored result for ``key``, or ``None``. A cache that cannot be read is a miss, not a failure."""
        import psycopg

        with self._lock:
            try:
                row = (
                    self._connection()
                    .execute(
                        f"SELECT output, usage, cost_usd, result_model, created_at FROM ai_results WHERE {_PG_KEY}",
                        (key.method, key.version, key.provider, key.model, key.input_hash),
                    )
                    .fetchone()
                )
            except psycopg.Error as exc:
                self._failed("unreadable, treating as a miss", exc)
                row = None
            if row is None:
                self.misses += 1
                return None
            self.hits += 1
        return _result(tuple(row))

    def put(self, key: CacheKey, output: dict[str, Any], usage: Usage, cost_usd: float, model: str) -> None:
        """Store a computed result; a failed write is logged and counted, never raised."""
        import psycopg

        with self._lock:
            try:
                self._connection().execute(
                    "INSERT INTO ai_results VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
                    f" ON CONFLICT ({_KEY_COLUMNS}) DO UPDATE SET"
                    " output=EXCLUDED.output, usage=EXCLUDED.usage, cost_usd=EXCLUDED.cost_usd,"
                    " result_model=EXCLUDED.result_model, created_at=EXCLUDED.created_at",
                    _payload(key, output, usage, cost_usd, model),
                )
            except psycopg.Error as exc:
                self._failed("not written; the result will be recomputed next time", exc)

    def count(self) -> int:
        with self._lock:
            return self._connection().execute("SELECT count(*) FROM ai_results").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _redacted(url: str) -> str:
    """``url`` without its password, for logs."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


def open_result_cache(cache_url: str | None, cache_path: Path) -> ResultCache | PostgresResultCache:
    """The cache the settings name: PostgreSQL at ``cache_url`` when set, else the SQLite file ``cache_path``.

    Raises ``ConfigurationError`` naming ``AD_ASSETS_AI_CACHE_URL`` when that
    database cannot be reached: a shared cache silently replaced by a local
    one would pay every call again on the next machine.
    """
    if not cache_url:
        return ResultCache(cache_path)
    import psycopg

    from ai_methods.errors import ConfigurationError

    try:
        return PostgresResultCache(cache_url)
    except psycopg.Error as exc:
        raise ConfigurationError(
            f"AD_ASSETS_AI_CACHE_URL={_redacted(cache_url)}: the shared AI result cache is unreachable ({exc})"
        ) from exc
