"""The first AI cycle is where the money goes and where a brand run can be lost
halfway: every item must get every method its type calls for, a broken item or
a failing method must stay that item's problem, and a run killed midway must
resume without paying twice for what it already got. The engine is plain
asyncio, so it is run here directly on real encoded media in a local store,
with the deterministic fake provider standing in for the remote models (and
the local visual descriptor where near-duplicate frames must look alike).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ad_assets.demo.samples import Scene, encode_image, render_ad_image, render_ad_video
from ad_assets.engine.analysis_tables import analysis_rows, embedding_rows
from ad_assets.engine.item_analysis import (
    IMAGE_STEPS,
    AnalysisConfig,
    ItemAnalysis,
    analyse_brand,
    failures_by_method,
    journal_store_key,
)
from ai_methods.cache import ResultCache
from ai_methods.calls import MethodRunner
from ai_methods.errors import BadResponseError
from ai_methods.providers.fake import FakeProvider
from ai_methods.settings import AISettings
from resources.media_store import MediaStore
from tests.ad_assets.ai_call_log import CallLog
from tests.ad_assets.media_rows import store_media

REPO = Path(__file__).resolve().parents[2]
SCENES = [Scene(("ONE",), (250, 240, 220), 1.0), Scene(("TWO",), (30, 60, 120), 1.0), Scene(("THREE",), (200, 40, 40), 1.0)]


@pytest.fixture(scope="module")
def three_scene_mp4() -> bytes:
    """3 s, three still scenes (a small marker moves), spoken audio."""
    return render_ad_video(SCENES)


@pytest.fixture(scope="module")
def silent_mp4() -> bytes:
    """2 s, two still scenes unlike the other video's (no frame of one is a frame of the other)."""
    return render_ad_video([Scene(("FOUR",), (20, 140, 60), 1.0), Scene(("FIVE",), (240, 200, 0), 1.0)], audio_wav=None)


def runner_for(tmp_path: Path, fake: FakeProvider | None = None, *, cache: bool = True, log: CallLog | None = None,
               **providers: str) -> MethodRunner:  # fmt: skip
    """A runner on the fake provider (``providers`` overrides per method, e.g. ``embed_image="local"``)."""
    settings = AISettings(default_provider="fake", method_providers=providers, cache_dir=tmp_path / "ai-cache")
    return MethodRunner(
        settings,
        fake=fake or FakeProvider(),
        cache=ResultCache(tmp_path / "ai-cache" / "results.sqlite") if cache else None,
        methods=log.methods() if log is not None else None,
    )


def analyse(tmp_path: Path, store: MediaStore, rows: list[dict], runner: MethodRunner, **config: Any) -> list[ItemAnalysis]:
    async def run() -> list[ItemAnalysis]:
        async with runner:
            items, _ = await analyse_brand(
                rows, runner=runner, store=store, cache_dir=tmp_path / "media-cache", journal_dir=tmp_path / "journals",
                config=AnalysisConfig(**config),
            )  # fmt: skip
            return items

    return asyncio.run(run())


def outputs(items: list[ItemAnalysis]) -> list[dict[str, Any]]:
    """What a run produced, without how it got it (cached, latency, resumed): comparable across runs."""
    found = []
    for item in items:
        found.append(
            {
                "sha256": item.sha256,
                "status": item.status,
                "frames": (item.frames_sampled, item.frames_kept),
                "units": [(u.unit, u.frame_index, u.t_s, {m: r["output"] for m, r in u.results.items()}) for u in item.units],
                "transcript": item.transcript,
                "segments": [None if r is None else r["output"] for r in item.segment_vectors],
                "failures": item.failures,
            }
        )
    return found


# ----- what each kind of item goes through ------------------------------------------------


