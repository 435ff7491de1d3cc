"""Brand keys and URLs come from people and queues: every refusal must say why,
and equivalent spellings of one URL must collapse to one."""

from pathlib import Path

import pytest

from ad_assets.brand_requests import (
    InvalidBrandError,
    UrlFileError,
    normalize_url,
    read_url_file,
    split_urls,
    suggest_brand_key,
    validate_brand,
)


@pytest.mark.parametrize("brand", ["acme", "acme-coffee", "a1", "brand_2", "x" * 64])
def test_valid_brand_keys(brand):
    assert validate_brand(brand) == brand


@pytest.mark.parametrize(
    ("brand", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("Acme Corp", "'acme-corp'"),
        ("-acme", "starting with a letter or digit"),
        ("acme/../etc", "invalid brand key"),
        ("x" * 65, "1-64"),
        ("ACME", "'acme'"),
    ],
)
def test_invalid_brand_keys_say_why(brand, fragment):
    with pytest.raises(InvalidBrandError) as info:
        validate_brand(brand)
    assert fragment in str(info.value)


def test_suggestion_is_itself_valid():
    assert validate_brand(suggest_brand_key("  Ünïcode Brand!! "))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("HTTP://Example.COM", "http://example.com/"),
        ("https://example.com:443/a?b=1#frag", "https://example.com/a?b=1"),
        ("http://example.com:8080/x", "http://example.com:8080/x"),
        ("  https://cdn.example.com/ad.png  ", "https://cdn.example.com/ad.png"),
        ("http://[::1]:9000/a", "http://[::1]:9000/a"),
        ("http://example.com./a", "http://example.com/a"),
    ],
)
def test_normalize_url(raw, expected):
    assert normalize_url(raw) == expected


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("ftp://example.com/a.png", "unsupported scheme 'ftp'"),
        ("file:///etc/passwd", "unsupported scheme 'file'"),
        ("example.com/a.png", "unsupported scheme none"),
        ("http://", "no host"),
        ("http://user:pw@example.com/", "credentials"),
        ("http://exa mple.com/", "whitespace"),
        ("http://example.com:99999/", "not a valid URL"),
        ("http://example.com/" + "a" * 5000, "longer than"),
    ],
)
def test_refused_urls_carry_reasons(raw, fragment):
    with pytest.raises(ValueError) as info:
        normalize_url(raw)
    assert fragment in str(info.value)


def test_split_urls_dedupes_in_order_and_keeps_reasons():
    accepted, rejected = split_urls(
        ["http://a.com/1", "HTTP://A.com/1", "ftp://x/y", "http://b.com/2", "http://a.com/1#x"]
    )
    assert accepted == ["http://a.com/1", "http://b.com/2"]
    assert [r.url for r in rejected] == ["ftp://x/y"]


def test_read_url_file_skips_comments_and_blanks(tmp_path: Path):
    path = tmp_path / "urls.txt"
    path.write_text("# header\n\nhttp://a.com/1\n   \n  # indented comment\nhttp://b.com/2\n")
    assert read_url_file(path) == ["http://a.com/1", "http://b.com/2"]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [(None, "does not exist"), ("# only comments\n\n", "holds no URL"), (b"\xff\xfe\x00bad", "not UTF-8")],
)
def test_read_url_file_errors_name_the_file(tmp_path: Path, content, fragment):
    path = tmp_path / "urls.txt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(UrlFileError) as info:
        read_url_file(path)
    assert str(path) in str(info.value) and fragment in str(info.value)


def test_read_url_file_refuses_a_directory(tmp_path: Path):
    with pytest.raises(UrlFileError, match="not a regular file"):
        read_url_file(tmp_path)
