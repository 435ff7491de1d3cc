"""Validating what arrives for a brand: its key, its URLs, a URL file.

Pure functions, shared by the CLI, the Dagster UI config and the SQS sensor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from resources.fetch_errors import InvalidURLError
from resources.url_rules import MAX_URL_LENGTH, parse_fetch_url, printable

__all__ = ["MAX_URL_LENGTH", "normalize_url", "split_urls", "read_url_file", "validate_brand"]
_BRAND_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class RequestError(ValueError):
    """Base of the errors about a brand request: each names the input and the cause."""


class InvalidBrandError(RequestError):
    """The brand key is not a valid key."""


class UrlFileError(RequestError):
    """The URL file is missing, unreadable, or holds no URL."""


class NoUsableUrlsError(RequestError):
    """A request held no URL that could be accepted."""


@dataclass(frozen=True)
class RejectedUrl:
    """A URL refused at registration, with the reason."""

    url: str
    reason: str


def suggest_brand_key(raw: str) -> str:
    """A valid key close to ``raw`` ("Acme Corp" -> "acme-corp"), for error messages."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", raw.strip().lower()).strip("-_")
    return slug[:64] or "my-brand"


def validate_brand(brand: object) -> str:
    """Return ``brand`` if it is a valid key, else raise ``InvalidBrandError`` saying why.

    A key is 1–64 characters of lower-case letters, digits, ``-`` and ``_``,
    starting with a letter or digit: it names Dagster partitions, store paths and
    index files, so it must be safe in all three.
    """
    if not isinstance(brand, str) or not brand.strip():
        raise InvalidBrandError("brand key is empty: give a key such as 'acme-coffee'")
    if not _BRAND_RE.fullmatch(brand):
        raise InvalidBrandError(
            f"invalid brand key {brand!r}: use 1-64 lower-case letters, digits, '-' or '_', "
            f"starting with a letter or digit (e.g. {suggest_brand_key(brand)!r})"
        )
    return brand


def normalize_url(raw: str) -> str:
    """Canonical form of an http(s) URL, or ``ValueError`` with the reason it is refused.

    Lower-cases scheme and host, drops default ports and the fragment, and gives
    an empty path as ``/``, so that spellings of one URL de-duplicate. The
    result then passes the fetcher's own parser (``resources.url_rules``: IDNA
    host, lone surrogates and control characters, length, port), so a URL
    accepted here is one the fetcher can send; the reasons name the cause.
    """
    if not isinstance(raw, str):
        raise ValueError(f"a URL must be a string, not {type(raw).__name__}")
    url = raw.strip()
    if not url:
        raise ValueError("empty URL")
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"URL longer than {MAX_URL_LENGTH} characters")
    if any(ch.isspace() for ch in url):
        raise ValueError("URL contains whitespace")
    try:
        parse_fetch_url(url)  # surrogates, control characters, IDNA, port: before urlsplit sees them
    except InvalidURLError as exc:
        if exc.message.endswith("is not an http(s) URL"):
            pass  # said more precisely below, with the scheme
        else:
            raise ValueError(f"cannot be fetched: {exc.message}") from None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        shown = f"'{scheme}'" if scheme else "none"
        raise ValueError(f"unsupported scheme {shown}: only http and https URLs are fetched")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise ValueError("URL has no host")
    if parts.username or parts.password:
        raise ValueError("URL carries credentials; they are not sent")
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host if port is None or port == {"http": 80, "https": 443}[scheme] else f"{host}:{port}"
    normal = urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))
    try:
        parse_fetch_url(normal)
    except InvalidURLError as exc:
        raise ValueError(f"cannot be fetched: {exc.message}") from None
    return normal


def split_urls(raw_urls: list[str]) -> tuple[list[str], list[RejectedUrl]]:
    """Normalise and de-duplicate URLs, keeping first-seen order; refused ones come with reasons."""
    accepted: list[str] = []
    seen: set[str] = set()
    rejected: list[RejectedUrl] = []
    for raw in raw_urls:
        try:
            url = normalize_url(raw)
        except ValueError as exc:
            rejected.append(RejectedUrl(raw, str(exc)))
            continue
        if url not in seen:
            seen.add(url)
            accepted.append(url)
    return accepted, rejected


def read_url_file(path: Path) -> list[str]:
    """The URL lines of a file: one URL per line, blank lines and ``#`` comments ignored.

    Raises ``UrlFileError`` naming the file when it is missing, unreadable or has no URL line.
    """
    if not path.exists():
        raise UrlFileError(f"URL file '{path}' does not exist")
    if not path.is_file():
        raise UrlFileError(f"URL file '{path}' is not a regular file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UrlFileError(f"URL file '{path}' is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise UrlFileError(f"URL file '{path}' cannot be read: {exc.strerror or exc}") from None
    lines = [line.strip() for line in text.splitlines()]
    urls = [line for line in lines if line and not line.startswith("#")]
    if not urls:
        raise UrlFileError(f"URL file '{path}' holds no URL (blank lines and '#' comments are ignored)")
    return urls