def test_image_gets_every_image_method_and_a_text_embedding(tmp_path, store, sample_png):
    fake = FakeProvider()
    row = store_media(store, sample_png)
    (item,) = analyse(tmp_path, store, [row], runner_for(tmp_path, fake))

    assert fake.calls == Counter({m: 1 for m in (*IMAGE_STEPS, "embed_image", "embed_text")})
    assert (item.status, item.media_type, item.failures) == ("analysed", "image", [])
    (unit,) = item.units
    assert (unit.unit, unit.frame_index, unit.t_s) == ("image", None, None)
    assert set(unit.results) == {*IMAGE_STEPS, "embed_image", "embed_text"}

    (analysed,) = analysis_rows([item])
    assert analysed["status"] == "analysed" and analysed["ai_calls"] == 7 and analysed["frames_sampled"] == 0
    assert set(analysed["methods"]) == {*IMAGE_STEPS, "embed_image", "embed_text"}
    assert "vector" not in analysed["units"][0]["results"]["embed_image"]["output"]  # vectors live in media_embeddings
    assert analysed["units"][0]["caption"] == unit.output("caption")["caption"]
    vectors = embedding_rows([item])
    assert [(v["kind"], v["dim"], v["space"]) for v in vectors] == [("image", 64, "fake-v1"), ("text", 64, "fake-v1")]
    caption, ocr = unit.output("caption")["caption"], unit.output("ocr_text")["text"]
    assert vectors[1]["text"] == f"{caption}\n{ocr}"
    assert np.linalg.norm(vectors[0]["vector"]) == pytest.approx(1.0, abs=1e-5)


def test_calls_in_flight_reach_the_provider_limit_by_default(tmp_path, store):
    # An image keeps about two calls in flight at a time, so the items in flight must follow the
    # providers' concurrency: 16 items could never fill 128 slots.
    rows = [store_media(store, encode_image(render_ad_image([f"OFFER {i}"], size=(160, 120)))) for i in range(40)]
    settings = AISettings(default_provider="fake", concurrency={"fake": 128}, cache_dir=tmp_path / "ai-cache")
    runner = MethodRunner(settings, fake=FakeProvider(latency_s=0.05), cache=None)
    items = analyse(tmp_path, store, rows, runner)
    assert [i.status for i in items] == ["analysed"] * 40
    assert runner.accounting()["limits"]["fake"]["max_in_flight"] == 128


def test_a_units_methods_share_one_decode_of_the_picture(tmp_path, store, sample_png, monkeypatch):
    import ai_methods.images

    decodes = []
    real = ai_methods.images.decode_rgb

    def counting(data, label="image"):
        decodes.append(label)
        return real(data, label)

    monkeypatch.setattr(ai_methods.images, "decode_rgb", counting)
    runner = runner_for(tmp_path, cache=False, detect_faces="local", dominant_colors="local", embed_image="local")
    (item,) = analyse(tmp_path, store, [store_media(store, sample_png)], runner)
    assert item.status == "analysed"
    assert {"detect_faces", "dominant_colors", "embed_image"} <= set(item.units[0].results)
    assert len(decodes) == 1  # three local methods, one decode


