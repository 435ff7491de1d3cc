"""Audio-only members: radio and podcast spots as ad sources hand them out, each with its truth.

Every member is an audio file a player plays for ``duration_s`` seconds and
shows no picture: AAC in M4A and in raw ADTS, MP3 (constant and variable bit
rate, with and without the Xing header that says how long a VBR file is),
Opus and Vorbis in Ogg, Opus in a WebM recorded by a browser (no Duration
element), WAV, FLAC, audio-only Matroska, and files carrying cover art, which
FFmpeg lists as a one-frame "video" stream.

Public reports behind the members (what went wrong elsewhere):
- cover art read as a video stream: opencast/opencast#3694 (MP3 + MJPEG
  attached pic), simonh10/ffprobe#1, Zulko/moviepy#158 (PNG cover in MP3),
  HaveAGitGat/Tdarr#88 (FLAC and MP3 classed as video), amule-org/amule#1075
  (MP3 APIC, FLAC PICTURE, M4A covr all reported as ``mjpeg``),
  telegramdesktop/tdesktop#8930;
- audio-only Matroska taken for a video: antiboredom/videogrep#142;
- audio-only WebM from MediaRecorder without a duration:
  davedoesdev/webm-muxer.js#16, collab-project/videojs-record#31;
- VBR MP3 without a Xing header, duration "estimated from bitrate" and wrong:
  DSheirer/sdrtrunk#1377, fooyin/fooyin#1516, tinytag/tinytag#124;
- Ogg Opus pre-skip making the start negative: meetecho/janus-gateway#2665.

Everything is written with PyAV (FFmpeg inside the wheel); no CLI needed.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

from tests.media_corpus.videos import NonSeekableWriter, jpeg_bytes, png_bytes, scene_picture, Scene


@dataclass(frozen=True)
class AudioMember:
    """One audio-only file and what a player shows for it."""

    name: str
    path: Path
    duration_s: float          # what a player plays (samples written / rate)
    audio_codec: str           # FFmpeg decoder name
    cover_art: bool = False    # an attached picture is in the file; still not a video
    header_duration: bool = True  # False: the container states no (or a wrong) duration
    reports: tuple[str, ...] = field(default=())


def speech_like(seconds: float, rate: int, channels: int = 1, seed: int = 7, loud_first_s: float | None = None) -> np.ndarray:
    """Syllable-like bursts of tone and noise, int16, shape (channels, n).

    ``loud_first_s``: only the first seconds are loud, the rest near silence, so a
    VBR encoder's bit rate swings and any duration guessed from the first frames'
    bit rate is far off.
    """
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    rng = np.random.default_rng(seed)
    envelope = (np.sin(2 * np.pi * 3.0 * t) > -0.2).astype(np.float64)
    signal = 0.35 * np.sin(2 * np.pi * 220 * t) + 0.25 * np.sin(2 * np.pi * 440 * t + 0.3) + 0.15 * rng.standard_normal(n)
    signal *= envelope
    if loud_first_s is not None:
        quiet = t >= loud_first_s
        signal[quiet] *= 0.002
        signal[~quiet] = 0.9 * rng.standard_normal(int((~quiet).sum()))
    pcm = np.clip(signal * 12000, -32768, 32767).astype(np.int16)
    return np.repeat(pcm[None, :], channels, axis=0)


def write_audio(
    target: Path | io.RawIOBase,
    fmt: str,
    codec: str,
    seconds: float,
    *,
    rate: int = 48000,
    channels: int = 1,
    codec_options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
    vbr_quality: int | None = None,
    cover: bytes | None = None,
    cover_codec: str = "mjpeg",
    loud_first_s: float | None = None,
) -> None:
    """Encode ``seconds`` of speech-like sound; optionally a cover picture as an attached-pic stream."""
    import av

    layout = "stereo" if channels == 2 else "mono"
    pcm = speech_like(seconds, rate, channels, loud_first_s=loud_first_s)
    dest = str(target) if isinstance(target, Path) else target
    with av.open(dest, "w", format=fmt, options=container_options or {}) as out:
        stream = out.add_stream(codec, rate=rate, options=codec_options or {})
        stream.layout = layout
        if vbr_quality is not None:  # what `-q:a N` does for libmp3lame
            stream.codec_context.qscale = True
            stream.codec_context.global_quality = vbr_quality * 118  # FF_QP2LAMBDA
        pic = None
        if cover is not None:
            from PIL import Image

            size = Image.open(io.BytesIO(cover)).size
            pic = out.add_mux_stream(cover_codec, width=size[0], height=size[1])
            pic.disposition = av.stream.Disposition.attached_pic
        if pic is not None:
            packet = av.Packet(cover)
            packet.stream = pic
            packet.pts = packet.dts = 0
            packet.time_base = Fraction(1, 90000)
            out.mux(packet)
        step = 1024
        for start in range(0, pcm.shape[1], step):
            chunk = np.ascontiguousarray(pcm[:, start:start + step])
            frame = av.AudioFrame.from_ndarray(chunk.T.reshape(1, -1) if channels > 1 else chunk, format="s16", layout=layout)
            frame.sample_rate = rate
            frame.pts = start
            frame.time_base = Fraction(1, rate)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def _cover_picture(kind: str) -> bytes:
    picture = scene_picture(Scene(0.0, ("COVER", "ART"), (230, 200, 40)), (240, 240))
    return jpeg_bytes(picture) if kind == "mjpeg" else png_bytes(picture)


# name -> maker(directory) -> AudioMember
AUDIO_MEMBERS: dict[str, Callable[[Path], AudioMember]] = {}


def _member(name: str):
    def register(fn: Callable[[Path, str], AudioMember]) -> Callable[[Path, str], AudioMember]:
        AUDIO_MEMBERS[name] = lambda directory: fn(directory, name)
        return fn

    return register


@_member("m4a-aac")
def _m4a(directory: Path, name: str) -> AudioMember:
    path = directory / f"{name}.m4a"
    write_audio(path, "ipod", "aac", 3.0, rate=44100)
    return AudioMember(name, path, 3.0, "aac", reports=("the shared case audio-only/radio_spot.m4a",))


@_member("m4a-aac-cover-art")
def _m4a_cover(directory: Path, name: str) -> AudioMember:
    path = directory / f"{name}.m4a"
    write_audio(path, "mp4", "aac", 2.5, rate=44100, cover=_cover_picture("mjpeg"))
    return AudioMember(name, path, 2.5, "aac", cover_art=True, reports=("amule-org/amule#1075", "UltraStar-Deluxe/USDX#948"))


@_member("adts-aac")
def _adts(directory: Path, name: str) -> AudioMember:
    # Raw AAC with ADTS headers: no index, FFmpeg estimates the duration from the bit rate.
    path = directory / f"{name}.aac"
    write_audio(path, "adts", "aac", 3.0, rate=44100)
    return AudioMember(name, path, 3.0, "aac")  # within 0.1 s for constant bit rate; VBR is the MP3 member below


@_member("mp3-cbr")
def _mp3(directory: Path, name: str) -> AudioMember:
    path = directory / f"{name}.mp3"
    write_audio(path, "mp3", "libmp3lame", 3.0, rate=44100)
    return AudioMember(name, path, 3.0, "mp3")


@_member("mp3-cover-art")
def _mp3_cover(directory: Path, name: str) -> AudioMember:
    path = directory / f"{name}.mp3"
    write_audio(path, "mp3", "libmp3lame", 2.5, rate=44100, cover=_cover_picture("mjpeg"))
    return AudioMember(
        name, path, 2.5, "mp3", cover_art=True,
        reports=("opencast/opencast#3694", "simonh10/ffprobe#1", "telegramdesktop/tdesktop#8930"),
    )


@_member("mp3-png-cover-art")
def _mp3_png_cover(directory: Path, name: str) -> AudioMember:
    path = directory / f"{name}.mp3"
    write_audio(path, "mp3", "libmp3lame", 2.0, rate=44100, cover=_cover_picture("png"), cover_codec="png")
    return AudioMember(name, path, 2.0, "mp3", cover_art=True, reports=("Zulko/moviepy#158",))


@_member("mp3-vbr-no-xing")
def _mp3_vbr(directory: Path, name: str) -> AudioMember:
    # Written through a pipe, the muxer cannot go back to fill a Xing header: a
    # player that trusts the first frames' bit rate gets the length wrong.
    path = directory / f"{name}.mp3"
    with path.open("wb") as fh:
        write_audio(
            NonSeekableWriter(fh), "mp3", "libmp3lame", 6.0, rate=44100, vbr_quality=4,
            container_options={"write_xing": "0"}, loud_first_s=1.0,
        )
    return AudioMember(
        name, path, 6.0, "mp3", header_duration=False,
        reports=("DSheirer/sdrtrunk#1377", "fooyin/fooyin#1516", "tinytag/tinytag#124"),
    )


@_member("ogg-opus")
def _ogg_opus(directory: Path, name: str) -> AudioMember:
    path = directory / f"{name}.opus"
    write_audio(path, "ogg", "libopus", 3.0, rate=48000)
    return AudioMember(name, path, 3.0, "opus", reports=("meetecho/janus-gateway#2665",))


@_member("ogg-vorbis")
def _ogg_vorbis(directory: Path, name: str) -> AudioMember:
    # FFmpeg's own Vorbis encoder (the wheel has no libvorbis) is stereo only and experimental.
    path = directory / f"{name}.ogg"
    write_audio(path, "ogg", "vorbis", 3.0, rate=44100, channels=2, codec_options={"strict": "experimental"})
    return AudioMember(name, path, 3.0, "vorbis")


@_member("webm-opus-recorded")
def _webm_opus(directory: Path, name: str) -> AudioMember:
    # A browser's MediaRecorder writes through a pipe: no Duration element, no cues.
    path = directory / f"{name}.webm"
    with path.open("wb") as fh:
        write_audio(NonSeekableWriter(fh), "webm", "libopus", 3.0, rate=48000)
    return AudioMember(
        name, path, 3.0, "opus", header_duration=False,
        reports=("davedoesdev/webm-muxer.js#16", "collab-project/videojs-record#31"),
    )


@_member("mka-vorbis")
def _mka(directory: Path, name: str) -> AudioMember:
    path = directory / f"{name}.mka"
    write_audio(path, "matroska", "vorbis", 2.5, rate=44100, channels=2, codec_options={"strict": "experimental"})
    return AudioMember(name, path, 2.5, "vorbis", reports=("antiboredom/videogrep#142",))


@_member("wav-pcm")
def _wav(directory: Path, name: str) -> AudioMember:
    path = directory / f"{name}.wav"
    write_audio(path, "wav", "pcm_s16le", 3.0, rate=22050)
    return AudioMember(name, path, 3.0, "pcm_s16le")


@_member("flac")
def _flac(directory: Path, name: str) -> AudioMember:
    path = directory / f"{name}.flac"
    write_audio(path, "flac", "flac", 3.0, rate=44100)
    return AudioMember(name, path, 3.0, "flac")


@_member("flac-cover-art")
def _flac_cover(directory: Path, name: str) -> AudioMember:
    path = directory / f"{name}.flac"
    write_audio(path, "flac", "flac", 2.0, rate=44100, cover=_cover_picture("png"), cover_codec="png")
    return AudioMember(name, path, 2.0, "flac", cover_art=True, reports=("HaveAGitGat/Tdarr#88", "amule-org/amule#1075"))


def make_audio_corpus(directory: Path) -> dict[str, AudioMember]:
    """Write every audio member into ``directory``; name -> member."""
    directory.mkdir(parents=True, exist_ok=True)
    return {name: make(directory) for name, make in AUDIO_MEMBERS.items()}
