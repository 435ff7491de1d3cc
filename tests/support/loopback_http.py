"""A real HTTP/1.1 server on loopback, scripted by tests and benchmarks.

Why not mock httpx: the downloader's hard parts (connection pooling,
keep-alive, timeouts, truncated bodies, the address check on the socket) only
show up against a real socket. This server is a small asyncio HTTP/1.1
implementation running in a background thread (or, for benchmarks, in its own
process so it never competes with the client for the GIL). Routes are
picklable dataclasses, so the same script works in both modes.

    with LoopbackHTTPServer() as server:
        server.route("/a.png", Static(PNG, "image/png"))
        url = server.url("/a.png")
        ...
        assert server.hits["/a.png"] == 1

Tests can use the ``loopback_http`` fixture instead (import it into the test
module or a conftest).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

HEADER_LIMIT = 64 * 1024
GENERATED_CHUNK = 1024 * 1024
STOP_TIMEOUT_S = 5.0
SUBPROCESS_START_TIMEOUT_S = 30.0

_REASONS = {
    200: "OK",
    204: "No Content",
    301: "Moved Permanently",
    302: "Found",
    303: "See Other",
    307: "Temporary Redirect",
    308: "Permanent Redirect",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

Headers = tuple[tuple[str, str], ...]


@dataclass
class Request:
    """What the server parsed from one request."""

    method: str
    target: str
    path: str
    headers: dict[str, str]
    hit: int  # 1 for the first request to this path, 2 for the second…
    body: bytes = b""  # the request body (Content-Length bodies; chunked ones are not read)


class _Responder:
    """Writes responses on one connection; routes call these."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.close_after = False

    async def head(self, status: int, headers: Headers, *, content_length: int | None) -> None:
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
        lines += [f"{name}: {value}" for name, value in headers]
        if content_length is not None:
            lines.append(f"Content-Length: {content_length}")
        if self.close_after:
            lines.append("Connection: close")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()


class Route:
    """Base of the scripted responses; subclasses implement ``respond``."""

    async def respond(self, request: Request, out: _Responder) -> None:  # pragma: no cover
        raise NotImplementedError


@dataclass(frozen=True)
class Static(Route):
    """Fixed bytes, optionally after a delay before the headers (a slow server)."""

    body: bytes = b""
    content_type: str = "application/octet-stream"
    status: int = 200
    headers: Headers = ()
    delay_s: float = 0.0

    async def respond(self, request: Request, out: _Responder) -> None:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        headers = (("Content-Type", self.content_type), *self.headers)
        await out.head(self.status, headers, content_length=len(self.body))
        await out.send(self.body)


def html(body: str, status: int = 200) -> Static:
    """An HTML page (what a URL that is not media often returns)."""
    return Static(body.encode(), "text/html; charset=utf-8", status)


def status(code: int, body: bytes = b"", headers: Headers = ()) -> Static:
    """A bare status response."""
    return Static(body, "text/plain", code, headers)


@dataclass(frozen=True)
class Redirect(Route):
    """A redirect to ``location`` (absolute, relative, or any scheme)."""

    location: str
    status: int = 302

    async def respond(self, request: Request, out: _Responder) -> None:
        await out.head(self.status, (("Location", self.location),), content_length=0)
        await out.send(b"")


@dataclass(frozen=True)
class BrowserOnly(Route):
    """``body`` for clients whose User-Agent starts with ``prefix``, else 403 (as some CDNs do)."""

    body: bytes
    content_type: str = "application/octet-stream"
    prefix: str = "Mozilla/"

    async def respond(self, request: Request, out: _Responder) -> None:
        if request.headers.get("user-agent", "").startswith(self.prefix):
            await Static(self.body, self.content_type).respond(request, out)
        else:
            await status(403, b"forbidden").respond(request, out)


@dataclass(frozen=True)
class Sequence(Route):
    """The n-th hit gets ``responses[n-1]``; the last one repeats (e.g. 429, 429, 200)."""

    responses: tuple[Route, ...]

    async def respond(self, request: Request, out: _Responder) -> None:
        route = self.responses[min(request.hit, len(self.responses)) - 1]
        await route.respond(request, out)


