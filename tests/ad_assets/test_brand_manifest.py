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


# -- replace: lists that can shrink ---------------------------------------------------------


def test_replace_supersedes_earlier_requests_and_later_adds_append(store):
    register_brand(store, "acme", ["http://a.com/1", "http://a.com/2"])
    replaced = register_brand(store, "acme", ["http://a.com/2", "http://b.com/3"], mode="replace")
    assert (replaced.mode, replaced.new_urls, replaced.removed_urls, replaced.total_urls) == ("replace", 1, 1, 2)
    assert load_manifest(store, "acme") == ["http://a.com/2", "http://b.com/3"]
    register_brand(store, "acme", ["http://c.com/4"])
    assert load_manifest(store, "acme") == ["http://a.com/2", "http://b.com/3", "http://c.com/4"]
    assert len(store.list_keys_sync("manifests/acme/")) == 3, "superseded requests stay as history"


def test_a_redelivered_replace_changes_nothing_even_after_later_requests(store):
    register_brand(store, "acme", ["http://a.com/1"], request_id="crawl-1", mode="replace")
    register_brand(store, "acme", ["http://b.com/2"], request_id="crawl-2", mode="replace")
    again = register_brand(store, "acme", ["http://a.com/1"], request_id="crawl-1", mode="replace")
    assert again.already_recorded and again.removed_urls == 0
    assert load_manifest(store, "acme") == ["http://b.com/2"], "a duplicate delivery does not reorder"


def test_rerunning_a_command_reapplies_it_when_other_requests_came_since(store):
    first, second = ["http://a.com/1"], ["http://b.com/2"]
    register_brand(store, "acme", first, mode="replace", reapply=True)
    register_brand(store, "acme", second, mode="replace", reapply=True)
    again = register_brand(store, "acme", first, mode="replace", reapply=True)
    assert not again.already_recorded and load_manifest(store, "acme") == first
    same = register_brand(store, "acme", first, mode="replace", reapply=True)
    assert same.already_recorded, "re-running the latest request is a no-op"
    assert len(store.list_keys_sync("manifests/acme/")) == 3


def test_manifests_written_before_modes_read_as_adds_in_arrival_order(store):
    import json

    for n, stamp in ((1, "2024-01-01T00:00:00+00:00"), (2, "2024-01-02T00:00:00+00:00")):
        doc = {"brand": "acme", "request_id": f"old-{n}", "received_at": stamp, "urls": [f"http://old.com/{n}"]}
        store.put_bytes_sync(f"manifests/acme/old{n}.json", json.dumps(doc).encode())
    assert load_manifest(store, "acme") == ["http://old.com/1", "http://old.com/2"]
    register_brand(store, "acme", ["http://new.com/3"], mode="replace")
    assert load_manifest(store, "acme") == ["http://new.com/3"]


@pytest.mark.parametrize("mode", ["ADD", "merge", "", None])
def test_an_unknown_mode_is_refused_before_anything_is_written(store, mode):
    with pytest.raises(ValueError, match="'add'"):
        register_brand(store, "acme", ["http://a.com/1"], mode=mode)
    assert store.list_keys_sync("manifests/") == []


# -- the compacted snapshot: registration reads a few objects however long the history ----------


def _count_reads(store, monkeypatch):
    reads = []
    real = store.get_bytes_sync
    monkeypatch.setattr(store, "get_bytes_sync", lambda key: reads.append(key) or real(key))
    return reads


def _from_every_request(store, brand):
    from ad_assets.brand_manifest import _read_requests, effective_urls

    return effective_urls(_read_requests(store, brand))


def test_registration_reads_the_same_few_objects_at_the_5th_and_the_60th_request(store, monkeypatch):
    reads = _count_reads(store, monkeypatch)
    counts = {}
    for n in range(1, 61):
        reads.clear()
        register_brand(store, "acme", [f"http://a.com/{n}"], mode="replace" if n % 7 == 0 else "add")
        counts[n] = len(reads)

    assert counts[5] == counts[60] <= 1  # the snapshot only
    assert load_manifest(store, "acme") == _from_every_request(store, "acme")


def test_a_request_the_snapshot_missed_is_read_and_one_sorting_before_it_forces_a_full_read(store):
    import json

    from ad_assets.brand_manifest import manifest_key
    from ad_assets.manifest_snapshot import snapshot_key

    register_brand(store, "acme", ["http://a.com/1"])
    register_brand(store, "acme", ["http://a.com/2"], mode="replace")
    stale = store.get_bytes_sync(snapshot_key("acme"))
    register_brand(store, "acme", ["http://a.com/3"])
    store.put_bytes_sync(snapshot_key("acme"), stale)  # another writer's older snapshot won the race
    assert load_manifest(store, "acme") == ["http://a.com/2", "http://a.com/3"]

    # A concurrent writer at the same seq as a covered request, but received earlier: it sorts before.
    early = {"brand": "acme", "request_id": "early", "received_at": "2000-01-01T00:00:00+00:00", "mode": "replace",
             "seq": 2, "urls": ["http://a.com/9"]}  # fmt: skip
    store.put_bytes_sync(manifest_key("acme", "early"), json.dumps(early).encode())

    assert load_manifest(store, "acme") == _from_every_request(store, "acme") == ["http://a.com/2", "http://a.com/3"]


@pytest.mark.parametrize("garbage", [b"", b"{not json", b'{"format": 1}', b'{"format": 99, "covered": {}, "urls": []}',
                                     b'{"format": 1, "covered": {"k": []}, "urls": []}'])  # fmt: skip
def test_an_unreadable_snapshot_is_rebuilt_from_the_requests(store, garbage):
    from ad_assets.manifest_snapshot import snapshot_key

    register_brand(store, "acme", ["http://a.com/1"])
    register_brand(store, "acme", ["http://a.com/2"])
    store.put_bytes_sync(snapshot_key("acme"), garbage)

    assert load_manifest(store, "acme") == ["http://a.com/1", "http://a.com/2"]
    again = register_brand(store, "acme", ["http://a.com/2", "http://a.com/3"])
    assert (again.new_urls, again.total_urls) == (1, 3)
