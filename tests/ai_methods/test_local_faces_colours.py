"""The local face and colour engines on a real face and on ads of the shapes they meet.

Why: both engines measure on a downscaled copy to keep their CPU per image low
(docs/ai_stage.md). These tests pin what that copy must still get right: the
face of a real photograph at the place it is, in square and 9:16 ads, at the
sizes the engine promises (≥ 7 % of the short side, see
``ai_methods/providers/local/faces.py``); and colours exact on flat ads,
within a stated tolerance of the former 256 px engine (v1) on photographs.

``fixtures/astronaut.jpg``: NASA's portrait of Eileen Collins, public domain, as
scikit-image ships it (``skimage.data.astronaut``), saved as JPEG quality 90.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from ai_methods.images import decode_rgb
from ai_methods.providers.local import colors, faces

ASTRONAUT = Path(__file__).parent / "fixtures" / "astronaut.jpg"
# Where the face is in the 512x512 portrait (x, y, side), as the v1 engine found it at full size.
ASTRONAUT_FACE = (177, 67, 93)


def _bytes(im: Image.Image, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    im.save(out, fmt)
    return out.getvalue()


def _astronaut() -> Image.Image:
    return Image.open(ASTRONAUT).convert("RGB")


def _photo_background(side_w: int, side_h: int, seed: int) -> Image.Image:
    """A smooth photographic background with grain, as the benchmark's ads have."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(12, 12, 3), dtype=np.uint8)
    base = np.asarray(Image.fromarray(coarse).resize((side_w, side_h), Image.Resampling.BICUBIC), dtype=np.int16)
    return Image.fromarray(np.clip(base + rng.normal(0, 3.0, size=(side_h, side_w, 3)), 0, 255).astype(np.uint8))


def _iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    return w * h / (aw * ah + bw * bh - w * h)


def _ad_with_face(size: tuple[int, int], portrait_side: int, at: tuple[int, int], seed: int = 1):
    """The portrait pasted into a photographic ad; returns the ad and where the face is in it."""
    ad = _photo_background(*size, seed)
    ad.paste(_astronaut().resize((portrait_side, portrait_side), Image.Resampling.LANCZOS), at)
    k = portrait_side / 512
    fx, fy, fs = ASTRONAUT_FACE
    return ad, (round(at[0] + fx * k), round(at[1] + fy * k), round(fs * k), round(fs * k))


@pytest.fixture(scope="module")
def engine() -> faces.FaceEngine:
    return faces.FaceEngine()


def _boxes(engine: faces.FaceEngine, im: Image.Image) -> list[tuple[int, int, int, int]]:
    found = engine.detect(np.asarray(decode_rgb(_bytes(im, "JPEG"))))
    return [(b.x, b.y, b.width, b.height) for b in found]


def test_the_face_of_the_portrait_is_found_where_it_is(engine):
    boxes = _boxes(engine, _astronaut())
    fx, fy, fs = ASTRONAUT_FACE
    assert len(boxes) == 1
    assert _iou(boxes[0], (fx, fy, fs, fs)) > 0.7


@pytest.mark.parametrize("portrait_side", [1080, 700, 540, 420])
def test_faces_from_a_sixth_to_7_percent_of_a_square_ad(engine, portrait_side):
    # 420 px portrait: a face of ~76 px, 7 % of the ad's side, the smallest the engine promises.
    at = ((1080 - portrait_side) // 3, (1080 - portrait_side) // 2)
    ad, face = _ad_with_face((1080, 1080), portrait_side, at)
    boxes = _boxes(engine, ad)
    assert len(boxes) == 1, boxes
    assert _iou(boxes[0], face) > 0.6, (boxes, face)


def test_a_face_in_a_9_16_story_is_boxed_in_the_story_s_pixels(engine):
    ad, face = _ad_with_face((1080, 1920), 500, (300, 1100), seed=2)
    boxes = _boxes(engine, ad)
    assert len(boxes) == 1 and _iou(boxes[0], face) > 0.6, (boxes, face)


def test_detections_from_several_threads_at_once_agree(engine):
    # No lock: each worker thread detects with its own cascade, so they must not disturb each other.
    from concurrent.futures import ThreadPoolExecutor

    ad, face = _ad_with_face((1080, 1080), 700, (100, 150))
    pixels = np.asarray(decode_rgb(_bytes(ad, "JPEG")))
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: engine.detect(pixels), range(12)))
    assert all(r == results[0] for r in results) and len(results[0]) == 1


@pytest.mark.parametrize("seed", range(6))
def test_no_face_on_photographic_backgrounds(engine, seed):
    assert _boxes(engine, _photo_background(1080, 1080, seed)) == []


@pytest.mark.parametrize("size", [(1, 1), (20, 20), (23, 400), (40, 4000), (4000, 40)])
def test_pictures_smaller_than_the_cascade_window_or_strips_give_no_faces(engine, size):
    # A copy smaller than the 24 px window must not reach detectMultiScale's assertions.
    assert _boxes(engine, Image.new("RGB", size, (200, 180, 160))) == []


