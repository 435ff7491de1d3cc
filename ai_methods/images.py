"""Decoding and re-encoding images for methods, through the decoding layer ``ai_methods.media.pictures``.

Methods see a picture as a browser shows it: EXIF orientation applied, any
mode and bit depth as 8-bit RGB, colour managed to sRGB, transparency on
white, the first frame of an animation. Remote models get bytes that show
the same thing (re-encoded when the original would need any of those rules).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Callable

from ai_methods.media import pictures
from ai_methods.media.pictures import MAX_IMAGE_PIXELS  # noqa: F401  (kept importable from here)

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

# Claude and GPT-4o both downscale past ~1.5k px on the long side; sending more only costs.
REMOTE_MAX_SIDE = 1568
_REMOTE_FORMATS = {"PNG", "JPEG", "WEBP"}


def probe_image(data: bytes, label: str) -> tuple[str, int, int]:
    """Check that ``data`` is an image Pillow can read; return (format, width, height) as DISPLAYED.

    Reads the header only (pixels are decoded when a method first needs
    them). Raises ``MediaDecodeError`` (an ``InvalidInputError``) naming
    ``label``: ``corrupt_media`` for bytes that are not an image,
    ``too_many_pixels`` above ``MAX_IMAGE_PIXELS``.
    """
    info = pictures.probe_picture(data, label, decode=False)
    return info.format, info.width, info.height


def decode_rgb(data: bytes, label: str = "image") -> "Image.Image":
    """The picture as displayed (first frame, upright, 8-bit RGB on white); ``MediaDecodeError`` if it does not decode."""
    return pictures.decode_picture(data, label)


def for_remote(
    data: bytes,
    fmt: str,
    width: int,
    height: int,
    max_side: int = REMOTE_MAX_SIDE,
    decoded: "Callable[[], Image.Image] | None" = None,
) -> bytes:
    """Bytes to send to a remote model: the original when a model would see what a browser shows, else a JPEG.

    The original goes when it is PNG/JPEG/WebP, no side above ``max_side``
    and needs none of the display rules (orientation, mode, animation, ICC);
    otherwise the displayed first frame is downscaled to ``max_side`` and
    sent as JPEG, since providers do not apply those rules the same way.
    ``decoded`` returns the picture already decoded as displayed (it is not
    modified), so a picture that local engines also read is decoded once.
    CPU-bound (Pillow releases the GIL): call it from a worker thread.
    """
    if fmt in _REMOTE_FORMATS and max(width, height) <= max_side:
        if not pictures.probe_picture(data, decode=False).needs_conversion:
            return data
    im = decoded() if decoded is not None else decode_rgb(data)
    if max(im.size) > max_side:
        im = im.copy()  # the shared decode stays as it is
        im.thumbnail((max_side, max_side))
    out = io.BytesIO()
    im.save(out, "JPEG", quality=88)
    return out.getvalue()


def encode_png(im: "Image.Image") -> bytes:
    """PNG bytes of a Pillow image (used by the test fixtures in ``ai_methods.testing``)."""
    out = io.BytesIO()
    im.save(out, "PNG")
    return out.getvalue()
