"""``caption``: two or three sentences on what an image (or a video's frames) shows."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from ai_methods.builtin import fake_data
from ai_methods.builtin.image_signals import ImageSignals, brightness_word, measure
from ai_methods.builtin.remote_chat import ask_json
from ai_methods.inputs import FRAMES, IMAGE, Inputs
from ai_methods.placement import PICTURE
from ai_methods.method import AIMethod, CallContext
from ai_methods.usage import Usage

MAX_REMOTE_FRAMES = 8


class CaptionOutput(BaseModel):
    caption: str = Field(min_length=1, max_length=1200, description="2-3 sentences: subjects, actions, setting, mood")
    subjects: list[str] = Field(default_factory=list)
    actions: list[str] = Field(default_factory=list)
    setting: str | None = None
    mood: str | None = None
    basis: Literal["model", "measured", "fake"] = Field(
        description="model: a vision model looked; measured: built only from local measurements; fake: test data"
    )


class _Draft(BaseModel):
    # Only the caption is required of the model: a reply that omits an empty list is still usable.
    caption: str = Field(description="2-3 sentences: who or what is shown, what they do, where, and the mood")
    subjects: list[str] = Field(default_factory=list)
    actions: list[str] = Field(default_factory=list)
    setting: str | None = None
    mood: str | None = None


def measured_caption(s: ImageSignals) -> CaptionOutput:
    """Three sentences stating what the local engines measured, and nothing else."""
    what = (
        f"Image {s.width}×{s.height}" if s.frames == 1 else f"Video of {s.frames} sampled frames, {s.width}×{s.height}"
    )
    palette = ", ".join(f"{name} ({share:.0%})" for name, share in s.colours[:3]) or "none measured"
    first = f"{what}, {brightness_word(s.brightness)}, with dominant colours {palette}."
    second = f"Text reads '{s.snippet()}'." if s.lines else "No text was detected."
    if s.faces is None:
        third = "Faces were not checked."
    elif s.faces == 0:
        third = "No faces were detected."
    else:
        third = f"{s.faces} face{'s' if s.faces > 1 else ''} detected."
    subjects = (["text"] if s.lines else []) + (["face"] if s.faces else [])
    return CaptionOutput(caption=f"{first} {second} {third}", subjects=subjects, basis="measured")


class Caption(AIMethod):
    """Two or three sentences on an image or a video's frames: subjects, actions, setting, mood.

    Local captions are extractive: size, brightness, dominant colours, the text
    read by OCR and the number of faces, and nothing that was not measured
    (``basis="measured"``, no actions, setting or mood). Remote providers ask a
    vision model (``basis="model"``).
    """

    name = "caption"
    version = "1"
    accepts = (IMAGE, FRAMES)
    applies_to = PICTURE
    output_schema = CaptionOutput
    providers = ("local", "fake", "bedrock", "openai")
    cost_unit = "image"
    local_model = "local-measured-caption-v1"

    async def compute(self, inputs: Inputs, ctx: CallContext) -> CaptionOutput:
        images = inputs.images()
        if ctx.kind == "local":
            signals = await measure(ctx, images)
            ctx.add_usage(Usage(requests=1, images=len(images)))
            return measured_caption(signals)
        if ctx.kind == "fake":
            await ctx.fake.answer(self.name)
            rng = ctx.rng()
            subject, action = rng.choice(fake_data.SUBJECTS), rng.choice(fake_data.ACTIONS)
            setting, mood = rng.choice(fake_data.SCENES), rng.choice(fake_data.MOODS)
            return CaptionOutput(
                caption=f"Fake caption: {subject} {action} in a {setting}. The mood is {mood}.",
                subjects=[subject],
                actions=[action],
                setting=setting,
                mood=mood,
                basis="fake",
            )
        frames_note = (
            f"These are {len(images)} frames sampled in order from one video ad; caption the video as a whole."
            if len(images) > 1
            else "This is one advertising image."
        )
        draft = await ask_json(
            ctx,
            _Draft,
            system="You write factual captions of advertising creatives for a search catalogue.",
            prompt=(
                f"{frames_note} Write a caption of 2 or 3 sentences covering the main subjects, what they are doing, "
                "the setting and the mood. Also list the subjects and actions, and give the setting and mood "
                "in a few words (null if unclear)."
            ),
            images=[await im.remote() for im in images[:MAX_REMOTE_FRAMES]],
        )
        return CaptionOutput(**draft.model_dump(), basis="model")
