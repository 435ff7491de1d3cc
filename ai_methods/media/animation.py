"""Animated GIF, APNG and WebP read as a short timeline of frames, as a browser plays them.

Each frame is the full canvas a browser paints at that moment (earlier frames,
partial tiles, disposal and blending included), upright and on white through
``pictures.displayed_rgb``; its ``t_s`` is the time the browser starts showing
it.

Why the containers are walked here rather than only through Pillow:

- the header alone gives the frame count, every frame's rectangle and delay,
  so pixel bombs (a few KB promising thousands of frames, or a frame far
  outside the canvas: Pillow#2402, #6402, libvips#2176) are refused before
  any pixel is decoded, and durations are known without decoding (Pillow
  gives a WebP frame's duration only after decoding it, Pillow#9790);
- Pillow's GIF compositing differs from browsers: disposal 2 fills with the
  background colour instead of clearing to transparent (Pillow#5557 explains
  that browsers clear), disposal 3 on the first frame keeps that frame, and
  a frame outside the logical screen grows the picture (Pillow#8218, browsers
  clip). Its APNG ``blend_op`` OVER pastes the alpha channel too, so a
  half-transparent pixel over an opaque one comes out half transparent.
  GIF and APNG frames are therefore composited here, following the GIF89a
  and APNG specifications as Chromium and Firefox implement them, with
  Pillow decoding each frame's tile (LZW, PNG filters, interlacing).
  WebP frames come from libwebp's own animation decoder through Pillow.

Frame delays follow browsers: a delay of 10 ms or less (0 included, or no
delay at all) is shown for 100 ms. Chromium
(``third_party/blink/renderer/platform/graphics/deferred_image_decoder.cc``,
``FrameDurationAtIndex``) and Firefox (``image/FrameTimeout.h``,
``FromRawMilliseconds``) apply that to every animated format, GIF, APNG and
WebP alike, and so does this module (WebKit bug 36082 for the history).
"""

from __future__ import annotations

import bisect
import io
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from ai_methods.media import pictures
from ai_methods.media.errors import CORRUPT_MEDIA, TOO_MANY_PIXELS, MediaDecodeError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from PIL import Image

ANIMATED_FORMATS = frozenset({"GIF", "PNG", "WEBP"})
# Browsers show a frame delay of <= 10 ms, or a missing one, for 100 ms (see the module docstring).
MIN_DELAY_MS = 10.0
DEFAULT_DELAY_MS = 100.0


@dataclass(frozen=True)
class FrameHeader:
    """One frame as its header describes it: its rectangle on the canvas (pixels), its delay and operations.

    ``delay_ms`` is the raw delay (``None`` when the file gives none).
    ``disposal``: GIF's disposal method (0-3) or APNG's ``dispose_op`` (0-2) or
    WebP's dispose bit. ``blend``: APNG's ``blend_op`` (0 source, 1 over).
    """

    x: int
    y: int
    width: int
    height: int
    delay_ms: float | None
    disposal: int = 0
    blend: int = 0
    transparent: int | None = None
    # Where the frame's data is: GIF (start, end) of its image block; APNG its zlib data.
    span: tuple[int, int] = (0, 0)
    data: bytes = field(default=b"", repr=False)


@dataclass(frozen=True)
class AnimationHeader:
    """The frames of a GIF, APNG or WebP read from its container, without decoding pixels.

    ``canvas`` is the displayed canvas as stored (before EXIF orientation).
    """

    format: str
    canvas: tuple[int, int]
    frames: tuple[FrameHeader, ...]
    # Format details the compositor needs: GIF global palette; PNG IHDR/PLTE/tRNS chunks.
    extra: dict = field(default_factory=dict, repr=False)

    @property
    def animated(self) -> bool:
        return len(self.frames) > 1


@dataclass(frozen=True)
class AnimationFrame:
    """One frame as shown: ``index`` in the returned sequence, ``source_index`` in the file,
    ``t_s`` when a browser starts showing it (seconds from the start), ``image`` the displayed
    canvas (upright 8-bit RGB on white)."""

    index: int
    source_index: int
    t_s: float
    image: "Image.Image"


# ----------------------------------------------------------------------------- headers


