"""Still and animated pictures of the kinds ad sources hand out, each with what a browser shows.

Every generator returns a case: the encoded bytes plus the truth a test asserts
against: the displayed size, the words rendered on it in reading order, and the
upright 8-bit RGB picture a browser paints on a white page (``control``). For
animations: each frame's display start, the total duration, the message on
each frame and each frame's displayed canvas.

The containers that matter are written here byte by byte (GIF blocks, APNG
chunks, EXIF IFDs, an ICC profile), not by Pillow's encoders, so that the
members are exactly the awkward files found in bug reports (partial GIF tiles
with each disposal method, APNG blend and dispose operations, a zero frame
delay, broken EXIF) and the truth is computed by a reference compositor that
follows the format specifications, independent of the decoder under test.

Sources of the members (public bug reports, found before writing this):
- EXIF orientation 0 / out of range crashing or rotating wrongly: colmap#4322,
  wagtail/Willow#36, libvips#1514 (values outside 1..8 are ignored by browsers);
  exif_transpose crashing on malformed IFDs: Pillow#4215 ("tuple index out of
  range"), Pillow#8605 (ZeroDivisionError), pilkit#12, huggingface/datasets#6739.
- XMP ``tiff:Orientation`` is honoured by Pillow's ``getexif`` but not by
  browsers (unslothai/unsloth#10553).
- PNG eXIf orientation: LadybirdBrowser/ladybird#1821, w3c/png#310.
- 16-bit samples clipped to white instead of scaled: Pillow#1108, Pillow#5967,
  ros-perception/image_pipeline#334; ``I;16B``/``I;16L`` refusing point
  operations: unslothai/unsloth#10094.
- CMYK JPEGs stored inverted (Adobe) and without the Adobe marker:
  LadybirdBrowser/ladybird#6486 (Firefox bug 674619), libvips#1283.
- ICC-tagged pictures read as sRGB look wrong: cgwire/zou#1188, pbs/its#172;
  broken profiles must not fail the picture: pbs/its#180.
- Palette/alpha transparency turning black: NVIDIA/DIGITS#85, squoosh#699.
- GIF disposal and transparency: Pillow#3433, #5538, #5557, #4640; frames
  outside the logical screen: Pillow#8218, #2402; frame delays <= 10 ms shown
  as 100 ms: WebKit bug 36082, whistyun/AnimatedImage#5, sylikc/jpegview#108.
- APNG dispose/blend: Pillow#5126, #4657, #5032, SixLabors/ImageSharp#2708.
- WebP frame durations only known after decoding in Pillow: Pillow#9790/#9791.
- Animation pixel bombs (many frames, huge frame extents): Pillow#6402,
  nothings/stb#1992, libvips#2176.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ad_assets.demo.samples import render_ad_image

WHITE = (255, 255, 255)


# ----------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class PictureCase:
    """One still member of a kind.

    ``control`` is what a browser paints (upright, 8-bit RGB, on white);
    ``max_mean_diff`` is the mean absolute difference (0..255 per channel)
    allowed between a decode and the control (lossy encodings differ a little).
    """

    kind: str
    name: str
    data: bytes = field(repr=False)
    displayed_size: tuple[int, int]
    control: Image.Image = field(repr=False)
    words: tuple[str, ...] = ()
    max_mean_diff: float = 1.0
    orientation: int = 1

    @property
    def id(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class AnimationCase:
    """One animated member: per frame its display start (s), its message and its displayed canvas."""

    kind: str
    name: str
    data: bytes = field(repr=False)
    displayed_size: tuple[int, int]
    starts: tuple[float, ...]
    duration_s: float
    messages: tuple[tuple[str, ...], ...]
    canvases: tuple[Image.Image, ...] = field(repr=False)
    max_mean_diff: float = 1.0

    @property
    def id(self) -> str:
        return f"{self.kind}/{self.name}"


def ad(lines: list[str], size: tuple[int, int] = (480, 320), background=(250, 245, 235), foreground=(40, 30, 20)):
    """An upright ad picture (RGB) with ``lines`` of large text."""
    return render_ad_image(lines, size=size, background=background, foreground=foreground)


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **kw)
    return out.getvalue()


def mean_diff(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference per channel (0..255) between a decode ``a`` and an expected picture ``b``."""
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b.convert("RGB"), np.float64)).mean())


def on_white(rgba: np.ndarray) -> Image.Image:
    """Composite an ``HxWx4`` uint8 RGBA array on white, as a page behind an image does."""
    a = rgba[..., 3:4].astype(np.float64) / 255.0
    rgb = rgba[..., :3].astype(np.float64) * a + 255.0 * (1.0 - a)
    return Image.fromarray(np.rint(rgb).astype(np.uint8), "RGB")


# ----------------------------------------------------------------------------- PNG chunks


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_idat(arr: np.ndarray) -> bytes:
    """zlib stream of ``arr`` (HxW or HxWxC, uint8 or big-endian uint16) rows with filter 0."""
    rows = arr.reshape(arr.shape[0], -1)
    return zlib.compress(b"".join(b"\x00" + row.tobytes() for row in rows))


