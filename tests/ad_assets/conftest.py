"""Shared fixtures for the ``ad_assets`` tests: sample media, a served sample site and an empty media store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ad_assets.demo.samples import Scene, encode_image, render_ad_image, render_ad_video
from resources.media_store import MediaStore
from resources.postgres import embedded_database_url, stop_embedded


@pytest.fixture(scope="session")
def sample_png() -> bytes:
    return encode_image(render_ad_image(["FRESH COFFEE", "SAVE 20%"], accent=(120, 70, 30)))


@pytest.fixture(scope="session")
def sample_jpeg() -> bytes:
    return encode_image(render_ad_image(["RUN FURTHER"], background=(230, 240, 255)), "JPEG")


@pytest.fixture(scope="session")
def sample_mp4() -> bytes:
    return render_ad_video([Scene(("HELLO",), (200, 200, 200), 1.0), Scene(("WORLD",), (20, 20, 20), 1.0)])


@pytest.fixture
def store(tmp_path) -> MediaStore:
    """An empty media store in a local directory under ``tmp_path``."""
    return MediaStore.from_url(str(tmp_path / "store"))


@pytest.fixture(scope="module")
def pg_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An embedded PostgreSQL for the module (Dagster's storage would live there)."""
    data_dir = tmp_path_factory.mktemp("dagster-pg") / "data"
    yield embedded_database_url(data_dir)
    stop_embedded(data_dir)
