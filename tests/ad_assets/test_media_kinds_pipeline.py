"""The real-world media kinds end to end through acquisition and the first AI cycle.

The decoding layer's own tests (tests/ai_methods/test_media_*.py) check each
member's decoded values; these check that the pipeline keeps them: what
`raw_media` records after a real download over loopback HTTP (displayed size,
type, real duration, what explains them), and what the engine analyses (every
frame of an animated banner at its display time, an audio spot transcribed and
searchable, frames of late-starting and variable-rate videos at their true
times). A row that says `ok`/`analysed` while holding the stored, not the
displayed, values is exactly the failure this guards against.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ad_assets.engine.acquire import acquire_media
from ad_assets.engine.analysis_tables import embedding_rows
from ai_methods.providers.fake import FakeProvider
from resources.fetcher import Fetcher, FetchPolicy
from resources.media_store import MediaStore
from tests.ad_assets.test_item_analysis import analyse, runner_for
from tests.media_corpus import pictures as picture_corpus
from tests.media_corpus.audio import make_audio_corpus
from tests.media_corpus.videos import VIDEO_MEMBERS, make_video
from tests.support.loopback_http import LoopbackHTTPServer, Static

_TOO_LONG_KIND = "too-long"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Every video and audio member, and the pictures' orientation, mode and animation members."""
    root = tmp_path_factory.mktemp("corpus")
    videos = {name: make_video(root / "video", name) for name in VIDEO_MEMBERS}
    audio = make_audio_corpus(root / "audio")
    stills = [picture_corpus.orientation_member(o) for o in range(1, 9)] + picture_corpus.mode_members()
    animations = picture_corpus.animation_members()
    return videos, audio, stills, animations


@pytest.fixture(scope="module")
def acquired(corpus, tmp_path_factory):
    """All members served on loopback and acquired as one brand: rows by member name, and the store."""
    videos, audio, stills, animations = corpus
    work = tmp_path_factory.mktemp("acquire")
    store = MediaStore.from_url(str(work / "store"))
    with LoopbackHTTPServer() as server:
        urls: dict[str, str] = {}
        for name, member in [*videos.items(), *audio.items()]:
            urls[name] = server.route(f"/{name}", Static(member.path.read_bytes(), "application/octet-stream"))
        for case in [*stills, *animations]:
            key = case.id.replace("/", "--")
            urls[case.id] = server.route(f"/{key}", Static(case.data, "application/octet-stream"))
        policy = FetchPolicy(max_concurrency=8, max_per_host=8, max_attempts=1, total_timeout_s=30,
                             allow_hosts=(server.netloc,))  # fmt: skip

        async def run():
            async with Fetcher(policy, work / "fetch") as fetcher:
                return await acquire_media(list(urls.values()), fetcher=fetcher, store=store)

        rows = asyncio.run(run())
    by_url = {row["url"]: row for row in rows}
    return {name: by_url[url] for name, url in urls.items()}, store


def _turns_of(member) -> set[int]:
    """Degrees clockwise the player turns the stored picture (0 for mirrors alone).

    A mirrored quarter turn is a quarter turn either way followed by a mirror on
    one axis or the other: both spellings describe the same picture.
    """
    from tests.media_corpus.videos import T

    return {None: {0}, T.ROTATE_270: {90}, T.ROTATE_180: {180}, T.ROTATE_90: {270}, T.TRANSPOSE: {90, 270},
            T.TRANSVERSE: {90, 270}, T.FLIP_LEFT_RIGHT: {0}, T.FLIP_TOP_BOTTOM: {0}}[member.display_op]  # fmt: skip


@pytest.mark.parametrize("name", [n for n, (kind, _) in VIDEO_MEMBERS.items() if kind != _TOO_LONG_KIND])
def test_each_video_is_recorded_as_displayed(acquired, corpus, name):
    rows, _ = acquired
    member, row = corpus[0][name], rows[name]
    assert row["status"] == "ok", row
    assert row["media_type"] == "video"
    assert (row["width"], row["height"]) == (member.width, member.height)
    assert row["duration_s"] == pytest.approx(member.duration_s, abs=0.1)
    assert row["has_audio"] is member.has_audio
    assert row["sample_aspect_ratio"] == member.sample_aspect_ratio
    assert row["rotation"] in _turns_of(member)
    assert row["mirrored"] is (member.display_op in _mirroring_ops())
    assert row["codec"] == member.video_codec
    if not member.header_duration:  # a recorder's file: the duration comes from its packets
        assert row["duration_source"] == "packets"


def _mirroring_ops():
    from tests.media_corpus.videos import T

    return (T.TRANSPOSE, T.TRANSVERSE, T.FLIP_LEFT_RIGHT, T.FLIP_TOP_BOTTOM)


@pytest.mark.parametrize("name", [n for n, (kind, _) in VIDEO_MEMBERS.items() if kind == _TOO_LONG_KIND])
def test_a_tiny_file_that_plays_for_hours_is_too_long(acquired, name):
    rows, store = acquired
    row = rows[name]
    assert (row["status"], row["cause"]) == ("failed", "too_long"), row
    assert "above the 10800 s limit" in row["detail"]
    assert row["storage_key"] is None


def test_each_audio_file_is_an_audio_item(acquired, corpus):
    rows, _ = acquired
    for name, member in corpus[1].items():
        row = rows[name]
        assert row["status"] == "ok", (name, row)
        assert row["media_type"] == "audio", (name, row["media_type"])  # cover art does not make a video
        assert row["mime"].startswith("audio/"), (name, row["mime"])
        assert row["duration_s"] == pytest.approx(member.duration_s, abs=0.1), name
        assert (row["width"], row["height"], row["has_audio"]) == (None, None, True), name
        assert row["storage_key"].rsplit(".", 1)[-1] not in ("mp4", "webm", "mkv"), (name, row["storage_key"])


