"""Videos and audio files read as a player shows them (PyAV, FFmpeg inside the wheel).

What a player does and a naive decode does not:

- **display matrix**: phones store the picture as the sensor saw it and add a
  matrix saying how to turn it; FFmpeg's command line applies it (autorotate)
  with ``transpose``/``hflip``/``vflip``. ``display_transform`` follows that
  code (``fftools/ffmpeg_filter.c``, ``get_rotation`` in ``fftools/cmdutils.c``)
  so frames come out as ``ffmpeg -i in.mp4 out.png`` shows them;
- **sample aspect ratio**: anamorphic video (720×576 at 64:45 is 16:9) is
  widened to its display aspect, as players do;
- **real duration**: the container's when its header has one, else from the
  streams, else from the last packet's timestamp (recorders writing WebM to a
  pipe leave no duration), found by reading packets, never by decoding;
- **clock**: times are measured from the start of the picture (files cut or
  remuxed often start their timestamps at +5 s), and each frame carries the
  presentation time of the frame actually decoded, not the time asked for;
- **audio-only files** (radio spots) are told apart from videos; cover art (an
  attached picture) does not make a file a video.

Only local files are opened: a crafted playlist must not make FFmpeg fetch URLs.
"""

from __future__ import annotations

import bisect
import math
import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from ai_methods.media.errors import CORRUPT_MEDIA, NO_MEDIA_STREAM, TOO_LONG, MediaDecodeError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

# Only the local file protocol: a crafted playlist must not make FFmpeg fetch URLs.
AV_OPEN_OPTIONS = {"protocol_whitelist": "file"}
AV_TIME_BASE = 1_000_000  # FFmpeg's container clock: microseconds


@dataclass(frozen=True)
class DisplayTransform:
    """How a stored picture is turned for display: ``rotation`` degrees clockwise, then mirrored.

    A half turn is ``rotation=180`` without flips (FFmpeg does it as ``hflip`` + ``vflip``); a
    mirror alone is ``rotation=0`` with one flip; a mirrored quarter turn keeps its flip in
    ``transpose`` (``clock_flip``/``cclock_flip``) and reports it as ``vflip``.

    ``transpose`` is FFmpeg's ``transpose`` filter direction when the turn is a
    quarter (``clock``, ``cclock``, ``clock_flip``, ``cclock_flip``), else ``None``.
    """

    rotation: int = 0
    hflip: bool = False
    vflip: bool = False
    transpose: str | None = None

    @property
    def swaps_sides(self) -> bool:
        return self.transpose is not None

    def apply(self, image: "Image.Image") -> "Image.Image":
        """``image`` turned and mirrored as FFmpeg's autorotate does."""
        from PIL import Image

        if self.transpose is not None:  # one operation; a mirror is part of it (``*_flip``)
            return image.transpose(_TRANSPOSE_TO_PIL[self.transpose](Image.Transpose))
        if self.rotation == 180:
            image = image.transpose(Image.Transpose.ROTATE_180)
        elif self.rotation:  # not a quarter turn: rare, FFmpeg's ``rotate`` filter
            image = image.rotate(-self.rotation, expand=True, fillcolor=(0, 0, 0))
        if self.hflip:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if self.vflip:
            image = image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
        return image


# FFmpeg's transpose directions as Pillow operations: "clock" turns 90° clockwise (Pillow's
# ROTATE_* turn counter-clockwise); "cclock_flip" is the plain transpose (x, y) -> (y, x) and
# "clock_flip" the anti-transpose (libavfilter/vf_transpose.c).
_TRANSPOSE_TO_PIL = {
    "clock": lambda T: T.ROTATE_270,
    "cclock": lambda T: T.ROTATE_90,
    "cclock_flip": lambda T: T.TRANSPOSE,
    "clock_flip": lambda T: T.TRANSVERSE,
}


