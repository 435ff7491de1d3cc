"""Input validation, hashing and binding, and the pure helpers of local speech.

Why: a bad input must be an ``InvalidInputError`` that names the input and the
cause before any provider is asked, and the input hash must depend on content
only, since it keys the durable cache.
"""

from __future__ import annotations

import io
from fractions import Fraction

import numpy as np
import pytest

from ai_methods.builtin.transcribe_speech import Word, segments
from ai_methods.errors import InvalidInputError
from ai_methods.harness import bind_inputs, classify_input, run_method_on_inputs
from ai_methods.inputs import AUDIO, FRAMES, IMAGE, RESULTS, TEXT, prepare_inputs
from ai_methods.providers.local.speech import TimedWord, is_spoken_word, merge_windows, windows
from ai_methods.registry import get_method
from ai_methods.testing import sample_png, sample_wav


def test_hash_depends_on_content_kind_and_params(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(sample_png(0))
    by_bytes = prepare_inputs("m", (IMAGE,), {IMAGE: sample_png(0)})
    by_path = prepare_inputs("m", (IMAGE,), {IMAGE: path})
    assert by_bytes.input_hash == by_path.input_hash
    assert prepare_inputs("m", (IMAGE,), {IMAGE: sample_png(1)}).input_hash != by_bytes.input_hash
    assert prepare_inputs("m", (IMAGE,), {IMAGE: sample_png(0)}, params={"k": 3}).input_hash != by_bytes.input_hash
    frames = prepare_inputs("m", (FRAMES,), {FRAMES: [sample_png(0)]})
    assert frames.input_hash != by_bytes.input_hash  # same bytes, different kind
    a = prepare_inputs("m", (RESULTS,), {RESULTS: [{"b": 1, "a": 2}]})
    b = prepare_inputs("m", (RESULTS,), {RESULTS: [{"a": 2, "b": 1}]})
    assert a.input_hash == b.input_hash  # key order does not matter


def test_image_metadata_is_read():
    inputs = prepare_inputs("m", (IMAGE,), {IMAGE: sample_png(0)})
    assert (inputs.image.format, inputs.image.width, inputs.image.height) == ("PNG", 160, 96)
    assert inputs.kinds == (IMAGE,)


def test_audio_duration_is_probed():
    inputs = prepare_inputs("m", (AUDIO,), {AUDIO: sample_wav(1.5)})
    assert inputs.audio.duration_s == pytest.approx(1.5, abs=0.01)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({IMAGE: b""}, "image: is empty (0 bytes)"),
        ({IMAGE: b"GIF89a-but-broken"}, "image: not a decodable image"),
        ({FRAMES: [sample_png(0), b"x"]}, "frames[1]: not a decodable image"),
        ({TEXT: "hi"}, "m: does not accept text; it accepts image"),
        ({"video": b"x"}, "m: unknown input 'video'"),
        ({}, "m: no input given; it accepts image"),
        ({IMAGE: sample_png(0), FRAMES: [sample_png(0)]}, "m: give exactly one of image or frames"),
    ],
)
def test_invalid_inputs_name_the_input_and_cause(given, message):
    with pytest.raises(InvalidInputError) as info:
        prepare_inputs("m", (IMAGE, FRAMES), given)
    assert str(info.value).startswith(message)


def test_invalid_audio_and_text():
    with pytest.raises(InvalidInputError, match="audio: not decodable audio or media"):
        prepare_inputs("m", (AUDIO,), {AUDIO: b"RIFF0000WAVEjunk"})
    with pytest.raises(InvalidInputError, match="audio: file not found"):
        prepare_inputs("m", (AUDIO,), {AUDIO: "/nonexistent.wav"})
    with pytest.raises(InvalidInputError, match="text: is empty"):
        prepare_inputs("m", (TEXT,), {TEXT: "  "})
    with pytest.raises(InvalidInputError, match=r"results\[1\]: expected a JSON object"):
        prepare_inputs("m", (RESULTS,), {RESULTS: [{}, 3]})


@pytest.mark.parametrize(
    ("n_seconds", "expected"),
    [
        (0, []),
        (5, [(0, 5)]),
        (10, [(0, 10)]),
        (11, [(0, 11)]),  # a 1 s tail is folded into the only window
        (25, [(0, 10), (9, 19), (18, 25)]),
        (20, [(0, 10), (9, 20)]),
    ],
)
def test_speech_windows_overlap_by_one_second(n_seconds, expected):
    rate = 16_000
    assert [(a / rate, b / rate) for a, b in windows(n_seconds * rate)] == expected


