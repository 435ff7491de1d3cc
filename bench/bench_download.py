"""Benchmark of the downloader: throughput against its theoretical bound, and memory.

A loopback server in its own process delays every response by L ms and serves
B KiB, so with C requests in flight the best possible rate is C*1000/L URLs/s.
The ratio measured/bound shows what the client side (httpx, our bookkeeping,
hashing, file writes) costs. Each throughput case runs twice in one go: with a
single httpx client (``clients1``), and with the Fetcher's default sharding
over several clients (``sharded``), because httpcore's pool bookkeeping grows
quadratically with its size. Last, one 1 GiB body is streamed and the peak RSS
growth measured (the body must never be held in memory).

Prints JSON lines: {"name", "value", "unit", "bound", "goal"}. The machine's
1-minute load average is printed first: on two shared cores, other work
slows the client down, so compare figures taken under similar load.

    python bench/bench_download.py               # full run (~2 min; clients1 at C=128 is the slow part)
    python bench/bench_download.py --quick       # small N, for a smoke check
    python bench/bench_download.py --repeat 3    # best of 3 per case
    python bench/bench_download.py --clients 4,8,16,auto --skip-rss   # compare shard counts
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing tests/

from resources.fetcher import Fetcher, FetchPolicy  # noqa: E402
from tests.support.loopback_http import Generated, Static, serve_in_subprocess  # noqa: E402

GiB = 2**30
MiB = 2**20


def emit(name: str, value: float, unit: str, bound: float | None = None, goal: str | None = None) -> None:
    print(json.dumps({"name": name, "value": round(value, 3), "unit": unit, "bound": bound, "goal": goal}), flush=True)


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


async def _throughput(base_url: str, concurrency: int, n: int, shards: int | None) -> tuple[float, float]:
    """(URLs per second, client CPU milliseconds per URL) in steady state."""
    policy = FetchPolicy(max_concurrency=concurrency, max_per_host=concurrency, allow_hosts=("127.0.0.1",))
    urls = [f"{base_url}/b/{i}" for i in range(n)]
    failures: list[str] = []

    def consume(result) -> None:  # a real caller moves the file away; we drop it
        if result.ok:
            result.path.unlink()
        else:
            failures.append(f"{result.url}: {result.cause} {result.detail}")

    with tempfile.TemporaryDirectory() as work:
        async with Fetcher(policy, Path(work), client_shards=shards) as fetcher:
            # Warm-up opens the keep-alive connections, so the timing is steady state.
            await fetcher.fetch_all(urls[: concurrency * 2], consume)
            started, cpu_started = time.perf_counter(), time.process_time()
            await fetcher.fetch_all(urls, consume)
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    if failures:
        raise SystemExit(f"{len(failures)} failures, e.g. {failures[0]}")
    return n / elapsed, cpu * 1000 / n


def _rss_case(base_url: str, conn) -> None:
    """Runs in a fresh process so earlier cases do not pollute the peak-RSS figure."""

    async def run() -> tuple[int, float]:
        policy = FetchPolicy(max_bytes=2 * GiB, allow_hosts=("127.0.0.1",))
        with tempfile.TemporaryDirectory() as work:
            async with Fetcher(policy, Path(work)) as fetcher:
                await fetcher.fetch(f"{base_url}/small")  # warm everything up first
                Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM where the kernel allows
                before = _status_kib("VmRSS")
                started = time.perf_counter()
                result = await fetcher.fetch(f"{base_url}/huge")
                elapsed = time.perf_counter() - started
                assert result.ok and result.bytes == GiB, result
                result.path.unlink()
                return _status_kib("VmHWM") - before, GiB / MiB / elapsed

    conn.send(asyncio.run(run()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small N for a smoke run")
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--body-kib", type=int, default=64)
    parser.add_argument("--clients", default="1,auto", help="comma list of client shard counts to compare ('auto' = Fetcher default)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per case; the best is reported")
    parser.add_argument("--skip-rss", action="store_true")
    args = parser.parse_args()

    latency_s = args.latency_ms / 1000
    cases = [(32, 300 if args.quick else 2000, 0.9), (128, 600 if args.quick else 4000, 0.8)]
    shard_options = [None if s == "auto" else int(s) for s in args.clients.split(",")]
    routes = [
        ("/b/", Static(b"\xab" * (args.body_kib * 1024), "image/jpeg", delay_s=latency_s), True),
        ("/small", Static(b"x" * 1024), False),
        ("/huge", Generated(GiB), False),
    ]
    # Two cores are shared by the client, the server process and whatever else
    # runs: the load average says how much of the machine the figures had.
    emit("loadavg_1m_at_start", os.getloadavg()[0], "processes", float(os.cpu_count() or 1), None)
    with serve_in_subprocess(routes) as base_url:
        for concurrency, n, goal in cases:
            bound = concurrency / latency_s
            for shards in shard_options:
                label = "sharded" if shards is None else f"clients{shards}"
                # Best of --repeat runs, as timeit does: interference only ever slows a run down.
                rate, cpu_ms = max(asyncio.run(_throughput(base_url, concurrency, n, shards)) for _ in range(args.repeat))
                emit(f"urls_per_s_c{concurrency}_{label}", rate, "urls/s", bound, f"ratio>={goal}")
                emit(f"ratio_c{concurrency}_{label}", rate / bound, "ratio", 1.0, f">={goal}")
                emit(f"client_cpu_per_url_c{concurrency}_{label}", cpu_ms, "ms", 1000 / bound, None)
        if not args.skip_rss:
            ctx = multiprocessing.get_context("spawn")
            parent, child = ctx.Pipe()
            process = ctx.Process(target=_rss_case, args=(base_url, child))
            process.start()
            growth_kib, mib_per_s = parent.recv()
            process.join()
            emit("peak_rss_growth_1gib_stream", growth_kib / 1024, "MiB", None, "<100")
            emit("stream_1gib_rate", mib_per_s, "MiB/s", None, None)


if __name__ == "__main__":
    main()