def display_transform(matrix: tuple[int, ...] | None) -> DisplayTransform:
    """The transform FFmpeg's autorotate applies for a 3×3 display matrix (16.16 fixed point, row major).

    Follows ``fftools/ffmpeg_filter.c`` (``configure_input_video_filter``) and
    ``get_rotation`` in ``fftools/cmdutils.c``: ``theta = -round(av_display_rotation_get(m))``
    normalised to [0, 360); near 90 → ``transpose=clock`` (``cclock_flip`` when m[3] > 0), near 180 →
    ``hflip`` if m[0] < 0 and ``vflip`` if m[4] < 0, near 270 → ``transpose=cclock``
    (``clock_flip`` when m[3] < 0), near 0 → ``vflip`` if m[4] < 0.
    """
    if not matrix or len(matrix) != 9:
        return DisplayTransform()
    m = [v / 65536.0 for v in matrix[:8]]
    scale0, scale1 = math.hypot(m[0], m[3]), math.hypot(m[1], m[4])
    if scale0 == 0.0 or scale1 == 0.0:
        return DisplayTransform()  # a degenerate matrix: av_display_rotation_get gives NaN, FFmpeg ignores it
    rotation_ccw = -math.degrees(math.atan2(m[1] / scale1, m[0] / scale0))
    theta = -round(rotation_ccw)
    theta -= 360 * math.floor(theta / 360 + 0.9 / 360)
    raw = matrix
    # The fields say what the picture undergoes (turn clockwise, then mirror); FFmpeg's filters are
    # the same transform: ``cclock_flip`` is a quarter turn counter-clockwise then a vertical flip,
    # ``clock_flip`` a quarter turn clockwise then a vertical flip, ``hflip``+``vflip`` a half turn.
    if abs(theta - 90) < 1.0:
        if raw[3] > 0:
            return DisplayTransform(270, vflip=True, transpose="cclock_flip")
        return DisplayTransform(90, transpose="clock")
    if abs(theta - 180) < 1.0:
        hflip, vflip = raw[0] < 0, raw[4] < 0
        if hflip and vflip:
            return DisplayTransform(180)
        return DisplayTransform(0, hflip=hflip, vflip=vflip)  # a mirror (negative determinant)
    if abs(theta - 270) < 1.0:
        if raw[3] < 0:
            return DisplayTransform(90, vflip=True, transpose="clock_flip")
        return DisplayTransform(270, transpose="cclock")
    if abs(theta) > 1.0:
        return DisplayTransform(int(round(theta)) % 360)
    return DisplayTransform(0, vflip=raw[4] < 0)


def _frame_display_matrix(frame) -> tuple[int, ...] | None:
    from av.sidedata.sidedata import Type

    data = frame.side_data.get(Type.DISPLAYMATRIX)
    if data is None:
        return None
    raw = bytes(data)
    return struct.unpack("=9i", raw[:36]) if len(raw) >= 36 else None


@dataclass(frozen=True)
class MediaLayout:
    """What a player shows of a file with a picture or a sound track.

    Sizes are in pixels, times in seconds. ``width``/``height`` are as
    displayed: the sample aspect ratio widens the coded width, then the
    display transform turns it (``None`` for audio). ``duration_s`` is the
    real duration and ``duration_source`` says where it came from
    (``container``, ``streams`` or ``packets``). ``start_s`` is where the
    picture (or, for audio, the sound) starts on the file's clock, and
    ``clock_start_s`` where the file's clock starts.
    """

    media_type: str  # "video" | "audio"
    width: int | None
    height: int | None
    coded_width: int | None
    coded_height: int | None
    rotation: int
    hflip: bool
    vflip: bool
    sample_aspect_ratio: str | None
    duration_s: float | None
    duration_source: str
    start_s: float
    has_audio: bool
    video_codec: str | None
    audio_codec: str | None
    frame_rate: float | None
    clock_start_s: float = 0.0

    @property
    def picture_duration_s(self) -> float | None:
        """Seconds from the start of the picture (or sound) to the end of the file."""
        if self.duration_s is None:
            return None
        return max(0.0, self.duration_s - (self.start_s - self.clock_start_s))


@dataclass(frozen=True)
class DecodedFrame:
    """One frame as displayed: ``t_s`` is its presentation time from the start of the picture."""

    index: int
    t_s: float
    image: "Image.Image"


def picture_stream(container):
    """The moving-picture stream, or ``None``: cover art (an attached picture) is not a video."""
    import av

    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return None


def sample_aspect_ratio(stream) -> Fraction | None:
    """The stream's sample aspect ratio when it is not square (``av_guess_sample_aspect_ratio``: container first)."""
    for candidate in (stream.sample_aspect_ratio, stream.codec_context.sample_aspect_ratio):
        if candidate is not None and candidate.numerator > 0 and candidate.denominator > 0:
            return None if candidate == 1 else Fraction(candidate)
    return None


