"""Replay tests of ``BedrockClient`` without touching AWS.

Why two techniques: botocore's ``Stubber`` validates our request parameters
against the real service model (a misspelt Converse field fails here, not in
production) and lets us replay recorded bodies; the loopback ``FakeBedrockServer``
checks what the Stubber cannot: the endpoint override, SigV4-signed requests on
a real socket, error parsing from HTTP, timeouts, and the bounded concurrency of
a Titan batch. Nothing here resolves real credentials or reaches the network.
"""

from __future__ import annotations

import base64
import io
import json
import re
import socket
import threading
from typing import Any

import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from ai_methods.errors import (
    BadResponseError,
    ConfigurationError,
    InvalidInputError,
    MissingCredentialsError,
    ProviderUnavailableError,
    QuotaExceededError,
    TransientProviderError,
)
from ai_methods.providers.bedrock import BedrockClient, parse_transcribe_words
from ai_methods.providers.payloads import schema_instructions
from ai_methods.providers.provider_settings import DEFAULT_BEDROCK_CHAT_MODEL, BedrockSettings
from tests.ai_methods.conftest import silent_wav, tiny_png
from tests.ai_methods.fake_servers import (
    FakeBedrockServer,
    ReceivedRequest,
    Reply,
    aws_error,
    bedrock_server,  # noqa: F401 - fixture
    load_recording,
)

CAPTION_SCHEMA = {
    "title": "caption",
    "type": "object",
    "properties": {"caption": {"type": "string"}, "mood": {"type": "string"}},
    "required": ["caption", "mood"],
}
CREDS = {"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}

pytestmark = pytest.mark.usefixtures("isolated_aws")


def streaming(body: dict[str, Any] | bytes) -> StreamingBody:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return StreamingBody(io.BytesIO(raw), len(raw))


def client_from(**env: str) -> BedrockClient:
    return BedrockClient.from_env({**CREDS, **env})


# --- settings and credentials -----------------------------------------------------------------


def test_missing_region_names_aws_region() -> None:
    with pytest.raises(MissingCredentialsError, match="AWS_REGION"):
        BedrockClient.from_env({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})


def test_missing_credentials_names_keys_and_profile() -> None:
    with pytest.raises(MissingCredentialsError) as caught:
        BedrockClient.from_env({"AWS_REGION": "eu-west-1"})
    assert "AWS_ACCESS_KEY_ID" in str(caught.value) and "AWS_PROFILE" in str(caught.value)


def test_half_a_key_pair_names_the_missing_half() -> None:
    with pytest.raises(MissingCredentialsError, match="AWS_SECRET_ACCESS_KEY"):
        BedrockClient.from_env({"AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "AKIA"})


def test_unknown_profile_names_aws_profile() -> None:
    with pytest.raises(MissingCredentialsError, match="AWS_PROFILE"):
        BedrockClient.from_env({"AWS_REGION": "eu-west-1", "AWS_PROFILE": "nowhere"})


def test_credentials_from_the_standard_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-process-env")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    client = BedrockClient.from_env({"AWS_REGION": "eu-west-1"})
    assert client.settings.region == "eu-west-1"


def test_defaults_and_botocore_config() -> None:
    client = client_from()
    assert client.settings.chat_model == DEFAULT_BEDROCK_CHAT_MODEL
    assert client.embedding_space_text == client.embedding_space_image == "bedrock:amazon.titan-embed-image-v1"
    assert client.embedding_dim_text == client.embedding_dim_image == 1024
    config = client.runtime_client.meta.config
    # Retries belong to the call path: botocore must make exactly one attempt.
    assert config.retries == {"total_max_attempts": 1, "mode": "standard"}
    assert (config.connect_timeout, config.read_timeout) == (10.0, 120.0)


def test_text_space_text_uses_titan_text_v2() -> None:
    client = client_from(AD_ASSETS_BEDROCK_TEXT_SPACE="text")
    assert client.embedding_space_text == "bedrock:amazon.titan-embed-text-v2:0"
    assert client.embedding_space_image == "bedrock:amazon.titan-embed-image-v1"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AD_ASSETS_BEDROCK_TEXT_SPACE", "both"),
        ("AD_ASSETS_BEDROCK_EMBED_CONCURRENCY", "0"),
        ("AD_ASSETS_TRANSCRIBE_POLL_S", "often"),
    ],
)
def test_a_bad_setting_value_is_named(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        client_from(**{name: value})


def test_model_for_names_the_model_of_each_primitive_before_any_call() -> None:
    client = client_from(AD_ASSETS_BEDROCK_CHAT_MODEL="us.anthropic.claude-haiku-4-5-20251001-v1:0")
    assert [client.model_for(p) for p in ("chat_json", "embed_text", "embed_image", "transcribe")] == [
        "us.anthropic.claude-haiku-4-5-20251001-v1:0",
        "amazon.titan-embed-image-v1",
        "amazon.titan-embed-image-v1",
        "amazon-transcribe",
    ]
    assert client_from(AD_ASSETS_BEDROCK_TEXT_SPACE="text").model_for("embed_text") == "amazon.titan-embed-text-v2:0"


def test_endpoint_override_from_the_mapping() -> None:
    client = client_from(AWS_ENDPOINT_URL_BEDROCK_RUNTIME="http://127.0.0.1:4010", AWS_ENDPOINT_URL="http://127.0.0.1:4566")
    assert client.runtime_client.meta.endpoint_url == "http://127.0.0.1:4010"
    assert client.s3_client.meta.endpoint_url == "http://127.0.0.1:4566"
    assert client.transcribe_client.meta.endpoint_url == "http://127.0.0.1:4566"


def test_endpoint_override_from_the_process_environment_is_honoured_by_botocore(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "http://127.0.0.1:4011")
    assert client_from().runtime_client.meta.endpoint_url == "http://127.0.0.1:4011"


# --- Converse (Stubber) -------------------------------------------------------------------------


def converse_request(image: bytes, prompt: str, max_tokens: int = 512) -> dict[str, Any]:
    return {
        "modelId": DEFAULT_BEDROCK_CHAT_MODEL,
        "system": [{"text": "You describe ads."}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"image": {"format": "png", "source": {"bytes": image}}},
                    {"text": prompt + schema_instructions(CAPTION_SCHEMA)},
                ],
            }
        ],
        "inferenceConfig": {"maxTokens": max_tokens, "temperature": 0.0},
    }