def _gif_header(data: bytes) -> AnimationHeader | None:
    if len(data) < 13 or data[:6] not in (b"GIF87a", b"GIF89a"):
        return None
    width, height = struct.unpack_from("<HH", data, 6)
    flags = data[10]
    pos = 13
    global_palette = b""
    if flags & 0x80:
        size = 3 << ((flags & 7) + 1)
        global_palette = data[pos : pos + size]
        pos += size
    frames: list[FrameHeader] = []
    gce: tuple[int, int, int] | None = None
    n = len(data)
    while pos < n:
        introducer = data[pos]
        pos += 1
        if introducer == 0x3B:  # trailer
            break
        if introducer == 0x21:  # extension: label, then sub-blocks
            label = data[pos] if pos < n else 0
            pos += 1
            first = True
            while pos < n:
                size = data[pos]
                pos += 1
                if size == 0:
                    break
                if label == 0xF9 and first and size >= 4 and pos + 4 <= n:
                    gce = (data[pos], struct.unpack_from("<H", data, pos + 1)[0], data[pos + 3])
                first = False
                pos += size
        elif introducer == 0x2C:  # image descriptor
            start = pos - 1
            if pos + 9 > n:
                raise ValueError("GIF image descriptor is truncated")
            x, y, fw, fh = struct.unpack_from("<HHHH", data, pos)
            local = data[pos + 8]
            pos += 9
            if local & 0x80:
                pos += 3 << ((local & 7) + 1)
            pos += 1  # LZW minimum code size
            while pos < n:
                size = data[pos]
                pos += 1
                if size == 0:
                    break
                pos += size
            gflags, delay_cs, tindex = gce if gce is not None else (0, -1, 0)
            frames.append(
                FrameHeader(
                    x, y, fw, fh,
                    delay_ms=None if gce is None else delay_cs * 10.0,
                    disposal=(gflags >> 2) & 7,
                    transparent=tindex if gflags & 1 else None,
                    span=(start, min(pos, n)),
                )
            )
            gce = None
        else:
            break  # bytes after the last block: decoders stop here too
    if frames and (width < frames[0].x + frames[0].width or height < frames[0].y + frames[0].height):
        # A first frame outside the logical screen: browsers grow the screen to hold it (Blink's
        # GIFImageReader "work around broken GIF files where the logical screen size has weird values").
        width = max(width, frames[0].x + frames[0].width)
        height = max(height, frames[0].y + frames[0].height)
    return AnimationHeader("GIF", (width, height), tuple(frames), {"palette": global_palette, "flags": flags})


def _png_header(data: bytes) -> AnimationHeader | None:
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    pos, n = 8, len(data)
    ihdr = b""
    keep: list[bytes] = []  # PLTE and tRNS chunks, copied into each frame's standalone PNG
    actl = False
    frames: list[dict] = []
    while pos + 8 <= n:
        length, kind = struct.unpack_from(">I4s", data, pos)
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            ihdr = body
        elif kind in (b"PLTE", b"tRNS"):
            keep.append(data[pos - 12 - length : pos])
        elif kind == b"acTL":
            actl = True
        elif kind == b"fcTL" and len(body) >= 26:
            _seq, fw, fh, x, y, num, den, dispose, blend = struct.unpack_from(">IIIIIHHBB", body)
            frames.append(dict(x=x, y=y, width=fw, height=fh, num=num, den=den, dispose=dispose, blend=blend, data=[]))
        elif kind == b"IDAT" and frames:
            frames[-1]["data"].append(body)  # the default image is the first frame (fcTL before IDAT)
        elif kind == b"fdAT" and frames:
            frames[-1]["data"].append(body[4:])
        elif kind == b"IEND":
            break
    if not actl or not frames or len(ihdr) < 13:
        return None
    width, height = struct.unpack_from(">II", ihdr)
    out = []
    for i, f in enumerate(frames):
        # APNG: a zero denominator means 1/100 s units; a PREVIOUS dispose on the first frame is BACKGROUND.
        delay = 1000.0 * f["num"] / (f["den"] or 100)
        dispose = 1 if (i == 0 and f["dispose"] == 2) else f["dispose"]
        out.append(
            FrameHeader(f["x"], f["y"], f["width"], f["height"], delay_ms=delay, disposal=dispose, blend=f["blend"], data=b"".join(f["data"]))
        )
    return AnimationHeader("PNG", (width, height), tuple(out), {"ihdr": ihdr, "chunks": b"".join(keep)})


