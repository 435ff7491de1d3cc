"""Reading one small object named by an ``s3://bucket/key`` URI (a brand's URL list).

No Dagster import. :class:`S3ObjectReader` reads through boto3 (so any bucket
the credentials can read, not only the media store's); :class:`InMemoryObjects`
is the offline twin. Both are callables ``read(uri) -> bytes`` and raise
:class:`ObjectReadError` saying which object and why; its subclass
:class:`ObjectUnavailableError` means S3 itself was unreachable or asked to
retry (the caller should try again later rather than blame the object).

Endpoint: ``endpoint_url`` (the settings' ``AWS_ENDPOINT_URL``), else boto3's
``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``; custom endpoints get path-style
addressing (what moto, MinIO and LocalStack expect).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

#: A URL list larger than this is refused rather than held in memory (about 500k URLs).
MAX_OBJECT_BYTES = 64 * 1024 * 1024
CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 30.0


#: S3 error codes that say "not now" rather than "never": the read is worth retrying later.
TRANSIENT_S3_CODES = frozenset({"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "503", "500", "Throttling"})


class ObjectReadError(Exception):
    """The object cannot be read as named: bad URI, missing, refused, too large."""


class ObjectUnavailableError(ObjectReadError):
    """S3 could not be reached or asked to retry: the object may well be fine; try later."""


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``("bucket", "key/with/slashes")`` for ``s3://bucket/key/with/slashes``, else ``ObjectReadError``."""
    if not isinstance(uri, str):
        raise ObjectReadError(f"S3 URI must be a string, got {type(uri).__name__}")
    parsed = urlparse(uri.strip())
    key = parsed.path.lstrip("/")
    if parsed.scheme != "s3" or not parsed.netloc or not key or parsed.query or parsed.fragment:
        raise ObjectReadError(f"{uri!r} is not an S3 object URI: write s3://bucket/path/to/list.txt")
    return parsed.netloc, key


class S3ObjectReader:
    """``read(uri) -> bytes`` over a boto3 S3 client, refusing objects above ``max_bytes``."""

    def __init__(self, *, endpoint_url: str | None = None, region: str | None = None, client: Any | None = None,
                 max_bytes: int = MAX_OBJECT_BYTES) -> None:  # fmt: skip
        """Create the client now (cheap, no network) so every read shares its connection pool."""
        self.max_bytes = max_bytes
        self._client = client or self._make_client(endpoint_url, region)

    @staticmethod
    def _make_client(endpoint_url: str | None, region: str | None) -> Any:
        from botocore.config import Config

        from resources.aws_clients import boto3_client

        addressing = {"addressing_style": "path"} if endpoint_url else {}
        config = Config(
            connect_timeout=CONNECT_TIMEOUT_S,
            read_timeout=READ_TIMEOUT_S,
            retries={"max_attempts": 3, "mode": "standard"},
            s3=addressing or None,
        )
        try:
            return boto3_client("s3", config, endpoint_url=endpoint_url, region=region)
        except Exception as exc:
            raise ObjectUnavailableError(f"cannot create an S3 client: {exc}") from exc

    def __call__(self, uri: str) -> bytes:
        """The object's bytes."""
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, key = split_s3_uri(uri)
        try:
            answer = self._client.get_object(Bucket=bucket, Key=key)
            size = int(answer.get("ContentLength") or 0)
            if size > self.max_bytes:
                answer["Body"].close()
                raise ObjectReadError(f"{uri} is {size} bytes, more than the {self.max_bytes} allowed for a URL list")
            data = answer["Body"].read(self.max_bytes + 1)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code", "error")
            if code in ("NoSuchKey", "404", "NoSuchBucket"):
                raise ObjectReadError(f"{uri} does not exist ({code})") from exc
            kind = ObjectUnavailableError if code in TRANSIENT_S3_CODES else ObjectReadError
            raise kind(f"{uri} cannot be read: {code}: {error.get('Message', exc)}") from exc
        except BotoCoreError as exc:  # connection refused, timeouts, no credentials
            raise ObjectUnavailableError(f"{uri} cannot be read now: {exc}") from exc
        if len(data) > self.max_bytes:
            raise ObjectReadError(f"{uri} is larger than the {self.max_bytes} bytes allowed for a URL list")
        return data


class InMemoryObjects:
    """The offline twin: ``read(uri)`` from a dict of URI → bytes."""

    def __init__(self, objects: Mapping[str, bytes] | None = None) -> None:
        """Serve ``objects``; add more through :attr:`objects`."""
        self.objects: dict[str, bytes] = dict(objects or {})

    def __call__(self, uri: str) -> bytes:
        """The object's bytes, or ``ObjectReadError`` when absent."""
        split_s3_uri(uri)
        if uri not in self.objects:
            raise ObjectReadError(f"{uri} does not exist (NoSuchKey)")
        return self.objects[uri]