def test_each_still_is_recorded_at_its_displayed_size(acquired, corpus):
    rows, _ = acquired
    for case in corpus[2]:
        row = rows[case.id]
        assert row["status"] == "ok", (case.id, row)
        assert (row["media_type"], row["animated"]) == ("image", False), case.id
        assert (row["width"], row["height"]) == case.displayed_size, case.id


def test_exif_orientation_is_explained(acquired):
    rows, _ = acquired
    turns = {1: 0, 2: 0, 3: 180, 4: 180, 5: 270, 6: 90, 7: 90, 8: 270}
    for orientation, turn in turns.items():
        case = picture_corpus.orientation_member(orientation)
        row = rows[case.id]
        assert (row["rotation"], row["mirrored"]) == (turn, orientation in (2, 4, 5, 7)), case.id


def test_each_animation_is_an_animated_image_with_its_frames_and_duration(acquired, corpus):
    rows, _ = acquired
    for case in corpus[3]:
        row = rows[case.id]
        assert row["status"] == "ok", (case.id, row)
        assert (row["media_type"], row["animated"]) == ("image", True), case.id
        assert row["frame_count"] == len(case.starts), case.id
        assert (row["width"], row["height"]) == case.displayed_size, case.id
        assert row["duration_s"] == pytest.approx(case.duration_s, abs=0.01), case.id
        assert row["duration_source"] == "frame_delays", case.id


# ----- the first AI cycle -----------------------------------------------------------------


def test_an_animated_banner_is_analysed_frame_by_frame_at_its_display_times(acquired, corpus, tmp_path):
    rows, store = acquired
    case = next(c for c in corpus[3] if len(c.starts) == len(set(c.messages)) and len(c.starts) >= 3)
    fake = FakeProvider()
    (item,) = analyse(tmp_path, store, [rows[case.id]], runner_for(tmp_path, fake, embed_image="local"), frame_count=45)
    assert item.status == "analysed", item.failures
    assert item.media_type == "image"
    # Every distinct message is its own kept frame, at the time the browser starts showing it.
    assert [u.t_s for u in item.units] == pytest.approx(list(case.starts), abs=1e-3)
    assert all(u.unit == "frame" for u in item.units)
    assert fake.calls["ocr_text"] == len(case.starts)
    kinds = [v["kind"] for v in embedding_rows([item])]
    assert kinds.count("image") == len(case.starts)


def test_an_audio_spot_is_transcribed_and_its_segments_embedded(acquired, corpus, tmp_path):
    rows, store = acquired
    names = ["m4a-aac", "mp3-cover-art", "ogg-opus", "webm-opus-recorded"]
    fake = FakeProvider()
    items = analyse(tmp_path, store, [rows[n] for n in names], runner_for(tmp_path, fake))
    assert [i.status for i in items] == ["analysed"] * len(names), [i.failures for i in items]
    assert fake.calls["transcribe_speech"] == len(names)
    for item in items:
        assert item.units == [] and item.frames_sampled == 0
        assert item.transcript and item.transcript["segments"]
        vectors = [v for v in embedding_rows([item]) if v["kind"] == "transcript"]
        assert len(vectors) == len([s for s in item.transcript["segments"] if s["text"].strip()])


@pytest.mark.parametrize("name", ["offset-5s-mp4", "video-after-audio-mp4", "screen-recording-vfr-mp4", "audiogram-mp4"])
def test_kept_frames_carry_their_true_times_over_the_whole_picture(acquired, corpus, tmp_path, name):
    rows, store = acquired
    member = corpus[0][name]
    fake = FakeProvider()
    (item,) = analyse(tmp_path, store, [rows[name]], runner_for(tmp_path, fake, embed_image="local"), frame_count=45)
    assert item.status == "analysed", item.failures
    times = [u.t_s for u in item.units]
    # Every kept frame is a real frame of the picture, at its own time from the start of the picture ...
    for t in times:
        assert min(abs(t - ft) for ft in member.frame_times) < 1e-3, (t, member.frame_times)
    # ... and every scene of the picture is reached, not only the first second of it.
    reached = {member.frame_scenes[min(range(len(member.frame_times)), key=lambda i: abs(member.frame_times[i] - t))]
               for t in times}  # fmt: skip
    assert reached == set(member.frame_scenes), (times, member.frame_scenes)


@pytest.mark.parametrize(
    ("words", "size", "style"),
    [
        (["ALPHA", "BRAVO", "CHARLIE"], (640, 240), {}),
        # from a fresh-user trial: DINNER was dropped as a near-duplicate of LUNCH at first
        (["BREAKFAST", "LUNCH", "DINNER"], (640, 360), {"background": (40, 80, 200), "foreground": (250, 250, 250)}),
    ],
    ids=["alpha-bravo-charlie", "breakfast-lunch-dinner"],
)
def test_a_banner_that_only_swaps_its_words_keeps_every_message(tmp_path, words, size, style):
    """Same background, a new word per frame: alike to the visual descriptor, different to a reader."""
    import io

    from ad_assets.demo.samples import render_ad_image
    from tests.ad_assets.media_rows import store_media

    frames = [render_ad_image([w], size=size, **style) for w in words]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:], duration=[500, 700, 900], loop=0)
    store = MediaStore.from_url(str(tmp_path / "store"))
    row = store_media(store, gif.getvalue())
    assert (row["animated"], row["frame_count"]) == (True, 3)
    (item,) = analyse(tmp_path, store, [row], runner_for(tmp_path, FakeProvider(), embed_image="local"), frame_count=45)
    assert [u.t_s for u in item.units] == pytest.approx([0.0, 0.5, 1.2])
    assert item.frames_kept == 3