def _u24(b: bytes, at: int) -> int:
    return b[at] | b[at + 1] << 8 | b[at + 2] << 16


def _webp_header(data: bytes) -> AnimationHeader | None:
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    pos, n = 12, len(data)
    canvas: tuple[int, int] | None = None
    frames: list[FrameHeader] = []
    while pos + 8 <= n:
        kind, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = data[pos + 8 : pos + 8 + size]
        pos += 8 + size + (size & 1)
        if kind == b"VP8X" and len(body) >= 10:
            canvas = (1 + _u24(body, 4), 1 + _u24(body, 7))
        elif kind == b"ANMF" and len(body) >= 16:
            flags = body[15]
            frames.append(
                FrameHeader(
                    2 * _u24(body, 0), 2 * _u24(body, 3), 1 + _u24(body, 6), 1 + _u24(body, 9),
                    delay_ms=float(_u24(body, 12)), disposal=flags & 1, blend=0 if flags & 2 else 1,
                )
            )
    if canvas is None or not frames:
        return None
    return AnimationHeader("WEBP", canvas, tuple(frames))


def read_header(data: bytes) -> AnimationHeader | None:
    """The frames of an animated GIF, APNG or WebP from its container; ``None`` for other files.

    A GIF always gets a header (one frame for a still GIF); a PNG or WebP only
    when it is animated (``acTL``/``ANMF`` present). Never decodes pixels.
    """
    for reader in (_gif_header, _png_header, _webp_header):
        header = reader(data)
        if header is not None:
            return header
    return None


def check_limits(header: AnimationHeader, label: str = "image", max_pixels: int = pictures.MAX_IMAGE_PIXELS) -> None:
    """Refuse (``too_many_pixels``) a canvas or any frame above ``max_pixels``, or frames x canvas above
    ``pictures.MAX_ANIMATION_PIXELS``; all from the header, before decoding."""
    cw, ch = header.canvas
    pictures._pixel_limits(cw, ch, label, max_pixels)
    for i, f in enumerate(header.frames):
        if f.width * f.height > max_pixels:
            raise MediaDecodeError(
                TOO_MANY_PIXELS, f"{label}: animation frame {i} is {f.width}x{f.height}, above the {max_pixels:,} pixel limit"
            )
    total = len(header.frames) * cw * ch
    if total > pictures.MAX_ANIMATION_PIXELS:
        raise MediaDecodeError(
            TOO_MANY_PIXELS,
            f"{label}: animation of {len(header.frames)} frames of {cw}x{ch} decodes to {total:,} pixels, "
            f"above the {pictures.MAX_ANIMATION_PIXELS:,} limit",
        )


def display_delay_ms(delay_ms: float | None) -> float:
    """How long a browser shows a frame whose file delay is ``delay_ms``: <= 10 ms or missing is 100 ms."""
    return DEFAULT_DELAY_MS if delay_ms is None or delay_ms <= MIN_DELAY_MS else float(delay_ms)


def _starts(header: AnimationHeader) -> tuple[list[float], float]:
    starts, t_ms = [], 0.0
    for f in header.frames:
        starts.append(t_ms / 1000.0)
        t_ms += display_delay_ms(f.delay_ms)
    return starts, t_ms / 1000.0


def total_duration(header: AnimationHeader) -> float:
    """Seconds one pass of the animation lasts under browser delay rules."""
    return _starts(header)[1]


def frame_starts(source: bytes | Path) -> tuple[list[float], float]:
    """Display start of every frame (seconds from the start) and the total duration, from the header alone.

    A still picture (or a one-frame animation) is ``([0.0], 0.0)``. Raises
    ``MediaDecodeError`` ``corrupt_media`` on a malformed container.
    """
    try:
        header = read_header(pictures._read(source))
    except Exception as exc:
        raise MediaDecodeError(CORRUPT_MEDIA, f"image: animation header does not parse ({exc})") from exc
    if header is None or not header.animated:
        return [0.0], 0.0
    return _starts(header)


