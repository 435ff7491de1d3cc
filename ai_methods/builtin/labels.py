"""``labels``: objects, scenes and brand-safety flags, each with a confidence."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field

from ai_methods.builtin import fake_data
from ai_methods.builtin.fields import Confidence, NonEmpty
from ai_methods.builtin.image_signals import measure
from ai_methods.builtin.remote_chat import ask_json
from ai_methods.inputs import FRAMES, IMAGE, Inputs
from ai_methods.placement import PICTURE
from ai_methods.method import AIMethod, CallContext
from ai_methods.usage import Usage

SafetyCategory = Literal["adult", "violence", "weapons", "alcohol", "tobacco", "drugs", "gambling", "hate", "profanity"]
SAFETY_CATEGORIES: tuple[str, ...] = SafetyCategory.__args__  # type: ignore[attr-defined]

# Words in on-image text that flag a category. Local brand safety reads text only.
SAFETY_TERMS: dict[str, tuple[str, ...]] = {
    "alcohol": (
        "beer",
        "wine",
        "vodka",
        "whisky",
        "whiskey",
        "rum",
        "gin",
        "tequila",
        "champagne",
        "cocktail",
        "liquor",
        "lager",
    ),
    "tobacco": ("cigarette", "cigarettes", "cigar", "tobacco", "vape", "vaping", "nicotine"),
    "gambling": ("casino", "poker", "jackpot", "betting", "bet", "slots", "roulette", "lottery", "sportsbook"),
    "drugs": ("cannabis", "marijuana", "weed", "cbd", "thc", "cocaine"),
    "weapons": ("gun", "guns", "rifle", "pistol", "firearm", "firearms", "ammo", "ammunition"),
    "adult": ("xxx", "nude", "nudity", "porn", "sexy", "erotic"),
    "violence": ("kill", "murder", "blood", "gore", "fight"),
    "profanity": ("fuck", "shit", "damn", "bitch"),
    "hate": (),
}
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
# Haar boxes carry no probability; this fixed value marks a detection as "found, uncalibrated".
FACE_LABEL_CONFIDENCE = 0.7


class Label(BaseModel):
    name: NonEmpty
    confidence: Confidence
    evidence: str | None = None


class SafetyFlag(BaseModel):
    category: SafetyCategory
    confidence: Confidence
    evidence: str | None = None


class LabelsOutput(BaseModel):
    objects: list[Label]
    scenes: list[Label]
    brand_safety: list[SafetyFlag] = Field(description="only categories that apply; empty means none found")
    assessed: list[Literal["objects", "scenes", "brand_safety"]] = Field(
        description="what the provider actually looked for; an empty list elsewhere means 'not assessed'"
    )
    notes: str | None = None
    basis: Literal["model", "measured", "fake"]


class _Draft(BaseModel):
    objects: list[Label] = Field(default_factory=list)
    scenes: list[Label] = Field(default_factory=list)
    brand_safety: list[SafetyFlag] = Field(default_factory=list)


def text_safety_flags(lines: list[tuple[str, float]]) -> list[SafetyFlag]:
    """Categories whose terms appear as words in OCR'd ``(text, confidence)`` lines."""
    flags: dict[str, SafetyFlag] = {}
    for text, conf in lines:
        words = set(_WORD.findall(text.casefold()))
        for category, terms in SAFETY_TERMS.items():
            hits = sorted(words.intersection(terms))
            if hits and category not in flags:
                flags[category] = SafetyFlag(
                    category=category,  # type: ignore[arg-type]
                    confidence=round(conf * 0.8, 4),  # a word in the text, not a visual finding
                    evidence=f"text mentions {', '.join(hits)}: '{text}'",
                )
    return list(flags.values())


class Labels(AIMethod):
    """Objects and scenes in an image (or a video's frames) and brand-safety flags, with confidence.

    Local labels are measured, not recognised: the objects found are only
    ``text`` (OCR) and ``face`` (Haar cascade); scenes are not assessed; brand
    safety is checked on the OCR'd text against a word list. Remote providers
    ask a vision model for all three.
    """

    name = "labels"
    version = "1"
    accepts = (IMAGE, FRAMES)
    applies_to = PICTURE
    output_schema = LabelsOutput
    providers = ("local", "fake", "bedrock", "openai")
    cost_unit = "image"
    local_model = "local-measured-labels-v1"

    async def compute(self, inputs: Inputs, ctx: CallContext) -> LabelsOutput:
        images = inputs.images()
        if ctx.kind == "local":
            s = await measure(ctx, images)
            ctx.add_usage(Usage(requests=1, images=len(images)))
            objects = []
            if s.lines:
                objects.append(
                    Label(name="text", confidence=s.text_confidence, evidence=f"{len(s.lines)} line(s) read by OCR")
                )
            if s.faces:
                objects.append(
                    Label(
                        name="face",
                        confidence=FACE_LABEL_CONFIDENCE,
                        evidence=f"{s.faces} face(s), Haar cascade (uncalibrated)",
                    )
                )
            return LabelsOutput(
                objects=objects,
                scenes=[],
                brand_safety=text_safety_flags([(ln.text, ln.confidence) for ln in s.lines]),
                assessed=["objects", "brand_safety"],
                notes="local: objects limited to text and faces; scenes not assessed; brand safety from on-image text only",
                basis="measured",
            )
        if ctx.kind == "fake":
            await ctx.fake.answer(self.name)
            rng = ctx.rng()
            flags = []
            if rng.random() < 0.2:
                flags.append(
                    SafetyFlag(category=rng.choice(SAFETY_CATEGORIES), confidence=round(rng.uniform(0.5, 0.9), 4))
                )
            return LabelsOutput(
                objects=[
                    Label(name=o, confidence=round(rng.uniform(0.5, 0.99), 4))
                    for o in fake_data.pick(rng, fake_data.OBJECTS, 1, 4)
                ],
                scenes=[
                    Label(name=s, confidence=round(rng.uniform(0.4, 0.95), 4))
                    for s in fake_data.pick(rng, fake_data.SCENES, 1, 2)
                ],
                brand_safety=flags,
                assessed=["objects", "scenes", "brand_safety"],
                basis="fake",
            )
        draft = await ask_json(
            ctx,
            _Draft,
            system="You label advertising creatives for a catalogue and a brand-safety review.",
            prompt=(
                "List the distinct physical objects visible (specific nouns), the scene types (e.g. kitchen, beach, "
                "studio), and any brand-safety concerns, each with a confidence from 0 to 1. Brand-safety categories: "
                f"{', '.join(SAFETY_CATEGORIES)}; include a category only if it applies, with a short evidence note."
            ),
            images=[await im.remote() for im in images[:8]],
        )
        return LabelsOutput(**draft.model_dump(), assessed=["objects", "scenes", "brand_safety"], basis="model")
