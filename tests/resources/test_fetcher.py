"""The downloader against a real HTTP server on loopback.

Why here and not with mocked httpx: what matters (retries that really hit the
server again, redirects re-checked per hop, bodies cut short on the wire, the
concurrency bounds as the server sees them, temp files never left behind)
only exists with real sockets. Every failure must come back as a result with
a stable cause, never as an exception.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import random
import socket
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import pytest

from resources.fetcher import (
    DONE_SUFFIX,
    TEMP_SUFFIX,
    Fetcher,
    FetchPolicy,
    FetchResult,
    parse_retry_after,
    pick_shard,
    retry_delay,
)
from tests.support.loopback_http import (
    Generated,
    LoopbackHTTPServer,
    Raw,
    Redirect,
    SlowBody,
    Static,
    Truncated,
    html,
    retry_after_then,
    status,
)

MiB = 2**20
# Fast retries so the suite stays quick; each test overrides what it exercises.
FAST = dict(backoff_base_s=0.01, backoff_cap_s=0.05, connect_timeout_s=2.0, read_timeout_s=2.0, total_timeout_s=10.0)


def _policy(server: LoopbackHTTPServer | None, **overrides) -> FetchPolicy:
    allow = (server.netloc,) if server is not None else ()
    return FetchPolicy(**{**FAST, "allow_hosts": allow, **overrides})


async def _fetch(url: str, work: Path, policy: FetchPolicy) -> FetchResult:
    async with Fetcher(policy, work) as fetcher:
        return await fetcher.fetch(url)


def _leftovers(work: Path) -> list[Path]:
    return sorted(work.glob(f"*{TEMP_SUFFIX}"))


@pytest.fixture
def work(tmp_path) -> Path:
    return tmp_path / "work"


@pytest.fixture
def server(loopback_http) -> LoopbackHTTPServer:
    return loopback_http


# -- success ------------------------------------------------------------------
async def test_download_streams_body_to_file_with_hash(server, work):
    body = bytes(range(256)) * 400  # 100 KiB, more than the sniffing head
    url = server.route("/ad.jpg", Static(body, "image/jpeg"))
    result = await _fetch(url, work, _policy(server))

    assert result.ok and result.cause is None and result.detail is None
    assert result.sha256 == hashlib.sha256(body).hexdigest()
    assert result.bytes == len(body)
    assert result.path is not None and result.path.suffix == DONE_SUFFIX and result.path.parent == work
    assert result.path.read_bytes() == body
    assert result.head == body[:4096]
    assert (result.content_type, result.http_status, result.attempts) == ("image/jpeg", 200, 1)
    assert result.url == result.final_url == url
    assert _leftovers(work) == []


async def test_body_larger_than_a_write_block_is_intact(server, work):
    url = server.route("/v.mp4", Generated(3 * MiB + 123))
    result = await _fetch(url, work, _policy(server))
    assert result.ok and result.bytes == 3 * MiB + 123
    assert result.sha256 == hashlib.sha256(result.path.read_bytes()).hexdigest()


async def test_html_page_is_fetched_as_is(server, work):
    """Whether it is media is the caller's call (it sniffs ``head``)."""
    url = server.route("/page", html("<html><body>not an ad</body></html>"))
    result = await _fetch(url, work, _policy(server))
    assert result.ok and result.head.startswith(b"<html>") and result.content_type.startswith("text/html")


# -- statuses and retries -----------------------------------------------------
async def test_404_is_final_without_retry(server, work):
    result = await _fetch(server.url("/missing"), work, _policy(server))
    assert (result.ok, result.cause, result.http_status, result.attempts) == (False, "http_404", 404, 1)
    assert server.hits["/missing"] == 1
    assert server.url("/missing") in result.detail
    assert result.path is None and result.sha256 is None


async def test_500_is_retried_until_max_attempts(server, work):
    url = server.route("/boom", status(500))
    result = await _fetch(url, work, _policy(server, max_attempts=3))
    assert (result.cause, result.attempts, result.http_status) == ("http_500", 3, 500)
    assert server.hits["/boom"] == 3
    assert "after 3 attempts" in result.detail


async def test_429_with_retry_after_then_ok(server, work):
    url = server.route("/busy", retry_after_then(Static(b"finally"), retry_after="1"))
    result = await _fetch(url, work, _policy(server, backoff_cap_s=5))
    assert result.ok and result.attempts == 2 and result.path.read_bytes() == b"finally"
    assert server.hits["/busy"] == 2
    # Backoff alone would have waited at most 0.01 s: the 1 s came from Retry-After.
    assert result.elapsed_ms >= 1000


