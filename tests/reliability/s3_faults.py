"""A fault-injecting proxy in front of moto's S3, on loopback, and a store that fails on cue.

Why a proxy: obstore talks to S3 from Rust, so its retries, timeouts and error
mapping can only be exercised by what comes back on the socket. ``S3FaultProxy``
forwards every request to the moto server unchanged (moto does not check
signatures, so the ``Host`` rewrite is harmless) unless its ``fault`` script
says otherwise for that request: answer an S3 error, or stall without answering.
"""

from __future__ import annotations

import http.client
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from resources.media_store import MediaStore, StoreError

STALL_LIMIT_S = 30.0  # a stalled request is released at teardown, or after this long


@dataclass(frozen=True)
class Fault:
    """What the proxy does instead of forwarding: ``status`` with an S3 error body, or ``stall``."""

    status: int = 503
    code: str = "SlowDown"
    stall: bool = False


FaultScript = Callable[[str, str, int], "Fault | None"]  # (method, path, request number) -> fault or None


class S3FaultProxy:
    """``http://127.0.0.1:PORT`` forwarding to ``upstream``; ``requests`` and ``faults`` count by method."""

    def __init__(self, upstream: str, fault: FaultScript | None = None) -> None:
        self.upstream = urlsplit(upstream)
        self.fault: FaultScript = fault or (lambda method, path, n: None)
        self.requests: Counter = Counter()
        self.faults: Counter = Counter()
        self._count = 0
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "S3FaultProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _decide(self, method: str, path: str) -> Fault | None:
        with self._lock:
            self._count += 1
            self.requests[method] += 1
            fault = self.fault(method, path, self._count)
            if fault is not None:
                self.faults[method] += 1
            return fault

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _handle(self) -> None:
                body = self._body()
                fault = proxy._decide(self.command, self.path)
                if fault is not None and fault.stall:
                    proxy._release.wait(STALL_LIMIT_S)
                    self.close_connection = True
                    return
                if fault is not None:
                    xml = (f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{fault.code}</Code>"
                           f"<Message>injected {fault.code}</Message></Error>").encode()  # fmt: skip
                    self._reply(fault.status, [("Content-Type", "application/xml")], xml)
                    return
                upstream = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    answer = upstream.getresponse()
                    data = answer.read()
                    dropped = ["transfer-encoding", "connection"]
                    if self.command != "HEAD":  # a HEAD answer's length is the object's: keep it
                        dropped.append("content-length")
                    passed = [(k, v) for k, v in answer.getheaders() if k.lower() not in dropped]
                    self._reply(answer.status, passed, data)
                finally:
                    upstream.close()

            def _reply(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                if self.command != "HEAD":  # a HEAD answer carries the object's length, passed through
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

        return Handler


class FlakyStore:
    """A ``MediaStore`` whose named async operations raise ``StoreError`` the first ``failures[op]`` times."""

    def __init__(self, inner: MediaStore, **failures: int) -> None:
        self._inner = inner
        self.failures = dict(failures)
        self.failed: Counter = Counter()

    def file_in_place(self, key: str) -> None:
        """None, as on S3: the media is copied with ``get_to_file``, where the faults are injected."""
        return None

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name not in self.failures:
            return attribute

        async def flaky(key: str, *args: Any, **kwargs: Any) -> Any:
            if self.failures[name] > self.failed[name]:
                self.failed[name] += 1
                raise StoreError(f"{name} {key!r} in {self._inner.url} failed: injected outage #{self.failed[name]}")
            return await attribute(key, *args, **kwargs)

        return flaky
