"""Audio-only files (radio and podcast spots) through the decoding layer: audio, never "corrupt video".

Why: an M4A radio spot used to fail as ``corrupt_media`` "no video stream";
MP3/M4A/FLAC with cover art carry a one-frame "video" stream that media tools
routinely mistake for a picture; browser recordings and VBR MP3s without a
Xing header state no (or a wrong) duration. Each member of
``tests/media_corpus/audio.py`` must probe as ``audio`` with its codec and the
duration a player shows (within 0.1 s), decode to 16 kHz PCM of that length,
and never yield its cover art as a video frame.
"""

from __future__ import annotations

import pytest

from ai_methods.audio import SAMPLE_RATE, decode_pcm16k
from ai_methods.media.errors import MediaDecodeError
from ai_methods.media.video import iter_video_frames, probe_layout
from tests.media_corpus import made_on_first_use
from tests.media_corpus.audio import AUDIO_MEMBERS


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory):
    """Members made on first use, once per module."""
    return made_on_first_use(tmp_path_factory.mktemp("audio-corpus"), lambda d, name: AUDIO_MEMBERS[name](d))


@pytest.mark.parametrize("name", list(AUDIO_MEMBERS))
def test_audio_only_file_is_audio_with_its_real_duration(corpus, name: str) -> None:
    member = corpus(name)
    layout = probe_layout(member.path)
    assert layout.media_type == "audio"
    assert (layout.width, layout.height, layout.coded_width, layout.coded_height) == (None, None, None, None)
    assert layout.has_audio is True
    assert layout.video_codec is None and layout.frame_rate is None
    assert layout.audio_codec == member.audio_codec
    assert layout.duration_s == pytest.approx(member.duration_s, abs=0.1)
    assert abs(layout.start_s) < 0.1
    if not member.header_duration:
        assert layout.duration_source in ("streams", "packets")


@pytest.mark.parametrize("name", list(AUDIO_MEMBERS))
def test_audio_decodes_to_16k_pcm_of_its_length(corpus, name: str) -> None:
    member = corpus(name)
    pcm = decode_pcm16k(member.path)
    assert pcm.dtype.name == "int16" and pcm.ndim == 1
    assert len(pcm) / SAMPLE_RATE == pytest.approx(member.duration_s, abs=0.1)
    assert int(abs(pcm.astype("int32")).max()) > 1000  # the sound itself, not silence


@pytest.mark.parametrize("name", [n for n in AUDIO_MEMBERS if "cover-art" in n])
def test_cover_art_is_not_a_picture_to_sample(corpus, name: str) -> None:
    member = corpus(name)
    assert member.cover_art
    with pytest.raises(MediaDecodeError) as refused:
        list(iter_video_frames(member.path, [0.0, 1.0]))
    assert refused.value.cause == "no_media_stream"


@pytest.mark.parametrize("name", ["m4a-aac", "mp3-cover-art", "webm-opus-recorded"])
def test_duration_limit_applies_to_audio(corpus, name: str) -> None:
    member = corpus(name)
    assert probe_layout(member.path, max_duration_s=member.duration_s + 0.5).media_type == "audio"
    with pytest.raises(MediaDecodeError) as refused:
        probe_layout(member.path, max_duration_s=member.duration_s - 1.0)
    assert refused.value.cause == "too_long"
