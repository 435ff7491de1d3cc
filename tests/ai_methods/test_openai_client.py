"""Replay tests of ``OpenAIClient`` against a real HTTP server on loopback.

Why a real server: what matters is what goes over the wire (the Authorization
header, base64 data URLs, the JSON schema, a multipart upload with repeated
``timestamp_granularities[]`` fields) and how real status codes, headers and
bodies come back as typed errors. The server answers with recorded bodies in
OpenAI's documented shapes and records every request; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import socket
import traceback
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest

from ai_methods.errors import (
    BadResponseError,
    ConfigurationError,
    InvalidInputError,
    MissingCredentialsError,
    ProviderUnavailableError,
    QuotaExceededError,
    TransientProviderError,
)
from ai_methods.providers.openai_compat import OpenAIClient, retry_after_seconds
from ai_methods.providers.provider_settings import LOCAL_DUMMY_API_KEY, OpenAISettings
from tests.ai_methods.conftest import silent_wav, tiny_png
from tests.ai_methods.fake_servers import (
    FakeOpenAIServer,
    ReceivedRequest,
    Reply,
    load_recording,
    openai_server,  # noqa: F401 - fixture
)

API_KEY = "sk-test-0123456789abcdef0123456789abcdef"
CAPTION_SCHEMA = {
    "title": "ad caption",
    "type": "object",
    "properties": {"caption": {"type": "string"}, "mood": {"type": "string"}},
    "required": ["caption", "mood"],
}


def client_for(server: FakeOpenAIServer, **env: str) -> OpenAIClient:
    return OpenAIClient.from_env({"AD_ASSETS_OPENAI_BASE_URL": server.base_url, "AD_ASSETS_OPENAI_API_KEY": API_KEY, **env})


async def ask(client: OpenAIClient, images: list[bytes]) -> Any:
    return await client.chat_json(
        system="You describe ads.", prompt="Caption this ad.", images=images, schema=CAPTION_SCHEMA, max_tokens=300
    )


def chat_reply_with(content: Any, finish_reason: str = "stop", refusal: str | None = None) -> Reply:
    body = load_recording("openai_chat_completion")
    body["choices"][0]["message"].update(content=content, refusal=refusal)
    body["choices"][0]["finish_reason"] = finish_reason
    return Reply(200, body)


# --- settings -------------------------------------------------------------------------------------


def test_a_remote_endpoint_without_a_key_names_both_settings() -> None:
    with pytest.raises(MissingCredentialsError) as caught:
        OpenAIClient.from_env({})
    assert "AD_ASSETS_OPENAI_API_KEY" in str(caught.value) and "OPENAI_API_KEY" in str(caught.value)


@pytest.mark.parametrize("base_url", ["http://127.0.0.1:11434/v1", "http://localhost:8000/v1", "http://10.0.0.5:8000/v1"])
def test_a_local_endpoint_needs_no_key(base_url: str) -> None:
    client = OpenAIClient.from_env({"AD_ASSETS_OPENAI_BASE_URL": base_url})
    assert client.settings.api_key == LOCAL_DUMMY_API_KEY


def test_defaults_and_the_openai_api_key_fallback() -> None:
    settings = OpenAISettings.from_env({"OPENAI_API_KEY": API_KEY})
    assert settings.api_key == API_KEY
    assert (settings.base_url, settings.chat_model, settings.embed_model, settings.transcribe_model) == (
        "https://api.openai.com/v1", "gpt-4o-mini", "text-embedding-3-small", "whisper-1",
    )
    client = OpenAIClient(settings)
    assert client.embedding_space_text == "openai:text-embedding-3-small" and client.embedding_dim_text == 1536
    assert client.embedding_space_image is None
    assert API_KEY not in repr(settings) and API_KEY not in repr(client)


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"AD_ASSETS_OPENAI_JSON_MODE": "xml"}, "AD_ASSETS_OPENAI_JSON_MODE"),
        ({"AD_ASSETS_OPENAI_TIMEOUT_S": "soon"}, "AD_ASSETS_OPENAI_TIMEOUT_S"),
        ({"AD_ASSETS_OPENAI_BASE_URL": "api.openai.com"}, "AD_ASSETS_OPENAI_BASE_URL"),
    ],
)
def test_malformed_settings_are_named(env: dict[str, str], setting: str) -> None:
    with pytest.raises(ConfigurationError, match=setting):
        OpenAISettings.from_env({"OPENAI_API_KEY": API_KEY, **env})


def test_model_for_names_the_model_of_each_primitive_before_any_call() -> None:
    client = OpenAIClient.from_env({"OPENAI_API_KEY": API_KEY, "AD_ASSETS_OPENAI_CHAT_MODEL": "gpt-4.1-mini"})
    assert [client.model_for(p) for p in ("chat_json", "embed_text", "embed_image", "transcribe")] == [
        "gpt-4.1-mini", "text-embedding-3-small", "none", "whisper-1",
    ]


# --- chat ---------------------------------------------------------------------------------------------


async def test_chat_sends_model_schema_and_image_data_url(openai_server: FakeOpenAIServer) -> None:
    client, image = client_for(openai_server), tiny_png()
    reply = await ask(client, [image])
    await client.aclose()

    (request,) = openai_server.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    sent = request.json()
    assert sent["model"] == "gpt-4o-mini"
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "ad_caption", "schema": CAPTION_SCHEMA, "strict": False},
    }
    assert sent["messages"][0] == {"role": "system", "content": "You describe ads."}
    text, image_part = sent["messages"][1]["content"]
    assert text == {"type": "text", "text": "Caption this ad."}
    assert image_part == {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(image).decode()}}
    assert (sent["temperature"], sent["max_tokens"]) == (0.0, 300)

    recorded = load_recording("openai_chat_completion")
    assert reply.data == json.loads(recorded["choices"][0]["message"]["content"])
    assert reply.usage.as_dict() == {"requests": 1, "input_tokens": 8532, "output_tokens": 61, "images": 1, "audio_seconds": 0.0}
    assert reply.model == "gpt-4o-mini"


async def test_json_object_mode_puts_the_schema_in_the_prompt(openai_server: FakeOpenAIServer) -> None:
    client = client_for(openai_server, AD_ASSETS_OPENAI_JSON_MODE="object", AD_ASSETS_OPENAI_TEMPERATURE="none")
    await ask(client, [])
    sent = openai_server.requests[0].json()
    assert sent["response_format"] == {"type": "json_object"}
    assert "temperature" not in sent
    assert '"required": [' in sent["messages"][1]["content"][0]["text"]


async def test_api_openai_com_gets_max_completion_tokens() -> None:
    seen: list[dict[str, Any]] = []

    def answer(request: httpx.Request) -> httpx.Response:  # in-process transport: no socket, no network
        seen.append(json.loads(request.content))
        return httpx.Response(200, json=load_recording("openai_chat_completion"))

    client = OpenAIClient(OpenAISettings(api_key=API_KEY), transport=httpx.MockTransport(answer))
    await ask(client, [])
    assert seen[0]["max_completion_tokens"] == 300 and "max_tokens" not in seen[0]


@pytest.mark.parametrize(
    ("reply", "error", "message"),
    [
        (chat_reply_with("Sure! ```json\n{\"caption\": \"A cafe.\", \"mood\": \"calm\"}\n```"), None, None),
        (chat_reply_with([{"type": "text", "text": "{\"caption\": \"A cafe.\", \"mood\": \"calm\"}"}]), None, None),
        (chat_reply_with("I can't help with that."), BadResponseError, "did not answer with a JSON object"),
        (chat_reply_with('{"caption": "A ca', finish_reason="length"), BadResponseError, "max_tokens"),
        (chat_reply_with(None, refusal="I'm sorry, I can't assist."), BadResponseError, "refused"),
        (chat_reply_with('{"caption": "A cafe."}'), BadResponseError, "required keys"),
        (Reply(200, "<html>gateway</html>"), BadResponseError, "not JSON"),
        (Reply(200, {"object": "chat.completion", "choices": []}), BadResponseError, "choices"),
    ],
)
async def test_chat_answers_are_extracted_or_refused(
    openai_server: FakeOpenAIServer, reply: Reply, error: type | None, message: str | None
) -> None:
    openai_server.route("POST", r"/v1/chat/completions", reply)
    client = client_for(openai_server)
    if error is None:
        assert (await ask(client, [])).data == {"caption": "A cafe.", "mood": "calm"}
    else:
        with pytest.raises(error, match=message):
            await ask(client, [])


async def test_an_unknown_image_type_is_refused_before_sending(openai_server: FakeOpenAIServer) -> None:
    with pytest.raises(InvalidInputError, match="PNG, JPEG"):
        await ask(client_for(openai_server), [b"BM a bitmap"])
    assert openai_server.requests == []


# --- embeddings ---------------------------------------------------------------------------------------


async def test_embeddings_request_and_vectors(openai_server: FakeOpenAIServer) -> None:
    client = client_for(openai_server)
    reply = await client.embed_text(["fresh coffee", "order now"])
    (request,) = openai_server.requests
    assert request.path == "/v1/embeddings"
    assert request.json() == {"model": "text-embedding-3-small", "input": ["fresh coffee", "order now"]}
    recorded = load_recording("openai_embeddings")
    assert reply.vectors == [item["embedding"] for item in recorded["data"]]
    assert (reply.dim, reply.model, reply.usage.input_tokens, reply.usage.requests) == (1536, "text-embedding-3-small", 8, 1)


async def test_embeddings_are_batched_and_ordered_by_index(openai_server: FakeOpenAIServer) -> None:
    def reversed_order(request: ReceivedRequest) -> Reply:
        inputs = request.json()["input"]
        data = [{"object": "embedding", "index": i, "embedding": [float(text.split()[-1]), 0.5]} for i, text in enumerate(inputs)]
        return Reply(200, {"object": "list", "data": data[::-1], "model": "m", "usage": {"prompt_tokens": 2, "total_tokens": 2}})

    openai_server.route("POST", r"/v1/embeddings", reversed_order)
    client = OpenAIClient(
        OpenAISettings(base_url=openai_server.base_url, api_key=API_KEY, embed_batch=2)
    )
    reply = await client.embed_text([f"text {i}" for i in range(5)])
    assert [v[0] for v in reply.vectors] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert [len(r.json()["input"]) for r in openai_server.requests] == [2, 2, 1]
    assert (reply.dim, reply.usage.requests, reply.usage.input_tokens) == (2, 3, 6)


async def test_embedding_edge_cases(openai_server: FakeOpenAIServer) -> None:
    client = client_for(openai_server)
    empty = await client.embed_text([])
    assert (empty.vectors, empty.dim) == ([], 1536)
    with pytest.raises(InvalidInputError, match="#0 is empty"):
        await client.embed_text([""])
    openai_server.route("POST", r"/v1/embeddings", Reply(200, {"object": "list", "data": [], "model": "m"}))
    with pytest.raises(BadResponseError, match="0 embeddings for 1 inputs"):
        await client.embed_text(["fresh coffee"])


async def test_image_embeddings_are_unavailable_on_openai(openai_server: FakeOpenAIServer) -> None:
    with pytest.raises(ProviderUnavailableError, match="AD_ASSETS_OPENAI_IMAGE_EMBED_MODEL"):
        await client_for(openai_server).embed_image([tiny_png()])
    assert openai_server.requests == []


async def test_image_embeddings_through_a_vllm_style_multimodal_embedder(openai_server: FakeOpenAIServer) -> None:
    recorded = load_recording("openai_embeddings")
    one = dict(recorded, data=recorded["data"][:1], model="TIGER-Lab/VLM2Vec-Full")
    openai_server.route("POST", r"/v1/embeddings", Reply(200, one))
    client = client_for(openai_server, AD_ASSETS_OPENAI_IMAGE_EMBED_MODEL="TIGER-Lab/VLM2Vec-Full")
    assert client.embedding_space_image == "openai:TIGER-Lab/VLM2Vec-Full"
    image = tiny_png()
    reply = await client.embed_image([image])
    sent = openai_server.requests[0].json()
    assert sent["model"] == "TIGER-Lab/VLM2Vec-Full"
    assert sent["messages"][0]["content"][0] == {
        "type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(image).decode()},
    }
    assert reply.vectors == [recorded["data"][0]["embedding"]] and reply.usage.images == 1


# --- transcription --------------------------------------------------------------------------------------


async def test_transcription_uploads_multipart_and_parses_words(openai_server: FakeOpenAIServer) -> None:
    client, audio = client_for(openai_server), silent_wav(1.0)
    reply = await client.transcribe(audio, language="en-US")

    (request,) = openai_server.requests
    assert request.path == "/v1/audio/transcriptions"
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    form = request.multipart()
    assert form["file"] == [("audio.wav", audio)]
    assert form["model"] == [(None, b"whisper-1")]
    assert form["response_format"] == [(None, b"verbose_json")]
    assert form["timestamp_granularities[]"] == [(None, b"word"), (None, b"segment")]
    assert form["language"] == [(None, b"en")]

    assert [w.text for w in reply.words] == ["Fresh", "coffee", "every", "morning", "Order", "now"]
    assert (reply.words[0].start, reply.words[0].end) == (0.18, 0.62)
    # Confidence comes from the containing segment's avg_logprob (-0.1625, then -0.4011).
    assert reply.words[0].confidence == pytest.approx(math.exp(-0.1625))
    assert reply.words[-1].confidence == pytest.approx(math.exp(-0.4011))
    assert reply.extra["confidence_source"] == "segment_avg_logprob"
    assert reply.usage.audio_seconds == 3.2 and reply.language == "english" and reply.model == "whisper-1"


async def test_transcription_without_segments_reports_full_confidence(openai_server: FakeOpenAIServer) -> None:
    body = load_recording("openai_transcription_verbose")
    del body["segments"], body["duration"]
    openai_server.route("POST", r"/v1/audio/transcriptions", Reply(200, body))
    reply = await client_for(openai_server).transcribe(silent_wav(2.0))
    assert {w.confidence for w in reply.words} == {1.0}
    assert reply.extra["confidence_source"] == "none"
    assert reply.usage.audio_seconds == pytest.approx(2.0)  # from the WAV header when the server omits duration
    assert "language" not in openai_server.requests[0].multipart()


async def test_transcription_text_without_word_timestamps_is_a_bad_response(openai_server: FakeOpenAIServer) -> None:
    openai_server.route("POST", r"/v1/audio/transcriptions", Reply(200, {"text": "Fresh coffee."}))
    with pytest.raises(BadResponseError, match="word timestamps"):
        await client_for(openai_server).transcribe(silent_wav(0.5))


async def test_transcription_needs_a_wav(openai_server: FakeOpenAIServer) -> None:
    with pytest.raises(InvalidInputError, match="not a WAV"):
        await client_for(openai_server).transcribe(b"OggS not a wav")
    assert openai_server.requests == []


# --- errors -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "recording", "headers", "expected", "message", "retry_after"),
    [
        (429, "openai_error_insufficient_quota", {}, QuotaExceededError, "insufficient_quota", None),
        (
            429, "openai_error_rate_limit", {"retry-after-ms": "120", "retry-after": "1"},
            TransientProviderError, "rate_limit_exceeded", 0.12,
        ),
        (429, "openai_error_rate_limit", {"Retry-After": "7"}, TransientProviderError, "Rate limit reached", 7.0),
        (500, "openai_error_server", {}, TransientProviderError, "HTTP 500", None),
        (503, "openai_error_server", {"Retry-After": "2"}, TransientProviderError, "HTTP 503", 2.0),
        (401, "openai_error_invalid_api_key", {}, ProviderUnavailableError, "check AD_ASSETS_OPENAI_API_KEY", None),
        (403, "openai_error_invalid_api_key", {}, ProviderUnavailableError, "AD_ASSETS_OPENAI_API_KEY", None),
        (400, "openai_error_invalid_request", {}, InvalidInputError, "unsupported MIME type 'image/tiff'", None),
        (404, "openai_error_server", {}, ProviderUnavailableError, "AD_ASSETS_OPENAI_BASE_URL", None),
    ],
)
async def test_http_errors_map_to_typed_errors(
    openai_server: FakeOpenAIServer,
    status: int,
    recording: str,
    headers: dict[str, str],
    expected: type,
    message: str,
    retry_after: float | None,
) -> None:
    openai_server.fail_next(1, status, load_recording(recording), headers)
    with pytest.raises(expected, match=f"(?i){message}") as caught:
        await ask(client_for(openai_server), [])
    if expected is TransientProviderError:
        assert caught.value.retry_after == retry_after


async def test_the_client_never_retries_by_itself(openai_server: FakeOpenAIServer) -> None:
    openai_server.fail_next(2, 500, load_recording("openai_error_server"))
    client = client_for(openai_server)
    for _ in range(2):
        with pytest.raises(TransientProviderError):
            await client.embed_text(["fresh coffee"])
    reply = await client.embed_text(["fresh coffee"])
    assert len(reply.vectors) == 1 and len(openai_server.requests) == 3


async def test_a_non_json_error_page_still_maps_by_status(openai_server: FakeOpenAIServer) -> None:
    openai_server.fail_next(1, 502, "<html><body>502 Bad Gateway</body></html>", {"Content-Type": "text/html"})
    with pytest.raises(TransientProviderError, match="502 Bad Gateway"):
        await ask(client_for(openai_server), [])


async def test_a_timeout_is_transient(openai_server: FakeOpenAIServer) -> None:
    openai_server.hang_next(1)
    with pytest.raises(TransientProviderError, match="timed out"):
        await ask(client_for(openai_server, AD_ASSETS_OPENAI_TIMEOUT_S="0.3"), [])


async def test_a_refused_connection_is_transient() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago and has no listener now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = OpenAIClient.from_env({"AD_ASSETS_OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1"})
    with pytest.raises(TransientProviderError, match="could not reach"):
        await client.embed_text(["fresh coffee"])


@pytest.mark.parametrize("status", [400, 401, 500])
async def test_the_api_key_never_appears_in_errors_or_logs(
    openai_server: FakeOpenAIServer, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    # A hostile or careless server echoes the Authorization header back in its error.
    def echo(request: ReceivedRequest) -> Reply:
        return Reply(status, {"error": {"message": f"bad header {request.headers['authorization']} ({API_KEY})", "code": None}})

    openai_server.route("POST", r"/v1/chat/completions", echo)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(Exception) as caught:
        await ask(client_for(openai_server), [tiny_png()])
    assert openai_server.requests[0].headers["authorization"] == f"Bearer {API_KEY}"  # it was sent
    rendered = "".join(traceback.format_exception(caught.value)) + repr(caught.value)
    assert API_KEY not in rendered and "Bearer ***" in rendered
    assert API_KEY not in caplog.text


def test_one_client_serves_successive_event_loops(openai_server: FakeOpenAIServer) -> None:
    # Pipeline runs use one event loop per brand; the client must not reuse a pool bound to a dead loop.
    client = client_for(openai_server)
    for _ in range(2):
        assert asyncio.run(client.embed_text(["fresh coffee"])).dim == 1536
    assert len(openai_server.requests) == 2


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:30 GMT"}, 30.0),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_seconds(headers: dict[str, str], expected: float | None) -> None:
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=timezone.utc)
    assert retry_after_seconds(headers, now=now) == expected
