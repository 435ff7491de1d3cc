"""Offline speech-to-text with pocketsphinx (US English model inside the wheel): the fallback engine.

The ``local`` provider prefers Whisper (``ai_methods.providers.local.whisper``)
when the ``speech`` extra is installed; pocketsphinx runs when it is not.

Long audio is decoded in ~10 s windows overlapping by 1 s: each window is its
own utterance, so memory and latency stay flat, and a word cut by one window's
edge is heard whole in the next. Words in an overlap are kept from the window
where they sit further from the edge (split at the middle of the overlap).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any, Iterable

from ai_methods.audio import SAMPLE_RATE

ENGINE = "pocketsphinx"
MODEL_ID = "pocketsphinx-5.1.1/en-us"
WINDOW_S = 10.0
OVERLAP_S = 1.0

_ALTERNATE = re.compile(r"\(\d+\)$")


@dataclass(frozen=True)
class TimedWord:
    text: str
    start: float
    end: float
    confidence: float


@dataclass(frozen=True)
class Transcript:
    """What a local engine heard: words in time order, the audio's length, and who heard it."""

    words: list[TimedWord]
    duration_s: float
    engine: str  # "faster-whisper" or "pocketsphinx"
    model: str  # the model id that also keys the cache
    language: str | None


def is_spoken_word(token: str) -> bool:
    """False for sentence markers, silence and fillers (``<s>``, ``</s>``, ``<sil>``, ``[NOISE]``, ``++UH++``)."""
    return bool(token) and not token.startswith(("<", "[", "+"))


def windows(
    n_samples: int, rate: int = SAMPLE_RATE, window_s: float = WINDOW_S, overlap_s: float = OVERLAP_S
) -> list[tuple[int, int]]:
    """Sample ranges ``[start, end)`` of ~``window_s`` windows overlapping by ``overlap_s``.

    A short tail is merged into the previous window rather than decoded alone.
    """
    win, step = int(window_s * rate), int((window_s - overlap_s) * rate)
    if n_samples <= win:
        return [(0, n_samples)] if n_samples else []
    out: list[tuple[int, int]] = []
    start = 0
    while start + win < n_samples:
        out.append((start, start + win))
        start += step
    last_start = out[-1][0] + step
    if n_samples - last_start <= int(overlap_s * rate) * 2:
        out[-1] = (out[-1][0], n_samples)  # tail too short to stand alone
    else:
        out.append((last_start, n_samples))
    return out


def merge_windows(per_window: Iterable[tuple[float, float, list[TimedWord]]]) -> list[TimedWord]:
    """Join words of overlapping windows ``(start_s, end_s, words)`` without duplicating the overlaps."""
    chunks = list(per_window)
    merged: list[TimedWord] = []
    for i, (start, end, words) in enumerate(chunks):
        lo = -1e18 if i == 0 else (start + chunks[i - 1][1]) / 2
        hi = 1e18 if i == len(chunks) - 1 else (chunks[i + 1][0] + end) / 2
        for w in words:
            mid = (w.start + w.end) / 2
            if lo <= mid < hi:
                merged.append(w)
    merged.sort(key=lambda w: (w.start, w.end))
    return merged


class SpeechEngine:
    """One pocketsphinx decoder, loaded once and used by one thread at a time."""

    def __init__(self) -> None:
        from pocketsphinx import Decoder

        self._decoder = Decoder(loglevel="FATAL")
        self.frame_rate = int(self._decoder.config["frate"])
        self._lock = threading.Lock()

    def _decode(self, pcm: Any, offset_s: float) -> list[TimedWord]:
        d = self._decoder
        d.start_utt()
        d.process_raw(pcm.tobytes(), full_utt=True)
        d.end_utt()
        words: list[TimedWord] = []
        for seg in d.seg():
            if not is_spoken_word(seg.word):
                continue
            text = _ALTERNATE.sub("", seg.word)
            start = offset_s + seg.start_frame / self.frame_rate
            end = offset_s + (seg.end_frame + 1) / self.frame_rate  # end_frame is inclusive
            words.append(TimedWord(text, round(start, 3), round(end, 3), round(min(1.0, max(0.0, float(seg.prob))), 4)))
        return words

    def transcribe(self, pcm: Any) -> list[TimedWord]:
        """Words of 16 kHz mono int16 ``pcm``, in time order, times in seconds from its start."""
        chunks = []
        with self._lock:
            for a, b in windows(len(pcm)):
                chunks.append((a / SAMPLE_RATE, b / SAMPLE_RATE, self._decode(pcm[a:b], a / SAMPLE_RATE)))
        return merge_windows(chunks)
