"""An OpenAI-compatible server on loopback that answers every request after a fixed delay.

Why: the AI stage's speed is bounded by how many requests it keeps in flight
against a provider with a given latency, and that can only be seen at the
server. This server answers ``/v1/chat/completions`` with one JSON object that
satisfies the chat methods' drafts (``ocr_text``, ``caption``, ``labels``)
and ``/v1/embeddings`` with one vector per input (text, or vLLM's chat-style
image form), each after ``delay_s``; it counts requests per path, the bytes
received, the most requests in flight and the time-weighted mean in flight
between the first request and the last answer. ``GET /stats`` returns those
counters as JSON, ``POST /stats/reset`` zeroes them.

It runs in its own process (``serve_in_subprocess``) in benchmarks, so its
CPU never counts against the client measured; the routes are picklable
dataclasses and the counters live in the serving process.

    with serve_in_subprocess(openai_routes(delay_s=0.2)) as origin:
        base_url = origin + "/v1"
        ...
        stats = fetch_stats(origin)   # {"requests": {...}, "max_in_flight": ..., ...}
"""

from __future__ import annotations

import json
import math
import random
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from typing import Any

from tests.support.loopback_http import Request, Route, _Responder

EMBED_DIM = 1024
CHAT_ANSWER = {
    # ocr_text's draft
    "lines": [{"text": "SUMMER SALE", "confidence": 0.97}, {"text": "SHOP NOW", "confidence": 0.95}],
    # caption's draft
    "caption": "A bright summer advertisement with large white text on a warm background. The mood is upbeat.",
    "subjects": ["text", "background"],
    "actions": [],
    "setting": "studio graphic",
    "mood": "upbeat",
    # labels' draft
    "objects": [{"name": "text", "confidence": 0.9}],
    "scenes": [{"name": "graphic design", "confidence": 0.8}],
    "brand_safety": [],
}


# OpenAI sends its limits with every answer; clients that pace themselves by them (Pixeltable)
# wait for these before going concurrent. Generous: the delay, not a quota, sets the pace here.
RATE_LIMIT_HEADERS = (
    ("x-ratelimit-limit-requests", "1000000"),
    ("x-ratelimit-remaining-requests", "999999"),
    ("x-ratelimit-reset-requests", "1ms"),
    ("x-ratelimit-limit-tokens", "1000000000"),
    ("x-ratelimit-remaining-tokens", "999999999"),
    ("x-ratelimit-reset-tokens", "1ms"),
)


class _Counters:
    """Counters of the serving process (one server per process)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests: Counter = Counter()
        self.bytes_in = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.area = 0.0  # ∫ in_flight dt, request-seconds
        self.first: float | None = None
        self.last: float | None = None
        self._changed = time.monotonic()
        self._cpu = time.process_time()

    def change(self, delta: int) -> None:
        now = time.monotonic()
        if self.first is None:
            self.first = now
        self.area += self.in_flight * (now - self._changed)
        self._changed = now
        self.in_flight += delta
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        if delta < 0:
            self.last = now

    def as_dict(self) -> dict[str, Any]:
        window = (self.last - self.first) if self.first is not None and self.last is not None else 0.0
        return {
            "requests": dict(self.requests),
            "total_requests": sum(self.requests.values()),
            "bytes_in": self.bytes_in,
            "max_in_flight": self.max_in_flight,
            "mean_in_flight": round(self.area / window, 3) if window > 0 else 0.0,
            "window_s": round(window, 4),
            "server_cpu_s": round(time.process_time() - self._cpu, 3),
        }


COUNTERS = _Counters()


def _json_reply(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def chat_body() -> bytes:
    """A ``chat.completion`` whose message content is ``CHAT_ANSWER`` as JSON text."""
    return _json_reply(
        {
            "id": "chatcmpl-loopback",
            "object": "chat.completion",
            "model": "loopback-vision",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": json.dumps(CHAT_ANSWER)},
                }
            ],
            "usage": {"prompt_tokens": 1200, "completion_tokens": 80, "total_tokens": 1280},
        }
    )


def embedding_body(dim: int = EMBED_DIM, seed: int = 5, count: int = 1) -> bytes:
    """An ``/embeddings`` list with ``count`` ``dim``-long unit vectors (the size of a real reply)."""
    rng = random.Random(seed)
    raw = [rng.gauss(0.0, 1.0) for _ in range(dim)]
    norm = math.sqrt(sum(v * v for v in raw))
    vector = [round(v / norm, 7) for v in raw]
    return _json_reply(
        {
            "object": "list",
            "model": "loopback-embed",
            "data": [{"object": "embedding", "index": i, "embedding": vector} for i in range(count)],
            "usage": {"prompt_tokens": 40 * count, "total_tokens": 40 * count},
        }
    )


# Text embedding requests are small; an image embedding request (megabytes of base64) is not parsed.
_PARSED_EMBED_BODY = 256 * 1024


@dataclass(frozen=True)
class DelayedJSON(Route):
    """``body`` (JSON) after ``delay_s``, counted in ``COUNTERS`` from the request read (body included) to the reply sent."""

    body: bytes
    delay_s: float = 0.2

    def reply_for(self, request: Request) -> bytes:
        return self.body

    async def respond(self, request: Request, out: _Responder) -> None:
        import asyncio

        COUNTERS.requests[request.path] += 1
        COUNTERS.bytes_in += int(request.headers.get("content-length", "0") or 0)
        COUNTERS.change(+1)
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            body = self.reply_for(request)
            await out.head(200, (("Content-Type", "application/json"), *RATE_LIMIT_HEADERS), content_length=len(body))
            await out.send(body)
        finally:
            COUNTERS.change(-1)


@dataclass(frozen=True)
class Embeddings(DelayedJSON):
    """One vector per ``input`` of a text request (clients batch them), one for an image request."""

    dim: int = EMBED_DIM

    def reply_for(self, request: Request) -> bytes:
        count = 1
        if len(request.body) <= _PARSED_EMBED_BODY:
            given = json.loads(request.body or b"{}").get("input")
            count = len(given) if isinstance(given, list) else 1
        return self.body if count == 1 else embedding_body(self.dim, count=count)


@dataclass(frozen=True)
class Stats(Route):
    """``GET``: the counters as JSON; ``POST``: reset them."""

    async def respond(self, request: Request, out: _Responder) -> None:
        if request.method == "POST":
            COUNTERS.reset()
            body = b"{}"
        else:
            body = _json_reply(COUNTERS.as_dict())
        await out.head(200, (("Content-Type", "application/json"),), content_length=len(body))
        await out.send(body)


def openai_routes(delay_s: float, *, embed_dim: int = EMBED_DIM) -> list[tuple[str, Route, bool]]:
    """Routes for ``serve_in_subprocess``: chat and embeddings under ``/v1`` after ``delay_s``, and ``/stats``."""
    return [
        ("/v1/chat/completions", DelayedJSON(chat_body(), delay_s), False),
        ("/v1/embeddings", Embeddings(embedding_body(embed_dim), delay_s, embed_dim), False),
        ("/stats", Stats(), False),
    ]


def fetch_stats(origin: str) -> dict[str, Any]:
    """The server's counters (``origin`` is ``http://127.0.0.1:PORT``)."""
    with urllib.request.urlopen(origin + "/stats", timeout=10) as response:
        return json.loads(response.read())


def reset_stats(origin: str) -> None:
    """Zero the server's counters."""
    request = urllib.request.Request(origin + "/stats", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass
