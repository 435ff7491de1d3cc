"""Video members of the real-world kinds, each with what a player shows: the truth the tests assert.

Kinds (each a whole family of inputs ad sources hand out) and the public bug
reports that named their members (search of GitHub issues, corpus ``issues``):

- ``rotation``: a display matrix turns or mirrors the stored picture (phones,
  dashcams, GoPros, front cameras). grizzlypeak3d/DJV#366 (Android MP4,
  rotate 90), opencv/opencv#26876 (displaymatrix ignored, H.264 and ProRes),
  datachain-ai/datachain#1823 (BDD100K dashcam MOV, rotation -90, sizes
  swapped), abhiTronix/deffcode#39 (iPhone portrait MOV squashed),
  gkv311/sview#22 (iPhone MOV upside down: 180), clsid2/mpc-hc#1168 (GoPro
  upside down), meta-pytorch/torchcodec#1173.
- ``sar``: non-square pixels (DVD/DVB anamorphic, some phone and web
  encoders). jellyfin/jellyfin-roku#622 (720x576 shown at storage size instead
  of 1024x576), jellyfin/jellyfin#14648, rigaya/NVEnc#43 (PAL 720x576 4:3),
  superuser404notfound/AetherEngine#290 (SAR 2:1 on 960x1080 is right),
  mbunkus/mkvtoolnix#1726 (Matroska display size).
- ``no-duration``: WebM/Matroska written through a pipe as browser
  recorders do: no Duration element, no cues. collab-project/videojs-record#31
  (VP8 + Vorbis, "Duration: N/A"), #606 (VP8 video only), muaz-khan/RecordRTC#147,
  yusitnikov/fix-webm-duration#1.
- ``offset``: timelines that do not start at 0: remuxed cuts, HLS segments,
  late video, B-frame delay, edit lists. pytorch/audio#3824 (seek wrong when the
  stream starts late), dmlc/decord#238 (MKV timestamps from 1 s), HandBrake/HandBrake#7994
  (first pts not 0), mltframework/mlt#89 (first frames of B-frame MP4 lost),
  xbmc/xbmc#3645 (iPhone export starting inside a GOP: edit list hides the head),
  Vanilagy/mediabunny#315 (edit list with negative pts, FFmpeg's normalisation).
- ``vfr``: variable frame rate, sparse screen recordings. opencv/opencv#12112
  (CAP_PROP_POS_MSEC wrong on VFR), Breakthrough/PySceneDetect#168,
  dmlc/decord#26, #52 (timestamps in decode order), #54.
- ``audiogram``: one still picture over a long audio track: the file lasts as
  long as the audio. dmlc/decord#343 (length of the video stream taken for the
  file's), castlabs/dashas#34.
- ``too-long``: tiny files that play for hours: two frames 3 h 10 min apart, an
  audio clock that jumps (raspberrypi/picamera2#1274: audio PTS in wall time, a
  486000-hour file), a recorder's WebM without a duration.
- ``not-media``: truncated MP4 (moov never written), a CDN's HTML error page,
  empty and random bytes, subtitle-only Matroska, an SRT file, a data-only
  transport stream.

Every member is written with PyAV (FFmpeg in the wheel), small (<= 6 s, mostly
<= 320 px), so the corpus builds in a few seconds. Each scene has its own
message and background, a white band at the bottom and a dark block at its
bottom-left, so a decoded frame's scene *and* orientation are recognised by
comparing it with the upright picture (``identify``), without OCR.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw

from ad_assets.demo.samples import render_ad_image

T = Image.Transpose

BACKGROUNDS = (
    (235, 95, 80),    # red
    (90, 200, 110),   # green
    (80, 125, 235),   # blue
    (240, 215, 80),   # yellow
    (190, 110, 215),  # purple
    (90, 210, 215),   # cyan
)
MESSAGES = (
    ("SUMMER", "SALE"),
    ("BUY", "NOW"),
    ("FREE", "SHIPPING"),
    ("ONLY", "TODAY"),
    ("NEW", "FLAVOUR"),
    ("SHOP", "ONLINE"),
)
BAND = (250, 250, 250)
BLOCK = (20, 20, 70)


@dataclass(frozen=True)
class Scene:
    """A stretch of the picture showing one message on one background."""

    start_s: float
    lines: tuple[str, ...]
    background: tuple[int, int, int]


def scene_picture(scene: Scene, size: tuple[int, int]) -> Image.Image:
    """The scene as a player shows it (upright, displayed size): text, a white band, a dark block bottom-left."""
    picture = render_ad_image(list(scene.lines), size=size, background=scene.background, accent=BAND)
    width, height = size
    ImageDraw.Draw(picture).rectangle([0, int(height * 0.75), int(width * 0.18), height], fill=BLOCK)
    return picture


def png_bytes(picture: Image.Image) -> bytes:
    out = io.BytesIO()
    picture.save(out, "PNG")
    return out.getvalue()


def jpeg_bytes(picture: Image.Image) -> bytes:
    out = io.BytesIO()
    picture.convert("RGB").save(out, "JPEG", quality=85)
    return out.getvalue()


class NonSeekableWriter(io.RawIOBase):
    """A write-only pipe: the muxer cannot go back to write a duration or an index (as in a browser recorder)."""

    def __init__(self, fh: io.BufferedIOBase) -> None:
        self._fh = fh

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def write(self, data) -> int:  # type: ignore[override]
        return self._fh.write(data)


# How the stored picture becomes the displayed one, for the display matrices
# PyAV's ``set_display_rotation(ccw, hflip, vflip)`` writes. Checked against what
# ``ffmpeg -i x -frames:v 1 out.png`` (autorotate) shows and against the matrix:
# (ccw, hflip, vflip) -> the one PIL transpose that turns stored into displayed.
DISPLAY_OPS: dict[tuple[int, bool, bool], T | None] = {
    (0, False, False): None,
    (90, False, False): T.ROTATE_90,       # ffprobe rotation=90: turned 90 deg counter-clockwise
    (180, False, False): T.ROTATE_180,
    (270, False, False): T.ROTATE_270,     # ffprobe rotation=-90: turned 90 deg clockwise
    (0, True, False): T.FLIP_LEFT_RIGHT,   # front-camera mirror
    (0, False, True): T.FLIP_TOP_BOTTOM,
    (90, True, False): T.TRANSVERSE,       # matrix [0 -1; -1 0]: mirror across the anti-diagonal
    (90, False, True): T.TRANSPOSE,
}
INVERSE_OP = {
    None: None,
    T.ROTATE_90: T.ROTATE_270,
    T.ROTATE_270: T.ROTATE_90,
    T.ROTATE_180: T.ROTATE_180,
    T.FLIP_LEFT_RIGHT: T.FLIP_LEFT_RIGHT,
    T.FLIP_TOP_BOTTOM: T.FLIP_TOP_BOTTOM,
    T.TRANSPOSE: T.TRANSPOSE,
    T.TRANSVERSE: T.TRANSVERSE,
}


def apply_op(picture: Image.Image, op: T | None) -> Image.Image:
    return picture if op is None else picture.transpose(op)


def layout_ops(rotation_cw: int, hflip: bool, vflip: bool) -> set[T | None]:
    """The transforms a (rotation clockwise, hflip, vflip) triple can mean, flips before or after turning."""
    turn = {0: None, 90: T.ROTATE_270, 180: T.ROTATE_180, 270: T.ROTATE_90}[rotation_cw % 360]
    flips = [op for op, on in ((T.FLIP_LEFT_RIGHT, hflip), (T.FLIP_TOP_BOTTOM, vflip)) if on]
    probe = Image.new("RGB", (3, 2))
    probe.putdata([(i, 0, 0) for i in range(6)])

    def run(ops: Sequence[T | None]) -> bytes:
        im = probe
        for op in ops:
            im = apply_op(im, op)
        return im.tobytes() + bytes(im.size)

    results = {run([turn, *flips]), run([*flips, turn])}
    return {op for op in DISPLAY_OPS.values() if run([op]) in results}


@dataclass(frozen=True)
class AudioTrack:
    codec: str
    rate: int
    seconds: float
    start_s: float = 0.0          # on the file clock
    channels: int = 1
    jump_to_s: float | None = None  # the last second of audio is stamped here (a clock that jumps)


@dataclass(frozen=True)
class VideoMember:
    """One video file and what a player shows for it."""

    name: str
    kind: str
    path: Path
    width: int                      # displayed
    height: int
    coded_width: int
    coded_height: int
    display_op: T | None            # stored -> displayed turn/mirror
    sample_aspect_ratio: str | None
    duration_s: float               # how long it plays: earliest start to latest end
    start_s: float                  # first video pts on the file clock
    frame_times: tuple[float, ...]  # pts of each shown frame, seconds from the start of the picture
    frame_scenes: tuple[int, ...]   # scene index of each frame
    scenes: tuple[Scene, ...]
    video_codec: str
    audio_codec: str | None
    header_duration: bool = True    # False: the container states no duration
    reports: tuple[str, ...] = field(default=())

    @property
    def has_audio(self) -> bool:
        return self.audio_codec is not None

    def shown_at(self, t: float) -> int:
        """Index of the frame a player shows at ``t`` seconds from the start of the picture."""
        shown = 0
        for i, ft in enumerate(self.frame_times):
            if ft <= t + 1e-9:
                shown = i
        return shown

    def expected_frames(self, times: Sequence[float]) -> list[int]:
        """Frame indices ``iter_video_frames(times)`` must yield: shown frames, each once, in order."""
        out: list[int] = []
        for t in times:
            i = self.shown_at(t)
            if not out or out[-1] != i:
                out.append(i)
        return out

    def picture(self, scene: int, size: tuple[int, int] | None = None) -> Image.Image:
        return scene_picture(self.scenes[scene], size or (self.width, self.height))


def identify(image: Image.Image, member: VideoMember) -> tuple[int, float, float]:
    """(best scene, its mean abs difference, the runner-up's) comparing with the upright pictures."""
    size = image.size
    got = np.asarray(image.convert("RGB"), dtype=np.float32)
    errors = sorted(
        (float(np.abs(got - np.asarray(member.picture(i, (member.width, member.height)).resize(size, Image.BILINEAR), dtype=np.float32)).mean()), i)
        for i in range(len(member.scenes))
    )
    runner_up = errors[1][0] if len(errors) > 1 else float("inf")
    return errors[0][1], errors[0][0], runner_up


def wrong_orientation_errors(image: Image.Image, member: VideoMember, scene: int) -> list[float]:
    """Differences to the scene's picture turned or mirrored in every wrong way that keeps the size."""
    size = image.size
    got = np.asarray(image.convert("RGB"), dtype=np.float32)
    upright = member.picture(scene, (member.width, member.height))
    out = []
    for op in (T.FLIP_LEFT_RIGHT, T.FLIP_TOP_BOTTOM, T.ROTATE_180, T.ROTATE_90, T.ROTATE_270, T.TRANSPOSE, T.TRANSVERSE):
        wrong = upright.transpose(op)
        if wrong.size[0] > wrong.size[1] != (size[0] > size[1]):
            continue
        out.append(float(np.abs(got - np.asarray(wrong.resize(size, Image.BILINEAR), dtype=np.float32)).mean()))
    return out


# --------------------------------------------------------------------------- writing


def _speech(seconds: float, rate: int, channels: int) -> np.ndarray:
    from tests.media_corpus.audio import speech_like

    return speech_like(seconds, rate, channels)


def encode(
    target: Path | io.RawIOBase,
    fmt: str,
    *,
    vcodec: str,
    coded_size: tuple[int, int],
    frames: Sequence[tuple[float, Image.Image, float]],
    ccw: int = 0,
    hflip: bool = False,
    vflip: bool = False,
    sar: tuple[int, int] | None = None,
    audio: AudioTrack | None = None,
    codec_options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
) -> None:
    """Write ``frames`` (pts seconds on the file clock, stored picture, duration) and an optional audio track."""
    import av

    tb = Fraction(1, 1000)
    dest = str(target) if isinstance(target, Path) else target
    with av.open(dest, "w", format=fmt, options=container_options or {}) as out:
        v = out.add_stream(vcodec, rate=10, options=codec_options or {})
        v.width, v.height = coded_size
        v.pix_fmt = "yuv420p"
        v.codec_context.time_base = tb
        if sar is not None:
            v.codec_context.sample_aspect_ratio = Fraction(*sar)
        if ccw or hflip or vflip:
            v.set_display_rotation(ccw, hflip=hflip, vflip=vflip)
        a = None
        if audio is not None:
            options = {"strict": "experimental"} if audio.codec == "vorbis" else {}
            a = out.add_stream(audio.codec, rate=audio.rate, options=options)
            a.layout = "stereo" if audio.channels == 2 else "mono"
        durations: dict[int, int] = {}

        def mux_video(packets) -> None:
            for packet in packets:
                if packet.pts is not None and packet.pts in durations:
                    packet.duration = durations[packet.pts]
                out.mux(packet)

        for pts_s, stored, dur_s in frames:
            frame = av.VideoFrame.from_image(stored.convert("RGB"))
            frame.pts = round(pts_s * 1000)
            frame.time_base = tb
            durations[frame.pts] = round(dur_s * 1000)
            mux_video(v.encode(frame))
        mux_video(v.encode())
        if a is not None and audio is not None:
            pcm = _speech(audio.seconds, audio.rate, audio.channels)
            step = 1024
            n = pcm.shape[1]
            for start in range(0, n, step):
                chunk = np.ascontiguousarray(pcm[:, start:start + step])
                frame = av.AudioFrame.from_ndarray(chunk.T.reshape(1, -1) if audio.channels == 2 else chunk, format="s16", layout=a.layout.name)
                frame.sample_rate = audio.rate
                at = audio.start_s + start / audio.rate
                if audio.jump_to_s is not None and start >= n - audio.rate:
                    at = audio.jump_to_s + (start - (n - audio.rate)) / audio.rate
                frame.pts = round(at * audio.rate)
                frame.time_base = Fraction(1, audio.rate)
                for packet in a.encode(frame):
                    out.mux(packet)
            for packet in a.encode():
                out.mux(packet)


def stored_picture(upright: Image.Image, op: T | None, coded_size: tuple[int, int]) -> Image.Image:
    """The picture to store so that SAR scaling then the display op shows ``upright``."""
    unturned = apply_op(upright, INVERSE_OP[op])
    return unturned if unturned.size == coded_size else unturned.resize(coded_size, Image.LANCZOS)


def cfr_scenes(count: int, scene_s: float) -> tuple[Scene, ...]:
    return tuple(Scene(i * scene_s, MESSAGES[i], BACKGROUNDS[i]) for i in range(count))


def make_member(
    directory: Path,
    name: str,
    kind: str,
    suffix: str,
    fmt: str,
    *,
    vcodec: str = "libx264",
    video_codec: str = "h264",
    coded_size: tuple[int, int] = (320, 180),
    ccw: int = 0,
    hflip: bool = False,
    vflip: bool = False,
    sar: tuple[int, int] | None = None,
    scenes: tuple[Scene, ...] | None = None,
    frame_times: Sequence[float] | None = None,
    fps: int = 5,
    scene_s: float = 1.0,
    scene_count: int = 3,
    last_frame_s: float | None = None,
    offset_s: float = 0.0,
    audio: AudioTrack | None = None,
    audio_codec: str | None = None,
    recorded: bool = False,
    codec_options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
    duration_s: float | None = None,
    hidden_head_s: float = 0.0,
    muxer_shift_s: float = 0.0,
    reports: tuple[str, ...] = (),
) -> VideoMember:
    """Encode one member and return it with its truth.

    ``frame_times`` (seconds from the start of the picture) default to a constant
    ``fps`` over ``scene_count`` scenes of ``scene_s``; each frame shows the scene
    it falls in. ``offset_s`` moves the whole picture on the file clock;
    ``hidden_head_s`` adds frames *before* the picture that an edit list hides.
    ``muxer_shift_s``: how far the muxer itself moves the clock (MP4 without an
    edit list shifts every timestamp by the B-frame delay so that dts >= 0).
    """
    op = DISPLAY_OPS[(ccw, hflip, vflip)]
    cw, ch = coded_size
    scaled = (cw * sar[0] // sar[1], ch) if sar else (cw, ch)
    assert not sar or cw * sar[0] % sar[1] == 0, "pick coded sizes whose displayed width is whole"
    display = apply_op(Image.new("RGB", scaled), op).size
    if scenes is None:
        scenes = cfr_scenes(scene_count, scene_s)
    if frame_times is None:
        total = scenes[-1].start_s + scene_s
        frame_times = [i / fps for i in range(round(total * fps))]
    frame_times = list(frame_times)
    frame_scenes = [max(i for i, s in enumerate(scenes) if s.start_s <= t + 1e-9) for t in frame_times]
    if last_frame_s is None:
        last_frame_s = frame_times[-1] - frame_times[-2] if len(frame_times) > 1 else 1 / fps
    durations = [b - a for a, b in zip(frame_times, frame_times[1:])] + [last_frame_s]
    pictures = {i: stored_picture(scene_picture(s, display), op, coded_size) for i, s in enumerate(scenes)}
    frames = []
    if hidden_head_s:
        # Frames before the picture: an encoder cut inside a GOP; the edit list starts at 0.
        junk = stored_picture(scene_picture(Scene(0, ("CUT", "AWAY"), (30, 30, 30)), display), op, coded_size)
        n_head = round(hidden_head_s * fps)
        frames += [(-(n_head - i) / fps, junk, 1 / fps) for i in range(n_head)]
    frames += [(offset_s + t, pictures[s], d) for t, s, d in zip(frame_times, frame_scenes, durations)]
    path = directory / f"{name}.{suffix}"
    if recorded:
        with path.open("wb") as fh:
            encode(NonSeekableWriter(fh), fmt, vcodec=vcodec, coded_size=coded_size, frames=frames, ccw=ccw, hflip=hflip,
                   vflip=vflip, sar=sar, audio=audio, codec_options=codec_options, container_options=container_options)
    else:
        encode(path, fmt, vcodec=vcodec, coded_size=coded_size, frames=frames, ccw=ccw, hflip=hflip, vflip=vflip, sar=sar,
               audio=audio, codec_options=codec_options, container_options=container_options)
    picture_end = offset_s + frame_times[-1] + last_frame_s
    timeline_start = min(offset_s, audio.start_s) if audio else offset_s
    audio_end = (audio.jump_to_s + 1.0 if audio.jump_to_s is not None else audio.start_s + audio.seconds) if audio else 0.0
    if duration_s is None:
        duration_s = max(picture_end, audio_end) - timeline_start
    return VideoMember(
        name=name, kind=kind, path=path, width=display[0], height=display[1], coded_width=cw, coded_height=ch,
        display_op=op, sample_aspect_ratio=f"{sar[0]}:{sar[1]}" if sar else None, duration_s=duration_s,
        start_s=offset_s + muxer_shift_s, frame_times=tuple(frame_times), frame_scenes=tuple(frame_scenes), scenes=tuple(scenes),
        video_codec=video_codec, audio_codec=audio_codec if audio else None, header_duration=not recorded,
        reports=reports,
    )


# --------------------------------------------------------------------------- members

VideoMaker = Callable[[Path], VideoMember]
VIDEO_MEMBERS: dict[str, tuple[str, VideoMaker]] = {}


def _register(kind: str, name: str, **kwargs) -> None:
    suffix, fmt = kwargs.pop("container")
    VIDEO_MEMBERS[name] = (kind, lambda directory: make_member(directory, name, kind, suffix, fmt, **kwargs))


MP4, MOV, MKV, WEBM, TS = ("mp4", "mp4"), ("mov", "mov"), ("mkv", "matroska"), ("webm", "webm"), ("ts", "mpegts")
VP8 = {"vcodec": "libvpx", "video_codec": "vp8"}
VP9 = {"vcodec": "libvpx-vp9", "video_codec": "vp9", "codec_options": {"deadline": "realtime", "cpu-used": "8"}}
AAC = AudioTrack("aac", 44100, 3.0)
ROTATION_REPORTS = ("grizzlypeak3d/DJV#366", "opencv/opencv#26876", "datachain-ai/datachain#1823", "abhiTronix/deffcode#39")

# rotation: each turn in MP4 and MOV, phone-sized (stored landscape 320x180)
for ccw, turn_reports in ((90, ROTATION_REPORTS), (180, ("gkv311/sview#22", "clsid2/mpc-hc#1168")), (270, ("datachain-ai/datachain#1823",))):
    for container in (MP4, MOV):
        _register("rotation", f"rotation-ccw{ccw}-{container[0]}", container=container, ccw=ccw, reports=turn_reports,
                  **({"audio": AAC, "audio_codec": "aac"} if container is MOV else {}))
_register("rotation", "mirror-horizontal-mp4", container=MP4, hflip=True, reports=("front cameras: mirror matrix",))
_register("rotation", "mirror-vertical-mov", container=MOV, vflip=True)
_register("rotation", "rotation-ccw90-mirrored-mp4", container=MP4, ccw=90, hflip=True)

# sample aspect ratio
_register("sar", "sar-4-3-mp4", container=MP4, coded_size=(240, 180), sar=(4, 3), reports=("jellyfin/jellyfin#14648",))
_register("sar", "sar-2-1-mkv", container=MKV, coded_size=(160, 180), sar=(2, 1),
          reports=("superuser404notfound/AetherEngine#290", "mbunkus/mkvtoolnix#1726"))
_register("sar", "sar-8-9-mov", container=MOV, coded_size=(360, 270), sar=(8, 9))
_register("sar", "sar-64-45-pal-anamorphic-mp4", container=MP4, coded_size=(720, 576), sar=(64, 45), scene_count=2,
          scene_s=0.5, fps=4, reports=("jellyfin/jellyfin-roku#622", "rigaya/NVEnc#43"))
_register("sar", "sar-4-3-rotation-ccw90-mp4", container=MP4, coded_size=(240, 180), sar=(4, 3), ccw=90)

# no duration: written through a pipe like MediaRecorder
_register("no-duration", "recorded-vp8-opus-webm", container=WEBM, recorded=True, audio=AudioTrack("libopus", 48000, 3.0),
          audio_codec="opus", reports=("muaz-khan/RecordRTC#147", "the shared case webm-no-duration"), **VP8)
_register("no-duration", "recorded-vp9-vorbis-webm", container=WEBM, recorded=True,
          audio=AudioTrack("vorbis", 44100, 3.0, channels=2), audio_codec="vorbis",
          reports=("collab-project/videojs-record#31",), **VP9)
_register("no-duration", "recorded-vp8-vorbis-mkv", container=MKV, recorded=True,
          audio=AudioTrack("vorbis", 44100, 3.0, channels=2), audio_codec="vorbis", **VP8)
_register("no-duration", "recorded-vp8-video-only-webm", container=WEBM, recorded=True, fps=4,
          reports=("collab-project/videojs-record#606",), **VP8)
_register("no-duration", "recorded-h264-aac-mkv", container=MKV, recorded=True, audio=AAC, audio_codec="aac")

# offset timelines
_register("offset", "offset-5s-mp4", container=MP4, offset_s=5.0, audio=AudioTrack("aac", 44100, 3.0, start_s=5.0),
          audio_codec="aac", reports=("the shared case offset-timeline", "pytorch/audio#3824"))
_register("offset", "offset-5s-mkv", container=MKV, offset_s=5.0, audio=AudioTrack("aac", 44100, 3.0, start_s=5.0),
          audio_codec="aac", reports=("dmlc/decord#238",))
_register("offset", "hls-segment-10s-ts", container=TS, offset_s=10.0, audio=AudioTrack("aac", 44100, 3.0, start_s=10.0),
          audio_codec="aac")
_register("offset", "video-after-audio-mp4", container=MP4, offset_s=2.0, audio=AudioTrack("aac", 44100, 5.0, start_s=0.0),
          audio_codec="aac")
_register("offset", "bframes-editlist-mp4", container=MP4, codec_options={"bf": "2"}, reports=("mltframework/mlt#89",))
# two B-frames at 5 fps: without an edit list the first picture is stamped 0.4 s (ffprobe "start: 0.400000")
_register("offset", "bframes-no-editlist-mp4", container=MP4, codec_options={"bf": "2"}, muxer_shift_s=0.4,
          container_options={"use_editlist": "0"}, reports=("HandBrake/HandBrake#7994",))
_register("offset", "editlist-hides-gop-head-mp4", container=MP4, hidden_head_s=1.0, codec_options={"g": "50"},
          reports=("xbmc/xbmc#3645", "Vanilagy/mediabunny#315"))

# variable frame rate: a screen recording, a frame only when something changes
SCREEN_TIMES = (0.0, 0.1, 0.2, 3.0, 3.05, 5.9)
SCREEN_SCENES = tuple(Scene(t, MESSAGES[i], BACKGROUNDS[i]) for i, t in enumerate(SCREEN_TIMES))
_register("vfr", "screen-recording-vfr-mp4", container=MP4, scenes=SCREEN_SCENES, frame_times=SCREEN_TIMES,
          last_frame_s=0.1, reports=("opencv/opencv#12112", "Breakthrough/PySceneDetect#168", "dmlc/decord#52"))
_register("vfr", "screen-recording-vfr-webm", container=WEBM, scenes=SCREEN_SCENES, frame_times=SCREEN_TIMES,
          last_frame_s=0.1, recorded=True, reports=("dmlc/decord#26",), **VP8)
_register("vfr", "screen-recording-vfr-mkv", container=MKV, scenes=SCREEN_SCENES, frame_times=SCREEN_TIMES,
          last_frame_s=0.1, audio=AudioTrack("libopus", 48000, 6.0), audio_codec="opus")

# a still picture over long audio
_register("audiogram", "audiogram-mp4", container=MP4, scene_count=1, frame_times=(0.0,), last_frame_s=0.04,
          audio=AudioTrack("aac", 16000, 29.5), audio_codec="aac", reports=("the shared case still-image-video", "dmlc/decord#343"))
_register("audiogram", "audiogram-webm", container=WEBM, scene_count=1, frame_times=(0.0,), last_frame_s=0.04,
          audio=AudioTrack("libopus", 48000, 29.5), audio_codec="opus", reports=("castlabs/dashas#34",), **VP8)

# tiny files that play for 3 h 10 min
LONG_S = 11400.0
LONG_SCENES = (Scene(0.0, MESSAGES[0], BACKGROUNDS[0]), Scene(LONG_S, MESSAGES[1], BACKGROUNDS[1]))
_register("too-long", "two-frames-3h10-mp4", container=MP4, scenes=LONG_SCENES, frame_times=(0.0, LONG_S), last_frame_s=0.04)
_register("too-long", "two-frames-3h10-recorded-webm", container=WEBM, scenes=LONG_SCENES, frame_times=(0.0, LONG_S),
          last_frame_s=0.04, recorded=True, **VP8)
_register("too-long", "audio-clock-jump-3h10-mp4", container=MP4, scene_count=1, frame_times=(0.0,), last_frame_s=0.04,
          audio=AudioTrack("aac", 16000, 2.0, jump_to_s=LONG_S - 1.0), audio_codec="aac",
          reports=("raspberrypi/picamera2#1274",))


def make_video(directory: Path, name: str) -> VideoMember:
    directory.mkdir(parents=True, exist_ok=True)
    return VIDEO_MEMBERS[name][1](directory)


def names(kind: str) -> list[str]:
    return [name for name, (k, _) in VIDEO_MEMBERS.items() if k == kind]


# --------------------------------------------------------------------------- not media


@dataclass(frozen=True)
class BrokenMember:
    name: str
    path: Path
    cause: str  # the MediaDecodeError cause expected
    reports: tuple[str, ...] = ()


def make_broken(directory: Path) -> dict[str, BrokenMember]:
    """Files a media URL can hand back that are not a playable picture or sound."""
    import av

    directory.mkdir(parents=True, exist_ok=True)
    out: dict[str, BrokenMember] = {}

    full = make_member(directory, "whole-for-truncation", "not-media", "mp4", "mp4")
    data = full.path.read_bytes()
    moov = data.find(b"moov")
    assert moov > len(data) // 2, "the muxer writes moov at the end unless asked otherwise"
    cut = directory / "truncated-no-moov.mp4"
    cut.write_bytes(data[: moov - 8 - 200])
    out["truncated-no-moov-mp4"] = BrokenMember("truncated-no-moov-mp4", cut, "corrupt_media")

    html = directory / "cdn-error-page.mp4"
    html.write_bytes(b"<!DOCTYPE html><html><head><title>403 Forbidden</title></head><body><h1>Forbidden</h1></body></html>\n" * 4)
    out["html-error-page-as-mp4"] = BrokenMember("html-error-page-as-mp4", html, "corrupt_media")

    empty = directory / "empty.mp4"
    empty.write_bytes(b"")
    out["empty-file"] = BrokenMember("empty-file", empty, "corrupt_media")

    noise = directory / "noise.webm"
    noise.write_bytes(np.random.default_rng(3).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    out["random-bytes"] = BrokenMember("random-bytes", noise, "corrupt_media")

    subs = directory / "captions-only.mkv"
    with av.open(str(subs), "w") as container:
        stream = container.add_mux_stream("subrip")
        for i, text in enumerate((b"SUMMER SALE", b"BUY NOW")):
            packet = av.Packet(text)
            packet.stream = stream
            packet.pts = packet.dts = i * 1000
            packet.duration = 900
            packet.time_base = Fraction(1, 1000)
            container.mux(packet)
    out["subtitle-only-mkv"] = BrokenMember("subtitle-only-mkv", subs, "no_media_stream")

    srt = directory / "captions.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:02,000\nSUMMER SALE\n\n2\n00:00:02,000 --> 00:00:04,000\nBUY NOW\n\n")
    out["srt-file"] = BrokenMember("srt-file", srt, "no_media_stream")

    ts = directory / "data-only.ts"
    with av.open(str(ts), "w") as container:
        stream = container.add_data_stream()
        for i in range(3):
            packet = av.Packet(b"\x00\x01\x02\x03" * 16)
            packet.stream = stream
            packet.pts = packet.dts = i * 90000
            packet.time_base = Fraction(1, 90000)
            container.mux(packet)
    out["data-only-ts"] = BrokenMember("data-only-ts", ts, "no_media_stream")
    return out
