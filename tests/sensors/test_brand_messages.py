"""The message contract, case by case: what producers may send and the code
each mistake gets in the dead-letter queue (operators filter on it)."""

from __future__ import annotations

import json

import pytest

from ad_assets.brand_messages import (
    BadMessageError,
    BrandMessage,
    InvalidMessageError,
    MessageBrandError,
    NoUsableUrlError,
    NotJsonError,
    UrlListUnreadableError,
    bad_message_from,
    parse_message,
    parse_url_list,
    resolve_urls,
)
from ad_assets.brand_requests import InvalidBrandError, NoUsableUrlsError
from resources.s3_objects import InMemoryObjects, ObjectUnavailableError


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"brand": "acme", "urls": ["https://x.test/a.jpg"]}, BrandMessage("acme", ("https://x.test/a.jpg",))),
        ({"brand": "acme", "urls": ["u"], "request_id": "batch-7/2024"}, BrandMessage("acme", ("u",), request_id="batch-7/2024")),
        ({"brand": "acme", "urls_s3_uri": " s3://b/k/list.txt "}, BrandMessage("acme", urls_s3_uri="s3://b/k/list.txt")),
        ({"brand": "acme", "urls": ["u"], "source": "crawler", "request_id": None}, BrandMessage("acme", ("u",))),
    ],
    ids=["inline", "request-id", "s3-pointer", "extra-fields-ignored"],
)
def test_valid_messages(body, expected):
    assert parse_message(json.dumps(body)) == expected


@pytest.mark.parametrize(
    ("body", "error", "says"),
    [
        ("", NotJsonError, "not JSON"),
        ("brand=acme", NotJsonError, "starts with 'brand=acme'"),
        ("[1, 2]", InvalidMessageError, "JSON object"),
        ('{"urls": ["u"]}', MessageBrandError, "no 'brand'"),
        ('{"brand": "ACME", "urls": ["u"]}', MessageBrandError, "'acme'"),
        ('{"brand": 7, "urls": ["u"]}', MessageBrandError, "must be a string key"),
        ('{"brand": "acme"}', NoUsableUrlError, "no 'urls'"),
        ('{"brand": "acme", "urls": "u"}', InvalidMessageError, "list of strings"),
        ('{"brand": "acme", "urls": ["u", 3]}', InvalidMessageError, "'urls'[1]"),
        ('{"brand": "acme", "urls": ["u"], "urls_s3_uri": "s3://b/k"}', InvalidMessageError, "not both"),
        ('{"brand": "acme", "urls_s3_uri": "https://b/k"}', InvalidMessageError, "s3://bucket"),
        ('{"brand": "acme", "urls_s3_uri": "s3://bucket-only"}', InvalidMessageError, "s3://bucket"),
        ('{"brand": "acme", "urls": ["u"], "request_id": "has space"}', InvalidMessageError, "request_id"),
        ('{"brand": "acme", "urls": ["u"], "request_id": 12}', InvalidMessageError, "request_id"),
    ],
)
def test_bad_messages_name_their_cause(body, error, says):
    with pytest.raises(error) as caught:
        parse_message(body)
    assert says in str(caught.value)
    assert isinstance(caught.value, BadMessageError) and caught.value.code == error.code


def test_codes_are_stable():
    codes = {cls.code for cls in (NotJsonError, InvalidMessageError, MessageBrandError, NoUsableUrlError, UrlListUnreadableError)}
    assert codes == {"not_json", "invalid_message", "invalid_brand", "no_usable_urls", "unreadable_url_list"}


@pytest.mark.parametrize(
    ("data", "urls"),
    [
        (b"\xef\xbb\xbf# exported\nhttps://a\n\n  https://b  \n", ["https://a", "https://b"]),
        (b'  ["https://a", "https://b"]', ["https://a", "https://b"]),
        (b"", []),
    ],
    ids=["text-with-bom-and-comments", "json-list", "empty"],
)
def test_url_lists(data, urls):
    assert parse_url_list(data, "s3://b/k") == urls


@pytest.mark.parametrize(("data", "says"), [(b"\xff\xfe", "not UTF-8"), (b"[1, 2]", "JSON list of URL strings"), (b"[oops", "not valid JSON")])
def test_unparsable_url_lists(data, says):
    with pytest.raises(UrlListUnreadableError, match=says):
        parse_url_list(data, "s3://b/k")


def test_resolving_urls():
    objects = InMemoryObjects({"s3://b/list.txt": b"https://a\n"})
    assert resolve_urls(BrandMessage("acme", urls_s3_uri="s3://b/list.txt"), objects) == ["https://a"]
    with pytest.raises(UrlListUnreadableError, match="s3://b/missing.txt does not exist"):
        resolve_urls(BrandMessage("acme", urls_s3_uri="s3://b/missing.txt"), objects)
    objects.objects["s3://b/empty.txt"] = b"# nothing yet\n"
    with pytest.raises(NoUsableUrlError, match="lists no URL"):
        resolve_urls(BrandMessage("acme", urls_s3_uri="s3://b/empty.txt"), objects)


def test_an_unreachable_s3_is_not_the_messages_fault():
    def s3_down(uri: str) -> bytes:
        raise ObjectUnavailableError("connection refused")

    with pytest.raises(ObjectUnavailableError):
        resolve_urls(BrandMessage("acme", urls_s3_uri="s3://b/list.txt"), s3_down)


def test_registration_errors_map_onto_message_errors():
    assert isinstance(bad_message_from(InvalidBrandError("x")), MessageBrandError)
    assert isinstance(bad_message_from(NoUsableUrlsError("x")), NoUsableUrlError)