async def ask(client: BedrockClient, image: bytes, max_tokens: int = 512) -> Any:
    return await client.chat_json(
        system="You describe ads.", prompt="Caption this ad.", images=[image], schema=CAPTION_SCHEMA, max_tokens=max_tokens
    )


async def test_chat_json_sends_a_valid_converse_request_and_parses_the_reply() -> None:
    client, image = client_from(), tiny_png()
    recorded = load_recording("bedrock_converse_caption")
    with Stubber(client.runtime_client) as stub:
        stub.add_response("converse", recorded, converse_request(image, "Caption this ad."))
        reply = await ask(client, image)
        stub.assert_no_pending_responses()
    assert reply.data == json.loads(recorded["output"]["message"]["content"][0]["text"])
    assert reply.model == DEFAULT_BEDROCK_CHAT_MODEL
    assert reply.usage.as_dict() == {
        "requests": 1, "input_tokens": 1612, "output_tokens": 74, "images": 1, "audio_seconds": 0.0,
    }


async def test_chat_json_extracts_json_from_a_fenced_answer() -> None:
    client, image = client_from(), tiny_png()
    with Stubber(client.runtime_client) as stub:
        stub.add_response("converse", load_recording("bedrock_converse_fenced"), converse_request(image, "Caption this ad."))
        reply = await ask(client, image)
    assert reply.data["mood"] == "warm"


async def test_chat_json_ignores_reasoning_blocks_before_the_answer() -> None:
    client, image = client_from(), tiny_png()
    recorded = load_recording("bedrock_converse_caption")
    recorded["output"]["message"]["content"].insert(
        0, {"reasoningContent": {"reasoningText": {"text": "The image shows a cafe {maybe}.", "signature": "sig"}}}
    )
    with Stubber(client.runtime_client) as stub:
        stub.add_response("converse", recorded, converse_request(image, "Caption this ad."))
        reply = await ask(client, image)
    assert reply.data["caption"].startswith("A barista")


