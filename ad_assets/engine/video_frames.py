"""Slicing a video or an animated image: evenly spread frames, near-duplicate removal, the audio track.

Frames are asked for at ``t_i = i * duration / (n - 1)`` for ``i = 0 … n-1``,
measured from the start of the picture, and each is the frame a player shows
at that time, stamped with its own presentation time (the decoding layer,
``ai_methods.media``, applies the display matrix, the sample aspect ratio and
the real duration). A frame shown at several of those times is taken once.
Only local files are opened.
"""

from __future__ import annotations

import io
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from ad_assets.engine.media_errors import MediaError
from ai_methods.media.errors import MediaDecodeError
from ai_methods.media.video import AV_OPEN_OPTIONS

DEFAULT_FRAME_COUNT = 45
DEFAULT_MAX_SIDE = 1024
JPEG_QUALITY = 88


class VideoDecodeError(MediaError):
    """The video or its audio could not be decoded; ``cause`` is a short code."""


@dataclass(frozen=True)
class SampledFrame:
    """One sampled frame as displayed.

    ``index`` is its position among the frames taken, ``t_s`` its presentation
    time in seconds from the start of the picture, ``pts_s`` the same instant on
    the file's own clock (files cut or remuxed may start it at +5 s).
    """

    index: int
    t_s: float
    pts_s: float
    jpeg: bytes
    width: int
    height: int
    signature: np.ndarray | None = field(default=None, repr=False, compare=False)


def frame_times(duration_s: float, n: int) -> list[float]:
    """``n`` times spread evenly from 0 to ``duration_s`` inclusive."""
    if n <= 0 or duration_s <= 0:
        return []
    if n == 1:
        return [0.0]
    return [round(i * duration_s / (n - 1), 4) for i in range(n)]


def _encode_jpeg(image, max_side: int | None) -> tuple[bytes, int, int]:
    if max_side and max(image.size) > max_side:
        image = image.copy()
        image.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue(), image.width, image.height


def sample_frames(
    path: Path,
    n: int = DEFAULT_FRAME_COUNT,
    *,
    duration_s: float | None = None,
    max_side: int | None = DEFAULT_MAX_SIDE,
    animated: bool = False,
) -> list[SampledFrame]:
    """Decode up to ``n`` frames spread evenly over the video (JPEG-encoded, longest side ≤ ``max_side``)."""
    return list(iter_frames(path, n, duration_s=duration_s, max_side=max_side, animated=animated))


def iter_frames(
    path: Path,
    n: int = DEFAULT_FRAME_COUNT,
    *,
    duration_s: float | None = None,
    max_side: int | None = DEFAULT_MAX_SIDE,
    animated: bool = False,
) -> Iterator[SampledFrame]:
    """``sample_frames`` one frame at a time, each yielded as soon as it is encoded.

    ``duration_s`` is the span to sample from the start of the picture (by
    default the picture's, from the file); ``animated`` reads an animated GIF,
    WebP or APNG instead of a video. A caller can start working on the first
    frames while later ones decode. Raises ``VideoDecodeError`` (possibly after
    some frames) when the file does not decode or yields no frame.
    """
    yielded = 0
    try:
        for frame in (_animation_frames if animated else _video_frames)(path, n, duration_s, max_side):
            yield frame
            yielded += 1
    except MediaDecodeError as exc:
        # Video details are predicates ("does not decode: …"); animation details name their file.
        raise VideoDecodeError(exc.cause, exc.detail if animated else f"{path.name} {exc.detail}") from exc
    if not yielded:
        raise VideoDecodeError("corrupt_media", f"{path.name} yielded no frame")


def _video_frames(path: Path, n: int, duration_s: float | None, max_side: int | None) -> Iterator[SampledFrame]:
    from ai_methods.media.video import iter_video_frames, probe_layout

    layout = probe_layout(path)
    span = duration_s if duration_s else layout.picture_duration_s
    if not span or span <= 0:
        raise MediaDecodeError("corrupt_media", "has no measurable duration")
    for frame in iter_video_frames(path, frame_times(span, n), max_side=max_side, layout=layout):
        jpeg, width, height = _encode_jpeg(frame.image, None)
        pts_s = round(frame.t_s + layout.start_s, 4)
        yield SampledFrame(frame.index, frame.t_s, pts_s, jpeg, width, height, picture_signature(frame.image))


def _animation_frames(path: Path, n: int, duration_s: float | None, max_side: int | None) -> Iterator[SampledFrame]:
    from ai_methods.media.animation import frame_starts, frames_at

    _, total = frame_starts(path)
    span = duration_s if duration_s else total
    for frame in frames_at(path, frame_times(span, n) or [0.0], label=path.name):
        jpeg, width, height = _encode_jpeg(frame.image, max_side)
        yield SampledFrame(frame.index, frame.t_s, frame.t_s, jpeg, width, height, picture_signature(frame.image))


# A frame is also judged by its picture, because embeddings miss a change of words: a banner that swaps
# "LUNCH" for "DINNER" on one background scores >= 0.95 on the local visual descriptor (colour is half
# of it). The picture check compares 64x64 grey thumbnails: a frame where more than PICTURE_CHANGE of
# the cells moved by more than CELL_CHANGE grey levels shows something else. Measured on rendered ads:
# a changed word moves 5-15 % of the cells, one changed digit ("20% OFF" -> "30% OFF") 0.95 %, a small
# moving marker 0.34 %, a JPEG re-encode 0 % (tests/ad_assets/test_video_frames.py).
PICTURE_CHANGE = 0.006
CELL_CHANGE = 24.0
_THUMB_SIDE = 64


def picture_signature(image) -> np.ndarray:
    """A ``64x64`` float32 grey thumbnail of a Pillow image: what the near-duplicate rule compares."""
    from PIL import Image

    small = image.convert("L").resize((_THUMB_SIDE, _THUMB_SIDE), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32)


class DistinctFrames:
    """The near-duplicate rule applied one frame at a time, in frame order.

    ``keep(vector, signature)`` says whether a frame is kept: the first always,
    then each whose cosine similarity to the last kept frame is below
    ``threshold``, or whose ``picture_signature`` (when given) has more than
    ``PICTURE_CHANGE`` of its cells changed from the last kept frame's: a new
    message on the same background is not a duplicate.
    """

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._last: np.ndarray | None = None
        self._last_signature: np.ndarray | None = None

    def keep(self, vector, signature: np.ndarray | None = None) -> bool:
        v = np.asarray(vector, dtype=np.float32)
        norm = float(np.linalg.norm(v))
        v = v / norm if norm > 0 else v
        alike = self._last is not None and float(np.dot(v, self._last)) >= self.threshold
        if alike and signature is not None and self._last_signature is not None:
            changed = float((np.abs(signature - self._last_signature) > CELL_CHANGE).mean())
            alike = changed <= PICTURE_CHANGE
        if alike:
            return False
        self._last, self._last_signature = v, signature
        return True


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