async def test_retry_after_is_capped_by_backoff_cap(server, work):
    url = server.route("/later", retry_after_then(Static(b"ok"), retry_after="3600", code=503))
    result = await _fetch(url, work, _policy(server, backoff_cap_s=0.05))
    assert result.ok and result.attempts == 2


async def test_retry_that_would_outlive_the_budget_reports_the_real_cause(server, work):
    url = server.route("/later", retry_after_then(Static(b"ok"), retry_after="30", code=503))
    result = await _fetch(url, work, _policy(server, backoff_cap_s=30, total_timeout_s=2))
    assert (result.cause, result.attempts) == ("http_503", 1)


async def test_connection_refused_is_connect_error_after_retries(work):
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    policy = FetchPolicy(**{**FAST, "allow_hosts": (f"127.0.0.1:{port}",), "max_attempts": 2})
    result = await _fetch(f"http://127.0.0.1:{port}/x", work, policy)
    assert (result.cause, result.attempts) == ("connect_error", 2)


# -- redirects ----------------------------------------------------------------
async def test_redirect_chain_is_followed(server, work):
    server.route("/r1", Redirect("/r2", 301))  # relative
    server.route("/r2", Redirect("r3", 307))  # relative to the path
    server.route("/r3", Redirect(server.url("/final"), 308))  # absolute
    server.route("/final", Static(b"media"))
    result = await _fetch(server.url("/r1"), work, _policy(server))
    assert result.ok and result.path.read_bytes() == b"media"
    assert result.url == server.url("/r1") and result.final_url == server.url("/final")
    assert [server.hits[p] for p in ("/r1", "/r2", "/r3", "/final")] == [1, 1, 1, 1]


async def test_redirect_to_another_allowed_host_and_port(server, work):
    with LoopbackHTTPServer() as other:
        other.route("/there", Static(b"elsewhere"))
        url = server.route("/go", Redirect(other.url("/there", host="localhost"), 303))
        policy = _policy(server, allow_hosts=(server.netloc, f"localhost:{other.port}"))
        result = await _fetch(url, work, policy)
        assert result.ok and result.path.read_bytes() == b"elsewhere"
        assert result.final_url == other.url("/there", host="localhost")


async def test_redirect_loop_is_too_many_redirects(server, work):
    url = server.route("/loop", Redirect("/loop"))
    result = await _fetch(url, work, _policy(server, max_redirects=3))
    assert (result.cause, result.attempts) == ("too_many_redirects", 1)
    assert server.hits["/loop"] == 4  # the first request and 3 redirects


async def test_redirect_to_unlisted_loopback_is_blocked_before_connecting(server, work):
    with LoopbackHTTPServer() as inner:
        inner.route("/admin", Static(b"internal"))
        url = server.route("/hop", Redirect(inner.url("/admin")))
        result = await _fetch(url, work, _policy(server))  # only `server` is allowed
        assert (result.cause, result.attempts) == ("blocked_address", 1)
        assert result.final_url == inner.url("/admin")
        assert inner.connections == 0 and inner.hits["/admin"] == 0


@pytest.mark.parametrize(
    "location",
    ["ftp://example.test/a.png", "file:///etc/passwd", "javascript:alert(1)", "http:no-host", ""],
)
async def test_redirect_to_non_http_is_bad_redirect(server, work, location):
    url = server.route("/odd", Redirect(location))
    result = await _fetch(url, work, _policy(server))
    assert result.cause == "bad_redirect", result.detail


# -- time ---------------------------------------------------------------------
async def test_slow_headers_time_out(server, work):
    url = server.route("/slow", Static(b"late", delay_s=5))
    result = await _fetch(url, work, _policy(server, read_timeout_s=0.2, max_attempts=1))
    assert result.cause == "timeout" and result.elapsed_ms < 5000


async def test_endless_trickle_hits_the_total_budget(server, work):
    url = server.route("/trickle", SlowBody(chunk=b"x" * 256, interval_s=0.05))
    result = await _fetch(url, work, _policy(server, read_timeout_s=5, total_timeout_s=0.5))
    assert result.cause == "timeout" and "0.5 s" in result.detail
    assert _leftovers(work) == []


