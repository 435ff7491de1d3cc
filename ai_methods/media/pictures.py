"""Still pictures (and the first frame of animations) read as a browser shows them (Pillow, imported lazily).

What a browser does and a naive ``Image.open(...).convert("RGB")`` does not:

- **EXIF orientation** (tag 0x0112, values 1-8) turns and mirrors the stored
  pixels (``image-orientation: from-image`` is the CSS default since 2020).
  Only the EXIF block counts (JPEG APP1, PNG ``eXIf``, WebP ``EXIF``, TIFF's
  own tag): Pillow's ``getexif`` also takes XMP ``tiff:Orientation``, which
  browsers ignore, so the tag is read here from the EXIF bytes alone. Values
  outside 1..8 and malformed EXIF mean "as stored", never an error (browsers,
  libvips#1514, Pillow#4215/#8605 where ``exif_transpose`` crashed).
- **16-bit samples** are scaled (0..65535 to 0..255), not clipped: Pillow's
  ``convert("L")`` clips ``I;16``/``I`` at 255 and the picture turns white
  (Pillow#1108, #5967).
- **colour**: an embedded ICC profile is converted to sRGB (browsers
  colour-manage; littleCMS through ``PIL.ImageCms``); a broken profile falls
  back to the plain conversion. CMYK JPEGs hold inverted (Adobe) inks
  whether or not the APP14 marker is there, as browsers assume (Firefox bug
  674619, LadybirdBrowser/ladybird#6486); Pillow reads them so too, and the
  corpus checks it. ``LAB`` goes through littleCMS too
  (Pillow's ``convert`` reads its L channel as grey).
- **transparency** (alpha, palette transparency, a tRNS key colour) is
  composited on white, the page behind an ad.

Pixel limits are checked on the header, before any pixel is decoded: the
displayed size, every animation frame, and the decoded pixels of the whole
animation. Pillow's own decompression-bomb limit is honoured by an explicit
check, not by turning its warning into an error: ``warnings.catch_warnings``
swaps process-wide filters and probes run in threads.
"""

from __future__ import annotations

import io
import re
import struct
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from ai_methods.media.errors import CORRUPT_MEDIA, TOO_MANY_PIXELS, MediaDecodeError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

# Bigger pictures are refused rather than decoded: an ad creative never needs more.
MAX_IMAGE_PIXELS = 80_000_000
# Decoded pixels of a whole animation (frames x canvas): a 300x250 banner of 13,000 frames,
# or 480 frames of 1920x1080. Frames are composited one after another, so this bounds the work.
MAX_ANIMATION_PIXELS = 1_000_000_000

EXIF_ORIENTATION = 0x0112
_TIFF_ORIENTATION = 274
WHITE = (255, 255, 255)
# Modes that are already 8-bit RGB or grey as a browser would paint them.
PLAIN_MODES = frozenset({"RGB", "L"})


@dataclass(frozen=True)
class PictureInfo:
    """What a picture is, from its header (and a decode of its first frame when asked).

    ``width``/``height`` are as displayed (after EXIF orientation), in pixels;
    ``stored_width``/``stored_height`` as stored. ``orientation`` is the EXIF
    value 1-8 (1 when absent or invalid). ``mode`` is Pillow's mode as stored
    (``"I;16"``, ``"CMYK"``, ``"P"``...). For animations ``frame_count`` > 1 and
    ``duration_s`` is the total display time in seconds under browser rules
    (``animation.frame_starts``); stills have ``frame_count`` 1 and ``duration_s``
    ``None``. ``icc_profile`` says whether a profile other than sRGB is embedded;
    ``has_transparency`` whether any pixel can be see-through (alpha, tRNS,
    palette transparency).
    """

    format: str
    width: int
    height: int
    stored_width: int
    stored_height: int
    orientation: int
    mode: str
    animated: bool
    frame_count: int
    duration_s: float | None
    icc_profile: bool = False
    has_transparency: bool = False

    @property
    def needs_conversion(self) -> bool:
        """True when the stored bytes need a display rule (orientation, mode or depth, transparency,
        animation, a non-sRGB profile): other decoders (remote models) may not apply it the same way."""
        return (
            self.orientation != 1
            or not (self.mode in PLAIN_MODES or self.mode == "P")
            or self.has_transparency
            or self.animated
            or self.icc_profile
        )


