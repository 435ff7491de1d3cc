"""``OpenAIClient``: any OpenAI-compatible HTTP endpoint (OpenAI, vLLM, Ollama) over httpx.

No SDK: four endpoints are used (``/chat/completions``, ``/embeddings``,
``/audio/transcriptions``) and their documented JSON is small. The client never
retries; HTTP failures become the typed errors of ``ai_methods.errors`` so the
call path can decide. The API key travels only in the ``Authorization`` header
and is scrubbed from any text a server echoes back, so it never reaches an
exception message or a log line.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import re
import ssl
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import httpx

from ai_methods.errors import (
    AIMethodError,
    BadResponseError,
    InvalidInputError,
    ProviderUnavailableError,
    QuotaExceededError,
    TransientProviderError,
)
from ai_methods.providers.base import ChatReply, EmbeddingReply, ModelClient, TranscriptReply, Word
from ai_methods.providers.payloads import (
    JsonWithBlobs,
    data_url,
    loads_json,
    parse_json_reply,
    read_wav_info,
    schema_instructions,
)
from ai_methods.providers.provider_settings import OpenAISettings
from ai_methods.usage import Usage

logger = logging.getLogger(__name__)

# Dimensions of well-known embedding models, so callers can size an index before the first call.
KNOWN_EMBED_DIMS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
# Error codes OpenAI sends with 429 when retrying cannot help (billing, hard limits).
_QUOTA_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached", "billing_not_active"})
_SCHEMA_NAME = re.compile(r"[^a-zA-Z0-9_-]+")
_BEARER = re.compile(r"(?i)bearer\s+\S+")
# httpcore's pool re-scans all its connections on every request and response, so one pool
# of 64 connections spends more CPU on bookkeeping than on the requests (the downloader
# measured the same: resources/fetcher.py). Requests are spread over several clients,
# each kept at this many in flight; a new client is opened when all are that busy.
REQUESTS_PER_CLIENT = 4
MAX_CLIENTS = 64
_JSON = {"Content-Type": "application/json"}


def _json_body(body: JsonWithBlobs, request: dict[str, Any]) -> dict[str, Any]:
    """httpx arguments that send ``request`` as its pieces, data URLs as they are, with its length.

    Joining the pieces made a new copy of the 2 MB data URL for every request
    on the event loop (four per picture); sent in turn, they are not copied
    here. ``Content-Length`` given, httpx sends no chunked encoding.
    """
    parts = body.parts(request)

    async def pieces() -> Any:
        for part in parts:
            yield part

    return {"content": pieces(), "headers": {**_JSON, "Content-Length": str(sum(map(len, parts)))}}


def retry_after_seconds(headers: Mapping[str, str], *, now: datetime | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms``, or ``Retry-After`` (seconds or an HTTP date)."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def _schema_name(schema: Mapping[str, Any]) -> str:
    # response_format names must match ^[a-zA-Z0-9_-]{1,64}$.
    name = _SCHEMA_NAME.sub("_", str(schema.get("title") or "result")).strip("_")
    return (name or "result")[:64]


class OpenAIClient(ModelClient):
    """Chat with images, text embeddings and Whisper-style transcription on an OpenAI-compatible API.

    ``embedding_space_text`` is ``"openai:<embed model>"``. ``embedding_space_image``
    is None unless ``AD_ASSETS_OPENAI_IMAGE_EMBED_MODEL`` is set: OpenAI itself has
    no image embeddings, and ``embed_image`` raises ``ProviderUnavailableError``.
    """

    name = "openai"

    def __init__(self, settings: OpenAISettings, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self._transport = transport
        self._pool: list[httpx.AsyncClient] = []
        self._loads: list[int] = []
        self._http_loop: asyncio.AbstractEventLoop | None = None
        self._ssl: ssl.SSLContext | None = None
        self.embedding_space_text = f"openai:{settings.embed_model}"
        self.embedding_space_image = f"openai:{settings.image_embed_model}" if settings.image_embed_model else None
        self.embedding_dim_text = KNOWN_EMBED_DIMS.get(settings.embed_model)
        self.embedding_dim_image: int | None = None
        # api.openai.com deprecates max_tokens for chat; self-hosted servers still expect it.
        self._max_tokens_field = (
            "max_completion_tokens" if urlsplit(settings.base_url).hostname == "api.openai.com" else "max_tokens"
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "OpenAIClient":
        """Settings from ``env`` (see ``OpenAISettings``).

        Raises ``MissingCredentialsError`` when a remote endpoint has no key.
        """
        return cls(OpenAISettings.from_env(env))

    def model_for(self, primitive: str) -> str:
        """The model id ``primitive`` will use (``"none"`` for ``embed_image`` without an image embedder)."""
        models = {
            "chat_json": self.settings.chat_model,
            "embed_text": self.settings.embed_model,
            "embed_image": self.settings.image_embed_model or "none",
            "transcribe": self.settings.transcribe_model,
        }
        return models.get(primitive) or super().model_for(primitive)

    def __repr__(self) -> str:
        return f"OpenAIClient(base_url={self.settings.base_url!r}, chat_model={self.settings.chat_model!r})"

    # --- HTTP plumbing --------------------------------------------------------

    def _new_http(self) -> httpx.AsyncClient:
        if self._ssl is None and self._transport is None:
            # What httpx builds for each client by default (certifi's CAs, SSL_CERT_FILE/DIR honoured),
            # built once: loading the CAs takes ~17 ms of the event loop, and a run opens up to
            # MAX_CLIENTS pools. An SSLContext is safe to share between connections.
            self._ssl = httpx.create_ssl_context()
        return httpx.AsyncClient(
            base_url=self.settings.base_url + "/",
            headers={"Authorization": f"Bearer {self.settings.api_key}", "User-Agent": "ad-assets"},
            timeout=httpx.Timeout(self.settings.timeout_s, connect=self.settings.connect_timeout_s),
            transport=self._transport,
            verify=self._ssl if self._ssl is not None else True,
        )

    def _take_client(self) -> int:
        """The index of the least busy client, opening one when all carry ``REQUESTS_PER_CLIENT``."""
        # An httpx pool belongs to the event loop it was first used on; pipeline
        # runs use one loop per brand, so a new loop gets new pools.
        loop = asyncio.get_running_loop()
        if self._http_loop is not loop or any(http.is_closed for http in self._pool):
            self._pool, self._loads, self._http_loop = [], [], loop
        index = min(range(len(self._loads)), key=self._loads.__getitem__, default=-1)
        if index < 0 or (self._loads[index] >= REQUESTS_PER_CLIENT and len(self._pool) < MAX_CLIENTS):
            self._pool.append(self._new_http())
            self._loads.append(0)
            index = len(self._pool) - 1
        self._loads[index] += 1
        return index

    def _client(self) -> httpx.AsyncClient:
        """One client of the pool (the least busy); for callers that manage nothing else."""
        index = self._take_client()
        self._loads[index] -= 1
        return self._pool[index]

    async def aclose(self) -> None:
        """Close the connection pools."""
        pool, self._pool, self._loads = self._pool, [], []
        for http in pool:
            if not http.is_closed:
                await http.aclose()

    def _redact(self, text: str) -> str:
        key = self.settings.api_key
        if key and len(key) >= 4:
            text = text.replace(key, "***")
        return _BEARER.sub("Bearer ***", text)

    async def _post(self, path: str, *, what: str, **kwargs: Any) -> dict[str, Any]:
        started = time.perf_counter()
        index = self._take_client()
        pool, loads = self._pool, self._loads
        try:
            response = await pool[index].post(path, **kwargs)
        except httpx.TimeoutException as exc:
            # from None: the httpx exception holds the request, headers included.
            raise TransientProviderError(
                f"{what} timed out ({type(exc).__name__}) at {self.settings.base_url}"
            ) from None
        except httpx.TransportError as exc:
            raise TransientProviderError(
                f"{what} could not reach {self.settings.base_url}: {type(exc).__name__}: {self._redact(str(exc))}"
            ) from None
        finally:
            loads[index] -= 1  # the lists of this loop, even if a new loop replaced them meanwhile
        logger.debug("POST %s -> %s in %.3fs", path, response.status_code, time.perf_counter() - started)
        if response.status_code >= 400:
            raise self._status_error(response, what)
        try:
            body = loads_json(response.content)
        except ValueError:
            raise BadResponseError(
                f"{what}: HTTP {response.status_code} reply is not JSON "
                f"({response.headers.get('content-type', 'no content-type')}, {len(response.content)} bytes)"
            ) from None
        if not isinstance(body, dict):
            raise BadResponseError(f"{what}: reply is JSON but not an object")
        return body

    def _status_error(self, response: httpx.Response, what: str) -> AIMethodError:
        status = response.status_code
        message, code = self._error_fields(response)
        label = f" ({code})" if code else ""
        detail = f"{what}: HTTP {status}{label}: {message}"
        if status == 429:
            if code in _QUOTA_CODES:
                return QuotaExceededError(
                    f"{detail}. The account behind AD_ASSETS_OPENAI_API_KEY is out of quota or credit; "
                    "retrying will not help."
                )
            return TransientProviderError(detail, retry_after=retry_after_seconds(response.headers))
        if status in (408, 409) or status >= 500:
            return TransientProviderError(detail, retry_after=retry_after_seconds(response.headers))
        if status in (401, 403):
            return ProviderUnavailableError(
                f"{detail}. Check AD_ASSETS_OPENAI_API_KEY (or OPENAI_API_KEY) for {self.settings.base_url}."
            )
        if status == 404:
            return ProviderUnavailableError(
                f"{detail}. Check AD_ASSETS_OPENAI_BASE_URL ({self.settings.base_url}) and the model names."
            )
        if status in (400, 413, 415, 422):
            return InvalidInputError(detail)
        return ProviderUnavailableError(detail)

    def _error_fields(self, response: httpx.Response) -> tuple[str, str | None]:
        """The server's message and error code, from OpenAI's ``{"error": {...}}`` or vLLM/Ollama variants."""
        message: str | None = None
        code: str | None = None
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            error = body.get("error", body)
            if isinstance(error, dict):
                message = error.get("message") or error.get("detail")
                raw_code = error.get("code") or error.get("type")
                # vLLM puts the numeric HTTP status in "code"; only names are useful here.
                code = raw_code if isinstance(raw_code, str) else None
                if error.get("type") in _QUOTA_CODES:
                    code = error["type"]
            elif isinstance(error, str):
                message = error
        if not message:
            message = response.text.strip()[:300] or response.reason_phrase
        return self._redact(str(message)), code

    # --- chat -------------------------------------------------------------------

    async def chat_json(
        self,
        *,
        system: str,
        prompt: str,
        images: list[bytes],
        schema: dict[str, Any],
        max_tokens: int = 1024,
    ) -> ChatReply:
        """POST /chat/completions with the prompt and images as base64 data URLs; parse the JSON answer."""
        model = self.settings.chat_model
        if self.settings.json_mode == "schema":
            response_format: dict[str, Any] = {
                "type": "json_schema",
                "json_schema": {"name": _schema_name(schema), "schema": schema, "strict": False},
            }
            text = prompt
        else:
            # json_object mode requires the word JSON in the messages; the schema goes in the prompt.
            response_format = {"type": "json_object"}
            text = prompt + schema_instructions(schema)
        body = JsonWithBlobs()
        content: list[dict[str, Any]] = [{"type": "text", "text": text}]
        for image in images:
            # The data URL is built once per picture and spliced into each body as bytes.
            content.append({"type": "image_url", "image_url": {"url": body.blob(data_url(image))}})
        messages: list[dict[str, Any]] = []
        if system.strip():
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": content})
        request: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "response_format": response_format,
            self._max_tokens_field: max_tokens,
        }
        if self.settings.temperature is not None:
            request["temperature"] = self.settings.temperature
        source = f"openai {model}"
        reply = await self._post("chat/completions", **_json_body(body, request), what=f"{source} chat")
        try:
            choice = reply["choices"][0]
            message = choice["message"]
        except (KeyError, IndexError, TypeError) as exc:
            raise BadResponseError(f"{source} reply has no choices[0].message: {exc!r}") from exc
        if message.get("refusal"):
            raise BadResponseError(f"{source} refused: {message['refusal']}")
        answer = message.get("content")
        if isinstance(answer, list):  # some servers return content parts
            answer = "".join(part.get("text", "") for part in answer if isinstance(part, dict))
        if not isinstance(answer, str):
            raise BadResponseError(f"{source} reply has no message content")
        finish = choice.get("finish_reason")
        if finish == "content_filter":
            raise BadResponseError(f"{source} withheld its answer (finish_reason=content_filter)")
        data = parse_json_reply(answer, schema, source=source, truncated=finish == "length")
        usage = reply.get("usage") or {}
        return ChatReply(
            data=data,
            usage=Usage(
                requests=1,
                input_tokens=int(usage.get("prompt_tokens") or 0),
                output_tokens=int(usage.get("completion_tokens") or 0),
                images=len(images),
            ),
            model=model,
        )

    # --- embeddings ---------------------------------------------------------------

    async def embed_text(self, texts: list[str]) -> EmbeddingReply:
        """POST /embeddings in batches of ``embed_batch``; vectors in input order."""
        model = self.settings.embed_model
        for index, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise InvalidInputError(f"text #{index} is empty; embeddings need non-empty text")
        vectors: list[list[float]] = []
        tokens = 0
        requests = 0
        for start in range(0, len(texts), self.settings.embed_batch):
            batch = texts[start : start + self.settings.embed_batch]
            body = await self._post(
                "embeddings", json={"model": model, "input": batch}, what=f"openai {model} embeddings"
            )
            vectors.extend(_embedding_vectors(body, expected=len(batch), source=f"openai {model}"))
            tokens += int((body.get("usage") or {}).get("prompt_tokens") or 0)
            requests += 1
        return _embedding_reply(vectors, model, Usage(requests=requests, input_tokens=tokens), self.embedding_dim_text)

    async def embed_image(self, images: list[bytes]) -> EmbeddingReply:
        """Image vectors from a multimodal embedder on vLLM (best effort), else ``ProviderUnavailableError``.

        OpenAI's API embeds text only. When ``AD_ASSETS_OPENAI_IMAGE_EMBED_MODEL`` is
        set, each image is sent to ``/embeddings`` in vLLM's chat-style form
        (``messages`` with an ``image_url`` data URL and ``image_embed_prompt``), one
        request per image. Other servers may not accept that form.
        """
        model = self.settings.image_embed_model
        if not model:
            raise ProviderUnavailableError(
                "openai cannot embed images: the OpenAI embeddings API takes text only. Use the bedrock provider "
                "(Titan Multimodal) for image embeddings, or set AD_ASSETS_OPENAI_IMAGE_EMBED_MODEL to a "
                "multimodal embedding model served by vLLM."
            )
        vectors: list[list[float]] = []
        tokens = 0
        for image in images:
            blobs = JsonWithBlobs()
            request = {
                "model": model,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": blobs.blob(data_url(image))}},
                            {"type": "text", "text": self.settings.image_embed_prompt},
                        ],
                    }
                ],
                "encoding_format": "float",
            }
            body = await self._post("embeddings", **_json_body(blobs, request), what=f"openai {model} image embeddings")
            vectors.extend(_embedding_vectors(body, expected=1, source=f"openai {model}"))
            tokens += int((body.get("usage") or {}).get("prompt_tokens") or 0)
        usage = Usage(requests=len(images), input_tokens=tokens, images=len(images))
        return _embedding_reply(vectors, model, usage, self.embedding_dim_image)

    # --- transcription ---------------------------------------------------------------

    async def transcribe(self, audio_wav: bytes, *, language: str | None = None) -> TranscriptReply:
        """POST /audio/transcriptions (``verbose_json``, word and segment timestamps).

        Whisper reports no per-word confidence. Each word gets ``exp(avg_logprob)``
        of the segment containing it when segments are returned (the geometric mean
        token probability of that segment), and 1.0 otherwise;
        ``extra["confidence_source"]`` says which.
        """
        info = read_wav_info(audio_wav)
        model = self.settings.transcribe_model
        form: dict[str, Any] = {
            "model": model,
            "response_format": "verbose_json",
            "timestamp_granularities[]": ["word", "segment"],
        }
        if language:
            # Whisper takes ISO-639-1 ("en"), not a locale ("en-US").
            form["language"] = language.split("-")[0].lower()
        body = await self._post(
            "audio/transcriptions",
            data=form,
            files={"file": ("audio.wav", audio_wav, "audio/wav")},
            what=f"openai {model} transcription",
        )
        words, confidence_source = _transcript_words(body, source=f"openai {model}")
        duration = body.get("duration")
        try:
            audio_seconds = float(duration) if duration is not None else info.duration_s
        except (TypeError, ValueError):
            audio_seconds = info.duration_s
        return TranscriptReply(
            words=words,
            usage=Usage(requests=1, audio_seconds=audio_seconds),
            model=model,
            language=body.get("language") or language,
            extra={"text": body.get("text", ""), "confidence_source": confidence_source},
        )


def _embedding_vectors(body: Mapping[str, Any], *, expected: int, source: str) -> list[list[float]]:
    data = body.get("data")
    if not isinstance(data, list) or len(data) != expected:
        got = len(data) if isinstance(data, list) else "no"
        raise BadResponseError(f"{source} returned {got} embeddings for {expected} inputs")
    try:
        ordered = sorted(data, key=lambda item: int(item.get("index", 0)))
        return [[float(x) for x in item["embedding"]] for item in ordered]
    except (KeyError, TypeError, ValueError) as exc:
        raise BadResponseError(f"{source} returned embeddings not in the documented shape: {exc!r}") from exc


def _embedding_reply(vectors: list[list[float]], model: str, usage: Usage, known_dim: int | None) -> EmbeddingReply:
    dims = {len(v) for v in vectors}
    if len(dims) > 1:
        raise BadResponseError(f"openai {model} returned vectors of different lengths {sorted(dims)}")
    dim = dims.pop() if dims else (known_dim or 0)
    return EmbeddingReply(vectors=vectors, dim=dim, usage=usage, model=model)


def _transcript_words(body: Mapping[str, Any], *, source: str) -> tuple[list[Word], str]:
    raw_words = body.get("words")
    if raw_words is None:
        if str(body.get("text", "")).strip():
            raise BadResponseError(
                f"{source} returned text without word timestamps; use a model that supports "
                "timestamp_granularities=word with verbose_json (e.g. whisper-1)"
            )
        return [], "none"
    segments = []
    for segment in body.get("segments") or []:
        try:
            segments.append((float(segment["start"]), float(segment["end"]), float(segment["avg_logprob"])))
        except (KeyError, TypeError, ValueError):
            continue
    words = []
    try:
        for item in raw_words:
            start, end = float(item["start"]), float(item["end"])
            confidence = _segment_confidence(start, end, segments)
            words.append(Word(text=str(item["word"]).strip(), start=start, end=end, confidence=confidence))
    except (KeyError, TypeError, ValueError) as exc:
        raise BadResponseError(f"{source} returned words not in the documented shape: {exc!r}") from exc
    words.sort(key=lambda w: (w.start, w.end))
    return words, "segment_avg_logprob" if segments else "none"


def _segment_confidence(start: float, end: float, segments: list[tuple[float, float, float]]) -> float:
    """exp(avg_logprob) of the segment holding the word's midpoint (or the nearest one); 1.0 without segments."""
    if not segments:
        return 1.0
    middle = (start + end) / 2

    def distance(segment: tuple[float, float, float]) -> float:
        seg_start, seg_end, _ = segment
        return 0.0 if seg_start <= middle <= seg_end else min(abs(middle - seg_start), abs(middle - seg_end))

    return min(1.0, max(0.0, math.exp(min(segments, key=distance)[2])))
