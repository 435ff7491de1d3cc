"""The one call path: every method call, on every provider, goes through ``MethodRunner.run``.

It owns, in this order: input validation and hashing, the result cache (and
coalescing of identical calls in flight), the per-provider concurrency limit
and rate limit, the per-call timeout, retries of ``TransientProviderError``
only (capped exponential backoff with full jitter, honouring ``retry_after``),
output validation, cost estimation and per-method accounting.

A pipeline creates one runner per run, inside its event loop, and passes it
around::

    async with MethodRunner.from_env() as runner:
        result = await runner.run("caption", image=png_bytes)
        metadata = runner.accounting()
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import importlib
import itertools
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable, Mapping

from ai_methods.cache import CacheKey, PostgresResultCache, ResultCache, open_result_cache
from ai_methods.errors import (
    AIMethodError,
    InternalMethodError,
    ProviderUnavailableError,
    TransientProviderError,
)
from ai_methods.method import AIMethod, CallContext, MethodResult
from ai_methods.pricing import PriceTable
from ai_methods.settings import BUILTIN_PROVIDERS, AISettings
from ai_methods.usage import Usage

Sleep = Callable[[float], Awaitable[Any]]

# Where the remote clients live; imported only when that provider is used.
CLIENT_CLASSES: dict[str, str] = {
    "bedrock": "ai_methods.providers.bedrock:BedrockClient",
    "openai": "ai_methods.providers.openai_compat:OpenAIClient",
}

_FROM_SETTINGS: Any = object()


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter; a server's ``retry_after`` is a floor."""

    max_attempts: int = 4
    base_s: float = 0.5
    max_s: float = 20.0
    max_retry_after_s: float = 120.0

    def delay(self, retry: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry)."""
        cap = min(self.max_s, self.base_s * (2 ** (retry - 1)))
        wait = rng.uniform(0.0, cap)
        if retry_after is not None and retry_after > 0:
            wait = max(wait, min(retry_after, self.max_retry_after_s))
        return wait


class TokenBucket:
    """``rate`` requests per second with bursts up to ``burst``; waiters are served in call order."""

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, rate)
        self._tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()
        self.waited_s = 0.0
        self.acquired = 0

    async def acquire(self) -> None:
        # Reserve a token now (the balance may go negative) and sleep until it is due: callers
        # get consecutive slots in call order, with no loop that float rounding could keep spinning.
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        self._tokens -= 1.0
        self.acquired += 1
        if self._tokens < 0:
            wait = -self._tokens / self.rate
            self.waited_s += wait
            await self._sleep(wait)


class ProviderLimiter:
    """Concurrency (slots granted by priority) and rate (a token bucket) for one provider.

    A call waiting for a slot gets it before every waiting call of a larger
    ``priority`` number, and after those of its own priority that waited
    longer. The engine gives priority 0 to calls whose outputs other steps
    need (``caption`` and ``ocr_text`` before ``embed_text``): with first come,
    first served, the last items' captions waited behind the other calls and
    their ``embed_text`` ran alone at the end, one round trip with the
    provider's slots empty (``bench/bench_ai_stage.py``, docs/ai_stage.md).
    """

    def __init__(
        self,
        concurrency: int,
        rate: float | None,
        *,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.concurrency = concurrency
        self._free = concurrency
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []  # a heap: (priority, arrival, future)
        self._arrivals = itertools.count()
        self.bucket = TokenBucket(rate, sleep=sleep, clock=clock) if rate else None
        self.in_flight = 0
        self.max_in_flight = 0

    @contextlib.asynccontextmanager
    async def slot(self, priority: int = 0) -> AsyncIterator["ProviderLimiter"]:
        """Hold one of the provider's slots (and a token, with a rate) for the ``async with`` block."""
        await self._acquire(priority)
        try:
            if self.bucket is not None:
                await self.bucket.acquire()
        except BaseException:
            self._release()
            raise
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            yield self
        finally:
            self.in_flight -= 1
            self._release()

    async def _acquire(self, priority: int) -> None:
        if self._free > 0:  # a slot is only ever free while nobody waits: release hands it over
            self._free -= 1
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (priority, next(self._arrivals), granted))
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self._release()  # granted, then cancelled before it ran: the slot goes to the next one
            raise  # still waiting: its future is cancelled, and _release skips it

    def _release(self) -> None:
        while self._waiting:
            granted = heapq.heappop(self._waiting)[2]
            if not granted.done():
                granted.set_result(None)
                return
        self._free += 1