def test_overlap_words_are_kept_once():
    w = lambda text, start: TimedWord(text, start, start + 0.3, 0.9)  # noqa: E731
    first = (0.0, 10.0, [w("alpha", 1.0), w("bravo", 9.1), w("charlie", 9.6)])
    second = (9.0, 19.0, [w("bravo", 9.12), w("charlie", 9.58), w("delta", 12.0)])
    assert [x.text for x in merge_windows([first, second])] == ["alpha", "bravo", "charlie", "delta"]


@pytest.mark.parametrize("token", ["<s>", "</s>", "<sil>", "[NOISE]", "++UH++"])
def test_fillers_are_not_words(token):
    assert not is_spoken_word(token)
    assert is_spoken_word("coffee")


def test_segments_are_ten_seconds_with_one_second_overlap():
    words = [Word(text=f"w{i}", start=i + 0.1, end=i + 0.4, confidence=0.9) for i in range(25)]
    segs = segments(words, 25.0)
    assert [(s.start, s.end) for s in segs] == [(0.0, 10.0), (9.0, 19.0), (18.0, 25.0)]
    assert segs[0].text.split()[-1] == "w9" and segs[1].text.split()[0] == "w9"  # overlap word in both
    assert sum(s.word_count for s in segs) == 25 + 2


def _tiny_video(path, with_audio: bool = True) -> None:
    import av

    with av.open(str(path), "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = out.add_stream("aac", rate=16000) if with_audio else None
        for i in range(10):
            img = np.full((48, 64, 3), (i * 25, 100, 200 - i * 20), dtype=np.uint8)
            for packet in video.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if audio is not None:
            t = np.arange(16000) / 16000
            samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for start in range(0, 16000, 1024):
                frame = av.AudioFrame.from_ndarray(samples[None, start : start + 1024], format="flt", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = 16000, start, Fraction(1, 16000)
                for packet in audio.encode(frame):
                    out.mux(packet)
            for packet in audio.encode():
                out.mux(packet)


def test_a_video_gives_frames_to_image_methods_and_audio_to_speech(tmp_path):
    video = tmp_path / "ad.mp4"
    _tiny_video(video)
    frames = bind_inputs(get_method("caption"), [str(video)])
    assert list(frames) == [FRAMES] and len(frames[FRAMES]) == 4
    assert bind_inputs(get_method("transcribe_speech"), [str(video)]) == {AUDIO: video}
    with pytest.raises(InvalidInputError, match="ocr_text takes one image, got 4"):
        bind_inputs(get_method("ocr_text"), [str(video)])


async def test_harness_runs_speech_on_a_video_with_the_fake_provider(tmp_path):
    video = tmp_path / "ad.mp4"
    _tiny_video(video)
    out = await run_method_on_inputs("transcribe_speech", [str(video)], "fake", env={"AD_ASSETS_HOME": str(tmp_path)})
    assert out["provider"] == "fake" and 0.9 < out["result"]["duration_s"] < 1.3
    assert set(out) >= {"result", "latency_ms", "usage", "cost_usd", "cached"}


def test_classify_inputs(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    assert classify_input(str(tmp_path / "a.txt")) == (TEXT, "hello")
    assert classify_input("two words") == (TEXT, "two words")
    assert classify_input("coffee") == (TEXT, "coffee")
    with pytest.raises(InvalidInputError, match="file not found: ads/x.jpg"):
        classify_input("ads/x.jpg")
    with pytest.raises(InvalidInputError, match="is not a regular file"):
        classify_input(str(tmp_path))
    wav = tmp_path / "tone.wav"
    wav.write_bytes(sample_wav())
    assert classify_input(str(wav)) == ("media", wav)


def test_the_harness_reads_files_as_a_player_shows_them(tmp_path):
    """An animated banner gives its frames at their display times; a rotated phone video its frames turned upright."""
    from PIL import Image

    from ai_methods.images import decode_rgb
    from tests.media_corpus.pictures import animation_members
    from tests.media_corpus.videos import make_video

    banner = next(c for c in animation_members() if c.id.startswith("gif/") and len(c.starts) == 3)
    gif = tmp_path / "banner.gif"
    gif.write_bytes(banner.data)
    bound = bind_inputs(get_method("caption"), [str(gif)])
    assert list(bound) == [FRAMES] and len(bound[FRAMES]) == 3  # one per frame shown, not only the first
    for frame, canvas in zip(bound[FRAMES], banner.canvases):
        got = np.asarray(decode_rgb(frame), dtype=float)
        assert np.abs(got - np.asarray(canvas.convert("RGB"), dtype=float)).mean() < 2.0

    member = make_video(tmp_path / "v", "rotation-ccw90-mp4")
    frames = bind_inputs(get_method("caption"), [str(member.path)])[FRAMES]
    assert {Image.open(io.BytesIO(f)).size for f in frames} == {(member.width, member.height)}
