"""What remote model clients send and read, independent of any one provider.

Image types are sniffed from bytes (providers need the format, and file names
lie), WAV headers give an audio duration for usage, and a model's text answer is
turned into the JSON object a method asked for: models wrap JSON in prose or
```json fences often enough that giving up on the first ``json.loads`` failure
would waste paid calls.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import struct
from dataclasses import dataclass
from typing import Any

import orjson
import pybase64

from ai_methods.errors import BadResponseError, InvalidInputError

_MIME = {"png": "image/png", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp"}
_FENCE = re.compile(r"```[ \t]*(?:json|JSON|javascript)?[ \t]*\r?\n?(.*?)```", re.DOTALL)
# Scanning every "{" of a long answer is quadratic; real answers put the object early.
_MAX_BRACE_CANDIDATES = 64


def sniff_image_format(data: bytes) -> str:
    """``png``, ``jpeg``, ``gif`` or ``webp`` from the magic bytes; ``InvalidInputError`` otherwise."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    raise InvalidInputError(
        f"image is not PNG, JPEG, GIF or WebP (first bytes {data[:8]!r}, {len(data)} bytes); convert it before sending"
    )


def image_mime_type(image_format: str) -> str:
    """The MIME type of a format returned by ``sniff_image_format``."""
    return _MIME[image_format]


class EncodedImage(bytes):
    """Encoded picture bytes (what a remote model is sent) that keep their base64 data URL once built.

    A picture goes to several requests (OCR, caption, labels, its embedding):
    its data URL is built once, not once per request. ``data_url(image)``
    accepts plain bytes too.
    """

    def base64(self) -> bytes:
        """The bytes in base64 (ASCII), built on first use, then kept."""
        cached = self.__dict__.get("_base64")
        if cached is None:
            cached = self.__dict__["_base64"] = pybase64.b64encode(self)
        return cached

    def data_url(self) -> bytes:
        """``data:<mime>;base64,<...>`` as ASCII bytes (built on first use, then kept)."""
        cached = self.__dict__.get("_data_url")
        if cached is None:
            cached = self.__dict__["_data_url"] = _data_url(self)
        return cached


def image_base64(image: bytes) -> bytes:
    """The image's bytes in base64 (ASCII), kept on an ``EncodedImage`` for its next request."""
    return image.base64() if isinstance(image, EncodedImage) else pybase64.b64encode(image)


def _data_url(image: bytes) -> bytes:
    mime = image_mime_type(sniff_image_format(image))
    # Not through image_base64: an item in flight keeps its data URL, not also a second base64 copy.
    return b"data:" + mime.encode("ascii") + b";base64," + pybase64.b64encode(image)


def data_url(image: bytes) -> bytes:
    """The ``data:`` URL of an image (PNG/JPEG/GIF/WebP), kept on an ``EncodedImage`` for its next request."""
    return image.data_url() if isinstance(image, EncodedImage) else _data_url(image)


