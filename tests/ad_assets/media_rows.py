"""Media put in a local ``MediaStore`` and described by rows shaped like ``raw_media``'s,
so analysis tests start where acquisition ends without any HTTP."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

from ad_assets.engine.acquire import empty_row, probe_columns
from ad_assets.engine.media_probe import DEFAULT_MAX_DURATION_S, DEFAULT_MAX_PIXELS, probe_media, sniff_media_type
from resources.media_store import MediaStore, media_key


def store_media(store: MediaStore, data: bytes, *, probe: bool = True) -> dict[str, Any]:
    """Store ``data`` by content hash and return its ``raw_media`` row (status ``ok``).

    With ``probe=False`` the bytes are not measured (a file that is broken
    after it was acquired): give ``media_type``/``duration_s`` on the row yourself.
    """
    sha = hashlib.sha256(data).hexdigest()
    sniffed = sniff_media_type(data[:4096])
    ext = sniffed.ext if sniffed else "mp4"
    key = media_key(sha, ext)
    store.put_bytes_sync(key, data)
    row = empty_row(f"https://cdn.example/{sha[:12]}.{ext}")
    row.update(status="ok", sha256=sha, bytes=len(data), storage_key=key, storage_uri=store.uri_for(key),
               media_type=sniffed.media_type if sniffed else "video", mime=sniffed.mime if sniffed else "video/mp4")  # fmt: skip
    if probe and sniffed is not None:
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / f"media.{ext}"
            path.write_bytes(data)
            measured = probe_media(path, sniffed, max_pixels=DEFAULT_MAX_PIXELS, max_duration_s=DEFAULT_MAX_DURATION_S)
        row.update(probe_columns(measured))
    return row