@contextmanager
def decode_errors(label: str, what: str, corrupt: str) -> Iterator[None]:
    """Pillow's many error types as one ``MediaDecodeError``.

    A decompression bomb is ``too_many_pixels`` ("{label}: {what} refused as a
    decompression bomb"); anything else raised inside is ``corrupt_media``
    ("{label}: {corrupt} (…)"); a ``MediaDecodeError`` passes unchanged.
    """
    from PIL import Image

    try:
        yield
    except MediaDecodeError:
        raise
    except Image.DecompressionBombError as exc:
        raise MediaDecodeError(TOO_MANY_PIXELS, f"{label}: {what} refused as a decompression bomb: {exc}") from exc
    except Exception as exc:  # Pillow raises many types for corrupt files
        # Pillow names the file object it read ("cannot identify image file <_io.BytesIO object at
        # 0x7f...>"): the label already names the input, the object's address tells a user nothing.
        detail = _FILE_OBJECT.sub("", str(exc))
        raise MediaDecodeError(CORRUPT_MEDIA, f"{label}: {corrupt} ({detail})") from exc


_FILE_OBJECT = re.compile(r" ?<_io\.\w+ (?:object at 0x[0-9a-fA-F]+|name=[^>]*)>")


def _open(source: bytes | Path):
    from PIL import Image

    return Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source)


def _read(source: bytes | Path) -> bytes:
    return bytes(source) if isinstance(source, (bytes, bytearray, memoryview)) else Path(source).read_bytes()


def orientation_from_exif(raw: bytes) -> int:
    """The Orientation (tag 0x0112) in IFD0 of an EXIF block; 1 when absent, malformed or outside 1..8.

    Follows Blink's reader (``ReadImageOrientation`` in
    ``third_party/blink/renderer/platform/image-decoders/jpeg/jpeg_image_decoder.cc``):
    an optional ``Exif\\0\\0`` prefix, a TIFF header in either byte order,
    IFD0 entries read while they lie inside the block, and the tag counted only
    as one SHORT. Pillow's parser is more lenient (it takes the first of
    several values, or an XMP value), which browsers do not.
    """
    if raw.startswith(b"Exif\x00\x00"):
        raw = raw[6:]
    if len(raw) < 8 or raw[:2] not in (b"II", b"MM"):
        return 1
    e = "<" if raw[:2] == b"II" else ">"
    if struct.unpack_from(e + "H", raw, 2)[0] != 42:
        return 1
    ifd = struct.unpack_from(e + "I", raw, 4)[0]
    if ifd + 2 > len(raw):
        return 1
    count = struct.unpack_from(e + "H", raw, ifd)[0]
    pos = ifd + 2
    for _ in range(count):
        if pos + 12 > len(raw):
            break
        tag, typ, n = struct.unpack_from(e + "HHI", raw, pos)
        if tag == EXIF_ORIENTATION and typ == 3 and n == 1:
            value = struct.unpack_from(e + "H", raw, pos + 8)[0]
            return value if 1 <= value <= 8 else 1
        pos += 12
    return 1


def exif_orientation(im: "Image.Image") -> int:
    """The EXIF orientation (1-8) of an open picture; 1 when absent, out of range or unreadable.

    Reads the EXIF bytes (``im.info["exif"]``: JPEG APP1, PNG eXIf, WebP EXIF)
    with ``orientation_from_exif``, or a TIFF's own tag; never XMP (browsers do
    not apply XMP orientation; Pillow's ``getexif`` does).
    """
    try:
        raw = im.info.get("exif")
        if raw:
            return orientation_from_exif(bytes(raw))
        if hasattr(im, "tag_v2"):
            value = im.tag_v2.get(_TIFF_ORIENTATION)
            return value if isinstance(value, int) and 1 <= value <= 8 else 1
    except Exception:  # a TIFF directory Pillow cannot read: shown as stored
        return 1
    return 1


