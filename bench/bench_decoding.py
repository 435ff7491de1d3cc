"""Benchmark of the decoding layer: frame sampling before and after, and refusing a 3-hour file.

1. A 2-minute 1280×720 25 fps H.264 video, 100 frames sampled, by this
   checkout's ``sample_frames`` and by the one of a reference commit (default:
   the last commit before the decoding layer), run alternately in the same
   process so the machine's noise hits both alike. Goal: after/before ≤ 1.1.
2. The time ``probe_media`` takes to refuse as ``too_long`` files that play
   for 3 h 10 min: an "audiogram" (one still picture over 3 h 10 min of sound,
   whose picture stream alone lasts 0.04 s: the reference commit accepted it
   and then transcribed three hours), and a still picture whose second frame
   comes at 11,400 s, with the duration in the container header (MP4) and
   without one (Matroska written to a pipe, duration from the packets).
   Goal: < 2 s.

Prints JSON lines: {"name", "value", "unit", "bound", "goal"}.

    python bench/bench_decoding.py [--before REF] [--repeat 3] [--quick]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

import av  # noqa: E402
import numpy as np  # noqa: E402

from ad_assets.engine.media_probe import MediaProbeError, probe_media, sniff_media_type  # noqa: E402
from ad_assets.engine.video_frames import sample_frames  # noqa: E402

BEFORE_REF = "be5777c"  # the last commit before ai_methods.media
THREE_H_TEN_S = 3 * 3600 + 10 * 60


def emit(name: str, value: float, unit: str, bound: float | None = None, goal: str | None = None) -> None:
    print(json.dumps({"name": name, "value": round(value, 4), "unit": unit, "bound": bound, "goal": goal}), flush=True)


def long_video(path: Path, seconds: float, size: tuple[int, int], fps: int) -> None:
    """A moving gradient (every frame differs), H.264, 2 s key-frame interval."""
    width, height = size
    ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": str(2 * fps)}
        for i in range(int(seconds * fps)):
            shade = (ramp + i * 3) % 256
            frame_rgb = np.broadcast_to(shade, (height, width, 3)).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame_rgb), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


class _Pipe:
    """A write-only, non-seekable sink: muxers cannot go back to write a duration."""

    def __init__(self, fh) -> None:
        self.fh = fh

    def write(self, data) -> int:
        return self.fh.write(data)

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        raise OSError("not seekable")


def three_hour_still(path: Path, fmt: str) -> None:
    """A still picture shown for 3 h 10 min: two frames, the second at 11,400 s (a few KB)."""
    with open(path, "wb") as fh:
        target = _Pipe(fh) if fmt == "matroska" else fh
        with av.open(target, "w", format=fmt) as out:
            stream = out.add_stream("libx264", rate=25)
            stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
            stream.time_base = Fraction(1, 1000)
            picture = np.full((360, 640, 3), 200, dtype=np.uint8)
            for pts_s in (0, THREE_H_TEN_S):
                frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
                frame.pts, frame.time_base = pts_s * 1000, Fraction(1, 1000)
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)


def audiogram_3h(path: Path) -> None:
    """One still picture over 3 h 10 min of AAC: 10 s of sound encoded once, its packets muxed again and again."""
    import av

    with av.open(str(path), "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 640, 360, "yuv420p"
        audio = out.add_stream("aac", rate=8000)
        audio.layout = "mono"
        frame = av.VideoFrame.from_ndarray(np.full((360, 640, 3), 200, dtype=np.uint8), format="rgb24")
        frame.pts, frame.time_base = 0, Fraction(1, 25)
        for packet in [*video.encode(frame), *video.encode()]:
            out.mux(packet)
        tone = (np.sin(np.arange(80000) * 2 * np.pi * 440 / 8000) * 3000).astype(np.int16)[None, :]
        chunk = av.AudioFrame.from_ndarray(tone, format="s16", layout="mono")
        chunk.sample_rate, chunk.pts, chunk.time_base = 8000, 0, Fraction(1, 8000)
        encoded = [(p.pts, p.duration, bytes(p)) for p in [*audio.encode(chunk), *audio.encode(None)] if p.pts is not None]
        first = min(pts for pts, _, _ in encoded)
        span = max(pts + duration for pts, duration, _ in encoded) - first  # the piece's length, priming included
        for repeat in range(int(THREE_H_TEN_S * 8000 / span) + 1):
            for pts, duration, data in encoded:
                packet = av.Packet(data)
                packet.stream = audio
                packet.pts = packet.dts = pts - first + repeat * span
                packet.duration, packet.time_base = duration, Fraction(1, 8000)
                out.mux(packet)


def load_before(ref: str, scratch: Path):
    """The reference commit's ``media_probe`` and ``video_frames``, loaded from git into private modules."""
    modules = {}
    for name in ("media_probe", "video_frames"):
        source = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{ref}:ad_assets/engine/{name}.py"],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        source = source.replace("from ad_assets.engine.media_probe import", "from before_media_probe import")
        path = scratch / f"before_{name}.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location(f"before_{name}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[f"before_{name}"] = module
        spec.loader.exec_module(module)
        modules[name] = module
    return modules


