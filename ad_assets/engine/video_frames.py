"""Slicing a video: evenly spread frames, near-duplicate removal, the audio track.

Frames are taken at ``t_i = i * duration / (n - 1)`` for ``i = 0 … n-1`` by
seeking to the key frame before ``t_i`` and decoding forward, so a long video
costs ``n`` short decodes, not a full decode. Only local files are opened.
"""

from __future__ import annotations

import io
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_FRAME_COUNT = 45
DEFAULT_MAX_SIDE = 1024
JPEG_QUALITY = 88
_OPEN_OPTIONS = {"protocol_whitelist": "file"}


class VideoDecodeError(Exception):
    """The video or its audio could not be decoded; ``cause`` is a short code."""

    def __init__(self, cause: str, detail: str) -> None:
        super().__init__(detail)
        self.cause = cause
        self.detail = detail


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
    img = frame.to_image()
    if max_side and max(img.size) > max_side:
        img.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue(), img.width, img.height


def sample_frames(
    path: Path, n: int = DEFAULT_FRAME_COUNT, *, duration_s: float | None = None, max_side: int | None = DEFAULT_MAX_SIDE
) -> list[SampledFrame]:
    """Decode ``n`` frames spread evenly over the video (JPEG-encoded, longest side ≤ ``max_side``)."""
    import av

    try:
        with av.open(str(path), options=_OPEN_OPTIONS) as container:
            stream = next((s for s in container.streams if s.type == "video"), None)
            if stream is None:
                raise VideoDecodeError("no_video_stream", f"{path.name} has no video stream")
            if duration_s is None:
                if stream.duration is not None and stream.time_base is not None:
                    duration_s = float(stream.duration * stream.time_base)
                elif container.duration is not None:
                    duration_s = container.duration / 1_000_000
            if not duration_s or duration_s <= 0:
                raise VideoDecodeError("corrupt_media", f"{path.name} has no measurable duration")
            stream.thread_type = "AUTO"
            frames: list[SampledFrame] = []
            last = None
            for index, t in enumerate(frame_times(duration_s, n)):
                chosen = _frame_at(container, stream, t) or last
                if chosen is None:
                    continue
                last = chosen
                jpeg, width, height = _encode_jpeg(chosen, max_side)
                pts_s = float(chosen.time) if chosen.time is not None else t
                frames.append(SampledFrame(index, t, round(pts_s, 4), jpeg, width, height))
    except VideoDecodeError:
        raise
    except Exception as exc:  # PyAV raises av.error.* and ValueError for broken input
        raise VideoDecodeError("corrupt_media", f"{path.name} does not decode: {exc}") from exc
    if not frames:
        raise VideoDecodeError("corrupt_media", f"{path.name} yielded no frame")
    return frames


def _frame_at(container, stream, t: float):
    """The first frame shown at or after ``t`` (or the last frame before the end)."""
    target = int(t / stream.time_base) if stream.time_base else 0
    container.seek(max(target, 0), stream=stream, backward=True, any_frame=False)
    previous = None
    for frame in container.decode(stream):
        if frame.pts is None or frame.pts >= target:
            return frame
        previous = frame
    return previous


def select_distinct(vectors: list[np.ndarray], threshold: float) -> list[int]:
    """Indices of frames to keep: the first, then each whose cosine similarity to the last kept one is below ``threshold``."""
    kept: list[int] = []
    last: np.ndarray | None = None
    for i, vector in enumerate(vectors):
        v = np.asarray(vector, dtype=np.float32)
        norm = float(np.linalg.norm(v))
        v = v / norm if norm > 0 else v
        if last is None or float(np.dot(v, last)) < threshold:
            kept.append(i)
            last = v
    return kept


def extract_audio_wav(path: Path, *, rate: int = 16000, max_seconds: float | None = None) -> bytes | None:
    """The audio track as 16-bit mono WAV bytes at ``rate`` Hz, or ``None`` when there is no audio."""
    import av

    try:
        with av.open(str(path), options=_OPEN_OPTIONS) as container:
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
