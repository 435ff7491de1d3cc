"""Reading audio from any media file or WAV with PyAV (FFmpeg inside the wheel).

Speech models here want 16 kHz mono signed 16-bit PCM, so that is the one shape
this module produces.
"""

from __future__ import annotations

import io
import wave
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ai_methods.errors import InvalidInputError
from ai_methods.media.video import AV_OPEN_OPTIONS, real_duration

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

SAMPLE_RATE = 16_000

# Only local files: a crafted playlist must not make FFmpeg fetch anything.
LOCAL_ONLY = AV_OPEN_OPTIONS


def _open(source: bytes | Path) -> BinaryIO | str:
    return io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else str(source)


def probe_audio(source: bytes | Path, label: str) -> float | None:
    """Check that ``source`` holds a decodable audio stream; return its duration in seconds if known."""
    import av

    try:
        with av.open(_open(source), mode="r", options=LOCAL_ONLY) as container:
            if not container.streams.audio:
                raise InvalidInputError(f"{label}: the media has no audio stream")
            # The file's real duration (``ai_methods.media.video``): the container's first.
            duration, _ = real_duration(container)
            return duration
    except InvalidInputError:
        raise
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise InvalidInputError(f"{label}: not decodable audio or media ({exc})") from exc


def decode_pcm16k(source: bytes | Path, label: str = "audio") -> "np.ndarray":
    """Decode the first audio stream to a 1-D int16 array at 16 kHz mono."""
    import av
    import numpy as np

    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    try:
        with av.open(_open(source), mode="r", options=LOCAL_ONLY) as container:
            if not container.streams.audio:
                raise InvalidInputError(f"{label}: the media has no audio stream")
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except InvalidInputError:
        raise
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise InvalidInputError(f"{label}: audio could not be decoded ({exc})") from exc
    if not chunks:
        return np.zeros(0, dtype=np.int16)
    return np.concatenate(chunks).astype(np.int16, copy=False)


def wav_bytes(pcm: "np.ndarray", rate: int = SAMPLE_RATE) -> bytes:
    """A mono 16-bit WAV file holding ``pcm``."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2", copy=False).tobytes())
    return out.getvalue()
