"""Content-addressed object store over obstore: a local directory or ``s3://bucket/prefix``.

Everything the platform keeps outside Postgres (media files, per-item journals,
Parquet intermediates) goes through :class:`MediaStore`. It hides which backend
is in use, streams large files, and turns every obstore failure into the
:class:`StoreError` family with the key and the store URL in the message.

No Dagster import here: the pure engine and the CLIs use it directly, and
``resources.dagster_resources.MediaStoreResource`` wraps it for Dagster.

AWS credentials (S3 only), in this order:

1. ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN`` in the
   environment: read by obstore itself.
2. Otherwise, when ``AWS_PROFILE`` is set or a shared credentials/config file
   exists (``~/.aws/credentials``, ``~/.aws/config`` or the files named by
   ``AWS_SHARED_CREDENTIALS_FILE`` / ``AWS_CONFIG_FILE``): boto3's resolver, so
   profiles, SSO and ``role_arn`` profiles work. obstore cannot read those files.
3. Otherwise obstore's own chain: web identity (EKS), ECS task role, EC2
   instance metadata.

Region: the ``aws_region`` argument, ``AWS_REGION``, ``AWS_DEFAULT_REGION``, the
boto3 profile's region, then ``us-east-1``. Endpoint: ``aws_endpoint_url``, then
``AWS_ENDPOINT_URL_S3``, then ``AWS_ENDPOINT_URL``; a custom endpoint gets
path-style requests (what MinIO, moto and LocalStack expect) and plain
``http://`` is allowed only when the endpoint says ``http://``.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import re
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import unquote, urlparse

import obstore
from obstore.store import LocalStore, S3Store

if TYPE_CHECKING:
    from obstore.store import ClientConfig

DEFAULT_REGION = "us-east-1"
# obstore switches to a multipart upload when a body is larger than one chunk.
# 5 MiB is S3's minimum part size; with at most 4 parts in flight one upload
# holds about 20 MiB in memory, whatever the file size.
MULTIPART_CHUNK_BYTES = 5 * 1024 * 1024
MULTIPART_CONCURRENCY = 4
DOWNLOAD_CHUNK_BYTES = 1024 * 1024
# How long a boto3-resolved credential is reused before asking boto3 again.
# botocore refreshes temporary credentials 10-15 minutes before they expire, so
# a 5-minute reuse never hands obstore an expired one.
BOTO3_CREDENTIAL_TTL = timedelta(minutes=5)

_SHA256 = re.compile(r"[0-9a-f]{64}")
_EXTENSION = re.compile(r"[a-z0-9]{1,16}")


class StoreError(Exception):
    """A media store operation failed; the message names the key and the store."""


class StoreNotFoundError(StoreError, FileNotFoundError):
    """The key does not exist in the store."""


class StoreConfigError(StoreError, ValueError):
    """The store cannot be used as configured (URL, bucket, credentials)."""


class InvalidKeyError(StoreError, ValueError):
    """A key is not a clean relative path (empty segment, ``..``, leading ``/``)."""


def media_key(sha256: str, ext: str) -> str:
    """Return the content-addressed key of a media file: ``media/<sha[:2]>/<sha>.<ext>``.

    ``sha256`` is the hex digest of the file's bytes (any case); ``ext`` the
    extension without or with its dot (``"jpg"``, ``".MP4"``).
    """
    digest = sha256.strip().lower()
    if not _SHA256.fullmatch(digest):
        raise InvalidKeyError(f"media_key: {sha256!r} is not a hex SHA-256 digest (64 hex characters)")
    extension = ext.strip().lstrip(".").lower()
    if not _EXTENSION.fullmatch(extension):
        raise InvalidKeyError(f"media_key: extension {ext!r} must be 1-16 letters or digits")
    return f"media/{digest[:2]}/{digest}.{extension}"


def _check_key(key: str) -> str:
    # Checked here, not left to obstore, so a bad key fails the same way on
    # both backends and before any request is made.
    if not isinstance(key, str) or not key:
        raise InvalidKeyError(f"store key must be a non-empty string, got {key!r}")
    if key.startswith("/") or any(part in ("", ".", "..") for part in key.split("/")):
        raise InvalidKeyError(f"store key {key!r} must be a relative path without empty, '.' or '..' segments")
    return key


def _create_file(path: Path) -> BinaryIO:
    """``path`` opened for writing, its folder made first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return open(path, "wb")