# ----------------------------------------------------------------------------- compositing


def _gif_tile(data: bytes, header: AnimationHeader, f: FrameHeader) -> "np.ndarray":
    """The frame's palette indices (HxW), LZW-decoded by Pillow from a one-frame GIF holding only this tile."""
    import numpy as np
    from PIL import Image

    start, end = f.span
    block = bytearray(data[start:end])
    block[1:5] = b"\x00\x00\x00\x00"  # the tile at (0, 0) of its own screen
    palette = header.extra["palette"]
    screen_flags = header.extra["flags"] if palette else 0
    mini = b"GIF89a" + struct.pack("<HHBBB", f.width, f.height, screen_flags, 0, 0) + palette + bytes(block) + b"\x3b"
    with Image.open(io.BytesIO(mini)) as im:
        im.load()
        return np.asarray(im).copy()


def _gif_canvases(data: bytes, header: AnimationHeader, last: int) -> Iterator["np.ndarray"]:
    """GIF canvases (HxWx4 uint8 RGBA) for frames 0..``last``, composited as Chromium and Firefox do.

    The canvas starts transparent. Before a frame is drawn, the previous
    frame's disposal applies: 0/1 keep it, 2 clear its rectangle to transparent
    (browsers ignore the background colour), 3 restore the canvas as it was
    before that frame (transparent for the first). Transparent-index pixels
    keep what is below; tiles are clipped to the canvas.
    """
    import numpy as np

    cw, ch = header.canvas
    canvas = np.zeros((ch, cw, 4), np.uint8)
    global_palette = header.extra["palette"]
    previous: FrameHeader | None = None
    saved = None
    for i, f in enumerate(header.frames[: last + 1]):
        if previous is not None:
            if previous.disposal == 2:
                canvas[previous.y : previous.y + previous.height, previous.x : previous.x + previous.width] = 0
            elif previous.disposal == 3 and saved is not None:
                canvas = saved
        saved = canvas.copy() if f.disposal == 3 else None
        start = f.span[0]
        local = data[start + 9]
        if local & 0x80:
            raw = data[start + 10 : start + 10 + (3 << ((local & 7) + 1))]
        else:
            raw = global_palette
        palette = np.zeros((256, 3), np.uint8)
        pal = np.frombuffer(raw[: len(raw) - len(raw) % 3], np.uint8).reshape(-1, 3)[:256]
        palette[: len(pal)] = pal
        tile = _gif_tile(data, header, f)
        tile = tile[: max(0, ch - f.y), : max(0, cw - f.x)]
        region = canvas[f.y : f.y + tile.shape[0], f.x : f.x + tile.shape[1]]
        opaque = tile != f.transparent if f.transparent is not None else np.ones(tile.shape, bool)
        region[opaque, :3] = palette[tile[opaque]]
        region[opaque, 3] = 255
        yield canvas
        previous = f


def _rgba_array(im: "Image.Image") -> "np.ndarray":
    """Any decoded PNG tile as HxWx4 uint8 RGBA (16-bit scaled, transparency kept)."""
    import numpy as np

    colour, alpha = pictures._colour_and_alpha(im)
    rgb = np.asarray(colour.convert("RGB"))
    a = np.asarray(alpha) if alpha is not None else np.full(rgb.shape[:2], 255, np.uint8)
    return np.dstack([rgb, a])