def _stream_span(stream) -> tuple[float, float] | None:
    """(start, end) of a stream in seconds from its header, when both are known."""
    if stream.duration is None or stream.time_base is None or stream.duration <= 0:
        return None
    start = stream.start_time or 0
    return float(start * stream.time_base), float((start + stream.duration) * stream.time_base)


def real_duration(container) -> tuple[float | None, str]:
    """The file's duration in seconds and where it came from, without decoding.

    The container's header first (it spans every stream: a still picture over a
    long sound track lasts as long as the sound), then the streams' headers, then
    the last packet's end found by reading packets (no decoding).
    """
    if container.duration is not None and container.duration > 0:
        duration = container.duration / AV_TIME_BASE
        start = container.start_time / AV_TIME_BASE if container.start_time is not None else 0.0
        if "matroska" in container.format.name and start > 0:
            duration -= start  # a Matroska Segment Duration counts from the segment's 0, not from the first block
        if container.format.name in _DURATION_GUESSED_FROM_BIT_RATE:
            first, last = _packet_extent(container)
            if first is not None and last is not None and last > first:
                return last - first, "packets"
        tail = _tail_end(container)
        if tail is not None and tail - start > duration + 0.05:
            # The header undercounts: FFmpeg sums an MP4's decode-time deltas, which fall short of
            # the last presentation time in a variable-frame-rate file with B-frames.
            return tail - start, "packets"
        return duration, "container"
    spans = [span for s in container.streams if s.type in ("video", "audio") and (span := _stream_span(s))]
    if spans:
        return max(end for _, end in spans) - min(start for start, _ in spans), "streams"
    first, last = _packet_extent(container)
    if first is not None and last is not None and last > first:
        return last - first, "packets"
    return None, "none"


# Raw MP3/ADTS streams: without a Xing/VBRI header FFmpeg guesses the duration from the first
# frames' bit rate ("Estimating duration from bitrate"), which is wrong for variable bit rate.
_DURATION_GUESSED_FROM_BIT_RATE = {"mp3", "aac"}


def _tail_end(container) -> float | None:
    """The latest packet end after the last key frame (seek to the end, read packets, no decoding)."""
    streams = [s for s in container.streams if s.type in ("video", "audio")]
    if not streams:
        return None
    last = None
    try:
        container.seek(2**62, backward=True, any_frame=False, stream=streams[0])
        for packet in container.demux(*streams):
            if packet.pts is None or packet.time_base is None:
                continue
            end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
            last = end if last is None else max(last, end)
    except Exception:  # cannot seek or a damaged tail: the header stands
        last = None
    try:
        container.seek(0)
    except Exception:
        pass
    return last


def _packet_extent(container) -> tuple[float | None, float | None]:
    """(earliest start, latest end) over all packets of the picture and sound streams, in seconds."""
    streams = [s for s in container.streams if s.type in ("video", "audio")]
    first = last = None
    try:
        for packet in container.demux(*streams):
            if packet.pts is None or packet.time_base is None:
                continue
            start = float(packet.pts * packet.time_base)
            end = start + float((packet.duration or 0) * packet.time_base)
            first = start if first is None else min(first, start)
            last = end if last is None else max(last, end)
    except Exception:  # a damaged tail: what was read still bounds the duration
        pass
    try:
        container.seek(0)
    except Exception:
        pass
    return first, last


def _start_s(container, stream) -> float:
    if stream is not None and stream.start_time is not None and stream.time_base is not None:
        return float(stream.start_time * stream.time_base)
    if container.start_time is not None:
        return container.start_time / AV_TIME_BASE
    return 0.0