# -- broken and oversized bodies ----------------------------------------------
async def test_truncated_body_is_retried_then_reported(server, work):
    url = server.route("/cut", Truncated(declared=10_000, body=b"x" * 100))
    result = await _fetch(url, work, _policy(server, max_attempts=2))
    assert (result.cause, result.attempts) == ("truncated", 2)
    assert server.hits["/cut"] == 2
    assert _leftovers(work) == []


async def test_too_large_by_content_length_is_refused_before_reading(server, work):
    url = server.route("/huge", Generated(2**30))  # 1 GiB, declared
    result = await _fetch(url, work, _policy(server, max_bytes=MiB))
    assert (result.cause, result.attempts) == ("too_large", 1)
    assert "declares 1073741824 bytes" in result.detail
    assert list(work.iterdir()) == []


async def test_too_large_while_streaming_stops_at_the_cap(server, work):
    url = server.route("/chunked", Generated(5 * MiB, chunked=True))  # no Content-Length
    result = await _fetch(url, work, _policy(server, max_bytes=2 * MiB))
    assert (result.cause, result.attempts) == ("too_large", 1)
    assert list(work.iterdir()) == []


async def test_gzip_body_is_stored_decoded(server, work):
    body = b"<svg>" + b"a" * 10_000 + b"</svg>"
    url = server.route("/z", Static(gzip.compress(body), "image/svg+xml", headers=(("Content-Encoding", "gzip"),)))
    result = await _fetch(url, work, _policy(server))
    assert result.ok and result.path.read_bytes() == body
    assert result.sha256 == hashlib.sha256(body).hexdigest()


async def test_gzip_bomb_is_capped_on_decoded_bytes(server, work):
    bomb = gzip.compress(b"\0" * (16 * MiB), compresslevel=1)  # ~70 KiB on the wire
    url = server.route("/bomb", Static(bomb, headers=(("Content-Encoding", "gzip"),)))
    result = await _fetch(url, work, _policy(server, max_bytes=MiB))
    assert result.cause == "too_large"
    assert list(work.iterdir()) == []


async def test_encoding_we_did_not_ask_for_is_a_protocol_error(server, work):
    url = server.route("/br", Static(b"\x8b\x02\x80", headers=(("Content-Encoding", "br"),)))
    result = await _fetch(url, work, _policy(server))
    assert (result.cause, result.attempts) == ("protocol_error", 1)


async def test_garbage_instead_of_http_is_a_protocol_error(server, work):
    url = server.route("/garbage", Raw(b"SSH-2.0-OpenSSH_9.6\r\n\r\n"))
    result = await _fetch(url, work, _policy(server, max_attempts=2))
    assert (result.cause, result.attempts) == ("protocol_error", 2)  # a hang-up may be a race: retried


