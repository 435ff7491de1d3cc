"""Media fixtures for the AI methods tests: made here with Pillow, or the committed spoken WAV."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parents[2]
SPOKEN_WAV = REPO / "ad_assets" / "demo" / "spoken_ad.wav"
DEJAVU_BOLD = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")


def _font(size: int) -> ImageFont.ImageFont:
    if DEJAVU_BOLD.is_file():
        return ImageFont.truetype(str(DEJAVU_BOLD), size)
    return ImageFont.load_default(size=size)


def render_ad(lines: list[str], size: tuple[int, int] = (640, 360), bg=(90, 50, 20), fg=(255, 255, 255)) -> bytes:
    """A flat ad with big text lines, as PNG bytes."""
    im = Image.new("RGB", size, bg)
    draw = ImageDraw.Draw(im)
    font = _font(48)
    for i, line in enumerate(lines):
        draw.text((40, 60 + i * 110), line, font=font, fill=fg)
    out = io.BytesIO()
    im.save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="session")
def ad_png() -> bytes:
    """640×360 brown ad reading FRESH COFFEE / SAVE 20% TODAY."""
    return render_ad(["FRESH COFFEE", "SAVE 20% TODAY"])


@pytest.fixture(scope="session")
def spoken_wav() -> Path:
    """The committed 16 kHz mono WAV of espeak saying the coffee ad script."""
    assert SPOKEN_WAV.is_file(), f"missing fixture {SPOKEN_WAV}"
    return SPOKEN_WAV