@pytest.mark.parametrize(
    ("embed_provider", "kept"),
    [
        ("local", [0, 3, 6]),  # a visual descriptor sees three scenes: one frame kept per scene
        ("fake", list(range(9))),  # fake vectors differ for every distinct frame: nothing is dropped
    ],
)
def test_video_is_sampled_deduplicated_and_transcribed(tmp_path, store, three_scene_mp4, embed_provider, kept):
    fake = FakeProvider()
    row = store_media(store, three_scene_mp4)
    assert row["has_audio"] and row["duration_s"] == pytest.approx(3.0, abs=0.1)
    (item,) = analyse(tmp_path, store, [row], runner_for(tmp_path, fake, embed_image=embed_provider), frame_count=9)

    assert item.status == "analysed", item.failures
    assert (item.frames_sampled, item.frames_kept) == (9, len(kept))
    assert [u.frame_index for u in item.units] == kept
    # Each kept frame carries the time of the frame shown at its sample time (10 fps, the last at 2.9 s),
    # not the time asked.
    shown = [min(np.floor(i * row["duration_s"] / 8 * 10 + 1e-6), 29) / 10 for i in kept]
    assert [u.t_s for u in item.units] == shown
    for method in IMAGE_STEPS:
        assert fake.calls[method] == len(kept)  # the image methods run on kept frames only
    assert fake.calls["embed_image"] == (9 if embed_provider == "fake" else 0)
    assert all(u.results["embed_image"]["provider"] == embed_provider for u in item.units)

    assert fake.calls["transcribe_speech"] == 1
    transcript = item.transcript
    assert transcript and transcript["words"] and transcript["segments"]
    assert len(item.segment_vectors) == len(transcript["segments"])
    vectors = embedding_rows([item])
    spoken = [v for v in vectors if v["kind"] == "transcript"]
    assert [(v["t_s"], v["t_end_s"], v["text"]) for v in spoken] == [
        (s["start"], s["end"], s["text"]) for s in transcript["segments"] if s["text"].strip()
    ]
    assert Counter(v["kind"] for v in vectors)["image"] == len(kept)


def test_video_without_audio_is_not_transcribed(tmp_path, store, silent_mp4):
    fake = FakeProvider()
    row = store_media(store, silent_mp4)
    assert row["has_audio"] is False
    (item,) = analyse(tmp_path, store, [row], runner_for(tmp_path, fake), frame_count=4)
    assert item.status == "analysed" and item.frames_kept == 4
    assert fake.calls["transcribe_speech"] == 0
    assert item.transcript is None and item.segment_vectors == []
    assert all(v["kind"] != "transcript" for v in embedding_rows([item]))


# ----- failures stay with their item ------------------------------------------------------


def test_corrupt_video_fails_alone(tmp_path, store, sample_png, three_scene_mp4):
    good_video = store_media(store, three_scene_mp4)
    broken = store_media(store, three_scene_mp4[:600], probe=False)
    broken.update(media_type="video", duration_s=3.0, has_audio=True)  # it measured fine when it was fetched
    image = store_media(store, sample_png)
    fake = FakeProvider()
    items = analyse(tmp_path, store, [good_video, broken, image], runner_for(tmp_path, fake), frame_count=3)

    assert [i.sha256 for i in items] == [good_video["sha256"], broken["sha256"], image["sha256"]]
    assert [i.status for i in items] == ["analysed", "failed", "analysed"]
    (failure,) = items[1].failures
    assert (failure["method"], failure["step"], failure["cause"]) == ("-", "load", "corrupt_media")
    assert f"{broken['sha256']}.mp4 does not decode" in failure["detail"]
    assert items[1].units == [] and items[1].transcript is None
    assert fake.calls["transcribe_speech"] == 1  # the good video's only: the broken one never got that far
    assert failures_by_method(items) == {"-": 1}
    assert analysis_rows(items)[1]["status"] == "failed"


class _BrokenLabels(FakeProvider):
    """A provider whose ``labels`` model crashes on every call; everything else answers."""

    async def answer(self, method: str) -> None:
        await super().answer(method)
        if method == "labels":
            raise RuntimeError("labels model crashed")


def test_a_failing_method_is_recorded_on_the_item_and_the_rest_goes_on(tmp_path, store, sample_png, silent_mp4):
    rows = [store_media(store, sample_png), store_media(store, silent_mp4)]
    items = analyse(tmp_path, store, rows, runner_for(tmp_path, _BrokenLabels()), frame_count=2)

    assert [i.status for i in items] == ["partial", "partial"]
    failures = [f for i in items for f in i.failures]
    assert {f["step"] for f in failures} == {"image:labels", "frame0:labels", "frame1:labels"}
    assert {(f["method"], f["cause"]) for f in failures} == {("labels", "InternalMethodError")}
    assert all("labels model crashed" in f["detail"] for f in failures)
    assert failures_by_method(items) == {"labels": 3}
    for unit in (u for i in items for u in i.units):
        assert set(unit.results) == {*IMAGE_STEPS, "embed_image", "embed_text"} - {"labels"}


