"""The video decoding layer on the real-world kinds of video, asserting what a player shows.

Why: ad sources hand out phone videos with a display matrix, anamorphic
encodes, browser recordings without a duration, remuxed files whose clock
starts late, variable-frame-rate screen recordings, audiograms, files that
play for hours in a few KB, and things that are not media at all. A naive
decode is silently wrong on each: sideways or squashed pictures, the wrong
second, a 0.04 s "duration", a ten-minute decode before a refusal. Every
member in ``tests/media_corpus/videos.py`` carries its truth; here the layer's
values are compared with it: displayed size exact, durations within 0.1 s,
frame times exact (the frame actually shown), each frame's scene and
orientation recognised against the upright picture, OCR in reading order.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ai_methods.media.errors import MediaDecodeError
from ai_methods.media.video import MediaLayout, iter_video_frames, probe_layout
from tests.media_corpus import made_on_first_use, videos
from tests.media_corpus.videos import VIDEO_MEMBERS, VideoMember, identify, layout_ops, wrong_orientation_errors

THREE_HOURS = 3 * 3600.0
# A decoded frame matches its upright scene picture to within this mean absolute
# difference (0-255 scale; compression and scaling noise is ~1-5); every wrong
# scene, turn or mirror is far above it (>= 15, measured on this corpus).
SAME_PICTURE = 9.0

PLAYABLE = [name for name, (kind, _) in VIDEO_MEMBERS.items() if kind != "too-long"]
TOO_LONG = videos.names("too-long")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory):
    """Members made on first use, once per module."""
    return made_on_first_use(tmp_path_factory.mktemp("video-corpus"), videos.make_video)


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory):
    return videos.make_broken(tmp_path_factory.mktemp("not-media"))


def sample_times(member: VideoMember) -> list[float]:
    """Times a sampler would ask: around each frame of the picture, and between sparse frames."""
    times: set[float] = set()
    for i, t in enumerate(member.frame_times):
        times.add(round(t + 0.01, 3))
        nxt = member.frame_times[i + 1] if i + 1 < len(member.frame_times) else t + 0.2
        times.add(round((t + nxt) / 2, 3))  # between this frame and the next: this one is shown
    return sorted(times)[:40]


@pytest.mark.parametrize("name", PLAYABLE)
def test_layout_is_what_a_player_shows(corpus, name: str) -> None:
    member = corpus(name)
    layout = probe_layout(member.path)
    assert isinstance(layout, MediaLayout)
    assert layout.media_type == "video"
    assert (layout.width, layout.height) == (member.width, member.height)
    assert (layout.coded_width, layout.coded_height) == (member.coded_width, member.coded_height)
    assert layout.sample_aspect_ratio == member.sample_aspect_ratio
    assert member.display_op in layout_ops(layout.rotation, layout.hflip, layout.vflip), (
        f"rotation={layout.rotation} hflip={layout.hflip} vflip={layout.vflip} does not describe {member.display_op}"
    )
    assert layout.duration_s == pytest.approx(member.duration_s, abs=0.1)
    if not member.header_duration:
        assert layout.duration_source in ("streams", "packets")
    assert layout.start_s == pytest.approx(member.start_s, abs=0.002)
    assert layout.has_audio is member.has_audio
    assert layout.video_codec == member.video_codec
    assert layout.audio_codec == member.audio_codec


@pytest.mark.parametrize(
    "name, rotation",
    [
        # API: degrees clockwise the stored picture is turned for display.
        # ffprobe "rotation=90" (PyAV set_display_rotation(90)) is a quarter turn counter-clockwise.
        ("rotation-ccw90-mp4", 270),
        ("rotation-ccw90-mov", 270),
        ("rotation-ccw180-mp4", 180),
        ("rotation-ccw270-mov", 90),
        ("sar-4-3-rotation-ccw90-mp4", 270),
    ],
)
def test_rotation_is_clockwise_degrees(corpus, name: str, rotation: int) -> None:
    layout = probe_layout(corpus(name).path)
    assert (layout.rotation, layout.hflip, layout.vflip) == (rotation, False, False)


@pytest.mark.parametrize("name", PLAYABLE)
def test_frames_are_the_ones_shown_upright_at_their_true_times(corpus, name: str) -> None:
    member = corpus(name)
    times = sample_times(member)
    expected = member.expected_frames(times)
    frames = list(iter_video_frames(member.path, times, layout=probe_layout(member.path)))
    got_times = [f.t_s for f in frames]
    assert got_times == pytest.approx([member.frame_times[i] for i in expected], abs=0.002)
    assert [f.index for f in frames] == list(range(len(frames)))
    for frame, i in zip(frames, expected):
        assert frame.image.mode == "RGB"
        assert frame.image.size == (member.width, member.height)
        scene, error, runner_up = identify(frame.image, member)
        assert scene == member.frame_scenes[i], f"frame at {frame.t_s} s shows scene {scene}"
        assert error < SAME_PICTURE < runner_up
        assert min(wrong_orientation_errors(frame.image, member, scene)) > SAME_PICTURE


@pytest.mark.parametrize("name", ["sar-64-45-pal-anamorphic-mp4", "rotation-ccw90-mov", "sar-4-3-rotation-ccw90-mp4"])
def test_max_side_bounds_the_displayed_frame(corpus, name: str) -> None:
    member = corpus(name)
    frames = list(iter_video_frames(member.path, [0.01], max_side=160))
    assert len(frames) == 1
    width, height = frames[0].image.size
    assert max(width, height) == 160
    assert width / height == pytest.approx(member.width / member.height, rel=0.02)
    assert identify(frames[0].image, member)[0] == member.frame_scenes[0]


@pytest.mark.parametrize(
    "name, times, shown",
    [
        # a sparse screen recording: asking between frames gives the earlier one, its own time
        ("screen-recording-vfr-mp4", [0.0, 0.15, 1.0, 2.99, 3.0, 3.02, 3.06, 5.0, 5.95], [0.0, 0.1, 0.2, 3.0, 3.05, 5.9]),
        ("screen-recording-vfr-webm", [1.5, 4.0, 5.89, 5.9], [0.2, 3.05, 5.9]),
        # the audiogram's single still is shown the whole time, and yielded once
        ("audiogram-mp4", [0.0, 5.0, 15.0, 29.0], [0.0]),
        # late-starting clocks: t_s from the start of the picture
        ("offset-5s-mp4", [0.5, 1.5, 2.5], [0.4, 1.4, 2.4]),
        ("hls-segment-10s-ts", [0.5, 2.9], [0.4, 2.8]),
        ("video-after-audio-mp4", [0.0, 2.0], [0.0, 2.0]),
        ("bframes-no-editlist-mp4", [0.0, 0.3], [0.0, 0.2]),
    ],
)
def test_times_asked_map_to_frames_shown(corpus, name: str, times: list[float], shown: list[float]) -> None:
    member = corpus(name)
    frames = list(iter_video_frames(member.path, times))
    assert [f.t_s for f in frames] == pytest.approx(shown, abs=0.002)


def test_edit_list_hides_the_frames_before_the_picture(corpus) -> None:
    """An export cut inside a GOP keeps its head in the file; the edit list says the picture starts after it."""
    member = corpus("editlist-hides-gop-head-mp4")
    frames = list(iter_video_frames(member.path, [0.0]))
    assert [f.t_s for f in frames] == [0.0]
    scene, error, _ = identify(frames[0].image, member)
    assert scene == 0 and error < SAME_PICTURE  # not the dark "CUT AWAY" frame


@pytest.mark.parametrize("name", TOO_LONG)
def test_hours_long_tiny_file_is_refused_before_any_picture_is_decoded(corpus, name: str, monkeypatch) -> None:
    import av

    member = corpus(name)
    assert member.path.stat().st_size < 100_000 and member.duration_s > THREE_HOURS
    decoded: list[str] = []
    real_open = av.open

    class CountingContainer:
        """The real container, counting requests to decode frames."""

        def __init__(self, inner) -> None:
            self._inner = inner

        def __getattr__(self, attr: str):
            return getattr(self._inner, attr)

        def __enter__(self):
            self._inner.__enter__()
            return self

        def __exit__(self, *exc):
            return self._inner.__exit__(*exc)

        def decode(self, *args, **kwargs):
            decoded.append(member.name)
            return self._inner.decode(*args, **kwargs)

    monkeypatch.setattr(av, "open", lambda *a, **k: CountingContainer(real_open(*a, **k)))
    with pytest.raises(MediaDecodeError) as refused:
        probe_layout(member.path, max_duration_s=THREE_HOURS)
    assert refused.value.cause == "too_long"
    assert decoded == []
    monkeypatch.setattr(av, "open", real_open)

    layout = probe_layout(member.path)
    assert layout.duration_s == pytest.approx(member.duration_s, abs=0.1)
    assert (layout.width, layout.height) == (member.width, member.height)


@pytest.mark.parametrize("name", ["audiogram-mp4", "audiogram-webm"])
def test_audiogram_is_as_long_as_its_sound_and_within_a_limit_by_its_real_duration(corpus, name: str) -> None:
    member = corpus(name)
    assert probe_layout(member.path, max_duration_s=30.0).duration_s == pytest.approx(29.5, abs=0.1)
    with pytest.raises(MediaDecodeError) as refused:
        probe_layout(member.path, max_duration_s=20.0)
    assert refused.value.cause == "too_long"


@pytest.mark.parametrize(
    "name, cause",
    [
        ("truncated-no-moov-mp4", "corrupt_media"),
        ("html-error-page-as-mp4", "corrupt_media"),
        ("empty-file", "corrupt_media"),
        ("random-bytes", "corrupt_media"),
        ("subtitle-only-mkv", "no_media_stream"),
        ("srt-file", "no_media_stream"),
        ("data-only-ts", "no_media_stream"),
    ],
)
def test_not_media_is_refused_with_its_cause(broken, name: str, cause: str) -> None:
    member = broken[name]
    assert member.cause == cause
    with pytest.raises(MediaDecodeError) as refused:
        probe_layout(member.path)
    assert refused.value.cause == cause
    with pytest.raises(MediaDecodeError) as refused_frames:
        list(iter_video_frames(member.path, [0.0]))
    assert refused_frames.value.cause == cause


@pytest.mark.parametrize(
    "name, reading",
    [
        ("rotation-ccw90-mp4", ["SUMMER", "SALE", "BUY", "NOW"]),
        ("sar-64-45-pal-anamorphic-mp4", ["SUMMER", "SALE", "BUY", "NOW"]),
    ],
)
async def test_ocr_reads_the_displayed_frames_in_order(corpus, local_runner, name: str, reading: list[str]) -> None:
    member = corpus(name)
    frames = list(iter_video_frames(member.path, [scene.start_s + 0.2 for scene in member.scenes[:2]], max_side=640))
    words: list[str] = []
    for frame in frames:
        result = await local_runner.run("ocr_text", image=videos.png_bytes(frame.image))
        words += [w["text"] for line in result.output["lines"] for w in line["words"]]
    assert words == reading
