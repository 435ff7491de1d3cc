"""``ocr_text``: the text written in an image, line by line, with boxes and confidence."""

from __future__ import annotations

from pydantic import BaseModel, Field

from ai_methods.builtin import fake_data
from ai_methods.builtin.fields import Box, Confidence, NonEmpty
from ai_methods.builtin.remote_chat import ask_json
from ai_methods.inputs import IMAGE, Inputs
from ai_methods.placement import PICTURE
from ai_methods.method import AIMethod, CallContext
from ai_methods.providers.local.ocr import MODEL_ID as OCR_MODEL
from ai_methods.usage import Usage


class OcrWord(BaseModel):
    text: NonEmpty
    confidence: Confidence
    box: Box | None = Field(None, description="null when the provider gives no position")


class OcrLine(BaseModel):
    text: NonEmpty
    confidence: Confidence
    box: Box | None = None
    words: list[OcrWord] = Field(default_factory=list)


class OcrOutput(BaseModel):
    """Lines in reading order; ``text`` is the lines joined by newlines."""

    text: str
    lines: list[OcrLine]
    width: int = Field(ge=1)
    height: int = Field(ge=1)


class _RemoteLine(BaseModel):
    text: NonEmpty
    confidence: Confidence


class _RemoteOcr(BaseModel):
    lines: list[_RemoteLine]


def _plain_words(text: str, confidence: float) -> list[OcrWord]:
    return [OcrWord(text=w, confidence=confidence, box=None) for w in text.split()]


class OcrText(AIMethod):
    """Text in an image, line by line, each line and word with its box (pixels) and confidence.

    Local: rapidocr-onnxruntime (PP-OCRv4), boxes for every line and word. Remote:
    the chat model transcribes the lines; positions are null because chat models
    do not give reliable pixel boxes.
    """

    name = "ocr_text"
    version = "1"
    accepts = (IMAGE,)
    applies_to = PICTURE
    output_schema = OcrOutput
    providers = ("local", "fake", "bedrock", "openai")
    cost_unit = "image"
    local_model = OCR_MODEL

    async def compute(self, inputs: Inputs, ctx: CallContext) -> OcrOutput:
        image = inputs.image
        assert image is not None
        if ctx.kind == "local":
            found = await ctx.local.ocr(image)
            ctx.add_usage(Usage(requests=1, images=1))
            lines = [
                OcrLine(
                    text=ln.text,
                    confidence=ln.confidence,
                    box=ln.box,
                    words=[OcrWord(text=w.text, confidence=w.confidence, box=w.box) for w in ln.words],
                )
                for ln in found
            ]
        elif ctx.kind == "fake":
            await ctx.fake.answer(self.name)
            rng = ctx.rng()
            lines = []
            for i, phrase in enumerate(fake_data.pick(rng, fake_data.PHRASES, 0, 3)):
                conf = round(rng.uniform(0.8, 0.99), 4)
                y0 = image.height * (0.1 + 0.25 * i)
                y1 = min(image.height, y0 + image.height * 0.15)
                box = [
                    [0.05 * image.width, y0],
                    [0.9 * image.width, y0],
                    [0.9 * image.width, y1],
                    [0.05 * image.width, y1],
                ]
                lines.append(OcrLine(text=phrase, confidence=conf, box=box, words=_plain_words(phrase, conf)))
        else:
            draft = await ask_json(
                ctx,
                _RemoteOcr,
                system="You are an OCR engine for advertising images.",
                prompt=(
                    "Transcribe every piece of legible text in this image exactly as written (keep case, digits, "
                    "symbols), one entry per line, in reading order. Give each line a confidence from 0 to 1. "
                    "Return an empty list when there is no text."
                ),
                images=[await image.remote()],
            )
            lines = [
                OcrLine(text=ln.text, confidence=ln.confidence, box=None, words=_plain_words(ln.text, ln.confidence))
                for ln in draft.lines
            ]
        return OcrOutput(text="\n".join(ln.text for ln in lines), lines=lines, width=image.width, height=image.height)
