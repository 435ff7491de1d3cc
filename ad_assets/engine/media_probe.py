"""What a downloaded file is, judged from its bytes, and its measurements as a player shows them.

The type is sniffed from the leading bytes, never taken from the URL or the
``Content-Type`` header: ad sources routinely serve HTML error pages with a 200
and images with ``application/octet-stream``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ad_assets.engine.media_errors import MediaError
from ai_methods.media.errors import MediaDecodeError
from ai_methods.media.pictures import MAX_IMAGE_PIXELS

# No larger than the AI methods accept: an image no method can read is refused at
# acquisition, with its cause, rather than failing every method later.
DEFAULT_MAX_PIXELS = MAX_IMAGE_PIXELS
DEFAULT_MAX_DURATION_S = 3 * 60 * 60.0
# Bump when a probe would record other values for the same bytes: stored records of
# earlier probes are then measured again from the store (never from their URL).
PROBE_VERSION = 2


class MediaProbeError(MediaError):
    """A file that looked like media could not be measured; ``cause`` is a short code."""


@dataclass(frozen=True)
class SniffedType:
    """The media type decided from the bytes.

    For containers that hold pictures or sound (MP4, Matroska/WebM, Ogg) it is
    provisional: the probe reads the streams and settles ``video`` or ``audio``.
    """

    media_type: str  # "image" | "video" | "audio"
    mime: str
    ext: str


@dataclass(frozen=True)
class MediaProbe:
    """Measurements of one media file as a player shows it; fields that do not apply are ``None``.

    ``width``/``height`` are displayed pixels (EXIF orientation, display matrix
    and sample aspect ratio applied); ``rotation`` is the clockwise turn (degrees)
    and ``mirrored`` the flip that explain them; ``duration_s`` is the real
    duration (seconds) and ``duration_source`` where it was read.
    """

    media_type: str = "image"
    mime: str | None = None
    ext: str | None = None
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None
    has_audio: bool | None = None
    rotation: int | None = None
    mirrored: bool | None = None
    sample_aspect_ratio: str | None = None
    animated: bool | None = None
    frame_count: int | None = None
    codec: str | None = None
    duration_source: str | None = None


_ISO_BMFF_BRANDS_QUICKTIME = {b"qt  "}
_ISO_BMFF_BRANDS_AUDIO = {b"M4A ", b"M4B ", b"M4P ", b"F4A "}
# What an audio-only file of a picture-capable container is called, and the reverse.
_AUDIO_TYPE_OF = {
    "mp4": ("audio/mp4", "m4a"), "mov": ("audio/mp4", "m4a"), "webm": ("audio/webm", "weba"),
    "mkv": ("audio/x-matroska", "mka"), "avi": ("audio/x-wav", "avi"),
}  # fmt: skip
_VIDEO_TYPE_OF = {"m4a": ("video/mp4", "mp4"), "ogg": ("video/ogg", "ogv")}


# BITMAPCOREHEADER, BITMAPINFOHEADER and its V2-V5 successors: the DIB header's own size field.
_BMP_HEADER_SIZES = {12, 40, 52, 56, 108, 124}
_TS_PACKET = 188


def _is_mpeg_ts(head: bytes) -> bool:
    """An MPEG transport stream (ISO/IEC 13818-1): a 0x47 sync byte every 188 bytes, three in a row."""
    return len(head) > 2 * _TS_PACKET and all(head[i * _TS_PACKET] == 0x47 for i in range(3))


def _is_mpeg_audio_frame(head: bytes) -> bool:
    """An MPEG-1/2 audio frame header (ISO/IEC 11172-3 2.4.1.3): 11 sync bits, no reserved fields."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version, layer = (head[1] >> 3) & 3, (head[1] >> 1) & 3
    bitrate, rate = head[2] >> 4, (head[2] >> 2) & 3
    return version != 1 and layer != 0 and bitrate not in (0, 15) and rate != 3


def sniff_media_type(head: bytes) -> SniffedType | None:
    """Return the media type of a file from its first bytes, or ``None`` if it is not media we take."""
    if head.startswith(b"\xff\xd8\xff"):
        return SniffedType("image", "image/jpeg", "jpg")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return SniffedType("image", "image/png", "png")
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return SniffedType("image", "image/gif", "gif")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return SniffedType("image", "image/webp", "webp")
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return SniffedType("image", "image/tiff", "tif")  # scans and print masters: 16-bit, CMYK
    if head[:2] == b"BM" and len(head) >= 18 and int.from_bytes(head[14:18], "little") in _BMP_HEADER_SIZES:
        return SniffedType("image", "image/bmp", "bmp")
    if _is_mpeg_ts(head):
        return SniffedType("video", "video/mp2t", "ts")  # HLS segments
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return SniffedType("video", "video/x-msvideo", "avi")
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return SniffedType("audio", "audio/wav", "wav")
    if head[:4] == b"fLaC":
        return SniffedType("audio", "audio/flac", "flac")
    if head[:4] == b"OggS":
        return SniffedType("audio", "audio/ogg", "ogg")  # Vorbis/Opus, or Theora: the probe says
    if head[:3] == b"ID3" or _is_mpeg_audio_frame(head):
        return SniffedType("audio", "audio/mpeg", "mp3")
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:
        return SniffedType("audio", "audio/aac", "aac")  # ADTS: sync bits with layer 0
    if head[:4] == b"\x1a\x45\xdf\xa3":
        # Matroska and WebM share the EBML header; the doctype says which.
        if b"webm" in head[:64]:
            return SniffedType("video", "video/webm", "webm")
        return SniffedType("video", "video/x-matroska", "mkv")
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return SniffedType("image", "image/avif", "avif")
        if brand in (b"heic", b"heix", b"mif1", b"msf1"):
            return None  # HEIF stills: Pillow cannot decode them without a plugin
        if brand in _ISO_BMFF_BRANDS_QUICKTIME:
            return SniffedType("video", "video/quicktime", "mov")
        if brand in _ISO_BMFF_BRANDS_AUDIO:
            return SniffedType("audio", "audio/mp4", "m4a")
        return SniffedType("video", "video/mp4", "mp4")
    return None