def probe_layout(path: Path, *, max_duration_s: float | None = None) -> MediaLayout:
    """Measure a video or audio file as a player shows it.

    The duration limit is decided from the header or the packets before any
    picture is decoded; then the first frame is decoded, which proves the file
    is playable and yields the display matrix. Raises ``MediaDecodeError``
    (``corrupt_media``, ``no_media_stream``, ``too_long``) whose detail is a
    predicate ("does not decode: …") the caller puts its own subject before.
    """
    import av

    try:
        with av.open(str(path), options=AV_OPEN_OPTIONS) as container:
            video = picture_stream(container)
            audio = container.streams.audio[0] if container.streams.audio else None
            if video is None and audio is None:
                raise MediaDecodeError(NO_MEDIA_STREAM, "has neither a picture nor a sound stream")
            duration_s, source = real_duration(container)
            if duration_s is None or duration_s <= 0:
                raise MediaDecodeError(CORRUPT_MEDIA, "has no measurable duration")
            if max_duration_s is not None and duration_s > max_duration_s:
                raise MediaDecodeError(
                    TOO_LONG, f"plays for {duration_s:.0f} s, above the {max_duration_s:.0f} s limit (duration from the {source})"
                )
            clock_start = container.start_time / AV_TIME_BASE if container.start_time is not None else 0.0
            if video is None:
                return MediaLayout(
                    media_type="audio", width=None, height=None, coded_width=None, coded_height=None,
                    rotation=0, hflip=False, vflip=False, sample_aspect_ratio=None,
                    duration_s=round(duration_s, 3), duration_source=source, start_s=_start_s(container, audio),
                    has_audio=True, video_codec=None, audio_codec=_codec_name(audio), frame_rate=None,
                    clock_start_s=clock_start,
                )  # fmt: skip
            first = next(container.decode(video), None)
            if first is None:
                raise MediaDecodeError(CORRUPT_MEDIA, "yields no frame from its picture stream")
            transform = display_transform(_frame_display_matrix(first))
            coded_w, coded_h = first.width, first.height
            sar = sample_aspect_ratio(video)
            width, height = _display_size(coded_w, coded_h, sar, transform)
            rate = video.average_rate or video.guessed_rate
            return MediaLayout(
                media_type="video", width=width, height=height, coded_width=coded_w, coded_height=coded_h,
                rotation=transform.rotation, hflip=transform.hflip, vflip=transform.vflip,
                sample_aspect_ratio=f"{sar.numerator}:{sar.denominator}" if sar else None,
                duration_s=round(duration_s, 3), duration_source=source, start_s=_start_s(container, video),
                has_audio=audio is not None, video_codec=_codec_name(video),
                audio_codec=_codec_name(audio) if audio is not None else None,
                frame_rate=round(float(rate), 3) if rate else None, clock_start_s=clock_start,
            )  # fmt: skip
    except MediaDecodeError:
        raise
    except Exception as exc:  # PyAV raises av.error.* subclasses, ValueError, and more for broken input
        raise MediaDecodeError(CORRUPT_MEDIA, f"does not decode: {exc}") from exc


def _codec_name(stream) -> str:
    """The codec's name as ffprobe gives it (``mp3``), not the decoder FFmpeg picked (``mp3float``)."""
    codec = stream.codec_context.codec
    return getattr(codec, "canonical_name", None) or stream.codec_context.name


def _display_size(width: int, height: int, sar: Fraction | None, transform: DisplayTransform) -> tuple[int, int]:
    if sar is not None:
        width = max(1, round(width * sar))
    if transform.swaps_sides:
        return height, width
    return width, height


