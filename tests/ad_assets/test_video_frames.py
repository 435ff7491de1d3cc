"""Frame sampling and the journal are what make video analysis correct and
resumable; they are checked on real encoded videos and real files."""

from __future__ import annotations

import io
import json
import wave
from pathlib import Path

import numpy as np
import pytest

from ad_assets.demo.samples import Scene, render_ad_video
from ad_assets.engine.item_journal import ItemJournal
from ad_assets.engine.video_frames import (
    VideoDecodeError,
    extract_audio_wav,
    frame_times,
    sample_frames,
    select_distinct,
)


@pytest.mark.parametrize(
    ("duration", "n", "expected"),
    [(10.0, 3, [0.0, 5.0, 10.0]), (9.0, 4, [0.0, 3.0, 6.0, 9.0]), (5.0, 1, [0.0]), (5.0, 0, []), (0.0, 5, [])],
)
def test_frame_times_are_evenly_spread(duration, n, expected):
    assert frame_times(duration, n) == expected


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("v") / "v.mp4"
    scenes = [Scene(("ONE",), (250, 240, 220), 2.0), Scene(("TWO",), (30, 60, 120), 2.0)]
    path.write_bytes(render_ad_video(scenes))
    return path


def test_sample_frames_hits_the_asked_times(video):
    frames = sample_frames(video, 9)
    assert [f.index for f in frames] == list(range(9))
    for frame, asked in zip(frames, frame_times(4.0, 9)):
        # The frame shown at the asked time, stamped with its own time: within one frame (10 fps).
        assert asked - 0.101 <= frame.t_s <= asked + 1e-6
        assert frame.pts_s == frame.t_s  # this file's clock starts at 0
        assert frame.jpeg[:3] == b"\xff\xd8\xff" and (frame.width, frame.height) == (320, 240)


def test_corrupt_video_is_a_typed_error(tmp_path, video):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(video.read_bytes()[:500])
    with pytest.raises(VideoDecodeError) as info:
        sample_frames(broken, 5)
    assert info.value.cause == "corrupt_media"


def test_audio_track_to_wav(video, tmp_path):
    wav_bytes = extract_audio_wav(video)
    assert wav_bytes is not None
    with wave.open(io.BytesIO(wav_bytes)) as wav:
        assert (wav.getnchannels(), wav.getframerate(), wav.getsampwidth()) == (1, 16000, 2)
        assert wav.getnframes() / 16000 == pytest.approx(4.0, abs=0.2)
    silent = tmp_path / "silent.mp4"
    silent.write_bytes(render_ad_video([Scene(("A",), (0, 0, 0), 1.0)], audio_wav=None))
    assert extract_audio_wav(silent) is None


def test_select_distinct_compares_to_last_kept():
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    near_a = np.array([0.99, 0.05])
    assert select_distinct([a, near_a, a, b, b * 3, a], threshold=0.95) == [0, 3, 5]
    assert select_distinct([], 0.9) == []


def test_journal_survives_a_torn_line(tmp_path):
    path = tmp_path / "item.jsonl"
    journal = ItemJournal(path)
    journal.record("ocr_text", {"text": "SAVE 20%"})
    journal.record("caption", {"caption": "x"})
    with path.open("a") as handle:
        handle.write('{"step": "labels", "resu')  # killed mid-write
    reread = ItemJournal(path)
    assert reread.completed() == {"ocr_text": {"text": "SAVE 20%"}, "caption": {"caption": "x"}}
    assert not reread.has("labels")
    reread.record("labels", {"labels": []})
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.startswith('{"step":"')]
    assert [line["step"] for line in lines] == ["ocr_text", "caption", "labels"]


def _numbered_video(path: Path, *, frames: int, fps: int, gop: int) -> Path:
    """A silent H.264 video whose frame k is a flat grey of level 6·k, key frames every ``gop`` frames."""
    from fractions import Fraction

    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "preset": "ultrafast"}
        for k in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 6 * k, dtype=np.uint8), format="rgb24")
            frame.pts, frame.time_base = k, Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.mark.parametrize("gop", [4, 250])  # seeking to a near key frame, or decoding on through one long GOP
