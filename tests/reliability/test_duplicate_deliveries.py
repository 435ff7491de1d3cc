"""Duplicate SQS deliveries, followed all the way to the data.

``tests/sensors/`` pins the sensor's side (run keys, deletes, cursor). This
follows duplicates further: a producer that retries, SQS re-delivering after a
lost cursor, and the same URL list sent twice without a request id (which, by
design, is two runs). Whatever arrived how often, the brand must end with one
manifest entry per request, one raw_media row per URL, each file downloaded
and stored once, and one set of catalog rows in Postgres.
"""

from __future__ import annotations

import asyncio
import uuid

import dagster as dg
import pandas as pd
import pytest

from ad_assets.brand_manifest import MANIFEST_PREFIX, load_manifest
from ad_assets.demo.samples import encode_image, render_ad_image
from ad_assets.engine.acquire import MEDIA_COLUMNS, acquire_media
from ad_assets.engine.analysis_tables import ANALYSIS_COLUMNS, EMBEDDING_COLUMNS
from ad_assets.engine.catalog_rows import build_brand_catalog
from resources.catalog_db import commit_brand, committed_brand
from resources.catalog_schema import ensure_schema
from resources.fetcher import Fetcher, FetchPolicy
from resources.media_store import MediaStore
from resources.postgres import connect
from tests.sensors.sensor_support import (
    QUEUED_COORDINATOR,
    Queues,
    make_settings,
    quick_sensor,
    record_like_the_daemon,
    runs_by_brand,
    sqs_client,
    tick,
)
from tests.support.loopback_http import Static


@pytest.fixture
def queues(aws_env: str) -> Queues:
    client = sqs_client(aws_env)
    name = f"dupes-{uuid.uuid4().hex[:10]}"
    url = client.create_queue(QueueName=name)["QueueUrl"]
    return Queues(client, url, client.create_queue(QueueName=f"{name}-dlq")["QueueUrl"])


@pytest.fixture
def instance(tmp_path):
    home = tmp_path / "dagster"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home), overrides=QUEUED_COORDINATOR) as inst:
        yield inst


@pytest.fixture
def site(loopback_http):
    for i in range(3):
        picture = encode_image(render_ad_image([f"AD {i}"], size=(120, 80)))
        loopback_http.route(f"/{i}.png", Static(picture, "image/png"))
    return loopback_http


def _acquire(urls: list[str], store: MediaStore, work, site) -> list[dict]:
    async def run():
        policy = FetchPolicy(max_attempts=1, total_timeout_s=10, allow_hosts=(site.netloc,))
        async with Fetcher(policy, work) as fetcher:
            return await acquire_media(urls, fetcher=fetcher, store=store)

    return asyncio.run(run())


def _catalog(brand: str, rows: list[dict]):
    """The catalog a run commits from its raw_media rows (no analysis: the rows are what is checked here)."""
    raw_media = pd.DataFrame(rows, columns=list(MEDIA_COLUMNS))
    nothing = pd.DataFrame(columns=list(ANALYSIS_COLUMNS)), pd.DataFrame(columns=list(EMBEDDING_COLUMNS))
    return build_brand_catalog(brand, raw_media, *nothing, None)


def test_duplicate_deliveries_end_as_one_row_per_url_everywhere(
    tmp_path, aws_env, queues, instance, site, database_url, figures
):
    settings = make_settings(tmp_path, aws_env, queues.url)
    sensor = quick_sensor(settings)
    urls = [site.url(f"/{i}.png") for i in range(3)]
    first_request = {"brand": "acme", "urls": urls[:2], "request_id": "campaign-7"}
    second_request = {"brand": "acme", "urls": urls[1:]}  # overlaps the first; no request id

    queues.send(first_request)
    queues.send(first_request)  # the producer retried
    queues.send(second_request)
    queues.send(second_request)  # sent twice without a request id: two requests by design
    result = tick(sensor, instance, None)
    record_like_the_daemon(instance, result)
    queues.expire_in_flight(result.cursor)  # the cursor is lost and SQS re-delivers everything
    redelivered = tick(sensor, instance, None)
    record_like_the_daemon(instance, redelivered)
    tick(sensor, instance, redelivered.cursor)

    assert runs_by_brand(instance) == {"acme": 3}
    assert queues.counts() == (0, 0)
    store = MediaStore.from_url(settings.storage_url)
    assert len(store.list_keys_sync(f"{MANIFEST_PREFIX}/acme")) == 2  # one object per distinct request
    manifest = load_manifest(store, "acme")
    assert sorted(manifest) == urls  # each URL once (the two requests registered concurrently: any order)

    # Each of the three runs acquires the brand's manifest and commits its catalog.
    results = []
    with connect(database_url) as conn:
        ensure_schema(conn)
        for _ in range(runs_by_brand(instance)["acme"]):
            rows = _acquire(load_manifest(store, "acme"), store, tmp_path / "work", site)
            assert [r["url"] for r in rows] == manifest and [r["status"] for r in rows] == ["ok"] * 3
            results.append(commit_brand(conn, _catalog("acme", rows)))
        state = committed_brand(conn, "acme")
        media_rows = conn.execute(
            "SELECT count(*), count(DISTINCT sha256) FROM media_items WHERE brand = 'acme'"
        ).fetchone()

    assert [site.hits[f"/{i}.png"] for i in range(3)] == [1, 1, 1], "each file downloaded once across all runs"
    assert len(store.list_keys_sync("media/")) == 3
    assert [r.changed for r in results] == [True, False, False]
    assert state.index_version == 1 and media_rows == (3, 3)
    figures("sqs_duplicates_runs", 3, "runs",
            "8 deliveries (4 sends + 4 re-deliveries) of 3 requests: runs; then 1 commit of 3 rows")
