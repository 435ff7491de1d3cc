"""``raw_media`` as a user tests their own assets: an ephemeral instance, a
brand partition, and a fake downloader injected in place of the real one, so
the test asserts what the asset asked for and what it reported."""

from __future__ import annotations

import hashlib
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from ad_assets.assets.raw_media import raw_media
from ad_assets.brand_manifest import register_brand
from resources.dagster_resources import MediaStoreResource
from resources.downloader import DownloaderResource
from resources.fetcher import FetchResult
from resources.media_store import MediaStore
from resources.parquet_io_manager import ParquetIOManager


class _FakeFetcher:
    """Serves canned bodies by URL; records what was asked."""

    def __init__(self, bodies: dict[str, bytes | None], work_dir: Path, asked: list[str]) -> None:
        self.bodies, self.work_dir, self.asked = bodies, work_dir, asked

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return None

    async def fetch(self, url: str) -> FetchResult:
        self.asked.append(url)
        body = self.bodies.get(url)
        if body is None:
            return FetchResult(url=url, final_url=url, ok=False, cause="http_404", detail=f"{url} answered 404",
                               path=None, sha256=None, bytes=0, head=b"", content_type=None, http_status=404,
                               attempts=1, elapsed_ms=1.0)  # fmt: skip
        path = self.work_dir / f"{len(self.asked)}.incomplete"
        path.write_bytes(body)
        return FetchResult(url=url, final_url=url, ok=True, cause=None, detail=None, path=path,
                           sha256=hashlib.sha256(body).hexdigest(), bytes=len(body), head=body[:4096],
                           content_type="image/png", http_status=200, attempts=1, elapsed_ms=1.0)  # fmt: skip


class FakeDownloader(DownloaderResource):
    """A ``DownloaderResource`` whose fetcher never touches the network."""

    def fetcher(self):  # type: ignore[override]
        return _FakeFetcher(BODIES, Path(self.work_dir), ASKED)


BODIES: dict[str, bytes | None] = {}
ASKED: list[str] = []


@pytest.fixture
def setup(tmp_path, sample_png):
    BODIES.clear()
    ASKED.clear()
    BODIES.update({"http://cdn.test/a.png": sample_png, "http://cdn.test/html": b"<html>hi</html>"})
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("brands", ["acme"])
    (tmp_path / "work").mkdir()
    resources = {
        "media_store": MediaStoreResource(storage_url=str(tmp_path / "store")),
        "downloader": FakeDownloader(work_dir=str(tmp_path / "work")),
        "io_manager": ParquetIOManager(storage_url=str(tmp_path / "store")),
    }
    return instance, resources, MediaStore.from_url(str(tmp_path / "store"))


def test_materialise_reports_outcomes_and_metadata(setup):
    instance, resources, store = setup
    register_brand(store, "acme", ["http://cdn.test/a.png", "http://cdn.test/html", "http://cdn.test/gone"])
    result = dg.materialize([raw_media], partition_key="acme", instance=instance, resources=resources)
    assert result.success
    frame: pd.DataFrame = result.output_for_node("raw_media")
    assert list(frame["status"]) == ["ok", "unsupported", "failed"]
    assert sorted(ASKED) == ["http://cdn.test/a.png", "http://cdn.test/gone", "http://cdn.test/html"]
    meta = result.asset_materializations_for_node("raw_media")[0].metadata
    assert meta["counts"].value == {"ok": 1, "duplicate": 0, "unsupported": 1, "failed": 1}
    assert meta["failures_by_cause"].value == {"unsupported_type": 1, "http_404": 1}
    assert meta["row_count"].value == 3 and meta["path"].value.endswith("raw_media/acme.parquet")
    assert len(meta["preview"].value.records) == 3
    check = result.get_asset_check_evaluations()[0]
    assert check.check_name == "download_failure_rate" and not check.passed


def test_run_config_adds_urls(setup):
    instance, resources, store = setup
    config = dg.RunConfig(ops={"raw_media": {"config": {"urls": ["http://cdn.test/a.png", "mailto:x@y"]}}})
    result = dg.materialize([raw_media], partition_key="acme", instance=instance, resources=resources,
                            run_config=config)  # fmt: skip
    assert result.success
    assert list(result.output_for_node("raw_media")["status"]) == ["ok"]
    assert result.get_asset_check_evaluations()[0].passed


def test_brand_without_urls_fails_clearly(setup):
    instance, resources, _ = setup
    result = dg.materialize([raw_media], partition_key="acme", instance=instance, resources=resources,
                            raise_on_error=False)  # fmt: skip
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "has no URLs" in failure.step_failure_data.error.message


def test_data_version_follows_the_stored_files():
    """Downstream assets go stale when raw_media's files change, and only then."""
    from ad_assets.assets.raw_media import media_data_version, media_frame
    from ad_assets.engine.acquire import empty_row

    def frame(*specs):
        rows = []
        for url, status, sha in specs:
            row = empty_row(url)
            row.update(status=status, sha256=sha)
            rows.append(row)
        return media_frame(rows)

    base = frame(("http://a/1", "ok", "aa"), ("http://a/2", "failed", None))
    reordered = frame(("http://a/2", "failed", None), ("http://a/1", "ok", "aa"))
    assert media_data_version(base) == media_data_version(reordered)
    assert media_data_version(base) != media_data_version(frame(("http://a/1", "ok", "aa"), ("http://a/2", "ok", "bb")))
    assert media_data_version(base) != media_data_version(frame(("http://a/1", "ok", "aa")))
