"""Trying a method on files by hand: what ``ad-assets methods list|run`` calls.

Each input argument is a file path (image, audio, video, JSON of earlier
results, ``.txt``) or, when no such file exists and it does not look like a
path, literal text. Inputs are bound to the kinds the method accepts: several
images become ``frames``, a video gives its audio to audio methods and a few
evenly spaced frames to image methods, an animated image its frames. Files are
read as a player shows them (``ai_methods.media``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from ai_methods.audio import LOCAL_ONLY
from ai_methods.errors import InvalidInputError
from ai_methods.inputs import AUDIO, FRAMES, IMAGE, RESULTS, TEXT
from ai_methods.method import AIMethod

FILE_SUFFIXES = {
    ".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff",
    ".wav", ".mp3", ".m4a", ".aac", ".ogg", ".oga", ".opus", ".flac",
    ".mp4", ".mov", ".m4v", ".webm", ".mkv", ".avi",
    ".json", ".jsonl", ".txt", ".md",
}  # fmt: skip
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
VIDEO_FRAMES = 4


def describe_methods() -> list[dict[str, Any]]:
    """Every registered method: name, version, inputs, providers, output schema."""
    from ai_methods.registry import list_methods

    return [m.describe() for m in list_methods()]


def _looks_like_path(arg: str) -> bool:
    if any(c.isspace() for c in arg):
        return False
    return Path(arg).suffix.lower() in FILE_SUFFIXES or "/" in arg or "\\" in arg


def _media_streams(path: Path) -> tuple[bool, bool]:
    """(has audio, has a moving picture) for a media file PyAV can open; (False, False) otherwise.

    Cover art (an attached picture) is not a moving picture: an MP3 with one is audio.
    """
    import av

    from ai_methods.media.video import picture_stream

    try:
        with av.open(str(path), options=LOCAL_ONLY) as container:
            return bool(container.streams.audio), picture_stream(container) is not None
    except (av.FFmpegError, OSError, ValueError):
        return False, False


def _spread(duration_s: float, count: int) -> list[float]:
    return [duration_s * (i + 0.5) / count for i in range(count)]


def _video_frames(path: Path, count: int = VIDEO_FRAMES) -> list[bytes]:
    """Up to ``count`` frames spread evenly over a video or an animated image, as displayed, as PNG bytes."""
    from ai_methods.images import encode_png
    from ai_methods.media.errors import MediaDecodeError

    try:
        if _is_animation(path):
            from ai_methods.media.animation import frame_starts, frames_at

            _, total = frame_starts(path)
            images = [f.image for f in frames_at(path, _spread(total, count))]
        else:
            from ai_methods.media.video import iter_video_frames, probe_layout

            layout = probe_layout(path)
            times = _spread(layout.picture_duration_s or 0.0, count)
            images = [f.image for f in iter_video_frames(path, times, layout=layout)]
    except MediaDecodeError as exc:
        raise InvalidInputError(f"{path}: {exc.detail}") from exc
    if not images:
        raise InvalidInputError(f"{path}: no video frame could be decoded")
    return [encode_png(image) for image in images]


def _is_animation(path: Path) -> bool:
    from ai_methods.media.errors import MediaDecodeError
    from ai_methods.media.pictures import probe_picture

    try:
        return probe_picture(path, str(path), decode=False).animated
    except MediaDecodeError:
        return False


def classify_input(arg: str) -> tuple[str, Any]:
    """``(kind, value)`` for one command-line input: image, media (audio/video path), video, results or text."""
    path = Path(arg).expanduser()
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in (".json", ".jsonl"):
            try:
                text = path.read_text()
                data = (
                    [json.loads(ln) for ln in text.splitlines() if ln.strip()]
                    if suffix == ".jsonl"
                    else json.loads(text)
                )
            except ValueError as exc:
                raise InvalidInputError(f"{arg}: not valid JSON ({exc})") from exc
            return RESULTS, data if isinstance(data, list) else [data]
        if suffix in (".txt", ".md"):
            return TEXT, path.read_text()
        from ai_methods.images import probe_image

        data = path.read_bytes()
        if not data:
            raise InvalidInputError(f"{arg}: the file is empty")
        try:
            probe_image(data, arg)
            # An animated banner is read like a short video: its frames at their display times.
            return ("video", path) if _is_animation(path) else (IMAGE, data)
        except InvalidInputError:
            if suffix in IMAGE_SUFFIXES:
                raise  # a .png that is not an image: say so, rather than guess it is a video
        has_audio, has_video = _media_streams(path)
        if has_audio or has_video:
            return ("media" if has_audio else "video"), path
        raise InvalidInputError(f"{arg}: not an image, audio/video or JSON file")
    if path.exists():
        raise InvalidInputError(f"{arg}: is not a regular file")
    if _looks_like_path(arg):
        raise InvalidInputError(f"file not found: {arg}")
    return TEXT, arg


def bind_inputs(method: AIMethod, args: list[str]) -> dict[str, Any]:
    """Keyword inputs for ``method`` from command-line arguments (see the module docstring)."""
    if not args:
        raise InvalidInputError(f"{method.name}: give at least one input ({' or '.join(method.accepts)})")
    accepts = set(method.accepts)
    images: list[bytes] = []
    texts: list[str] = []
    results: list[Any] = []
    media: list[tuple[str, Path]] = []
    for arg in args:
        kind, value = classify_input(arg)
        if kind == IMAGE:
            images.append(value)
        elif kind == TEXT:
            texts.append(value)
        elif kind == RESULTS:
            results.extend(value)
        else:
            media.append((kind, value))

    def refuse(kind: str, example: str) -> InvalidInputError:
        return InvalidInputError(
            f"{method.name} does not accept {kind} input ({example}); it accepts {' or '.join(method.accepts)}"
        )

    bound: dict[str, Any] = {}
    sliced: list[str] = []  # files read as several frames (videos, animated images)
    for kind, path in media:
        if kind == "media" and AUDIO in accepts:
            if AUDIO in bound:
                raise InvalidInputError(f"{method.name} takes one audio input, got several")
            bound[AUDIO] = path
        elif accepts & {IMAGE, FRAMES}:
            if kind == "media" and not _media_streams(path)[1]:
                raise refuse("audio", str(path))
            frames = _video_frames(path)
            images.extend(frames)
            sliced.append(f"{path.name} gave {len(frames)} frames")
        else:
            raise refuse("audio" if kind == "media" else "video", str(path))
    if images:
        if FRAMES in accepts and (len(images) > 1 or IMAGE not in accepts):
            bound[FRAMES] = images
        elif IMAGE in accepts and len(images) == 1:
            bound[IMAGE] = images[0]
        elif IMAGE in accepts:
            origin = f" ({'; '.join(sliced)}: a video or an animated image is read as its frames)" if sliced else ""
            raise InvalidInputError(
                f"{method.name} takes one image, got {len(images)}{origin}; give one image file, "
                "or use a method that accepts frames"
            )
        else:
            raise refuse("image", "an image file")
    if texts:
        if TEXT not in accepts:
            raise refuse("text", repr(texts[0][:40]))
        bound[TEXT] = "\n".join(texts)
    if results:
        if RESULTS not in accepts:
            raise refuse("results (JSON)", "a JSON file")
        bound[RESULTS] = results
    return bound


async def run_method_on_inputs(
    name: str,
    inputs: list[str],
    provider: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    runner: Any = None,
) -> dict[str, Any]:
    """Run method ``name`` on command-line style ``inputs``; return the result with latency, usage, cost, cache.

    ``env`` defaults to the process environment; pass ``runner`` to reuse a configured ``MethodRunner``.
    """
    from ai_methods.calls import MethodRunner

    own = runner is None
    runner = runner or MethodRunner.from_env(env)
    try:
        method = runner.method(name)
        provider = runner.resolve_provider(method, provider)
        result = await runner.run(method, provider=provider, **bind_inputs(method, inputs))
    finally:
        if own:
            await runner.aclose()
    out = result.as_dict()
    out["result"] = out.pop("output")
    return out