@dataclass
class MethodStats:
    """Counters for one method in one runner."""

    calls: int = 0
    cache_hits: int = 0
    provider_calls: int = 0
    retries: int = 0
    failures: Counter = field(default_factory=Counter)
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    unpriced_calls: int = 0
    latency_ms_total: float = 0.0
    providers: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        ok = self.calls - sum(self.failures.values())
        return {
            "calls": self.calls,
            "succeeded": ok,
            "cache_hits": self.cache_hits,
            "provider_calls": self.provider_calls,
            "retries": self.retries,
            "failures": dict(sorted(self.failures.items())),
            "usage": self.usage.as_dict(),
            "cost_usd": round(self.cost_usd, 8),
            "unpriced_calls": self.unpriced_calls,
            "mean_latency_ms": round(self.latency_ms_total / ok, 3) if ok else None,
            "providers": dict(sorted(self.providers.items())),
        }


class MethodRunner:
    """The call path. One per pipeline run, used from one event loop.

    Args:
        settings: configuration; ``MethodRunner.from_env()`` reads it from the environment.
        cache: a ``ResultCache``, ``None`` for no cache, or omitted to follow the settings.
        clients: ready ``ModelClient`` objects by provider name (tests inject fakes here);
            other remote providers are built with ``<Client>.from_env(settings.env)`` on first use.
        local / fake: the local engines and the fake provider (defaults: shared local engines, a zero-latency fake).
        prices: the price table (default: built-in prices overridden by ``settings.prices_path``).
        methods: a name → method mapping to use instead of the registry.
        sleep / clock / rng: injectable for tests of backoff and rate limits.
    """

    def __init__(
        self,
        settings: AISettings | None = None,
        *,
        cache: ResultCache | None = _FROM_SETTINGS,
        clients: Mapping[str, Any] | None = None,
        local: Any = None,
        fake: Any = None,
        prices: PriceTable | None = None,
        methods: Mapping[str, AIMethod] | None = None,
        retry: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings or AISettings()
        self._owns_cache = cache is _FROM_SETTINGS
        if self._owns_cache:
            cache = open_result_cache(self.settings.cache_url, self.settings.cache_path) if self.settings.cache_enabled else None
        self.cache: ResultCache | PostgresResultCache | None = cache
        self._backends: dict[str, Any] = dict(clients or {})
        self._owned_clients: list[Any] = []
        if local is not None:
            self._backends["local"] = local
        if fake is not None:
            self._backends["fake"] = fake
        self.prices = prices or PriceTable.load(self.settings.prices_path)
        self._methods = methods
        self.retry = retry or RetryPolicy(
            max_attempts=self.settings.max_attempts,
            base_s=self.settings.backoff_base_s,
            max_s=self.settings.backoff_max_s,
        )
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self._limiters: dict[str, ProviderLimiter] = {}
        self._inflight: dict[CacheKey, asyncio.Future[MethodResult]] = {}
        self._stats: dict[str, MethodStats] = {}

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **kwargs: Any) -> "MethodRunner":
        """A runner configured from ``env`` (default: the process environment)."""
        return cls(AISettings.from_env(env), **kwargs)

    async def __aenter__(self) -> "MethodRunner":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the clients and the cache this runner created."""
        for client in self._owned_clients:
            await client.aclose()
        self._owned_clients.clear()
        if self._owns_cache and self.cache is not None:
            self.cache.close()

    # ----- lookups --------------------------------------------------------------------

    def method(self, name: str) -> AIMethod:
        if self._methods is not None:
            if name in self._methods:
                return self._methods[name]
            from ai_methods.errors import UnknownMethodError

            raise UnknownMethodError(f"unknown AI method {name!r}; known methods: {', '.join(sorted(self._methods))}")
        from ai_methods.registry import get_method

        return get_method(name)

    def provider_for(self, method: str) -> str:
        """The provider a call of ``method`` uses by configuration (see ``AISettings.provider_for``)."""
        try:
            supported = self.method(method).providers
        except KeyError:  # UnknownMethodError: the call itself will say so
            supported = None
        return self.settings.provider_for(method, supported)

    def resolve_provider(self, method: AIMethod, provider: str | None = None) -> str:
        """The provider a call of ``method`` will use; ``ProviderUnavailableError`` if it cannot run there."""
        pname = (provider or self.provider_for(method.name)).strip().lower()
        if not method.supports(pname):
            raise ProviderUnavailableError(
                f"{method.name} does not run on provider {pname!r}; it supports {', '.join(method.providers)}"
            )
        return pname

    def backend(self, provider: str) -> Any:
        """The object that serves ``provider``: local engines, the fake, or a ``ModelClient``."""
        if provider in self._backends:
            return self._backends[provider]
        if provider == "local":
            from ai_methods.providers.local import LocalProvider

            backend: Any = LocalProvider.shared()
        elif provider == "fake":
            from ai_methods.providers.fake import FakeProvider

            backend = FakeProvider()
        elif provider in CLIENT_CLASSES:
            backend = _build_client(provider, self.settings.env)
            self._owned_clients.append(backend)
        else:
            known = sorted(set(BUILTIN_PROVIDERS) | set(self._backends))
            raise ProviderUnavailableError(f"unknown provider {provider!r}; choose one of {', '.join(known)}")
        self._backends[provider] = backend
        return backend

    def max_concurrency(self, methods: Iterable[str]) -> int:
        """The largest number of calls in flight any provider of ``methods`` allows (as configured now)."""
        return max((self.settings.concurrency_for(self.provider_for(m)) for m in methods), default=1)

    def limiter(self, provider: str) -> ProviderLimiter:
        if provider not in self._limiters:
            self._limiters[provider] = ProviderLimiter(
                self.settings.concurrency_for(provider),
                self.settings.rate_for(provider),
                sleep=self._sleep,
                clock=self._clock,
            )
        return self._limiters[provider]

    # ----- the call -------------------------------------------------------------------

    async def run(
        self, method: str | AIMethod, *args: Any, provider: str | None = None, priority: int = 0, **inputs: Any
    ) -> MethodResult:
        """Run ``method`` on ``inputs`` (keyword by kind: ``image=``, ``frames=``, ``audio=``, ``text=``, ``results=``).

        ``priority``: while calls wait for the provider's slots, smaller numbers
        go first (``ProviderLimiter``). Raises the typed errors of
        ``ai_methods.errors``; each failure is counted in ``accounting()``.
        """
        started = time.perf_counter()
        m = method if isinstance(method, AIMethod) else self.method(method)
        stats = self._stats.setdefault(m.name, MethodStats())
        stats.calls += 1
        pname = (provider or self.provider_for(m.name)).strip().lower()
        try:
            self.resolve_provider(m, pname)
            if _heavy_inputs(args, inputs):
                # Probing and hashing a large picture, or reading a file, would stall every other
                # call on this loop; hashlib and Pillow's header parse run fine in a thread.
                prepared = await asyncio.to_thread(m.prepare, *args, **inputs)
            else:
                prepared = m.prepare(*args, **inputs)
            backend = self.backend(pname)
            key = CacheKey(m.name, m.version, pname, m.model_for(pname, backend), prepared.input_hash)

            hit = self.cache.get(key) if self.cache is not None else None
            if hit is not None:
                stats.cache_hits += 1
                stats.providers[pname] += 1
                return MethodResult(
                    m.name, m.version, pname, hit.model, hit.output, Usage(), 0.0, True, _ms(started), key.input_hash
                )
            while (pending := self._inflight.get(key)) is not None:
                # The same input is being computed right now (e.g. identical frames): share that answer.
                try:
                    first = await asyncio.shield(pending)
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if task is not None and task.cancelling():
                        raise  # we were cancelled ourselves
                    continue  # the call we joined was cancelled: compute it here instead
                stats.cache_hits += 1
                stats.providers[pname] += 1
                return MethodResult(
                    m.name, m.version, pname, first.model, first.output, Usage(), 0.0, True, _ms(started), key.input_hash
                )

            future: asyncio.Future[MethodResult] = asyncio.get_running_loop().create_future()
            self._inflight[key] = future
            try:
                output, usage, model = await self._attempts(m, prepared, pname, backend, key.model, stats, priority)
                cost, priced = self.prices.cost(pname, model, usage)
                if self.cache is not None:
                    self.cache.put(key, output, usage, cost, model)
                result = MethodResult(
                    m.name, m.version, pname, model, output, usage, cost, False, _ms(started), key.input_hash
                )
                future.set_result(result)
            except BaseException as exc:
                if isinstance(exc, asyncio.CancelledError):
                    future.cancel()
                else:
                    future.set_exception(exc)
                    future.exception()  # mark retrieved: nobody may be waiting
                raise
            finally:
                self._inflight.pop(key, None)
        except AIMethodError as exc:
            stats.failures[type(exc).__name__] += 1
            raise
        stats.providers[pname] += 1
        stats.usage = stats.usage + usage
        stats.cost_usd += cost
        stats.unpriced_calls += 0 if priced else 1
        stats.latency_ms_total += result.latency_ms
        return result

    async def _attempts(
        self, m: AIMethod, inputs: Any, provider: str, backend: Any, model: str, stats: MethodStats, priority: int = 0
    ) -> tuple[dict[str, Any], Usage, str]:
        limiter = self.limiter(provider)
        timeout = self.settings.timeout_for(provider)
        attempt = 0
        while True:
            attempt += 1
            ctx = CallContext(m.name, provider, model, inputs.input_hash, backend)
            try:
                async with limiter.slot(priority):
                    stats.provider_calls += 1
                    try:
                        async with asyncio.timeout(timeout):
                            raw = await m.compute(inputs, ctx)
                    except TimeoutError as exc:
                        raise TransientProviderError(
                            f"{m.name} on {provider}: no answer within {timeout:g} s "
                            f"(raise AD_ASSETS_AI_TIMEOUT_S_{provider.upper()} if it is just slow)"
                        ) from exc
                output = m.validate_output(raw)
                usage = ctx.usage if ctx.usage != Usage() else Usage(requests=1)
                return output, usage, ctx.model
            except TransientProviderError as exc:
                # Local work is CPU-bound and keeps running in its thread after a timeout: a retry
                # would only take as long again, so a local timeout is final.
                local_timeout = provider == "local" and isinstance(exc.__cause__, TimeoutError)
                if attempt >= self.retry.max_attempts or local_timeout:
                    raise
                stats.retries += 1
                await self._sleep(self.retry.delay(attempt, exc.retry_after, self._rng))
            except AIMethodError:
                raise
            except Exception as exc:
                raise InternalMethodError(
                    f"{m.name} on {provider} failed inside the method: {type(exc).__name__}: {exc}"
                ) from exc

    # ----- reporting ------------------------------------------------------------------

    def accounting(self) -> dict[str, Any]:
        """Per-method calls, cache hits, failures by error type, usage and cost; totals; cache counters."""
        methods = {name: s.as_dict() for name, s in sorted(self._stats.items())}
        total = MethodStats()
        for s in self._stats.values():
            total.calls += s.calls
            total.cache_hits += s.cache_hits
            total.provider_calls += s.provider_calls
            total.retries += s.retries
            total.failures.update(s.failures)
            total.usage = total.usage + s.usage
            total.cost_usd += s.cost_usd
            total.unpriced_calls += s.unpriced_calls
            total.latency_ms_total += s.latency_ms_total
            total.providers.update(s.providers)
        return {
            "methods": methods,
            "total": total.as_dict(),
            "cache": self.cache.stats() if self.cache is not None else {"enabled": False},
            "limits": {
                p: {"concurrency": lim.concurrency, "max_in_flight": lim.max_in_flight}
                for p, lim in self._limiters.items()
            },
        }


# Inputs larger than this are validated and hashed in a worker thread (about 0.1 ms of hashing here).
HEAVY_INPUT_BYTES = 256 * 1024


def _heavy_inputs(args: tuple[Any, ...], inputs: Mapping[str, Any]) -> bool:
    """Whether validating these inputs means reading a file or hashing large bytes."""

    def heavy(value: Any) -> bool:
        if isinstance(value, (bytes, bytearray, memoryview)):
            return len(value) > HEAVY_INPUT_BYTES
        if isinstance(value, Path):
            return True
        if isinstance(value, (list, tuple)):
            return any(heavy(v) for v in value)
        return False

    return any(heavy(v) for v in (*args, *inputs.values()))


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _build_client(provider: str, env: Mapping[str, str]) -> Any:
    module_name, _, class_name = CLIENT_CLASSES[provider].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ProviderUnavailableError(
            f"provider {provider!r} is not available: cannot import {module_name} ({exc})"
        ) from exc
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ProviderUnavailableError(f"provider {provider!r} is not available: {module_name} has no {class_name}")
    return cls.from_env(env)
