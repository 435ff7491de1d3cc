"""A brand's analysis killed on one machine and finished on another pays no AI call twice.

Why: runs move between machines (a Fargate Spot reclaim, a Kubernetes node
drained, a retry placed elsewhere), so nothing a resumed run needs may live on
the machine that died. Two "machines" here are two processes, each with its
own ``AD_ASSETS_HOME`` (local journals, media copies, no shared disk), sharing
only what production shares: one S3 (a moto server) and one PostgreSQL (the
AI result cache, ``ai_results``, in the platform's database). Machine A is
SIGKILLed at the start of an AI call mid-analysis; machine B then analyses the
same brand. No call A completed is made again, the two together make exactly
the calls of an uninterrupted run, B's outputs equal that run's, and the
journal of an item A had in progress was already in the store.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from ad_assets.demo.samples import Scene, encode_image, render_ad_image, render_ad_video
from ad_assets.engine.item_analysis import AnalysisConfig, analyse_brand, journal_store_key
from ai_methods.cache import ResultCache
from ai_methods.calls import MethodRunner
from ai_methods.providers.fake import FakeProvider
from ai_methods.settings import AISettings
from resources.media_store import MediaStore
from tests.ad_assets.ai_call_log import CallLog
from tests.ad_assets.media_rows import store_media
from tests.reliability.test_crash_resume import _outputs

REPO = Path(__file__).resolve().parents[2]
CONCURRENCY = 4  # fake-provider calls in flight per machine
SYNC_STEPS = AnalysisConfig().journal_sync_steps

_MACHINE = textwrap.dedent(
    """
    import asyncio, json, sys
    from pathlib import Path
    sys.path.insert(0, {repo!r})
    from ad_assets.engine.item_analysis import AnalysisConfig, analyse_brand
    from ad_assets.settings import Settings
    from ai_methods.calls import MethodRunner
    from ai_methods.providers.fake import FakeProvider
    from tests.ad_assets.ai_call_log import CallLog
    from tests.reliability.test_crash_resume import _outputs

    settings = Settings.from_env()  # this machine's AD_ASSETS_HOME, the shared S3 and PostgreSQL
    log = CallLog(Path({calls!r}), kill_at={kill_at!r})

    async def main():
        ai = settings.ai_settings()
        assert ai.cache_url, "the result cache must be the shared one"
        runner = MethodRunner(ai, fake=FakeProvider(latency_s=0.01), methods=log.methods())
        async with runner:
            items, _ = await analyse_brand(
                json.loads(Path({rows!r}).read_text()), runner=runner, store=settings.media_store(),
                cache_dir=settings.home / "media-cache", journal_dir=settings.work_dir / "journals",
                config=AnalysisConfig(frame_count=5))
            stats = runner.cache.stats()
        Path({out!r}).write_text(json.dumps({{"outputs": _outputs(items), "cache": stats,
                                              "resumed": sum(i.steps_resumed for i in items)}}))

    asyncio.run(main())
    """
)


def _media() -> list[bytes]:
    media = [encode_image(render_ad_image([f"DEAL {i}"], size=(160, 100), background=(50 * i, 80, 140))) for i in range(4)]
    media += [render_ad_video([Scene((f"CLIP {j}",), (70 * j, 190, 60), 0.5), Scene(("BYE",), (5, 5, 5), 0.5)],
                              size=(96, 64)) for j in range(2)]  # fmt: skip
    return media


def _reference(tmp_path: Path, media: list[bytes]) -> tuple[list, list, dict[str, int]]:
    """The uninterrupted run on a local store and cache of its own: outputs, calls, journal lines per item."""
    store = MediaStore.from_url(str(tmp_path / "reference-store"))
    rows = [store_media(store, data) for data in media]
    log = CallLog()
    settings = AISettings(default_provider="fake", concurrency={"fake": CONCURRENCY}, cache_dir=tmp_path / "ref-cache")

    async def run():
        runner = MethodRunner(settings, fake=FakeProvider(), cache=ResultCache(tmp_path / "ref-cache" / "r.sqlite"),
                              methods=log.methods())  # fmt: skip
        async with runner:
            items, _ = await analyse_brand(rows, runner=runner, store=store, cache_dir=tmp_path / "ref-media",
                                           journal_dir=tmp_path / "ref-journals", config=AnalysisConfig(frame_count=5))  # fmt: skip
            return items

    items = asyncio.run(run())
    steps = {p.stem: p.read_bytes().count(b"\n") for p in (tmp_path / "ref-journals").glob("*.jsonl")}
    return json.loads(json.dumps(_outputs(items))), log.completed, steps


def _machine(name: str, tmp_path: Path, env: dict[str, str], rows: Path, kill_at: int | None) -> subprocess.Popen:
    home = tmp_path / name
    script = _MACHINE.format(repo=str(REPO), calls=str(home / "calls.jsonl"), kill_at=kill_at, rows=str(rows),
                             out=str(home / "out.json"))  # fmt: skip
    home.mkdir()
    return subprocess.Popen(
        [sys.executable, "-c", script], env={**env, "AD_ASSETS_HOME": str(home)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def test_a_brand_killed_on_one_machine_finishes_on_another_without_paying_twice(
    tmp_path, aws_env, make_bucket, module_database_url, figures
):
    media = _media()
    reference, reference_calls, reference_steps = _reference(tmp_path, media)
    total = len(reference_calls)

    storage_url = f"s3://{make_bucket()}/prod"
    store = MediaStore.from_url(storage_url, aws_endpoint_url=aws_env, aws_region=os.environ["AWS_REGION"])
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps([store_media(store, data) for data in media]))
    env = {
        **os.environ,
        "AD_ASSETS_STORAGE_URL": storage_url,
        "AD_ASSETS_DATABASE_URL": module_database_url,
        "AD_ASSETS_AI_PROVIDER": "fake",
        "AD_ASSETS_AI_CONCURRENCY_FAKE": str(CONCURRENCY),
    }
    env.pop("AD_ASSETS_AI_CACHE_URL", None)

    a = _machine("machine-a", tmp_path, env, rows, kill_at=total // 2)
    _, a_err = a.communicate(timeout=600)
    assert a.returncode == -signal.SIGKILL, a_err.decode()[-3000:]
    paid_on_a = CallLog.read(tmp_path / "machine-a" / "calls.jsonl")
    assert 0 < len(paid_on_a) < total

    # Journals of items A had in progress were already in the store, at most a few steps behind.
    local = {p.stem: p.read_bytes().count(b"\n") for p in (tmp_path / "machine-a" / "work" / "journals").glob("*.jsonl")}
    in_progress = {sha: n for sha, n in local.items() if n < reference_steps[sha]}
    assert in_progress, "the kill caught no item mid-way"
    lag = {}
    for sha, n in in_progress.items():
        key = journal_store_key(sha)
        stored = store.get_bytes_sync(key).count(b"\n") if store.exists_sync(key) else 0
        lag[sha] = n - stored
    assert max(lag.values()) <= SYNC_STEPS + CONCURRENCY, lag
    assert any(n >= SYNC_STEPS and lag[sha] < n for sha, n in in_progress.items()), (in_progress, lag)

    b = _machine("machine-b", tmp_path, env, rows, kill_at=None)
    _, b_err = b.communicate(timeout=600)
    assert b.returncode == 0, b_err.decode()[-3000:]
    paid_on_b = CallLog.read(tmp_path / "machine-b" / "calls.jsonl")
    done = json.loads((tmp_path / "machine-b" / "out.json").read_text())

    repeated = set(paid_on_a) & set(paid_on_b)
    assert not repeated, f"{len(repeated)} AI calls paid on both machines: {sorted(repeated)[:5]}"
    assert not [c for c, n in Counter(paid_on_b).items() if n > 1]
    assert Counter(paid_on_a) + Counter(paid_on_b) == Counter(reference_calls)
    assert done["outputs"] == reference
    assert done["resumed"] > 0 and done["cache"]["hits"] > 0
    figures("two_machines_calls_on_a", len(paid_on_a), "calls", f"machine A SIGKILLed mid-analysis (of {total})")
    figures("two_machines_calls_repeated", len(repeated), "calls", "calls paid on both machines (goal 0)")
    figures("two_machines_journal_lag_steps", max(lag.values()), "steps",
            f"steps of an in-progress item not yet in the store when A died (bound {SYNC_STEPS} + {CONCURRENCY} in flight)")