def png_raw(arr: np.ndarray, color_type: int, extra_chunks: list[bytes] = ()) -> bytes:
    """A PNG written from samples: ``arr`` uint8 (bit depth 8) or uint16 (bit depth 16)."""
    h, w = arr.shape[:2]
    depth = 16 if arr.dtype == np.uint16 else 8
    samples = arr.astype(">u2") if depth == 16 else arr
    ihdr = png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + ihdr + b"".join(extra_chunks) + png_chunk(b"IDAT", png_idat(samples)) + png_chunk(b"IEND", b"")


# ----------------------------------------------------------------------------- GIF, written by hand


@dataclass(frozen=True)
class GifFrame:
    """One GIF image block: a tile of palette ``indices`` (HxW uint8) placed at (``x``, ``y``).

    ``delay_cs`` is the Graphic Control Extension delay in hundredths of a
    second; ``gce=False`` writes no GCE at all (no delay, no disposal).
    ``transparent`` is the index that leaves the canvas unchanged.
    """

    x: int
    y: int
    indices: np.ndarray
    delay_cs: int = 50
    disposal: int = 1
    transparent: int | None = None
    gce: bool = True


def _lzw_literals(indices: bytes) -> bytes:
    """GIF LZW data that codes every pixel as a literal (a clear code every 250 pixels keeps codes 9 bits)."""
    clear, eoi, width = 256, 257, 9
    codes: list[int] = []
    for i in range(0, len(indices), 250):
        codes.append(clear)
        codes.extend(indices[i : i + 250])
    codes.append(eoi)
    acc = nbits = 0
    out = bytearray()
    for code in codes:
        acc |= code << nbits
        nbits += width
        while nbits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nbits -= 8
    if nbits:
        out.append(acc & 0xFF)
    blocks = b"".join(bytes([len(out[i : i + 255])]) + bytes(out[i : i + 255]) for i in range(0, len(out), 255))
    return b"\x08" + blocks + b"\x00"


def gif_bytes(screen: tuple[int, int], palette: np.ndarray, frames: list[GifFrame], background: int = 0, loop: bool = True) -> bytes:
    """A GIF89a with a 256-colour global palette (``palette`` 256x3 uint8) and the given image blocks."""
    w, h = screen
    out = bytearray(b"GIF89a" + struct.pack("<HHBBB", w, h, 0xF7, background, 0))
    out += palette.astype(np.uint8).tobytes()
    if loop:
        out += b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    for f in frames:
        if f.gce:
            flags = (f.disposal & 7) << 2 | (1 if f.transparent is not None else 0)
            out += b"\x21\xf9\x04" + struct.pack("<BHB", flags, f.delay_cs, f.transparent or 0) + b"\x00"
        th, tw = f.indices.shape
        out += b"\x2c" + struct.pack("<HHHHB", f.x, f.y, tw, th, 0)
        out += _lzw_literals(f.indices.astype(np.uint8).tobytes())
    out += b"\x3b"
    return bytes(out)


def gif_reference(screen: tuple[int, int], palette: np.ndarray, frames: list[GifFrame]) -> list[Image.Image]:
    """Each frame's canvas as Chromium and Firefox paint it, on white.

    The canvas starts transparent. Before frame *i* is drawn, frame *i-1*'s
    disposal applies: 0/1 keep, 2 clears its rectangle to transparent (browsers
    ignore the background colour index, Pillow#5557), 3 restores the canvas as
    it was before frame *i-1*. Transparent-index pixels leave the canvas
    unchanged; tiles are clipped to the logical screen (Pillow#8218).
    """
    w, h = screen
    canvas = np.zeros((h, w, 4), np.uint8)
    shown: list[Image.Image] = []
    previous: GifFrame | None = None
    saved: np.ndarray | None = None
    for f in frames:
        if previous is not None:
            if previous.disposal == 2:
                th, tw = previous.indices.shape
                canvas[previous.y : previous.y + th, previous.x : previous.x + tw] = 0
            elif previous.disposal == 3 and saved is not None:
                canvas = saved
        saved = canvas.copy() if f.gce and f.disposal == 3 else None
        th, tw = f.indices.shape
        tile = f.indices[: max(0, h - f.y), : max(0, w - f.x)]
        region = canvas[f.y : f.y + tile.shape[0], f.x : f.x + tile.shape[1]]
        opaque = tile != f.transparent if f.transparent is not None else np.ones(tile.shape, bool)
        region[opaque, :3] = palette[tile[opaque]]
        region[opaque, 3] = 255
        shown.append(on_white(canvas))
        previous = f if f.gce else GifFrame(f.x, f.y, f.indices, disposal=0)  # no GCE: no disposal
    return shown