@dataclass(frozen=True)
class SlowBody(Route):
    """Headers at once, then ``chunk`` every ``interval_s``; ``total=None`` never ends."""

    chunk: bytes = b"x" * 1024
    interval_s: float = 0.05
    total: int | None = None
    content_type: str = "application/octet-stream"

    async def respond(self, request: Request, out: _Responder) -> None:
        if self.total is None:
            out.close_after = True  # close-delimited, endless
        await out.head(200, (("Content-Type", self.content_type),), content_length=self.total)
        sent = 0
        while self.total is None or sent < self.total:
            piece = self.chunk if self.total is None else self.chunk[: self.total - sent]
            await out.send(piece)
            sent += len(piece)
            await asyncio.sleep(self.interval_s)


@dataclass(frozen=True)
class Truncated(Route):
    """Declares ``declared`` bytes, sends ``body``, then hangs up."""

    declared: int
    body: bytes

    async def respond(self, request: Request, out: _Responder) -> None:
        out.close_after = True
        await out.head(200, (("Content-Type", "application/octet-stream"),), content_length=self.declared)
        await out.send(self.body)


@dataclass(frozen=True)
class Raw(Route):
    """Writes ``data`` verbatim (not necessarily HTTP), then hangs up."""

    data: bytes

    async def respond(self, request: Request, out: _Responder) -> None:
        out.close_after = True
        await out.send(self.data)


