"""A brand of 10,000 items once held every result (vectors as Python float
lists) and every local media copy until the end of ``media_analysis``. These
tests pin what keeps memory and disk bounded: items handed over in row order
with a bounded window ahead, each local copy gone when its item is done, rows
streamed to Parquet in batches that load back as the DataFrames the later
assets read, vectors as float32."""

from __future__ import annotations

import asyncio
import hashlib

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from ad_assets.engine.analysis_sink import AnalysisSink
from ad_assets.engine.analysis_tables import ANALYSIS_COLUMNS, EMBEDDING_COLUMNS
from ad_assets.engine.item_analysis import AnalysisConfig, BrandAnalyser, analyse_brand
from ai_methods.calls import MethodRunner
from ai_methods.providers.fake import FakeProvider
from ai_methods.settings import AISettings
from resources.media_store import MediaStore, StoreNotFoundError, media_key
from resources.parquet_io_manager import dataframe_from_parquet
from resources.parquet_stream import FLOAT32_LIST, JSON, ParquetTableWriter


def _brand(store: MediaStore, tmp_path, n: int, *, duplicate_every: int = 0) -> list[dict]:
    rows, rng = [], np.random.default_rng(1)
    for i in range(n):
        path = tmp_path / "one.png"
        Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(path)
        data = path.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        store.put_bytes_sync(media_key(sha, "png"), data)
        rows.append({"url": f"https://ads.example/{i}.png", "status": "ok", "sha256": sha, "media_type": "image",
                     "storage_key": media_key(sha, "png")})  # fmt: skip
        if duplicate_every and i % duplicate_every == 0:  # the same file under a second URL
            rows.append({**rows[-1], "url": f"https://mirror.example/{i}.png"})
    return rows


@pytest.fixture
def store(tmp_path) -> MediaStore:
    return MediaStore.from_url(str(tmp_path / "store"))


@pytest.fixture
def s3_store(make_bucket) -> MediaStore:
    """A bucket on the loopback S3 API: its objects are copied to the media cache, a local store's are read in place."""
    return MediaStore.from_url(f"s3://{make_bucket()}/media-root")


def _runner(tmp_path, latency=0.0) -> MethodRunner:
    settings = AISettings(default_provider="fake", cache_enabled=False, cache_dir=tmp_path / "ai-cache")
    return MethodRunner(settings, fake=FakeProvider(latency), cache=None)


async def test_items_reach_the_sink_in_row_order_with_a_bounded_window_and_no_copy_left(s3_store, tmp_path):
    store = s3_store
    rows = _brand(store, tmp_path, 40, duplicate_every=7)
    cache = tmp_path / "media-cache"
    seen, in_memory, copies_left = [], [], []
    shared = {k for k in (r["storage_key"] for r in rows) if sum(r["storage_key"] == k for r in rows) > 1}
    async with _runner(tmp_path, latency={"caption": 0.01, "*": 0.0}) as runner:
        analyser = BrandAnalyser(runner, store, cache_dir=cache, journal_dir=tmp_path / "journals",
                                 config=AnalysisConfig(items_in_flight=3))  # fmt: skip
        started = []
        real = analyser._analyse_one

        async def counted(row):
            started.append(row["url"])
            return await real(row)

        analyser._analyse_one = counted

        def sink(item):
            seen.append(item.url)
            in_memory.append(len(started) - len(seen))  # started, not yet handed over
            if item.storage_key not in shared:  # a file two rows share may still be in use by the other
                copies_left.append((cache / item.storage_key).exists())

        count = await analyser.analyse_in_order(rows, sink, window=8)

    assert count == len(rows) and seen == [r["url"] for r in rows]
    assert max(in_memory) < 8
    assert copies_left and not any(copies_left)  # each item's copy went when the item was done
    assert [p for p in cache.rglob("*") if p.is_file()] == []


async def test_a_failing_sink_cancels_what_is_in_flight(store, tmp_path):
    rows = _brand(store, tmp_path, 12)

    def sink(item):
        raise RuntimeError("injected: the Parquet file cannot be written")

    async with _runner(tmp_path) as runner:
        with pytest.raises(RuntimeError, match="injected"):
            await analyse_brand(rows, runner=runner, store=store, cache_dir=tmp_path / "media-cache",
                                journal_dir=tmp_path / "journals", sink=sink)  # fmt: skip
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


