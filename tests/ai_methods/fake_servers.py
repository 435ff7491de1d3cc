"""Loopback fake endpoints for the remote model clients, and the recorded bodies they serve.

Why real servers rather than mocked transports: the clients' interesting
behaviour (headers actually sent, multipart bodies, SigV4-signed botocore
requests to an overridden endpoint, timeouts, connection pools under
concurrency, error bodies parsed by botocore) only shows up on a real socket.
Each server is a ``ThreadingHTTPServer`` on ``127.0.0.1:0`` in a background
thread; it records every request it receives and can be told to fail the next
N requests.

Recorded bodies live in ``ai_methods/testing/recordings/*.json``: each file is
exactly one response body in the shape the provider documents (no wrapper), so
``load_recording(name)`` returns what the real API would have sent. They were
written from the providers' API references (these machines cannot reach the
real APIs); vectors are deterministic pseudo-random numbers of the real length.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import ai_methods

RECORDINGS_DIR = Path(ai_methods.__file__).parent / "testing" / "recordings"
# A handler blocked by hang_next() gives up after this long, so a broken test cannot wedge the run.
HANG_LIMIT_S = 30.0


def load_recording(name: str) -> dict[str, Any]:
    """The recorded response body ``ai_methods/testing/recordings/<name>.json`` as a fresh dict."""
    path = RECORDINGS_DIR / f"{name}.json"
    if not path.is_file():
        known = sorted(p.stem for p in RECORDINGS_DIR.glob("*.json"))
        raise KeyError(f"no recording {name!r}; known: {', '.join(known)}")
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the fake server saw it (header names lower-cased)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    def multipart(self) -> dict[str, list[tuple[str | None, bytes]]]:
        """A multipart/form-data body as ``{field: [(filename, bytes), ...]}``."""
        content_type = self.headers.get("content-type", "")
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + self.body
        )
        fields: dict[str, list[tuple[str | None, bytes]]] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True) or b""
            fields.setdefault(str(name), []).append((part.get_filename(), payload))
        return fields


@dataclass
class Reply:
    """What the fake server answers: a status, headers and a body (dicts are sent as JSON)."""

    status: int = 200
    body: bytes | str | dict[str, Any] | list[Any] = b""
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> tuple[bytes, dict[str, str]]:
        headers = dict(self.headers)
        if isinstance(self.body, (dict, list)):
            headers.setdefault("Content-Type", "application/json")
            return json.dumps(self.body).encode(), headers
        if isinstance(self.body, str):
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
            return self.body.encode(), headers
        return self.body, headers


Handler = Callable[[ReceivedRequest], Reply]


class FakeHTTPServer:
    """A scripted HTTP/1.1 server on loopback: routes, queued failures, and a log of requests."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._queued: deque[Reply | None] = deque()  # None = hang instead of answering
        self._lock = threading.Lock()
        self._release = threading.Event()
        self.requests: list[ReceivedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- scripting ---------------------------------------------------------------

    def route(self, method: str, path_pattern: str, reply: Reply | Handler) -> None:
        """Answer ``method`` requests whose path fully matches ``path_pattern`` (a regex)."""
        handler = reply if callable(reply) else (lambda _request, reply=reply: reply)
        self._routes.insert(0, (method.upper(), re.compile(path_pattern), handler))  # later routes win

    def fail_next(self, count: int, status: int, body: Any = b"", headers: dict[str, str] | None = None) -> None:
        """Answer the next ``count`` requests (any route) with this failure instead."""
        with self._lock:
            self._queued.extend(Reply(status, body, dict(headers or {})) for _ in range(count))

    def hang_next(self, count: int = 1) -> None:
        """Never answer the next ``count`` requests (until the server stops), to provoke client timeouts."""
        with self._lock:
            self._queued.extend(None for _ in range(count))

    def requests_to(self, path_pattern: str) -> list[ReceivedRequest]:
        """The recorded requests whose path matches ``path_pattern``."""
        pattern = re.compile(path_pattern)
        with self._lock:
            return [r for r in self.requests if pattern.fullmatch(r.path)]

    # --- lifecycle -----------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return self._server.server_address[1]

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "FakeHTTPServer":
        """Bind 127.0.0.1 on a free port and serve in a daemon thread."""
        server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        server.daemon_threads = True
        self._server = server
        # A short poll interval keeps shutdown (and so each test's teardown) fast.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-http", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release hung requests, stop serving and close the socket."""
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "FakeHTTPServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- serving (called from handler threads) ---------------------------------------

    def _answer(self, request: ReceivedRequest) -> Reply | None:
        with self._lock:
            self.requests.append(request)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            queued = self._queued.popleft() if self._queued else False
        try:
            if queued is None:
                self._release.wait(HANG_LIMIT_S)
                return None
            if isinstance(queued, Reply):
                return queued
            for method, pattern, handler in self._routes:
                if method == request.method and pattern.fullmatch(request.path):
                    return handler(request)
            return Reply(404, {"error": {"message": f"no route for {request.method} {request.path}"}})
        finally:
            with self._lock:
                self.in_flight -= 1


def _make_handler(owner: FakeHTTPServer) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            pass  # keep test output clean; the server records requests instead

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().strip().split(b";")[0], 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _handle(self) -> None:
            request = ReceivedRequest(
                method=self.command,
                path=self.path.split("?", 1)[0],
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self._read_body(),
            )
            reply = owner._answer(request)
            if reply is None:
                self.close_connection = True
                return
            body, headers = reply.encoded()
            self.send_response(reply.status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = _handle

    return _Handler


# --- OpenAI-compatible fake ----------------------------------------------------------------


def openai_embeddings_reply(request: ReceivedRequest) -> Reply:
    """One recorded vector per input, in the documented ``data[i].index`` shape."""
    recorded = load_recording("openai_embeddings")
    inputs = request.json()["input"]
    inputs = inputs if isinstance(inputs, list) else [inputs]
    vectors = [item["embedding"] for item in recorded["data"]]
    recorded["data"] = [
        {"object": "embedding", "index": i, "embedding": vectors[i % len(vectors)]} for i in range(len(inputs))
    ]
    recorded["usage"] = {"prompt_tokens": 4 * len(inputs), "total_tokens": 4 * len(inputs)}
    return Reply(200, recorded)


class FakeOpenAIServer(FakeHTTPServer):
    """Serves the recorded OpenAI bodies under ``/v1``; ``base_url`` is what the client needs."""

    def __init__(self) -> None:
        super().__init__()
        self.route("POST", r"/v1/chat/completions", Reply(200, load_recording("openai_chat_completion")))
        self.route("POST", r"/v1/embeddings", openai_embeddings_reply)
        self.route("POST", r"/v1/audio/transcriptions", Reply(200, load_recording("openai_transcription_verbose")))

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``."""
        return f"{self.origin}/v1"


# --- Bedrock runtime fake ------------------------------------------------------------------


def aws_error(status: int, code: str, message: str) -> tuple[int, dict[str, str], dict[str, str]]:
    """``fail_next`` arguments for an AWS restJson error as Bedrock sends it (code in ``x-amzn-ErrorType``)."""
    error_type = f"{code}:http://internal.amazon.com/coral/com.amazon.bedrock/"
    return status, {"message": message}, {"x-amzn-ErrorType": error_type}


def titan_reply(request: ReceivedRequest) -> Reply:
    """The recorded Titan body matching the request: image, multimodal text, or text v2."""
    body = request.json()
    if "inputImage" in body:
        return Reply(200, load_recording("bedrock_titan_embed_image"))
    if "embeddingConfig" in body:
        return Reply(200, load_recording("bedrock_titan_embed_text"))
    return Reply(200, load_recording("bedrock_titan_text_v2"))


class FakeBedrockServer(FakeHTTPServer):
    """Serves ``InvokeModel`` (Titan) and ``Converse`` at their REST paths, for ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``."""

    def __init__(self) -> None:
        super().__init__()
        self.route("POST", r"/model/[^/]+/invoke", titan_reply)
        self.route("POST", r"/model/[^/]+/converse", Reply(200, load_recording("bedrock_converse_caption")))


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAIServer]:
    """A running ``FakeOpenAIServer``."""
    with FakeOpenAIServer() as server:
        yield server  # type: ignore[misc]


@pytest.fixture
def bedrock_server() -> Iterator[FakeBedrockServer]:
    """A running ``FakeBedrockServer``."""
    with FakeBedrockServer() as server:
        yield server  # type: ignore[misc]
