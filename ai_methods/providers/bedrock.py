"""``BedrockClient``: Claude through the Converse API, Titan embeddings, Amazon Transcribe.

boto3 is synchronous, so every AWS call runs in a worker thread of the
client's own pool (``max_in_flight`` threads; the loop's default executor has
only CPU count + 4) and the event loop stays free. botocore's own retries
are switched off (``total_max_attempts=1``): retrying belongs to the call path, which
needs to see each failure to apply its backoff, limits and accounting. Every
botocore failure is translated into the ``ai_methods.errors`` family by
``map_aws_error``.

Transcribe has no synchronous API for a clip in memory: the WAV is uploaded to
``AD_ASSETS_TRANSCRIBE_BUCKET``, a batch job is started and polled, the
transcript JSON Transcribe writes back to the same bucket is read, and both
objects are deleted. The job's name is derived from the audio and the request,
so a retry (after a timeout, a lost connection, a killed worker) finds the job
already started and waits for it instead of paying for a second one.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    IncompleteReadError,
    SSLError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
    ProfileNotFound,
)

from ai_methods.errors import (
    AIMethodError,
    BadResponseError,
    InvalidInputError,
    MissingCredentialsError,
    ProviderUnavailableError,
    QuotaExceededError,
    TransientProviderError,
)
from ai_methods.providers.base import ChatReply, EmbeddingReply, ModelClient, TranscriptReply, Word
from ai_methods.providers.payloads import (
    image_base64,
    parse_json_reply,
    read_wav_info,
    schema_instructions,
    sniff_image_format,
)
from ai_methods.providers.provider_settings import BedrockSettings
from ai_methods.usage import Usage

logger = logging.getLogger(__name__)

T = TypeVar("T")

TRANSCRIBE_MODEL_NAME = "amazon-transcribe"
# Transcribe's MediaSampleRateHertz accepts this range; outside it we let Transcribe detect the rate.
_TRANSCRIBE_RATE_RANGE = (8000, 48000)
# Short language codes a caller may pass, mapped to the locale Transcribe wants.
TRANSCRIBE_LANGUAGES = {
    "en": "en-US",
    "es": "es-US",
    "fr": "fr-FR",
    "de": "de-DE",
    "it": "it-IT",
    "pt": "pt-BR",
    "nl": "nl-NL",
    "ja": "ja-JP",
    "ko": "ko-KR",
    "zh": "zh-CN",
    "hi": "hi-IN",
    "ar": "ar-SA",
    "ru": "ru-RU",
}

_TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "TooManyRequestsException",
        "ServiceUnavailableException",
        "ServiceUnavailable",
        "ModelNotReadyException",
        "InternalServerException",
        "InternalFailureException",
        "InternalError",
        "ModelTimeoutException",
        "RequestTimeout",
        "RequestTimeoutException",
        "SlowDown",
        # Transcribe: too many requests or jobs in flight; a job name clash (new name on retry).
        "LimitExceededException",
        "ConflictException",
    }
)
_QUOTA_CODES = frozenset({"ServiceQuotaExceededException"})
_ACCESS_CODES = frozenset(
    {
        "AccessDeniedException",
        "AccessDenied",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId",
        "InvalidClientTokenId",
        "ExpiredTokenException",
        "ExpiredToken",
    }
)
_INVALID_CODES = frozenset({"ValidationException", "BadRequestException", "InvalidRequest"})
# Phrases Bedrock uses when the *model id* is the problem rather than the input.
_MODEL_ID_PHRASES = ("inference profile", "model identifier is invalid", "on-demand throughput", "end of its life")


def _retry_after(exc: ClientError) -> float | None:
    headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {}) or {}
    raw = headers.get("retry-after")
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def map_aws_error(exc: Exception, *, what: str, setting: str | None = None) -> AIMethodError:
    """Translate a botocore failure of ``what`` into the typed error the call path acts on.

    ``setting`` names the environment variable that chose the model or bucket, so a
    configuration mistake points at the thing to change.
    """
    if isinstance(exc, AIMethodError):
        return exc
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {}) or {}
        code = str(error.get("Code", ""))
        message = str(error.get("Message", "")) or str(exc)
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        detail = f"{what} failed: {code or status}: {message}"
        if code in _QUOTA_CODES:
            return QuotaExceededError(f"{detail}. Ask AWS for a higher Bedrock service quota.")
        if code in _TRANSIENT_CODES or status == 429 or status >= 500:
            return TransientProviderError(detail, retry_after=_retry_after(exc))
        if code in _ACCESS_CODES or status in (401, 403):
            return ProviderUnavailableError(
                f"{detail}. Check the AWS credentials and IAM permissions (for a model, also that its "
                "access is enabled in the Bedrock console for this Region)."
            )
        if code == "ResourceNotFoundException" or code in {"NoSuchBucket", "NoSuchKey"} or status == 404:
            hint = f" Check {setting}." if setting else ""
            return ProviderUnavailableError(f"{detail}.{hint}")
        if code in _INVALID_CODES or status in (400, 413, 422):
            if setting and any(phrase in message.lower() for phrase in _MODEL_ID_PHRASES):
                return ProviderUnavailableError(f"{detail}. Set {setting} to a model id or inference profile id.")
            return InvalidInputError(detail)
        if code == "ModelErrorException":
            return BadResponseError(detail)
        return ProviderUnavailableError(detail)
    if isinstance(exc, SSLError):
        # A TLS failure is a trust-store or endpoint problem; retrying will not fix it.
        return ProviderUnavailableError(f"{what} failed: {exc}. Check the endpoint URL and AWS_CA_BUNDLE.")
    if isinstance(exc, (BotoConnectionError, HTTPClientError, IncompleteReadError)):
        # Connection refused/reset, connect and read timeouts, dropped or truncated streams.
        return TransientProviderError(f"{what} failed: {exc}")
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError)):
        return MissingCredentialsError(
            f"{what} failed: {exc}. Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE."
        )
    if isinstance(exc, ParamValidationError):
        return InvalidInputError(f"{what} was refused before sending: {exc}")
    if isinstance(exc, BotoCoreError):
        return ProviderUnavailableError(f"{what} failed: {exc}")
    return BadResponseError(f"{what} failed: {type(exc).__name__}: {exc}")


def aws_session_from_env(env: Mapping[str, str], settings: BedrockSettings) -> boto3.Session:
    """A boto3 session whose credentials resolve, or ``MissingCredentialsError`` naming what to set.

    Keys given in ``env`` win; otherwise the standard chain runs (environment,
    ``AWS_PROFILE`` and config files, SSO, container and instance roles).
    """
    key = (env.get("AWS_ACCESS_KEY_ID") or "").strip()
    secret = (env.get("AWS_SECRET_ACCESS_KEY") or "").strip()
    if bool(key) != bool(secret):
        missing = "AWS_SECRET_ACCESS_KEY" if key else "AWS_ACCESS_KEY_ID"
        raise MissingCredentialsError(f"bedrock has half an AWS key pair: set {missing} too (or use AWS_PROFILE)")
    kwargs: dict[str, Any] = {"region_name": settings.region}
    if key:
        kwargs.update(aws_access_key_id=key, aws_secret_access_key=secret)
        token = (env.get("AWS_SESSION_TOKEN") or "").strip()
        if token:
            kwargs["aws_session_token"] = token
    elif settings.profile:
        kwargs["profile_name"] = settings.profile
    try:
        session = boto3.Session(**kwargs)
        credentials = session.get_credentials()
    except ProfileNotFound as exc:
        raise MissingCredentialsError(
            f"bedrock: AWS_PROFILE names a profile that is not in the AWS config files ({exc})"
        ) from exc
    except BotoCoreError as exc:
        raise MissingCredentialsError(
            f"bedrock could not load AWS credentials ({exc}): set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
        ) from exc
    if credentials is None:
        raise MissingCredentialsError(
            "bedrock found no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "or AWS_PROFILE, or run with an IAM role"
        )
    return session


def parse_transcribe_words(transcript: Mapping[str, Any]) -> list[Word]:
    """Words from an Amazon Transcribe transcript JSON (``results.items``), in time order.

    Only ``pronunciation`` items are words; ``punctuation`` items carry no timing
    and are dropped, so words look the same as other providers' (no attached commas).
    Transcribe writes times and confidences as strings; they are converted here.
    """
    try:
        items = transcript["results"]["items"]
        words = []
        for item in items:
            if item.get("type") != "pronunciation":
                continue
            best = item["alternatives"][0]
            confidence = float(best.get("confidence", 1.0))
            words.append(
                Word(
                    text=str(best["content"]),
                    start=float(item["start_time"]),
                    end=float(item["end_time"]),
                    confidence=min(1.0, max(0.0, confidence)),
                )
            )
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise BadResponseError(f"Transcribe transcript JSON is not in the documented shape: {exc!r}") from exc
    words.sort(key=lambda w: (w.start, w.end))
    return words


class BedrockClient(ModelClient):
    """Claude (Converse), Titan Multimodal/Text embeddings and Amazon Transcribe on AWS.

    Build it with ``BedrockClient.from_env(os.environ)``, or pass ``BedrockSettings``
    and, for tests, ready boto3 clients (e.g. wrapped in a botocore ``Stubber``).

    ``embedding_space_text`` / ``embedding_space_image`` name the vector space each
    embedding lives in (``"bedrock:<model id>"``): vectors are comparable only
    within one space. With the default ``text_space="multimodal"`` both are the
    Titan Multimodal space, so text queries find images.
    """

    name = "bedrock"

    def __init__(
        self,
        settings: BedrockSettings,
        *,
        session: boto3.Session | None = None,
        runtime_client: Any = None,
        s3_client: Any = None,
        transcribe_client: Any = None,
    ) -> None:
        self.settings = settings
        self._session = session
        self._clients: dict[str, Any] = {
            "bedrock-runtime": runtime_client,
            "s3": s3_client,
            "transcribe": transcribe_client,
        }
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=settings.max_in_flight, thread_name_prefix="bedrock")
        self.text_embed_model = (
            settings.embed_model if settings.text_space == "multimodal" else settings.text_embed_model
        )
        self.embedding_space_image = f"bedrock:{settings.embed_model}"
        self.embedding_space_text = f"bedrock:{self.text_embed_model}"
        self.embedding_dim_image = settings.embed_dim
        self.embedding_dim_text = settings.embed_dim

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "BedrockClient":
        """Settings from ``env`` and credentials from the standard AWS chain.

        Raises ``MissingCredentialsError`` naming ``AWS_REGION`` when no region is
        set, or ``AWS_ACCESS_KEY_ID``/``AWS_PROFILE`` when no credentials resolve.
        """
        settings = BedrockSettings.from_env(env)
        return cls(settings, session=aws_session_from_env(env, settings))

    def model_for(self, primitive: str) -> str:
        """The model id ``primitive`` will use: the chat model, a Titan embedder, or ``amazon-transcribe``."""
        models = {
            "chat_json": self.settings.chat_model,
            "embed_text": self.text_embed_model,
            "embed_image": self.settings.embed_model,
            "transcribe": TRANSCRIBE_MODEL_NAME,
        }
        return models.get(primitive) or super().model_for(primitive)

    # --- boto3 plumbing -----------------------------------------------------

    def _client(self, service: str) -> Any:
        # Clients are created lazily (S3 and Transcribe only when transcribing) and
        # under a lock: a boto3 Session is not safe to share across threads.
        with self._lock:
            client = self._clients.get(service)
            if client is None:
                session = self._session or boto3.Session(
                    region_name=self.settings.region, profile_name=self.settings.profile
                )
                endpoint = {
                    "bedrock-runtime": self.settings.runtime_endpoint_url,
                    "s3": self.settings.s3_endpoint_url,
                    "transcribe": self.settings.transcribe_endpoint_url,
                }[service]
                config = Config(
                    # total_max_attempts counts the first try; botocore's "max_attempts" key
                    # in this dict counts *retries*, so {"max_attempts": 1} would still retry once.
                    retries={"total_max_attempts": 1, "mode": "standard"},
                    connect_timeout=self.settings.connect_timeout_s,
                    read_timeout=self.settings.read_timeout_s,
                    max_pool_connections=self.settings.max_in_flight,
                )
                client = session.client(
                    service, region_name=self.settings.region, endpoint_url=endpoint, config=config
                )
                self._clients[service] = client
            return client

    @property
    def runtime_client(self) -> Any:
        """The ``bedrock-runtime`` boto3 client."""
        return self._client("bedrock-runtime")

    @property
    def s3_client(self) -> Any:
        """The ``s3`` boto3 client used to stage audio for Transcribe."""
        return self._client("s3")

    @property
    def transcribe_client(self) -> Any:
        """The ``transcribe`` boto3 client."""
        return self._client("transcribe")

    async def _in_thread(self, func: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, func)

    async def _call(self, func: Callable[[], T], *, what: str, setting: str | None = None) -> T:
        try:
            return await self._in_thread(func)
        except Exception as exc:  # noqa: BLE001 - every failure leaves as a typed error
            mapped = map_aws_error(exc, what=what, setting=setting)
            if mapped is exc:
                raise
            raise mapped from exc

    async def aclose(self) -> None:
        """Close the HTTP connection pools of the boto3 clients created so far and the worker threads."""
        with self._lock:
            clients = [c for c in self._clients.values() if c is not None]
        for client in clients:
            close = getattr(client, "close", None)
            if close is not None:
                close()
        self._executor.shutdown(wait=False, cancel_futures=True)

    # --- chat ---------------------------------------------------------------

    async def chat_json(
        self,
        *,
        system: str,
        prompt: str,
        images: list[bytes],
        schema: dict[str, Any],
        max_tokens: int = 1024,
    ) -> ChatReply:
        """One Converse call with the images then the prompt (plus the schema as instructions)."""
        model = self.settings.chat_model
        content: list[dict[str, Any]] = [
            {"image": {"format": sniff_image_format(image), "source": {"bytes": image}}} for image in images
        ]
        content.append({"text": prompt + schema_instructions(schema)})
        inference: dict[str, Any] = {"maxTokens": max_tokens}
        if self.settings.temperature is not None:
            inference["temperature"] = self.settings.temperature
        request: dict[str, Any] = {
            "modelId": model,
            "messages": [{"role": "user", "content": content}],
            "inferenceConfig": inference,
        }
        if system.strip():
            request["system"] = [{"text": system}]
        runtime = self.runtime_client
        response = await self._call(
            lambda: runtime.converse(**request),
            what=f"bedrock converse with {model}",
            setting="AD_ASSETS_BEDROCK_CHAT_MODEL",
        )
        source = f"bedrock {model}"
        try:
            blocks = response["output"]["message"]["content"]
            # Reasoning models put reasoningContent blocks before the answer: keep text only.
            text = "".join(block["text"] for block in blocks if isinstance(block, dict) and "text" in block)
            usage = response.get("usage", {})
            input_tokens = int(usage.get("inputTokens", 0))
            output_tokens = int(usage.get("outputTokens", 0))
        except (KeyError, TypeError, ValueError) as exc:
            raise BadResponseError(
                f"{source} returned a Converse reply without output.message.content: {exc!r}"
            ) from exc
        stop = response.get("stopReason")
        if stop in ("guardrail_intervened", "content_filtered"):
            raise BadResponseError(f"{source} withheld its answer (stopReason={stop}): the content was filtered")
        if stop == "model_context_window_exceeded":
            raise InvalidInputError(f"{source}: the prompt and images exceed the model's context window")
        data = parse_json_reply(text, schema, source=source, truncated=stop == "max_tokens")
        return ChatReply(
            data=data,
            usage=Usage(requests=1, input_tokens=input_tokens, output_tokens=output_tokens, images=len(images)),
            model=model,
        )

    # --- embeddings -----------------------------------------------------------

    async def embed_text(self, texts: list[str]) -> EmbeddingReply:
        """Embed each text with the model of ``embedding_space_text`` (one Titan call per text)."""
        for index, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise InvalidInputError(f"text #{index} is empty; Titan embeds only non-empty text")
        model = self.text_embed_model
        multimodal = model == self.settings.embed_model
        if multimodal:
            bodies = [
                {"inputText": text, "embeddingConfig": {"outputEmbeddingLength": self.settings.embed_dim}}
                for text in texts
            ]
        else:
            bodies = [
                {"inputText": text, "dimensions": self.settings.embed_dim, "normalize": True} for text in texts
            ]
        setting = "AD_ASSETS_BEDROCK_EMBED_MODEL" if multimodal else "AD_ASSETS_BEDROCK_TEXT_EMBED_MODEL"
        return await self._embed(model, bodies, images=0, setting=setting)

    async def embed_image(self, images: list[bytes]) -> EmbeddingReply:
        """Embed each image with Titan Multimodal (``embedding_space_image``), one call per image."""
        for image in images:
            sniff_image_format(image)
        bodies = [
            {
                "inputImage": image_base64(image).decode("ascii"),
                "embeddingConfig": {"outputEmbeddingLength": self.settings.embed_dim},
            }
            for image in images
        ]
        return await self._embed(
            self.settings.embed_model, bodies, images=len(images), setting="AD_ASSETS_BEDROCK_EMBED_MODEL"
        )

    async def _embed(self, model: str, bodies: list[dict[str, Any]], *, images: int, setting: str) -> EmbeddingReply:
        if not bodies:
            return EmbeddingReply(vectors=[], dim=self.settings.embed_dim, usage=Usage(), model=model)
        runtime = self.runtime_client
        limit = asyncio.Semaphore(self.settings.embed_concurrency)
        what = f"bedrock invoke_model {model}"

        def invoke(body: dict[str, Any]) -> bytes:
            response = runtime.invoke_model(
                modelId=model, body=json.dumps(body), contentType="application/json", accept="application/json"
            )
            # Reading the body is network I/O too, so it stays in the worker thread.
            return response["body"].read()

        async def one(body: dict[str, Any]) -> tuple[list[float], int]:
            async with limit:
                raw = await self._call(lambda: invoke(body), what=what, setting=setting)
            return _titan_vector(raw, source=f"bedrock {model}")

        results = await _all_or_first_error([one(body) for body in bodies])
        vectors = [vector for vector, _tokens in results]
        dims = {len(vector) for vector in vectors}
        if len(dims) != 1:
            raise BadResponseError(f"bedrock {model} returned vectors of different lengths {sorted(dims)}")
        usage = Usage(requests=len(bodies), input_tokens=sum(tokens for _v, tokens in results), images=images)
        return EmbeddingReply(vectors=vectors, dim=dims.pop(), usage=usage, model=model)

    # --- transcription ----------------------------------------------------------

    def _language_request(self, language: str | None) -> tuple[dict[str, Any], str | None]:
        chosen = language or self.settings.transcribe_language
        if not chosen:
            return {"IdentifyLanguage": True}, None
        if "-" in chosen:
            base, region = chosen.split("-", 1)
            code = f"{base.lower()}-{region.upper()}"
        else:
            code = TRANSCRIBE_LANGUAGES.get(chosen.lower(), "")
            if not code:
                raise InvalidInputError(
                    f"language {chosen!r} has no default Transcribe locale; pass one such as 'en-US' or 'fr-CA'"
                )
        return {"LanguageCode": code}, code

    async def transcribe(self, audio_wav: bytes, *, language: str | None = None) -> TranscriptReply:
        """Transcribe a WAV clip with an Amazon Transcribe batch job staged in ``AD_ASSETS_TRANSCRIBE_BUCKET``.

        ``language`` is a Transcribe locale (``en-US``) or a short code mapped by
        ``TRANSCRIBE_LANGUAGES``; without one (and without ``AD_ASSETS_TRANSCRIBE_LANGUAGE``)
        Transcribe identifies the language. The job is polled every
        ``transcribe_poll_s`` up to ``transcribe_timeout_s``, after which a
        ``TransientProviderError`` is raised.
        """
        info = read_wav_info(audio_wav)
        bucket = self.settings.transcribe_bucket
        if not bucket:
            raise MissingCredentialsError(
                "bedrock transcription needs an S3 bucket Amazon Transcribe can read and write: "
                f"set AD_ASSETS_TRANSCRIBE_BUCKET (a bucket in {self.settings.region})"
            )
        language_request, language_code = self._language_request(language)
        request: dict[str, Any] = {"MediaFormat": "wav", **language_request}
        if _TRANSCRIBE_RATE_RANGE[0] <= info.sample_rate <= _TRANSCRIBE_RATE_RANGE[1]:
            request["MediaSampleRateHertz"] = info.sample_rate
        job = transcribe_job_name(audio_wav, {**request, "OutputBucketName": bucket, "Prefix": self.settings.transcribe_prefix})
        audio_key = f"{self.settings.transcribe_prefix}{job}.wav"
        transcript_key = f"{self.settings.transcribe_prefix}{job}.json"
        job_request: dict[str, Any] = {
            "TranscriptionJobName": job,
            "Media": {"MediaFileUri": f"s3://{bucket}/{audio_key}"},
            "OutputBucketName": bucket,
            "OutputKey": transcript_key,
            **request,
        }
        finished = True  # the objects are deleted unless the job may still be reading or writing them
        try:
            description = await self._existing_job(job)
            status = (description or {}).get("TranscriptionJobStatus")
            if (status == "FAILED" and _transient_job_failure(description)) or (
                status == "COMPLETED" and not await self._exists(bucket, transcript_key)
            ):
                # A failed attempt worth repeating, or a transcript read and removed by an attempt
                # whose result was then lost: the name is taken until the job is deleted.
                await self._delete_job(job)
                description = None
            if description is None:
                await self._start_job(job, job_request, bucket, audio_key, audio_wav)
            try:
                description = await self._wait_for_job(job)
            except _JobStillRunning:
                finished = False  # the retry finds the job by name and waits again
                raise
            transcript = await self._read_transcript(bucket, transcript_key)
        finally:
            if finished:
                await self._delete_quietly(bucket, [audio_key, transcript_key])
        words = parse_transcribe_words(transcript)
        results = transcript.get("results", {})
        texts = [t.get("transcript", "") for t in results.get("transcripts", []) if isinstance(t, dict)]
        return TranscriptReply(
            words=words,
            usage=Usage(requests=1, audio_seconds=info.duration_s),
            model=TRANSCRIBE_MODEL_NAME,
            language=description.get("LanguageCode") or results.get("language_code") or language_code,
            extra={"job_name": job, "text": " ".join(texts)},
        )

    async def _existing_job(self, job: str) -> dict[str, Any] | None:
        """The job ``job`` if an earlier attempt started it, else ``None``."""
        transcribe = self.transcribe_client
        try:
            response = await self._call(
                lambda: transcribe.get_transcription_job(TranscriptionJobName=job), what=f"looking up Transcribe job {job}"
            )
        except AIMethodError as exc:
            if _aws_code(exc) == "BadRequestException" and "found" in str(exc).lower():
                return None  # "The requested job couldn't be found": never started
            raise
        return response.get("TranscriptionJob") or {}

    async def _start_job(self, job: str, request: dict[str, Any], bucket: str, audio_key: str, audio_wav: bytes) -> None:
        """Upload the audio and start the job; a job of that name started meanwhile (``ConflictException``) is it."""
        s3, transcribe = self.s3_client, self.transcribe_client
        await self._call(
            lambda: s3.put_object(Bucket=bucket, Key=audio_key, Body=audio_wav, ContentType="audio/wav"),
            what=f"uploading audio to s3://{bucket}/{audio_key}",
            setting="AD_ASSETS_TRANSCRIBE_BUCKET",
        )
        try:
            await self._call(lambda: transcribe.start_transcription_job(**request), what=f"starting Transcribe job {job}")
        except AIMethodError as exc:
            if _aws_code(exc) != "ConflictException":
                raise
            # Another attempt (a retry, another worker) started this very job: wait for it.

    async def _exists(self, bucket: str, key: str) -> bool:
        s3 = self.s3_client
        try:
            await self._in_thread(lambda: s3.head_object(Bucket=bucket, Key=key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise map_aws_error(exc, what=f"looking for s3://{bucket}/{key}", setting="AD_ASSETS_TRANSCRIBE_BUCKET") from exc
        return True

    async def _delete_job(self, job: str) -> None:
        transcribe = self.transcribe_client
        await self._call(
            lambda: transcribe.delete_transcription_job(TranscriptionJobName=job),
            what=f"deleting the failed Transcribe job {job}",
        )

    async def _wait_for_job(self, job: str) -> dict[str, Any]:
        transcribe = self.transcribe_client
        deadline = time.monotonic() + self.settings.transcribe_timeout_s
        while True:
            response = await self._call(
                lambda: transcribe.get_transcription_job(TranscriptionJobName=job),
                what=f"polling Transcribe job {job}",
            )
            description = response.get("TranscriptionJob", {})
            status = description.get("TranscriptionJobStatus")
            if status == "COMPLETED":
                return description
            if status == "FAILED":
                reason = description.get("FailureReason") or "no reason given"
                if _transient_job_failure(description):
                    raise TransientProviderError(f"Transcribe job {job} failed: {reason}")
                raise InvalidInputError(f"Transcribe job {job} failed: {reason}")
            if time.monotonic() >= deadline:
                raise _JobStillRunning(
                    f"Transcribe job {job} still {status} after {self.settings.transcribe_timeout_s:g}s "
                    "(AD_ASSETS_TRANSCRIBE_TIMEOUT_S)"
                )
            await asyncio.sleep(self.settings.transcribe_poll_s)

    async def _read_transcript(self, bucket: str, key: str) -> dict[str, Any]:
        s3 = self.s3_client
        raw = await self._call(
            lambda: s3.get_object(Bucket=bucket, Key=key)["Body"].read(),
            what=f"reading the transcript s3://{bucket}/{key}",
            setting="AD_ASSETS_TRANSCRIBE_BUCKET",
        )
        try:
            transcript = json.loads(raw)
        except ValueError as exc:
            raise BadResponseError(f"Transcribe wrote a transcript that is not JSON at s3://{bucket}/{key}") from exc
        if not isinstance(transcript, dict):
            raise BadResponseError(f"Transcribe transcript at s3://{bucket}/{key} is not a JSON object")
        return transcript

    async def _delete_quietly(self, bucket: str, keys: list[str]) -> None:
        # Best effort: a failed clean-up must not hide the transcript or the real error.
        s3 = self.s3_client
        for key in keys:
            try:
                await self._in_thread(lambda key=key: s3.delete_object(Bucket=bucket, Key=key))
            except Exception as exc:  # noqa: BLE001
                logger.warning("could not delete s3://%s/%s after transcription: %s", bucket, key, exc)


def transcribe_job_name(audio_wav: bytes, request: Mapping[str, Any]) -> str:
    """The Transcribe job for this audio and request: ``ad-assets-<sha256 of both, 40 hex>``.

    The same clip asked the same way always names the same job, so a retry
    finds the job an earlier attempt started (Transcribe refuses a second job
    of a name with ``ConflictException``) instead of paying for another.
    """
    digest = hashlib.sha256(audio_wav)
    digest.update(json.dumps(dict(request), sort_keys=True, default=str).encode())
    return f"ad-assets-{digest.hexdigest()[:40]}"


def _aws_code(exc: BaseException) -> str:
    """The AWS error code behind a typed error (``map_aws_error`` keeps the ``ClientError`` as the cause)."""
    cause = exc.__cause__
    return str(cause.response.get("Error", {}).get("Code", "")) if isinstance(cause, ClientError) else ""


class _JobStillRunning(TransientProviderError):
    """The job outlived ``AD_ASSETS_TRANSCRIBE_TIMEOUT_S``: transient, and its objects are kept for the retry."""


def _transient_job_failure(description: Mapping[str, Any] | None) -> bool:
    """A FAILED job whose reason is Transcribe's own (an internal failure), worth a new attempt."""
    return "internal" in str((description or {}).get("FailureReason") or "").lower()


def _titan_vector(raw: bytes, *, source: str) -> tuple[list[float], int]:
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise BadResponseError(f"{source} returned a body that is not JSON ({len(raw)} bytes)") from exc
    vector = body.get("embedding") if isinstance(body, dict) else None
    if not isinstance(vector, list) or not vector or not all(isinstance(x, (int, float)) for x in vector):
        message = body.get("message") if isinstance(body, dict) else None
        raise BadResponseError(f"{source} returned no embedding" + (f": {message}" if message else ""))
    tokens = body.get("inputTextTokenCount") or 0
    return [float(x) for x in vector], int(tokens)


async def _all_or_first_error(coroutines: list[Awaitable[T]]) -> list[T]:
    """Results in order; on the first failure, cancel what has not finished and raise that failure."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in tasks:
            if task in done and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        return [task.result() for task in tasks]
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
        # Collect the cancelled and failed tasks so none logs "exception never retrieved".
        await asyncio.gather(*tasks, return_exceptions=True)
