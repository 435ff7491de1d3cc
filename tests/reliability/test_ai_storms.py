"""An AI provider in a 429/5xx storm: the brand's analysis backs off and goes on.

The text embeddings go to a real OpenAI-compatible endpoint on loopback
(``FakeOpenAIServer``, answering with recorded bodies) through the real
``OpenAIClient``; the other methods run on the deterministic fake provider.
The storm is scripted on the server (the next N requests fail), so what is
exercised is the whole path: HTTP status and ``Retry-After`` → typed error →
``MethodRunner`` backoff → per-item outcome → accounting. The runner's sleep is
a recorder, so backoff is checked by the delays asked for, never by waiting.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from ad_assets.demo.samples import Scene, encode_image, render_ad_image, render_ad_video
from ad_assets.engine.item_analysis import AnalysisConfig, analyse_brand, failures_by_method
from ai_methods.calls import MethodRunner
from ai_methods.providers.fake import FakeProvider
from ai_methods.providers.openai_compat import OpenAIClient
from ai_methods.providers.provider_settings import OpenAISettings
from ai_methods.settings import AISettings
from resources.media_store import MediaStore
from tests.ad_assets.media_rows import store_media
from tests.ai_methods.fake_servers import FakeOpenAIServer

RATE_LIMITED = {
    "error": {"message": "Rate limit reached for requests", "type": "requests", "code": "rate_limit_exceeded"}
}
OVERLOADED = {"error": {"message": "The server is overloaded", "type": "server_error", "code": None}}


@pytest.fixture(scope="module")
def items_media() -> list[bytes]:
    return [
        encode_image(render_ad_image(["SAVE 20%"], size=(200, 120))),
        encode_image(render_ad_image(["NEW FLAVOUR"], size=(200, 120), background=(20, 40, 90))),
        render_ad_video([Scene(("ONE",), (240, 230, 200), 0.5), Scene(("TWO",), (30, 30, 30), 0.5)], size=(96, 64),
                        audio_wav=None),  # fmt: skip
    ]


@pytest.fixture
def openai_server():
    with FakeOpenAIServer() as server:
        yield server


async def _analyse(tmp_path, rows, store, server, *, max_attempts: int):
    sleeps: list[float] = []

    async def recorded_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        await asyncio.sleep(0)  # yield like a real sleep, without the wait

    settings = AISettings(default_provider="fake", method_providers={"embed_text": "openai"}, max_attempts=max_attempts,
                          cache_dir=tmp_path / "ai-cache")  # fmt: skip
    client = OpenAIClient(OpenAISettings(base_url=server.base_url))
    runner = MethodRunner(settings, cache=None, fake=FakeProvider(), clients={"openai": client}, sleep=recorded_sleep,
                          rng=random.Random(7))  # fmt: skip
    async with runner:
        items, _ = await analyse_brand(
            rows, runner=runner, store=store, cache_dir=tmp_path / "media-cache", journal_dir=tmp_path / "journals",
            config=AnalysisConfig(frame_count=3),
        )
        accounting = runner.accounting()
    await client.aclose()
    return items, accounting, sleeps


async def test_a_429_and_5xx_storm_is_ridden_out_with_backoff(tmp_path, items_media, openai_server, figures):
    store = MediaStore.from_url(str(tmp_path / "store"))
    rows = [store_media(store, data) for data in items_media]
    rate_limited, overloaded = 6, 4
    openai_server.fail_next(rate_limited, 429, RATE_LIMITED, {"Retry-After": "2"})
    openai_server.fail_next(overloaded, 503, OVERLOADED)

    attempts = rate_limited + overloaded + 1  # enough that no single call can exhaust them
    items, accounting, sleeps = await _analyse(tmp_path, rows, store, openai_server, max_attempts=attempts)

    assert [i.status for i in items] == ["analysed"] * 3, [i.failures for i in items]
    embed_text = accounting["methods"]["embed_text"]
    assert embed_text["retries"] == rate_limited + overloaded
    assert embed_text["provider_calls"] == embed_text["calls"] + rate_limited + overloaded
    assert embed_text["failures"] == {}
    assert len(openai_server.requests_to(r"/v1/embeddings")) == embed_text["provider_calls"]
    assert len(sleeps) == rate_limited + overloaded
    assert sum(delay >= 2.0 for delay in sleeps) == rate_limited, sleeps  # Retry-After honoured as a floor
    assert max(sleeps) <= 20.0  # and backoff stays capped
    figures("ai_storm_retries", embed_text["retries"], "retries",
            "AI storm (6×429 + 4×503): retries in accounting, run fully analysed")
    figures("ai_storm_backoff_s", round(sum(sleeps), 2), "s",
            "AI storm: total backoff asked for (Retry-After 2 s floors)")


async def test_a_storm_longer_than_the_retry_budget_fails_those_steps_not_the_run(
    tmp_path, items_media, openai_server, figures
):
    store = MediaStore.from_url(str(tmp_path / "store"))
    rows = [store_media(store, data) for data in items_media]
    openai_server.fail_next(1000, 503, OVERLOADED)  # far more than the run will ever ask

    items, accounting, sleeps = await _analyse(tmp_path, rows, store, openai_server, max_attempts=3)

    assert [i.status for i in items] == ["partial"] * 3  # every item has all its other results
    assert set(failures_by_method(items)) == {"embed_text"}
    assert {f["cause"] for i in items for f in i.failures} == {"TransientProviderError"}
    for item in items:
        assert all("caption" in unit.results and "embed_image" in unit.results for unit in item.units)
    embed_text = accounting["methods"]["embed_text"]
    calls = embed_text["calls"]
    assert embed_text["failures"] == {"TransientProviderError": calls}
    assert len(openai_server.requests_to(r"/v1/embeddings")) == calls * 3  # each call gave up after 3 attempts
    assert len(sleeps) == calls * 2
    figures("ai_storm_giveup_attempts", 3, "attempts",
            "AI provider down: attempts per call before the step is recorded as failed")