def test_each_sample_is_the_frame_shown_at_its_time_stamped_with_its_own_time(tmp_path, gop):
    from PIL import Image

    video = _numbered_video(tmp_path / f"g{gop}.mp4", frames=40, fps=10, gop=gop)
    frames = sample_frames(video, 25)
    # 25 times over 0..4 s land on 25 distinct frames of a 10 fps, 40-frame video (the last time
    # shows the last frame, 3.9 s), each the last frame whose time is at or before the time asked.
    asked = frame_times(4.0, 25)
    assert len(frames) == 25
    for frame, t in zip(frames, asked):
        expected = min(int(np.floor(t * 10 + 1e-6)), 39)
        level = float(np.asarray(Image.open(io.BytesIO(frame.jpeg)).convert("L")).mean())
        assert abs(level - 6 * expected) < 3, (t, level, expected)
        assert frame.t_s == pytest.approx(expected / 10, abs=1e-3)
        assert frame.pts_s == frame.t_s


def test_frames_are_downscaled_to_max_side(video):
    frames = sample_frames(video, 2, max_side=160)
    assert [(f.width, f.height) for f in frames] == [(160, 120)] * 2


# Banners that swap their words on one background: alike to the visual descriptor, different to a
# reader. Members from a fresh-user trial ("LUNCH" -> "DINNER" was lost at first) down to one digit.
WORD_SWAPS = [
    (["ALPHA"], ["BRAVO"], (640, 240), None),
    (["LUNCH"], ["DINNER"], (480, 270), ((40, 80, 200), (250, 250, 250))),
    (["LUNCH"], ["DINNER"], (640, 360), ((40, 80, 200), (250, 250, 250))),
    (["BREAKFAST"], ["LUNCH"], (480, 270), ((40, 80, 200), (250, 250, 250))),
    (["20% OFF"], ["30% OFF"], (480, 270), ((40, 80, 200), (250, 250, 250))),
    (["NOW"], ["NEW"], (480, 270), None),
]
# Below the rule's resolution, on purpose: "SALE" -> "SALE!" (0.46 % of cells) reads as the same message.


@pytest.mark.parametrize(("first", "second", "size", "colours"), WORD_SWAPS, ids=lambda v: str(v))
def test_a_new_message_on_the_same_background_is_not_a_duplicate(first, second, size, colours):
    """The picture check keeps a changed message; a re-encode or a moving marker stays a duplicate."""
    from PIL import Image

    from ad_assets.demo.samples import render_ad_image
    from ad_assets.engine.video_frames import DistinctFrames, picture_signature
    from ai_methods.providers.local.visual import visual_descriptor

    style = {"background": colours[0], "foreground": colours[1]} if colours else {}
    a, b = render_ad_image(first, size=size, **style), render_ad_image(second, size=size, **style)
    va, vb = visual_descriptor(a), visual_descriptor(b)
    rule = DistinctFrames(min(0.95, float(va @ vb)))  # a threshold at which the embeddings call them duplicates
    assert rule.keep(va, picture_signature(a))
    assert rule.keep(vb, picture_signature(b)), "a new message is kept"
    assert not rule.keep(vb, picture_signature(b)), "the same frame again is a duplicate"

    jpeg = io.BytesIO()
    a.save(jpeg, "JPEG", quality=88)  # the quality frames are kept at
    again = Image.open(io.BytesIO(jpeg.getvalue())).convert("RGB")
    rule = DistinctFrames(0.95)
    assert rule.keep(va, picture_signature(a))
    assert not rule.keep(visual_descriptor(again), picture_signature(again)), "a re-encode is a duplicate"


def test_a_moving_marker_within_a_scene_stays_a_duplicate(video):
    """The demo videos' scenes hold still but for a small moving marker: one kept frame per scene."""
    from ad_assets.engine.video_frames import DistinctFrames, picture_signature
    from ai_methods.media.video import iter_video_frames
    from ai_methods.providers.local.visual import visual_descriptor

    frames = [f.image for f in iter_video_frames(video, [0.0, 0.5, 1.0, 1.5, 2.5, 3.0, 3.5])]
    rule = DistinctFrames(0.95)
    kept = [i for i, im in enumerate(frames) if rule.keep(visual_descriptor(im), picture_signature(im))]
    assert kept == [0, 4]  # scene ONE at 0 s, scene TWO at 2.5 s
