"""What makes a URL fetchable: the one parser the fetcher and registration share.

A URL that passes :func:`parse_fetch_url` is one httpx can send: http(s), a
host that encodes under the IDNA rules httpx applies (the ``idna`` package,
IDNA 2008, host lower-cased; an ASCII label written ``xn--…`` must be a valid
A-label, because httpx decodes it to show ``URL.host``), a port in 1–65535,
at most ``MAX_URL_LENGTH`` characters, and no lone surrogate or control
character anywhere (a lone surrogate cannot even be encoded as UTF-8, so it
can neither be hashed nor sent). Anything else is an ``InvalidURLError``
(cause ``invalid_url``) whose message says what is wrong.

Registration (``ad_assets.brand_requests``) runs the same parser before a URL
enters a manifest; the fetcher runs it on every URL and on every redirect
target, so a URL refused at the door would also have been refused at fetch.
Pure: no Dagster, no network.
"""

from __future__ import annotations

import unicodedata

import httpx
import idna

from resources.fetch_errors import InvalidURLError

__all__ = ["MAX_URL_LENGTH", "parse_fetch_url", "printable"]

#: Longer URLs are refused: real ad media URLs are far shorter, and many CDNs refuse above 8 KiB of request line.
MAX_URL_LENGTH = 4096
_PORTS = range(1, 65536)


def printable(text: str) -> str:
    """``text`` with lone surrogates written as ``\\udXXX`` escapes, so it can be stored as UTF-8.

    Used for URLs and details that go into Parquet, logs and JSON written as UTF-8.
    """
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _bad_character(url: str) -> str | None:
    """A sentence naming the first lone surrogate or control character of ``url``, if any."""
    for position, char in enumerate(url):
        code = ord(char)
        if 0xD800 <= code <= 0xDFFF:
            return f"holds a lone surrogate U+{code:04X} at position {position} (not encodable as UTF-8)"
        if unicodedata.category(char) == "Cc":
            return f"holds the control character U+{code:04X} at position {position}"
    return None


def _check_host_labels(host: str) -> None:
    """Refuse ASCII ``xn--`` labels that are not valid A-labels (httpx would raise while decoding them)."""
    for label in host.split("."):
        if label.lower().startswith("xn--"):
            try:
                idna.decode(label)
            except (idna.IDNAError, UnicodeError, ValueError) as exc:
                raise InvalidURLError(f"host label {label!r} is not a valid IDNA A-label ({exc})") from None


def parse_fetch_url(url: object) -> httpx.URL:
    """The ``httpx.URL`` the fetcher would request for ``url``, or ``InvalidURLError`` saying why not.

    Shape: ``url`` is a ``str``; returns a parsed URL whose ``scheme`` is
    ``http``/``https`` and whose ``host`` is non-empty. Errors: every refusal
    is an ``InvalidURLError`` (a ``ValueError``) naming the URL (written
    with surrogates escaped) and the cause.
    """
    if not isinstance(url, str):
        raise InvalidURLError(f"a URL must be a string, not {type(url).__name__}")
    # repr() escapes lone surrogates and control characters, so the message itself is always printable.
    shown = repr(url) if len(url) <= 200 else repr(url[:200]) + "…"
    if len(url) > MAX_URL_LENGTH:
        raise InvalidURLError(f"URL {shown} is longer than {MAX_URL_LENGTH} characters")
    problem = _bad_character(url)
    if problem:
        raise InvalidURLError(f"URL {shown} {problem}")
    try:
        parsed = httpx.URL(url)
        scheme, raw_host = parsed.scheme, parsed.raw_host.decode("ascii")
        port = parsed.port
    except (httpx.InvalidURL, TypeError, ValueError) as exc:  # idna errors are ValueErrors
        raise InvalidURLError(f"{shown} is not a valid URL: {exc}") from None
    if scheme not in ("http", "https"):
        raise InvalidURLError(f"{shown} is not an http(s) URL")
    if not raw_host:
        raise InvalidURLError(f"{shown} has no host")
    if port is not None and port not in _PORTS:
        raise InvalidURLError(f"{shown} is not a valid URL: port {port} is outside 1-65535")
    _check_host_labels(raw_host)
    try:
        parsed.host  # noqa: B018 - httpx decodes IDNA here; what it cannot decode it cannot show or log
    except ValueError as exc:
        raise InvalidURLError(f"{shown} has a host httpx cannot decode: {exc}") from None
    return parsed
