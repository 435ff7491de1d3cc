"""Recorded provider responses and a scripted ``ModelClient`` for offline tests.

* ``load_recording(name)`` returns the JSON response body stored in
  ``ai_methods/testing/recordings/<name>.json`` (exactly one body in the shape
  the provider documents, no wrapper): serve it from a loopback server or a
  botocore ``Stubber`` to test a client.
* ``ReplayClient`` is a ``ModelClient`` that answers from queues of canned
  replies (or raises queued errors) and keeps a ``history`` of every call: use
  it to test a method's remote branch (its prompt, schema and parsing) without
  any client or network, like simonw/llm's mock model.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ai_methods.providers.base import ChatReply, EmbeddingReply, ModelClient, TranscriptReply, Word
from ai_methods.usage import Usage

RECORDINGS_DIR = Path(__file__).parent / "recordings"


def recording_names() -> list[str]:
    """Names of the stored recordings (file stems)."""
    return sorted(p.stem for p in RECORDINGS_DIR.glob("*.json"))


def recording_path(name: str) -> Path:
    """The file of recording ``name``; ``KeyError`` listing the known ones if absent."""
    path = RECORDINGS_DIR / f"{name}.json"
    if not path.is_file():
        raise KeyError(f"no recording {name!r} in {RECORDINGS_DIR}; known: {', '.join(recording_names()) or '(none)'}")
    return path


def load_recording(name: str) -> Any:
    """The recorded response body ``name`` as fresh JSON data (safe to mutate)."""
    return json.loads(recording_path(name).read_text(encoding="utf-8"))


@dataclass(frozen=True)
class ClientCall:
    """One call a ``ReplayClient`` received."""

    primitive: str
    kwargs: dict[str, Any] = field(default_factory=dict)


class ReplayClient(ModelClient):
    """A scripted ``ModelClient``.

    Queue replies per primitive: a ``dict`` (chat data), a list of vectors
    (embeddings), a list of ``Word`` (transcripts), a ready ``ChatReply`` /
    ``EmbeddingReply`` / ``TranscriptReply``, or an exception to raise. A call
    with nothing queued fails the test with a clear ``AssertionError``.

    ``delay_s`` makes every call wait (for concurrency tests); ``in_flight`` and
    ``max_in_flight`` count calls running at once.
    """

    def __init__(
        self,
        name: str = "replay",
        *,
        chat: Iterable[Any] = (),
        embed_text: Iterable[Any] = (),
        embed_image: Iterable[Any] = (),
        transcribe: Iterable[Any] = (),
        models: dict[str, str] | None = None,
        delay_s: float = 0.0,
    ) -> None:
        self.name = name
        self._queues = {
            "chat_json": deque(chat),
            "embed_text": deque(embed_text),
            "embed_image": deque(embed_image),
            "transcribe": deque(transcribe),
        }
        self.models = {p: f"{name}-{p.replace('_', '-')}" for p in self._queues} | dict(models or {})
        self.delay_s = delay_s
        self.history: list[ClientCall] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.closed = False

    def queue(self, primitive: str, *replies: Any) -> "ReplayClient":
        self._queues[primitive].extend(replies)
        return self

    def calls(self, primitive: str | None = None) -> list[ClientCall]:
        return [c for c in self.history if primitive is None or c.primitive == primitive]

    def model_for(self, primitive: str) -> str:
        return self.models[primitive]

    async def _next(self, primitive: str, kwargs: dict[str, Any]) -> Any:
        self.history.append(ClientCall(primitive, kwargs))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            if not self._queues[primitive]:
                raise AssertionError(
                    f"ReplayClient {self.name!r}: no reply queued for {primitive} (call #{len(self.history)})"
                )
            reply = self._queues[primitive].popleft()
            if isinstance(reply, BaseException):
                raise reply
            return reply
        finally:
            self.in_flight -= 1

    async def chat_json(
        self, *, system: str, prompt: str, images: list[bytes], schema: dict[str, Any], max_tokens: int = 1024
    ) -> ChatReply:
        reply = await self._next(
            "chat_json",
            {"system": system, "prompt": prompt, "images": images, "schema": schema, "max_tokens": max_tokens},
        )
        if isinstance(reply, ChatReply):
            return reply
        usage = Usage(
            requests=1,
            input_tokens=len(system + prompt) // 4 + 800 * len(images),
            output_tokens=len(json.dumps(reply)) // 4,
            images=len(images),
        )
        return ChatReply(data=reply, usage=usage, model=self.models["chat_json"])

    def _embedding(self, primitive: str, reply: Any, count: int, tokens: int) -> EmbeddingReply:
        if isinstance(reply, EmbeddingReply):
            return reply
        vectors = [list(map(float, v)) for v in reply]
        dim = len(vectors[0]) if vectors else 0
        images = count if primitive == "embed_image" else 0
        return EmbeddingReply(
            vectors=vectors,
            dim=dim,
            usage=Usage(requests=1, input_tokens=tokens, images=images),
            model=self.models[primitive],
        )

    async def embed_text(self, texts: list[str]) -> EmbeddingReply:
        reply = await self._next("embed_text", {"texts": texts})
        return self._embedding("embed_text", reply, len(texts), sum(len(t.split()) for t in texts))

    async def embed_image(self, images: list[bytes]) -> EmbeddingReply:
        reply = await self._next("embed_image", {"images": images})
        return self._embedding("embed_image", reply, len(images), 0)

    async def transcribe(self, audio_wav: bytes, *, language: str | None = None) -> TranscriptReply:
        reply = await self._next("transcribe", {"audio_wav": audio_wav, "language": language})
        if isinstance(reply, TranscriptReply):
            return reply
        words = [w if isinstance(w, Word) else Word(**w) for w in reply]
        return TranscriptReply(words=words, usage=Usage(requests=1), model=self.models["transcribe"], language=language)

    async def aclose(self) -> None:
        self.closed = True