async def test_streamed_tables_load_back_as_the_frames_later_assets_read(store, tmp_path):
    rows = _brand(store, tmp_path, 30)
    sink = AnalysisSink(tmp_path / "staged", batch_rows=7)  # several row groups
    async with _runner(tmp_path) as runner:
        kept, _ = await analyse_brand(rows, runner=runner, store=store, cache_dir=tmp_path / "media-cache",
                                      journal_dir=tmp_path / "journals", sink=sink)  # fmt: skip
    count = sink.items
    analysis, embeddings = sink.close()

    frame = dataframe_from_parquet(analysis.path.read_bytes())
    vectors = dataframe_from_parquet(embeddings.path.read_bytes())
    assert kept == [] and count == analysis.rows == len(frame) == 30
    assert list(frame.columns) == list(ANALYSIS_COLUMNS) and list(vectors.columns) == list(EMBEDDING_COLUMNS)
    assert list(frame["sha256"]) == [r["sha256"] for r in rows]
    assert isinstance(frame["units"].iloc[0], list) and frame["units"].iloc[0][0]["results"]
    assert frame["transcript"].isna().all()
    assert embeddings.rows == len(vectors) == sum(sink.vectors_by_kind.values())
    first = vectors["vector"].iloc[0]
    assert isinstance(first, np.ndarray) and first.dtype == np.float32 and len(first) == vectors["dim"].iloc[0]
    assert sink.status == {"analysed": 30} and sink.by_media_type == {"image": 30}
    assert sink.inconsistent_spaces == {}


def test_columns_all_null_in_the_first_batch_take_values_later(tmp_path):
    """The kind that broke batch writers elsewhere (apache/arrow#34397, huggingface/datasets#8591): a type
    inferred from a first batch of None pins the column to null, and a later value cannot be written."""
    columns = {"name": pa.string(), "extra": JSON, "n": pa.int64(), "vector": FLOAT32_LIST}
    with ParquetTableWriter(tmp_path / "t.parquet", columns, batch_rows=1) as writer:
        writer.write([{"name": "a", "extra": None, "n": None, "vector": None}])  # a row group of nulls only
        writer.write([{"name": "b", "extra": {"k": [1, 2]}, "n": 7, "vector": np.ones(3, dtype=np.float32)}])
        writer.write([{"name": "c", "extra": [], "vector": np.zeros(0, dtype=np.float32)}])  # empty list, missing n

    frame = dataframe_from_parquet((tmp_path / "t.parquet").read_bytes())
    assert writer.rows == 3 and frame["name"].tolist() == ["a", "b", "c"]
    assert frame["extra"].tolist() == [None, {"k": [1, 2]}, []]
    assert frame["n"].iloc[1] == 7 and frame["n"].isna().tolist() == [True, False, True]
    assert frame["vector"].iloc[0] is None and frame["vector"].iloc[1].dtype == np.float32
    assert len(frame["vector"].iloc[2]) == 0


@pytest.mark.parametrize(("row", "column"), [
    ({"extra": {"x": object()}}, "extra"),  # not JSON
    ({"n": "seven"}, "n"),  # not an integer
])  # fmt: skip
def test_a_value_a_column_cannot_hold_is_refused_with_the_column_named(tmp_path, row, column):
    writer = ParquetTableWriter(tmp_path / "t.parquet", {"extra": JSON, "n": pa.int64()})
    writer.write([row])
    with pytest.raises(TypeError, match=f"column '{column}'"):
        writer.flush()


async def test_store_copies_and_picture_reads_are_bounded_so_the_first_items_start_first(s3_store, tmp_path, monkeypatch):
    """Every item in flight copying and reading at once made them all finish together: the first
    request waited for all of them (bench/bench_ai_stage.py). Copies and reads are bounded."""
    import ad_assets.engine.item_analysis as engine

    store = s3_store
    rows = _brand(store, tmp_path, 12)
    copying = reading = 0
    most = {"copies": 0, "reads": 0}
    real_copy, real_read = store.get_to_file, engine.image_input

    async def copy(key, path):
        nonlocal copying
        copying += 1
        most["copies"] = max(most["copies"], copying)
        for _ in range(3):
            await asyncio.sleep(0)  # yield: let every other item in flight reach its copy
        try:
            await real_copy(key, path)
        finally:
            copying -= 1

    def read(data):  # in a worker thread
        nonlocal reading
        reading += 1
        most["reads"] = max(most["reads"], reading)
        try:
            return real_read(data)
        finally:
            reading -= 1

    monkeypatch.setattr(store, "get_to_file", copy)
    monkeypatch.setattr(engine, "image_input", read)
    async with _runner(tmp_path) as runner:
        items, _ = await analyse_brand(rows, runner=runner, store=store, cache_dir=tmp_path / "media-cache",
                                       journal_dir=tmp_path / "journals",
                                       config=AnalysisConfig(items_in_flight=12, copies_in_flight=3, decode_workers=1))  # fmt: skip
    assert [i.status for i in items] == ["analysed"] * 12
    assert most["copies"] == 3 and most["reads"] == 1