async def test_tls_handshake_failure_is_a_final_tls_error(work):
    async def plain_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")  # not a TLS record
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(plain_http, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    async with listener:
        policy = FetchPolicy(**{**FAST, "allow_hosts": (f"127.0.0.1:{port}",)})
        result = await _fetch(f"https://127.0.0.1:{port}/a", work, policy)
    assert (result.cause, result.attempts) == ("tls_error", 1), result.detail


# -- bad URLs -----------------------------------------------------------------
@pytest.mark.parametrize(
    "url", ["ftp://example.test/a.png", "file:///etc/passwd", "data:image/png;base64,AAAA", "not a url", "http://", ""]
)
async def test_unsupported_or_malformed_url_is_invalid_url(url, work):
    result = await _fetch(url, work, _policy(None))
    assert (result.ok, result.cause, result.attempts) == (False, "invalid_url", 0)


async def test_unresolvable_host_is_dns_error_quickly(work):
    result = await _fetch("http://nonexistent.invalid/a.png", work, _policy(None))
    assert (result.cause, result.attempts) == ("dns_error", 1)
    assert result.elapsed_ms < 5000


# -- concurrency ---------------------------------------------------------------
async def test_per_host_bound_is_reached_and_never_exceeded(server, work):
    server.route("/slow/", Static(b"x", delay_s=0.2), prefix=True)
    hosts = ["127.0.0.1", "localhost"]  # two hosts for the fetcher, one server
    urls = [server.url(f"/slow/{i}", host=h) for h in hosts for i in range(10)]
    policy = _policy(server, max_concurrency=100, max_per_host=3, allow_hosts=tuple(f"{h}:{server.port}" for h in hosts))
    async with Fetcher(policy, work) as fetcher:
        results = await fetcher.fetch_all(urls)
    assert all(r.ok for r in results)
    for host in hosts:
        assert server.max_in_flight_by_host[f"{host}:{server.port}"] == 3


async def test_global_bound_is_reached_and_never_exceeded(server, work):
    server.route("/slow/", Static(b"x", delay_s=0.2), prefix=True)
    urls = [server.url(f"/slow/{i}") for i in range(12)]
    async with Fetcher(_policy(server, max_concurrency=4, max_per_host=10), work) as fetcher:
        results = await fetcher.fetch_all(urls)
    assert all(r.ok for r in results)
    assert server.max_in_flight == 4


async def test_fetch_all_keeps_input_order_and_reports_each_result(server, work):
    server.route("/ok", Static(b"ok"))
    urls = [server.url("/ok"), server.url("/missing"), "ftp://nope/", server.url("/ok?second")]
    seen: list[str] = []

    async def on_result(result: FetchResult) -> None:
        seen.append(result.url)

    async with Fetcher(_policy(server), work) as fetcher:
        results = await fetcher.fetch_all(urls, on_result)
    assert [r.url for r in results] == urls
    assert [r.cause for r in results] == [None, "http_404", "invalid_url", None]
    assert sorted(seen) == sorted(urls)


async def test_cancellation_propagates_and_removes_the_temp_file(server, work):
    url = server.route("/stream", SlowBody(chunk=b"v" * (512 * 1024), interval_s=0.02))
    async with Fetcher(_policy(server, max_bytes=2**40, total_timeout_s=60), work) as fetcher:
        task = asyncio.create_task(fetcher.fetch(url))
        for _ in range(500):  # wait until the body is being written to disk
            if _leftovers(work):
                break
            await asyncio.sleep(0.01)
        assert _leftovers(work), "the download never reached the disk"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(500):  # a block write in flight removes the file when it finishes
            if not _leftovers(work):
                break
            await asyncio.sleep(0.01)
    assert list(work.iterdir()) == []


async def test_fetch_outside_the_context_is_a_programming_error(work):
    with pytest.raises(RuntimeError, match="async with"):
        await Fetcher(FetchPolicy(), work).fetch("http://example.test/")


# -- retry timing (pure) --------------------------------------------------------
@pytest.mark.parametrize(
    ("attempt", "rand", "retry_after", "expected"),
    [
        (1, 1.0, None, 0.5),  # base
        (3, 1.0, None, 2.0),  # doubling
        (10, 1.0, None, 20.0),  # capped
        (3, 0.0, None, 0.0),  # full jitter reaches zero
        (3, 0.25, None, 0.5),
        (1, 0.0, 7.0, 7.0),  # Retry-After is a floor
        (1, 0.0, 3600.0, 20.0),  # ...but never beyond the cap
        (5, 1.0, 1.0, 8.0),  # backoff above Retry-After wins
    ],
)
def test_retry_delay(attempt, rand, retry_after, expected):
    assert retry_delay(attempt, FetchPolicy(), retry_after, rand=lambda: rand) == pytest.approx(expected)


def test_parse_retry_after_seconds_and_dates():
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert parse_retry_after(format_datetime(now - timedelta(hours=1), usegmt=True), now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


# -- client sharding (pure) -------------------------------------------------------
@pytest.mark.parametrize(
    ("loads", "home", "expected"),
    [
        ([0, 0, 0], 2, 2),  # home has room
        ([1, 3, 0], 1, 1),
        ([4, 4, 2], 0, 2),  # home full: least loaded
        ([4, 1, 3], 0, 1),
    ],
)
def test_pick_shard_prefers_home_then_least_loaded(loads, home, expected):
    assert pick_shard(loads, home, capacity=4) == expected


def test_pick_shard_never_overfills_a_client_below_the_global_bound():
    rng = random.Random(7)
    shards, capacity = 5, 3
    loads = [0] * shards
    in_flight: list[int] = []
    for _ in range(5000):  # random arrivals and departures, never more than shards*capacity in flight
        if in_flight and (len(in_flight) == shards * capacity or rng.random() < 0.5):
            loads[in_flight.pop(rng.randrange(len(in_flight)))] -= 1
        else:
            shard = pick_shard(loads, rng.randrange(shards), capacity)
            loads[shard] += 1
            in_flight.append(shard)
            assert loads[shard] <= capacity
