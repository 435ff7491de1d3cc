"""A small brand analysed for real, offline: the intermediate tables a ``brand_catalog`` run reads.

Generated images with rendered ad text and a video with three scenes and a
spoken track (the demo's WAV) are stored in a local media store and run
through the first AI cycle on the ``local`` provider (real OCR, captions,
visual and lexical embeddings, speech-to-text). The tables go through the
Parquet round trip the IO manager applies, so they look exactly like what the
asset loads. Built once per session (~10-20 s) and shared by the search and
catalog-asset tests.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # the heavy imports wait until a test asks for the sample (this is a session-wide plugin)
    import pandas as pd

    from resources.media_store import MediaStore

SAMPLE_BRAND = "sample-coffee"
IMAGES = {
    "beans.png": (["ETHIOPIAN BEANS", "SINGLE ORIGIN"], (235, 225, 205), (90, 60, 30)),
    "runner.png": (["RUN FURTHER", "LUMEN AIR"], (230, 240, 255), (30, 90, 200)),
    "latte.png": (["NEW OAT LATTE", "TRY IT TODAY"], (245, 235, 220), (170, 120, 80)),
}
VIDEO = "morning.mp4"
# (lines, background, seconds): three clearly different scenes of 2 s each.
SCENES = [(("FRESH COFFEE",), (250, 240, 220)), (("VISIT OUR STORE",), (30, 60, 120)), (("SAVE 20%",), (200, 60, 40))]
SCENE_SECONDS = 2.0
TABLES = ("raw_media", "media_analysis", "media_embeddings", "brand_summary")


@dataclass(frozen=True)
class SampleBrand:
    """The analysed sample: its tables, where its media are, and each file's sha256 and local copy."""

    brand: str
    store_url: str
    tables: dict[str, pd.DataFrame]
    sha: dict[str, str]
    files: dict[str, Path]


def _media(root: Path) -> dict[str, bytes]:
    from ad_assets.demo.samples import SPOKEN_AD_WAV, Scene, encode_image, render_ad_image, render_ad_video

    media = {
        name: encode_image(render_ad_image(lines, background=bg, accent=accent))
        for name, (lines, bg, accent) in IMAGES.items()
    }
    scenes = [Scene(lines, bg, SCENE_SECONDS) for lines, bg in SCENES]
    media[VIDEO] = render_ad_video(scenes, audio_wav=SPOKEN_AD_WAV)
    return media


def _raw_media_rows(store: MediaStore, root: Path, media: dict[str, bytes]) -> tuple[list[dict], dict, dict]:
    from ad_assets.engine.acquire import MEDIA_COLUMNS
    from ad_assets.engine.media_probe import probe_image, probe_video
    from resources.media_store import media_key

    rows, shas, files = [], {}, {}
    for name, data in media.items():
        sha = hashlib.sha256(data).hexdigest()
        ext = name.rsplit(".", 1)[1]
        key = media_key(sha, ext)
        store.put_bytes_sync(key, data)
        path = root / "files" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        video = ext == "mp4"
        probe = probe_video(path) if video else probe_image(path)
        row = dict.fromkeys(MEDIA_COLUMNS)
        row.update(
            url=f"http://cdn.test/{SAMPLE_BRAND}/{name}", status="ok", sha256=sha, bytes=len(data),
            media_type="video" if video else "image", mime="video/mp4" if video else "image/png",
            width=probe.width, height=probe.height, duration_s=probe.duration_s, has_audio=probe.has_audio,
            storage_key=key, storage_uri=store.uri_for(key), fetched_at="2026-01-01T00:00:00+00:00",
        )  # fmt: skip
        rows.append(row)
        shas[name], files[name] = sha, path
    # A second URL serving the same bytes, as raw_media records it.
    rows.append(dict(rows[0], url=f"http://cdn.test/{SAMPLE_BRAND}/copy.png", status="duplicate"))
    return rows, shas, files


def _round_trip(frame: pd.DataFrame) -> pd.DataFrame:
    from resources.parquet_io_manager import dataframe_from_parquet, dataframe_to_parquet

    return dataframe_from_parquet(dataframe_to_parquet(frame))


def analyse_sample_brand(root: Path) -> SampleBrand:
    """Store the sample media under ``root`` and run the first AI cycle on them (local provider)."""
    import asyncio

    import pandas as pd

    from ad_assets.engine.acquire import MEDIA_COLUMNS
    from ad_assets.engine.analysis_tables import ANALYSIS_COLUMNS, EMBEDDING_COLUMNS, analysis_rows, embedding_rows
    from ad_assets.engine.item_analysis import AnalysisConfig, analyse_brand
    from ai_methods.calls import MethodRunner
    from ai_methods.settings import AISettings
    from resources.media_store import MediaStore

    store = MediaStore.from_url(str(root / "store"))
    rows, shas, files = _raw_media_rows(store, root, _media(root))
    settings = AISettings(default_provider="local", cache_dir=root / "ai-cache")

    async def run():
        async with MethodRunner(settings) as runner:
            items, _ = await analyse_brand(
                rows, runner=runner, store=store, cache_dir=root / "run-cache", journal_dir=root / "journals",
                config=AnalysisConfig(frame_count=12, dedupe_threshold=0.95),
            )  # fmt: skip
        return items

    items = asyncio.run(run())
    failed = [f for item in items for f in item.failures]
    assert not failed, f"the sample analysis failed: {failed}"
    tables = {
        "raw_media": pd.DataFrame(rows, columns=list(MEDIA_COLUMNS)),
        "media_analysis": pd.DataFrame(analysis_rows(items), columns=list(ANALYSIS_COLUMNS)),
        "media_embeddings": pd.DataFrame(embedding_rows(items), columns=list(EMBEDDING_COLUMNS)),
        "brand_summary": pd.DataFrame([{"brand": SAMPLE_BRAND, "items": len(items), "summary": {"themes": ["coffee"]},
                                        "summary_error": None, "duplicate_groups": [], "outliers": [], "method": {}}]),
    }  # fmt: skip
    return SampleBrand(SAMPLE_BRAND, str(root / "store"), {k: _round_trip(v) for k, v in tables.items()}, shas, files)


@pytest.fixture(scope="session")
def analysed_sample_brand() -> Iterator[SampleBrand]:
    """The sample brand, analysed once per session (its store is read-only for the tests: copy it to change it)."""
    root = Path(tempfile.mkdtemp(prefix="ad-assets-sample-"))
    try:
        yield analyse_sample_brand(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