def shared_palette(images: list[Image.Image], reserve_transparent: bool = True) -> tuple[np.ndarray, list[np.ndarray]]:
    """One 256x3 palette for all ``images`` and each image as indices into it (index 255 left unused)."""
    total_w = sum(im.width for im in images)
    sheet = Image.new("RGB", (total_w, max(im.height for im in images)), WHITE)
    x = 0
    for im in images:
        sheet.paste(im, (x, 0))
        x += im.width
    quantised = sheet.quantize(colors=255 if reserve_transparent else 256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    pal = np.zeros((256, 3), np.uint8)
    raw = np.frombuffer(bytes(quantised.getpalette()[: 256 * 3]), np.uint8)
    pal[: len(raw) // 3] = raw.reshape(-1, 3)
    out = []
    for im in images:
        out.append(np.asarray(im.quantize(palette=quantised, dither=Image.Dither.NONE)))
    return pal, out


# ----------------------------------------------------------------------------- APNG, written by hand


@dataclass(frozen=True)
class ApngFrame:
    """One APNG frame: an RGBA tile (HxWx4 uint8) at (``x``, ``y``), its delay and its operations.

    ``dispose``: 0 none, 1 background (clear to transparent black), 2 previous.
    ``blend``: 0 source (replace, alpha included), 1 over (alpha-composite).
    """

    x: int
    y: int
    rgba: np.ndarray
    delay: tuple[int, int] = (1, 2)
    dispose: int = 0
    blend: int = 0


def apng_bytes(size: tuple[int, int], frames: list[ApngFrame], hidden_default: np.ndarray | None = None) -> bytes:
    """An APNG (RGBA 8-bit). With ``hidden_default``, that picture is the IDAT shown by non-APNG decoders only."""
    w, h = size
    chunks = [png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0))]
    chunks.append(png_chunk(b"acTL", struct.pack(">II", len(frames), 0)))
    seq = 0
    if hidden_default is not None:
        chunks.append(png_chunk(b"IDAT", png_idat(hidden_default)))
    for i, f in enumerate(frames):
        th, tw = f.rgba.shape[:2]
        num, den = f.delay
        chunks.append(png_chunk(b"fcTL", struct.pack(">IIIIIHHBB", seq, tw, th, f.x, f.y, num, den, f.dispose, f.blend)))
        seq += 1
        data = png_idat(f.rgba)
        if i == 0 and hidden_default is None:
            chunks.append(png_chunk(b"IDAT", data))
        else:
            chunks.append(png_chunk(b"fdAT", struct.pack(">I", seq) + data))
            seq += 1
    chunks.append(png_chunk(b"IEND", b""))
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)


def apng_reference(size: tuple[int, int], frames: list[ApngFrame]) -> list[Image.Image]:
    """Each frame's output buffer as the APNG specification (wiki.mozilla.org/APNG_Specification) defines it, on white."""
    w, h = size
    buf = np.zeros((h, w, 4), np.float64)
    shown = []
    for i, f in enumerate(frames):
        th, tw = f.rgba.shape[:2]
        sl = (slice(f.y, f.y + th), slice(f.x, f.x + tw))
        before = buf[sl].copy()
        src = f.rgba.astype(np.float64)
        if f.blend == 0:
            buf[sl] = src
        else:
            sa, da = src[..., 3:4] / 255.0, buf[sl][..., 3:4] / 255.0
            oa = sa + da * (1 - sa)
            rgb = np.where(oa > 0, (src[..., :3] * sa + buf[sl][..., :3] * da * (1 - sa)) / np.maximum(oa, 1e-9), 0)
            buf[sl] = np.concatenate([rgb, oa * 255.0], axis=-1)
        shown.append(on_white(np.rint(buf).astype(np.uint8)))
        dispose = 1 if (f.dispose == 2 and i == 0) else f.dispose  # spec: PREVIOUS on the first frame is BACKGROUND
        if dispose == 1:
            buf[sl] = 0
        elif dispose == 2:
            buf[sl] = before
    return shown


# ----------------------------------------------------------------------------- EXIF orientation

ORIENTATION_WORDS = ("SPRING", "DEALS", "40% OFF")
# The transpose that turns an upright picture into what a camera stores for each EXIF value
# (the inverse of what a viewer applies: PIL.ImageOps.exif_transpose's table).
_STORE = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def upright_portrait() -> Image.Image:
    """The portrait ad every orientation member shows: 360x480, three lines."""
    return ad(list(ORIENTATION_WORDS), (360, 480))


def stored_for(upright: Image.Image, orientation: int) -> Image.Image:
    method = _STORE[orientation]
    return upright.transpose(method) if method is not None else upright.copy()


