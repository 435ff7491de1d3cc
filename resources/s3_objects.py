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

import re
from collections.abc import Mapping
from typing import Any

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


_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
#: S3's own limit on a key: 1024 bytes of UTF-8.
MAX_KEY_BYTES = 1024


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``("bucket", "key")`` for ``s3://bucket/key``, the key exactly as S3 defines it, else ``ObjectReadError``.

    The key is everything after the first ``/`` that follows the bucket: S3
    allows any UTF-8 in a key, so ``#``, ``?``, ``%``, spaces, non-ASCII and
    leading or doubled ``/`` are part of it, never a URL's fragment, query or
    escapes (``urlparse`` would cut ``crawls/week#23/x.txt`` at the ``#``).
    Only whitespace before ``s3://`` is ignored.
    """
    if not isinstance(uri, str):
        raise ObjectReadError(f"S3 URI must be a string, got {type(uri).__name__}")
    text = uri.lstrip()
    scheme, sep, rest = text.partition("://")
    bucket, slash, key = rest.partition("/")
    if scheme.lower() != "s3" or not sep or not slash or not key or not _BUCKET.fullmatch(bucket):
        raise ObjectReadError(f"{uri!r} is not an S3 object URI: write s3://bucket/path/to/list.txt")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise ObjectReadError(f"{uri!r}: an S3 key is UTF-8 text; this one holds a lone surrogate") from None
    if size > MAX_KEY_BYTES:
        raise ObjectReadError(f"{uri!r}: the key is {size} bytes of UTF-8, over S3's {MAX_KEY_BYTES}")
    return bucket, key


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