@pytest.mark.parametrize(
    ("text", "stop_reason", "message"),
    [
        ("I cannot describe this image.", "end_turn", "did not answer with a JSON object"),
        ('{"caption": "A barista pours', "max_tokens", "max_tokens"),
        ('{"caption": "A barista"}', "end_turn", "required keys"),
    ],
)
async def test_chat_json_unusable_answers_are_bad_responses(text: str, stop_reason: str, message: str) -> None:
    client, image = client_from(), tiny_png()
    recorded = load_recording("bedrock_converse_caption")
    recorded["output"]["message"]["content"] = [{"text": text}]
    recorded["stopReason"] = stop_reason
    with Stubber(client.runtime_client) as stub:
        stub.add_response("converse", recorded, converse_request(image, "Caption this ad."))
        with pytest.raises(BadResponseError, match=message):
            await ask(client, image)


async def test_chat_json_refuses_an_unknown_image_type_before_calling() -> None:
    client = client_from()
    with Stubber(client.runtime_client) as stub:
        with pytest.raises(InvalidInputError, match="PNG, JPEG"):
            await ask(client, b"II*\x00 a tiff")
        stub.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("code", "status", "message", "expected"),
    [
        ("ThrottlingException", 429, "Too many requests, please wait before trying again.", TransientProviderError),
        ("ServiceUnavailableException", 503, "Service unavailable", TransientProviderError),
        ("ModelNotReadyException", 429, "Model is not ready", TransientProviderError),
        ("InternalServerException", 500, "Internal error", TransientProviderError),
        ("ModelTimeoutException", 408, "Model timed out", TransientProviderError),
        ("ValidationException", 400, "messages.0.content.0.image.source.bytes: image exceeds 5 MB", InvalidInputError),
        ("AccessDeniedException", 403, "You don't have access to the model with the specified model ID.", ProviderUnavailableError),
        ("UnrecognizedClientException", 403, "The security token included in the request is invalid.", ProviderUnavailableError),
        ("ResourceNotFoundException", 404, "Model not found", ProviderUnavailableError),
        ("ModelErrorException", 424, "The model failed to process the request", BadResponseError),
    ],
)
async def test_converse_errors_map_to_typed_errors(code: str, status: int, message: str, expected: type) -> None:
    client, image = client_from(), tiny_png()
    with Stubber(client.runtime_client) as stub:
        stub.add_client_error("converse", service_error_code=code, service_message=message, http_status_code=status)
        with pytest.raises(expected) as caught:
            await ask(client, image)
    assert code in str(caught.value) and message in str(caught.value)


async def test_a_model_id_that_needs_an_inference_profile_points_at_the_setting() -> None:
    client, image = client_from(), tiny_png()
    with Stubber(client.runtime_client) as stub:
        stub.add_client_error(
            "converse",
            service_error_code="ValidationException",
            service_message="Invocation of model ID anthropic.claude-sonnet-4-6 with on-demand throughput isn't "
            "supported. Retry your request with the ID or ARN of an inference profile that contains this model.",
            http_status_code=400,
        )
        with pytest.raises(ProviderUnavailableError, match="AD_ASSETS_BEDROCK_CHAT_MODEL"):
            await ask(client, image)


# --- Titan embeddings (Stubber) ------------------------------------------------------------------


def invoke_request(model: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"modelId": model, "body": json.dumps(body), "contentType": "application/json", "accept": "application/json"}


async def test_embed_image_sends_the_titan_body_and_reads_the_vector() -> None:
    client, image = client_from(), tiny_png()
    recorded = load_recording("bedrock_titan_embed_image")
    body = {"inputImage": base64.b64encode(image).decode(), "embeddingConfig": {"outputEmbeddingLength": 1024}}
    with Stubber(client.runtime_client) as stub:
        stub.add_response(
            "invoke_model",
            {"body": streaming(recorded), "contentType": "application/json"},
            invoke_request("amazon.titan-embed-image-v1", body),
        )
        reply = await client.embed_image([image])
    assert reply.vectors == [recorded["embedding"]]
    assert (reply.dim, reply.model) == (1024, "amazon.titan-embed-image-v1")
    assert reply.usage.as_dict() == {"requests": 1, "input_tokens": 0, "output_tokens": 0, "images": 1, "audio_seconds": 0.0}


