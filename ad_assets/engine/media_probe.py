"""What a downloaded file is, judged from its bytes, and its basic measurements.

The type is sniffed from the leading bytes, never taken from the URL or the
``Content-Type`` header: ad sources routinely serve HTML error pages with a 200
and images with ``application/octet-stream``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ad_assets.engine.media_errors import MediaError

# No larger than the AI methods accept (ai_methods.images.MAX_IMAGE_PIXELS): an image no method
# can read is refused at acquisition, with its cause, rather than failing every method later.
DEFAULT_MAX_PIXELS = 80_000_000
DEFAULT_MAX_DURATION_S = 3 * 60 * 60.0
# Only the local file protocol: a crafted playlist must not make FFmpeg fetch URLs.
AV_OPEN_OPTIONS = {"protocol_whitelist": "file"}


class MediaProbeError(MediaError):
    """A file that looked like media could not be measured; ``cause`` is a short code."""


@dataclass(frozen=True)
class SniffedType:
    """The media type decided from the bytes."""

    media_type: str  # "image" | "video"
    mime: str
    ext: str


@dataclass(frozen=True)
class MediaProbe:
    """Measurements of one media file; fields that do not apply are ``None``."""

    width: int | None = None
    height: int | None = None
    duration_s: float | None = None
    has_audio: bool | None = None


_ISO_BMFF_BRANDS_QUICKTIME = {b"qt  "}


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
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return SniffedType("video", "video/x-msvideo", "avi")
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
    return f"{kind}{served}, not an image or video"


def probe_image(path: Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> MediaProbe:
    """Width and height of an image, after checking it decodes and is not a pixel bomb."""
    from PIL import Image

    try:
        # Pillow raises DecompressionBombError on open above twice its MAX_IMAGE_PIXELS and only
        # warns above it once; that band is refused here by an explicit check. Not by turning the
        # warning into an error with warnings.catch_warnings: probes run in worker threads, and that
        # context manager swaps the process-wide filters, so under concurrency a bomb slipped
        # through now and then (tests/reliability/test_hostile_media.py).
        with Image.open(path) as img:
            width, height = img.size
            if width * height > max_pixels:
                raise MediaProbeError(
                    "too_many_pixels", f"image is {width}x{height}, above the {max_pixels:,} pixel limit"
                )
            pillow_limit = Image.MAX_IMAGE_PIXELS
            if pillow_limit and width * height > pillow_limit:
                raise MediaProbeError(
                    "too_many_pixels",
                    f"image is {width}x{height}, above Pillow's decompression-bomb limit of {pillow_limit:,} pixels",
                )
            # Decode the pixels: a header that promises an image is not an image (truncated,
            # or a few bytes claiming 5000x10000) and must fail here, as this URL's cause.
            img.load()
    except MediaProbeError:
        raise
    except Image.DecompressionBombError as exc:
        raise MediaProbeError("too_many_pixels", f"image refused as a decompression bomb: {exc}") from exc
    except Exception as exc:  # Pillow raises many types for corrupt files
        raise MediaProbeError("corrupt_media", f"image does not decode: {exc}") from exc
    return MediaProbe(width=width, height=height)


def probe_video(path: Path, *, max_duration_s: float = DEFAULT_MAX_DURATION_S) -> MediaProbe:
    """Duration, frame size and whether there is an audio track, read with PyAV."""
    import av

    try:
        with av.open(str(path), options=AV_OPEN_OPTIONS) as container:
            video = next((s for s in container.streams if s.type == "video"), None)
            if video is None:
                raise MediaProbeError("corrupt_media", "container has no video stream")
            has_audio = any(s.type == "audio" for s in container.streams)
            duration_s = container_duration(container, video)
            width, height = video.codec_context.width, video.codec_context.height
    except MediaProbeError:
        raise
    except Exception as exc:  # PyAV raises av.error.* subclasses and ValueError
        raise MediaProbeError("corrupt_media", f"video does not decode: {exc}") from exc
    if duration_s is None or duration_s <= 0:
        raise MediaProbeError("corrupt_media", "video has no measurable duration")
    if duration_s > max_duration_s:
        raise MediaProbeError(
            "too_long", f"video lasts {duration_s:.0f} s, above the {max_duration_s:.0f} s limit"
        )
    if not width or not height:
        raise MediaProbeError("corrupt_media", "video stream has no frame size")
    return MediaProbe(width=width, height=height, duration_s=round(duration_s, 3), has_audio=has_audio)


def container_duration(container, video) -> float | None:
    """The video stream's duration in seconds, else the container's, else ``None``."""
    if video.duration is not None and video.time_base is not None:
        return float(video.duration * video.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return None


def probe_media(path: Path, sniffed: SniffedType, *, max_pixels: int, max_duration_s: float) -> MediaProbe:
    """Probe ``path`` according to its sniffed type."""
    if sniffed.media_type == "image":
        return probe_image(path, max_pixels=max_pixels)
    return probe_video(path, max_duration_s=max_duration_s)
