"""``price_mentions``: prices and discounts written on each picture (a still ad, or a kept video frame)."""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

from ai_methods import TEXT, AIMethod
from ai_methods.builtin.remote_chat import ask_json
from ai_methods.placement import PICTURE, TEXT_FOUND
from ai_methods.usage import Usage

# "$4.99", "€3", "3,50 €", "20%", "30% OFF", "15 % off"
_PRICE = re.compile(
    r"(?:[$€£]\s?\d+(?:[.,]\d{2})?|\d+(?:[.,]\d{2})?\s?(?:%|€|£|\$|eur\b|usd\b)(?:\s?off\b)?)", re.IGNORECASE
)


class Mention(BaseModel):
    text: str = Field(min_length=1)
    kind: str = Field(pattern="^(price|discount)$")


class PriceMentionsOutput(BaseModel):
    mentions: list[Mention]
    count: int = Field(ge=0)
    summary: str = Field(description="'<kind> <text>' per mention, '; '-separated: what text search finds, so a "
                         "query for 'discount' finds an ad that only says '30% OFF'")


class _Draft(BaseModel):
    """What the chat model is asked for: the mentions alone (the rest is derived from them)."""

    mentions: list[Mention]


class PriceMentions(AIMethod):
    """Prices ("$4.99", "3 €") and discounts ("20%", "30% off") written on a picture, read from its OCR text."""

    name = "price_mentions"
    version = "1"
    accepts = (TEXT,)
    output_schema = PriceMentionsOutput
    providers = ("local", "fake", "openai", "bedrock")
    cost_unit = "1k_tokens"
    local_model = "regex-v1"
    # Where it runs: on every picture, after ocr_text, where OCR found text; its summary is searchable.
    applies_to = PICTURE
    needs = ("ocr_text",)
    condition = TEXT_FOUND
    search_field = "summary"

    async def compute(self, inputs, ctx):
        if ctx.kind == "local":
            found = [" ".join(m.group(0).split()) for m in _PRICE.finditer(inputs.text)]
            ctx.add_usage(Usage(requests=1))
        elif ctx.kind == "fake":
            await ctx.fake.answer(self.name)  # scripted latency / errors in tests
            found = [f"{ctx.rng().randint(5, 50)}%"]  # deterministic: seeded by the input hash
        else:
            draft = await ask_json(
                ctx,
                _Draft,
                system="You extract prices and discounts from advertising text.",
                prompt=f"List every price or discount written in this text, as written:\n\n{inputs.text}",
            )
            found = [m.text for m in draft.mentions]
        mentions = [Mention(text=t, kind="discount" if "%" in t or "off" in t.lower() else "price") for t in found]
        summary = "; ".join(f"{m.kind} {m.text}" for m in mentions)
        return PriceMentionsOutput(mentions=mentions, count=len(mentions), summary=summary)