async def test_embed_text_uses_the_multimodal_space_by_default() -> None:
    client = client_from(AD_ASSETS_BEDROCK_EMBED_CONCURRENCY="1")  # Stubber answers in call order
    recorded = load_recording("bedrock_titan_embed_text")
    with Stubber(client.runtime_client) as stub:
        for text in ("fresh coffee", "order now"):
            stub.add_response(
                "invoke_model",
                {"body": streaming(recorded), "contentType": "application/json"},
                invoke_request(
                    "amazon.titan-embed-image-v1",
                    {"inputText": text, "embeddingConfig": {"outputEmbeddingLength": 1024}},
                ),
            )
        reply = await client.embed_text(["fresh coffee", "order now"])
        stub.assert_no_pending_responses()
    assert len(reply.vectors) == 2 and reply.dim == 1024
    assert reply.usage.requests == 2 and reply.usage.input_tokens == 14


async def test_embed_text_in_the_text_space_uses_titan_text_v2() -> None:
    client = client_from(AD_ASSETS_BEDROCK_TEXT_SPACE="text")
    recorded = load_recording("bedrock_titan_text_v2")
    with Stubber(client.runtime_client) as stub:
        stub.add_response(
            "invoke_model",
            {"body": streaming(recorded), "contentType": "application/json"},
            invoke_request("amazon.titan-embed-text-v2:0", {"inputText": "fresh coffee", "dimensions": 1024, "normalize": True}),
        )
        reply = await client.embed_text(["fresh coffee"])
    assert reply.model == "amazon.titan-embed-text-v2:0" and reply.vectors == [recorded["embedding"]]


async def test_embed_edge_cases() -> None:
    client = client_from()
    empty = await client.embed_text([])
    assert (empty.vectors, empty.dim, empty.usage.requests) == ([], 1024, 0)
    with pytest.raises(InvalidInputError, match="#1 is empty"):
        await client.embed_text(["ok", "  "])


async def test_quota_refusal_is_a_quota_error() -> None:
    client = client_from()
    with Stubber(client.runtime_client) as stub:
        stub.add_client_error(
            "invoke_model", service_error_code="ServiceQuotaExceededException", service_message="quota", http_status_code=400
        )
        with pytest.raises(QuotaExceededError):
            await client.embed_text(["fresh coffee"])


@pytest.mark.parametrize("raw", [b"<html>busy</html>", b'{"message": "Malformed input request"}'])
async def test_an_unreadable_titan_body_is_a_bad_response(raw: bytes) -> None:
    client = client_from()
    with Stubber(client.runtime_client) as stub:
        stub.add_response("invoke_model", {"body": streaming(raw), "contentType": "application/json"})
        with pytest.raises(BadResponseError):
            await client.embed_text(["fresh coffee"])


# --- real HTTP through the endpoint override ---------------------------------------------------------


def http_client(server: FakeBedrockServer, **env: str) -> BedrockClient:
    return client_from(AWS_ENDPOINT_URL_BEDROCK_RUNTIME=server.origin, **env)


async def test_titan_batch_over_http_keeps_order_and_bounds_concurrency(bedrock_server: FakeBedrockServer) -> None:
    # The barrier only opens when 8 requests are in flight at once: proves the batch
    # really runs 8-wide (wider than asyncio's default executor on a small machine);
    # max_in_flight proves it never runs wider.
    barrier = threading.Barrier(8, timeout=10)
    recorded = load_recording("bedrock_titan_embed_text")

    def numbered(request: ReceivedRequest) -> Reply:
        barrier.wait()
        body = dict(recorded, embedding=[float(request.json()["inputText"].split()[-1])] + recorded["embedding"][1:])
        return Reply(200, body)

    bedrock_server.route("POST", r"/model/[^/]+/invoke", numbered)
    client = http_client(bedrock_server, AD_ASSETS_BEDROCK_EMBED_CONCURRENCY="8")
    reply = await client.embed_text([f"text {i}" for i in range(16)])
    await client.aclose()
    assert [vector[0] for vector in reply.vectors] == [float(i) for i in range(16)]
    assert bedrock_server.max_in_flight == 8
    requests = bedrock_server.requests_to(r"/model/amazon\.titan-embed-image-v1/invoke")
    assert len(requests) == 16
    assert all("Credential=testing/" in r.headers["authorization"] for r in requests)


