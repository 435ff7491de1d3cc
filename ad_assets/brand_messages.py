"""The SQS message contract for brand requests: parse, validate, resolve the URL list.

Pure (no Dagster, no network of its own). A message body is JSON, either::

    {"brand": "acme-coffee", "urls": ["https://cdn.example/a.jpg", "..."], "request_id": "optional", "mode": "add"}

or, for lists too long for one message (SQS caps a body at 256 KiB)::

    {"brand": "acme-coffee", "urls_s3_uri": "s3://bucket/lists/acme.txt", "request_id": "optional"}

where the object is a UTF-8 text file with one URL per line (blank lines and
``#`` comments ignored, as for ``ad-assets ingest``) or a JSON list of strings.
``mode`` is ``"add"`` (default: the URLs join the brand's list) or
``"replace"`` (they become the whole list). Unknown fields are ignored so
producers can add their own. SNS envelopes and S3 event notifications are
unwrapped before this parser sees a body (``ad_assets.queue_envelopes``).

Every way a message can be unusable is a :class:`BadMessageError` subclass
with a stable ``code`` (what the dead-letter queue's ``ad_assets.error_code``
attribute carries) and a sentence saying what to fix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from ad_assets.brand_requests import InvalidBrandError, NoUsableUrlsError, RequestError, validate_brand
from resources.s3_objects import ObjectReadError, ObjectUnavailableError, split_s3_uri

#: request ids name run keys and store objects: a safe, bounded alphabet.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+=-]{0,127}$")


class BadMessageError(ValueError):
    """A message that can never succeed as sent; ``code`` is stable, the message says what to fix."""

    code: ClassVar[str] = "bad_message"


class NotJsonError(BadMessageError):
    """The body is not JSON."""

    code = "not_json"


class InvalidMessageError(BadMessageError):
    """The body is JSON but not a brand request (not an object, missing or mistyped field)."""

    code = "invalid_message"


class MessageBrandError(BadMessageError):
    """The brand key is missing or not a valid key."""

    code = "invalid_brand"


class NoUsableUrlError(BadMessageError):
    """The request holds no URL that can be accepted."""

    code = "no_usable_urls"


class UrlListUnreadableError(BadMessageError):
    """The object named by ``urls_s3_uri`` cannot be read or parsed."""

    code = "unreadable_url_list"


class InternalMessageError(BadMessageError):
    """Handling the message raised something unforeseen (a bug): it goes to the DLQ, body intact, to re-send."""

    code = "internal_error"


@dataclass(frozen=True)
class BrandMessage:
    """A parsed request: exactly one of ``urls`` and ``urls_s3_uri`` is set."""

    brand: str
    urls: tuple[str, ...] | None = None
    urls_s3_uri: str | None = None
    request_id: str | None = None
    mode: str = "add"  # or "replace": the URLs become the brand's whole list


def _field(doc: dict[str, Any], name: str) -> Any:
    value = doc.get(name)
    return None if value is None or value == "" else value


def parse_message(body: str) -> BrandMessage:
    """Parse and validate one message body, or raise the :class:`BadMessageError` naming the cause."""
    try:
        doc = json.loads(body)
    except (json.JSONDecodeError, TypeError) as exc:
        preview = body[:60] if isinstance(body, str) else repr(body)
        raise NotJsonError(f"message body is not JSON ({exc}); it starts with {preview!r}") from None
    if not isinstance(doc, dict):
        raise InvalidMessageError(f"message body must be a JSON object with 'brand' and 'urls', not a {type(doc).__name__}")
    brand = _field(doc, "brand")
    if brand is None:
        raise MessageBrandError("message has no 'brand': give the brand key, e.g. {\"brand\": \"acme-coffee\", ...}")
    if not isinstance(brand, str):
        raise MessageBrandError(f"'brand' must be a string key such as 'acme-coffee', not a {type(brand).__name__}")
    try:
        validate_brand(brand)
    except InvalidBrandError as exc:
        raise MessageBrandError(str(exc)) from None
    request_id = _field(doc, "request_id")
    if request_id is not None and (not isinstance(request_id, str) or not _REQUEST_ID.fullmatch(request_id)):
        raise InvalidMessageError(
            f"'request_id' {request_id!r} must be 1-128 characters of letters, digits and . _ : / @ + = -, "
            "starting with a letter or digit"
        )
    mode = _field(doc, "mode") or "add"
    if mode not in ("add", "replace"):
        raise InvalidMessageError(
            f"'mode' {mode!r} must be \"add\" (join the brand's list, the default) or \"replace\" (become it)"
        )
    urls, uri = _field(doc, "urls"), _field(doc, "urls_s3_uri")
    if urls is not None and uri is not None:
        raise InvalidMessageError("give either 'urls' or 'urls_s3_uri', not both")
    if uri is not None:
        if not isinstance(uri, str):
            raise InvalidMessageError(f"'urls_s3_uri' must be a string like s3://bucket/list.txt, not {type(uri).__name__}")
        try:
            split_s3_uri(uri)
        except ObjectReadError as exc:
            raise InvalidMessageError(f"'urls_s3_uri': {exc}") from None
        return BrandMessage(brand=brand, urls_s3_uri=uri.strip(), request_id=request_id, mode=mode)
    if urls is None:
        raise NoUsableUrlError(f"request for brand {brand!r} has no 'urls' list and no 'urls_s3_uri'")
    if not isinstance(urls, list):
        raise InvalidMessageError(f"'urls' must be a JSON list of strings, not a {type(urls).__name__}")
    for index, url in enumerate(urls):
        if not isinstance(url, str):
            raise InvalidMessageError(f"'urls'[{index}] is a {type(url).__name__}, not a URL string")
    return BrandMessage(brand=brand, urls=tuple(urls), request_id=request_id, mode=mode)


def parse_url_list(data: bytes, uri: str) -> list[str]:
    """The URLs of a list object: a JSON list of strings, or text with one URL per line."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UrlListUnreadableError(f"{uri} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UrlListUnreadableError(f"{uri} starts like a JSON list but is not valid JSON ({exc})") from None
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise UrlListUnreadableError(f"{uri} must be a JSON list of URL strings")
        return items
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def resolve_urls(message: BrandMessage, read_object: Callable[[str], bytes]) -> list[str]:
    """The request's URLs: inline, or read from ``urls_s3_uri`` with ``read_object(uri) -> bytes``.

    ``read_object`` raises ``ObjectReadError`` (see ``resources.s3_objects``);
    it becomes :class:`UrlListUnreadableError`, except ``ObjectUnavailableError``
    (S3 unreachable), which propagates unchanged. An empty list is
    :class:`NoUsableUrlError`.
    """
    if message.urls is not None:
        urls = list(message.urls)
    else:
        uri = message.urls_s3_uri or ""
        try:
            data = read_object(uri)
        except ObjectUnavailableError:
            raise  # S3 is down, not the message's fault: the caller retries later
        except ObjectReadError as exc:
            raise UrlListUnreadableError(f"URL list for brand {message.brand!r} is unreadable: {exc}") from None
        urls = parse_url_list(data, uri)
    if not urls:
        where = message.urls_s3_uri or "'urls'"
        raise NoUsableUrlError(f"request for brand {message.brand!r} lists no URL in {where}")
    return urls


def bad_message_from(exc: RequestError) -> BadMessageError:
    """The :class:`BadMessageError` for an error raised by ``register_brand`` on a message's content."""
    if isinstance(exc, InvalidBrandError):
        return MessageBrandError(str(exc))
    if isinstance(exc, NoUsableUrlsError):
        return NoUsableUrlError(str(exc))
    return InvalidMessageError(str(exc))
