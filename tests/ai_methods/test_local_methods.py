"""The local provider on media a user would give it: rendered ad text, the spoken WAV, flat colours.

Why: ``local`` is the default provider on a fresh clone, so its outputs must be
right (OCR reads the words, speech has timed words inside the clip) and honest
(captions and labels only state what was measured).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from ai_methods.providers.local.colors import colour_name
from tests.ai_methods.conftest import render_ad


def _png(im: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **kw)
    return out.getvalue()


def _cos(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


async def test_ocr_reads_rendered_words_with_boxes(local_runner, ad_png):
    result = await local_runner.run("ocr_text", image=ad_png)
    out = result.output
    words = {w["text"] for line in out["lines"] for w in line["words"]}
    assert {"FRESH", "COFFEE", "TODAY"} <= words
    assert "SAVE 20% TODAY" in out["text"]
    assert (out["width"], out["height"]) == (640, 360)
    for line in out["lines"]:
        assert 0.5 < line["confidence"] <= 1.0
        xs = [p[0] for p in line["box"]]
        ys = [p[1] for p in line["box"]]
        assert 0 <= min(xs) < max(xs) <= 640 and 0 <= min(ys) < max(ys) <= 360
        for word in line["words"]:
            # each word box sits inside its line box (a pixel of slack)
            assert min(xs) - 1 <= word["box"][0][0] <= word["box"][1][0] <= max(xs) + 1
    assert result.provider == "local" and result.model.startswith("rapidocr")
    assert result.usage.images == 1 and result.cost_usd == 0.0


async def test_ocr_on_an_image_without_text_is_empty(local_runner):
    result = await local_runner.run("ocr_text", image=_png(Image.new("RGB", (200, 120), (30, 160, 60))))
    assert result.output["lines"] == [] and result.output["text"] == ""


async def test_local_caption_states_only_measurements(local_runner, ad_png):
    out = (await local_runner.run("caption", image=ad_png)).output
    caption = out["caption"]
    assert caption.startswith("Image 640×360")
    assert "FRESH COFFEE" in caption and "brown" in caption
    assert "No faces were detected." in caption
    assert 2 <= caption.count(".") and out["basis"] == "measured"
    assert out["actions"] == [] and out["setting"] is None and out["mood"] is None
    assert out["subjects"] == ["text"]


async def test_local_caption_on_frames_merges_their_text(local_runner):
    frames = [render_ad(["FRESH COFFEE"]), render_ad(["FRESH COFFEE", "OPEN DAILY"])]
    out = (await local_runner.run("caption", frames=frames)).output
    assert out["caption"].startswith("Video of 2 sampled frames")
    assert out["caption"].count("FRESH COFFEE") == 1 and "OPEN DAILY" in out["caption"]


async def test_local_labels_flag_text_and_unsafe_words_only(local_runner):
    out = (await local_runner.run("labels", image=render_ad(["COLD BEER", "CASINO NIGHT"]))).output
    assert [o["name"] for o in out["objects"]] == ["text"]
    assert out["scenes"] == [] and "scenes" not in out["assessed"]
    assert {f["category"] for f in out["brand_safety"]} == {"alcohol", "gambling"}
    assert all("text mentions" in f["evidence"] for f in out["brand_safety"])

    clean = (await local_runner.run("labels", image=render_ad(["FRESH COFFEE"]))).output
    assert clean["brand_safety"] == []


async def test_transcribe_spoken_wav_gives_timed_words(local_runner, spoken_wav):
    result = await local_runner.run("transcribe_speech", audio=spoken_wav)
    out = result.output
    words = out["words"]
    assert len(words) >= 5
    assert 5.5 < out["duration_s"] < 6.5
    starts = [w["start"] for w in words]
    assert starts == sorted(starts)
    for w in words:
        assert 0.0 <= w["start"] < w["end"] <= out["duration_s"] + 0.05
        assert 0.0 <= w["confidence"] <= 1.0
        assert not w["text"].startswith(("<", "["))
    recognised = {w["text"].lower() for w in words}
    assert recognised & {"fresh", "coffee", "morning", "store", "today", "save", "percent"}
    assert len(out["segments"]) == 1 and out["segments"][0]["word_count"] == len(words)
    assert result.usage.audio_seconds == pytest.approx(out["duration_s"], abs=0.05)


async def test_transcribe_bytes_and_path_share_the_cache_entry(local_runner, spoken_wav):
    first = await local_runner.run("transcribe_speech", audio=spoken_wav)
    second = await local_runner.run("transcribe_speech", audio=spoken_wav.read_bytes())
    assert second.cached and second.input_hash == first.input_hash and second.output == first.output


async def test_blank_image_has_no_faces(local_runner):
    out = (await local_runner.run("detect_faces", image=_png(Image.new("RGB", (320, 240), (240, 240, 240))))).output
    assert out == {"count": 0, "faces": [], "width": 320, "height": 240}


async def test_dominant_colours_of_a_two_colour_image(local_runner):
    im = Image.new("RGB", (200, 100), (220, 30, 30))
    ImageDraw.Draw(im).rectangle([150, 0, 199, 99], fill=(30, 70, 200))  # a quarter blue
    colours = (await local_runner.run("dominant_colors", image=_png(im))).output["colors"]
    assert [c["hex"] for c in colours] == ["#dc1e1e", "#1e46c8"]
    assert [c["name"] for c in colours] == ["red", "blue"]
    assert colours[0]["share"] == pytest.approx(0.75, abs=0.02)
    assert colours[1]["share"] == pytest.approx(0.25, abs=0.02)


@pytest.mark.parametrize(
    ("rgb", "name"),
    [((255, 255, 255), "white"), ((5, 5, 5), "black"), ((110, 65, 30), "brown"), ((250, 225, 45), "yellow")],
)
def test_colour_names(rgb, name):
    assert colour_name(rgb) == name


async def test_image_embeddings_near_duplicates_and_different_images(local_runner):
    base = Image.open(io.BytesIO(render_ad(["FRESH COFFEE", "SAVE 20% TODAY"]))).convert("RGB")
    near = [
        _png(base.resize((480, 270))),
        _png(base, "JPEG", quality=70),
        _png(base.filter(ImageFilter.GaussianBlur(1))),
        _png(Image.eval(base, lambda v: min(255, v + 8))),
    ]
    other = Image.new("RGB", (640, 360), (30, 120, 200))
    draw = ImageDraw.Draw(other)
    for x in range(0, 640, 40):
        draw.rectangle([x, 0, x + 18, 359], fill=(250, 240, 200))
    different = [_png(other), render_ad(["BIG SALE"], bg=(20, 140, 60), fg=(250, 250, 0))]

    ref = await local_runner.run("embed_image", image=_png(base))
    vec = ref.output["vector"]
    assert ref.output["dim"] == len(vec) == 512 and ref.output["space"] == "local-visual-v1"
    assert np.linalg.norm(vec) == pytest.approx(1.0, abs=1e-5)
    for data in near:
        assert _cos(vec, (await local_runner.run("embed_image", image=data)).output["vector"]) >= 0.95
    for data in different:
        assert _cos(vec, (await local_runner.run("embed_image", image=data)).output["vector"]) <= 0.6


async def test_image_embedding_is_deterministic_across_runners(local_runner, ad_png, tmp_path):
    from ai_methods import AISettings, MethodRunner

    first = await local_runner.run("embed_image", image=ad_png)
    async with MethodRunner(AISettings(default_provider="local"), cache=None) as fresh:
        second = await fresh.run("embed_image", image=ad_png)
    assert not second.cached and second.output == first.output


async def test_text_embeddings_rank_the_item_with_the_query_words_first(local_runner):
    items = [
        "FRESH COFFEE every morning, visit our store today",
        "Summer shoes sale: sneakers and sandals 30% off",
        "New smartphone with a brilliant camera and all-day battery",
        "Family car with seven seats and low fuel consumption",
        "Organic tea and biscuits delivered to your door",
    ]
    vectors = [(await local_runner.run("embed_text", text=t)).output for t in items]
    assert {v["dim"] for v in vectors} == {512} and {v["space"] for v in vectors} == {"local-lexical-v1"}
    for query, expected in [
        ("coffee morning", 0),
        ("sandals sale", 1),
        ("camera battery", 2),
        ("seats fuel", 3),
        ("tea delivered", 4),
    ]:
        q = (await local_runner.run("embed_text", text=query)).output["vector"]
        scores = [float(np.dot(q, v["vector"])) for v in vectors]
        assert int(np.argmax(scores)) == expected, (query, scores)
    again = (await local_runner.run("embed_text", text=items[0].upper())).output["vector"]
    assert _cos(again, vectors[0]["vector"]) == pytest.approx(1.0, abs=1e-6)  # case-insensitive


async def test_local_image_and_text_spaces_differ(local_runner, ad_png):
    image = (await local_runner.run("embed_image", image=ad_png)).output
    text = (await local_runner.run("embed_text", text="fresh coffee")).output
    assert image["space"] != text["space"]


async def test_local_brand_summary_is_extractive(local_runner):
    from ai_methods.testing import sample_results

    items = sample_results() + [
        {"item_id": "item-3", "ocr_text": {"text": "FRESH COFFEE\nSHOP NOW", "lines": [
            {"text": "FRESH COFFEE", "confidence": 0.9}, {"text": "SHOP NOW", "confidence": 0.9}]}},
    ]  # fmt: skip
    out = (await local_runner.run("summarize_brand", results=items)).output
    assert out["item_count"] == 3 and out["basis"] == "measured"
    assert out["themes"][0].startswith("coffee (3 of 3 items)") or out["themes"][0].startswith("fresh (3 of 3 items)")
    assert out["key_messages"][0] == "FRESH COFFEE"
    assert set(out["calls_to_action"]) >= {"SHOP NOW", "VISIT OUR STORE", "SAVE 20% TODAY"}
    assert "brown" in out["visual_style"] and "On-image text in 3 of 3 items" in out["visual_style"]
    assert "today" in out["tone"] and "prices or offers in 1" in out["tone"]


async def test_long_audio_is_decoded_in_overlapping_windows(local_runner, spoken_wav):
    from ai_methods.audio import decode_pcm16k, wav_bytes

    pcm = decode_pcm16k(spoken_wav)
    three = wav_bytes(np.concatenate([pcm, pcm, pcm]))  # ~17.7 s: windows 0-10 s and 9-17.7 s
    out = (await local_runner.run("transcribe_speech", audio=three)).output
    starts = [w["start"] for w in out["words"]]
    assert starts == sorted(starts) and starts[-1] > 12.0
    assert all(w["end"] <= out["duration_s"] + 0.05 for w in out["words"])
    assert [(s["start"], s["end"]) for s in out["segments"]] == [(0.0, 10.0), (9.0, out["duration_s"])]
    # no word in the 9-10 s overlap is reported twice (same text within 0.2 s)
    pairs = list(zip(out["words"], out["words"][1:]))
    assert not [
        a for a, b in pairs if 8.5 < a["start"] < 10.5 and a["text"] == b["text"] and abs(a["start"] - b["start"]) < 0.2
    ]