async def test_converse_over_http_sends_the_image_and_schema(bedrock_server: FakeBedrockServer) -> None:
    client, image = http_client(bedrock_server), tiny_png()
    reply = await ask(client, image)
    (request,) = bedrock_server.requests
    sent = request.json()
    assert request.path.endswith("/converse")
    assert sent["messages"][0]["content"][0]["image"] == {"format": "png", "source": {"bytes": base64.b64encode(image).decode()}}
    assert '"required": [' in sent["messages"][0]["content"][1]["text"]
    assert sent["system"] == [{"text": "You describe ads."}]
    assert reply.data["setting"] == "cafe"


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (429, "ThrottlingException", TransientProviderError),
        (500, "InternalServerException", TransientProviderError),
        (503, "ServiceUnavailableException", TransientProviderError),
        (400, "ValidationException", InvalidInputError),
    ],
)
async def test_http_errors_map_and_are_not_retried_by_botocore(
    bedrock_server: FakeBedrockServer, status: int, code: str, expected: type
) -> None:
    bedrock_server.fail_next(1, *aws_error(status, code, "scripted failure"))
    with pytest.raises(expected, match=code):
        await http_client(bedrock_server).embed_text(["fresh coffee"])
    assert len(bedrock_server.requests) == 1


async def test_a_read_timeout_is_transient(bedrock_server: FakeBedrockServer) -> None:
    bedrock_server.hang_next(1)
    with pytest.raises(TransientProviderError, match="timeout"):
        await http_client(bedrock_server, AD_ASSETS_BEDROCK_TIMEOUT_S="0.3").embed_text(["fresh coffee"])


async def test_a_refused_connection_is_transient() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago and has no listener now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = client_from(AWS_ENDPOINT_URL_BEDROCK_RUNTIME=f"http://127.0.0.1:{port}")
    with pytest.raises(TransientProviderError, match="Could not connect"):
        await client.embed_text(["fresh coffee"])


# --- Transcribe -----------------------------------------------------------------------------------


def test_parse_transcribe_words_from_the_recorded_transcript() -> None:
    words = parse_transcribe_words(load_recording("bedrock_transcribe_transcript"))
    assert [w.text for w in words] == ["Fresh", "coffee", "every", "morning", "Order", "now"]
    assert (words[0].start, words[0].end, words[0].confidence) == (0.18, 0.61, 0.999)
    assert all(0.0 <= w.confidence <= 1.0 and w.start < w.end for w in words)


def test_a_transcript_in_another_shape_is_a_bad_response() -> None:
    with pytest.raises(BadResponseError):
        parse_transcribe_words({"results": {"items": [{"type": "pronunciation", "alternatives": []}]}})


class CallLog:
    """Parameters of every call a boto3 client made, captured before the Stubber answers."""

    def __init__(self, *clients: Any) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        for client in clients:
            client.meta.events.register("before-parameter-build.*.*", self._record)

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls.append((model.name, dict(params)))

    def params(self, operation: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == operation]


def job(status: str, **extra: Any) -> dict[str, Any]:
    return {"TranscriptionJob": {"TranscriptionJobName": "ad-assets-job", "TranscriptionJobStatus": status, **extra}}


def stub_upload(s3: Stubber, bucket: str, audio: bytes) -> None:
    s3.add_response(
        "put_object", {"ETag": '"etag"'}, {"Bucket": bucket, "Key": ANY, "Body": audio, "ContentType": "audio/wav"}
    )


def stub_no_job_yet(transcribe: Stubber) -> None:
    """The lookup by job name before starting: Transcribe knows no such job."""
    transcribe.add_client_error(
        "get_transcription_job",
        service_error_code="BadRequestException",
        service_message="The requested job couldn't be found. Check the job name and try again.",
        http_status_code=400,
        expected_params={"TranscriptionJobName": ANY},
    )


def stub_cleanup(s3: Stubber, bucket: str) -> None:
    for _ in range(2):
        s3.add_response("delete_object", {}, {"Bucket": bucket, "Key": ANY})


