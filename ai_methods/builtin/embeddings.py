"""``embed_image`` and ``embed_text``: unit vectors with their dimension and the space they live in.

Compare vectors only within one ``space``. Local image and text vectors are
different spaces (``local-visual-v1``, ``local-lexical-v1``); a remote
provider's space is ``<provider>:<model>``, shared by text and image when the
model is multimodal (Titan Multimodal Embeddings on Bedrock). The fake
provider declares one shared ``fake-v1`` space so text→image search code paths
can be exercised in tests.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from pydantic import BaseModel, Field, model_validator

from ai_methods.errors import BadResponseError
from ai_methods.inputs import IMAGE, TEXT, Inputs
from ai_methods.method import AIMethod, CallContext
from ai_methods.placement import PICTURE, Condition, Target
from ai_methods.providers.local import lexical, visual
from ai_methods.usage import Usage

FAKE_DIM = 64
FAKE_SPACE = "fake-v1"


class EmbeddingOutput(BaseModel):
    vector: list[float]
    dim: int = Field(ge=1)
    space: str = Field(min_length=1, description="only vectors of the same space are comparable")
    normalized: bool = Field(description="true: unit length, so the dot product is the cosine")

    @model_validator(mode="after")
    def _consistent(self) -> "EmbeddingOutput":
        if len(self.vector) != self.dim:
            raise ValueError(f"vector has {len(self.vector)} values but dim is {self.dim}")
        if not all(math.isfinite(v) for v in self.vector):
            raise ValueError("vector has non-finite values")
        return self


def caption_and_ocr_text(outputs: Mapping[str, dict[str, Any]]) -> str:
    """What ``embed_text`` sees for a picture: its caption (when a model wrote it) and its OCR text.

    A ``measured`` caption ("Image 800×600, bright, …") states sizes and
    colours, not what the ad means: embedding it would make every picture of
    one size look alike to a text query, so it is left out.
    """
    found = outputs.get("caption") or {}
    caption = "" if found.get("basis") == "measured" else str(found.get("caption") or "").strip()
    ocr = str((outputs.get("ocr_text") or {}).get("text") or "").strip()
    return "\n".join(part for part in (caption, ocr) if part)


def _unit(values: list[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values] if norm > 0 else list(values)


def _fake_vector(ctx: CallContext) -> list[float]:
    # Seeded by the input only (not the method), so identical inputs give identical vectors.
    import random

    rng = random.Random(f"fake-embedding\0{ctx.input_hash}")
    return _unit([rng.gauss(0.0, 1.0) for _ in range(FAKE_DIM)])


def _remote_output(ctx: CallContext, reply, what: str) -> EmbeddingOutput:
    ctx.add_usage(reply.usage, reply.model)
    if len(reply.vectors) != 1 or not reply.vectors[0]:
        raise BadResponseError(f"{what} on {ctx.provider}: expected one vector, got {len(reply.vectors)}")
    vector = _unit([float(v) for v in reply.vectors[0]])
    return EmbeddingOutput(vector=vector, dim=len(vector), space=f"{ctx.provider}:{reply.model}", normalized=True)


class EmbedImage(AIMethod):
    """A unit vector for an image, for near-duplicate detection and similarity search.

    Local: the ``local-visual-v1`` descriptor (512-d: HSV colour histogram, edge
    orientations, DCT layout); near-identical frames score ≥ 0.95 cosine. It is
    visual, not semantic. Remote: the provider's image embedding model.
    """

    name = "embed_image"
    version = "1"
    accepts = (IMAGE,)
    applies_to = PICTURE
    output_schema = EmbeddingOutput
    providers = ("local", "fake", "bedrock", "openai")
    cost_unit = "image"
    remote_primitive = "embed_image"
    local_model = visual.MODEL_ID

    async def compute(self, inputs: Inputs, ctx: CallContext) -> EmbeddingOutput:
        image = inputs.image
        assert image is not None
        if ctx.kind == "local":
            vec = await ctx.local.image_vector(image)
            ctx.add_usage(Usage(requests=1, images=1))
            return EmbeddingOutput(vector=[float(v) for v in vec], dim=visual.DIM, space=visual.SPACE, normalized=True)
        if ctx.kind == "fake":
            await ctx.fake.answer(self.name)
            return EmbeddingOutput(vector=_fake_vector(ctx), dim=FAKE_DIM, space=FAKE_SPACE, normalized=True)
        reply = await ctx.client.embed_image([await image.remote()])
        return _remote_output(ctx, reply, self.name)


class EmbedText(AIMethod):
    """A unit vector for a text (a query, OCR text, a transcript).

    Local: ``local-lexical-v1`` (512-d hashed words, word pairs and character
    trigrams): finds items sharing words, not synonyms. Remote: the provider's
    text embedding model (on Bedrock, Titan Multimodal, in the image space).
    """

    name = "embed_text"
    version = "1"
    accepts = (TEXT,)
    # In the pipeline: a picture's caption (when a model wrote it) and its OCR text, for text search.
    # The engine also embeds each transcript segment and every method's ``search_field`` with it.
    applies_to = PICTURE
    needs = ("caption", "ocr_text")
    condition = Condition("a model caption or OCR text was found", lambda t: bool(caption_and_ocr_text(t.outputs)))
    output_schema = EmbeddingOutput
    providers = ("local", "fake", "bedrock", "openai")
    cost_unit = "1k_tokens"
    remote_primitive = "embed_text"
    local_model = lexical.MODEL_ID

    def pipeline_inputs(self, target: Target) -> dict[str, Any] | None:
        text = caption_and_ocr_text(target.outputs)
        return {"text": text} if text else None

    async def compute(self, inputs: Inputs, ctx: CallContext) -> EmbeddingOutput:
        text = inputs.text
        assert text is not None
        if ctx.kind == "local":
            vec = await ctx.local.text_vector(text)
            ctx.add_usage(Usage(requests=1, input_tokens=len(lexical.tokens(text))))
            return EmbeddingOutput(
                vector=[float(v) for v in vec], dim=lexical.DIM, space=lexical.SPACE, normalized=True
            )
        if ctx.kind == "fake":
            await ctx.fake.answer(self.name)
            return EmbeddingOutput(vector=_fake_vector(ctx), dim=FAKE_DIM, space=FAKE_SPACE, normalized=True)
        reply = await ctx.client.embed_text([text])
        return _remote_output(ctx, reply, self.name)
