"""Benchmark of the AI methods call path and of the local provider's engines.

1. Call-path overhead: N calls of ``embed_text`` through ``MethodRunner`` (input
   hashing, the durable SQLite cache, limits, retries, validation, accounting)
   to a real HTTP server on 127.0.0.1, in its own process, that answers every
   request after 200 ms. With 64 calls in flight the best possible rate is
   64 / 0.2 s = 320 calls/s; the ratio measured/bound is what the call path and
   the HTTP client cost (goal ≥ 0.9).
2. The cost of a cache hit (µs per call), for a text and for a 1080×1080 image.
3. Local throughput: OCR images/s, embed_image/s and embed_text/s, and the
   speech real-time factor (processing seconds per audio second, < 1 is faster
   than real time).

Prints JSON lines: {"name", "value", "unit", "bound", "goal"}.

    python bench/bench_methods.py           # full run (~1 min)
    python bench/bench_methods.py --quick   # smaller N, a smoke check
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import httpx  # noqa: E402

from ai_methods import AISettings, MethodRunner, ResultCache  # noqa: E402
from ai_methods.errors import BadResponseError, ProviderUnavailableError, TransientProviderError  # noqa: E402
from ai_methods.providers.base import EmbeddingReply, ModelClient  # noqa: E402
from ai_methods.usage import Usage  # noqa: E402

LATENCY_S = 0.2
CONCURRENCY = 64
SPOKEN_WAV = Path(__file__).resolve().parents[1] / "ad_assets" / "demo" / "spoken_ad.wav"


def emit(name: str, value: float, unit: str, bound: float | None = None, goal: str | None = None) -> None:
    print(json.dumps({"name": name, "value": round(value, 3), "unit": unit, "bound": bound, "goal": goal}), flush=True)


# ----- the loopback provider (its own process, so it does not share our GIL) -----------


def _serve(conn: Any, delay_s: float) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    return
                length = 0
                while True:
                    header = await reader.readline()
                    if header in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = header.decode("latin-1").partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                await asyncio.sleep(delay_s)
                digest = hashlib.sha256(body).digest()
                payload = json.dumps({"vector": [b / 255 for b in digest[:16]], "model": "loopback-embed-1"}).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(payload)
                    + payload
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=512)
        conn.send(server.sockets[0].getsockname()[1])
        async with server:
            await server.serve_forever()

    asyncio.run(main())


class LoopbackClient(ModelClient):
    """A ``ModelClient`` whose ``embed_text`` is one POST to the loopback server.

    Requests are spread over ``shards`` httpx clients of ``CONCURRENCY / shards``
    connections each: one httpx pool of 64 connections costs ~2.4 ms of CPU per
    request here (its pool bookkeeping grows with its size), eight pools of 8
    about 0.56 ms. Real clients (bedrock, openai) face the same choice.
    """

    name = "loopback"

    def __init__(self, base_url: str, shards: int = 8) -> None:
        per = max(1, CONCURRENCY // shards)
        limits = httpx.Limits(max_connections=per, max_keepalive_connections=per)
        self._clients = [httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30.0) for _ in range(shards)]
        self._next = 0

    def model_for(self, primitive: str) -> str:
        return "loopback-embed-1"

    async def embed_text(self, texts: list[str]) -> EmbeddingReply:
        self._next = (self._next + 1) % len(self._clients)
        try:
            response = await self._clients[self._next].post("/embed", json={"texts": texts})
        except httpx.TransportError as exc:
            raise TransientProviderError(f"loopback: {exc}") from exc
        if response.status_code != 200:
            raise TransientProviderError(f"loopback answered {response.status_code}")
        data = response.json()
        if "vector" not in data:
            raise BadResponseError("loopback: no vector")
        vector = data["vector"]
        return EmbeddingReply(
            [vector], len(vector), Usage(requests=1, input_tokens=len(texts[0].split())), data["model"]
        )

    async def chat_json(self, **kwargs: Any):
        raise ProviderUnavailableError("loopback has no chat")

    async def embed_image(self, images: list[bytes]):
        raise ProviderUnavailableError("loopback has no image embeddings")

    async def transcribe(self, audio_wav: bytes, *, language: str | None = None):
        raise ProviderUnavailableError("loopback has no transcription")

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()


async def bench_call_path(base_url: str, n: int, cache_dir: Path) -> None:
    client = LoopbackClient(base_url)
    settings = AISettings(default_provider="openai", cache_dir=cache_dir, concurrency={"openai": CONCURRENCY})
    runner = MethodRunner(settings, clients={"openai": client})
    try:
        # warm the connection pool and the imports
        await asyncio.gather(*(runner.run("embed_text", text=f"warm up {i}") for i in range(CONCURRENCY)))
        texts = [f"fresh coffee ad number {i}" for i in range(n)]
        cpu0, t0 = time.process_time(), time.perf_counter()
        results = await asyncio.gather(*(runner.run("embed_text", text=t) for t in texts))
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        assert len(results) == n and not any(r.cached for r in results)
        bound = CONCURRENCY / LATENCY_S
        rate = n / wall
        emit(f"call_path_calls_per_s_c{CONCURRENCY}_n{n}", rate, "calls/s", bound, "ratio>=0.9")
        emit("call_path_ratio", rate / bound, "ratio", 1.0, ">=0.9")
        emit("call_path_client_cpu_per_call", cpu / n * 1e6, "us", None, None)

        # cache hits: the same texts again, one at a time
        m = min(n, 2000)
        t0 = time.perf_counter()
        for text in texts[:m]:
            result = await runner.run("embed_text", text=text)
        hit_us = (time.perf_counter() - t0) / m * 1e6
        assert result.cached
        emit("cache_hit_text", hit_us, "us", None, "<1000")
        acct = runner.accounting()["methods"]["embed_text"]
        assert acct["failures"] == {}, acct
    finally:
        await runner.aclose()


# ----- local engines -----------------------------------------------------------------


def _ad_image(i: int, fmt: str = "JPEG") -> bytes:
    from PIL import Image, ImageDraw, ImageFont

    font_path = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
    font = ImageFont.truetype(font_path, 96) if os.path.exists(font_path) else ImageFont.load_default(size=96)
    im = Image.new("RGB", (1080, 1080), (80 + i % 100, 50, 20 + (i * 7) % 150))
    draw = ImageDraw.Draw(im)
    draw.ellipse([300, 500, 780, 980], fill=(230, 220, 200))
    draw.text((80, 120), "FRESH COFFEE", font=font, fill=(255, 255, 255))
    draw.text((80, 300), f"SAVE {i % 90 + 10}% TODAY", font=font, fill=(255, 230, 0))
    out = io.BytesIO()
    im.save(out, fmt, quality=88) if fmt == "JPEG" else im.save(out, fmt)
    return out.getvalue()


async def _rate(runner: MethodRunner, method: str, inputs: list[dict[str, Any]]) -> float:
    t0 = time.perf_counter()
    await asyncio.gather(*(runner.run(method, provider="local", **kw) for kw in inputs))
    return len(inputs) / (time.perf_counter() - t0)


async def bench_local(quick: bool, cache_dir: Path) -> None:
    import numpy as np

    from ai_methods.audio import decode_pcm16k, wav_bytes

    runner = MethodRunner(AISettings(default_provider="local"), cache=None)
    try:
        # Load the models outside the timings.
        await runner.run("ocr_text", image=_ad_image(10_000))
        await runner.run("transcribe_speech", audio=SPOKEN_WAV)

        n_ocr = 6 if quick else 20
        images = [_ad_image(i) for i in range(n_ocr)]
        emit(
            "local_ocr_images_per_s_1080px",
            await _rate(runner, "ocr_text", [{"image": im} for im in images]),
            "images/s",
            None,
            None,
        )

        n_img = 50 if quick else 200
        images = [_ad_image(i) for i in range(n_img)]
        emit(
            "local_embed_image_per_s_1080px",
            await _rate(runner, "embed_image", [{"image": im} for im in images]),
            "images/s",
            None,
            None,
        )

        n_txt = 1000 if quick else 5000
        texts = [
            {"text": f"Fresh coffee every morning, offer {i}: visit our store today and save {i % 50}%"}
            for i in range(n_txt)
        ]
        emit("local_embed_text_per_s", await _rate(runner, "embed_text", texts), "texts/s", None, None)

        pcm = decode_pcm16k(SPOKEN_WAV)
        repeats = 2 if quick else 5
        long_audio = wav_bytes(np.concatenate([pcm] * repeats))
        seconds = len(pcm) * repeats / 16_000
        t0 = time.perf_counter()
        await runner.run("transcribe_speech", audio=long_audio)
        emit(f"local_speech_real_time_factor_{seconds:.0f}s", (time.perf_counter() - t0) / seconds, "s/s", 1.0, "<1")
    finally:
        await runner.aclose()

    # A cache hit for an image input: hashing and probing the bytes, one SQLite read.
    cached = MethodRunner(AISettings(default_provider="local"), cache=ResultCache(cache_dir / "img.sqlite"))
    try:
        image = _ad_image(1, "PNG")
        await cached.run("embed_image", image=image)
        m = 200 if quick else 1000
        t0 = time.perf_counter()
        for _ in range(m):
            result = await cached.run("embed_image", image=image)
        assert result.cached
        emit(f"cache_hit_image_{len(image) // 1024}kib_png", (time.perf_counter() - t0) / m * 1e6, "us", None, "<1000")
    finally:
        await cached.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller N, for a smoke check")
    parser.add_argument("--skip-local", action="store_true", help="only the call path")
    args = parser.parse_args()
    n = 640 if args.quick else 5000
    emit("load_average_1m", os.getloadavg()[0], "load", float(os.cpu_count() or 1), None)

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_serve, args=(child, LATENCY_S), daemon=True)
    server.start()
    try:
        if not parent.poll(30):
            raise RuntimeError("loopback server did not start")
        port = parent.recv()
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(bench_call_path(f"http://127.0.0.1:{port}", n, Path(tmp)))
            if not args.skip_local:
                asyncio.run(bench_local(args.quick, Path(tmp)))
    finally:
        server.terminate()
        server.join(5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