async def test_transcribe_uploads_runs_a_job_polls_and_reads_the_transcript() -> None:
    client = client_from(AD_ASSETS_TRANSCRIBE_BUCKET="ads-audio", AD_ASSETS_TRANSCRIBE_POLL_S="0")
    audio = silent_wav(1.5)
    transcript = json.dumps(load_recording("bedrock_transcribe_transcript")).encode()
    log = CallLog(client.s3_client, client.transcribe_client)
    with Stubber(client.s3_client) as s3, Stubber(client.transcribe_client) as transcribe:
        stub_no_job_yet(transcribe)
        stub_upload(s3, "ads-audio", audio)
        transcribe.add_response(
            "start_transcription_job",
            job("QUEUED"),
            {
                "TranscriptionJobName": ANY,
                "Media": ANY,
                "MediaFormat": "wav",
                "MediaSampleRateHertz": 16000,
                "LanguageCode": "en-US",
                "OutputBucketName": "ads-audio",
                "OutputKey": ANY,
            },
        )
        transcribe.add_response("get_transcription_job", job("IN_PROGRESS"), {"TranscriptionJobName": ANY})
        transcribe.add_response("get_transcription_job", job("COMPLETED", LanguageCode="en-US"), {"TranscriptionJobName": ANY})
        s3.add_response("get_object", {"Body": streaming(transcript)}, {"Bucket": "ads-audio", "Key": ANY})
        stub_cleanup(s3, "ads-audio")
        reply = await client.transcribe(audio, language="en")
        s3.assert_no_pending_responses()
        transcribe.assert_no_pending_responses()

    assert [w.text for w in reply.words] == ["Fresh", "coffee", "every", "morning", "Order", "now"]
    assert reply.language == "en-US" and reply.model == "amazon-transcribe"
    assert reply.usage.audio_seconds == pytest.approx(1.5) and reply.usage.requests == 1
    # One job name and one pair of keys flow through every call, and both objects are deleted.
    (upload,) = log.params("PutObject")
    (start,) = log.params("StartTranscriptionJob")
    name = start["TranscriptionJobName"]
    assert upload["Key"] == f"ad-assets/transcribe/{name}.wav"
    assert start["Media"] == {"MediaFileUri": f"s3://ads-audio/ad-assets/transcribe/{name}.wav"}
    assert start["OutputKey"] == f"ad-assets/transcribe/{name}.json"
    assert {p["TranscriptionJobName"] for p in log.params("GetTranscriptionJob")} == {name}
    assert [p["Key"] for p in log.params("GetObject")] == [start["OutputKey"]]
    assert sorted(p["Key"] for p in log.params("DeleteObject")) == sorted([upload["Key"], start["OutputKey"]])
    assert reply.extra["job_name"] == name


async def test_transcribe_without_a_language_asks_transcribe_to_identify_it() -> None:
    client = client_from(AD_ASSETS_TRANSCRIBE_BUCKET="ads-audio", AD_ASSETS_TRANSCRIBE_POLL_S="0")
    audio = silent_wav(0.5)
    transcript = json.dumps(load_recording("bedrock_transcribe_transcript")).encode()
    log = CallLog(client.transcribe_client)
    with Stubber(client.s3_client) as s3, Stubber(client.transcribe_client) as transcribe:
        stub_no_job_yet(transcribe)
        stub_upload(s3, "ads-audio", audio)
        transcribe.add_response("start_transcription_job", job("IN_PROGRESS"))
        transcribe.add_response("get_transcription_job", job("COMPLETED"))
        s3.add_response("get_object", {"Body": streaming(transcript)})
        stub_cleanup(s3, "ads-audio")
        reply = await client.transcribe(audio)
    (start,) = log.params("StartTranscriptionJob")
    assert start["IdentifyLanguage"] is True and "LanguageCode" not in start
    assert reply.language == "en-US"  # from the transcript's language_code


async def test_a_failed_job_is_invalid_input_and_still_cleans_up() -> None:
    client = client_from(AD_ASSETS_TRANSCRIBE_BUCKET="ads-audio", AD_ASSETS_TRANSCRIBE_POLL_S="0")
    audio = silent_wav(0.5)
    reason = "The media format provided does not match the detected media format."
    with Stubber(client.s3_client) as s3, Stubber(client.transcribe_client) as transcribe:
        stub_no_job_yet(transcribe)
        stub_upload(s3, "ads-audio", audio)
        transcribe.add_response("start_transcription_job", job("IN_PROGRESS"))
        transcribe.add_response("get_transcription_job", job("FAILED", FailureReason=reason))
        stub_cleanup(s3, "ads-audio")
        with pytest.raises(InvalidInputError, match="does not match the detected media format"):
            await client.transcribe(audio, language="en-US")
        s3.assert_no_pending_responses()


