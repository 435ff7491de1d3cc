"""Benchmark of the search pages: page and API latency (p50/p99) and thumbnail generation per item.

1. Latency. The app (``ad_assets.web.app``) runs under uvicorn on loopback
   over two catalogs in an embedded PostgreSQL, and text searches are sent one
   at a time through httpx: the HTML search page (``GET /?q=``) and the JSON
   API (``GET /api/search?q=``), each query of a fixed list repeated, first
   call of each discarded (index load). The catalogs:
   - ``sample``: the demo's own generator (``ad_assets.demo.samples``: three
     image ads with rendered text and a three-scene video with speech),
     analysed for real on the offline ``local`` provider;
   - ``10k``: 10,000 synthetic image items whose OCR texts are drawn from a
     vocabulary of ad words, with real ``local-lexical-v1`` text vectors (the
     space a text query is embedded in) and the full-text index, one stored
     picture shared by all (thumbnails are not part of page latency: the
     browser fetches them afterwards).
   Goal: page and API p50 <= 300 ms, p99 <= 1 s on the 10k catalog (two
   shared cores).
2. Thumbnails. Per item, from the stored bytes through the decoding layer
   to a cached JPEG: the sample's PNG image ad and its video's frame at 4.5 s (cold:
   decoded), then the same thumbnail again (warm: read from the store).
   Goal: cold <= 250 ms per item.

Prints JSON lines: {"name", "value", "unit", "bound", "goal"}; the 1-minute
load average first. ``--quick``: 1,000 synthetic items and fewer repeats.

    python bench/bench_search_pages.py
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from ad_assets.search import SearchResources  # noqa: E402
from ad_assets.web import thumbnails  # noqa: E402
from ad_assets.web.app import create_app  # noqa: E402
from ai_methods.providers.local.lexical import MODEL_ID, SPACE, lexical_vector  # noqa: E402
from ai_methods.settings import AISettings  # noqa: E402
from resources.brand_catalog import BrandCatalog, MediaItemRow, VectorRow  # noqa: E402
from resources.catalog_publish import publish_brand  # noqa: E402
from resources.media_store import MediaStore, media_key  # noqa: E402
from resources.postgres import connect, resolve_database_url, stop_embedded  # noqa: E402
from resources.vector_index import IndexFiles  # noqa: E402
from tests.support.web_server import serving  # noqa: E402

WORDS = (
    "summer sale coffee latte beans fresh organic running shoes air lumen store visit today new offer free "
    "delivery spring autumn winter collection premium deal save percent limited edition classic bold bright "
    "city travel family kitchen garden sport energy drink snack chocolate vanilla mint ocean mountain"
).split()
QUERIES = ["summer sale", "fresh coffee", "running shoes", "free delivery today", "limited edition", "xyzzy plugh"]


def emit(name: str, value: float, unit: str, bound: float | None = None, goal: str | None = None) -> None:
    print(json.dumps({"name": name, "value": round(value, 3), "unit": unit, "bound": bound, "goal": goal}), flush=True)


def synthetic_catalog(store: MediaStore, n: int, seed: int = 0) -> BrandCatalog:
    """``n`` image items with ad-word OCR texts and their real lexical vectors; one shared stored picture."""
    from ad_assets.demo.samples import encode_image, render_ad_image

    rng = random.Random(seed)
    picture = encode_image(render_ad_image(["SUMMER SALE"], background=(240, 235, 220), accent=(30, 90, 200)))
    key = media_key(f"{seed:064x}", "png")
    store.put_bytes_sync(key, picture)
    items, vectors = [], []
    for i in range(n):
        sha = f"{i + 1:064x}"
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 6))).upper()
        items.append(MediaItemRow(sha, "image", f"http://cdn.test/synthetic/{i}.png", key, store.uri_for(key),
                                  ocr_text=text, caption="Image 800×600", caption_basis="measured",
                                  width=800, height=600, mime="image/png", bytes=len(picture)))  # fmt: skip
        vectors.append(VectorRow(sha, "text", SPACE, "embed_text", lexical_vector(text), provider="local",
                                 model=MODEL_ID, version="1", text=text))  # fmt: skip
    return BrandCatalog("synthetic-10k", tuple(items), vectors=tuple(vectors))


def latency(base: str, path: str, repeats: int) -> list[float]:
    """Milliseconds per request, each query ``repeats`` times after one discarded warm-up call."""
    out = []
    with httpx.Client(timeout=60) as client:
        for query in QUERIES:
            client.get(f"{base}{path}", params={"q": query}).raise_for_status()
            for _ in range(repeats):
                started = time.perf_counter()
                client.get(f"{base}{path}", params={"q": query}).raise_for_status()
                out.append((time.perf_counter() - started) * 1000)
    return out


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def bench_latency(name: str, resources: SearchResources, repeats: int, goal: bool) -> None:
    with serving(create_app(resources)) as base:
        for label, path in (("page", "/"), ("api", "/api/search")):
            ms = latency(base, path, repeats)
            p50, p99 = percentile(ms, 50), percentile(ms, 99)
            emit(f"search_{label}_p50_{name}", p50, "ms", 300.0 if goal else None, "<=" if goal else None)
            emit(f"search_{label}_p99_{name}", p99, "ms", 1000.0 if goal else None, "<=" if goal else None)


def bench_thumbnails(store: MediaStore, image_key: str, image_sha: str, video_key: str, video_sha: str) -> None:
    cases = (("image", {"sha256": image_sha, "storage_key": image_key, "media_type": "image"}, None),
             ("video", {"sha256": video_sha, "storage_key": video_key, "media_type": "video"}, 4.5))  # fmt: skip
    for label, item, t in cases:
        store.delete_sync(thumbnails.thumbnail_key(item["sha256"], t))
        started = time.perf_counter()
        made = thumbnails.thumbnail(store, item, t)
        cold = (time.perf_counter() - started) * 1000
        warm_runs = []
        for _ in range(5):
            started = time.perf_counter()
            assert thumbnails.thumbnail(store, item, t) == made
            warm_runs.append((time.perf_counter() - started) * 1000)
        emit(f"thumbnail_cold_{label}", cold, "ms/item", 250.0, "<=")
        emit(f"thumbnail_warm_{label}", statistics.median(warm_runs), "ms/item")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 synthetic items, fewer repeats")
    args = parser.parse_args()
    n, repeats = (1000, 5) if args.quick else (10_000, 20)
    emit("loadavg_1min", os.getloadavg()[0], "load")
    root = Path(tempfile.mkdtemp(prefix="bench-search-pages-"))
    pg_dir = root / "pg"
    try:
        from tests.support.catalog_samples import TABLES, VIDEO, analyse_sample_brand

        from ad_assets.engine.catalog_rows import build_brand_catalog

        sample = analyse_sample_brand(root / "sample")
        store = MediaStore.from_url(sample.store_url)
        url = resolve_database_url(None, pg_dir)
        ai = AISettings(default_provider="local", cache_dir=root / "ai")
        with connect(url) as conn:
            publish_brand(conn, IndexFiles(store), build_brand_catalog(sample.brand, *(sample.tables[t] for t in TABLES)))
        bench_latency("sample", SearchResources(url, store, ai), repeats, goal=False)

        started = time.perf_counter()
        big = synthetic_catalog(store, n)
        with connect(url) as conn:
            publish_brand(conn, IndexFiles(store), big)
        emit(f"synthetic_{n}_build_and_commit", time.perf_counter() - started, "s")
        bench_latency(f"{n // 1000}k", SearchResources(url, store, ai), repeats, goal=n >= 10_000)

        beans, video = sample.sha["beans.png"], sample.sha[VIDEO]
        bench_thumbnails(store, media_key(beans, "png"), beans, media_key(video, "mp4"), video)
    finally:
        stop_embedded(pg_dir)
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
