"""The call path (``MethodRunner``) under faults and load, with a hand-written fake model client.

Why: every provider call goes through this one place, so retries, limits, the
cache and the accounting must be right for all methods at once. Timing is
checked by counting (calls, in-flight tasks, requested sleeps on a fake clock),
never by wall-clock sleeps.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
from typing import Any

import pytest

from ai_methods import AISettings, MethodRunner, ResultCache
from ai_methods.builtin.embeddings import EmbedText
from ai_methods.cache import CacheKey
from ai_methods.calls import RetryPolicy, TokenBucket
from ai_methods.errors import (
    BadResponseError,
    ConfigurationError,
    InternalMethodError,
    InvalidInputError,
    MissingCredentialsError,
    ProviderUnavailableError,
    QuotaExceededError,
    TransientProviderError,
    UnknownMethodError,
)
from ai_methods.inputs import TEXT
from ai_methods.method import AIMethod
from ai_methods.pricing import Price, PriceTable
from ai_methods.providers.base import ChatReply, EmbeddingReply, ModelClient
from ai_methods.usage import Usage
from pydantic import BaseModel


class ScriptedClient(ModelClient):
    """Answers ``embed_text`` with a vector derived from the text; fails or blocks as told."""

    name = "scripted"

    def __init__(self, failures: list[BaseException] | None = None, gate: asyncio.Event | None = None) -> None:
        self.failures = list(failures or [])
        self.gate = gate
        self.calls = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.model = "scripted-embed-1"

    def model_for(self, primitive: str) -> str:
        return self.model

    async def embed_text(self, texts: list[str]) -> EmbeddingReply:
        self.calls += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.gate is not None:
                await self.gate.wait()
            if self.failures:
                raise self.failures.pop(0)
            vec = [float(len(texts[0])), 1.0, 0.0]
            return EmbeddingReply([vec], 3, Usage(requests=1, input_tokens=len(texts[0].split())), self.model)
        finally:
            self.in_flight -= 1

    async def chat_json(self, **kwargs: Any) -> ChatReply:
        raise ProviderUnavailableError("scripted client has no chat")

    async def embed_image(self, images: list[bytes]) -> EmbeddingReply:
        raise ProviderUnavailableError("scripted client has no image embeddings")

    async def transcribe(self, audio_wav: bytes, *, language: str | None = None):
        raise ProviderUnavailableError("scripted client has no transcription")


class Sleeps:
    """A fake ``asyncio.sleep`` that records the delays and advances a fake clock."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        self.now += delay
        await asyncio.sleep(0)


def make_runner(
    tmp_path, client: ModelClient, *, cache: bool = True, sleeps: Sleeps | None = None, **settings: Any
) -> MethodRunner:
    sleeps = sleeps or Sleeps()
    return MethodRunner(
        AISettings(default_provider="bedrock", cache_dir=tmp_path / "cache", **settings),
        cache=ResultCache(tmp_path / "cache" / "ai_results.sqlite") if cache else None,
        clients={"bedrock": client},
        sleep=sleeps,
        clock=sleeps.clock,
        rng=random.Random(7),
    )


# ----- retries -----------------------------------------------------------------------


async def test_transient_errors_are_retried_with_backoff_and_retry_after(tmp_path):
    client = ScriptedClient([TransientProviderError("throttled"), TransientProviderError("429", retry_after=3.0)])
    sleeps = Sleeps()
    runner = make_runner(tmp_path, client, sleeps=sleeps, backoff_base_s=0.5, backoff_max_s=20.0)
    result = await runner.run("embed_text", text="fresh coffee")
    assert client.calls == 3 and result.output["dim"] == 3
    assert len(sleeps.delays) == 2
    assert 0.0 <= sleeps.delays[0] <= 0.5  # full jitter under the first cap
    assert sleeps.delays[1] >= 3.0  # the server's Retry-After is a floor
    stats = runner.accounting()["methods"]["embed_text"]
    assert stats["retries"] == 2 and stats["provider_calls"] == 3 and stats["failures"] == {}


