"""Benchmark of costs that must stay flat as the catalog grows.

1. Commit. ``--brands`` brands (default 200) of ``--vectors`` image vectors
   (default 5,000 of 512-d, one image item each) are published one after the
   other through ``publish_brand`` (Postgres COPY, FAISS file, prune) into an
   embedded PostgreSQL and a local store. The time of the last brand's commit
   over the first's is the figure (goal <= 1.5): a commit does work
   proportional to its brand, not to the catalog.
2. Cross-brand search over everything those brands committed (200 x 5k =
   1M x 512-d by default), as ``ad-assets search`` without ``--brand`` reads
   it: every brand's index of the committed version, results merged
   (``resources.index_shards``). p50/p99 latency of one query (k=10, the 40
   candidates search takes first) and recall@10 against brute force in numpy
   (goal >= 0.95). Brands of 5k vectors are below ``exact_max_vectors``, so
   the shards are exact (flat); the same vectors as HNSW shards (what larger
   brands get, or every brand with ``exact_max_vectors`` lowered) are built and
   searched with the same queries, interleaved, for the latency/recall trade.
3. Duplicate groups and outliers of a brand of ``--dup-items`` items (default
   30k, 512-d, with planted near-duplicate groups): time and peak RSS growth
   (goal < 60 s, < 1 GiB), and whether the planted groups came back.
4. ``media_analysis``'s engine on ``--items`` small distinct images (default
   1k and 10k; fake provider, no latency, no cache), each size in a fresh
   process: peak RSS of the streamed path (``analyse_brand`` into an
   ``AnalysisSink``: what the asset runs) and, for comparison, of the former
   path (every item kept, then two DataFrames). Goal: 10k / 1k <= 2.

Prints JSON lines: {"name", "value", "unit", "bound", "goal"}; the 1-minute
load average first (two shared cores: compare runs taken under similar load).

    python bench/bench_scale.py                 # full run (~10 min, ~2 GB of index files in a temp dir)
    python bench/bench_scale.py --quick         # 20 brands x 2k vectors, 5k duplicate items
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
# The figures are the builtin pipeline's, whatever method packages are installed (AD_ASSETS_METHODS).
os.environ.setdefault("AD_ASSETS_METHODS", "builtin")

from ad_assets.engine.brand_set import near_duplicate_groups, outliers  # noqa: E402
from resources.brand_catalog import BrandCatalog, MediaItemRow, VectorRow  # noqa: E402
from resources.catalog_db import committed_spaces  # noqa: E402
from resources.catalog_publish import publish_brand  # noqa: E402
from resources.catalog_schema import ensure_schema  # noqa: E402
from resources.index_shards import Shard, ShardSet, cross_brand_shards  # noqa: E402
from resources.media_store import MediaStore  # noqa: E402
from resources.postgres import connect, resolve_database_url, stop_embedded  # noqa: E402
from resources.vector_index import (  # noqa: E402
    IndexConfig,
    IndexFiles,
    build_index,
    index_ids,
    index_vectors,
    normalized,
    search_index,
)

DIM, K, SPACE = 512, 10, "bench-visual-v1"


def emit(name: str, value: float, unit: str, bound: float | None = None, goal: str | None = None) -> None:
    print(json.dumps({"name": name, "value": round(value, 4), "unit": unit, "bound": bound, "goal": goal}), flush=True)


def peak_rss_mib() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: Linux keeps ru_maxrss across execve, so a spawned
    child would report its parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def brand_vectors(b: int, n: int) -> np.ndarray:
    """Embedding-like vectors of brand ``b``: points around a few hundred centres of a shared latent space."""
    rng = np.random.default_rng(1000 + b)
    basis = np.random.default_rng(7).standard_normal((64, DIM)).astype(np.float32)
    centres = rng.standard_normal((max(1, n // 25), 64)).astype(np.float32)
    latent = centres[rng.integers(0, len(centres), n)] + 0.4 * rng.standard_normal((n, 64)).astype(np.float32)
    return normalized(latent @ basis + 0.3 * rng.standard_normal((n, DIM)).astype(np.float32))


def brand_catalog(b: int, n: int) -> BrandCatalog:
    brand = f"brand-{b:04d}"
    vectors = brand_vectors(b, n)
    items, rows = [], []
    for i in range(n):
        sha = f"{b:08x}{i:056x}"
        items.append(MediaItemRow(sha, "image", f"https://cdn.example/{brand}/{i}.png", f"media/{sha[:2]}/{sha}.png",
                                  f"s3://bucket/media/{sha[:2]}/{sha}.png"))  # fmt: skip
        rows.append(VectorRow(sha, "image", SPACE, "embed_image", vectors[i], provider="fake", model="m", version="1"))
    return BrandCatalog(brand, tuple(items), vectors=tuple(rows))


def bench_commit_and_search(brands: int, per_brand: int, queries: int, hnsw_compare: bool) -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        url = resolve_database_url(None, root / "pg")
        files = IndexFiles(MediaStore.from_url(str(root / "store")))
        times = []
        with connect(url) as conn:
            ensure_schema(conn)
            for b in range(brands):
                catalog = brand_catalog(b, per_brand)  # built before the clock: the commit is measured
                started = time.perf_counter()
                publish_brand(conn, files, catalog)
                times.append(time.perf_counter() - started)
            emit("commit_s_first_brand", times[0], "s")
            emit(f"commit_s_brand_{brands}", times[-1], "s")
            # Single brands are noisy on shared cores: the medians of the first and last tenth say the same, steadier.
            tenth = max(1, brands // 10)
            emit("commit_s_median_first_tenth", float(np.median(times[:tenth])), "s")
            emit("commit_s_median_last_tenth", float(np.median(times[-tenth:])), "s")
            emit(f"commit_ratio_brand_{brands}_over_1st", times[-1] / times[0], "x", 1.5, "<=")
            emit("commit_ratio_last_tenth_over_first_tenth",
                 float(np.median(times[-tenth:]) / np.median(times[:tenth])), "x", 1.5, "<=")  # fmt: skip

            reader = IndexFiles(files.store)  # a fresh process's view: loads every shard
            started = time.perf_counter()
            shards = cross_brand_shards(reader, committed_spaces(conn), SPACE)
            conn.rollback()
            emit("cross_brand_load_s", time.perf_counter() - started, "s")
            emit("cross_brand_vectors", shards.ntotal, "vectors")
            emit("cross_brand_shards", len(shards.shards), "shards")
        rng = np.random.default_rng(99)
        picks = rng.integers(0, brands, queries)
        qs = np.stack([brand_vectors(int(b), per_brand)[rng.integers(0, per_brand)] for b in picks])
        qs = normalized(qs + 0.2 * rng.standard_normal(qs.shape).astype(np.float32) / np.sqrt(DIM))
        # The same vectors as HNSW shards (what brands above ``exact_max_vectors`` get), searched side by side.
        hnsw = None
        if hnsw_compare:
            started = time.perf_counter()
            hnsw = ShardSet([Shard(s.brand, s.version, build_index(index_vectors(s.index), index_ids(s.index),
                                                                   IndexConfig(exact_max_vectors=0)))
                             for s in shards.shards], shards.d)  # fmt: skip
            emit("hnsw_shard_build_s_per_brand", (time.perf_counter() - started) / len(shards.shards), "s")
        lat, found, lat_h, found_h = [], [], [], []
        for q in qs:
            started = time.perf_counter()
            _, ids = search_index(shards, q, K * 4)
            lat.append(time.perf_counter() - started)
            found.append(ids[:K])
            if hnsw is not None:
                started = time.perf_counter()
                _, ids = search_index(hnsw, q, K * 4)
                lat_h.append(time.perf_counter() - started)
                found_h.append(ids[:K])
        # Exact answers brand by brand (the ids publish gave: the brand's rows in order, one id space).
        ids_of = {s.brand: s.index for s in shards.shards}
        best = np.full((queries, K), -np.inf, dtype=np.float32)
        best_ids = np.full((queries, K), -1, dtype=np.int64)
        for b in range(brands):
            index = ids_of[f"brand-{b:04d}"]
            scores = qs @ brand_vectors(b, per_brand).T
            all_s = np.concatenate([best, scores], axis=1)
            all_i = np.concatenate([best_ids, np.broadcast_to(index_ids(index), scores.shape)], axis=1)
            top = np.argsort(-all_s, axis=1)[:, :K]
            best, best_ids = np.take_along_axis(all_s, top, 1), np.take_along_axis(all_i, top, 1)
        size = f"{shards.ntotal // 1000}k"
        for kind, lats, founds in [("flat", lat, found), ("hnsw", lat_h, found_h)]:
            if not lats:
                continue
            recall = np.mean([len(set(f.tolist()) & set(e.tolist())) / K for f, e in zip(founds, best_ids)])
            emit(f"cross_brand_{kind}_shards_search_p50_ms_{size}x{DIM}", 1000 * float(np.percentile(lats, 50)), "ms")
            emit(f"cross_brand_{kind}_shards_search_p99_ms_{size}x{DIM}", 1000 * float(np.percentile(lats, 99)), "ms")
            emit(f"cross_brand_{kind}_shards_recall_at_10_{size}x{DIM}", float(recall), "fraction", 0.95, ">=")
        emit("peak_rss_mib_after_search", peak_rss_mib(), "MiB")
    finally:
        stop_embedded(root / "pg")
        shutil.rmtree(root, ignore_errors=True)


def _duplicates_child(path: str, out) -> None:
    """In a fresh process: load the vectors, then group them; peak RSS growth is the grouping's own."""
    vectors = np.load(path)
    shas = [f"{i:064x}" for i in range(len(vectors))]
    before = peak_rss_mib()
    started = time.perf_counter()
    groups = near_duplicate_groups(shas, vectors)
    found_out = outliers(shas, vectors)
    out.send((time.perf_counter() - started, peak_rss_mib() - before, peak_rss_mib(),
              [[int(s, 16) for s in g] for g in groups], len(found_out)))  # fmt: skip


