"""The downloader: safe, streaming, bounded-concurrency HTTP fetching of ad media.

Pure engine (no Dagster import). One ``Fetcher`` per brand run owns a small
fixed set of ``httpx.AsyncClient``s and fetches URLs under a global and a
per-host concurrency bound. Each body streams to ``<work_dir>/<uuid>.incomplete``
with its sha256 computed on the way; at most ``WRITE_BUFFER_BYTES`` of a body is
in memory at any time, whatever its size.
Per-URL problems never raise: ``fetch`` returns a ``FetchResult`` whose
``cause`` is a short stable code (see ``CAUSES``).

Safety (see ``resources.url_safety``): the address check runs inside the
connection pool on the address actually dialled, and redirects are followed
here, one hop at a time, so every hop goes through that check.

Body encoding: we ask for ``Accept-Encoding: identity`` and read
``aiter_raw()`` so httpx never inflates anything behind our back. A server
that compresses anyway (gzip/deflate) is inflated here in bounded pieces, and
``max_bytes`` applies to the *decoded* bytes, the bytes stored: a gzip bomb
stops at the cap, having used at most ``DECODE_PIECE_BYTES`` of memory beyond it.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import hashlib
import inspect
import math
import os
import random
import ssl
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

import httpcore
import httpx

from resources.fetch_errors import (
    BadRedirectError,
    ConnectFailedError,
    FetchConfigError,
    FetchError,
    FetchTimeoutError,
    HTTPStatusError,
    InvalidURLError,
    ProtocolFailedError,
    TLSFailedError,
    TooLargeError,
    TooManyRedirectsError,
    TruncatedError,
)
from resources.url_rules import parse_fetch_url
from resources.url_safety import AllowList, GuardedNetworkBackend

__all__ = [
    "CAUSES",
    "FetchError",
    "FetchPolicy",
    "FetchResult",
    "Fetcher",
    "parse_retry_after",
    "pick_shard",
    "retry_delay",
    "sweep_abandoned",
]

#: Every ``FetchResult.cause`` this module produces ("http_<status>" stands for all statuses).
CAUSES = (
    "http_<status>",
    "blocked_address",
    "dns_error",
    "connect_error",
    "timeout",
    "too_large",
    "truncated",
    "too_many_redirects",
    "bad_redirect",
    "invalid_url",
    "tls_error",
    "protocol_error",
)

HEAD_BYTES = 4096  # kept in memory for type sniffing by the caller
WRITE_BUFFER_BYTES = 1024 * 1024  # bodies are hashed and written in blocks of this size (see _BodySink)
DECODE_PIECE_BYTES = 64 * 1024  # most decoded bytes produced from one compressed chunk at a time
TEMP_SUFFIX = ".incomplete"  # body still arriving (or abandoned by a crash: swept, see ABANDONED_AFTER_S)
DONE_SUFFIX = ".download"  # body complete and verified, waiting for the caller to move it
# A body file untouched for this long (or twice the policy's whole-URL budget, if longer) belongs
# to no live download in any process sharing the work dir: a process killed mid-download left it,
# and the next Fetcher to open the directory deletes it.
ABANDONED_AFTER_S = 3600.0
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# httpcore's pool re-scans all its connections (quadratically) on every request
# and response; with one pool of 128 connections that bookkeeping, not the
# network, caps throughput at ~75 URLs/s. So the Fetcher spreads requests over
# ceil(max_concurrency / 4) clients, each with a pool of at most 4 connections
# (bench/bench_download.py runs one client and the shards side by side; 4 per
# client made ~22% fewer Python calls per URL than 8, and 8 half as many as 16).
CONNECTIONS_PER_CLIENT = 4
# fetch_all keeps this many tasks per concurrency slot alive (at least
# FETCH_ALL_MIN_WINDOW) so a host at its per-host bound does not starve others,
# without creating one task per URL for huge lists.
FETCH_ALL_WINDOW_FACTOR = 8
FETCH_ALL_MIN_WINDOW = 1024


@dataclass(frozen=True)
class FetchPolicy:
    """Limits for one ``Fetcher``; defaults suit a brand run on one machine."""

    max_concurrency: int = 32  # global in-flight bound
    max_per_host: int = 8  # per-host (host:port) in-flight bound
    max_bytes: int = 512 * 2**20  # body cap; exceeding it is a failure "too_large"
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 30.0  # per read
    total_timeout_s: float = 300.0  # whole URL incl. retries and redirects
    max_redirects: int = 5
    max_attempts: int = 4  # retries only transient failures
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 20.0
    allow_hosts: tuple[str, ...] = ()  # AD_ASSETS_ALLOW_HOSTS entries
    user_agent: str = "ad-assets/0.1"

    def __post_init__(self) -> None:
        for name in ("max_concurrency", "max_per_host", "max_bytes", "max_attempts"):
            if getattr(self, name) < 1:
                raise FetchConfigError(f"FetchPolicy.{name} must be at least 1, not {getattr(self, name)}")
        if self.max_redirects < 0:
            raise FetchConfigError(f"FetchPolicy.max_redirects must be 0 or more, not {self.max_redirects}")


@dataclass(frozen=True)
class FetchResult:
    """What happened to one URL; a failure is data, never an exception."""

    url: str  # as requested
    final_url: str  # after redirects
    ok: bool
    cause: str | None  # stable code when not ok, see CAUSES
    detail: str | None  # one human sentence naming the URL's problem
    path: Path | None  # file holding the body when ok (the caller moves or deletes it)
    sha256: str | None
    bytes: int
    head: bytes  # first HEAD_BYTES of the body, for type sniffing
    content_type: str | None  # response header, informational only
    http_status: int | None
    attempts: int
    elapsed_ms: float


# -- retry timing --------------------------------------------------------------
def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # HTTP-dates are GMT by definition
        when = when.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return max(0.0, (when - now).total_seconds())


def retry_delay(
    attempt: int, policy: FetchPolicy, retry_after: float | None = None, rand: Callable[[], float] = random.random
) -> float:
    """Seconds to sleep after failed attempt number ``attempt`` (1-based).

    Capped exponential backoff with full jitter, so a crowd of failing URLs
    does not retry in lock-step; a server's ``Retry-After`` is honoured as a
    minimum, but never beyond ``backoff_cap_s``.
    """
    ceiling = min(policy.backoff_cap_s, policy.backoff_base_s * 2 ** (attempt - 1))
    delay = rand() * ceiling
    if retry_after is not None:
        delay = max(delay, min(retry_after, policy.backoff_cap_s))
    return delay


# -- error classification -------------------------------------------------------
def _ssl_in_chain(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError | ssl.CertificateError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _classify(exc: Exception, url: str) -> FetchError:
    """Map an httpx/httpcore exception for ``url`` onto our error family."""
    if isinstance(exc, httpx.ConnectTimeout | httpcore.ConnectTimeout):
        return FetchTimeoutError(f"connecting for {url} timed out")
    if isinstance(exc, httpx.PoolTimeout):
        return FetchTimeoutError(f"no free connection for {url} in time")
    if isinstance(exc, httpx.TimeoutException):
        return FetchTimeoutError(f"{url} did not answer in time ({type(exc).__name__})")
    if isinstance(exc, httpx.ConnectError | httpcore.ConnectError):
        if _ssl_in_chain(exc):
            return TLSFailedError(f"TLS handshake for {url} failed: {exc}")
        return ConnectFailedError(f"could not connect for {url}: {exc or type(exc).__name__}")
    if isinstance(exc, httpx.RemoteProtocolError):
        return ProtocolFailedError(f"the server for {url} broke HTTP: {exc}")
    if isinstance(exc, httpx.NetworkError):  # ReadError/WriteError/CloseError before the body
        return ConnectFailedError(f"the connection for {url} failed: {exc or type(exc).__name__}")
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return InvalidURLError(f"{url} cannot be fetched: {exc}")
    if isinstance(exc, httpx.HTTPError):
        return ProtocolFailedError(f"request for {url} failed: {exc}", retryable=False)
    raise exc  # a bug, not a URL problem: let it surface


def _redirect_target(response: httpx.Response) -> httpx.URL:
    """Where a redirect points, resolved against the response URL; only http(s) with a host."""
    location = response.headers.get("location")
    if not location:
        raise BadRedirectError(f"{response.url} redirected without a Location")
    try:
        written = httpx.URL(location)
        target = response.url.join(written)
    except (httpx.InvalidURL, ValueError) as exc:
        raise BadRedirectError(f"{response.url} redirected to an invalid Location {location!r}: {exc}") from None
    if (written.scheme and not written.raw_host) or target.scheme not in ("http", "https") or not target.raw_host:
        raise BadRedirectError(f"{response.url} redirected to non-http(s) {location!r}")
    try:
        # The same rules as the first URL: a Location whose host is not valid
        # IDNA (or with a bad port) is the redirect's fault, recorded as such.
        parse_fetch_url(str(target))
    except InvalidURLError as exc:
        raise BadRedirectError(f"{response.url} redirected to an unfetchable Location: {exc.message}") from None
    return target


async def _vet_redirect(response: httpx.Response) -> None:
    if response.status_code in REDIRECT_STATUSES:
        _redirect_target(response)


def pick_shard(loads: list[int], home: int, capacity: int) -> int:
    """The client for a request: its host's home client while that has room, else the least loaded.

    The home client keeps a host's keep-alive connections together (fewer
    handshakes when a brand spans many hosts). While fewer than
    ``len(loads) * capacity`` requests are in flight (the global semaphore
    guarantees it) the least loaded client always has room, so no client ever
    exceeds ``capacity``.
    """
    if loads[home] < capacity:
        return home
    return min(range(len(loads)), key=loads.__getitem__)


def _host_key(url: httpx.URL) -> str:
    port = url.port or (443 if url.scheme == "https" else 80)
    return f"{url.host}:{port}"


# -- body handling ----------------------------------------------------------------
class _Inflater:
    """Decodes gzip/deflate in bounded pieces (a bomb cannot expand a chunk unboundedly)."""

    def __init__(self, encoding: str) -> None:
        self._encoding = encoding
        wbits = 16 + zlib.MAX_WBITS if encoding in ("gzip", "x-gzip") else zlib.MAX_WBITS
        self._z = zlib.decompressobj(wbits)
        self._first = True

    def feed(self, data: bytes) -> Iterator[bytes]:
        try:
            if self._first and self._encoding == "deflate":
                self._first = False
                # "deflate" is zlib-wrapped by the RFC but raw in practice often.
                if data and (data[0] & 0x0F) != 8:
                    self._z = zlib.decompressobj(-zlib.MAX_WBITS)
            while data:
                piece = self._z.decompress(data, DECODE_PIECE_BYTES)
                data = self._z.unconsumed_tail
                if piece:
                    yield piece
                if self._z.eof:
                    return
        except zlib.error as exc:
            raise ProtocolFailedError(f"{self._encoding} body is corrupt: {exc}", retryable=False) from None

    def finish(self) -> Iterator[bytes]:
        try:
            tail = self._z.flush()
        except zlib.error as exc:
            raise ProtocolFailedError(f"{self._encoding} body is corrupt: {exc}", retryable=False) from None
        if tail:
            yield tail
        if not self._z.eof:
            raise TruncatedError(f"{self._encoding} body ends before its compressed stream does")


class _BodySink:
    """Streams decoded bytes to a temp file, hashing, capping and keeping the head.

    Bytes are gathered into blocks of ``WRITE_BUFFER_BYTES``. Full blocks are
    hashed and written in a worker thread (hashlib releases the GIL, so that
    overlaps with the network); the last partial block, and the create, close
    and rename of a small body, run inline: for a typical image that is well
    under a millisecond, and bench_download measured a thread hop per small
    body costing more event-loop time than the syscalls it would move.
    """

    def __init__(self, temp_path: Path, max_bytes: int, url: str) -> None:
        self.path = temp_path
        self._max_bytes = max_bytes
        self._url = url
        self._file: BinaryIO | None = None
        self._hash = hashlib.sha256()
        self._buffer = bytearray()
        self._pending: asyncio.Future[None] | None = None
        self.size = 0
        self.head = bytearray()

    async def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self._max_bytes:
            raise TooLargeError(f"{self._url} is larger than the {self._max_bytes}-byte limit")
        if len(self.head) < HEAD_BYTES:
            self.head += data[: HEAD_BYTES - len(self.head)]
        self._buffer += data
        if len(self._buffer) >= WRITE_BUFFER_BYTES:
            block, self._buffer = self._buffer, bytearray()
            await self._in_thread(self._absorb, block)

    def finish(self, final_path: Path) -> str:
        """Write the rest (under one block), close, rename to ``final_path``; return the sha256."""
        block, self._buffer = self._buffer, bytearray()
        self._absorb(block)
        assert self._file is not None
        self._file.close()
        os.replace(self.path, final_path)
        self.path = final_path
        return self._hash.hexdigest()

    def discard(self) -> None:
        """Close and delete the temp file (after any in-flight thread work)."""

        def remove(_: object = None) -> None:
            if self._file is not None:
                self._file.close()
            self.path.unlink(missing_ok=True)

        if self._pending is not None and not self._pending.done():
            # Closing the fd under a running write could let the fd number be
            # reused and written to; let the thread finish, then remove.
            self._pending.add_done_callback(remove)
        else:
            remove()

    async def _in_thread(self, function: Callable[..., None], *args: object) -> None:
        self._pending = asyncio.get_running_loop().run_in_executor(None, function, *args)
        await asyncio.shield(self._pending)  # on cancellation the thread finishes; discard() waits for it
        self._pending = None

    def _absorb(self, block: bytearray) -> None:  # worker thread for full blocks, inline for the last
        if self._file is None:
            self._file = open(self.path, "xb", buffering=0)  # exclusive: never clobber
        self._hash.update(block)
        self._file.write(block)


# -- transport ------------------------------------------------------------------
class _GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport with its connection pool rebuilt around ``GuardedNetworkBackend``.

    httpx 0.28.1 has no ``network_backend`` parameter, so we let
    ``AsyncHTTPTransport.__init__`` build its pool, then replace it with one
    built from the same settings plus our backend. Nothing else changes.
    """

    def __init__(self, *, limits: httpx.Limits, ssl_context: ssl.SSLContext, backend: GuardedNetworkBackend) -> None:
        super().__init__(verify=ssl_context, limits=limits, trust_env=False)
        self._pool = _StrictPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=backend,
        )


