"""Make the spoken clips of this folder with espeak-ng (development time only; the tests read the committed files).

Each clip is espeak-ng's speech of one ad-like sentence (several voices and
rates), resampled to 16 kHz mono and stored as Ogg/Opus at 24 kb/s; its
reference text is in ``references.json``. ``pauses.opus`` holds two sentences
with 3 s of silence between them.

    apt-get install -y espeak-ng
    .venv/bin/python tests/media_corpus/speech/make_clips.py
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import av
import numpy as np

HERE = Path(__file__).resolve().parent
RATE = 16_000

# name: (voice, words per minute, [sentences]); a list of several sentences is joined by 3 s of silence.
CLIPS: dict[str, tuple[str, int, list[str]]] = {
    "shoes_us": ("en-us", 160, ["Our new running shoes are light, strong and built for every road."]),
    "holiday_gb": ("en-gb", 165, ["Book your summer holiday now and get a free night at any of our hotels."]),
    "burger_us_slow": ("en-us+f3", 140, ["Try the new chicken burger, made fresh in every restaurant."]),
    "app_rp": ("en-gb-x-rp", 170, ["Download the app today and your first delivery is on us."]),
    "mattress_us_fast": ("en-us", 185, ["Call us this weekend to find the right mattress for a better night of sleep."]),
    "pauses": ("en-us", 160, ["Fresh bread is baked every morning.", "Come in before nine and the coffee is free."]),
}


def speak(text: str, voice: str, wpm: int) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "s.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(wav), text], check=True)
        return decode(wav)


def decode(path: Path) -> np.ndarray:
    resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
    chunks = []
    with av.open(str(path)) as c:
        for frame in c.decode(audio=0):
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(chunks).astype(np.int16)


def write_opus(pcm: np.ndarray, path: Path) -> None:
    with av.open(str(path), "w", format="ogg") as out:
        stream = out.add_stream("libopus", rate=48_000, layout="mono")
        stream.bit_rate = 24_000
        resampler = av.AudioResampler(format="s16", layout="mono", rate=48_000)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        for f in resampler.resample(frame) + resampler.resample(None):
            for packet in stream.encode(f):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def main() -> None:
    refs = {}
    for name, (voice, wpm, sentences) in CLIPS.items():
        pieces = []
        for i, s in enumerate(sentences):
            if i:
                pieces.append(np.zeros(3 * RATE, dtype=np.int16))
            pieces.append(speak(s, voice, wpm))
        write_opus(np.concatenate(pieces), HERE / f"{name}.opus")
        refs[f"{name}.opus"] = {"text": " ".join(sentences), "voice": voice, "words_per_minute": wpm}
    (HERE / "references.json").write_text(json.dumps(refs, indent=2) + "\n")


if __name__ == "__main__":
    main()
