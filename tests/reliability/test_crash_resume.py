"""A brand run SIGKILLed from outside, at a moment chosen by watching its files,
then run again.

``tests/ad_assets/test_item_analysis.py`` kills the analysis from inside, at
the start of its N-th provider call. Here the killer is another process (as
the OOM killer or a lost spot instance would be): it waits until the run has
journaled some steps, or stored some media and is streaming a large body, and
kills it then, wherever it is. The re-run must repeat no step that reached a
journal, pay again at most for the calls that were in flight, produce what an
uninterrupted run produces, and leave no abandoned download behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

from ad_assets.demo.samples import Scene, encode_image, render_ad_image, render_ad_video
from ad_assets.engine.acquire import acquire_media, fetched_record_key
from ad_assets.engine.item_analysis import AnalysisConfig, analyse_brand
from ai_methods.cache import ResultCache
from ai_methods.calls import MethodRunner
from ai_methods.providers.fake import FakeProvider
from ai_methods.settings import AISettings
from resources.fetcher import TEMP_SUFFIX, Fetcher, FetchPolicy
from resources.media_store import MediaStore
from tests.ad_assets.ai_call_log import CallLog
from tests.ad_assets.media_rows import store_media
from tests.support.loopback_http import SlowBody, Static

REPO = Path(__file__).resolve().parents[2]
CONCURRENCY = 4  # fake-provider calls in flight: the most a kill can catch unfinished
POLL_S, POLL_LIMIT = 0.01, 3000  # watching the victim: bounded, never a timing assertion


def _wait_for(condition, what: str) -> None:
    for _ in range(POLL_LIMIT):
        if condition():
            return
        time.sleep(POLL_S)
    raise AssertionError(f"gave up waiting for {what}")


def _journaled(journal_dir: Path) -> set[tuple[str, str]]:
    """(method, input hash) of every step that reached a journal (a torn last line does not count)."""
    done = set()
    for path in journal_dir.glob("*.jsonl"):
        for line in path.read_bytes().splitlines():
            try:
                result = json.loads(line)["result"]
            except (ValueError, KeyError):
                continue
            done.add((result["method"], result["input_hash"]))
    return done


def _journal_lines(journal_dir: Path) -> int:
    return sum(path.read_bytes().count(b"\n") for path in journal_dir.glob("*.jsonl")) if journal_dir.exists() else 0


_ANALYSIS_CHILD = textwrap.dedent(
    """
    import asyncio, json, sys
    from pathlib import Path
    sys.path.insert(0, {repo!r})
    from ad_assets.engine.item_analysis import AnalysisConfig, analyse_brand
    from ai_methods.cache import ResultCache
    from ai_methods.calls import MethodRunner
    from ai_methods.providers.fake import FakeProvider
    from ai_methods.settings import AISettings
    from resources.media_store import MediaStore
    from tests.ad_assets.ai_call_log import CallLog

    work = Path({work!r})
    log = CallLog(work / "calls.jsonl")
    settings = AISettings(default_provider="fake", concurrency={{"fake": {concurrency}}}, cache_dir=work / "ai-cache")

    async def main():
        cache = ResultCache(work / "ai-cache" / "r.sqlite")
        runner = MethodRunner(settings, fake=FakeProvider(latency_s=0.01), cache=cache, methods=log.methods())
        await analyse_brand(json.loads((work / "rows.json").read_text()), runner=runner,
                            store=MediaStore.from_url({store!r}), cache_dir=work / "media-cache",
                            journal_dir=work / "journals", config=AnalysisConfig(frame_count=5))
        print("finished")

    asyncio.run(main())
    """
)


def _outputs(items) -> list:
    return [(i.sha256, i.status, [(u.frame_index, {m: r["output"] for m, r in u.results.items()}) for u in i.units],
             i.transcript, i.failures) for i in items]  # fmt: skip


def _analyse(work: Path, store: MediaStore, rows: list[dict], log: CallLog):
    settings = AISettings(default_provider="fake", concurrency={"fake": CONCURRENCY}, cache_dir=work / "ai-cache")

    async def run():
        runner = MethodRunner(settings, fake=FakeProvider(), cache=ResultCache(work / "ai-cache" / "r.sqlite"),
                              methods=log.methods())  # fmt: skip
        async with runner:
            items, _ = await analyse_brand(
                rows, runner=runner, store=store, cache_dir=work / "media-cache", journal_dir=work / "journals",
                config=AnalysisConfig(frame_count=5),
            )
            return items

    return asyncio.run(run())


def test_analysis_killed_from_outside_resumes_without_repeating_journaled_steps(tmp_path, figures):
    store = MediaStore.from_url(str(tmp_path / "store"))
    media = [encode_image(render_ad_image([f"OFFER {i}"], size=(160, 100), background=(40 * i, 90, 120)))
             for i in range(4)]  # fmt: skip
    media += [render_ad_video([Scene((f"SCENE {j}",), (60 * j, 200, 40), 0.5), Scene(("END",), (10, 10, 10), 0.5)],
                              size=(96, 64)) for j in range(2)]  # fmt: skip
    rows = [store_media(store, data) for data in media]

    # The uninterrupted run, on a store of its own (finished journals are kept beside the media).
    reference_store = MediaStore.from_url(str(tmp_path / "reference-store"))
    reference_log = CallLog()
    reference = _analyse(tmp_path / "reference", reference_store, [store_media(reference_store, d) for d in media],
                         reference_log)  # fmt: skip
    total = len(reference_log.completed)

    work = tmp_path / "run"
    work.mkdir()
    (work / "rows.json").write_text(json.dumps(rows))
    child = _ANALYSIS_CHILD.format(repo=str(REPO), work=str(work), store=store.url, concurrency=CONCURRENCY)
    victim = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for(lambda: _journal_lines(work / "journals") >= total // 3 or victim.poll() is not None, "journal lines")
        victim.send_signal(signal.SIGKILL)
        _, stderr = victim.communicate(timeout=30)
    finally:
        if victim.poll() is None:
            victim.kill()
    assert victim.returncode == -signal.SIGKILL, stderr.decode()[-2000:]

    journaled = _journaled(work / "journals")
    paid_before = CallLog.read(work / "calls.jsonl")
    assert 0 < len(journaled) < total

    log = CallLog()
    resumed = _analyse(work, store, rows, log)

    assert set(log.completed).isdisjoint(journaled), "a step that reached a journal was paid for again"
    paid_twice = [call for call, n in (Counter(paid_before) + Counter(log.completed)).items() if n > 1]
    assert len(paid_twice) <= CONCURRENCY, paid_twice  # at most the calls in flight at the kill
    assert set(paid_before) | set(log.completed) == set(reference_log.completed)
    assert _outputs(resumed) == _outputs(reference)
    figures("kill_analysis_calls_before", len(paid_before), "calls",
            f"analysis SIGKILLed from outside: calls done before (of {total})")
    figures("kill_analysis_calls_repeated", len(paid_twice), "calls",
            f"calls paid twice after the re-run (bound: {CONCURRENCY} in flight)")
    figures("kill_analysis_steps_resumed", sum(i.steps_resumed for i in resumed), "steps",
            "steps the re-run took from the journals")


_ACQUIRE_CHILD = textwrap.dedent(
    """
    import asyncio, functools, sys
    sys.path.insert(0, {repo!r})
    import resources.fetcher as fetcher_module
    from resources.url_safety import GuardedNetworkBackend
    from tests.reliability.conftest import LoopbackOnlyDialer
    fetcher_module.GuardedNetworkBackend = functools.partial(GuardedNetworkBackend, inner=LoopbackOnlyDialer())
    from ad_assets.engine.acquire import acquire_media
    from resources.fetcher import Fetcher, FetchPolicy
    from resources.media_store import MediaStore

    async def main():
        policy = FetchPolicy(max_bytes=2**40, total_timeout_s=120, read_timeout_s=30, allow_hosts=({netloc!r},))
        async with Fetcher(policy, {work!r}) as fetcher:
            await acquire_media({urls!r}, fetcher=fetcher, store=MediaStore.from_url({store!r}))

    asyncio.run(main())
    """
)


def test_acquisition_killed_mid_download_resumes_and_its_temp_file_is_swept(loopback_http, tmp_path, figures):
    site = loopback_http
    pictures = {f"/{name}.png": encode_image(render_ad_image([name.upper()], size=(120, 80))) for name in ("a", "b")}
    for path, data in pictures.items():
        site.route(path, Static(data, "image/png"))
    site.route("/big.mp4", SlowBody(chunk=b"\0" * (1024 * 1024), interval_s=0.01))  # endless, 1 MiB blocks
    urls = [site.url(p) for p in (*pictures, "/big.mp4")]
    store_dir, work = tmp_path / "store", tmp_path / "downloads"
    store = MediaStore.from_url(str(store_dir))

    child = _ACQUIRE_CHILD.format(repo=str(REPO), netloc=site.netloc, work=str(work), urls=urls, store=str(store_dir))
    victim = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        stored = lambda: all(store.exists_sync(fetched_record_key(u)) for u in urls[:2])  # noqa: E731
        streaming = lambda: any(p.stat().st_size > 0 for p in work.glob(f"*{TEMP_SUFFIX}"))  # noqa: E731
        _wait_for(lambda: (stored() and streaming()) or victim.poll() is not None, "two files stored and one streaming")
        victim.send_signal(signal.SIGKILL)
        _, stderr = victim.communicate(timeout=30)
    finally:
        if victim.poll() is None:
            victim.kill()
    assert victim.returncode == -signal.SIGKILL, stderr.decode()[-2000:]
    abandoned = list(work.glob(f"*{TEMP_SUFFIX}"))
    assert len(abandoned) == 1, "the killed download left its temp file"
    abandoned_mib = abandoned[0].stat().st_size / 2**20

    # An hour later (the file's clock is moved, nobody waits), another download is live in this directory.
    an_hour_ago = time.time() - 3700
    os.utime(abandoned[0], (an_hour_ago, an_hour_ago))
    live = work / f"another-process{TEMP_SUFFIX}"
    live.write_bytes(b"in flight")
    site.route("/big.mp4", Static(b"\0\0\0\x18ftypmp42" + b"\0" * 1000, "video/mp4"))
    hits = dict(site.hits)

    async def rerun():
        policy = FetchPolicy(max_attempts=1, total_timeout_s=10, allow_hosts=(site.netloc,))
        async with Fetcher(policy, work) as fetcher:
            return fetcher.swept, await acquire_media(urls, fetcher=fetcher, store=store)

    swept, rows = asyncio.run(rerun())
    assert swept == 1 and not abandoned[0].exists() and live.exists()
    assert [r["reused"] for r in rows] == [True, True, False]
    assert [site.hits[p] - hits.get(p, 0) for p in (*pictures, "/big.mp4")] == [0, 0, 1]
    figures("kill_acquire_abandoned_mib", round(abandoned_mib, 1), "MiB",
            "acquisition SIGKILLed mid-body: temp file left, swept by the next run")
