"""The AI methods library's settings, read from one mapping (the environment at the outermost entry).

| variable | default | meaning |
|---|---|---|
| ``AD_ASSETS_AI_PROVIDER`` | ``local`` | provider for every method that runs on it (a method that does not, e.g. ``detect_faces`` under ``bedrock``, runs on ``local``) |
| ``AD_ASSETS_AI_PROVIDER_<METHOD>`` | — | provider for one method, e.g. ``AD_ASSETS_AI_PROVIDER_CAPTION=bedrock`` |
| ``AD_ASSETS_HOME`` | ``./.ad_assets`` | local state; the cache lives under it |
| ``AD_ASSETS_AI_CACHE`` | ``on`` | ``off`` disables the result cache |
| ``AD_ASSETS_AI_CACHE_DIR`` | ``$AD_ASSETS_HOME/cache`` | directory of ``ai_results.sqlite`` |
| ``AD_ASSETS_AI_CACHE_URL`` | — | ``postgresql://…``: the cache is the table ``ai_results`` there, shared by every machine (instead of the SQLite file) |
| ``AD_ASSETS_AI_PRICES`` | — | JSON file overriding the price table (see ``ai_methods.pricing``) |
| ``AD_ASSETS_AI_TIMEOUT_S[_<PROVIDER>]`` | local 600, fake 60, remote 120 | per-call timeout (local: not retried) |
| ``AD_ASSETS_AI_CONCURRENCY[_<PROVIDER>]`` | local = CPU count, fake 64, remote 8 | calls in flight per provider |
| ``AD_ASSETS_AI_RATE[_<PROVIDER>]`` | unlimited | requests per second per provider |
| ``AD_ASSETS_AI_MAX_ATTEMPTS`` | 4 | attempts per call (transient errors only are retried) |
| ``AD_ASSETS_AI_BACKOFF_BASE_S`` / ``AD_ASSETS_AI_BACKOFF_MAX_S`` | 0.5 / 20 | capped exponential backoff with full jitter |
| ``AD_ASSETS_WHISPER_MODEL`` | the ``speech`` extra's tiny.en | CTranslate2 Whisper model directory of the local transcriber (read by ``ai_methods.providers.local.whisper``) |

Provider credentials (AWS chain, ``OPENAI_*``) are read by each client's
``from_env`` from the same mapping, kept here as ``env``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

from ai_methods.errors import ConfigurationError

BUILTIN_PROVIDERS: tuple[str, ...] = ("local", "fake", "bedrock", "openai")
REMOTE_PROVIDERS: tuple[str, ...] = ("bedrock", "openai")

_DEFAULT_TIMEOUT_S = {"local": 600.0, "fake": 60.0}
_REMOTE_TIMEOUT_S = 120.0
_DEFAULT_CONCURRENCY = {"fake": 64}
_REMOTE_CONCURRENCY = 8


def _suffix(name: str) -> str:
    return name.upper().replace("-", "_")


def env_number(
    env: Mapping[str, str],
    name: str,
    kind: type,
    minimum: float | None = None,
    *,
    error: Callable[[str], Exception] = ConfigurationError,
) -> float | int | None:
    """``env[name]`` as ``kind`` (``int`` or ``float``), or ``None`` when unset or blank.

    A value that is not a ``kind``, or is below ``minimum``, raises ``error``
    (``ConfigurationError`` unless the caller has its own) naming the variable and the value.
    """
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        value = kind(raw)
    except ValueError:
        raise error(f"{name}={raw!r} is not a{'n integer' if kind is int else ' number'}") from None
    if minimum is not None and value < minimum:
        raise error(f"{name}={value} must be at least {minimum}")
    return value


def _default(value: float | int | None, default: float | int) -> float | int:
    return default if value is None else value


@dataclass(frozen=True)
class AISettings:
    """Everything the call path and the providers are configured by."""

    default_provider: str = "local"
    method_providers: Mapping[str, str] = field(default_factory=dict)
    cache_enabled: bool = True
    cache_dir: Path = Path(".ad_assets/cache")
    cache_url: str | None = None
    prices_path: Path | None = None
    timeouts_s: Mapping[str, float] = field(default_factory=dict)
    concurrency: Mapping[str, int] = field(default_factory=dict)
    rates: Mapping[str, float] = field(default_factory=dict)
    max_attempts: int = 4
    backoff_base_s: float = 0.5
    backoff_max_s: float = 20.0
    env: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "AISettings":
        """Read settings from ``env``; ``None`` means the process environment (outermost entries only)."""
        env = dict(os.environ if env is None else env)
        default_provider = env.get("AD_ASSETS_AI_PROVIDER", "").strip().lower() or "local"
        _check_provider("AD_ASSETS_AI_PROVIDER", default_provider)
        prefix = "AD_ASSETS_AI_PROVIDER_"
        method_providers: dict[str, str] = {}
        for key, value in env.items():
            if key.startswith(prefix) and value.strip():
                provider = value.strip().lower()
                _check_provider(key, provider)
                method_providers[key[len(prefix) :].lower()] = provider

        home = Path(env.get("AD_ASSETS_HOME", "").strip() or "./.ad_assets").expanduser()
        cache_dir = Path(env.get("AD_ASSETS_AI_CACHE_DIR", "").strip() or home / "cache").expanduser()
        cache_flag = env.get("AD_ASSETS_AI_CACHE", "on").strip().lower() or "on"
        if cache_flag not in ("on", "off", "1", "0", "true", "false"):
            raise ConfigurationError(f"AD_ASSETS_AI_CACHE={cache_flag!r} must be 'on' or 'off'")
        cache_url = env.get("AD_ASSETS_AI_CACHE_URL", "").strip() or None
        if cache_url and not cache_url.startswith(("postgresql://", "postgres://")):
            raise ConfigurationError(
                f"AD_ASSETS_AI_CACHE_URL={cache_url!r} must be a PostgreSQL URL (postgresql://user:pass@host:5432/db)"
            )
        prices = env.get("AD_ASSETS_AI_PRICES", "").strip()

        timeouts: dict[str, float] = {}
        concurrency: dict[str, int] = {}
        rates: dict[str, float] = {}
        for provider in BUILTIN_PROVIDERS:
            sfx = _suffix(provider)
            t = env_number(env, f"AD_ASSETS_AI_TIMEOUT_S_{sfx}", float, 0.001) or env_number(
                env, "AD_ASSETS_AI_TIMEOUT_S", float, 0.001
            )
            if t is not None:
                timeouts[provider] = float(t)
            c = env_number(env, f"AD_ASSETS_AI_CONCURRENCY_{sfx}", int, 1) or env_number(
                env, "AD_ASSETS_AI_CONCURRENCY", int, 1
            )
            if c is not None:
                concurrency[provider] = int(c)
            r = env_number(env, f"AD_ASSETS_AI_RATE_{sfx}", float, 0.001) or env_number(
                env, "AD_ASSETS_AI_RATE", float, 0.001
            )
            if r is not None:
                rates[provider] = float(r)

        return cls(
            default_provider=default_provider,
            method_providers=method_providers,
            cache_enabled=cache_flag in ("on", "1", "true"),
            cache_dir=cache_dir,
            cache_url=cache_url,
            prices_path=Path(prices).expanduser() if prices else None,
            timeouts_s=timeouts,
            concurrency=concurrency,
            rates=rates,
            max_attempts=int(_default(env_number(env, "AD_ASSETS_AI_MAX_ATTEMPTS", int, 1), 4)),
            backoff_base_s=float(_default(env_number(env, "AD_ASSETS_AI_BACKOFF_BASE_S", float, 0.0), 0.5)),
            backoff_max_s=float(_default(env_number(env, "AD_ASSETS_AI_BACKOFF_MAX_S", float, 0.0), 20.0)),
            env=env,
        )

    @property
    def cache_path(self) -> Path:
        """The SQLite file of the result cache."""
        return self.cache_dir / "ai_results.sqlite"

    def provider_for(self, method: str, supported: Sequence[str] | None = None) -> str:
        """The provider that serves ``method``.

        Its own override (``AD_ASSETS_AI_PROVIDER_<METHOD>``) wins, and is kept
        even when the method cannot run there (an explicit choice fails loudly).
        Otherwise the default, unless the method does not run on it: a method
        only ``local`` implements (``detect_faces``, ``dominant_colors``) runs
        locally under a remote default instead of failing on every item.
        ``supported`` is the method's providers; ``None`` looks the method up in
        the registry (an unknown name keeps the default).
        """
        override = self.method_providers.get(method.lower())
        if override:
            return override
        if supported is None:
            supported = _registered_providers(method)
        if supported and self.default_provider not in supported and "local" in supported:
            return "local"
        return self.default_provider

    def timeout_for(self, provider: str) -> float:
        return self.timeouts_s.get(provider, _DEFAULT_TIMEOUT_S.get(provider, _REMOTE_TIMEOUT_S))

    def concurrency_for(self, provider: str) -> int:
        if provider in self.concurrency:
            return self.concurrency[provider]
        if provider == "local":
            return max(1, os.cpu_count() or 1)
        return _DEFAULT_CONCURRENCY.get(provider, _REMOTE_CONCURRENCY)

    def rate_for(self, provider: str) -> float | None:
        """Requests per second allowed to ``provider``; ``None`` is unlimited."""
        return self.rates.get(provider)


def _registered_providers(method: str) -> tuple[str, ...] | None:
    from ai_methods.errors import UnknownMethodError
    from ai_methods.registry import get_method

    try:
        return tuple(get_method(method).providers)
    except UnknownMethodError:
        return None


def _check_provider(setting: str, provider: str) -> None:
    if provider not in BUILTIN_PROVIDERS:
        raise ConfigurationError(
            f"{setting}={provider!r} is not a provider; choose one of {', '.join(BUILTIN_PROVIDERS)}"
        )