class _StrictPool(httpcore.AsyncConnectionPool):
    """httpcore's pool, except that a connection with bytes left after a response is never reused.

    A server that sends more than its ``Content-Length`` leaves the surplus in
    the connection's buffer, and httpcore would parse it as the response to
    the *next* URL sent on that connection (RFC 9112 §6.3 forbids a client to
    do that). Such a connection counts as expired: the pool closes it instead.
    """

    def create_connection(self, origin: httpcore.Origin) -> httpcore.AsyncConnectionInterface:
        return _NoTrailingBytes(super().create_connection(origin))


class _NoTrailingBytes(httpcore.AsyncConnectionInterface):
    """Delegates to a pooled connection; ``has_expired`` is also true when bytes trail the last response."""

    def __init__(self, inner: httpcore.AsyncConnectionInterface) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()

    def can_handle_request(self, origin: httpcore.Origin) -> bool:
        return self._inner.can_handle_request(origin)

    def is_available(self) -> bool:
        return self._inner.is_available() and not self._trailing_bytes()

    def has_expired(self) -> bool:
        return self._inner.has_expired() or (self._inner.is_idle() and self._trailing_bytes())

    def is_idle(self) -> bool:
        return self._inner.is_idle()

    def is_closed(self) -> bool:
        return self._inner.is_closed()

    def info(self) -> str:
        return self._inner.info()

    def _trailing_bytes(self) -> bool:
        # httpcore keeps its HTTP/1.1 connection and that connection's h11 state
        # private; h11's ``trailing_data`` (public) is what was received past the
        # last complete response. tests/reliability/test_hostile_media.py pins this.
        http11 = getattr(self._inner, "_connection", None)
        h11_state = getattr(http11, "_h11_state", None)
        if h11_state is None:
            return False
        return bool(h11_state.trailing_data[0])