def _close_and_rename(out: BinaryIO, tmp: Path, path: Path) -> None:
    out.close()
    os.replace(tmp, path)


def _first_line(exc: BaseException) -> str:
    # obstore appends a multi-line "Debug source:" dump; the first line says it all.
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# obstore resolves an async call from one of its tokio threads through
# loop.call_soon_threadsafe. If the interpreter starts finalising while such a
# thread is still inside that call (a script whose last line is
# asyncio.run(...) of a store operation), the thread is torn down mid-call and
# the process aborts with SIGABRT. A short GIL-releasing pause at exit lets the
# thread return first; it is registered only once an async call was made.
_EXIT_GRACE_S = 0.05
_exit_grace_lock = threading.Lock()
_exit_grace_registered = False


def _register_exit_grace() -> None:
    global _exit_grace_registered
    if _exit_grace_registered:
        return
    with _exit_grace_lock:
        if not _exit_grace_registered:
            atexit.register(time.sleep, _EXIT_GRACE_S)
            _exit_grace_registered = True


def _aws_env(env: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return value
    return None


def _wants_boto3_credentials(env: Mapping[str, str]) -> bool:
    if _aws_env(env, "AWS_ACCESS_KEY_ID"):
        return False
    if _aws_env(env, "AWS_PROFILE"):
        return True
    files = (
        _aws_env(env, "AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials",
        _aws_env(env, "AWS_CONFIG_FILE") or "~/.aws/config",
    )
    return any(Path(name).expanduser().is_file() for name in files)


def _boto3_credential_provider(url: str) -> tuple[Any, str | None]:
    """Return (obstore credential provider, profile region) from boto3's resolver."""
    import boto3
    from botocore.exceptions import BotoCoreError
    from obstore.auth.boto3 import Boto3CredentialProvider

    try:
        session = boto3.Session()
        provider = Boto3CredentialProvider(session, ttl=BOTO3_CREDENTIAL_TTL)
    except (BotoCoreError, ValueError) as exc:
        raise StoreConfigError(
            f"no usable AWS credentials for {url}: {exc}. Set AWS_ACCESS_KEY_ID/"
            "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE naming a profile in ~/.aws"
        ) from exc
    return provider, session.region_name


class MediaStore:
    """Content-addressed object store over obstore: a local directory or s3://bucket/prefix.

    Keys are relative ``/``-separated paths (see :func:`media_key`). Writes are
    atomic from a reader's view: the local backend writes a temporary file and
    renames it, an S3 PUT (or a completed multipart upload) replaces the object
    whole. Build one with :meth:`from_url`.
    """

    def __init__(self, store: LocalStore | S3Store, *, url: str, root_uri: str) -> None:
        """Wrap an obstore store; prefer :meth:`from_url`."""
        self._store = store
        self._local = isinstance(store, LocalStore)
        self.url = url
        self._root_uri = root_uri.rstrip("/")

    def __repr__(self) -> str:
        return f"MediaStore({self.url!r})"

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        aws_endpoint_url: str | None = None,
        aws_region: str | None = None,
    ) -> MediaStore:
        """Open the store at ``url``.

        ``url`` is a local path (relative or absolute, created if missing), a
        ``file://`` URL, or ``s3://bucket[/prefix]``. See the module docstring
        for how S3 credentials, region and endpoint are found.
        """
        if not isinstance(url, str) or not url.strip():
            raise StoreConfigError(f"storage URL must be a non-empty string, got {url!r}")
        url = url.strip()
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme in ("", "file"):
            return cls._local_from_url(url, scheme)
        if scheme == "s3":
            return cls._s3_from_url(url, aws_endpoint_url=aws_endpoint_url, aws_region=aws_region, env=os.environ)
        raise StoreConfigError(
            f"unsupported storage URL {url!r}: use a local directory, file:///absolute/path or s3://bucket/prefix"
        )

    @classmethod
    def _local_from_url(cls, url: str, scheme: str) -> MediaStore:
        if scheme == "file":
            parsed = urlparse(url)
            if parsed.netloc not in ("", "localhost"):
                raise StoreConfigError(f"storage URL {url!r}: file:// URLs must name a local path")
            raw_path = unquote(parsed.path)
        else:
            raw_path = url
        root = Path(raw_path).expanduser().resolve()
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreConfigError(f"cannot create the store directory {root} for {url!r}: {exc}") from exc
        if not root.is_dir():
            raise StoreConfigError(f"storage URL {url!r}: {root} is not a directory")
        return cls(LocalStore(root), url=url, root_uri=str(root))

    @classmethod
    def _s3_from_url(
        cls,
        url: str,
        *,
        aws_endpoint_url: str | None,
        aws_region: str | None,
        env: Mapping[str, str],
    ) -> MediaStore:
        parsed = urlparse(url)
        bucket = parsed.netloc
        if not bucket or parsed.query or parsed.fragment:
            raise StoreConfigError(f"storage URL {url!r} must look like s3://bucket or s3://bucket/prefix")
        prefix = "/".join(part for part in parsed.path.split("/") if part)

        credential_provider = None
        profile_region = None
        if _wants_boto3_credentials(env):
            credential_provider, profile_region = _boto3_credential_provider(url)
        region = aws_region or _aws_env(env, "AWS_REGION", "AWS_DEFAULT_REGION") or profile_region or DEFAULT_REGION
        endpoint = aws_endpoint_url or _aws_env(env, "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")

        config: dict[str, Any] = {"region": region}
        client_options: ClientConfig = {}
        if endpoint:
            config["endpoint"] = endpoint.rstrip("/")
            config["virtual_hosted_style_request"] = False
            if endpoint.lower().startswith("http://"):
                client_options["allow_http"] = True
        try:
            store = S3Store(
                bucket,
                prefix=prefix or None,
                client_options=client_options or None,
                credential_provider=credential_provider,
                **config,
            )
        except Exception as exc:  # obstore raises several types for a bad config
            raise StoreConfigError(f"cannot open {url!r}: {_first_line(exc)}") from exc
        root_uri = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        return cls(store, url=url, root_uri=root_uri)

    # -- naming -----------------------------------------------------------

    def uri_for(self, key: str) -> str:
        """Full URI of ``key``: ``s3://bucket/prefix/key`` or an absolute local path."""
        return f"{self._root_uri}/{_check_key(key)}"

    # -- errors -----------------------------------------------------------

    def _error(self, op: str, key: str, exc: Exception) -> StoreError:
        where = f"{key!r} in {self.url}"
        detail = _first_line(exc)
        if isinstance(exc, StoreError):
            return exc
        if isinstance(exc, FileNotFoundError):
            if op == "write":
                # A PUT answered 404 means the bucket itself is missing.
                return StoreConfigError(f"cannot write {where}: the bucket or directory does not exist ({detail})")
            return StoreNotFoundError(f"object {where} not found: it was never stored or was deleted ({detail})")
        if isinstance(exc, (obstore.exceptions.PermissionDeniedError, obstore.exceptions.UnauthenticatedError)):
            return StoreConfigError(f"{op} {where} was refused: check the AWS credentials and bucket policy ({detail})")
        if isinstance(exc, ValueError) and "parse path" in detail.lower():
            return InvalidKeyError(f"{op} {where}: the store rejected the key ({detail})")
        return StoreError(f"{op} {where} failed: {detail}")

    def _put_options(self, content_type: str | None) -> dict[str, Any]:
        options: dict[str, Any] = {"chunk_size": MULTIPART_CHUNK_BYTES, "max_concurrency": MULTIPART_CONCURRENCY}
        # The local backend cannot keep attributes and refuses a put that has them.
        if content_type and not self._local:
            options["attributes"] = {"Content-Type": content_type}
        return options

    # -- async API --------------------------------------------------------

    async def exists(self, key: str) -> bool:
        """Whether ``key`` is stored."""
        _check_key(key)
        _register_exit_grace()
        try:
            await obstore.head_async(self._store, key)
        except FileNotFoundError:
            return False
        except Exception as exc:
            raise self._error("exists", key, exc) from exc
        return True

    async def put_file(self, key: str, path: Path, *, content_type: str | None = None) -> None:
        """Store the file at ``path`` under ``key``, streaming it (multipart above 5 MiB).

        ``content_type`` becomes the S3 object's Content-Type; a local directory
        has nowhere to keep it and ignores it.
        """
        _check_key(key)
        path = Path(path)
        _register_exit_grace()
        if self._local:
            # File system work only (a stat, a read, a write and a rename): in a worker thread, so the
            # event loop that copies each item's journal here never waits on the disk (docs/ai_stage.md).
            await asyncio.to_thread(self._put_file_now, key, path, content_type)
            return
        self._check_source(key, path)
        try:
            await obstore.put_async(self._store, key, path, **self._put_options(content_type))
        except Exception as exc:
            raise self._error("write", key, exc) from exc

    def _put_file_now(self, key: str, path: Path, content_type: str | None) -> None:
        self._check_source(key, path)
        try:
            obstore.put(self._store, key, path, **self._put_options(content_type))
        except Exception as exc:
            raise self._error("write", key, exc) from exc

    def _check_source(self, key: str, path: Path) -> None:
        if not path.is_file():
            raise StoreNotFoundError(f"cannot store {key!r} in {self.url}: local file {path} does not exist")

    async def put_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> None:
        """Store ``data`` under ``key``, replacing any previous object."""
        _check_key(key)
        _register_exit_grace()
        try:
            await obstore.put_async(self._store, key, data, **self._put_options(content_type))
        except Exception as exc:
            raise self._error("write", key, exc) from exc

    async def get_bytes(self, key: str) -> bytes:
        """Return the bytes stored under ``key`` (raises :class:`StoreNotFoundError`)."""
        _check_key(key)
        _register_exit_grace()
        try:
            result = await obstore.get_async(self._store, key)
            return bytes(await result.bytes_async())
        except Exception as exc:
            raise self._error("read", key, exc) from exc

    async def get_to_file(self, key: str, path: Path) -> None:
        """Stream the object under ``key`` to ``path``; ``path`` appears only when complete."""
        _check_key(key)
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.incomplete")
        _register_exit_grace()
        out = None
        try:
            # The folder and file are made, each chunk (1 MiB or more) written, and the file closed and
            # renamed from a worker thread: creating a file costs ~0.5 ms on ext4 (more on a busy machine),
            # writeback throttling can hold a write for milliseconds, and the AI stage's event loop
            # copies every picture here (bench/bench_ai_stage.py).
            out = await asyncio.to_thread(_create_file, tmp)
            result = await obstore.get_async(self._store, key)
            async for chunk in result.stream(min_chunk_size=DOWNLOAD_CHUNK_BYTES):
                await asyncio.to_thread(out.write, chunk)
            await asyncio.to_thread(_close_and_rename, out, tmp, path)
        except Exception as exc:
            raise self._error("read", key, exc) from exc
        finally:
            if out is not None and not out.closed:
                out.close()
            tmp.unlink(missing_ok=True)

    async def list_keys(self, prefix: str) -> list[str]:
        """Sorted keys under ``prefix``, relative to the store root.

        The prefix matches whole path segments (``media/ab`` lists
        ``media/ab/...`` but not ``media/abc/...``), on both backends; ``""``
        lists everything.
        """
        _register_exit_grace()
        clean = self._list_prefix(prefix)
        try:
            metas = await obstore.list(self._store, clean).collect_async()
        except Exception as exc:
            raise self._error("list", prefix, exc) from exc
        return sorted(meta["path"] for meta in metas)

    async def delete(self, key: str) -> None:
        """Delete ``key``; deleting a missing key is not an error (as on S3)."""
        _check_key(key)
        _register_exit_grace()
        try:
            await obstore.delete_async(self._store, key)
        except FileNotFoundError:
            return
        except Exception as exc:
            raise self._error("delete", key, exc) from exc

    # -- sync twins (Dagster IO managers, CLIs) ---------------------------

    def exists_sync(self, key: str) -> bool:
        """Blocking :meth:`exists`."""
        _check_key(key)
        try:
            obstore.head(self._store, key)
        except FileNotFoundError:
            return False
        except Exception as exc:
            raise self._error("exists", key, exc) from exc
        return True

    def put_bytes_sync(self, key: str, data: bytes, *, content_type: str | None = None) -> None:
        """Blocking :meth:`put_bytes`."""
        _check_key(key)
        try:
            obstore.put(self._store, key, data, **self._put_options(content_type))
        except Exception as exc:
            raise self._error("write", key, exc) from exc

    def get_bytes_sync(self, key: str) -> bytes:
        """Blocking :meth:`get_bytes`."""
        _check_key(key)
        try:
            return bytes(obstore.get(self._store, key).bytes())
        except Exception as exc:
            raise self._error("read", key, exc) from exc

    def list_keys_sync(self, prefix: str) -> list[str]:
        """Blocking :meth:`list_keys`."""
        clean = self._list_prefix(prefix)
        try:
            metas = obstore.list(self._store, clean).collect()
        except Exception as exc:
            raise self._error("list", prefix, exc) from exc
        return sorted(meta["path"] for meta in metas)

    def delete_sync(self, key: str) -> None:
        """Blocking :meth:`delete`."""
        _check_key(key)
        try:
            obstore.delete(self._store, key)
        except FileNotFoundError:
            return
        except Exception as exc:
            raise self._error("delete", key, exc) from exc

    # -- serving (the search pages) -----------------------------------------

    @property
    def is_local(self) -> bool:
        """Whether the store is a local directory (served as files) rather than S3 (served by signed URLs)."""
        return self._local

    def local_path(self, key: str) -> Path:
        """The file of ``key`` in a local store (``InvalidKeyError`` for a bad key: no ``..``, no absolute path).

        Raises ``StoreConfigError`` on an S3 store: use :meth:`signed_url`.
        """
        if not self._local:
            raise StoreConfigError(f"{self.url} is not a local store: serve {key!r} through signed_url()")
        return Path(self._root_uri) / _check_key(key)

    def file_in_place(self, key: str) -> Path | None:
        """The stored file of ``key`` itself on a local store, to read in place; None on S3 (use :meth:`get_to_file`).

        Reading in place spares a copy per read: the AI stage copied every item
        from a local store, a file created, written and deleted each time
        (``docs/ai_stage.md``). Callers read it and never modify or delete it.
        Raises ``StoreNotFoundError`` when ``key`` is not stored, as a copy would.
        """
        if not self._local:
            return None
        path = self.local_path(key)
        if not path.is_file():
            raise self._error("read", key, FileNotFoundError(f"no file {path}"))
        return path

    def signed_url(self, key: str, expires_s: int = 300) -> str:
        """A presigned GET URL of ``key`` on S3, valid ``expires_s`` seconds (``StoreConfigError`` on a local store)."""
        _check_key(key)
        if self._local:
            raise StoreConfigError(f"{self.url} is a local store: serve {key!r} from local_path()")
        try:
            return str(obstore.sign(self._store, "GET", key, timedelta(seconds=expires_s)))
        except Exception as exc:
            raise self._error("sign", key, exc) from exc

    @staticmethod
    def _list_prefix(prefix: str) -> str | None:
        clean = (prefix or "").strip("/")
        return _check_key(clean) if clean else None