def test_an_image_whose_every_method_failed_is_failed_not_partial(tmp_path, store, sample_png):
    fake = FakeProvider(errors={m: [BadResponseError(f"{m}: unusable reply")] for m in (*IMAGE_STEPS, "embed_image")})
    (item,) = analyse(tmp_path, store, [store_media(store, sample_png)], runner_for(tmp_path, fake))
    assert item.status == "failed"
    assert failures_by_method([item]) == {m: 1 for m in (*IMAGE_STEPS, "embed_image")}
    assert fake.calls["embed_text"] == 0  # no caption and no OCR text: nothing to embed


# ----- the journal: resume, never serve a stale answer ------------------------------------


def test_finished_journal_is_stored_beside_the_media_and_resumes_elsewhere(tmp_path, store, sample_png, silent_mp4):
    rows = [store_media(store, sample_png), store_media(store, silent_mp4)]
    first = analyse(tmp_path / "a", store, rows, runner_for(tmp_path / "a"), frame_count=3)
    for row in rows:
        key = journal_store_key(row["sha256"])
        assert key.rsplit("/", 1)[0] == row["storage_key"].rsplit("/", 1)[0]  # same folder as the media
        assert store.exists_sync(key)

    # Another machine: no local journal, no result cache; the stored journals answer everything.
    log = CallLog()
    again = analyse(tmp_path / "b", store, rows, runner_for(tmp_path / "b", cache=False, log=log), frame_count=3)
    assert log.completed == []
    assert outputs(again) == outputs(first)
    # image: 7 steps; video: 3 frame embeddings, then 5 image methods + embed_text on each of the 3 kept frames
    assert [i.steps_resumed for i in again] == [7, 3 + 3 * 6]


def test_journal_never_answers_for_a_different_input(tmp_path, store, silent_mp4):
    """Step keys name positions (``frame1``); with another frame count ``frame1`` is another picture."""
    row = store_media(store, silent_mp4)
    analyse(tmp_path, store, [row], runner_for(tmp_path, cache=False), frame_count=3)
    log = CallLog()
    resumed = analyse(tmp_path, store, [row], runner_for(tmp_path, cache=False, log=log), frame_count=5)
    fresh = analyse(tmp_path / "fresh", store, [row], runner_for(tmp_path / "fresh", cache=False), frame_count=5)
    assert outputs(resumed) == outputs(fresh)
    # Only frame0 is the same picture under the same key: its 7 steps are reused. frame1 and frame2
    # now show other moments, and frame3/frame4 are new keys: all computed.
    assert resumed[0].steps_resumed == 7
    assert log.by_method() == Counter({m: 4 for m in (*IMAGE_STEPS, "embed_image", "embed_text")})