async def test_a_job_that_outlives_the_timeout_is_transient_and_keeps_its_objects() -> None:
    client = client_from(
        AD_ASSETS_TRANSCRIBE_BUCKET="ads-audio", AD_ASSETS_TRANSCRIBE_POLL_S="0", AD_ASSETS_TRANSCRIBE_TIMEOUT_S="0"
    )
    audio = silent_wav(0.5)
    log = CallLog(client.s3_client)
    with Stubber(client.s3_client) as s3, Stubber(client.transcribe_client) as transcribe:
        stub_no_job_yet(transcribe)
        stub_upload(s3, "ads-audio", audio)
        transcribe.add_response("start_transcription_job", job("IN_PROGRESS"))
        transcribe.add_response("get_transcription_job", job("IN_PROGRESS"))
        with pytest.raises(TransientProviderError, match="AD_ASSETS_TRANSCRIBE_TIMEOUT_S"):
            await client.transcribe(audio, language="en-US")
        s3.assert_no_pending_responses()
    assert log.params("DeleteObject") == []  # the running job still reads the audio; the retry waits for it


async def test_a_retry_reuses_the_job_it_started() -> None:
    """After a timeout the call path retries: the job is found by name, not started (and paid) again."""
    client = client_from(
        AD_ASSETS_TRANSCRIBE_BUCKET="ads-audio", AD_ASSETS_TRANSCRIBE_POLL_S="0", AD_ASSETS_TRANSCRIBE_TIMEOUT_S="0"
    )
    audio = silent_wav(0.5)
    transcript = json.dumps(load_recording("bedrock_transcribe_transcript")).encode()
    log = CallLog(client.s3_client, client.transcribe_client)
    with Stubber(client.s3_client) as s3, Stubber(client.transcribe_client) as transcribe:
        stub_no_job_yet(transcribe)
        stub_upload(s3, "ads-audio", audio)
        transcribe.add_response("start_transcription_job", job("IN_PROGRESS"))
        transcribe.add_response("get_transcription_job", job("IN_PROGRESS"))
        with pytest.raises(TransientProviderError):
            await client.transcribe(audio, language="en-US")
        # The retry: the lookup finds the job, which then completes.
        transcribe.add_response("get_transcription_job", job("IN_PROGRESS"), {"TranscriptionJobName": ANY})
        transcribe.add_response("get_transcription_job", job("COMPLETED", LanguageCode="en-US"))
        s3.add_response("get_object", {"Body": streaming(transcript)})
        stub_cleanup(s3, "ads-audio")
        reply = await client.transcribe(audio, language="en-US")
        s3.assert_no_pending_responses()
        transcribe.assert_no_pending_responses()
    assert len(log.params("StartTranscriptionJob")) == 1 and len(log.params("PutObject")) == 1
    (start,) = log.params("StartTranscriptionJob")
    assert {p["TranscriptionJobName"] for p in log.params("GetTranscriptionJob")} == {start["TranscriptionJobName"]}
    assert reply.extra["job_name"] == start["TranscriptionJobName"] and [w.text for w in reply.words][:2] == ["Fresh", "coffee"]


async def test_a_job_started_meanwhile_is_waited_for() -> None:
    """Two attempts race: the second start is refused with ConflictException, and that job is the answer."""
    client = client_from(AD_ASSETS_TRANSCRIBE_BUCKET="ads-audio", AD_ASSETS_TRANSCRIBE_POLL_S="0")
    audio = silent_wav(0.5)
    transcript = json.dumps(load_recording("bedrock_transcribe_transcript")).encode()
    with Stubber(client.s3_client) as s3, Stubber(client.transcribe_client) as transcribe:
        stub_no_job_yet(transcribe)
        stub_upload(s3, "ads-audio", audio)
        transcribe.add_client_error(
            "start_transcription_job", service_error_code="ConflictException",
            service_message="The requested job name already exists. Use a different job name.", http_status_code=400,
        )  # fmt: skip
        transcribe.add_response("get_transcription_job", job("COMPLETED", LanguageCode="en-US"))
        s3.add_response("get_object", {"Body": streaming(transcript)})
        stub_cleanup(s3, "ads-audio")
        reply = await client.transcribe(audio, language="en-US")
        transcribe.assert_no_pending_responses()
    assert reply.language == "en-US" and reply.words


