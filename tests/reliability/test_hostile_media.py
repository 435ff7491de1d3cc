"""Hostile media through the real acquisition path: loopback server → ``Fetcher``
→ ``acquire_media`` → local ``MediaStore``.

What is promised: every URL ends as its own row with a stable cause and one
sentence; memory stays bounded whatever a body inflates to; time is bounded
whatever a server trickles; nothing a file says makes the decoders touch the
network; and the good URLs of the brand are acquired as if nothing happened.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest
from PIL import Image

from ad_assets.demo.samples import Scene, encode_image, render_ad_image, render_ad_video
from ad_assets.engine.acquire import AcquireLimits, acquire_media, summarize_rows
from ad_assets.engine.media_probe import MediaProbeError, probe_image, probe_video
from ad_assets.engine.video_frames import VideoDecodeError, extract_audio_wav, sample_frames
from ai_methods.audio import decode_pcm16k, probe_audio
from ai_methods.errors import InvalidInputError
from resources.fetcher import TEMP_SUFFIX, Fetcher, FetchPolicy
from resources.media_store import MediaStore
from tests.reliability.hostile import (
    MiB,
    EndlessBody,
    EndlessHeaders,
    LyingLength,
    concat_list,
    dash_manifest,
    ftyp_polyglot,
    gif_claiming,
    gzip_bomb,
    hls_playlist,
    jpeg_claiming,
    long_sparse_mp4,
    png_claiming,
    raw_deflate_bomb,
    zlib_bomb,
)
from tests.support.loopback_http import LoopbackHTTPServer, Redirect, SlowBody, Static, status

REPO = Path(__file__).resolve().parents[2]
CAP = 8 * MiB  # the byte cap of these runs; every bomb below inflates to 1 GiB
GIVE_UP_S = 1.5  # the whole-URL time budget of these runs


@pytest.fixture(scope="module")
def good_png() -> bytes:
    return encode_image(render_ad_image(["FRESH COFFEE"], size=(320, 200)))


@pytest.fixture(scope="module")
def good_mp4() -> bytes:
    return render_ad_video([Scene(("A",), (200, 30, 30), 0.5), Scene(("B",), (30, 30, 200), 0.5)], size=(96, 64))


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    return {"gzip": gzip_bomb(), "zlib": zlib_bomb(), "raw": raw_deflate_bomb()}


def _policy(server: LoopbackHTTPServer, **overrides) -> FetchPolicy:
    settings = dict(max_bytes=CAP, max_attempts=2, backoff_base_s=0.01, backoff_cap_s=0.02, connect_timeout_s=2.0,
                    read_timeout_s=2.0, total_timeout_s=GIVE_UP_S, allow_hosts=(server.netloc,))  # fmt: skip
    return FetchPolicy(**{**settings, **overrides})


async def _acquire(urls, policy: FetchPolicy, tmp_path: Path, **fetcher) -> tuple[list[dict], MediaStore]:
    store = MediaStore.from_url(str(tmp_path / "store"))
    async with Fetcher(policy, tmp_path / "work", **fetcher) as f:
        rows = await acquire_media(urls, fetcher=f, store=store, limits=AcquireLimits())
    return rows, store


def _encoded(body: bytes, encoding: str, content_type: str = "image/png") -> Static:
    return Static(body, content_type, headers=(("Content-Encoding", encoding),))


# (path, expected status, expected cause, words the detail must contain)
HOSTILE = [
    ("/gzip-bomb", "failed", "too_large", "8388608-byte limit"),
    ("/zlib-bomb", "failed", "too_large", "8388608-byte limit"),
    ("/raw-deflate-bomb", "failed", "too_large", "8388608-byte limit"),
    ("/double-gzip", "failed", "protocol_error", "'gzip, gzip'-encoded"),
    ("/corrupt-gzip", "failed", "protocol_error", "gzip body is corrupt"),
    ("/endless-body", "failed", "too_large", "8388608-byte limit"),
    ("/endless-trickle", "failed", "timeout", f"within {GIVE_UP_S:g} s"),
    ("/endless-headers", "failed", "timeout", f"within {GIVE_UP_S:g} s"),
    ("/declares-more", "failed", "truncated", "expected 100000"),
    ("/declares-less.png", "failed", "corrupt_media", "does not decode"),
    ("/pixels-900m.png", "failed", "too_many_pixels", "decompression bomb"),
    ("/pixels-95m.png", "failed", "too_many_pixels", "above the 80,000,000 pixel limit"),
    ("/pixels-4g.gif", "failed", "too_many_pixels", "decompression bomb"),
    ("/pixels-4g.jpg", "failed", "too_many_pixels", "decompression bomb"),
    ("/truncated.mp4", "failed", "corrupt_media", "does not decode"),
    ("/garbage.mp4", "failed", "corrupt_media", "does not decode"),
    ("/28-hours.mp4", "failed", "too_long", "100001 s, above the 10800 s limit"),
    ("/html-as.png", "unsupported", "unsupported_type", "an HTML page (served as image/png)"),
    ("/empty.png", "unsupported", "unsupported_type", "the body is empty"),
    ("/no-content.png", "unsupported", "unsupported_type", "the body is empty"),
    ("/external.svg", "unsupported", "unsupported_type", "XML/SVG"),
    ("/playlist-as.mp4", "unsupported", "unsupported_type", "not an image or video"),
    ("/hls-polyglot.mp4", "failed", "corrupt_media", "does not decode"),
    ("/concat-polyglot.mp4", "failed", "corrupt_media", "does not decode"),
    ("/dash-polyglot.mp4", "failed", "corrupt_media", "does not decode"),
    ("/to-metadata.png", "failed", "blocked_address", "169.254.169.254"),
]


@pytest.fixture
def hostile_site(loopback_http, good_png, good_mp4, bombs):
    s = loopback_http
    segment = s.url("/segment.ts")  # what the playlists point at; must never be requested
    routes = {
        "/ok.png": Static(good_png, "image/png"),
        "/ok.mp4": Static(good_mp4, "video/mp4"),
        "/gzip-bomb": _encoded(bombs["gzip"], "gzip"),
        "/zlib-bomb": _encoded(bombs["zlib"], "deflate"),
        "/raw-deflate-bomb": _encoded(bombs["raw"], "deflate"),
        "/double-gzip": _encoded(gzip.compress(gzip.compress(good_png)), "gzip, gzip"),
        "/corrupt-gzip": _encoded(gzip.compress(good_png)[:20] + b"\xff" * 200, "gzip"),
        "/endless-body": EndlessBody(),
        "/endless-trickle": SlowBody(chunk=b"\0" * 64, interval_s=0.02),
        "/endless-headers": EndlessHeaders(interval_s=0.02),
        "/declares-more": LyingLength(100_000, good_png[:10_000]),
        "/declares-less.png": LyingLength(64, good_png),
        "/pixels-900m.png": Static(png_claiming(30_000, 30_000), "image/png"),
        "/pixels-95m.png": Static(png_claiming(9_500, 10_000), "image/png"),
        "/pixels-4g.gif": Static(gif_claiming(65_535, 65_535), "image/gif"),
        "/pixels-4g.jpg": Static(jpeg_claiming(65_500, 65_500), "image/jpeg"),
        "/truncated.mp4": Static(good_mp4[: len(good_mp4) // 2], "video/mp4"),
        "/garbage.mp4": Static(ftyp_polyglot(os.urandom(4096)), "video/mp4"),
        "/28-hours.mp4": Static(long_sparse_mp4(100_000), "video/mp4"),
        "/html-as.png": Static(b"<!DOCTYPE html><html><body>Not found</body></html>", "image/png"),
        "/empty.png": Static(b"", "image/png"),
        "/no-content.png": status(204),
        "/external.svg": Static(f'<svg xmlns="http://www.w3.org/2000/svg"><image href="{segment}"/></svg>'.encode(),
                                "image/svg+xml"),  # fmt: skip
        "/playlist-as.mp4": Static(hls_playlist(segment), "video/mp4"),
        "/hls-polyglot.mp4": Static(ftyp_polyglot(hls_playlist(segment)), "video/mp4"),
        "/concat-polyglot.mp4": Static(ftyp_polyglot(concat_list(segment)), "video/mp4"),
        "/dash-polyglot.mp4": Static(ftyp_polyglot(dash_manifest(segment)), "video/mp4"),
        "/to-metadata.png": Redirect("http://169.254.169.254/latest/meta-data/"),
        "/segment.ts": Static(b"\x47" * 188, "video/mp2t"),
    }
    for path, route in routes.items():
        s.route(path, route)
    return s


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow's, before we refuse
async def test_a_hostile_brand_ends_row_by_row_and_the_good_urls_go_through(hostile_site, tmp_path, figures):
    site = hostile_site
    paths = ["/ok.png", *(p for p, *_ in HOSTILE), "/ok.mp4"]
    urls = [site.url(p) for p in paths]

    started = time.monotonic()
    rows, store = await _acquire(urls, _policy(site), tmp_path)
    elapsed = time.monotonic() - started

    assert [r["url"] for r in rows] == urls, "one row per URL, in order"
    by_path = dict(zip(paths, rows))
    for path, state, cause, says in HOSTILE:
        row = by_path[path]
        assert (row["status"], row["cause"]) == (state, cause), (path, row["detail"])
        assert says in row["detail"], (path, row["detail"])
        assert row["storage_key"] is None
    for path in ("/ok.png", "/ok.mp4"):
        assert by_path[path]["status"] == "ok", by_path[path]
        assert store.exists_sync(by_path[path]["storage_key"])
    assert by_path["/declares-more"]["attempts"] == 2  # a short body is worth one retry
    assert site.hits["/segment.ts"] == 0, "no playlist, manifest or SVG made anything fetch its target"
    assert sorted(store.list_keys_sync("media/")) == sorted(by_path[p]["storage_key"] for p in ("/ok.png", "/ok.mp4"))
    assert list((tmp_path / "work").iterdir()) == [], "no temp file is left behind"
    summary = summarize_rows(rows, elapsed)
    assert summary["counts"] == {"ok": 2, "duplicate": 0, "unsupported": 5, "failed": len(HOSTILE) - 5}

    figures("hostile_brand_urls", len(urls), "URLs", "hostile brand: URLs acquired in one run (2 good)")
    figures("hostile_brand_elapsed_s", round(elapsed, 2), "s", "hostile brand: whole acquisition, all URLs")
    for path, name in (("/endless-body", "endless_body"), ("/endless-trickle", "endless_trickle"),
                       ("/endless-headers", "endless_headers"), ("/gzip-bomb", "gzip_bomb")):  # fmt: skip
        figures(f"give_up_{name}_s", round(by_path[path]["elapsed_ms"] / 1000, 2), "s",
                f"{path}: time until the URL's row was final ({by_path[path]['cause']})")  # fmt: skip


async def test_endless_bodies_stop_at_the_byte_cap_and_the_time_budget(loopback_http, tmp_path, figures):
    """A stream with no end: the cap ends a fast one, the budget a slow one, each within moments."""
    site = loopback_http
    fast = site.route("/fast", EndlessBody())
    slow = site.route("/slow", SlowBody(b"\0" * 16, 0.01))
    headers = site.route("/headers", EndlessHeaders(0.01))
    policy = _policy(site, max_bytes=64 * MiB, total_timeout_s=1.0, read_timeout_s=5.0, max_attempts=1)
    async with Fetcher(policy, tmp_path / "work") as fetcher:
        results = await asyncio.gather(fetcher.fetch(fast), fetcher.fetch(slow), fetcher.fetch(headers))
    by_cap, by_time, by_headers = results
    assert (by_cap.cause, by_time.cause, by_headers.cause) == ("too_large", "timeout", "timeout")
    for result in (by_time, by_headers):
        assert 1.0 <= result.elapsed_ms / 1000 < 1.0 + 2.0  # the budget, plus scheduling slack
    assert list((tmp_path / "work").iterdir()) == []
    figures("endless_body_64mib_cap_s", round(by_cap.elapsed_ms / 1000, 2), "s",
            "endless fast body: time to reach a 64 MiB cap")
    figures("endless_trickle_1s_budget_s", round(by_time.elapsed_ms / 1000, 2), "s",
            "endless trickle: give-up time with a 1 s budget")


async def test_a_body_longer_than_its_content_length_never_becomes_the_next_response(loopback_http, good_png, tmp_path):
    """The surplus bytes are a complete HTTP response; on a kept-alive connection httpcore
    would read them as the answer to the next URL (RFC 9112 §6.3 forbids it)."""
    site = loopback_http
    smuggled = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 8\r\n\r\nSMUGGLED"
    liar = site.route("/liar.png", LyingLength(len(good_png), good_png + smuggled))
    honest = site.route("/honest.png", Static(good_png, "image/png"))
    policy = _policy(site, max_concurrency=1, max_per_host=1)
    async with Fetcher(policy, tmp_path / "work", client_shards=1) as fetcher:  # one client: one connection
        first = await fetcher.fetch(liar)
        second = await fetcher.fetch(honest)
    assert first.ok and first.path.read_bytes() == good_png  # exactly what was declared
    assert second.ok and second.path.read_bytes() == good_png, "the next URL got its own response"
    assert site.connections == 2, "the connection with trailing bytes was not reused"


async def test_concurrent_pixel_bombs_are_all_refused(loopback_http, good_png, tmp_path):
    """Probes run in worker threads; each bomb must be refused however they interleave."""
    site = loopback_http
    site.route("/bomb/", Static(png_claiming(9_500, 10_000), "image/png"), prefix=True)
    site.route("/good/", Static(good_png, "image/png"), prefix=True)
    urls = [site.url(f"/{'bomb' if i % 2 else 'good'}/{i}.png") for i in range(64)]
    with warnings.catch_warnings():  # Pillow warns for each bomb before we refuse it
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        rows, _ = await _acquire(urls, _policy(site, max_concurrency=32, max_per_host=32), tmp_path)
    assert {(r["url"].split("/")[3], r["cause"]) for r in rows} == {("bomb", "too_many_pixels"), ("good", None)}


def test_a_pixel_bomb_is_refused_whatever_the_process_warning_filters_say(tmp_path, monkeypatch):
    """What concurrency did to the old ``catch_warnings`` check, staged deterministically: another
    thread leaves Pillow's warning ignored, and nothing in the probe may depend on the filters."""
    path = tmp_path / "bomb.png"
    path.write_bytes(png_claiming(9_500, 10_000))  # 95 M pixels: above Pillow's warning, under our 100 M limit
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        monkeypatch.setattr(warnings, "simplefilter", lambda *args, **kwargs: None)  # another thread's view
        with pytest.raises(MediaProbeError) as refused:
            probe_image(path)
    assert refused.value.cause == "too_many_pixels"


