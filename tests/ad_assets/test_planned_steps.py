"""The engine runs whatever the plan holds, where each method declared: a method needing every
picture's OCR gets each kept frame's in time order, a picture-level method needing the item's
transcript gets it, conditions skip what does not apply, a need that failed is absent (not a
failure of its dependant), and a ``search_field`` is embedded for text search. Real media, a
local store, the fake provider for the remote models."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from ad_assets.demo.samples import Scene, encode_image, render_ad_image, render_ad_video
from ad_assets.engine.analysis_tables import analysis_rows, embedding_rows
from ad_assets.engine.item_analysis import AnalysisConfig, ItemAnalysis, analyse_brand
from ad_assets.engine.pipeline_plan import PipelinePlan, build_plan
from ai_methods import RESULTS, TEXT, AIMethod
from ai_methods.calls import MethodRunner
from ai_methods.errors import BadResponseError
from ai_methods.placement import BRAND, ITEM, PICTURE, TEXT_FOUND, Condition, media_type_is
from ai_methods.providers.fake import FakeProvider
from ai_methods.registry import registry
from ai_methods.settings import AISettings
from resources.media_store import MediaStore
from tests.ad_assets.media_rows import store_media

SCENES = [Scene(("ONE",), (250, 240, 220), 1.0), Scene(("TWO",), (30, 60, 120), 1.0), Scene(("THREE",), (200, 40, 40), 1.0)]


class FrameTexts(AIMethod):
    """Item level: every kept picture's OCR text, as received."""

    name, version, accepts, providers = "frame_texts", "1", (RESULTS,), ("fake",)
    output_schema = {"type": "object"}
    applies_to, needs, search_field = ITEM, ("ocr_text",), "joined"

    async def compute(self, inputs, ctx):
        seen = [(r["t_s"], r["output"]["text"]) for r in inputs.results]
        return {"seen": seen, "joined": " / ".join(text for _, text in seen)}


class SpokenWords(AIMethod):
    """Picture level, videos only: how many words the item's transcript holds."""

    name, version, accepts, providers = "spoken_words", "1", (RESULTS,), ("fake",)
    output_schema = {"type": "object"}
    applies_to, needs, condition = PICTURE, ("transcribe_speech",), media_type_is("video")

    async def compute(self, inputs, ctx):
        (transcript,) = [r["output"] for r in inputs.results if r["method"] == "transcribe_speech"]
        return {"words": len(transcript.get("words", []))}


class Shout(AIMethod):
    """Picture level where OCR found text: the text upper-cased."""

    name, version, accepts, providers = "shout", "1", (TEXT,), ("fake",)
    output_schema = {"type": "object"}
    applies_to, needs, condition = PICTURE, ("ocr_text",), TEXT_FOUND

    async def compute(self, inputs, ctx):
        return {"text": inputs.text.upper()}


MINE = {m.name: m for m in (FrameTexts(), SpokenWords(), Shout())}


@pytest.fixture(scope="module")
def media() -> dict[str, bytes]:
    return {"video": render_ad_video(SCENES), "image": encode_image(render_ad_image(["SAVE 20%"]), "PNG")}


def plan(*names: str) -> PipelinePlan:
    return build_plan({**registry(), **MINE}, ["builtin", *names])


def run(tmp_path: Path, rows: list[dict], plan: PipelinePlan, fake: FakeProvider | None = None) -> list[ItemAnalysis]:
    settings = AISettings(default_provider="fake", method_providers={"embed_image": "local"}, cache_dir=tmp_path / "c")
    runner = MethodRunner(settings, fake=fake or FakeProvider(), methods={**registry(), **MINE})
    store = MediaStore.from_url(str(tmp_path / "store"))

    async def go() -> list[ItemAnalysis]:
        async with runner:
            items, _ = await analyse_brand(
                rows, runner=runner, store=store, cache_dir=tmp_path / "media", journal_dir=tmp_path / "journals",
                config=AnalysisConfig(frame_count=6), plan=plan,
            )  # fmt: skip
            return items

    return asyncio.run(go())