def oriented_size(width: int, height: int, orientation: int) -> tuple[int, int]:
    """Displayed (width, height) of a ``width`` x ``height`` stored picture: orientations 5-8 swap the sides."""
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def apply_orientation(im: "Image.Image", orientation: int) -> "Image.Image":
    """``im`` turned/mirrored as EXIF ``orientation`` says (same table as ``PIL.ImageOps.exif_transpose``)."""
    from PIL import Image

    method = {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_270,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_90,
    }.get(orientation)
    return im.transpose(method) if method is not None else im


@lru_cache(maxsize=1)
def _srgb_profile():
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@lru_cache(maxsize=32)
def _transform_to_srgb(icc: bytes | None, mode: str):
    """A littleCMS transform from ``icc`` (or CIELAB when ``icc`` is None) in ``mode`` to sRGB; None when unusable."""
    from PIL import ImageCms

    try:
        source = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB") if icc is None else io.BytesIO(icc))
        # NOCACHE: littleCMS's one-pixel cache is not safe when threads share a transform (lcms2 docs).
        return ImageCms.buildTransform(source, _srgb_profile(), mode, "RGB", flags=ImageCms.Flags.NOCACHE)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None


@lru_cache(maxsize=32)
def is_srgb_profile(icc: bytes) -> bool:
    """True when ``icc`` describes itself as sRGB (converting through it would change nothing visible)."""
    from PIL import ImageCms

    try:
        return "srgb" in ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))).lower()
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return False


