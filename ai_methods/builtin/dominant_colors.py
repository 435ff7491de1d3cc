"""``dominant_colors``: the main colours of an image with their share of the pixels."""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator

from ai_methods.builtin.fields import NonEmpty
from ai_methods.inputs import IMAGE, Inputs
from ai_methods.placement import PICTURE
from ai_methods.method import AIMethod, CallContext
from ai_methods.providers.local.colors import MODEL_ID as COLOURS_MODEL
from ai_methods.providers.local.colors import NAMED_COLORS, colour_name
from ai_methods.usage import Usage

MAX_COLOURS = 5


class Colour(BaseModel):
    hex: str = Field(pattern=r"^#[0-9a-f]{6}$")
    rgb: list[int] = Field(min_length=3, max_length=3)
    share: float = Field(gt=0.0, le=1.0, description="fraction of the pixels")
    name: NonEmpty


class ColorsOutput(BaseModel):
    colors: list[Colour] = Field(description="largest share first; colours under 1 % are left out")

    @model_validator(mode="after")
    def _shares(self) -> "ColorsOutput":
        # Each share is rounded to 4 decimals: the sum may pass 1 by half a unit per colour.
        if sum(c.share for c in self.colors) > 1.0 + 0.00005 * len(self.colors) + 1e-9:
            raise ValueError("shares add up to more than 1")
        if any(not 0 <= v <= 255 for c in self.colors for v in c.rgb):
            raise ValueError("rgb values must be 0..255")
        return self


class DominantColors(AIMethod):
    """Up to five dominant colours (hex, RGB, share of pixels, a coarse name), largest first.

    Local: Pillow median-cut quantisation on a 128 px copy, each colour the median
    of its pixels, shades closer than ΔE 10 merged; names from a fixed 22-colour
    palette by CIE Lab distance.
    """

    name = "dominant_colors"
    version = "1"
    accepts = (IMAGE,)
    applies_to = PICTURE
    output_schema = ColorsOutput
    providers = ("local", "fake")
    cost_unit = "image"
    local_model = COLOURS_MODEL

    async def compute(self, inputs: Inputs, ctx: CallContext) -> ColorsOutput:
        image = inputs.image
        assert image is not None
        if ctx.kind == "local":
            found = await ctx.local.colours(image, MAX_COLOURS)
            ctx.add_usage(Usage(requests=1, images=1))
            return ColorsOutput(colors=[Colour(hex=c.hex, rgb=list(c.rgb), share=c.share, name=c.name) for c in found])
        await ctx.fake.answer(self.name)
        rng = ctx.rng()
        names = rng.sample(sorted(NAMED_COLORS), rng.randint(1, 4))
        weights = [rng.random() + 0.1 for _ in names]
        total = sum(weights)
        colours = []
        for name, w in zip(names, weights):
            rgb = NAMED_COLORS[name]
            colours.append(
                Colour(
                    hex="#{:02x}{:02x}{:02x}".format(*rgb),
                    rgb=list(rgb),
                    share=round(w / total * 0.98, 4),
                    name=colour_name(rgb),
                )
            )
        colours.sort(key=lambda c: -c.share)
        return ColorsOutput(colors=colours)