async def test_retries_stop_after_max_attempts(tmp_path):
    client = ScriptedClient([TransientProviderError(f"503 #{i}") for i in range(10)])
    runner = make_runner(tmp_path, client, max_attempts=3)
    with pytest.raises(TransientProviderError, match="503 #2"):
        await runner.run("embed_text", text="x y")
    assert client.calls == 3
    assert runner.accounting()["methods"]["embed_text"]["failures"] == {"TransientProviderError": 1}


@pytest.mark.parametrize(
    "error",
    [BadResponseError("not JSON"), QuotaExceededError("billing"), InvalidInputError("too big for the model")],
    ids=lambda e: type(e).__name__,
)
async def test_final_errors_are_not_retried(tmp_path, error):
    client = ScriptedClient([error])
    runner = make_runner(tmp_path, client)
    with pytest.raises(type(error)):
        await runner.run("embed_text", text="x")
    assert client.calls == 1
    assert runner.accounting()["methods"]["embed_text"]["failures"] == {type(error).__name__: 1}


async def test_a_slow_call_times_out_as_transient_and_is_retried(tmp_path):
    client = ScriptedClient(gate=asyncio.Event())  # never opened: every call hangs
    runner = make_runner(tmp_path, client, max_attempts=2, timeouts_s={"bedrock": 0.02})
    with pytest.raises(TransientProviderError, match="no answer within 0.02 s"):
        await runner.run("embed_text", text="x")
    assert client.calls == 2


