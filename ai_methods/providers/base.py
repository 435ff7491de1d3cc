"""The primitive operations a model provider offers to methods.

Methods own their prompts and schemas; a ``ModelClient`` only knows how to talk
to one provider's API. Clients do **not** retry: they raise the typed errors in
``ai_methods.errors`` (``TransientProviderError`` with ``retry_after`` for
429/5xx/throttling) and the call path decides what to retry.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from ai_methods.usage import Usage


@dataclass(frozen=True)
class ChatReply:
    """A structured answer from a chat model: ``data`` parsed from its JSON output."""

    data: dict[str, Any]
    usage: Usage
    model: str


@dataclass(frozen=True)
class EmbeddingReply:
    """One vector per input, in input order, all of dimension ``dim``."""

    vectors: list[list[float]]
    dim: int
    usage: Usage
    model: str


@dataclass(frozen=True)
class Word:
    """A recognised word with its start and end in seconds and a confidence in [0, 1]."""

    text: str
    start: float
    end: float
    confidence: float


@dataclass(frozen=True)
class TranscriptReply:
    """Words in time order for one audio clip."""

    words: list[Word]
    usage: Usage
    model: str
    language: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ModelClient(ABC):
    """One remote provider's API (``bedrock``, ``openai``) reduced to four primitives.

    A client that cannot do one of them raises ``ProviderUnavailableError``.
    """

    name: str = ""

    @abstractmethod
    async def chat_json(
        self,
        *,
        system: str,
        prompt: str,
        images: list[bytes],
        schema: dict[str, Any],
        max_tokens: int = 1024,
    ) -> ChatReply:
        """Ask the chat model for a JSON object matching ``schema`` about ``images``."""

    @abstractmethod
    async def embed_text(self, texts: list[str]) -> EmbeddingReply:
        """Embed each text."""

    @abstractmethod
    async def embed_image(self, images: list[bytes]) -> EmbeddingReply:
        """Embed each image (encoded bytes: PNG/JPEG/WebP)."""

    @abstractmethod
    async def transcribe(self, audio_wav: bytes, *, language: str | None = None) -> TranscriptReply:
        """Transcribe a WAV clip (16 kHz mono s16) with word timestamps."""

    def model_for(self, primitive: str) -> str:
        """The model id this client will use for ``primitive`` (``"chat_json"``, ``"embed_text"``,
        ``"embed_image"``, ``"transcribe"``), known *before* the call.

        The call path puts it in the result-cache key, so changing a model is a cache miss.
        Clients should override it; the default is the client's ``name``.
        """
        return self.name or type(self).__name__

    async def aclose(self) -> None:
        """Release connections. The default has nothing to release."""
