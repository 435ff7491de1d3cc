"""Decoding and re-encoding images for methods (Pillow; imported lazily)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from ai_methods.errors import InvalidInputError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

# Bigger images are refused rather than decoded: an ad creative never needs more.
MAX_IMAGE_PIXELS = 80_000_000
# Claude and GPT-4o both downscale past ~1.5k px on the long side; sending more only costs.
REMOTE_MAX_SIDE = 1568
_REMOTE_FORMATS = {"PNG", "JPEG", "WEBP"}


def probe_image(data: bytes, label: str) -> tuple[str, int, int]:
    """Check that ``data`` is an image Pillow can read; return (format, width, height).

    Reads the header and verifies the file structure without a full decode.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt, (width, height) = im.format or "UNKNOWN", im.size
            if width * height > MAX_IMAGE_PIXELS:
                raise InvalidInputError(
                    f"{label}: image is {width}x{height} pixels, above the limit of {MAX_IMAGE_PIXELS}; downscale it first"
                )
            im.verify()
    except InvalidInputError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
        raise InvalidInputError(f"{label}: not a decodable image ({exc})") from exc
    if width < 1 or height < 1:
        raise InvalidInputError(f"{label}: image has no pixels ({width}x{height})")
    return fmt, width, height


def decode_rgb(data: bytes, label: str = "image") -> "Image.Image":
    """Fully decode ``data`` to an RGB Pillow image (alpha composited on white)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                return Image.alpha_composite(background, rgba).convert("RGB")
            return im.convert("RGB")
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidInputError(f"{label}: image could not be decoded ({exc})") from exc


def for_remote(data: bytes, fmt: str, width: int, height: int, max_side: int = REMOTE_MAX_SIDE) -> bytes:
    """Bytes to send to a remote model: the original when small and common, else a JPEG downscale."""
    if fmt in _REMOTE_FORMATS and max(width, height) <= max_side:
        return data
    im = decode_rgb(data)
    im.thumbnail((max_side, max_side))
    out = io.BytesIO()
    im.save(out, "JPEG", quality=88)
    return out.getvalue()


def encode_png(im: "Image.Image") -> bytes:
    """PNG bytes of a Pillow image (used by the test fixtures in ``ai_methods.testing``)."""
    out = io.BytesIO()
    im.save(out, "PNG")
    return out.getvalue()