def describe_unsupported(head: bytes, content_type: str | None) -> str:
    """A short human description of bytes that are not supported media."""
    text = head[:512].lstrip().lower()
    if not head:
        return "the body is empty"
    if text.startswith((b"<!doctype html", b"<html")) or b"<html" in text:
        kind = "an HTML page"
    elif text.startswith((b"{", b"[")):
        kind = "JSON"
    elif text.startswith(b"<?xml") or text.startswith(b"<svg"):
        kind = "XML/SVG"
    elif head[:4] == b"%PDF":
        kind = "a PDF document"
    else:
        kind = "bytes of an unknown type"
    served = f" (served as {content_type})" if content_type else ""
    return f"{kind}{served}, not an image or video, nor audio"


def _refused(exc: MediaDecodeError, subject: str | None = None) -> MediaProbeError:
    return MediaProbeError(exc.cause, f"{subject} {exc.detail}" if subject else exc.detail)


# EXIF orientation (TIFF 6.0 tag 274) as the clockwise turn and the mirror a viewer applies.
_EXIF_ROTATION = {1: 0, 2: 0, 3: 180, 4: 180, 5: 270, 6: 90, 7: 90, 8: 270}
_EXIF_MIRRORED = {2, 4, 5, 7}


def probe_image(path: Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> MediaProbe:
    """Displayed size of a still or animated image, after checking it decodes and is not a pixel bomb.

    Raises ``MediaProbeError`` (``too_many_pixels``, ``corrupt_media``).
    """
    from ai_methods.media.pictures import probe_picture

    try:
        info = probe_picture(path, path.name, max_pixels=max_pixels)
    except MediaDecodeError as exc:
        raise _refused(exc) from exc
    orientation = info.orientation if info.orientation in _EXIF_ROTATION else 1
    return MediaProbe(
        media_type="image", width=info.width, height=info.height,
        duration_s=round(info.duration_s, 3) if info.animated and info.duration_s else None,
        rotation=_EXIF_ROTATION[orientation], mirrored=orientation in _EXIF_MIRRORED,
        animated=info.animated, frame_count=info.frame_count, codec=info.format.lower(),
        duration_source="frame_delays" if info.animated else None,
    )  # fmt: skip


def probe_video(path: Path, *, max_duration_s: float = DEFAULT_MAX_DURATION_S) -> MediaProbe:
    """A video's or an audio file's displayed size, real duration and streams (PyAV).

    The duration limit is decided from the header or packets before any picture
    is decoded. Raises ``MediaProbeError`` (``corrupt_media``, ``too_long``,
    ``no_media_stream``).
    """
    from ai_methods.media.video import probe_layout

    try:
        layout = probe_layout(path, max_duration_s=max_duration_s)
    except MediaDecodeError as exc:
        raise _refused(exc, "media") from exc
    if layout.media_type == "video" and not (layout.width and layout.height):
        raise MediaProbeError("corrupt_media", "video stream has no frame size")
    return MediaProbe(
        media_type=layout.media_type, width=layout.width, height=layout.height, duration_s=layout.duration_s,
        has_audio=layout.has_audio, rotation=layout.rotation if layout.media_type == "video" else None,
        mirrored=(layout.hflip or layout.vflip) if layout.media_type == "video" else None,
        sample_aspect_ratio=layout.sample_aspect_ratio,
        codec=layout.video_codec or layout.audio_codec, duration_source=layout.duration_source,
    )  # fmt: skip


def probe_media(path: Path, sniffed: SniffedType, *, max_pixels: int, max_duration_s: float) -> MediaProbe:
    """Probe ``path`` according to its sniffed type; the result's ``media_type``, ``mime`` and ``ext`` are settled.

    A container sniffed as video may hold only sound (an ``m4a`` radio spot, a
    WebM of Opus) and is then ``audio``; an Ogg or M4A with a picture is ``video``.
    """
    if sniffed.media_type == "image":
        probe = probe_image(path, max_pixels=max_pixels)
    else:
        probe = probe_video(path, max_duration_s=max_duration_s)
    mime, ext = sniffed.mime, sniffed.ext
    if probe.media_type == "audio" and sniffed.media_type == "video":
        mime, ext = _AUDIO_TYPE_OF.get(ext, (mime, ext))
    elif probe.media_type == "video" and sniffed.media_type == "audio":
        mime, ext = _VIDEO_TYPE_OF.get(ext, ("video/" + mime.split("/", 1)[1], ext))
    return replace(probe, mime=mime, ext=ext)