async def test_a_finished_job_whose_transcript_is_gone_is_run_again() -> None:
    """A job completed, its transcript read and deleted, the result then lost (a killed worker):
    the name is taken, so the job is deleted and started anew rather than failing forever."""
    client = client_from(AD_ASSETS_TRANSCRIBE_BUCKET="ads-audio", AD_ASSETS_TRANSCRIBE_POLL_S="0")
    audio = silent_wav(0.5)
    transcript = json.dumps(load_recording("bedrock_transcribe_transcript")).encode()
    log = CallLog(client.transcribe_client)
    with Stubber(client.s3_client) as s3, Stubber(client.transcribe_client) as transcribe:
        transcribe.add_response("get_transcription_job", job("COMPLETED"))
        s3.add_client_error("head_object", service_error_code="404", http_status_code=404)
        transcribe.add_response("delete_transcription_job", {}, {"TranscriptionJobName": ANY})
        stub_upload(s3, "ads-audio", audio)
        transcribe.add_response("start_transcription_job", job("IN_PROGRESS"))
        transcribe.add_response("get_transcription_job", job("COMPLETED", LanguageCode="en-US"))
        s3.add_response("get_object", {"Body": streaming(transcript)})
        stub_cleanup(s3, "ads-audio")
        reply = await client.transcribe(audio, language="en-US")
        s3.assert_no_pending_responses()
        transcribe.assert_no_pending_responses()
    (deleted,) = log.params("DeleteTranscriptionJob")
    (start,) = log.params("StartTranscriptionJob")
    assert deleted["TranscriptionJobName"] == start["TranscriptionJobName"] and reply.words


def test_the_job_name_follows_the_audio_and_the_request() -> None:
    from ai_methods.providers.bedrock import transcribe_job_name

    audio, other = silent_wav(0.5), silent_wav(0.6)
    request = {"MediaFormat": "wav", "LanguageCode": "en-US"}
    name = transcribe_job_name(audio, request)
    assert name == transcribe_job_name(audio, dict(request)) and re.fullmatch(r"ad-assets-[0-9a-f]{40}", name)
    assert name != transcribe_job_name(other, request)
    assert name != transcribe_job_name(audio, {**request, "LanguageCode": "de-DE"})


async def test_transcribe_throttling_is_transient() -> None:
    client = client_from(AD_ASSETS_TRANSCRIBE_BUCKET="ads-audio")
    audio = silent_wav(0.5)
    with Stubber(client.s3_client) as s3, Stubber(client.transcribe_client) as transcribe:
        stub_no_job_yet(transcribe)
        stub_upload(s3, "ads-audio", audio)
        transcribe.add_client_error(
            "start_transcription_job", service_error_code="LimitExceededException", http_status_code=400
        )
        stub_cleanup(s3, "ads-audio")
        with pytest.raises(TransientProviderError, match="LimitExceededException"):
            await client.transcribe(audio, language="en-US")


async def test_transcribe_needs_a_bucket_and_a_wav() -> None:
    with pytest.raises(MissingCredentialsError, match="AD_ASSETS_TRANSCRIBE_BUCKET"):
        await client_from().transcribe(silent_wav(0.5))
    with pytest.raises(InvalidInputError, match="not a WAV"):
        await client_from(AD_ASSETS_TRANSCRIBE_BUCKET="ads-audio").transcribe(b"ID3\x04 an mp3")
    with pytest.raises(InvalidInputError, match="Transcribe locale"):
        await client_from(AD_ASSETS_TRANSCRIBE_BUCKET="ads-audio").transcribe(silent_wav(0.5), language="xx")


def test_settings_are_plain_frozen_data() -> None:
    settings = BedrockSettings.from_env({"AWS_DEFAULT_REGION": "ap-northeast-1", "AD_ASSETS_TRANSCRIBE_PREFIX": "audio"})
    assert settings.region == "ap-northeast-1" and settings.transcribe_prefix == "audio/"
    with pytest.raises(AttributeError):
        settings.region = "us-east-1"  # type: ignore[misc]
