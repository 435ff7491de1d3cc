"""S3 failing under a brand run: errors and stalls are retried by obstore, then end
as that item's ``store_error`` row; the run itself never crashes, and a re-run
stores what the outage cost without downloading anything twice.

S3 is moto's server on loopback, reached through ``S3FaultProxy`` where faults
are injected on the wire. ``MediaStore.from_url`` (the production path, obstore's
default retries: 10 retries within 3 minutes, 30 s per request) is used where
the fault clears quickly; where it never clears, the store is built on an
``S3Store`` with a short retry budget so the test ends in seconds; the mapping
from obstore errors to ``store_error`` is the same code either way.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import boto3
import pytest
from obstore.store import S3Store

from ad_assets.demo.samples import Scene, encode_image, render_ad_image, render_ad_video
from ad_assets.engine.acquire import acquire_media
from ad_assets.engine.item_analysis import AnalysisConfig, analyse_brand
from ai_methods.calls import MethodRunner
from ai_methods.providers.fake import FakeProvider
from ai_methods.settings import AISettings
from resources.fetcher import Fetcher, FetchPolicy
from resources.media_store import MediaStore
from tests.reliability.s3_faults import Fault, FlakyStore, S3FaultProxy
from tests.support.loopback_http import Request, Route, Static, _Responder
from tests.support.moto_server import DUMMY_CREDENTIALS, REGION

@dataclass(frozen=True)
class AfterEvent(Route):
    """Answers like ``route``, but only once ``event`` is set (at most 10 s later)."""

    route: Route
    event: threading.Event

    async def respond(self, request: Request, out: _Responder) -> None:
        await asyncio.to_thread(self.event.wait, 10)
        await self.route.respond(request, out)


SHORT_RETRY = {
    "max_retries": 2,
    "backoff": {"init_backoff": timedelta(milliseconds=10), "max_backoff": timedelta(milliseconds=50), "base": 2},
    "retry_timeout": timedelta(seconds=10),
}


@pytest.fixture(scope="module")
def media() -> dict[str, tuple[bytes, str]]:
    """Four distinct small files: path -> (bytes, content type)."""
    return {
        "/a.png": (encode_image(render_ad_image(["ONE"], size=(160, 100))), "image/png"),
        "/b.png": (encode_image(render_ad_image(["TWO"], size=(160, 100))), "image/png"),
        "/c.jpg": (encode_image(render_ad_image(["THREE"], size=(160, 100)), "JPEG"), "image/jpeg"),
        "/d.mp4": (render_ad_video([Scene(("FOUR",), (20, 90, 40), 0.5)], size=(96, 64), audio_wav=None), "video/mp4"),
    }


@pytest.fixture
def site(loopback_http, media):
    for path, (data, kind) in media.items():
        loopback_http.route(path, Static(data, kind))
    return loopback_http


def _policy(site) -> FetchPolicy:
    return FetchPolicy(max_attempts=1, total_timeout_s=20, allow_hosts=(site.netloc,))


async def _acquire(urls, store, work: Path, site, on_row=None) -> list[dict]:
    async with Fetcher(_policy(site), work) as fetcher:
        return await acquire_media(urls, fetcher=fetcher, store=store, on_row=on_row)


def _s3(bucket: str, endpoint: str, **options) -> MediaStore:
    """A store on ``bucket`` through ``endpoint`` with a short retry budget (see the module docstring)."""
    client = {"allow_http": True, **options.pop("client_options", {})}
    store = S3Store(bucket, prefix="brand", endpoint=endpoint, region=REGION, virtual_hosted_style_request=False,
                    client_options=client, retry_config=options.pop("retry_config", SHORT_RETRY))  # fmt: skip
    return MediaStore(store, url=f"s3://{bucket}/brand", root_uri=f"s3://{bucket}/brand")


def _s3_client(endpoint: str):
    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION,
                        aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])  # fmt: skip


async def test_an_s3_5xx_storm_is_retried_and_every_file_is_stored(
    aws_env, make_bucket, site, media, tmp_path, figures
):
    bucket = make_bucket()
    storm = 6
    with S3FaultProxy(aws_env, lambda method, path, n: Fault(503, "SlowDown") if n <= storm else None) as proxy:
        store = MediaStore.from_url(f"s3://{bucket}/brand", aws_endpoint_url=proxy.url)  # production retry settings
        started = time.monotonic()
        rows = await _acquire([site.url(p) for p in media], store, tmp_path / "work", site)
        elapsed = time.monotonic() - started

    assert [r["status"] for r in rows] == ["ok"] * len(media), [r["detail"] for r in rows]
    assert sum(proxy.faults.values()) == storm
    direct = MediaStore.from_url(f"s3://{bucket}/brand")  # straight to moto: what really landed
    for row, (data, _) in zip(rows, media.values()):
        assert hashlib.sha256(await direct.get_bytes(row["storage_key"])).hexdigest() == row["sha256"]
        assert row["sha256"] == hashlib.sha256(data).hexdigest()
    figures("s3_storm_retries", sum(proxy.faults.values()), "retries",
            "S3 503 storm: requests obstore retried, all files stored")
    figures("s3_storm_elapsed_s", round(elapsed, 2), "s",
            "S3 503 storm: acquisition of 4 files, default obstore retries")


async def test_s3_that_keeps_failing_ends_each_item_as_store_error(
    aws_env, make_bucket, site, media, tmp_path, figures
):
    bucket = make_bucket()
    with S3FaultProxy(aws_env, lambda method, path, n: Fault(503, "SlowDown") if method == "PUT" else None) as proxy:
        store = _s3(bucket, proxy.url)
        started = time.monotonic()
        rows = await _acquire([site.url(p) for p in media], store, tmp_path / "work", site)
        elapsed = time.monotonic() - started

    assert [(r["status"], r["cause"]) for r in rows] == [("failed", "store_error")] * len(media)
    for row in rows:
        assert "SlowDown" in row["detail"] or "503" in row["detail"], row["detail"]
        assert row["storage_key"] is None and row["sha256"]  # downloaded and hashed, not stored
    assert proxy.faults["PUT"] == len(media) * (1 + SHORT_RETRY["max_retries"])  # every try of every item
    assert all(site.hits[p] == 1 for p in media), "a store failure is not a reason to download again"
    assert list((tmp_path / "work").iterdir()) == []
    figures("s3_down_retries_per_item", 1 + SHORT_RETRY["max_retries"], "tries",
            "S3 down: PUT tries per item before store_error (test budget)")
    figures("s3_down_elapsed_s", round(elapsed, 2), "s",
            "S3 down: acquisition of 4 files ending as store_error (test budget)")


async def test_a_stalled_s3_times_out_into_store_error(aws_env, make_bucket, site, media, tmp_path, figures):
    bucket = make_bucket()
    with S3FaultProxy(aws_env, lambda method, path, n: Fault(stall=True) if method == "PUT" else None) as proxy:
        store = _s3(bucket, proxy.url, client_options={"timeout": "500ms"})
        started = time.monotonic()
        rows = await asyncio.wait_for(_acquire([site.url(p) for p in media], store, tmp_path / "work", site), 20)
        elapsed = time.monotonic() - started

    assert [(r["status"], r["cause"]) for r in rows] == [("failed", "store_error")] * len(media)
    assert all("timed out" in r["detail"].lower() or "timeout" in r["detail"].lower() for r in rows), rows[0]["detail"]
    # A PUT is idempotent on S3, and obstore retries its timeouts like any other transient failure.
    assert proxy.faults["PUT"] == len(media) * (1 + SHORT_RETRY["max_retries"])
    figures("s3_stall_elapsed_s", round(elapsed, 2), "s",
            "S3 stalls every PUT, 0.5 s request timeout: until all rows were final")


async def test_the_bucket_removed_mid_run_fails_the_later_items_only(
    aws_env, make_bucket, loopback_http, media, tmp_path
):
    site = loopback_http
    paths = list(media)
    removal = threading.Event()
    for i, path in enumerate(paths):  # the later URLs answer only once the bucket is gone
        data, kind = media[path]
        site.route(path, Static(data, kind) if i == 0 else AfterEvent(Static(data, kind), removal))
    bucket = make_bucket()
    store = MediaStore.from_url(f"s3://{bucket}/brand")
    client = _s3_client(aws_env)
    removed: list[str] = []

    def remove_bucket_after_the_first_row(row: dict) -> None:
        if not removed:
            for item in client.list_objects_v2(Bucket=bucket).get("Contents", []):
                client.delete_object(Bucket=bucket, Key=item["Key"])
            client.delete_bucket(Bucket=bucket)
            removed.append(row["url"])
            removal.set()

    urls = [site.url(p) for p in paths]
    rows = await _acquire(urls, store, tmp_path / "work", site, remove_bucket_after_the_first_row)

    assert rows[0]["status"] == "ok" and removed == [rows[0]["url"]]
    for row in rows[1:]:
        assert (row["status"], row["cause"]) == ("failed", "store_error"), row
        assert "does not exist" in row["detail"]


async def test_a_store_outage_then_a_rerun_loses_nothing_and_downloads_only_what_failed(site, media, tmp_path):
    """The first run: one media upload and one fetched-record write fail. The re-run
    stores the missing file, and downloads again only the two URLs without a record."""
    urls = [site.url(p) for p in media]
    store = MediaStore.from_url(str(tmp_path / "store"))
    flaky = FlakyStore(store, put_file=1, put_bytes=1)

    first = await _acquire(urls, flaky, tmp_path / "work", site)
    assert sorted((r["status"], r["cause"]) for r in first) == [("failed", "store_error")] + [("ok", None)] * 3
    assert "injected outage" in next(r["detail"] for r in first if r["cause"] == "store_error")
    hits = dict(site.hits)

    again = await _acquire(urls, store, tmp_path / "work", site)
    assert [r["status"] for r in again] == ["ok"] * len(media)
    refetched = [p for p in media if site.hits[p] > hits[p]]
    assert len(refetched) == 2  # the file that was not stored, and the one whose record was not written
    assert sum(r["reused"] for r in again) == 2


async def test_s3_failing_during_analysis_fails_that_item_alone(site, media, tmp_path):
    urls = [site.url(p) for p in media]
    store = MediaStore.from_url(str(tmp_path / "store"))
    rows = await _acquire(urls, store, tmp_path / "work", site)
    settings = AISettings(default_provider="fake", cache_dir=tmp_path / "ai-cache")

    async def analyse(with_store):
        async with MethodRunner(settings, fake=FakeProvider(), cache=None) as runner:
            items, _ = await analyse_brand(
                rows, runner=runner, store=with_store, cache_dir=tmp_path / "media-cache",
                journal_dir=tmp_path / "journals", config=AnalysisConfig(frame_count=3),
            )
            return items

    items = await analyse(FlakyStore(store, get_to_file=1))
    assert sorted(i.status for i in items) == ["analysed"] * 3 + ["failed"]
    failed = next(i for i in items if i.status == "failed")
    [failure] = failed.failures
    assert (failure["method"], failure["step"], failure["cause"]) == ("-", "load", "StoreError")
    assert "injected outage" in failure["detail"]

    again = await analyse(store)
    assert [i.status for i in again] == ["analysed"] * 4
    assert [i.steps_resumed > 0 for i in again].count(True) == 3  # the three finished items came from their journals