@pytest.mark.parametrize(
    ("name", "build"),
    [("list.m3u8", hls_playlist), ("list.ffconcat", concat_list), ("manifest.mpd", dash_manifest),
     ("list.mp4", hls_playlist)],  # fmt: skip
)
def test_no_decoder_follows_a_playlist_to_the_network(loopback_http, tmp_path, name, build):
    """Every place that hands a stored file to FFmpeg, fed a playlist named so FFmpeg would pick
    the matching demuxer: each fails with its typed error and nothing is requested."""
    site = loopback_http
    site.route("/segment.ts", Static(b"\x47" * 188 * 8, "video/mp2t"))
    path = tmp_path / name
    path.write_bytes(build(site.url("/segment.ts")))
    readers = {
        "probe_video": (lambda: probe_video(path), MediaProbeError),
        "sample_frames": (lambda: sample_frames(path, 3), VideoDecodeError),
        "extract_audio_wav": (lambda: extract_audio_wav(path), VideoDecodeError),
        "probe_audio(path)": (lambda: probe_audio(path, "audio"), InvalidInputError),
        "decode_pcm16k(path)": (lambda: decode_pcm16k(path), InvalidInputError),
        "probe_audio(bytes)": (lambda: probe_audio(path.read_bytes(), "audio"), InvalidInputError),
    }
    for reader, (call, error) in readers.items():
        with pytest.raises(error):
            call()
        assert site.hits["/segment.ts"] == 0 and site.connections == 0, reader