class _HostSlots:
    """Per-host semaphores, created on demand and dropped when unused (no leak over many hosts)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._entries: dict[str, list] = {}  # host -> [semaphore, users]

    @contextlib.asynccontextmanager
    async def hold(self, host: str) -> AsyncIterator[None]:
        entry = self._entries.get(host)
        if entry is None:
            entry = self._entries[host] = [asyncio.Semaphore(self._limit), 0]
        entry[1] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del self._entries[host]


@dataclass
class _Progress:
    """What one fetch has learnt so far, for the result whatever the outcome."""

    final_url: str
    attempts: int = 0
    http_status: int | None = None
    content_type: str | None = None


class Fetcher:
    """Downloads URLs safely under ``FetchPolicy``; use as ``async with Fetcher(...) as f``.

    ``transport_factory`` (a zero-argument callable returning an
    ``httpx.AsyncBaseTransport``) replaces the guarded transport, e.g. with
    ``httpx.MockTransport`` for fault injection; the address check is then the
    factory's business. ``client_shards`` overrides how many clients requests
    are spread over (default ``ceil(max_concurrency / CONNECTIONS_PER_CLIENT)``).
    """

    def __init__(
        self,
        policy: FetchPolicy,
        work_dir: Path,
        *,
        transport_factory: Callable[[], httpx.AsyncBaseTransport] | None = None,
        client_shards: int | None = None,
    ) -> None:
        self.policy = policy
        self.work_dir = Path(work_dir)
        self._transport_factory = transport_factory
        self._allow_list = AllowList.from_entries(policy.allow_hosts)  # fail fast on a bad entry
        self._shard_count = max(1, client_shards or math.ceil(policy.max_concurrency / CONNECTIONS_PER_CLIENT))
        self._clients: list[httpx.AsyncClient] = []
        self._load: list[int] = []
        # With pick_shard no client ever has more than this in flight, so the
        # pools never make a request wait (the semaphores are the only queue).
        self._per_client = math.ceil(policy.max_concurrency / self._shard_count)
        self._global: asyncio.Semaphore | None = None
        self._hosts = _HostSlots(policy.max_per_host)
        self.swept = 0  # abandoned body files deleted on entering (see sweep_abandoned)

    async def __aenter__(self) -> "Fetcher":
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.swept = sweep_abandoned(self.work_dir, max(ABANDONED_AFTER_S, 2 * self.policy.total_timeout_s))
        policy = self.policy
        limits = httpx.Limits(max_connections=self._per_client, max_keepalive_connections=self._per_client)
        timeout = httpx.Timeout(
            connect=policy.connect_timeout_s,
            read=policy.read_timeout_s,
            write=policy.read_timeout_s,
            pool=policy.connect_timeout_s,
        )
        ssl_context = httpx.create_ssl_context(trust_env=False)
        backend = GuardedNetworkBackend(self._allow_list)
        for _ in range(self._shard_count):
            transport = (
                self._transport_factory()
                if self._transport_factory is not None
                else _GuardedTransport(limits=limits, ssl_context=ssl_context, backend=backend)
            )
            client = httpx.AsyncClient(
                transport=transport,
                timeout=timeout,
                limits=limits,
                trust_env=False,  # no proxies or netrc from the environment: we decide where bytes come from
                follow_redirects=False,  # followed here, hop by hop, each hop re-checked
                # httpx still parses Location of every redirect (for .next_request)
                # and raises its own errors on odd ones: vet it first, as ours.
                event_hooks={"response": [_vet_redirect]},
                headers={"User-Agent": policy.user_agent, "Accept-Encoding": "identity"},
            )
            self._clients.append(await client.__aenter__())
        self._load = [0] * self._shard_count
        self._global = asyncio.Semaphore(policy.max_concurrency)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        clients, self._clients = self._clients, []
        for client in clients:
            await client.aclose()

    # -- public API -------------------------------------------------------
    async def fetch(self, url: str) -> FetchResult:
        """Download ``url``; never raises for a problem with the URL (cancellation propagates)."""
        if not self._clients:
            raise RuntimeError("Fetcher.fetch called outside 'async with Fetcher(...)'")
        started = time.monotonic()
        progress = _Progress(final_url=url)
        try:
            parsed = parse_fetch_url(url)
        except InvalidURLError as exc:
            return self._failure(url, exc, progress, started)
        try:
            async with asyncio.timeout(self.policy.total_timeout_s):
                return await self._fetch_with_retries(url, parsed, progress, started)
        except TimeoutError:
            exc = FetchTimeoutError(f"{url} did not finish within {self.policy.total_timeout_s:g} s")
            return self._failure(url, exc, progress, started)

    async def fetch_all(
        self,
        urls: Iterable[str],
        on_result: Callable[[FetchResult], Awaitable[None] | None] | None = None,
    ) -> list[FetchResult]:
        """Fetch every URL in this loop under the policy's bounds; results in input order.

        ``on_result`` (plain or async) is called as each URL finishes, in
        completion order, e.g. to store files while others still download.
        """
        results: dict[int, FetchResult] = {}
        finished: asyncio.Queue[tuple[int, asyncio.Task[FetchResult]]] = asyncio.Queue()
        window = max(FETCH_ALL_MIN_WINDOW, FETCH_ALL_WINDOW_FACTOR * self.policy.max_concurrency)
        pending: set[asyncio.Task[FetchResult]] = set()
        todo = enumerate(urls)

        def start_more() -> None:
            while len(pending) < window:
                item = next(todo, None)
                if item is None:
                    return
                index, url = item
                task = asyncio.create_task(self.fetch(url))
                # A done-callback into a queue is O(1) per URL, unlike asyncio.wait over the window.
                task.add_done_callback(lambda t, i=index: finished.put_nowait((i, t)))
                pending.add(task)

        try:
            start_more()
            while pending:
                index, task = await finished.get()
                pending.discard(task)
                result = results[index] = task.result()
                start_more()
                if on_result is not None:
                    outcome = on_result(result)
                    if inspect.isawaitable(outcome):
                        await outcome
        finally:
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        return [results[i] for i in range(len(results))]

    # -- internals -------------------------------------------------------
    async def _fetch_with_retries(
        self, url: str, parsed: httpx.URL, progress: _Progress, started: float
    ) -> FetchResult:
        policy = self.policy
        deadline = started + policy.total_timeout_s
        for attempt in range(1, policy.max_attempts + 1):
            progress.attempts = attempt
            progress.http_status = progress.content_type = None  # report what the last attempt saw
            try:
                return await self._attempt(url, parsed, progress, started)
            except FetchError as exc:
                if not exc.is_transient or attempt == policy.max_attempts:
                    return self._failure(url, exc, progress, started)
                retry_after = exc.retry_after if isinstance(exc, HTTPStatusError) else None
                delay = retry_delay(attempt, policy, retry_after)
                if time.monotonic() + delay >= deadline:
                    # Sleeping into the deadline would only turn a clear cause into "timeout".
                    return self._failure(url, exc, progress, started)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable: the last attempt always returns")

    @contextlib.asynccontextmanager
    async def _slot(self, host: str) -> AsyncIterator[httpx.AsyncClient]:
        # Per-host first: a URL waiting for a busy host must not sit on a
        # global slot that a URL for an idle host could use.
        assert self._global is not None
        async with self._hosts.hold(host), self._global:
            shard = pick_shard(self._load, hash(host) % self._shard_count, self._per_client)
            self._load[shard] += 1
            try:
                yield self._clients[shard]
            finally:
                self._load[shard] -= 1

    async def _attempt(self, url: str, parsed: httpx.URL, progress: _Progress, started: float) -> FetchResult:
        current = parsed
        for _ in range(self.policy.max_redirects + 1):
            progress.final_url = str(current)
            async with self._slot(_host_key(current)) as client:
                try:
                    response = await client.send(client.build_request("GET", current), stream=True)
                except FetchError:
                    raise  # refused by the guarded backend or the redirect vetting
                except httpx.InvalidURL as exc:  # the request URL is valid: httpx choked on a Location
                    raise BadRedirectError(f"{current} redirected to an unusable Location: {exc}") from exc
                except Exception as exc:  # noqa: BLE001 - classified; bugs are re-raised by _classify
                    raise _classify(exc, str(current)) from exc
                try:
                    progress.http_status = response.status_code
                    progress.content_type = response.headers.get("content-type")
                    if response.status_code in REDIRECT_STATUSES:
                        current = _redirect_target(response)
                        continue
                    if not 200 <= response.status_code < 300:
                        raise HTTPStatusError(
                            _status_message(current, response.status_code),
                            status=response.status_code,
                            retry_after=parse_retry_after(response.headers.get("retry-after")),
                        )
                    return await self._download(url, response, progress, started)
                finally:
                    await response.aclose()  # an unread redirect/error body just drops the connection
        raise TooManyRedirectsError(f"{url} redirected more than {self.policy.max_redirects} times")

    async def _download(
        self, url: str, response: httpx.Response, progress: _Progress, started: float
    ) -> FetchResult:
        where = str(response.url)
        declared = _content_length(response, where)
        if declared is not None and declared > self.policy.max_bytes:
            raise TooLargeError(f"{where} declares {declared} bytes, over the {self.policy.max_bytes}-byte limit")
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding in ("", "identity"):
            inflater = None
        elif encoding in ("gzip", "x-gzip", "deflate"):
            inflater = _Inflater(encoding)
        else:
            raise ProtocolFailedError(
                f"{where} sent a {encoding!r}-encoded body although we asked for identity", retryable=False
            )
        sink = _BodySink(self.work_dir / f"{uuid.uuid4().hex}{TEMP_SUFFIX}", self.policy.max_bytes, where)
        try:
            received = 0
            try:
                async for chunk in response.aiter_raw():
                    received += len(chunk)
                    if inflater is None:
                        await sink.write(chunk)
                    else:
                        for piece in inflater.feed(chunk):
                            await sink.write(piece)
            except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
                raise TruncatedError(f"{where} ended after {received} bytes: {exc}") from exc
            except httpx.TimeoutException as exc:
                raise FetchTimeoutError(f"{where} stopped sending after {received} bytes") from exc
            if declared is not None and received < declared:
                raise TruncatedError(f"{where} ended after {received} of {declared} bytes")
            if inflater is not None:
                for piece in inflater.finish():
                    await sink.write(piece)
            sha256 = sink.finish(sink.path.with_suffix(DONE_SUFFIX))
        except BaseException:
            sink.discard()
            raise
        return FetchResult(
            url=url,
            final_url=progress.final_url,
            ok=True,
            cause=None,
            detail=None,
            path=sink.path,
            sha256=sha256,
            bytes=sink.size,
            head=bytes(sink.head),
            content_type=progress.content_type,
            http_status=progress.http_status,
            attempts=progress.attempts,
            elapsed_ms=(time.monotonic() - started) * 1000,
        )

    @staticmethod
    def _failure(url: str, exc: FetchError, progress: _Progress, started: float) -> FetchResult:
        detail = exc.message
        if progress.attempts > 1:
            detail = f"{detail} (after {progress.attempts} attempts)"
        return FetchResult(
            url=url,
            final_url=progress.final_url,
            ok=False,
            cause=exc.cause,
            detail=detail,
            path=None,
            sha256=None,
            bytes=0,
            head=b"",
            content_type=progress.content_type,
            http_status=progress.http_status,
            attempts=progress.attempts,
            elapsed_ms=(time.monotonic() - started) * 1000,
        )


def sweep_abandoned(work_dir: Path, older_than_s: float) -> int:
    """Delete body files in ``work_dir`` not modified for ``older_than_s``; return how many.

    A live download writes its file at least once per ``total_timeout_s`` (it ends
    within that budget), so an older file was left by a process that died.
    """
    cutoff = time.time() - older_than_s
    removed = 0
    for suffix in (TEMP_SUFFIX, DONE_SUFFIX):
        for path in work_dir.glob(f"*{suffix}"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue  # its owner moved or removed it meanwhile
    return removed


def _status_message(url: httpx.URL, status: int) -> str:
    """The detail of a non-success status; a 403 says what often helps (many CDNs refuse non-browser clients)."""
    if status == 403:
        return (
            f"{url} answered HTTP 403: the server refused the request; some CDNs refuse clients that do not "
            "look like a browser, so setting AD_ASSETS_USER_AGENT to a browser's User-Agent may help"
        )
    return f"{url} answered HTTP {status}"


def _content_length(response: httpx.Response, where: str) -> int | None:
    raw = response.headers.get("content-length")
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ProtocolFailedError(f"{where} sent an invalid Content-Length {raw!r}", retryable=False) from None
