"""The result cache in PostgreSQL: what every machine shares so no call is paid twice.

Why: with the SQLite cache a brand resumed on another machine pays again for
every call the first one made. These tests use a real (embedded) PostgreSQL:
two caches (two machines) see each other's results, concurrent writers of one
key both succeed, a dropped connection is a miss then reconnects, and a wrong
or unreachable URL is a clear error naming the setting, without its password.
"""

from __future__ import annotations

import psycopg
import pytest

from ai_methods.cache import CacheKey, PostgresResultCache, open_result_cache
from ai_methods.errors import ConfigurationError
from ai_methods.settings import AISettings
from ai_methods.usage import Usage

KEY = CacheKey("caption", "3", "bedrock", "claude", "ab" * 32)


def test_two_machines_share_results(module_database_url):
    a, b = PostgresResultCache(module_database_url), PostgresResultCache(module_database_url)
    try:
        assert b.get(KEY) is None
        a.put(KEY, {"text": "a latte"}, Usage(requests=1, input_tokens=10), 0.002, "claude-v1")
        hit = b.get(KEY)
        assert hit is not None and hit.output == {"text": "a latte"} and hit.cost_usd == 0.002 and hit.model == "claude-v1"
        assert hit.usage.input_tokens == 10
        b.put(KEY, {"text": "a latte"}, Usage(requests=1), 0.002, "claude-v1")  # the same key again: an upsert
        other_version = CacheKey(KEY.method, "4", KEY.provider, KEY.model, KEY.input_hash)
        assert a.get(other_version) is None  # a method's new version is a miss
        assert a.stats()["misses"] == 1 and b.stats() == {"hits": 1, "misses": 1, "errors": 0, "hit_rate": 0.5}
    finally:
        a.close()
        b.close()


def test_a_dropped_connection_is_a_miss_then_reconnects(module_database_url):
    cache = PostgresResultCache(module_database_url)
    try:
        cache.put(KEY, {"text": "x"}, Usage(requests=1), 0.0, "m")
        pid = cache._conn.info.backend_pid
        with psycopg.connect(module_database_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        assert cache.get(KEY) is None and cache.errors == 1  # the call goes on, uncached
        assert cache.get(KEY) is not None  # a new connection
    finally:
        cache.close()


def test_unreachable_cache_is_a_clear_error_without_the_password():
    with pytest.raises(ConfigurationError, match="AD_ASSETS_AI_CACHE_URL") as raised:
        open_result_cache("postgresql://ai:s3cret@127.0.0.1:1/cache?connect_timeout=2", None)
    assert "s3cret" not in str(raised.value)


def test_the_cache_url_must_be_postgres():
    with pytest.raises(ConfigurationError, match="AD_ASSETS_AI_CACHE_URL"):
        AISettings.from_env({"AD_ASSETS_AI_CACHE_URL": "sqlite:///tmp/x.db"})
    assert AISettings.from_env({"AD_ASSETS_AI_CACHE_URL": "postgresql://h/db"}).cache_url == "postgresql://h/db"
