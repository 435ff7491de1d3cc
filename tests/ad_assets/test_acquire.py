"""Acquisition against a real HTTP server on loopback: every URL ends as one
row with the right status and cause, each good file is stored once, and a
re-run downloads nothing that is already stored."""

from __future__ import annotations

import asyncio
import hashlib
import io
from pathlib import Path

import pytest

from ad_assets.engine.acquire import acquire_media, summarize_rows
from resources.fetcher import Fetcher, FetchPolicy
from resources.media_store import MediaStore
from tests.support.loopback_http import Redirect, Static, html, status


def _acquire(urls, store, work_dir: Path, allow: str):
    policy = FetchPolicy(
        max_concurrency=8, max_per_host=4, max_attempts=2, backoff_base_s=0.01, backoff_cap_s=0.05,
        total_timeout_s=10, allow_hosts=(allow,),
    )  # fmt: skip

    async def run():
        async with Fetcher(policy, work_dir) as fetcher:
            return await acquire_media(urls, fetcher=fetcher, store=store)

    return asyncio.run(run())


@pytest.fixture
def site(loopback_http, sample_png, sample_jpeg, sample_mp4):
    server = loopback_http
    server.route("/a.png", Static(sample_png, "image/png"))
    server.route("/b.jpg", Static(sample_jpeg, "application/octet-stream"))  # type from bytes, not header
    server.route("/v.mp4", Static(sample_mp4, "video/mp4"))
    server.route("/copy.png", Static(sample_png, "image/png"))
    server.route("/page.html", html("<html><body>not an ad</body></html>"))
    server.route("/moved", Redirect("/b.jpg"))
    server.route("/broken.mp4", Static(sample_mp4[:300], "video/mp4"))
    server.route("/error", status(500))
    return server


def test_every_url_gets_its_outcome_and_files_are_stored_once(site, tmp_path):
    store = MediaStore.from_url(str(tmp_path / "store"))
    urls = [site.url(p) for p in ["/a.png", "/b.jpg", "/v.mp4", "/copy.png", "/page.html", "/moved",
                                  "/broken.mp4", "/error", "/missing.png"]]  # fmt: skip
    urls += ["http://unreachable.invalid/x.png", "http://localhost:9/blocked.png"]
    rows = _acquire(urls, store, tmp_path / "work", site.netloc)
    by_path = {row["url"].split("/", 3)[-1]: row for row in rows}
    assert [r["url"] for r in rows] == urls, "one row per URL, in order"

    assert by_path["a.png"]["status"] == "ok" and by_path["a.png"]["mime"] == "image/png"
    assert (by_path["a.png"]["width"], by_path["a.png"]["height"]) == (640, 480)
    assert by_path["b.jpg"]["mime"] == "image/jpeg"
    video = by_path["v.mp4"]
    assert video["media_type"] == "video" and video["has_audio"] is True and video["duration_s"] > 1.5
    assert by_path["copy.png"]["status"] == "duplicate"
    assert by_path["copy.png"]["sha256"] == by_path["a.png"]["sha256"]
    assert (by_path["page.html"]["status"], by_path["page.html"]["cause"]) == ("unsupported", "unsupported_type")
    assert "HTML" in by_path["page.html"]["detail"]
    assert by_path["moved"]["status"] == "duplicate" and by_path["moved"]["final_url"].endswith("/b.jpg")
    assert (by_path["broken.mp4"]["status"], by_path["broken.mp4"]["cause"]) == ("failed", "corrupt_media")
    assert (by_path["error"]["cause"], by_path["error"]["attempts"]) == ("http_500", 2)
    assert by_path["missing.png"]["cause"] == "http_404"
    assert by_path["x.png"]["cause"] == "dns_error"
    assert by_path["blocked.png"]["cause"] == "blocked_address"

    media = sorted(store.list_keys_sync("media/"))
    assert len(media) == 3, media  # a.png, b.jpg, v.mp4: duplicates stored once
    for row in rows:
        if row["status"] == "ok":
            assert row["storage_key"] in media
            assert hashlib.sha256(Path(row["storage_uri"]).read_bytes()).hexdigest() == row["sha256"]
    summary = summarize_rows(rows, 1.0)
    assert summary["counts"] == {"ok": 3, "duplicate": 2, "unsupported": 1, "failed": 5}
    assert summary["failures_by_cause"]["http_500"] == 1
    assert list((tmp_path / "work").iterdir()) == [], "no temp file is left behind"


def test_rerun_downloads_nothing_already_stored(site, tmp_path):
    store = MediaStore.from_url(str(tmp_path / "store"))
    urls = [site.url("/a.png"), site.url("/v.mp4"), site.url("/missing.png")]
    first = _acquire(urls, store, tmp_path / "work", site.netloc)
    hits_before = dict(site.hits)
    second = _acquire(urls, store, tmp_path / "work", site.netloc)
    assert [r["status"] for r in second] == [r["status"] for r in first]
    assert [r["reused"] for r in second] == [True, True, False]
    assert site.hits["/a.png"] == hits_before["/a.png"] and site.hits["/v.mp4"] == hits_before["/v.mp4"]
    assert site.hits["/missing.png"] == hits_before["/missing.png"] + 1, "failures are tried again"


def test_records_of_an_older_probe_are_measured_again_from_the_store_not_the_url(loopback_http, tmp_path):
    """A record written before media were measured as displayed (a phone photo said 800x600) is
    corrected on the next run from the stored copy: its URL is not fetched again."""
    import json

    from PIL import Image

    from ad_assets.demo.samples import render_ad_image
    from ad_assets.engine.acquire import fetched_record_key
    from ad_assets.engine.media_probe import PROBE_VERSION

    upright = render_ad_image(["TURNED"], size=(300, 400))
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # kept sideways, EXIF says "turn 90° clockwise"
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    stored.save(buf, "JPEG", exif=exif.tobytes())
    loopback_http.route("/phone.jpg", Static(buf.getvalue(), "image/jpeg"))
    url = loopback_http.url("/phone.jpg")
    store = MediaStore.from_url(str(tmp_path / "store"))
    (first,) = _acquire([url], store, tmp_path / "work", loopback_http.netloc)
    assert (first["width"], first["height"], first["rotation"]) == (300, 400, 90)

    # What the earlier release wrote: stored size, no probe version.
    key = fetched_record_key(url)
    old = json.loads(store.get_bytes_sync(key))
    old.update(width=400, height=300, rotation=None)
    old.pop("probe_version")
    store.put_bytes_sync(key, json.dumps(old).encode())
    hits = loopback_http.hits["/phone.jpg"]

    (again,) = _acquire([url], store, tmp_path / "work", loopback_http.netloc)
    assert again["reused"] is True and loopback_http.hits["/phone.jpg"] == hits
    assert (again["width"], again["height"], again["rotation"]) == (300, 400, 90)
    assert json.loads(store.get_bytes_sync(key))["probe_version"] == PROBE_VERSION  # corrected once, kept