async def test_a_local_store_is_read_in_place_and_left_as_it_was(store, tmp_path, monkeypatch):
    """Copying each item out of a local store cost a file created, written and deleted per item
    (docs/ai_stage.md): its files are read where they are, never copied, moved or removed."""
    rows = _brand(store, tmp_path, 6, duplicate_every=3)
    never_stored = media_key("0" * 64, "png")
    rows.append({**rows[0], "url": "https://ads.example/gone.png", "sha256": "0" * 64, "storage_key": never_stored})
    stored = {r["storage_key"]: store.local_path(r["storage_key"]).read_bytes() for r in rows[:-1]}

    async def no_copy(key, path):
        raise AssertionError(f"{key} was copied out of a local store")

    monkeypatch.setattr(store, "get_to_file", no_copy)
    cache = tmp_path / "media-cache"
    async with _runner(tmp_path) as runner:
        items, _ = await analyse_brand(rows, runner=runner, store=store, cache_dir=cache,
                                       journal_dir=tmp_path / "journals")  # fmt: skip
    assert [i.status for i in items] == ["analysed"] * (len(rows) - 1) + ["failed"]
    [failure] = items[-1].failures
    assert (failure["step"], failure["cause"]) == ("load", "StoreNotFoundError")
    assert rows[-1]["storage_key"] in failure["detail"] and "not found" in failure["detail"]
    assert {k: store.local_path(k).read_bytes() for k in stored} == stored  # untouched, and still there
    assert not cache.exists() or [p for p in cache.rglob("*") if p.is_file()] == []


def test_only_a_local_store_offers_its_files_in_place(store, s3_store):
    data = b"\x89PNG not really"
    key = media_key(hashlib.sha256(data).hexdigest(), "png")
    store.put_bytes_sync(key, data)
    s3_store.put_bytes_sync(key, data)
    assert store.file_in_place(key).read_bytes() == data
    assert s3_store.file_in_place(key) is None
    with pytest.raises(StoreNotFoundError, match="never stored"):
        store.file_in_place(media_key("1" * 64, "png"))


async def test_journal_opens_are_bounded_with_the_loads_so_the_first_items_start_first(store, tmp_path, monkeypatch):
    """With the media read in place, opening every item's journal at once still held the first
    picture read ~0.1 s behind 128 opens in the worker threads (bench/bench_ai_stage.py)."""
    import threading
    import time

    from ad_assets.engine.item_journal import ItemJournal

    rows = _brand(store, tmp_path, 12)
    opening, most = 0, 0
    lock = threading.Lock()
    real_open = ItemJournal.open.__func__

    def counted(cls, path):  # a local store's loads open the journal in a worker thread
        nonlocal opening, most
        with lock:
            opening += 1
            most = max(most, opening)
        time.sleep(0.02)  # hold it: let every other item in flight reach its open
        try:
            return real_open(cls, path)
        finally:
            with lock:
                opening -= 1

    monkeypatch.setattr(ItemJournal, "open", classmethod(counted))
    async with _runner(tmp_path) as runner:
        items, _ = await analyse_brand(rows, runner=runner, store=store, cache_dir=tmp_path / "media-cache",
                                       journal_dir=tmp_path / "journals",
                                       config=AnalysisConfig(items_in_flight=12, copies_in_flight=3))  # fmt: skip
    assert [i.status for i in items] == ["analysed"] * 12
    assert most == 3


async def test_calls_other_steps_wait_for_ask_for_the_providers_slots_first(store, tmp_path):
    """caption and ocr_text feed embed_text: their calls go before the rest (ProviderLimiter)."""
    rows = _brand(store, tmp_path, 3)
    asked: dict[str, set[int]] = {}
    async with _runner(tmp_path) as runner:
        real = runner.run

        async def run(method, *args, priority=0, **inputs):
            asked.setdefault(getattr(method, "name", method), set()).add(priority)
            return await real(method, *args, priority=priority, **inputs)

        runner.run = run
        items, _ = await analyse_brand(rows, runner=runner, store=store, cache_dir=tmp_path / "media-cache",
                                       journal_dir=tmp_path / "journals")  # fmt: skip
    assert [i.status for i in items] == ["analysed"] * 3
    assert asked["caption"] == asked["ocr_text"] == {0}
    assert asked["labels"] == asked["embed_image"] == asked["embed_text"] == {1}
