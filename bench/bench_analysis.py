"""Benchmark of the first AI cycle: wall time against the bound the provider's concurrency sets.

The fake provider answers ``caption`` in 2.5 s (the per-frame figure the
reference AWS design reports) and every other call in 200 ms, with at most C
calls in flight (C = 16). Two lower bounds on the wall time follow:

* work bound: total call-seconds / C (the provider slots can do no better);
* critical path: the longest chain of calls one item must make in order
  (image: caption → embed_text; video: decode → embed_image of its frames →
  caption → embed_text), plus that item's decode time.

``ratio = max(work bound, critical path) / wall`` is the stage throughput the
engine reaches (1.0 = the provider never idles while work is waiting). The
media are generated with the sample generators, written to a local
``MediaStore`` and described by ``raw_media``-like rows, so nothing goes over
HTTP. Second case: one 2-minute video with 100 sampled frames, fully analysed.

Prints JSON lines: {"name", "value", "unit", "bound", "goal"}.

    python bench/bench_analysis.py            # 200 images + 20 videos, then the 2-minute video
    python bench/bench_analysis.py --quick    # 40 images + 4 videos, and a 30 s video with 25 frames
"""

from __future__ import annotations

import argparse
import asyncio
import colorsys
import hashlib
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
# The figures are the builtin pipeline's, whatever method packages are installed (AD_ASSETS_METHODS).
os.environ.setdefault("AD_ASSETS_METHODS", "builtin")

from ad_assets.demo.samples import Scene, encode_image, render_ad_image, render_ad_video  # noqa: E402
from ad_assets.engine.item_analysis import AnalysisConfig, ItemAnalysis, analyse_brand  # noqa: E402
from ad_assets.engine.media_probe import probe_video  # noqa: E402
from ad_assets.engine.video_frames import sample_frames  # noqa: E402
from ai_methods.calls import MethodRunner  # noqa: E402
from ai_methods.providers.fake import FakeProvider  # noqa: E402
from ai_methods.settings import AISettings  # noqa: E402
from resources.media_store import MediaStore, media_key  # noqa: E402

CAPTION_S, OTHER_S = 2.5, 0.2
PHRASES = ["FRESH COFFEE", "SAVE 20% TODAY", "NEW COLLECTION", "FREE DELIVERY", "SHOP NOW", "LIMITED OFFER",
           "VISIT OUR STORE", "BACK TO SCHOOL", "SUMMER SALE", "TRY IT FREE"]  # fmt: skip


def emit(name: str, value: float, unit: str, bound: float | None = None, goal: str | None = None) -> None:
    print(json.dumps({"name": name, "value": round(value, 3), "unit": unit, "bound": bound, "goal": goal}), flush=True)


def _colour(rng: random.Random) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.2, 0.8), rng.uniform(0.5, 1.0))
    return int(r * 255), int(g * 255), int(b * 255)


async def _put(store: MediaStore, data: bytes, ext: str, media_type: str, scratch: Path) -> dict:
    """Store one file as ``raw_media`` would, and return its ``raw_media``-like row."""
    sha = hashlib.sha256(data).hexdigest()
    key = media_key(sha, ext)
    await store.put_bytes(key, data)
    row = {"url": f"https://ads.example/{sha[:16]}.{ext}", "status": "ok", "sha256": sha,
           "media_type": media_type, "storage_key": key, "duration_s": None, "has_audio": None}  # fmt: skip
    if media_type == "video":
        path = scratch / f"{sha}.{ext}"
        path.write_bytes(data)
        probe = probe_video(path)
        row.update(duration_s=probe.duration_s, has_audio=probe.has_audio)
    return row


async def build_brand(store: MediaStore, scratch: Path, images: int, videos: int, seed: int = 7) -> list[dict]:
    """``images`` ad pictures and ``videos`` short spoken ad videos, stored, as ``raw_media`` rows."""
    rng = random.Random(seed)
    rows = []
    for i in range(images):
        size = rng.choice([(640, 480), (800, 800), (1080, 566)])
        img = render_ad_image([rng.choice(PHRASES), f"OFFER {i}"], size=size, background=_colour(rng), accent=_colour(rng))
        fmt, ext = rng.choice([("PNG", "png"), ("JPEG", "jpg")])
        rows.append(await _put(store, encode_image(img, fmt), ext, "image", scratch))
    for i in range(videos):
        scenes = [Scene((rng.choice(PHRASES), f"AD {i}"), _colour(rng), rng.uniform(1.5, 2.5)) for _ in range(3)]
        rows.append(await _put(store, render_ad_video(scenes, size=(480, 270), fps=25), "mp4", "video", scratch))
    return rows


def long_video(seconds: float, size: tuple[int, int], fps: int, scene_s: float = 10.0) -> bytes:
    rng = random.Random(11)
    scenes = [Scene((rng.choice(PHRASES), f"PART {i}"), _colour(rng), scene_s) for i in range(round(seconds / scene_s))]
    return render_ad_video(scenes, size=size, fps=fps)


def critical_path_s(items: list[ItemAnalysis], decode_s: dict[str, float]) -> float:
    """The longest chain of calls any single item must make in order, plus its decode time."""
    longest = 0.0
    for item in items:
        if item.media_type == "image":
            chain = CAPTION_S + OTHER_S  # caption → embed_text
        else:
            chain = decode_s.get(item.sha256, 0.0) + OTHER_S + CAPTION_S + OTHER_S  # frames → embed → caption → embed_text
            if item.transcript is not None:
                chain = max(chain, OTHER_S + OTHER_S)  # transcribe → segment embeds
        longest = max(longest, chain)
    return longest