def _scaled(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    if max_side and max(width, height) > max_side:
        scale = max_side / max(width, height)
        return max(1, round(width * scale)), max(1, round(height * scale))
    return width, height


def iter_video_frames(
    path: Path, times: list[float], *, max_side: int | None = None, layout: MediaLayout | None = None
) -> Iterator[DecodedFrame]:
    """The frame shown at each of ``times`` (seconds from the start of the picture, ascending).

    Each is the last frame whose presentation time is at or before the time
    asked (the first frame when the time precedes it), as displayed (aspect
    and display matrix applied, longest side ≤ ``max_side``), stamped with its
    own presentation time. A frame shown at several times is yielded once.
    Raises ``MediaDecodeError`` (possibly after some frames).
    """
    import av

    try:
        with av.open(str(path), options=AV_OPEN_OPTIONS) as container:
            stream = picture_stream(container)
            if stream is None:
                raise MediaDecodeError(NO_MEDIA_STREAM, "has no picture stream")
            start_s = layout.start_s if layout is not None else _start_s(container, stream)
            sar = sample_aspect_ratio(stream)
            reader = _FrameReader(container, stream)
            stream.thread_type = "AUTO"
            transform: DisplayTransform | None = None
            last_pts = None
            index = 0
            for t in times:
                frame = reader.frame_at(start_s + t)
                if frame is None:
                    continue
                pts_s = float(frame.time) if frame.time is not None else start_s + t
                if last_pts is not None and pts_s == last_pts:
                    continue  # the same frame is still shown
                last_pts = pts_s
                if transform is None:
                    transform = display_transform(_frame_display_matrix(frame))
                width, height = _display_size(frame.width, frame.height, sar, DisplayTransform())
                width, height = _scaled(width, height, max_side)
                image = frame.to_image(width=width, height=height, interpolation="AREA")
                yield DecodedFrame(index, round(max(0.0, pts_s - start_s), 4), transform.apply(image))
                index += 1
    except MediaDecodeError:
        raise
    except Exception as exc:  # PyAV raises av.error.* and ValueError for broken input
        raise MediaDecodeError(CORRUPT_MEDIA, f"does not decode: {exc}") from exc


class _FrameReader:
    """Finds the frame shown at a time, decoding forward instead of seeking when that is cheaper.

    Seeking lands on the key frame before the target and decodes from there, so
    with targets 1 s apart and key frames 10 s apart every seek re-decodes up to
    10 s of video. When no key frame lies between the frame last decoded and the
    next target, carrying on decoding costs less and gives the same frame.
    """

    def __init__(self, container, stream) -> None:
        self.container, self.stream = container, stream
        self.time_base = stream.time_base
        self.keyframes = _keyframe_pts(container, stream)
        self._decoded = None  # the decoder's frame iterator since the last seek
        self._shown = None  # the last frame decoded at or before the last target
        self._ahead = None  # a frame decoded past the last target, not yet shown

    def frame_at(self, t_s: float):
        """The frame shown at ``t_s`` on the file's clock (the first frame if ``t_s`` precedes it)."""
        target = int(math.floor(t_s / self.time_base + 1e-6)) if self.time_base else 0
        if not self._can_continue(target):
            self._seek(target)
            first = self._next()
            overshot = first is None or (first.pts is not None and first.pts > target)
            if overshot and self._before(target):
                # The seek overshot, even to the end (a file without an index, e.g. MPEG-TS, seeks by
                # guessing from timestamps and byte positions): decode from the start.
                self._seek(None)
                first = self._next()
            self._ahead = first
        while True:
            frame = self._next()
            if frame is None:
                return self._shown  # the end: the last frame stays on screen
            if frame.pts is None or frame.pts <= target:
                self._shown = frame
                continue
            if self._shown is None:  # the time precedes the first frame: the first is shown
                self._shown = frame
            else:
                self._ahead = frame
            return self._shown

    def _next(self):
        if self._ahead is not None:
            frame, self._ahead = self._ahead, None
            return frame
        return next(self._decoded, None)

    def _before(self, target: int) -> bool:
        """Whether the stream has a key frame at or before ``target``."""
        return bool(self.keyframes) and self.keyframes[0] <= target

    def _can_continue(self, target: int) -> bool:
        """Whether decoding on from the current position reaches ``target`` without skipping a key frame."""
        if self._decoded is None or self._shown is None or self._shown.pts is None:
            return False
        if self._shown.pts > target:
            return False  # a step back in time: seek
        key = _last_at_or_before(self.keyframes, target)
        return key is None or key <= self._shown.pts

    def _seek(self, target: int | None) -> None:
        """Seek to the key frame at or before ``target`` (``None``: the start)."""
        try:
            self.container.seek(max(target or 0, 0), stream=self.stream, backward=True, any_frame=False)
        except Exception:  # no index: decode from the start instead
            self.container.seek(0, stream=self.stream, backward=True, any_frame=False)
        self._decoded = self.container.decode(self.stream)
        self._shown = self._ahead = None


def _keyframe_pts(container, stream) -> list[int]:
    """Sorted presentation times of the stream's key frames, read from the packets without decoding."""
    try:
        found = sorted(p.pts for p in container.demux(stream) if p.is_keyframe and p.pts is not None)
    except Exception:  # a damaged tail: decoding still works, only seeking is less clever
        found = []
    container.seek(0, stream=stream, backward=True, any_frame=False)
    return found


def _last_at_or_before(values: list[int], target: int) -> int | None:
    i = bisect.bisect_right(values, target)
    return values[i - 1] if i else None
