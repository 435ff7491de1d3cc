"""``transcribe_speech``: timed words of the speech in an audio or video file, in ~10 s segments."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, Field, model_validator

from ai_methods.audio import SAMPLE_RATE, wav_bytes
from ai_methods.builtin import fake_data
from ai_methods.builtin.fields import Confidence, NonEmpty, Seconds
from ai_methods.errors import BadResponseError
from ai_methods.inputs import AUDIO, Inputs
from ai_methods.placement import HAS_AUDIO, ITEM
from ai_methods.method import AIMethod, CallContext
from ai_methods.providers.local import LocalProvider
from ai_methods.providers.local.speech import MODEL_ID as SPEECH_MODEL
from ai_methods.providers.local.speech import OVERLAP_S, WINDOW_S
from ai_methods.usage import Usage


class Word(BaseModel):
    text: NonEmpty
    start: Seconds
    end: Seconds
    confidence: Confidence


class Segment(BaseModel):
    start: Seconds
    end: Seconds
    text: str
    word_count: int = Field(ge=0)


class TranscriptOutput(BaseModel):
    """Words in time order; segments are ~10 s windows overlapping by 1 s (overlap words appear in both)."""

    text: str
    words: list[Word]
    segments: list[Segment]
    duration_s: Seconds
    language: str | None = None
    engine: str | None = Field(
        None,
        description="what heard the words: 'faster-whisper' or 'pocketsphinx' on local, the provider's name elsewhere",
    )

    @model_validator(mode="after")
    def _ordered(self) -> "TranscriptOutput":
        last = 0.0
        for w in self.words:
            if w.end < w.start:
                raise ValueError(f"word {w.text!r} ends ({w.end}) before it starts ({w.start})")
            if w.start < last - 1e-6:
                raise ValueError("words are not in time order")
            last = w.start
        return self


def segments(
    words: list[Word], duration_s: float, window_s: float = WINDOW_S, overlap_s: float = OVERLAP_S
) -> list[Segment]:
    """Group words into windows of ``window_s`` starting every ``window_s - overlap_s`` seconds."""
    if duration_s <= 0:
        return []
    step = window_s - overlap_s
    out: list[Segment] = []
    start = 0.0
    while True:
        end = min(duration_s, start + window_s)
        last = end >= duration_s
        inside = [w for w in words if start <= (w.start + w.end) / 2 and ((w.start + w.end) / 2 < end or last)]
        out.append(
            Segment(
                start=round(start, 3), end=round(end, 3), text=" ".join(w.text for w in inside), word_count=len(inside)
            )
        )
        if end >= duration_s:
            return out
        start += step


def build_output(
    words: list[Word], duration_s: float | None, language: str | None, engine: str | None = None
) -> TranscriptOutput:
    words = sorted(words, key=lambda w: (w.start, w.end))
    duration = max(duration_s or 0.0, words[-1].end if words else 0.0)
    return TranscriptOutput(
        text=" ".join(w.text for w in words),
        words=words,
        segments=segments(words, duration),
        duration_s=round(duration, 3),
        language=language,
        engine=engine,
    )


class TranscribeSpeech(AIMethod):
    """Speech to text with word start/end times (seconds) and confidences.

    Accepts WAV bytes or any audio/video file (decoded with PyAV). Local:
    Whisper (faster-whisper, int8 on CPU, silence skipped by its Silero VAD)
    when the ``speech`` extra is installed or ``AD_ASSETS_WHISPER_MODEL`` names
    a model; otherwise pocketsphinx (US English) in ~10 s windows with 1 s
    overlap, words in the overlaps de-duplicated, accuracy modest. ``engine``
    in the output and the cached model id say which ran. Remote: the
    provider's transcription API.
    """

    name = "transcribe_speech"
    version = "2"
    accepts = (AUDIO,)
    applies_to = ITEM
    condition = HAS_AUDIO
    output_schema = TranscriptOutput
    providers = ("local", "fake", "bedrock", "openai")
    cost_unit = "audio_minute"
    remote_primitive = "transcribe"
    local_model = SPEECH_MODEL  # the fallback; ``model_for`` names the engine that will run

    def model_for(self, provider: str, backend: Any) -> str:
        if provider == "local":
            return LocalProvider.speech_model()
        return super().model_for(provider, backend)

    async def compute(self, inputs: Inputs, ctx: CallContext) -> TranscriptOutput:
        audio = inputs.audio
        assert audio is not None
        if ctx.kind == "local":
            heard = await ctx.local.transcribe(audio)
            ctx.add_usage(Usage(requests=1, audio_seconds=round(heard.duration_s, 3)), heard.model)
            words = [Word(text=w.text, start=w.start, end=w.end, confidence=w.confidence) for w in heard.words]
            return build_output(words, heard.duration_s, heard.language, heard.engine)
        if ctx.kind == "fake":
            await ctx.fake.answer(self.name)
            rng = ctx.rng()
            duration = audio.duration_s or 5.0
            words, t = [], 0.2
            while t + 0.3 < duration and len(words) < 400:
                length = rng.uniform(0.2, 0.5)
                words.append(
                    Word(
                        text=rng.choice(fake_data.WORDS),
                        start=round(t, 3),
                        end=round(t + length, 3),
                        confidence=round(rng.uniform(0.6, 0.99), 4),
                    )
                )
                t += length + rng.uniform(0.05, 0.3)
            ctx.add_usage(Usage(requests=1, audio_seconds=round(duration, 3)))
            return build_output(words, duration, "en-US", "fake")
        pcm = await asyncio.to_thread(audio.pcm16k)
        duration = len(pcm) / SAMPLE_RATE
        reply = await ctx.client.transcribe(wav_bytes(pcm))
        ctx.add_usage(
            reply.usage if reply.usage.audio_seconds else reply.usage + Usage(audio_seconds=round(duration, 3)),
            reply.model,
        )
        try:
            words = [
                Word(text=w.text, start=w.start, end=w.end, confidence=w.confidence)
                for w in reply.words
                if w.text.strip()
            ]
        except ValueError as exc:
            raise BadResponseError(f"{self.name} on {ctx.provider}: a word in the reply is malformed ({exc})") from exc
        return build_output(words, duration, reply.language, ctx.provider)