@dataclass(frozen=True)
class Generated(Route):
    """``size`` bytes produced on the fly (1 GiB costs no memory).

    ``chunked=True`` omits Content-Length, so only streaming can notice the size.
    """

    size: int
    content_type: str = "video/mp4"
    chunked: bool = False
    delay_s: float = 0.0
    chunk_size: int = GENERATED_CHUNK

    async def respond(self, request: Request, out: _Responder) -> None:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        block = bytes(range(256)) * (self.chunk_size // 256)
        headers: Headers = (("Content-Type", self.content_type),)
        if self.chunked:
            headers += (("Transfer-Encoding", "chunked"),)
        await out.head(200, headers, content_length=None if self.chunked else self.size)
        remaining = self.size
        while remaining > 0:
            piece = block[: min(len(block), remaining)]
            remaining -= len(piece)
            if self.chunked:
                piece = b"%x\r\n%s\r\n" % (len(piece), piece)
            await out.send(piece)
        if self.chunked:
            await out.send(b"0\r\n\r\n")


def retry_after_then(final: Route, *, failures: int = 1, retry_after: str = "1", code: int = 429) -> Sequence:
    """``failures`` responses ``code`` with ``Retry-After``, then ``final``."""
    busy = status(code, b"slow down", (("Retry-After", retry_after),))
    return Sequence((busy,) * failures + (final,))


@dataclass
class _Stats:
    hits: Counter = field(default_factory=Counter)
    connections: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    in_flight_by_host: Counter = field(default_factory=Counter)
    max_in_flight_by_host: Counter = field(default_factory=Counter)


class LoopbackHTTPServer:
    """A real HTTP/1.1 server on ``127.0.0.1:<free port>`` in a background thread.

    Unknown paths answer 404. ``hits`` counts requests per path,
    ``connections`` counts accepted TCP connections, and ``max_in_flight`` /
    ``max_in_flight_by_host`` (keyed by the ``Host`` header) record the most
    requests served at once, for concurrency-bound tests.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._routes: dict[str, Route] = {}
        self._prefix_routes: list[tuple[str, Route]] = []
        self._stats = _Stats()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    # -- scripting -------------------------------------------------------
    def route(self, path: str, response: Route, *, prefix: bool = False) -> str:
        """Serve ``response`` at ``path`` (or every path under it); return its URL."""
        if prefix:
            self._prefix_routes.append((path, response))
            self._prefix_routes.sort(key=lambda item: -len(item[0]))
        else:
            self._routes[path] = response
        return self.url(path)

    def url(self, path: str = "/", host: str | None = None) -> str:
        """Absolute URL of ``path``; ``host`` spells the host differently (e.g. ``localhost``)."""
        return f"http://{host or self.host}:{self.port}{path}"

    @property
    def netloc(self) -> str:
        """``host:port``, the form ``AD_ASSETS_ALLOW_HOSTS`` entries take."""
        return f"{self.host}:{self.port}"

    @property
    def hits(self) -> Counter:
        return self._stats.hits

    @property
    def connections(self) -> int:
        return self._stats.connections

    @property
    def max_in_flight(self) -> int:
        return self._stats.max_in_flight

    @property
    def max_in_flight_by_host(self) -> Counter:
        return self._stats.max_in_flight_by_host

    def reset_stats(self) -> None:
        """Forget hits and counters (routes stay)."""
        self._stats = _Stats()

    # -- lifecycle -------------------------------------------------------
    def start(self) -> "LoopbackHTTPServer":
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                # A deep backlog so a burst of 128+ connects never sees a refusal.
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._serve, self.host, self.port, backlog=1024, limit=HEADER_LIMIT)
                )
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:  # surfaced in start()
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name=f"loopback-http-{id(self)}", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return

        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            for task in list(self._handlers):
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            self._loop.stop()  # type: ignore[union-attr]

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop)
        self._thread.join(STOP_TIMEOUT_S)
        self._loop = None
        self._thread = None

    def __enter__(self) -> "LoopbackHTTPServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- serving ---------------------------------------------------------
    def _lookup(self, path: str) -> Route:
        route = self._routes.get(path)
        if route is not None:
            return route
        for prefix, route in self._prefix_routes:
            if path.startswith(prefix):
                return route
        return status(404, b"not found")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._stats.connections += 1
        try:
            while await self._serve_one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client went away; that is its business
        except asyncio.CancelledError:
            # Server shutdown. Ending normally keeps asyncio's stream callback
            # from logging the cancelled handler as an error (Python 3.11).
            pass
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        lines = raw.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        body = b""
        if int(headers.get("content-length", "0") or 0):
            body = await reader.readexactly(int(headers["content-length"]))
        path = target.split("?", 1)[0]
        stats = self._stats
        stats.hits[path] += 1
        request = Request(method, target, path, headers, stats.hits[path], body)
        host = headers.get("host", "")
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        stats.in_flight_by_host[host] += 1
        stats.max_in_flight_by_host[host] = max(stats.max_in_flight_by_host[host], stats.in_flight_by_host[host])
        out = _Responder(writer)
        out.close_after = headers.get("connection", "").lower() == "close" or version != "HTTP/1.1"
        try:
            await self._lookup(path).respond(request, out)
        finally:
            stats.in_flight -= 1
            stats.in_flight_by_host[host] -= 1
        return not out.close_after


# -- a server in its own process (benchmarks) -------------------------------
def _serve_in_child(conn: Any, routes: list[tuple[str, Route, bool]]) -> None:
    with LoopbackHTTPServer() as server:
        for path, response, prefix in routes:
            server.route(path, response, prefix=prefix)
        conn.send(server.port)
        with contextlib.suppress(EOFError):
            conn.recv()  # block until the parent says stop or goes away


@contextlib.contextmanager
def serve_in_subprocess(routes: list[tuple[str, Route, bool]]) -> Iterator[str]:
    """Run a server in a separate process; yield its base URL ``http://127.0.0.1:PORT``.

    ``routes`` are ``(path, response, prefix)`` triples. Used by benchmarks so
    the server's CPU never counts against the client being measured.
    """
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=_serve_in_child, args=(child, routes), daemon=True)
    process.start()
    try:
        deadline = time.monotonic() + SUBPROCESS_START_TIMEOUT_S
        while not parent.poll(0.1):
            if not process.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"loopback server process did not start (exit code {process.exitcode})")
        port = parent.recv()
        yield f"http://127.0.0.1:{port}"
    finally:
        with contextlib.suppress(OSError):
            parent.send("stop")
        process.join(STOP_TIMEOUT_S)
        if process.is_alive():
            process.terminate()
            process.join(STOP_TIMEOUT_S)


@pytest.fixture
def loopback_http() -> Iterator[LoopbackHTTPServer]:
    """A started ``LoopbackHTTPServer``, stopped after the test."""
    with LoopbackHTTPServer() as server:
        yield server