# -- memory: a separate process, so its peak RSS is this path's alone ------------------------------------
_BOMB_CHILD = textwrap.dedent(
    """
    import asyncio, functools, json, resource, sys, time
    sys.path.insert(0, {repo!r})
    import resources.fetcher as fetcher_module
    from resources.url_safety import GuardedNetworkBackend
    from tests.reliability.conftest import LoopbackOnlyDialer
    fetcher_module.GuardedNetworkBackend = functools.partial(GuardedNetworkBackend, inner=LoopbackOnlyDialer())
    from ad_assets.engine.acquire import acquire_media
    from resources.fetcher import Fetcher, FetchPolicy
    from resources.media_store import MediaStore

    def rss(field):
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024

    async def main():
        policy = FetchPolicy(max_bytes={cap}, max_attempts=1, total_timeout_s=60, allow_hosts=({netloc!r},))
        store = MediaStore.from_url({store!r})
        async with Fetcher(policy, {work!r}) as fetcher:
            await acquire_media([{warm!r}], fetcher=fetcher, store=store)  # warm every code path up
            try:
                with open("/proc/self/clear_refs", "w") as refs:
                    refs.write("5")  # reset the peak (VmHWM) to the current RSS
                peak_field = "VmHWM:"
            except OSError:
                peak_field = None
            base = rss("VmRSS:") if peak_field else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            started = time.monotonic()
            rows = await acquire_media({bombs!r}, fetcher=fetcher, store=store)
            elapsed = time.monotonic() - started
            peak = rss(peak_field) if peak_field else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(json.dumps({{"growth": peak - base, "elapsed": elapsed, "causes": [r["cause"] for r in rows]}}))

    asyncio.run(main())
    """
)


