"""The kinds of input a method accepts, their validation, and the input hash.

A method is called with keyword inputs named by kind (``image=``, ``frames=``,
``audio=``, ``text=``, ``results=``). They are checked here, once, before any
provider is asked, so a bad input is an ``InvalidInputError`` naming the input
and the cause, never a provider error. The input hash is the sha256 of a
canonical encoding of the content, so the same bytes hash the same whether
given as bytes or as a file path.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from ai_methods import audio as _audio
from ai_methods import images as _images
from ai_methods.errors import InvalidInputError
from ai_methods.providers.payloads import EncodedImage

IMAGE = "image"
FRAMES = "frames"
AUDIO = "audio"
TEXT = "text"
RESULTS = "results"
KINDS: tuple[str, ...] = (IMAGE, FRAMES, AUDIO, TEXT, RESULTS)

KIND_HELP = {
    IMAGE: "encoded image bytes (PNG/JPEG/WebP/...) or a pathlib.Path to one",
    FRAMES: "a list of encoded images (frames of one video)",
    AUDIO: "WAV or any media bytes, or a path to an audio/video file",
    TEXT: "a non-empty str",
    RESULTS: "a non-empty list of JSON objects (earlier per-item results)",
}

_CHUNK = 1 << 20


@dataclass(frozen=True)
class ImageInput:
    """One validated image."""

    data: bytes = field(repr=False)
    format: str
    width: int
    height: int
    sha256: str
    label: str = IMAGE
    # The decoded image, kept for the life of this input (one call) so the local
    # engines measuring it (OCR, faces, colours, brightness) decode it once, not each.
    _decoded: list[Any] = field(default_factory=list, init=False, repr=False, compare=False)
    _decode_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)
    # What remote models are sent, per largest side: downscaled and encoded once, then shared by every
    # request about this picture (OCR, caption, labels, its embedding), data URL included.
    _remote: dict[int, EncodedImage] = field(default_factory=dict, init=False, repr=False, compare=False)
    _remote_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)
    # The one build in progress per size, awaited by every request about this picture that asks meanwhile.
    _remote_building: dict[int, "asyncio.Future[EncodedImage]"] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def _rgb_shared(self):
        with self._decode_lock:
            if not self._decoded:
                self._decoded.append(_images.decode_rgb(self.data, self.label))
            return self._decoded[0]

    def rgb(self):
        """The decoded RGB Pillow image (a fresh copy: callers may modify it)."""
        return self._rgb_shared().copy()

    def displayed(self):
        """The decoded RGB Pillow image shared by every method of this picture: read it, never modify it.

        Spares the copy ``rgb()`` makes (3.5 MB and ~2 ms for a 1080² ad) when
        the engine only reads the pixels (OCR, colours, the visual descriptor).
        """
        return self._rgb_shared()

    def array(self):
        """The decoded ``HxWx3`` uint8 RGB array."""
        import numpy as np

        return np.asarray(self._rgb_shared())

    def for_remote(self, max_side: int = _images.REMOTE_MAX_SIDE) -> EncodedImage:
        """Bytes sized for a remote vision model (``max_side`` px at most), built once per size.

        CPU-bound the first time (decode, downscale, JPEG, base64): from the
        event loop, ``await remote()`` instead.
        """
        with self._remote_lock:
            cached = self._remote.get(max_side)
            if cached is None:
                data = _images.for_remote(
                    self.data, self.format, self.width, self.height, max_side, decoded=self._rgb_shared
                )
                cached = EncodedImage(data)
                # Every JSON API sends base64: built here, off the loop. A format no data URL
                # names is left for the client to refuse when it sends.
                with contextlib.suppress(InvalidInputError):
                    cached.data_url()
                self._remote[max_side] = cached
            return cached

    async def remote(self, max_side: int = _images.REMOTE_MAX_SIDE) -> EncodedImage:
        """``for_remote`` from the event loop: in a worker thread unless already built.

        The requests about one picture (OCR, caption, labels, its embedding) ask
        at the same moment: one worker thread builds the body and the others
        await that build, rather than each taking a worker thread only to wait
        on the lock (with 4 such waits per picture, the small default pool of
        worker threads left the provider's slots waiting for a thread).
        """
        cached = self._remote.get(max_side)
        if cached is not None:
            return cached
        loop = asyncio.get_running_loop()
        building = self._remote_building.get(max_side)
        if building is None or building.get_loop() is not loop:
            building = asyncio.ensure_future(asyncio.to_thread(self.for_remote, max_side))
            self._remote_building[max_side] = building
            building.add_done_callback(lambda done: self._forget_build(max_side, done))
        # shield: one asker cancelled (a timeout) must not cancel the build the others await.
        return await asyncio.shield(building)

    def _forget_build(self, max_side: int, done: "asyncio.Future[EncodedImage]") -> None:
        if self._remote_building.get(max_side) is done:
            del self._remote_building[max_side]
        if not done.cancelled():
            done.exception()  # an error reaches every asker; marked retrieved for the loop's log


@dataclass(frozen=True)
class AudioInput:
    """One validated audio source: bytes or a file path, with its duration when the container says."""

    data: bytes | None = field(repr=False)
    path: Path | None
    sha256: str
    duration_s: float | None
    label: str = AUDIO

    @property
    def source(self) -> bytes | Path:
        return self.data if self.data is not None else self.path  # type: ignore[return-value]

    def pcm16k(self):
        """Decoded 16 kHz mono int16 samples."""
        return _audio.decode_pcm16k(self.source, self.label)


@dataclass(frozen=True)
class Inputs:
    """Validated inputs of one call; exactly the kinds that were given are set."""

    image: ImageInput | None = None
    frames: tuple[ImageInput, ...] | None = None
    audio: AudioInput | None = None
    text: str | None = None
    results: tuple[dict[str, Any], ...] | None = None
    input_hash: str = ""

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(k for k in KINDS if getattr(self, k) is not None)

    def images(self) -> list[ImageInput]:
        """The image, or the frames, as a list (empty when neither was given)."""
        if self.image is not None:
            return [self.image]
        return list(self.frames or ())


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _as_bytes(value: Any, label: str, kind: str) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
    elif isinstance(value, Path):
        if not value.is_file():
            raise InvalidInputError(f"{label}: file not found: {value}")
        data = value.read_bytes()
    else:
        raise InvalidInputError(f"{label}: expected {KIND_HELP[kind]}, got {type(value).__name__}")
    if not data:
        raise InvalidInputError(f"{label}: is empty (0 bytes)")
    return data


def _image(value: Any, label: str) -> ImageInput:
    if isinstance(value, ImageInput):
        return value  # validated and hashed already, and its decoded forms are shared
    data = _as_bytes(value, label, IMAGE)
    fmt, width, height = _images.probe_image(data, label)
    return ImageInput(data=data, format=fmt, width=width, height=height, sha256=_sha256(data), label=label)


def image_input(value: Any, label: str = IMAGE) -> ImageInput:
    """One validated, hashed picture to hand to several methods (``image=`` or in ``frames=``).

    Every method given the same ``ImageInput`` shares one decode, one
    downscale per size and one encoded body for remote models, instead of
    each doing its own. Reads the header and hashes the bytes (hashlib
    releases the GIL): for large pictures, call it from a worker thread.
    Raises ``InvalidInputError`` (``MediaDecodeError``) naming ``label``.
    """
    return _image(value, label)


def _frames(value: Any) -> tuple[ImageInput, ...]:
    if isinstance(value, (bytes, bytearray, str)) or not isinstance(value, Iterable):
        raise InvalidInputError(f"frames: expected {KIND_HELP[FRAMES]}, got {type(value).__name__}")
    frames = tuple(_image(item, f"frames[{i}]") for i, item in enumerate(value))
    if not frames:
        raise InvalidInputError("frames: the list is empty")
    return frames


def _audio_input(value: Any) -> AudioInput:
    if isinstance(value, str):
        value = Path(value)
    if isinstance(value, Path):
        if not value.is_file():
            raise InvalidInputError(f"audio: file not found: {value}")
        if value.stat().st_size == 0:
            raise InvalidInputError(f"audio: is empty (0 bytes): {value}")
        duration = _audio.probe_audio(value, f"audio ({value.name})")
        return AudioInput(data=None, path=value, sha256=_file_sha256(value), duration_s=duration)
    data = _as_bytes(value, AUDIO, AUDIO)
    duration = _audio.probe_audio(data, AUDIO)
    return AudioInput(data=data, path=None, sha256=_sha256(data), duration_s=duration)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(f"text: expected {KIND_HELP[TEXT]}, got {type(value).__name__}")
    if not value.strip():
        raise InvalidInputError("text: is empty")
    return value


def _results(value: Any) -> tuple[dict[str, Any], ...]:
    if isinstance(value, Mapping):
        value = [value]
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InvalidInputError(f"results: expected {KIND_HELP[RESULTS]}, got {type(value).__name__}")
    items = tuple(value)
    if not items:
        raise InvalidInputError("results: the list is empty")
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise InvalidInputError(f"results[{i}]: expected a JSON object, got {type(item).__name__}")
    try:
        # Round-trip: the method sees plain JSON, and the hash is of the canonical JSON.
        return tuple(json.loads(json.dumps(dict(item), sort_keys=True)) for item in items)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"results: not JSON-serialisable ({exc})") from exc


def canonical_json(value: Any) -> str:
    """Stable JSON text (sorted keys, no spaces) used for hashing."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def prepare_inputs(
    method_name: str,
    accepts: tuple[str, ...],
    given: Mapping[str, Any],
    params: Mapping[str, Any] | None = None,
    exclusive: bool = True,
) -> Inputs:
    """Validate ``given`` against what ``method_name`` accepts and hash it.

    ``params`` (method settings that change its output) are folded into the hash.
    """
    accepted = " or ".join(accepts)
    unknown = [k for k in given if k not in KINDS]
    if unknown:
        raise InvalidInputError(
            f"{method_name}: unknown input {unknown[0]!r}; it accepts {accepted} (input kinds: {', '.join(KINDS)})"
        )
    present = {k: v for k, v in given.items() if v is not None}
    wrong = [k for k in present if k not in accepts]
    if wrong:
        raise InvalidInputError(f"{method_name}: does not accept {wrong[0]}; it accepts {accepted}")
    if not present:
        raise InvalidInputError(f"{method_name}: no input given; it accepts {accepted}")
    if exclusive and len(present) > 1:
        raise InvalidInputError(f"{method_name}: give exactly one of {accepted}, got {', '.join(present)}")

    parsed: dict[str, Any] = {}
    digest = hashlib.sha256()
    if params:
        digest.update(b"params\0" + canonical_json(dict(params)).encode() + b"\0")
    for kind in KINDS:
        if kind not in present:
            continue
        value = present[kind]
        if kind == IMAGE:
            img = _image(value, IMAGE)
            parsed[kind], piece = img, img.sha256
        elif kind == FRAMES:
            frames = _frames(value)
            parsed[kind], piece = frames, ",".join(f.sha256 for f in frames)
        elif kind == AUDIO:
            aud = _audio_input(value)
            parsed[kind], piece = aud, aud.sha256
        elif kind == TEXT:
            text = _text(value)
            parsed[kind], piece = text, _sha256(text.encode("utf-8"))
        else:
            results = _results(value)
            parsed[kind], piece = results, _sha256(canonical_json(list(results)).encode("utf-8"))
        digest.update(f"{kind}\0{piece}\0".encode())
    return Inputs(**parsed, input_hash=digest.hexdigest())