def loads_json(data: bytes | str) -> Any:
    """A reply's JSON to Python with orjson (4x json's speed on a 1024-float embedding), falling back to
    Python's json for the ``NaN``/``Infinity`` some servers write. ``ValueError`` if neither reads it.
    An integer beyond 64 bits comes back as a float (orjson's rule; no API field is that large)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


_NONCE_PREFIX = secrets.token_hex(6)
_NONCES = itertools.count()


class JsonWithBlobs:
    """A JSON request whose large string values (data URLs) are spliced in as bytes, never re-encoded.

    ``json.dumps`` scans every character of a 2 MB base64 string for escapes on
    the event loop, once per request; here the small JSON around it is dumped
    and the blob's bytes take the place of a per-request placeholder.
    Blobs must be JSON string content that needs no escaping (base64 data URLs
    are); placeholders may sit anywhere, each exactly once.

        body = JsonWithBlobs()
        request = {"image_url": {"url": body.blob(data_url(image))}}
        pieces = body.parts(request)        # bytes to send one after another (encode() joins them)
    """

    def __init__(self) -> None:
        # Unique per body without asking the OS for randomness per request (os.urandom was ~1 % of
        # the event loop's time at 64 requests in flight): a random prefix per process, then a count.
        self._nonce = f"{_NONCE_PREFIX}{next(_NONCES):x}"
        self._blobs: list[bytes] = []

    def blob(self, data: bytes) -> str:
        """A placeholder string to put where ``data`` goes in the request."""
        self._blobs.append(data)
        return f"@blob-{self._nonce}-{len(self._blobs) - 1}@"

    def encode(self, payload: Any) -> bytes:
        """The request as compact JSON bytes with every placeholder replaced by its blob."""
        return b"".join(self.parts(payload))

    def parts(self, payload: Any) -> list[bytes]:
        """The request as compact JSON in pieces, the blobs among them as given (not copied):
        sent one after another they make ``encode(payload)``, without joining megabytes per request."""
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        if not self._blobs:
            return [text]
        found: list[tuple[int, int, bytes]] = []
        for index, data in enumerate(self._blobs):
            marker = f"@blob-{self._nonce}-{index}@".encode("ascii")
            at = text.find(marker)
            if at < 0 or text.find(marker, at + 1) >= 0:
                raise ValueError(f"blob placeholder {index} must appear exactly once in the payload")
            found.append((at, at + len(marker), data))
        pieces: list[bytes] = []
        position = 0
        for start, end, data in sorted(found, key=lambda f: f[0]):
            pieces += (text[position:start], data)
            position = end
        pieces.append(text[position:])
        return [piece for piece in pieces if piece]


@dataclass(frozen=True)
class WavInfo:
    """What a WAV header says about its PCM data."""

    sample_rate: int
    channels: int
    bits_per_sample: int
    duration_s: float


def read_wav_info(data: bytes) -> WavInfo:
    """Parse a RIFF/WAVE header (PCM or WAVE_FORMAT_EXTENSIBLE); ``InvalidInputError`` if it is not one."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise InvalidInputError(
            f"audio is not a WAV file (first bytes {data[:12]!r}); decode it to 16 kHz mono WAV first"
        )
    offset = 12
    fmt: tuple[int, int, int, int] | None = None
    while offset + 8 <= len(data):
        chunk_id = data[offset : offset + 4]
        (size,) = struct.unpack_from("<I", data, offset + 4)
        body = offset + 8
        if chunk_id == b"fmt " and size >= 16:
            _tag, channels, rate, byte_rate, _align, bits = struct.unpack_from("<HHIIHH", data, body)
            fmt = (channels, rate, byte_rate, bits)
        elif chunk_id == b"data":
            if fmt is None:
                break
            channels, rate, byte_rate, bits = fmt
            # Streamed WAVs leave the size at 0 or 0xFFFFFFFF: use what is present.
            available = len(data) - body
            data_bytes = available if size in (0, 0xFFFFFFFF) else min(size, available)
            if rate <= 0 or byte_rate <= 0:
                break
            return WavInfo(rate, channels, bits, data_bytes / byte_rate)
        offset = body + size + (size & 1)  # chunks are word-aligned
    raise InvalidInputError("WAV file has no usable 'fmt ' and 'data' chunks")


def extract_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object found in ``text``: the whole text, a ```json fence, or an embedded ``{...}``."""
    stripped = text.strip()
    candidates = [stripped, *(m.group(1).strip() for m in _FENCE.finditer(text))]
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    decoder = json.JSONDecoder()
    start = text.find("{")
    tried = 0
    while start != -1 and tried < _MAX_BRACE_CANDIDATES:
        tried += 1
        try:
            value, _end = decoder.raw_decode(text, start)
        except ValueError:
            value = None
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    return None


def schema_instructions(schema: dict[str, Any]) -> str:
    """Text appended to a prompt so a model without native structured output answers in shape."""
    return (
        "\n\nAnswer with a single JSON object and nothing else. It must match this JSON Schema:\n"
        f"```json\n{json.dumps(schema, ensure_ascii=False, indent=1)}\n```"
    )


def parse_json_reply(text: str, schema: dict[str, Any], *, source: str, truncated: bool = False) -> dict[str, Any]:
    """Turn a model's text into the JSON object ``schema`` describes, or raise ``BadResponseError``.

    Only the top level is checked here (an object carrying the schema's ``required``
    keys): methods validate their full output schema themselves.
    """
    data = extract_json_object(text)
    hint = " (the answer was cut off at max_tokens: raise max_tokens)" if truncated else ""
    if data is None:
        preview = text.strip().replace("\n", " ")[:200]
        raise BadResponseError(f"{source} did not answer with a JSON object{hint}; it said: {preview!r}")
    missing = [key for key in schema.get("required", []) if key not in data]
    if missing:
        raise BadResponseError(
            f"{source} answered JSON without the required keys {missing}{hint}; got keys {sorted(data)}"
        )
    return data