def exif_with_orientation(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def orientation_member(orientation: int, fmt: str = "JPEG") -> PictureCase:
    """The portrait ad stored as a camera would for ``orientation``, tagged in ``fmt``'s EXIF block."""
    upright = upright_portrait()
    kw = {"quality": 92} if fmt == "JPEG" else ({"lossless": True} if fmt == "WEBP" else {})
    data = encode(stored_for(upright, orientation), fmt, exif=exif_with_orientation(orientation), **kw)
    return PictureCase(
        "exif-orientation", f"{fmt.lower()}-{orientation}", data, upright.size, upright, ORIENTATION_WORDS,
        max_mean_diff=2.5 if fmt == "JPEG" else 0.5, orientation=orientation,
    )


def tiff_exif(entries: list[tuple[int, int, int, bytes]], *, order: bytes = b"II", ifd_offset: int = 8, claimed: int | None = None, cut: int | None = None) -> bytes:
    """A hand-made EXIF block ("Exif\\0\\0" + TIFF header + IFD0), malformed as asked.

    ``entries`` are (tag, type, count, 4-byte value field); ``claimed`` overrides
    the entry count; ``cut`` truncates the block after that many bytes of TIFF.
    """
    e = "<" if order == b"II" else ">"
    body = struct.pack(e + "H", len(entries) if claimed is None else claimed)
    for tag, typ, count, value in entries:
        body += struct.pack(e + "HHI", tag, typ, count) + value.ljust(4, b"\x00")
    body += struct.pack(e + "I", 0)
    tiff = order + struct.pack(e + "HI", 42, ifd_offset) + body
    if cut is not None:
        tiff = tiff[:cut]
    return b"Exif\x00\x00" + tiff


def _short(v: int) -> bytes:
    return struct.pack("<H", v)


def malformed_exif_members() -> list[PictureCase]:
    """JPEGs whose EXIF is broken in the ways bug reports show; each must decode, shown as browsers show it.

    An orientation outside 1..8 or of the wrong type is ignored (picture as
    stored); an Orientation of 6 next to a broken rational still applies.
    """
    upright = upright_portrait()
    stored6 = stored_for(upright, 6)
    members = [
        ("orientation-0", [(0x0112, 3, 1, _short(0))], 1),  # colmap#4322, Willow#36
        ("orientation-9", [(0x0112, 3, 1, _short(9))], 1),  # libvips#1514
        ("orientation-65535", [(0x0112, 3, 1, _short(65535))], 1),
        ("orientation-ascii", [(0x0112, 2, 2, b"6\x00")], 1),
        ("orientation-two-values", [(0x0112, 3, 2, _short(6) + _short(6))], 1),  # Pillow takes the first; Blink ignores it
    ]
    cases = []
    for name, entries, shown in members:
        data = encode(stored6, "JPEG", quality=92, exif=tiff_exif(entries))
        cases.append(PictureCase("exif-malformed", name, data, stored6.size, stored6, max_mean_diff=2.5, orientation=shown))
    # Pillow#4215: an IFD claiming more entries than the block holds; the entries that are there count.
    block = tiff_exif([(0x0112, 3, 1, _short(6))], claimed=300)
    data = encode(stored6, "JPEG", quality=92, exif=block)
    cases.append(PictureCase("exif-malformed", "ifd-count-beyond-data", data, upright.size, upright, ORIENTATION_WORDS, 2.5, 6))
    broken_blocks = [
        ("ifd-offset-out-of-range", tiff_exif([(0x0112, 3, 1, _short(6))], ifd_offset=0xFFFF)),
        ("bad-byte-order", tiff_exif([(0x0112, 3, 1, _short(6))], order=b"XX")),
        ("truncated-header", tiff_exif([(0x0112, 3, 1, _short(6))], cut=5)),
    ]
    for name, block in broken_blocks:
        data = encode(stored6, "JPEG", quality=92, exif=block)
        cases.append(PictureCase("exif-malformed", name, data, stored6.size, stored6, max_mean_diff=2.5, orientation=1))
    # Pillow#8605: a rational with a zero denominator (XResolution 0/0) beside a valid Orientation 6.
    # The rational's 8 bytes sit after the IFD: header 8 + count 2 + 2 entries x 12 + next-IFD 4 = 38.
    block = tiff_exif([(0x0112, 3, 1, _short(6)), (0x011A, 5, 1, struct.pack("<I", 38))]) + b"\x00" * 8
    data = encode(stored6, "JPEG", quality=92, exif=block)
    cases.append(PictureCase("exif-malformed", "zero-denominator-rational", data, upright.size, upright, ORIENTATION_WORDS, 2.5, 6))
    # unsloth#10553: XMP tiff:Orientation alone; Pillow's getexif() applies it, browsers do not.
    xmp = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>'
    )
    data = encode(stored6, "JPEG", quality=92, xmp=xmp)
    cases.append(PictureCase("exif-malformed", "xmp-orientation-only", data, stored6.size, stored6, max_mean_diff=2.5, orientation=1))
    # A PNG eXIf chunk that is not a TIFF structure at all.
    data = png_raw(np.asarray(stored6), 2, [png_chunk(b"eXIf", b"not a tiff header at all")])
    cases.append(PictureCase("exif-malformed", "png-exif-garbage", data, stored6.size, stored6, max_mean_diff=0.0, orientation=1))
    return cases


