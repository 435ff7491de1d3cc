"""The durable result cache: one SQLite file, shared safely by every process on the host.

Keyed by (method, version, provider, model, input hash), so bumping a method's
version or changing a model is a miss, and a re-run re-calls only what changed.
WAL mode lets many readers and one writer work at once across processes; writes
are single-row upserts, so two processes computing the same key both succeed.
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

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    method      TEXT NOT NULL,
    version     TEXT NOT NULL,
    provider    TEXT NOT NULL,
    model       TEXT NOT NULL,
    input_hash  TEXT NOT NULL,
    output      TEXT NOT NULL,
    usage       TEXT NOT NULL,
    cost_usd    REAL NOT NULL,
    result_model TEXT NOT NULL,
    created_at  REAL NOT NULL,
    PRIMARY KEY (method, version, provider, model, input_hash)
) WITHOUT ROWID
"""


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


class ResultCache:
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
        output, usage, cost, model, created = row
        return CachedResult(json.loads(output), Usage(**json.loads(usage)), cost, model, created)

    def put(self, key: CacheKey, output: dict[str, Any], usage: Usage, cost_usd: float, model: str) -> None:
        """Store a computed result; a failed write is logged and counted, never raised."""
        payload = (
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
        with self._lock:
            try:
                self._conn.execute("INSERT OR REPLACE INTO results VALUES (?,?,?,?,?,?,?,?,?,?)", payload)
            except sqlite3.Error as exc:  # e.g. disk full or locked too long: the result is still returned
                self.errors += 1
                log.warning("AI result cache %s not written (%s); the result will be recomputed next time", self.path, exc)

    def count(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT count(*) FROM results").fetchone()[0]

    def stats(self) -> dict[str, Any]:
        """Counters of this process's lookups, for metadata."""
        total = self.hits + self.misses
        return {
            "hits": self.hits,
            "misses": self.misses,
            "errors": self.errors,
            "hit_rate": round(self.hits / total, 4) if total else None,
        }

    def close(self) -> None:
        with self._lock:
            self._conn.close()
