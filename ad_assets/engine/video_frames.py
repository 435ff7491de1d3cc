"""Slicing a video: evenly spread frames, near-duplicate removal, the audio track.

Frames are taken at ``t_i = i * duration / (n - 1)`` for ``i = 0 … n-1`` by
seeking to the key frame before ``t_i`` and decoding forward, so a long video
costs ``n`` short decodes, not a full decode; when the next ``t_i`` lies after
the frame last decoded with no key frame in between, decoding simply carries
on. Only local files are opened.
"""

from __future__ import annotations

import bisect
import io
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ad_assets.engine.media_errors import MediaError
from ad_assets.engine.media_probe import AV_OPEN_OPTIONS, container_duration

DEFAULT_FRAME_COUNT = 45
DEFAULT_MAX_SIDE = 1024
JPEG_QUALITY = 88


class VideoDecodeError(MediaError):
    """The video or its audio could not be decoded; ``cause`` is a short code."""


@dataclass(frozen=True)
class SampledFrame:
    """One sampled frame: its position in the sampling, the time asked for and the time shown."""

    index: int
    t_s: float
    pts_s: float
    jpeg: bytes
    width: int
    height: int


def frame_times(duration_s: float, n: int) -> list[float]:
    """``n`` times spread evenly from 0 to ``duration_s`` inclusive."""
    if n <= 0 or duration_s <= 0:
        return []
    if n == 1:
        return [0.0]
    return [round(i * duration_s / (n - 1), 4) for i in range(n)]


def _encode_jpeg(frame, max_side: int | None) -> tuple[bytes, int, int]:
    # Downscale in swscale while converting to RGB: one pass, several times
    # cheaper than converting at full size and resizing with Pillow.
    width, height = frame.width, frame.height
    if max_side and max(width, height) > max_side:
        scale = max_side / max(width, height)
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
        img = frame.to_image(width=width, height=height, interpolation="AREA")
    else:
        img = frame.to_image()
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue(), img.width, img.height


def sample_frames(
    path: Path, n: int = DEFAULT_FRAME_COUNT, *, duration_s: float | None = None, max_side: int | None = DEFAULT_MAX_SIDE
) -> list[SampledFrame]:
    """Decode ``n`` frames spread evenly over the video (JPEG-encoded, longest side ≤ ``max_side``)."""
    return list(iter_frames(path, n, duration_s=duration_s, max_side=max_side))


def iter_frames(
    path: Path, n: int = DEFAULT_FRAME_COUNT, *, duration_s: float | None = None, max_side: int | None = DEFAULT_MAX_SIDE
) -> Iterator[SampledFrame]:
    """``sample_frames`` one frame at a time, each yielded as soon as it is encoded.

    A caller can start working on the first frames while later ones decode.
    Raises ``VideoDecodeError`` (possibly after some frames) when the video
    does not decode or yields no frame.
    """
    import av

    yielded = 0
    try:
        with av.open(str(path), options=AV_OPEN_OPTIONS) as container:
            stream = next((s for s in container.streams if s.type == "video"), None)
            if stream is None:
                raise VideoDecodeError("no_video_stream", f"{path.name} has no video stream")
            if duration_s is None:
                duration_s = container_duration(container, stream)
            if not duration_s or duration_s <= 0:
                raise VideoDecodeError("corrupt_media", f"{path.name} has no measurable duration")
            reader = _FrameReader(container, stream)
            stream.thread_type = "AUTO"
            last = None
            for index, t in enumerate(frame_times(duration_s, n)):
                chosen = reader.frame_at(t) or last
                if chosen is None:
                    continue
                last = chosen
                jpeg, width, height = _encode_jpeg(chosen, max_side)
                pts_s = float(chosen.time) if chosen.time is not None else t
                yield SampledFrame(index, t, round(pts_s, 4), jpeg, width, height)
                yielded += 1
    except VideoDecodeError:
        raise
    except Exception as exc:  # PyAV raises av.error.* and ValueError for broken input
        raise VideoDecodeError("corrupt_media", f"{path.name} does not decode: {exc}") from exc
    if not yielded:
        raise VideoDecodeError("corrupt_media", f"{path.name} yielded no frame")


class _FrameReader:
    """Finds the frame shown at a time, decoding forward instead of seeking when that is cheaper.

    Seeking lands on the key frame before the target and decodes from there, so
    with targets 1 s apart and key frames 10 s apart every seek re-decodes up to
    10 s of video. When the key frame before the next target is not after the
    frame last decoded, carrying on decoding costs less and gives the same frame.
    """

    def __init__(self, container, stream) -> None:
        self.container, self.stream = container, stream
        self.keyframes = _keyframe_pts(container, stream)
        self._decoded = None  # the decoder's frame iterator since the last seek
        self._current = None  # the frame it returned last

    def frame_at(self, t: float):
        """The first frame shown at or after ``t`` (or the last frame before the end)."""
        target = int(t / self.stream.time_base) if self.stream.time_base else 0
        current = self._current
        if current is not None and current.pts is not None and self._decoded is not None:
            if current.pts >= target:
                return current  # the frame already decoded is the first at or after ``t``
            key = _last_at_or_before(self.keyframes, target)
            if key is None or key > current.pts:
                self._seek(target)
        else:
            self._seek(target)
        previous = self._current
        for frame in self._decoded:
            self._current = frame
            if frame.pts is None or frame.pts >= target:
                return frame
            previous = frame
        return previous

    def _seek(self, target: int) -> None:
        self.container.seek(max(target, 0), stream=self.stream, backward=True, any_frame=False)
        self._decoded = self.container.decode(self.stream)
        self._current = None


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


class DistinctFrames:
    """The near-duplicate rule applied one frame at a time, in frame order.

    ``keep(vector)`` says whether a frame is kept: the first always, then each
    whose cosine similarity to the last kept frame is below ``threshold``.
    """

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._last: np.ndarray | None = None

    def keep(self, vector) -> bool:
        v = np.asarray(vector, dtype=np.float32)
        norm = float(np.linalg.norm(v))
        v = v / norm if norm > 0 else v
        if self._last is None or float(np.dot(v, self._last)) < self.threshold:
            self._last = v
            return True
        return False


def select_distinct(vectors: list[np.ndarray], threshold: float) -> list[int]:
    """Indices of frames to keep: the first, then each whose cosine similarity to the last kept one is below ``threshold``."""
    rule = DistinctFrames(threshold)
    return [i for i, vector in enumerate(vectors) if rule.keep(vector)]


def extract_audio_wav(path: Path, *, rate: int = 16000, max_seconds: float | None = None) -> bytes | None:
    """The audio track as 16-bit mono WAV bytes at ``rate`` Hz, or ``None`` when there is no audio."""
    import av

    try:
        with av.open(str(path), options=AV_OPEN_OPTIONS) as container:
            stream = next((s for s in container.streams if s.type == "audio"), None)
            if stream is None:
                return None
            resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
            chunks: list[np.ndarray] = []
            total = 0
            limit = int(max_seconds * rate) if max_seconds else None
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    pcm = out.to_ndarray().reshape(-1)
                    chunks.append(pcm)
                    total += len(pcm)
                if limit is not None and total >= limit:
                    break
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except Exception as exc:
        raise VideoDecodeError("corrupt_audio", f"{path.name}: audio does not decode: {exc}") from exc
    pcm = np.concatenate(chunks).astype("<i2") if chunks else np.zeros(0, dtype="<i2")
    if limit is not None:
        pcm = pcm[:limit]
    buf = io.BytesIO()
    with wave.open(buf, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm.tobytes())
    return buf.getvalue()
