"""Registration is the one door for the CLI, the UI and the queue: it must keep
every request durably, add without losing, and change nothing on a duplicate."""

import pytest

from ad_assets.brand_manifest import load_manifest, register_brand
from ad_assets.brand_requests import InvalidBrandError, NoUsableUrlsError


def test_register_then_add_more(store):
    first = register_brand(store, "acme", ["http://a.com/1", "http://a.com/2", "ftp://nope/x"])
    assert first.accepted == ["http://a.com/1", "http://a.com/2"]
    assert [r.url for r in first.rejected] == ["ftp://nope/x"]
    assert (first.new_urls, first.total_urls) == (2, 2)
    second = register_brand(store, "acme", ["http://a.com/2", "http://b.com/3"])
    assert (second.new_urls, second.total_urls) == (1, 3)
    assert load_manifest(store, "acme") == ["http://a.com/1", "http://a.com/2", "http://b.com/3"]


def test_same_request_twice_changes_nothing(store):
    register_brand(store, "acme", ["http://a.com/1"], request_id="req-1")
    again = register_brand(store, "acme", ["http://a.com/1"], request_id="req-1")
    assert again.already_recorded and again.new_urls == 0
    assert len(store.list_keys_sync("manifests/acme/")) == 1


def test_brands_are_kept_apart(store):
    register_brand(store, "acme", ["http://a.com/1"])
    register_brand(store, "acme-two", ["http://b.com/1"])
    assert load_manifest(store, "acme") == ["http://a.com/1"]
    assert load_manifest(store, "acme-two") == ["http://b.com/1"]
    assert load_manifest(store, "nobody") == []


def test_bad_brand_and_empty_request(store):
    with pytest.raises(InvalidBrandError):
        register_brand(store, "Bad Brand", ["http://a.com/1"])
    with pytest.raises(NoUsableUrlsError, match="ftp://x/y"):
        register_brand(store, "acme", ["ftp://x/y"])
    assert store.list_keys_sync("manifests/") == []
