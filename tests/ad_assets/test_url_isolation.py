"""One bad input never sinks a brand: whatever goes wrong with one URL, at any
step, becomes that URL's row and the rest of the brand is stored. Faults are
injected as users meet them (an unforeseen exception at one step of one URL),
against a real loopback server and a real local store; URLs that can never be
fetched, left in a manifest from before registration checked them, heal into
``invalid_url`` rows."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ad_assets.assets.raw_media import media_frame
from ad_assets.demo.samples import encode_image, render_ad_image
from ad_assets.engine import acquire as acquire_module
from ad_assets.engine.acquire import acquire_media
from resources import fetcher as fetcher_module
from resources.fetcher import Fetcher, FetchPolicy
from resources.media_store import MediaStore
from resources.parquet_io_manager import dataframe_from_parquet, dataframe_to_parquet
from resources.url_safety import GuardedNetworkBackend
from tests.support.loopback_http import BrowserOnly, Redirect, Static
from tests.support.url_kinds import BAD_IDNA_HOSTS, fill, unfetchable_urls

BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"


def _acquire(urls, store, work_dir: Path, allow: tuple[str, ...], **policy):
    settings = dict(max_concurrency=8, max_per_host=4, max_attempts=1, total_timeout_s=10, allow_hosts=allow)
    settings.update(policy)

    async def run():
        async with Fetcher(FetchPolicy(**settings), work_dir) as fetcher:
            return await acquire_media(urls, fetcher=fetcher, store=store)

    return asyncio.run(run())


VICTIM_BYTES: list[bytes] = []


@pytest.fixture
def site(loopback_http, sample_png, sample_jpeg, sample_mp4):
    server = loopback_http
    victim = encode_image(render_ad_image(["ONLY THIS ONE FAILS"], accent=(10, 120, 200)))
    VICTIM_BYTES[:] = [victim]
    server.route("/a.png", Static(sample_png, "image/png"))
    server.route("/b.jpg", Static(sample_jpeg, "image/jpeg"))
    server.route("/v.mp4", Static(sample_mp4, "video/mp4"))
    server.route("/victim.png", Static(victim, "image/png"))
    server.route("/victim-target.png", Static(victim, "image/png"))
    server.route("/victim-hop", Redirect("/victim-target.png"))
    return server


class Boom(RuntimeError):
    """The unforeseen exception injected at one step of one URL."""


def _is_victim_file(path) -> bool:
    return Path(path).read_bytes() == VICTIM_BYTES[0]


# step -> (owner, attribute, async?, victim path, does this call belong to the victim?)
STEPS = {
    "parsing": (acquire_module, "parse_fetch_url", False, "/victim.png", lambda a: "victim" in a[0]),
    "hashing": (acquire_module, "fetched_record_key", False, "/victim.png", lambda a: "victim" in a[0]),
    "redirects": (fetcher_module, "_redirect_target", False, "/victim-hop", lambda a: "victim" in str(a[0].url)),
    "sniffing": (acquire_module, "sniff_media_type", False, "/victim.png", lambda a: VICTIM_BYTES[0].startswith(a[0])),
    "probing": (acquire_module, "probe_media", False, "/victim.png", lambda a: _is_victim_file(a[0])),
    "storing": (MediaStore, "put_file", True, "/victim.png", lambda a: _is_victim_file(a[2])),
}


def _inject(owner, name: str, is_async: bool, pick, monkeypatch) -> None:
    """Make ``owner.name`` raise ``Boom`` for the victim's call only."""
    original = getattr(owner, name)
    if is_async:

        async def wrapped(*args, **kwargs):
            if pick(args):
                raise Boom("injected fault")
            return await original(*args, **kwargs)

    else:

        def wrapped(*args, **kwargs):
            if pick(args):
                raise Boom("injected fault")
            return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapped)