def _scale16(im: "Image.Image") -> "Image.Image":
    """An ``I;16*``/``I`` picture as 8-bit grey: 0..65535 scaled to 0..255 (rounded), not clipped."""
    import numpy as np
    from PIL import Image

    arr = np.asarray(im).astype(np.int64)
    arr = np.clip(arr, 0, 65535)
    return Image.fromarray(((arr * 255 + 32767) // 65535).astype(np.uint8), "L")


def _scale_float(im: "Image.Image") -> "Image.Image":
    """An ``F`` picture as 8-bit grey, assuming samples in 0.0..1.0 (float TIFF convention); NaN is black."""
    import numpy as np
    from PIL import Image

    arr = np.nan_to_num(np.asarray(im, dtype=np.float64), nan=0.0, posinf=1.0, neginf=0.0)
    return Image.fromarray(np.rint(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8), "L")


def _colour_and_alpha(im: "Image.Image") -> tuple["Image.Image", "Image.Image | None"]:
    """Split ``im`` into an 8-bit colour picture (L, RGB, CMYK, LAB) and an 8-bit alpha (or None)."""
    import numpy as np
    from PIL import Image

    mode = im.mode
    transparency = im.info.get("transparency")
    if mode.startswith("I;16") or mode == "I":
        grey = _scale16(im)
        if isinstance(transparency, int):  # a tRNS grey key in 16-bit units
            alpha = Image.fromarray(np.where(np.asarray(im).astype(np.int64) == transparency, 0, 255).astype(np.uint8), "L")
            return grey, alpha
        return grey, None
    if mode == "F":
        return _scale_float(im), None
    if mode == "CMYK":
        # Pillow reads every CMYK JPEG with Adobe's inverted polarity, marker or not, which is
        # what browsers do for standalone JPEGs (Firefox bug 674619, ladybird#6486): nothing to undo.
        return im, None
    if mode in ("LAB", "YCbCr", "HSV"):
        return (im if mode == "LAB" else im.convert("RGB")), None
    if mode in ("RGB", "L", "1") and transparency is not None:
        im = im.convert("RGBA")  # a tRNS key colour
        mode = "RGBA"
    if mode == "1":
        return im.convert("L"), None
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or transparency is not None or (im.palette is not None and im.palette.mode == "RGBA")
        if not has_alpha:
            return im.convert("RGB"), None
        im, mode = im.convert("RGBA"), "RGBA"
    if mode in ("La", "RGBa"):
        im = im.convert("LA" if mode == "La" else "RGBA")
        mode = im.mode
    if mode == "LA":
        return im.getchannel("L"), im.getchannel("A")
    if mode == "RGBA":
        return im.convert("RGB"), im.getchannel("A")
    if mode in ("RGB", "L"):
        return im, None
    return im.convert("RGB"), None  # RGBX and the rarer modes Pillow can convert


def _to_srgb(colour: "Image.Image", icc: bytes | None) -> "Image.Image":
    """8-bit ``colour`` (L, RGB, CMYK, LAB) as sRGB RGB, through ``icc`` when it is not sRGB already."""
    from PIL import ImageCms

    if colour.mode == "LAB" and not icc:
        transform = _transform_to_srgb(None, "LAB")
    elif icc and not is_srgb_profile(icc):
        transform = _transform_to_srgb(icc, colour.mode)
    else:
        transform = None
    if transform is not None:
        try:
            return ImageCms.applyTransform(colour, transform)
        except (ImageCms.PyCMSError, ValueError):
            pass  # a profile that does not fit the pixels: show them unmanaged, as browsers do
    if colour.mode == "LAB":
        transform = _transform_to_srgb(None, "LAB")
        if transform is not None:
            return ImageCms.applyTransform(colour, transform)
    return colour.convert("RGB")


def displayed_rgb(im: "Image.Image", *, orientation: int | None = None, icc_profile: bytes | None = None) -> "Image.Image":
    """The current frame of an open picture as a browser paints it: upright 8-bit RGB on white.

    ``orientation`` overrides the EXIF value read from ``im`` (animations pass
    the file's value for every frame; later frames of some formats lose
    ``info["exif"]``). ``icc_profile`` overrides ``im.info["icc_profile"]`` the
    same way. Returns a new ``RGB`` image of the displayed size; raises what
    Pillow raises on undecodable pixels (callers map it to
    ``MediaDecodeError``).
    """
    from PIL import Image

    im.load()
    if orientation is None:
        orientation = exif_orientation(im)
    icc = icc_profile if icc_profile is not None else im.info.get("icc_profile")
    colour, alpha = _colour_and_alpha(im)
    rgb = _to_srgb(colour, icc or None)
    if alpha is not None:
        page = Image.new("RGB", rgb.size, WHITE)
        page.paste(rgb, (0, 0), alpha)
        rgb = page
    return apply_orientation(rgb, orientation)


def _pixel_limits(width: int, height: int, label: str, max_pixels: int) -> None:
    from PIL import Image

    if width * height > max_pixels:
        raise MediaDecodeError(
            TOO_MANY_PIXELS, f"{label}: image is {width}x{height}, above the {max_pixels:,} pixel limit; downscale it first"
        )
    pillow_limit = Image.MAX_IMAGE_PIXELS
    if pillow_limit and width * height > pillow_limit:
        raise MediaDecodeError(
            TOO_MANY_PIXELS,
            f"{label}: image is {width}x{height}, above Pillow's decompression-bomb limit of {pillow_limit:,} pixels",
        )


def probe_picture(
    source: bytes | Path, label: str = "image", *, max_pixels: int = MAX_IMAGE_PIXELS, decode: bool = True
) -> PictureInfo:
    """Measure a picture from its header; with ``decode`` also decode its first frame.

    Refuses (``MediaDecodeError`` ``too_many_pixels``), before any pixel is
    decoded, a displayed size or any animation frame above ``max_pixels``, an
    animation whose frames x canvas exceed ``MAX_ANIMATION_PIXELS``, and what
    Pillow's decompression-bomb limit refuses. A file Pillow cannot identify,
    a header without pixels, or (with ``decode``) pixels that do not decode
    (truncated files) is ``corrupt_media``. ``label`` names the input in the
    messages.
    """
    from PIL import Image

    from ai_methods.media import animation

    with decode_errors(label, "image", "not a decodable image"):
        with _open(source) as im:
            fmt, (stored_w, stored_h), mode = im.format or "UNKNOWN", im.size, im.mode
            _pixel_limits(stored_w, stored_h, label, max_pixels)
            header = animation.read_header(_read(source)) if fmt in animation.ANIMATED_FORMATS else None
            if header is not None and header.animated:
                animation.check_limits(header, label, max_pixels)
                stored_w, stored_h = header.canvas
            if decode:
                if header is not None and header.animated:
                    next(animation.frames_at(source, [0.0], max_pixels=max_pixels, label=label, _header=header))
                else:
                    try:
                        im.load()
                    except (Image.DecompressionBombError, MediaDecodeError):
                        raise
                    except Exception as exc:  # a header that promises pixels the file does not hold
                        raise MediaDecodeError(
                            CORRUPT_MEDIA, f"{label}: not a decodable image, its pixel data does not decode ({exc})"
                        ) from exc
            orientation = exif_orientation(im)
            icc = im.info.get("icc_profile")
            has_transparency = "transparency" in im.info or mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
                mode == "P" and im.palette is not None and im.palette.mode == "RGBA"
            )
    if stored_w < 1 or stored_h < 1:
        raise MediaDecodeError(CORRUPT_MEDIA, f"{label}: image has no pixels ({stored_w}x{stored_h})")
    width, height = oriented_size(stored_w, stored_h, orientation)
    animated = header is not None and header.animated
    return PictureInfo(
        format=fmt,
        width=width,
        height=height,
        stored_width=stored_w,
        stored_height=stored_h,
        orientation=orientation,
        mode=mode,
        animated=animated,
        frame_count=len(header.frames) if animated else 1,
        duration_s=animation.total_duration(header) if animated else None,
        icc_profile=bool(icc) and not is_srgb_profile(icc),
        has_transparency=has_transparency,
    )


def decode_picture(source: bytes | Path, label: str = "image", *, max_pixels: int = MAX_IMAGE_PIXELS) -> "Image.Image":
    """The first frame as displayed: an upright 8-bit ``RGB`` Pillow image, transparency on white.

    Raises ``MediaDecodeError`` (``too_many_pixels`` before decoding, else
    ``corrupt_media``) like ``probe_picture``.
    """
    from PIL import Image

    from ai_methods.media import animation

    with decode_errors(label, "image", "image could not be decoded"):
        im = _open(source)
        kept = False
        try:
            _pixel_limits(im.size[0], im.size[1], label, max_pixels)
            if im.format in animation.ANIMATED_FORMATS:
                header = animation.read_header(_read(source))
                if header is not None and header.animated:
                    animation.check_limits(header, label, max_pixels)
                    return next(animation.frames_at(source, [0.0], max_pixels=max_pixels, label=label, _header=header)).image
            im.load()
            # Bytes only: a picture opened from a path would keep its file open.
            kept = isinstance(source, (bytes, bytearray, memoryview)) and _displayed_as_decoded(im)
            # Pixels a browser paints as they are need no copy (~4 ms and 3.5 MB for a 1080² ad).
            return im if kept else displayed_rgb(im)
        finally:
            if not kept:
                im.close()


def _displayed_as_decoded(im: "Image.Image") -> bool:
    """Whether ``displayed_rgb`` would only copy ``im``: 8-bit RGB, no transparency key, upright, sRGB or no profile."""
    if im.mode != "RGB" or "transparency" in im.info or exif_orientation(im) != 1:
        return False
    icc = im.info.get("icc_profile")
    return not icc or is_srgb_profile(icc)
