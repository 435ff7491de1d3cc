"""Animated GIF, APNG and WebP play as a browser plays them: every frame's canvas and start time.

Why: only the first frame of an animated banner was analysed, so its other
messages were never read or searchable. Frames depend on earlier ones
(disposal, blending, partial tiles), and Pillow's own GIF/APNG compositing
differs from browsers in ways bug reports show; each member here is written
byte by byte in ``tests.media_corpus.pictures`` and its frames computed by a
reference compositor following the format specifications.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from ai_methods.media import animation, pictures
from ai_methods.media.errors import MediaDecodeError
from tests.media_corpus import pictures as corpus

CASES = corpus.animation_members()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_frame_starts_follow_browser_delays(case):
    starts, total = animation.frame_starts(case.data)
    assert starts == pytest.approx(list(case.starts), abs=1e-9)
    assert total == pytest.approx(case.duration_s, abs=1e-9)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_probe_reports_animation(case):
    info = pictures.probe_picture(case.data)
    assert info.animated and info.frame_count == len(case.starts)
    assert info.duration_s == pytest.approx(case.duration_s, abs=1e-9)
    assert (info.width, info.height) == case.displayed_size
    assert info.needs_conversion


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_every_frame_is_the_canvas_a_browser_paints(case):
    frames = list(animation.frames_at(case.data, list(case.starts)))
    assert [f.source_index for f in frames] == list(range(len(case.starts)))
    assert [f.index for f in frames] == list(range(len(case.starts)))
    assert [f.t_s for f in frames] == pytest.approx(list(case.starts), abs=1e-9)
    for f in frames:
        assert f.image.mode == "RGB" and f.image.size == case.displayed_size
        assert corpus.mean_diff(f.image, case.canvases[f.source_index]) <= case.max_mean_diff, f.source_index
    # The first frame is what a still decode gives.
    assert np.array_equal(np.asarray(pictures.decode_picture(case.data)), np.asarray(frames[0].image))


@pytest.mark.parametrize("case", [c for c in CASES if c.kind in ("gif-disposal", "apng-ops")], ids=lambda c: c.id)
def test_members_really_differ_from_each_other(case):
    """The disposal/blend members are not all the same picture: the reference canvases depend on the operation."""
    siblings = [c for c in CASES if c.kind == case.kind and c.name != case.name]
    assert any(corpus.mean_diff(case.canvases[-1], s.canvases[-1]) > 1.0 for s in siblings)


def test_pillow_gif_disposal_differs_from_browsers():
    """Why GIFs are composited here: Pillow paints the background colour where browsers clear (Pillow#5557)."""
    case = next(c for c in CASES if c.name == "partial-tiles-disposal-2")
    with Image.open(io.BytesIO(case.data)) as im:
        im.seek(1)
        pillow = im.convert("RGB")
    assert pillow.getpixel((10, 10)) == (0, 200, 0)  # the GIF's background colour index
    assert case.canvases[1].getpixel((10, 10)) == (255, 255, 255)
    got = list(animation.frames_at(case.data, [case.starts[1]]))[0].image
    assert got.getpixel((10, 10)) == (255, 255, 255)


def test_pillow_apng_over_blend_differs_from_the_specification():
    """Pillow's OVER pastes alpha too: half-transparent over opaque comes out see-through."""
    case = next(c for c in CASES if c.name == "dispose-0-blend-1")
    x, y = 240 + 60, 120 + 112  # inside the tile's half-transparent band, over the opaque first frame
    with Image.open(io.BytesIO(case.data)) as im:
        im.seek(1)
        assert im.convert("RGBA").getpixel((x, y))[3] < 255
    got = list(animation.frames_at(case.data, [case.starts[1]]))[0].image
    assert got.getpixel((x, y)) == case.canvases[1].getpixel((x, y))


def test_hidden_default_image_is_never_shown():
    case = next(c for c in CASES if c.kind == "apng-default")
    for f in animation.frames_at(case.data, list(case.starts)):
        assert f.image.getpixel((5, 5)) != (0, 255, 0)


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        ([0.0], [0]),
        ([0.2, 1.0, 1.49], [0]),  # one frame shown at three times: once
        ([1.5], [1]),
        ([0.0, 1.6, 2.9, 3.0, 4.9], [0, 1, 2]),
        ([-1.0, 99.0], [0, 2]),  # before the start: first; past the end: last
        ([3.2, 0.1], [0, 2]),  # any order of times, frames in file order
        ([], []),
    ],
)
def test_frames_at_gives_the_frame_shown_at_each_time(times, expected):
    case = next(c for c in CASES if c.id == "gif/banner-3-messages")
    frames = list(animation.frames_at(case.data, times))
    assert [f.source_index for f in frames] == expected
    assert [f.index for f in frames] == list(range(len(expected)))
    assert [f.t_s for f in frames] == [case.starts[i] for i in expected]