def bench_duplicates(items: int) -> None:
    import multiprocessing as mp

    rng = np.random.default_rng(3)
    vectors = brand_vectors(5000, items)
    order = rng.permutation(items)
    planted = []
    for g in range(items // 100):  # disjoint groups of 3: a creative and two re-encodes of it
        src, *members = (int(x) for x in order[3 * g : 3 * g + 3])
        for m in members:
            vectors[m] = vectors[src] + 0.002 * rng.standard_normal(DIM).astype(np.float32)
        planted.append({src, *members})
    with tempfile.TemporaryDirectory(prefix="bench-dups-") as tmp:
        path = os.path.join(tmp, "vectors.npy")
        np.save(path, normalized(vectors))
        del vectors
        ctx = mp.get_context("spawn")
        receive, send = ctx.Pipe(duplex=False)
        child = ctx.Process(target=_duplicates_child, args=(path, send))
        child.start()
        elapsed, grown, peak, groups, n_outliers = receive.recv()
        child.join()
    as_sets = [set(g) for g in groups]
    covered = sum(any(p <= g for g in as_sets) for p in planted) / max(1, len(planted))
    emit(f"duplicate_groups_s_{items // 1000}k_items", elapsed, "s", 60, "<")
    emit(f"duplicate_groups_peak_rss_growth_mib_{items // 1000}k_items", grown, "MiB", 1024, "<")
    emit(f"duplicate_groups_process_peak_rss_mib_{items // 1000}k_items", peak, "MiB", 1024, "<")
    emit(f"duplicate_groups_planted_found_{items // 1000}k_items", covered, "fraction")
    emit(f"duplicate_groups_{items // 1000}k_items", len(groups), "groups")
    emit(f"outliers_{items // 1000}k_items", n_outliers, "items")


def _analysis_child(rows_path: str, store_url: str, work: str, streamed: bool, out) -> None:
    """In a fresh process: the first AI cycle over the stored rows; sends (peak RSS MiB, items, seconds)."""
    import asyncio

    import pandas as pd

    from ad_assets.engine.analysis_sink import AnalysisSink
    from ad_assets.engine.analysis_tables import ANALYSIS_COLUMNS, EMBEDDING_COLUMNS, analysis_rows, embedding_rows
    from ad_assets.engine.item_analysis import AnalysisConfig, analyse_brand
    from ai_methods.calls import MethodRunner
    from ai_methods.providers.fake import FakeProvider
    from ai_methods.settings import AISettings

    rows = json.loads(Path(rows_path).read_text())
    store, work_dir = MediaStore.from_url(store_url), Path(work)
    settings = AISettings(default_provider="fake", cache_enabled=False, cache_dir=work_dir / "ai-cache")
    kwargs = dict(store=store, cache_dir=work_dir / "media-cache", journal_dir=work_dir / "journals",
                  config=AnalysisConfig())  # fmt: skip

    async def run():
        async with MethodRunner(settings, fake=FakeProvider(0.0), cache=None) as runner:
            if streamed:
                sink = AnalysisSink(work_dir / "staged")
                await analyse_brand(rows, runner=runner, sink=sink, **kwargs)
                sink.close()
                return sink.items
            items, _ = await analyse_brand(rows, runner=runner, **kwargs)
            pd.DataFrame(analysis_rows(items), columns=list(ANALYSIS_COLUMNS))
            pd.DataFrame(embedding_rows(items), columns=list(EMBEDDING_COLUMNS))
            return len(items)

    started = time.perf_counter()
    count = asyncio.run(run())
    out.send((peak_rss_mib(), count, time.perf_counter() - started))


def bench_analysis_memory(sizes: list[int], compare: bool) -> None:
    import multiprocessing as mp

    from PIL import Image

    from resources.media_store import media_key

    peaks: dict[tuple[str, int], float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-analysis-rss-") as tmp:
        store = MediaStore.from_url(str(Path(tmp) / "store"))
        rows, rng = [], np.random.default_rng(5)
        for i in range(max(sizes)):
            pixels = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
            path = Path(tmp) / "one.png"
            Image.fromarray(pixels).save(path)
            data = path.read_bytes()
            import hashlib

            sha = hashlib.sha256(data).hexdigest()
            store.put_bytes_sync(media_key(sha, "png"), data)
            rows.append({"url": f"https://ads.example/{i}.png", "status": "ok", "sha256": sha, "media_type": "image",
                         "storage_key": media_key(sha, "png"), "duration_s": None, "has_audio": None})  # fmt: skip
        ctx = mp.get_context("spawn")
        for mode in ["streamed", "kept"] if compare else ["streamed"]:
            for n in sizes:
                rows_path = Path(tmp) / f"rows-{n}.json"
                rows_path.write_text(json.dumps(rows[:n]))
                work = Path(tmp) / f"work-{mode}-{n}"
                receive, send = ctx.Pipe(duplex=False)
                child = ctx.Process(target=_analysis_child, args=(str(rows_path), store.url, str(work),
                                                                  mode == "streamed", send))  # fmt: skip
                child.start()
                peak, count, elapsed = receive.recv()
                child.join()
                peaks[(mode, n)] = peak
                emit(f"media_analysis_{mode}_peak_rss_mib_{n}_items", peak, "MiB")
                emit(f"media_analysis_{mode}_s_{n}_items", elapsed, "s")
                shutil.rmtree(work, ignore_errors=True)
    small, large = min(sizes), max(sizes)
    for mode in ["streamed", "kept"] if compare else ["streamed"]:
        emit(f"media_analysis_{mode}_peak_rss_ratio_{large}_over_{small}", peaks[(mode, large)] / peaks[(mode, small)],
             "x", 2 if mode == "streamed" else None, "<=" if mode == "streamed" else None)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="20 brands x 2k vectors, 5k duplicate items")
    parser.add_argument("--brands", type=int, default=200)
    parser.add_argument("--vectors", type=int, default=5000, help="vectors per brand")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--dup-items", type=int, default=30_000)
    parser.add_argument("--items", type=int, nargs="+", default=[1000, 10_000], help="brand sizes of part 4")
    parser.add_argument("--no-hnsw", action="store_true", help="part 2 without the HNSW-shards comparison")
    parser.add_argument("--no-compare", action="store_true", help="part 4 without the former keep-everything path")
    parser.add_argument("--only", choices=["commit", "duplicates", "analysis"], help="run one part")
    args = parser.parse_args()
    if args.quick:
        args.brands, args.vectors, args.queries, args.dup_items, args.items = 20, 2000, 50, 5000, [200, 1000]
    emit("load_avg_1m", os.getloadavg()[0], "load")
    if args.only in (None, "duplicates"):
        bench_duplicates(args.dup_items)  # first: its peak RSS is not hidden under the search's
    if args.only in (None, "analysis"):
        bench_analysis_memory(sorted(args.items), not args.no_compare)
    if args.only in (None, "commit"):
        bench_commit_and_search(args.brands, args.vectors, args.queries, not args.no_hnsw)


if __name__ == "__main__":
    main()
