"""Fixtures and helpers for the AI methods tests: media made here with Pillow or the committed
spoken WAV, and ``isolated_aws`` for tests that build real boto3 clients."""

from __future__ import annotations

import io
import os
import wave
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


def tiny_png() -> bytes:
    """A 4×4 one-colour PNG: enough for a client to encode and send."""
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 120, 40)).save(buffer, "PNG")
    return buffer.getvalue()


def silent_wav(seconds: float, rate: int = 16000) -> bytes:
    """``seconds`` of silence as a mono 16-bit WAV."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x00" * int(seconds * rate))
    return buffer.getvalue()


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


@pytest.fixture
def isolated_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Hide the developer's AWS setup: no env keys, empty config files, no instance metadata."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws_config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws_credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