# ----------------------------------------------------------------------------- modes and bit depths

MODE_WORDS = ("WINTER SALE", "50% OFF")


def grey_ad() -> Image.Image:
    """Dark text on light grey (the png-16bit case), mode L, 480x320."""
    return ad(list(MODE_WORDS), background=(235, 235, 235), foreground=(30, 30, 30)).convert("L")


def colour_ad() -> Image.Image:
    return ad(list(MODE_WORDS), background=(250, 220, 60), foreground=(20, 40, 160))


def _alpha_band(size: tuple[int, int]) -> np.ndarray:
    """Alpha (HxW uint8): opaque, with a see-through strip across the bottom sixth (below the text)."""
    w, h = size
    a = np.full((h, w), 255, np.uint8)
    a[h - h // 6 :, :] = 0
    return a


def mode_members() -> list[PictureCase]:
    """Every Pillow mode and bit depth a served picture arrives in, each with its 8-bit control."""
    grey = grey_ad()
    g = np.asarray(grey)
    g16 = g.astype(np.uint16) * 257  # 0..255 spread over the full 16-bit range: 235 -> 60395
    colour = colour_ad()
    c = np.asarray(colour)
    c16 = c.astype(np.uint16) * 257
    alpha = _alpha_band(grey.size)
    grey_rgb = grey.convert("RGB")
    grey_on_white = on_white(np.dstack([np.repeat(g[..., None], 3, 2), alpha]))
    colour_on_white = on_white(np.dstack([c, alpha]))
    w = lambda kind, name, data, control, diff=0.0, words=MODE_WORDS: PictureCase(kind, name, data, control.size, control, words, diff)  # noqa: E731
    members = [
        w("mode", "L-png", encode(grey, "PNG"), grey_rgb),
        w("mode", "LA-png", encode(Image.fromarray(np.dstack([g, alpha]), "LA"), "PNG"), grey_on_white),
        w("mode", "RGBA-png", encode(Image.fromarray(np.dstack([c, alpha]), "RGBA"), "PNG"), colour_on_white),
        w("mode", "I16-png-gray16", png_raw(g16, 0), grey_rgb),  # opens as I;16 (the png-16bit case)
        # A tRNS grey key in 16-bit units: the background (235 * 257) becomes see-through.
        w("mode", "I16-png-trns-key", png_raw(g16, 0, [png_chunk(b"tRNS", struct.pack(">H", 235 * 257))]),
          on_white(np.dstack([np.repeat(g[..., None], 3, 2), np.where(g == 235, 0, 255).astype(np.uint8)]))),
        w("mode", "LA16-png", png_raw(np.dstack([g16, alpha.astype(np.uint16) * 257]), 4), grey_on_white),
        w("mode", "RGB48-png", png_raw(c16, 2), colour),
        w("mode", "RGBA64-png", png_raw(np.dstack([c16, alpha.astype(np.uint16) * 257]), 6), colour_on_white),
        w("mode", "I16B-tiff", encode(_i16b(g16), "TIFF"), grey_rgb),
        w("mode", "I32-tiff-16bit-range", encode(Image.fromarray(g16.astype(np.int32)), "TIFF"), grey_rgb),
        w("mode", "F-tiff-unit-range", encode(Image.fromarray(g.astype(np.float32) / 255.0, "F"), "TIFF"), grey_rgb, 0.5),
        w("mode", "1-png", encode(grey.point(lambda v: 255 if v > 128 else 0).convert("1", dither=Image.Dither.NONE), "PNG"),
          grey.point(lambda v: 255 if v > 128 else 0).convert("RGB")),
        w("mode", "CMYK-jpeg-adobe", encode(colour.convert("CMYK"), "JPEG", quality=95), colour, 3.0),
        w("mode", "CMYK-jpeg-no-adobe-marker", strip_adobe_marker(encode(colour.convert("CMYK"), "JPEG", quality=95)), colour, 3.0),
        w("mode", "CMYK-tiff", encode(colour.convert("CMYK"), "TIFF"), colour),
        w("mode", "YCbCr-tiff", encode(colour.convert("YCbCr"), "TIFF"), colour, 2.0),
        w("mode", "LAB-tiff", encode(_to_lab(colour), "TIFF"), colour, 2.0),
    ]
    pal_im = colour.quantize(colors=64, dither=Image.Dither.NONE)
    members.append(w("mode", "P-png", encode(pal_im, "PNG"), pal_im.convert("RGB")))
    # Palette + tRNS: the background's index made transparent, so the page (white) shows through.
    bg_index = int(np.bincount(np.asarray(pal_im).ravel()).argmax())
    trns = pal_im.copy()
    trns.info["transparency"] = bg_index
    expected = np.asarray(pal_im.convert("RGB")).copy()
    expected[np.asarray(pal_im) == bg_index] = 255
    members.append(w("mode", "P-png-trns", encode(trns, "PNG", transparency=bg_index), Image.fromarray(expected)))
    members.append(w("mode", "P-gif-transparency", encode(trns, "GIF", transparency=bg_index), Image.fromarray(expected)))
    members.append(w("mode", "RGB-jpeg", encode(colour, "JPEG", quality=95), colour, 3.0))
    return members


def _i16b(g16: np.ndarray) -> Image.Image:
    im = Image.new("I;16B", (g16.shape[1], g16.shape[0]))
    im.frombytes(g16.astype(">u2").tobytes())
    return im


def _to_lab(rgb: Image.Image) -> Image.Image:
    from PIL import ImageCms

    t = ImageCms.buildTransform(ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB"), "RGB", "LAB")
    return ImageCms.applyTransform(rgb, t)


def strip_adobe_marker(jpeg: bytes) -> bytes:
    """The JPEG without its APP14 "Adobe" segment (the inks stay inverted, as Photoshop wrote them)."""
    i = jpeg.find(b"\xff\xee")
    assert i > 0 and jpeg[i + 4 : i + 9] == b"Adobe", "no Adobe APP14 segment"
    length = struct.unpack(">H", jpeg[i + 2 : i + 4])[0]
    return jpeg[:i] + jpeg[i + 2 + length :]


# ----------------------------------------------------------------------------- ICC profiles


def _s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ \x00\x00\x00\x00" + _s15(x) + _s15(y) + _s15(z)


def linear_rgb_profile(description: str = "Linear RGB gamma 1.0") -> bytes:
    """An ICC v2 display profile with sRGB's primaries (D50-adapted) and a linear (gamma 1.0) tone curve.

    Pixels tagged with it hold linear light, so a browser shows value v as
    sRGB-encoded v: 128 appears as about 188. Written by hand: Pillow ships no
    profiles and ``ImageCms.createProfile`` makes only sRGB, LAB and XYZ.
    """
    text = description.encode("ascii") + b"\x00"
    desc = b"desc\x00\x00\x00\x00" + struct.pack(">I", len(text)) + text + b"\x00" * 4 + b"\x00" * 4 + b"\x00\x00\x00" + b"\x00" * 67
    curve = b"curv\x00\x00\x00\x00" + struct.pack(">IH", 1, 0x0100) + b"\x00\x00"
    tags = [
        (b"desc", desc),
        (b"wtpt", _xyz(0.9642, 1.0, 0.8249)),
        (b"rXYZ", _xyz(0.4361, 0.2225, 0.0139)),
        (b"gXYZ", _xyz(0.3851, 0.7169, 0.0971)),
        (b"bXYZ", _xyz(0.1431, 0.0606, 0.7141)),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
        (b"cprt", b"text\x00\x00\x00\x00public domain\x00\x00\x00"),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, blobs = b"", b""
    for sig, blob in tags:
        blob = blob + b"\x00" * (-len(blob) % 4)
        table += sig + struct.pack(">II", offset + len(blobs), len(blob))
        blobs += blob
    size = offset + len(blobs)
    header = (
        struct.pack(">I", size) + b"\x00\x00\x00\x00" + struct.pack(">I", 0x02100000) + b"mntrRGB XYZ "
        + struct.pack(">6H", 2026, 1, 1, 0, 0, 0) + b"acsp" + b"\x00" * 24 + struct.pack(">I", 0)
        + _s15(0.9642) + _s15(1.0) + _s15(0.8249) + b"\x00" * 48
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + blobs


def srgb_encode(linear_8bit: np.ndarray) -> np.ndarray:
    """sRGB transfer function (IEC 61966-2-1) of 8-bit linear values, as 8-bit."""
    v = linear_8bit.astype(np.float64) / 255.0
    s = np.where(v <= 0.0031308, 12.92 * v, 1.055 * np.power(v, 1 / 2.4) - 0.055)
    return np.rint(s * 255.0).astype(np.uint8)


def icc_members() -> list[PictureCase]:
    """Pictures with embedded ICC profiles: converted to sRGB as browsers do, a broken profile ignored."""
    from PIL import ImageCms

    colour = colour_ad()
    c = np.asarray(colour)
    linear = linear_rgb_profile()
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return [
        PictureCase("icc", "linear-rgb-png", encode(colour, "PNG", icc_profile=linear), colour.size, Image.fromarray(srgb_encode(c)), MODE_WORDS, 1.5),
        PictureCase("icc", "linear-rgb-jpeg", encode(colour, "JPEG", quality=95, icc_profile=linear), colour.size, Image.fromarray(srgb_encode(c)), MODE_WORDS, 3.5),
        PictureCase("icc", "srgb-jpeg", encode(colour, "JPEG", quality=95, icc_profile=srgb), colour.size, colour, MODE_WORDS, 3.0),
        PictureCase("icc", "broken-profile-png", encode(colour, "PNG", icc_profile=b"\x00\x00\x01\x00garbage" * 20), colour.size, colour, MODE_WORDS, 0.0),
        PictureCase("icc", "rgb-profile-on-grey-png", encode(grey_ad(), "PNG", icc_profile=linear), grey_ad().size, grey_ad().convert("RGB"), MODE_WORDS, 0.0),
    ]


# ----------------------------------------------------------------------------- animations

BANNER_MESSAGES = (("SPRING", "SALE"), ("FREE", "SHIPPING"), ("SHOP", "NOW"))
_BANNER_COLOURS = ((250, 245, 235), (30, 90, 200), (200, 40, 40))


def banner_frames(size: tuple[int, int] = (480, 240)) -> list[Image.Image]:
    """Three full frames, one message each (the animated-gif case)."""
    fg = ((40, 30, 20), (255, 255, 255), (255, 255, 255))
    return [ad(list(m), size, background=bg, foreground=f) for m, bg, f in zip(BANNER_MESSAGES, _BANNER_COLOURS, fg)]


def _starts(delays_ms: list[float]) -> tuple[tuple[float, ...], float]:
    """Browser display starts of frames shown for ``delays_ms`` (already clamped)."""
    out, t = [], 0.0
    for d in delays_ms:
        out.append(round(t / 1000.0, 6))
        t += d
    return tuple(out), t / 1000.0


def gif_member(name: str, screen, palette, frames: list[GifFrame], shown_ms: list[float], messages, kind="gif") -> AnimationCase:
    starts, total = _starts(shown_ms)
    canvases = gif_reference(screen, palette, frames)
    return AnimationCase(kind, name, gif_bytes(screen, palette, frames, background=254), canvases[0].size, starts, total, messages, tuple(canvases))


def gif_members() -> list[AnimationCase]:
    """Animated GIFs: the 3-message banner, browser delay rules, partial tiles with each disposal, odd screens."""
    frames_rgb = banner_frames()
    pal, (a, b, c) = shared_palette(frames_rgb)
    pal[254] = (0, 200, 0)  # the background colour index, which browsers ignore when disposing
    out = [
        gif_member("banner-3-messages", (480, 240), pal,
                   [GifFrame(0, 0, a, 150), GifFrame(0, 0, b, 150), GifFrame(0, 0, c, 200)], [1500, 1500, 2000], BANNER_MESSAGES),
        # WebKit bug 36082: 0 and 10 ms show for 100 ms, 20 ms stays, a frame without GCE has no delay (100 ms).
        gif_member("delays-0-10-20-none", (480, 240), pal,
                   [GifFrame(0, 0, a, 0), GifFrame(0, 0, b, 1), GifFrame(0, 0, c, 2), GifFrame(0, 0, a, gce=False)],
                   [100, 100, 20, 100], BANNER_MESSAGES + BANNER_MESSAGES[:1], kind="gif-delay"),
    ]
    # Partial tiles over a full first frame, each disposal method, with a transparent corner in the tile.
    small = ad(["NEW"], (240, 120), background=(30, 90, 200), foreground=(255, 255, 255))
    side = ad(["NOW"], (160, 240), background=(200, 40, 40), foreground=(255, 255, 255))
    pal2, (full, tile, tile2) = shared_palette([frames_rgb[0], small, side])
    pal2[254] = (0, 200, 0)
    tile = tile.copy()
    tile[:30, :60] = 255
    for disposal in (0, 1, 2, 3):
        frames = [
            GifFrame(0, 0, full, 50, disposal),
            GifFrame(240, 120, tile, 50, disposal, transparent=255),
            GifFrame(0, 0, tile2, 50, disposal),
        ]
        out.append(gif_member(f"partial-tiles-disposal-{disposal}", (480, 240), pal2, frames, [500, 500, 500],
                              (BANNER_MESSAGES[0], ("NEW",), ("NOW",)), kind="gif-disposal"))
    # A logical screen bigger than every frame: the rest of the screen is transparent (white on the page).
    out.append(gif_member("screen-bigger-than-frames", (480, 240), pal2,
                          [GifFrame(40, 20, tile, 50, 1, transparent=255), GifFrame(300, 0, tile2, 50, 1)], [500, 500],
                          (("NEW",), ("NOW",)), kind="gif-screen"))
    # A later frame reaching past the screen is clipped (Pillow#8218: Pillow grows the picture).
    out.append(gif_member("frame-past-screen", (480, 240), pal2,
                          [GifFrame(0, 0, full, 50, 1), GifFrame(400, 100, tile2, 50, 1)], [500, 500],
                          (BANNER_MESSAGES[0], BANNER_MESSAGES[0]), kind="gif-screen"))
    return out


def single_frame_gif() -> PictureCase:
    """A one-frame GIF with a loop extension and a delay: a still for browsers (no timeline)."""
    im = banner_frames()[0]
    pal, (a,) = shared_palette([im])
    data = gif_bytes(im.size, pal, [GifFrame(0, 0, a, 300)])
    return PictureCase("gif-single-frame", "looped-one-frame", data, im.size, gif_reference(im.size, pal, [GifFrame(0, 0, a, 300)])[0], BANNER_MESSAGES[0])


def apng_members() -> list[AnimationCase]:
    """APNGs with each dispose and blend operation over half-transparent tiles, a hidden default image, zero delays."""
    base = np.asarray(banner_frames()[0].convert("RGBA")).copy()
    tile = np.asarray(ad(["NEW"], (240, 120), background=(30, 90, 200), foreground=(255, 255, 255)).convert("RGBA")).copy()
    tile[90:105, :, 3] = 0  # below the word: see-through
    tile[105:, :, 3] = 128  # half transparent over opaque: Pillow's OVER paste gets this alpha wrong
    side = np.asarray(ad(["NOW"], (160, 240), background=(200, 40, 40), foreground=(255, 255, 255)).convert("RGBA")).copy()
    side[:40, :, 3] = 100
    out = []
    for dispose in (0, 1, 2):
        for blend in (0, 1):
            frames = [
                ApngFrame(0, 0, base, (1, 2), dispose, blend),
                ApngFrame(240, 120, tile, (1, 2), dispose, blend),
                ApngFrame(0, 0, side, (700, 1000), dispose, blend),
            ]
            starts, total = _starts([500, 500, 700])
            out.append(AnimationCase("apng-ops", f"dispose-{dispose}-blend-{blend}", apng_bytes((480, 240), frames), (480, 240),
                                     starts, total, (BANNER_MESSAGES[0], ("NEW",), ("NOW",)), tuple(apng_reference((480, 240), frames))))
    # A default image (IDAT before the first fcTL) is not part of the animation; zero delays show 100 ms
    # (a 0 denominator means 1/100 s units: 0/0 is 0 ms; 1/1000 s is 1 ms).
    frames = [ApngFrame(0, 0, base, (0, 0)), ApngFrame(240, 120, tile, (1, 1000), blend=1), ApngFrame(0, 0, side, (3, 0), blend=1)]
    starts, total = _starts([100, 100, 30])
    hidden = np.zeros((240, 480, 4), np.uint8)
    hidden[..., 1] = 255
    hidden[..., 3] = 255  # opaque green that must never be shown
    out.append(AnimationCase("apng-default", "hidden-default-zero-delays", apng_bytes((480, 240), frames, hidden_default=hidden), (480, 240),
                             starts, total, (BANNER_MESSAGES[0], ("NEW",), ("NOW",)), tuple(apng_reference((480, 240), frames))))
    return out


def webp_members() -> list[AnimationCase]:
    """Animated WebP (lossless, so libwebp's frames are exact): the banner, with a 5 ms frame, and with EXIF orientation 8."""
    frames = banner_frames()
    starts, total = _starts([300, 100, 700])
    out = [AnimationCase("webp", "banner-3-messages", encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=[300, 5, 700], lossless=True),
                         frames[0].size, starts, total, BANNER_MESSAGES, tuple(frames))]
    stored = [f.transpose(Image.Transpose.ROTATE_270) for f in frames]  # orientation 8 turns it back
    data = encode(stored[0], "WEBP", save_all=True, append_images=stored[1:], duration=[300, 5, 700], lossless=True, exif=exif_with_orientation(8))
    out.append(AnimationCase("webp", "banner-exif-orientation-8", data, frames[0].size, starts, total, BANNER_MESSAGES, tuple(frames)))
    return out


def animation_members() -> list[AnimationCase]:
    return gif_members() + apng_members() + webp_members()


# ----------------------------------------------------------------------------- pixel bombs


def gif_many_frames(screen: tuple[int, int], n_frames: int) -> bytes:
    """A GIF of ``n_frames`` 1x1 tiles on a ``screen``: a few bytes per frame, screen x frames pixels to decode."""
    pal = np.zeros((256, 3), np.uint8)
    return gif_bytes(screen, pal, [GifFrame(0, 0, np.zeros((1, 1), np.uint8), 2) for _ in range(n_frames)])


def gif_huge_tile(screen: tuple[int, int], tile: tuple[int, int]) -> bytes:
    """A GIF whose second image descriptor claims a ``tile`` far beyond the screen, with no pixels behind it."""
    pal = np.zeros((256, 3), np.uint8)
    data = gif_bytes(screen, pal, [GifFrame(0, 0, np.zeros((1, 1), np.uint8), 2), GifFrame(0, 0, np.zeros((1, 1), np.uint8), 2)])
    i = data.rfind(b"\x2c\x00\x00\x00\x00\x01\x00\x01\x00")
    return data[:i + 5] + struct.pack("<HH", *tile) + data[i + 9 :]


def png_claiming(width: int, height: int) -> bytes:
    """A PNG header claiming ``width`` x ``height`` with no pixel data."""
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + png_chunk(b"IEND", b"")