# ----- crash and resume ---------------------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import asyncio, json
    from pathlib import Path
    from ad_assets.engine.item_analysis import AnalysisConfig, analyse_brand
    from ai_methods.cache import ResultCache
    from ai_methods.calls import MethodRunner
    from ai_methods.providers.fake import FakeProvider
    from ai_methods.settings import AISettings
    from resources.media_store import MediaStore
    from tests.ad_assets.ai_call_log import CallLog

    work = Path({work!r})
    log = CallLog(work / "calls.jsonl", kill_at={kill_at})
    settings = AISettings(default_provider="fake", concurrency={{"fake": 4}}, cache_dir=work / "ai-cache")
    cache = ResultCache(work / "ai-cache" / "results.sqlite") if {cache} else None

    async def main():
        runner = MethodRunner(settings, fake=FakeProvider(latency_s=0.01), cache=cache, methods=log.methods())
        await analyse_brand(json.loads((work / "rows.json").read_text()), runner=runner,
                            store=MediaStore.from_url({store!r}), cache_dir=work / "media-cache",
                            journal_dir=work / "journals", config=AnalysisConfig(frame_count=6))

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("keep", ["journal", "cache", "journal+cache"])
def test_killed_run_resumes_without_paying_twice(tmp_path, store, sample_png, three_scene_mp4, silent_mp4, keep):
    """A brand run is SIGKILLed inside its N-th provider call, then run again.

    ``journal``: no result cache, the per-item journals alone must carry the
    finished steps over; ``cache``: the journals are lost, the result cache
    must; ``journal+cache``: both, as in production.
    """
    media = [sample_png, three_scene_mp4, silent_mp4]
    rows = [store_media(store, data) for data in media]
    use_cache = "cache" in keep

    # The uninterrupted run, on a store of its own (finished journals are kept beside the media).
    reference_store = MediaStore.from_url(str(tmp_path / "reference-store"))
    reference_log = CallLog()
    reference = analyse(tmp_path / "reference", reference_store, [store_media(reference_store, data) for data in media],
                        runner_for(tmp_path / "reference", cache=False, log=reference_log), frame_count=6)  # fmt: skip
    paid = Counter(reference_log.completed)
    assert max(paid.values()) == 1  # the media has no repeated input, so any repeat below is a repeat payment

    work = tmp_path / "run"
    work.mkdir()
    (work / "rows.json").write_text(json.dumps(rows))
    child = _CHILD.format(work=str(work), kill_at=len(paid) // 2, cache=use_cache, store=store.url)
    done = subprocess.run([sys.executable, "-c", child], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == -9, done.stderr  # killed, not finished or crashed
    before_kill = CallLog.read(work / "calls.jsonl")
    assert 0 < len(before_kill) < len(paid)
    if keep == "cache":  # lose every journal, local and stored beside the media of finished items
        shutil.rmtree(work / "journals")
        for row in rows:
            store.delete_sync(journal_store_key(row["sha256"]))

    log = CallLog()
    resumed = analyse(work, store, rows, runner_for(work, cache=use_cache, log=log), frame_count=6)
    paid_twice = Counter(before_kill) + Counter(log.completed)
    assert [k for k, n in paid_twice.items() if n > 1] == []  # no finished call was paid for again
    assert set(paid_twice) == set(paid)  # and together the two runs did exactly the work of one
    assert outputs(resumed) == outputs(reference)
    resumed_steps = sum(i.steps_resumed for i in resumed)
    assert resumed_steps == (len(before_kill) if keep != "cache" else 0)


def test_an_unexpected_error_in_one_item_does_not_sink_the_others(tmp_path, store, sample_png, silent_mp4, monkeypatch):
    from ad_assets.engine import item_analysis

    def explode(*args, **kwargs):
        raise RuntimeError("frame sampler bug")

    monkeypatch.setattr(item_analysis, "iter_frames", explode)
    rows = [store_media(store, silent_mp4), store_media(store, sample_png)]
    items = analyse(tmp_path, store, rows, runner_for(tmp_path, FakeProvider()), frame_count=2)

    assert [i.status for i in items] == ["failed", "analysed"]
    (failure,) = items[0].failures
    assert (failure["step"], failure["cause"]) == ("internal", "RuntimeError")
    assert "frame sampler bug" in failure["detail"]


def test_a_journal_that_cannot_be_copied_is_a_note_not_a_failure(tmp_path, store, sample_png, monkeypatch):
    from resources.media_store import StoreError

    real_put = store.put_file

    async def put_file(key, path, **kwargs):
        if key.endswith(".journal.jsonl"):
            raise StoreError(f"store unavailable for {key}")
        return await real_put(key, path, **kwargs)

    monkeypatch.setattr(store, "put_file", put_file)
    (item,) = analyse(tmp_path, store, [store_media(store, sample_png)], runner_for(tmp_path, FakeProvider()))
    assert item.status == "analysed" and item.failures == []
    assert len(item.notes) == 1 and "journal not copied" in item.notes[0]
    assert analysis_rows([item])[0]["notes"] == item.notes