def decode_case(args, scratch: Path) -> None:
    seconds, frames, size = (30.0, 25, (640, 360)) if args.quick else (120.0, 100, (1280, 720))
    video = scratch / "long.mp4"
    started = time.perf_counter()
    long_video(video, seconds, size, 25)
    print(f"# generated {seconds:.0f} s {size[0]}x{size[1]} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    before = load_before(args.before, scratch)["video_frames"].sample_frames
    timings: dict[str, list[float]] = {"before": [], "after": []}
    counts = {}
    for _ in range(args.repeat):
        for label, sample in (("before", before), ("after", sample_frames)):
            t = time.perf_counter()
            got = sample(video, frames, duration_s=seconds)
            timings[label].append(time.perf_counter() - t)
            counts[label] = len(got)
    b, a = statistics.median(timings["before"]), statistics.median(timings["after"])
    name = f"video{seconds:.0f}s_decode_{frames}_frames"
    emit(f"{name}_before", b, "s", goal=f"reference {args.before}, median of {args.repeat}")
    emit(f"{name}_after", a, "s", goal=f"median of {args.repeat}")
    emit(f"{name}_after_over_before", a / b, "ratio", 1.1, "<=bound")
    emit(f"{name}_frames_after", counts["after"], "frames", frames, "informative: frames shown at several times are taken once")


def refuse_case(args, scratch: Path) -> None:
    started = time.perf_counter()
    audiogram = scratch / "audiogram_3h10m.mp4"
    audiogram_3h(audiogram)
    print(f"# built the 3 h 10 min audiogram in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    files = [("audiogram_mp4", audiogram)]
    for fmt, ext in (("mp4", "mp4"), ("matroska", "mkv")):
        path = scratch / f"still_3h10m.{ext}"
        three_hour_still(path, fmt)
        files.append((f"two_frames_{ext}", path))
    old_probe = load_before(args.before, scratch)["media_probe"].probe_video
    for name, path in files:
        sniffed = sniff_media_type(path.read_bytes()[:64])
        t = time.perf_counter()
        try:
            probe_media(path, sniffed, max_pixels=80_000_000, max_duration_s=3 * 3600.0)
            cause = "accepted"
        except MediaProbeError as exc:
            cause = exc.cause
        elapsed = time.perf_counter() - t
        try:
            before = f"reference accepted it as {old_probe(path, max_duration_s=3 * 3600.0).duration_s} s"
        except Exception as exc:  # the reference's own refusal
            before = f"reference refused it: {getattr(exc, 'cause', type(exc).__name__)}"
        size = path.stat().st_size
        emit(f"refuse_3h10m_{name}_s", elapsed, "s", 2.0, f"<=bound; cause {cause}, {size:,} bytes; {before}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", default=BEFORE_REF, help="git ref of the reference sample_frames")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a 30 s 640x360 video with 25 frames")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-decoding-") as tmp:
        scratch = Path(tmp)
        refuse_case(args, scratch)
        decode_case(args, scratch)


if __name__ == "__main__":
    main()