# ----- colours ---------------------------------------------------------------------------------


def _hexes(im: Image.Image) -> list[tuple[str, float]]:
    return [(c.hex, c.share) for c in colors.dominant_colours(decode_rgb(_bytes(im)), 5)]


def test_a_flat_ad_with_text_gives_its_colours_exactly():
    im = Image.new("RGB", (1080, 1080), (245, 220, 40))
    draw = ImageDraw.Draw(im)
    draw.rectangle([0, 756, 1079, 1079], fill=(15, 25, 90))  # 30 % navy band
    draw.rectangle([100, 100, 423, 423], fill=(200, 30, 30))  # ~9 % red square
    got = _hexes(im)
    assert [h for h, _ in got] == ["#f5dc28", "#0f195a", "#c81e1e"]
    assert [s for _, s in got] == pytest.approx([0.6107, 0.3, 0.0893], abs=0.01)


def test_one_colour_is_not_split_or_blended_under_imbalanced_shares():
    # The median-cut failure others reported: 75 % white and 25 % black came back as grey and white.
    im = Image.new("RGB", (400, 400), (255, 255, 255))
    ImageDraw.Draw(im).rectangle([0, 0, 99, 399], fill=(0, 0, 0))
    assert _hexes(im) == [("#ffffff", 0.75), ("#000000", 0.25)]


def test_a_small_accent_keeps_its_own_colour():
    # A 3 % accent on a big fill: kept as itself, not averaged into the fill.
    im = Image.new("RGB", (500, 500), (40, 160, 60))
    ImageDraw.Draw(im).rectangle([0, 0, 86, 86], fill=(210, 40, 180))
    got = dict(_hexes(im))
    assert set(got) == {"#28a03c", "#d228b4"}
    assert got["#d228b4"] == pytest.approx(0.0299, abs=0.005)


def test_three_noisy_flat_colours_stay_three():
    rng = random.Random(3)
    im = Image.new("RGB", (300, 300), (30, 70, 200))
    draw = ImageDraw.Draw(im)
    draw.rectangle([0, 0, 299, 99], fill=(240, 130, 20))
    draw.rectangle([0, 200, 299, 299], fill=(255, 255, 255))
    px = np.asarray(im, dtype=np.int16) + np.array([[[rng.randint(-3, 3)] * 3 for _ in range(300)] for _ in range(300)])
    got = _hexes(Image.fromarray(np.clip(px, 0, 255).astype(np.uint8)))
    names = [colors.colour_name(tuple(int(h[i : i + 2], 16) for i in (1, 3, 5))) for h, _ in got]
    assert sorted(names) == ["blue", "orange", "white"]
    assert [s for _, s in got] == pytest.approx([1 / 3] * 3, abs=0.01)


# What the v1 engine (median cut on a 256 px copy) gave for the portrait: hex, share.
V1_ASTRONAUT = [("#050201", 0.2585), ("#924e31", 0.2308), ("#c3b8b3", 0.2039), ("#b1806f", 0.1972), ("#ddd4d4", 0.1095)]
V1_ASTRONAUT_FIT = 14.42  # mean CIE76 distance of a pixel (256 px copy) to its nearest v1 colour


def _lab_of(hex_: str):
    return colors._lab(np.array([int(hex_[i : i + 2], 16) for i in (1, 3, 5)]))


def test_a_photograph_s_colours_stay_within_tolerance_of_the_v1_engine():
    """Each v1 colour has a v2 colour within ΔE 5 (CIE76) and 0.01 of its share; the fit is no worse."""
    im = decode_rgb(ASTRONAUT.read_bytes())
    got = colors.dominant_colours(im, 5)
    assert len(got) == len(V1_ASTRONAUT)
    for hex_, share in V1_ASTRONAUT:
        nearest = min(got, key=lambda c: float(np.linalg.norm(_lab_of(c.hex) - _lab_of(hex_))))
        assert float(np.linalg.norm(_lab_of(nearest.hex) - _lab_of(hex_))) < 5.0, (hex_, nearest)
        assert nearest.share == pytest.approx(share, abs=0.01)
    small = im.copy()
    small.thumbnail((256, 256))
    pixels = colors._lab(np.asarray(small).reshape(-1, 3))
    palette = colors._lab(np.array([c.rgb for c in got]))
    fit = float(np.min(np.linalg.norm(pixels[:, None, :] - palette[None], axis=2), axis=1).mean())
    assert fit <= V1_ASTRONAUT_FIT + 0.5


def test_model_ids_name_the_new_engines():
    # Cached v1 results are not reused for v2 outputs: the model id is part of what a result records.
    assert colors.MODEL_ID == "pillow-median-cut-v2" and faces.MODEL_ID == "opencv-haar-frontalface-default-v2"