@pytest.mark.parametrize("step", [*STEPS, "dns"])
def test_an_unforeseen_exception_at_any_step_is_that_urls_row(step, site, tmp_path, monkeypatch):
    store = MediaStore.from_url(str(tmp_path / "store"))
    good = [site.url("/a.png"), site.url("/b.jpg"), site.url("/v.mp4")]
    allow = (site.netloc, f"localhost:{site.port}")
    if step == "dns":
        # The victim is the only URL spelled with "localhost": its name lookup raises.
        victim = site.url("/victim.png", host="localhost")
        _inject(GuardedNetworkBackend, "resolve", True, lambda a: a[1] == "localhost", monkeypatch)
    else:
        owner, name, is_async, path, pick = STEPS[step]
        victim = site.url(path)
        _inject(owner, name, is_async, pick, monkeypatch)

    rows = _acquire([*good[:2], victim, good[2]], store, tmp_path / "work", allow)

    by_url = {row["url"]: row for row in rows}
    row = by_url[victim]
    assert (row["status"], row["cause"]) == ("failed", "internal_error"), row
    assert "Boom" in row["detail"] and "injected fault" in row["detail"]
    assert [by_url[u]["status"] for u in good] == ["ok", "ok", "ok"], "the rest of the brand is stored"
    assert len(store.list_keys_sync("media/")) == 3, "the victim's file is not stored, the others are"
    assert len(dataframe_from_parquet(dataframe_to_parquet(media_frame(rows)))) == 4, "the table is writable"
    assert list((tmp_path / "work").iterdir()) == [], "no temp file is left behind"


def test_a_manifest_holding_unfetchable_urls_heals_into_invalid_url_rows(site, tmp_path):
    """URLs a manifest got before registration checked them: failed rows, every run, never a failed run."""
    store = MediaStore.from_url(str(tmp_path / "store"))
    bad = [fill(u, site.netloc) for u in unfetchable_urls()]
    urls = [site.url("/a.png"), *bad, site.url("/v.mp4")]
    for attempt in (1, 2):
        rows = _acquire(urls, store, tmp_path / "work", (site.netloc,))
        assert [r["status"] for r in (rows[0], rows[-1])] == ["ok", "ok"]
        for row in rows[1:-1]:
            assert (row["status"], row["cause"]) == ("failed", "invalid_url"), row
            assert row["detail"] and row["attempts"] == 0
        frame = dataframe_from_parquet(dataframe_to_parquet(media_frame(rows)))  # surrogates escaped, storable
        assert len(frame) == len(urls), attempt
    assert sum(site.hits.values()) == 2, "only the two good URLs were requested"


@pytest.mark.parametrize("host", [*BAD_IDNA_HOSTS[:8], "cdn.example:99999", "cdn.example:0"])
def test_a_redirect_to_an_unfetchable_host_is_a_failed_row(host, loopback_http, sample_png, tmp_path):
    store = MediaStore.from_url(str(tmp_path / "store"))
    loopback_http.route("/ok.png", Static(sample_png, "image/png"))
    hop = loopback_http.route("/hop", Redirect(f"http://{host}/ad.png"))
    rows = _acquire([hop, loopback_http.url("/ok.png")], store, tmp_path / "work", (loopback_http.netloc,))
    assert (rows[0]["status"], rows[0]["cause"]) == ("failed", "bad_redirect"), rows[0]
    assert "Location" in rows[0]["detail"]
    assert rows[1]["status"] == "ok"


def test_a_cdn_refusing_non_browsers_gets_a_403_row_saying_what_may_help(loopback_http, sample_png, tmp_path):
    store = MediaStore.from_url(str(tmp_path / "store"))
    url = loopback_http.route("/cdn.png", BrowserOnly(sample_png, "image/png"))
    [row] = _acquire([url], store, tmp_path / "work", (loopback_http.netloc,))
    assert (row["status"], row["cause"], row["http_status"]) == ("failed", "http_403", 403)
    assert "refused" in row["detail"] and "AD_ASSETS_USER_AGENT" in row["detail"]

    [row] = _acquire([url], store, tmp_path / "work2", (loopback_http.netloc,), user_agent=BROWSER_UA)
    assert row["status"] == "ok", "the User-Agent setting is what the server sees"