def test_a_still_is_one_frame_at_zero():
    case = corpus.single_frame_gif()
    assert animation.frame_starts(case.data) == ([0.0], 0.0)
    info = pictures.probe_picture(case.data)
    assert not info.animated and info.frame_count == 1 and info.duration_s is None
    frames = list(animation.frames_at(case.data, [0.0, 1.0, 2.0]))
    assert [(f.index, f.source_index, f.t_s) for f in frames] == [(0, 0, 0.0)]
    assert corpus.mean_diff(frames[0].image, case.control) == 0.0
    png = corpus.encode(corpus.colour_ad(), "PNG")
    assert animation.frame_starts(png) == ([0.0], 0.0)


OCR_CASES = [c for c in CASES if c.id in ("gif/banner-3-messages", "webp/banner-exif-orientation-8", "apng-ops/dispose-1-blend-1")]


@pytest.mark.parametrize("case", OCR_CASES, ids=lambda c: c.id)
async def test_local_ocr_reads_each_frames_message(local_runner, case):
    for f in animation.frames_at(case.data, list(case.starts)):
        out = (await local_runner.run("ocr_text", image=corpus.encode(f.image, "PNG"))).output
        words = " ".join(line["text"] for line in out["lines"]).split()
        assert words == " ".join(case.messages[f.source_index]).split(), f.source_index


# ----------------------------------------------------------------------------- limits


def test_frames_times_canvas_above_the_animation_limit_is_refused_before_decoding():
    data = corpus.gif_many_frames((1000, 1000), 1001)  # 1.001e9 pixels in a ~26 KB file
    assert len(data) < 40_000
    for call in (lambda: pictures.probe_picture(data), lambda: pictures.decode_picture(data), lambda: list(animation.frames_at(data, [0.0]))):
        with pytest.raises(MediaDecodeError) as info:
            call()
        assert info.value.cause == "too_many_pixels" and "1001 frames" in info.value.detail
    ok = corpus.gif_many_frames((1000, 1000), 999)
    assert pictures.probe_picture(ok, decode=False).frame_count == 999


def test_a_frame_above_the_pixel_limit_is_refused():
    data = corpus.gif_huge_tile((100, 100), (60_000, 60_000))
    with pytest.raises(MediaDecodeError) as info:
        pictures.probe_picture(data)
    assert info.value.cause == "too_many_pixels" and "frame 1 is 60000x60000" in info.value.detail


def test_a_frame_below_the_limit_but_far_outside_the_canvas_is_clipped():
    """Pillow grows the picture to hold such a frame (Pillow#8218, #2402); browsers clip it to the screen."""
    palette = np.zeros((256, 3), np.uint8)
    palette[1] = (220, 30, 30)
    frames = [corpus.GifFrame(0, 0, np.zeros((100, 100), np.uint8)), corpus.GifFrame(50, 50, np.ones((400, 300), np.uint8))]
    data = corpus.gif_bytes((100, 100), palette, frames)
    info = pictures.probe_picture(data)
    assert (info.width, info.height, info.frame_count) == (100, 100, 2)
    shown = list(animation.frames_at(data, [0.0, 1.0]))
    assert [f.image.size for f in shown] == [(100, 100), (100, 100)]
    assert shown[1].image.getpixel((99, 99)) == (220, 30, 30) and shown[1].image.getpixel((10, 10)) == (0, 0, 0)
    with Image.open(io.BytesIO(data)) as im:
        im.seek(1)
        assert im.size == (350, 450)  # the trap avoided: Pillow grows the picture


def test_a_frame_claiming_more_pixels_than_it_holds_is_corrupt():
    data = corpus.gif_huge_tile((100, 100), (1_000, 1_000))  # frame 1 claims 1000x1000, holds one pixel
    assert pictures.probe_picture(data).width == 100  # the first frame is whole
    with pytest.raises(MediaDecodeError) as info:
        list(animation.frames_at(data, [0.0, 1.0]))
    assert info.value.cause == "corrupt_media"


def test_truncated_animation_is_corrupt():
    case = next(c for c in CASES if c.id == "gif/banner-3-messages")
    with pytest.raises(MediaDecodeError) as info:
        list(animation.frames_at(case.data[: len(case.data) // 2], list(case.starts)))
    assert info.value.cause == "corrupt_media"


@pytest.mark.parametrize(
    ("delay_ms", "shown"), [(None, 100.0), (0, 100.0), (10, 100.0), (11, 11.0), (20, 20.0), (1500, 1500.0)]
)
def test_display_delay(delay_ms, shown):
    assert animation.display_delay_ms(delay_ms) == shown
