"""Registration and the fetcher must agree on what is fetchable: a URL refused
at the door is one the fetcher would refuse too, and one accepted at the door
is one the fetcher can send. Each kind of bad URL is tried member by member."""

from __future__ import annotations

import pytest

from ad_assets.brand_requests import normalize_url, split_urls
from resources.fetch_errors import InvalidURLError
from resources.url_rules import parse_fetch_url, printable
from tests.support.url_kinds import ODD_BUT_FETCHABLE, USERINFO_URLS, fill, unfetchable_urls

UNFETCHABLE = [fill(u, "cdn.example") for u in unfetchable_urls()]


@pytest.mark.parametrize("url", UNFETCHABLE, ids=lambda u: ascii(u)[:60])
def test_the_fetcher_parser_refuses_every_member_with_a_printable_reason(url):
    with pytest.raises(InvalidURLError) as info:
        parse_fetch_url(url)
    assert info.value.cause == "invalid_url"
    message = info.value.message
    message.encode("utf-8")  # a reason must itself be storable (no raw surrogate in it)
    assert message.isprintable()


@pytest.mark.parametrize("url", UNFETCHABLE, ids=lambda u: ascii(u)[:60])
def test_registration_refuses_the_same_urls_one_by_one(url):
    good = "http://cdn.example/good.png"
    accepted, rejected = split_urls([good, url])
    assert accepted == [good]
    [refused] = rejected
    assert refused.url == url and refused.reason
    with pytest.raises(ValueError):
        normalize_url(url)


@pytest.mark.parametrize("url", USERINFO_URLS)
def test_userinfo_is_refused_at_registration_by_policy(url):
    with pytest.raises(ValueError, match="credentials"):
        normalize_url(url)


@pytest.mark.parametrize("url", ODD_BUT_FETCHABLE, ids=lambda u: ascii(u)[:60])
def test_odd_but_fetchable_urls_pass_both(url):
    normal = normalize_url(url)
    parsed = parse_fetch_url(normal)
    assert parsed.scheme in ("http", "https") and parsed.host


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("plain", "plain"), ("a\ud800b", "a\\ud800b"), ("\udfff", "\\udfff"), ("é€😀", "é€😀")],
)
def test_printable_escapes_only_lone_surrogates(raw, expected):
    assert printable(raw) == expected
    printable(raw).encode("utf-8")


def test_non_strings_are_refused_not_raised():
    for value in (None, 3, b"http://cdn.example/a.png"):
        with pytest.raises(InvalidURLError, match="must be a string"):
            parse_fetch_url(value)
