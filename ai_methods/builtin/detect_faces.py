"""``detect_faces``: where the frontal faces in an image are."""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator

from ai_methods.builtin.fields import Confidence
from ai_methods.inputs import IMAGE, Inputs
from ai_methods.placement import PICTURE
from ai_methods.method import AIMethod, CallContext
from ai_methods.providers.local.faces import MODEL_ID as FACES_MODEL
from ai_methods.usage import Usage


class FaceBox(BaseModel):
    x: int = Field(ge=0)
    y: int = Field(ge=0)
    width: int = Field(ge=1)
    height: int = Field(ge=1)


class Face(BaseModel):
    box: FaceBox
    confidence: Confidence | None = Field(None, description="null when the detector gives no calibrated score")


class FacesOutput(BaseModel):
    count: int = Field(ge=0)
    faces: list[Face]
    width: int = Field(ge=1)
    height: int = Field(ge=1)

    @model_validator(mode="after")
    def _count(self) -> "FacesOutput":
        if self.count != len(self.faces):
            raise ValueError(f"count is {self.count} but {len(self.faces)} faces are listed")
        return self


class DetectFaces(AIMethod):
    """Boxes (pixels) of the frontal faces in an image, largest first.

    Local: OpenCV's Haar frontal-face cascade; no confidence (the cascade has no
    calibrated score); misses profiles and faces under ~7 % of the short side
    (detection runs on a copy with a 480 px short side).
    No identities, ever.
    """

    name = "detect_faces"
    version = "1"
    accepts = (IMAGE,)
    applies_to = PICTURE
    output_schema = FacesOutput
    providers = ("local", "fake")
    cost_unit = "image"
    local_model = FACES_MODEL

    async def compute(self, inputs: Inputs, ctx: CallContext) -> FacesOutput:
        image = inputs.image
        assert image is not None
        if ctx.kind == "local":
            found = await ctx.local.faces(image)
            ctx.add_usage(Usage(requests=1, images=1))
            faces = [Face(box=FaceBox(x=b.x, y=b.y, width=b.width, height=b.height)) for b in found]
        else:
            await ctx.fake.answer(self.name)
            rng = ctx.rng()
            faces = []
            for _ in range(rng.choice([0, 0, 1, 1, 2])):
                side = max(1, int(min(image.width, image.height) * rng.uniform(0.1, 0.3)))
                x, y = rng.randint(0, image.width - side), rng.randint(0, image.height - side)
                faces.append(
                    Face(box=FaceBox(x=x, y=y, width=side, height=side), confidence=round(rng.uniform(0.6, 0.99), 4))
                )
        return FacesOutput(count=len(faces), faces=faces, width=image.width, height=image.height)
