"""Settings of the remote model clients, read from an environment mapping.

Each client gets one frozen dataclass built by ``from_env(env)``, where ``env``
is any ``Mapping[str, str]`` (``os.environ`` in production, a plain dict in
tests), so nothing here reads the process environment behind the caller's back.
A setting that is absent takes the documented default; a setting the provider
cannot work without raises ``MissingCredentialsError`` naming it; a malformed
value raises ``ConfigurationError`` naming the setting and the bad value.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from ai_methods.errors import ConfigurationError, MissingCredentialsError

# --- Bedrock defaults -------------------------------------------------------

# A global cross-Region inference profile: Claude Sonnet 4.6 is callable from
# every commercial Region through it, without on-demand access in the caller's
# own Region (listed in Anthropic's "Claude on Amazon Bedrock" page).
DEFAULT_BEDROCK_CHAT_MODEL = "global.anthropic.claude-sonnet-4-6"
# Titan Multimodal Embeddings G1: text and images in one 1024-d space, so a
# text query finds images.
DEFAULT_BEDROCK_EMBED_MODEL = "amazon.titan-embed-image-v1"
DEFAULT_BEDROCK_TEXT_EMBED_MODEL = "amazon.titan-embed-text-v2:0"
DEFAULT_BEDROCK_EMBED_DIM = 1024
DEFAULT_BEDROCK_EMBED_CONCURRENCY = 4
BEDROCK_CONNECT_TIMEOUT_S = 10.0
# Claude can take a minute on a long structured answer with several images.
BEDROCK_READ_TIMEOUT_S = 120.0
DEFAULT_TRANSCRIBE_PREFIX = "ad-assets/transcribe/"
DEFAULT_TRANSCRIBE_POLL_S = 2.0
# Transcribe batch jobs queue; a short ad clip usually finishes in well under a minute.
# Kept below the call path's default remote timeout (120 s) so this clearer error wins.
DEFAULT_TRANSCRIBE_TIMEOUT_S = 110.0
# boto3 is synchronous: each AWS call in flight holds a worker thread and a pooled connection.
DEFAULT_BEDROCK_MAX_IN_FLIGHT = 32

# --- OpenAI-compatible defaults ---------------------------------------------

DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
DEFAULT_OPENAI_CHAT_MODEL = "gpt-4o-mini"
DEFAULT_OPENAI_EMBED_MODEL = "text-embedding-3-small"
DEFAULT_OPENAI_TRANSCRIBE_MODEL = "whisper-1"
DEFAULT_OPENAI_IMAGE_EMBED_PROMPT = "Represent the given image."
OPENAI_CONNECT_TIMEOUT_S = 10.0
OPENAI_TIMEOUT_S = 120.0
# OpenAI accepts up to 2048 inputs per embeddings request; smaller batches keep
# one failure cheap and bodies small for self-hosted servers.
OPENAI_EMBED_BATCH = 256
# Sent when a local server (Ollama, vLLM without --api-key) needs no key; such
# servers ignore the header but some clients insist on one.
LOCAL_DUMMY_API_KEY = "sk-local-no-key"


def _get(env: Mapping[str, str], name: str) -> str | None:
    """The stripped value of ``name``, or None when absent or blank."""
    value = env.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def _float(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value < minimum:
        raise ConfigurationError(f"{name} must be >= {minimum}, got {raw!r}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 1) -> int:
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigurationError(f"{name} must be >= {minimum}, got {raw!r}")
    return value


def _temperature(env: Mapping[str, str], name: str) -> float | None:
    # "none" lets a user drop the parameter for models that reject it
    # (reasoning models that only accept their default temperature).
    raw = _get(env, name)
    if raw is None:
        return 0.0
    if raw.lower() in {"none", "omit", "default"}:
        return None
    try:
        return float(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number or 'none', got {raw!r}") from None


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    raw = _get(env, name)
    if raw is None:
        return default
    if raw.lower() not in allowed:
        raise ConfigurationError(f"{name} must be one of {', '.join(allowed)}; got {raw!r}")
    return raw.lower()


@dataclass(frozen=True)
class BedrockSettings:
    """How ``BedrockClient`` reaches Bedrock, Titan and Transcribe.

    Environment (defaults in brackets):

    - ``AWS_REGION`` / ``AWS_DEFAULT_REGION``: required.
    - ``AWS_PROFILE``: optional named profile; otherwise the standard credential chain.
    - ``AD_ASSETS_BEDROCK_CHAT_MODEL`` [``global.anthropic.claude-sonnet-4-6``]: model id
      or inference profile used through the Converse API.
    - ``AD_ASSETS_BEDROCK_EMBED_MODEL`` [``amazon.titan-embed-image-v1``]: multimodal
      embedder for images, and for texts while ``text_space`` is ``multimodal``.
    - ``AD_ASSETS_BEDROCK_TEXT_EMBED_MODEL`` [``amazon.titan-embed-text-v2:0``]: text-only
      embedder, used for texts when ``AD_ASSETS_BEDROCK_TEXT_SPACE=text``.
    - ``AD_ASSETS_BEDROCK_TEXT_SPACE`` [``multimodal``]: ``multimodal`` or ``text``.
    - ``AD_ASSETS_BEDROCK_EMBED_CONCURRENCY`` [4]: Titan calls in flight within one batch.
    - ``AD_ASSETS_BEDROCK_MAX_IN_FLIGHT`` [32]: AWS calls in flight per client (worker threads
      and pooled connections); keep it at or above the call path's bedrock concurrency.
    - ``AD_ASSETS_BEDROCK_TEMPERATURE`` [0]: or ``none`` to leave it to the model.
    - ``AD_ASSETS_BEDROCK_TIMEOUT_S`` [120]: read timeout of one call.
    - ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` / ``AWS_ENDPOINT_URL_S3`` /
      ``AWS_ENDPOINT_URL_TRANSCRIBE`` / ``AWS_ENDPOINT_URL``: endpoint overrides.
    - ``AD_ASSETS_TRANSCRIBE_BUCKET``: S3 bucket Transcribe reads the audio from and
      writes the transcript to; required only by ``transcribe``.
    - ``AD_ASSETS_TRANSCRIBE_PREFIX`` [``ad-assets/transcribe/``], ``AD_ASSETS_TRANSCRIBE_POLL_S``
      [2], ``AD_ASSETS_TRANSCRIBE_TIMEOUT_S`` [110], ``AD_ASSETS_TRANSCRIBE_LANGUAGE``
      [unset: Transcribe identifies the language].
    """

    region: str
    profile: str | None = None
    chat_model: str = DEFAULT_BEDROCK_CHAT_MODEL
    embed_model: str = DEFAULT_BEDROCK_EMBED_MODEL
    text_embed_model: str = DEFAULT_BEDROCK_TEXT_EMBED_MODEL
    text_space: Literal["multimodal", "text"] = "multimodal"
    embed_dim: int = DEFAULT_BEDROCK_EMBED_DIM
    embed_concurrency: int = DEFAULT_BEDROCK_EMBED_CONCURRENCY
    max_in_flight: int = DEFAULT_BEDROCK_MAX_IN_FLIGHT
    temperature: float | None = 0.0
    connect_timeout_s: float = BEDROCK_CONNECT_TIMEOUT_S
    read_timeout_s: float = BEDROCK_READ_TIMEOUT_S
    runtime_endpoint_url: str | None = None
    s3_endpoint_url: str | None = None
    transcribe_endpoint_url: str | None = None
    transcribe_bucket: str | None = None
    transcribe_prefix: str = DEFAULT_TRANSCRIBE_PREFIX
    transcribe_poll_s: float = DEFAULT_TRANSCRIBE_POLL_S
    transcribe_timeout_s: float = DEFAULT_TRANSCRIBE_TIMEOUT_S
    transcribe_language: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "BedrockSettings":
        """Read the settings; raise ``MissingCredentialsError`` naming ``AWS_REGION`` when no region is set."""
        region = _get(env, "AWS_REGION") or _get(env, "AWS_DEFAULT_REGION")
        if region is None:
            raise MissingCredentialsError(
                "bedrock needs an AWS region: set AWS_REGION (or AWS_DEFAULT_REGION), e.g. AWS_REGION=us-east-1"
            )
        shared_endpoint = _get(env, "AWS_ENDPOINT_URL")
        prefix = _get(env, "AD_ASSETS_TRANSCRIBE_PREFIX") or DEFAULT_TRANSCRIBE_PREFIX
        return cls(
            region=region,
            profile=_get(env, "AWS_PROFILE"),
            chat_model=_get(env, "AD_ASSETS_BEDROCK_CHAT_MODEL") or DEFAULT_BEDROCK_CHAT_MODEL,
            embed_model=_get(env, "AD_ASSETS_BEDROCK_EMBED_MODEL") or DEFAULT_BEDROCK_EMBED_MODEL,
            text_embed_model=_get(env, "AD_ASSETS_BEDROCK_TEXT_EMBED_MODEL") or DEFAULT_BEDROCK_TEXT_EMBED_MODEL,
            text_space=_choice(  # type: ignore[arg-type]
                env, "AD_ASSETS_BEDROCK_TEXT_SPACE", "multimodal", ("multimodal", "text")
            ),
            embed_concurrency=_int(env, "AD_ASSETS_BEDROCK_EMBED_CONCURRENCY", DEFAULT_BEDROCK_EMBED_CONCURRENCY),
            max_in_flight=_int(env, "AD_ASSETS_BEDROCK_MAX_IN_FLIGHT", DEFAULT_BEDROCK_MAX_IN_FLIGHT),
            temperature=_temperature(env, "AD_ASSETS_BEDROCK_TEMPERATURE"),
            read_timeout_s=_float(env, "AD_ASSETS_BEDROCK_TIMEOUT_S", BEDROCK_READ_TIMEOUT_S, minimum=0.001),
            runtime_endpoint_url=_get(env, "AWS_ENDPOINT_URL_BEDROCK_RUNTIME") or shared_endpoint,
            s3_endpoint_url=_get(env, "AWS_ENDPOINT_URL_S3") or shared_endpoint,
            transcribe_endpoint_url=_get(env, "AWS_ENDPOINT_URL_TRANSCRIBE") or shared_endpoint,
            transcribe_bucket=_get(env, "AD_ASSETS_TRANSCRIBE_BUCKET"),
            transcribe_prefix=prefix if prefix.endswith("/") else prefix + "/",
            transcribe_poll_s=_float(env, "AD_ASSETS_TRANSCRIBE_POLL_S", DEFAULT_TRANSCRIBE_POLL_S),
            transcribe_timeout_s=_float(env, "AD_ASSETS_TRANSCRIBE_TIMEOUT_S", DEFAULT_TRANSCRIBE_TIMEOUT_S),
            transcribe_language=_get(env, "AD_ASSETS_TRANSCRIBE_LANGUAGE"),
        )


def is_local_base_url(base_url: str) -> bool:
    """True when ``base_url`` points at this machine or a private network (Ollama, a vLLM box).

    Such servers commonly run without an API key, so a missing key is not an error there.
    """
    host = (urlsplit(base_url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private


@dataclass(frozen=True)
class OpenAISettings:
    """How ``OpenAIClient`` reaches an OpenAI-compatible endpoint (OpenAI, vLLM, Ollama).

    Environment (defaults in brackets):

    - ``AD_ASSETS_OPENAI_BASE_URL`` [``https://api.openai.com/v1``].
    - ``AD_ASSETS_OPENAI_API_KEY``, falling back to ``OPENAI_API_KEY``: required unless
      the base URL is loopback or a private address.
    - ``AD_ASSETS_OPENAI_CHAT_MODEL`` [``gpt-4o-mini``], ``AD_ASSETS_OPENAI_EMBED_MODEL``
      [``text-embedding-3-small``], ``AD_ASSETS_OPENAI_TRANSCRIBE_MODEL`` [``whisper-1``].
    - ``AD_ASSETS_OPENAI_IMAGE_EMBED_MODEL`` [unset: no image embeddings] and
      ``AD_ASSETS_OPENAI_IMAGE_EMBED_PROMPT`` [``Represent the given image.``]: a
      multimodal embedder served by vLLM's chat-style ``/embeddings``.
    - ``AD_ASSETS_OPENAI_JSON_MODE`` [``schema``]: ``schema`` sends the JSON schema as
      ``response_format``; ``object`` asks only for a JSON object (older servers).
    - ``AD_ASSETS_OPENAI_TEMPERATURE`` [0]: or ``none`` for models that reject it.
    - ``AD_ASSETS_OPENAI_TIMEOUT_S`` [120]: read timeout of one request.
    """

    base_url: str = DEFAULT_OPENAI_BASE_URL
    # repr=False: a settings object printed in a log or traceback must not leak the key.
    api_key: str = field(default=LOCAL_DUMMY_API_KEY, repr=False)
    chat_model: str = DEFAULT_OPENAI_CHAT_MODEL
    embed_model: str = DEFAULT_OPENAI_EMBED_MODEL
    transcribe_model: str = DEFAULT_OPENAI_TRANSCRIBE_MODEL
    image_embed_model: str | None = None
    image_embed_prompt: str = DEFAULT_OPENAI_IMAGE_EMBED_PROMPT
    json_mode: Literal["schema", "object"] = "schema"
    temperature: float | None = 0.0
    timeout_s: float = OPENAI_TIMEOUT_S
    connect_timeout_s: float = OPENAI_CONNECT_TIMEOUT_S
    embed_batch: int = OPENAI_EMBED_BATCH

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "OpenAISettings":
        """Read the settings; raise ``MissingCredentialsError`` when a remote endpoint has no key."""
        base_url = (_get(env, "AD_ASSETS_OPENAI_BASE_URL") or DEFAULT_OPENAI_BASE_URL).rstrip("/")
        if urlsplit(base_url).scheme not in {"http", "https"}:
            raise ConfigurationError(
                f"AD_ASSETS_OPENAI_BASE_URL must be an http(s) URL such as {DEFAULT_OPENAI_BASE_URL}; got {base_url!r}"
            )
        api_key = _get(env, "AD_ASSETS_OPENAI_API_KEY") or _get(env, "OPENAI_API_KEY")
        if api_key is None:
            if not is_local_base_url(base_url):
                raise MissingCredentialsError(
                    f"openai needs an API key for {base_url}: set AD_ASSETS_OPENAI_API_KEY (or OPENAI_API_KEY)"
                )
            api_key = LOCAL_DUMMY_API_KEY
        return cls(
            base_url=base_url,
            api_key=api_key,
            chat_model=_get(env, "AD_ASSETS_OPENAI_CHAT_MODEL") or DEFAULT_OPENAI_CHAT_MODEL,
            embed_model=_get(env, "AD_ASSETS_OPENAI_EMBED_MODEL") or DEFAULT_OPENAI_EMBED_MODEL,
            transcribe_model=_get(env, "AD_ASSETS_OPENAI_TRANSCRIBE_MODEL") or DEFAULT_OPENAI_TRANSCRIBE_MODEL,
            image_embed_model=_get(env, "AD_ASSETS_OPENAI_IMAGE_EMBED_MODEL"),
            image_embed_prompt=_get(env, "AD_ASSETS_OPENAI_IMAGE_EMBED_PROMPT") or DEFAULT_OPENAI_IMAGE_EMBED_PROMPT,
            json_mode=_choice(  # type: ignore[arg-type]
                env, "AD_ASSETS_OPENAI_JSON_MODE", "schema", ("schema", "object")
            ),
            temperature=_temperature(env, "AD_ASSETS_OPENAI_TEMPERATURE"),
            timeout_s=_float(env, "AD_ASSETS_OPENAI_TIMEOUT_S", OPENAI_TIMEOUT_S, minimum=0.001),
        )