def rows(tmp_path: Path, *data: bytes) -> list[dict[str, Any]]:
    store = MediaStore.from_url(str(tmp_path / "store"))
    return [store_media(store, d) for d in data]


def test_an_item_level_method_gets_every_kept_pictures_output_in_time_order(tmp_path, media):
    (video,) = run(tmp_path, rows(tmp_path, media["video"]), plan("frame_texts"))
    assert video.status == "analysed" and video.frames_kept == 3
    expected = [[u.t_s, u.output("ocr_text")["text"]] for u in video.units]
    assert [list(p) for p in video.item_results["frame_texts"]["output"]["seen"]] == expected
    assert [t for t, _ in expected] == sorted(t for t, _ in expected)
    # its search_field is embedded for text search, with the method as the text's source
    (row,) = [r for r in embedding_rows([video]) if r.get("source") == "frame_texts"]
    assert row["kind"] == "text" and row["unit"] == "item" and row["text"] == " / ".join(t for _, t in expected).strip()
    assert analysis_rows([video])[0]["item_results"]["frame_texts"]["output"]["joined"].strip() == row["text"]


def test_a_picture_level_method_gets_its_items_transcript_and_conditions_skip_the_rest(tmp_path, media):
    video, image = run(tmp_path, rows(tmp_path, media["video"], media["image"]), plan("spoken_words", "frame_texts"))
    words = len(video.transcript["words"])
    assert words > 0
    assert [u.output("spoken_words") for u in video.units] == [{"words": words}] * video.frames_kept
    assert "spoken_words" not in image.units[0].results  # a still image is not a video: skipped, not failed
    assert image.failures == [] and video.failures == []


def test_a_need_that_failed_is_absent_and_its_dependant_is_skipped_not_failed(tmp_path, media):
    fake = FakeProvider(errors={"ocr_text": [BadResponseError("ocr_text: unusable reply")]})
    (image,) = run(tmp_path, rows(tmp_path, media["image"]), plan("shout"), fake)
    assert [f["method"] for f in image.failures] == ["ocr_text"]
    assert "shout" not in image.units[0].results and image.status == "partial"
    (again,) = run(tmp_path / "2", rows(tmp_path / "2", media["image"]), plan("shout"))
    assert again.units[0].output("shout") == {"text": again.units[0].output("ocr_text")["text"].upper()}


class RaisingCondition(Shout):
    name = "raising_condition"
    condition = Condition("the plug-in's own test", lambda t: 1 / 0)


class RaisingInputs(Shout):
    name = "raising_inputs"

    def pipeline_inputs(self, target):
        return {"text": target.outputs["no_such_need"]["text"]}


class BrandCount(AIMethod):
    name, version, accepts, providers = "brand_count", "1", (RESULTS,), ("fake",)
    output_schema = {"type": "object"}
    applies_to, needs = BRAND, ("shout", "summarize_brand")

    async def compute(self, inputs, ctx):
        items = [r for r in inputs.results if "item_id" in r]
        shouted = [u["outputs"]["shout"]["text"] for i in items for u in i["units"] if "shout" in u["outputs"]]
        tone = next(r["output"]["tone"] for r in inputs.results if r.get("cycle") == "summarize_brand")
        return {"items": len(items), "shouted": shouted, "tone": tone}


class BrokenCycle(BrandCount):
    name = "broken_cycle"

    def pipeline_inputs(self, target):
        raise KeyError("units")


BUGGY = {m.name: m for m in (RaisingCondition(), RaisingInputs(), BrandCount(), BrokenCycle())}
MINE.update(BUGGY)