async def run_case(rows: list[dict], work: Path, concurrency: int, config: AnalysisConfig, store: MediaStore):
    fake = FakeProvider(latency_s={"caption": CAPTION_S, "*": OTHER_S})
    settings = AISettings(default_provider="fake", concurrency={"fake": concurrency}, cache_enabled=False,
                          cache_dir=work / "ai-cache")  # fmt: skip
    async with MethodRunner(settings, fake=fake, cache=None) as runner:
        items, elapsed = await analyse_brand(
            rows, runner=runner, store=store, cache_dir=work / "media-cache", journal_dir=work / "journals", config=config
        )
        accounting = runner.accounting()
    call_s = sum(n * fake.latency_for(m) for m, n in fake.calls.items())
    return items, elapsed, call_s, accounting, fake


def report(prefix: str, items, elapsed, call_s, accounting, concurrency: int, critical: float, goal_ratio: float) -> None:
    work_bound = call_s / concurrency
    bound = max(work_bound, critical)
    total = accounting["total"]
    failed = sum(len(i.failures) for i in items)
    if failed:
        raise SystemExit(f"{prefix}: {failed} step failures, e.g. {next(f for i in items for f in i.failures)}")
    emit(f"{prefix}_items", len(items), "items")
    emit(f"{prefix}_frames_sampled", sum(i.frames_sampled for i in items), "frames")
    emit(f"{prefix}_frames_kept", sum(i.frames_kept for i in items), "frames")
    emit(f"{prefix}_provider_calls", total["provider_calls"], "calls")
    emit(f"{prefix}_call_seconds", call_s, "s")
    emit(f"{prefix}_max_in_flight", accounting["limits"]["fake"]["max_in_flight"], "calls", concurrency)
    emit(f"{prefix}_work_bound", work_bound, "s")
    emit(f"{prefix}_critical_path", critical, "s")
    emit(f"{prefix}_wall", elapsed, "s", round(bound, 3))
    emit(f"{prefix}_throughput_ratio", bound / elapsed, "ratio", 1.0, f">={goal_ratio}")


async def brand_case(args, scratch: Path) -> None:
    store = MediaStore.from_url(str(scratch / "store"))
    started = time.perf_counter()
    rows = await build_brand(store, scratch, args.images, args.videos)
    print(f"# generated {args.images} images and {args.videos} videos in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    config = AnalysisConfig(frame_count=args.frame_count)
    decode_s = {}
    for row in rows:
        if row["media_type"] == "video":
            t = time.perf_counter()
            sample_frames(scratch / f"{row['sha256']}.mp4", config.frame_count, duration_s=row["duration_s"])
            decode_s[row["sha256"]] = time.perf_counter() - t
    items, elapsed, call_s, accounting, _ = await run_case(rows, scratch / "brand", args.concurrency, config, store)
    report("brand", items, elapsed, call_s, accounting, args.concurrency, critical_path_s(items, decode_s), 0.85)
    emit("brand_items_per_s", len(items) / elapsed, "items/s")


async def long_video_case(args, scratch: Path) -> None:
    store = MediaStore.from_url(str(scratch / "store-long"))
    seconds, frames = (30.0, 25) if args.quick else (120.0, 100)
    size, fps = ((640, 360), 25) if args.quick else ((1280, 720), 25)
    started = time.perf_counter()
    data = long_video(seconds, size, fps)
    print(f"# generated a {seconds:.0f} s {size[0]}x{size[1]}@{fps} video in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    rows = [await _put(store, data, "mp4", "video", scratch)]
    t = time.perf_counter()
    sample_frames(scratch / f"{rows[0]['sha256']}.mp4", frames, duration_s=rows[0]["duration_s"])
    decode = time.perf_counter() - t
    emit(f"video{seconds:.0f}s_decode_{frames}_frames", decode, "s")
    config = AnalysisConfig(frame_count=frames)
    items, elapsed, call_s, accounting, _ = await run_case(rows, scratch / "long", args.concurrency, config, store)
    critical = critical_path_s(items, {rows[0]["sha256"]: decode})
    report(f"video{seconds:.0f}s", items, elapsed, call_s, accounting, args.concurrency, critical, 0.85)
    emit(f"video{seconds:.0f}s_{frames}_frames_analysed", elapsed, "s", round(max(call_s / args.concurrency, critical), 3),
         "<=30 (reference design: 300-360)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="40 images + 4 videos, and a 30 s video")
    parser.add_argument("--concurrency", type=int, default=int(os.environ.get("AD_ASSETS_AI_CONCURRENCY_FAKE") or 16))
    parser.add_argument("--images", type=int)
    parser.add_argument("--videos", type=int)
    parser.add_argument("--frame-count", type=int, default=AnalysisConfig().frame_count, help="frames sampled per brand video")
    parser.add_argument("--only", choices=["brand", "video"], help="run one case")
    args = parser.parse_args()
    args.images = args.images if args.images is not None else (40 if args.quick else 200)
    args.videos = args.videos if args.videos is not None else (4 if args.quick else 20)
    emit("concurrency", args.concurrency, "calls")
    with tempfile.TemporaryDirectory(prefix="bench-analysis-") as tmp:
        scratch = Path(tmp)
        if args.only in (None, "brand"):
            asyncio.run(brand_case(args, scratch))
        if args.only in (None, "video"):
            asyncio.run(long_video_case(args, scratch))


if __name__ == "__main__":
    main()