def test_compression_bombs_keep_memory_flat(loopback_http, bombs, good_png, tmp_path, figures):
    """Three 1 GiB bombs (gzip, zlib, raw deflate) against a 64 MiB cap: peak RSS growth of the
    acquiring process stays within one write block and one decode piece, far below the cap."""
    from resources.fetcher import DECODE_PIECE_BYTES, WRITE_BUFFER_BYTES

    site = loopback_http
    cap = 64 * MiB
    warm = site.route("/warm.png", _encoded(gzip.compress(good_png), "gzip"))
    urls = [site.route("/g", _encoded(bombs["gzip"], "gzip")), site.route("/z", _encoded(bombs["zlib"], "deflate")),
            site.route("/r", _encoded(bombs["raw"], "deflate"))]  # fmt: skip
    child = _BOMB_CHILD.format(repo=str(REPO), cap=cap, netloc=site.netloc, store=str(tmp_path / "store"),
                               work=str(tmp_path / "work"), warm=warm, bombs=urls)  # fmt: skip
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])

    assert report["causes"] == ["too_large"] * 3
    budget = WRITE_BUFFER_BYTES + DECODE_PIECE_BYTES + 8 * MiB  # a block, a piece, and allocator slack
    assert report["growth"] < budget, f"peak RSS grew {report['growth'] / MiB:.1f} MiB"
    assert not list((tmp_path / "work").glob(f"*{TEMP_SUFFIX}"))
    figures("bomb_peak_rss_growth_mib", round(report["growth"] / MiB, 1), "MiB",
            "3 × 1 GiB compression bombs, 64 MiB cap: peak RSS growth of the acquiring process")  # fmt: skip
    figures("bomb_time_to_refuse_s", round(report["elapsed"], 2), "s",
            "3 × 1 GiB bombs: until all three rows were final")