@pytest.mark.parametrize("buggy", ["raising_condition", "raising_inputs"])
def test_a_plug_in_raising_while_choosing_its_inputs_fails_that_step_only(tmp_path, media, buggy):
    video, image = run(tmp_path, rows(tmp_path, media["video"], media["image"]), plan(buggy, "shout"))
    for item in (video, image):
        assert {f["method"] for f in item.failures} == {buggy}
        failure = item.failures[0]
        assert failure["cause"] == "InternalMethodError" and failure["detail"] == {
            "raising_condition": "raising_condition: its condition (the plug-in's own test) raised ZeroDivisionError: "
                                 "division by zero",
            "raising_inputs": "raising_inputs: pipeline_inputs raised KeyError: 'no_such_need'",
        }[buggy]  # fmt: skip
        assert all("shout" in u.results and buggy not in u.results for u in item.units if u.output("ocr_text").get("text"))
        assert item.status == "partial"


def test_brand_level_cycles_run_in_order_and_a_broken_one_stays_its_own_error(tmp_path, media):
    import pandas as pd

    from ad_assets.engine.analysis_tables import ANALYSIS_COLUMNS
    from ad_assets.engine.brand_cycles import run_cycles

    the_plan = plan("shout", "brand_count", "broken_cycle")
    items = run(tmp_path, rows(tmp_path, media["video"], media["image"]), the_plan)
    analysis = pd.DataFrame(analysis_rows(items), columns=list(ANALYSIS_COLUMNS))
    settings = AISettings(default_provider="fake", cache_dir=tmp_path / "c2")

    async def go():
        async with MethodRunner(settings, fake=FakeProvider(), methods={**registry(), **MINE}) as runner:
            return await run_cycles(the_plan, runner, "acme", analysis)

    cycles = {c.method: c for c in asyncio.run(go())}
    assert list(cycles)[0] == "summarize_brand"
    count = cycles["brand_count"].output
    assert count["items"] == 2 and count["tone"] == cycles["summarize_brand"].output["tone"]
    assert count["shouted"] == [u.output("shout")["text"] for i in items for u in i.units if "shout" in u.results]
    assert cycles["broken_cycle"].result is None
    assert cycles["broken_cycle"].error == "InternalMethodError: broken_cycle: pipeline_inputs raised KeyError: 'units'"


def test_an_items_failed_steps_reach_the_catalog_and_its_page(database_url, tmp_path):
    """Why an item is ``partial`` is shown where people look: the committed item and its page."""
    import dataclasses

    from starlette.testclient import TestClient

    from ad_assets.search import SearchResources
    from ad_assets.web.app import create_app
    from resources.catalog_db import commit_brand
    from resources.catalog_schema import ensure_schema
    from resources.catalog_views import item_detail
    from resources.postgres import connect
    from tests.support.catalog_factory import synthetic_catalog

    failure = {"method": "raising_condition", "step": "image:raising_condition", "cause": "InternalMethodError",
               "detail": "raising_condition: its condition (the plug-in's own test) raised ZeroDivisionError: division by zero"}  # fmt: skip
    catalog = synthetic_catalog("acme", images=2, videos=0)
    first = dataclasses.replace(catalog.media_items[0], status="partial", failures=(failure,))
    catalog = dataclasses.replace(catalog, media_items=(first, *catalog.media_items[1:]))
    with connect(database_url) as conn:
        ensure_schema(conn)
        commit_brand(conn, catalog)
        (media_id,) = conn.execute("SELECT id FROM media_items WHERE sha256 = %s", (first.sha256,)).fetchone()
        assert item_detail(conn, media_id)["failures"] == [failure]
        (other,) = conn.execute("SELECT failures FROM media_items WHERE sha256 = %s", (catalog.media_items[1].sha256,)).fetchone()
        assert other is None
    resources = SearchResources(database_url, MediaStore.from_url(str(tmp_path / "store")), AISettings())
    with TestClient(create_app(resources)) as client:
        page = client.get(f"/items/{media_id}").text
    assert 'id="failures"' in page and "raised ZeroDivisionError: division by zero" in page