class CapPolicyRng(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.mark.parametrize(
    ("retry", "retry_after", "expected"),
    [(1, None, 1.0), (2, None, 2.0), (3, None, 4.0), (4, None, 5.0), (9, None, 5.0), (1, 3.0, 3.0), (1, 1000.0, 60.0)],
)
def test_backoff_is_capped_exponential_with_retry_after_floor(retry, retry_after, expected):
    policy = RetryPolicy(max_attempts=10, base_s=1.0, max_s=5.0, max_retry_after_s=60.0)
    assert policy.delay(retry, retry_after, CapPolicyRng()) == expected


# ----- limits ------------------------------------------------------------------------


async def test_concurrency_limit_per_provider_is_honoured(tmp_path):
    gate = asyncio.Event()
    client = ScriptedClient(gate=gate)
    runner = make_runner(tmp_path, client, cache=False, concurrency={"bedrock": 3})
    tasks = [asyncio.create_task(runner.run("embed_text", text=f"text {i}")) for i in range(20)]
    for _ in range(200):  # let every task run as far as it can
        await asyncio.sleep(0)
    assert client.in_flight == 3 and client.calls == 3
    gate.set()
    results = await asyncio.gather(*tasks)
    assert len(results) == 20 and client.calls == 20
    assert client.max_in_flight == 3
    assert runner.accounting()["limits"]["bedrock"] == {"concurrency": 3, "max_in_flight": 3}


async def test_rate_limit_spaces_requests(tmp_path):
    sleeps = Sleeps()
    client = ScriptedClient()
    runner = make_runner(tmp_path, client, cache=False, sleeps=sleeps, rates={"bedrock": 5.0})
    await asyncio.gather(*(runner.run("embed_text", text=f"t{i}") for i in range(11)))
    assert client.calls == 11
    # a burst of 5, then one request per 0.2 s of (fake) time
    assert sleeps.now == pytest.approx(6 * 0.2, abs=1e-6)


async def test_token_bucket_counts():
    sleeps = Sleeps()
    bucket = TokenBucket(10.0, burst=1, clock=sleeps.clock, sleep=sleeps)
    for _ in range(21):
        await bucket.acquire()
    assert bucket.acquired == 21
    assert sleeps.now == pytest.approx(2.0, abs=1e-6)


# ----- cache -------------------------------------------------------------------------


async def test_second_call_is_a_cache_hit_without_a_provider_call(tmp_path):
    client = ScriptedClient()
    runner = make_runner(tmp_path, client)
    first = await runner.run("embed_text", text="fresh coffee")
    second = await runner.run("embed_text", text="fresh coffee")
    assert client.calls == 1
    assert not first.cached and second.cached
    assert second.output == first.output and second.model == first.model
    assert second.usage == Usage() and second.cost_usd == 0.0
    acct = runner.accounting()
    assert acct["methods"]["embed_text"]["cache_hits"] == 1 and acct["cache"]["hits"] == 1


async def test_cache_key_includes_version_and_model(tmp_path):
    client = ScriptedClient()
    runner = make_runner(tmp_path, client)
    await runner.run("embed_text", text="fresh coffee")

    class EmbedTextV2(EmbedText):
        version = "2"

    bumped = await runner.run(EmbedTextV2(), text="fresh coffee")
    assert not bumped.cached and client.calls == 2
    client.model = "scripted-embed-2"
    new_model = await runner.run("embed_text", text="fresh coffee")
    assert not new_model.cached and client.calls == 3
    assert (await runner.run("embed_text", text="fresh coffee")).cached


async def test_cache_survives_the_runner(tmp_path):
    client = ScriptedClient()
    first = make_runner(tmp_path, client)
    await first.run("embed_text", text="durable")
    first.cache.close()
    second = make_runner(tmp_path, client)
    assert (await second.run("embed_text", text="durable")).cached
    assert client.calls == 1


def test_cache_is_shared_across_processes(tmp_path):
    path = tmp_path / "shared.sqlite"
    key = CacheKey("m", "1", "fake", "fake-v1", "ab" * 32)
    ResultCache(path).put(key, {"answer": 42}, Usage(requests=1), 0.5, "fake-v1")
    code = (
        "import sys, json; from ai_methods.cache import ResultCache, CacheKey;"
        f"hit = ResultCache(sys.argv[1]).get(CacheKey('m', '1', 'fake', 'fake-v1', '{'ab' * 32}'));"
        "print(json.dumps(hit.output))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == {"answer": 42}


async def test_identical_calls_in_flight_are_computed_once(tmp_path):
    gate = asyncio.Event()
    client = ScriptedClient(gate=gate)
    runner = make_runner(tmp_path, client)
    tasks = [asyncio.create_task(runner.run("embed_text", text="same frame")) for _ in range(5)]
    for _ in range(50):
        await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*tasks)
    assert client.calls == 1
    assert sorted(r.cached for r in results) == [False, True, True, True, True]
    assert len({json.dumps(r.output) for r in results}) == 1


# ----- cost and accounting -----------------------------------------------------------


async def test_cost_accounting_sums_calls(tmp_path):
    client = ScriptedClient()
    runner = make_runner(tmp_path, client)
    runner.prices = PriceTable({"bedrock/scripted-*": Price(input_per_1k=2.0, per_request=0.001)})
    texts = ["one", "two words", "three words here", "one"]  # the last is a cache hit
    results = [await runner.run("embed_text", text=t) for t in texts]
    assert [r.cost_usd for r in results] == pytest.approx([0.003, 0.005, 0.007, 0.0])
    stats = runner.accounting()["methods"]["embed_text"]
    assert stats["cost_usd"] == pytest.approx(0.015)
    assert stats["usage"]["input_tokens"] == 6 and stats["usage"]["requests"] == 3
    assert stats["calls"] == 4 and stats["succeeded"] == 4 and stats["cache_hits"] == 1
    assert runner.accounting()["total"]["cost_usd"] == pytest.approx(0.015)
    json.dumps(runner.accounting())  # ready for Dagster metadata


async def test_unpriced_models_are_counted(tmp_path):
    runner = make_runner(tmp_path, ScriptedClient())
    runner.prices = PriceTable({})
    result = await runner.run("embed_text", text="x")
    assert result.cost_usd == 0.0
    assert runner.accounting()["methods"]["embed_text"]["unpriced_calls"] == 1


# ----- errors around the call --------------------------------------------------------


class _Out(BaseModel):
    n: int


class Broken(AIMethod):
    """A method with a bug."""

    name = "broken"
    version = "1"
    accepts = (TEXT,)
    output_schema = _Out
    providers = ("fake",)

    async def compute(self, inputs, ctx):
        return {}["missing"]


class Liar(Broken):
    """A method whose output breaks its own schema."""

    name = "liar"

    async def compute(self, inputs, ctx):
        return {"n": "not a number"}


async def test_a_bug_in_a_method_is_an_internal_error(method_runner):
    with pytest.raises(InternalMethodError, match="KeyError") as info:
        await method_runner.run(Broken(), text="x")
    assert isinstance(info.value.__cause__, KeyError)


async def test_output_breaking_the_schema_is_a_bad_response(method_runner):
    with pytest.raises(BadResponseError, match="liar: output does not match its schema at n"):
        await method_runner.run(Liar(), text="x")
    assert method_runner.accounting()["methods"]["liar"]["failures"] == {"BadResponseError": 1}


async def test_unknown_method_lists_known_names(method_runner):
    with pytest.raises(UnknownMethodError) as info:
        await method_runner.run("captoin", image=b"x")
    assert "captoin" in str(info.value) and "caption" in str(info.value) and "ocr_text" in str(info.value)
    assert isinstance(info.value, KeyError)


async def test_provider_a_method_does_not_support(method_runner):
    with pytest.raises(ProviderUnavailableError, match="dominant_colors does not run on provider 'bedrock'"):
        await method_runner.run("dominant_colors", image=b"x", provider="bedrock")


class NeedsKey:
    """Stands in for a client class: ``from_env`` wants one setting."""

    @classmethod
    def from_env(cls, env):
        if "EXAMPLE_API_KEY" not in env:
            raise MissingCredentialsError("openai needs EXAMPLE_API_KEY: set it to your key")
        return ScriptedClient()


async def test_missing_credentials_name_the_setting(tmp_path, monkeypatch):
    import ai_methods.calls as calls

    monkeypatch.setitem(calls.CLIENT_CLASSES, "openai", f"{__name__}:NeedsKey")
    runner = MethodRunner.from_env({"AD_ASSETS_HOME": str(tmp_path)})
    with pytest.raises(MissingCredentialsError, match="EXAMPLE_API_KEY"):
        await runner.run("embed_text", text="x", provider="openai")
    ok = MethodRunner.from_env({"AD_ASSETS_HOME": str(tmp_path), "EXAMPLE_API_KEY": "k"})
    assert (await ok.run("embed_text", text="x", provider="openai")).output["dim"] == 3
    await runner.aclose()
    await ok.aclose()


async def test_missing_client_module_is_provider_unavailable(tmp_path, monkeypatch):
    import ai_methods.calls as calls

    monkeypatch.setitem(calls.CLIENT_CLASSES, "openai", "ai_methods.providers.no_such_module:Client")
    async with MethodRunner(AISettings(), cache=None) as runner:
        with pytest.raises(ProviderUnavailableError, match="cannot import ai_methods.providers.no_such_module"):
            await runner.run("embed_text", text="x", provider="openai")


# ----- configuration -----------------------------------------------------------------


async def test_provider_is_chosen_per_method_from_the_environment(tmp_path, fake_provider):
    env = {
        "AD_ASSETS_HOME": str(tmp_path),
        "AD_ASSETS_AI_PROVIDER": "local",
        "AD_ASSETS_AI_PROVIDER_EMBED_TEXT": "fake",
    }
    async with MethodRunner.from_env(env, fake=fake_provider) as runner:
        assert (await runner.run("embed_text", text="x")).provider == "fake"
        assert runner.provider_for("caption") == "local"
    assert (tmp_path / "cache" / "ai_results.sqlite").is_file()


async def test_local_only_methods_run_locally_under_a_remote_default(tmp_path, ad_png):
    """Under ``bedrock`` as default, ``detect_faces``/``dominant_colors`` would fail on every item (items ``partial``)."""
    env = {"AD_ASSETS_HOME": str(tmp_path), "AD_ASSETS_AI_PROVIDER": "bedrock", "AD_ASSETS_AI_CACHE": "off"}
    async with MethodRunner.from_env(env) as runner:
        assert runner.provider_for("caption") == "bedrock", "methods bedrock implements stay on it"
        for name in ("detect_faces", "dominant_colors"):
            assert runner.provider_for(name) == "local"
            assert (await runner.run(name, image=ad_png)).provider == "local"


async def test_an_explicit_method_provider_is_kept_even_when_the_method_cannot_run_there(tmp_path, ad_png):
    env = {"AD_ASSETS_HOME": str(tmp_path), "AD_ASSETS_AI_PROVIDER_DETECT_FACES": "bedrock"}
    async with MethodRunner.from_env(env) as runner:
        with pytest.raises(ProviderUnavailableError, match="detect_faces does not run on provider 'bedrock'"):
            await runner.run("detect_faces", image=ad_png)


def test_the_platform_code_version_follows_the_same_rule(monkeypatch):
    from ad_assets.settings import Settings

    monkeypatch.setenv("AD_ASSETS_AI_PROVIDER", "openai")
    settings = Settings.from_env()
    assert settings.provider_for("dominant_colors") == "local" and settings.provider_for("labels") == "openai"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AD_ASSETS_AI_PROVIDER": "gemini"}, "AD_ASSETS_AI_PROVIDER='gemini' is not a provider"),
        ({"AD_ASSETS_AI_PROVIDER_CAPTION": "nope"}, "AD_ASSETS_AI_PROVIDER_CAPTION='nope'"),
        ({"AD_ASSETS_AI_CONCURRENCY_BEDROCK": "0"}, "must be at least 1"),
        ({"AD_ASSETS_AI_RATE": "fast"}, "AD_ASSETS_AI_RATE='fast' is not a number"),
        ({"AD_ASSETS_AI_CACHE": "maybe"}, "must be 'on' or 'off'"),
    ],
)
def test_bad_settings_name_the_variable(env, message):
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(")):
        AISettings.from_env(env)


def test_settings_defaults_and_overrides(tmp_path):
    s = AISettings.from_env(
        {"AD_ASSETS_HOME": str(tmp_path), "AD_ASSETS_AI_CONCURRENCY_OPENAI": "3", "AD_ASSETS_AI_RATE": "2"}
    )
    assert s.default_provider == "local" and s.cache_enabled
    assert s.cache_path == tmp_path / "cache" / "ai_results.sqlite"
    assert s.concurrency_for("openai") == 3 and s.concurrency_for("bedrock") == 8 and s.concurrency_for("fake") == 64
    assert s.rate_for("bedrock") == 2.0 and s.timeout_for("bedrock") == 120.0
    off = AISettings.from_env({"AD_ASSETS_AI_CACHE": "off"})
    assert not off.cache_enabled and MethodRunner(off).cache is None


def test_price_overrides_from_a_json_file(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps({"openai/my-vllm*": {"per_request": 0.01}, "bedrock/*claude-sonnet-4*": {"input_per_1k": 1.0}})
    )
    s = AISettings.from_env({"AD_ASSETS_AI_PRICES": str(path)})
    table = PriceTable.load(s.prices_path)
    assert table.cost("openai", "my-vllm-7b", Usage(requests=2)) == (0.02, True)
    assert table.cost("bedrock", "global.anthropic.claude-sonnet-4-6", Usage(input_tokens=500))[0] == pytest.approx(0.5)
    assert table.cost("openai", "text-embedding-3-small", Usage(input_tokens=1000))[0] == pytest.approx(0.00002)
    assert table.cost("openai", "unknown-model", Usage(requests=1)) == (0.0, False)
    path.write_text(json.dumps({"openai/x": {"per_token": 1}}))
    with pytest.raises(ConfigurationError, match="unknown field"):
        PriceTable.load(path)


# ----- calling a method directly -----------------------------------------------------


async def test_a_method_is_awaitable_on_its_own(tmp_path, monkeypatch):
    from ai_methods import get_method
    from ai_methods.testing import sample_png

    monkeypatch.setenv("AD_ASSETS_HOME", str(tmp_path))
    caption = get_method("caption")
    first = await caption(sample_png(0), provider="fake")  # one positional input: bytes → image
    assert first.method == "caption" and first.provider == "fake" and not first.cached
    again = await caption(image=sample_png(0), provider="fake")
    assert again.cached and again.output == first.output  # the env's durable cache, under AD_ASSETS_HOME
    assert (tmp_path / "cache" / "ai_results.sqlite").is_file()
    frames = await caption([sample_png(0), sample_png(1)], provider="fake", context=None)
    assert frames.input_hash != first.input_hash


async def test_positional_inputs_must_be_unambiguous(method_runner):
    from ai_methods import get_method

    with pytest.raises(InvalidInputError, match="cannot tell which input a int is"):
        await get_method("caption")(42, context=method_runner)
    with pytest.raises(InvalidInputError, match="give inputs by keyword"):
        await get_method("caption")(b"a", b"b", context=method_runner)


async def test_fake_provider_scripts_latency_and_errors(tmp_path):
    from ai_methods.providers.fake import FakeProvider

    fake = FakeProvider(
        latency_s={"caption": 2.5, "*": 0.0}, errors={"embed_text": [TransientProviderError("x", retry_after=1.0)]}
    )
    assert fake.latency_for("caption") == 2.5 and fake.latency_for("labels") == 0.0
    sleeps = Sleeps()
    runner = MethodRunner(AISettings(default_provider="fake"), cache=None, fake=fake, sleep=sleeps, clock=sleeps.clock)
    result = await runner.run("embed_text", text="x")
    assert fake.calls["embed_text"] == 2 and sleeps.delays and sleeps.delays[0] >= 1.0
    assert result.output["space"] == "fake-v1"


async def test_when_the_joined_call_is_cancelled_the_waiter_computes(tmp_path):
    gate = asyncio.Event()
    client = ScriptedClient(gate=gate)
    runner = make_runner(tmp_path, client, cache=False)
    first = asyncio.create_task(runner.run("embed_text", text="same"))
    for _ in range(10):
        await asyncio.sleep(0)
    second = asyncio.create_task(runner.run("embed_text", text="same"))
    for _ in range(10):
        await asyncio.sleep(0)
    first.cancel()
    for _ in range(10):
        await asyncio.sleep(0)
    gate.set()
    result = await second
    assert first.cancelled() and not result.cached and client.calls == 2


async def test_a_broken_cache_never_fails_a_call(tmp_path):
    client = ScriptedClient()
    runner = make_runner(tmp_path, client)
    runner.cache._conn.close()  # every read and write now raises sqlite3.ProgrammingError
    assert not (await runner.run("embed_text", text="x")).cached
    assert not (await runner.run("embed_text", text="x")).cached
    assert client.calls == 2 and runner.accounting()["cache"]["errors"] == 4


async def test_a_local_timeout_is_not_retried(tmp_path):
    class SlowLocal:
        async def never(self):
            await asyncio.Event().wait()

    class Waits(AIMethod):
        """Waits forever on the local provider."""

        name = "waits"
        version = "1"
        accepts = (TEXT,)
        output_schema = _Out
        providers = ("local",)

        async def compute(self, inputs, ctx):
            await ctx.local.never()

    runner = MethodRunner(AISettings(timeouts_s={"local": 0.02}), cache=None, local=SlowLocal())
    with pytest.raises(TransientProviderError, match="no answer within 0.02 s"):
        await runner.run(Waits(), text="x")
    assert runner.accounting()["methods"]["waits"]["provider_calls"] == 1
