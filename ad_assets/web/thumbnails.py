"""Thumbnails of stored media: made once through the decoding layer, kept in the store beside the media.

``thumbnail(store, item, t_s)`` returns JPEG bytes no larger than
``THUMB_SIDE`` pixels on their longest side:

- a still image: the picture as displayed (EXIF orientation, colour profile,
  transparency on white: ``ai_methods.media.pictures.decode_picture``);
- an animated image: the frame shown at ``t_s`` (``animation.frames_at``);
- a video: the frame shown at ``t_s`` (``video.iter_video_frames``, display
  matrix and sample aspect applied);
- an audio spot: None (the page shows a placeholder).

Keys are ``thumbs/<sha[:2]>/<sha>-<ms>.jpg`` with ``t_s`` in whole
milliseconds, so the same frame is decoded once whoever asks. The media
file is read from the store (a temporary file for videos: PyAV seeks).
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Any

from ai_methods.media import animation, pictures, video
from resources.media_store import MediaStore, StoreNotFoundError

THUMB_SIDE = 320
JPEG_QUALITY = 82


def thumbnail_key(sha256: str, t_s: float | None) -> str:
    """The store key of the thumbnail of ``sha256`` at ``t_s`` seconds (0 for a still)."""
    ms = max(0, round(float(t_s or 0.0) * 1000))
    return f"thumbs/{sha256[:2]}/{sha256}-{ms}.jpg"


def _encode(image: Any) -> bytes:
    image = image.convert("RGB")
    image.thumbnail((THUMB_SIDE, THUMB_SIDE))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def render_thumbnail(data: bytes, media_type: str, t_s: float | None, *, animated: bool = False) -> bytes | None:
    """JPEG bytes of the picture shown at ``t_s`` in ``data``; None for audio. Raises ``MediaDecodeError``."""
    t = max(0.0, float(t_s or 0.0))
    if media_type == "audio":
        return None
    if media_type == "image":
        if animated:
            frame = next(animation.frames_at(data, [t]))
            return _encode(frame.image)
        return _encode(pictures.decode_picture(data))
    with tempfile.TemporaryDirectory(prefix="ad-assets-thumb-") as tmp:
        path = Path(tmp) / "media"
        path.write_bytes(data)
        frames = list(video.iter_video_frames(path, [t], max_side=THUMB_SIDE * 2))
        if not frames:  # a time past the last frame: show the first one rather than nothing
            frames = list(video.iter_video_frames(path, [0.0], max_side=THUMB_SIDE * 2))
    return _encode(frames[0].image) if frames else None


def thumbnail(store: MediaStore, item: dict[str, Any], t_s: float | None = None) -> bytes | None:
    """The cached thumbnail of ``item`` (a ``catalog_views.media_by_sha`` row) at ``t_s``; made and stored once.

    Stills ignore ``t_s``. Raises ``StoreError`` when the media is missing,
    ``MediaDecodeError`` when it does not decode.
    """
    still = item["media_type"] == "image" and not item.get("animated")
    key = thumbnail_key(item["sha256"], None if still else t_s)
    try:
        return store.get_bytes_sync(key)
    except StoreNotFoundError:
        pass
    made = render_thumbnail(store.get_bytes_sync(item["storage_key"]), item["media_type"], t_s,
                            animated=bool(item.get("animated")))  # fmt: skip
    if made is not None:
        store.put_bytes_sync(key, made, content_type="image/jpeg")
    return made
