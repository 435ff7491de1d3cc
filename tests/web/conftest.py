"""A committed catalog for the web tests: the analysed sample brand and a brand whose ad text is a script.

The sample brand is the real offline analysis (OCR, visual and lexical
vectors, transcript) with a summary that names a near-duplicate group and
an outlier, so the brand page has pictures to show. The hostile brand has
one real stored picture whose OCR text and caption are HTML/JS payloads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ad_assets.engine.catalog_rows import build_brand_catalog
from ad_assets.search import SearchResources
from ad_assets.web.app import create_app
from ai_methods.settings import AISettings
from resources.brand_catalog import AnalysisRow, BrandCatalog, MediaItemRow, SummaryRow, VectorRow
from resources.catalog_publish import publish_brand
from resources.media_store import MediaStore, media_key
from resources.postgres import connect
from resources.vector_index import IndexFiles
from tests.support.catalog_samples import SAMPLE_BRAND, TABLES, SampleBrand
from tests.support.web_server import serving

from tests.web.browser import chromium_path, launch, page, screenshot_dir  # noqa: F401  (fixtures)

HOSTILE_BRAND = "hostile-ads"
PAYLOAD = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> PWNED SALE'


@dataclass(frozen=True)
class WebCatalog:
    """What the web tests search: resources, the hostile item's hash, and the sample."""

    resources: SearchResources
    sample: SampleBrand
    hostile_sha: str
    root: Path


def _sample_catalog(sample: SampleBrand) -> BrandCatalog:
    tables = dict(sample.tables)
    summary = tables["brand_summary"].copy()
    shas = sample.sha
    summary.at[0, "duplicate_groups"] = [[shas["beans.png"], shas["latte.png"]]]
    summary.at[0, "outliers"] = [{"sha256": shas["runner.png"], "similarity_to_brand": 0.41, "z": -1.9}]
    tables["brand_summary"] = summary
    return build_brand_catalog(SAMPLE_BRAND, *(tables[name] for name in TABLES))


def hostile_catalog(store: MediaStore, cache_dir: Path) -> tuple[BrandCatalog, str]:
    """One stored picture with a script for OCR text and caption, embedded like any ad (local provider)."""
    from ad_assets.demo.samples import encode_image, render_ad_image
    from ai_methods.calls import MethodRunner
    import hashlib

    data = encode_image(render_ad_image(["PWNED SALE"], background=(250, 250, 250), accent=(200, 0, 0)))
    sha = hashlib.sha256(data).hexdigest()
    key = media_key(sha, "png")
    store.put_bytes_sync(key, data)

    async def vectors():
        async with MethodRunner(AISettings(default_provider="local", cache_dir=cache_dir)) as runner:
            text = (await runner.run("embed_text", text=PAYLOAD)).output
            image = (await runner.run("embed_image", image=data)).output
        return text, image

    text, image = asyncio.run(vectors())
    item = MediaItemRow(sha, "image", 'http://cdn.test/"><script>window.__pwned=3</script>.png', key,
                        store.uri_for(key), caption=PAYLOAD, caption_basis="model", ocr_text=PAYLOAD,
                        width=800, height=600, mime="image/png", bytes=len(data))  # fmt: skip
    rows = (
        VectorRow(sha, "text", text["space"], "embed_text", np.asarray(text["vector"], np.float32), provider="local",
                  model="local-lexical-v1", version="1", text=PAYLOAD),
        VectorRow(sha, "image", image["space"], "embed_image", np.asarray(image["vector"], np.float32),
                  provider="local", model="local-visual-v1", version="1"),
    )  # fmt: skip
    analyses = (AnalysisRow(sha, "ocr_text", {"text": PAYLOAD}, version="1", provider="local"),)
    summary = SummaryRow(items=1, summary={"themes": [PAYLOAD]}, duplicate_groups=[], outliers=[])
    return BrandCatalog(HOSTILE_BRAND, (item,), analyses=analyses, summary=summary, vectors=rows), sha


@pytest.fixture(scope="module")
def web_catalog(module_database_url, analysed_sample_brand, tmp_path_factory) -> WebCatalog:
    root = tmp_path_factory.mktemp("web")
    store = MediaStore.from_url(analysed_sample_brand.store_url)  # the sample's media, read-only
    # A store of its own for thumbnails and indexes: copy the sample's media in.
    own = MediaStore.from_url(str(root / "store"))
    for key in store.list_keys_sync("media"):
        own.put_bytes_sync(key, store.get_bytes_sync(key))
    hostile, hostile_sha = hostile_catalog(own, root / "ai-cache")
    with connect(module_database_url) as conn:
        publish_brand(conn, IndexFiles(own), _sample_catalog(analysed_sample_brand))
        publish_brand(conn, IndexFiles(own), hostile)
    resources = SearchResources(module_database_url, own, AISettings(default_provider="local", cache_dir=root / "ai"))
    return WebCatalog(resources, analysed_sample_brand, hostile_sha, root)


@pytest.fixture(scope="module")
def web_url(web_catalog) -> Iterator[str]:
    """The app served on loopback over the web catalog."""
    with serving(create_app(web_catalog.resources)) as url:
        yield url


@pytest.fixture(scope="module")
def browser(web_catalog) -> Iterator:
    """Chromium for the module, started after the catalog is built.

    Playwright's sync API keeps an event loop running in this thread while it
    is active, and building the catalog runs ``asyncio.run``: the order matters.
    """
    if chromium_path() is None:
        pytest.skip("no Chromium here: `sudo apt-get install chromium` (make test installs it when run as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = launch(pw)
        try:
            yield chromium
        finally:
            chromium.close()