def _apng_canvases(header: AnimationHeader, last: int) -> Iterator["np.ndarray"]:
    """APNG output buffers (HxWx4 uint8) for frames 0..``last`` as the APNG specification defines them.

    Blend SOURCE replaces the region, alpha included; OVER composites with the
    Porter-Duff "over" operator. Dispose NONE keeps, BACKGROUND clears the
    region to transparent black, PREVIOUS restores it.
    """
    import numpy as np
    from PIL import Image

    cw, ch = header.canvas
    ihdr = header.extra["ihdr"]
    buf = np.zeros((ch, cw, 4), np.float64)
    for f in header.frames[: last + 1]:
        mini_ihdr = struct.pack(">II", f.width, f.height) + ihdr[8:13]
        mini = (
            b"\x89PNG\r\n\x1a\n"
            + _chunk(b"IHDR", mini_ihdr)
            + header.extra["chunks"]
            + _chunk(b"IDAT", f.data)
            + _chunk(b"IEND", b"")
        )
        with Image.open(io.BytesIO(mini)) as im:
            im.load()
            src = _rgba_array(im).astype(np.float64)
        src = src[: max(0, ch - f.y), : max(0, cw - f.x)]
        sl = (slice(f.y, f.y + src.shape[0]), slice(f.x, f.x + src.shape[1]))
        before = buf[sl].copy()
        if f.blend == 0:
            buf[sl] = src
        else:
            dst = buf[sl]
            sa, da = src[..., 3:4] / 255.0, dst[..., 3:4] / 255.0
            out_a = sa + da * (1.0 - sa)
            rgb = (src[..., :3] * sa + dst[..., :3] * da * (1.0 - sa)) / np.maximum(out_a, 1e-12)
            buf[sl] = np.concatenate([np.where(out_a > 0, rgb, 0.0), out_a * 255.0], axis=-1)
        yield np.rint(buf).astype(np.uint8)
        if f.disposal == 1:
            buf[sl] = 0.0
        elif f.disposal == 2:
            buf[sl] = before


def _chunk(kind: bytes, body: bytes) -> bytes:
    import zlib

    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _wanted(starts: list[float], times: list[float]) -> list[int]:
    """Source indices shown at ``times``: the last frame starting at or before each time, each once, in order."""
    out: list[int] = []
    for t in sorted(times):
        i = min(max(bisect.bisect_right(starts, t) - 1, 0), len(starts) - 1)
        if not out or out[-1] != i:
            out.append(i)
    return out


def frames_at(
    source: bytes | Path,
    times: list[float],
    *,
    max_pixels: int = pictures.MAX_IMAGE_PIXELS,
    label: str = "image",
    _header: AnimationHeader | None = None,
) -> Iterator[AnimationFrame]:
    """For each time (seconds from the start), the frame shown then; a frame shown at several times once.

    Decodes forward once through the file (frames depend on earlier ones).
    Times before 0 give the first frame, times past the end the last one
    (one pass of the timeline; loops are not unrolled). A still picture
    yields its one frame at ``t_s`` 0.0. Raises ``MediaDecodeError``:
    ``too_many_pixels`` from the header before decoding, ``corrupt_media``
    when a frame does not decode.
    """
    from PIL import Image

    if not times:
        return
    data = pictures._read(source)
    try:
        header = _header if _header is not None else read_header(data)
    except Exception as exc:
        raise MediaDecodeError(CORRUPT_MEDIA, f"{label}: animation header does not parse ({exc})") from exc
    if header is None or not header.animated:
        yield AnimationFrame(0, 0, 0.0, pictures.decode_picture(data, label, max_pixels=max_pixels))
        return
    check_limits(header, label, max_pixels)
    starts, _ = _starts(header)
    wanted = _wanted(starts, times)
    last = wanted[-1]
    with pictures.decode_errors(label, "animation", "animation frame does not decode"):
        with Image.open(io.BytesIO(data)) as im:
            orientation = pictures.exif_orientation(im)
            icc = im.info.get("icc_profile") or b""
            if header.format == "GIF":
                canvases = _gif_canvases(data, header, last)
            elif header.format == "PNG":
                canvases = _apng_canvases(header, last)
            else:
                canvases = _webp_canvases(im, last)
            k = 0
            for i, canvas in enumerate(canvases):
                if i != wanted[k]:
                    continue
                frame = canvas if isinstance(canvas, Image.Image) else Image.fromarray(canvas, "RGBA")
                image = pictures.displayed_rgb(frame, orientation=orientation, icc_profile=icc)
                yield AnimationFrame(k, i, starts[i], image)
                k += 1
                if k == len(wanted):
                    return


def _webp_canvases(im: "Image.Image", last: int) -> Iterator["Image.Image"]:
    """WebP canvases from libwebp's animation decoder (it composites, disposes and blends)."""
    for i in range(last + 1):
        im.seek(i)
        im.load()
        yield im.convert("RGBA")
