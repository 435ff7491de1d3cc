"""What the local engines can measure about one image or a set of frames.

``caption`` and ``labels`` on the local provider are built only from these
measurements, so they never claim more than was measured.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass

from ai_methods.errors import ProviderUnavailableError
from ai_methods.inputs import ImageInput
from ai_methods.method import CallContext
from ai_methods.providers.local.ocr import OcrLine

TEXT_SNIPPET_CHARS = 90


@dataclass(frozen=True)
class ImageSignals:
    width: int
    height: int
    frames: int
    lines: list[OcrLine]
    colours: list[tuple[str, float]]  # (name, share), largest first, shares averaged over frames
    faces: int | None  # largest count in one image; None when the detector is unavailable
    brightness: float
    saturation: float

    @property
    def text(self) -> str:
        return " ".join(line.text for line in self.lines)

    def snippet(self) -> str:
        text = self.text
        return text if len(text) <= TEXT_SNIPPET_CHARS else text[: TEXT_SNIPPET_CHARS - 1].rstrip() + "…"

    @property
    def text_confidence(self) -> float:
        return round(sum(ln.confidence for ln in self.lines) / len(self.lines), 4) if self.lines else 0.0


async def _one(ctx: CallContext, image: ImageInput):
    local = ctx.local

    async def faces() -> int | None:
        try:
            return len(await local.faces(image))
        except ProviderUnavailableError:
            return None

    return await asyncio.gather(local.ocr(image), local.colours(image), faces(), local.brightness(image))


async def measure(ctx: CallContext, images: list[ImageInput]) -> ImageSignals:
    """OCR lines (deduplicated across frames), colours, faces and brightness of ``images``."""
    per_image = [await _one(ctx, image) for image in images]
    lines: list[OcrLine] = []
    seen: set[str] = set()
    shares: dict[str, float] = defaultdict(float)
    face_counts: list[int] = []
    for ocr_lines, colours, faces, _light in per_image:
        for line in ocr_lines:
            key = " ".join(line.text.casefold().split())
            if key not in seen:
                seen.add(key)
                lines.append(line)
        merged: dict[str, float] = defaultdict(float)
        for c in colours:
            merged[c.name] += c.share
        for name, share in merged.items():
            shares[name] += share / len(images)
        if faces is not None:
            face_counts.append(faces)
    colours_ranked = sorted(((n, round(s, 4)) for n, s in shares.items()), key=lambda kv: -kv[1])
    first = images[0]
    return ImageSignals(
        width=first.width,
        height=first.height,
        frames=len(images),
        lines=lines,
        colours=colours_ranked,
        faces=max(face_counts) if face_counts else None,
        brightness=round(sum(p[3]["brightness"] for p in per_image) / len(images), 4),
        saturation=round(sum(p[3]["saturation"] for p in per_image) / len(images), 4),
    )


def brightness_word(value: float) -> str:
    return "dark" if value < 0.3 else "bright" if value > 0.7 else "mid-toned"
