"""The shared pipeline cases (cases/README "Pipeline inputs") through the SQS sensor on
moto, then ``raw_media`` against a loopback server: the bad input is refused or one
failed row, the good URLs are stored, and later runs of the brand are unaffected."""

from __future__ import annotations

import json

import boto3
import dagster as dg
import pytest

from ad_assets.assets.raw_media import raw_media
from ad_assets.brand_manifest import load_manifest
from resources.dagster_resources import MediaStoreResource
from resources.downloader import DownloaderResource
from resources.media_store import MediaStore
from resources.parquet_io_manager import ParquetIOManager
from tests.sensors.sensor_support import make_settings, quick_sensor, record_like_the_daemon, tick
from tests.support.loopback_http import Static
from tests.support.moto_server import REGION


@pytest.fixture(scope="module")
def sample_png() -> bytes:
    from ad_assets.demo.samples import encode_image, render_ad_image

    return encode_image(render_ad_image(["GOOD AD"]))


@pytest.fixture
def settings(tmp_path, aws_env, queues, loopback_http):
    return make_settings(tmp_path, aws_env, queues.url, sqs_dlq_url=queues.dlq_url,
                         allow_hosts=(loopback_http.netloc,))  # fmt: skip


def _raw_media_runs(settings, instance, brand: str, times: int = 2) -> list[list[dict]]:
    """Materialise ``raw_media`` for ``brand`` ``times`` times; every run must succeed."""
    resources = {
        "media_store": MediaStoreResource(storage_url=settings.storage_url),
        "downloader": DownloaderResource(work_dir=str(settings.work_dir / "downloads"),
                                         allow_hosts=list(settings.allow_hosts), max_attempts=1),  # fmt: skip
        "io_manager": ParquetIOManager(storage_url=settings.storage_url),
    }
    outcomes = []
    for _ in range(times):
        result = dg.materialize([raw_media], partition_key=brand, instance=instance, resources=resources)
        assert result.success
        outcomes.append(result.output_for_node("raw_media").to_dict("records"))
    return outcomes


def test_lone_surrogate_request(settings, queues, instance, loopback_http, sample_png):
    loopback_http.route("/img/good.png", Static(sample_png, "image/png"))
    good = loopback_http.url("/img/good.png")
    # The JSON escape \ud800 in the body is a lone surrogate once parsed, exactly as the case sends it.
    body = '{"brand": "surro", "urls": ["%s", "%s"], "request_id": "surro-1"}' % (
        good, loopback_http.url("/img/bad\\ud800.png"))
    queues.send(body)

    result = tick(quick_sensor(settings), instance, None)

    assert [r.partition_key for r in result.run_requests] == ["surro"]
    assert load_manifest(MediaStore.from_url(settings.storage_url), "surro") == [good], "refused at registration"
    record_like_the_daemon(instance, result)
    for rows in _raw_media_runs(settings, instance, "surro"):
        assert [(r["url"], r["status"]) for r in rows] == [(good, "ok")]


def test_idn_host_request(settings, queues, instance, loopback_http, sample_png):
    loopback_http.route("/img/ok.png", Static(sample_png, "image/png"))
    ok = loopback_http.url("/img/ok.png")
    queues.send({"brand": "idn", "urls": [ok, "http://xn--ls8h.la/ad.png"]})
    result = tick(quick_sensor(settings), instance, None)
    assert load_manifest(MediaStore.from_url(settings.storage_url), "idn") == [ok]
    record_like_the_daemon(instance, result)
    for rows in _raw_media_runs(settings, instance, "idn"):
        assert [(r["url"], r["status"]) for r in rows] == [(ok, "ok")]


def test_a_manifest_from_before_the_fix_heals(settings, instance, loopback_http, sample_png):
    """The same two inputs already in a manifest: one failed row each, every run succeeds."""
    loopback_http.route("/img/ok.png", Static(sample_png, "image/png"))
    ok = loopback_http.url("/img/ok.png")
    bad = ["http://xn--ls8h.la/ad.png", loopback_http.url("/img/bad\ud800.png")]
    store = MediaStore.from_url(settings.storage_url)
    old = {"brand": "healed", "request_id": "old", "received_at": "2024-01-01T00:00:00+00:00", "urls": [ok, *bad]}
    store.put_bytes_sync("manifests/healed/old.json", json.dumps(old).encode())
    instance.add_dynamic_partitions("brands", ["healed"])
    for rows in _raw_media_runs(settings, instance, "healed"):
        assert [r["status"] for r in rows] == ["ok", "failed", "failed"]
        assert [r["cause"] for r in rows[1:]] == ["invalid_url", "invalid_url"]


@pytest.mark.parametrize("key", ["crawls/week#23/x.txt", "/crawls/x.txt"])
def test_s3_pointer_keys(settings, queues, instance, make_bucket, aws_env, key):
    bucket = make_bucket()
    s3 = boto3.client("s3", endpoint_url=aws_env, region_name=REGION)
    s3.put_object(Bucket=bucket, Key=key, Body=b"https://cdn.example.com/a.jpg\n")
    queues.send({"brand": "pointer", "urls_s3_uri": f"s3://{bucket}/{key}"})
    result = tick(quick_sensor(settings), instance, None)
    assert [r.partition_key for r in result.run_requests] == ["pointer"]
    assert load_manifest(MediaStore.from_url(settings.storage_url), "pointer") == ["https://cdn.example.com/a.jpg"]
    assert queues.drain(queues.dlq_url) == []
